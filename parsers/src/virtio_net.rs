//! The virtio-net header (`struct virtio_net_hdr_v1`, 12 bytes) that a TAP
//! opened with `IFF_VNET_HDR` and `TUNSETVNETHDRSZ(12)` puts in front of
//! every frame, and the offload metadata it carries: whether a checksum is
//! still to be computed (and where), and whether the frame is a GSO
//! super-frame (and its segment size).
//!
//! ```text
//!  0      1         2        4         6           8            10             12
//!  flags  gso_type  hdr_len  gso_size  csum_start  csum_offset  num_buffers
//! ```
//!
//! With UDP-tunnel GSO (Linux 6.17+, `TUN_F_UDP_TUNNEL_GSO` and a header
//! size of 24, `struct virtio_net_hdr_v1_hash_tunnel`), the 12 bytes are
//! followed by the hash report (8 bytes, unused here, zero) and two
//! offsets into the *outer* frame:
//!
//! ```text
//!  12          16           18       20               22               24
//!  hash_value  hash_report  padding  outer_th_offset  inner_nh_offset
//! ```
//!
//! `gso_type` then also has `GSO_UDP_TUNNEL_IPV4` or `_IPV6` (the outer
//! IP version), `csum_start` is the *inner* L4 header and `flags` may have
//! `F_UDP_TUNNEL_CSUM` (the outer UDP checksum is to be made per segment).
//!
//! Fields are little-endian (virtio 1.0; the TAP uses the host's order,
//! little-endian on every machine this runs on). Reading a header never
//! fails: what the values mean for a frame is [`Offload::from_header`]'s
//! business, which refuses metadata that does not fit the frame.

use crate::error::{Error, Result};

/// Length of `struct virtio_net_hdr_v1`.
pub const VNET_HDR_LEN: usize = 12;

/// Length of `struct virtio_net_hdr_v1_hash_tunnel`: the header a TAP
/// with UDP-tunnel GSO reads and writes (`TUNSETVNETHDRSZ(24)`).
pub const VNET_HDR_TNL_LEN: usize = 24;

/// `flags`: the checksum from `csum_start` is still to be computed
/// (the kernel's CHECKSUM_PARTIAL).
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksums were verified (the kernel's CHECKSUM_UNNECESSARY).
pub const F_DATA_VALID: u8 = 2;

/// `flags`: a UDP-tunnel super-frame whose outer UDP checksum is to be
/// computed per segment (`SKB_GSO_UDP_TUNNEL_CSUM`).
pub const F_UDP_TUNNEL_CSUM: u8 = 8;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
/// Legacy UDP fragmentation offload (UFO): never offered, refused.
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation (`UDP_SEGMENT`), IPv4 and IPv6.
pub const GSO_UDP_L4: u8 = 5;
/// Bits of `gso_type`: the super-frame is inside a UDP tunnel over IPv4 /
/// IPv6 (the rest of `gso_type` is the inner one).
pub const GSO_UDP_TUNNEL_IPV4: u8 = 0x20;
pub const GSO_UDP_TUNNEL_IPV6: u8 = 0x40;
pub const GSO_UDP_TUNNEL: u8 = GSO_UDP_TUNNEL_IPV4 | GSO_UDP_TUNNEL_IPV6;
/// Flag bit of `gso_type`: the TCP super-frame has ECN CWR set.
pub const GSO_ECN: u8 = 0x80;

/// The header as raw fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    pub num_buffers: u16,
    /// Tunnel header only (bytes 20..24, 0 otherwise): where the outer
    /// UDP header and the inner IP header start in the frame.
    pub outer_th_offset: u16,
    pub inner_nh_offset: u16,
}

impl VirtioNetHdr {
    /// Reads the first 12 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<VirtioNetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b
            .get(..VNET_HDR_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated)?;
        let [flags, gso_type, h0, h1, s0, s1, c0, c1, o0, o1, n0, n1] = *b;
        Ok(VirtioNetHdr {
            flags,
            gso_type,
            hdr_len: u16::from_le_bytes([h0, h1]),
            gso_size: u16::from_le_bytes([s0, s1]),
            csum_start: u16::from_le_bytes([c0, c1]),
            csum_offset: u16::from_le_bytes([o0, o1]),
            num_buffers: u16::from_le_bytes([n0, n1]),
            outer_th_offset: 0,
            inner_nh_offset: 0,
        })
    }

    /// Reads the 24 bytes of a tunnel header (`b` at least that long):
    /// the 12 of [`VirtioNetHdr::parse`] and the two tunnel offsets.
    pub fn parse_tnl(b: &[u8]) -> Result<VirtioNetHdr> {
        let mut h = VirtioNetHdr::parse(b)?;
        let t: &[u8; 4] = b
            .get(20..VNET_HDR_TNL_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated)?;
        h.outer_th_offset = u16::from_le_bytes([t[0], t[1]]);
        h.inner_nh_offset = u16::from_le_bytes([t[2], t[3]]);
        Ok(h)
    }

    /// The 24 bytes of a tunnel header (no hash report).
    pub fn to_bytes_tnl(&self) -> [u8; VNET_HDR_TNL_LEN] {
        let mut b = [0u8; VNET_HDR_TNL_LEN];
        b[..VNET_HDR_LEN].copy_from_slice(&self.to_bytes());
        b[20..22].copy_from_slice(&self.outer_th_offset.to_le_bytes());
        b[22..24].copy_from_slice(&self.inner_nh_offset.to_le_bytes());
        b
    }

    /// The header's 12 bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let [h0, h1] = self.hdr_len.to_le_bytes();
        let [s0, s1] = self.gso_size.to_le_bytes();
        let [c0, c1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        let [n0, n1] = self.num_buffers.to_le_bytes();
        [
            self.flags,
            self.gso_type,
            h0,
            h1,
            s0,
            s1,
            c0,
            c1,
            o0,
            o1,
            n0,
            n1,
        ]
    }
}

