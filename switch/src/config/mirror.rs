//! `[[mirror]]`: mirror ports (SPAN, docs/mirror.md). The same checks serve
//! the topology file and `shunt mirror add` (daemon/mirror.rs), so that a
//! mirror the file refuses is refused at run time in the same words.
//!
//! ```toml
//! [[mirror]]
//! name = "mon"
//! source = ["h1.lan", "h2"]    # ports, or hosts: all their ports
//! direction = "both"           # "in", "out" or "both" (default)
//! destination = "mon.lan"      # a port, or a host with one port
//! ```
//!
//! What makes a loop is refused: a destination that is also a source (of
//! this mirror or another), a port that is the destination of two mirrors,
//! and a source mirrored twice in the same direction (two copies of one
//! frame). The destination takes no part in forwarding while it is one, so
//! the underlay of a `[vtep]` and a macvlan parent cannot be one either.

use super::{ConfigError, Ctx, Host, Network, PortCfg};
use serde::Deserialize;
use toml::Spanned;

/// Most mirrors a switch runs at once (the datapath keeps a bit per frame
/// and mirror for each batch: docs/mirror.md).
pub const MAX_MIRRORS: usize = 16;

/// Which frames of a source are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorDir {
    /// As received, before any edit.
    In,
    /// As sent, after the tag and VXLAN edits.
    Out,
    Both,
}

impl MirrorDir {
    pub fn parse(s: &str) -> Option<MirrorDir> {
        match s {
            "in" => Some(MirrorDir::In),
            "out" => Some(MirrorDir::Out),
            "both" => Some(MirrorDir::Both),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            MirrorDir::In => "in",
            MirrorDir::Out => "out",
            MirrorDir::Both => "both",
        }
    }
    /// Whether received frames are copied.
    pub fn rx(self) -> bool {
        matches!(self, MirrorDir::In | MirrorDir::Both)
    }
    /// Whether sent frames are copied.
    pub fn tx(self) -> bool {
        matches!(self, MirrorDir::Out | MirrorDir::Both)
    }
}

/// One mirror, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorCfg {
    pub name: String,
    /// Indices into `Topology::ports`, each once, in the order written.
    pub sources: Vec<usize>,
    pub direction: MirrorDir,
    /// Index into `Topology::ports`.
    pub destination: usize,
    /// Where it was written (0: added at run time).
    pub line: usize,
}

impl MirrorCfg {
    /// In words, with the names of `ports` (the topology's):
    /// `mon: h1.lan, h2.lan (both) to mon.lan`.
    pub fn describe(&self, ports: &[PortCfg]) -> String {
        let name = |i: usize| ports.get(i).map_or("?", |p| p.name.as_str());
        let sources: Vec<&str> = self.sources.iter().map(|&s| name(s)).collect();
        format!(
            "{}: {} ({}) to {}",
            self.name,
            sources.join(", "),
            self.direction.name(),
            name(self.destination)
        )
    }
}

/// A mirror as asked for, by names: the file's keys or the flags of
/// `shunt mirror add`.
#[derive(Debug, Clone, Copy)]
pub struct MirrorAsk<'a> {
    pub name: &'a str,
    pub source: &'a [String],
    pub direction: Option<&'a str>,
    pub destination: &'a str,
}

/// What a mirror is checked against.
#[derive(Clone, Copy)]
pub struct MirrorView<'a> {
    pub hosts: &'a [Host],
    pub ports: &'a [PortCfg],
    pub networks: &'a [Network],
    /// The `[vtep]` underlay port.
    pub underlay: Option<usize>,
    /// The mirrors already there.
    pub mirrors: &'a [MirrorCfg],
}

