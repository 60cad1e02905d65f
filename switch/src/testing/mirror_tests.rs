//! Mirror ports (pipeline/mirror.rs): which frames reach a mirror's
//! destination, in which shape, how often, and what is counted.

use crate::counters::DropReason;
use crate::ids::Egress;
use crate::pipeline::mirror::Mirrored;
use crate::pipeline::{Plan, Verdict};
use crate::testing::{port, Rig};

/// a.lan = 0, b.lan = 1, mon.lan = 2, up0 = 3 (a trunk carrying lan
/// tagged 10).
const TOPO: &str = "[[network]]\nname = 'lan'\nvlan = 10\n\
    [[host]]\nname = 'a'\nnetworks = ['lan']\n\
    [[host]]\nname = 'b'\nnetworks = ['lan']\n\
    [[host]]\nname = 'mon'\nnetworks = ['lan']\n\
    [[port]]\nname = 'up0'\nmode = 'trunk'\nnetworks = ['lan']\n";
const A: usize = 0;
const B: usize = 1;
const MON: usize = 2;
const UP: usize = 3;

fn rig(mirrors: &str) -> Rig {
    Rig::new(&format!("{TOPO}{mirrors}"))
}

fn mirror(source: &str, direction: &str) -> String {
    format!("[[mirror]]\nname = 'm'\nsource = [{source}]\ndirection = '{direction}'\ndestination = 'mon'\n")
}

fn frame(dst: [u8; 6], src: [u8; 6], seq: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.push(seq);
    f.resize(60, 0);
    f
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const BCAST: [u8; 6] = [0xff; 6];

/// Runs `frames` in from port `ingress` and sends the copies; returns
/// what each port sent.
fn feed(r: &mut Rig, ingress: usize, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    for p in &mut r.ports {
        p.clear_sent();
    }
    for f in frames {
        assert!(r.ports[ingress].push(f));
    }
    r.step(port(ingress), 1000);
    (0..r.ports.len())
        .map(|p| r.ports[p].sent().map(|f| f.to_vec()).collect())
        .collect()
}

fn counters(r: &Rig, p: usize) -> (u64, u64, u64) {
    let c = r.counters.port(port(p).into());
    (
        c.mirrored.get(),
        c.mirror_sent.get(),
        c.mirror_dropped.get(),
    )
}

#[test]
fn no_mirror_no_plan() {
    let r = rig("");
    assert!(r.plan.mirror.is_none());
    // mon.lan forwards as any host port.
    assert!(r.plan.nets[0].members.contains(&port(MON)));
}

#[test]
fn in_copies_are_the_frames_as_received() {
    let mut r = rig(&mirror("'a'", "in"));
    // The destination carries no network while it is one.
    assert!(!r.plan.nets[0].members.contains(&port(MON)));
    let f = frame(BCAST, MAC_A, 1);
    let sent = feed(&mut r, A, std::slice::from_ref(&f));
    // Flooded to b and up0 (tagged), not to mon but as a mirror copy.
    assert_eq!(sent[B], vec![f.clone()]);
    assert_eq!(sent[UP].len(), 1);
    assert_eq!(&sent[UP][0][12..14], &[0x81, 0x00], "up0's copy is tagged");
    assert_eq!(sent[MON], vec![f], "mon: the frame as a sent it");
    assert_eq!(counters(&r, A), (1, 0, 0));
    assert_eq!(counters(&r, MON), (0, 1, 0));
    // What b sends is not mirrored (in only, a only).
    let sent = feed(&mut r, B, &[frame(MAC_A, MAC_B, 2)]);
    assert_eq!(sent[A].len(), 1);
    assert!(sent[MON].is_empty());
}

#[test]
fn out_copies_are_the_copies_as_sent() {
    let mut r = rig(&mirror("'up0'", "out"));
    let f = frame(BCAST, MAC_A, 1);
    let sent = feed(&mut r, A, &[f]);
    assert_eq!(sent[UP].len(), 1);
    // As sent out of the trunk: with its tag pushed.
    assert_eq!(sent[MON], sent[UP]);
    assert_eq!(&sent[MON][0][12..16], &[0x81, 0x00, 0x00, 10]);
    assert_eq!(counters(&r, UP), (1, 0, 0));
    // A frame received on up0 is not an `out` copy.
    let mut tagged = frame(MAC_A, [2, 0, 0, 0, 0, 0xc], 2);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 10]);
    let sent = feed(&mut r, UP, &[tagged]);
    assert_eq!(sent[A].len(), 1);
    assert!(sent[MON].is_empty());
}

