//! `shunt capture`, the control plane's side: the request becomes a
//! capture session (pipeline::capture records the frames in the workers),
//! its records become [`CaptureEvent`]s on the control socket, each with
//! the decision in the words of `shunt trace`; and on the client's side
//! [`PcapngOut`] writes them as pcapng (one interface per port, nanosecond
//! timestamps, the direction flag and the comment on every packet).

use crate::control::answers::{net_name, resolve_ports};
use crate::control::proto::{CaptureEvent, CaptureSpec};
use crate::control::send;
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};
use crate::pipeline::capture::{Decision, Dir, Filter, Record, Session, MAX_SNAP};
use crate::runtime::Runtime;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use shunt_parsers::MacAddr;
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

pub use crate::pipeline::capture::{Capture, DEFAULT_SNAP};

/// Why a capture could not start; said to the client.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no port, host or network named {0:?}")]
    NoTarget(String),
    #[error("--direction {0:?}: say in, out or both")]
    BadDirection(String),
    #[error("{0:?} is not a MAC address")]
    BadMac(String),
    #[error("ethertype {0:?}: say arp, ipv4, ipv6, vlan or a number such as 0x0806")]
    BadEthertype(String),
    #[error("{0:?} is not a drop reason (`shunt stats` lists them)")]
    BadReason(String),
    #[error("decision {0:?}: say one of {names}", names = Decision::NAMES.join(", "))]
    BadDecision(String),
    #[error("a capture is already running on this switch")]
    Busy,
}

/// The ports a target names: a port, a host (all its ports), a network
/// (all its ports), or "all".
fn target_ports(rt: &Runtime, name: &str) -> Result<Vec<PortId>, CaptureError> {
    let by_port = resolve_ports(rt, name);
    let ports: Vec<PortId> = if by_port.is_empty() {
        let plan = rt.plan.load();
        match plan.nets.iter().find(|n| n.name == name) {
            Some(n) => n.members.clone(),
            None => return Err(CaptureError::NoTarget(name.to_string())),
        }
    } else {
        by_port
            .iter()
            .filter_map(|&p| PortId::new(p.into()))
            .collect()
    };
    Ok(ports)
}

/// An ethertype by name or number (`--ethertype`, `--packet type=`).
pub(crate) fn ethertype(s: &str) -> Option<u16> {
    match s.to_ascii_lowercase().as_str() {
        "arp" => Some(0x0806),
        "ipv4" | "ip" => Some(0x0800),
        "ipv6" | "ip6" => Some(0x86dd),
        "vlan" | "802.1q" => Some(0x8100),
        n => match n.strip_prefix("0x") {
            Some(h) => u16::from_str_radix(h, 16).ok(),
            None => n.parse().ok(),
        },
    }
}

/// The session a request asks for, and its interfaces' names.
pub fn session(rt: &Runtime, spec: &CaptureSpec) -> Result<(Session, Vec<String>), CaptureError> {
    let (filter, ports) = filter(rt, spec)?;
    let names: Vec<String> = if ports.is_empty() {
        let plan = rt.plan.load();
        PortId::all()
            .take(plan.ports.len())
            .filter(|p| rt.port_kind[p.index()].load().is_some())
            .map(|p| rt.port_name(p.into()))
            .collect()
    } else {
        ports.iter().map(|&p| rt.port_name(p.into())).collect()
    };
    let rings = rt.capture.rings(rt.counters.len());
    Ok((Session::with_rings(filter, &ports, rings), names))
}

