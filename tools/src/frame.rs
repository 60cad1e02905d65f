//! Frame crafting: an Ethernet frame builder (with 802.1Q / 802.1ad tags), a
//! test-marker payload so that captures can be matched to what a test sent,
//! and a lenient summary parser for printing captured frames.
//!
//! Plain byte building: nothing here can panic on any input.

use std::fmt;

/// The smallest Ethernet frame on the wire without its FCS.
pub const MIN_FRAME_LEN: usize = 60;
/// Ethernet header length (destination, source, EtherType).
pub const ETH_HEADER_LEN: usize = shunt_parsers::ethernet::HEADER_LEN;
/// IEEE 802 "local experimental EtherType 1": the kernel's stacks ignore it,
/// so frames of this type cause no replies inside the namespaces.
pub const ETHERTYPE_EXPERIMENTAL: u16 = 0x88b5;
/// 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad service tag.
pub const TPID_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ tag, still seen in the wild.
pub const TPID_QINQ_OLD: u16 = 0x9100;

/// Is this EtherType the TPID of a VLAN tag?
pub fn is_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ_OLD)
}

/// The MAC address type of every shunt crate.
pub use shunt_parsers::MacAddr;

/// A locally administered unicast address `02:00:5e:TT:AA:BB` made of a
/// test number and an index: handy for unique, readable test MACs.
pub fn test_mac(test: u8, a: u8, b: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x5e, test, a, b])
}

/// Error parsing a tag specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// One VLAN tag: TPID, priority (PCP), drop eligible (DEI) and VLAN id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
}

impl VlanTag {
    /// An 802.1Q (customer) tag.
    pub fn dot1q(vid: u16, pcp: u8) -> VlanTag {
        VlanTag {
            tpid: TPID_8021Q,
            pcp,
            dei: false,
            vid,
        }
    }

    /// An 802.1ad (service) tag.
    pub fn dot1ad(vid: u16, pcp: u8) -> VlanTag {
        VlanTag {
            tpid: TPID_8021AD,
            pcp,
            dei: false,
            vid,
        }
    }

    /// The Tag Control Information field: PCP (3 bits), DEI (1), VID (12).
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    fn from_parts(tpid: u16, tci: u16) -> VlanTag {
        VlanTag {
            tpid,
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }
}

impl fmt::Display for VlanTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.tpid {
            TPID_8021Q => "802.1Q".to_string(),
            TPID_8021AD => "802.1ad".to_string(),
            other => format!("{other:#06x}"),
        };
        write!(f, "{kind} vid {} pcp {}", self.vid, self.pcp)?;
        if self.dei {
            f.write_str(" dei")?;
        }
        Ok(())
    }
}

/// `VID[:PCP]`, as the command line takes it (VID 0..=4095, PCP 0..=7).
pub fn parse_vid_pcp(s: &str) -> Result<(u16, u8), ParseError> {
    let (vid, pcp) = match s.split_once(':') {
        Some((v, p)) => (v, Some(p)),
        None => (s, None),
    };
    let vid: u16 = vid
        .parse()
        .ok()
        .filter(|v| *v <= 4095)
        .ok_or_else(|| ParseError(format!("bad VLAN id in {s:?} (0..=4095)")))?;
    let pcp: u8 = match pcp {
        None => 0,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p <= 7)
            .ok_or_else(|| ParseError(format!("bad priority in {s:?} (0..=7)")))?,
    };
    Ok((vid, pcp))
}

/// Builds an Ethernet frame: destination, source, tags (outermost first),
/// EtherType, payload, then zero padding up to 60 bytes (unless disabled).
#[derive(Clone, Debug)]
pub struct FrameBuilder {
    dst: MacAddr,
    src: MacAddr,
    tags: Vec<VlanTag>,
    ethertype: u16,
    payload: Vec<u8>,
    pad_to: usize,
}

impl FrameBuilder {
    pub fn new(dst: MacAddr, src: MacAddr) -> FrameBuilder {
        FrameBuilder {
            dst,
            src,
            tags: Vec::new(),
            ethertype: ETHERTYPE_EXPERIMENTAL,
            payload: Vec::new(),
            pad_to: MIN_FRAME_LEN,
        }
    }

    /// Add a tag inside those already added (the first call is the outermost).
    pub fn tag(mut self, tag: VlanTag) -> Self {
        self.tags.push(tag);
        self
    }

    /// Add an 802.1Q tag (inside those already added).
    pub fn vlan(self, vid: u16, pcp: u8) -> Self {
        self.tag(VlanTag::dot1q(vid, pcp))
    }

