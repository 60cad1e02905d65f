//! Calls `new_checked` and then every getter (and, on a copy, every
//! length-sensitive setter) of every view, and every raw-frame helper.
//! Shared by the no-panic property test and the fuzz targets (which include
//! this file with `#[path]`), so both exercise exactly the same surface.
//! A panic anywhere here is a bug in the parsers.

#![allow(dead_code)]

use std::hint::black_box;

use shunt_parsers::vlan;
use shunt_parsers::vxlan;
use shunt_parsers::*;

pub fn ethernet(data: &[u8]) {
    black_box(ethernet::dst_addr(data));
    black_box(ethernet::src_addr(data));
    let Ok(f) = EthernetFrame::new_checked(data) else {
        return;
    };
    black_box((f.dst_addr(), f.src_addr(), f.ethertype(), f.is_802_3()));
    black_box((f.length_field(), f.payload(), f.dst_addr().to_string()));
    black_box((f.dst_addr().is_link_local(), f.src_addr().is_link_local()));
    black_box(f.ethertype().to_string());
    let mut copy = data.to_vec();
    let mut f = EthernetFrame::new_checked(&mut copy[..]).expect("checked above");
    let (d, s, t) = (f.dst_addr(), f.src_addr(), f.ethertype());
    f.set_dst_addr(s);
    f.set_src_addr(d);
    f.set_ethertype(t);
    black_box(f.payload_mut());
}

pub fn vlan(data: &[u8]) {
    black_box(vlan::outer_tag(data));
    if let Ok(t) = VlanTag::new_checked(data) {
        black_box((
            t.tci(),
            t.pcp(),
            t.dei(),
            t.vid(),
            t.ethertype(),
            t.payload(),
        ));
        let mut copy = data.to_vec();
        let mut t = VlanTag::new_checked(&mut copy[..]).expect("checked above");
        let (p, d, v) = (t.pcp(), t.dei(), t.vid());
        t.set_vid(v);
        t.set_pcp(p);
        t.set_dei(d);
        let e = t.ethertype();
        t.set_ethertype(e);
        black_box(t.payload_mut());
    }
    // Edit helpers over every (start, len) that fits, plus out-of-range ones.
    let n = data.len().min(24);
    for start in [0, 1, 3, 4, 5, 8, 50, usize::MAX - 1] {
        for len in [0, 13, 14, 17, 18, data.len(), usize::MAX] {
            let mut buf = data.to_vec();
            black_box(vlan::push_tag(
                &mut buf,
                start,
                len,
                EtherType::Vlan,
                0xffff,
            ));
            let mut buf = data.to_vec();
            black_box(vlan::pop_tag(&mut buf, start, len));
        }
    }
    let mut buf = data[..n].to_vec();
    black_box(vlan::set_outer_tag(&mut buf, EtherType::QinQ, 0x1234).is_ok());
    for tag_len in [0, vlan::TAG_LEN, 2 * vlan::TAG_LEN, data.len(), usize::MAX] {
        if let Some(u) = Untagged::new(data, tag_len) {
            black_box((u.macs(), u.rest(), u.ethertype(), u.payload()));
            assert_eq!(u.macs().len() + u.rest().len() + tag_len, data.len());
        }
    }
}

pub fn arp(data: &[u8]) {
    if let Ok(repr) = ArpRepr::parse_frame(data) {
        let mut frame = [0u8; arp::FRAME_LEN];
        let eth_dst = ethernet::dst_addr(data).expect("parsed a frame");
        assert_eq!(repr.emit_frame(eth_dst, &mut frame), Ok(arp::FRAME_LEN));
        // All but the Ethernet source, which emit_frame takes from the ARP
        // sender.
        assert_eq!(&frame[..6], &data[..6], "ArpRepr frame round trip");
        assert_eq!(&frame[12..], &data[12..arp::FRAME_LEN], "ArpRepr frame");
    }
    let Ok(p) = ArpPacket::new_checked(data) else {
        return;
    };
    black_box((
        p.hardware_type(),
        p.protocol_type(),
        p.hardware_len(),
        p.protocol_len(),
    ));
    black_box((p.operation(), p.is_ethernet_ipv4()));
    black_box((p.source_hardware_addr(), p.source_protocol_addr()));
    black_box((p.target_hardware_addr(), p.target_protocol_addr()));
    if let Ok(repr) = ArpRepr::parse(&p) {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &data[..28], "ArpRepr round trip");
        if let Some(reply) = repr.reply(MacAddr([2, 0, 0, 0, 0, 9])) {
            let mut frame = [0u8; 42];
            black_box(reply.emit_frame(repr.sender_mac, &mut frame).is_ok());
            black_box(
                reply
                    .emit_frame(repr.sender_mac, &mut frame[..data.len() % 43])
                    .is_ok(),
            );
        }
    }
}

