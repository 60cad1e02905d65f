//! The software offloads (shunt_parsers::gso) against super-frames built
//! here: random ones segmented and reassembled, every checksum verified
//! with a sum written in tests/common/superframe.rs from RFC 1071; every
//! refusal of bad metadata; checksum completion on a real frame.

#![allow(clippy::unwrap_used)]

mod common;

use common::superframe::Built;
use common::superframe::{build, l4_verifies, ones_sum, pseudo, Rng, Spec};
use common::{exercise, pcap};
use shunt_parsers::gso::{check_header, complete_csum, Segmenter};
use shunt_parsers::virtio_net::{
    Csum, Gso, Offload, OffloadError, VirtioNetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE,
    GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4,
};

const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Segments `s`'s super-frame and checks every segment field by field.
/// Returns the number of segments.
fn segment_and_check(s: &Spec) -> usize {
    let (frame, h, b) = build(s);
    let off = check_header(&h, &frame).unwrap_or_else(|e| panic!("{s:?}: {e:?}"));
    let want_gso = match (s.v6, s.udp) {
        (false, false) => Gso::Tcp4,
        (true, false) => Gso::Tcp6,
        (false, true) => Gso::Udp4,
        (true, true) => Gso::Udp6,
    };
    assert_eq!(off.gso, want_gso);
    assert_eq!(off.gso_size, s.mss);
    let seg = Segmenter::new(&frame, &off).unwrap();
    assert_eq!((seg.l3, seg.payload), (b.l3, b.payload));
    assert_eq!(seg.l4(), b.l4);
    assert_eq!(seg.payload_len(), s.payload.len());
    let mss = usize::from(s.mss);
    assert_eq!(seg.count, s.payload.len().div_ceil(mss).max(1));

    let ip_hdr = b.l4 - b.l3;
    let hdrs = b.payload - b.l3;
    let proto = if s.udp { 17 } else { 6 };
    let mut out = vec![0u8; 70_000];
    let mut joined = Vec::new();
    for i in 0..seg.count {
        let n = seg.write_l3(&frame, i, &mut out).unwrap();
        assert_eq!(n, seg.segment_l3_len(i));
        assert!(n <= seg.max_l3_len());
        let o = &out[..n];
        let data = &o[hdrs..];
        let last = i + 1 == seg.count;
        if last {
            assert!(!data.is_empty() || s.payload.is_empty());
            assert!(data.len() <= mss);
        } else {
            assert_eq!(data.len(), mss, "segment {i} of {}", seg.count);
        }
        joined.extend_from_slice(data);

        // L3.
        if s.v6 {
            assert_eq!(usize::from(be16(o, 4)), n - 40, "IPv6 payload length");
            assert_eq!(&o[..4], &frame[b.l3..b.l3 + 4]);
            assert_eq!(&o[6..40], &frame[b.l3 + 6..b.l3 + 40]);
        } else {
            assert_eq!(usize::from(be16(o, 2)), n, "IPv4 total length");
            assert_eq!(be16(o, 4), s.ident.wrapping_add(i as u16), "IPv4 id");
            assert_eq!(ones_sum(&[&o[..ip_hdr]]), 0xffff, "IPv4 header checksum");
            assert_eq!(o[..2], frame[b.l3..b.l3 + 2]);
            assert_eq!(o[6..10], frame[b.l3 + 6..b.l3 + 10]); // flags, TTL, protocol
            assert_eq!(o[12..ip_hdr], frame[b.l3 + 12..b.l4]); // addresses, options
        }
        // L4.
        let l4 = &o[ip_hdr..];
        if s.udp {
            assert_eq!(usize::from(be16(l4, 4)), l4.len(), "UDP length");
            assert_ne!(be16(l4, 6), 0, "a computed UDP checksum is never 0");
        } else {
            assert_eq!(
                be32(l4, 4),
                s.seq.wrapping_add((i * mss) as u32),
                "sequence number of segment {i}"
            );
            let mut flags = s.tcp_flags;
            if !last {
                flags &= !(FIN | PSH);
            }
            if i != 0 {
                flags &= !CWR;
            }
            assert_eq!(l4[13], flags, "flags of segment {i}");
            let f4 = &frame[b.l4..];
            assert_eq!(l4[..4], f4[..4]); // ports
            assert_eq!(l4[8..13], f4[8..13]); // ack, data offset
            assert_eq!(l4[14..16], f4[14..16]); // window
            assert_eq!(l4[18..hdrs - ip_hdr], f4[18..hdrs - ip_hdr]); // urgent, options
        }
        assert!(l4_verifies(o, s.v6, ip_hdr, proto), "L4 checksum of {i}");
    }
    assert_eq!(joined, s.payload, "segments reassemble to the payload");
    assert_eq!(seg.write_l3(&frame, seg.count, &mut out), None);
    assert_eq!(seg.segment_l3_len(seg.count), 0);
    seg.count
}

