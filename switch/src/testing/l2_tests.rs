//! The L2 control channel in the pipeline (pipeline/ctl.rs): control
//! frames copied or taken for the l2 thread, and the l2 thread's frames
//! sent straight out of one port.

use crate::counters::DropReason;
use crate::ids::{Egress, NetId};
use crate::l2::{Claim, CtlKind, Sender};
use crate::pipeline::Verdict;
use crate::testing::{port, Rig};

/// Access ports a, b on blue (VLAN 10); trunk t carries blue tagged and
/// nothing untagged.
const NETS: &str = r#"
[[network]]
name = "blue"
vlan = 10
[[port]]
name = "a"
network = "blue"
[[port]]
name = "b"
network = "blue"
[[port]]
name = "t"
mode = "trunk"
networks = ["blue"]
"#;

const BPDU_DST: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn frame(dst: [u8; 6], tag: Option<u16>, len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&SRC);
    if let Some(v) = tag {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    // An 802.3 length and LLC 42 42 03, as a BPDU.
    f.extend_from_slice(&39u16.to_be_bytes());
    f.extend_from_slice(&[0x42, 0x42, 0x03]);
    f.resize(len, 0);
    f
}

fn rig() -> Rig {
    Rig::new(NETS).with_l2().expect("eventfds")
}

fn run(r: &mut Rig, p: usize, frames: &[Vec<u8>]) -> Vec<Verdict> {
    for f in frames {
        assert!(r.ports[p].push(f));
    }
    r.step(port(p), 1000);
    (0..frames.len()).map(|i| r.batch.meta[i].verdict).collect()
}

#[test]
fn nothing_claimed_nothing_copied() {
    let mut r = rig();
    let v = run(&mut r, 0, &[frame(BPDU_DST, None, 60)]);
    assert_eq!(v[0], Verdict::Drop(DropReason::LinkLocal));
    let l2 = r.l2.clone().expect("l2");
    assert!(l2.to_l2.is_empty());
}

#[test]
fn consumed_bpdus_stop_at_the_l2_thread() {
    let mut r = rig();
    let l2 = r.l2.clone().expect("l2");
    l2.claim(CtlKind::Bpdu, Claim::Consume);
    let unicast = {
        let mut f = frame([0x02, 0, 0, 0, 0, 0x0b], None, 60);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        f
    };
    let v = run(
        &mut r,
        0,
        &[
            frame(BPDU_DST, None, 60),
            unicast,
            frame(BPDU_DST, None, 64),
        ],
    );
    assert_eq!(v[0], Verdict::Control(CtlKind::Bpdu));
    assert_eq!(
        v[1],
        Verdict::Flood(crate::counters::FloodCause::UnknownUnicast)
    );
    assert_eq!(v[2], Verdict::Control(CtlKind::Bpdu));
    // Not forwarded: b and t got only the unicast flood.
    assert_eq!(r.ports[1].sent().count(), 1);
    let p = l2.to_l2.pop().expect("a copy");
    assert_eq!(
        (p.port, p.net, p.kind, p.vid),
        (port(0), NetId::new(0), CtlKind::Bpdu, 0)
    );
    assert_eq!(p.frame(), &frame(BPDU_DST, None, 60)[..]);
    assert_eq!(l2.to_l2.pop().map(|p| p.len), Some(64));
    assert_eq!(l2.counters[0].to_l2.get(), 2);
    // The worker woke the thread once for the batch.
    assert_eq!(l2.to_l2_event.read().ok(), Some(1));
}

#[test]
fn bpdus_on_a_trunk_without_native_network_are_taken_too() {
    let mut r = rig();
    let l2 = r.l2.clone().expect("l2");
    l2.claim(CtlKind::Bpdu, Claim::Consume);
    let v = run(
        &mut r,
        2,
        &[frame(BPDU_DST, None, 60), frame(BPDU_DST, Some(10), 64)],
    );
    assert_eq!(v, vec![Verdict::Control(CtlKind::Bpdu); 2]);
    let p = l2.to_l2.pop().expect("untagged copy");
    assert_eq!((p.port, p.net, p.vid), (port(2), None, 0));
    // The tagged one arrives without its tag, its VLAN and network known.
    let p = l2.to_l2.pop().expect("tagged copy");
    assert_eq!((p.net, p.vid, p.frame().len()), (NetId::new(0), 10, 60));
    assert_eq!(&p.frame()[12..14], &39u16.to_be_bytes());
}

