//! The keys that protect the switch (docs/storm.md): `[[storm]]` (storm
//! control per port), `[switch] mac_flap` (MAC-flap detection),
//! `max_learned` on `[[host]]` and `[[port]]` (learning limits) and
//! `link_local` on `[[network]]`.
//!
//! ```toml
//! [switch]
//! mac_flap = { moves = 5, window = "10s", action = "log", hold = "30s" }
//!
//! [[network]]
//! link_local = "forward"     # or "drop" (default)
//!
//! [[host]]                   # and [[port]]
//! max_learned = 1000         # 0 or absent: no limit but the FDB's
//!
//! [[storm]]
//! port = "h1.lan"            # a port, or a host: all its ports
//! broadcast = 1000           # frames per second allowed in; absent: no limit
//! multicast = 1000
//! unknown_unicast = 1000
//! burst = "1s"               # bucket depth, as time at the rate (default 1s)
//! ```

use super::{int_in, ConfigError, Ctx, Host, PortCfg};
use crate::counters::FloodCause;
use serde::Deserialize;
use toml::Spanned;

/// What a network does with 01:80:c2:00:00:00 to 0f (`link_local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkLocal {
    /// Dropped as `link_local`, as an 802.1D bridge does.
    #[default]
    Drop,
    /// Flooded untouched like other multicast (labs with virtual routers:
    /// LLDP, LACP, STP between them).
    Forward,
}

impl LinkLocal {
    pub fn name(self) -> &'static str {
        match self {
            LinkLocal::Drop => "drop",
            LinkLocal::Forward => "forward",
        }
    }
}

/// `link_local` of a `[[network]]`.
pub(super) fn link_local(ctx: &Ctx, v: Option<&Spanned<String>>) -> Result<LinkLocal, ConfigError> {
    match v {
        None => Ok(LinkLocal::Drop),
        Some(s) => match s.get_ref().as_str() {
            "drop" => Ok(LinkLocal::Drop),
            "forward" => Ok(LinkLocal::Forward),
            other => ctx.err(
                s.span(),
                format!("link_local = {other:?}: write \"drop\" (the default) or \"forward\""),
            ),
        },
    }
}

/// The most `max_learned` may be (the FDB's own largest size).
pub const MAX_LEARNED: i64 = 16_777_216;

/// `max_learned` of a `[[host]]` or `[[port]]`: 0 for none.
pub(super) fn max_learned(ctx: &Ctx, v: Option<&Spanned<i64>>) -> Result<usize, ConfigError> {
    match v {
        None => Ok(0),
        Some(n) => Ok(int_in(ctx, "max_learned", n, 0, MAX_LEARNED)? as usize),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorm {
    port: Spanned<String>,
    broadcast: Option<Spanned<i64>>,
    multicast: Option<Spanned<i64>>,
    unknown_unicast: Option<Spanned<i64>>,
    burst: Option<Spanned<String>>,
}

/// Frames per second storm control may allow at most (a rate above what
/// any port carries means "no limit"; leave the key out instead).
pub const MAX_STORM_RATE: i64 = 100_000_000;

/// The bucket depth without `burst`: one second at the rate.
pub const DEFAULT_BURST_NS: u64 = 1_000_000_000;

/// One class's limit: frames per second, and the bucket's depth as time at
/// that rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormRate {
    pub per_sec: u64,
    pub burst_ns: u64,
}

/// Storm control of some ports: a limit per class, indexed by
/// `FloodCause as usize` (None: that class is not limited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormCfg {
    /// Indices into `Topology::ports`.
    pub ports: Vec<usize>,
    pub rates: [Option<StormRate>; 3],
    pub line: usize,
}

/// The ports a `[[…]]` table's `port` names: that port, or every port of
/// the host of that name.
pub(super) fn ports_named(name: &str, hosts: &[Host], ports: &[PortCfg]) -> Vec<usize> {
    match ports.iter().position(|p| p.name == name) {
        Some(i) => vec![i],
        None if hosts.iter().any(|h| h.name == name) => ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.host.as_deref() == Some(name))
            .map(|(i, _)| i)
            .collect(),
        None => vec![],
    }
}

