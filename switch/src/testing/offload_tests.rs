//! The pipeline with offload state (issue 12): super-frames and checksums
//! left to compute, from a TAP-kind port, flooded to a TAP-kind trunk
//! (which takes them whole, tagged) and an AF_XDP-kind port (which gets
//! segments with every checksum done); metadata that does not fit dropped
//! as `bad_offload`. Checksums are verified with shunt_parsers::checksum,
//! the segmenter's own tests verify them independently of it.

use crate::counters::DropReason;
use crate::ids::PortId;
use crate::port::{Gso, Offload, OffloadError};
use crate::testing::Rig;
use shunt_parsers::checksum;
use shunt_parsers::virtio_net::Csum;
use std::net::Ipv4Addr;

const TOPO: &str = r#"
[[network]]
name = "lan"
vlan = 10
subnet = "10.0.0.0/24"

[[port]]
name = "t0"
kind = "tap"
interface = "t0"
mode = "access"
network = "lan"

[[port]]
name = "t1"
kind = "tap"
interface = "t1"
mode = "trunk"
networks = ["lan"]

[[port]]
name = "x2"
kind = "afxdp"
interface = "x2"
mode = "access"
network = "lan"
"#;

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);

fn port(i: usize) -> PortId {
    PortId::new(i).expect("in range")
}

/// An untagged TCP/IPv4 frame with `payload` bytes, its TCP checksum
/// field holding the pseudo-header sum (as the kernel leaves it with
/// CHECKSUM_PARTIAL), PSH and ACK set.
fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + payload];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (20 + 20 + payload) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&7u16.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&SRC.octets());
    ip[16..20].copy_from_slice(&DST.octets());
    let sum = !checksum::data(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&64000u16.to_be_bytes());
    let ph = checksum::pseudo_header_v4(SRC, DST, 6, 20 + payload as u16);
    tcp[16..18].copy_from_slice(&ph.to_be_bytes());
    for (k, b) in f[54..].iter_mut().enumerate() {
        *b = (k * 7 % 251) as u8;
    }
    f
}

fn partial(start: u16) -> Option<Csum> {
    Some(Csum { start, offset: 16 })
}

fn tso(mss: u16) -> Offload {
    Offload {
        gso: Gso::Tcp4,
        gso_size: mss,
        csum: partial(34),
        ..Offload::NONE
    }
}

/// The frame's IPv4 and TCP checksums verify; returns its TCP payload.
fn verified(f: &[u8], l3: usize) -> Vec<u8> {
    let ip = &f[l3..l3 + 20];
    assert_eq!(checksum::data(ip), 0xffff, "IPv4 header checksum");
    let tcp = &f[l3 + 20..];
    let ph = checksum::pseudo_header_v4(SRC, DST, 6, tcp.len() as u16);
    assert_eq!(
        checksum::combine(&[ph, checksum::data(tcp)]),
        0xffff,
        "TCP checksum of a {}-byte segment",
        f.len()
    );
    tcp[20..].to_vec()
}

fn counter(rig: &Rig, p: usize, f: impl Fn(&crate::counters::PortCounters) -> u64) -> u64 {
    f(rig.counters.port(port(p).into()))
}

