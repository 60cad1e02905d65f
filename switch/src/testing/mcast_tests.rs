//! IGMP/MLD snooping through the pipeline and the l2 thread's protocol
//! (no thread: `Registry::round` by hand, time passed in): where
//! multicast goes as reports, leaves and queries come and go.

use crate::counters::DropReason;
use crate::l2::mdb::Group;
use crate::l2::Registry;
use crate::pipeline::Verdict;
use crate::testing::{port, Rig};
use shunt_parsers::checksum;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Four access ports on lan.
fn topo(querier: bool, flood: bool) -> String {
    let mut t = format!(
        "[[network]]\nname = \"lan\"\nmulticast_querier = {querier}\nmulticast_flood_unregistered = {flood}\n"
    );
    for p in ["p0", "p1", "p2", "p3"] {
        t.push_str(&format!("[[port]]\nname = \"{p}\"\nnetwork = \"lan\"\n"));
    }
    t
}

struct Lab {
    rig: Rig,
    reg: Registry,
    now: u64,
}

fn lab(querier: bool, flood: bool) -> Lab {
    let toml = topo(querier, flood);
    let (rig, reg) = Rig::new(&toml).with_snooping(&toml).expect("eventfds");
    // After the first querier's response time (10 s).
    let mut l = Lab {
        rig,
        reg,
        now: 11_000,
    };
    l.after(0);
    l
}

impl Lab {
    /// Frame `f` in on port `p`; the l2 thread takes the copies; returns
    /// the verdict and the ports it went out of.
    fn send(&mut self, p: usize, f: &[u8]) -> (Verdict, Vec<usize>) {
        for q in &mut self.rig.ports {
            q.clear_sent();
        }
        assert!(self.rig.ports[p].push(f));
        self.rig.step(port(p), self.now);
        let v = self.rig.batch.meta[0].verdict;
        self.reg.round(self.now);
        // What the l2 thread sent (queries) is not part of the answer.
        let out = (0..4)
            .filter(|&q| self.rig.ports[q].sent().count() > 0)
            .collect();
        while self.rig.run_l2_output() > 0 {}
        (v, out)
    }

    fn after(&mut self, ms: u64) {
        self.now += ms;
        self.reg.round(self.now);
        while self.rig.run_l2_output() > 0 {}
    }
}

fn mac(p: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, p]
}

