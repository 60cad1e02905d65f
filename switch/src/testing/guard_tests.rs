//! Stage tests of what protects the switch (docs/storm.md): storm control
//! cuts a class to its rate and counts the excess, link-local frames are
//! dropped or flooded as the network says, a port's learning limit holds,
//! a move is handed to the flap queue and a blocked MAC is not learned.

use crate::counters::{DropReason, FloodCause};
use crate::pipeline::Verdict;
use crate::testing::{port, Rig};

const NET: &str = "[switch]\nname='g'\n[[network]]\nname='lan'\n";

fn topo(extra: &str, host0: &str) -> String {
    format!("{NET}{extra}[[host]]\nname='a'\nnetworks=['lan']\n{host0}[[host]]\nname='b'\nnetworks=['lan']\n[[host]]\nname='c'\nnetworks=['lan']\n")
}

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.resize(60, 0);
    f
}

const BCAST: [u8; 6] = [0xff; 6];
const LLDP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];

fn src(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x11, b[0], b[1], b[2], b[3]]
}

/// Runs `frames` in on port `p` at `now_ms`; the verdicts.
fn feed(rig: &mut Rig, p: usize, frames: &[Vec<u8>], now_ms: u64) -> Vec<Verdict> {
    for f in frames {
        assert!(rig.ports[p].push(f));
    }
    let n = rig.receive(port(p));
    assert_eq!(n, frames.len());
    rig.process(port(p), now_ms);
    let v = (0..n).map(|i| rig.batch.meta[i].verdict).collect();
    rig.transmit();
    v
}

fn drops(rig: &Rig, p: usize, r: DropReason) -> u64 {
    rig.counters.port(port(p).into()).drops[r as usize].get()
}

#[test]
fn storm_control_cuts_broadcast_to_its_rate() {
    let mut rig = Rig::new(&topo(
        "[[storm]]\nport='a.lan'\nbroadcast=1000\nburst='50ms'\n",
        "",
    ));
    // 50 frames of depth: a batch of 63 broadcasts (and a unicast) from
    // a.lan loses its last 13 broadcasts; the unicast is not touched.
    let mut frames: Vec<Vec<u8>> = (0..64).map(|_| frame(BCAST, src(1))).collect();
    frames[10] = frame(src(99), src(1));
    let v = feed(&mut rig, 0, &frames, 10_000);
    let dropped: Vec<usize> = (0..64)
        .filter(|&i| v[i] == Verdict::Drop(DropReason::StormBroadcast))
        .collect();
    assert_eq!(dropped, (51..64).collect::<Vec<_>>(), "the last ones go");
    assert_eq!(v[10], Verdict::Flood(FloodCause::UnknownUnicast));
    assert_eq!(drops(&rig, 0, DropReason::StormBroadcast), 13);
    let c = rig.counters.port(port(0).into());
    assert_eq!(c.flooded[FloodCause::Broadcast as usize].get(), 50);
    // 20 ms later: 20 more.
    let frames: Vec<Vec<u8>> = (0..64).map(|_| frame(BCAST, src(1))).collect();
    let v = feed(&mut rig, 0, &frames, 10_020);
    let passed = v.iter().filter(|v| matches!(v, Verdict::Flood(_))).count();
    assert_eq!(passed, 20);
    // Another port has no storm control.
    let v = feed(&mut rig, 1, &frames, 10_020);
    assert!(v
        .iter()
        .all(|v| *v == Verdict::Flood(FloodCause::Broadcast)));
    // Off at run time: everything passes again.
    rig.guard.storm.set(port(0), [None; 3]);
    let v = feed(&mut rig, 0, &frames, 10_020);
    assert!(v
        .iter()
        .all(|v| *v == Verdict::Flood(FloodCause::Broadcast)));
}