#[test]
fn random_super_frames_segment_and_reassemble() {
    let mut rng = Rng(0x6e50_1234_5678_9abc);
    let mut kinds = [0usize; 4];
    let mut segments = 0;
    for case in 0..600 {
        let v6 = rng.below(2) == 1;
        let udp = rng.below(2) == 1;
        // Mostly realistic segment sizes, sometimes tiny or odd ones.
        let mss = match rng.below(4) {
            0 => 1 + rng.below(64),
            1 => 1448,
            2 => 1200 + rng.below(300),
            _ => 1 + rng.below(9000),
        } as u16;
        let mut s = Spec::new(v6, udp, 0, mss);
        let max_payload = 65535 - 40 - 60 - 60 - 40;
        let len = match case % 5 {
            0 => usize::from(mss) * (1 + rng.below(8)), // a multiple of mss
            1 => rng.below(usize::from(mss) + 1),       // one segment
            2 => max_payload - rng.below(100),          // near 64 KiB
            _ => rng.below(20_000),
        };
        s.payload = rng.bytes(len.min(max_payload));
        s.tags = rng.below(3);
        s.ip_opts = if v6 { 0 } else { 4 * rng.below(11) };
        s.tcp_opts = 4 * rng.below(11);
        s.seq = rng.next() as u32; // wraps now and then
        s.ident = rng.next() as u16;
        s.tcp_flags = rng.next() as u8 & !0x07 | 0x10 | (rng.below(2) as u8); // no SYN/RST
        kinds[usize::from(v6) * 2 + usize::from(udp)] += 1;
        segments += segment_and_check(&s);
    }
    assert!(kinds.iter().all(|&k| k > 100), "{kinds:?}");
    assert!(segments > 2000, "only {segments} segments");
}

#[test]
fn fixed_cases_one_by_one() {
    // Each kind, untagged, tagged and double-tagged; a remainder segment.
    for v6 in [false, true] {
        for udp in [false, true] {
            for tags in 0..3 {
                let mut s = Spec::new(v6, udp, 3 * 1448 + 5, 1448);
                s.tags = tags;
                s.tcp_flags = 0x18 | FIN | CWR;
                assert_eq!(segment_and_check(&s), 4);
            }
        }
    }
    // One segment: payload exactly mss, less, and none.
    for len in [1448, 100, 0] {
        let s = Spec::new(false, false, len, 1448);
        assert_eq!(segment_and_check(&s), 1);
    }
    // The sequence number wraps.
    let mut s = Spec::new(true, false, 10 * 1000, 1000);
    s.seq = u32::MAX - 2500;
    assert_eq!(segment_and_check(&s), 10);
}

#[test]
fn segments_do_not_depend_on_the_super_frames_checksum_field() {
    for udp in [false, true] {
        let s = Spec::new(false, udp, 5000, 1400);
        let (mut frame, h, b) = build(&s);
        let at = b.l4 + if udp { 6 } else { 16 };
        let off = check_header(&h, &frame).unwrap();
        let seg = Segmenter::new(&frame, &off).unwrap();
        let mut a = vec![0u8; 2000];
        let na = seg.write_l3(&frame, 1, &mut a).unwrap();
        frame[at..at + 2].copy_from_slice(&[0xde, 0xad]);
        let mut c = vec![0u8; 2000];
        let nc = seg.write_l3(&frame, 1, &mut c).unwrap();
        assert_eq!(a[..na], c[..nc]);
    }
}

#[test]
fn write_l3_refuses_small_buffers_and_other_frames() {
    let s = Spec::new(false, false, 3000, 1448);
    let (frame, h, _) = build(&s);
    let off = check_header(&h, &frame).unwrap();
    let seg = Segmenter::new(&frame, &off).unwrap();
    let need = seg.segment_l3_len(0);
    let mut out = vec![0u8; need];
    assert_eq!(seg.write_l3(&frame, 0, &mut out[..need - 1]), None);
    assert_eq!(seg.write_l3(&frame, 0, &mut out), Some(need));
    // A shorter frame than the plan's: no segment read beyond it.
    assert_eq!(seg.write_l3(&frame[..frame.len() - 1], 2, &mut out), None);
    assert_eq!(seg.write_l3(&frame[..40], 0, &mut out), None);
    assert_eq!(seg.write_l3(&[], 0, &mut out), None);
    assert_eq!(seg.write_l3(&frame, usize::MAX, &mut out), None);
    // Fields changed by hand must not make it panic either.
    let mut bad = seg;
    bad.count = usize::MAX;
    bad.mss = usize::MAX;
    for i in [0, 1, 2, usize::MAX] {
        let _ = bad.write_l3(&frame, i, &mut out);
        let _ = bad.segment_l3_len(i);
    }
    let mut bad = seg;
    bad.payload = 0;
    assert_eq!(bad.write_l3(&frame, 0, &mut out), None);
    assert_eq!(bad.segment_l3_len(0), 0);
}

