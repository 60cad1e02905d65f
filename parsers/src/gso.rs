//! Software offloads: checking a frame's offload metadata against its
//! headers, completing a checksum the sender left to be computed, and
//! cutting a GSO super-frame (TCP over IPv4/IPv6, UDP with `UDP_SEGMENT`)
//! into the segments a port without segmentation offload sends.
//!
//! ```text
//!  super-frame: [L2 (any tags)] [L3] [L4] [payload ............................]
//!  segment i:   [L2 (caller's)] [L3'] [L4'] [payload[i*mss .. (i+1)*mss]]
//!               L3': IPv4 total length, id + i, header checksum / IPv6 payload length
//!               L4': TCP seq + i*mss, FIN/PSH only on the last, CWR only on the first,
//!                    UDP length; the L4 checksum computed in full
//! ```
//!
//! # What the kernel does that this mirrors
//!
//! - **Accepting a header** (`virtio_net_hdr_to_skb`): `gso_type` without
//!   its ECN bit is TCPV4, TCPV6 or UDP_L4; UFO and anything else is
//!   refused. `hdr_len` is a hint for how much to copy, never trusted: here
//!   it is only checked to lie inside the frame. The kernel then checks the
//!   headers lazily, when it segments (`SKB_GSO_DODGY`); the switch checks
//!   them up front, in [`check_header`], so that a super-frame it accepts
//!   can be passed whole to another TAP and segmented later without a
//!   second verdict. A super-frame whose payload fits one segment is
//!   accepted and makes one segment (the kernel drops its GSO state: "too
//!   small packets are not really GSO ones").
//! - **Segmenting** (`inet_gso_segment` / `ipv6_gso_segment`, then
//!   `tcp_gso_segment` or `__udp_gso_segment`, all over `skb_segment`):
//!   every segment carries a copy of the super-frame's L3 and L4 headers,
//!   IPv4 options included (GSO copies the whole header; the option "copy"
//!   bit only matters to fragmentation). IPv4 gets its total length, an id
//!   incremented per segment (`id++`, for TCP and UDP alike, as without
//!   `SKB_GSO_TCP_FIXEDID`) and a new header checksum; IPv6 its payload
//!   length. TCP: the sequence number advances by `mss` per segment, FIN
//!   and PSH stay only on the last segment, CWR only on the first (the
//!   kernel clears `th->cwr` after the first, with or without
//!   `SKB_GSO_TCP_ECN`). UDP: every datagram gets its own length. The
//!   kernel patches the L4 checksum incrementally from the pseudo-header
//!   sum the super-frame carries and leaves it CHECKSUM_PARTIAL for the
//!   device; this port has no device behind it, so each segment's L4
//!   checksum is computed in full (pseudo-header, header, payload), which
//!   also makes it independent of what the super-frame's field held.
//! - **Completing a checksum** (`skb_checksum_help`): the ones' complement
//!   sum from `csum_start` to the end of the frame, complemented, stored
//!   at `csum_start + csum_offset`; a result of 0 is stored as 0xffff
//!   (`CSUM_MANGLED_0`), which UDP needs (0 means "no checksum") and which
//!   is the same value in ones' complement for anything else.
//!
//! What the switch refuses that the kernel would take: IPv6 extension
//! headers and IPv4 fragments on a super-frame, more than two VLAN tags,
//! a super-frame without `NEEDS_CSUM` (the kernel's segmenters fail on it
//! too, since `csum_start` is then garbage), and length fields that
//! disagree with the frame (the kernel trims or fails later).
//!
//! Nothing here allocates; segments are written into buffers the caller
//! gives (the switch's pool). No input makes anything here panic or read
//! beyond the frame.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::ethernet::{self, EtherType, EthernetFrame};
use crate::ip::IpProtocol;
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet};
use crate::tcp::{self, TcpPacket};
use crate::udp::{self, UdpPacket};
use crate::virtio_net::{Csum, Gso, Offload, OffloadError, Tunnel, VirtioNetHdr};
use crate::virtio_net::{
    F_DATA_VALID, F_NEEDS_CSUM, F_UDP_TUNNEL_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6,
    GSO_UDP_L4, GSO_UDP_TUNNEL, GSO_UDP_TUNNEL_IPV6,
};
use crate::vlan::VlanTag;