#[test]
fn a_full_queue_drops_consumed_frames_with_a_reason() {
    let mut r = rig();
    let l2 = r.l2.clone().expect("l2");
    l2.claim(CtlKind::Bpdu, Claim::Consume);
    let mut n = 0;
    while l2
        .to_l2
        .push(
            crate::l2::CtlPkt::gather(port(0), None, CtlKind::Bpdu, 0, &[&[0; 60]]).expect("fits"),
        )
        .is_ok()
    {
        n += 1;
    }
    assert_eq!(n, crate::l2::link::CTL_QUEUE);
    let v = run(&mut r, 0, &[frame(BPDU_DST, None, 60)]);
    assert_eq!(v[0], Verdict::Drop(DropReason::HostQueueFull));
    assert_eq!(l2.counters[0].to_l2_full.get(), 1);
    assert_eq!(
        r.counters.port(port(0).into()).drops[DropReason::HostQueueFull as usize].get(),
        1
    );
}

#[test]
fn copied_kinds_are_forwarded_as_well() {
    let mut r = rig();
    let l2 = r.l2.clone().expect("l2");
    l2.claim(CtlKind::Bpdu, Claim::Copy);
    let v = run(&mut r, 0, &[frame(BPDU_DST, None, 60)]);
    // forward's own rule for link-local frames applies after the copy.
    assert_eq!(v[0], Verdict::Drop(DropReason::LinkLocal));
    assert_eq!(l2.to_l2.len(), 1);
}

#[test]
fn frames_from_the_l2_thread_leave_one_port_as_it_carries_them() {
    let mut r = rig();
    let l2 = r.l2.clone().expect("l2");
    let bpdu = frame(BPDU_DST, None, 60);
    {
        let mut out = Sender::new(&l2);
        // Untagged, out of the trunk; then in blue: tagged 10 on the
        // trunk, untagged on access port b.
        assert!(out.send(port(2), None, &[&bpdu]));
        assert!(out.send(port(2), NetId::new(0), &[&bpdu[..12], &bpdu[12..]]));
        assert!(out.send(port(1), NetId::new(0), &[&bpdu]));
        // A network the port does not carry.
        assert!(out.send(port(1), NetId::new(5), &[&bpdu]));
    }
    assert_eq!(r.run_l2_output(), 4);
    assert_eq!(r.run_l2_output(), 0);
    let t: Vec<Vec<u8>> = r.ports[2].sent().map(|f| f.to_vec()).collect();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0], bpdu);
    assert_eq!(t[1], frame(BPDU_DST, Some(10), 64));
    let b: Vec<Vec<u8>> = r.ports[1].sent().map(|f| f.to_vec()).collect();
    assert_eq!(b, vec![bpdu]);
    assert_eq!(r.ports[0].sent().count(), 0);
    let c = r.counters.port(Egress::Port(port(1)));
    assert_eq!(c.drops[DropReason::NoDestination as usize].get(), 1);
    assert_eq!(r.counters.port(Egress::Port(port(2))).tx_frames.get(), 2);
    assert_eq!(l2.counters[0].from_l2.get(), 4);
}

/// A port that is down sends nothing (counted as `port_down`).
#[test]
fn frames_for_a_port_that_is_down_are_counted() {
    let mut r = rig();
    let l2 = r.l2.clone().expect("l2");
    r.port_up[1].store(false, std::sync::atomic::Ordering::Relaxed);
    Sender::new(&l2).send(port(1), None, &[&frame(BPDU_DST, None, 60)]);
    assert_eq!(r.run_l2_output(), 1);
    assert_eq!(r.ports[1].sent().count(), 0);
    let c = r.counters.port(Egress::Port(port(1)));
    assert_eq!(c.drops[DropReason::PortDown as usize].get(), 1);
}
