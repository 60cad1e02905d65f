//! The control protocol: one JSON request per line, JSON answers, as serde
//! types shared by the switch (daemon::requests), the `shunt` command and
//! the e2e harness.
//!
//! The answers of `ports`, `fdb` and `stats` are the `--json` output of
//! those commands (docs/commands.md, TOPOLOGY.md): add fields, never rename
//! or remove one. Objects go on the wire with their keys sorted (see
//! [`to_line`]), as they always have, whatever the field order here.
//! Parts that other modules own and describe (a port's AF_XDP socket
//! counters, the switch's stack's counters, a trace record) stay JSON
//! values here.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A request: `{"cmd": "<name>", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Answered by [`Pong`].
    Ping,
    /// Answered by a list of [`PortInfo`].
    Ports,
    /// Answered by a list of [`FdbEntry`], of one network or all.
    Fdb {
        #[serde(default)]
        network: Option<String>,
    },
    /// Forgets one entry (a learned one comes back with the next frame
    /// from that MAC). Answered by [`Removed`].
    FdbDelete { network: String, mac: String },
    /// Answered by [`Stats`].
    Stats,
    /// Answered by a list of [`DnsName`].
    Dns {
        #[serde(default)]
        network: Option<String>,
    },
    /// Answered by [`TraceStart`], then one trace record per line
    /// (trace::TraceLine), then [`TraceEnd`].
    Trace {
        /// Frames entering on this port (or any port of this host): the
        /// same as `targets: [port], direction: "in"`.
        #[serde(default)]
        port: Option<String>,
        /// Which frames, as `capture` selects them (docs/trace.md), and
        /// how many, for how long (`snaplen` means nothing here).
        #[serde(flatten)]
        spec: CaptureSpec,
    },
    /// What the switch would do with a frame described by `packet`
    /// (`in=h1.lan dst=... vlan=10 type=arp`), decided by the stages in a
    /// dry run that changes nothing. Answered by a `probe::Report`.
    TracePacket {
        #[serde(default)]
        packet: String,
    },
    /// Answered by a stream of [`CaptureEvent`]s: start, then (with `fd`)
    /// the client's file descriptor for the pcapng, or packets; progress
    /// now and then; end.
    Capture(CaptureSpec),
    /// Answered by [`Done`].
    Attach { host: String, network: String },
    /// Answered by [`Done`].
    Detach { host: String, network: String },
    /// Sets (or clears) a port's link impairment (docs/impair.md).
    /// Answered by [`Done`].
    Impair {
        port: String,
        /// "egress", "ingress" or "both" (default).
        #[serde(default)]
        direction: Option<String>,
        #[serde(default)]
        settings: Box<crate::impair::Settings>,
        #[serde(default)]
        clear: bool,
    },
    /// Takes a port's link up or down. Answered by [`Done`].
    Link { port: String, up: bool },
    /// Spanning tree (docs/stp.md): answered by a JSON object
    /// (stp::glue::Shared::json).
    Stp,
    /// Sets, clears or (no rate, no clear) shows a port's storm control
    /// (docs/storm.md). Answered by [`Done`].
    Storm(StormSpec),
    /// Adds a mirror port (docs/mirror.md). Answered by [`Done`].
    MirrorAdd(MirrorSpec),
    /// Removes a mirror by name. Answered by [`Done`].
    MirrorDel { name: String },
    /// Answered by a list of [`MirrorRow`].
    MirrorList,
    /// Answered by [`Stopping`]; then the switch stops.
    Shutdown,
    /// Snooping's groups (or, `routers`, its router ports), of one
    /// network or all. Answered by a list of [`MdbRow`].
    Mdb {
        #[serde(default)]
        network: Option<String>,
        #[serde(default)]
        routers: bool,
    },
}

impl Request {
    /// The request's `cmd`.
    pub fn cmd(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Ports => "ports",
            Request::Fdb { .. } => "fdb",
            Request::FdbDelete { .. } => "fdb_delete",
            Request::Stats => "stats",
            Request::Dns { .. } => "dns",
            Request::Trace { .. } => "trace",
            Request::TracePacket { .. } => "trace_packet",
            Request::Capture(_) => "capture",
            Request::Attach { .. } => "attach",
            Request::Detach { .. } => "detach",
            Request::Impair { .. } => "impair",
            Request::Link { .. } => "link",
            Request::Stp => "stp",
            Request::Storm(_) => "storm",
            Request::MirrorAdd(_) => "mirror_add",
            Request::MirrorDel { .. } => "mirror_del",
            Request::MirrorList => "mirror_list",
            Request::Shutdown => "shutdown",
            Request::Mdb { .. } => "mdb",
        }
    }

    /// Every `cmd` a request may name.
    pub const CMDS: [&'static str; 20] = [
        "ping",
        "ports",
        "fdb",
        "fdb_delete",
        "stats",
        "dns",
        "trace",
        "trace_packet",
        "capture",
        "attach",
        "detach",
        "impair",
        "link",
        "storm",
        "shutdown",
        "stp",
        "mdb",
        "mirror_add",
        "mirror_del",
        "mirror_list",
    ];
}

