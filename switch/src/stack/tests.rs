//! Switch stack tests on byte arrays: the real DNS frames of
//! parsers/tests/data/dns.pcap (dig queries with EDNS0 and a COOKIE,
//! dnsmasq answers), responder decisions, garbage, and ARP replies built
//! from the real ARP frames of arp_icmp.pcap.

use super::arp;
use super::dns::{self, Rdata};
use super::iface::{respond, Reply};
use super::names::{self, Decision, Names, Rotation};
use super::NetCounters;
use crate::config;
use shunt_parsers::{ArpOp, ArpRepr, MacAddr};
use std::net::Ipv4Addr;

const DNS_PCAP: &[u8] = include_bytes!("../../../parsers/tests/data/dns.pcap");
const ARP_PCAP: &[u8] = include_bytes!("../../../parsers/tests/data/arp_icmp.pcap");

/// The frames of a classic pcap file (little-endian, as tcpdump writes).
fn frames(pcap: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl =
            u32::from_le_bytes([pcap[at + 8], pcap[at + 9], pcap[at + 10], pcap[at + 11]]) as usize;
        at += 16;
        if at + incl > pcap.len() {
            break;
        }
        out.push(&pcap[at..at + incl]);
        at += incl;
    }
    out
}

/// (source port, destination port, payload) of the UDP/IPv4 frames.
fn udp_payloads(pcap: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
    frames(pcap)
        .into_iter()
        .filter_map(|f| {
            if f.len() < 14 + 20 + 8 || f[12..14] != [8, 0] || f[14 + 9] != 17 {
                return None;
            }
            let ihl = (f[14] & 0xf) as usize * 4;
            let u = &f[14 + ihl..];
            let sp = u16::from_be_bytes([u[0], u[1]]);
            let dp = u16::from_be_bytes([u[2], u[3]]);
            Some((sp, dp, u[8..].to_vec()))
        })
        .collect()
}

fn queries() -> Vec<Vec<u8>> {
    udp_payloads(DNS_PCAP)
        .into_iter()
        .filter(|(_, dp, _)| *dp == 53)
        .map(|(_, _, p)| p)
        .collect()
}

fn answers() -> Vec<Vec<u8>> {
    udp_payloads(DNS_PCAP)
        .into_iter()
        .filter(|(sp, _, _)| *sp == 53)
        .map(|(_, _, p)| p)
        .collect()
}

/// The capture's world: lan.test with web = 10.0.0.11, db = .12 and .13
/// (two hosts carrying the alias), and a second network.
const TOPO: &str = r#"
[switch]
name = "t"
workers = 1

[[network]]
name = "lan"
subnet = "10.0.0.0/24"
address = "10.0.0.2"
domain = "lan.test"
arp_suppress = true

[[network]]
name = "blue"
subnet = "10.0.1.0/24"
address = "10.0.1.1"
dns_upstream = "10.0.1.53"

[[host]]
name = "web"
networks = ["lan"]
ip = ["10.0.0.11/24"]

[[host]]
name = "db1"
networks = ["lan"]
ip = ["10.0.0.12/24"]
aliases = ["db"]

[[host]]
name = "db2"
networks = ["lan", "blue"]
ip = ["10.0.0.13/24", "10.0.1.13/24"]
aliases = ["db"]

[[host]]
name = "only-blue"
networks = ["blue"]
"#;

fn names() -> Names {
    let topo = config::parse("test", TOPO).expect("test topology parses");
    Names::from_topology(&topo)
}

fn ask(n: &Names, net: u16, name: &str, qtype: u16) -> (Reply, NetCounters) {
    let c = NetCounters::default();
    let q = dns::build_query(0x1234, name, qtype, Some(1232)).expect("name");
    let r = respond(n, net, &q, &mut Rotation::default(), &c);
    (r, c)
}

