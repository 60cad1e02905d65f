//! `[[host]]`: network namespaces, each plugged into its networks by one
//! access port `HOST.NETWORK`; their addresses (IPAM) and MACs.

use super::addresses::{derived_mac, Ipam};
use super::{
    check_name, int_in, ConfigError, Ctx, Host, HostLink, Ipv4Net, Network, PortCfg, PortKind,
    PortMode, XdpMode, DEFAULT_MTU, MAX_AFXDP_MTU, MAX_MTU,
};
use serde::Deserialize;
use shunt_parsers::MacAddr;
use std::collections::{HashMap, HashSet};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    name: Spanned<String>,
    networks: Spanned<Vec<String>>,
    ip: Option<Spanned<Vec<String>>>,
    mac: Option<Spanned<Vec<String>>>,
    aliases: Option<Spanned<Vec<String>>>,
    link: Option<Spanned<String>>,
    ipv6: Option<bool>,
    pub(super) mtu: Option<Spanned<i64>>,
    xdp_mode: Option<Spanned<String>>,
    veth_attach: Option<Spanned<String>>,
    stp_cost: Option<Spanned<i64>>,
    stp_priority: Option<Spanned<i64>>,
    stp_edge: Option<bool>,
    max_learned: Option<Spanned<i64>>,
}

/// `xdp_mode` of a host or a port.
pub(super) fn xdp_mode(
    ctx: &Ctx,
    v: Option<&Spanned<String>>,
    table: std::ops::Range<usize>,
) -> Result<XdpMode, ConfigError> {
    match v.map(|k| k.get_ref().as_str()) {
        None | Some("auto") => Ok(XdpMode::Auto),
        Some("native") => Ok(XdpMode::Native),
        Some("generic") => Ok(XdpMode::Generic),
        Some(other) => ctx.err(
            v.map(|k| k.span()).unwrap_or(table),
            format!("xdp_mode {other:?} is not one of \"native\", \"generic\", \"auto\""),
        ),
    }
}