#[test]
fn a_frame_is_mirrored_once_whatever_sources_it_crosses() {
    let mut r = rig(&mirror("'a', 'b', 'up0'", "both"));
    // Learn b, then a unicast a -> b crosses two sources (in a, out b).
    feed(&mut r, B, &[frame(BCAST, MAC_B, 0)]);
    let f = frame(MAC_B, MAC_A, 1);
    let sent = feed(&mut r, A, std::slice::from_ref(&f));
    assert_eq!(sent[B], vec![f.clone()]);
    assert_eq!(sent[MON], vec![f], "one copy, as received");
    // A broadcast from mon-less b floods to a and up0: both sources out,
    // and b a source in: still one copy.
    let g = frame(BCAST, MAC_B, 2);
    let sent = feed(&mut r, B, std::slice::from_ref(&g));
    assert_eq!(sent[MON], vec![g]);
    // A batch of several frames: one copy each.
    let frames: Vec<Vec<u8>> = (3..40).map(|i| frame(BCAST, MAC_A, i)).collect();
    let sent = feed(&mut r, A, &frames);
    assert_eq!(sent[MON], frames);
    assert_eq!(counters(&r, MON).1, 1 + 1 + 1 + 37);
}

#[test]
fn the_destination_takes_no_part_in_forwarding() {
    let mut r = rig(&mirror("'a'", "in"));
    let sent = feed(&mut r, MON, &[frame(BCAST, [2, 0, 0, 0, 0, 0xd], 1)]);
    assert!(sent.iter().all(|s| s.is_empty()), "{sent:?}");
    assert_eq!(
        r.batch.meta[0].verdict,
        Verdict::Drop(DropReason::MirrorDestination)
    );
    let drops = |r: &Rig| {
        r.counters.port(port(MON).into()).drops[DropReason::MirrorDestination as usize].get()
    };
    assert_eq!(drops(&r), 1);
    // Nothing learned there: a frame to that MAC is flooded, not sent to mon.
    let sent = feed(&mut r, B, &[frame([2, 0, 0, 0, 0, 0xd], MAC_B, 2)]);
    assert!(sent[MON].is_empty());
    assert_eq!(sent[A].len(), 1);
    // a's in-copy still reaches mon.
    let sent = feed(&mut r, A, &[frame(BCAST, MAC_A, 3)]);
    assert_eq!(sent[MON].len(), 1);
}

#[test]
fn copies_queue_after_the_originals_as_handles() {
    let mut r = rig(&mirror("'a', 'up0'", "both"));
    for i in 0..3 {
        assert!(r.ports[A].push(&frame(BCAST, MAC_A, i)));
    }
    assert_eq!(r.receive(port(A)), 3);
    r.process(port(A), 1000);
    let mon: Egress = port(MON).into();
    // The destination's queue is the last dirtied: its copies go last.
    assert_eq!(r.tx.dirty.last(), Some(&mon));
    let q = r.tx.queue(mon);
    assert_eq!(q.len(), 3);
    assert!(q.iter().all(|e| e.mirror == Mirrored::Received));
    assert_eq!(q.iter().map(|e| e.frame).collect::<Vec<_>>(), vec![0, 1, 2]);
    r.transmit();
}

