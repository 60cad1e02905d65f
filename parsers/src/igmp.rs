//! IGMP v1/v2/v3 messages (RFC 1112, RFC 2236, RFC 3376) and the group
//! records IGMPv3 and MLDv2 reports share, and a builder for the general
//! query a snooping switch sends as querier.
//!
//! The view reads the IGMP message (the IPv4 payload); which IPv4 packets
//! carry one is [`in_ipv4`]'s question. Once [`IgmpPacket::new_checked`]
//! succeeded, no accessor panics.

use core::net::Ipv4Addr;

use crate::bytes::{get_array, get_u16, set_u16};
use crate::checksum;
use crate::error::{Error, Result};
use crate::ip::IpProtocol;
use crate::ipv4::Ipv4Packet;

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const MAX_RESP: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const GROUP: Range<usize> = 4..8;
    /// IGMPv3 report: number of group records.
    pub const NRECORDS: Range<usize> = 6..8;
    /// IGMPv3 query: number of sources.
    pub const NSRCS: Range<usize> = 10..12;
}

/// Length of an IGMPv1/v2 message (and of the part every message has).
pub const HEADER_LEN: usize = 8;
/// Length of an IGMPv3 query without sources.
pub const V3_QUERY_LEN: usize = 12;

/// The IGMP message types a snooping switch tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgmpType {
    /// 0x11: general or group-specific query (v1, v2 or v3 by length).
    Query,
    /// 0x12.
    ReportV1,
    /// 0x16.
    ReportV2,
    /// 0x17.
    Leave,
    /// 0x22.
    ReportV3,
    Unknown(u8),
}

impl From<u8> for IgmpType {
    fn from(v: u8) -> IgmpType {
        match v {
            0x11 => IgmpType::Query,
            0x12 => IgmpType::ReportV1,
            0x16 => IgmpType::ReportV2,
            0x17 => IgmpType::Leave,
            0x22 => IgmpType::ReportV3,
            v => IgmpType::Unknown(v),
        }
    }
}

/// The IGMP message an IPv4 packet carries, if it carries one (protocol 2;
/// options such as Router Alert are skipped by the header length); None
/// for anything else, a fragment included.
pub fn in_ipv4(ip: &[u8]) -> Option<IgmpPacket<&[u8]>> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.version() != 4 || p.protocol() != IpProtocol::Unknown(2) || p.is_fragment() {
        return None;
    }
    let ip_payload: &[u8] = {
        let range = usize::from(p.header_len())..usize::from(p.total_len());
        ip.get(range)?
    };
    IgmpPacket::new_checked(ip_payload).ok()
}

/// A view of an IGMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IgmpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> IgmpPacket<T> {
        IgmpPacket { buffer }
    }

    /// [`Error::Truncated`] when shorter than 8 bytes.
    pub fn new_checked(buffer: T) -> Result<IgmpPacket<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IgmpPacket { buffer })
    }

    pub fn msg_type(&self) -> IgmpType {
        self.buffer.as_ref()[field::TYPE].into()
    }

    /// The max response code (0 in v1 messages).
    pub fn max_resp_code(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_RESP]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// The group of a v1/v2 report, a leave or a query (0.0.0.0: a
    /// general query). An IGMPv3 report has none here (see `records`).
    pub fn group(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::GROUP.start))
    }

    /// A query's version: 1 (max response code 0, 8 bytes), 2 (8 bytes),
    /// 3 (12 bytes or more). None for other messages.
    pub fn query_version(&self) -> Option<u8> {
        if self.msg_type() != IgmpType::Query {
            return None;
        }
        let len = self.buffer.as_ref().len();
        Some(match (len, self.max_resp_code()) {
            (HEADER_LEN, 0) => 1,
            (HEADER_LEN, _) => 2,
            (l, _) if l >= V3_QUERY_LEN => 3,
            // 9..=11 bytes: RFC 3376 7.1 says ignore such queries.
            _ => return None,
        })
    }

    /// A query's maximum response time in milliseconds (v1: 10 s; v2:
    /// tenths of a second; v3: the exponential code of RFC 3376 4.1.1).
    pub fn max_resp_ms(&self) -> u32 {
        let code = self.max_resp_code();
        match self.query_version() {
            Some(1) | None => 10_000,
            Some(2) => u32::from(code) * 100,
            Some(_) => v3_code(code) * 100,
        }
    }

    /// An IGMPv3 query's number of sources (0 otherwise).
    pub fn query_sources(&self) -> u16 {
        match self.query_version() {
            Some(3) => get_u16(self.buffer.as_ref(), field::NSRCS),
            _ => 0,
        }
    }

    /// An IGMPv3 report's group records (none for other messages); a
    /// record cut short ends the iteration.
    pub fn records(&self) -> GroupRecords<'_, 4> {
        let b = self.buffer.as_ref();
        match self.msg_type() {
            IgmpType::ReportV3 => GroupRecords {
                rest: &b[HEADER_LEN..],
                left: get_u16(b, field::NRECORDS),
            },
            _ => GroupRecords { rest: &[], left: 0 },
        }
    }
}

