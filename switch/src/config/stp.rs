//! Spanning-tree keys (docs/stp.md): `[switch] stp`, `stp_priority` and
//! the bridge timers; per `[[host]]` and `[[port]]`: `stp_cost`,
//! `stp_priority` (the port's) and `stp_edge`.

use super::{int_in, ConfigError, Ctx};
use toml::Spanned;

/// `[switch] stp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StpMode {
    /// No spanning tree: BPDUs are link-local frames like any other.
    Off,
    /// RSTP (802.1w), falling back to 802.1D towards STP-only neighbours.
    Rstp,
}

/// The switch's spanning-tree bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StpCfg {
    pub mode: StpMode,
    /// Bridge priority, a multiple of 4096 (0..=61440).
    pub priority: u16,
    pub hello_secs: u8,
    pub max_age_secs: u8,
    pub forward_delay_secs: u8,
}

impl Default for StpCfg {
    fn default() -> Self {
        StpCfg {
            mode: StpMode::Off,
            priority: 32768,
            hello_secs: 2,
            max_age_secs: 20,
            forward_delay_secs: 15,
        }
    }
}

/// One port's spanning-tree parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StpPortCfg {
    /// Path cost (1..=200,000,000; default 20,000, 1 Gb/s in 802.1D-2004).
    pub cost: u32,
    /// Port priority, a multiple of 16 (0..=240; default 128).
    pub priority: u8,
    /// An edge port (portfast): forwards at once, sends BPDUs, and stops
    /// being edge when one comes in. Hosts' ports are, `[[port]]`s not.
    pub edge: bool,
}

impl StpPortCfg {
    /// A host's port: edge.
    pub const HOST: StpPortCfg = StpPortCfg {
        cost: 20_000,
        priority: 128,
        edge: true,
    };
    /// A `[[port]]` (a trunk, a link to another switch): runs the protocol.
    pub const PORT: StpPortCfg = StpPortCfg {
        cost: 20_000,
        priority: 128,
        edge: false,
    };
}

/// The `[switch]` keys.
pub(super) struct SwitchKeys<'a> {
    pub stp: Option<&'a Spanned<String>>,
    pub priority: Option<&'a Spanned<i64>>,
    pub hello: Option<&'a Spanned<i64>>,
    pub max_age: Option<&'a Spanned<i64>>,
    pub forward_delay: Option<&'a Spanned<i64>>,
}

pub(super) fn switch(ctx: &Ctx, k: SwitchKeys) -> Result<StpCfg, ConfigError> {
    let mut c = StpCfg::default();
    if let Some(m) = k.stp {
        c.mode = match m.get_ref().as_str() {
            "off" => StpMode::Off,
            "rstp" => StpMode::Rstp,
            other => {
                return ctx.err(
                    m.span(),
                    format!("stp = {other:?}: write \"rstp\" (802.1w, with 802.1D towards STP bridges) or \"off\""),
                )
            }
        }
    }
    if let Some(p) = k.priority {
        let v = int_in(ctx, "stp_priority", p, 0, 61440)?;
        if v % 4096 != 0 {
            return ctx.err(
                p.span(),
                format!(
                    "stp_priority = {v}: a bridge priority is a multiple of 4096 (say {})",
                    v / 4096 * 4096
                ),
            );
        }
        c.priority = v as u16;
    }
    if let Some(h) = k.hello {
        c.hello_secs = int_in(ctx, "stp_hello_secs", h, 1, 10)? as u8;
    }
    if let Some(m) = k.max_age {
        c.max_age_secs = int_in(ctx, "stp_max_age_secs", m, 6, 40)? as u8;
    }
    if let Some(f) = k.forward_delay {
        c.forward_delay_secs = int_in(ctx, "stp_forward_delay_secs", f, 4, 30)? as u8;
    }
    // 802.1D-2004 17.14: 2 x (Forward Delay - 1) >= Max Age >= 2 x
    // (Hello Time + 1), or bridges may age out what they still need.
    let (h, m, f) = (c.hello_secs, c.max_age_secs, c.forward_delay_secs);
    if u16::from(m) > 2 * (u16::from(f) - 1) || u16::from(m) < 2 * (u16::from(h) + 1) {
        let span = k
            .max_age
            .or(k.forward_delay)
            .or(k.hello)
            .map(|s| s.span())
            .unwrap_or(0..0);
        return ctx.err(
            span,
            format!("stp timers hello {h} s, max age {m} s, forward delay {f} s: 802.1D asks 2 x (forward delay - 1) >= max age >= 2 x (hello + 1); say stp_max_age_secs = {}", (2 * (u16::from(h) + 1)).max(6)),
        );
    }
    Ok(c)
}

