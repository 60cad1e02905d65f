//! dns: the small DNS message codec of the embedded responder.
//!
//! Only what a responder needs: read one query (header, one question, the
//! records after it, an EDNS0 OPT record) and write an answer (the question
//! echoed, A/AAAA/PTR records, an OPT record). Every read is bounds-checked:
//! no input makes it panic, and every way a message can be wrong is a
//! [`Malformed`] value. Compression pointers must point strictly backwards,
//! which makes loops impossible; names are at most 255 bytes on the wire.
//!
//! Why our own codec rather than hickory-proto or domain: see
//! docs/decisions.md ("DNS codec").

use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u16 = 0;
pub const RCODE_FORMERR: u16 = 1;
pub const RCODE_SERVFAIL: u16 = 2;
pub const RCODE_NXDOMAIN: u16 = 3;
pub const RCODE_NOTIMP: u16 = 4;
/// Extended RCODE 16 (in the OPT record): unsupported EDNS version.
pub const RCODE_BADVERS: u16 = 16;

/// Largest answer over plain UDP (RFC 1035 §4.2.1).
pub const UDP_PLAIN: usize = 512;
/// The largest UDP payload we announce and send (the DNS flag day 2020
/// value: fits any path without fragmentation).
pub const UDP_EDNS_MAX: usize = 1232;
/// Maximum length of a name on the wire (RFC 1035 §2.3.4).
const NAME_MAX: usize = 255;
/// Compression pointers followed while reading one name.
const MAX_HOPS: usize = 32;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

mod field {
    pub const ID: std::ops::Range<usize> = 0..2;
    pub const FLAGS: std::ops::Range<usize> = 2..4;
    pub const QDCOUNT: std::ops::Range<usize> = 4..6;
    pub const ANCOUNT: std::ops::Range<usize> = 6..8;
    pub const NSCOUNT: std::ops::Range<usize> = 8..10;
    pub const ARCOUNT: std::ops::Range<usize> = 10..12;
    pub const HEADER_LEN: usize = 12;
}

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Shorter than a header.
    Short,
    /// A response (QR set): never answered, so that two responders cannot
    /// ping-pong.
    Response,
    /// QDCOUNT is not 1.
    QuestionCount,
    /// A name runs past the end, has a reserved label type, or is too long.
    BadName,
    /// A compression pointer that does not point backwards (a loop, or
    /// forward), or too many of them.
    BadPointer,
    /// The header claims more records than the message holds.
    MissingRecords,
    /// More than one OPT record, or one not at the root.
    BadOpt,
}

impl Why {
    pub fn as_str(&self) -> &'static str {
        match self {
            Why::Short => "shorter than a DNS header",
            Why::Response => "a response, not a query",
            Why::QuestionCount => "not exactly one question",
            Why::BadName => "bad name",
            Why::BadPointer => "bad compression pointer",
            Why::MissingRecords => "fewer records than the header claims",
            Why::BadOpt => "bad OPT record",
        }
    }
}

/// A message that is not a query we can read. `id`/`flags` are there when
/// the header was readable, so a FORMERR can still be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub why: Why,
    pub header: Option<(u16, u16)>,
}