pub fn ipv4(data: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(data) else {
        return;
    };
    black_box((
        p.version(),
        p.header_len(),
        p.dscp(),
        p.ecn(),
        p.total_len(),
    ));
    black_box((
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
    ));
    black_box((
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    ));
    black_box((p.verify_checksum(), p.options(), p.payload()));
    let mut copy = data.to_vec();
    let mut p = Ipv4Packet::new_checked(&mut copy[..]).expect("checked above");
    let ttl = p.ttl();
    p.set_ttl(ttl.wrapping_sub(1));
    p.fill_checksum();
    assert!(p.verify_checksum(), "fill_checksum then verify");
    black_box(p.payload_mut());
}

pub fn ipv6(data: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(data) else {
        return;
    };
    black_box((
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.payload_len(),
    ));
    black_box((
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload(),
    ));
    let mut copy = data.to_vec();
    let mut p = Ipv6Packet::new_checked(&mut copy[..]).expect("checked above");
    let (tc, fl) = (p.traffic_class(), p.flow_label());
    p.set_flow_label(fl);
    p.set_traffic_class(tc);
    black_box(p.payload_mut());
}

pub fn udp(data: &[u8]) {
    black_box(ip::l4_ports(data));
    let Ok(p) = UdpPacket::new_checked(data) else {
        return;
    };
    black_box((
        p.src_port(),
        p.dst_port(),
        p.len(),
        p.is_empty(),
        p.checksum(),
    ));
    black_box(p.payload());
    let (a, b) = (
        "10.0.0.1".parse().expect("ip"),
        "10.0.0.2".parse().expect("ip"),
    );
    black_box(p.verify_checksum_v4(a, b));
    black_box(p.verify_checksum_v6(
        "fd00::1".parse().expect("ip"),
        "fd00::2".parse().expect("ip"),
    ));
    let mut copy = data.to_vec();
    let mut p = UdpPacket::new_checked(&mut copy[..]).expect("checked above");
    p.fill_checksum_v4(a, b);
    assert!(p.verify_checksum_v4(a, b), "fill then verify (v4)");
    black_box(p.payload_mut());
}

