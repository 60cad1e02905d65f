//! IGMP v2/v3 and MLD v1/v2 snooping, a protocol of the l2 thread
//! (docs/multicast.md). The reference is the Linux bridge with
//! `mcast_snooping 1` and its defaults (IGMPv2 / MLDv1 snooping: no source
//! tracking): per network, the ports where members of each group are
//! (from reports, aged after the membership interval), the router ports
//! (where general queries come from, aged after the other-querier-present
//! interval), and whether a querier is known at all. It publishes what the
//! workers need as one snapshot (`L2Link::mdb`) and what `shunt mdb` shows
//! as another (`L2Link::mdb_list`).
//!
//! Time is passed in (milliseconds since the switch started).

use super::mdb::{Family, Group, MdbBuilder, PortSet};
use super::{Claim, CtlKind, CtlPkt, L2Link, Protocol, Sender};
use crate::counters::Counter;
use crate::ids::{NetId, PortId};
use shunt_parsers::igmp::{self, IgmpType};
use shunt_parsers::mld::{self, MldType};
use shunt_parsers::{EtherType, Ipv4Packet, Ipv6Packet, Untagged};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The Linux bridge's defaults (ip-link(8), bridge options), in ms.
pub mod timers {
    /// `mcast_query_interval`: 125 s.
    pub const QUERY_INTERVAL: u64 = 125_000;
    /// `mcast_query_response_interval`: 10 s.
    pub const QUERY_RESPONSE: u64 = 10_000;
    /// `mcast_membership_interval`: 260 s.
    pub const MEMBERSHIP: u64 = 260_000;
    /// `mcast_querier_interval` (other querier present; also how long a
    /// router port lasts): 255 s.
    pub const OTHER_QUERIER: u64 = 255_000;
    /// `mcast_startup_query_interval`: a quarter of the query interval.
    pub const STARTUP_QUERY_INTERVAL: u64 = QUERY_INTERVAL / 4;
    /// `mcast_startup_query_count`.
    pub const STARTUP_QUERIES: u32 = 2;
    /// `mcast_last_member_interval`: 1 s.
    pub const LAST_MEMBER_INTERVAL: u64 = 1_000;
    /// `mcast_last_member_count`.
    pub const LAST_MEMBER_COUNT: u64 = 2;
}
use timers::*;

/// One network as snooping sees it.
#[derive(Debug, Clone)]
pub struct SnoopNet {
    pub net: NetId,
    pub name: String,
    pub cfg: crate::config::McastCfg,
    /// The switch's MAC on the network (its queries' source).
    pub mac: [u8; 6],
    /// The switch's address on the network: its IGMP queries' source
    /// (0.0.0.0 without one, as the Linux bridge by default).
    pub ip: Option<Ipv4Addr>,
}

/// Counters of the snooping protocol (the l2 thread is their writer).
#[derive(Default)]
pub struct SnoopCounters {
    pub igmp_reports: Counter,
    pub igmp_leaves: Counter,
    pub igmp_queries: Counter,
    pub mld_reports: Counter,
    pub mld_leaves: Counter,
    pub mld_queries: Counter,
    /// IGMP/MLD messages with a bad checksum or shape (ignored; the Linux
    /// bridge drops them, this forwards them).
    pub invalid: Counter,
    /// Queries the switch sent as querier (one per port).
    pub queries_sent: Counter,
    /// Memberships not kept: the snapshot was full.
    pub mdb_full: Counter,
}

impl SnoopCounters {
    pub fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("igmp_reports", self.igmp_reports.get()),
            ("igmp_leaves", self.igmp_leaves.get()),
            ("igmp_queries", self.igmp_queries.get()),
            ("mld_reports", self.mld_reports.get()),
            ("mld_leaves", self.mld_leaves.get()),
            ("mld_queries", self.mld_queries.get()),
            ("invalid", self.invalid.get()),
            ("queries_sent", self.queries_sent.get()),
            ("mdb_full", self.mdb_full.get()),
        ]
    }
}