/// VLAN tags a super-frame may carry (802.1ad + 802.1Q at most).
const MAX_TAGS: usize = 2;

/// The GSO type a header asks for, before the headers say which IP
/// version a UDP one is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    Tcp4,
    Tcp6,
    Udp,
}

/// Checks header `h` against `frame` (see [`Offload::from_header`]).
///
/// - `gso_type` (ECN bit aside) not NONE, TCPV4, TCPV6 or UDP_L4:
///   [`OffloadError::GsoType`]; a super-frame with `gso_size` 0:
///   [`OffloadError::GsoSize`];
/// - `hdr_len` beyond the frame: [`OffloadError::Length`];
/// - `NEEDS_CSUM` with the checksum field (`csum_start + csum_offset + 2`)
///   beyond the frame, or `csum_start` inside the MAC addresses and
///   EtherType: [`OffloadError::Checksum`];
/// - a super-frame: its headers (Ethernet, up to two tags, IPv4 or IPv6
///   without extension headers, TCP or UDP) must be those of its GSO type
///   ([`OffloadError::Mismatch`]), its IP and UDP length fields must say
///   the frame's length and its TCP data offset must fit
///   ([`OffloadError::Length`]), and it must ask for the L4 checksum:
///   `NEEDS_CSUM`, `csum_start` at the L4 header, `csum_offset` 16 for TCP
///   and 6 for UDP ([`OffloadError::Checksum`]);
/// - a tunnel bit in `gso_type`: refused ([`OffloadError::GsoType`]) unless
///   through [`check_tunnel_header`] (the port takes UDP-tunnel GSO).
pub fn check_header(h: &VirtioNetHdr, frame: &[u8]) -> Result<Offload, OffloadError> {
    check(h, frame, false)
}

/// [`check_header`] for a port that takes UDP-tunnel super-frames: a
/// header with a tunnel bit is checked as [`check_tunnel`] says.
pub fn check_tunnel_header(h: &VirtioNetHdr, frame: &[u8]) -> Result<Offload, OffloadError> {
    check(h, frame, true)
}

fn check(h: &VirtioNetHdr, frame: &[u8], tunnel: bool) -> Result<Offload, OffloadError> {
    if h.gso_type & GSO_UDP_TUNNEL != 0 {
        return if tunnel {
            check_tunnel(h, frame)
        } else {
            // Not a type this port takes (the kernel's verdict too).
            Err(OffloadError::GsoType)
        };
    }
    let asked = match h.gso_type & !GSO_ECN {
        GSO_NONE => None,
        GSO_TCPV4 => Some(Asked::Tcp4),
        GSO_TCPV6 => Some(Asked::Tcp6),
        GSO_UDP_L4 => Some(Asked::Udp),
        _ => return Err(OffloadError::GsoType),
    };
    if asked.is_some() && h.gso_size == 0 {
        return Err(OffloadError::GsoSize);
    }
    if usize::from(h.hdr_len) > frame.len() {
        return Err(OffloadError::Length);
    }
    let csum = if h.flags & F_NEEDS_CSUM != 0 {
        let c = Csum {
            start: h.csum_start,
            offset: h.csum_offset,
        };
        csum_field(frame.len(), c)?;
        // A checksum over the MAC header is nonsense, and a tag pushed in
        // front of it would move bytes the sum covers.
        if usize::from(c.start) < ethernet::HEADER_LEN {
            return Err(OffloadError::Checksum);
        }
        Some(c)
    } else {
        None
    };
    let gso = match asked {
        None => Gso::None,
        Some(asked) => {
            let l = Layout::of(frame)?;
            let gso = match (asked, l.gso) {
                (Asked::Tcp4, Gso::Tcp4) | (Asked::Tcp6, Gso::Tcp6) => l.gso,
                (Asked::Udp, Gso::Udp4 | Gso::Udp6) => l.gso,
                _ => return Err(OffloadError::Mismatch),
            };
            l.check_csum(csum)?;
            gso
        }
    };
    Ok(Offload {
        gso,
        ecn: matches!(gso, Gso::Tcp4 | Gso::Tcp6) && h.gso_type & GSO_ECN != 0,
        gso_size: if gso.is_some() { h.gso_size } else { 0 },
        csum,
        data_valid: h.flags & F_DATA_VALID != 0,
        tunnel: None,
    })
}