/// What kind of super-frame a frame is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gso {
    /// An ordinary frame.
    #[default]
    None,
    Tcp4,
    Tcp6,
    /// UDP segmentation over IPv4 (`UDP_SEGMENT`).
    Udp4,
    /// UDP segmentation over IPv6.
    Udp6,
}

impl Gso {
    pub fn is_some(self) -> bool {
        self != Gso::None
    }
}

/// Why offload metadata was refused (the frame is dropped as
/// `bad_offload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// A GSO type this switch does not take (UFO, an unknown value).
    GsoType,
    /// A super-frame with a segment size of 0.
    GsoSize,
    /// The GSO type does not match the headers (TCPv4 on an IPv6 packet,
    /// UDP on TCP, a non-IP frame, an IPv4 packet with options we cannot
    /// replicate, IPv6 extension headers).
    Mismatch,
    /// The checksum start or offset lies beyond the frame (or inside the
    /// MAC header), or a super-frame does not ask for its L4 checksum.
    Checksum,
    /// A header length or an IP length field that lies (beyond the frame,
    /// or shorter than the headers).
    Length,
    /// UDP-tunnel metadata that does not fit the frame: both tunnel bits
    /// (IPv4 and IPv6), or outer / inner header offsets that are not where
    /// the headers are.
    Tunnel,
}

impl OffloadError {
    /// In the words of the trace.
    pub fn describe(self) -> &'static str {
        match self {
            OffloadError::GsoType => "GSO type not supported",
            OffloadError::GsoSize => "GSO segment size 0",
            OffloadError::Mismatch => "GSO type does not match the headers",
            OffloadError::Checksum => {
                "checksum start or offset beyond the frame, or not the L4 checksum"
            }
            OffloadError::Length => "a header length lies",
            OffloadError::Tunnel => "UDP-tunnel offsets or type do not match the headers",
        }
    }
}

/// The offload state that travels with a frame through the switch.
/// `Offload::NONE`: a finished frame (checksums done, no segmentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offload {
    pub gso: Gso,
    /// The TCP super-frame has CWR set (`GSO_ECN`).
    pub ecn: bool,
    /// Payload bytes per segment (TCP MSS, or UDP datagram payload).
    pub gso_size: u16,
    /// A checksum still to be computed: the ones' complement sum from
    /// `start` (bytes into the frame) to its end, stored at `start +
    /// offset`. The field holds the pseudo-header sum already (the
    /// kernel's CHECKSUM_PARTIAL).
    pub csum: Option<Csum>,
    /// The sender says the checksums are good (`F_DATA_VALID`).
    pub data_valid: bool,
    /// A super-frame inside a UDP tunnel (VXLAN): `gso`, `gso_size` and
    /// `csum` are the inner frame's, counted from the outer frame's start.
    pub tunnel: Option<Tunnel>,
}

/// Where a UDP-tunnel super-frame's headers are (offsets into the outer
/// frame), as the tunnel header says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// The outer header is IPv6 (else IPv4).
    pub outer_v6: bool,
    /// The outer UDP checksum is to be made per segment.
    pub udp_csum: bool,
    /// The outer UDP header.
    pub outer_l4: u16,
    /// The inner IP header.
    pub inner_l3: u16,
    /// The inner L2+L3+L4 headers end (the payload starts): `hdr_len`.
    pub hdr_end: u16,
}

/// Where a checksum still to be computed lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csum {
    pub start: u16,
    pub offset: u16,
}

impl Offload {
    pub const NONE: Offload = Offload {
        gso: Gso::None,
        ecn: false,
        gso_size: 0,
        csum: None,
        data_valid: false,
        tunnel: None,
    };

    /// Whether anything is left to do for a port without offloads.
    #[inline]
    pub fn is_none(&self) -> bool {
        !self.gso.is_some() && self.csum.is_none()
    }

    /// The metadata of header `h` for `frame` (the Ethernet frame that
    /// followed it), checked against the frame: `Err` for metadata that
    /// does not fit it (the frame is then dropped as `bad_offload`).
    /// For a super-frame, the GSO type must match the headers (walked
    /// through up to two VLAN tags) and the checksum must be the L4 one.
    pub fn from_header(
        h: &VirtioNetHdr,
        frame: &[u8],
    ) -> core::result::Result<Offload, OffloadError> {
        crate::gso::check_header(h, frame)
    }

