//! `[[impair]]`: link impairment from the start (docs/impair.md), the
//! same knobs as `shunt impair`, and a flap schedule.
//!
//! ```toml
//! [[impair]]
//! port = "h1.lan"          # a port, or a host: all its ports
//! direction = "both"       # "egress" (to the host), "ingress" (from it), "both"
//! delay = "20ms"
//! jitter = "5ms"
//! distribution = "normal"  # uniform (default), normal, pareto, paretonormal
//! loss = "1%"              # or "gemodel 1% 30%" (bursts)
//! rate = "10mbit"
//! limit = 1000             # frames held at most
//! limit_bytes = "4mb"      # bytes held at most
//! duplicate = "0.1%"
//! reorder = "1%"
//! corrupt = "0.1%"
//! seed = 1
//! flap = { every = "10s", down_for = "2s" }
//! ```

use super::{ConfigError, Ctx, Host, PortCfg};
use crate::impair::{fresh_seed, Direction, Flap, PortImpair, Settings, Spec};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImpair {
    port: Spanned<String>,
    direction: Option<Spanned<String>>,
    delay: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    distribution: Option<Spanned<String>>,
    loss: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    limit: Option<Spanned<i64>>,
    limit_bytes: Option<Spanned<String>>,
    duplicate: Option<Spanned<String>>,
    reorder: Option<Spanned<String>>,
    corrupt: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
    flap: Option<Spanned<RawFlap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlap {
    every: Spanned<String>,
    down_for: Spanned<String>,
}

/// One `[[impair]]`, checked.
#[derive(Debug, Clone)]
pub struct ImpairCfg {
    /// Indices into `Topology::ports`.
    pub ports: Vec<usize>,
    pub direction: Direction,
    /// None: no impairment of frames (a flap schedule only).
    pub spec: Option<Spec>,
    pub flap: Option<Flap>,
    pub line: usize,
}

pub(super) fn sections(
    ctx: &Ctx,
    raw: &[Spanned<RawImpair>],
    hosts: &[Host],
    ports: &[PortCfg],
) -> Result<Vec<ImpairCfg>, ConfigError> {
    let mut out = Vec::new();
    for rs in raw {
        let r = rs.get_ref();
        let name = r.port.get_ref();
        let found = super::guard::ports_named(name, hosts, ports);
        if found.is_empty() {
            return ctx.err(
                r.port.span(),
                format!("[[impair]] port {name:?}: no port or host of that name (a port is named HOST.NETWORK, like \"h1.lan\")"),
            );
        }
        let direction = match &r.direction {
            Some(d) => Direction::parse(d.get_ref()).or_else(|e| ctx.err(d.span(), e))?,
            None => Direction::Both,
        };
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
        // Each key alone first, so that an error names its own line.
        let keys: [(&str, &Option<Spanned<String>>); 9] = [
            ("delay", &r.delay),
            ("jitter", &r.jitter),
            ("distribution", &r.distribution),
            ("loss", &r.loss),
            ("rate", &r.rate),
            ("limit_bytes", &r.limit_bytes),
            ("duplicate", &r.duplicate),
            ("reorder", &r.reorder),
            ("corrupt", &r.corrupt),
        ];
        for (k, v) in keys {
            if let Some(v) = v {
                let mut one = Settings::default();
                set(&mut one, k, v.get_ref().clone());
                one.spec().or_else(|e| ctx.err(v.span(), e))?;
            }
        }
        let limit = match &r.limit {
            Some(l) => Some(super::int_in(ctx, "limit", l, 1, 1_000_000)? as u64),
            None => None,
        };
        let seed = match &r.seed {
            Some(s) => Some(super::int_in(ctx, "seed", s, 0, i64::MAX)? as u64),
            None => None,
        };
        let settings = Settings {
            delay: text(&r.delay),
            jitter: text(&r.jitter),
            distribution: text(&r.distribution),
            loss: text(&r.loss),
            rate: text(&r.rate),
            limit,
            limit_bytes: text(&r.limit_bytes),
            duplicate: text(&r.duplicate),
            reorder: text(&r.reorder),
            corrupt: text(&r.corrupt),
            seed,
        };
        let spec = settings.spec().or_else(|e| ctx.err(rs.span(), e))?;
        let flap = match &r.flap {
            None => None,
            Some(f) => {
                let fr = f.get_ref();
                let dur = |s: &Spanned<String>| {
                    crate::impair::values::duration_ns(s.get_ref())
                        .or_else(|e| ctx.err(s.span(), e))
                };
                let (every_ns, down_for_ns) = (dur(&fr.every)?, dur(&fr.down_for)?);
                if down_for_ns == 0 || down_for_ns >= every_ns || every_ns < 100_000_000 {
                    return ctx.err(
                        f.span(),
                        "flap: write it like { every = \"10s\", down_for = \"2s\" }: every at least 100ms, down_for above zero and shorter than every",
                    );
                }
                Some(Flap {
                    every_ns,
                    down_for_ns,
                })
            }
        };
        out.push(ImpairCfg {
            ports: found,
            direction,
            spec: (!spec.is_noop()).then_some(spec),
            flap,
            line: ctx.line(rs.span().start),
        });
    }
    Ok(out)
}

fn set(s: &mut Settings, key: &str, v: String) {
    let slot = match key {
        "delay" => &mut s.delay,
        "jitter" => &mut s.jitter,
        "distribution" => &mut s.distribution,
        "loss" => &mut s.loss,
        "rate" => &mut s.rate,
        "limit_bytes" => &mut s.limit_bytes,
        "duplicate" => &mut s.duplicate,
        "reorder" => &mut s.reorder,
        _ => &mut s.corrupt,
    };
    *slot = Some(v);
}

/// Each port's impairment as the file's `[[impair]]` sections ask, seeds
/// drawn for the lines that name none (impair::Shared::with_ports).
pub fn port_impairs(topo: &super::Topology) -> Vec<PortImpair> {
    let mut all = vec![PortImpair::default(); crate::ids::MAX_PORTS];
    for c in &topo.impair {
        let spec = c.spec.map(|mut s| {
            s.seed = Some(s.seed.unwrap_or_else(fresh_seed));
            s
        });
        for &p in &c.ports {
            let Some(x) = all.get_mut(p) else { continue };
            if c.direction.egress() && spec.is_some() {
                x.egress = spec;
            }
            if c.direction.ingress() && spec.is_some() {
                x.ingress = spec;
            }
            if c.flap.is_some() {
                x.flap = c.flap;
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::impair::{Direction, Loss};

    const BASE: &str = "[[network]]\nname='lan'\nsubnet='10.0.0.0/24'\n[[host]]\nname='h1'\nnetworks=['lan']\n[[host]]\nname='h2'\nnetworks=['lan']\n";

    #[test]
    fn impair_tables() {
        let t = parse(
            "t",
            &format!("{BASE}[[impair]]\nport='h1.lan'\ndirection='egress'\ndelay='20ms'\njitter='0ms'\nloss='0%'\nrate='100mbit'\nseed=1\n[[impair]]\nport='h2'\nloss='gemodel 1% 30%'\nflap={{ every = '10s', down_for = '2s' }}\n"),
        )
        .expect("parses");
        assert_eq!(t.impair.len(), 2);
        let a = &t.impair[0];
        assert_eq!((a.ports.clone(), a.direction), (vec![0], Direction::Egress));
        let s = a.spec.expect("a spec");
        assert_eq!(
            (s.delay_ns, s.rate_bps, s.seed),
            (20_000_000, 100_000_000, Some(1))
        );
        let b = &t.impair[1];
        assert_eq!(b.ports, vec![1]);
        assert!(matches!(b.spec.map(|s| s.loss), Some(Loss::Gilbert { .. })));
        assert_eq!(b.flap.map(|f| f.down_for_ns), Some(2_000_000_000));
    }

    #[test]
    fn impair_errors_name_the_line() {
        let e = |extra: &str| parse("t", &format!("{BASE}{extra}")).expect_err("refused");
        let x = e("[[impair]]\nport='h9.lan'\n");
        assert_eq!(x.line, 11, "{x}");
        assert!(x.message.contains("h9.lan"), "{x}");
        let x = e("[[impair]]\nport='h1.lan'\ndelay='20 parsecs'\n");
        assert_eq!(x.line, 12, "{x}");
        assert!(x.message.contains("\"20ms\""), "{x}");
        let x = e("[[impair]]\nport='h1.lan'\ndirection='sideways'\n");
        assert_eq!(x.line, 12, "{x}");
        let x = e("[[impair]]\nport='h1.lan'\nflap={ every = '1s', down_for = '2s' }\n");
        assert_eq!(x.line, 12, "{x}");
        assert!(x.message.contains("down_for"), "{x}");
        let x = e("[[impair]]\nport='h1.lan'\nlatency='20ms'\n");
        assert!(x.message.contains("latency"), "{x}");
    }
}
