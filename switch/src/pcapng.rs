//! pcapng written by hand into a byte buffer that is kept and reused: the
//! blocks `shunt capture` needs (a section header, an interface
//! description per port, an enhanced packet block per packet with its
//! direction flag and comment), in this machine's byte order (readers
//! take it from the section's byte-order magic). A capture's writer runs
//! at SCHED_IDLE on the switch (capture.rs), so the bytes per packet it
//! costs are the packets that reach the file under load: this writes a
//! packet with no allocation (pcap-file's block types take a Vec of
//! options each). Layout: pcapng, draft-ietf-opsawg-pcapng, section 4.

/// Block types.
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// LINKTYPE_ETHERNET.
const ETHERNET: u16 = 1;
/// Option codes.
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
/// `if_tsresol`'s value: 10^-9 s, the EPB timestamps are nanoseconds.
const NANOSECONDS: u8 = 9;
const EPB_FLAGS: u16 = 2;
/// epb_flags bits 0-1: the direction.
pub const INBOUND: u32 = 0b01;
pub const OUTBOUND: u32 = 0b10;

/// A pcapng stream being built in `buf`: interfaces are added as packets
/// name them (their ids in order of first use).
pub struct Pcapng {
    pub buf: Vec<u8>,
    names: Vec<String>,
    snaplen: u32,
}

fn put32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn put16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// The longest prefix of `s` that an option's 16-bit length holds, cut at
/// a character boundary (the value is UTF-8).
fn fit(s: &str) -> &[u8] {
    let mut n = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s.as_bytes()[..n]
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    put16(buf, code);
    put16(buf, value.len() as u16);
    buf.extend_from_slice(value);
    pad4(buf);
}

/// Starts a block of `kind` at the end of `buf`: its offset, for [`end`].
fn begin(buf: &mut Vec<u8>, kind: u32) -> usize {
    let at = buf.len();
    put32(buf, kind);
    put32(buf, 0); // the total length, known at the end
    at
}

/// Ends the block begun at `at`: its total length at both ends.
fn end(buf: &mut Vec<u8>, at: usize) {
    let total = (buf.len() - at + 4) as u32;
    put32(buf, total);
    buf[at + 4..at + 8].copy_from_slice(&total.to_ne_bytes());
}

impl Pcapng {
    /// A stream in `buf` (emptied; its capacity kept), starting with its
    /// section header; packets are cut to `snaplen`.
    pub fn new(mut buf: Vec<u8>, snaplen: usize) -> Pcapng {
        buf.clear();
        let at = begin(&mut buf, SHB);
        put32(&mut buf, BYTE_ORDER_MAGIC);
        put16(&mut buf, 1); // version 1.0
        put16(&mut buf, 0);
        buf.extend_from_slice(&(-1i64).to_ne_bytes()); // section length: not given
        end(&mut buf, at);
        Pcapng {
            buf,
            names: Vec::new(),
            snaplen: snaplen.min(u32::MAX as usize) as u32,
        }
    }