/// What a request selects: the filter and the ports of its targets (none:
/// every port). `shunt capture` and `shunt trace` both ask with these.
pub fn filter(rt: &Runtime, spec: &CaptureSpec) -> Result<(Filter, Vec<PortId>), CaptureError> {
    let mut ports = Vec::new();
    for t in spec.targets.iter().filter(|t| t.as_str() != "all") {
        for p in target_ports(rt, t)? {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    let (inbound, outbound) = match spec.direction.as_deref().unwrap_or("both") {
        "in" => (true, false),
        "out" => (false, true),
        "both" => (true, true),
        d => return Err(CaptureError::BadDirection(d.to_string())),
    };
    let mac = match &spec.mac {
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|_| CaptureError::BadMac(m.clone()))?,
        ),
        None => None,
    };
    let ethertype = match &spec.ethertype {
        Some(t) => Some(ethertype(t).ok_or_else(|| CaptureError::BadEthertype(t.clone()))?),
        None => None,
    };
    let reason = match &spec.reason {
        Some(r) => Some(
            DropReason::ALL
                .iter()
                .copied()
                .find(|d| d.name() == r)
                .ok_or_else(|| CaptureError::BadReason(r.clone()))?,
        ),
        None => None,
    };
    let decision = match &spec.decision {
        Some(d) => {
            Some(Decision::from_name(d).ok_or_else(|| CaptureError::BadDecision(d.clone()))?)
        }
        None => None,
    };
    let filter = Filter {
        inbound,
        outbound,
        drops_only: spec.drops,
        mac,
        vlan: spec.vlan,
        ethertype,
        reason,
        decision,
        snaplen: spec.snaplen.unwrap_or(DEFAULT_SNAP).clamp(1, MAX_SNAP),
    };
    Ok((filter, ports))
}

/// A record's comment: the frame's decision in the words of `shunt
/// trace`, and for an outbound copy where this copy went.
pub fn comment(rt: &Runtime, r: &Record) -> String {
    let port_name = |p: Egress| rt.port_name(p);
    let net_name = |n| net_name(rt, n);
    let mut text = crate::trace::describe(&r.what, &port_name, &net_name).text;
    // The frame went on, but this is why `--drops` took it.
    if let Some(d) = r.what.learned.reason() {
        text.push_str(&format!("; {}: {}", d.name(), d.explain()));
    }
    if r.dir == Dir::Out {
        text.push_str(if r.mirror {
            "; this copy: a mirror copy, out of "
        } else {
            "; this copy: out of "
        });
        text.push_str(&rt.port_name(r.at));
        if let Some(v) = r.copy_vid {
            text.push_str(&format!(" tagged {}", v.get()));
        }
        if r.copy_to.is_vtep() {
            text.push_str(&format!(", encapsulated for {}", rt.port_name(r.copy_to)));
        }
    }
    text
}

/// Lowercase hex of `b` (a packet's bytes on the control socket).
pub fn to_hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[usize::from(x >> 4)] as char);
        s.push(D[usize::from(x & 15)] as char);
    }
    s
}

/// The bytes of a hex string; None if it is not one.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn event(rt: &Runtime, r: &Record) -> CaptureEvent {
    CaptureEvent::Packet {
        interface: rt.port_name(r.at),
        ts_ns: r.ts_ns,
        dir: match r.dir {
            Dir::In => "in",
            Dir::Out => "out",
        }
        .to_string(),
        len: r.orig_len,
        data: to_hex(r.data()),
        comment: comment(rt, r),
    }
}