fn tcp4() -> (Vec<u8>, VirtioNetHdr, Built) {
    build(&Spec::new(false, false, 4000, 1448))
}

#[test]
fn gso_type_and_size() {
    let (frame, h, _) = tcp4();
    for t in [GSO_UDP, 2, 6, 0x7f, GSO_UDP | GSO_ECN] {
        let h = VirtioNetHdr { gso_type: t, ..h };
        assert_eq!(check_header(&h, &frame), Err(OffloadError::GsoType), "{t}");
    }
    let h0 = VirtioNetHdr { gso_size: 0, ..h };
    assert_eq!(check_header(&h0, &frame), Err(OffloadError::GsoSize));
    // ECN is a flag of TCP super-frames.
    let he = VirtioNetHdr {
        gso_type: GSO_TCPV4 | GSO_ECN,
        ..h
    };
    let o = check_header(&he, &frame).unwrap();
    assert!(o.ecn);
    assert_eq!(o.to_header(0, h.hdr_len), he);
    // A plain frame with gso_size set: not a super-frame.
    let hn = VirtioNetHdr {
        gso_type: GSO_NONE,
        ..h
    };
    let o = check_header(&hn, &frame).unwrap();
    assert_eq!(o.gso, Gso::None);
    assert_eq!(o.gso_size, 0);
    assert_eq!(Segmenter::new(&frame, &o), Err(OffloadError::Mismatch));
    let z = Offload {
        gso_size: 0,
        ..check_header(&h, &frame).unwrap()
    };
    assert_eq!(Segmenter::new(&frame, &z), Err(OffloadError::GsoSize));
}

#[test]
fn checksum_start_and_offset() {
    let (frame, h, b) = tcp4();
    let len = frame.len() as u16;
    // Non-GSO: only the bounds count.
    let plain = |start: u16, offset: u16| VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: start,
        csum_offset: offset,
        ..VirtioNetHdr::default()
    };
    assert!(check_header(&plain(len - 2, 0), &frame).is_ok());
    assert!(check_header(&plain(14, len - 16), &frame).is_ok());
    for (s, o) in [
        (len - 1, 0),
        (len, 0),
        (len + 1, 0),
        (14, len - 15),
        (u16::MAX, u16::MAX),
        (0, 16), // inside the MAC header
        (13, 16),
    ] {
        assert_eq!(
            check_header(&plain(s, o), &frame),
            Err(OffloadError::Checksum),
            "start {s} offset {o}"
        );
    }
    // GSO: the L4 checksum and nothing else.
    let l4 = b.l4 as u16;
    for (s, o) in [
        (l4, 6),
        (l4 + 2, 16),
        (14, 16),
        (l4 - 1, 17),
        (len + 10, 16),
    ] {
        let bad = VirtioNetHdr {
            csum_start: s,
            csum_offset: o,
            ..h
        };
        assert_eq!(check_header(&bad, &frame), Err(OffloadError::Checksum));
    }
    let no_csum = VirtioNetHdr { flags: 0, ..h };
    assert_eq!(check_header(&no_csum, &frame), Err(OffloadError::Checksum));
    let valid = VirtioNetHdr {
        flags: F_DATA_VALID,
        ..h
    };
    assert_eq!(check_header(&valid, &frame), Err(OffloadError::Checksum));
    let (uframe, uh, _) = build(&Spec::new(true, true, 3000, 1000));
    let bad = VirtioNetHdr {
        csum_offset: 16,
        ..uh
    };
    assert_eq!(check_header(&bad, &uframe), Err(OffloadError::Checksum));
}

