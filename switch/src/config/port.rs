//! `[[port]]`: bare TAPs and AF_XDP sockets on existing interfaces, and how
//! each meets its networks (access, trunk, the VXLAN underlay).
//!
//! A port's role is inferred where the file already says it: the port that
//! `[vtep] port` names is the underlay, and the `parent` of a macvlan
//! network carries that network, without `mode = "underlay"` or `network`
//! repeated on the port (docs/topology.md, "Port roles").

use super::host::xdp_mode;
use super::network::index as net_idx;
use super::{
    check_name, int_in, ConfigError, Ctx, Host, Network, PortCfg, PortKind, PortMode, DEFAULT_MTU,
    MAX_AFXDP_MTU, MAX_MTU,
};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub(super) name: Spanned<String>,
    kind: Option<Spanned<String>>,
    interface: Option<Spanned<String>>,
    xdp_mode: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    network: Option<Spanned<String>>,
    networks: Option<Spanned<Vec<String>>>,
    native: Option<Spanned<String>>,
    learning: Option<bool>,
    flood_unknown: Option<bool>,
    flood_multicast: Option<bool>,
    mtu: Option<Spanned<i64>>,
    namespace: Option<Spanned<String>>,
    stp_cost: Option<Spanned<i64>>,
    stp_priority: Option<Spanned<i64>>,
    stp_edge: Option<bool>,
    max_learned: Option<Spanned<i64>>,
}

/// What other tables say about the `[[port]]`s.
pub(super) struct Roles<'a> {
    /// The port `[vtep] port` names.
    pub underlay: Option<&'a str>,
    /// (port name, network index) for each macvlan network's `parent`.
    pub parents: Vec<(&'a str, usize)>,
}

/// Appends the `[[port]]`s to `ports` (which holds the hosts' ports).
/// Returns, per `[[port]]`, whether it is the VXLAN underlay.
pub(super) fn sections(
    ctx: &Ctx,
    raw: &[Spanned<RawPort>],
    networks: &[Network],
    hosts: &[Host],
    roles: &Roles,
    ports: &mut Vec<PortCfg>,
) -> Result<Vec<bool>, ConfigError> {
    let mut underlay = Vec::new();
    for ps in raw {
        let line = ctx.line(ps.span().start);
        let p = ps.get_ref();
        check_name(ctx, "port", &p.name)?;
        let name = p.name.get_ref().clone();
        if name.len() > 15 {
            return ctx.err(
                p.name.span(),
                format!("port name {name:?} is longer than 15 characters (a device name)"),
            );
        }
        if ports.iter().any(|x| x.name == name) {
            return ctx.err(p.name.span(), format!("port {name:?} is defined twice"));
        }
        let kind = match p.kind.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("tap") => PortKind::Tap,
            Some("afxdp") => {
                if p.interface.is_none() {
                    return ctx.err(ps.span(), format!("afxdp port {name:?} needs `interface`: the existing interface it attaches to"));
                }
                PortKind::Afxdp
            }
            Some("packet") => {
                if p.interface.is_none() {
                    return ctx.err(ps.span(), format!("packet port {name:?} needs `interface`: the existing interface its socket binds to"));
                }
                PortKind::Packet
            }
            Some(other) => {
                return ctx.err(
                    p.kind.as_ref().map(|k| k.span()).unwrap_or(ps.span()),
                    format!("kind {other:?} is not one of \"tap\", \"afxdp\", \"packet\""),
                )
            }
        };
        let xdp_mode = xdp_mode(ctx, p.xdp_mode.as_ref(), ps.span())?;
        let (mode, is_underlay) = mode(ctx, ps, networks, roles)?;
        underlay.push(is_underlay);
        let interface = p
            .interface
            .as_ref()
            .map(|i| i.get_ref().clone())
            .unwrap_or_else(|| name.clone());
        if interface.is_empty() || interface.len() > 15 || interface.contains('/') {
            return ctx.err(
                p.interface.as_ref().map(|i| i.span()).unwrap_or(ps.span()),
                format!("interface {interface:?} is not a valid device name"),
            );
        }
        if interface == "lo"
            || interface.starts_with("eth") && kind == PortKind::Tap && p.interface.is_some()
        {
            return ctx.err(p.interface.as_ref().map(|i| i.span()).unwrap_or(ps.span()), format!("interface {interface:?}: a bare TAP port must not take the name of an existing interface of the machine"));
        }
        let mtu = match &p.mtu {
            Some(m) => {
                let max = if kind == PortKind::Afxdp {
                    MAX_AFXDP_MTU
                } else {
                    MAX_MTU
                };
                int_in(ctx, "mtu", m, 68, max)? as u16
            }
            None => DEFAULT_MTU,
        };
        let netns = match &p.namespace {
            Some(ns) => {
                check_name(ctx, "namespace", ns)?;
                if kind != PortKind::Tap {
                    return ctx.err(ns.span(), "`namespace` is for TAP ports: an AF_XDP or packet port attaches to an interface where it is");
                }
                if hosts.iter().any(|h| &h.name == ns.get_ref()) {
                    return ctx.err(
                        ns.span(),
                        format!(
                            "namespace {:?} is a host's: give the host another network instead",
                            ns.get_ref()
                        ),
                    );
                }
                Some(ns.get_ref().clone())
            }
            None => None,
        };
        ports.push(PortCfg {
            name,
            kind,
            interface,
            xdp_mode,
            mode,
            learning: p.learning.unwrap_or(true),
            flood_unknown: p.flood_unknown.unwrap_or(true),
            flood_multicast: p.flood_multicast.unwrap_or(true),
            mtu,
            host: None,
            max_learned: super::guard::max_learned(ctx, p.max_learned.as_ref())?,
            outer: None,
            removed: false,
            netns,
            stp: super::stp::port(
                ctx,
                super::StpPortCfg::PORT,
                p.stp_cost.as_ref(),
                p.stp_priority.as_ref(),
                p.stp_edge,
            )?,
            line,
        });
    }
    Ok(underlay)
}