fn group_mac(g: Ipv4Addr) -> [u8; 6] {
    let o = g.octets();
    [1, 0, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// An IPv4 frame from host `h` to `dst` with protocol `proto` and
/// `payload`; with the Router Alert option for IGMP.
fn ipv4(h: u8, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&group_mac(dst));
    f.extend_from_slice(&mac(h));
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ra = proto == 2;
    let hl = if ra { 24 } else { 20 };
    let total = (hl + payload.len()) as u16;
    let mut ip = vec![(0x40 | (hl / 4)) as u8, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 1, proto, 0, 0, 10, 0, 0, h]);
    ip.extend_from_slice(&dst.octets());
    if ra {
        ip.extend_from_slice(&[0x94, 4, 0, 0]);
    }
    let c = !checksum::data(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

fn igmp(kind: u8, code: u8, group: Ipv4Addr, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&group.octets());
    m.extend_from_slice(rest);
    let c = !checksum::data(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn report(h: u8, g: Ipv4Addr) -> Vec<u8> {
    ipv4(h, g, 2, &igmp(0x16, 0, g, &[]))
}

fn leave(h: u8, g: Ipv4Addr) -> Vec<u8> {
    ipv4(h, Ipv4Addr::new(224, 0, 0, 2), 2, &igmp(0x17, 0, g, &[]))
}

fn query(h: u8) -> Vec<u8> {
    let any = Ipv4Addr::UNSPECIFIED;
    ipv4(
        h,
        Ipv4Addr::new(224, 0, 0, 1),
        2,
        &igmp(0x11, 100, any, &[]),
    )
}

fn data(h: u8, g: Ipv4Addr) -> Vec<u8> {
    ipv4(h, g, 17, &[0x13, 0x88, 0x13, 0x88, 0, 12, 0, 0, 1, 2, 3, 4])
}

const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const G9: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);

fn group_to(ports: &[usize]) -> impl Fn(&(Verdict, Vec<usize>)) -> bool + '_ {
    move |(v, out)| matches!(v, Verdict::Group { .. }) && out == ports
}

#[test]
fn without_a_querier_everything_floods() {
    let mut l = lab(false, false);
    let (v, out) = l.send(1, &report(1, G1));
    assert_eq!(v, Verdict::Flood(crate::counters::FloodCause::Multicast));
    assert_eq!(out, vec![0, 2, 3]);
    // The report was learned all the same...
    assert_eq!(
        l.rig.l2.as_ref().map(|x| x.mdb_list.load().members.len()),
        Some(1)
    );
    // ...but without a querier the bridge floods, and so does this.
    let (_, out) = l.send(0, &data(0, G1));
    assert_eq!(out, vec![1, 2, 3]);
}

#[test]
fn with_the_switch_as_querier_groups_go_to_members() {
    let mut l = lab(true, false);
    // Reports go to router ports only: there are none.
    let (v, out) = l.send(1, &report(1, G1));
    assert!(
        matches!(v, Verdict::Drop(DropReason::NoDestination)),
        "{v:?}"
    );
    assert!(out.is_empty());
    // Not to the group's member either, though the group is registered
    // now: p1 would suppress its own report, and then not send its leave.
    let (v, out) = l.send(2, &report(2, G1));
    assert!(
        matches!(v, Verdict::Drop(DropReason::NoDestination)),
        "{v:?}"
    );
    assert!(out.is_empty());
    assert!(group_to(&[1, 2])(&l.send(0, &data(0, G1))));
    // A member's own frames go to the other members.
    assert!(group_to(&[2])(&l.send(1, &data(1, G1))));
    // Unregistered: to the router ports only, here none.
    let (v, _) = l.send(0, &data(0, G9));
    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
    // Link-local groups always flood.
    let (v, out) = l.send(0, &data(0, Ipv4Addr::new(224, 0, 0, 251)));
    assert_eq!(v, Verdict::Flood(crate::counters::FloodCause::Multicast));
    assert_eq!(out, vec![1, 2, 3]);
    // A leave (flooded: it goes to 224.0.0.2) ends the membership after
    // the last-member time, 2 s.
    let (_, out) = l.send(1, &leave(1, G1));
    assert_eq!(out, vec![0, 2, 3]);
    assert!(group_to(&[1, 2])(&l.send(0, &data(0, G1))));
    l.after(2001);
    assert!(group_to(&[2])(&l.send(0, &data(0, G1))));
    // Membership ages out after 260 s without a report.
    l.after(260_000);
    assert_eq!(
        l.send(0, &data(0, G1)).0,
        Verdict::Drop(DropReason::NoDestination)
    );
    let l2 = l.rig.l2.clone().expect("l2");
    assert_eq!(l2.snoop.igmp_reports.get(), 2);
    assert_eq!(l2.snoop.igmp_leaves.get(), 1);
    assert!(l2.mcast[0].to_members.get() >= 3);
}

#[test]
fn a_query_makes_a_router_port() {
    let mut l = lab(false, false);
    l.send(1, &report(1, G1));
    // A general query from p3: flooded (to 224.0.0.1), p3 a router port.
    let (_, out) = l.send(3, &query(3));
    assert_eq!(out, vec![0, 1, 2]);
    let list = l.rig.l2.clone().expect("l2").mdb_list.load_full();
    assert_eq!(list.routers.len(), 1);
    assert_eq!(list.routers[0].port, port(3));
    // The query's response time (10 s) first.
    l.after(10_001);
    // Registered: members and the router port; unregistered: the router
    // port; reports: the router port.
    assert!(group_to(&[1, 3])(&l.send(0, &data(0, G1))));
    assert!(group_to(&[3])(&l.send(0, &data(0, G9))));
    assert!(group_to(&[3])(&l.send(2, &report(2, G9))));
    // With another querier present a leave is left to it (as the bridge).
    l.send(1, &leave(1, G1));
    l.after(3000);
    assert!(group_to(&[1, 3])(&l.send(0, &data(0, G1))));
    // The router port and the querier age out after 255 s: flood again.
    l.after(255_000);
    let (v, _) = l.send(0, &data(0, G9));
    assert_eq!(v, Verdict::Flood(crate::counters::FloodCause::Multicast));
}

#[test]
fn flood_unregistered_floods_unregistered_groups_only() {
    let mut l = lab(true, true);
    l.send(1, &report(1, G1));
    assert!(group_to(&[1])(&l.send(0, &data(0, G1))));
    let (v, out) = l.send(0, &data(0, G9));
    assert_eq!(v, Verdict::Flood(crate::counters::FloodCause::Multicast));
    assert_eq!(out, vec![1, 2, 3]);
}

#[test]
fn igmpv3_records_join_and_leave() {
    let mut l = lab(true, false);
    let v3 = Ipv4Addr::new(224, 0, 0, 22);
    // TO_EX({}) G1 and G9: joins.
    let mut recs = Vec::new();
    for g in [G1, G9] {
        recs.extend_from_slice(&[4, 0, 0, 0]);
        recs.extend_from_slice(&g.octets());
    }
    // The record count sits in the last two bytes of a v2 message's group.
    let m = igmp(0x22, 0, Ipv4Addr::new(0, 0, 0, 2), &recs);
    let (_, out) = l.send(2, &ipv4(2, v3, 2, &m));
    assert_eq!(
        out,
        vec![0, 1, 3],
        "IGMPv3 reports (to 224.0.0.22) are flooded"
    );
    assert!(group_to(&[2])(&l.send(0, &data(0, G9))));
    // TO_IN({}) G9: a leave.
    let mut recs = vec![3, 0, 0, 0];
    recs.extend_from_slice(&G9.octets());
    let m = igmp(0x22, 0, Ipv4Addr::new(0, 0, 0, 1), &recs);
    l.send(2, &ipv4(2, v3, 2, &m));
    l.after(2001);
    assert_eq!(
        l.send(0, &data(0, G9)).0,
        Verdict::Drop(DropReason::NoDestination)
    );
    assert!(group_to(&[2])(&l.send(0, &data(0, G1))));
}

#[test]
fn bad_checksums_teach_nothing() {
    let mut l = lab(true, false);
    let mut f = report(1, G1);
    // The IGMP checksum (after Ethernet 14 + IPv4 24 + 2).
    f[40] ^= 0xff;
    l.send(1, &f);
    assert_eq!(l.rig.l2.clone().expect("l2").snoop.invalid.get(), 1);
    assert_eq!(
        l.send(0, &data(0, G1)).0,
        Verdict::Drop(DropReason::NoDestination)
    );
}

fn ipv6(h: u8, dst: Ipv6Addr, mld: Option<&[u8]>, udp: &[u8]) -> Vec<u8> {
    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(h));
    let o = dst.octets();
    let mut f = vec![0x33, 0x33, o[12], o[13], o[14], o[15]];
    f.extend_from_slice(&mac(h));
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let (ext, body): (Vec<u8>, Vec<u8>) = match mld {
        Some(m) => {
            let mut m = m.to_vec();
            let s = checksum::combine(&[
                checksum::pseudo_header_v6(src, dst, 58, m.len() as u32),
                checksum::data(&m),
            ]);
            m[2..4].copy_from_slice(&(!s).to_be_bytes());
            (vec![58, 0, 5, 2, 0, 0, 1, 0], m)
        }
        None => (Vec::new(), udp.to_vec()),
    };
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((ext.len() + body.len()) as u16).to_be_bytes());
    ip.push(if mld.is_some() { 0 } else { 17 });
    ip.push(1);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&ext);
    f.extend_from_slice(&body);
    f
}