pub fn vxlan(data: &[u8]) {
    black_box(vxlan::decap(data).ok());
    // As a VTEP: the outer destination taken from the input, so that the
    // address and port checks pass as often as they fail.
    let to = Ipv4Packet::new_checked(data.get(14..).unwrap_or(&[]))
        .ok()
        .map(|ip| {
            let port = ip::l4_ports(ip.payload()).map_or(vxlan::VXLAN_PORT, |p| p.1);
            (ip.dst_addr(), port)
        });
    for to in [
        to,
        Some(("10.0.0.2".parse().expect("ip"), vxlan::VXLAN_PORT)),
    ] {
        match vxlan::decap_for(data, to) {
            Ok(d) => {
                assert_eq!(vxlan::decap(data), Ok(d.clone()), "decap_for agrees");
                black_box(data.get(d.inner).expect("inner frame inside"));
            }
            Err(r) => {
                black_box(r.error());
            }
        }
    }
    if let Ok(p) = VxlanPacket::new_checked(data) {
        black_box((
            p.flags(),
            p.has_vni(),
            p.vni(),
            p.reserved0(),
            p.reserved1(),
            p.payload(),
        ));
        let mut copy = data.to_vec();
        let mut p = VxlanPacket::new_checked(&mut copy[..]).expect("checked above");
        let (f, v) = (p.flags(), p.vni());
        p.set_flags(f);
        p.set_vni(v);
        black_box(p.payload_mut());
    }
    // The builder, with lengths and VNIs taken from the input.
    let word = |i: usize| data.get(i).copied().unwrap_or(0) as u32;
    let encap = VxlanEncap {
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        src_ip: "10.0.0.1".parse().expect("ip"),
        dst_ip: "10.0.0.2".parse().expect("ip"),
        src_port: vxlan::entropy_port(word(0) << 8 | word(1)),
        dst_port: vxlan::VXLAN_PORT,
        ttl: 64,
        vni: word(2) << 24 | word(3) << 16 | word(4),
        ident: 0,
        dont_frag: word(5) & 1 == 1,
    };
    let mut buf = data.to_vec();
    buf.resize(buf.len() + 64, 0);
    let inner_len = (word(6) << 16 | word(7) << 8 | word(8)) as usize;
    if let Ok(n) = emit_vxlan_encap(&mut buf, &encap, inner_len) {
        let ip = Ipv4Packet::new_unchecked(&buf[14..n]);
        assert!(ip.verify_checksum(), "emitted IPv4 header verifies");
    }
    let start = data.len() % 97;
    black_box(vxlan::encap_in_place(&mut buf, start, data.len(), &encap));
}

/// Every view at offset 0, plus every view at the offsets where it sits in
/// a real frame (after Ethernet, after a tag, after IPv4, after UDP).
pub fn all(data: &[u8]) {
    for off in [0usize, 14, 18, 34, 42, 50] {
        let d = data.get(off..).unwrap_or(&[]);
        ethernet(d);
        vlan(d);
        arp(d);
        ipv4(d);
        ipv6(d);
        udp(d);
        tcp(d);
        vxlan(d);
        stp(d);
        mcast(d);
    }
    let mut out = vec![0u8; GSO_OUT_LEN];
    virtio_gso(data, &mut out);
}

pub fn tcp(data: &[u8]) {
    black_box(ip::l4_ports(data));
    let Ok(p) = TcpPacket::new_checked(data) else {
        return;
    };
    black_box((p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()));
    black_box((p.header_len(), p.flags(), p.window(), p.checksum()));
    black_box((p.urgent(), p.options(), p.payload()));
    let (a, b) = (
        "10.0.0.1".parse().expect("ip"),
        "10.0.0.2".parse().expect("ip"),
    );
    black_box(p.verify_checksum_v4(a, b));
    let (a6, b6) = (
        "fd00::1".parse().expect("ip"),
        "fd00::2".parse().expect("ip"),
    );
    black_box(p.verify_checksum_v6(a6, b6));
    let mut copy = data.to_vec();
    let mut p = TcpPacket::new_checked(&mut copy[..]).expect("checked above");
    if p.fill_checksum_v4(a, b) {
        assert!(p.verify_checksum_v4(a, b), "fill then verify (v4)");
    }
    assert!(p.fill_checksum_v6(a6, b6));
    assert!(p.verify_checksum_v6(a6, b6), "fill then verify (v6)");
    let (s, f) = (p.seq_number(), p.flags());
    p.set_seq_number(s.wrapping_add(1));
    p.set_flags(f);
    black_box(p.payload_mut());
}

/// The longest segment from its L3 header on: an IPv6 header and a full
/// 16-bit payload length.
pub const GSO_OUT_LEN: usize = 40 + 65535;

