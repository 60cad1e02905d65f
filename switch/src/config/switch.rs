//! `[switch]`: the switch's name, workers and FDB sizing.

use super::{check_name, int_in, ConfigError, Ctx, SwitchCfg, DEFAULT_NAME};
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
    };
    let Some(s) = raw else {
        return Ok(switch);
    };
    let s = s.get_ref();
    if let Some(n) = &s.name {
        check_name(ctx, "switch", n)?;
        if n.get_ref().len() > 12 {
            return ctx.err(n.span(), "switch name is longer than 12 characters (it names the control socket and files under /run/shunt; keep it short)");
        }
        switch.name = n.get_ref().clone();
    }
    switch.bare = s.bare.unwrap_or(false);
    if let Some(w) = &s.workers {
        switch.workers = int_in(ctx, "workers", w, 1, 64)? as usize;
    }
    if let Some(a) = &s.fdb_aging_secs {
        switch.fdb_aging_secs = int_in(ctx, "fdb_aging_secs", a, 1, 1_000_000)? as u64;
    }
    if let Some(m) = &s.fdb_max_entries {
        switch.fdb_max_entries = int_in(ctx, "fdb_max_entries", m, 1, 16_777_216)? as usize;
    }
    Ok(switch)
}