/// One line of `shunt mdb`: a membership, or a router port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub net: NetId,
    pub group: Option<Group>,
    pub family: Family,
    pub port: PortId,
    /// When it was last refreshed, and when it ends (ms).
    pub heard_ms: u64,
    pub expires_ms: u64,
}

/// What `shunt mdb` reads: memberships and router ports.
#[derive(Debug, Clone, Default)]
pub struct MdbList {
    pub members: Vec<Listed>,
    pub routers: Vec<Listed>,
    /// Per network index: which families have a querier, and whether the
    /// switch is one.
    pub queriers: Vec<(NetId, [bool; 2], bool)>,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    heard: u64,
    expires: u64,
}

struct NetState {
    cfg: SnoopNet,
    members: BTreeMap<Group, BTreeMap<PortId, Timer>>,
    routers: [BTreeMap<PortId, Timer>; 2],
    /// Another querier heard, until then; and its address.
    other_until: [Option<u64>; 2],
    other_addr: [Option<Group>; 2],
    /// Until then a querier does not count yet (the bridge's
    /// `delay_timer`): hosts get the query's response time to report
    /// before snooping holds back anything.
    delay_until: [Option<u64>; 2],
    /// The switch as querier: when its next general query is due, and
    /// how many startup queries are left.
    next_query: [u64; 2],
    startup_left: [u32; 2],
}

/// The snooping protocol: its state and how it reaches a network's ports.
pub struct Snoop {
    link: Arc<L2Link>,
    nets: Vec<Option<NetState>>,
    /// The ports of a network now (the plan's members): where queries go.
    ports_of: Box<dyn Fn(NetId) -> Vec<PortId> + Send>,
    dirty: bool,
}

const CLAIMS: [(CtlKind, Claim); 2] = [(CtlKind::Igmp, Claim::Copy), (CtlKind::Mld, Claim::Copy)];

impl Snoop {
    /// Snooping on the networks of `nets` that have it on (the others are
    /// left alone); publishes the first snapshot at once.
    pub fn new(
        link: Arc<L2Link>,
        nets: Vec<SnoopNet>,
        total_nets: usize,
        ports_of: Box<dyn Fn(NetId) -> Vec<PortId> + Send>,
    ) -> Snoop {
        let mut v: Vec<Option<NetState>> = (0..total_nets).map(|_| None).collect();
        for n in nets.into_iter().filter(|n| n.cfg.snooping) {
            let i = n.net.index();
            let querier = n.cfg.querier;
            if let Some(slot) = v.get_mut(i) {
                *slot = Some(NetState {
                    cfg: n,
                    members: BTreeMap::new(),
                    routers: [BTreeMap::new(), BTreeMap::new()],
                    other_until: [None; 2],
                    other_addr: [None; 2],
                    // The bridge sets it when its querier is switched on.
                    delay_until: match querier {
                        true => [Some(QUERY_RESPONSE); 2],
                        false => [None; 2],
                    },
                    next_query: [0; 2],
                    startup_left: [STARTUP_QUERIES; 2],
                });
            }
        }
        let mut s = Snoop {
            link,
            nets: v,
            ports_of,
            dirty: true,
        };
        s.publish(0);
        s
    }

    /// Whether any network snoops (else the protocol need not run).
    pub fn any(&self) -> bool {
        self.nets.iter().any(Option::is_some)
    }

    fn counters(&self) -> &SnoopCounters {
        &self.link.snoop
    }

