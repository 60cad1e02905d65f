//! The packet port on its own, on veth pairs this test creates: a batch of
//! frames from the peer in one receive, each with no offload state; a
//! tagged frame comes back with its tag in its bytes (the kernel takes it
//! out before a packet socket sees it); a frame sent through the port in
//! parts reaches the peer as it was, one longer than the device's MTU is
//! refused (not cut); a deleted interface ends the port. (What the header
//! does for TSO and checksums, end to end: tests/e2e/offload_veth.rs.)
//!
//! Needs root (namespaces, veth, packet sockets). A test that cannot run
//! prints `skipped: <reason>` and returns.
//!
//! Devices: `pkt<N>a` (root namespace, the port's side) and `pkt<N>b`
//! (inside namespace `pkt<N>ns`), one N per test.

use std::time::{Duration, Instant};

use shunt_switch::port::{Offload, PacketPort, Port, Rx, RxError, Slots, TxError};
use shunt_tools::{FrameBuilder, MacAddr, Marker, VlanTag};

#[macro_use]
mod common;
use common::{sh, Veth};

fn cannot_run() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (needs namespaces, veth and packet sockets)".into());
    }
    if sh(&["ip", "-V"]).is_err() {
        return Some("no `ip` command".into());
    }
    None
}

const SRC: MacAddr = MacAddr([0x02, 0xa8, 0, 0, 0, 1]);
const DST: MacAddr = MacAddr([0x02, 0xa8, 0, 0, 0, 2]);

/// Frames received: their bytes and where they were.
type Frames = Vec<(Vec<u8>, Rx)>;

/// Receives on `port` until `n` frames of test `test` came or `within`
/// passed: each frame's bytes and offload state, and the most any one
/// receive returned.
fn recv(
    port: &PacketPort,
    test: u32,
    n: usize,
    within: Duration,
) -> Result<(Frames, usize), RxError> {
    let mut slots = Slots::new(64);
    let mut got = [Rx::default(); 64];
    let mut out = Vec::new();
    let mut most = 0;
    let end = Instant::now() + within;
    while out.len() < n && Instant::now() < end {
        let k = Port::recv(&mut &*port, &mut slots, &mut got)?;
        most = most.max(k);
        for (i, g) in got[..k].iter().enumerate() {
            let s = usize::from(g.start);
            let f = slots.slot(i)[s..s + usize::from(g.len)].to_vec();
            if Marker::in_frame(&f).is_some_and(|m| m.test_id == test) {
                out.push((f, *g));
            }
        }
        if k == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok((out, most))
}

#[test]
fn a_batch_in_one_receive_without_offload_state() {
    skip_unless_able!();
    let veth = Veth::new("pkt", 1);
    let port = PacketPort::open(&veth.a).expect("open");
    let mut peer = veth.peer();
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            FrameBuilder::new(DST, SRC)
                .ethertype(0x88b5)
                .marker(Marker::new(1, i))
                .pad_to(60 + 50 * i as usize)
                .build()
        })
        .collect();
    peer.send_all(&frames).expect("send");
    std::thread::sleep(Duration::from_millis(100));
    let (got, most) = recv(&port, 1, 20, Duration::from_secs(2)).expect("recv");
    assert_eq!(got.len(), 20, "frames received");
    assert!(most > 1, "one frame per receive: recvmmsg took no batch");
    for ((bytes, rx), sent) in got.iter().zip(&frames) {
        assert_eq!(bytes, sent);
        assert_eq!(
            rx.off,
            Ok(Offload::NONE),
            "a raw frame has no offload state"
        );
    }
}

#[test]
fn a_tag_taken_out_by_the_kernel_is_put_back() {
    skip_unless_able!();
    let veth = Veth::new("pkt", 2);
    let port = PacketPort::open(&veth.a).expect("open");
    let mut peer = veth.peer();
    let tagged = FrameBuilder::new(DST, SRC)
        .tag(VlanTag::dot1q(10, 5))
        .ethertype(0x88b5)
        .marker(Marker::new(2, 0))
        .pad_to(64)
        .build();
    let priority = FrameBuilder::new(DST, SRC)
        .tag(VlanTag::dot1q(0, 3))
        .ethertype(0x88b5)
        .marker(Marker::new(2, 1))
        .pad_to(64)
        .build();
    peer.send_all([&tagged, &priority]).expect("send");
    let (got, _) = recv(&port, 2, 2, Duration::from_secs(2)).expect("recv");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, tagged, "VID 10 PCP 5 tag lost or changed");
    assert_eq!(got[1].0, priority, "priority tag lost or changed");
}

#[test]
fn frames_sent_reach_the_peer_and_oversize_is_refused() {
    skip_unless_able!();
    let veth = Veth::new("pkt", 3);
    let port = PacketPort::open(&veth.a).expect("open");
    let mut peer = veth.peer();
    peer.drain();
    let f = FrameBuilder::new(DST, SRC)
        .ethertype(0x88b5)
        .marker(Marker::new(3, 0))
        .pad_to(200)
        .build();
    // Gathered from three parts, as the edit stage hands a frame over.
    let sent = Port::send(
        &mut &port,
        &[&f[..12], &f[12..14], &f[14..]],
        &Offload::NONE,
    );
    assert_eq!(sent, Ok(f.len()));
    let seen = peer.recv_for(Duration::from_millis(300));
    assert!(seen.contains(&f), "the frame did not reach the peer intact");
    // A frame larger than the device takes is refused, not sent cut.
    let big = vec![0u8; 9000];
    assert_eq!(
        Port::send(&mut &port, &[&big], &Offload::NONE),
        Err(TxError::Oversize)
    );
}

#[test]
fn a_deleted_interface_ends_the_port() {
    skip_unless_able!();
    let veth = Veth::new("pkt", 4);
    let port = PacketPort::open(&veth.a).expect("open");
    sh(&["ip", "link", "del", &veth.a]).expect("delete");
    std::thread::sleep(Duration::from_millis(100));
    let f = FrameBuilder::new(DST, SRC)
        .ethertype(0x88b5)
        .pad_to(60)
        .build();
    assert!(
        matches!(
            Port::send(&mut &port, &[&f], &Offload::NONE),
            Err(TxError::Gone(_))
        ),
        "send on a deleted interface is not Gone"
    );
    let mut slots = Slots::new(4);
    let mut got = [Rx::default(); 4];
    assert!(
        Port::recv(&mut &port, &mut slots, &mut got).is_err(),
        "receive on a deleted interface is no error"
    );
}
