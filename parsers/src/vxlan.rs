//! VXLAN (RFC 7348): the 8-byte header, the 50-byte IPv4 encapsulation the
//! switch prepends, and a decapsulation helper.
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```

use core::net::Ipv4Addr;
use core::ops::Range;

use crate::bytes::{get_u24, set_u24};
use crate::error::{Error, Result};
use crate::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::ip::{self, IpProtocol};
use crate::ipv4::{self, Ipv4Packet};
use crate::udp::{self, UdpPacket};
use crate::vlan::{self, VlanTag};

/// Length of the VXLAN header.
pub const VXLAN_HEADER_LEN: usize = 8;
/// IANA port for VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// The I flag: the VNI is valid. Must be set (RFC 7348 §5).
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;
/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8), untagged.
pub const ENCAP_LEN: usize =
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + VXLAN_HEADER_LEN;

mod field {
    use core::ops::{Range, RangeFrom};

    pub const FLAGS: usize = 0;
    pub const RESERVED0: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED1: usize = 7;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// A read/write view of a VXLAN header and the inner frame after it.
///
/// Once [`check_len`](Self::check_len) has succeeded, no accessor panics.
/// A header without the I flag still parses; [`has_vni`](Self::has_vni)
/// says whether to trust the VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> VxlanPacket<T> {
        VxlanPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<VxlanPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the buffer holds the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VXLAN_HEADER_LEN {
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
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// I flag set: the VNI field is valid.
    #[inline]
    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// 24-bit VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        get_u24(self.buffer.as_ref(), field::VNI)
    }

    /// The 24 reserved bits after the flags (0 when sent, ignored on receipt).
    #[inline]
    pub fn reserved0(&self) -> u32 {
        get_u24(self.buffer.as_ref(), field::RESERVED0)
    }

    /// The reserved byte after the VNI.
    #[inline]
    pub fn reserved1(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED1]
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Stores the low 24 bits of `vni`.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        set_u24(self.buffer.as_mut(), field::VNI, vni);
    }

    /// Stores the low 24 bits.
    #[inline]
    pub fn set_reserved0(&mut self, v: u32) {
        set_u24(self.buffer.as_mut(), field::RESERVED0, v);
    }

    #[inline]
    pub fn set_reserved1(&mut self, v: u8) {
        self.buffer.as_mut()[field::RESERVED1] = v;
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// Everything needed to write the outer headers towards one remote VTEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanEncap {
    /// Our MAC on the underlay.
    pub src_mac: MacAddr,
    /// Next hop's MAC on the underlay.
    pub dst_mac: MacAddr,
    /// Our VTEP address.
    pub src_ip: Ipv4Addr,
    /// The remote VTEP.
    pub dst_ip: Ipv4Addr,
    /// Entropy for underlay ECMP; see [`entropy_port`].
    pub src_port: u16,
    /// Usually [`VXLAN_PORT`].
    pub dst_port: u16,
    pub ttl: u8,
    /// 24 bits; larger values are refused.
    pub vni: u32,
    /// IPv4 identification (matters only if the underlay fragments).
    pub ident: u16,
    /// Set DF on the outer header.
    pub dont_frag: bool,
}

/// Writes the 50 bytes of outer Ethernet + IPv4 + UDP + VXLAN headers for
/// an inner frame of `inner_len` bytes into `buf[..50]`; the inner frame is
/// expected right after. Returns [`ENCAP_LEN`].
///
/// The IPv4 checksum is computed; the UDP checksum is 0 (allowed for VXLAN
/// over IPv4, RFC 7348 §5, and what avoids reading the inner frame).
///
/// Errors: [`Error::NoRoom`] if `buf` is shorter than 50 bytes,
/// [`Error::TooLong`] if the IPv4 total length would exceed 65535,
/// [`Error::Malformed`] if the VNI does not fit 24 bits. `buf` is left
/// untouched on error.
pub fn emit_vxlan_encap(buf: &mut [u8], encap: &VxlanEncap, inner_len: usize) -> Result<usize> {
    let buf = buf.get_mut(..ENCAP_LEN).ok_or(Error::NoRoom)?;
    if encap.vni > VNI_MAX {
        return Err(Error::Malformed);
    }
    let ip_len = inner_len
        .checked_add(ENCAP_LEN - ethernet::HEADER_LEN)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(Error::TooLong)?;
    let udp_len = ip_len - ipv4::HEADER_LEN as u16;

    let (eth_buf, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    let mut eth = EthernetFrame::new_unchecked(eth_buf);
    eth.set_dst_addr(encap.dst_mac);
    eth.set_src_addr(encap.src_mac);
    eth.set_ethertype(EtherType::Ipv4);

    let (ip_buf, rest) = rest.split_at_mut(ipv4::HEADER_LEN);
    let mut ip = Ipv4Packet::new_unchecked(ip_buf);
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN as u8);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_len(ip_len);
    ip.set_ident(encap.ident);
    ip.clear_flags();
    ip.set_dont_frag(encap.dont_frag);
    ip.set_ttl(encap.ttl);
    ip.set_protocol(IpProtocol::Udp);
    ip.set_src_addr(encap.src_ip);
    ip.set_dst_addr(encap.dst_ip);
    // Only the 20 header bytes are in this slice: fill_checksum reads
    // header_len (20) bytes, never the payload.
    ip.fill_checksum();

    let (udp_buf, vx_buf) = rest.split_at_mut(udp::HEADER_LEN);
    let mut udp = UdpPacket::new_unchecked(udp_buf);
    udp.set_src_port(encap.src_port);
    udp.set_dst_port(encap.dst_port);
    udp.set_len(udp_len);
    udp.set_checksum(0);

    let mut vx = VxlanPacket::new_unchecked(vx_buf);
    vx.set_flags(FLAG_I);
    vx.set_reserved0(0);
    vx.set_vni(encap.vni);
    vx.set_reserved1(0);
    Ok(ENCAP_LEN)
}

/// Prepends the encapsulation to the frame at `buf[start..start + len]`
/// using the headroom in front of it (no copy of the frame). Returns the new
/// `(start, len)` = `(start - 50, len + 50)`, or `None` (buffer untouched)
/// if there is less than 50 bytes of headroom, the range lies outside `buf`,
/// or [`emit_vxlan_encap`] refuses.
pub fn encap_in_place(
    buf: &mut [u8],
    start: usize,
    len: usize,
    encap: &VxlanEncap,
) -> Option<(usize, usize)> {
    let end = start.checked_add(len)?;
    if end > buf.len() {
        return None;
    }
    let new_start = start.checked_sub(ENCAP_LEN)?;
    emit_vxlan_encap(buf.get_mut(new_start..start)?, encap, len).ok()?;
    Some((new_start, len + ENCAP_LEN))
}

/// A UDP source port in the dynamic range 49152..=65535 derived from a hash
/// of the inner frame's flow, so underlay ECMP spreads flows (RFC 7348 §5).
#[inline]
pub const fn entropy_port(hash: u32) -> u16 {
    49152 | (hash as u16 & 0x3fff)
}

/// What [`decap`] found in an outer frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decap {
    pub outer_src_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub vni: u32,
    /// Where the inner Ethernet frame lies in the outer frame.
    pub inner: Range<usize>,
}

/// Why [`decap_for`] refused an outer frame, in the order it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// Not VXLAN at all: not IPv4 (EtherType, version, lengths), not UDP,
    /// or not addressed to the VTEP's address and port. The error says how
    /// ([`Error::Unsupported`]: well-formed, but something else).
    NotVxlan(Error),
    /// An IPv4 fragment for the VTEP: VXLAN packets are not reassembled.
    Fragment,
    /// UDP for the VTEP, but the UDP or VXLAN header is cut short or the
    /// UDP length field says more than there is.
    Short(Error),
    /// The VXLAN I flag is clear (RFC 7348 §5).
    NoVni,
}

impl Refused {
    /// The view error behind the refusal.
    #[inline]
    pub const fn error(self) -> Error {
        match self {
            Refused::NotVxlan(e) | Refused::Short(e) => e,
            Refused::Fragment => Error::Unsupported,
            Refused::NoVni => Error::Malformed,
        }
    }
}

/// Walks Ethernet (with at most one 802.1Q/802.1ad tag), IPv4 and UDP to a
/// VXLAN header, and says where the inner frame is.
///
/// Does not check the destination port or address (see [`decap_for`]) nor
/// the IPv4 checksum (call [`Ipv4Packet::verify_checksum`] if wanted).
/// Errors: [`Error::Unsupported`] if the frame is not IPv4/UDP or is a
/// fragment, [`Error::Malformed`] if the VXLAN I flag is clear or the IPv4
/// version is not 4, and the length errors of each view.
#[inline]
pub fn decap(frame: &[u8]) -> Result<Decap> {
    decap_for(frame, None).map_err(Refused::error)
}

/// [`decap`] for a VTEP: with `to = Some((address, udp_port))`, a packet
/// not addressed to that address and port is [`Refused::NotVxlan`]. The
/// checks run in the order a VTEP's drop reasons are told apart: IPv4, UDP
/// and the destination address first, then fragments, then the UDP
/// destination port (read before the rest of the UDP header is checked),
/// then the UDP and VXLAN lengths, then the I flag.
#[inline]
pub fn decap_for(
    frame: &[u8],
    to: Option<(Ipv4Addr, u16)>,
) -> core::result::Result<Decap, Refused> {
    use Refused::NotVxlan;
    let eth = EthernetFrame::new_checked(frame).map_err(NotVxlan)?;
    let (ethertype, l3) = match eth.ethertype() {
        t if t.is_vlan_tag() => {
            let tag = VlanTag::new_checked(eth.payload()).map_err(NotVxlan)?;
            let after = eth.payload().get(vlan::HEADER_LEN..).unwrap_or_default();
            (tag.ethertype(), after)
        }
        t => (t, eth.payload()),
    };
    if ethertype != EtherType::Ipv4 {
        return Err(NotVxlan(Error::Unsupported));
    }
    let ip = Ipv4Packet::new_checked(l3).map_err(NotVxlan)?;
    if ip.version() != 4 {
        return Err(NotVxlan(Error::Malformed));
    }
    if ip.protocol() != IpProtocol::Udp || to.is_some_and(|(addr, _)| ip.dst_addr() != addr) {
        return Err(NotVxlan(Error::Unsupported));
    }
    if ip.is_fragment() {
        return Err(Refused::Fragment);
    }
    // Each payload is sliced once: the views recompute it on every call.
    let datagram = ip.payload();
    if let Some((_, port)) = to {
        match ip::l4_ports(datagram) {
            Some((_, dst)) if dst == port => {}
            Some(_) => return Err(NotVxlan(Error::Unsupported)),
            None => return Err(NotVxlan(Error::Truncated)),
        }
    }
    let udp = UdpPacket::new_checked(datagram).map_err(Refused::Short)?;
    let vx = VxlanPacket::new_checked(udp.payload()).map_err(Refused::Short)?;
    if !vx.has_vni() {
        return Err(Refused::NoVni);
    }
    let inner_len = vx.payload().len();
    // The inner frame ends where the UDP datagram does (padding after the
    // IPv4 packet is not part of it).
    let inner_start =
        frame.len() - l3.len() + usize::from(ip.header_len()) + udp::HEADER_LEN + VXLAN_HEADER_LEN;
    Ok(Decap {
        outer_src_mac: eth.src_addr(),
        src_ip: ip.src_addr(),
        dst_ip: ip.dst_addr(),
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        vni: vx.vni(),
        inner: inner_start..inner_start + inner_len,
    })
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for VxlanPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // vxlan.pcap frame 5: 10.0.0.1.46775 > 10.0.0.2.4789, VNI 1000, inner
    // ARP who-has 10.1.0.2 tell 10.1.0.1 from 02:00:00:00:10:01. The kernel
    // left the UDP checksum to offload (0x144e, the pseudo-header sum).
    static VXLAN_ARP: [u8; 92] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x4e, 0x06, 0x0d, 0x00, 0x00, 0x40, 0x11, 0x60, 0x90, 0x0a, 0x00, 0x00, 0x01,
        0x0a, 0x00, 0x00, 0x02, 0xb6, 0xb7, 0x12, 0xb5, 0x00, 0x3a, 0x14, 0x4e, 0x08, 0x00, 0x00,
        0x00, 0x00, 0x03, 0xe8, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00,
        0x10, 0x01, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00,
        0x00, 0x10, 0x01, 0x0a, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x01,
        0x00, 0x02,
    ];

    fn encap() -> VxlanEncap {
        VxlanEncap {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 46775,
            dst_port: VXLAN_PORT,
            ttl: 64,
            vni: 1000,
            ident: 0x060d,
            dont_frag: false,
        }
    }

    #[test]
    fn test_deconstruct() {
        let p = VxlanPacket::new_checked(&VXLAN_ARP[42..]).unwrap();
        assert_eq!(p.flags(), 0x08);
        assert!(p.has_vni());
        assert_eq!(p.vni(), 1000);
        assert_eq!((p.reserved0(), p.reserved1()), (0, 0));
        let inner = EthernetFrame::new_checked(p.payload()).unwrap();
        assert_eq!(inner.src_addr(), MacAddr([2, 0, 0, 0, 0x10, 1]));
        assert_eq!(inner.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(inner.ethertype(), EtherType::Arp);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0u8; 16];
        let mut p = VxlanPacket::new_unchecked(&mut bytes[..]);
        p.set_flags(FLAG_I);
        p.set_reserved0(0);
        p.set_vni(1000);
        p.set_reserved1(0);
        p.payload_mut().copy_from_slice(&VXLAN_ARP[50..58]);
        assert_eq!(&bytes[..], &VXLAN_ARP[42..58]);
    }

    #[test]
    fn encap_matches_the_kernel_but_udp_checksum() {
        let mut buf = [0u8; 92];
        buf[50..].copy_from_slice(&VXLAN_ARP[50..]);
        assert_eq!(emit_vxlan_encap(&mut buf, &encap(), 42), Ok(ENCAP_LEN));
        assert_eq!(&buf[..40], &VXLAN_ARP[..40]); // IPv4 checksum 0x6090 included
        assert_eq!(&buf[40..42], &[0, 0]); // we send no UDP checksum
        assert_eq!(&buf[42..], &VXLAN_ARP[42..]);
    }

    #[test]
    fn encap_in_place_uses_headroom() {
        let mut buf = [0u8; 128];
        let start = 64;
        buf[start..start + 42].copy_from_slice(&VXLAN_ARP[50..]);
        let (s, l) = encap_in_place(&mut buf, start, 42, &encap()).unwrap();
        assert_eq!((s, l), (14, 92));
        let d = decap(&buf[s..s + l]).unwrap();
        assert_eq!(d.vni, 1000);
        assert_eq!(&buf[s..s + l][d.inner], &VXLAN_ARP[50..]);
        let ip = Ipv4Packet::new_checked(&buf[s + 14..s + l]).unwrap();
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn encap_refuses_without_panicking() {
        let mut small = [0u8; 49];
        assert_eq!(
            emit_vxlan_encap(&mut small, &encap(), 42),
            Err(Error::NoRoom)
        );
        let mut buf = [0u8; 50];
        let bad_vni = VxlanEncap {
            vni: VNI_MAX + 1,
            ..encap()
        };
        assert_eq!(
            emit_vxlan_encap(&mut buf, &bad_vni, 42),
            Err(Error::Malformed)
        );
        assert_eq!(
            emit_vxlan_encap(&mut buf, &encap(), 65535 - 36 + 1),
            Err(Error::TooLong)
        );
        assert_eq!(
            emit_vxlan_encap(&mut buf, &encap(), usize::MAX),
            Err(Error::TooLong)
        );
        assert_eq!(buf, [0u8; 50]);
        assert_eq!(emit_vxlan_encap(&mut buf, &encap(), 65535 - 36), Ok(50));

        let mut buf = [0u8; 100];
        assert_eq!(encap_in_place(&mut buf, 49, 42, &encap()), None);
        assert_eq!(encap_in_place(&mut buf, 60, 41, &encap()), None);
        assert_eq!(encap_in_place(&mut buf, usize::MAX, 1, &encap()), None);
        assert_eq!(buf, [0u8; 100]);
        assert_eq!(encap_in_place(&mut buf, 50, 50, &encap()), Some((0, 100)));
    }

    #[test]
    fn decap_real_frame() {
        let d = decap(&VXLAN_ARP).unwrap();
        assert_eq!(d.src_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(d.dst_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((d.src_port, d.dst_port, d.vni), (46775, 4789, 1000));
        assert_eq!(d.inner, 50..92);
        assert_eq!(d.outer_src_mac, MacAddr([2, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn decap_through_an_outer_tag() {
        let mut buf = [0u8; 100];
        buf[4..96].copy_from_slice(&VXLAN_ARP);
        let (s, l) =
            vlan::push_tag(&mut buf, 4, 92, EtherType::Vlan, vlan::tci(0, false, 7)).unwrap();
        let d = decap(&buf[s..s + l]).unwrap();
        assert_eq!(d.inner, 54..96);
        assert_eq!(d.vni, 1000);
    }

    #[test]
    fn decap_rejects() {
        let mut no_i = VXLAN_ARP;
        no_i[42] = 0;
        assert_eq!(decap(&no_i), Err(Error::Malformed));
        let mut not_udp = VXLAN_ARP;
        not_udp[23] = 6;
        assert_eq!(decap(&not_udp), Err(Error::Unsupported));
        let mut frag = VXLAN_ARP;
        frag[20] = 0x20; // MF
        assert_eq!(decap(&frag), Err(Error::Unsupported));
        for n in 0..92 {
            assert!(decap(&VXLAN_ARP[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn decap_for_a_vtep_tells_why_in_order() {
        let me = Some((Ipv4Addr::new(10, 0, 0, 2), VXLAN_PORT));
        let d = decap_for(&VXLAN_ARP, me).unwrap();
        assert_eq!((d.vni, d.inner.clone()), (1000, 50..92));
        assert_eq!(Ok(d), decap(&VXLAN_ARP));
        let refused = |f: &[u8], to| decap_for(f, to).err();
        // Another address or port: not for us, even when also a fragment
        // or cut short after the ports.
        let other_ip = Some((Ipv4Addr::new(10, 0, 0, 3), VXLAN_PORT));
        let other_port = Some((Ipv4Addr::new(10, 0, 0, 2), 4790));
        let mut frag = VXLAN_ARP;
        frag[20] = 0x20; // MF
        assert_eq!(
            refused(&frag, other_ip),
            Some(Refused::NotVxlan(Error::Unsupported))
        );
        assert_eq!(refused(&frag, me), Some(Refused::Fragment));
        assert_eq!(
            refused(&VXLAN_ARP, other_port),
            Some(Refused::NotVxlan(Error::Unsupported))
        );
        let mut short_udp = VXLAN_ARP;
        short_udp[38..40].copy_from_slice(&15u16.to_be_bytes());
        assert_eq!(
            refused(&short_udp, other_port),
            Some(Refused::NotVxlan(Error::Unsupported))
        );
        assert_eq!(
            refused(&short_udp, me),
            Some(Refused::Short(Error::Truncated))
        );
        assert_eq!(
            refused(&short_udp, None),
            Some(Refused::Short(Error::Truncated))
        );
        let mut long_udp = VXLAN_ARP;
        long_udp[38..40].copy_from_slice(&59u16.to_be_bytes());
        assert_eq!(
            refused(&long_udp, me),
            Some(Refused::Short(Error::Truncated))
        );
        let mut no_i = VXLAN_ARP;
        no_i[42] = 0;
        assert_eq!(refused(&no_i, me), Some(Refused::NoVni));
        let mut v6 = VXLAN_ARP;
        v6[14] = 0x65;
        assert_eq!(refused(&v6, me), Some(Refused::NotVxlan(Error::Malformed)));
        // The IPv4 header ends where the UDP ports would start.
        let mut ports_cut = [0u8; 36];
        ports_cut.copy_from_slice(&VXLAN_ARP[..36]);
        ports_cut[16..18].copy_from_slice(&22u16.to_be_bytes());
        let mut p = Ipv4Packet::new_unchecked(&mut ports_cut[14..]);
        p.fill_checksum();
        assert_eq!(
            refused(&ports_cut, me),
            Some(Refused::NotVxlan(Error::Truncated))
        );
        for n in 0..92 {
            assert!(decap_for(&VXLAN_ARP[..n], me).is_err(), "prefix {n}");
        }
        assert_eq!(Refused::NoVni.error(), Error::Malformed);
        assert_eq!(Refused::Fragment.error(), Error::Unsupported);
    }

    #[test]
    fn entropy_port_is_dynamic() {
        for h in [0u32, 1, 0x3fff, 0x4000, u32::MAX] {
            assert!(entropy_port(h) >= 49152);
        }
        assert_ne!(entropy_port(1), entropy_port(2));
    }
}
