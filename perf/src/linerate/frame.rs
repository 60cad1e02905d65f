//! The benchmark's frames: a UDP/IPv4 frame of a given size, and the send
//! time written into it for latency. Plain bytes, no I/O: apart from
//! [`super::packet`], which hands them to the kernel.

/// Where the timestamp sits in a benchmark frame (after Ethernet, IPv4, UDP).
pub const STAMP_AT: usize = 14 + 20 + 8;
/// Marks a timestamped frame (the two bytes before the stamp).
pub const STAMP_MAGIC: [u8; 2] = *b"SB";

/// A UDP/IPv4 frame of `size` bytes on the wire (FCS included, so the
/// buffer is `size - 4` long) from `src` to `dst`. The addresses are not
/// the sink's: the sink's kernel drops the frames without answering.
/// (The destination MAC is not the sink's either: see `lab::SINK_STATION`.)
pub fn udp_frame(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let len = size.max(64) - 4;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]); // RFC 2544 benchmarking range
    ip[16..20].copy_from_slice(&[198, 19, 0, 2]);
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&49184u16.to_be_bytes());
    udp[2..4].copy_from_slice(&7u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// Writes the send time into a frame made by [`udp_frame`].
#[inline]
pub fn stamp(frame: &mut [u8], ns: u64) {
    frame[STAMP_AT - 2..STAMP_AT].copy_from_slice(&STAMP_MAGIC);
    frame[STAMP_AT..STAMP_AT + 8].copy_from_slice(&ns.to_be_bytes());
}

/// The send time of a stamped frame, if it is one.
#[inline]
pub fn read_stamp(frame: &[u8]) -> Option<u64> {
    let m = frame.get(STAMP_AT - 2..STAMP_AT)?;
    if m != STAMP_MAGIC {
        return None;
    }
    let b = frame.get(STAMP_AT..STAMP_AT + 8)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_and_stamp() {
        for size in [64, 512, 1518] {
            let mut f = udp_frame(size, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
            assert_eq!(f.len(), size - 4);
            assert_eq!(read_stamp(&f), None);
            stamp(&mut f, 123_456_789);
            assert_eq!(read_stamp(&f), Some(123_456_789));
        }
    }
}