/// A UDP-tunnel super-frame's header (`virtio_net_hdr_tnl_to_skb`'s
/// checks, and the headers themselves): one tunnel bit only; an inner GSO
/// type of TCPV4, TCPV6 or UDP_L4 (not none, not UFO); `NEEDS_CSUM`
/// without `DATA_VALID`; the outer frame Ethernet (up to two tags), IPv4
/// or IPv6 as the tunnel bit says, UDP, every length field the frame's,
/// `outer_th_offset` its UDP header; `inner_nh_offset` an untagged inner
/// Ethernet header's end, past the outer UDP header, and from there the
/// inner frame checked as a plain super-frame of the inner type, whose
/// L4 checksum `csum_start` / `csum_offset` must be.
fn check_tunnel(h: &VirtioNetHdr, frame: &[u8]) -> Result<Offload, OffloadError> {
    let tnl = h.gso_type & GSO_UDP_TUNNEL;
    if tnl == GSO_UDP_TUNNEL {
        return Err(OffloadError::Tunnel);
    }
    let asked = match h.gso_type & !(GSO_ECN | GSO_UDP_TUNNEL) {
        GSO_TCPV4 => Asked::Tcp4,
        GSO_TCPV6 => Asked::Tcp6,
        GSO_UDP_L4 => Asked::Udp,
        _ => return Err(OffloadError::GsoType),
    };
    if h.gso_size == 0 {
        return Err(OffloadError::GsoSize);
    }
    if h.flags & F_NEEDS_CSUM == 0 || h.flags & F_DATA_VALID != 0 {
        return Err(OffloadError::Checksum);
    }
    if usize::from(h.hdr_len) > frame.len() {
        return Err(OffloadError::Length);
    }
    let outer = Layout::of(frame)?;
    let outer_v6 = match outer.gso {
        Gso::Udp4 => false,
        Gso::Udp6 => true,
        _ => return Err(OffloadError::Mismatch),
    };
    if outer_v6 != (tnl == GSO_UDP_TUNNEL_IPV6) {
        return Err(OffloadError::Mismatch);
    }
    if usize::from(h.outer_th_offset) != outer.l4 {
        return Err(OffloadError::Tunnel);
    }
    let inner_l3 = usize::from(h.inner_nh_offset);
    let inner = inner_l3
        .checked_sub(ethernet::HEADER_LEN)
        .filter(|&at| at >= outer.payload)
        .ok_or(OffloadError::Tunnel)?;
    let l = Layout::of(frame.get(inner..).ok_or(OffloadError::Tunnel)?)?;
    if l.l3 != ethernet::HEADER_LEN {
        return Err(OffloadError::Tunnel);
    }
    match (asked, l.gso) {
        (Asked::Tcp4, Gso::Tcp4) | (Asked::Tcp6, Gso::Tcp6) => {}
        (Asked::Udp, Gso::Udp4 | Gso::Udp6) => {}
        _ => return Err(OffloadError::Mismatch),
    }
    let csum = Csum {
        start: h.csum_start,
        offset: h.csum_offset,
    };
    csum_field(frame.len(), csum)?;
    let inner_start = usize::from(csum.start)
        .checked_sub(inner)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or(OffloadError::Checksum)?;
    l.check_csum(Some(Csum {
        start: inner_start,
        offset: csum.offset,
    }))?;
    // Offsets into a frame of at most 64 KiB: they fit.
    let at = |x: usize| u16::try_from(x).map_err(|_| OffloadError::Length);
    Ok(Offload {
        gso: l.gso,
        ecn: matches!(l.gso, Gso::Tcp4 | Gso::Tcp6) && h.gso_type & GSO_ECN != 0,
        gso_size: h.gso_size,
        csum: Some(csum),
        data_valid: false,
        tunnel: Some(Tunnel {
            outer_v6,
            udp_csum: h.flags & F_UDP_TUNNEL_CSUM != 0,
            outer_l4: at(outer.l4)?,
            inner_l3: at(inner_l3)?,
            hdr_end: at(inner + l.payload)?,
        }),
    })
}