#[test]
fn gso_type_must_match_the_headers() {
    let (v4, h4, _) = build(&Spec::new(false, false, 3000, 1000));
    let (v6, h6, _) = build(&Spec::new(true, false, 3000, 1000));
    let (u4, hu4, _) = build(&Spec::new(false, true, 3000, 1000));
    let (u6, hu6, _) = build(&Spec::new(true, true, 3000, 1000));
    let with = |h: &VirtioNetHdr, t: u8| VirtioNetHdr { gso_type: t, ..*h };
    // TCPv4 on an IPv6 packet and the other way round.
    assert_eq!(
        check_header(&with(&h6, GSO_TCPV4), &v6),
        Err(OffloadError::Mismatch)
    );
    assert_eq!(
        check_header(&with(&h4, GSO_TCPV6), &v4),
        Err(OffloadError::Mismatch)
    );
    // UDP GSO on TCP, TCP GSO on UDP (checksum offset made right for each).
    assert_eq!(
        check_header(&with(&h4, GSO_UDP_L4), &v4),
        Err(OffloadError::Mismatch)
    );
    assert_eq!(
        check_header(&with(&h6, GSO_UDP_L4), &v6),
        Err(OffloadError::Mismatch)
    );
    assert_eq!(
        check_header(&with(&hu4, GSO_TCPV4), &u4),
        Err(OffloadError::Mismatch)
    );
    assert_eq!(
        check_header(&with(&hu6, GSO_TCPV6), &u6),
        Err(OffloadError::Mismatch)
    );
    // UDP_L4 says which IP version by the headers.
    assert_eq!(check_header(&hu4, &u4).unwrap().gso, Gso::Udp4);
    assert_eq!(check_header(&hu6, &u6).unwrap().gso, Gso::Udp6);
    // The Segmenter holds the Offload to the same rule.
    let o4 = check_header(&h4, &v4).unwrap();
    assert_eq!(Segmenter::new(&v6, &o4), Err(OffloadError::Mismatch));
    let ou4 = check_header(&hu4, &u4).unwrap();
    assert_eq!(Segmenter::new(&u6, &ou4), Err(OffloadError::Mismatch));
    assert_eq!(Segmenter::new(&v4, &ou4), Err(OffloadError::Mismatch));

    let mismatch = |frame: &[u8], h: &VirtioNetHdr| {
        assert_eq!(check_header(h, frame), Err(OffloadError::Mismatch));
    };
    // Not IP: ARP's EtherType; an IPv4 EtherType over an IPv6 header.
    let mut f = v4.clone();
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    mismatch(&f, &h4);
    let mut f = v4.clone();
    f[14] = 0x65;
    mismatch(&f, &h4);
    // An IPv4 fragment; ICMP; an IPv6 hop-by-hop header.
    let mut f = v4.clone();
    f[20] |= 0x20; // more fragments
    mismatch(&f, &h4);
    let mut f = v4.clone();
    f[23] = 1;
    mismatch(&f, &h4);
    let mut f = v6.clone();
    f[20] = 0;
    mismatch(&f, &h6);
    // Three VLAN tags.
    let mut s = Spec::new(false, false, 3000, 1000);
    s.tags = 2;
    let (mut f, h, _) = build(&s);
    f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let h = VirtioNetHdr {
        csum_start: h.csum_start + 4,
        hdr_len: h.hdr_len + 4,
        ..h
    };
    mismatch(&f, &h);
}