    /// Builds and stores both snapshots when something changed.
    fn publish(&mut self, now: u64) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let mut b = MdbBuilder::new(self.nets.len());
        let mut list = MdbList::default();
        for ns in self.nets.iter().flatten() {
            let net = ns.cfg.net;
            let q = [ns.querier(Family::V4, now), ns.querier(Family::V6, now)];
            let mut routers = [PortSet::default(), PortSet::default()];
            for (f, fam) in [Family::V4, Family::V6].into_iter().enumerate() {
                for (&p, t) in &ns.routers[f] {
                    routers[f].insert(p);
                    list.routers.push(Listed {
                        net,
                        group: None,
                        family: fam,
                        port: p,
                        heard_ms: t.heard,
                        expires_ms: t.expires,
                    });
                }
            }
            list.queriers.push((net, q, ns.cfg.cfg.querier));
            b.net(net, ns.cfg.cfg.flood_unregistered, q, routers);
            for (&g, ports) in &ns.members {
                let mut set = PortSet::default();
                for (&p, t) in ports {
                    set.insert(p);
                    list.members.push(Listed {
                        net,
                        group: Some(g),
                        family: g.family(),
                        port: p,
                        heard_ms: t.heard,
                        expires_ms: t.expires,
                    });
                }
                if !b.group(net, g, set) {
                    self.link.snoop.mdb_full.add(1);
                }
            }
        }
        self.link.mdb.store(Arc::new(b.build()));
        self.link.mdb_list.store(Arc::new(list));
    }

    /// A report for `group` on `port`: a member until the membership
    /// interval passes without another.
    fn join(&mut self, net: NetId, group: Group, port: PortId, now: u64) {
        let Some(ns) = self.nets.get_mut(net.index()).and_then(Option::as_mut) else {
            return;
        };
        if !group.snoopable() {
            return;
        }
        let t = Timer {
            heard: now,
            expires: now + MEMBERSHIP,
        };
        ns.members.entry(group).or_default().insert(port, t);
        // A refresh too: the listing shows its age.
        self.dirty = true;
    }

    /// A leave (IGMPv2 leave, MLD done, an include of nothing): as the
    /// Linux bridge, ignored while another querier is present (its
    /// group-specific query does the work); else the switch, as querier,
    /// asks the port (a group-specific query) and the membership ends
    /// after the last-member time (2 x 1 s) unless a report comes.
    fn leave(&mut self, net: NetId, group: Group, port: PortId, now: u64, out: &mut Sender<'_>) {
        let Some(ns) = self.nets.get_mut(net.index()).and_then(Option::as_mut) else {
            return;
        };
        let fam = group.family() as usize;
        if !group.snoopable() || ns.other_until[fam].is_some_and(|t| t > now) {
            return;
        }
        let Some(t) = ns.members.get_mut(&group).and_then(|m| m.get_mut(&port)) else {
            return;
        };
        let end = now + LAST_MEMBER_COUNT * LAST_MEMBER_INTERVAL;
        t.expires = t.expires.min(end);
        if ns.cfg.cfg.querier {
            let (cfg, q) = (ns.cfg.clone(), group);
            if send_query(&cfg, port, Some(q), LAST_MEMBER_INTERVAL, out) {
                self.link.snoop.queries_sent.add(1);
            }
        }
    }

    /// A query from `src` on `port`: a general one makes the port a
    /// router port and a querier known (the lowest address wins, as the
    /// bridge elects); a group-specific one shortens the group's
    /// memberships to the last-member time.
    fn query(
        &mut self,
        net: NetId,
        src: Group,
        group: Option<Group>,
        max_resp_ms: u64,
        port: PortId,
        now: u64,
    ) {
        let Some(ns) = self.nets.get_mut(net.index()).and_then(Option::as_mut) else {
            return;
        };
        let fam = src.family() as usize;
        match group {
            None => {
                let known = ns.other_until[fam].is_some_and(|t| t > now);
                if known && ns.other_addr[fam].is_some_and(|a| src > a) {
                    return;
                }
                if !known {
                    ns.delay_until[fam] = Some(now + max_resp_ms);
                }
                ns.other_until[fam] = Some(now + OTHER_QUERIER);
                ns.other_addr[fam] = Some(src);
                ns.routers[fam].insert(
                    port,
                    Timer {
                        heard: now,
                        expires: now + OTHER_QUERIER,
                    },
                );
                self.dirty = true;
            }
            Some(g) => {
                let end = now + LAST_MEMBER_COUNT * max_resp_ms;
                if let Some(m) = ns.members.get_mut(&g) {
                    for t in m.values_mut() {
                        t.expires = t.expires.min(end);
                    }
                }
            }
        }
    }

    fn igmp(&mut self, pkt: &CtlPkt, ip: &[u8], now: u64, out: &mut Sender<'_>) {
        let Some(net) = pkt.net else { return };
        let (Ok(iph), Some(m)) = (Ipv4Packet::new_checked(ip), igmp::in_ipv4(ip)) else {
            return;
        };
        if !m.verify_checksum() {
            self.counters().invalid.add(1);
            return;
        }
        let port = pkt.port;
        let c = &self.link.snoop;
        match m.msg_type() {
            IgmpType::ReportV1 | IgmpType::ReportV2 => {
                c.igmp_reports.add(1);
                self.join(net, Group::V4(m.group()), port, now);
            }
            IgmpType::ReportV3 => {
                c.igmp_reports.add(1);
                for r in m.records() {
                    let g = Group::V4(Ipv4Addr::from(r.group));
                    match r.joins() {
                        Some(true) => self.join(net, g, port, now),
                        Some(false) => {
                            self.link.snoop.igmp_leaves.add(1);
                            self.leave(net, g, port, now, out)
                        }
                        None => {}
                    }
                }
            }
            IgmpType::Leave => {
                c.igmp_leaves.add(1);
                self.leave(net, Group::V4(m.group()), port, now, out);
            }
            IgmpType::Query => {
                c.igmp_queries.add(1);
                // v3 queries with sources are source-specific: not ours.
                if m.query_version().is_none() || m.query_sources() != 0 {
                    return;
                }
                let g = m.group();
                let group = (!g.is_unspecified()).then_some(Group::V4(g));
                let src = Group::V4(iph.src_addr());
                self.query(net, src, group, m.max_resp_ms().into(), port, now);
            }
            IgmpType::Unknown(_) => {}
        }
    }

    fn mld(&mut self, pkt: &CtlPkt, ip: &[u8], now: u64, out: &mut Sender<'_>) {
        let Some(net) = pkt.net else { return };
        let (Ok(iph), Some(m)) = (Ipv6Packet::new_checked(ip), mld::in_ipv6(ip)) else {
            return;
        };
        if !m.verify_checksum(iph.src_addr(), iph.dst_addr()) {
            self.counters().invalid.add(1);
            return;
        }
        let port = pkt.port;
        let c = &self.link.snoop;
        match m.msg_type() {
            MldType::ReportV1 => {
                c.mld_reports.add(1);
                self.join(net, Group::V6(m.group()), port, now);
            }
            MldType::ReportV2 => {
                c.mld_reports.add(1);
                for r in m.records() {
                    let g = Group::V6(Ipv6Addr::from(r.group));
                    match r.joins() {
                        Some(true) => self.join(net, g, port, now),
                        Some(false) => {
                            self.link.snoop.mld_leaves.add(1);
                            self.leave(net, g, port, now, out)
                        }
                        None => {}
                    }
                }
            }
            MldType::Done => {
                c.mld_leaves.add(1);
                self.leave(net, Group::V6(m.group()), port, now, out);
            }
            MldType::Query => {
                c.mld_queries.add(1);
                if m.query_version().is_none() {
                    return;
                }
                let g = m.group();
                let group = (!g.is_unspecified()).then_some(Group::V6(g));
                let src = Group::V6(iph.src_addr());
                self.query(net, src, group, m.max_resp_ms().into(), port, now);
            }
        }
    }

    /// Ends what expired; drops ports that left the network.
    fn expire(&mut self, now: u64) {
        for i in 0..self.nets.len() {
            let Some(net) = self.nets[i].as_ref().map(|n| n.cfg.net) else {
                continue;
            };
            let ports = (self.ports_of)(net);
            let Some(ns) = self.nets[i].as_mut() else {
                continue;
            };
            let live = |p: &PortId, t: &Timer| t.expires > now && ports.contains(p);
            let mut changed = false;
            for m in ns.members.values_mut() {
                let before = m.len();
                m.retain(|p, t| live(p, t));
                changed |= m.len() != before;
            }
            ns.members.retain(|_, m| !m.is_empty());
            for (f, r) in ns.routers.iter_mut().enumerate() {
                let before = r.len();
                r.retain(|p, t| live(p, t));
                changed |= r.len() != before;
                if ns.other_until[f].is_some_and(|t| t <= now) {
                    ns.other_until[f] = None;
                    ns.other_addr[f] = None;
                    changed = true;
                }
                if ns.delay_until[f].is_some_and(|t| t <= now) {
                    ns.delay_until[f] = None;
                    changed = true;
                }
            }
            self.dirty |= changed;
        }
    }

    /// The switch as querier: general queries out of every port of the
    /// network, two at startup a quarter interval apart, then every query
    /// interval, while no other querier is heard.
    fn queries(&mut self, now: u64, out: &mut Sender<'_>) {
        for i in 0..self.nets.len() {
            let Some(ns) = self.nets[i].as_mut() else {
                continue;
            };
            if !ns.cfg.cfg.querier {
                continue;
            }
            for f in 0..2 {
                if ns.next_query[f] > now || ns.other_until[f].is_some_and(|t| t > now) {
                    continue;
                }
                let every = if ns.startup_left[f] > 0 {
                    ns.startup_left[f] -= 1;
                    STARTUP_QUERY_INTERVAL
                } else {
                    QUERY_INTERVAL
                };
                ns.next_query[f] = now + every;
                let cfg = ns.cfg.clone();
                for p in (self.ports_of)(cfg.net) {
                    let q = match f {
                        0 => Some(Group::V4(Ipv4Addr::UNSPECIFIED)),
                        _ => Some(Group::V6(Ipv6Addr::UNSPECIFIED)),
                    };
                    if send_query(&cfg, p, q, QUERY_RESPONSE, out) {
                        self.link.snoop.queries_sent.add(1);
                    }
                }
            }
        }
    }
}