    pub fn ethertype(mut self, ethertype: u16) -> Self {
        self.ethertype = ethertype;
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// Put a test marker at the start of the payload.
    pub fn marker(self, marker: Marker) -> Self {
        self.payload(&marker.to_bytes())
    }

    /// Pad (with zeros) to at least `len` bytes; `size(n)` also makes the
    /// frame exactly `n` bytes when the headers and payload are shorter.
    pub fn pad_to(mut self, len: usize) -> Self {
        self.pad_to = len;
        self
    }

    /// Do not pad (frames shorter than 60 bytes are legal from AF_PACKET).
    pub fn no_pad(self) -> Self {
        self.pad_to(0)
    }

    /// Header length: 14 plus 4 per tag.
    pub fn header_len(&self) -> usize {
        ETH_HEADER_LEN + 4 * self.tags.len()
    }

    pub fn build(&self) -> Vec<u8> {
        let len = (self.header_len() + self.payload.len()).max(self.pad_to);
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        for tag in &self.tags {
            out.extend_from_slice(&tag.tpid.to_be_bytes());
            out.extend_from_slice(&tag.tci().to_be_bytes());
        }
        out.extend_from_slice(&self.ethertype.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out.resize(len, 0);
        out
    }
}

/// The payload that tests put in their frames: a magic, the test's id and a
/// sequence number. Captures match on it so that unrelated frames (ARP, IPv6
/// noise, other tests' frames) never disturb the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Marker {
    pub test_id: u32,
    pub seq: u32,
}

impl Marker {
    pub const MAGIC: [u8; 8] = *b"SHUNTmrk";
    pub const LEN: usize = 16;

    pub fn new(test_id: u32, seq: u32) -> Marker {
        Marker { test_id, seq }
    }

    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&Self::MAGIC);
        out[8..12].copy_from_slice(&self.test_id.to_be_bytes());
        out[12..16].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Read a marker at the start of `payload`.
    pub fn from_payload(payload: &[u8]) -> Option<Marker> {
        if payload.get(..8)? != Self::MAGIC {
            return None;
        }
        let id: [u8; 4] = payload.get(8..12)?.try_into().ok()?;
        let seq: [u8; 4] = payload.get(12..16)?.try_into().ok()?;
        Some(Marker {
            test_id: u32::from_be_bytes(id),
            seq: u32::from_be_bytes(seq),
        })
    }

    /// Find the marker of a whole frame (after its tags, if any).
    pub fn in_frame(frame: &[u8]) -> Option<Marker> {
        let summary = FrameSummary::parse(frame)?;
        Self::from_payload(frame.get(summary.header_len..)?)
    }
}

/// What a captured frame looks like, for printing and matching. Lenient:
/// anything of at least 14 bytes parses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSummary {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// Outermost first.
    pub tags: Vec<VlanTag>,
    /// The EtherType after the tags.
    pub ethertype: u16,
    pub header_len: usize,
    pub len: usize,
}

impl FrameSummary {
    pub fn parse(frame: &[u8]) -> Option<FrameSummary> {
        let dst = shunt_parsers::ethernet::dst_addr(frame)?;
        let src = shunt_parsers::ethernet::src_addr(frame)?;
        let mut offset = 12;
        let mut tags = Vec::new();
        loop {
            let et_bytes: [u8; 2] = frame.get(offset..offset + 2)?.try_into().ok()?;
            let ethertype = u16::from_be_bytes(et_bytes);
            // Stop at 8 tags: no real frame has more, and a buffer full of
            // 0x8100 must not loop for long.
            if is_tpid(ethertype) && tags.len() < 8 {
                match frame.get(offset + 2..offset + 4) {
                    Some(tci) => {
                        let tci = u16::from_be_bytes([tci[0], tci[1]]);
                        tags.push(VlanTag::from_parts(ethertype, tci));
                        offset += 4;
                        continue;
                    }
                    None => {
                        // A TPID with no room for its TCI: report as-is.
                        return Some(FrameSummary {
                            dst,
                            src,
                            tags,
                            ethertype,
                            header_len: frame.len(),
                            len: frame.len(),
                        });
                    }
                }
            }
            return Some(FrameSummary {
                dst,
                src,
                tags,
                ethertype,
                header_len: offset + 2,
                len: frame.len(),
            });
        }
    }

    pub fn marker(&self, frame: &[u8]) -> Option<Marker> {
        Marker::from_payload(frame.get(self.header_len..)?)
    }
}

impl fmt::Display for FrameSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} > {}", self.src, self.dst)?;
        for tag in &self.tags {
            write!(f, " [{tag}]")?;
        }
        write!(f, " type {:#06x} len {}", self.ethertype, self.len)
    }
}

