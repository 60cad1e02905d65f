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

/// A host on a TAP-kind port, an AF_XDP-kind port, and a TAP underlay,
/// in one VXLAN network with one remote VTEP.
const VXLAN_TOPO: &str = r#"
[switch]
name = "vgtest"

[[network]]
name = "ovl"
subnet = "10.0.0.0/24"
vni = 1000
vtep_peers = ["192.0.2.2"]

[[port]]
name = "t0"
kind = "tap"
interface = "t0"
mode = "access"
network = "ovl"

[[port]]
name = "ul0"
kind = "tap"
interface = "ul0"
mode = "underlay"

[[port]]
name = "x2"
kind = "afxdp"
interface = "x2"
mode = "access"
network = "ovl"

[vtep]
port = "ul0"
address = "192.0.2.1/24"
"#;

/// A VXLAN rig, the remote VTEP's next hop resolved; `tunnel`: the
/// underlay takes UDP-tunnel GSO.
fn vxlan_rig(tunnel: bool) -> Rig {
    let topo = crate::config::parse("t.toml", VXLAN_TOPO).expect("topology");
    let mut rig = Rig::new(VXLAN_TOPO).with_stack(&topo).expect("stack");
    rig.plan.ports[1].offloads.udp_tunnel = tunnel;
    let rig = rig.large_ports();
    let ul = rig.stack.as_ref().and_then(|s| s.underlay.as_ref());
    ul.expect("underlay").set_nexthop(
        Ipv4Addr::new(192, 0, 2, 2),
        shunt_parsers::MacAddr([2, 0, 0, 0, 0, 2]),
    );
    rig
}