#[test]
fn mld_v1_and_v2_reports() {
    let mut l = lab(true, false);
    let g: Ipv6Addr = "ff05::1234".parse().expect("addr");
    let mut v1 = vec![131, 0, 0, 0, 0, 0, 0, 0];
    v1.extend_from_slice(&g.octets());
    let (v, _) = l.send(1, &ipv6(1, g, Some(&v1), &[]));
    assert_eq!(
        v,
        Verdict::Drop(DropReason::NoDestination),
        "MLDv1 reports: routers only"
    );
    let udp = [0x13, 0x88, 0x13, 0x88, 0, 12, 0, 0, 1, 2, 3, 4];
    assert!(group_to(&[1])(&l.send(0, &ipv6(0, g, None, &udp))));
    // MLDv2 report (to ff02::16: flooded): IS_EX({}) g from p2.
    let mut v2 = vec![143, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0];
    v2.extend_from_slice(&g.octets());
    let all_mld: Ipv6Addr = "ff02::16".parse().expect("addr");
    let (_, out) = l.send(2, &ipv6(2, all_mld, Some(&v2), &[]));
    assert_eq!(out, vec![0, 1, 3]);
    assert!(group_to(&[1, 2])(&l.send(0, &ipv6(0, g, None, &udp))));
    // ff02::1 always floods; a done from p1 ends its membership.
    let all: Ipv6Addr = "ff02::1".parse().expect("addr");
    assert_eq!(l.send(0, &ipv6(0, all, None, &udp)).1, vec![1, 2, 3]);
    let mut done = v1.clone();
    done[0] = 132;
    let routers: Ipv6Addr = "ff02::2".parse().expect("addr");
    l.send(1, &ipv6(1, routers, Some(&done), &[]));
    l.after(2001);
    assert!(group_to(&[2])(&l.send(0, &ipv6(0, g, None, &udp))));
    let list = l.rig.l2.clone().expect("l2").mdb_list.load_full();
    assert_eq!(list.members.len(), 1);
    assert_eq!(list.members[0].group, Some(Group::V6(g)));
}