/// How often a quiet capture says how it goes.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Runs a capture: streams its packets to `out` until `count` packets,
/// `seconds`, the client going away, or the switch stopping; then the end,
/// with how many records were lost.
pub fn stream(
    out: &mut std::os::unix::net::UnixStream,
    rt: &Runtime,
    spec: &CaptureSpec,
    session: Session,
    interfaces: Vec<String>,
) -> std::io::Result<()> {
    let snaplen = session.filter.snaplen;
    if !rt.capture.start(session) {
        return send(
            out,
            &crate::control::proto::ErrorReply {
                error: CaptureError::Busy.to_string(),
            },
        );
    }
    let count = spec.count.unwrap_or(u64::MAX);
    let deadline = spec
        .seconds
        .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
        .and_then(|d| Instant::now().checked_add(d));
    let mut sent = 0u64;
    // Records carry their bytes inline (up to the snap length): a batch of
    // 4096 was 7 MB of the switch's memory while a capture ran, the soak's
    // +13% (docs/reliability.md). With 256 the flood kept more of its rate
    // while captured (docs/PERF.md, "Issue 14: capture cost").
    // Both kept from one capture to the next (pipeline::capture::Spare).
    let (mut batch, mut buf) = rt.capture.buffers();
    batch.reserve_exact(256);
    buf.reserve(WRITE_AT);
    let result = (|| -> std::io::Result<()> {
        out.set_write_timeout(Some(Duration::from_secs(5)))?;
        send(
            out,
            &CaptureEvent::Start {
                interfaces,
                snaplen,
            },
        )?;
        let mut said = Instant::now();
        while sent < count && !rt.stop.load(Relaxed) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let s = rt.capture.session();
            let Some(s) = s.as_ref() else { break };
            if said.elapsed() >= PROGRESS_EVERY {
                said = Instant::now();
                let lost = s.lost.load(Relaxed);
                send(
                    out,
                    &CaptureEvent::Progress {
                        packets: sent,
                        lost,
                    },
                )?;
            }
            take(s, &mut batch);
            if batch.is_empty() {
                if client_gone(out) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            send_records(out, rt, &mut batch, &mut sent, count, &mut buf)?;
        }
        Ok(())
    })();
    let ended = rt.capture.stop();
    let lost = ended.as_ref().map_or(0, |s| s.lost.load(Relaxed));
    let result = result.and_then(|()| {
        // What the workers recorded before the stop still goes.
        if let Some(s) = &ended {
            take(s, &mut batch);
            send_records(out, rt, &mut batch, &mut sent, count, &mut buf)?;
        }
        send(
            out,
            &CaptureEvent::End {
                packets: sent,
                lost,
            },
        )
    });
    if let Some(s) = ended {
        rt.capture.recycle(s);
    }
    rt.capture.keep_buffers(batch, buf);
    result
}

/// Bytes of packet lines gathered before one write to the client.
const WRITE_AT: usize = 256 * 1024;

