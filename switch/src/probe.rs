//! `shunt trace --packet "in=h1.lan dst=02:42:0a:00:00:03 vlan=10 type=arp"`:
//! what the switch would do with such a frame now, stage by stage, as
//! Open vSwitch's `ofproto/trace` says it. The control plane parses the
//! description ([`PacketSpec`]), fills what it leaves out from the
//! topology, builds the frame with shunt-parsers' views ([`build`]), and
//! runs it through the real stages in a dry run (pipeline::dry): the same
//! plan, FDB, port and spanning-tree states as the workers', changing
//! nothing. Then each stage's decision is put in words ([`Report`]).

use crate::config::{PortMode, Topology};
use crate::counters::DropReason;
use crate::ids::{Egress, NetId, PortId};
use crate::pipeline::dry::{self, DryRun, Scratch};
use crate::pipeline::learn::Learned;
use crate::pipeline::{Meta, Stage, Verdict};
use crate::runtime::Runtime;
use serde::{Deserialize, Serialize};
use shunt_parsers::{
    ArpOp, ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet,
    MacAddr, UdpPacket, VlanTag,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The keys `--packet` takes.
pub const KEYS: [&str; 8] = [
    "in", "src", "dst", "vlan", "type", "src_ip", "dst_ip", "len",
];

fn keys() -> String {
    KEYS.join(", ")
}

/// A frame as `--packet` describes it; what is absent is filled in from
/// the topology (docs/trace.md, "Asking about a frame").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PacketSpec {
    /// `in=`: the port it comes in on (a host with one port will do).
    pub port: String,
    pub src: Option<MacAddr>,
    /// `dst=`: a MAC, or `switch`: the switch's own MAC on the network.
    pub dst: Option<Dst>,
    /// `vlan=`: the 802.1Q tag it carries (0: priority-tagged).
    pub vlan: Option<u16>,
    /// `type=`: arp, ipv4, ipv6 or a number.
    pub ethertype: Option<u16>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    /// `len=`: the frame's length, tag included (at least its headers').
    pub len: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst {
    Mac(MacAddr),
    /// The switch's own MAC on the frame's network.
    Switch,
}

/// What is wrong with a `--packet` string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("--packet: {0:?} is not KEY=VALUE (keys: {keys})", keys = keys())]
    NotKeyValue(String),
    #[error("--packet: unknown key {0:?} (keys: {keys})", keys = keys())]
    UnknownKey(String),
    #[error("--packet: {key}={value:?}: {why}")]
    BadValue {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("--packet: {0}= given twice")]
    Twice(&'static str),
    #[error("--packet: in=PORT is required (keys: {keys})", keys = keys())]
    NoPort,
}

/// Why `trace --packet` could not be answered; said to the client.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("in={0}: no port or host of that name")]
    NoPort(String),
    #[error("in={host}: the host has {n} ports ({names}): name one")]
    Ambiguous {
        host: String,
        n: usize,
        names: String,
    },
    #[error("in={0}: the VXLAN underlay takes VXLAN packets, not frames of a network: ask about a frame entering on a host port or a trunk")]
    Underlay(String),
    #[error("in={0}: not a host's port, so there is no MAC to send from: give src=")]
    NoSource(String),
    #[error("dst=switch: the switch has no address of its own on this frame's network")]
    NoSwitchMac,
    #[error("--packet: {0}")]
    Build(&'static str),
}

impl PacketSpec {
    /// Reads `in=h1.lan dst=... vlan=10 type=arp` (keys separated by
    /// spaces or commas, in any order). Never panics.
    pub fn parse(s: &str) -> Result<PacketSpec, SpecError> {
        let mut p = PacketSpec::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for word in s.split(|c: char| c.is_whitespace() || c == ',') {
            if word.is_empty() {
                continue;
            }
            let Some((k, v)) = word.split_once('=') else {
                return Err(SpecError::NotKeyValue(word.to_string()));
            };
            let key = KEYS
                .iter()
                .copied()
                .find(|&x| x.eq_ignore_ascii_case(k))
                .ok_or_else(|| SpecError::UnknownKey(k.to_string()))?;
            if seen.contains(&key) {
                return Err(SpecError::Twice(key));
            }
            seen.push(key);
            let bad = |why| SpecError::BadValue {
                key,
                value: v.to_string(),
                why,
            };
            match key {
                "in" if v.is_empty() => return Err(bad("a port or host name")),
                "in" => p.port = v.to_string(),
                "src" => p.src = Some(v.parse().map_err(|_| bad("a MAC address"))?),
                "dst" if v.eq_ignore_ascii_case("switch") => p.dst = Some(Dst::Switch),
                "dst" => {
                    let m = v.parse().map_err(|_| bad("a MAC address, or \"switch\""))?;
                    p.dst = Some(Dst::Mac(m));
                }
                "vlan" => {
                    let vid: u16 = v.parse().map_err(|_| bad("a VLAN id, 0 to 4095"))?;
                    if vid > 4095 {
                        return Err(bad("a VLAN id, 0 to 4095"));
                    }
                    p.vlan = Some(vid);
                }
                "type" => {
                    let t = crate::capture::ethertype(v)
                        .ok_or_else(|| bad("arp, ipv4, ipv6 or a number such as 0x88cc"))?;
                    p.ethertype = Some(t);
                }
                "src_ip" => p.src_ip = Some(v.parse().map_err(|_| bad("an IP address"))?),
                "dst_ip" => p.dst_ip = Some(v.parse().map_err(|_| bad("an IP address"))?),
                "len" => {
                    let n: usize = v
                        .parse()
                        .map_err(|_| bad("a frame length in bytes, at most 9216"))?;
                    if n > MAX_LEN {
                        return Err(bad("a frame length in bytes, at most 9216"));
                    }
                    p.len = Some(n);
                }
                _ => return Err(SpecError::UnknownKey(k.to_string())),
            }
        }
        if p.port.is_empty() {
            return Err(SpecError::NoPort);
        }
        Ok(p)
    }
}

/// The longest frame `len=` asks for (a jumbo frame's).
pub const MAX_LEN: usize = 9216;

/// A frame to build: every field decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub src: MacAddr,
    pub dst: MacAddr,
    pub vlan: Option<u16>,
    pub ethertype: u16,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// At least 60 bytes (64 tagged); more with `len=`.
    pub len: Option<usize>,
}

