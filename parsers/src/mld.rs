//! MLD v1/v2 (RFC 2710, RFC 3810): finding the message in an IPv6 packet
//! (after its hop-by-hop header, as MLD is always sent), a view of it,
//! and a builder for the general query a snooping switch sends as querier.
//!
//! Once [`MldPacket::new_checked`] succeeded, no accessor panics.

use core::net::Ipv6Addr;

use crate::bytes::{get_array, get_u16, set_u16};
use crate::checksum;
use crate::error::{Error, Result};
use crate::igmp::GroupRecords;
use crate::ipv6::{Ipv6Packet, HEADER_LEN as IPV6_HEADER_LEN};

/// Length of an MLDv1 message (and of an MLDv2 query without sources).
pub const HEADER_LEN: usize = 24;
/// Length of an MLDv2 query without sources.
pub const V2_QUERY_LEN: usize = 28;
/// Length of the part of an MLDv2 report before its records.
pub const V2_REPORT_HEADER_LEN: usize = 8;

/// IPv6 extension headers walked to find the ICMPv6 message: hop-by-hop,
/// routing, destination options.
const EXT_HEADERS: [u8; 3] = [0, 43, 60];
const ICMPV6: u8 = 58;
/// At most this many extension headers are walked.
const MAX_EXT: usize = 8;

/// The MLD message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MldType {
    /// 130: general or address-specific query (v1 by length 24, else v2).
    Query,
    /// 131.
    ReportV1,
    /// 132.
    Done,
    /// 143.
    ReportV2,
}

impl MldType {
    pub fn from_u8(v: u8) -> Option<MldType> {
        match v {
            130 => Some(MldType::Query),
            131 => Some(MldType::ReportV1),
            132 => Some(MldType::Done),
            143 => Some(MldType::ReportV2),
            _ => None,
        }
    }
}

/// Where an IPv6 packet's ICMPv6 message starts, if the packet has a
/// hop-by-hop header first and an ICMPv6 message after its extension
/// headers (the shape RFC 2710 and RFC 3810 give MLD); and the ICMPv6
/// type there. None otherwise.
pub fn icmpv6_after_hop_by_hop(ip: &[u8]) -> Option<(usize, u8)> {
    let p = Ipv6Packet::new_checked(ip).ok()?;
    if p.version() != 6 {
        return None;
    }
    let end = IPV6_HEADER_LEN + usize::from(p.payload_len());
    let mut nh = ip.get(6).copied()?;
    if nh != 0 {
        return None;
    }
    let mut at = IPV6_HEADER_LEN;
    for _ in 0..MAX_EXT {
        if nh == ICMPV6 {
            let t = *ip.get(at..end)?.first()?;
            return Some((at, t));
        }
        if !EXT_HEADERS.contains(&nh) {
            return None;
        }
        let h = ip.get(at..end)?;
        let (&next, &len) = (h.first()?, h.get(1)?);
        nh = next;
        at += (usize::from(len) + 1) * 8;
    }
    None
}

/// The MLD message an IPv6 packet carries, if it carries one.
pub fn in_ipv6(ip: &[u8]) -> Option<MldPacket<&[u8]>> {
    let (at, t) = icmpv6_after_hop_by_hop(ip)?;
    MldType::from_u8(t)?;
    let p = Ipv6Packet::new_checked(ip).ok()?;
    let end = IPV6_HEADER_LEN + usize::from(p.payload_len());
    MldPacket::new_checked(ip.get(at..end)?).ok()
}

