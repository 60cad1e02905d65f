//! Every frame of every capture in tests/data, parsed through the matching
//! views, with the fields we know (see tests/data/README.md) checked; and
//! every header rebuilt from its fields and compared byte for byte.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use common::pcap;
use shunt_parsers::vlan;
use shunt_parsers::vxlan;
use shunt_parsers::*;

const MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const IP1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
// Inside the VXLAN tunnel.
const INNER_MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 1]);
const INNER_MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 2]);
const INNER_IP1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const INNER_IP2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

/// What one frame turned out to be, for the per-file tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Arp,
    Icmp,
    Udp,
    Tcp,
    Ipv6,
    Vxlan,
    Stp,
}

struct Net {
    macs: [MacAddr; 2],
    ips: [Ipv4Addr; 2],
}

const OUTER: Net = Net {
    macs: [MAC1, MAC2],
    ips: [IP1, IP2],
};
const INNER: Net = Net {
    macs: [INNER_MAC1, INNER_MAC2],
    ips: [INNER_IP1, INNER_IP2],
};

/// Parses one Ethernet frame (recursing into VXLAN) and checks what is known.
fn check_frame(frame: &[u8], net: &Net, kinds: &mut Vec<Kind>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    assert!(
        net.macs.contains(&src),
        "source {src} is one of the two hosts"
    );
    assert!(src.is_unicast());
    assert!(
        net.macs.contains(&dst) || dst.is_multicast(),
        "destination {dst}"
    );
    // The raw hot-path helpers agree with the view.
    assert_eq!(ethernet::src_addr(frame), Some(src));
    assert_eq!(ethernet::dst_addr(frame), Some(dst));
    assert_eq!(
        vlan::outer_tag(frame),
        None,
        "no capture holds a tagged frame"
    );
    rebuild_ethernet(&eth);

    match eth.ethertype() {
        EtherType::Arp => {
            kinds.push(Kind::Arp);
            let p = ArpPacket::new_checked(eth.payload()).unwrap();
            let repr = ArpRepr::parse(&p).unwrap();
            assert_eq!(ArpRepr::parse_frame(frame), Ok(repr));
            assert_eq!(repr.sender_mac, src);
            assert!(net.ips.contains(&repr.sender_ip) && net.ips.contains(&repr.target_ip));
            match repr.op {
                ArpOp::Request => {
                    assert!(dst.is_broadcast() || dst == repr.target_mac || net.macs.contains(&dst))
                }
                ArpOp::Reply => {
                    assert_eq!(dst, repr.target_mac);
                    assert!(net.macs.contains(&repr.target_mac));
                }
                ArpOp::Unknown(op) => panic!("ARP op {op}"),
            }
            // Rebuild the whole frame from the Repr: identical bytes.
            let mut out = [0u8; 42];
            let n = repr.emit_frame(dst, &mut out).unwrap();
            assert_eq!(&out[..n], &frame[..n]);
        }
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert_eq!(ip.version(), 4);
            assert!(ip.verify_checksum(), "IPv4 header checksum of a real frame");
            assert!(net.ips.contains(&ip.src_addr()) && net.ips.contains(&ip.dst_addr()));
            assert_eq!(usize::from(ip.total_len()), eth.payload().len());
            rebuild_ipv4(&ip);
            match ip.protocol() {
                IpProtocol::Icmp => kinds.push(Kind::Icmp),
                IpProtocol::Tcp => kinds.push(Kind::Tcp),
                IpProtocol::Udp => {
                    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                    assert_eq!(usize::from(udp.len()), ip.payload().len());
                    check_udp_checksum(&udp, ip.src_addr(), ip.dst_addr());
                    if udp.dst_port() == vxlan::VXLAN_PORT {
                        kinds.push(Kind::Vxlan);
                        // Kernel source-port entropy: never the VXLAN port.
                        assert_ne!(udp.src_port(), vxlan::VXLAN_PORT);
                        let vx = VxlanPacket::new_checked(udp.payload()).unwrap();
                        assert_eq!(vx.flags(), vxlan::FLAG_I);
                        assert!(vx.has_vni());
                        assert_eq!(vx.vni(), 1000);
                        assert_eq!((vx.reserved0(), vx.reserved1()), (0, 0));
                        check_decap_and_encap(frame, &ip, &udp);
                        let mut inner_kinds = Vec::new();
                        check_frame(vx.payload(), &INNER, &mut inner_kinds);
                        assert_eq!(inner_kinds.len(), 1);
                    } else {
                        kinds.push(Kind::Udp);
                        assert!(udp.src_port() == 53 || udp.dst_port() == 53, "DNS");
                    }
                }
                other => panic!("unexpected IPv4 protocol {other}"),
            }
        }
        EtherType::Ipv6 => {
            kinds.push(Kind::Ipv6);
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            assert_eq!(ip.version(), 6);
            assert_eq!(40 + usize::from(ip.payload_len()), eth.payload().len());
            let src = ip.src_addr();
            let dst = ip.dst_addr();
            let ours = [
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            ];
            assert!(
                ours.contains(&src)
                    || (src.segments()[0] & 0xffc0) == 0xfe80
                    || src.is_unspecified()
            );
            assert!(ours.contains(&dst) || dst.is_multicast());
            if dst.is_multicast() {
                // 33:33 + low 32 bits of the group (RFC 2464 §7).
                let g = dst.octets();
                assert_eq!(
                    eth.dst_addr(),
                    MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]])
                );
            }
            assert!(matches!(
                ip.next_header(),
                IpProtocol::Icmpv6 | IpProtocol::HopByHop
            ));
            rebuild_ipv6(&ip);
        }
        EtherType::Length(len) => {
            kinds.push(Kind::Stp);
            assert!(eth.is_802_3());
            assert_eq!(eth.length_field(), Some(len));
            assert_eq!(
                dst,
                MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
                "bridge group address"
            );
            assert_eq!(usize::from(len), eth.payload().len());
            assert_eq!(&eth.payload()[..3], &[0x42, 0x42, 0x03], "LLC for STP");
            let bpdu = stp::Bpdu::parse_frame(frame).expect("a kernel BPDU parses");
            assert_eq!(bpdu.kind, stp::BpduType::Config);
            assert_eq!(bpdu.times, stp::Times::secs(0, 20, 2, 15));
            // Rebuilt from the parsed form: the same bytes (before padding).
            let mut out = [0u8; stp::MAX_FRAME_LEN];
            let n = bpdu.emit_frame(eth.src_addr(), &mut out).unwrap();
            assert_eq!(&out[..frame.len().min(n)], &frame[..frame.len().min(n)]);
        }
        other => panic!("unexpected EtherType {other}"),
    }
}