/// `data` = a 24-byte tunnel header, then the outer frame. Whatever
/// `check_tunnel_header` accepts with a tunnel: its offsets lie in the
/// frame in order, the header the switch writes back for it is accepted
/// the same, and the inner frame (where decapsulation puts it) is a plain
/// super-frame that `check_header` accepts again and that segments (the
/// segments themselves are checked by [`virtio_gso`] on that frame).
pub fn virtio_tunnel(data: &[u8], out: &mut [u8]) {
    use shunt_parsers::gso;
    use shunt_parsers::virtio_net::{Csum, Offload, VirtioNetHdr, VNET_HDR_TNL_LEN};

    let Ok(h) = VirtioNetHdr::parse_tnl(data) else {
        return;
    };
    let frame = data.get(VNET_HDR_TNL_LEN..).unwrap_or(&[]);
    let Ok(off) = gso::check_tunnel_header(&h, frame) else {
        return;
    };
    let Some(t) = off.tunnel else {
        // No tunnel bit: the plain check's verdict.
        assert_eq!(gso::check_header(&h, frame), Ok(off));
        return;
    };
    assert!(gso::check_header(&h, frame).is_err());
    let c = off
        .csum
        .expect("a tunnel super-frame asks for its checksum");
    assert!(t.outer_l4 < t.inner_l3 && t.inner_l3 < c.start && c.start < t.hdr_end);
    assert!(usize::from(t.hdr_end) <= frame.len());
    let back = VirtioNetHdr::parse_tnl(&off.to_header(0, 0).to_bytes_tnl()).expect("24 bytes");
    assert_eq!(gso::check_tunnel_header(&back, frame), Ok(off));
    let at = usize::from(t.inner_l3) - 14;
    let inner = Offload {
        tunnel: None,
        csum: Some(Csum {
            start: c.start - at as u16,
            offset: c.offset,
        }),
        ..off
    };
    let f = &frame[at..];
    let again = gso::check_header(&inner.to_header(0, 0), f).expect("inner re-check");
    assert_eq!(
        (again.gso, again.gso_size, again.csum),
        (inner.gso, inner.gso_size, inner.csum)
    );
    let seg = gso::Segmenter::new(f, &inner).expect("the inner frame segments");
    for i in 0..seg.count {
        assert!(seg.write_l3(f, i, out).is_some(), "segment {i}");
    }
}

/// `data` = a 12-byte virtio-net header, then the frame. Whatever
/// `check_header` accepts must segment: every segment written, none longer
/// than the buffer, every checksum right, the payload adding up. The same
/// bytes are also read as a 24-byte tunnel header and its frame
/// ([`virtio_tunnel`]).
pub fn virtio_gso(data: &[u8], out: &mut [u8]) {
    use shunt_parsers::gso;
    use shunt_parsers::virtio_net::{Gso, VirtioNetHdr, VNET_HDR_LEN};

    virtio_tunnel(data, out);
    let Ok(h) = VirtioNetHdr::parse(data) else {
        return;
    };
    assert_eq!(VirtioNetHdr::parse(&h.to_bytes()), Ok(h));
    let frame = data.get(VNET_HDR_LEN..).unwrap_or(&[]);
    let Ok(off) = gso::check_header(&h, frame) else {
        return;
    };
    // What the switch hands to the next TAP is accepted there too.
    let again = gso::check_header(&off.to_header(0, h.hdr_len), frame).expect("re-check");
    assert_eq!(
        (again.gso, again.gso_size, again.csum),
        (off.gso, off.gso_size, off.csum)
    );
    if let Some(c) = off.csum {
        let mut copy = frame.to_vec();
        gso::complete_csum(&mut copy, c).expect("check_header checked the bounds");
        let at = usize::from(c.start) + usize::from(c.offset);
        assert_eq!(copy[..at], frame[..at]);
        assert_eq!(copy[at + 2..], frame[at + 2..]);
    }
    if !off.gso.is_some() {
        assert!(gso::Segmenter::new(frame, &off).is_err());
        return;
    }
    let seg = gso::Segmenter::new(frame, &off).expect("check_header accepted it");
    assert!(seg.count >= 1);
    let ip_hdr = seg.l4() - seg.l3;
    let mut payload = 0;
    for i in 0..seg.count {
        let want = seg.segment_l3_len(i);
        assert!(want <= out.len(), "segment {i}: {want} bytes");
        let n = seg.write_l3(frame, i, out).expect("segment written");
        assert_eq!(n, want);
        assert!(n <= seg.max_l3_len());
        let s = &out[..n];
        let data_len = n - (seg.payload - seg.l3);
        assert!(data_len <= seg.mss && (data_len == seg.mss || i + 1 == seg.count));
        payload += data_len;
        let l4 = &s[ip_hdr..];
        match seg.gso() {
            Gso::Tcp4 | Gso::Udp4 => {
                let p = Ipv4Packet::new_checked(s).expect("IPv4 segment");
                assert!(p.verify_checksum());
                assert_eq!(usize::from(p.total_len()), n);
                let (a, b) = (p.src_addr(), p.dst_addr());
                if seg.gso() == Gso::Tcp4 {
                    let t = TcpPacket::new_checked(l4).expect("TCP");
                    assert!(t.verify_checksum_v4(a, b));
                } else {
                    let u = UdpPacket::new_checked(l4).expect("UDP");
                    assert!(u.checksum() != 0 && u.verify_checksum_v4(a, b));
                }
            }
            Gso::Tcp6 | Gso::Udp6 => {
                let p = Ipv6Packet::new_checked(s).expect("IPv6 segment");
                assert_eq!(usize::from(p.payload_len()) + 40, n);
                let (a, b) = (p.src_addr(), p.dst_addr());
                if seg.gso() == Gso::Tcp6 {
                    let t = TcpPacket::new_checked(l4).expect("TCP");
                    assert!(t.verify_checksum_v6(a, b));
                } else {
                    let u = UdpPacket::new_checked(l4).expect("UDP");
                    assert!(u.verify_checksum_v6(a, b));
                }
            }
            Gso::None => unreachable!("is_some checked"),
        }
    }
    assert_eq!(payload, frame.len() - seg.payload, "payload adds up");
    assert_eq!(seg.write_l3(frame, seg.count, out), None);
}

