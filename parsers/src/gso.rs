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
//! Nothing here allocates; segments are written into buffers the caller
//! gives (the switch's pool). No input makes anything here panic or read
//! beyond the frame.
//!
//! STUB: the API the switch codes against; the implementation lands with
//! its tests (issue 12).

use crate::virtio_net::{Csum, Gso, Offload, OffloadError, VirtioNetHdr};
use crate::virtio_net::{
    F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4,
};

/// Checks header `h` against `frame` (see [`Offload::from_header`]).
pub fn check_header(h: &VirtioNetHdr, frame: &[u8]) -> Result<Offload, OffloadError> {
    let gso = match h.gso_type & !GSO_ECN {
        GSO_NONE => Gso::None,
        GSO_TCPV4 => Gso::Tcp4,
        GSO_TCPV6 => Gso::Tcp6,
        GSO_UDP_L4 => Gso::Udp4,
        _ => return Err(OffloadError::GsoType),
    };
    if gso.is_some() && h.gso_size == 0 {
        return Err(OffloadError::GsoSize);
    }
    let csum = if h.flags & F_NEEDS_CSUM != 0 {
        let end = usize::from(h.csum_start) + usize::from(h.csum_offset) + 2;
        if end > frame.len() {
            return Err(OffloadError::Checksum);
        }
        Some(Csum {
            start: h.csum_start,
            offset: h.csum_offset,
        })
    } else {
        None
    };
    Ok(Offload {
        gso,
        ecn: h.gso_type & GSO_ECN != 0,
        gso_size: h.gso_size,
        csum,
        data_valid: h.flags & F_DATA_VALID != 0,
    })
}

/// Completes the checksum `c` of `frame` in place.
pub fn complete_csum(frame: &mut [u8], c: Csum) -> Result<(), OffloadError> {
    let _ = (frame, c);
    Err(OffloadError::Checksum)
}

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
}

impl Segmenter {
    /// The segmentation of `frame` (whole, any tags) as `off` says;
    /// `Err` when the metadata does not match the headers.
    pub fn new(frame: &[u8], off: &Offload) -> Result<Segmenter, OffloadError> {
        let _ = (frame, off);
        Err(OffloadError::Mismatch)
    }

    /// Bytes from the L3 header on of segment `i`.
    pub fn segment_l3_len(&self, i: usize) -> usize {
        let _ = i;
        0
    }

    /// Writes segment `i` from its L3 header on into `out` (the caller
    /// writes the L2 header in front), every checksum complete. Returns
    /// the bytes written; None when `i` is out of range or `out` too small.
    pub fn write_l3(&self, frame: &[u8], i: usize, out: &mut [u8]) -> Option<usize> {
        let _ = (frame, i, out);
        None
    }
}