/// What `shunt mirror add` asks for: the topology's `[[mirror]]` keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MirrorSpec {
    pub name: String,
    /// Ports or hosts.
    pub source: Vec<String>,
    /// "in", "out" or "both" (default).
    #[serde(default)]
    pub direction: Option<String>,
    pub destination: String,
}

/// One mirror (`shunt mirror list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRow {
    pub name: String,
    /// Source ports, by name.
    pub source: Vec<String>,
    pub direction: String,
    pub destination: String,
    /// Copies the destination sent, and those it could not (its
    /// `shunt stats` "mirror" counters).
    pub sent: u64,
    pub dropped: u64,
}

/// What `shunt storm` asks for: frames per second allowed in, per class
/// (absent: that class as it was), the bucket's depth, or no limit at all.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StormSpec {
    pub port: String,
    #[serde(default)]
    pub broadcast: Option<u64>,
    #[serde(default)]
    pub multicast: Option<u64>,
    #[serde(default)]
    pub unknown_unicast: Option<u64>,
    /// Like "1s", "100ms" (default: as it was, or 1s).
    #[serde(default)]
    pub burst: Option<String>,
    #[serde(default)]
    pub clear: bool,
}

/// What `shunt capture` asks for (docs/capture.md): the frames of
/// `targets` (ports, hosts, networks; none: all), which way, which ones,
/// how many bytes of each, for how long.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CaptureSpec {
    #[serde(default)]
    pub targets: Vec<String>,
    /// "in", "out" or "both" (the default).
    #[serde(default)]
    pub direction: Option<String>,
    /// Only dropped frames.
    #[serde(default)]
    pub drops: bool,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Bytes kept of each frame (its whole length is recorded too).
    #[serde(default)]
    pub snaplen: Option<usize>,
    /// Frames from or to this MAC.
    #[serde(default)]
    pub mac: Option<String>,
    /// Frames that came in with this VLAN, or copies tagged with it.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// "arp", "ipv4", "ipv6", "vlan" or a number (0x0806).
    #[serde(default)]
    pub ethertype: Option<String>,
    /// A drop reason (`vlan_not_allowed`): only frames dropped for it.
    #[serde(default)]
    pub reason: Option<String>,
    /// "flooded", "unicast", "dropped" or "local".
    #[serde(default)]
    pub decision: Option<String>,
    /// The client passes, right after the start event, the file
    /// descriptor the switch writes the pcapng to (SCM_RIGHTS, with one
    /// byte); without it the packets come as `packet` events.
    #[serde(default)]
    pub fd: bool,
}

/// One line of a capture's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CaptureEvent {
    /// The capture runs: the ports it holds (an interface each).
    Start {
        interfaces: Vec<String>,
        snaplen: usize,
    },
    /// One frame seen on `interface`, "in" or "out", `len` bytes long
    /// on the wire, of which `data` (hex) holds the first; `comment` is
    /// the switch's decision in the words of `shunt trace`.
    Packet {
        interface: String,
        ts_ns: u64,
        dir: String,
        len: u32,
        data: String,
        comment: String,
    },
    /// Now and then while nothing else is said (and to notice a client
    /// that went away): records lost so far.
    Progress { packets: u64, lost: u64 },
    /// The capture ended: packets written, records lost because the
    /// reader was too slow, and why writing failed if it did.
    End {
        packets: u64,
        lost: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Reads one request line (the bytes a client sent before its newline, or
/// with it). Err: what the client is told, in words: not UTF-8, not JSON,
/// an unknown `cmd`, or what the named command lacks.
pub fn decode(line: &[u8]) -> Result<Request, String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("bad request: not UTF-8 ({e})"))?;
    let v: Value = serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))?;
    let cmd = v.get("cmd").and_then(|c| c.as_str()).unwrap_or("");
    if !Request::CMDS.contains(&cmd) {
        return Err(format!("unknown command {cmd:?}"));
    }
    serde_json::from_value::<Request>(v).map_err(|e| format!("bad request: {e}"))
}

