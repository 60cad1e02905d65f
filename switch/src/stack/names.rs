//! names: what the DNS responder knows, per network, and how it decides.
//!
//! A network's names are its hosts' names and aliases, each with the
//! addresses of the hosts that carry it *on that network*. A name gets
//! several addresses when several hosts carry it (an alias shared by two
//! hosts, the way Docker's network-scoped aliases give DNS round robin).
//! The table is rebuilt whole and swapped in (`StackLink::set_names`), so
//! hosts attached or detached at run time appear and disappear at once.

use super::dns::{self, Query, Rdata};
use crate::config::{Ipv4Net, Topology};
use shunt_parsers::MacAddr;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

/// TTL of the answers for our own names (what Docker's embedded DNS uses).
pub const TTL: u32 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameKind {
    Host,
    Alias,
}

impl NameKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            NameKind::Host => "host",
            NameKind::Alias => "alias",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub kind: NameKind,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

/// One network's view.
#[derive(Debug, Clone, Default)]
pub struct NetNames {
    /// The network's name (lowercase): `name.network` resolves.
    pub network: String,
    /// Its domain (lowercase, no final dot): `name.domain` resolves.
    pub domain: Option<String>,
    pub subnet: Option<Ipv4Net>,
    pub upstream: Option<Ipv4Addr>,
    /// Single-label names (lowercase) -> addresses. BTreeMap: listed in
    /// order by `shunt dns`.
    pub names: BTreeMap<String, NameEntry>,
    /// Address -> the canonical name (wire format, fully qualified).
    pub ptr: HashMap<Ipv4Addr, Vec<u8>>,
}

/// All networks, indexed by network id.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub nets: Vec<NetNames>,
    /// ARP suppression entries the topology gives: (network, ip, mac) of
    /// every host address on a network with `arp_suppress`. The host
    /// thread swaps them into its ARP table when the names change.
    pub arp: Vec<(u16, Ipv4Addr, MacAddr)>,
}

/// A host as the name table sees it: its name, aliases, and its address on
/// each network it is on.
#[derive(Debug, Clone)]
pub struct HostNames {
    pub name: String,
    pub aliases: Vec<String>,
    /// (network id, IPv4 address if any).
    pub links: Vec<(usize, Option<Ipv4Addr>)>,
}

impl Names {
    /// The names of a topology.
    pub fn from_topology(topo: &Topology) -> Names {
        let hosts: Vec<HostNames> = topo
            .hosts
            .iter()
            .map(|h| HostNames {
                name: h.name.clone(),
                aliases: h.aliases.clone(),
                links: h
                    .links
                    .iter()
                    .map(|l| (l.network, l.ip.map(|i| i.addr)))
                    .collect(),
            })
            .collect();
        let mut names = Names::build(topo, &hosts);
        for h in &topo.hosts {
            for l in &h.links {
                let suppress = topo.networks.get(l.network).is_some_and(|n| n.arp_suppress);
                if let (true, Some(ip)) = (suppress, l.ip) {
                    names.arp.push((l.network as u16, ip.addr, l.mac));
                }
            }
        }
        names
    }

    /// The names of the topology's networks with `hosts` on them (the
    /// hosts of the file, or the hosts of the moment when they change at
    /// run time).
    pub fn build(topo: &Topology, hosts: &[HostNames]) -> Names {
        let mut nets: Vec<NetNames> = topo
            .networks
            .iter()
            .map(|n| NetNames {
                network: n.name.to_ascii_lowercase(),
                domain: n.domain.clone(),
                subnet: n.subnet,
                upstream: n.dns_upstream,
                ..NetNames::default()
            })
            .collect();
        for h in hosts {
            for &(ni, ip) in &h.links {
                let Some(net) = nets.get_mut(ni) else {
                    continue;
                };
                let host = h.name.to_ascii_lowercase();
                let zone = net.domain.clone().unwrap_or_else(|| net.network.clone());
                let names = std::iter::once((host.clone(), NameKind::Host)).chain(
                    h.aliases.iter().map(|a| {
                        (
                            a.trim_end_matches('.').to_ascii_lowercase(),
                            NameKind::Alias,
                        )
                    }),
                );
                for (name, kind) in names {
                    if name.is_empty() || name.contains('.') {
                        continue;
                    }
                    let e = net.names.entry(name).or_insert(NameEntry {
                        kind,
                        v4: Vec::new(),
                        v6: Vec::new(),
                    });
                    // A host name wins over an alias of the same spelling.
                    e.kind = e.kind.min(kind);
                    if let Some(ip) = ip {
                        if !e.v4.contains(&ip) {
                            e.v4.push(ip);
                        }
                    }
                }
                if let Some(ip) = ip {
                    if let Some(w) = dns::name_to_wire(&format!("{host}.{zone}")) {
                        net.ptr.entry(ip).or_insert(w);
                    }
                }
            }
        }
        Names {
            nets,
            arp: Vec::new(),
        }
    }
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer from our names: rcode and records (rotation already applied).
    Answer { rcode: u16, records: Vec<Rdata> },
    /// Not ours: ask this resolver.
    Forward(Ipv4Addr),
    /// Not ours and nobody to ask.
    ServFail,
}

/// Rotation state: how many answers each (network, name) has had.
#[derive(Debug, Default)]
pub struct Rotation {
    turns: HashMap<(u16, String), usize>,
}