/// EDNS0 as the query announced it (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    /// The question name in wire format, uncompressed, case as sent (it is
    /// echoed as is: some resolvers randomize case, "DNS 0x20").
    pub qname_wire: Vec<u8>,
    /// The same name in presentation form, lowercase, without the final
    /// dot ("" for the root). Bytes that are not printable are escaped as
    /// `\DDD`, so no two wire names meet in one string.
    pub qname: String,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    pub fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }

    /// The largest answer this query lets us send over UDP.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => (e.udp_size as usize).clamp(UDP_PLAIN, UDP_EDNS_MAX),
            None => UDP_PLAIN,
        }
    }
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Reads the name at `pos`. Returns the position right after the name where
/// it starts (after the first pointer, if any); appends the uncompressed
/// wire form to `out`.
fn read_name(msg: &[u8], pos: usize, out: &mut Vec<u8>) -> Result<usize, Why> {
    let start_len = out.len();
    let mut at = pos;
    let mut end = None;
    let mut hops = 0;
    // Every pointer must point before the label that holds it: positions
    // strictly decrease at each hop, so there is no loop.
    let mut limit = pos;
    loop {
        let len = *msg.get(at).ok_or(Why::BadName)? as usize;
        match len >> 6 {
            0 => {
                if len == 0 {
                    out.push(0);
                    if out.len() - start_len > NAME_MAX {
                        return Err(Why::BadName);
                    }
                    return Ok(end.unwrap_or(at + 1));
                }
                let label = msg.get(at + 1..at + 1 + len).ok_or(Why::BadName)?;
                out.push(len as u8);
                out.extend_from_slice(label);
                if out.len() - start_len > NAME_MAX {
                    return Err(Why::BadName);
                }
                at += 1 + len;
            }
            3 => {
                let lo = *msg.get(at + 1).ok_or(Why::BadName)? as usize;
                let target = ((len & 0x3f) << 8) | lo;
                hops += 1;
                if target >= limit || hops > MAX_HOPS {
                    return Err(Why::BadPointer);
                }
                if end.is_none() {
                    end = Some(at + 2);
                }
                limit = target;
                at = target;
            }
            // 01 and 10: extended and reserved label types.
            _ => return Err(Why::BadName),
        }
    }
}

/// Presentation form of a wire name: lowercase, dotted, no final dot.
pub fn name_to_string(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let Some(label) = wire.get(at + 1..at + 1 + len as usize) else {
            break;
        };
        if !s.is_empty() {
            s.push('.');
        }
        for &b in label {
            match b {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => s.push(b as char),
                b'A'..=b'Z' => s.push(b.to_ascii_lowercase() as char),
                _ => s.push_str(&format!("\\{b:03}")),
            }
        }
        at += 1 + len as usize;
    }
    s
}

/// Wire form of a dotted name ("h1.lan" or "h1.lan."). None if a label is
/// empty or longer than 63 bytes, or the name is too long.
pub fn name_to_wire(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    (out.len() <= NAME_MAX).then_some(out)
}

/// A resource record as read: where the next one starts, its type, whether
/// its owner is the root, class, TTL and where its data is.
struct RawRecord {
    next: usize,
    rtype: u16,
    root: bool,
    class: u16,
    ttl: u32,
    rdata: std::ops::Range<usize>,
}

fn read_record(msg: &[u8], pos: usize, scratch: &mut Vec<u8>) -> Result<RawRecord, Why> {
    scratch.clear();
    let after = read_name(msg, pos, scratch).map_err(|w| match w {
        Why::BadName if pos >= msg.len() => Why::MissingRecords,
        w => w,
    })?;
    let rtype = be16(msg, after).ok_or(Why::MissingRecords)?;
    let class = be16(msg, after + 2).ok_or(Why::MissingRecords)?;
    let ttl_hi = be16(msg, after + 4).ok_or(Why::MissingRecords)?;
    let ttl_lo = be16(msg, after + 6).ok_or(Why::MissingRecords)?;
    let rdlen = be16(msg, after + 8).ok_or(Why::MissingRecords)? as usize;
    let next = after + 10 + rdlen;
    if next > msg.len() {
        return Err(Why::MissingRecords);
    }
    Ok(RawRecord {
        next,
        rdata: after + 10..next,
        rtype,
        // The root name on the wire is one empty label: a single zero byte.
        root: scratch.as_slice() == b"\0",
        class,
        ttl: ((ttl_hi as u32) << 16) | ttl_lo as u32,
    })
}