pub fn stp(data: &[u8]) {
    black_box(stp::is_bpdu_dst(data));
    if let Ok(b) = stp::Bpdu::parse_frame(data) {
        let mut out = [0u8; stp::MAX_FRAME_LEN];
        let n = b
            .emit_frame(ethernet::src_addr(data).expect("parsed a frame"), &mut out)
            .expect("60 bytes are enough");
        assert_eq!(
            stp::Bpdu::parse_frame(&out[..n]),
            Ok(b),
            "Bpdu frame round trip"
        );
        black_box((b.role(), b.has(stp::flags::TC)));
    }
    let Ok(p) = BpduPacket::new_checked(data) else {
        return;
    };
    black_box((p.protocol_id(), p.version(), p.bpdu_type(), p.flags()));
    black_box((p.root_id(), p.root_path_cost(), p.bridge_id(), p.port_id()));
    black_box((
        p.message_age(),
        p.max_age(),
        p.hello_time(),
        p.forward_delay(),
    ));
    if let Ok(b) = Bpdu::parse(&p) {
        let mut out = [0u8; stp::RST_LEN];
        let n = b.emit(&mut out).expect("36 bytes are enough");
        assert_eq!(
            Bpdu::parse(&BpduPacket::new_checked(&out[..n]).unwrap()),
            Ok(b)
        );
    }
}

/// IGMP and MLD: the IP-level finders, the views (also over raw bytes,
/// as the message itself), every getter and every record.
pub fn mcast(data: &[u8]) {
    for m in [
        igmp::in_ipv4(data),
        igmp::IgmpPacket::new_checked(data).ok(),
    ]
    .into_iter()
    .flatten()
    {
        black_box((m.msg_type(), m.max_resp_code(), m.checksum(), m.group()));
        black_box((m.query_version(), m.max_resp_ms(), m.query_sources()));
        black_box(m.verify_checksum());
        for r in m.records() {
            black_box((r.kind, r.sources, r.group, r.joins()));
        }
    }
    black_box(mld::icmpv6_after_hop_by_hop(data));
    for m in [mld::in_ipv6(data), mld::MldPacket::new_checked(data).ok()]
        .into_iter()
        .flatten()
    {
        black_box((m.msg_type(), m.group(), m.query_version(), m.max_resp_ms()));
        black_box(m.verify_checksum(mld::ALL_NODES, mld::ALL_NODES));
        for r in m.records() {
            black_box((r.kind, r.sources, r.group, r.joins()));
        }
    }
}