/// The key of a mirror an error is about (the file's error names its line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorKey {
    Name,
    Source,
    Direction,
    Destination,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror name {0:?} is not valid: use 1 to 32 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("a mirror named {0:?} exists already: give this one another name (or `shunt mirror del {0}` first)")]
    Exists(String),
    #[error("at most {MAX_MIRRORS} mirrors run at once")]
    TooMany,
    #[error("mirror {0:?}: `source` is empty: name the ports (or hosts) whose frames to copy, like source = [\"h1.lan\"]")]
    NoSource(String),
    #[error("mirror {mirror:?}: {what} {name:?}: no port or host of that name (a port is named HOST.NETWORK, like \"h1.lan\")")]
    NoPort {
        mirror: String,
        what: &'static str,
        name: String,
    },
    #[error("mirror {mirror:?}: destination {name:?} is a host with {n} ports: name one of them ({ports})")]
    HostPorts {
        mirror: String,
        name: String,
        n: usize,
        ports: String,
    },
    #[error("mirror {0:?}: direction {1:?}: write \"in\", \"out\" or \"both\"")]
    BadDirection(String, String),
    #[error("mirror {mirror:?}: destination {port:?} is also one of its sources: its copies would be mirrored back into it (a loop); take {port:?} out of `source`, or send the copies to another port")]
    DestIsSource { mirror: String, port: String },
    #[error("mirror {mirror:?}: destination {port:?} is a source of mirror {other:?}: copies would be copied again (a loop); take {port:?} out of {other:?}'s source, or send the copies to another port")]
    DestIsOtherSource {
        mirror: String,
        port: String,
        other: String,
    },
    #[error("mirror {mirror:?}: source {port:?} is the destination of mirror {other:?}: copies would be copied again (a loop); a destination only receives copies, so mirror another port")]
    SourceIsDest {
        mirror: String,
        port: String,
        other: String,
    },
    #[error("mirror {mirror:?}: destination {port:?} is the destination of mirror {other:?} already: give each mirror its own destination port")]
    DestTaken {
        mirror: String,
        port: String,
        other: String,
    },
    #[error("mirror {mirror:?}: source {port:?} is mirrored {dir} by mirror {other:?} already (a frame would be copied twice): leave it out of one of them, or set direction so that they do not overlap")]
    Twice {
        mirror: String,
        port: String,
        dir: &'static str,
        other: String,
    },
    #[error("mirror {mirror:?}: destination {port:?} is {role}, which must go on forwarding: a mirror's destination takes no part in forwarding; add a port for the monitor (a [[host]] or a [[port]]) and name it")]
    DestBusy {
        mirror: String,
        port: String,
        role: &'static str,
    },
}

impl MirrorError {
    /// The key the error is about.
    pub fn key(&self) -> MirrorKey {
        use MirrorError::*;
        match self {
            BadName(_) | Exists(_) | TooMany => MirrorKey::Name,
            NoSource(_) | SourceIsDest { .. } | Twice { .. } => MirrorKey::Source,
            NoPort { what, .. } if *what == "source" => MirrorKey::Source,
            BadDirection(..) => MirrorKey::Direction,
            NoPort { .. }
            | HostPorts { .. }
            | DestIsSource { .. }
            | DestIsOtherSource { .. }
            | DestTaken { .. }
            | DestBusy { .. } => MirrorKey::Destination,
        }
    }
}