/// Sends `batch`'s records (up to `count` in all) as packet lines, many per
/// write: one write per packet was most of a capture's cost per packet
/// (docs/PERF.md, "Issue 14: capture cost"). Each line is written straight
/// from the event, without the JSON value `send` builds first.
fn send_records(
    out: &mut std::os::unix::net::UnixStream,
    rt: &Runtime,
    batch: &mut Vec<Record>,
    sent: &mut u64,
    count: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::io::Write;
    for r in batch.drain(..) {
        if *sent >= count {
            break;
        }
        serde_json::to_writer(&mut *buf, &event(rt, &r)).map_err(std::io::Error::other)?;
        buf.push(b'\n');
        *sent += 1;
        if buf.len() >= WRITE_AT {
            out.write_all(buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        out.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

/// Whether the client closed its end: it sends nothing after its request,
/// so a readable socket means its end of file (a capture ended by Ctrl-C
/// frees the switch for the next one at once, not at the next write).
fn client_gone(s: &std::os::unix::net::UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Takes what the workers' rings hold, in time order.
fn take(s: &Session, into: &mut Vec<Record>) {
    into.clear();
    for w in 0..s.workers() {
        while into.len() < into.capacity() {
            match s.pop(w) {
                Some(r) => into.push(r),
                None => break,
            }
        }
    }
    into.sort_by_key(|r| r.ts_ns);
}

/// A pcapng stream being written: one interface description per port
/// (added when a packet names one not seen before), link type Ethernet,
/// nanosecond timestamps.
pub struct PcapngOut<W: Write> {
    w: PcapNgWriter<W>,
    names: Vec<String>,
    snaplen: u32,
}

/// epb_flags: bits 0-1 are the direction (pcapng, section 4.3.1).
const EPB_INBOUND: u32 = 0b01;
const EPB_OUTBOUND: u32 = 0b10;

impl<W: Write> PcapngOut<W> {
    /// Writes the section header and an interface block per name.
    pub fn new(inner: W, interfaces: &[String], snaplen: usize) -> pcap_file::PcapResult<Self> {
        let mut o = PcapngOut {
            w: PcapNgWriter::new(inner)?,
            names: Vec::new(),
            snaplen: snaplen as u32,
        };
        for n in interfaces {
            o.interface(n)?;
        }
        Ok(o)
    }

    /// The interface id of `name`, its description written if new.
    fn interface(&mut self, name: &str) -> pcap_file::PcapResult<u32> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(i as u32);
        }
        self.w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: self.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(name.to_string())),
                // 10^-9 s: the EPB timestamps are nanoseconds.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })?;
        self.names.push(name.to_string());
        Ok(self.names.len() as u32 - 1)
    }

    /// One packet.
    pub fn packet(
        &mut self,
        interface: &str,
        ts_ns: u64,
        inbound: bool,
        orig_len: u32,
        data: &[u8],
        comment: &str,
    ) -> pcap_file::PcapResult<()> {
        let id = self.interface(interface)?;
        let flags = if inbound { EPB_INBOUND } else { EPB_OUTBOUND };
        self.w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: id,
            timestamp: Duration::from_nanos(ts_ns),
            original_len: orig_len.max(data.len() as u32),
            data: Cow::Borrowed(data),
            options: vec![
                EnhancedPacketOption::Flags(flags),
                EnhancedPacketOption::Comment(Cow::Borrowed(comment)),
            ],
        })?;
        Ok(())
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.w.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn hex_round_trips() {
        let b = [0u8, 1, 0xab, 0xff, 0x10];
        assert_eq!(to_hex(&b), "0001abff10");
        assert_eq!(from_hex("0001abff10").as_deref(), Some(&b[..]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }

    #[test]
    fn ethertypes_by_name_and_number() {
        assert_eq!(ethertype("arp"), Some(0x0806));
        assert_eq!(ethertype("IPv6"), Some(0x86dd));
        assert_eq!(ethertype("0x88cc"), Some(0x88cc));
        assert_eq!(ethertype("2048"), Some(0x0800));
        assert_eq!(ethertype("nope"), None);
    }

    /// What is written reads back: interfaces by name at nanoseconds, the
    /// direction flag, the comment, both lengths.
    #[test]
    fn pcapng_reads_back() {
        let mut o = PcapngOut::new(Vec::new(), &["h1.lan".to_string()], 256).unwrap();
        o.packet(
            "h1.lan",
            1_700_000_000_123_456_789,
            true,
            98,
            &[1; 60],
            "in words",
        )
        .unwrap();
        o.packet(
            "h2.lan",
            1_700_000_000_123_456_999,
            false,
            1000,
            &[2; 256],
            "out",
        )
        .unwrap();
        let bytes = std::mem::take(o.get_mut());
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut names = Vec::new();
        let mut packets = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => {
                    assert_eq!(i.linktype, DataLink::ETHERNET);
                    assert!(i
                        .options
                        .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                    for opt in &i.options {
                        if let InterfaceDescriptionOption::IfName(n) = opt {
                            names.push(n.to_string());
                        }
                    }
                }
                Block::EnhancedPacket(e) => packets.push(e.into_owned()),
                _ => {}
            }
        }
        assert_eq!(names, ["h1.lan", "h2.lan"]);
        assert_eq!(packets.len(), 2);
        let (a, b) = (&packets[0], &packets[1]);
        assert_eq!((a.interface_id, b.interface_id), (0, 1));
        assert_eq!(a.timestamp.as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!((a.original_len, a.data.len()), (98, 60));
        assert_eq!((b.original_len, b.data.len()), (1000, 256));
        assert!(a
            .options
            .contains(&EnhancedPacketOption::Flags(EPB_INBOUND)));
        assert!(b
            .options
            .contains(&EnhancedPacketOption::Flags(EPB_OUTBOUND)));
        assert!(a
            .options
            .contains(&EnhancedPacketOption::Comment("in words".into())));
    }
}
