//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Only the Ethernet/IPv4 layout (hlen 6, plen 4, 28 bytes) is given field
//! accessors: it is the only one a switch meets. Other layouts still parse
//! (all fields sit at fixed offsets inside 28 bytes, so nothing can panic)
//! but [`ArpPacket::is_ethernet_ipv4`] is false and [`ArpRepr::parse`]
//! refuses them.

use core::net::Ipv4Addr;

use crate::bytes::{get_array, get_u16, set_u16};
use crate::error::{Error, Result};
use crate::ethernet::{self, EtherType, EthernetFrame, MacAddr};

/// ARP hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOp {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOp {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            v => ArpOp::Unknown(v),
        }
    }
}

impl From<ArpOp> for u16 {
    fn from(op: ArpOp) -> Self {
        match op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Unknown(v) => v,
        }
    }
}

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Length of an untagged Ethernet frame carrying one, without padding.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

/// A read/write view of an Ethernet/IPv4 ARP packet.
///
/// Once [`check_len`](Self::check_len) has succeeded, no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the buffer holds the 28 bytes of an Ethernet/IPv4 ARP packet
    /// (trailing Ethernet padding is allowed).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
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
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from_u16(get_u16(self.buffer.as_ref(), field::PTYPE))
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> ArpOp {
        ArpOp::from(get_u16(self.buffer.as_ref(), field::OPER))
    }

    /// htype Ethernet, ptype IPv4, hlen 6, plen 4: the address getters
    /// below mean what they say.
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::Ipv4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), field::SHA.start))
    }

    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::SPA.start))
    }

    /// Target hardware address (zero or ignored in requests).
    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), field::THA.start))
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::TPA.start))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::HTYPE, v);
    }

    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        set_u16(self.buffer.as_mut(), field::PTYPE, v.to_u16());
    }

    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    #[inline]
    pub fn set_operation(&mut self, op: ArpOp) {
        set_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    #[inline]
    pub fn set_source_hardware_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_target_hardware_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// A decoded Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Decodes a checked packet; [`Error::Unsupported`] for anything but
    /// Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        p.check_len()?;
        if !p.is_ethernet_ipv4() {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            op: p.operation(),
            sender_mac: p.source_hardware_addr(),
            sender_ip: p.source_protocol_addr(),
            target_mac: p.target_hardware_addr(),
            target_ip: p.target_protocol_addr(),
        })
    }

    /// Decodes an untagged Ethernet frame carrying Ethernet/IPv4 ARP (the
    /// inverse of [`emit_frame`](Self::emit_frame); padding after the 42
    /// bytes is allowed). [`Error::Unsupported`] if the EtherType is not
    /// ARP or the ARP layout is not Ethernet/IPv4, [`Error::Truncated`] if
    /// the frame is too short.
    pub fn parse_frame(frame: &[u8]) -> Result<ArpRepr> {
        let eth = EthernetFrame::new_checked(frame)?;
        if eth.ethertype() != EtherType::Arp {
            return Err(Error::Unsupported);
        }
        ArpRepr::parse(&ArpPacket::new_checked(eth.payload())?)
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes every field, fixed ones (htype, ptype, lengths) included.
    /// The view must have passed `check_len`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(EtherType::Ipv4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.op);
        p.set_source_hardware_addr(self.sender_mac);
        p.set_source_protocol_addr(self.sender_ip);
        p.set_target_hardware_addr(self.target_mac);
        p.set_target_protocol_addr(self.target_ip);
    }

    /// The reply that a host owning `self.target_ip` with MAC `our_mac`
    /// sends to this request. `None` if `self` is not a request.
    pub fn reply(&self, our_mac: MacAddr) -> Option<ArpRepr> {
        if self.op != ArpOp::Request {
            return None;
        }
        Some(ArpRepr {
            op: ArpOp::Reply,
            sender_mac: our_mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        })
    }

    /// Writes a whole Ethernet frame (14 + 28 = 42 bytes, no padding) to
    /// `eth_dst` from `self.sender_mac` into the start of `buf`, and returns
    /// its length. [`Error::NoRoom`] if `buf` is shorter.
    pub fn emit_frame(&self, eth_dst: MacAddr, buf: &mut [u8]) -> Result<usize> {
        let len = FRAME_LEN;
        let buf = buf.get_mut(..len).ok_or(Error::NoRoom)?;
        let mut eth = EthernetFrame::new_unchecked(&mut *buf);
        eth.set_dst_addr(eth_dst);
        eth.set_src_addr(self.sender_mac);
        eth.set_ethertype(EtherType::Arp);
        self.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        Ok(len)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // arp_icmp.pcap frame 1: who-has 10.0.0.1 tell 10.0.0.2 (broadcast).
    static REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00,
        0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x00, 0x00, 0x01,
    ];
    // arp_icmp.pcap frame 2: the kernel's reply, 10.0.0.1 is-at 02:00:00:00:00:01.
    static REPLY: [u8; 42] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00,
        0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02,
    ];

    const MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const IP1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const IP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn test_deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[14..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), ArpOp::Request);
        assert_eq!(p.source_hardware_addr(), MAC2);
        assert_eq!(p.source_protocol_addr(), IP2);
        assert_eq!(p.target_hardware_addr(), MacAddr::BROADCAST);
        assert_eq!(p.target_protocol_addr(), IP1);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0u8; 28];
        let mut p = ArpPacket::new_unchecked(&mut bytes[..]);
        p.set_hardware_type(1);
        p.set_protocol_type(EtherType::Ipv4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(ArpOp::Reply);
        p.set_source_hardware_addr(MAC1);
        p.set_source_protocol_addr(IP1);
        p.set_target_hardware_addr(MAC2);
        p.set_target_protocol_addr(IP2);
        assert_eq!(&bytes[..], &REPLY[14..]);
    }

    #[test]
    fn repr_reply_matches_the_kernel() {
        let req = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[14..]).unwrap()).unwrap();
        let reply = req.reply(MAC1).unwrap();
        assert_eq!(
            reply,
            ArpRepr {
                op: ArpOp::Reply,
                sender_mac: MAC1,
                sender_ip: IP1,
                target_mac: MAC2,
                target_ip: IP2
            }
        );
        // The frame we build is byte for byte what Linux sent.
        let mut buf = [0u8; 64];
        let n = reply.emit_frame(req.sender_mac, &mut buf).unwrap();
        assert_eq!(&buf[..n], &REPLY[..]);
        assert_eq!(reply.reply(MAC1), None);
        assert_eq!(reply.emit_frame(MAC2, &mut buf[..41]), Err(Error::NoRoom));
        // Round trip through parse.
        let back = ArpRepr::parse(&ArpPacket::new_checked(&buf[14..n]).unwrap()).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.buffer_len(), 28);
        assert_eq!(n, FRAME_LEN);
    }

    #[test]
    fn parse_frame_reads_whole_frames() {
        assert_eq!(
            ArpRepr::parse_frame(&REQUEST).unwrap(),
            ArpRepr {
                op: ArpOp::Request,
                sender_mac: MAC2,
                sender_ip: IP2,
                target_mac: MacAddr::BROADCAST,
                target_ip: IP1
            }
        );
        let mut padded = [0u8; 60];
        padded[..42].copy_from_slice(&REPLY);
        assert_eq!(ArpRepr::parse_frame(&padded).unwrap().op, ArpOp::Reply);
        for n in 0..FRAME_LEN {
            assert_eq!(
                ArpRepr::parse_frame(&REPLY[..n]),
                Err(Error::Truncated),
                "{n}"
            );
        }
        let mut ipv4 = REQUEST;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(ArpRepr::parse_frame(&ipv4), Err(Error::Unsupported));
        let mut other = REQUEST;
        other[14 + 3] = 0xdd; // ptype 0x86dd
        assert_eq!(ArpRepr::parse_frame(&other), Err(Error::Unsupported));
    }

    #[test]
    fn other_layouts_are_unsupported_not_panics() {
        let mut p = REQUEST;
        p[14 + 4] = 16; // hlen 16 (e.g. InfiniBand-ish)
        let v = ArpPacket::new_checked(&p[14..]).unwrap();
        assert!(!v.is_ethernet_ipv4());
        assert_eq!(ArpRepr::parse(&v), Err(Error::Unsupported));
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST[14..41])),
            Err(Error::Truncated)
        );
        assert_eq!(ArpOp::from(7), ArpOp::Unknown(7));
        assert_eq!(u16::from(ArpOp::Unknown(7)), 7);
    }

    #[test]
    fn short_is_truncated() {
        for n in 0..PACKET_LEN {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[14..14 + n]).unwrap_err(),
                Error::Truncated
            );
        }
    }
}