/// A `[[host]]`'s or `[[port]]`'s keys, over the defaults `base`.
pub(super) fn port(
    ctx: &Ctx,
    base: StpPortCfg,
    cost: Option<&Spanned<i64>>,
    priority: Option<&Spanned<i64>>,
    edge: Option<bool>,
) -> Result<StpPortCfg, ConfigError> {
    let mut c = base;
    if let Some(v) = cost {
        c.cost = int_in(ctx, "stp_cost", v, 1, 200_000_000)? as u32;
    }
    if let Some(p) = priority {
        let v = int_in(ctx, "stp_priority", p, 0, 240)?;
        if v % 16 != 0 {
            return ctx.err(
                p.span(),
                format!(
                    "stp_priority = {v}: a port priority is a multiple of 16 (say {})",
                    v / 16 * 16
                ),
            );
        }
        c.priority = v as u8;
    }
    if let Some(e) = edge {
        c.edge = e;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const NET: &str = "[[network]]\nname = \"lan\"\nsubnet = \"10.0.0.0/24\"\n";

    #[test]
    fn defaults_off_hosts_edge_ports_not() {
        let src = format!("{NET}[[host]]\nname = \"h1\"\nnetworks = [\"lan\"]\n[[port]]\nname = \"up0\"\nkind = \"tap\"\nnetwork = \"lan\"\n");
        let t = parse("t.toml", &src).unwrap();
        assert_eq!(t.switch.stp, StpCfg::default());
        assert_eq!(t.switch.stp.mode, StpMode::Off);
        assert_eq!(t.ports[0].stp, StpPortCfg::HOST);
        assert_eq!(t.ports[1].stp, StpPortCfg::PORT);
    }

    #[test]
    fn keys_are_read() {
        let src = format!(
            "[switch]\nstp = \"rstp\"\nstp_priority = 4096\nstp_hello_secs = 1\nstp_max_age_secs = 6\nstp_forward_delay_secs = 4\n{NET}\
             [[host]]\nname = \"h1\"\nnetworks = [\"lan\"]\nstp_edge = false\nstp_cost = 100\n\
             [[port]]\nname = \"up0\"\nkind = \"tap\"\nnetwork = \"lan\"\nstp_cost = 2000\nstp_priority = 16\nstp_edge = true\n"
        );
        let t = parse("t.toml", &src).unwrap();
        let s = t.switch.stp;
        assert_eq!(s.mode, StpMode::Rstp);
        assert_eq!(
            (
                s.priority,
                s.hello_secs,
                s.max_age_secs,
                s.forward_delay_secs
            ),
            (4096, 1, 6, 4)
        );
        assert_eq!(
            t.ports[0].stp,
            StpPortCfg {
                cost: 100,
                priority: 128,
                edge: false
            }
        );
        assert_eq!(
            t.ports[1].stp,
            StpPortCfg {
                cost: 2000,
                priority: 16,
                edge: true
            }
        );
    }

    #[test]
    fn bad_values_say_what_to_write() {
        let cases = [
            ("[switch]\nstp = \"mstp\"\n", "write \"rstp\""),
            (
                "[switch]\nstp_priority = 1000\n",
                "multiple of 4096 (say 0)",
            ),
            ("[switch]\nstp_priority = 70000\n", "out of range"),
            ("[switch]\nstp_max_age_secs = 40\n", "say stp_max_age_secs"),
            ("[switch]\nstp_hello_secs = 0\n", "out of range"),
        ];
        for (sw, want) in cases {
            let e = parse("t.toml", &format!("{sw}{NET}")).unwrap_err();
            assert!(e.to_string().contains(want), "{sw}: {e}");
            assert_eq!(e.line, 2, "{sw}");
        }
        let e = parse(
            "t.toml",
            &format!("{NET}[[port]]\nname = \"up0\"\nkind = \"tap\"\nnetwork = \"lan\"\nstp_priority = 100\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("multiple of 16 (say 96)"), "{e}");
        assert_eq!(e.line, 8);
    }
}