    /// The interface id of `name`, its description block written if new:
    /// link type Ethernet, nanosecond timestamps.
    pub fn interface(&mut self, name: &str) -> u32 {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i as u32;
        }
        let buf = &mut self.buf;
        let at = begin(buf, IDB);
        put16(buf, ETHERNET);
        put16(buf, 0);
        put32(buf, self.snaplen);
        option(buf, IF_NAME, fit(name));
        option(buf, IF_TSRESOL, &[NANOSECONDS]);
        option(buf, OPT_END, &[]);
        end(buf, at);
        self.names.push(name.to_string());
        self.names.len() as u32 - 1
    }

    /// One packet on interface `id` (from [`Pcapng::interface`]): its
    /// first bytes `data`, its length on the wire `orig_len`, which way
    /// (`INBOUND`/`OUTBOUND`) and the switch's words about it.
    pub fn packet(
        &mut self,
        id: u32,
        ts_ns: u64,
        flags: u32,
        orig_len: u32,
        data: &[u8],
        comment: &str,
    ) {
        let data = &data[..data.len().min(self.snaplen as usize)];
        let buf = &mut self.buf;
        let at = begin(buf, EPB);
        put32(buf, id);
        put32(buf, (ts_ns >> 32) as u32);
        put32(buf, ts_ns as u32);
        put32(buf, data.len() as u32);
        put32(buf, orig_len.max(data.len() as u32));
        buf.extend_from_slice(data);
        pad4(buf);
        option(buf, EPB_FLAGS, &flags.to_ne_bytes());
        option(buf, OPT_COMMENT, fit(comment));
        option(buf, OPT_END, &[]);
        end(buf, at);
    }

    /// The interfaces named so far, in id order.
    pub fn interfaces(&self) -> &[String] {
        &self.names
    }

    /// The buffer back, for the next stream.
    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use pcap_file::DataLink;

    /// Every block of `bytes` after the section header, read by pcap-file.
    fn blocks(bytes: &[u8]) -> Vec<Block<'static>> {
        let mut r = PcapNgReader::new(bytes).expect("a section header");
        let mut v = Vec::new();
        while let Some(b) = r.next_block() {
            v.push(b.expect("a whole block").into_owned());
        }
        v
    }

    /// What is written reads back: interfaces by name at nanoseconds, the
    /// direction flag, the comment, both lengths, data cut to the snap
    /// length, odd lengths padded.
    #[test]
    fn reads_back_with_pcap_file() {
        let mut o = Pcapng::new(vec![9; 100], 256);
        let h1 = o.interface("h1.lan");
        o.packet(
            h1,
            1_700_000_000_123_456_789,
            INBOUND,
            98,
            &[1; 61],
            "in words",
        );
        let h2 = o.interface("h2.lan");
        assert_eq!((h1, h2, o.interface("h1.lan")), (0, 1, 0));
        o.packet(
            h2,
            1_700_000_000_123_456_999,
            OUTBOUND,
            1000,
            &[2; 300],
            "out é",
        );
        assert_eq!(o.interfaces(), ["h1.lan", "h2.lan"]);
        let bytes = o.into_buf();
        assert_eq!(bytes.len() % 4, 0);
        let mut names = Vec::new();
        let mut packets = Vec::new();
        for b in blocks(&bytes) {
            match b {
                Block::InterfaceDescription(i) => {
                    assert_eq!(i.linktype, DataLink::ETHERNET);
                    assert_eq!(i.snaplen, 256);
                    assert!(i
                        .options
                        .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                    for opt in &i.options {
                        if let InterfaceDescriptionOption::IfName(n) = opt {
                            names.push(n.to_string());
                        }
                    }
                }
                Block::EnhancedPacket(e) => packets.push(e),
                Block::SectionHeader(_) => {}
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!(names, ["h1.lan", "h2.lan"]);
        assert_eq!(packets.len(), 2);
        let (a, b) = (&packets[0], &packets[1]);
        assert_eq!((a.interface_id, b.interface_id), (0, 1));
        assert_eq!(a.timestamp.as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(b.timestamp.as_nanos(), 1_700_000_000_123_456_999);
        assert_eq!((a.original_len, a.data.len()), (98, 61));
        assert_eq!(&a.data[..], &[1; 61][..]);
        assert_eq!((b.original_len, b.data.len()), (1000, 256));
        assert!(a.options.contains(&EnhancedPacketOption::Flags(INBOUND)));
        assert!(b.options.contains(&EnhancedPacketOption::Flags(OUTBOUND)));
        assert!(a
            .options
            .contains(&EnhancedPacketOption::Comment("in words".into())));
        assert!(b
            .options
            .contains(&EnhancedPacketOption::Comment("out é".into())));
    }

    /// A comment longer than an option holds is cut at a character, not
    /// in one; the file stays readable.
    #[test]
    fn a_long_comment_is_cut_whole() {
        let mut o = Pcapng::new(Vec::new(), 64);
        let id = o.interface("p");
        let long = "é".repeat(40_000); // 80,000 bytes
        o.packet(id, 1, INBOUND, 60, &[0; 60], &long);
        let got = blocks(&o.into_buf());
        let Some(Block::EnhancedPacket(e)) = got.last() else {
            panic!("no packet: {got:?}");
        };
        let c = e.options.iter().find_map(|o| match o {
            EnhancedPacketOption::Comment(c) => Some(c.to_string()),
            _ => None,
        });
        assert_eq!(c.map(|c| c.len()), Some(65_534));
    }

    /// Several streams in one buffer's life: each starts fresh.
    #[test]
    fn the_buffer_is_reused_emptied() {
        let mut o = Pcapng::new(Vec::new(), 64);
        let id = o.interface("p");
        o.packet(id, 1, INBOUND, 60, &[0; 60], "x");
        let buf = o.into_buf();
        let cap = buf.capacity();
        let o = Pcapng::new(buf, 64);
        assert_eq!(o.buf.capacity(), cap);
        let bytes = o.into_buf();
        // The section header alone (the reader takes it itself).
        assert_eq!(bytes.len(), 28);
        assert!(blocks(&bytes).is_empty());
    }
}