/// What the kernel does with a UDP-tunnel super-frame for a device that
/// takes none (`__skb_udp_tunnel_segment` over `tcp_gso_segment`): the
/// inner frame cut as a plain super-frame, each segment behind a copy of
/// the outer header with its IPv4 total length and header checksum and
/// its UDP length made for it (the IPv4 id left: the kernel counts it up,
/// the switch's own segments keep 0).
fn kernel_segments(f: &[u8], off: &Offload) -> Vec<Vec<u8>> {
    let t = off.tunnel.expect("a tunnel super-frame");
    let inner = usize::from(t.inner_l3) - 14;
    let c = off.csum.expect("checksum");
    let plain = Offload {
        tunnel: None,
        csum: Some(Csum {
            start: c.start - inner as u16,
            offset: c.offset,
        }),
        ..*off
    };
    let s = shunt_parsers::gso::Segmenter::new(&f[inner..], &plain).expect("inner segments");
    let mut out = vec![0u8; 70_000];
    (0..s.count)
        .map(|j| {
            let l2 = &f[inner..inner + s.l3];
            let n = s.write_l3(&f[inner..], j, &mut out).expect("segment");
            let mut seg = [&f[..inner], l2, &out[..n]].concat();
            let ip_len = (seg.len() - 14) as u16;
            seg[16..18].copy_from_slice(&ip_len.to_be_bytes());
            seg[24..26].copy_from_slice(&[0, 0]);
            let sum = !checksum::data(&seg[14..34]);
            seg[24..26].copy_from_slice(&sum.to_be_bytes());
            seg[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
            seg
        })
        .collect()
}

#[test]
fn a_super_frame_for_a_vtep_is_encapsulated_once_where_the_underlay_takes_tunnel_gso() {
    // 20,000 bytes in segments of 1,398: 15 segments of at most 1,502
    // bytes with their outer header, inside a 1,500 underlay.
    let f = tcp_frame(20_000);
    let mut once = vxlan_rig(true);
    assert!(once.ports[0].push_offload(&f, Ok(tso(1398))));
    once.step(port(0), 1000);
    let sent: Vec<_> = once.ports[1].sent_offloads().collect();
    assert_eq!(sent.len(), 1, "one frame to the underlay");
    let (whole, off) = sent[0];
    assert_eq!(whole.len(), f.len() + 50);
    assert_eq!(&whole[50..], &f[..], "the inner frame as it came");
    // Outer IPv4: total length of the whole, DF, header checksum right;
    // UDP: length of the whole, checksum 0; VXLAN: VNI 1000.
    assert_eq!(
        u16::from_be_bytes([whole[16], whole[17]]) as usize,
        f.len() + 36
    );
    assert_eq!(whole[20] & 0x40, 0x40);
    assert_eq!(checksum::data(&whole[14..34]), 0xffff);
    assert_eq!(
        u16::from_be_bytes([whole[38], whole[39]]) as usize,
        f.len() + 16
    );
    assert_eq!(&whole[40..42], &[0, 0]);
    assert_eq!(&whole[46..49], &[0, 0x03, 0xe8]);
    // The tunnel header: inner checksum to finish, offsets of the outer
    // UDP and the inner IP header, hdr_len up to the inner TCP header's end.
    assert_eq!(off.gso, Gso::Tcp4);
    assert_eq!(off.gso_size, 1398);
    assert_eq!(off.csum, partial(50 + 34));
    let t = off.tunnel.expect("tunnel state");
    assert_eq!((t.outer_l4, t.inner_l3, t.hdr_end), (34, 64, 104));
    assert!(!t.udp_csum && !t.outer_v6);
    // What the kernel reads is accepted as the same super-frame.
    let h = shunt_parsers::virtio_net::VirtioNetHdr::parse_tnl(&off.to_header(0, 0).to_bytes_tnl())
        .expect("24 bytes");
    assert_eq!(Offload::from_tunnel_header(&h, whole), Ok(off));
    assert_eq!(counter(&once, 1, |c| c.tx_frames.get()), 1);
    let vtep = once.counters.port(crate::ids::Egress::Vtep(
        crate::ids::VtepId::new(0).expect("0"),
    ));
    assert_eq!(vtep.tx_gso_whole.get(), 1);
    assert_eq!(vtep.tx_gso_segments.get(), 0);
    // The AF_XDP port still gets segments.
    assert_eq!(once.ports[2].sent().count(), 15);

    // Segmented as the kernel would, it is byte for byte what the
    // switch sends itself where the underlay takes no tunnel GSO.
    let mut soft = vxlan_rig(false);
    assert!(soft.ports[0].push_offload(&f, Ok(tso(1398))));
    soft.step(port(0), 1000);
    let segs: Vec<Vec<u8>> = soft.ports[1].sent().map(<[u8]>::to_vec).collect();
    assert_eq!(segs.len(), 15);
    assert_eq!(kernel_segments(whole, &off), segs);
    for s in &segs {
        assert!(s.len() <= 1514);
        verified(&s[50..], 14);
    }
}

#[test]
fn a_tunnel_super_frame_is_too_big_only_if_its_segments_are() {
    let f = tcp_frame(9000);
    let mut rig = vxlan_rig(true);
    // Segments of 1,398 fit the tunnel; of 1,448 (1,552 bytes with the
    // outer header) they do not.
    assert!(rig.ports[0].push_offload(&f, Ok(tso(1398))));
    assert!(rig.ports[0].push_offload(&f, Ok(tso(1448))));
    rig.step(port(0), 1000);
    assert_eq!(rig.ports[1].sent().count(), 1);
    let k = crate::ids::Egress::Vtep(crate::ids::VtepId::new(0).expect("0"));
    let vtep = rig.counters.port(k);
    assert_eq!(vtep.drops[DropReason::VxlanTooBig as usize].get(), 1);
}

#[test]
fn a_tunnel_super_frame_from_the_underlay_is_decapsulated_into_a_plain_one() {
    // What the far switch sends (the first test's frame).
    let f = tcp_frame(20_000);
    let mut near = vxlan_rig(true);
    assert!(near.ports[0].push_offload(&f, Ok(tso(1398))));
    near.step(port(0), 1000);
    let (mut whole, off) = near.ports[1]
        .sent_offloads()
        .map(|(w, o)| (w.to_vec(), o))
        .next()
        .expect("sent");
    // From 192.0.2.2 to us, to the host's MAC.
    whole[26..30].copy_from_slice(&[192, 0, 2, 2]);
    whole[30..34].copy_from_slice(&[192, 0, 2, 1]);
    whole[24..26].copy_from_slice(&[0, 0]);
    let sum = !checksum::data(&whole[14..34]);
    whole[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut far = vxlan_rig(true);
    assert!(far.ports[1].push_offload(&whole, Ok(off)));
    // A header whose inner offset is not where VXLAN puts the inner frame.
    let mut lie = off;
    if let Some(t) = &mut lie.tunnel {
        t.inner_l3 += 4;
    }
    assert!(far.ports[1].push_offload(&whole, Ok(lie)));
    far.step(port(1), 1000);
    // Flooded (the MAC is unknown): the TAP host gets the inner
    // super-frame whole, with a plain header; the AF_XDP port segments.
    let t0: Vec<_> = far.ports[0].sent_offloads().collect();
    assert_eq!(t0.len(), 1);
    assert_eq!(t0[0].0, &f[..]);
    assert_eq!(t0[0].1, tso(1398));
    let x2: Vec<_> = far.ports[2].sent_offloads().collect();
    assert_eq!(x2.len(), 15);
    let payload: Vec<u8> = x2.iter().flat_map(|(s, _)| verified(s, 14)).collect();
    assert_eq!(payload, f[54..]);
    assert_eq!(
        counter(&far, 1, |c| c.drops[DropReason::BadOffload as usize].get()),
        1
    );
}

#[test]
fn corrupted_tunnel_super_frames_through_the_pipeline_never_panic() {
    use shunt_parsers::virtio_net::VirtioNetHdr;
    let f = tcp_frame(6000);
    let mut near = vxlan_rig(true);
    assert!(near.ports[0].push_offload(&f, Ok(tso(1398))));
    near.step(port(0), 1000);
    let (mut whole, off) = near.ports[1]
        .sent_offloads()
        .map(|(w, o)| (w.to_vec(), o))
        .next()
        .expect("sent");
    whole[26..30].copy_from_slice(&[192, 0, 2, 2]);
    whole[30..34].copy_from_slice(&[192, 0, 2, 1]);
    let mut input = off.to_header(0, 0).to_bytes_tnl().to_vec();
    input.extend_from_slice(&whole);
    let mut far = vxlan_rig(true);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..400 {
        let mut b = input.clone();
        for _ in 0..1 + rnd(3) {
            let i = rnd(24 + 50 + 60);
            b[i] = rnd(256) as u8;
        }
        if rnd(4) == 0 {
            b.truncate(24 + rnd(b.len() - 24));
        }
        let (hdr, frame) = b.split_at(24);
        let off = VirtioNetHdr::parse_tnl(hdr)
            .map_err(|_| OffloadError::Length)
            .and_then(|h| Offload::from_tunnel_header(&h, frame));
        match off {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        assert!(far.ports[1].push_offload(frame, off));
        far.step(port(1), 1000 + round);
        for p in &mut far.ports {
            p.clear_sent();
        }
    }
    // Both kinds were seen: the mutations are not all fatal, nor all harmless.
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

/// Mirror copies of a super-frame (docs/mirror.md): t0's as received to
/// an AF_XDP-kind destination (in segments), t1's as sent to a TAP-kind
/// one (whole, tagged, as t1 got it).
#[test]
fn mirror_copies_of_a_super_frame_are_made_as_their_destination_takes_them() {
    let topo = format!(
        "{TOPO}\n[[port]]\nname = \"x3\"\nkind = \"afxdp\"\ninterface = \"x3\"\nnetwork = \"lan\"\n\
         [[port]]\nname = \"t4\"\nkind = \"tap\"\ninterface = \"t4\"\nnetwork = \"lan\"\n\
         [[mirror]]\nname = \"a\"\nsource = [\"t0\"]\ndirection = \"in\"\ndestination = \"x3\"\n\
         [[mirror]]\nname = \"b\"\nsource = [\"t1\"]\ndirection = \"out\"\ndestination = \"t4\"\n"
    );
    let mut rig = Rig::new(&topo).large_ports();
    let f = tcp_frame(20_000);
    assert!(rig.ports[0].push_offload(&f, Ok(tso(1448))));
    // t1 whole, x2 14 segments, x3 14 segments, t4 whole.
    assert_eq!(rig.step(port(0), 1000), 1 + 14 + 14 + 1);
    let x3: Vec<_> = rig.ports[3].sent_offloads().collect();
    assert_eq!(x3.len(), 14);
    let mut payload = Vec::new();
    for (s, off) in &x3 {
        assert!(off.is_none());
        assert_eq!(&s[12..14], &[0x08, 0x00], "untagged, as received");
        payload.extend(verified(s, 14));
    }
    assert_eq!(payload, f[54..]);
    let t1: Vec<_> = rig.ports[1].sent_offloads().collect();
    let t4: Vec<_> = rig.ports[4].sent_offloads().collect();
    assert_eq!(
        t4, t1,
        "t4 gets t1's copy: tagged, whole, its offload state"
    );
    assert_eq!(t4[0].1.csum, partial(38));
    assert_eq!(counter(&rig, 3, |c| c.mirror_sent.get()), 14);
    assert_eq!(counter(&rig, 4, |c| c.mirror_sent.get()), 1);
}