pub(super) fn storm_sections(
    ctx: &Ctx,
    raw: &[Spanned<RawStorm>],
    hosts: &[Host],
    ports: &[PortCfg],
) -> Result<Vec<StormCfg>, ConfigError> {
    let mut out = Vec::new();
    for rs in raw {
        let r = rs.get_ref();
        let name = r.port.get_ref();
        let found = ports_named(name, hosts, ports);
        if found.is_empty() {
            return ctx.err(
                r.port.span(),
                format!("[[storm]] port {name:?}: no port or host of that name (a port is named HOST.NETWORK, like \"h1.lan\")"),
            );
        }
        let burst_ns = match &r.burst {
            None => DEFAULT_BURST_NS,
            Some(b) => match crate::impair::values::duration_ns(b.get_ref()) {
                Ok(ns) if ns >= 1_000_000 => ns,
                Ok(_) => {
                    return ctx.err(
                        b.span(),
                        "burst: at least \"1ms\" (like \"100ms\" or \"1s\")",
                    )
                }
                Err(e) => return ctx.err(b.span(), format!("burst: {e}")),
            },
        };
        let mut rates = [None; 3];
        let keys = [
            (FloodCause::Broadcast, "broadcast", &r.broadcast),
            (FloodCause::Multicast, "multicast", &r.multicast),
            (
                FloodCause::UnknownUnicast,
                "unknown_unicast",
                &r.unknown_unicast,
            ),
        ];
        for (cause, key, v) in keys {
            if let Some(v) = v {
                let per_sec = int_in(ctx, key, v, 0, MAX_STORM_RATE)? as u64;
                rates[cause as usize] = Some(StormRate { per_sec, burst_ns });
            }
        }
        if rates.iter().all(Option::is_none) {
            return ctx.err(
                rs.span(),
                "[[storm]] limits nothing: give at least one of broadcast, multicast, unknown_unicast (frames per second)",
            );
        }
        out.push(StormCfg {
            ports: found,
            rates,
            line: ctx.line(rs.span().start),
        });
    }
    Ok(out)
}

/// What MAC-flap detection does when a MAC flaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlapAction {
    /// A log line and the counters only.
    Log,
    /// The MAC is not learned anywhere for `hold` (frames to it are
    /// flooded meanwhile).
    Block,
    /// The port the MAC moved to last goes down for `hold` (err-disable).
    PortDown,
}

impl FlapAction {
    pub fn name(self) -> &'static str {
        match self {
            FlapAction::Log => "log",
            FlapAction::Block => "block",
            FlapAction::PortDown => "port_down",
        }
    }
}

/// `[switch] mac_flap`: more than `moves` moves of one MAC within
/// `window_ms` is a flap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacFlapCfg {
    pub moves: u32,
    pub window_ms: u64,
    pub action: FlapAction,
    pub hold_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMacFlap {
    moves: Option<Spanned<i64>>,
    window: Option<Spanned<String>>,
    action: Option<Spanned<String>>,
    hold: Option<Spanned<String>>,
}

