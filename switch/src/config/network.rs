//! `[[network]]`: bridge domains, their subnet and the switch's address on
//! them, and macvlan networks' parent port (docs/macvlan.md).

use super::{
    check_name, int_in, ConfigError, Ctx, Host, Ipv4Net, Macvlan, MacvlanMode, Network, PortCfg,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) name: Spanned<String>,
    vlan: Option<Spanned<i64>>,
    subnet: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    dns_upstream: Option<Spanned<String>>,
    arp_suppress: Option<bool>,
    kind: Option<Spanned<String>>,
    pub(super) parent: Option<Spanned<String>>,
    macvlan_mode: Option<Spanned<String>>,
    pub(super) vni: Option<Spanned<i64>>,
    pub(super) vtep_peers: Option<Spanned<Vec<String>>>,
    link_local: Option<Spanned<String>>,
    multicast_snooping: Option<bool>,
    multicast_querier: Option<bool>,
    multicast_flood_unregistered: Option<bool>,
}

impl RawNetwork {
    /// `kind = "macvlan"` (checked for being a known kind in `macvlans`).
    pub(super) fn is_macvlan(&self) -> bool {
        self.kind.as_ref().is_some_and(|k| k.get_ref() == "macvlan")
    }
}

pub(super) fn sections(
    ctx: &Ctx,
    raw: &[Spanned<RawNetwork>],
) -> Result<Vec<Network>, ConfigError> {
    let mut networks: Vec<Network> = Vec::new();
    let mut vlans_seen: HashMap<u16, String> = HashMap::new();
    for n in raw {
        let line = ctx.line(n.span().start);
        let n = n.get_ref();
        check_name(ctx, "network", &n.name)?;
        let name = n.name.get_ref().clone();
        if networks.iter().any(|x| x.name == name) {
            return ctx.err(n.name.span(), format!("network {name:?} is defined twice"));
        }
        let vlan = match &n.vlan {
            Some(v) => {
                let vid = int_in(ctx, "vlan", v, 1, 4094)? as u16;
                if let Some(other) = vlans_seen.insert(vid, name.clone()) {
                    return ctx.err(
                        v.span(),
                        format!("vlan {vid} is already used by network {other:?}"),
                    );
                }
                Some(vid)
            }
            None => None,
        };
        let subnet = match &n.subnet {
            Some(s) => match Ipv4Net::parse(s.get_ref()) {
                Some(net) if net.prefix <= 30 => Some(Ipv4Net {
                    addr: Ipv4Addr::from(net.network()),
                    prefix: net.prefix,
                }),
                _ => {
                    return ctx.err(
                        s.span(),
                        format!(
                            "subnet {:?} is not an IPv4 network with a prefix of at most 30 (like \"10.0.0.0/24\")",
                            s.get_ref()
                        ),
                    )
                }
            },
            None => None,
        };
        let address = match &n.address {
            Some(a) => {
                let ip: Ipv4Addr = match a.get_ref().parse() {
                    Ok(ip) => ip,
                    Err(_) => {
                        return ctx.err(
                            a.span(),
                            format!("address {:?} is not an IPv4 address", a.get_ref()),
                        )
                    }
                };
                match subnet {
                    Some(sn) if sn.contains(ip) => {}
                    Some(sn) => {
                        return ctx.err(a.span(), format!("address {ip} is outside subnet {sn}"))
                    }
                    None => return ctx.err(a.span(), "address needs a subnet on the network"),
                }
                Some(ip)
            }
            None => None,
        };
        let dns_upstream = match &n.dns_upstream {
            Some(a) => match a.get_ref().parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    return ctx.err(
                        a.span(),
                        format!("dns_upstream {:?} is not an IPv4 address", a.get_ref()),
                    )
                }
            },
            None => None,
        };
        networks.push(Network {
            name,
            vlan,
            subnet,
            address,
            domain: n
                .domain
                .as_ref()
                .map(|d| d.get_ref().trim_end_matches('.').to_ascii_lowercase()),
            dns_upstream,
            arp_suppress: n.arp_suppress.unwrap_or(false),
            macvlan: None,
            vni: None,
            vtep_peers: Vec::new(),
            link_local: super::guard::link_local(ctx, n.link_local.as_ref())?,
            mcast: mcast(n),
            line,
        });
    }
    Ok(networks)
}

