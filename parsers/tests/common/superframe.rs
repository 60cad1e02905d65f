//! Building GSO super-frames for tests, and checking checksums with a sum
//! written here from RFC 1071 (not the crate's), so that the code under
//! test never checks itself.

use shunt_parsers::virtio_net::{VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};

/// xorshift64*: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// RFC 1071 §1: the 16-bit ones' complement sum of the concatenation of
/// `parts` (big-endian words, an odd last byte padded with zero), folded.
pub fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut all: Vec<u8> = Vec::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut acc: u32 = 0;
    for w in all.chunks(2) {
        acc += (u32::from(w[0]) << 8) | u32::from(w[1]);
        // Fold as we go (end-around carry), as RFC 1071 §4.1 does.
        if acc > 0xffff {
            acc = (acc & 0xffff) + 1;
        }
    }
    acc as u16
}

/// The pseudo-header bytes (RFC 768 / RFC 9293 §3.1, RFC 8200 §8.1).
pub fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut ph = Vec::new();
    ph.extend_from_slice(src);
    ph.extend_from_slice(dst);
    if src.len() == 4 {
        ph.extend_from_slice(&[0, proto]);
        ph.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        ph.extend_from_slice(&(len as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, proto]);
    }
    ph
}

/// What a test super-frame is made of.
#[derive(Debug, Clone)]
pub struct Spec {
    pub v6: bool,
    pub udp: bool,
    /// 0, 1 (802.1Q) or 2 (802.1ad + 802.1Q) VLAN tags.
    pub tags: usize,
    /// IPv4 option bytes (a multiple of 4, up to 40).
    pub ip_opts: usize,
    /// TCP option bytes (a multiple of 4, up to 40).
    pub tcp_opts: usize,
    pub payload: Vec<u8>,
    pub mss: u16,
    pub seq: u32,
    pub ident: u16,
    pub tcp_flags: u8,
}

impl Spec {
    pub fn new(v6: bool, udp: bool, payload_len: usize, mss: u16) -> Spec {
        Spec {
            v6,
            udp,
            tags: 0,
            ip_opts: 0,
            tcp_opts: 0,
            payload: (0..payload_len).map(|i| (i * 7 + 3) as u8).collect(),
            mss,
            seq: 1000,
            ident: 0x1234,
            tcp_flags: 0x18, // PSH | ACK
        }
    }
}

pub const SRC4: [u8; 4] = [10, 0, 0, 1];
pub const DST4: [u8; 4] = [10, 0, 0, 2];
pub const SRC6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const DST6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Offsets in a built frame.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    pub l3: usize,
    pub l4: usize,
    pub payload: usize,
}

/// A super-frame as a Linux sender hands it over: lengths of the whole
/// frame, the L4 checksum field holding the pseudo-header sum (the
/// kernel's CHECKSUM_PARTIAL), and its virtio-net header.
pub fn build(s: &Spec) -> (Vec<u8>, VirtioNetHdr, Built) {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if s.tags == 2 {
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64]);
    }
    if s.tags >= 1 {
        f.extend_from_slice(&[0x81, 0x00, 0x20, 0x0a]);
    }
    f.extend_from_slice(if s.v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let l3 = f.len();
    let l4_hdr = if s.udp { 8 } else { 20 + s.tcp_opts };
    let l4_len = l4_hdr + s.payload.len();
    let proto = if s.udp { 17 } else { 6 };
    if s.v6 {
        f.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&SRC6);
        f.extend_from_slice(&DST6);
    } else {
        let ihl = 20 + s.ip_opts;
        f.push(0x40 | (ihl / 4) as u8);
        f.push(0x02); // ECT(0)
        f.extend_from_slice(&((ihl + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&s.ident.to_be_bytes());
        f.extend_from_slice(&[0x40, 0x00, 64, proto, 0, 0]); // DF
        f.extend_from_slice(&SRC4);
        f.extend_from_slice(&DST4);
        // Options: NOPs, then an end-of-list-free pattern of record-route
        // style bytes; the segmenter must copy them as they are.
        for k in 0..s.ip_opts {
            f.push(if k % 4 == 3 { 0 } else { 1 });
        }
        let sum = !ones_sum(&[&f[l3..l3 + ihl]]);
        f[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
    }
    let l4 = f.len();
    if s.udp {
        f.extend_from_slice(&[0x9c, 0x41, 0x13, 0x89]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    } else {
        f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        f.extend_from_slice(&s.seq.to_be_bytes());
        f.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
        f.push((((20 + s.tcp_opts) / 4) as u8) << 4);
        f.push(s.tcp_flags);
        f.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0]);
        for k in 0..s.tcp_opts {
            // NOPs and a timestamp-looking tail.
            f.push(if k < 2 { 1 } else { (k * 13) as u8 });
        }
    }
    let payload = f.len();
    f.extend_from_slice(&s.payload);
    let (src, dst): (&[u8], &[u8]) = if s.v6 { (&SRC6, &DST6) } else { (&SRC4, &DST4) };
    let partial = ones_sum(&[&pseudo(src, dst, proto, l4_len)]);
    let at = l4 + if s.udp { 6 } else { 16 };
    f[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    let h = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: match (s.v6, s.udp) {
            (_, true) => GSO_UDP_L4,
            (false, false) => GSO_TCPV4,
            (true, false) => GSO_TCPV6,
        },
        hdr_len: payload as u16,
        gso_size: s.mss,
        csum_start: l4 as u16,
        csum_offset: if s.udp { 6 } else { 16 },
        num_buffers: 0,
        ..VirtioNetHdr::default()
    };
    (f, h, Built { l3, l4, payload })
}

/// The L4 checksum of `seg` (from the L3 header on) verifies: the sum over
/// the pseudo-header and the L4 bytes is 0xffff.
pub fn l4_verifies(seg: &[u8], v6: bool, ip_hdr: usize, proto: u8) -> bool {
    let l4 = &seg[ip_hdr..];
    let ph = if v6 {
        pseudo(&seg[8..24], &seg[24..40], proto, l4.len())
    } else {
        pseudo(&seg[12..16], &seg[16..20], proto, l4.len())
    };
    ones_sum(&[&ph, l4]) == 0xffff
}