#[test]
fn lengths_that_lie() {
    let length = |frame: &[u8], h: &VirtioNetHdr, what: &str| {
        assert_eq!(check_header(h, frame), Err(OffloadError::Length), "{what}");
    };
    let (v4, h4, b4) = build(&Spec::new(false, false, 3000, 1000));
    let (v6, h6, b6) = build(&Spec::new(true, false, 3000, 1000));
    let (u4, hu4, bu4) = build(&Spec::new(false, true, 3000, 1000));

    // hdr_len beyond the frame; anything inside it is only a hint.
    let h = VirtioNetHdr {
        hdr_len: v4.len() as u16 + 1,
        ..h4
    };
    length(&v4, &h, "hdr_len");
    for hint in [0, 14, v4.len() as u16] {
        let h = VirtioNetHdr {
            hdr_len: hint,
            ..h4
        };
        assert!(check_header(&h, &v4).is_ok());
    }
    let plain = VirtioNetHdr {
        hdr_len: 200,
        ..VirtioNetHdr::default()
    };
    length(&v4[..100], &plain, "hdr_len of a plain frame");

    for delta in [-1i32, 1, 2000, -2000] {
        let mut f = v4.clone();
        let l = (i32::from(be16(&f, b4.l3 + 2)) + delta) as u16;
        f[b4.l3 + 2..b4.l3 + 4].copy_from_slice(&l.to_be_bytes());
        length(&f, &h4, "IPv4 total length");
        let mut f = v6.clone();
        let l = (i32::from(be16(&f, b6.l3 + 4)) + delta) as u16;
        f[b6.l3 + 4..b6.l3 + 6].copy_from_slice(&l.to_be_bytes());
        length(&f, &h6, "IPv6 payload length");
        let mut f = u4.clone();
        let l = (i32::from(be16(&f, bu4.l4 + 4)) + delta) as u16;
        f[bu4.l4 + 4..bu4.l4 + 6].copy_from_slice(&l.to_be_bytes());
        length(&f, &hu4, "UDP length");
    }
    // IPv4 header length below 20 or beyond the frame's headers.
    let mut f = v4.clone();
    f[b4.l3] = 0x44;
    length(&f, &h4, "IHL 4");
    // TCP data offset below 5, or beyond the frame.
    let mut f = v4.clone();
    f[b4.l4 + 12] = 0x40;
    length(&f, &h4, "data offset 4");
    let (short, hs, bs) = build(&Spec::new(false, false, 10, 1000));
    let mut f = short.clone();
    f[bs.l4 + 12] = 0xf0;
    length(&f, &hs, "data offset 15 over 10 bytes of payload");

    // Every cut of a super-frame is refused, and never read beyond.
    for (frame, h) in [(&v4, &h4), (&v6, &h6), (&u4, &hu4)] {
        for n in 0..frame.len() {
            let got = check_header(h, &frame[..n]);
            assert!(
                matches!(got, Err(OffloadError::Length | OffloadError::Checksum)),
                "cut at {n}: {got:?}"
            );
            let o = check_header(h, frame).unwrap();
            assert!(Segmenter::new(&frame[..n], &o).is_err());
        }
        // Cut inside the payload, with a hint that fits: the IP length lies.
        let h = VirtioNetHdr { hdr_len: 0, ..*h };
        length(&frame[..frame.len() - 1], &h, "cut by one");
    }
}

#[test]
fn complete_csum_verifies() {
    let mut rng = Rng(0xc5_0001);
    for case in 0..200 {
        let udp = case % 2 == 0;
        let v6 = case % 4 >= 2;
        let s = Spec::new(v6, udp, rng.below(3000), 1448);
        let (mut frame, mut h, b) = build(&s);
        h.gso_type = GSO_NONE;
        h.gso_size = 0;
        let off = check_header(&h, &frame).unwrap();
        let c = off.csum.unwrap();
        complete_csum(&mut frame, c).unwrap();
        let proto = if udp { 17 } else { 6 };
        assert!(l4_verifies(&frame[b.l3..], v6, b.l4 - b.l3, proto), "{s:?}");
        let at = usize::from(c.start + c.offset);
        assert_ne!(be16(&frame, at), 0);
    }
}

#[test]
fn complete_csum_stores_0xffff_for_zero() {
    // A payload chosen so that the checksum comes out 0: the sum of
    // everything else, complemented, as the last word.
    let s = Spec::new(false, true, 2, 1448);
    let (mut frame, h, b) = build(&s);
    let n = frame.len();
    frame[n - 2..].fill(0);
    let rest = ones_sum(&[&frame[b.l4..]]);
    frame[n - 2..].copy_from_slice(&(!rest).to_be_bytes());
    let c = Csum {
        start: h.csum_start,
        offset: h.csum_offset,
    };
    complete_csum(&mut frame, c).unwrap();
    assert_eq!(be16(&frame, b.l4 + 6), 0xffff);
    assert!(l4_verifies(&frame[b.l3..], false, 20, 17));
}

#[test]
fn complete_csum_refuses_offsets_beyond_the_frame() {
    let mut frame = [0x55u8; 64];
    let copy = frame;
    for (start, offset) in [(63, 0), (64, 0), (62, 1), (0, 63), (u16::MAX, u16::MAX)] {
        let c = Csum { start, offset };
        assert_eq!(complete_csum(&mut frame, c), Err(OffloadError::Checksum));
        assert_eq!(frame, copy, "nothing written");
    }
    assert!(complete_csum(
        &mut frame,
        Csum {
            start: 62,
            offset: 0
        }
    )
    .is_ok());
    assert!(complete_csum(
        &mut [],
        Csum {
            start: 0,
            offset: 0
        }
    )
    .is_err());
}

#[test]
fn complete_csum_on_a_real_frame() {
    // dns.pcap frame 0: a DNS query whose UDP checksum field holds the
    // pseudo-header sum (captured on the sending veth: CHECKSUM_PARTIAL).
    // tcpdump -vv says the right checksum is 0x2145.
    let mut frame = pcap::frames("dns.pcap").swap_remove(0);
    assert_eq!(be16(&frame, 34 + 6), 0x1451);
    let h = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..VirtioNetHdr::default()
    };
    let off = check_header(&h, &frame).unwrap();
    complete_csum(&mut frame, off.csum.unwrap()).unwrap();
    assert_eq!(be16(&frame, 34 + 6), 0x2145);
    let ph = pseudo(&frame[26..30], &frame[30..34], 17, frame.len() - 34);
    assert_eq!(ones_sum(&[&ph, &frame[34..]]), 0xffff);
}