/// A view of an MLD message (the ICMPv6 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MldPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MldPacket<T> {
    /// [`Error::Unsupported`] for an ICMPv6 type that is not MLD,
    /// [`Error::Truncated`] when shorter than the type needs (24 bytes; 8
    /// for an MLDv2 report).
    pub fn new_checked(buffer: T) -> Result<MldPacket<T>> {
        let b = buffer.as_ref();
        let t = MldType::from_u8(*b.first().ok_or(Error::Truncated)?).ok_or(Error::Unsupported)?;
        let need = match t {
            MldType::ReportV2 => V2_REPORT_HEADER_LEN,
            _ => HEADER_LEN,
        };
        if b.len() < need {
            return Err(Error::Truncated);
        }
        Ok(MldPacket { buffer })
    }

    pub fn msg_type(&self) -> MldType {
        // Checked by new_checked.
        MldType::from_u8(self.buffer.as_ref()[0]).unwrap_or(MldType::ReportV2)
    }

    /// The checksum is right for a packet from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, ICMPV6, len),
            checksum::data(b),
        ]) == 0xffff
    }

    /// The address of a v1 report, a done or a query (:: for a general
    /// query); :: for an MLDv2 report (see `records`).
    pub fn group(&self) -> Ipv6Addr {
        match self.msg_type() {
            MldType::ReportV2 => Ipv6Addr::UNSPECIFIED,
            _ => Ipv6Addr::from(get_array::<16>(self.buffer.as_ref(), 8)),
        }
    }

    /// A query's version: 1 (24 bytes) or 2 (28 or more); None for other
    /// messages and for 25..=27 bytes (RFC 3810 8.1: ignored).
    pub fn query_version(&self) -> Option<u8> {
        if self.msg_type() != MldType::Query {
            return None;
        }
        match self.buffer.as_ref().len() {
            HEADER_LEN => Some(1),
            l if l >= V2_QUERY_LEN => Some(2),
            _ => None,
        }
    }

    /// A query's maximum response delay in milliseconds (v2: the
    /// exponential code of RFC 3810 5.1.3).
    pub fn max_resp_ms(&self) -> u32 {
        let code = get_u16(self.buffer.as_ref(), 4..6);
        match self.query_version() {
            Some(2) if code >= 0x8000 => {
                let mant = u32::from(code & 0x0fff);
                let exp = u32::from((code >> 12) & 0x07);
                (mant | 0x1000) << (exp + 3)
            }
            _ => u32::from(code),
        }
    }

    /// An MLDv2 report's address records (none for other messages).
    pub fn records(&self) -> GroupRecords<'_, 16> {
        let b = self.buffer.as_ref();
        match self.msg_type() {
            MldType::ReportV2 => GroupRecords {
                rest: &b[V2_REPORT_HEADER_LEN..],
                left: get_u16(b, 6..8),
            },
            _ => GroupRecords { rest: &[], left: 0 },
        }
    }
}

/// The all-nodes address, where general queries go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of the general query [`emit_query`] writes: Ethernet (14),
/// IPv6 (40), hop-by-hop with Router Alert (8), MLDv1 (24).
pub const QUERY_FRAME_LEN: usize = 14 + IPV6_HEADER_LEN + 8 + HEADER_LEN;

