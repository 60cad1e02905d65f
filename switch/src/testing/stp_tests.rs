//! Spanning-tree states in the pipeline (pipeline/stp.rs): frames in on a
//! port that is not forwarding are dropped as `stp_discarding`, a
//! learning port learns, a discarding one does not, floods leave such
//! ports out and known unicast to one is dropped.

use crate::counters::{DropReason, FloodCause};
use crate::ids::PortId;
use crate::pipeline::Verdict;
use crate::stp::PortState;
use crate::testing::{self, Rig};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

const THREE: &str = r#"
[[network]]
name = "lan"
[[port]]
name = "p0"
network = "lan"
[[port]]
name = "p1"
network = "lan"
[[port]]
name = "p2"
network = "lan"
"#;

const BCAST: [u8; 6] = [0xff; 6];
const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.resize(60, 0);
    f
}

fn rig() -> Rig {
    let mut r = Rig::new(THREE);
    r.stp = Some(
        (0..3)
            .map(|_| AtomicU8::new(PortState::Forwarding as u8))
            .collect(),
    );
    r
}

fn set(r: &Rig, p: usize, s: PortState) {
    r.stp.as_ref().unwrap()[p].store(s as u8, Relaxed);
}

/// Feeds `f` in on port `p`: its verdict and the ports it was queued to.
fn feed(r: &mut Rig, p: usize, f: &[u8]) -> (Verdict, Vec<u16>) {
    let port: PortId = testing::port(p);
    r.tx.clear();
    assert!(r.ports[p].push(f));
    assert_eq!(r.receive(port), 1);
    r.process(port, 1000);
    let v = r.batch.meta[0].verdict;
    let mut out: Vec<u16> =
        r.tx.dirty
            .iter()
            .filter(|e| !r.tx.queue(**e).is_empty())
            .map(|e| e.encode())
            .collect();
    out.sort_unstable();
    r.transmit();
    (v, out)
}

fn drops(r: &Rig, p: usize) -> u64 {
    r.counters.port(testing::port(p).into()).drops[DropReason::StpDiscarding as usize].get()
}

#[test]
fn frames_on_a_discarding_port_are_dropped_and_not_learned() {
    let mut r = rig();
    set(&r, 0, PortState::Discarding);
    let (v, out) = feed(&mut r, 0, &frame(BCAST, A));
    assert_eq!(v, Verdict::Drop(DropReason::StpDiscarding));
    assert!(out.is_empty());
    assert_eq!(drops(&r, 0), 1);
    // A was not learned: a frame to it from port 1 floods, and leaves
    // port 0 out.
    let (v, out) = feed(&mut r, 1, &frame(A, B));
    assert_eq!(v, Verdict::Flood(FloodCause::UnknownUnicast));
    assert_eq!(out, vec![2]);
}

#[test]
fn a_learning_port_learns_but_does_not_forward() {
    let mut r = rig();
    set(&r, 0, PortState::Learning);
    let (v, _) = feed(&mut r, 0, &frame(BCAST, A));
    assert_eq!(v, Verdict::Drop(DropReason::StpDiscarding));
    // A was learned behind port 0, which does not forward yet: known
    // unicast to it is dropped, not flooded.
    let (v, out) = feed(&mut r, 1, &frame(A, B));
    assert_eq!(v, Verdict::Drop(DropReason::StpDiscarding));
    assert!(out.is_empty());
    assert_eq!(drops(&r, 1), 1);
    // Forwarding: it goes through.
    set(&r, 0, PortState::Forwarding);
    let (v, out) = feed(&mut r, 1, &frame(A, B));
    assert_eq!(v, Verdict::Unicast(testing::port(0).into()));
    assert_eq!(out, vec![0]);
}

#[test]
fn floods_skip_ports_that_do_not_forward() {
    let mut r = rig();
    set(&r, 2, PortState::Discarding);
    let (v, out) = feed(&mut r, 0, &frame(BCAST, A));
    assert_eq!(v, Verdict::Flood(FloodCause::Broadcast));
    assert_eq!(out, vec![1]);
    // Not a drop of the frame: it went somewhere.
    assert_eq!(drops(&r, 0), 0);
    // With spanning tree off (no states) everything forwards.
    r.stp = None;
    let (_, out) = feed(&mut r, 0, &frame(BCAST, A));
    assert_eq!(out, vec![1, 2]);
}