/// Reads a query. Never panics, whatever `msg` holds.
pub fn parse_query(msg: &[u8]) -> Result<Query, Malformed> {
    if msg.len() < field::HEADER_LEN {
        return Err(Malformed {
            why: Why::Short,
            header: None,
        });
    }
    let h = |r: std::ops::Range<usize>| u16::from_be_bytes([msg[r.start], msg[r.start + 1]]);
    let id = h(field::ID);
    let flags = h(field::FLAGS);
    let bad = |why| Malformed {
        why,
        header: Some((id, flags)),
    };
    if flags & FLAG_QR != 0 {
        return Err(bad(Why::Response));
    }
    if h(field::QDCOUNT) != 1 {
        return Err(bad(Why::QuestionCount));
    }
    let mut qname_wire = Vec::with_capacity(64);
    let mut at = read_name(msg, field::HEADER_LEN, &mut qname_wire).map_err(bad)?;
    let qtype = be16(msg, at).ok_or(bad(Why::MissingRecords))?;
    let qclass = be16(msg, at + 2).ok_or(bad(Why::MissingRecords))?;
    at += 4;
    let mut scratch = Vec::with_capacity(64);
    let others = h(field::ANCOUNT) as usize + h(field::NSCOUNT) as usize;
    for _ in 0..others {
        at = read_record(msg, at, &mut scratch).map_err(bad)?.next;
    }
    let mut edns = None;
    for _ in 0..h(field::ARCOUNT) {
        let r = read_record(msg, at, &mut scratch).map_err(bad)?;
        if r.rtype == TYPE_OPT {
            if edns.is_some() || !r.root {
                return Err(bad(Why::BadOpt));
            }
            edns = Some(Edns {
                udp_size: r.class,
                version: (r.ttl >> 16) as u8,
                dnssec_ok: r.ttl & 0x8000 != 0,
            });
        }
        at = r.next;
    }
    Ok(Query {
        id,
        flags,
        qname: name_to_string(&qname_wire),
        qname_wire,
        qtype,
        qclass,
        edns,
    })
}

/// One answer record; its owner is always the question name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A name in wire format.
    Ptr(Vec<u8>),
}

impl Rdata {
    fn rtype(&self) -> u16 {
        match self {
            Rdata::A(_) => TYPE_A,
            Rdata::Aaaa(_) => TYPE_AAAA,
            Rdata::Ptr(_) => TYPE_PTR,
        }
    }
    fn len(&self) -> usize {
        match self {
            Rdata::A(_) => 4,
            Rdata::Aaaa(_) => 16,
            Rdata::Ptr(n) => n.len(),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Rdata::A(a) => out.extend_from_slice(&a.octets()),
            Rdata::Aaaa(a) => out.extend_from_slice(&a.octets()),
            Rdata::Ptr(n) => out.extend_from_slice(n),
        }
    }
}

/// What to put in an answer besides the records.
#[derive(Debug, Clone, Copy)]
pub struct AnswerFlags {
    pub rcode: u16,
    pub authoritative: bool,
    pub recursion_available: bool,
    pub ttl: u32,
}

/// Writes the answer to `q`, at most `q.udp_limit()` bytes: records that do
/// not fit are left out and TC is set. Returns the message and whether it
/// was truncated.
pub fn build_answer(q: &Query, f: AnswerFlags, records: &[Rdata]) -> (Vec<u8>, bool) {
    let limit = q.udp_limit();
    let opt_len = if q.edns.is_some() { 11 } else { 0 };
    let mut out = Vec::with_capacity(limit.min(256));
    let mut flags = FLAG_QR | (q.flags & (0x7800 | FLAG_RD)) | (f.rcode & 0xf);
    if f.authoritative {
        flags |= FLAG_AA;
    }
    if f.recursion_available {
        flags |= FLAG_RA;
    }
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&q.qname_wire);
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    let mut ancount: u16 = 0;
    let mut truncated = false;
    for r in records {
        let dlen = r.len();
        // Owner: a pointer to the question name at offset 12.
        if out.len() + 12 + dlen + opt_len > limit {
            truncated = true;
            break;
        }
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&r.rtype().to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&f.ttl.to_be_bytes());
        out.extend_from_slice(&(dlen as u16).to_be_bytes());
        r.write(&mut out);
        ancount += 1;
    }
    if let Some(e) = q.edns {
        // RFC 6891: our size; the upper bits of the RCODE; version 0;
        // DO echoed; no options (we do not implement cookies, which
        // RFC 7873 §5.2 allows us to ignore).
        let ext = (f.rcode >> 4) as u8;
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&(UDP_EDNS_MAX as u16).to_be_bytes());
        out.extend_from_slice(&[ext, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
        out.extend_from_slice(&[0, 0]);
    }
    out[field::ANCOUNT].copy_from_slice(&ancount.to_be_bytes());
    out[field::ARCOUNT].copy_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    if truncated {
        let fl = flags | FLAG_TC;
        out[field::FLAGS].copy_from_slice(&fl.to_be_bytes());
    }
    (out, truncated)
}