/// The multicast keys, defaults as the Linux bridge's.
fn mcast(n: &RawNetwork) -> super::McastCfg {
    let d = super::McastCfg::default();
    super::McastCfg {
        snooping: n.multicast_snooping.unwrap_or(d.snooping),
        querier: n.multicast_querier.unwrap_or(d.querier),
        flood_unregistered: n
            .multicast_flood_unregistered
            .unwrap_or(d.flood_unregistered),
    }
}

/// The network `name` names, or an error saying that `what` names a
/// network that is not defined.
pub(super) fn index(
    ctx: &Ctx,
    networks: &[Network],
    name: &Spanned<String>,
    what: &str,
) -> Result<usize, ConfigError> {
    match networks.iter().position(|n| &n.name == name.get_ref()) {
        Some(i) => Ok(i),
        None => ctx.err(
            name.span(),
            format!(
                "{what} names network {:?}, which is not defined",
                name.get_ref()
            ),
        ),
    }
}

/// macvlan networks: their parent must be a port that carries them.
/// Returns (network index, its macvlan settings).
pub(super) fn macvlans(
    ctx: &Ctx,
    raw: &[Spanned<RawNetwork>],
    hosts: &[Host],
    ports: &[PortCfg],
) -> Result<Vec<(usize, Macvlan)>, ConfigError> {
    let mut macvlans = Vec::new();
    for (ni, rn) in raw.iter().enumerate() {
        let rn = rn.get_ref();
        let kind = rn
            .kind
            .as_ref()
            .map(|k| k.get_ref().as_str())
            .unwrap_or("bridge");
        match kind {
            "bridge" => {
                if let Some(p) = rn.parent.as_ref().or(rn.macvlan_mode.as_ref()) {
                    return ctx.err(
                        p.span(),
                        "`parent` and `macvlan_mode` are for networks of kind = \"macvlan\"",
                    );
                }
                continue;
            }
            "macvlan" => {}
            other => {
                let span = rn.kind.as_ref().map(|k| k.span()).unwrap_or(rn.name.span());
                return ctx.err(
                    span,
                    format!("kind {other:?} is not one of \"bridge\", \"macvlan\""),
                );
            }
        }
        let Some(parent) = &rn.parent else {
            return ctx.err(
                rn.name.span(),
                format!(
                    "macvlan network {:?} needs a `parent` port",
                    rn.name.get_ref()
                ),
            );
        };
        let Some(pi) = ports
            .iter()
            .position(|p| &p.name == parent.get_ref() && p.host.is_none())
        else {
            return ctx.err(
                parent.span(),
                format!(
                    "parent {:?} is not a [[port]] of this topology",
                    parent.get_ref()
                ),
            );
        };
        if !ports[pi].mode.carries(ni) {
            return ctx.err(parent.span(), format!(
                "parent port {:?} does not carry network {:?}: list it in the port's `networks` (tagged with the network's vlan, like a parent eth0.10), or make it the port's `network` or `native`",
                parent.get_ref(), rn.name.get_ref()));
        }
        let mode = match rn.macvlan_mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("bridge") => MacvlanMode::Bridge,
            Some("vepa") => MacvlanMode::Vepa,
            Some("private") => MacvlanMode::Private,
            Some("passthru") => MacvlanMode::Passthru,
            Some(other) => {
                let span = rn
                    .macvlan_mode
                    .as_ref()
                    .map(|m| m.span())
                    .unwrap_or(rn.name.span());
                return ctx.err(span, format!("macvlan_mode {other:?} is not one of \"bridge\", \"vepa\", \"private\", \"passthru\""));
            }
        };
        for (qi, q) in ports.iter().enumerate() {
            if q.mode.carries(ni) && qi != pi && q.host.is_none() {
                return ctx.err(
                    rn.name.span(),
                    format!(
                        "port {:?} carries macvlan network {:?}: only its parent and its hosts may",
                        q.name,
                        rn.name.get_ref()
                    ),
                );
            }
        }
        let nhosts = hosts
            .iter()
            .filter(|h| h.links.iter().any(|l| l.network == ni))
            .count();
        if mode == MacvlanMode::Passthru && nhosts > 1 {
            return ctx.err(rn.name.span(), format!("macvlan_mode \"passthru\" gives the parent to a single host; network {:?} has {nhosts}", rn.name.get_ref()));
        }
        macvlans.push((ni, Macvlan { parent: pi, mode }));
    }
    Ok(macvlans)
}