/// Header + frame, as the fuzz target reads them.
fn with_header(frame: &[u8], h: &VirtioNetHdr) -> Vec<u8> {
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(frame);
    v
}

/// A spread of valid super-frames: every kind, tags, options, sizes.
fn sample_specs() -> Vec<Spec> {
    let mut specs = Vec::new();
    for (k, (v6, udp)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        for (j, (len, mss)) in [(3000, 1000), (100, 7), (1448, 1448), (0, 536)]
            .into_iter()
            .enumerate()
        {
            let mut s = Spec::new(v6, udp, len, mss);
            s.tags = (k + j) % 3;
            s.ip_opts = if v6 { 0 } else { 4 * j };
            s.tcp_opts = 12 * (j % 2);
            specs.push(s);
        }
    }
    specs
}

#[test]
fn corrupted_super_frames_never_panic() {
    let mut rng = Rng(0xf022_0001);
    let mut out = vec![0u8; exercise::GSO_OUT_LEN];
    for s in sample_specs() {
        let (frame, h, _) = build(&s);
        let input = with_header(&frame, &h);
        exercise::virtio_gso(&input, &mut out);
        for _ in 0..300 {
            let mut f = input.clone();
            // Flip a few bytes, mostly in the header and the L2-L4 headers.
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(f.len().min(12 + 140));
                f[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            exercise::virtio_gso(&f, &mut out);
        }
    }
}

#[test]
fn corrupted_tunnel_super_frames_never_panic() {
    let mut rng = Rng(0xf022_0002);
    let mut out = vec![0u8; exercise::GSO_OUT_LEN];
    for s in sample_specs().iter().filter(|s| s.tags == 0) {
        let (frame, h, _) = tunnel_frame(s);
        let mut input = h.to_bytes_tnl().to_vec();
        input.extend_from_slice(&frame);
        exercise::virtio_tunnel(&input, &mut out);
        for _ in 0..300 {
            let mut f = input.clone();
            // Mostly in the header and the outer and inner headers.
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(f.len().min(24 + 50 + 140));
                f[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            exercise::virtio_tunnel(&f, &mut out);
        }
    }
}

/// Writes the fuzz target's seeds (header + super-frame) into
/// parsers/fuzz/seeds_gso. Run by hand when the builder changes:
/// `cargo test -p shunt-parsers --test gso -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds_gso");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in sample_specs().iter().enumerate() {
        let (frame, h, _) = build(s);
        std::fs::write(dir.join(format!("gso-{i:02}")), with_header(&frame, &h)).unwrap();
        // The same frame as a plain one with only the checksum to finish.
        let plain = VirtioNetHdr {
            gso_type: GSO_NONE,
            gso_size: 0,
            ..h
        };
        std::fs::write(
            dir.join(format!("csum-{i:02}")),
            with_header(&frame, &plain),
        )
        .unwrap();
        if s.tags == 0 {
            // Inside VXLAN, with the 24-byte tunnel header.
            let (frame, h, _) = tunnel_frame(s);
            let mut t = h.to_bytes_tnl().to_vec();
            t.extend_from_slice(&frame);
            std::fs::write(dir.join(format!("tnl-{i:02}")), t).unwrap();
        }
    }
    let bytes = std::fs::read(pcap::data_dir().join("tap_offloads.vnet")).unwrap();
    for (i, rec) in pcap::parse_linktype(&bytes, 147)
        .unwrap()
        .iter()
        .enumerate()
    {
        std::fs::write(dir.join(format!("tap-{i:02}")), rec).unwrap();
    }
}