/// Any failure: `{"error": "<what went wrong, in words>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

/// The answer to `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub ok: bool,
    pub name: String,
    pub pid: u32,
}

/// The answer to `shutdown`: the pid to wait for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopping {
    pub ok: bool,
    pub pid: u32,
}

/// The answer to `attach` and `detach`: what was done, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub ok: bool,
    pub message: String,
}

/// The answer to `fdb_delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    pub ok: bool,
    pub removed: bool,
}

/// One port of `shunt ports --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    /// "tap", "afxdp" or "packet".
    pub kind: String,
    /// The mode an AF_XDP port got ("native-copy", ...); null otherwise.
    pub xdp_mode: Option<String>,
    pub worker: usize,
    /// "access", "trunk" or "underlay".
    pub mode: String,
    pub up: bool,
    pub networks: Vec<String>,
    pub native: Option<String>,
    pub vlans: Vec<u16>,
    pub host: Option<String>,
    pub namespace: Option<String>,
    pub interface: String,
    pub mtu: u16,
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// The port's link impairment in words, per direction (null: none).
    #[serde(default)]
    pub impair: Option<ImpairInfo>,
    /// Whether the link was taken down (`shunt link`, a flap schedule);
    /// `up` is then false.
    #[serde(default)]
    pub link_down: bool,
    /// Receive queues (a multi-queue TAP: one per worker, each polled by
    /// its worker); 1 otherwise.
    #[serde(default = "one")]
    pub queues: usize,
    /// The mirror this port is the destination of (docs/mirror.md): it
    /// takes no part in forwarding meanwhile. Null otherwise.
    #[serde(default)]
    pub mirror_destination: Option<String>,
}

/// `shunt ports --json` "impair": each direction's impairment in words
/// (`delay 20ms loss 1% seed 7`), null when none; and the flap schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpairInfo {
    pub egress: Option<String>,
    pub ingress: Option<String>,
    pub flap: Option<String>,
}

/// `shunt stats --json` "impair" of a port: what each direction's
/// impairment did (impair::LineTotals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpairStats {
    pub egress: crate::impair::LineTotals,
    pub ingress: crate::impair::LineTotals,
}

fn one() -> usize {
    1
}

/// One entry of `shunt fdb --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdbEntry {
    pub network: String,
    pub vlan: Option<u16>,
    pub mac: String,
    /// The port, or `vxlan:<remote ip>` behind a remote VTEP.
    pub port: String,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub age_secs: f64,
}

/// One row of `shunt mdb --json`: a membership (`group` set), or with
/// `--routers` a router port (`family` set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdbRow {
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    pub port: String,
    pub age_secs: f64,
    pub expires_secs: f64,
}

/// `shunt stats --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub ports: BTreeMap<String, PortStats>,
    /// All drops by reason: the ports' and the remote VTEPs'.
    pub drops: BTreeMap<String, u64>,
    /// Per remote VTEP address.
    pub vteps: BTreeMap<String, VtepStats>,
    /// Where the AF_XDP frames are; null without AF_XDP ports.
    pub umem: Option<Umem>,
    pub fdb: FdbUsage,
    pub trace_lost: u64,
    /// The switch's stack's counters (stack::StackLink::stats_json); null
    /// without it.
    pub host: Option<Value>,
    /// Frames handed over between workers, one entry per ordered pair of
    /// workers (empty with one worker).
    #[serde(default)]
    pub handoff: Vec<HandoffStats>,
    /// Per worker, in worker order: the frames it received from its ports
    /// and the batches it ran (how a multi-queue port spreads).
    #[serde(default)]
    pub workers: Vec<WorkerStats>,
    /// The L2 control channel's and its protocols' counters (l2/); null
    /// without it.
    #[serde(default)]
    pub l2: Option<Value>,
    /// Spanning tree's counters (BPDUs in and out, topology changes);
    /// null with `stp = "off"`.
    #[serde(default)]
    pub stp: Option<Value>,
    /// MAC-flap detection (docs/storm.md): `{ "enabled", "flaps",
    /// "events_lost", "recent": [{ "mac", "network", "ports", "moves",
    /// "action", "age_secs", "holds_secs" }] }`.
    #[serde(default)]
    pub mac_flap: Option<Value>,
}

/// One worker of `shunt stats --json` "workers".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub rx_frames: u64,
    pub batches: u64,
}