/// UDP ports of the IPv4 and IPv6 frames built: from an ephemeral port to
/// the discard service.
const UDP_SRC: u16 = 49152;
const UDP_DST: u16 = 9;

/// The frame's bytes, written through shunt-parsers' views: Ethernet (and
/// an 802.1Q tag), then an ARP request (a reply when the destination is
/// unicast), an IPv4 or IPv6 header with a UDP header, or zeros, padded
/// to 60 bytes (64 tagged) or `len`.
pub fn build(f: &Frame) -> Result<Vec<u8>, &'static str> {
    const ETH: usize = shunt_parsers::ethernet::HEADER_LEN;
    let tag = if f.vlan.is_some() { 4 } else { 0 };
    let l3_len = match f.ethertype {
        0x0806 => 28,
        0x0800 => 20 + 8,
        0x86dd => 40 + 8,
        _ => 0,
    };
    let min = (ETH + tag + l3_len).max(60 + tag);
    let len = f.len.unwrap_or(min);
    if len < ETH + tag + l3_len {
        return Err("len= is shorter than the frame's headers");
    }
    let mut b = vec![0u8; len];
    let mut eth = EthernetFrame::new_unchecked(&mut b[..]);
    eth.set_dst_addr(f.dst);
    eth.set_src_addr(f.src);
    let inner = EtherType::from_u16(f.ethertype);
    let l3 = match f.vlan {
        Some(vid) => {
            eth.set_ethertype(EtherType::Vlan);
            let mut t = VlanTag::new_unchecked(eth.payload_mut());
            t.set_tci(vid);
            t.set_ethertype(inner);
            ETH + 4
        }
        None => {
            eth.set_ethertype(inner);
            ETH
        }
    };
    let body = &mut b[l3..];
    match (f.ethertype, f.src_ip, f.dst_ip) {
        (0x0806, IpAddr::V4(s), IpAddr::V4(d)) => {
            let reply = !f.dst.is_multicast();
            let a = ArpRepr {
                op: if reply { ArpOp::Reply } else { ArpOp::Request },
                sender_mac: f.src,
                sender_ip: s,
                target_mac: if reply { f.dst } else { MacAddr::ZERO },
                target_ip: d,
            };
            a.emit(&mut ArpPacket::new_unchecked(body));
        }
        (0x0806, ..) => return Err("an ARP frame takes IPv4 addresses"),
        (0x0800, IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(body.len()).map_err(|_| "too long")?;
            let mut ip = Ipv4Packet::new_unchecked(&mut body[..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len(total);
            ip.set_ttl(64);
            ip.set_protocol(IpProtocol::Udp);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            let mut u = UdpPacket::new_unchecked(ip.payload_mut());
            u.set_src_port(UDP_SRC);
            u.set_dst_port(UDP_DST);
            u.set_len(total - 20);
            u.fill_checksum_v4(s, d);
        }
        (0x0800, ..) => return Err("an IPv4 frame takes IPv4 addresses"),
        (0x86dd, s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(x) => Some(x),
                IpAddr::V4(x) if x.is_unspecified() => Some(Ipv6Addr::UNSPECIFIED),
                IpAddr::V4(_) => None,
            };
            let (Some(s), Some(d)) = (v6(s), v6(d)) else {
                return Err("an IPv6 frame takes IPv6 addresses");
            };
            let payload = u16::try_from(body.len() - 40).map_err(|_| "too long")?;
            let mut ip = Ipv6Packet::new_unchecked(&mut body[..]);
            ip.set_version(6);
            ip.set_payload_len(payload);
            ip.set_next_header(IpProtocol::Udp);
            ip.set_hop_limit(64);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            let mut u = UdpPacket::new_unchecked(ip.payload_mut());
            u.set_src_port(UDP_SRC);
            u.set_dst_port(UDP_DST);
            u.set_len(payload);
            u.fill_checksum_v6(s, d);
        }
        _ => {}
    }
    Ok(b)
}