/// Our checksum agrees with the frame, or the frame was captured before
/// checksum offload and holds only the pseudo-header sum; then filling it
/// in must produce a checksum that verifies.
fn check_udp_checksum(udp: &UdpPacket<&[u8]>, src: Ipv4Addr, dst: Ipv4Addr) {
    if !udp.verify_checksum_v4(src, dst) {
        assert_eq!(
            udp.checksum(),
            checksum::pseudo_header_v4(src, dst, 17, udp.len()),
            "UDP checksum neither valid nor a partial (offload) sum"
        );
    }
    let mut copy = udp.as_ref().to_vec();
    let mut p = UdpPacket::new_checked(&mut copy[..]).unwrap();
    p.fill_checksum_v4(src, dst);
    assert!(p.verify_checksum_v4(src, dst));
}

fn check_decap_and_encap(frame: &[u8], ip: &Ipv4Packet<&[u8]>, udp: &UdpPacket<&[u8]>) {
    let d = vxlan::decap(frame).unwrap();
    let to = Some((ip.dst_addr(), udp.dst_port()));
    assert_eq!(vxlan::decap_for(frame, to), Ok(d.clone()));
    assert_eq!(
        (d.src_ip, d.dst_ip, d.vni),
        (ip.src_addr(), ip.dst_addr(), 1000)
    );
    assert_eq!((d.src_port, d.dst_port), (udp.src_port(), 4789));
    assert_eq!(d.inner.end, frame.len());
    // Re-encapsulate the inner frame with the same parameters: identical
    // outer headers except the UDP checksum, which we leave at 0.
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let encap = VxlanEncap {
        src_mac: eth.src_addr(),
        dst_mac: eth.dst_addr(),
        src_ip: d.src_ip,
        dst_ip: d.dst_ip,
        src_port: d.src_port,
        dst_port: d.dst_port,
        ttl: ip.ttl(),
        vni: d.vni,
        ident: ip.ident(),
        dont_frag: ip.dont_frag(),
    };
    let mut buf = vec![0u8; 64 + frame.len()];
    let start = 64 + vxlan::ENCAP_LEN;
    let inner = &frame[d.inner.clone()];
    buf[start..start + inner.len()].copy_from_slice(inner);
    let (s, l) = vxlan::encap_in_place(&mut buf, start, inner.len(), &encap).unwrap();
    let out = &buf[s..s + l];
    assert_eq!(out.len(), frame.len());
    assert_eq!(&out[..40], &frame[..40]);
    assert_eq!(&out[40..42], &[0, 0]);
    assert_eq!(&out[42..], &frame[42..]);
}

fn rebuild_ethernet(eth: &EthernetFrame<&[u8]>) {
    let mut out = vec![0u8; eth.as_ref().len()];
    let mut f = EthernetFrame::new_checked(&mut out[..]).unwrap();
    f.set_dst_addr(eth.dst_addr());
    f.set_src_addr(eth.src_addr());
    f.set_ethertype(eth.ethertype());
    f.payload_mut().copy_from_slice(eth.payload());
    assert_eq!(&out[..], eth.as_ref());
}