/// The hosts, and their ports (one access port per host and network, in
/// file order).
pub(super) fn sections(
    ctx: &Ctx,
    raw: &[Spanned<RawHost>],
    networks: &[Network],
) -> Result<(Vec<Host>, Vec<PortCfg>), ConfigError> {
    let mut ipam = Ipam::new(networks);
    let mut macs_seen: HashMap<MacAddr, String> = HashMap::new();
    let mut hosts: Vec<Host> = Vec::new();
    let mut ports: Vec<PortCfg> = Vec::new();

    // First pass: explicit addresses, so that IPAM never hands out an
    // address a later host asks for.
    for h in raw {
        let h = h.get_ref();
        if let Some(ips) = &h.ip {
            for (i, s) in ips.get_ref().iter().enumerate() {
                if s.is_empty() {
                    continue;
                }
                let Some(net) = Ipv4Net::parse(s) else {
                    return ctx.err(
                        ips.span(),
                        format!(
                            "ip {s:?} is not an IPv4 address with a prefix (like \"10.0.0.11/24\")"
                        ),
                    );
                };
                if let Some(Some(ni)) = h
                    .networks
                    .get_ref()
                    .get(i)
                    .map(|n| networks.iter().position(|x| &x.name == n))
                {
                    if !ipam.take(ni, net.addr) {
                        return ctx.err(
                            ips.span(),
                            format!(
                                "ip {} is used twice on network {:?}",
                                net.addr, networks[ni].name
                            ),
                        );
                    }
                }
            }
        }
    }
    for hs in raw {
        let line = ctx.line(hs.span().start);
        let h = hs.get_ref();
        check_name(ctx, "host", &h.name)?;
        let name = h.name.get_ref().clone();
        if hosts.iter().any(|x| x.name == name) {
            return ctx.err(h.name.span(), format!("host {name:?} is defined twice"));
        }
        let nets = h.networks.get_ref();
        if nets.is_empty() {
            return ctx.err(h.networks.span(), format!("host {name:?} has no networks"));
        }
        if nets.len() > 16 {
            return ctx.err(h.networks.span(), "a host has at most 16 networks");
        }
        let ips =
            h.ip.as_ref()
                .map(|v| v.get_ref().clone())
                .unwrap_or_default();
        if ips.len() > nets.len() {
            return ctx.err(
                h.ip.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                format!(
                    "host {name:?} has {} ip entries for {} networks",
                    ips.len(),
                    nets.len()
                ),
            );
        }
        let macs = h
            .mac
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default();
        if macs.len() > nets.len() {
            return ctx.err(
                h.mac.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                format!(
                    "host {name:?} has {} mac entries for {} networks",
                    macs.len(),
                    nets.len()
                ),
            );
        }
        let host_xdp_mode = xdp_mode(ctx, h.xdp_mode.as_ref(), hs.span())?;
        let mut veth = false;
        if let Some(l) = &h.link {
            match l.get_ref().as_str() {
                "tap" => {}
                "veth" => veth = true,
                other => {
                    return ctx.err(
                        l.span(),
                        format!("link {other:?} is not one of \"tap\", \"veth\""),
                    )
                }
            }
        }
        // How the switch attaches to a veth's outer end: a packet socket
        // (the host keeps TSO and checksum offload) or AF_XDP (the host's
        // transmit checksum offload is turned off). docs/decisions.md.
        let veth_kind = match h.veth_attach.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("packet") => PortKind::Packet,
            Some("afxdp") => PortKind::Afxdp,
            Some(other) => {
                return ctx.err(
                    h.veth_attach
                        .as_ref()
                        .map(|k| k.span())
                        .unwrap_or(hs.span()),
                    format!("veth_attach {other:?} is not one of \"packet\", \"afxdp\""),
                )
            }
        };
        if !veth {
            if let Some(v) = &h.veth_attach {
                return ctx.err(v.span(), "veth_attach is for hosts with link = \"veth\"");
            }
        }
        // Jumbo frames where the port's buffers take them: a TAP's or a
        // packet socket's slots hold 64 KiB, an AF_XDP port's UMEM frames 4 KiB.
        let max_mtu = if veth && veth_kind == PortKind::Afxdp {
            MAX_AFXDP_MTU
        } else {
            MAX_MTU
        };
        let mtu = match &h.mtu {
            Some(m) => int_in(ctx, "mtu", m, 68, max_mtu)? as u16,
            None => DEFAULT_MTU,
        };
        let mut links = Vec::new();
        let mut seen_nets = HashSet::new();
        for (i, nname) in nets.iter().enumerate() {
            let ni = match networks.iter().position(|n| &n.name == nname) {
                Some(ni) => ni,
                None => {
                    return ctx.err(
                        h.networks.span(),
                        format!("host {name:?} names network {nname:?}, which is not defined"),
                    )
                }
            };
            if !seen_nets.insert(ni) {
                return ctx.err(
                    h.networks.span(),
                    format!("host {name:?} names network {nname:?} twice"),
                );
            }
            let ip = match ips.get(i).filter(|s| !s.is_empty()) {
                Some(s) => {
                    let Some(net) = Ipv4Net::parse(s) else {
                        return ctx.err(hs.span(), format!("bad ip {s:?}"));
                    };
                    if let Some(sn) = networks[ni].subnet {
                        if !sn.contains(net.addr) {
                            return ctx.err(h.ip.as_ref().map(|v| v.span()).unwrap_or(hs.span()), format!("ip {} of host {name:?} is outside subnet {sn} of network {nname:?}", net.addr));
                        }
                    }
                    Some(net)
                }
                // IPAM: the next free address, as Docker does.
                None => match ipam.assign(ni, networks[ni].subnet) {
                    Ok(ip) => ip,
                    Err(_) => {
                        return ctx.err(
                            hs.span(),
                            format!("network {nname:?} has no free address left for host {name:?}"),
                        )
                    }
                },
            };
            let mac = match macs.get(i).filter(|s| !s.is_empty()) {
                Some(s) => match s.parse::<MacAddr>() {
                    Ok(m) if m.is_unicast() && m != MacAddr::ZERO => m,
                    Ok(_) => {
                        return ctx.err(
                            h.mac.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                            format!("mac {s:?} is not a unicast address"),
                        )
                    }
                    Err(_) => {
                        return ctx.err(
                            h.mac.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                            format!("mac {s:?} is not like \"02:00:00:00:00:01\""),
                        )
                    }
                },
                None => derived_mac(&name, nname, ip),
            };
            if let Some(other) = macs_seen.insert(mac, format!("{name}.{nname}")) {
                return ctx.err(
                    hs.span(),
                    format!("mac {mac} of host {name:?} is already used by {other}"),
                );
            }
            links.push(HostLink {
                network: ni,
                ifname: format!("eth{i}"),
                ip,
                mac,
            });
            ports.push(PortCfg {
                kind: if veth { veth_kind } else { PortKind::Tap },
                xdp_mode: host_xdp_mode,
                stp: super::stp::port(
                    ctx,
                    super::StpPortCfg::HOST,
                    h.stp_cost.as_ref(),
                    h.stp_priority.as_ref(),
                    h.stp_edge,
                )?,
                max_learned: super::guard::max_learned(ctx, h.max_learned.as_ref())?,
                ..PortCfg::host_port(&name, nname, ni, &format!("eth{i}"), mtu, line)
            });
        }
        let aliases = h
            .aliases
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default();
        hosts.push(Host {
            name,
            links,
            aliases,
            ipv6: h.ipv6.unwrap_or(false),
            mtu,
            line,
        });
    }
    Ok((hosts, ports))
}

impl PortCfg {
    /// The TAP access port `HOST.NETWORK` that plugs host `host` into
    /// network `ni` (named `network`) as its interface `ifname`.
    pub fn host_port(
        host: &str,
        network: &str,
        ni: usize,
        ifname: &str,
        mtu: u16,
        line: usize,
    ) -> PortCfg {
        PortCfg {
            name: format!("{host}.{network}"),
            kind: PortKind::Tap,
            interface: ifname.to_string(),
            xdp_mode: XdpMode::Auto,
            mode: PortMode::Access { network: ni },
            learning: true,
            flood_unknown: true,
            flood_multicast: true,
            mtu,
            host: Some(host.to_string()),
            max_learned: 0,
            outer: None,
            removed: false,
            netns: Some(host.to_string()),
            stp: super::StpPortCfg::HOST,
            line,
        }
    }
}