/// One pair of workers of `shunt stats --json` "handoff": what worker
/// `from` handed to worker `to` for the AF_XDP ports `to` owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffStats {
    pub from: usize,
    pub to: usize,
    /// Frames put on the queue.
    pub frames: u64,
    /// Frames dropped because the queue was full (also in the egress
    /// port's `handoff_full`).
    pub full: u64,
    /// Times `from` left frames in its ingress rings for the next poll
    /// until `to` made room (push-back: no frame lost).
    pub held_back: u64,
    /// Frames in the queue now.
    pub queued: u64,
}

/// One port of `shunt stats --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortStats {
    pub rx_frames: u64,
    /// Of those, by the worker that received them (a multi-queue port's
    /// queues are polled by several).
    #[serde(default)]
    pub rx_by_worker: Vec<u64>,
    pub tx_frames: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub tx_zero_copy: u64,
    /// Super-frames received, passed whole, segmented in software, and
    /// checksums completed in software (docs/offloads.md).
    #[serde(default)]
    pub offload: crate::counters::OffloadTotals,
    /// By cause: broadcast, unknown_unicast, multicast.
    pub flooded: BTreeMap<String, u64>,
    /// By reason, every reason listed.
    pub drops: BTreeMap<String, u64>,
    pub learned: u64,
    pub moved: u64,
    /// Mirror copies: made of this port's frames (`copied`, a source),
    /// sent out of it and lost (`sent`, `dropped`, a destination).
    #[serde(default)]
    pub mirror: crate::counters::MirrorTotals,
    pub up: bool,
    /// The kernel's counters of an AF_XDP port's socket
    /// (runtime::XdpStatsCell::json); null for other ports.
    pub afxdp: Option<Value>,
    /// The kernel's counters of a TAP port's device, as `ip -s link` shows
    /// them on the host's side (`tx_dropped`: frames the host sent that
    /// the TAP's queue could not hold, so shunt never saw them); null for
    /// other ports or when they cannot be read.
    #[serde(default)]
    pub tap: Option<TapKernel>,
    /// What the port's impairment did (null when it never had any).
    #[serde(default)]
    pub impair: Option<ImpairStats>,
    /// The kernel's counters of a packet port's socket (`PACKET_STATISTICS`
    /// since it opened: `rx_dropped`, frames its receive buffer had no room
    /// for, so shunt never saw them); null for other ports.
    #[serde(default)]
    pub packet: Option<PacketKernel>,
}

/// The kernel's counters of a packet port's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PacketKernel {
    pub rx_packets: u64,
    pub rx_dropped: u64,
}

/// The kernel's counters of a TAP device (/proc/net/dev in its namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TapKernel {
    /// Frames shunt wrote that the host received, and those its kernel
    /// dropped.
    pub rx_packets: u64,
    pub rx_dropped: u64,
    /// Frames the host sent towards shunt, and those dropped before shunt
    /// read them (the TAP's transmit queue, `txqueuelen`, was full).
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// One remote VTEP of `shunt stats --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VtepStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub learned: u64,
    /// Super-frames towards this VTEP passed whole to the underlay (with
    /// UDP-tunnel GSO) or cut in software, checksums completed in software,
    /// and tunnel super-frames from it (docs/offloads.md).
    #[serde(default)]
    pub offload: crate::counters::OffloadTotals,
    /// By reason, only those that happened.
    pub drops: BTreeMap<String, u64>,
    pub nexthop: Option<String>,
    pub nexthop_mac: Option<String>,
}

/// `shunt stats --json` "umem": when the switch is idle, `frames` =
/// `pool` + `cached` + `in_kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Umem {
    pub frames: u64,
    pub pool: u64,
    pub cached: u64,
    pub in_kernel: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbUsage {
    pub entries: u64,
    pub capacity: u64,
}

/// One name of `shunt dns --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsName {
    pub name: String,
    pub network: String,
    /// "host" or "alias".
    #[serde(rename = "type")]
    pub kind: String,
    pub addresses: Vec<String>,
    /// The same name with the network's domain.
    pub also: Vec<String>,
}

/// The first answer to `trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceStart {
    pub tracing: bool,
}

/// The last answer to `trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEnd {
    pub end: bool,
    pub frames: u64,
}

/// A line of a trace after [`TraceStart`]: a frame or the end.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceEvent {
    /// A trace record (trace::TraceLine): its words, and all of it.
    Frame {
        text: String,
        record: Value,
    },
    End(TraceEnd),
}

impl TraceEvent {
    pub fn from_value(v: Value) -> Result<TraceEvent, serde_json::Error> {
        if v.get("end").is_some() {
            return serde_json::from_value(v).map(TraceEvent::End);
        }
        #[derive(Deserialize)]
        struct Text {
            text: String,
        }
        let Text { text } = Text::deserialize(&v)?;
        Ok(TraceEvent::Frame { text, record: v })
    }
}