/// Writes an MLDv1 query from `src_mac` / `src` (a link-local address)
/// into the start of `buf`: a general query to ff02::1 when `group` is
/// ::, else an address-specific one to the group; with the given maximum
/// response delay (milliseconds). Returns its length, or
/// [`Error::NoRoom`].
pub fn emit_query(
    buf: &mut [u8],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    group: Ipv6Addr,
    max_resp_ms: u16,
) -> Result<usize> {
    let f = buf.get_mut(..QUERY_FRAME_LEN).ok_or(Error::NoRoom)?;
    f.fill(0);
    let dst = match group.is_unspecified() {
        true => ALL_NODES,
        false => group,
    };
    let d = dst.octets();
    f[0..6].copy_from_slice(&[0x33, 0x33, d[12], d[13], d[14], d[15]]);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut f[14..];
    ip[0] = 0x60;
    set_u16(ip, 4..6, (8 + HEADER_LEN) as u16);
    ip[6] = 0; // hop-by-hop
    ip[7] = 1;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&d);
    // Hop-by-hop: next ICMPv6, length 0 (8 bytes), Router Alert (MLD), PadN.
    ip[40..48].copy_from_slice(&[ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
    let m = &mut ip[48..48 + HEADER_LEN];
    m[0] = 130;
    set_u16(m, 4..6, max_resp_ms);
    m[8..24].copy_from_slice(&group.octets());
    let sum = checksum::combine(&[
        checksum::pseudo_header_v6(src, dst, ICMPV6, HEADER_LEN as u32),
        checksum::data(m),
    ]);
    set_u16(m, 2..4, !sum);
    Ok(QUERY_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, ext: &[u8], first: u8, icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        let len = (ext.len() + icmp.len()) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p[6] = first;
        p[7] = 1;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p.extend_from_slice(ext);
        p.extend_from_slice(icmp);
        p
    }

    fn with_checksum(src: Ipv6Addr, dst: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
        icmp[2] = 0;
        icmp[3] = 0;
        let s = checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, ICMPV6, icmp.len() as u32),
            checksum::data(&icmp),
        ]);
        set_u16(&mut icmp, 2..4, !s);
        icmp
    }

    const HBH: [u8; 8] = [ICMPV6, 0, 5, 2, 0, 0, 1, 0];

    #[test]
    fn v1_report_and_done() {
        let src: Ipv6Addr = "fe80::1".parse().expect("addr");
        let g: Ipv6Addr = "ff05::1234".parse().expect("addr");
        let mut m = vec![131, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&g.octets());
        let m = with_checksum(src, g, m);
        let p = ipv6(src, g, &HBH, 0, &m);
        let v = in_ipv6(&p).expect("MLD");
        assert_eq!(v.msg_type(), MldType::ReportV1);
        assert_eq!(v.group(), g);
        assert!(v.verify_checksum(src, g));
        assert!(!v.verify_checksum(src, ALL_NODES));
        // Without the hop-by-hop header it is not MLD (as Linux says).
        assert!(in_ipv6(&ipv6(src, g, &[], ICMPV6, &m)).is_none());
        // Another ICMPv6 type is no MLD, but is found after hop-by-hop.
        let mut ns = m.clone();
        ns[0] = 135;
        let p2 = ipv6(src, g, &HBH, 0, &ns);
        assert_eq!(icmpv6_after_hop_by_hop(&p2), Some((48, 135)));
        assert!(in_ipv6(&p2).is_none());
        // A done, behind a destination-options header too.
        let mut d = m.clone();
        d[0] = 132;
        let ext = [[60, 0, 1, 4, 0, 0, 0, 0], [ICMPV6, 0, 1, 4, 0, 0, 0, 0]].concat();
        let p3 = ipv6(src, g, &ext, 0, &d);
        assert_eq!(in_ipv6(&p3).map(|v| v.msg_type()), Some(MldType::Done));
        // Truncated anywhere: none.
        for n in 0..p.len() {
            assert!(in_ipv6(&p[..n]).is_none());
        }
    }

    #[test]
    fn v2_report_records() {
        let g1: Ipv6Addr = "ff05::1".parse().expect("addr");
        let g2: Ipv6Addr = "ff02::fb".parse().expect("addr");
        let mut m = vec![143, 0, 0, 0, 0, 0, 0, 2];
        m.extend_from_slice(&[4, 0, 0, 0]);
        m.extend_from_slice(&g1.octets());
        m.extend_from_slice(&[3, 0, 0, 0]);
        m.extend_from_slice(&g2.octets());
        let v = MldPacket::new_checked(&m[..]).expect("len");
        let r: Vec<_> = v.records().collect();
        assert_eq!(r.len(), 2);
        assert_eq!(Ipv6Addr::from(r[0].group), g1);
        assert_eq!(r[0].joins(), Some(true));
        assert_eq!(Ipv6Addr::from(r[1].group), g2);
        assert_eq!(r[1].joins(), Some(false));
        assert_eq!(v.group(), Ipv6Addr::UNSPECIFIED);
        assert!(MldPacket::new_checked(&m[..7]).is_err());
        assert_eq!(
            MldPacket::new_checked(&[1u8; 30][..]).err(),
            Some(Error::Unsupported)
        );
    }

    #[test]
    fn emitted_query_parses_back() {
        let src: Ipv6Addr = "fe80::53:1".parse().expect("addr");
        let mut buf = [0u8; 128];
        let any = Ipv6Addr::UNSPECIFIED;
        let n = emit_query(&mut buf, [2, 0x53, 0, 0, 0, 1], src, any, 10_000).expect("room");
        assert_eq!(n, QUERY_FRAME_LEN);
        let v = in_ipv6(&buf[14..n]).expect("MLD");
        assert_eq!(v.msg_type(), MldType::Query);
        assert_eq!(v.query_version(), Some(1));
        assert_eq!(v.max_resp_ms(), 10_000);
        assert_eq!(v.group(), Ipv6Addr::UNSPECIFIED);
        assert!(v.verify_checksum(src, ALL_NODES));
        assert!(emit_query(&mut buf[..80], [0; 6], src, any, 1).is_err());
        let g: Ipv6Addr = "ff05::1:3".parse().expect("addr");
        let n = emit_query(&mut buf, [2, 0x53, 0, 0, 0, 1], src, g, 1000).expect("room");
        assert_eq!(&buf[..6], &[0x33, 0x33, 0, 1, 0, 3]);
        let v = in_ipv6(&buf[14..n]).expect("MLD");
        assert_eq!((v.group(), v.max_resp_ms()), (g, 1000));
        assert!(v.verify_checksum(src, g));
    }

    #[test]
    fn v2_query_delay_code() {
        let mut q = vec![130u8, 0, 0, 0, 0x80, 0x01, 0, 0];
        q.extend_from_slice(&[0; 20]);
        let v = MldPacket::new_checked(&q[..]).expect("len");
        assert_eq!(v.query_version(), Some(2));
        // mant 1, exp 0: (1 | 0x1000) << 3.
        assert_eq!(v.max_resp_ms(), (1 | 0x1000) << 3);
        assert_eq!(
            MldPacket::new_checked(&q[..26])
                .expect("len")
                .query_version(),
            None
        );
    }
}