/// What a TAP with IFF_VNET_HDR handed over on this machine's kernel
/// (tests/data/tap_offloads.vnet, from tests/data/capture_vnet.py): real
/// headers and frames, TCP over IPv4 and IPv6 and UDP_SEGMENT over both.
#[test]
fn real_super_frames_from_a_tap() {
    let bytes = std::fs::read(pcap::data_dir().join("tap_offloads.vnet")).unwrap();
    let records = pcap::parse_linktype(&bytes, 147).unwrap();
    let mut counts = Vec::new();
    let mut csum_only = 0;
    let mut out = vec![0u8; 70_000];
    for rec in &records {
        let h = VirtioNetHdr::parse(rec).unwrap();
        let frame = &rec[12..];
        let off = check_header(&h, frame).unwrap_or_else(|e| panic!("{h:?}: {e:?}"));
        let v6 = frame[12..14] == [0x86, 0xdd];
        let (l3, l4) = (14, if v6 { 54 } else { 34 });
        if !off.gso.is_some() {
            if let Some(c) = off.csum {
                let mut f = frame.to_vec();
                complete_csum(&mut f, c).unwrap();
                assert!(l4_verifies(
                    &f[l3..],
                    v6,
                    l4 - l3,
                    f[if v6 { 20 } else { 23 }]
                ));
                csum_only += 1;
            }
            continue;
        }
        let udp = h.gso_type == GSO_UDP_L4;
        let proto = if udp { 17 } else { 6 };
        // The kernel left the pseudo-header sum over the whole super-frame's
        // L4 length in the checksum field (CHECKSUM_PARTIAL).
        let ph = if v6 {
            pseudo(&frame[22..38], &frame[38..54], proto, frame.len() - l4)
        } else {
            pseudo(&frame[26..30], &frame[30..34], proto, frame.len() - l4)
        };
        let at = l4 + usize::from(h.csum_offset);
        assert_eq!(be16(frame, at), ones_sum(&[&ph]));
        assert_eq!(usize::from(h.hdr_len), if udp { l4 + 8 } else { l4 + 32 });

        let seg = Segmenter::new(frame, &off).unwrap();
        assert_eq!(seg.mss, usize::from(h.gso_size));
        let mut joined = Vec::new();
        for i in 0..seg.count {
            let n = seg.write_l3(frame, i, &mut out).unwrap();
            let s = &out[..n];
            assert!(l4_verifies(s, v6, l4 - l3, proto), "segment {i}");
            if !v6 {
                assert_eq!(ones_sum(&[&s[..20]]), 0xffff);
            }
            joined.extend_from_slice(&s[seg.payload - l3..]);
        }
        assert_eq!(joined, frame[seg.payload..]);
        counts.push((off.gso, seg.count));
    }
    // The client wrote 10,240 bytes (5 x 1448 + 3000 over IPv4, MSS 1428
    // over IPv6); the UDP sender 4,518 bytes with UDP_SEGMENT 1000.
    assert_eq!(
        counts,
        [
            (Gso::Tcp4, 5),
            (Gso::Tcp4, 3),
            (Gso::Udp4, 5),
            (Gso::Tcp6, 5),
            (Gso::Tcp6, 3),
            (Gso::Udp6, 5)
        ]
    );
    assert_eq!(csum_only, 3, "SYN, SYN-ACK and ACK over IPv4");
}

/// A plain super-frame `s` inside VXLAN (50 bytes of outer header, the
/// lengths of the whole), with the tunnel header a TAP with UDP-tunnel GSO
/// carries for it: the inner checksum start, the outer UDP and the inner
/// IP header offsets.
fn tunnel_frame(s: &Spec) -> (Vec<u8>, VirtioNetHdr, Built) {
    use shunt_parsers::virtio_net::GSO_UDP_TUNNEL_IPV4;
    use shunt_parsers::vxlan::{emit_vxlan_encap, VxlanEncap, ENCAP_LEN};
    use shunt_parsers::MacAddr;
    let (inner, h, b) = build(s);
    let encap = VxlanEncap {
        src_mac: MacAddr([2, 0x53, 0, 0, 0, 1]),
        dst_mac: MacAddr([2, 0x53, 0, 0, 0, 2]),
        src_ip: [192, 0, 2, 1].into(),
        dst_ip: [192, 0, 2, 2].into(),
        src_port: 50000,
        dst_port: 4789,
        ttl: 64,
        vni: 1000,
        ident: 0,
        dont_frag: true,
    };
    let mut f = vec![0u8; ENCAP_LEN];
    emit_vxlan_encap(&mut f, &encap, inner.len()).unwrap();
    f.extend_from_slice(&inner);
    let mut t = h;
    t.gso_type |= GSO_UDP_TUNNEL_IPV4;
    t.csum_start += ENCAP_LEN as u16;
    t.hdr_len = (ENCAP_LEN + b.payload) as u16;
    t.outer_th_offset = 34;
    t.inner_nh_offset = (ENCAP_LEN + b.l3) as u16;
    (f, t, b)
}

/// A change to a header, what it is, and the refusal it must get.
type Case<'a> = (&'a str, &'a dyn Fn(&mut VirtioNetHdr), OffloadError);