/// Where checksum `c` is stored in a frame of `len` bytes, if the field
/// lies inside it.
fn csum_field(len: usize, c: Csum) -> Result<usize, OffloadError> {
    let at = usize::from(c.start) + usize::from(c.offset);
    if at + 2 > len {
        return Err(OffloadError::Checksum);
    }
    Ok(at)
}

/// Completes the checksum `c` of `frame` in place: the ones' complement
/// sum of `frame[c.start..]` (whose checksum field holds the pseudo-header
/// sum), complemented, stored at `c.start + c.offset`; a result of 0 is
/// stored as 0xffff, as the kernel's `skb_checksum_help` does.
/// [`OffloadError::Checksum`] (nothing written) when the field lies beyond
/// the frame.
pub fn complete_csum(frame: &mut [u8], c: Csum) -> Result<(), OffloadError> {
    let at = csum_field(frame.len(), c)?;
    let covered = frame
        .get(usize::from(c.start)..)
        .ok_or(OffloadError::Checksum)?;
    let sum = !checksum::data(covered);
    let field = frame.get_mut(at..at + 2).ok_or(OffloadError::Checksum)?;
    field.copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    Ok(())
}

/// Where a super-frame's headers lie, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// What the headers are (never `Gso::None`).
    gso: Gso,
    l3: usize,
    l4: usize,
    payload: usize,
    /// The end of the IP packet: the frame's length.
    end: usize,
}

impl Layout {
    /// Walks `frame`: Ethernet, up to two VLAN tags, IPv4 (options
    /// allowed, no fragment) or IPv6 (no extension header), TCP or UDP;
    /// every length field must agree with the frame's length.
    fn of(frame: &[u8]) -> Result<Layout, OffloadError> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| OffloadError::Length)?;
        let mut ethertype = eth.ethertype();
        let mut l3 = ethernet::HEADER_LEN;
        for _ in 0..MAX_TAGS {
            if !ethertype.is_vlan_tag() {
                break;
            }
            let tag = VlanTag::new_checked(frame.get(l3..).unwrap_or(&[]))
                .map_err(|_| OffloadError::Length)?;
            ethertype = tag.ethertype();
            l3 += VlanTag::<&[u8]>::header_len();
        }
        let ip = frame.get(l3..).unwrap_or(&[]);
        let (v6, proto, l4) = match ethertype {
            EtherType::Ipv4 => {
                let p = Ipv4Packet::new_checked(ip).map_err(|_| OffloadError::Length)?;
                if p.version() != 4 {
                    return Err(OffloadError::Mismatch);
                }
                if usize::from(p.total_len()) != ip.len() {
                    return Err(OffloadError::Length);
                }
                if p.is_fragment() {
                    return Err(OffloadError::Mismatch);
                }
                (false, p.protocol(), l3 + usize::from(p.header_len()))
            }
            EtherType::Ipv6 => {
                let p = Ipv6Packet::new_checked(ip).map_err(|_| OffloadError::Length)?;
                if p.version() != 6 {
                    return Err(OffloadError::Mismatch);
                }
                if ipv6::HEADER_LEN + usize::from(p.payload_len()) != ip.len() {
                    return Err(OffloadError::Length);
                }
                (true, p.next_header(), l3 + ipv6::HEADER_LEN)
            }
            // A third tag, ARP, anything else: not a TCP/IP super-frame.
            _ => return Err(OffloadError::Mismatch),
        };
        let seg = frame.get(l4..).unwrap_or(&[]);
        let (gso, payload) = match proto {
            IpProtocol::Tcp => {
                let t = TcpPacket::new_checked(seg).map_err(|_| OffloadError::Length)?;
                let gso = if v6 { Gso::Tcp6 } else { Gso::Tcp4 };
                (gso, l4 + usize::from(t.header_len()))
            }
            IpProtocol::Udp => {
                let u = UdpPacket::new_checked(seg).map_err(|_| OffloadError::Length)?;
                if usize::from(u.len()) != seg.len() {
                    return Err(OffloadError::Length);
                }
                let gso = if v6 { Gso::Udp6 } else { Gso::Udp4 };
                (gso, l4 + udp::HEADER_LEN)
            }
            _ => return Err(OffloadError::Mismatch),
        };
        Ok(Layout {
            gso,
            l3,
            l4,
            payload,
            end: frame.len(),
        })
    }

    /// The checksum a super-frame asks for must be its L4 checksum.
    fn check_csum(&self, csum: Option<Csum>) -> Result<(), OffloadError> {
        let offset = match self.gso {
            Gso::Tcp4 | Gso::Tcp6 => tcp::CHECKSUM_OFFSET,
            _ => UDP_CHECKSUM_OFFSET,
        };
        match csum {
            Some(c) if usize::from(c.start) == self.l4 && usize::from(c.offset) == offset => Ok(()),
            _ => Err(OffloadError::Checksum),
        }
    }
}