/// The exponential form of an IGMPv3 / MLDv2 code: below 128 the value,
/// else mantissa and exponent (RFC 3376 4.1.1).
fn v3_code(code: u8) -> u32 {
    if code < 128 {
        u32::from(code)
    } else {
        let mant = u32::from(code & 0x0f);
        let exp = u32::from((code >> 4) & 0x07);
        (mant | 0x10) << (exp + 3)
    }
}

/// An IGMPv3 / MLDv2 group record's type (RFC 3376 4.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    ModeIsInclude,
    ModeIsExclude,
    ChangeToInclude,
    ChangeToExclude,
    AllowNewSources,
    BlockOldSources,
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(v: u8) -> RecordType {
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            v => RecordType::Unknown(v),
        }
    }
}

/// One group record of an IGMPv3 (`A` = 4) or MLDv2 (`A` = 16) report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRecord<const A: usize> {
    pub kind: RecordType,
    pub sources: u16,
    pub group: [u8; A],
}

impl<const A: usize> GroupRecord<A> {
    /// What a snooping bridge that does not track sources (the Linux
    /// bridge with IGMPv2 / MLDv1 snooping, its default) makes of the
    /// record: an include of no source is a leave, every other known
    /// type a join; None for unknown types.
    pub fn joins(&self) -> Option<bool> {
        match self.kind {
            RecordType::Unknown(_) => None,
            RecordType::ModeIsInclude | RecordType::ChangeToInclude => Some(self.sources != 0),
            _ => Some(true),
        }
    }
}

/// The group records of a report, read in place.
#[derive(Debug, Clone)]
pub struct GroupRecords<'a, const A: usize> {
    pub(crate) rest: &'a [u8],
    pub(crate) left: u16,
}

impl<const A: usize> Iterator for GroupRecords<'_, A> {
    type Item = GroupRecord<A>;

    fn next(&mut self) -> Option<GroupRecord<A>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.rest;
        if r.len() < 4 + A {
            self.left = 0;
            return None;
        }
        let kind = RecordType::from(r[0]);
        let aux = usize::from(r[1]) * 4;
        let sources = get_u16(r, 2..4);
        let group = get_array::<A>(r, 4);
        let len = 4 + A + usize::from(sources) * A + aux;
        self.rest = r.get(len..).unwrap_or(&[]);
        if r.len() < len {
            // Its sources are cut short: the group is still known.
            self.left = 0;
        }
        Some(GroupRecord {
            kind,
            sources,
            group,
        })
    }
}

/// Length of the general query [`emit_query`] writes: Ethernet (14), IPv4
/// with Router Alert (24), IGMPv2 (8).
pub const QUERY_FRAME_LEN: usize = 14 + 24 + HEADER_LEN;