/// One stage's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLine {
    pub stage: String,
    pub text: String,
}

/// One copy the switch would send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyLine {
    /// The port, or `vxlan:<remote ip>`.
    pub port: String,
    /// The port it leaves by (the underlay, for a remote VTEP).
    pub via: String,
    /// The 802.1Q tag it carries (the inner frame's, none, inside VXLAN).
    pub vlan: Option<u16>,
    /// `none`, `push`, `pop`, `rewrite` or `vxlan`.
    pub edit: String,
    /// Why the copy would be lost at the port after all (`link_down`).
    pub dropped: Option<String>,
    /// The VXLAN VNI and the remote VTEP, when encapsulated.
    pub vni: Option<u32>,
    pub vtep: Option<String>,
    pub len: usize,
}

/// The answer to `trace --packet` (`--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The frame asked about, every key filled in.
    pub packet: String,
    pub ingress: String,
    /// The frame built, in hex.
    pub frame: String,
    /// One line per stage, in the pipeline's order.
    pub stages: Vec<StageLine>,
    /// As in `shunt trace --json`: `forward`, `flood`, `drop`, `local`.
    pub action: String,
    pub reason: Option<String>,
    pub out: Vec<CopyLine>,
    /// The frame's line as `shunt trace` would print it.
    pub text: String,
}