pub(super) fn mac_flap(
    ctx: &Ctx,
    raw: Option<&Spanned<RawMacFlap>>,
) -> Result<Option<MacFlapCfg>, ConfigError> {
    let Some(rs) = raw else { return Ok(None) };
    let r = rs.get_ref();
    let moves = match &r.moves {
        Some(m) => int_in(ctx, "mac_flap moves", m, 1, 1_000_000)? as u32,
        None => 5,
    };
    let ms = |v: &Option<Spanned<String>>, key: &str, default: u64| -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        match crate::impair::values::duration_ns(v.get_ref()) {
            Ok(ns) if ns >= 100_000_000 => Ok(ns / 1_000_000),
            Ok(_) => ctx.err(
                v.span(),
                format!("mac_flap {key}: at least \"100ms\" (like \"10s\")"),
            ),
            Err(e) => ctx.err(v.span(), format!("mac_flap {key}: {e}")),
        }
    };
    let window_ms = ms(&r.window, "window", 10_000)?;
    let hold_ms = ms(&r.hold, "hold", 30_000)?;
    let action = match &r.action {
        None => FlapAction::Log,
        Some(a) => match a.get_ref().as_str() {
            "log" => FlapAction::Log,
            "block" => FlapAction::Block,
            "port_down" => FlapAction::PortDown,
            other => {
                return ctx.err(
                    a.span(),
                    format!(
                        "mac_flap action = {other:?}: write \"log\", \"block\" or \"port_down\""
                    ),
                )
            }
        },
    };
    Ok(Some(MacFlapCfg {
        moves,
        window_ms,
        action,
        hold_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const BASE: &str = "[[network]]\nname='lan'\nsubnet='10.0.0.0/24'\n[[host]]\nname='h1'\nnetworks=['lan']\n[[host]]\nname='h2'\nnetworks=['lan']\n";

    #[test]
    fn storm_tables() {
        let t = parse(
            "t",
            &format!("{BASE}[[storm]]\nport='h1.lan'\nbroadcast=1000\nunknown_unicast=0\nburst='100ms'\n[[storm]]\nport='h2'\nmulticast=5\n"),
        )
        .expect("parses");
        assert_eq!(t.storm.len(), 2);
        let a = &t.storm[0];
        assert_eq!(a.ports, vec![0]);
        assert_eq!(
            a.rates[FloodCause::Broadcast as usize],
            Some(StormRate {
                per_sec: 1000,
                burst_ns: 100_000_000
            })
        );
        assert_eq!(a.rates[FloodCause::Multicast as usize], None);
        assert_eq!(
            a.rates[FloodCause::UnknownUnicast as usize].map(|r| r.per_sec),
            Some(0)
        );
        assert_eq!(t.storm[1].ports, vec![1]);
        assert_eq!(
            t.storm[1].rates[FloodCause::Multicast as usize].map(|r| r.burst_ns),
            Some(DEFAULT_BURST_NS)
        );
    }

    #[test]
    fn guard_errors_name_the_line() {
        let e = |extra: &str| parse("t", &format!("{BASE}{extra}")).expect_err("refused");
        let x = e("[[storm]]\nport='h9.lan'\nbroadcast=1\n");
        assert_eq!(x.line, 11, "{x}");
        assert!(x.message.contains("h9.lan"), "{x}");
        let x = e("[[storm]]\nport='h1.lan'\nbroadcast=-1\n");
        assert_eq!(x.line, 12, "{x}");
        let x = e("[[storm]]\nport='h1.lan'\n");
        assert!(x.message.contains("limits nothing"), "{x}");
        let x = e("[[storm]]\nport='h1.lan'\nbroadcast=1\nburst='1 fortnight'\n");
        assert_eq!(x.line, 13, "{x}");
        let x = parse("t", "[[network]]\nname='n'\nlink_local='pass'\n").expect_err("refused");
        assert_eq!(x.line, 3, "{x}");
        assert!(x.message.contains("\"forward\""), "{x}");
        let x = parse(
            "t",
            "[[network]]\nname='n'\n[[host]]\nname='a'\nnetworks=['n']\nmax_learned=-3\n",
        )
        .expect_err("refused");
        assert_eq!(x.line, 6, "{x}");
        let x = parse(
            "t",
            "[switch]\nmac_flap={ moves = 3, action = 'shout' }\n[[network]]\nname='n'\n",
        )
        .expect_err("refused");
        assert_eq!(x.line, 2, "{x}");
        assert!(x.message.contains("\"port_down\""), "{x}");
    }

    #[test]
    fn guard_keys() {
        let t = parse(
            "t",
            "[switch]\nmac_flap={ moves = 3, window = '2s', action = 'port_down' }\n[[network]]\nname='n'\nlink_local='forward'\n[[host]]\nname='a'\nnetworks=['n']\nmax_learned=100\n[[port]]\nname='p'\nkind='tap'\nnetwork='n'\nmax_learned=7\n",
        )
        .expect("parses");
        assert_eq!(
            t.switch.mac_flap,
            Some(MacFlapCfg {
                moves: 3,
                window_ms: 2000,
                action: FlapAction::PortDown,
                hold_ms: 30_000
            })
        );
        assert_eq!(t.networks[0].link_local, LinkLocal::Forward);
        assert_eq!(t.ports[0].max_learned, 100);
        assert_eq!(t.ports[1].max_learned, 7);
        let t = parse("t", BASE).expect("parses");
        assert_eq!(t.networks[0].link_local, LinkLocal::Drop);
        assert_eq!(t.ports[0].max_learned, 0);
        assert_eq!(t.switch.mac_flap, None);
        assert!(t.storm.is_empty());
    }
}