/// Writes an IGMPv2 query from `src_mac` / `src_ip` (0.0.0.0 as the
/// Linux bridge sends by default) into the start of `buf`: a general
/// query to 224.0.0.1 when `group` is 0.0.0.0, else a group-specific one
/// to the group; with the given maximum response time (tenths of a
/// second). Returns its length, or [`Error::NoRoom`].
pub fn emit_query(
    buf: &mut [u8],
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    group: Ipv4Addr,
    max_resp_tenths: u8,
) -> Result<usize> {
    let f = buf.get_mut(..QUERY_FRAME_LEN).ok_or(Error::NoRoom)?;
    let dst = match group.is_unspecified() {
        true => Ipv4Addr::new(224, 0, 0, 1),
        false => group,
    };
    let d = dst.octets();
    f[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, d[1] & 0x7f, d[2], d[3]]);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..38];
    ip.copy_from_slice(&[
        0x46, 0xc0, 0, 32, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 224, 0, 0, 1, 0x94, 0x04, 0, 0,
    ]);
    ip[12..16].copy_from_slice(&src_ip.octets());
    ip[16..20].copy_from_slice(&d);
    let c = !checksum::data(ip);
    set_u16(ip, 10..12, c);
    let igmp = &mut f[38..46];
    igmp.copy_from_slice(&[0x11, max_resp_tenths, 0, 0, 0, 0, 0, 0]);
    igmp[4..8].copy_from_slice(&group.octets());
    let c = !checksum::data(igmp);
    set_u16(igmp, 2..4, c);
    Ok(QUERY_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// An IGMPv2 report for 239.1.1.1 from 10.0.0.12 with Router Alert, as
    /// Linux sends it (captured with tcpdump -xx, Ethernet header cut).
    const V2_REPORT_IP: [u8; 32] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x00, 0x00, 10, 0, 0, 12, 239,
        1, 1, 1, 0x94, 0x04, 0x00, 0x00, 0x16, 0x00, 0xf9, 0xfc, 239, 1, 1, 1,
    ];

    fn fix_ip_checksum(ip: &mut [u8]) {
        ip[10] = 0;
        ip[11] = 0;
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let c = !checksum::data(&ip[..hl]);
        set_u16(ip, 10..12, c);
    }

    #[test]
    fn v2_report_with_router_alert() {
        let mut ip = V2_REPORT_IP;
        fix_ip_checksum(&mut ip);
        let m = in_ipv4(&ip).expect("IGMP");
        assert_eq!(m.msg_type(), IgmpType::ReportV2);
        assert_eq!(m.group(), Ipv4Addr::new(239, 1, 1, 1));
        assert!(m.verify_checksum());
        assert_eq!(m.query_version(), None);
        assert_eq!(m.records().count(), 0);
        // Not IGMP: UDP, a fragment, too short.
        let mut udp = ip;
        udp[9] = 17;
        assert!(in_ipv4(&udp).is_none());
        let mut frag = ip;
        frag[6] = 0x20;
        assert!(in_ipv4(&frag).is_none());
        assert!(in_ipv4(&ip[..30]).is_none());
    }

    #[test]
    fn v3_report_records() {
        // Two records: TO_EX({}) 239.1.1.1; TO_IN({}) 239.2.2.2; then a
        // third announced but cut short.
        let msg: [u8; 24] = [
            0x22, 0, 0, 0, 0, 0, 0, 3, 4, 0, 0, 0, 239, 1, 1, 1, 3, 0, 0, 0, 239, 2, 2, 2,
        ];
        let m = IgmpPacket::new_checked(&msg[..]).expect("len");
        assert_eq!(m.msg_type(), IgmpType::ReportV3);
        let r: Vec<_> = m.records().collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].kind, RecordType::ChangeToExclude);
        assert_eq!(r[0].group, [239, 1, 1, 1]);
        assert_eq!(r[0].joins(), Some(true));
        assert_eq!(r[1].kind, RecordType::ChangeToInclude);
        assert_eq!(r[1].joins(), Some(false));
        // A record with sources and aux data skips both.
        let msg2: [u8; 8 + 8 + 8 + 4 + 8] = [
            0x22, 0, 0, 0, 0, 0, 0, 2, 1, 1, 0, 2, 239, 3, 3, 3, 10, 0, 0, 1, 10, 0, 0, 2, 9, 9, 9,
            9, 6, 0, 0, 0, 239, 4, 4, 4,
        ];
        let r: Vec<_> = IgmpPacket::new_checked(&msg2[..])
            .expect("len")
            .records()
            .collect();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].kind, r[0].sources), (RecordType::ModeIsInclude, 2));
        assert_eq!(r[0].joins(), Some(true));
        assert_eq!(r[1].group, [239, 4, 4, 4]);
        assert_eq!(r[1].kind, RecordType::BlockOldSources);
    }

    #[test]
    fn query_versions_and_times() {
        let v1 = [0x11, 0, 0, 0, 0, 0, 0, 0];
        let v2 = [0x11, 100, 0, 0, 239, 1, 1, 1];
        let v3 = [0x11, 0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let q = |b: &[u8]| {
            let m = IgmpPacket::new_checked(b).expect("len");
            (m.query_version(), m.max_resp_ms())
        };
        assert_eq!(q(&v1), (Some(1), 10_000));
        assert_eq!(q(&v2), (Some(2), 10_000));
        // 0x8f: mantissa 15, exponent 0: (15 | 16) << 3 = 248 tenths.
        assert_eq!(q(&v3), (Some(3), 24_800));
        assert_eq!(q(&v3[..10]).0, None);
        assert_eq!(
            IgmpPacket::new_checked(&v2[..]).expect("len").group(),
            Ipv4Addr::new(239, 1, 1, 1)
        );
        assert!(IgmpPacket::new_checked(&v2[..7]).is_err());
    }

    #[test]
    fn emitted_query_parses_back() {
        let mut buf = [0u8; 64];
        let any = Ipv4Addr::UNSPECIFIED;
        let n = emit_query(&mut buf, [2, 0x53, 0, 0, 0, 0], any, any, 100).expect("room");
        assert_eq!(n, QUERY_FRAME_LEN);
        let ip = Ipv4Packet::new_checked(&buf[14..n]).expect("ip");
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(224, 0, 0, 1));
        assert_eq!(ip.ttl(), 1);
        assert_eq!(ip.options(), &[0x94, 0x04, 0, 0]);
        let m = in_ipv4(&buf[14..n]).expect("igmp");
        assert!(m.verify_checksum());
        assert_eq!(m.query_version(), Some(2));
        assert_eq!(m.group(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.max_resp_ms(), 10_000);
        assert!(emit_query(&mut buf[..40], [0; 6], any, any, 1).is_err());
        // Group-specific: to the group, its MAC, the group inside.
        let g = Ipv4Addr::new(239, 129, 2, 3);
        let n = emit_query(&mut buf, [2, 0x53, 0, 0, 0, 0], any, g, 10).expect("room");
        assert_eq!(&buf[..6], &[0x01, 0x00, 0x5e, 0x01, 2, 3]);
        let ip = Ipv4Packet::new_checked(&buf[14..n]).expect("ip");
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), g);
        let m = in_ipv4(&buf[14..n]).expect("igmp");
        assert!(m.verify_checksum());
        assert_eq!((m.group(), m.max_resp_ms()), (g, 1000));
    }
}