#[test]
fn storm_control_classes_are_separate() {
    let mut rig = Rig::new(&topo(
        "[[storm]]\nport='a'\nunknown_unicast=0\nmulticast=1000\nburst='10ms'\n",
        "",
    ));
    let mut frames = Vec::new();
    for i in 0..20 {
        frames.push(frame(src(1000 + i), src(1)));
        frames.push(frame([0x01, 0x00, 0x5e, 0, 0, 1], src(1)));
        frames.push(frame(BCAST, src(1)));
    }
    let v = feed(&mut rig, 0, &frames, 5_000);
    let count = |want: Verdict| v.iter().filter(|x| **x == want).count();
    assert_eq!(count(Verdict::Drop(DropReason::StormUnknownUnicast)), 20);
    assert_eq!(count(Verdict::Drop(DropReason::StormMulticast)), 10);
    assert_eq!(count(Verdict::Flood(FloodCause::Multicast)), 10);
    assert_eq!(count(Verdict::Flood(FloodCause::Broadcast)), 20);
}

#[test]
fn link_local_frames_drop_or_flood() {
    let mut rig = Rig::new(&topo("", ""));
    let v = feed(&mut rig, 0, &[frame(LLDP, src(1))], 0);
    assert_eq!(v[0], Verdict::Drop(DropReason::LinkLocal));
    let fwd = format!("{NET}link_local='forward'\n[[host]]\nname='a'\nnetworks=['lan']\n[[host]]\nname='b'\nnetworks=['lan']\n");
    let mut rig = Rig::new(&fwd);
    let v = feed(&mut rig, 0, &[frame(LLDP, src(1))], 0);
    assert_eq!(v[0], Verdict::Flood(FloodCause::Multicast));
    let sent: Vec<Vec<u8>> = rig.ports[1].sent().map(|f| f.to_vec()).collect();
    assert_eq!(sent, vec![frame(LLDP, src(1))], "untouched, to b");
}

#[test]
fn max_learned_stops_learning_not_forwarding() {
    let mut rig = Rig::new(&topo("", "max_learned=10\n"));
    let frames: Vec<Vec<u8>> = (0..30).map(|i| frame(BCAST, src(i))).collect();
    let v = feed(&mut rig, 0, &frames, 0);
    assert!(v
        .iter()
        .all(|v| *v == Verdict::Flood(FloodCause::Broadcast)));
    assert_eq!(drops(&rig, 0, DropReason::PortLearnLimit), 20);
    assert_eq!(rig.fdb.len(), 10);
    // Another port learns.
    let frames: Vec<Vec<u8>> = (100..130).map(|i| frame(BCAST, src(i))).collect();
    feed(&mut rig, 1, &frames, 0);
    assert_eq!(rig.fdb.len(), 40);
    // A flush gives room back.
    rig.fdb.flush_port(0);
    let frames: Vec<Vec<u8>> = (200..205).map(|i| frame(BCAST, src(i))).collect();
    feed(&mut rig, 0, &frames, 0);
    assert_eq!(rig.fdb.len(), 35);
}

#[test]
fn moves_reach_the_flap_queue_and_blocks_hold() {
    let mut rig = Rig::new(&format!(
        "[switch]\nname='g'\nmac_flap={{ moves = 2 }}\n{}",
        &topo("", "")[NET.len() - "[[network]]\nname='lan'\n".len()..]
    ));
    assert!(rig.guard.flap.enabled());
    let m = src(7);
    feed(&mut rig, 0, &[frame(BCAST, m)], 0);
    feed(&mut rig, 1, &[frame(BCAST, m)], 1);
    feed(&mut rig, 0, &[frame(BCAST, m)], 2);
    let mut got = Vec::new();
    rig.guard
        .flap
        .drain(|mv| got.push((mv.from, mv.to, mv.at_ms)));
    assert_eq!(got, vec![(0, 1, 1), (1, 0, 2)]);
    // Blocked: the MAC is not learned, its frames still go.
    rig.fdb.remove(0, &m);
    assert!(rig.guard.flap.block(0, &m));
    let v = feed(&mut rig, 1, &[frame(BCAST, m)], 3);
    assert_eq!(v[0], Verdict::Flood(FloodCause::Broadcast));
    assert_eq!(rig.fdb.lookup_port(0, &m), None);
    assert_eq!(drops(&rig, 1, DropReason::MacFlapBlocked), 1);
    rig.guard.flap.unblock(0, &m);
    feed(&mut rig, 1, &[frame(BCAST, m)], 4);
    assert_eq!(rig.fdb.lookup_port(0, &m), Some(1));
}