/// A small deterministic generator (xorshift64*) for "random bytes" tests:
/// reproducible from its seed, no dependency.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = (hi.saturating_sub(lo) as u64).saturating_add(1);
        lo + (self.next_u64() % span) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
    const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);

    #[test]
    fn untagged_frame_is_padded_to_60() {
        let f = FrameBuilder::new(B, A).payload(&[1, 2, 3]).build();
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &B.0);
        assert_eq!(&f[6..12], &A.0);
        assert_eq!(&f[12..14], &[0x88, 0xb5]);
        assert_eq!(&f[14..17], &[1, 2, 3]);
        assert!(f[17..].iter().all(|b| *b == 0));
    }

    #[test]
    fn no_pad_keeps_exact_length() {
        let f = FrameBuilder::new(B, A).ethertype(0x0800).no_pad().build();
        assert_eq!(f.len(), 14);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
    }

    #[test]
    fn pad_to_makes_exact_size() {
        let f = FrameBuilder::new(B, A).pad_to(1600).build();
        assert_eq!(f.len(), 1600);
    }

    #[test]
    fn single_tag_bytes() {
        // vid 100 pcp 5: TCI = 101 0 000001100100 = 0xa064
        let f = FrameBuilder::new(B, A)
            .vlan(100, 5)
            .ethertype(0x0806)
            .build();
        assert_eq!(&f[12..18], &[0x81, 0x00, 0xa0, 0x64, 0x08, 0x06]);
        assert_eq!(f.len(), 60);
    }

    #[test]
    fn double_tag_outer_first() {
        let f = FrameBuilder::new(B, A)
            .tag(VlanTag::dot1ad(300, 0))
            .tag(VlanTag::dot1q(10, 7))
            .build();
        assert_eq!(&f[12..16], &[0x88, 0xa8, 0x01, 0x2c]);
        assert_eq!(&f[16..20], &[0x81, 0x00, 0xe0, 0x0a]);
        assert_eq!(&f[20..22], &[0x88, 0xb5]);
        let s = FrameSummary::parse(&f).expect("parses");
        assert_eq!(s.tags.len(), 2);
        assert_eq!(s.tags[0].vid, 300);
        assert_eq!(s.tags[0].tpid, TPID_8021AD);
        assert_eq!(s.tags[1].vid, 10);
        assert_eq!(s.tags[1].pcp, 7);
        assert_eq!(s.ethertype, ETHERTYPE_EXPERIMENTAL);
        assert_eq!(s.header_len, 22);
    }

    #[test]
    fn marker_round_trip_through_tags() {
        let m = Marker::new(42, 7);
        let f = FrameBuilder::new(B, A).vlan(5, 0).marker(m).build();
        assert_eq!(Marker::in_frame(&f), Some(m));
        let untagged = FrameBuilder::new(B, A).marker(m).build();
        assert_eq!(Marker::in_frame(&untagged), Some(m));
        let other = FrameBuilder::new(B, A).payload(b"hello").build();
        assert_eq!(Marker::in_frame(&other), None);
    }

    #[test]
    fn summary_never_panics_on_short_or_odd_input() {
        for len in 0..40 {
            let buf = vec![0x81u8; len];
            let _ = FrameSummary::parse(&buf);
            let _ = Marker::in_frame(&buf);
        }
        assert!(FrameSummary::parse(&[0u8; 13]).is_none());
        let all_tags = vec![0x81u8; 200];
        let s = FrameSummary::parse(&all_tags).expect("parses");
        assert!(s.tags.len() <= 8);
        let mut rng = XorShift::new(7);
        for _ in 0..1000 {
            let mut buf = vec![0u8; rng.range(0, 100)];
            rng.fill(&mut buf);
            let _ = FrameSummary::parse(&buf);
            let _ = Marker::in_frame(&buf);
        }
    }

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:00:5E:0a:ff:01".parse().expect("valid");
        assert_eq!(m.0, [2, 0, 0x5e, 0x0a, 0xff, 1]);
        assert_eq!(m.to_string(), "02:00:5e:0a:ff:01");
        assert!("02:00:5e:0a:ff".parse::<MacAddr>().is_err());
        assert!("02:00:5e:0a:ff:01:02".parse::<MacAddr>().is_err());
        assert!("02:00:5e:0a:ff:zz".parse::<MacAddr>().is_err());
        assert!("02:00:5e:0a:ff:123".parse::<MacAddr>().is_err());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!A.is_multicast());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_link_local());
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x10]).is_link_local());
        assert_eq!(test_mac(7, 1, 2).to_string(), "02:00:5e:07:01:02");
        assert!(test_mac(7, 1, 2).is_unicast() && test_mac(7, 1, 2).is_local());
    }

    #[test]
    fn vid_pcp_parsing() {
        assert_eq!(parse_vid_pcp("10"), Ok((10, 0)));
        assert_eq!(parse_vid_pcp("10:3"), Ok((10, 3)));
        assert!(parse_vid_pcp("4096").is_err());
        assert!(parse_vid_pcp("10:8").is_err());
        assert!(parse_vid_pcp("x").is_err());
    }

    #[test]
    fn xorshift_range_bounds() {
        let mut r = XorShift::new(1);
        for _ in 0..1000 {
            let v = r.range(14, 20);
            assert!((14..=20).contains(&v));
        }
    }
}