#[test]
fn mirrors_come_and_go_with_the_plan() {
    let mut r = rig("");
    let f = frame(BCAST, MAC_A, 1);
    let sent = feed(&mut r, A, std::slice::from_ref(&f));
    assert_eq!(sent[MON], vec![f.clone()], "a flood reaches mon");
    // `shunt mirror add` publishes a new plan ...
    let topo = crate::config::parse("t", &format!("{TOPO}{}", mirror("'a'", "in"))).expect("ok");
    r.plan = Plan::from_topology(&topo);
    let sent = feed(&mut r, A, std::slice::from_ref(&f));
    assert_eq!(sent[MON], vec![f.clone()], "the mirror copy only");
    assert_eq!(counters(&r, MON).1, 1);
    // ... and `del` another.
    let topo = crate::config::parse("t", TOPO).expect("ok");
    r.plan = Plan::from_topology(&topo);
    let sent = feed(&mut r, A, std::slice::from_ref(&f));
    assert_eq!(sent[MON], vec![f], "flooded again");
    assert_eq!(counters(&r, MON).1, 1, "not a mirror copy");
}

#[test]
fn a_refused_copy_is_counted_as_a_mirror_copy_dropped() {
    let mut r = rig(&mirror("'a'", "in"));
    r.port_up[MON].store(false, std::sync::atomic::Ordering::Relaxed);
    let sent = feed(&mut r, A, &[frame(BCAST, MAC_A, 1)]);
    assert!(sent[MON].is_empty());
    assert_eq!(sent[B].len(), 1, "the original goes on");
    assert_eq!(counters(&r, MON), (0, 0, 1));
    let c = r.counters.port(port(MON).into());
    assert_eq!(c.drops[DropReason::PortDown as usize].get(), 1);
}

/// A host port, the VXLAN underlay (mirrored `out`), and the monitor.
const VXLAN_TOPO: &str = r#"
[[network]]
name = "ovl"
subnet = "10.0.0.0/24"
vni = 1000
vtep_peers = ["192.0.2.2"]

[[port]]
name = "t0"
interface = "t0"
network = "ovl"

[[port]]
name = "ul0"
interface = "ul0"
mode = "underlay"

[[port]]
name = "mon"
interface = "mon"
network = "ovl"

[vtep]
port = "ul0"
address = "192.0.2.1/24"

[[mirror]]
name = "m"
source = ["ul0"]
direction = "out"
destination = "mon"
"#;

#[test]
fn an_out_copy_towards_a_vtep_carries_the_outer_headers() {
    let topo = crate::config::parse("t.toml", VXLAN_TOPO).expect("topology");
    let mut r = Rig::new(VXLAN_TOPO).with_stack(&topo).expect("stack");
    let ul = r.stack.as_ref().and_then(|s| s.underlay.as_ref());
    ul.expect("underlay").set_nexthop(
        std::net::Ipv4Addr::new(192, 0, 2, 2),
        shunt_parsers::MacAddr([2, 0, 0, 0, 0, 2]),
    );
    let f = frame(BCAST, MAC_A, 1);
    let sent = feed(&mut r, 0, std::slice::from_ref(&f));
    // Flooded to the remote VTEP only (mon is out of the network).
    assert_eq!(sent[1].len(), 1, "one VXLAN packet on the underlay");
    let outer = &sent[1][0];
    assert_eq!(outer.len(), f.len() + crate::pipeline::vxlan::OVERHEAD);
    assert_eq!(&outer[outer.len() - f.len()..], &f[..], "the inner frame");
    assert_eq!(sent[2], vec![outer.clone()], "mon: the packet as sent");
    assert_eq!(counters(&r, 1), (1, 0, 0));
    assert_eq!(counters(&r, 2), (0, 1, 0));
}

#[test]
fn a_queue_entry_stays_small() {
    // 4 bytes before mirrors; every worker holds Egress::SLOTS x BATCH.
    assert_eq!(std::mem::size_of::<crate::pipeline::TxEntry>(), 8);
}