/// Checks one mirror against the topology and the mirrors already there.
pub fn check(v: MirrorView, ask: MirrorAsk) -> Result<MirrorCfg, MirrorError> {
    let mirror = ask.name.to_string();
    let valid = !ask.name.is_empty()
        && ask.name.len() <= 32
        && ask
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(MirrorError::BadName(mirror));
    }
    if v.mirrors.iter().any(|m| m.name == ask.name) {
        return Err(MirrorError::Exists(mirror));
    }
    if v.mirrors.len() >= MAX_MIRRORS {
        return Err(MirrorError::TooMany);
    }
    let direction = match ask.direction {
        None => MirrorDir::Both,
        Some(d) => MirrorDir::parse(d)
            .ok_or_else(|| MirrorError::BadDirection(mirror.clone(), d.into()))?,
    };
    let live = |i: &usize| !v.ports[*i].removed;
    let mut sources: Vec<usize> = Vec::new();
    for s in ask.source {
        let found: Vec<usize> = super::guard::ports_named(s, v.hosts, v.ports)
            .into_iter()
            .filter(live)
            .collect();
        if found.is_empty() {
            return Err(MirrorError::NoPort {
                mirror,
                what: "source",
                name: s.clone(),
            });
        }
        for p in found {
            if !sources.contains(&p) {
                sources.push(p);
            }
        }
    }
    if sources.is_empty() {
        return Err(MirrorError::NoSource(mirror));
    }
    let found: Vec<usize> = super::guard::ports_named(ask.destination, v.hosts, v.ports)
        .into_iter()
        .filter(live)
        .collect();
    let destination = match found[..] {
        [d] => d,
        [] => {
            return Err(MirrorError::NoPort {
                mirror,
                what: "destination",
                name: ask.destination.into(),
            })
        }
        _ => {
            let names: Vec<&str> = found.iter().map(|&i| v.ports[i].name.as_str()).collect();
            return Err(MirrorError::HostPorts {
                mirror,
                name: ask.destination.into(),
                n: found.len(),
                ports: names.join(", "),
            });
        }
    };
    let name = |i: usize| v.ports[i].name.clone();
    if sources.contains(&destination) {
        return Err(MirrorError::DestIsSource {
            mirror,
            port: name(destination),
        });
    }
    let role = if v.underlay == Some(destination) {
        Some("the [vtep] underlay")
    } else if v
        .networks
        .iter()
        .any(|n| n.macvlan.is_some_and(|m| m.parent == destination))
    {
        Some("a macvlan network's parent")
    } else {
        None
    };
    if let Some(role) = role {
        return Err(MirrorError::DestBusy {
            mirror,
            port: name(destination),
            role,
        });
    }
    for m in v.mirrors {
        let other = || m.name.clone();
        if m.destination == destination {
            return Err(MirrorError::DestTaken {
                mirror,
                port: name(destination),
                other: other(),
            });
        }
        if m.sources.contains(&destination) {
            return Err(MirrorError::DestIsOtherSource {
                mirror,
                port: name(destination),
                other: other(),
            });
        }
        for &s in &sources {
            if m.destination == s {
                return Err(MirrorError::SourceIsDest {
                    mirror,
                    port: name(s),
                    other: other(),
                });
            }
            if m.sources.contains(&s) {
                let dir = match (
                    m.direction.rx() && direction.rx(),
                    m.direction.tx() && direction.tx(),
                ) {
                    (true, _) => Some("in"),
                    (_, true) => Some("out"),
                    _ => None,
                };
                if let Some(dir) = dir {
                    return Err(MirrorError::Twice {
                        mirror,
                        port: name(s),
                        dir,
                        other: other(),
                    });
                }
            }
        }
    }
    Ok(MirrorCfg {
        name: mirror,
        sources,
        direction,
        destination,
        line: 0,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMirror {
    name: Spanned<String>,
    source: Spanned<Vec<String>>,
    direction: Option<Spanned<String>>,
    destination: Spanned<String>,
}

/// The `[[mirror]]` tables, each checked against those before it.
pub(super) fn sections(
    ctx: &Ctx,
    raw: &[Spanned<RawMirror>],
    view: MirrorView,
) -> Result<Vec<MirrorCfg>, ConfigError> {
    let mut out: Vec<MirrorCfg> = Vec::new();
    for rs in raw {
        let r = rs.get_ref();
        let ask = MirrorAsk {
            name: r.name.get_ref(),
            source: r.source.get_ref(),
            direction: r.direction.as_ref().map(|d| d.get_ref().as_str()),
            destination: r.destination.get_ref(),
        };
        let v = MirrorView {
            mirrors: &out,
            ..view
        };
        match check(v, ask) {
            Ok(mut m) => {
                m.line = ctx.line(rs.span().start);
                out.push(m);
            }
            Err(e) => {
                let span = match e.key() {
                    MirrorKey::Name => r.name.span(),
                    MirrorKey::Source => r.source.span(),
                    MirrorKey::Direction => r.direction.as_ref().map_or(rs.span(), |d| d.span()),
                    MirrorKey::Destination => r.destination.span(),
                };
                let key = match e.key() {
                    MirrorKey::Name => "name",
                    MirrorKey::Source => "source",
                    MirrorKey::Direction => "direction",
                    MirrorKey::Destination => "destination",
                };
                return ctx.err(span, format!("[[mirror]] {key}: {e}"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ConfigError};
    use super::MirrorDir;

    const BASE: &str = "[[network]]\nname = 'lan'\nsubnet = '10.0.0.0/24'\n\
        [[host]]\nname = 'h1'\nnetworks = ['lan']\n\
        [[host]]\nname = 'h2'\nnetworks = ['lan']\n\
        [[host]]\nname = 'mon'\nnetworks = ['lan']\n";
    /// Lines in BASE.
    const BASE_LINES: usize = 12;

    fn err(extra: &str) -> ConfigError {
        parse("t.toml", &format!("{BASE}{extra}")).expect_err("should be refused")
    }

    #[test]
    fn a_mirror_parses() {
        let t = parse(
            "t",
            &format!("{BASE}[[mirror]]\nname = 'mon'\nsource = ['h1.lan', 'h2']\ndirection = 'in'\ndestination = 'mon'\n"),
        )
        .expect("parses");
        let m = &t.mirror[0];
        assert_eq!(m.name, "mon");
        assert_eq!(m.sources, vec![0, 1]);
        assert_eq!(m.direction, MirrorDir::In);
        assert_eq!(t.ports[m.destination].name, "mon.lan");
        assert_eq!(m.line, BASE_LINES + 1);
        // direction defaults to both.
        let t = parse(
            "t",
            &format!("{BASE}[[mirror]]\nname = 'm'\nsource = ['h1']\ndestination = 'mon.lan'\n"),
        )
        .expect("parses");
        assert_eq!(t.mirror[0].direction, MirrorDir::Both);
    }

    #[test]
    fn a_destination_that_is_a_source_is_a_loop() {
        let e = err("[[mirror]]\nname = 'm'\nsource = ['h1', 'mon']\ndestination = 'mon.lan'\n");
        assert_eq!(e.line, BASE_LINES + 4, "{e}");
        assert!(e.message.contains("[[mirror]] destination"), "{e}");
        assert!(e.message.contains("loop"), "{e}");
        assert!(
            e.message.contains("take \"mon.lan\" out of `source`"),
            "{e}"
        );
    }

    #[test]
    fn loops_across_mirrors_are_refused() {
        let a = "[[mirror]]\nname = 'a'\nsource = ['h1']\ndestination = 'mon'\n";
        // b copies what a's destination gets: refused at b's source.
        let e = err(&format!(
            "{a}[[mirror]]\nname = 'b'\nsource = ['mon']\ndestination = 'h2'\n"
        ));
        assert_eq!(e.line, BASE_LINES + 7, "{e}");
        assert!(e.message.contains("destination of mirror \"a\""), "{e}");
        // b sends to a's source.
        let e = err(&format!(
            "{a}[[mirror]]\nname = 'b'\nsource = ['h2']\ndestination = 'h1'\n"
        ));
        assert_eq!(e.line, BASE_LINES + 8, "{e}");
        assert!(e.message.contains("source of mirror \"a\""), "{e}");
        // Two mirrors to one destination.
        let e = err(&format!(
            "{a}[[mirror]]\nname = 'b'\nsource = ['h2']\ndestination = 'mon'\n"
        ));
        assert!(e.message.contains("its own destination"), "{e}");
        // The same source twice in one direction; in and out apart is fine.
        let e = err(&format!(
            "{a}[[mirror]]\nname = 'b'\nsource = ['h1']\ndirection = 'out'\ndestination = 'h2'\n"
        ));
        assert!(e.message.contains("mirrored out by mirror \"a\""), "{e}");
        let ok = parse(
            "t",
            &format!("{BASE}[[mirror]]\nname = 'a'\nsource = ['h1']\ndirection = 'in'\ndestination = 'mon'\n[[mirror]]\nname = 'b'\nsource = ['h1']\ndirection = 'out'\ndestination = 'h2'\n"),
        );
        assert!(ok.is_ok(), "{ok:?}");
        // The same name twice.
        let e = err(&format!(
            "{a}[[mirror]]\nname = 'a'\nsource = ['h2']\ndestination = 'h1'\n"
        ));
        assert_eq!(e.line, BASE_LINES + 6, "{e}");
        assert!(e.message.contains("exists already"), "{e}");
    }

    #[test]
    fn bad_keys_name_their_line() {
        let e = err("[[mirror]]\nname = 'm'\nsource = ['h9']\ndestination = 'mon'\n");
        assert_eq!(e.line, BASE_LINES + 3, "{e}");
        assert!(e.message.contains("\"h9\": no port or host"), "{e}");
        let e =
            err("[[mirror]]\nname = 'm'\nsource = ['h1']\ndirection = 'rx'\ndestination = 'mon'\n");
        assert_eq!(e.line, BASE_LINES + 4, "{e}");
        assert!(e.message.contains("\"in\", \"out\" or \"both\""), "{e}");
        let e = err("[[mirror]]\nname = 'm'\nsource = []\ndestination = 'mon'\n");
        assert!(e.message.contains("`source` is empty"), "{e}");
        let e = err("[[mirror]]\nname = 'a.b'\nsource = ['h1']\ndestination = 'mon'\n");
        assert_eq!(e.line, BASE_LINES + 2, "{e}");
        let e = err("[[mirror]]\nname = 'm'\nsource = ['h1']\ndestination = 'tap9'\n");
        assert_eq!(e.line, BASE_LINES + 4, "{e}");
        let e = err("[[mirror]]\nname = 'm'\nsource = ['h1']\n");
        assert!(e.message.contains("destination"), "{e}");
    }

    #[test]
    fn a_host_with_two_ports_is_no_destination() {
        let src = "[[network]]\nname = 'a'\n[[network]]\nname = 'b'\n\
            [[host]]\nname = 'h1'\nnetworks = ['a']\n[[host]]\nname = 'mon'\nnetworks = ['a', 'b']\n\
            [[mirror]]\nname = 'm'\nsource = ['h1']\ndestination = 'mon'\n";
        let e = parse("t", src).expect_err("refused");
        assert!(e.message.contains("mon.a, mon.b"), "{e}");
    }
}
