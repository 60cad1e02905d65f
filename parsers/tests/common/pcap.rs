//! A tiny pcap reader for tests: the classic libpcap format only (24-byte
//! global header, 16-byte record headers), either byte order, micro- or
//! nanosecond magic. Panics on a malformed file: it only reads our own
//! test data.

use std::path::{Path, PathBuf};

/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every frame of `tests/data/<name>`.
pub fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = data_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// All `*.pcap` files in `tests/data`, sorted, with their frames.
pub fn all_captures() -> Vec<(String, Vec<Vec<u8>>)> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .expect("tests/data")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), frames(&n))).collect()
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    parse_linktype(bytes, LINKTYPE_ETHERNET)
}

/// Every record of a pcap file of link type `want` (the raw bytes).
pub fn parse_linktype(bytes: &[u8], want: u32) -> Result<Vec<Vec<u8>>, String> {
    let header = bytes
        .get(..24)
        .ok_or("shorter than the pcap global header")?;
    let magic = [header[0], header[1], header[2], header[3]];
    let read_u32: fn([u8; 4]) -> u32 = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => u32::from_le_bytes,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => u32::from_be_bytes,
        _ => return Err(format!("not a pcap file (magic {magic:02x?})")),
    };
    let word = |b: &[u8], at: usize| read_u32([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let linktype = word(header, 20) & 0x0fff_ffff;
    if linktype != want {
        return Err(format!("link type {linktype}, expected {want}"));
    }
    let mut frames = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        let rec = bytes.get(off..off + 16).ok_or("truncated record header")?;
        let incl_len = word(rec, 8) as usize;
        let orig_len = word(rec, 12) as usize;
        if incl_len != orig_len {
            return Err(format!("frame at {off} was cut by the snap length"));
        }
        off += 16;
        let data = bytes.get(off..off + incl_len).ok_or("truncated record")?;
        frames.push(data.to_vec());
        off += incl_len;
    }
    Ok(frames)
}
