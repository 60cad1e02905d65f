//! Ethernet II / IEEE 802.3 frame header, MAC addresses and EtherTypes.

use core::fmt;
use core::str::FromStr;

use crate::bytes::{get_array, get_u16, set_u16};
use crate::error::{Error, Result};

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00` (e.g. the unknown target of an ARP request).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address in the first six bytes of `bytes`, or `None` if shorter.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        match bytes {
            [a, b, c, d, e, f, ..] => Some(MacAddr([*a, *b, *c, *d, *e, *f])),
            _ => None,
        }
    }

    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Group bit (I/G) set: multicast, broadcast included.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        self.as_u64() == 0xffff_ffff_ffff
    }

    /// Neither multicast nor broadcast: the only kind of source worth learning.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// An IEEE 802.1D reserved group address, `01:80:c2:00:00:00` to
    /// `01:80:c2:00:00:0f` (STP, LACP, LLDP...): a bridge never forwards it.
    #[inline]
    pub const fn is_link_local(&self) -> bool {
        self.as_u64() & !0x0f == 0x0180_c200_0000
    }

    /// Locally administered (U/L bit set), like the `02:..` addresses of tests.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The address as the low 48 bits of a `u64`, first octet most
    /// significant: one integer to hash or compare, and room above it for a
    /// bridge-domain id in an 8-byte FDB key.
    #[inline]
    pub const fn as_u64(&self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Inverse of [`as_u64`](Self::as_u64); the top 16 bits are ignored.
    #[inline]
    pub const fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

// Debug as the familiar notation: traces and assertion messages read better.
impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacAddrError;

impl fmt::Display for ParseMacAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address: expected six hex octets like 02:00:00:00:00:01")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseMacAddrError {}

impl FromStr for MacAddr {
    type Err = ParseMacAddrError;

    /// Accepts `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, either case,
    /// exactly two hex digits per octet.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 17 {
            return Err(ParseMacAddrError);
        }
        let sep = s[2];
        if sep != b':' && sep != b'-' {
            return Err(ParseMacAddrError);
        }
        let hex = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            let p = i * 3;
            if i < 5 && s[p + 2] != sep {
                return Err(ParseMacAddrError);
            }
            let hi = hex(s[p]).ok_or(ParseMacAddrError)?;
            let lo = hex(s[p + 1]).ok_or(ParseMacAddrError)?;
            *o = hi << 4 | lo;
        }
        Ok(MacAddr(out))
    }
}

/// The 16-bit type/length field after the MAC addresses.
///
/// Values below 0x0600 are not EtherTypes: IEEE 802.3 puts the payload
/// *length* there (STP BPDUs, LLC/SNAP). They decode as [`EtherType::Length`]
/// so that nobody takes them for a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// IEEE 802.1Q customer VLAN tag (C-tag), TPID 0x8100.
    Vlan,
    /// IEEE 802.1ad service VLAN tag (S-tag), TPID 0x88a8.
    QinQ,
    /// An 802.3 length field (value < 0x0600), not a protocol.
    Length(u16),
    /// Any other EtherType (>= 0x0600).
    Unknown(u16),
}

impl EtherType {
    /// Smallest value that is an EtherType rather than an 802.3 length.
    pub const MIN_ETHERTYPE: u16 = 0x0600;

    /// The field is an 802.3 length, not an EtherType.
    #[inline]
    pub const fn is_length(&self) -> bool {
        matches!(self, EtherType::Length(_))
    }

    /// A TPID of a VLAN tag this crate parses (802.1Q or 802.1ad).
    #[inline]
    pub const fn is_vlan_tag(&self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }

    #[inline]
    pub const fn from_u16(v: u16) -> EtherType {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            v if v < Self::MIN_ETHERTYPE => EtherType::Length(v),
            v => EtherType::Unknown(v),
        }
    }

    #[inline]
    pub const fn to_u16(self) -> u16 {
        match self {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Length(v) | EtherType::Unknown(v) => v,
        }
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType::from_u16(v)
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> Self {
        t.to_u16()
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::QinQ => f.write_str("802.1ad"),
            EtherType::Length(v) => write!(f, "802.3 length {v}"),
            EtherType::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet header without tags (no FCS: ports hand frames
/// over without it).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an Ethernet frame.
///
/// Once [`check_len`](Self::check_len) has succeeded (as it has for any view
/// made by [`new_checked`](Self::new_checked)), no accessor panics. With
/// [`new_unchecked`](Self::new_unchecked) on a buffer shorter than
/// [`HEADER_LEN`] they may.
///
/// The payload is everything after the 14-byte header, padding included:
/// Ethernet carries no total length, the upper layer knows its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the buffer holds the 14-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of this header: always 14 (tags are parsed as their own layer).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Reads bytes 0..6 only.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), field::DESTINATION.start))
    }

    /// Reads bytes 6..12 only.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), field::SOURCE.start))
    }

    /// The type/length field; see [`EtherType::Length`] for 802.3 frames.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from_u16(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// An IEEE 802.3 frame (length field, LLC follows), e.g. an STP BPDU.
    #[inline]
    pub fn is_802_3(&self) -> bool {
        self.ethertype().is_length()
    }

    /// For 802.3 frames, the length field; `None` for Ethernet II.
    #[inline]
    pub fn length_field(&self) -> Option<u16> {
        match self.ethertype() {
            EtherType::Length(n) => Some(n),
            _ => None,
        }
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.to_u16());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The destination MAC of a raw frame, reading bytes 0..6 only; `None` if
/// shorter. For the hot path, where building a view is not worth it.
#[inline]
pub fn dst_addr(frame: &[u8]) -> Option<MacAddr> {
    MacAddr::from_bytes(frame)
}

/// The source MAC of a raw frame, reading bytes 6..12 only.
#[inline]
pub fn src_addr(frame: &[u8]) -> Option<MacAddr> {
    MacAddr::from_bytes(frame.get(field::SOURCE)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    // arp_icmp.pcap frame 1: ARP who-has 10.0.0.1 tell 10.0.0.2, broadcast.
    pub(crate) static ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00,
        0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x00, 0x00, 0x01,
    ];

    // stp_bpdu.pcap: IEEE 802.1D configuration BPDU, 802.3 length 0x0026.
    static STP_BPDU: [u8; 52] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x26, 0x42,
        0x42, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x01, 0x00,
        0x00, 0x14, 0x00, 0x02, 0x00, 0x0f, 0x00,
    ];

    const MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    #[test]
    fn test_deconstruct() {
        let frame = EthernetFrame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(frame.src_addr(), MAC2);
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert!(!frame.is_802_3());
        assert_eq!(frame.payload(), &ARP_REQUEST[14..]);
        assert_eq!(dst_addr(&ARP_REQUEST), Some(MacAddr::BROADCAST));
        assert_eq!(src_addr(&ARP_REQUEST), Some(MAC2));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0u8; 42];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr(MAC2);
        frame.set_ethertype(EtherType::Arp);
        frame.payload_mut().copy_from_slice(&ARP_REQUEST[14..]);
        assert_eq!(bytes, ARP_REQUEST);
    }

    #[test]
    fn stp_bpdu_is_802_3_not_an_ethertype() {
        let frame = EthernetFrame::new_checked(&STP_BPDU[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]));
        assert!(frame.dst_addr().is_multicast());
        assert_eq!(frame.ethertype(), EtherType::Length(0x26));
        assert!(frame.is_802_3());
        assert_eq!(frame.length_field(), Some(38));
        // DSAP/SSAP 0x42 = spanning tree LLC.
        assert_eq!(&frame.payload()[..3], &[0x42, 0x42, 0x03]);
    }

    #[test]
    fn short_buffers_are_truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&ARP_REQUEST[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        let frame = EthernetFrame::new_checked(&ARP_REQUEST[..14]).unwrap();
        assert!(frame.payload().is_empty());
        assert_eq!(src_addr(&ARP_REQUEST[..11]), None);
        assert_eq!(dst_addr(&ARP_REQUEST[..5]), None);
    }

    #[test]
    fn ethertype_round_trip() {
        for v in [
            0u16, 0x05dc, 0x05ff, 0x0600, 0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, 0xffff,
        ] {
            assert_eq!(EtherType::from(v).to_u16(), v);
        }
        assert_eq!(EtherType::from(0x05ff), EtherType::Length(0x05ff));
        assert_eq!(EtherType::from(0x0600), EtherType::Unknown(0x0600));
        assert_eq!(EtherType::from(0x88cc), EtherType::Unknown(0x88cc));
        assert_eq!(EtherType::Unknown(0x88cc).to_string(), "0x88cc");
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        let mc = MacAddr([0x33, 0x33, 0, 0, 0, 0x16]);
        assert!(mc.is_multicast() && !mc.is_broadcast() && !mc.is_unicast());
        assert!(MAC1.is_unicast() && MAC1.is_local());
        assert!(!MacAddr([0x00, 0x1b, 0x21, 1, 2, 3]).is_local());
        for last in 0..=0x0f {
            assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, last]).is_link_local());
        }
        for m in [
            [0x01, 0x80, 0xc2, 0, 0, 0x10],
            [0x01, 0x80, 0xc2, 0, 1, 0],
            [0x01, 0x80, 0xc3, 0, 0, 0],
            [0x03, 0x80, 0xc2, 0, 0, 0],
            [0xff; 6],
        ] {
            assert!(!MacAddr(m).is_link_local(), "{m:02x?}");
        }
    }

    #[test]
    fn mac_u64_round_trip() {
        assert_eq!(MAC1.as_u64(), 0x0200_0000_0001);
        assert_eq!(MacAddr::BROADCAST.as_u64(), 0xffff_ffff_ffff);
        assert_eq!(MacAddr::from_u64(0x0200_0000_0002), MAC2);
        // High bits are ignored, so a packed key can be split back.
        assert_eq!(MacAddr::from_u64(0xabcd_0200_0000_0001), MAC1);
        let m = MacAddr([0xde, 0xad, 0xbe, 0xef, 0x00, 0x42]);
        assert_eq!(MacAddr::from_u64(m.as_u64()), m);
    }

    #[test]
    fn mac_display_and_parse() {
        let m: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(m, MAC1);
        assert_eq!(
            MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).to_string(),
            "aa:bb:cc:dd:ee:ff"
        );
        assert_eq!(
            "AA-BB-cc-dd-ee-FF".parse::<MacAddr>().unwrap().to_string(),
            "aa:bb:cc:dd:ee:ff"
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:001",
            "02:00:00-00:00:01",
            "0g:00:00:00:00:01",
            "02:00:00:00:00:0",
            "+2:00:00:00:00:01",
            "02:00:00:00:00:01:",
            "é2:00:00:00:00:1",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacAddrError), "{bad:?}");
        }
        assert_eq!(std::format!("{MAC1:?}"), "MacAddr(02:00:00:00:00:01)");
    }
}
