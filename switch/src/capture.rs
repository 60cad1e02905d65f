//! `shunt capture`, the control plane's side: the request becomes a
//! capture session (pipeline::capture records the frames in the workers),
//! and its writer, a thread at SCHED_IDLE, turns the records into pcapng
//! (crate::pcapng: one interface per port, nanosecond timestamps, the
//! direction flag and the decision in the words of `shunt trace` on every
//! packet) written straight to the file descriptor the client passed over
//! the control socket; the socket carries only [`CaptureEvent`]s: start,
//! progress, end with the counts. A client that passes no descriptor gets
//! the packets as JSON lines instead.

use crate::control::answers::{net_name, resolve_ports, AnswerError};
use crate::control::proto::{CaptureEvent, CaptureSpec};
use crate::control::send;
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};
use crate::pcapng::Pcapng;
use crate::pipeline::capture::Taken;
use crate::pipeline::capture::{Decision, Dir, Filter, Record, Session, MAX_SNAP};
use crate::runtime::Runtime;
use shunt_parsers::MacAddr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
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
    /// What a trace's own checks say (no such port, a trace running).
    #[error(transparent)]
    Answer(#[from] AnswerError),
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

/// The session a request asks for, and its interfaces with their names.
pub fn session(
    rt: &Runtime,
    spec: &CaptureSpec,
) -> Result<(Session, Vec<(Egress, String)>), CaptureError> {
    let (filter, ports) = filter(rt, spec)?;
    let named = |p: Egress| (p, rt.port_name(p));
    let names: Vec<(Egress, String)> = if ports.is_empty() {
        let plan = rt.plan.load();
        PortId::all()
            .take(plan.ports.len())
            .filter(|p| rt.port_kind[p.index()].load().is_some())
            .map(|p| named(p.into()))
            .collect()
    } else {
        ports.iter().map(|&p| named(p.into())).collect()
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

/// `trace`: what to trace, as `shunt capture` selects it (the same
/// code: [`filter`]), and the ports (none: all), once the tracer is
/// free. `port` (`--port`) is one more target; alone, it means frames
/// entering on it (`--direction in`), as it always has.
pub fn trace_filter(
    rt: &Runtime,
    port: Option<&str>,
    spec: &CaptureSpec,
) -> Result<(Filter, Vec<PortId>), CaptureError> {
    let mut spec = spec.clone();
    if let Some(p) = port {
        if resolve_ports(rt, p).is_empty() {
            return Err(AnswerError::NoPort(p.to_string()).into());
        }
        if spec.direction.is_none() && spec.targets.is_empty() {
            spec.direction = Some("in".into());
        }
        spec.targets.push(p.to_string());
    }
    let selected = filter(rt, &spec)?;
    if rt.tracer.active() {
        return Err(AnswerError::TraceBusy.into());
    }
    Ok(selected)
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

/// How often a capture says how it goes.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Records taken from the rings per round: the writer gives their boxes
/// back after each round, so the workers never wait for more than this.
const BATCH: usize = 256;

/// Bytes gathered before one write to the file or the client.
const WRITE_AT: usize = 64 * 1024;

/// Where a capture's packets go.
enum Sink {
    /// pcapng that the switch writes itself to the file descriptor the
    /// client passed (its file, or its standard output): no per-packet
    /// work in the client, no hex or JSON per packet.
    Pcapng {
        to: FdOut,
        out: Pcapng,
        /// Interface id by egress slot (NO_ID: not described yet).
        ids: Box<[u32]>,
    },
    /// JSON lines with the frame in hex on the control socket, for a
    /// client that passes no descriptor (docs/capture.md, "The protocol").
    Json { buf: Vec<u8> },
}

const NO_ID: u32 = u32::MAX;

/// Why a capture ended early, said in its end event.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The reader of the client's standard output went away (`| head`,
    /// `tcpdump -c`): the capture just ends.
    #[error("the reader of the capture went away")]
    ReaderGone,
    #[error("writing the capture: {0}")]
    Io(#[from] std::io::Error),
}

impl Sink {
    /// Writes a record (its box is given back by the caller).
    fn record(&mut self, rt: &Runtime, r: &Record) -> Result<(), WriteError> {
        match self {
            Sink::Pcapng { out, ids, .. } => {
                let slot = r.at.slot();
                let id = match ids.get(slot) {
                    Some(&id) if id != NO_ID => id,
                    _ => {
                        let id = out.interface(&rt.port_name(r.at));
                        if let Some(s) = ids.get_mut(slot) {
                            *s = id;
                        }
                        id
                    }
                };
                let flags = match r.dir {
                    Dir::In => crate::pcapng::INBOUND,
                    Dir::Out => crate::pcapng::OUTBOUND,
                };
                out.packet(id, r.ts_ns, flags, r.orig_len, r.data(), &comment(rt, r));
            }
            Sink::Json { buf } => {
                serde_json::to_writer(&mut *buf, &event(rt, r)).map_err(std::io::Error::other)?;
                buf.push(b'\n');
            }
        }
        Ok(())
    }

    fn pending(&self) -> usize {
        match self {
            Sink::Pcapng { out, .. } => out.buf.len(),
            Sink::Json { buf } => buf.len(),
        }
    }

    /// Sends what is gathered; `gone` says whether to stop waiting for a
    /// reader that does not read.
    fn flush(&mut self, sock: &mut UnixStream, gone: &dyn Fn() -> bool) -> Result<(), WriteError> {
        match self {
            Sink::Pcapng { to, out, .. } => {
                to.write(&out.buf, gone)?;
                out.buf.clear();
            }
            Sink::Json { buf } => {
                sock.write_all(buf)?;
                buf.clear();
            }
        }
        Ok(())
    }

    fn into_buf(self) -> Vec<u8> {
        match self {
            Sink::Pcapng { out, .. } => out.into_buf(),
            Sink::Json { buf } => buf,
        }
    }
}

/// The client's descriptor, written with a bounded wait: a reader that
/// stops reading (a stopped `tcpdump`) must not hold the capture, and with
/// it the switch's one capture, once the client went away (Ctrl-C) or the
/// switch stops.
struct FdOut {
    file: std::fs::File,
    /// Bytes per write: a pipe (or socket) that polls writable takes a
    /// page without blocking; a file or a device takes anything.
    chunk: usize,
}

impl FdOut {
    fn new(fd: OwnedFd) -> FdOut {
        use std::os::unix::fs::FileTypeExt;
        let file = std::fs::File::from(fd);
        let stream = file.metadata().is_ok_and(|m| {
            let t = m.file_type();
            t.is_fifo() || t.is_socket()
        });
        FdOut {
            file,
            chunk: if stream { 4096 } else { WRITE_AT },
        }
    }

    fn write(&mut self, mut b: &[u8], gone: &dyn Fn() -> bool) -> Result<(), WriteError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        while !b.is_empty() {
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => {
                    if gone() {
                        return Err(WriteError::ReaderGone);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => return Err(WriteError::Io(e.into())),
            }
            let n = b.len().min(self.chunk);
            match self.file.write(&b[..n]) {
                Ok(k) => b = &b[k..],
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Err(WriteError::ReaderGone)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Runs a capture: its packets go to the descriptor the client passes
/// after the start event (`spec.fd`), or as JSON lines on the socket,
/// until `count` packets, `seconds`, the client going away (or closing
/// its end: Ctrl-C), the reader going away, or the switch stopping; then
/// the end, with how many records were lost.
///
/// The thread runs at SCHED_IDLE from the start: the rings' draining and
/// the writing take only CPU nothing else wants, so under a flood the
/// records are lost (counted) while the workers forward as fast as
/// without a capture (docs/PERF.md, "Issue 14: capture cost").
pub fn stream(
    out: &mut UnixStream,
    rt: &Runtime,
    spec: &CaptureSpec,
    session: Session,
    interfaces: Vec<(Egress, String)>,
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
    let (mut batch, buf) = rt.capture.buffers();
    batch.reserve_exact(BATCH);
    let mut sent = 0u64;
    let mut sink = None;
    // The buffer is the sink's while it runs, and kept after, whatever
    // ended the capture.
    let mut spare = Some(buf);
    let result = (|| -> std::io::Result<Option<WriteError>> {
        out.set_write_timeout(Some(Duration::from_secs(5)))?;
        send(
            out,
            &CaptureEvent::Start {
                interfaces: interfaces.iter().map(|(_, n)| n.clone()).collect(),
                snaplen,
            },
        )?;
        if let Err(e) = crate::port::sys::sched_idle() {
            crate::say!(
                "shunt: capture: cannot run at SCHED_IDLE, it takes CPU from forwarding: {e}"
            );
        }
        let s = if spec.fd {
            // The descriptor comes as the client's next message.
            out.set_read_timeout(Some(crate::control::REQUEST_TIMEOUT))?;
            let fd = crate::port::sys::recv_fd(out)?;
            out.set_read_timeout(None)?;
            let mut o = Pcapng::new(spare.take().unwrap_or_default(), snaplen);
            let mut ids = vec![NO_ID; Egress::SLOTS].into_boxed_slice();
            for (e, n) in &interfaces {
                let id = o.interface(n);
                if let Some(s) = ids.get_mut(e.slot()) {
                    *s = id;
                }
            }
            Sink::Pcapng {
                to: FdOut::new(fd),
                out: o,
                ids,
            }
        } else {
            Sink::Json {
                buf: spare.take().unwrap_or_default(),
            }
        };
        let sink = sink.insert(s);
        Ok(drain(out, rt, spec, sink, &mut batch, &mut sent).err())
    })();
    let ended = rt.capture.stop();
    let lost = ended.as_ref().map_or(0, |s| s.lost());
    let result = result.and_then(|failed| {
        let mut failed = failed;
        // What the workers recorded before the stop still goes.
        if let (Some(s), Some(sink), None) = (&ended, sink.as_mut(), &failed) {
            let count = spec.count.unwrap_or(u64::MAX);
            let peer = out.try_clone()?;
            let gone = || rt.stop.load(Relaxed) || client_gone(&peer);
            failed = write_round(out, rt, s, sink, &mut batch, &mut sent, count, &gone)
                .and_then(|()| sink.flush(out, &gone))
                .err();
        }
        // The descriptor is closed before the end is said: a pipe's
        // reader sees its end of file when the client exits.
        if let Some(sk) = sink.take() {
            spare = Some(sk.into_buf());
        }
        let error = match failed {
            None | Some(WriteError::ReaderGone) => None,
            Some(e) => Some(e.to_string()),
        };
        send(
            out,
            &CaptureEvent::End {
                packets: sent,
                lost,
                error,
            },
        )
    });
    if let Some(sk) = sink.take() {
        spare = Some(sk.into_buf());
    }
    rt.capture.keep_buffers(batch, spare.unwrap_or_default());
    if let Some(s) = ended {
        rt.capture.recycle(s);
    }
    result
}

/// The capture's loop: rounds of records from the rings to `sink` until
/// one of the ends in [`stream`]. Err: the write that ended it.
fn drain(
    out: &mut UnixStream,
    rt: &Runtime,
    spec: &CaptureSpec,
    sink: &mut Sink,
    batch: &mut Vec<Taken>,
    sent: &mut u64,
) -> Result<(), WriteError> {
    let count = spec.count.unwrap_or(u64::MAX);
    let deadline = spec
        .seconds
        .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
        .and_then(|d| Instant::now().checked_add(d));
    let over = || deadline.is_some_and(|d| Instant::now() >= d) || rt.stop.load(Relaxed);
    // A write under way is finished unless nobody waits for it any more:
    // the time being up must not cut a block in half.
    let peer = out.try_clone()?;
    let gone = || rt.stop.load(Relaxed) || client_gone(&peer);
    // The section header and interfaces go at once: a live reader
    // (`| tcpdump -r -`) starts before the first packet.
    sink.flush(out, &gone)?;
    let mut said = Instant::now();
    while *sent < count && !over() {
        let s = rt.capture.session();
        let Some(s) = s.as_ref() else { break };
        if said.elapsed() >= PROGRESS_EVERY {
            said = Instant::now();
            let p = CaptureEvent::Progress {
                packets: *sent,
                lost: s.lost(),
            };
            send(out, &p)?;
        }
        // Looked at every round: records may never stop coming.
        if client_gone(out) {
            break;
        }
        write_round(out, rt, s, sink, batch, sent, count, &gone)?;
        if sink.pending() > 0 {
            sink.flush(out, &gone)?;
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// One round: what the workers' rings hold (at most [`BATCH`]), in time
/// order, to `sink` (up to `count` packets in all); every box given back.
#[allow(clippy::too_many_arguments)]
fn write_round(
    out: &mut UnixStream,
    rt: &Runtime,
    s: &Session,
    sink: &mut Sink,
    batch: &mut Vec<Taken>,
    sent: &mut u64,
    count: u64,
    gone: &dyn Fn() -> bool,
) -> Result<(), WriteError> {
    take(s, batch);
    let mut result = Ok(());
    for (w, r) in batch.drain(..) {
        if result.is_ok() && *sent < count {
            result = sink.record(rt, &r);
            *sent += u64::from(result.is_ok());
            if result.is_ok() && sink.pending() >= WRITE_AT {
                result = sink.flush(out, gone);
            }
        }
        s.give_back(w, r);
    }
    result
}

/// Whether the client closed its end: it sends nothing after its request
/// (and its descriptor), so a readable socket means its end of file (a
/// capture ended by Ctrl-C frees the switch for the next one at once, not
/// at the next write).
fn client_gone(s: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Takes what the workers' rings hold, in time order.
fn take(s: &Session, into: &mut Vec<Taken>) {
    into.clear();
    for w in 0..s.workers() {
        while into.len() < into.capacity() {
            match s.pop(w) {
                Some(r) => into.push((w, r)),
                None => break,
            }
        }
    }
    into.sort_by_key(|(_, r)| r.ts_ns);
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