    /// The same for a port that takes UDP-tunnel super-frames (its header
    /// is 24 bytes, read with [`VirtioNetHdr::parse_tnl`]): a header with
    /// a tunnel bit is checked against the outer and the inner headers.
    pub fn from_tunnel_header(
        h: &VirtioNetHdr,
        frame: &[u8],
    ) -> core::result::Result<Offload, OffloadError> {
        crate::gso::check_tunnel_header(h, frame)
    }

    /// The header that tells a TAP (or any virtio-net peer) about this
    /// frame. `shift`: bytes added (positive) or removed in front of the
    /// checksum start since the metadata was taken (a tag pushed or
    /// popped); `hdr_len`: the frame's L2+L3+L4 header length, a hint the
    /// kernel uses (0 when unknown).
    pub fn to_header(&self, shift: i32, hdr_len: u16) -> VirtioNetHdr {
        let mut h = VirtioNetHdr::default();
        if let Some(c) = self.csum {
            h.flags |= F_NEEDS_CSUM;
            h.csum_start = (i32::from(c.start) + shift).clamp(0, 0xffff) as u16;
            h.csum_offset = c.offset;
        } else if self.data_valid {
            h.flags |= F_DATA_VALID;
        }
        h.gso_type = match self.gso {
            Gso::None => GSO_NONE,
            Gso::Tcp4 => GSO_TCPV4,
            Gso::Tcp6 => GSO_TCPV6,
            Gso::Udp4 | Gso::Udp6 => GSO_UDP_L4,
        };
        if self.ecn && h.gso_type != GSO_NONE {
            h.gso_type |= GSO_ECN;
        }
        if self.gso.is_some() {
            h.gso_size = self.gso_size;
            h.hdr_len = hdr_len;
        }
        if let (Some(t), true) = (self.tunnel, self.gso.is_some()) {
            h.gso_type |= if t.outer_v6 {
                GSO_UDP_TUNNEL_IPV6
            } else {
                GSO_UDP_TUNNEL_IPV4
            };
            if t.udp_csum {
                h.flags |= F_UDP_TUNNEL_CSUM;
            }
            // The kernel's rule: all headers up to the inner L4's end.
            h.hdr_len = t.hdr_end;
            h.outer_th_offset = t.outer_l4;
            h.inner_nh_offset = t.inner_l3;
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let b = [1, 4, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0];
        let h = VirtioNetHdr::parse(&b).unwrap();
        assert_eq!(h.flags, F_NEEDS_CSUM);
        assert_eq!(h.gso_type, GSO_TCPV6);
        assert_eq!(h.hdr_len, 66);
        assert_eq!(h.gso_size, 1448);
        assert_eq!(h.csum_start, 34);
        assert_eq!(h.csum_offset, 16);
        assert_eq!(h.to_bytes(), b);
        assert_eq!(VirtioNetHdr::parse(&b[..11]), Err(Error::Truncated));
    }

    #[test]
    fn to_header_shifts_the_checksum_start() {
        let o = Offload {
            gso: Gso::Tcp4,
            ecn: true,
            gso_size: 1448,
            csum: Some(Csum {
                start: 34,
                offset: 16,
            }),
            data_valid: false,
            tunnel: None,
        };
        let h = o.to_header(4, 70);
        assert_eq!(h.csum_start, 38);
        assert_eq!(h.gso_type, GSO_TCPV4 | GSO_ECN);
        assert_eq!(h.flags, F_NEEDS_CSUM);
        assert_eq!(h.hdr_len, 70);
        assert_eq!(Offload::NONE.to_header(0, 0), VirtioNetHdr::default());
    }

    #[test]
    fn tunnel_header_round_trips() {
        let o = Offload {
            gso: Gso::Tcp4,
            ecn: false,
            gso_size: 1398,
            csum: Some(Csum {
                start: 84,
                offset: 16,
            }),
            data_valid: false,
            tunnel: Some(Tunnel {
                outer_v6: false,
                udp_csum: false,
                outer_l4: 34,
                inner_l3: 64,
                hdr_end: 116,
            }),
        };
        let h = o.to_header(0, 0);
        assert_eq!(h.gso_type, GSO_TCPV4 | GSO_UDP_TUNNEL_IPV4);
        assert_eq!(h.flags, F_NEEDS_CSUM);
        assert_eq!(h.hdr_len, 116);
        let b = h.to_bytes_tnl();
        assert_eq!(&b[12..20], &[0; 8]);
        assert_eq!(&b[20..24], &[34, 0, 64, 0]);
        assert_eq!(VirtioNetHdr::parse_tnl(&b), Ok(h));
        assert_eq!(VirtioNetHdr::parse_tnl(&b[..23]), Err(Error::Truncated));
        // The plain 12 bytes carry no tunnel offsets.
        assert_eq!(VirtioNetHdr::parse(&b).map(|h| h.inner_nh_offset), Ok(0));
    }
}