impl NetState {
    /// A querier of `fam` is known: another one heard lately, or the
    /// switch itself.
    fn querier(&self, fam: Family, now: u64) -> bool {
        let f = fam as usize;
        let delayed = self.delay_until[f].is_some_and(|t| t > now);
        !delayed && (self.cfg.cfg.querier || self.other_until[f].is_some_and(|t| t > now))
    }
}

/// Sends a query out of `port` on `cfg`'s network: for `group` (an
/// unspecified address: a general query of that family) with the given
/// maximum response time. True when it was queued.
fn send_query(
    cfg: &SnoopNet,
    port: PortId,
    group: Option<Group>,
    max_resp_ms: u64,
    out: &mut Sender<'_>,
) -> bool {
    let mut buf = [0u8; 128];
    let n = match group {
        Some(Group::V4(g)) => {
            let src = cfg.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let tenths = u8::try_from(max_resp_ms / 100).unwrap_or(u8::MAX);
            igmp::emit_query(&mut buf, cfg.mac, src, g, tenths)
        }
        Some(Group::V6(g)) => {
            let ms = u16::try_from(max_resp_ms).unwrap_or(u16::MAX);
            mld::emit_query(&mut buf, cfg.mac, link_local(cfg.mac), g, ms)
        }
        None => return false,
    };
    match n {
        Ok(n) => out.send(port, Some(cfg.net), &[&buf[..n]]),
        Err(_) => false,
    }
}

/// The switch's IPv6 link-local address on a network: fe80:: with the
/// modified EUI-64 of its MAC (RFC 4291), its MLD queries' source.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

impl Protocol for Snoop {
    fn name(&self) -> &'static str {
        "snooping"
    }

    fn claims(&self) -> &[(CtlKind, Claim)] {
        &CLAIMS
    }

    fn frame(&mut self, pkt: &CtlPkt, now_ms: u64, out: &mut Sender<'_>) {
        let Some(u) = Untagged::new(pkt.frame(), 0) else {
            return;
        };
        match (pkt.kind, u.ethertype()) {
            (CtlKind::Igmp, EtherType::Ipv4) => self.igmp(pkt, u.payload(), now_ms, out),
            (CtlKind::Mld, EtherType::Ipv6) => self.mld(pkt, u.payload(), now_ms, out),
            _ => {}
        }
        self.publish(now_ms);
    }

    fn tick(&mut self, now_ms: u64, out: &mut Sender<'_>) {
        self.expire(now_ms);
        self.queries(now_ms, out);
        self.publish(now_ms);
    }
}
