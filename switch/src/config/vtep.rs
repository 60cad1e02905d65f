//! `[vtep]`, a network's `vni` and `vtep_peers`, and `[[fdb]] vtep = ...`:
//! the VXLAN keys of the topology file (docs/vxlan.md).

use super::fdb::VtepEntry;
use super::{int_in, ConfigError, Ctx, Host, Ipv4Net, Network, PortCfg, RawFile, Vtep, MAX_VTEPS};
use serde::Deserialize;
use std::net::Ipv4Addr;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVtep {
    pub(super) port: Spanned<String>,
    address: Spanned<String>,
    gateway: Option<Spanned<String>>,
    udp_port: Option<Spanned<i64>>,
    ttl: Option<Spanned<i64>>,
}

/// Bytes VXLAN adds in front of an inner frame on an IPv4 underlay.
pub const VXLAN_OVERHEAD: u16 = 50;

/// The MTU of a host on a VXLAN network that sets none, over an underlay
/// of `underlay_mtu`: room for the encapsulation (as Docker gives its
/// overlay 1450). Used by the file's hosts and by `attach` alike.
pub fn inner_mtu(underlay_mtu: u16) -> u16 {
    underlay_mtu.saturating_sub(VXLAN_OVERHEAD).max(68)
}

fn ip(ctx: &Ctx, what: &str, s: &Spanned<String>) -> Result<Ipv4Addr, ConfigError> {
    match s.get_ref().parse() {
        Ok(ip) => Ok(ip),
        Err(_) => ctx.err(
            s.span(),
            format!("{what} {:?} is not an IPv4 address", s.get_ref()),
        ),
    }
}

/// A remote VTEP's index in `remotes`, adding it the first time.
fn remote(
    ctx: &Ctx,
    span: std::ops::Range<usize>,
    remotes: &mut Vec<Ipv4Addr>,
    ip: Ipv4Addr,
) -> Result<usize, ConfigError> {
    if let Some(k) = remotes.iter().position(|r| *r == ip) {
        return Ok(k);
    }
    if remotes.len() == MAX_VTEPS {
        return ctx.err(span, format!("more than {MAX_VTEPS} remote VTEPs"));
    }
    remotes.push(ip);
    Ok(remotes.len() - 1)
}