#[test]
fn the_querier_sends_general_queries_on_every_port() {
    let mut l = lab(true, false);
    // Both families, every port: an IGMPv2 and an MLDv1 general query.
    for p in 0..4 {
        let sent: Vec<Vec<u8>> = l.rig.ports[p].sent().map(|f| f.to_vec()).collect();
        assert_eq!(sent.len(), 2, "port {p}");
        assert_eq!(&sent[0][..6], &[1, 0, 0x5e, 0, 0, 1]);
        assert_eq!(&sent[1][..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let m = shunt_parsers::igmp::in_ipv4(&sent[0][14..]).expect("igmp");
        assert_eq!(m.query_version(), Some(2));
        assert!(shunt_parsers::mld::in_ipv6(&sent[1][14..]).is_some());
    }
    let l2 = l.rig.l2.clone().expect("l2");
    assert_eq!(l2.snoop.queries_sent.get(), 8);
    // The next: a startup interval (31.25 s) after the first, not before.
    for p in &mut l.rig.ports {
        p.clear_sent();
    }
    l.after(30_000);
    assert_eq!(l.rig.ports[0].sent().count(), 0);
    l.after(1_300);
    assert_eq!(l.rig.ports[0].sent().count(), 2);
}

/// As the bridge's `delay_timer`: a querier counts only after the
/// response time its first query gives hosts (10 s for the switch's own,
/// the query's for another), so nothing is held back before members could
/// answer.
#[test]
fn a_new_querier_counts_after_its_response_time() {
    let mut l = lab(false, false);
    l.send(1, &report(1, G1));
    // A query asking for answers within 10 s (100 tenths).
    l.send(3, &query(3));
    let (v, _) = l.send(0, &data(0, G1));
    assert_eq!(v, Verdict::Flood(crate::counters::FloodCause::Multicast));
    l.after(10_001);
    assert!(group_to(&[1, 3])(&l.send(0, &data(0, G1))));
}
