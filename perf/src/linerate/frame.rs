//! The benchmark's frames: a UDP/IPv4 frame of a given size, built with the
//! parsers' setters, and the send time written into it for latency. No I/O:
//! [`super::packet`] hands the frames to the kernel.

use shunt_parsers::{ethernet, ipv4, udp};
use shunt_parsers::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, UdpPacket};
use std::net::Ipv4Addr;

/// Where the timestamp sits in a benchmark frame: the UDP payload.
pub const STAMP_AT: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// Marks a timestamped frame (the two bytes before the stamp: the UDP
/// checksum field, which nothing on the way to the sink checks).
pub const STAMP_MAGIC: [u8; 2] = *b"SB";

/// A UDP/IPv4 frame of `size` bytes on the wire (FCS included, so the
/// buffer is `size - 4` long) from `src` to `dst`. The addresses are not
/// the sink's: the sink's kernel drops the frames without answering.
/// (The destination MAC is not the sink's either: see `lab::SINK_STATION`.)
pub fn udp_frame(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    udp_flow_frame(size, dst, src, 0)
}

/// The same as flow `flow` of several: UDP source port 49184 + `flow`
/// (what a multi-queue TAP's hash spreads on).
pub fn udp_flow_frame(size: usize, dst: [u8; 6], src: [u8; 6], flow: u16) -> Vec<u8> {
    let len = size.max(64) - 4;
    let mut f = vec![0u8; len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(MacAddr(dst));
    eth.set_src_addr(MacAddr(src));
    eth.set_ethertype(EtherType::Ipv4);
    let ip_len = (len - ethernet::HEADER_LEN) as u16;
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN as u8);
    ip.set_total_len(ip_len);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::Udp);
    ip.set_src_addr(Ipv4Addr::new(198, 18, 0, 1)); // RFC 2544 benchmarking range
    ip.set_dst_addr(Ipv4Addr::new(198, 19, 0, 2));
    ip.fill_checksum();
    // No UDP checksum (0): the sink counts frames, it does not read them.
    let mut u = UdpPacket::new_unchecked(ip.payload_mut());
    u.set_src_port(49184u16.wrapping_add(flow));
    u.set_dst_port(7);
    u.set_len(ip_len - ipv4::HEADER_LEN as u16);
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

    /// The 64-byte frame as the bench has always sent it (the bytes of the
    /// builder that wrote offsets by hand, before the parsers' setters).
    #[test]
    fn frame_64_bytes() {
        let want: [u8; 60] = [
            0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0xee, 0x96, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x13, 0x00, 0x02, 0xc0, 0x20, 0x00, 0x07, 0x00, 0x1a, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00,
        ];
        let f = udp_frame(64, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
        assert_eq!(f[..], want[..]);
        let ip = Ipv4Packet::new_checked(&f[ethernet::HEADER_LEN..]).expect("an IPv4 packet");
        assert!(ip.verify_checksum());
    }

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