#[test]
fn a_flooded_super_frame_goes_whole_to_a_tap_and_in_segments_elsewhere() {
    let mut rig = Rig::new(TOPO).large_ports();
    let f = tcp_frame(20_000);
    assert!(rig.ports[0].push_offload(&f, Ok(tso(1448))));
    assert_eq!(rig.step(port(0), 1000), 1 + 14);
    // The trunk: one frame, tagged, its checksum start moved by the tag.
    let t1: Vec<_> = rig.ports[1].sent_offloads().collect();
    assert_eq!(t1.len(), 1);
    let (whole, off) = t1[0];
    assert_eq!(whole.len(), f.len() + 4);
    assert_eq!(&whole[12..16], &[0x81, 0x00, 0x00, 10]);
    assert_eq!(&whole[16..], &f[12..]);
    assert_eq!(off.gso, Gso::Tcp4);
    assert_eq!(off.gso_size, 1448);
    assert_eq!(off.csum, partial(38));
    // The AF_XDP port: 14 segments of at most 1448 payload bytes, every
    // checksum done, the payload whole in order.
    let segs: Vec<_> = rig.ports[2].sent_offloads().collect();
    assert_eq!(segs.len(), 14);
    let mut payload = Vec::new();
    for (k, (s, off)) in segs.iter().enumerate() {
        assert!(off.is_none(), "a segment left with offload state");
        assert!(s.len() <= 1514, "segment {k} of {} bytes", s.len());
        let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
        assert_eq!(seq, 1000 + 1448 * k as u32);
        let psh = s[47] & 0x08 != 0;
        assert_eq!(psh, k == 13, "PSH only on the last segment");
        payload.extend(verified(s, 14));
    }
    assert_eq!(payload, f[54..]);
    assert_eq!(counter(&rig, 0, |c| c.rx_gso.get()), 1);
    assert_eq!(counter(&rig, 1, |c| c.tx_gso_whole.get()), 1);
    assert_eq!(counter(&rig, 2, |c| c.tx_gso_segments.get()), 14);
    assert_eq!(counter(&rig, 2, |c| c.tx_frames.get()), 14);
}

#[test]
fn a_checksum_left_to_compute_is_done_once_for_ports_without_the_offload() {
    let mut rig = Rig::new(TOPO).large_ports();
    let f = tcp_frame(500);
    let off = Offload {
        csum: partial(34),
        ..Offload::NONE
    };
    assert!(rig.ports[0].push_offload(&f, Ok(off)));
    assert_eq!(rig.step(port(0), 1000), 2);
    let x2: Vec<_> = rig.ports[2].sent_offloads().collect();
    assert_eq!(x2.len(), 1);
    assert!(x2[0].1.is_none());
    assert_eq!(verified(x2[0].0, 14), f[54..]);
    // The trunk's copy: either still to compute (start moved by the tag),
    // or, when it came after the AF_XDP copy, already done.
    let t1: Vec<_> = rig.ports[1].sent_offloads().collect();
    assert_eq!(t1.len(), 1);
    match t1[0].1.csum {
        Some(c) => assert_eq!(
            c,
            Csum {
                start: 38,
                offset: 16
            }
        ),
        None => assert_eq!(verified(t1[0].0, 18), f[54..]),
    }
    assert_eq!(counter(&rig, 2, |c| c.tx_csum_soft.get()), 1);
}

#[test]
fn metadata_that_does_not_fit_is_dropped_as_bad_offload() {
    let mut rig = Rig::new(TOPO).large_ports();
    let f = tcp_frame(5000);
    // Refused by the port's header check, and refused by classify: a GSO
    // type that does not match the headers (TCPv6 on IPv4).
    assert!(rig.ports[0].push_offload(&f, Err(OffloadError::GsoSize)));
    let v6 = Offload {
        gso: Gso::Tcp6,
        ..tso(1448)
    };
    assert!(rig.ports[0].push_offload(&f, Ok(v6)));
    assert_eq!(rig.step(port(0), 1000), 0);
    assert_eq!(
        counter(&rig, 0, |c| c.drops[DropReason::BadOffload as usize].get()),
        2
    );
    assert_eq!(rig.ports[1].sent().count() + rig.ports[2].sent().count(), 0);
}

#[test]
fn a_super_frame_is_measured_by_its_segments_against_the_mtu() {
    let mut rig = Rig::new(TOPO).large_ports();
    // Segments of 1448 fit a 1500 MTU; segments of 1500 payload bytes do not.
    let f = tcp_frame(9000);
    assert!(rig.ports[0].push_offload(&f, Ok(tso(1448))));
    assert!(rig.ports[0].push_offload(&f, Ok(tso(1500))));
    rig.step(port(0), 1000);
    assert_eq!(rig.ports[1].sent().count(), 1);
    assert_eq!(
        counter(&rig, 0, |c| c.drops[DropReason::Oversize as usize].get()),
        1
    );
}
