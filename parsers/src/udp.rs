//! UDP header (RFC 768).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::bytes::{get_u16, set_u16};
use crate::checksum;
use crate::error::{Error, Result};
use crate::ip::IpProtocol;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram.
///
/// Once [`check_len`](Self::check_len) has succeeded, no accessor panics:
/// it guarantees `8 <= len <= buffer length`; the payload is `8..len`.
/// `set_len` can break that guarantee: call `check_len` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// [`Error::Truncated`] if the buffer is shorter than 8 bytes or than the
    /// length field; [`Error::Malformed`] if the length field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            Err(Error::Malformed)
        } else if buf_len < len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Header and payload, in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The datagram carries no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Checksum over an IPv4 pseudo-header. A zero checksum means "none"
    /// over IPv4 and verifies.
    ///
    /// Frames captured on the sending host (veth, TAP) often carry only the
    /// pseudo-header sum, left for checksum offload to finish: those do not
    /// verify here, as on the wire they would not either.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), self.len());
        checksum::combine(&[ph, checksum::data(self.datagram())]) == 0xffff
    }

    /// Checksum over an IPv6 pseudo-header; mandatory there, so zero fails.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let ph =
            checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), u32::from(self.len()));
        checksum::combine(&[ph, checksum::data(self.datagram())]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    #[inline]
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes and stores the checksum over an IPv4 pseudo-header (after
    /// the payload is written).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), self.len());
        let sum = !checksum::combine(&[ph, checksum::data(self.datagram())]);
        // A computed 0 is sent as 0xffff: 0 means "no checksum".
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// Computes and stores the checksum over an IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let ph =
            checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), u32::from(self.len()));
        let sum = !checksum::combine(&[ph, checksum::data(self.datagram())]);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dns.pcap frame 1 from byte 34: 10.0.0.1.59911 > 10.0.0.2.53, "A?
    // web.lan.test." with EDNS0 cookie. The stored checksum 0x1451 is the
    // pseudo-header sum left for offload; tcpdump computes 0x2145.
    static DNS_QUERY: [u8; 61] = [
        0xea, 0x07, 0x00, 0x35, 0x00, 0x3d, 0x14, 0x51, 0x6e, 0xbf, 0x01, 0x20, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x77, 0x65, 0x62, 0x03, 0x6c, 0x61, 0x6e, 0x04, 0x74,
        0x65, 0x73, 0x74, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x08, 0xe7, 0xa4, 0xee, 0xdb, 0x07, 0x1c, 0x8e,
        0x10,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn test_deconstruct() {
        let p = UdpPacket::new_checked(&DNS_QUERY[..]).unwrap();
        assert_eq!(p.src_port(), 59911);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 61);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0x1451);
        assert_eq!(&p.payload()[..2], &28351u16.to_be_bytes()); // DNS id
        assert_eq!(p.payload().len(), 53);
        // Offload left the pseudo-header sum, not a checksum.
        assert!(!p.verify_checksum_v4(SRC, DST));
        assert_eq!(p.checksum(), checksum::pseudo_header_v4(SRC, DST, 17, 61));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0u8; 61];
        let mut p = UdpPacket::new_unchecked(&mut bytes[..]);
        p.set_src_port(59911);
        p.set_dst_port(53);
        p.set_len(61);
        p.payload_mut().copy_from_slice(&DNS_QUERY[8..]);
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), 0x2145); // what tcpdump says it should be
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(DST, Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(&bytes[..6], &DNS_QUERY[..6]);
        assert_eq!(&bytes[8..], &DNS_QUERY[8..]);
    }

    #[test]
    fn zero_checksum_means_none_on_v4_only() {
        let mut b = DNS_QUERY;
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.set_checksum(0);
        assert!(p.verify_checksum_v4(SRC, DST));
        let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        assert!(!p.verify_checksum_v6(s6, d6));
        p.fill_checksum_v6(s6, d6);
        assert!(p.verify_checksum_v6(s6, d6));
    }

    #[test]
    fn check_len_rejects() {
        for n in 0..8 {
            assert_eq!(
                UdpPacket::new_checked(&DNS_QUERY[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        assert_eq!(
            UdpPacket::new_checked(&DNS_QUERY[..60]).unwrap_err(),
            Error::Truncated
        );
        let mut b = DNS_QUERY;
        for l in 0..8u16 {
            b[4..6].copy_from_slice(&l.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&b[..]).unwrap_err(),
                Error::Malformed
            );
        }
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_empty() && p.payload().is_empty());
    }
}