#[test]
fn tunnel_header_checked_against_outer_and_inner_headers() {
    use shunt_parsers::gso::check_tunnel_header;
    use shunt_parsers::virtio_net::{
        Tunnel, F_UDP_TUNNEL_CSUM, GSO_UDP_TUNNEL, GSO_UDP_TUNNEL_IPV4, GSO_UDP_TUNNEL_IPV6,
    };
    for (v6, udp) in [(false, false), (true, false), (false, true), (true, true)] {
        let s = Spec::new(v6, udp, 20_000, 1398);
        let (f, h, b) = tunnel_frame(&s);
        let off = check_tunnel_header(&h, &f).unwrap_or_else(|e| panic!("{v6} {udp}: {e:?}"));
        assert_eq!(off.gso_size, 1398);
        assert_eq!(off.csum.map(|c| usize::from(c.start)), Some(50 + b.l4));
        assert_eq!(
            off.tunnel,
            Some(Tunnel {
                outer_v6: false,
                udp_csum: false,
                outer_l4: 34,
                inner_l3: (50 + b.l3) as u16,
                hdr_end: (50 + b.payload) as u16,
            })
        );
        // What the switch writes for it is read back the same.
        let back = VirtioNetHdr::parse_tnl(&off.to_header(0, 0).to_bytes_tnl()).unwrap();
        assert_eq!(check_tunnel_header(&back, &f), Ok(off));
        // The inner frame, once decapsulated, is a plain super-frame.
        let inner = Offload {
            tunnel: None,
            csum: off.csum.map(|c| Csum {
                start: c.start - 50,
                offset: c.offset,
            }),
            ..off
        };
        let seg = Segmenter::new(&f[50..], &inner).unwrap();
        assert_eq!(seg.count, 20_000usize.div_ceil(1398));
        // A port without tunnel GSO refuses it.
        assert_eq!(check_header(&h, &f), Err(OffloadError::GsoType));

        let with = |g: &dyn Fn(&mut VirtioNetHdr)| {
            let mut x = h;
            g(&mut x);
            check_tunnel_header(&x, &f)
        };
        let inner_type = h.gso_type & !GSO_UDP_TUNNEL;
        let cases: [Case; 13] = [
            (
                "both tunnel bits",
                &|x| x.gso_type |= GSO_UDP_TUNNEL,
                OffloadError::Tunnel,
            ),
            (
                "no inner type",
                &|x| x.gso_type = GSO_UDP_TUNNEL_IPV4,
                OffloadError::GsoType,
            ),
            (
                "inner UFO",
                &|x| x.gso_type = GSO_UDP_TUNNEL_IPV4 | GSO_UDP,
                OffloadError::GsoType,
            ),
            (
                "outer IPv6 bit on IPv4",
                &|x| x.gso_type = GSO_UDP_TUNNEL_IPV6 | inner_type,
                OffloadError::Mismatch,
            ),
            ("gso size 0", &|x| x.gso_size = 0, OffloadError::GsoSize),
            ("no NEEDS_CSUM", &|x| x.flags = 0, OffloadError::Checksum),
            (
                "DATA_VALID too",
                &|x| x.flags |= F_DATA_VALID,
                OffloadError::Checksum,
            ),
            (
                "outer UDP off by one",
                &|x| x.outer_th_offset += 1,
                OffloadError::Tunnel,
            ),
            (
                "inner IP off by one",
                &|x| x.inner_nh_offset += 1,
                OffloadError::Mismatch,
            ),
            (
                "inner IP inside UDP",
                &|x| x.inner_nh_offset = 40,
                OffloadError::Tunnel,
            ),
            (
                "inner IP beyond",
                &|x| x.inner_nh_offset = 0xffff,
                OffloadError::Tunnel,
            ),
            (
                "csum start outer",
                &|x| x.csum_start = 34,
                OffloadError::Checksum,
            ),
            (
                "hdr_len beyond",
                &|x| x.hdr_len = 0xffff,
                OffloadError::Length,
            ),
        ];
        for (what, g, want) in cases {
            let got = with(g);
            // Off by one into the inner frame can read as any refusal:
            // it must only be refused.
            if what == "inner IP off by one" {
                assert!(got.is_err(), "{what}: {got:?}");
            } else {
                assert_eq!(got, Err(want), "{what} ({v6} {udp})");
            }
        }
        // The outer UDP checksum flag is carried through.
        let csum = with(&|x| x.flags |= F_UDP_TUNNEL_CSUM).unwrap();
        assert!(csum.tunnel.is_some_and(|t| t.udp_csum));
        // Every prefix is refused, none panics.
        for n in 0..f.len() - 1 {
            assert!(check_tunnel_header(&h, &f[..n]).is_err(), "prefix {n}");
        }
    }
}