/// Where the checksum field sits in a UDP header.
const UDP_CHECKSUM_OFFSET: usize = 6;

/// A super-frame's segmentation, worked out once per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmenter {
    /// Where the L3 header starts in the frame.
    pub l3: usize,
    /// Where the payload starts (the end of the L4 header).
    pub payload: usize,
    /// Payload bytes per segment.
    pub mss: usize,
    /// Segments the frame makes.
    pub count: usize,
    /// What the segments are.
    gso: Gso,
    /// Where the L4 header starts in the frame.
    l4: usize,
    /// The frame's length (the end of the last segment's payload).
    end: usize,
}

impl Segmenter {
    /// The segmentation of `frame` (whole, any tags) as `off` says;
    /// `Err` when the metadata does not match the headers: the same
    /// verdicts as [`check_header`] on the GSO type, the segment size and
    /// the headers. `off.csum` is not looked at: every segment's checksum
    /// is computed in full, whatever the super-frame asked (so a frame
    /// whose tags were edited after `check_header` still segments).
    /// A frame whose payload fits one segment (or is empty) makes one.
    pub fn new(frame: &[u8], off: &Offload) -> Result<Segmenter, OffloadError> {
        if !off.gso.is_some() {
            return Err(OffloadError::Mismatch);
        }
        if off.gso_size == 0 {
            return Err(OffloadError::GsoSize);
        }
        let l = Layout::of(frame)?;
        if l.gso != off.gso {
            return Err(OffloadError::Mismatch);
        }
        let mss = usize::from(off.gso_size);
        let count = (l.end - l.payload).div_ceil(mss).max(1);
        Ok(Segmenter {
            l3: l.l3,
            payload: l.payload,
            mss,
            count,
            gso: l.gso,
            l4: l.l4,
            end: l.end,
        })
    }

    /// What the segments are: TCP or UDP, over IPv4 or IPv6.
    pub fn gso(&self) -> Gso {
        self.gso
    }

    /// Where the L4 header starts in the frame.
    pub fn l4(&self) -> usize {
        self.l4
    }

    /// Bytes of payload the frame carries (all segments together).
    pub fn payload_len(&self) -> usize {
        self.end.saturating_sub(self.payload)
    }

    /// Where segment `i`'s payload lies in the frame; `None` out of range.
    /// Checked arithmetic throughout: the public fields can be changed.
    fn payload_range(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.count || self.l3 > self.l4 || self.l4 > self.payload {
            return None;
        }
        let start = self.payload.checked_add(i.checked_mul(self.mss)?)?;
        let end = start.checked_add(self.mss)?.min(self.end);
        (start <= end).then_some((start, end))
    }

    /// Bytes from the L3 header on of segment `i` (0 out of range).
    pub fn segment_l3_len(&self, i: usize) -> usize {
        match self.payload_range(i) {
            Some((start, end)) => (self.payload - self.l3) + (end - start),
            None => 0,
        }
    }

    /// The longest segment, from its L3 header on: what an output buffer
    /// needs past the L2 header.
    pub fn max_l3_len(&self) -> usize {
        self.segment_l3_len(0)
    }