/// `msg` as one line of the protocol, newline included. Through a JSON
/// value, whose objects keep their keys sorted: the wire (and `--json`)
/// stays byte for byte what it was when it was built from `json!` values.
pub fn to_line<T: Serialize>(msg: &T) -> String {
    let mut s = match serde_json::to_value(msg) {
        Ok(v) => v.to_string(),
        // Only a map with non-string keys fails, and there is none here.
        Err(e) => {
            serde_json::json!({ "error": format!("cannot encode the answer: {e}") }).to_string()
        }
    };
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_on_the_wire() {
        let r: Request = serde_json::from_str(r#"{"cmd":"ping"}"#).expect("ping");
        assert_eq!(r, Request::Ping);
        // What older clients send: null for an absent option.
        let r: Request = serde_json::from_str(r#"{"cmd":"fdb","network":null}"#).expect("fdb");
        assert_eq!(r, Request::Fdb { network: None });
        let r: Request = serde_json::from_str(r#"{"cmd":"trace","port":"h1"}"#).expect("trace");
        assert_eq!(
            r,
            Request::Trace {
                port: Some("h1".into()),
                spec: CaptureSpec::default(),
            }
        );
        // The capture's filters ride along, flat.
        let r: Request = serde_json::from_str(
            r#"{"cmd":"trace","targets":["lan"],"mac":"02:00:00:00:00:01","drops":true,"count":3}"#,
        )
        .expect("trace with filters");
        let Request::Trace { spec, .. } = r else {
            panic!("not a trace: {r:?}")
        };
        assert_eq!(spec.targets, ["lan"]);
        assert_eq!(spec.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert!(spec.drops);
        assert_eq!(spec.count, Some(3));
        // The control fuzz target's check on trace requests (filters, odd
        // numbers and all) is testing::fuzz's `trace_requests_read_back`.
        assert_eq!(
            to_line(&Request::FdbDelete {
                network: "lan".into(),
                mac: "02:00:00:00:00:01".into()
            }),
            "{\"cmd\":\"fdb_delete\",\"mac\":\"02:00:00:00:00:01\",\"network\":\"lan\"}\n"
        );
        for c in Request::CMDS {
            let v = serde_json::json!({"cmd": c, "host": "h", "network": "n", "mac": "m", "port": "p", "up": true, "name": "m", "source": ["p"], "destination": "d"});
            let r: Request = serde_json::from_value(v).expect("every cmd parses");
            assert_eq!(r.cmd(), c);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"nope"}"#).is_err());
        // A whole number of seconds, as a script would write it.
        let r: Request = serde_json::from_str(r#"{"cmd":"trace","seconds":2}"#).expect("seconds");
        assert_eq!(
            r,
            Request::Trace {
                port: None,
                spec: CaptureSpec {
                    seconds: Some(2.0),
                    ..CaptureSpec::default()
                }
            }
        );
    }

    #[test]
    fn bad_requests_are_told_what_is_wrong() {
        let bad = |line: &[u8]| decode(line).expect_err("not a request");
        assert_eq!(bad(br#"{"cmd":"nope"}"#), "unknown command \"nope\"");
        assert_eq!(bad(br#"{"x":1}"#), "unknown command \"\"");
        assert!(bad(b"not json").starts_with("bad request: "));
        assert!(bad(b"\xff\n").starts_with("bad request: not UTF-8"));
        let e = bad(br#"{"cmd":"attach","host":"h"}"#);
        assert!(e.contains("missing field `network`"), "{e}");
        assert_eq!(decode(b"{\"cmd\":\"ping\"}\n"), Ok(Request::Ping));
    }

    #[test]
    fn answers_keep_sorted_keys() {
        let e = FdbEntry {
            network: "lan".into(),
            vlan: None,
            mac: "02:42:0a:00:00:02".into(),
            port: "h1.lan".into(),
            is_static: false,
            age_secs: 5.588,
        };
        let line = to_line(&vec![e.clone()]);
        assert_eq!(
            line,
            "[{\"age_secs\":5.588,\"mac\":\"02:42:0a:00:00:02\",\"network\":\"lan\",\"port\":\"h1.lan\",\"static\":false,\"vlan\":null}]\n"
        );
        let back: Vec<FdbEntry> = serde_json::from_str(&line).expect("round trip");
        assert_eq!(back, vec![e]);
    }
}
