//! TCP header (RFC 9293), as much as segmentation needs: ports, sequence
//! and acknowledgment numbers, data offset, flags and the checksum.
//! Options are not decoded, only skipped via the data offset.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::bytes::{get_u16, get_u32, set_u16, set_u32};
use crate::checksum;
use crate::error::{Error, Result};
use crate::ip::IpProtocol;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DOFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Where the checksum field sits in the header (a virtio-net
/// `csum_offset` for TCP).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// Flag bits (the byte at offset 13).
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// A read/write view of a TCP segment (header and payload: the whole
/// buffer, TCP has no length field of its own).
///
/// Once [`check_len`](Self::check_len) has succeeded, no accessor panics:
/// it guarantees `20 <= header_len <= buffer length`. `set_header_len`
/// can break that guarantee: call `check_len` again after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// [`Error::Truncated`] if the buffer is shorter than 20 bytes or than
    /// the data offset says; [`Error::Malformed`] if the data offset is
    /// below 5 words.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            Err(Error::Malformed)
        } else if len < header_len {
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DOFF] >> 4) * 4
    }

    /// The eight flag bits ([`FIN`] ... [`CWR`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Option bytes between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Sum of the segment's pseudo-header, header and payload; `None` if
    /// the segment is longer than a length field can say.
    fn sum(&self, pseudo: impl FnOnce(u32) -> Option<u16>) -> Option<u16> {
        let b = self.buffer.as_ref();
        let ph = pseudo(u32::try_from(b.len()).ok()?)?;
        Some(checksum::combine(&[ph, checksum::data(b)]))
    }

    /// The checksum is correct over an IPv4 pseudo-header.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.sum(|len| pseudo_v4(src, dst, len)) == Some(0xffff)
    }

    /// The checksum is correct over an IPv6 pseudo-header.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.sum(|len| Some(pseudo_v6(src, dst, len))) == Some(0xffff)
    }
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, len: u32) -> Option<u16> {
    let len = u16::try_from(len).ok()?;
    Some(checksum::pseudo_header_v4(
        src,
        dst,
        IpProtocol::Tcp.into(),
        len,
    ))
}

fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, len: u32) -> u16 {
    checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp.into(), len)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, v);
    }

    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Sets the data offset from a header length in bytes (a multiple of
    /// 4, 20..=60); the reserved bits are cleared.
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        self.buffer.as_mut()[field::DOFF] = (len / 4) << 4;
    }

    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    #[inline]
    pub fn set_window(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Computes and stores the checksum over an IPv4 pseudo-header (after
    /// the payload is written). Leaves the field 0 and returns false when
    /// the segment is too long for an IPv4 length.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.set_checksum(0);
        self.store(|len| pseudo_v4(src, dst, len))
    }

    /// Computes and stores the checksum over an IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.set_checksum(0);
        self.store(|len| Some(pseudo_v6(src, dst, len)))
    }

    fn store(&mut self, pseudo: impl FnOnce(u32) -> Option<u16>) -> bool {
        match self.sum(pseudo) {
            Some(sum) => {
                self.set_checksum(!sum);
                true
            }
            None => false,
        }
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A SYN from 10.0.0.1:40000 to 10.0.0.2:80 with one option (MSS 1460),
    // checksum field left 0.
    static SYN_SEG: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, // ports
        0x12, 0x34, 0x56, 0x78, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0x60, 0x02, 0xfa, 0xf0, // doff 6, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum (filled below), urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// RFC 1071 written out again, so the view is not checked by itself.
    fn rfc1071(parts: &[&[u8]]) -> u16 {
        let mut acc: u32 = 0;
        for p in parts {
            for w in p.chunks(2) {
                let hi = u32::from(w[0]) << 8;
                let lo = w.get(1).map_or(0, |&b| u32::from(b));
                acc += hi | lo;
            }
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn test_deconstruct() {
        let p = TcpPacket::new_checked(&SYN_SEG[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x1234_5678);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn test_construct_and_checksum() {
        let mut b = [0u8; 28];
        b[24..].copy_from_slice(b"abc\x01");
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(40000);
        p.set_dst_port(80);
        p.set_seq_number(0x1234_5678);
        p.set_ack_number(7);
        p.set_header_len(24);
        p.set_flags(SYN | ACK);
        p.set_window(64240);
        p.set_urgent(0);
        assert!(p.fill_checksum_v4(SRC, DST));
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(DST, Ipv4Addr::new(10, 0, 0, 3)));
        let got = p.checksum();
        let mut zeroed = b;
        zeroed[16..18].fill(0);
        let pseudo = [10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 28];
        assert_eq!(got, rfc1071(&[&pseudo, &zeroed]));
        assert_eq!(&b[..4], &SYN_SEG[..4]);
        assert_eq!(b[12], 0x60);
        assert_eq!(b[13], SYN | ACK);

        let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        assert!(p.fill_checksum_v6(s6, d6));
        assert!(p.verify_checksum_v6(s6, d6));
        assert!(!p.verify_checksum_v4(SRC, DST));
        p.payload_mut()[0] ^= 1;
        assert!(!p.verify_checksum_v6(s6, d6));
    }

    #[test]
    fn check_len_rejects() {
        for n in 0..20 {
            assert_eq!(
                TcpPacket::new_checked(&SYN_SEG[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        // Data offset 6 needs 24 bytes.
        assert_eq!(
            TcpPacket::new_checked(&SYN_SEG[..23]).unwrap_err(),
            Error::Truncated
        );
        let mut b = SYN_SEG;
        for doff in 0..5u8 {
            b[12] = doff << 4;
            assert_eq!(
                TcpPacket::new_checked(&b[..]).unwrap_err(),
                Error::Malformed
            );
        }
        b[12] = 0xf0; // 60 bytes announced
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn too_long_for_ipv4_is_refused() {
        let mut big = std::vec![0u8; 70_000];
        big[12] = 0x50;
        let mut p = TcpPacket::new_checked(&mut big[..]).unwrap();
        assert!(!p.fill_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, DST));
        assert!(p.fill_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
    }
}