impl Rotation {
    fn next(&mut self, net: u16, name: &str, len: usize) -> usize {
        if len < 2 {
            return 0;
        }
        if self.turns.len() > 65536 {
            self.turns.clear();
        }
        let t = self.turns.entry((net, name.to_string())).or_insert(0);
        let r = *t % len;
        *t = t.wrapping_add(1);
        r
    }
}

/// Where a question name falls relative to a network.
enum Place<'a> {
    /// A single label (possibly after stripping our suffix).
    Label(&'a str, bool),
    /// Inside our zone but not a name we could hold (several labels, or
    /// the zone itself).
    ZoneOther { apex: bool },
    /// Outside.
    Outside,
}

fn place<'a>(n: &NetNames, qname: &'a str) -> Place<'a> {
    let mut zones: Vec<&str> = vec![n.network.as_str()];
    if let Some(d) = &n.domain {
        zones.push(d.as_str());
    }
    for z in zones {
        if qname == z && z.contains('.') {
            return Place::ZoneOther { apex: true };
        }
        if let Some(rest) = qname.strip_suffix(z).and_then(|r| r.strip_suffix('.')) {
            if rest.is_empty() || rest.contains('.') {
                return Place::ZoneOther { apex: false };
            }
            return Place::Label(rest, true);
        }
    }
    if !qname.is_empty() && !qname.contains('.') {
        return Place::Label(qname, false);
    }
    Place::Outside
}

/// `d.c.b.a.in-addr.arpa` -> a.b.c.d.
fn reverse_v4(qname: &str) -> Option<Ipv4Addr> {
    let rest = qname.strip_suffix(".in-addr.arpa")?;
    let mut o = [0u8; 4];
    let mut parts = rest.split('.');
    for i in (0..4).rev() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
            return None;
        }
        o[i] = p.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(o))
}

fn not_ours(n: &NetNames) -> Decision {
    match n.upstream {
        Some(u) => Decision::Forward(u),
        None => Decision::ServFail,
    }
}

/// Decides the answer to `q`, asked on network `net` (DESIGN.md: known
/// names answered with all their addresses, rotated; a known name without
/// an address of the family asked, empty NOERROR; an unknown name in our
/// zone, NXDOMAIN; anything else forwarded, or SERVFAIL).
pub fn decide(names: &Names, net: u16, q: &Query, rot: &mut Rotation) -> Decision {
    let Some(n) = names.nets.get(net as usize) else {
        return Decision::ServFail;
    };
    let answer = |rcode, records| Decision::Answer { rcode, records };
    if q.qclass != dns::CLASS_IN && q.qclass != 255 {
        return not_ours(n);
    }
    if q.qname.ends_with(".in-addr.arpa") {
        return match reverse_v4(&q.qname) {
            Some(ip) if n.subnet.is_some_and(|s| s.contains(ip)) => match n.ptr.get(&ip) {
                Some(w) if q.qtype == dns::TYPE_PTR || q.qtype == dns::TYPE_ANY => {
                    answer(dns::RCODE_NOERROR, vec![Rdata::Ptr(w.clone())])
                }
                Some(_) => answer(dns::RCODE_NOERROR, vec![]),
                None => answer(dns::RCODE_NXDOMAIN, vec![]),
            },
            _ => not_ours(n),
        };
    }
    match place(n, &q.qname) {
        Place::Label(label, in_zone) => match n.names.get(label) {
            Some(e) => {
                let mut records = Vec::new();
                if matches!(q.qtype, dns::TYPE_A | dns::TYPE_ANY) && !e.v4.is_empty() {
                    let r = rot.next(net, label, e.v4.len());
                    records.extend(
                        e.v4.iter()
                            .cycle()
                            .skip(r)
                            .take(e.v4.len())
                            .map(|a| Rdata::A(*a)),
                    );
                }
                if matches!(q.qtype, dns::TYPE_AAAA | dns::TYPE_ANY) && !e.v6.is_empty() {
                    let r = rot.next(net, label, e.v6.len());
                    records.extend(
                        e.v6.iter()
                            .cycle()
                            .skip(r)
                            .take(e.v6.len())
                            .map(|a| Rdata::Aaaa(*a)),
                    );
                }
                answer(dns::RCODE_NOERROR, records)
            }
            None if in_zone => answer(dns::RCODE_NXDOMAIN, vec![]),
            None => not_ours(n),
        },
        Place::ZoneOther { apex: true } => answer(dns::RCODE_NOERROR, vec![]),
        Place::ZoneOther { apex: false } => answer(dns::RCODE_NXDOMAIN, vec![]),
        Place::Outside => not_ours(n),
    }
}

/// For `shunt dns`: one row per (network, name).
pub fn listing(names: &Names, filter: Option<usize>) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for (i, n) in names.nets.iter().enumerate() {
        if filter.is_some_and(|f| f != i) {
            continue;
        }
        for (name, e) in &n.names {
            let mut fqdns = vec![format!("{name}.{}", n.network)];
            if let Some(d) = &n.domain {
                fqdns.push(format!("{name}.{d}"));
            }
            rows.push(serde_json::json!({
                "name": name,
                "network": n.network,
                "type": e.kind.as_str(),
                "addresses": e.v4.iter().map(|a| a.to_string())
                    .chain(e.v6.iter().map(|a| a.to_string())).collect::<Vec<_>>(),
                "also": fqdns,
            }));
        }
    }
    rows
}