/// The port `name` names: a port, or a host with a single port.
fn ingress_port(rt: &Runtime, name: &str) -> Result<PortId, ProbeError> {
    let ports = crate::control::answers::resolve_ports(rt, name);
    match ports[..] {
        [] => Err(ProbeError::NoPort(name.to_string())),
        [p] => PortId::new(p.into()).ok_or_else(|| ProbeError::NoPort(name.to_string())),
        _ => Err(ProbeError::Ambiguous {
            host: name.to_string(),
            n: ports.len(),
            names: ports
                .iter()
                .filter_map(|&p| PortId::new(p.into()))
                .map(|p| rt.port_name(p.into()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The network a frame with tag `vlan` joins on port `p` (for the
/// defaults; classify decides for real).
fn network_of(t: &Topology, p: PortId, vlan: Option<u16>) -> Option<usize> {
    let port = t.ports.get(p.index())?;
    let by_vlan = |v: u16| t.networks.iter().position(|n| n.vlan == Some(v));
    match (&port.mode, vlan) {
        (PortMode::Access { network }, _) => Some(*network),
        (PortMode::Trunk { native, .. }, None | Some(0)) => *native,
        (PortMode::Trunk { .. }, Some(v)) => by_vlan(v),
    }
}

/// The IPv4 address of the host whose MAC is `mac` on network `net`.
fn host_ip(t: &Topology, net: Option<usize>, mac: MacAddr) -> Option<Ipv4Addr> {
    t.hosts
        .iter()
        .flat_map(|h| &h.links)
        .find(|l| Some(l.network) == net && l.mac == mac)
        .and_then(|l| l.ip.map(|n| n.addr))
}

/// The frame `spec` describes, entering on `p`, its gaps filled in.
fn complete(rt: &Runtime, spec: &PacketSpec, p: PortId) -> Result<Frame, ProbeError> {
    let t = rt.topo();
    let net = network_of(&t, p, spec.vlan);
    let port = t.ports.get(p.index());
    // The host behind a host port sends from its MAC on that network.
    let own = port.and_then(|pc| {
        let h = t.hosts.iter().find(|h| Some(&h.name) == pc.host.as_ref())?;
        let PortMode::Access { network } = pc.mode else {
            return None;
        };
        h.links.iter().find(|l| l.network == network)
    });
    let src = match (spec.src, own) {
        (Some(m), _) => m,
        (None, Some(l)) => l.mac,
        (None, None) => return Err(ProbeError::NoSource(spec.port.clone())),
    };
    let switch_mac = || {
        let n = NetId::new(net?)?;
        let s = rt.stack.as_ref()?.nets.get(n.index())?;
        (s.mac != MacAddr::ZERO).then_some(s.mac)
    };
    let dst = match spec.dst {
        None => MacAddr::BROADCAST,
        Some(Dst::Mac(m)) => m,
        Some(Dst::Switch) => switch_mac().ok_or(ProbeError::NoSwitchMac)?,
    };
    let ethertype = spec
        .ethertype
        .unwrap_or(if dst.is_broadcast() { 0x0806 } else { 0x0800 });
    let v6 = ethertype == 0x86dd;
    let unspecified = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let src_ip = spec.src_ip.unwrap_or_else(|| match host_ip(&t, net, src) {
        Some(a) if !v6 => IpAddr::V4(a),
        _ => unspecified,
    });
    let dst_ip = spec.dst_ip.unwrap_or_else(|| {
        let switch_ip = || {
            let n = NetId::new(net?)?;
            rt.stack.as_ref()?.nets.get(n.index())?.ip
        };
        match host_ip(&t, net, dst) {
            Some(a) if !v6 => IpAddr::V4(a),
            _ if v6 => unspecified,
            _ if Some(dst) == switch_mac() => switch_ip().map_or(unspecified, IpAddr::V4),
            _ if dst.is_broadcast() && ethertype == 0x0800 => IpAddr::V4(Ipv4Addr::BROADCAST),
            _ => unspecified,
        }
    });
    Ok(Frame {
        src,
        dst,
        vlan: spec.vlan,
        ethertype,
        src_ip,
        dst_ip,
        len: spec.len,
    })
}

fn type_name(t: u16) -> String {
    match t {
        0x0806 => "arp".into(),
        0x0800 => "ipv4".into(),
        0x86dd => "ipv6".into(),
        n => format!("0x{n:04x}"),
    }
}

/// Answers `trace --packet`: parses `packet`, builds the frame and runs
/// it through the stages in a dry run.
pub fn probe(rt: &Runtime, packet: &str) -> Result<Report, ProbeError> {
    let spec = PacketSpec::parse(packet)?;
    let p = ingress_port(rt, &spec.port)?;
    let plan = rt.plan.load();
    if plan.vxlan.as_ref().is_some_and(|v| v.underlay == p) {
        return Err(ProbeError::Underlay(spec.port.clone()));
    }
    let f = complete(rt, &spec, p)?;
    let bytes = build(&f).map_err(ProbeError::Build)?;
    let ingress = rt.port_name(p.into());
    let vlan_s = f.vlan.map_or(String::new(), |v| format!(" vlan={v}"));
    let described = format!(
        "in={ingress} src={} dst={}{vlan_s} type={} src_ip={} dst_ip={} len={}",
        f.src,
        f.dst,
        type_name(f.ethertype),
        f.src_ip,
        f.dst_ip,
        bytes.len()
    );
    // The link: a port that is down (or flapped down) gives the workers
    // nothing, so the stages never see its frames.
    let down = !rt
        .port_up
        .get(p.index())
        .is_some_and(|u| u.load(std::sync::atomic::Ordering::Relaxed))
        || rt.impair.is_down(p.index());
    let mdb = rt.l2.as_ref().map(|l| l.mdb.load());
    // The dry run puts counters of its own in place of these.
    let scratch_counters = crate::counters::WorkerCounters::new();
    let base = crate::worker::context(
        rt,
        &plan,
        mdb.as_deref().map(|m| &**m),
        &scratch_counters,
        0,
    );
    let mut scratch = Scratch::new();
    let run = match down {
        true => None,
        false => Some(
            dry::run(&base, &mut scratch, p, &bytes, rt.now_ms())
                .ok_or(ProbeError::Build("the frame does not fit a frame buffer"))?,
        ),
    };
    let mut stages = vec![StageLine {
        stage: "frame".into(),
        text: format!(
            "{ingress} receives {} > {} type 0x{:04x}{} len {}{}",
            f.src,
            f.dst,
            f.ethertype,
            payload_words(&f),
            bytes.len(),
            f.vlan
                .map_or(" untagged".to_string(), |v| format!(" tagged {v}"))
        ),
    }];
    let Some(run) = run else {
        let text = format!(
            "{ingress} is down: the switch takes no frame from it: dropped ({}): {}",
            DropReason::LinkDown.name(),
            DropReason::LinkDown.explain()
        );
        stages.push(StageLine {
            stage: "link".into(),
            text: text.clone(),
        });
        return Ok(Report {
            packet: described,
            text: format!("{ingress}: {text}"),
            ingress,
            frame: crate::capture::to_hex(&bytes),
            stages,
            action: "drop".into(),
            reason: Some(DropReason::LinkDown.name().into()),
            out: Vec::new(),
        });
    };
    let words = Words {
        rt,
        base: &base,
        p,
        ingress: &ingress,
        f: &f,
    };
    let line = crate::trace::describe(&run.record, &|e| rt.port_name(e), &|n| {
        crate::control::answers::net_name(rt, n)
    });
    // Forward's own decision: the final one, unless storm control or
    // egress changed it after.
    let forward = |v: Verdict| {
        if v == run.record.verdict {
            return line.decision.clone();
        }
        // (Fields set one by one: `..run.record` here made rustc 1.95
        // panic, "broken MIR", over the array's const length.)
        let mut r = run.record;
        r.verdict = v;
        r.n_out = 0;
        let d = crate::trace::describe(&r, &|e| rt.port_name(e), &|n| {
            crate::control::answers::net_name(rt, n)
        })
        .decision;
        d.strip_suffix(": flooded to ")
            .map_or(d.clone(), |x| format!("{x}: to be flooded"))
    };
    stages.extend(words.stages(&run, &forward));
    let out = words.copies(&run, &mut stages);
    Ok(Report {
        packet: described,
        ingress,
        frame: crate::capture::to_hex(&bytes),
        stages,
        action: line.action,
        reason: line.reason,
        out,
        text: line.text,
    })
}

/// "(ARP who-has 10.0.0.3 tell 10.0.0.2)", "(IPv4 10.0.0.2 > 10.0.0.3 UDP)".
fn payload_words(f: &Frame) -> String {
    match f.ethertype {
        0x0806 if f.dst.is_multicast() => format!(" (ARP who-has {} tell {})", f.dst_ip, f.src_ip),
        0x0806 => format!(" (ARP reply {} is-at {})", f.src_ip, f.src),
        0x0800 => format!(" (IPv4 {} > {} UDP)", f.src_ip, f.dst_ip),
        0x86dd => format!(" (IPv6 {} > {} UDP)", f.src_ip, f.dst_ip),
        _ => String::new(),
    }
}

/// What the stages' words need.
struct Words<'a> {
    rt: &'a Runtime,
    base: &'a crate::pipeline::Context<'a>,
    p: PortId,
    ingress: &'a str,
    f: &'a Frame,
}

impl Words<'_> {
    fn net(&self, m: &Meta) -> String {
        m.net.map_or("-".into(), |n| {
            crate::control::answers::net_name(self.rt, n)
        })
    }

    /// A line per stage that had something to do with the frame: once a
    /// stage dropped it (or took it), the later stages are not reached.
    /// `forward` is the forwarding decision in `shunt trace`'s words.
    fn stages(&self, run: &DryRun, forward: &dyn Fn(Verdict) -> String) -> Vec<StageLine> {
        let mut out = Vec::new();
        let mut before = Verdict::Pending;
        for &(stage, m) in &run.stages {
            let fin = matches!(
                before,
                Verdict::Drop(_) | Verdict::Local | Verdict::Control(_)
            );
            let changed = m.verdict != before;
            before = m.verdict;
            if fin {
                break;
            }
            let text = match stage {
                Stage::Classify => self.classify(&m),
                Stage::Learn => self.learn(&m),
                Stage::Ctl | Stage::Egress if changed => self.verdict_words(&m),
                Stage::Stp => self.stp(changed),
                Stage::Local if changed => self.local(&m),
                Stage::Forward if changed => forward(m.verdict),
                Stage::Storm => match self.storm(&m, changed) {
                    Some(t) => t,
                    None => continue,
                },
                Stage::Ctl | Stage::Local | Stage::Forward | Stage::Egress => continue,
            };
            out.push(StageLine {
                stage: stage_name(stage).into(),
                text,
            });
        }
        out
    }

    fn verdict_words(&self, m: &Meta) -> String {
        match m.verdict {
            Verdict::Drop(r) => format!("dropped ({}): {}", r.name(), r.explain()),
            Verdict::Control(k) => format!(
                "control frame ({}) for the switch's L2 protocols: taken, not forwarded",
                k.name()
            ),
            Verdict::Local => "for the switch itself: handed to its host stack".into(),
            _ => String::new(),
        }
    }

    fn classify(&self, m: &Meta) -> String {
        let plan = self.base.plan;
        let Some(pp) = plan.ports.get(self.p.index()) else {
            return "no such port".into();
        };
        let kind = if pp.trunk { "trunk" } else { "access port" };
        let carried = || {
            let mut v: Vec<String> = pp
                .vid_net
                .iter()
                .enumerate()
                .filter(|(_, n)| n.is_some())
                .map(|(vid, _)| vid.to_string())
                .collect();
            if v.is_empty() {
                v.push("none".into());
            }
            v.join(", ")
        };
        let tag = match self.f.vlan {
            Some(0) => "priority-tagged (VID 0)".to_string(),
            Some(v) => format!("tagged {v}"),
            None => "untagged".to_string(),
        };
        match m.verdict {
            Verdict::Drop(r @ DropReason::VlanNotAllowed) if !pp.trunk => format!(
                "dropped ({}): access port {} takes untagged and priority-tagged frames only, not VLAN {}",
                r.name(),
                self.ingress,
                self.f.vlan.unwrap_or(0)
            ),
            Verdict::Drop(r @ DropReason::VlanNotAllowed) => format!(
                "dropped ({}): VLAN {} is not allowed on {kind} {} (it takes VLANs {})",
                r.name(),
                self.f.vlan.unwrap_or(0),
                self.ingress,
                carried()
            ),
            Verdict::Drop(r @ DropReason::VlanUntagged) => format!(
                "dropped ({}): {tag} frame on {kind} {}, which has no network for untagged frames",
                r.name(),
                self.ingress
            ),
            Verdict::Drop(r) => format!("dropped ({}): {}", r.name(), r.explain()),
            _ => format!(
                "{kind} {}: {tag} frame joins network {}",
                self.ingress,
                self.net(m)
            ),
        }
    }

    fn learn(&self, m: &Meta) -> String {
        let src = self.f.src;
        let at = |e: Egress| self.rt.port_name(e);
        let static_at = || {
            m.net
                .and_then(|n| self.base.fdb.lookup(n.raw(), src.as_bytes()))
                .and_then(|e| Egress::decode(e.port))
                .map_or("-".into(), at)
        };
        match m.learned {
            _ if matches!(m.verdict, Verdict::Drop(DropReason::SrcMulticast)) => format!(
                "dropped (src_multicast): {}",
                DropReason::SrcMulticast.explain()
            ),
            Learned::Nothing => "nothing would be learned".into(),
            Learned::New => format!("would learn {src} on {} (a new entry)", self.ingress),
            Learned::Refreshed => {
                format!("{src} already known on {}: its age would be refreshed", self.ingress)
            }
            Learned::Moved { from } => {
                format!("{src} would move from {} to {}", at(from), self.ingress)
            }
            Learned::Static => format!(
                "{src} is a static entry on {}: not moved, not refreshed",
                static_at()
            ),
            Learned::Full => format!(
                "{src} would not be learned: the FDB is full (fdb_full; the frame goes on)"
            ),
            Learned::Disabled => self.learning_off(m),
            Learned::Limited => format!(
                "{src} would not be learned: {} holds its max_learned MACs (port_learn_limit; the frame goes on)",
                self.ingress
            ),
            Learned::Blocked => format!(
                "{src} would not be learned: it flapped between ports and is blocked for a while (mac_flap_blocked)"
            ),
        }
    }

    /// Why learn left the source alone (the same three checks as learn).
    fn learning_off(&self, m: &Meta) -> String {
        let plan = self.base.plan;
        let port_learns = plan.ports.get(self.p.index()).is_some_and(|p| p.learning);
        let macvlan = m
            .net
            .and_then(|n| plan.nets.get(n.index()))
            .is_some_and(|n| n.macvlan.is_some());
        if !port_learns {
            format!("learning is off on {} (learning = false)", self.ingress)
        } else if macvlan {
            format!(
                "network {} is a macvlan network: it learns nothing (its hosts' MACs are static)",
                self.net(m)
            )
        } else {
            format!(
                "{} learns nothing while spanning tree has it discarding",
                self.ingress
            )
        }
    }

    fn stp(&self, decided_here: bool) -> String {
        if self.base.stp.is_none() {
            return "spanning tree is off".into();
        }
        let st = crate::pipeline::stp::state(self.base, self.p);
        if decided_here {
            return format!(
                "dropped (stp_discarding): {} is {} in the spanning tree",
                self.ingress,
                st.name()
            );
        }
        format!("{} is {} in the spanning tree", self.ingress, st.name())
    }

    fn local(&self, m: &Meta) -> String {
        let why = match (m.net, self.base.stack) {
            (Some(n), Some(s)) => match s.nets.get(n.index()) {
                Some(na) if na.mac == self.f.dst => {
                    format!("{} is the switch's MAC in {}", self.f.dst, self.net(m))
                }
                Some(na) if na.ip.map(IpAddr::V4) == Some(self.f.dst_ip) => {
                    format!("an ARP request for the switch's address {}", self.f.dst_ip)
                }
                Some(_) => format!(
                    "an ARP request for {}, which the switch answers itself (arp_suppress)",
                    self.f.dst_ip
                ),
                None => String::new(),
            },
            _ => String::new(),
        };
        match m.verdict {
            Verdict::Local => format!("for the switch itself ({why}): handed to its host stack"),
            _ => self.verdict_words(m),
        }
    }

    /// Storm control's word on a flood (None: nothing to say: not a flood
    /// and no storm control on the port).
    fn storm(&self, m: &Meta, decided_here: bool) -> Option<String> {
        let rates = self.base.guard.storm.get(self.p);
        let class = match m.verdict {
            Verdict::Flood(c) | Verdict::Macvlan { cause: c, .. } => Some(c),
            Verdict::Drop(
                r @ (DropReason::StormBroadcast
                | DropReason::StormMulticast
                | DropReason::StormUnknownUnicast),
            ) => crate::counters::FloodCause::ALL
                .into_iter()
                .find(|&c| crate::pipeline::storm::reason(c) == r),
            _ => None,
        };
        let Some(c) = class else {
            return rates
                .iter()
                .any(Option::is_some)
                .then(|| "not a flood: storm control does not apply".into());
        };
        Some(match rates[c as usize] {
            None => format!("{} frames are not limited on {}", c.name(), self.ingress),
            Some(r) if decided_here => format!(
                "dropped ({}): {} frames on {} are over their {} a second",
                crate::pipeline::storm::reason(c).name(),
                c.name(),
                self.ingress,
                r.per_sec
            ),
            Some(r) => format!(
                "{} frames on {} are limited to {} a second: a token is free, it passes",
                c.name(),
                self.ingress,
                r.per_sec
            ),
        })
    }

    /// A line per copy (pushed into `stages`), and the copies.
    fn copies(&self, run: &DryRun, stages: &mut Vec<StageLine>) -> Vec<CopyLine> {
        let mut out = Vec::new();
        let tagged_in = run.stages.first().is_some_and(|(_, m)| m.tag_len > 0);
        for s in &run.sent {
            let port = self.rt.port_name(s.to);
            let via = self.rt.port_name(s.dev.into());
            let mut c = CopyLine {
                port: port.clone(),
                via: via.clone(),
                vlan: None,
                edit: "none".into(),
                vni: None,
                vtep: None,
                len: s.bytes.len(),
                dropped: None,
            };
            let text = if s.to.is_vtep() {
                match shunt_parsers::vxlan::decap_for(&s.bytes, None) {
                    Ok(d) => {
                        c.edit = "vxlan".into();
                        c.vni = Some(d.vni);
                        c.vtep = Some(d.dst_ip.to_string());
                        format!(
                            "to VTEP {} out of {via}: VXLAN encapsulation, VNI {}, outer {} > {} UDP {}{}, {} bytes",
                            d.dst_ip,
                            d.vni,
                            d.src_ip,
                            d.dst_ip,
                            d.dst_port,
                            if tagged_in { ", the inner tag removed" } else { "" },
                            s.bytes.len()
                        )
                    }
                    Err(_) => format!("to {port} out of {via}: {} bytes", s.bytes.len()),
                }
            } else {
                let vid = shunt_parsers::vlan::outer_tag(&s.bytes).map(|t| t.vid);
                c.vlan = vid;
                let (edit, words) = match (self.f.vlan.filter(|_| tagged_in), vid) {
                    (None, None) => ("none", "untagged, as received".to_string()),
                    (None, Some(v)) => ("push", format!("tag {v} pushed")),
                    (Some(v), None) => ("pop", format!("tag {v} popped: untagged")),
                    (Some(a), Some(b)) if a == b => ("none", format!("tagged {b}, as received")),
                    (Some(a), Some(b)) => ("rewrite", format!("tag {a} rewritten to {b}")),
                };
                c.edit = edit.into();
                format!("out of {port}: {words}, {} bytes", s.bytes.len())
            };
            // A link taken down (`shunt link`, a flap) loses the copy at
            // the port's send, after the edit (impair/).
            let text = if self.rt.impair.is_down(s.dev.index()) {
                c.dropped = Some(DropReason::LinkDown.name().into());
                format!(
                    "{text}; then dropped (link_down): {}",
                    DropReason::LinkDown.explain()
                )
            } else {
                text
            };
            stages.push(StageLine {
                stage: "edit".into(),
                text,
            });
            out.push(c);
        }
        for &(to, why) in &run.refused {
            stages.push(StageLine {
                stage: "edit".into(),
                text: format!(
                    "{}: no copy sent{}",
                    self.rt.port_name(to),
                    why.map_or(String::new(), |r| format!(
                        ": dropped ({}): {}",
                        r.name(),
                        r.explain()
                    ))
                ),
            });
        }
        out
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Classify => "classify",
        Stage::Learn => "learn",
        Stage::Ctl => "control",
        Stage::Stp => "stp",
        Stage::Local => "local",
        Stage::Forward => "forward",
        Stage::Storm => "storm",
        Stage::Egress => "egress",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = PacketSpec::parse("in=h1.lan dst=02:42:0a:00:00:03 vlan=10 type=arp").expect("ok");
        assert_eq!(p.port, "h1.lan");
        assert_eq!(p.dst, Some(Dst::Mac(MacAddr([2, 0x42, 0x0a, 0, 0, 3]))));
        assert_eq!(p.vlan, Some(10));
        assert_eq!(p.ethertype, Some(0x0806));
        let p = PacketSpec::parse(" in=up0,src=02:00:00:00:00:01  type=0x88cc dst=switch len=100 ")
            .expect("ok");
        assert_eq!(p.ethertype, Some(0x88cc));
        assert_eq!(p.dst, Some(Dst::Switch));
        assert_eq!(p.len, Some(100));
        let p = PacketSpec::parse("IN=h1 type=ipv6 src_ip=fe80::1 dst_ip=ff02::1").expect("ok");
        assert_eq!(p.port, "h1");
        assert_eq!(p.src_ip, Some("fe80::1".parse().expect("ip")));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| PacketSpec::parse(s).expect_err(s).to_string();
        assert_eq!(
            err(""),
            format!("--packet: in=PORT is required (keys: {})", keys())
        );
        assert!(err("dst=ff:ff:ff:ff:ff:ff").contains("in=PORT is required"));
        let e = err("in=h1 colour=red");
        assert!(e.contains("unknown key \"colour\""), "{e}");
        assert!(
            e.contains("in, src, dst, vlan, type, src_ip, dst_ip, len"),
            "{e}"
        );
        assert!(err("in=h1 dst").contains("\"dst\" is not KEY=VALUE"));
        assert!(err("in=h1 dst=zz").contains("dst=\"zz\": a MAC address"));
        assert!(err("in=h1 vlan=4096").contains("vlan=\"4096\": a VLAN id, 0 to 4095"));
        assert!(err("in=h1 vlan=-1").contains("a VLAN id"));
        assert!(err("in=h1 type=ipx").contains("type=\"ipx\""));
        assert!(err("in=h1 src_ip=10.0.0.300").contains("an IP address"));
        assert!(err("in=h1 len=99999").contains("at most 9216"));
        assert!(err("in=h1 in=h2").contains("in= given twice"));
        assert!(err("in= dst=switch").contains("in=\"\""));
        // Whatever comes in: an error or a spec, never a panic.
        let junk = [
            "=",
            "==",
            "in==",
            "in=h1 =x",
            "\u{0}in=\u{ff}",
            "in=h1 vlan=",
            "in=h1 len=1e9",
        ];
        for j in junk {
            let _ = PacketSpec::parse(j);
        }
        let mut s = String::new();
        for b in 0u8..=255 {
            s.push(char::from(b));
            let _ = PacketSpec::parse(&s);
        }
    }

    fn frame(ethertype: u16, vlan: Option<u16>) -> Frame {
        Frame {
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            dst: MacAddr::BROADCAST,
            vlan,
            ethertype,
            src_ip: "10.0.0.2".parse().expect("ip"),
            dst_ip: "10.0.0.3".parse().expect("ip"),
            len: None,
        }
    }

    #[test]
    fn frames_are_built_with_the_parsers() {
        let b = build(&frame(0x0806, None)).expect("arp");
        assert_eq!(b.len(), 60);
        let a = ArpRepr::parse_frame(&b).expect("parses back");
        assert_eq!(a.op, ArpOp::Request);
        assert_eq!(a.target_ip, Ipv4Addr::new(10, 0, 0, 3));
        let b = build(&frame(0x0800, Some(10))).expect("ipv4");
        assert_eq!(b.len(), 64);
        let eth = EthernetFrame::new_checked(&b[..]).expect("eth");
        assert_eq!(eth.ethertype(), EtherType::Vlan);
        let tag = VlanTag::new_checked(eth.payload()).expect("tag");
        assert_eq!((tag.vid(), tag.ethertype()), (10, EtherType::Ipv4));
        let ip = Ipv4Packet::new_checked(tag.payload()).expect("ipv4");
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 0, 0, 3));
        let mut f = frame(0x86dd, None);
        f.src_ip = "fe80::1".parse().expect("ip");
        f.dst_ip = "ff02::1".parse().expect("ip");
        let b = build(&f).expect("ipv6");
        let ip = Ipv6Packet::new_checked(&b[14..]).expect("ipv6");
        assert_eq!(ip.next_header(), IpProtocol::Udp);
        // Addresses of the wrong family, a length too short: errors.
        assert!(build(&frame(0x86dd, None)).is_err());
        let mut f = frame(0x0800, None);
        f.len = Some(20);
        assert!(build(&f).is_err());
        let mut f = frame(0x88b5, None);
        f.len = Some(1514);
        assert_eq!(build(&f).expect("other").len(), 1514);
        // Every type, tag and length: a frame of that length or an error,
        // never a panic.
        let v6: IpAddr = "fe80::1".parse().expect("ip");
        for t in [0x0806, 0x0800, 0x86dd, 0x88b5, 0x8100, 0] {
            for vlan in [None, Some(0), Some(10), Some(4095)] {
                for len in [
                    None,
                    Some(0),
                    Some(13),
                    Some(17),
                    Some(45),
                    Some(60),
                    Some(MAX_LEN),
                ] {
                    for ip in [None, Some(v6)] {
                        let mut f = frame(t, vlan);
                        f.len = len;
                        if let Some(a) = ip {
                            f.src_ip = a;
                            f.dst_ip = a;
                        }
                        if let (Ok(b), Some(n)) = (build(&f), len) {
                            assert_eq!(b.len(), n);
                        }
                    }
                }
            }
        }
    }
}