fn rebuild_ipv4(ip: &Ipv4Packet<&[u8]>) {
    let orig: &[u8] = ip.as_ref();
    let mut out = vec![0u8; orig.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
    p.set_version(4);
    p.set_header_len(ip.header_len());
    p.set_dscp(ip.dscp());
    p.set_ecn(ip.ecn());
    p.set_total_len(ip.total_len());
    p.set_ident(ip.ident());
    p.clear_flags();
    p.set_dont_frag(ip.dont_frag());
    p.set_more_frags(ip.more_frags());
    p.set_frag_offset(ip.frag_offset());
    p.set_ttl(ip.ttl());
    p.set_protocol(ip.protocol());
    p.set_src_addr(ip.src_addr());
    p.set_dst_addr(ip.dst_addr());
    p.payload_mut().copy_from_slice(ip.payload());
    p.fill_checksum();
    assert_eq!(
        p.checksum(),
        ip.checksum(),
        "our checksum equals the kernel's"
    );
    assert_eq!(&out[..], orig);
}

fn rebuild_ipv6(ip: &Ipv6Packet<&[u8]>) {
    let orig: &[u8] = ip.as_ref();
    let mut out = vec![0u8; orig.len()];
    let mut p = Ipv6Packet::new_unchecked(&mut out[..]);
    p.set_version(6);
    p.set_traffic_class(ip.traffic_class());
    p.set_flow_label(ip.flow_label());
    p.set_payload_len(ip.payload_len());
    p.set_next_header(ip.next_header());
    p.set_hop_limit(ip.hop_limit());
    p.set_src_addr(ip.src_addr());
    p.set_dst_addr(ip.dst_addr());
    p.payload_mut().copy_from_slice(ip.payload());
    assert_eq!(&out[..], orig);
}

/// Tag, read back, untag: the frame comes back unchanged.
fn check_tag_round_trip(frame: &[u8]) {
    let mut buf = vec![0u8; 8 + frame.len()];
    buf[8..].copy_from_slice(frame);
    let tci = vlan::tci(3, true, 42);
    let (s, l) = vlan::push_tag(&mut buf, 8, frame.len(), EtherType::Vlan, tci).unwrap();
    let tag = vlan::outer_tag(&buf[s..s + l]).unwrap();
    assert_eq!((tag.pcp, tag.dei, tag.vid), (3, true, 42));
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(tag.inner_ethertype, eth.ethertype());
    let (s, l) = vlan::pop_tag(&mut buf, s, l).unwrap();
    assert_eq!(&buf[s..s + l], frame);
}

fn tally(name: &str) -> BTreeMap<Kind, usize> {
    let mut kinds = Vec::new();
    for frame in pcap::frames(name) {
        check_frame(&frame, &OUTER, &mut kinds);
        check_tag_round_trip(&frame);
    }
    let mut t = BTreeMap::new();
    for k in kinds {
        *t.entry(k).or_insert(0) += 1;
    }
    t
}

#[test]
fn arp_icmp() {
    let t = tally("arp_icmp.pcap");
    assert_eq!(t, BTreeMap::from([(Kind::Arp, 6), (Kind::Icmp, 4)]));
}

#[test]
fn dns() {
    let t = tally("dns.pcap");
    assert_eq!(t, BTreeMap::from([(Kind::Udp, 12), (Kind::Tcp, 10)]));
}

#[test]
fn ipv6_nd_icmp6() {
    let t = tally("ipv6_nd_icmp6.pcap");
    assert_eq!(t, BTreeMap::from([(Kind::Ipv6, 8)]));
}

#[test]
fn vxlan_with_inner_frames() {
    let t = tally("vxlan.pcap");
    assert_eq!(t, BTreeMap::from([(Kind::Vxlan, 16)]));
}

#[test]
fn stp_bpdu_is_802_3() {
    let t = tally("stp_bpdu.pcap");
    assert_eq!(t, BTreeMap::from([(Kind::Stp, 1)]));
}

#[test]
fn every_capture_is_covered() {
    let names: Vec<String> = pcap::all_captures().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "arp_icmp.pcap",
            "dns.pcap",
            "ipv6_nd_icmp6.pcap",
            "stp_bpdu.pcap",
            "vxlan.pcap"
        ],
        "a new capture needs its own test above"
    );
}

#[test]
fn pcap_reader_rejects_garbage() {
    assert!(pcap::parse(&[]).is_err());
    assert!(pcap::parse(&[0u8; 24]).is_err());
    let mut good = std::fs::read(pcap::data_dir().join("stp_bpdu.pcap")).unwrap();
    assert_eq!(pcap::parse(&good).unwrap().len(), 1);
    good.pop();
    assert!(pcap::parse(&good).is_err());
}