pub(super) fn vtep_section(
    ctx: &Ctx,
    raw: &RawFile,
    networks: &mut [Network],
    hosts: &mut [Host],
    ports: &mut [PortCfg],
    vtep_fdb: Vec<VtepEntry>,
    underlay: &[bool],
) -> Result<Option<Vtep>, ConfigError> {
    // Written as `mode = "underlay"`, or the port [vtep] names (port.rs).
    let underlay_mode = |i: usize| underlay.get(i).copied().unwrap_or(false);
    // Bare ports follow the host ports in `ports`.
    let first_bare = ports.len() - raw.port.len();
    let Some(rv) = &raw.vtep else {
        for (i, rn) in raw.network.iter().enumerate() {
            let rn = rn.get_ref();
            if let Some(v) = &rn.vni {
                return ctx.err(
                    v.span(),
                    format!(
                        "network {:?} has a vni but the topology has no [vtep]",
                        networks[i].name
                    ),
                );
            }
            if let Some(v) = &rn.vtep_peers {
                return ctx.err(
                    v.span(),
                    "vtep_peers needs a vni on the network and a [vtep]",
                );
            }
        }
        if let Some((_, _, v, _)) = vtep_fdb.first() {
            return ctx.err(
                v.span(),
                "static entry behind a VTEP, but the topology has no [vtep]",
            );
        }
        for (i, p) in raw.port.iter().enumerate() {
            if underlay_mode(i) {
                return ctx.err(
                    p.span(),
                    format!(
                        "port {:?} is an underlay, but the topology has no [vtep] naming it",
                        p.get_ref().name.get_ref()
                    ),
                );
            }
        }
        return Ok(None);
    };
    let line = ctx.line(rv.span().start);
    let v = rv.get_ref();
    let Some(port) = (first_bare..ports.len()).find(|&i| &ports[i].name == v.port.get_ref()) else {
        return ctx.err(
            v.port.span(),
            format!(
                "[vtep] port {:?} is not a [[port]] of this topology",
                v.port.get_ref()
            ),
        );
    };
    if !underlay_mode(port - first_bare) {
        return ctx.err(
            v.port.span(),
            format!(
                "[vtep] port {:?} must have mode = \"underlay\" (it carries no network)",
                v.port.get_ref()
            ),
        );
    }
    for (i, p) in raw.port.iter().enumerate() {
        if underlay_mode(i) && first_bare + i != port {
            return ctx.err(
                p.span(),
                format!(
                    "port {:?} is an underlay, but [vtep] names {:?}: one underlay per switch",
                    p.get_ref().name.get_ref(),
                    v.port.get_ref()
                ),
            );
        }
    }
    let address = match Ipv4Net::parse(v.address.get_ref()) {
        Some(a) if a.prefix <= 32 && !a.addr.is_unspecified() => a,
        _ => {
            return ctx.err(
                v.address.span(),
                format!(
                "[vtep] address {:?} is not an IPv4 address with a prefix (like \"192.0.2.1/24\")",
                v.address.get_ref()
            ),
            )
        }
    };
    let gateway = match &v.gateway {
        Some(g) => {
            let gw = ip(ctx, "gateway", g)?;
            if !address.contains(gw) {
                return ctx.err(
                    g.span(),
                    format!("gateway {gw} is outside the VTEP's prefix {address}"),
                );
            }
            Some(gw)
        }
        None => None,
    };
    let udp_port = match &v.udp_port {
        Some(p) => int_in(ctx, "udp_port", p, 1, 65535)? as u16,
        None => 4789,
    };
    let ttl = match &v.ttl {
        Some(t) => int_in(ctx, "ttl", t, 1, 255)? as u8,
        None => 64,
    };
    let mut remotes = Vec::new();
    let reachable =
        |ctx: &Ctx, span: std::ops::Range<usize>, peer: Ipv4Addr| -> Result<(), ConfigError> {
            if peer == address.addr {
                return ctx.err(span, format!("{peer} is this switch's own VTEP address"));
            }
            if !address.contains(peer) && gateway.is_none() {
                return ctx.err(
                    span,
                    format!("VTEP {peer} is outside {address} and [vtep] has no gateway"),
                );
            }
            Ok(())
        };
    let mut vnis_seen: Vec<(u32, usize)> = Vec::new();
    for (i, rn) in raw.network.iter().enumerate() {
        let rn = rn.get_ref();
        let Some(vs) = &rn.vni else {
            if let Some(p) = &rn.vtep_peers {
                return ctx.err(p.span(), "vtep_peers needs a vni on the network");
            }
            continue;
        };
        let vni = int_in(ctx, "vni", vs, 1, 0x00ff_ffff)? as u32;
        if let Some((_, other)) = vnis_seen.iter().find(|(x, _)| *x == vni) {
            return ctx.err(
                vs.span(),
                format!(
                    "vni {vni} is already used by network {:?}",
                    networks[*other].name
                ),
            );
        }
        if networks[i].macvlan.is_some() {
            return ctx.err(vs.span(), "a macvlan network cannot have a vni");
        }
        vnis_seen.push((vni, i));
        networks[i].vni = Some(vni);
        if let Some(ps) = &rn.vtep_peers {
            for s in ps.get_ref() {
                let Ok(peer) = s.parse::<Ipv4Addr>() else {
                    return ctx.err(
                        ps.span(),
                        format!("vtep_peers entry {s:?} is not an IPv4 address"),
                    );
                };
                reachable(ctx, ps.span(), peer)?;
                if networks[i].vtep_peers.contains(&peer) {
                    return ctx.err(ps.span(), format!("vtep_peers names {peer} twice"));
                }
                remote(ctx, ps.span(), &mut remotes, peer)?;
                networks[i].vtep_peers.push(peer);
            }
        }
    }
    let mut fdb = Vec::new();
    for (network, mac, vs, mac_span) in vtep_fdb {
        let peer = ip(ctx, "vtep", &vs)?;
        reachable(ctx, vs.span(), peer)?;
        if networks[network].vni.is_none() {
            return ctx.err(
                vs.span(),
                format!(
                    "network {:?} has no vni: no entry can be behind a VTEP",
                    networks[network].name
                ),
            );
        }
        if fdb.iter().any(|(n, m, _)| *n == network && *m == mac) {
            return ctx.err(mac_span, "static entry is defined twice");
        }
        let k = remote(ctx, vs.span(), &mut remotes, peer)?;
        fdb.push((network, mac, k));
    }
    let inner_mtu = inner_mtu(ports[port].mtu);
    for (hi, h) in hosts.iter_mut().enumerate() {
        let explicit = raw.host.get(hi).is_some_and(|r| r.get_ref().mtu.is_some());
        if explicit || !h.links.iter().any(|l| networks[l.network].vni.is_some()) {
            continue;
        }
        h.mtu = inner_mtu;
        for p in ports
            .iter_mut()
            .filter(|p| p.host.as_deref() == Some(h.name.as_str()))
        {
            p.mtu = inner_mtu;
        }
    }
    Ok(Some(Vtep {
        port,
        address,
        gateway,
        udp_port,
        ttl,
        remotes,
        fdb,
        line,
    }))
}
