//! `[switch]`: the switch's name, workers and FDB sizing.

use super::{check_name, int_in, ConfigError, Ctx, PollMode, SwitchCfg, TapIo, DEFAULT_NAME};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSwitch {
    name: Option<Spanned<String>>,
    workers: Option<Spanned<i64>>,
    fdb_aging_secs: Option<Spanned<i64>>,
    fdb_max_entries: Option<Spanned<i64>>,
    bare: Option<bool>,
    poll: Option<Spanned<String>>,
    poll_budget_us: Option<Spanned<i64>>,
    multiqueue: Option<bool>,
    tap_io: Option<Spanned<String>>,
    stp: Option<Spanned<String>>,
    stp_priority: Option<Spanned<i64>>,
    stp_hello_secs: Option<Spanned<i64>>,
    stp_max_age_secs: Option<Spanned<i64>>,
    stp_forward_delay_secs: Option<Spanned<i64>>,
    mac_flap: Option<Spanned<super::guard::RawMacFlap>>,
}

pub(super) fn section(
    ctx: &Ctx,
    raw: Option<&Spanned<RawSwitch>>,
) -> Result<SwitchCfg, ConfigError> {
    let mut switch = SwitchCfg {
        name: DEFAULT_NAME.to_string(),
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        fdb_aging_secs: 300,
        fdb_max_entries: 65536,
        bare: false,
        poll: DEFAULT_POLL,
        tap_io: DEFAULT_TAP_IO,
        tap_queues: 1,
        stp: super::StpCfg::default(),
        mac_flap: None,
    };
    let Some(s) = raw else {
        return Ok(switch);
    };
    let s = s.get_ref();
    switch.mac_flap = super::guard::mac_flap(ctx, s.mac_flap.as_ref())?;
    if let Some(n) = &s.name {
        check_name(ctx, "switch", n)?;
        if n.get_ref().len() > 12 {
            return ctx.err(n.span(), "switch name is longer than 12 characters (it names the control socket and files under /run/shunt; keep it short)");
        }
        switch.name = n.get_ref().clone();
    }
    switch.bare = s.bare.unwrap_or(false);
    switch.stp = super::stp::switch(
        ctx,
        super::stp::SwitchKeys {
            stp: s.stp.as_ref(),
            priority: s.stp_priority.as_ref(),
            hello: s.stp_hello_secs.as_ref(),
            max_age: s.stp_max_age_secs.as_ref(),
            forward_delay: s.stp_forward_delay_secs.as_ref(),
        },
    )?;
    if let Some(w) = &s.workers {
        switch.workers = int_in(ctx, "workers", w, 1, 64)? as usize;
    }
    if let Some(a) = &s.fdb_aging_secs {
        switch.fdb_aging_secs = int_in(ctx, "fdb_aging_secs", a, 1, 1_000_000)? as u64;
    }
    if let Some(m) = &s.fdb_max_entries {
        switch.fdb_max_entries = int_in(ctx, "fdb_max_entries", m, 1, 16_777_216)? as usize;
    }
    if s.multiqueue == Some(true) {
        switch.tap_queues = switch.workers;
    }
    if let Some(t) = &s.tap_io {
        switch.tap_io = match t.get_ref().as_str() {
            "syscall" => TapIo::Syscall,
            "uring" => TapIo::Uring,
            other => {
                return ctx.err(
                    t.span(),
                    format!("tap_io = {other:?}: write \"syscall\" or \"uring\""),
                )
            }
        };
    }
    let budget_us = match &s.poll_budget_us {
        Some(b) => int_in(ctx, "poll_budget_us", b, 1, 1_000_000)? as u32,
        None => PollMode::DEFAULT_BUDGET_US,
    };
    if let Some(p) = &s.poll {
        switch.poll = match p.get_ref().as_str() {
            "interrupt" => PollMode::Interrupt,
            "adaptive" => PollMode::Adaptive { budget_us },
            "busy" => PollMode::Busy,
            other => {
                return ctx.err(
                    p.span(),
                    format!("poll = {other:?}: write \"interrupt\", \"adaptive\" or \"busy\""),
                )
            }
        };
    } else if let PollMode::Adaptive { .. } = switch.poll {
        switch.poll = PollMode::Adaptive { budget_us };
    }
    Ok(switch)
}

/// The polling mode without `poll`: measured on this 2-core machine,
/// polling without sleeping takes the core a host's iperf3 needs (docs/PERF.md,
/// "Polling modes").
pub const DEFAULT_POLL: PollMode = PollMode::Interrupt;

/// TAP I/O without `tap_io`: io_uring, faster than a system call per frame
/// in every measured pair (docs/decisions.md, "Batched TAP I/O").
pub const DEFAULT_TAP_IO: TapIo = TapIo::Uring;