    /// Writes segment `i` from its L3 header on into `out` (the caller
    /// writes the L2 header in front), every checksum complete. Returns
    /// the bytes written; None when `i` is out of range, `out` too small,
    /// or `frame` is not the one this plan was made for (shorter).
    pub fn write_l3(&self, frame: &[u8], i: usize, out: &mut [u8]) -> Option<usize> {
        let (start, end) = self.payload_range(i)?;
        let hdrs = frame.get(self.l3..self.payload)?;
        let data = frame.get(start..end)?;
        let len = hdrs.len() + data.len();
        let out = out.get_mut(..len)?;
        let (out_hdrs, out_data) = out.split_at_mut(hdrs.len());
        out_hdrs.copy_from_slice(hdrs);
        out_data.copy_from_slice(data);

        let l4 = self.l4 - self.l3; // payload_range checked l3 <= l4 <= payload
        let (ip, seg) = out.split_at_mut(l4);
        let seg_len = seg.len();
        let last = i + 1 == self.count;
        // Fits: the super-frame's own lengths did, and a segment is shorter.
        let ip_len = u16::try_from(len).ok()?;
        match self.gso {
            Gso::Tcp4 | Gso::Udp4 => {
                // The header (options included) is exactly `ip`, unless
                // `frame` is not the one the plan was made for.
                if ip.len() < ipv4::HEADER_LEN {
                    return None;
                }
                let mut p = Ipv4Packet::new_unchecked(&mut *ip);
                if usize::from(p.header_len()) != l4 {
                    return None;
                }
                p.set_total_len(ip_len);
                p.set_ident(p.ident().wrapping_add(i as u16));
                p.fill_checksum();
                let (src, dst) = (p.src_addr(), p.dst_addr());
                if self.gso == Gso::Tcp4 {
                    self.fix_tcp(seg, i, last, Addrs::V4(src, dst))?;
                } else {
                    fix_udp(seg, Addrs::V4(src, dst))?;
                }
            }
            Gso::Tcp6 | Gso::Udp6 => {
                if ip.len() < ipv6::HEADER_LEN {
                    return None;
                }
                let mut p = Ipv6Packet::new_unchecked(&mut *ip);
                p.set_payload_len(u16::try_from(seg_len).ok()?);
                let (src, dst) = (p.src_addr(), p.dst_addr());
                if self.gso == Gso::Tcp6 {
                    self.fix_tcp(seg, i, last, Addrs::V6(src, dst))?;
                } else {
                    fix_udp(seg, Addrs::V6(src, dst))?;
                }
            }
            Gso::None => return None,
        }
        Some(len)
    }

    /// Segment `i`'s TCP header: sequence number, flags, checksum.
    fn fix_tcp(&self, seg: &mut [u8], i: usize, last: bool, a: Addrs) -> Option<()> {
        let mut t = TcpPacket::new_checked(seg).ok()?;
        let advance = u32::try_from(i.checked_mul(self.mss)?).ok()?;
        t.set_seq_number(t.seq_number().wrapping_add(advance));
        let mut flags = t.flags();
        if !last {
            flags &= !(tcp::FIN | tcp::PSH);
        }
        if i != 0 {
            flags &= !tcp::CWR;
        }
        t.set_flags(flags);
        let ok = match a {
            Addrs::V4(s, d) => t.fill_checksum_v4(s, d),
            Addrs::V6(s, d) => t.fill_checksum_v6(s, d),
        };
        ok.then_some(())
    }
}

/// A segment's IP addresses, for its pseudo-header.
#[derive(Clone, Copy)]
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// Segment's UDP header: its length and checksum.
fn fix_udp(seg: &mut [u8], a: Addrs) -> Option<()> {
    let len = u16::try_from(seg.len()).ok()?;
    if seg.len() < udp::HEADER_LEN {
        return None;
    }
    let mut u = UdpPacket::new_unchecked(seg);
    u.set_len(len);
    match a {
        Addrs::V4(s, d) => u.fill_checksum_v4(s, d),
        Addrs::V6(s, d) => u.fill_checksum_v6(s, d),
    }
    Some(())
}