fn sent(r: &Reply) -> dns::ParsedAnswer {
    match r {
        Reply::Send(m) => dns::parse_answer(m).expect("an answer"),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn a_records(p: &dns::ParsedAnswer) -> Vec<Ipv4Addr> {
    p.answers
        .iter()
        .filter(|(t, d)| *t == dns::TYPE_A && d.len() == 4)
        .map(|(_, d)| Ipv4Addr::new(d[0], d[1], d[2], d[3]))
        .collect()
}

#[test]
fn capture_queries_parse() {
    let qs = queries();
    assert_eq!(qs.len(), 6, "six UDP queries in dns.pcap");
    let q = dns::parse_query(&qs[0]).expect("dig's query parses");
    assert_eq!(q.id, 28351);
    assert_eq!(q.qname, "web.lan.test");
    assert_eq!(q.qtype, dns::TYPE_A);
    assert!(q.recursion_desired());
    // dig: EDNS0, 1232 bytes, with a COOKIE option.
    let e = q.edns.expect("EDNS0");
    assert_eq!((e.udp_size, e.version), (1232, 0));
    assert_eq!(q.udp_limit(), 1232);
    let ptr = dns::parse_query(&qs[4]).expect("PTR query parses");
    assert_eq!(ptr.qname, "11.0.0.10.in-addr.arpa");
    assert_eq!(ptr.qtype, dns::TYPE_PTR);
    let plain = dns::parse_query(&qs[5]).expect("query without EDNS0");
    assert_eq!(plain.edns, None);
    assert_eq!(plain.udp_limit(), 512);
}

#[test]
fn capture_answers_parse() {
    let ans = answers();
    assert_eq!(ans.len(), 6);
    let db = dns::parse_answer(&ans[1]).expect("answer");
    assert_eq!(db.rcode, dns::RCODE_NOERROR);
    assert_eq!(a_records(&db).len(), 2);
    let nx = dns::parse_answer(&ans[3]).expect("answer");
    assert_eq!(nx.rcode, dns::RCODE_NXDOMAIN);
    // Answers are responses: the responder never answers them.
    for a in &ans {
        assert_eq!(
            dns::parse_query(a).map_err(|m| m.why),
            Err(dns::Why::Response)
        );
    }
}

/// Our answers to the captured queries say what dnsmasq said.
#[test]
fn capture_queries_answered_like_dnsmasq() {
    let n = names();
    let mut rot = Rotation::default();
    let c = NetCounters::default();
    for (q, theirs) in queries().iter().zip(answers()) {
        let ours = sent(&respond(&n, 0, q, &mut rot, &c));
        let theirs = dns::parse_answer(&theirs).expect("dnsmasq's answer");
        assert_eq!(ours.id, theirs.id);
        assert_eq!(ours.rcode, theirs.rcode, "rcode for query {}", ours.id);
        let mut a = a_records(&ours);
        let mut b = a_records(&theirs);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(ours.answers.len(), theirs.answers.len());
        // OPT echoed exactly when the query had one.
        assert_eq!(ours.edns.is_some(), theirs.edns.is_some());
    }
    assert_eq!(c.dns_queries.get(), 6);
    assert_eq!(c.dns_nxdomain.get(), 1);
    assert_eq!(c.dns_malformed.get(), 0);
}

#[test]
fn ptr_names_the_host() {
    let n = names();
    let (r, _) = ask(&n, 0, "11.0.0.10.in-addr.arpa", dns::TYPE_PTR);
    let p = sent(&r);
    assert_eq!(p.rcode, dns::RCODE_NOERROR);
    assert_eq!(p.answers.len(), 1);
    assert_eq!(dns::name_to_string(&p.answers[0].1), "web.lan.test");
    // In the subnet but nobody's: NXDOMAIN. Outside: not ours.
    let (r, _) = ask(&n, 0, "99.0.0.10.in-addr.arpa", dns::TYPE_PTR);
    assert_eq!(sent(&r).rcode, dns::RCODE_NXDOMAIN);
    let (r, _) = ask(&n, 0, "1.1.168.192.in-addr.arpa", dns::TYPE_PTR);
    assert_eq!(sent(&r).rcode, dns::RCODE_SERVFAIL);
}

#[test]
fn names_short_network_and_domain_case_insensitive() {
    let n = names();
    for name in [
        "web",
        "web.lan",
        "web.lan.test",
        "WEB.Lan.TEST",
        "web.lan.test.",
    ] {
        let (r, c) = ask(&n, 0, name, dns::TYPE_A);
        let p = sent(&r);
        assert_eq!(p.rcode, dns::RCODE_NOERROR, "{name}");
        assert!(p.authoritative);
        assert_eq!(a_records(&p), vec![Ipv4Addr::new(10, 0, 0, 11)], "{name}");
        assert_eq!(c.dns_answered.get(), 1);
    }
    // The question is echoed with the case it was sent in (DNS 0x20).
    let q = dns::build_query(7, "WeB.lAn", dns::TYPE_A, None).expect("name");
    let c = NetCounters::default();
    let Reply::Send(m) = respond(&n, 0, &q, &mut Rotation::default(), &c) else {
        panic!("no answer")
    };
    assert_eq!(&m[12..12 + 9], b"\x03WeB\x03lAn\x00");
}

#[test]
fn decisions_follow_docker() {
    let n = names();
    // Known name, no address of the family: empty NOERROR.
    let p = sent(&ask(&n, 0, "web", dns::TYPE_AAAA).0);
    assert_eq!((p.rcode, p.answers.len()), (dns::RCODE_NOERROR, 0));
    // Known name, other types: empty NOERROR too.
    let p = sent(&ask(&n, 0, "web.lan", 15).0);
    assert_eq!((p.rcode, p.answers.len()), (dns::RCODE_NOERROR, 0));
    // Unknown in the domain or the network: NXDOMAIN.
    for name in ["nosuch.lan.test", "nosuch.lan", "a.b.lan.test"] {
        assert_eq!(
            sent(&ask(&n, 0, name, dns::TYPE_A).0).rcode,
            dns::RCODE_NXDOMAIN,
            "{name}"
        );
    }
    // Outside, no upstream: SERVFAIL. A name of another network is not
    // answered here.
    for name in ["example.com", "only-blue", "only-blue.blue"] {
        let (r, c) = ask(&n, 0, name, dns::TYPE_A);
        assert_eq!(sent(&r).rcode, dns::RCODE_SERVFAIL, "{name}");
        assert_eq!(c.dns_servfail.get(), 1);
    }
    // The other network answers its own, and forwards the rest upstream.
    let p = sent(&ask(&n, 1, "only-blue", dns::TYPE_A).0);
    assert_eq!(p.rcode, dns::RCODE_NOERROR);
    assert_eq!(a_records(&p).len(), 1);
    assert_eq!(
        a_records(&sent(&ask(&n, 1, "db", dns::TYPE_A).0)),
        vec![Ipv4Addr::new(10, 0, 1, 13)],
        "only addresses on the querier's network"
    );
    match ask(&n, 1, "example.com", dns::TYPE_A).0 {
        Reply::Forward { upstream, query } => {
            assert_eq!(upstream, Ipv4Addr::new(10, 0, 1, 53));
            assert_eq!(query.qname, "example.com");
        }
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn several_addresses_rotate() {
    let n = names();
    let q = dns::build_query(1, "db", dns::TYPE_A, None).expect("name");
    let mut rot = Rotation::default();
    let c = NetCounters::default();
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let p = sent(&respond(&n, 0, &q, &mut rot, &c));
        let a = a_records(&p);
        assert_eq!(a.len(), 2, "all addresses in every answer");
        firsts.push(a[0]);
    }
    assert_ne!(firsts[0], firsts[1]);
    assert_eq!(firsts[0], firsts[2]);
    assert_eq!(firsts[1], firsts[3]);
}

#[test]
fn large_answers_truncate_unless_edns_allows() {
    let mut n = names();
    let many: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    n.nets[0].names.insert(
        "many".into(),
        names::NameEntry {
            kind: names::NameKind::Alias,
            v4: many,
            v6: vec![],
        },
    );
    let c = NetCounters::default();
    let q = dns::build_query(1, "many", dns::TYPE_A, None).expect("name");
    let Reply::Send(m) = respond(&n, 0, &q, &mut Rotation::default(), &c) else {
        panic!("no answer")
    };
    assert!(m.len() <= 512);
    let p = dns::parse_answer(&m).expect("answer");
    assert!(p.truncated);
    assert!(!p.answers.is_empty() && p.answers.len() < 60);
    assert_eq!(c.dns_truncated.get(), 1);
    let q = dns::build_query(1, "many", dns::TYPE_A, Some(4096)).expect("name");
    let Reply::Send(m) = respond(&n, 0, &q, &mut Rotation::default(), &c) else {
        panic!("no answer")
    };
    let p = dns::parse_answer(&m).expect("answer");
    assert!(!p.truncated);
    assert_eq!(p.answers.len(), 60);
    assert!(m.len() <= dns::UDP_EDNS_MAX);
    assert_eq!(p.edns.map(|e| e.udp_size), Some(dns::UDP_EDNS_MAX as u16));
}

#[test]
fn edns_version_other_than_zero_is_badvers() {
    let n = names();
    let mut q = dns::build_query(1, "web", dns::TYPE_A, Some(1232)).expect("name");
    // OPT TTL: ext rcode, version, flags. Version 1:
    let at = q.len() - 5;
    q[at] = 1;
    let p = sent(&respond(
        &n,
        0,
        &q,
        &mut Rotation::default(),
        &NetCounters::default(),
    ));
    assert_eq!(p.rcode, dns::RCODE_BADVERS);
}

/// Handcrafted bad messages: each is counted, none panics, and the ones
/// with a readable header get FORMERR.
#[test]
fn malformed_messages() {
    let n = names();
    let hdr = |qd: u16, an: u16, ar: u16| {
        let mut m = vec![0xab, 0xcd, 0x01, 0x00];
        m.extend_from_slice(&qd.to_be_bytes());
        m.extend_from_slice(&an.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&ar.to_be_bytes());
        m
    };
    let mut cases: Vec<(&str, Vec<u8>, dns::Why)> = vec![
        ("empty", vec![], dns::Why::Short),
        ("short", vec![1, 2, 3], dns::Why::Short),
        ("no question", hdr(0, 0, 0), dns::Why::QuestionCount),
        ("two questions", hdr(2, 0, 0), dns::Why::QuestionCount),
    ];
    let mut m = hdr(1, 0, 0);
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    cases.push(("pointer to itself", m, dns::Why::BadPointer));
    let mut m = hdr(1, 0, 0);
    m.extend_from_slice(&[1, b'a', 0xc0, 0x0c, 0, 1, 0, 1]);
    cases.push(("pointer loop", m, dns::Why::BadPointer));
    let mut m = hdr(1, 0, 0);
    m.extend_from_slice(&[0xc0, 0x20, 0, 1, 0, 1]);
    cases.push(("forward pointer", m, dns::Why::BadPointer));
    let mut m = hdr(1, 0, 0);
    m.extend_from_slice(&[5, b'a', b'b']);
    cases.push(("label past the end", m, dns::Why::BadName));
    let mut m = hdr(1, 0, 0);
    m.extend_from_slice(&[0x40, 0, 0, 1, 0, 1]);
    cases.push(("reserved label type", m, dns::Why::BadName));
    let mut m = hdr(1, 0, 0);
    for _ in 0..5 {
        m.push(63);
        m.extend_from_slice(&[b'x'; 63]);
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    cases.push(("name over 255 bytes", m, dns::Why::BadName));
    let mut m = hdr(1, 0, 0);
    m.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0]);
    cases.push(("question cut short", m, dns::Why::MissingRecords));
    let mut m = hdr(1, 3, 5);
    m.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
    cases.push(("claims records it lacks", m, dns::Why::MissingRecords));
    let mut m = hdr(1, 0, 2);
    m.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
    for _ in 0..2 {
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    cases.push(("two OPT records", m, dns::Why::BadOpt));
    for (what, m, why) in cases {
        assert_eq!(dns::parse_query(&m).map_err(|e| e.why), Err(why), "{what}");
        let c = NetCounters::default();
        let r = respond(&n, 0, &m, &mut Rotation::default(), &c);
        assert_eq!(c.dns_malformed.get(), 1, "{what} counted");
        if m.len() >= 12 {
            let p = sent(&r);
            assert_eq!(p.rcode, dns::RCODE_FORMERR, "{what}");
            assert_eq!(p.id, 0xabcd);
        } else {
            assert_eq!(r, Reply::Nothing, "{what}");
        }
    }
}

/// Random bytes, random corruptions of real queries, and every prefix of
/// them: no panic, ever; every message is counted exactly once.
#[test]
fn garbage_never_panics() {
    let n = names();
    let c = NetCounters::default();
    let mut rot = Rotation::default();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut sent_count = 0u64;
    for _ in 0..20000 {
        let len = (next() % 600) as usize;
        let m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = respond(&n, 0, &m, &mut rot, &c);
        sent_count += 1;
    }
    for q in queries() {
        for cut in 0..q.len() {
            let _ = respond(&n, 0, &q[..cut], &mut rot, &c);
            sent_count += 1;
        }
        for _ in 0..2000 {
            let mut m = q.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            let _ = respond(&n, 0, &m, &mut rot, &c);
            sent_count += 1;
        }
    }
    assert_eq!(c.dns_queries.get(), sent_count);
    assert!(c.dns_malformed.get() > 0);
    // And the responder still answers.
    let (r, _) = ask(&n, 0, "web", dns::TYPE_A);
    assert_eq!(a_records(&sent(&r)), vec![Ipv4Addr::new(10, 0, 0, 11)]);
}

#[test]
fn name_wire_round_trip() {
    let w = dns::name_to_wire("h1.lan").expect("valid");
    assert_eq!(w, b"\x02h1\x03lan\x00");
    assert_eq!(dns::name_to_string(&w), "h1.lan");
    assert_eq!(dns::name_to_wire(""), Some(vec![0]));
    assert_eq!(dns::name_to_wire("a..b"), None);
    assert_eq!(dns::name_to_wire(&"x".repeat(64)), None);
    // Non-printable bytes are escaped, so they cannot alias a real name.
    assert_eq!(dns::name_to_string(b"\x03a.b\x00"), "a\\046b");
}

#[test]
fn build_answer_layout() {
    let q = dns::parse_query(&dns::build_query(9, "web", dns::TYPE_A, None).expect("q"))
        .expect("parses");
    let f = dns::AnswerFlags {
        rcode: 0,
        authoritative: true,
        recursion_available: false,
        ttl: 600,
    };
    let (m, tc) = dns::build_answer(&q, f, &[Rdata::A(Ipv4Addr::new(1, 2, 3, 4))]);
    assert!(!tc);
    let mut want = vec![0, 9, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
    want.extend_from_slice(b"\x03web\x00\x00\x01\x00\x01");
    want.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4, 1, 2, 3, 4]);
    assert_eq!(m, want);
}

#[test]
fn decide_unknown_network_is_servfail() {
    let n = names();
    let q = dns::parse_query(&dns::build_query(9, "web", dns::TYPE_A, None).expect("q"))
        .expect("parses");
    assert_eq!(
        names::decide(&n, 77, &q, &mut Rotation::default()),
        Decision::ServFail
    );
}

#[test]
fn topology_arp_entries() {
    let n = names();
    // Only the network with arp_suppress contributes.
    let ips: Vec<Ipv4Addr> = n.arp.iter().map(|e| e.1).collect();
    assert_eq!(
        ips,
        vec![
            Ipv4Addr::new(10, 0, 0, 11),
            Ipv4Addr::new(10, 0, 0, 12),
            Ipv4Addr::new(10, 0, 0, 13)
        ]
    );
    assert!(n.arp.iter().all(|e| e.0 == 0));
}

#[test]
fn arp_reply_in_the_place_of_the_target() {
    let parse = |f: &[u8]| ArpRepr::parse_frame(f).ok();
    let req = frames(ARP_PCAP)
        .into_iter()
        .filter_map(parse)
        .find(|a| a.op == ArpOp::Request)
        .expect("an ARP request in arp_icmp.pcap");
    let target_mac = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    let mut buf = [0u8; 64];
    let n = arp::write_reply(&req, target_mac, &mut buf).expect("fits");
    assert_eq!(n, shunt_parsers::arp::FRAME_LEN);
    let f = &buf[..n];
    assert_eq!(&f[0..6], req.sender_mac.as_bytes(), "to the requester");
    assert_eq!(&f[6..12], target_mac.as_bytes(), "from the target");
    let rep = parse(f).expect("an ARP frame");
    assert_eq!(rep.op, ArpOp::Reply);
    assert_eq!((rep.sender_mac, rep.sender_ip), (target_mac, req.target_ip));
    assert_eq!(
        (rep.target_mac, rep.target_ip),
        (req.sender_mac, req.sender_ip)
    );
    // Compare with the kernel's own reply in the capture.
    let kernel = frames(ARP_PCAP)
        .into_iter()
        .filter_map(parse)
        .find(|a| {
            a.op == ArpOp::Reply && a.target_ip == req.sender_ip && a.sender_ip == req.target_ip
        })
        .expect("the kernel's reply");
    assert_eq!(
        (rep.sender_ip, rep.target_mac, rep.target_ip),
        (kernel.sender_ip, kernel.target_mac, kernel.target_ip)
    );
    // Short buffers and non-ARP frames are refused, not panicked on.
    assert_eq!(arp::write_reply(&req, target_mac, &mut [0u8; 10]), None);
    assert_eq!(parse(&f[..30]), None);
    assert_eq!(parse(&[]), None);
}

#[test]
fn arp_table_ignores_nonsense_and_tracks_changes() {
    let mut t = arp::ArpTable::default();
    t.insert(0, Ipv4Addr::UNSPECIFIED, MacAddr([2, 0, 0, 0, 0, 1]));
    t.insert(0, Ipv4Addr::new(10, 0, 0, 1), MacAddr::BROADCAST);
    t.insert(0, Ipv4Addr::new(10, 0, 0, 1), MacAddr::ZERO);
    assert!(!t.take_dirty());
    t.insert(0, Ipv4Addr::new(10, 0, 0, 1), MacAddr([2, 0, 0, 0, 0, 1]));
    assert!(t.take_dirty());
    t.insert(0, Ipv4Addr::new(10, 0, 0, 1), MacAddr([2, 0, 0, 0, 0, 1]));
    assert!(!t.take_dirty(), "the same entry again changes nothing");
    t.remove(0, Ipv4Addr::new(10, 0, 0, 1));
    assert!(t.take_dirty());
}