/// How the port meets its networks, and whether it is the underlay: as
/// written, or inferred from `[vtep]` and macvlan `parent`s when the port
/// names no network itself.
fn mode(
    ctx: &Ctx,
    ps: &Spanned<RawPort>,
    networks: &[Network],
    roles: &Roles,
) -> Result<(PortMode, bool), ConfigError> {
    let p = ps.get_ref();
    let name = p.name.get_ref();
    let names_none = p.network.is_none() && p.networks.is_none() && p.native.is_none();
    // The macvlan networks this port is the parent of, said there only.
    let parent_of: Vec<usize> = roles
        .parents
        .iter()
        .filter(|(p, _)| *p == name.as_str())
        .map(|&(_, ni)| ni)
        .collect();
    let inferred = names_none && !parent_of.is_empty();
    let mode_s = match p.mode.as_ref().map(|m| m.get_ref().as_str()) {
        Some(m) => m,
        None if p.networks.is_some() => "trunk",
        None if names_none && roles.underlay == Some(name.as_str()) => "underlay",
        None if inferred && parent_of.len() > 1 => "trunk",
        None => "access",
    };
    let mode = match mode_s {
        "access" => {
            let network = match &p.network {
                Some(n) => net_idx(ctx, networks, n, &format!("port {name:?}"))?,
                None if inferred && parent_of.len() == 1 => parent_of[0],
                None if inferred => {
                    return ctx.err(ps.span(), format!("access port {name:?} is the parent of {} macvlan networks: it carries one; make it a trunk (`mode = \"trunk\"`) to carry them all tagged", parent_of.len()));
                }
                None => {
                    return ctx.err(ps.span(), format!("access port {name:?} needs `network`: the network it carries (a trunk takes `networks`; the port that [vtep] names is the underlay)"));
                }
            };
            if p.networks.is_some() || p.native.is_some() {
                return ctx.err(
                    ps.span(),
                    format!("access port {name:?} takes `network`, not `networks` or `native`"),
                );
            }
            PortMode::Access { network }
        }
        "trunk" => {
            let mut allowed = Vec::new();
            if let Some(ns) = &p.networks {
                for n in ns.get_ref() {
                    let Some(i) = networks.iter().position(|x| &x.name == n) else {
                        return ctx.err(
                            ns.span(),
                            format!("port {name:?} names network {n:?}, which is not defined"),
                        );
                    };
                    if networks[i].vlan.is_none() {
                        return ctx.err(ns.span(), format!("network {n:?} has no vlan, so trunk port {name:?} cannot carry it tagged (make it `native`, or give the network a vlan)"));
                    }
                    if !allowed.contains(&i) {
                        allowed.push(i);
                    }
                }
            }
            if inferred {
                // The parent of several macvlan networks carries them
                // tagged, like eth0.10 and eth0.20 under macvlans.
                for &ni in &parent_of {
                    if networks[ni].vlan.is_none() {
                        return ctx.err(ps.span(), format!("network {:?} has no vlan, so port {name:?}, the parent of several macvlan networks, cannot carry it tagged (give the network a vlan, or give the port `networks` and `native`)", networks[ni].name));
                    }
                    allowed.push(ni);
                }
            }
            let native = match &p.native {
                Some(n) => Some(net_idx(ctx, networks, n, &format!("port {name:?}"))?),
                None => None,
            };
            if allowed.is_empty() && native.is_none() {
                return ctx.err(
                    ps.span(),
                    format!(
                        "trunk port {name:?} carries no network: give `networks` and/or `native`"
                    ),
                );
            }
            PortMode::Trunk { allowed, native }
        }
        "underlay" => {
            if !names_none {
                return ctx.err(
                    ps.span(),
                    format!("underlay port {name:?} carries no network: it takes no `network`, `networks` or `native`"),
                );
            }
            // A trunk of no network: classify would drop everything;
            // the VTEP's decapsulation takes its frames first.
            return Ok((
                PortMode::Trunk {
                    allowed: Vec::new(),
                    native: None,
                },
                true,
            ));
        }
        other => {
            return ctx.err(
                p.mode.as_ref().map(|m| m.span()).unwrap_or(ps.span()),
                format!("mode {other:?} is not one of \"access\", \"trunk\", \"underlay\""),
            )
        }
    };
    Ok((mode, false))
}