/// A header-only error answer (FORMERR for a query we could not read).
pub fn build_error(id: u16, flags: u16, rcode: u16) -> Vec<u8> {
    let flags = FLAG_QR | (flags & (0x7800 | FLAG_RD)) | (rcode & 0xf);
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// The ID of a message (for forwarding: rewrite and restore).
pub fn message_id(msg: &[u8]) -> Option<u16> {
    be16(msg, 0)
}

pub fn set_message_id(msg: &mut [u8], id: u16) {
    if let Some(b) = msg.get_mut(field::ID) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

/// True for a response (QR set), used for what comes back from upstream.
pub fn is_response(msg: &[u8]) -> bool {
    msg.len() >= field::HEADER_LEN && be16(msg, 2).is_some_and(|f| f & FLAG_QR != 0)
}

/// Builds a query (for tests and for the forwarder's own checks).
pub fn build_query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    out.extend_from_slice(&name_to_wire(name)?);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(size) = edns {
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    Some(out)
}

/// A read answer, for tests: (rcode, truncated, answers as (type, rdata)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAnswer {
    pub id: u16,
    pub rcode: u16,
    pub truncated: bool,
    pub authoritative: bool,
    pub answers: Vec<(u16, Vec<u8>)>,
    pub edns: Option<Edns>,
}

/// Reads an answer (tests and tools); None when it is not one.
pub fn parse_answer(msg: &[u8]) -> Option<ParsedAnswer> {
    if msg.len() < field::HEADER_LEN {
        return None;
    }
    let flags = be16(msg, 2)?;
    let qd = be16(msg, 4)?;
    let an = be16(msg, 6)?;
    let ns = be16(msg, 8)?;
    let ar = be16(msg, 10)?;
    let mut at = field::HEADER_LEN;
    let mut scratch = Vec::new();
    for _ in 0..qd {
        scratch.clear();
        at = read_name(msg, at, &mut scratch).ok()? + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        let r = read_record(msg, at, &mut scratch).ok()?;
        answers.push((r.rtype, msg.get(r.rdata)?.to_vec()));
        at = r.next;
    }
    for _ in 0..ns {
        at = read_record(msg, at, &mut scratch).ok()?.next;
    }
    let mut edns = None;
    let mut ext_rcode = 0u16;
    for _ in 0..ar {
        let r = read_record(msg, at, &mut scratch).ok()?;
        if r.rtype == TYPE_OPT {
            ext_rcode = (r.ttl >> 24) as u16;
            edns = Some(Edns {
                udp_size: r.class,
                version: (r.ttl >> 16) as u8,
                dnssec_ok: r.ttl & 0x8000 != 0,
            });
        }
        at = r.next;
    }
    Some(ParsedAnswer {
        id: be16(msg, 0)?,
        rcode: (flags & 0xf) | (ext_rcode << 4),
        truncated: flags & FLAG_TC != 0,
        authoritative: flags & FLAG_AA != 0,
        answers,
        edns,
    })
}
