//! The fuzz targets' drivers (fuzz/fuzz_targets/*.rs are one line each):
//! every driver takes the fuzzer's bytes, feeds them to one input of the
//! switch and panics when an invariant breaks. They live here rather than
//! in fuzz/ so that an ordinary `cargo test` replays the seeds and every
//! input that once crashed (switch/tests/fuzz_replay.rs), without nightly
//! or cargo-fuzz.
//!
//! Frame inputs (`pipeline`, `stack`) are a list of steps:
//!
//! ```text
//!  ctl:u8  (bits 7, 6: 1 0)      port ctl & 15 taken down or up again
//!  ctl:u8  (bits 7, 6: 1 1)      a trace of every port started or stopped (pipeline)
//!  ctl:u8  len:u16be  bytes[len] a frame in from port ctl & 15 (stack: network ctl & 15);
//!                                bit 4: the batch ends after it; bit 5: 301 s pass first (ageing);
//!                                bit 6 (pipeline): bytes are a virtio-net header (12 bytes) and
//!                                the frame, whose offload state (checksum, GSO) travels with it
//! ```
//!
//! fuzz/make_seeds.py writes the seeds in this form from the captures.

use super::Rig;
use crate::config::{self, Topology};
use crate::control::proto;
use crate::counters::DropReason;
use crate::ids::{Egress, NetId, PortId, Segment, VtepId, MAX_VTEPS};
use crate::pipeline::mirror::Mirrored;
use crate::pipeline::{Verdict, BATCH};
use crate::stack::dns;
use crate::stack::iface::{self, Host, HostConfig, Reply};
use crate::stack::names::{Names, Rotation};
use crate::stack::{NetCounters, StackPkt};
use shunt_parsers::virtio_net::{
    Offload, OffloadError, VirtioNetHdr, VNET_HDR_LEN, VNET_HDR_TNL_LEN,
};
use shunt_parsers::{vxlan, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, UdpPacket};
use std::sync::{Arc, OnceLock};

/// The topology every frame target runs against.
pub const TOPOLOGY: &str = include_str!("fuzz_topology.toml");

/// The next hop's MAC for the first remote VTEP (the second stays
/// unresolved, so both encapsulation outcomes are reached).
const NEXTHOP_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

fn topology() -> &'static Topology {
    static T: OnceLock<Topology> = OnceLock::new();
    T.get_or_init(|| match config::parse("fuzz_topology.toml", TOPOLOGY) {
        Ok(t) => t,
        Err(e) => panic!("the fuzz topology: {e}"),
    })
}

/// One step of a frame input.
enum Step<'a> {
    Toggle(usize),
    Trace,
    Frame {
        port: usize,
        last: bool,
        age: bool,
        vnet: bool,
        bytes: &'a [u8],
    },
}

fn steps(mut data: &[u8]) -> impl Iterator<Item = Step<'_>> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        let port = usize::from(ctl & 0x0f);
        if ctl & 0x80 != 0 {
            data = rest;
            return Some(if ctl & 0x40 != 0 {
                Step::Trace
            } else {
                Step::Toggle(port)
            });
        }
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let (bytes, tail) = rest.split_at(len.min(rest.len()));
        data = tail;
        Some(Step::Frame {
            port,
            last: ctl & 0x10 != 0,
            age: ctl & 0x20 != 0,
            vnet: ctl & 0x40 != 0,
            bytes,
        })
    })
}

/// A rig for the fuzz topology with the FDB `shunt up` builds (the file's
/// static entries, the macvlan hosts' MACs, entries behind VTEPs) and the
/// first remote VTEP's next hop resolved.
///
/// One rig per thread, reset for each input: building one zeroes some
/// 20 MB (the in-memory ports' rings, the counters), which was 70% of the
/// time of an input.
fn with_rig<T>(topo: &Topology, f: impl FnOnce(&mut Rig) -> T) -> T {
    thread_local! {
        static RIG: std::cell::RefCell<Option<Rig>> = const { std::cell::RefCell::new(None) };
    }
    RIG.with_borrow_mut(|slot| {
        let rig = slot.get_or_insert_with(|| fresh_rig(topo));
        rig.reset(topo);
        add_statics(rig, topo);
        f(rig)
    })
}

fn fresh_rig(topo: &Topology) -> Rig {
    let mut rig = match Rig::from_topology(topo, topo.switch.fdb_max_entries).with_stack(topo) {
        Ok(r) => r,
        Err(e) => panic!("the switch's stack's queues: {e}"),
    };
    // The underlay takes UDP-tunnel super-frames (as a TAP underlay on
    // Linux 6.17+): both the encapsulate-once path and the decapsulation
    // of tunnel super-frames are fuzzed.
    if let Some(v) = &topo.vtep {
        if let Some(p) = rig.plan.ports.get_mut(v.port) {
            p.offloads.udp_tunnel = p.offloads.tso;
        }
    }
    add_statics(&mut rig, topo);
    rig
}

fn add_statics(rig: &mut Rig, topo: &Topology) {
    for h in &topo.hosts {
        for l in &h.links {
            let Some(net) = topo.networks.get(l.network) else {
                continue;
            };
            if net.macvlan.is_some() {
                if let Some(pi) = topo.port_index(&format!("{}.{}", h.name, net.name)) {
                    let _ = rig
                        .fdb
                        .add_static(l.network as u16, l.mac.as_bytes(), pi as u16);
                }
            }
        }
    }
    if let Some(v) = &topo.vtep {
        for &(net, mac, k) in &v.fdb {
            if let Some(k) = VtepId::new(k) {
                let _ = rig
                    .fdb
                    .add_static(net as u16, mac.as_bytes(), Egress::Vtep(k).encode());
            }
        }
    }
    let ul = rig.stack.as_deref().and_then(|s| s.underlay.as_ref());
    if let (Some(ul), Some(&first)) = (ul, topo.vtep.as_ref().and_then(|v| v.remotes.first())) {
        if let Some(nh) = ul.nexthop_of(first) {
            ul.set_nexthop(nh, NEXTHOP_MAC);
        }
    }
}

/// Whole frames through the pipeline, batch by batch, against the fuzz
/// topology, with the invariants of [`check_batch`] after each batch.
pub fn pipeline(data: &[u8]) {
    with_rig(topology(), |rig| run_pipeline(rig, data));
}

fn run_pipeline(rig: &mut Rig, data: &[u8]) {
    let topo = topology();
    let nports = rig.ports.len();
    let mut now = 1_000;
    let mut batch: Vec<(&[u8], bool)> = Vec::with_capacity(BATCH);
    let mut ingress = 0;
    for step in steps(data) {
        match step {
            Step::Toggle(p) => {
                run_batch(rig, topo, ingress, &mut batch, now);
                if let Some(up) = rig.port_up.get(p % nports) {
                    up.fetch_xor(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Step::Trace => {
                run_batch(rig, topo, ingress, &mut batch, now);
                if rig.tracer.active() {
                    rig.tracer.stop();
                } else {
                    rig.tracer.start(&[], Default::default());
                }
            }
            Step::Frame {
                port,
                last,
                age,
                vnet,
                bytes,
            } => {
                let port = port % nports;
                if !batch.is_empty() && port != ingress {
                    run_batch(rig, topo, ingress, &mut batch, now);
                }
                if batch.is_empty() {
                    ingress = port;
                    now += if age { 301_000 } else { 1 };
                }
                batch.push((bytes, vnet));
                if last || batch.len() == BATCH {
                    run_batch(rig, topo, ingress, &mut batch, now);
                }
            }
        }
    }
    run_batch(rig, topo, ingress, &mut batch, now);
}

/// Counters of one egress slot, before and after a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Seen {
    rx: u64,
    tx: u64,
    drops: crate::counters::PerReason<u64>,
}

// By hand: arrays of more than 32 (the drop reasons) derive no Default.
impl Seen {
    fn of(rig: &Rig, e: Egress) -> Seen {
        let c = rig.counters.port(e);
        let mut drops = crate::counters::PerReason::<u64>::default();
        for (d, c) in drops.iter_mut().zip(c.drops.iter()) {
            *d = c.get();
        }
        Seen {
            rx: c.rx_frames.get(),
            tx: c.tx_frames.get(),
            drops,
        }
    }

    fn since(&self, before: &Seen) -> Seen {
        let mut d = Seen {
            rx: self.rx - before.rx,
            tx: self.tx - before.tx,
            ..Seen::default()
        };
        for (i, x) in d.drops.iter_mut().enumerate() {
            *x = self.drops[i] - before.drops[i];
        }
        d
    }

    /// Drops that lose a frame (`fdb_full` only counts a MAC not learned).
    fn lost(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| r.loses_frame())
            .map(|&r| self.drops[r as usize])
            .sum()
    }
}

/// Untagged frame `f` as sent with tag `vid` (None: untagged).
fn tagged(f: &[u8], vid: Option<u16>, pcp_dei: u8) -> Vec<u8> {
    match vid {
        None => f.to_vec(),
        Some(v) => {
            let tci = (u16::from(pcp_dei) << 8) | v;
            let [t0, t1] = tci.to_be_bytes();
            let mut t = f[..12.min(f.len())].to_vec();
            t.extend_from_slice(&[0x81, 0x00, t0, t1]);
            t.extend_from_slice(f.get(12..).unwrap_or(&[]));
            t
        }
    }
}

/// Mirror copies go to mirror destinations only, which get nothing else,
/// at most once per frame; a copy as sent matches an original copy.
fn check_mirrored(
    rig: &Rig,
    queued: &[(Egress, usize, Option<u16>)],
    mirrored: &[(Egress, usize, Option<u16>, Mirrored)],
) {
    let Some(m) = &rig.plan.mirror else {
        assert!(mirrored.is_empty(), "mirror copies without a mirror");
        return;
    };
    let dest = |e: Egress| e.port().is_some_and(|p| m.is_dest(p));
    for q in queued {
        assert!(
            !dest(q.0),
            "an original queued to a mirror destination: {q:?}"
        );
    }
    for (k, &(to, i, vid, how)) in mirrored.iter().enumerate() {
        assert!(dest(to), "a mirror copy to {to:?}, no destination");
        assert!(
            !mirrored[..k].iter().any(|x| x.0 == to && x.1 == i),
            "frame {i} mirrored twice to {to:?}"
        );
        if let Mirrored::As(x) = how {
            assert!(
                queued.contains(&(x, i, vid)),
                "frame {i} mirrored as its copy for {x:?}, which was not queued"
            );
        }
    }
}

fn egresses(nports: usize, nvteps: usize) -> impl Iterator<Item = Egress> {
    let ports = (0..nports).filter_map(PortId::new).map(Egress::Port);
    let vteps = (0..nvteps.min(MAX_VTEPS))
        .filter_map(VtepId::new)
        .map(Egress::Vtep);
    ports.chain(vteps)
}

/// The frame as it leaves an untagged egress: without the tag classify
/// consumed.
fn untagged(f: &[u8], tag_len: usize) -> Vec<u8> {
    let mut out = f.get(..12).unwrap_or(f).to_vec();
    out.extend_from_slice(f.get(12 + tag_len..).unwrap_or(&[]));
    out
}

/// Runs `frames` in from port `ingress` and checks:
/// - every frame got a verdict, and a frame dropped was counted once, on
///   its ingress port, under its one reason;
/// - a known unicast was queued once, to its egress; nothing was queued
///   back to the ingress port, nor from a VTEP to a VTEP;
/// - every queued copy was sent or dropped under one reason on its
///   egress, and each port sent exactly what the counters say;
/// - what a port sent is the frame with the right tag: none on an access
///   port or the trunk's native network, the network's VLAN on a trunk,
///   a VXLAN header to the right VTEP and VNI on the underlay;
/// - frames for the switch's stack are in its queues, once each.
fn run_batch(
    rig: &mut Rig,
    topo: &Topology,
    ingress: usize,
    frames: &mut Vec<(&[u8], bool)>,
    now: u64,
) {
    if frames.is_empty() {
        return;
    }
    let Some(inp) = PortId::new(ingress) else {
        frames.clear();
        return;
    };
    let nports = rig.ports.len();
    let nvteps = topo.vtep.as_ref().map_or(0, |v| v.remotes.len());
    for p in &mut rig.ports {
        p.clear_sent();
    }
    rig.tx.clear();
    let underlay_in = topo.vtep.as_ref().is_some_and(|v| v.port == ingress);
    let pushed = frames
        .drain(..)
        .filter(|&(f, vnet)| {
            if !vnet {
                return rig.ports[ingress].push(f);
            }
            // As a TAP reads it: the header, then the frame it describes;
            // the underlay's is the 24-byte tunnel header.
            let len = if underlay_in {
                VNET_HDR_TNL_LEN
            } else {
                VNET_HDR_LEN
            };
            let (hdr, frame) = f.split_at(len.min(f.len()));
            let off = if underlay_in {
                VirtioNetHdr::parse_tnl(hdr).map(|h| Offload::from_tunnel_header(&h, frame))
            } else {
                VirtioNetHdr::parse(hdr).map(|h| Offload::from_header(&h, frame))
            };
            let off = off.unwrap_or(Err(OffloadError::Length));
            rig.ports[ingress].push_offload(frame, off)
        })
        .count();
    let before: Vec<(Egress, Seen)> = egresses(nports, nvteps)
        .map(|e| (e, Seen::of(rig, e)))
        .collect();
    let n = rig.receive(inp);
    assert_eq!(n, pushed, "the in-memory port gives back what it took");
    rig.process(inp, now);
    let metas = rig.batch.meta;
    // The frames as the pipeline left them (decapsulated), before the edit
    // stage rewrites last copies in place.
    let post: Vec<Vec<u8>> = (0..n).map(|i| rig.batch.frame(i).to_vec()).collect();
    let mut queued: Vec<(Egress, usize, Option<u16>)> = Vec::new();
    // Mirror copies (pipeline/mirror.rs): (destination, frame, tag, how).
    let mut mirrored: Vec<(Egress, usize, Option<u16>, Mirrored)> = Vec::new();
    for &to in &rig.tx.dirty {
        for e in rig.tx.queue(to) {
            let (i, vid) = (usize::from(e.frame), e.vid.map(|v| v.get()));
            match e.mirror {
                Mirrored::No => queued.push((to, i, vid)),
                how => mirrored.push((to, i, vid, how)),
            }
        }
    }
    check_mirrored(rig, &queued, &mirrored);
    rig.transmit();
    // A trace of every port records each frame once, in words that never
    // fail to be made.
    if rig.tracer.active() {
        let mut records = 0;
        while let Some(r) = rig.tracer.pop() {
            let line =
                crate::trace::describe(&r, &|e| format!("{e:?}"), &|n| format!("net{}", n.index()));
            assert!(!line.text.is_empty());
            records += 1;
        }
        assert_eq!(records, n, "one trace record per frame");
    }
    let delta = |e: Egress| -> Seen {
        let b = before.iter().find(|(x, _)| *x == e).map(|x| x.1);
        Seen::of(rig, e).since(&b.unwrap_or_default())
    };
    let din = delta(inp.into());
    assert_eq!(din.rx, n as u64, "rx_frames counts the batch");

    // Verdicts and what was queued for each frame.
    let mut dropped = [0u64; DropReason::COUNT];
    let mut local = 0;
    let mut copies_of: Vec<Vec<Egress>> = vec![Vec::new(); n];
    for &(to, i, _) in &queued {
        if let Some(c) = copies_of.get_mut(i) {
            c.push(to);
        }
    }
    for (i, (m, copies)) in metas.iter().zip(copies_of).enumerate() {
        assert!(
            !copies.contains(&Egress::Port(inp)),
            "frame {i} queued back to its ingress port {ingress}"
        );
        match m.verdict {
            Verdict::Pending => panic!("frame {i} left without a verdict"),
            Verdict::Drop(r) => {
                assert!(r.loses_frame(), "frame {i}: {} is no frame drop", r.name());
                assert!(copies.is_empty(), "frame {i} dropped and queued");
                dropped[r as usize] += 1;
            }
            Verdict::Local | Verdict::Control(_) => {
                assert!(copies.is_empty(), "frame {i} for the stack and queued");
                local += 1;
            }
            Verdict::Unicast(e) => {
                assert_eq!(copies, vec![e], "frame {i}: a known unicast, once");
            }
            Verdict::Flood(_) | Verdict::Macvlan { .. } | Verdict::Group { .. } => {
                assert!(!copies.is_empty(), "frame {i} flooded to no one");
                let mut sorted = copies.clone();
                sorted.sort_unstable_by_key(|e| e.encode());
                sorted.dedup();
                assert_eq!(sorted.len(), copies.len(), "frame {i}: one copy per egress");
                if m.vtep.is_some() {
                    assert!(
                        !copies.iter().any(|e| e.is_vtep()),
                        "frame {i} from a VTEP flooded back to VTEPs"
                    );
                }
            }
        }
    }
    for r in DropReason::ALL {
        if r.loses_frame() {
            assert_eq!(
                din.drops[*r as usize],
                dropped[*r as usize],
                "{} counted on the ingress port as often as frames were dropped for it",
                r.name()
            );
        }
    }
    let from_vteps: u64 = egresses(0, nvteps).map(|e| delta(e).rx).sum();
    let decapped = metas[..n].iter().filter(|m| m.vtep.is_some()).count() as u64;
    assert_eq!(
        from_vteps, decapped,
        "rx on the VTEPs: the decapsulated frames"
    );

    // Every copy sent or dropped on its egress, and each port sent what
    // its counter says.
    let underlay = topo.vtep.as_ref().map(|v| v.port);
    let vtep_tx: u64 = egresses(0, nvteps).map(|e| delta(e).tx).sum();
    for e in egresses(nports, nvteps) {
        if e == Egress::Port(inp) {
            continue;
        }
        let d = delta(e);
        let mut tx = d.tx;
        if e.port().map(PortId::index) == underlay {
            assert!(tx >= vtep_tx, "the underlay counts the VTEPs' frames");
            tx -= vtep_tx;
        }
        let q = queued.iter().filter(|q| q.0 == e).count() as u64
            + mirrored.iter().filter(|q| q.0 == e).count() as u64;
        let supers = queued
            .iter()
            .map(|q| (q.0, q.1))
            .chain(mirrored.iter().map(|q| (q.0, q.1)))
            .filter(|&(to, i)| to == e && metas[i].off.gso.is_some())
            .count();
        if supers == 0 {
            assert_eq!(
                tx + d.lost(),
                q,
                "{e:?}: {q} queued, {tx} sent, {} dropped",
                d.lost()
            );
        } else {
            // A super-frame cut into segments is several sends, or some
            // and then a drop; never nothing.
            assert!(
                tx + d.lost() >= q,
                "{e:?}: {q} queued ({supers} super-frames), {tx} sent, {} dropped",
                d.lost()
            );
        }
        if let Some(p) = e.port() {
            let sent = rig.ports[p.index()].sent().count() as u64;
            assert_eq!(sent, d.tx, "port {} sent what it counted", p.index());
        }
    }
    assert_eq!(
        rig.ports[ingress].sent().count(),
        0,
        "nothing sent out of the ingress port"
    );

    // What each port sent, byte for byte: per port, the copies queued to
    // it (with their tag) and the VXLAN copies to leave by it.
    let inner: Vec<Vec<u8>> = (0..n)
        .map(|i| untagged(&post[i], usize::from(metas[i].tag_len)))
        .collect();
    let mut wants: Vec<Vec<Vec<u8>>> = vec![Vec::new(); nports];
    let mut vxlans: Vec<Vec<(VtepId, usize)>> = vec![Vec::new(); nports];
    // Ports sent copies of frames with offload state: checksums completed
    // and segments differ from the frame, so only their size is checked.
    let mut loose = vec![false; nports];
    for &(to, i, vid) in &queued {
        let f = &inner[i];
        if !metas[i].off.is_none() {
            let dev = match to {
                Egress::Port(q) => Some(q.index()),
                Egress::Vtep(_) => underlay,
                Egress::Stack => None,
            };
            if let Some(l) = dev.and_then(|d| loose.get_mut(d)) {
                *l = true;
            }
            if let (Egress::Port(q), Some(_)) = (to, vid) {
                let trunk = rig.plan.ports.get(q.index()).is_some_and(|pp| pp.trunk);
                assert!(trunk, "a tagged frame queued to access port {}", q.index());
            }
            continue;
        }
        match to {
            Egress::Port(q) => {
                let p = q.index();
                let trunk = rig.plan.ports.get(p).is_some_and(|pp| pp.trunk);
                assert!(
                    trunk || vid.is_none(),
                    "a tagged frame (VLAN {vid:?}) queued to access port {p}"
                );
                let want = tagged(f, vid, metas[i].pcp_dei);
                if let Some(w) = wants.get_mut(p) {
                    w.push(want);
                }
            }
            Egress::Vtep(k) => {
                if let Some(v) = underlay.and_then(|u| vxlans.get_mut(u)) {
                    v.push((k, i));
                }
            }
            Egress::Stack => {}
        }
    }
    for &(to, i, vid, how) in &mirrored {
        let Some(d) = to.port().map(PortId::index) else {
            continue;
        };
        if !metas[i].off.is_none() {
            if let Some(l) = loose.get_mut(d) {
                *l = true;
            }
            continue;
        }
        let want = match how {
            // As received: the frame as the pipeline left it, tag and all.
            Mirrored::Received => post[i].clone(),
            Mirrored::As(Egress::Vtep(k)) => {
                if let Some(v) = vxlans.get_mut(d) {
                    v.push((k, i));
                }
                continue;
            }
            _ => tagged(&inner[i], vid, metas[i].pcp_dei),
        };
        if let Some(w) = wants.get_mut(d) {
            w.push(want);
        }
    }
    for (p, port) in rig.ports.iter().enumerate() {
        let want = &mut wants[p];
        let vxlan_copies = &vxlans[p];
        let mut vx = vxlan_copies.clone();
        for f in port.sent() {
            if let Some(w) = want.iter().position(|w| w == f) {
                want.swap_remove(w);
                continue;
            }
            // A VXLAN copy: to one of the queued VTEPs, with its network's
            // VNI, around the inner frame without its tag.
            let found = vx.iter().position(|&(k, i)| {
                let v = topo.vtep.as_ref();
                let Some(remote) = v.and_then(|v| v.remotes.get(k.index())) else {
                    return false;
                };
                let udp = v.map_or(4789, |v| v.udp_port);
                let Ok(d) = vxlan::decap_for(f, Some((*remote, udp))) else {
                    return false;
                };
                let m = &metas[i];
                let vni = m.net.and_then(|n| topo.networks.get(n.index())?.vni);
                Some(d.vni) == vni && f.get(d.inner) == Some(&inner[i][..])
            });
            match found {
                Some(x) => {
                    vx.swap_remove(x);
                }
                None if loose[p] => {}
                None => panic!("port {p} sent a frame nobody queued: {f:02x?}"),
            }
        }
        // No frame larger than the port's MTU allows (with a tag) but a
        // super-frame handed whole to a port that takes it; no offload
        // state to a port that takes none.
        let pp = &rig.plan.ports[p];
        let takes = pp.offloads;
        // A mirror's copies are as long as they came or went (an
        // oversize frame dropped on a source, a VXLAN packet): not cut to
        // the destination's MTU (docs/mirror.md).
        let mirror_dest = rig
            .plan
            .mirror
            .as_ref()
            .is_some_and(|m| m.is_dest(PortId::new(p).unwrap_or(inp)));
        for (f, off) in port.sent_offloads() {
            if !off.gso.is_some() && !mirror_dest {
                assert!(
                    f.len() <= pp.max_frame + 4,
                    "port {p} sent {} bytes, more than its MTU allows",
                    f.len()
                );
            }
            if !(takes.csum || takes.tso || takes.uso) {
                assert!(off.is_none(), "port {p} takes no offload but got {off:?}");
            }
        }
    }

    // Frames for the switch's stack: in its queues, once each.
    let mut in_queues = 0;
    if let Some(s) = rig.stack.as_deref() {
        while s.to_host.pop().is_some() {
            in_queues += 1;
        }
        while s.snoop.pop().is_some() {}
        if let Some(ul) = &s.underlay {
            while ul.rx.pop().is_some() {
                in_queues += 1;
            }
        }
    }
    assert_eq!(in_queues, local, "frames for the stack are in its queues");
}

/// The switch's own stack (smoltcp's ARP and ping, the DNS responder, ARP
/// suppression) fed whole frames on the fuzz topology's networks, a round
/// after each batch; what it answers is run through the pipeline to the
/// ports, as a worker does. Checks that every frame the stack sends is
/// ARP or IPv4 from the switch's address on that network.
pub fn stack(data: &[u8]) {
    with_rig(topology(), |rig| run_stack(rig, data));
}

fn run_stack(rig: &mut Rig, data: &[u8]) {
    let topo = topology();
    let Some(link) = rig.stack.clone() else {
        panic!("the fuzz topology gives the switch addresses");
    };
    let mut host = match Host::new(Arc::clone(&link), HostConfig::from_topology(topo)) {
        Ok(h) => h,
        Err(e) => panic!("the switch's stack: {e}"),
    };
    let nnets = topo.networks.len();
    let mut pending = 0;
    for step in steps(data) {
        let Step::Frame {
            port, last, bytes, ..
        } = step
        else {
            continue;
        };
        let Some(net) = NetId::new(port % nnets) else {
            continue;
        };
        if let Some(p) = StackPkt::gather(Segment::Net(net), &[bytes]) {
            if link.to_host.push(p).is_ok() {
                pending += 1;
            }
        }
        if last || pending == BATCH {
            stack_round(rig, &mut host, topo);
            pending = 0;
        }
    }
    stack_round(rig, &mut host, topo);
}

fn stack_round(rig: &mut Rig, host: &mut Host, topo: &Topology) {
    host.round();
    let Some(link) = rig.stack.clone() else {
        return;
    };
    // What the stack queued, checked before the pipeline takes it.
    let mut out = Vec::new();
    while let Some(p) = link.from_host.pop() {
        out.push(p);
    }
    for p in &out {
        let Segment::Net(net) = p.net else { continue };
        let f = p.frame();
        let eth = match EthernetFrame::new_checked(f) {
            Ok(e) => e,
            Err(_) => panic!("the stack sent a runt: {f:02x?}"),
        };
        match eth.ethertype() {
            // An ARP request sent back to be flooded (suppression without
            // an answer) keeps its sender; answers are the switch's or a
            // known host's: ARP is checked by the pipeline's invariants.
            EtherType::Arp => {}
            EtherType::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload());
                let src = ip.as_ref().map(|ip| ip.src_addr()).ok();
                let want = topo.networks.get(net.index()).and_then(|n| n.address);
                assert!(
                    want.is_some() && src == want,
                    "IPv4 from {src:?} on network {}, whose address is {want:?}",
                    net.index()
                );
                // What the responder sends from port 53 is an answer with
                // a valid checksum (smoltcp fills it in).
                let Ok(ip) = ip else { continue };
                if ip.protocol() != IpProtocol::Udp {
                    continue;
                }
                let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                    panic!("a UDP datagram that does not read: {f:02x?}");
                };
                assert!(udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
                if udp.src_port() == iface::DNS_PORT {
                    assert!(dns::is_response(udp.payload()), "port 53 sends answers");
                }
            }
            other => panic!("the stack sent {other:?}"),
        }
        let _ = link.from_host.push(*p);
    }
    while rig.run_stack_output() > 0 {}
    for p in &mut rig.ports {
        p.clear_sent();
    }
    while link.to_host.pop().is_some() {}
}

/// The names the DNS target answers from.
fn names() -> &'static Names {
    static N: OnceLock<Names> = OnceLock::new();
    N.get_or_init(|| Names::from_topology(topology()))
}

/// One datagram to the DNS responder (the first byte picks the network):
/// no panic; an answer is a response with the query's ID, within the size
/// the query allows, that reads back, with the question echoed; nothing is
/// said only to unreadable headers and responses; forwarding only where
/// the network has an upstream. The question name's presentation form
/// goes back to the same wire name.
pub fn dns(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let names = names();
    let net = u16::from(sel) % names.nets.len().max(1) as u16;
    let c = NetCounters::default();
    let parsed = dns::parse_query(msg);
    let reply = iface::respond(names, net, msg, &mut Rotation::default(), &c);
    let _ = dns::parse_answer(msg);
    match (&reply, &parsed) {
        (Reply::Send(m), _) => {
            assert!(dns::is_response(m), "an answer is a response");
            assert_eq!(dns::message_id(m), dns::message_id(msg), "the query's ID");
            let a = dns::parse_answer(m);
            assert!(a.is_some(), "our answer reads back: {m:02x?}");
            if let Ok(q) = &parsed {
                assert!(m.len() <= q.udp_limit(), "{} > {}", m.len(), q.udp_limit());
                // Header-only errors (NOTIMP) carry no question.
                if m.get(4..6) == Some(&[0, 1]) {
                    assert_eq!(
                        m.get(12..12 + q.qname_wire.len()),
                        Some(&q.qname_wire[..]),
                        "the question echoed as sent"
                    );
                }
            }
        }
        (Reply::Nothing, Ok(q)) => panic!("a readable query {q:?} got no answer"),
        (Reply::Nothing, Err(m)) => assert!(
            m.header.is_none() || m.why == dns::Why::Response,
            "{m:?} got no FORMERR"
        ),
        (Reply::Forward { .. }, Ok(_)) => assert!(
            names
                .nets
                .get(usize::from(net))
                .and_then(|n| n.upstream)
                .is_some(),
            "forwarded from a network without an upstream"
        ),
        (Reply::Forward { .. }, Err(m)) => panic!("a malformed query ({m:?}) forwarded"),
    }
    if let Ok(q) = &parsed {
        let lower: Vec<u8> = q.qname_wire.iter().map(u8::to_ascii_lowercase).collect();
        if !q.qname.contains('\\') {
            assert_eq!(dns::name_to_wire(&q.qname), Some(lower), "{:?}", q.qname);
        }
    }
}

/// A topology file: an error that names a line of it, or a topology the
/// switch can build its plan, its names and its stack from (and run a
/// broadcast from each port through, when it is small).
pub fn topology_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let topo = match config::parse("fuzz.toml", &text) {
        Ok(t) => t,
        Err(e) => {
            let lines = text.lines().count().max(1);
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "line {} of a {lines}-line file: {e}",
                e.line
            );
            assert!(!e.message.is_empty(), "an error says what is wrong");
            return;
        }
    };
    let _ = Names::from_topology(&topo);
    let _ = HostConfig::from_topology(&topo);
    let _ = crate::stack::resolv::dirs(&topo);
    for h in &topo.hosts {
        let _ = crate::stack::resolv::contents(&topo, h);
    }
    // Small enough to build (each in-memory port holds 2 MB).
    if topo.ports.len() > 16 {
        let _ = crate::pipeline::Plan::from_topology(&topo);
        return;
    }
    let mut rig =
        match Rig::from_topology(&topo, topo.switch.fdb_max_entries.min(4096)).with_stack(&topo) {
            Ok(r) => r,
            Err(e) => panic!("the switch's stack's queues: {e}"),
        };
    let bcast: Vec<u8> = [[0xff; 6], [2, 0, 0, 0, 0, 1]]
        .concat()
        .into_iter()
        .chain([0x08, 0x06])
        .chain([0; 46])
        .collect();
    for p in 0..rig.ports.len() {
        let Some(pid) = PortId::new(p) else { continue };
        rig.ports[p].push(&bcast);
        rig.step(pid, 1_000);
    }
}

/// One line of the control socket: a request, or the words of an error;
/// a request goes back on the wire (`to_line`) and reads as itself.
pub fn control(data: &[u8]) {
    match proto::decode(data) {
        Ok(r) => {
            let line = proto::to_line(&r);
            assert_eq!(proto::decode(line.as_bytes()), Ok(r), "{line}");
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// `shunt trace --packet`'s description: parsed, and when it parses, the
/// frame it describes built (defaults of its own for what it leaves out,
/// without a topology). Never panics; a frame built is as long as asked.
pub fn packet(data: &[u8]) {
    use crate::probe::{build, Dst, Frame, PacketSpec};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let spec = match PacketSpec::parse(s) {
        Ok(spec) => spec,
        Err(e) => {
            assert!(e.to_string().starts_with("--packet: "), "{e}");
            return;
        }
    };
    let none = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let f = Frame {
        src: spec.src.unwrap_or(MacAddr([2, 0, 0, 0, 0, 1])),
        dst: match spec.dst {
            Some(Dst::Mac(m)) => m,
            _ => MacAddr::BROADCAST,
        },
        vlan: spec.vlan,
        ethertype: spec.ethertype.unwrap_or(0x0800),
        src_ip: spec.src_ip.unwrap_or(none),
        dst_ip: spec.dst_ip.unwrap_or(none),
        len: spec.len,
    };
    if let (Ok(b), Some(n)) = (build(&f), spec.len) {
        assert_eq!(b.len(), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VXLAN: &[u8] = include_bytes!("../../../parsers/tests/data/vxlan.pcap");
    const ARP: &[u8] = include_bytes!("../../../parsers/tests/data/arp_icmp.pcap");
    const DNS: &[u8] = include_bytes!("../../../parsers/tests/data/dns.pcap");
    /// A virtio-net header and a TCP/IPv4 super-frame (parsers' gso tests).
    const GSO: &[u8] = include_bytes!("../../../parsers/fuzz/seeds_gso/gso-00");

    fn frames(pcap: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = 24;
        while let Some(h) = pcap.get(at..at + 16) {
            let incl = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
            let Some(f) = pcap.get(at + 16..at + 16 + incl) else {
                break;
            };
            out.push(f);
            at += 16 + incl;
        }
        out
    }

    fn input(port: u8, frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in frames {
            v.push(port);
            v.extend_from_slice(&(f.len() as u16).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    fn tx(rig: &Rig, p: usize) -> u64 {
        rig.counters.port(testing_port(p).into()).tx_frames.get()
    }

    fn testing_port(p: usize) -> PortId {
        super::super::port(p)
    }

    /// What goes on the wire reads back the same (the control fuzz
    /// target's check), trace filters, odd numbers and all.
    #[test]
    fn trace_requests_read_back() {
        for line in [
            r#"{"cmd":"trace","port":"h1","targets":["lan","h2"],"direction":"out","drops":true,"mac":"m","vlan":4095,"ethertype":"0x88cc","reason":"same_port","decision":"local","count":18446744073709551615,"seconds":0.1}"#,
            r#"{"cmd":"trace","seconds":1e300,"snaplen":3}"#,
            r#"{"cmd":"trace_packet","packet":"in=h1 dst=switch"}"#,
            r#"{"cmd":"trace_packet"}"#,
        ] {
            control(line.as_bytes());
            assert!(
                crate::control::proto::decode(line.as_bytes()).is_ok(),
                "{line}"
            );
        }
    }

    /// The seeds' shapes reach the deep paths of the fuzz topology: VXLAN
    /// from the capture is decapsulated and flooded on ovl; frames from
    /// ovl are encapsulated to the resolved VTEP (and counted as no next
    /// hop for the other); ARP for the switch's address goes to its stack.
    #[test]
    fn the_captures_reach_the_deep_paths() {
        let (ul, o1, trunk) = (9, 6, 8);
        let rig = &mut fresh_rig(topology());
        run_pipeline(rig, &input(ul as u8, &frames(VXLAN)));
        let from_vtep = rig
            .counters
            .port(Egress::Vtep(VtepId::new(0).expect("0")))
            .rx_frames
            .get();
        assert!(from_vtep > 0, "decapsulated");
        assert!(tx(rig, o1) > 0 && tx(rig, trunk) > 0, "flooded on ovl");
        let inner: Vec<&[u8]> = frames(VXLAN).iter().map(|f| &f[50..]).collect();
        let rig = &mut fresh_rig(topology());
        run_pipeline(rig, &input(o1 as u8, &inner));
        assert!(tx(rig, ul) > 0, "encapsulated");
        let vtep1 = rig.counters.port(Egress::Vtep(VtepId::new(1).expect("1")));
        assert!(vtep1.drops[DropReason::VxlanNoNexthop as usize].get() > 0);
        // The capture's first reply (10.0.0.1 is-at ..., to 10.0.0.2) as a
        // broadcast request: who has 10.0.0.2, the switch on lan.
        let mut req = frames(ARP)[1].to_vec();
        req[..6].fill(0xff);
        req[21] = 1;
        let rig = &mut fresh_rig(topology());
        run_pipeline(rig, &input(0, &[&req]));
        let delivered = rig
            .stack
            .as_deref()
            .map_or(0, |s| s.counters[0].delivered.get());
        assert!(delivered > 0, "ARP for 10.0.0.2 to the stack");
        // The stack answers it, and the answer reaches web's port.
        let rig = &mut fresh_rig(topology());
        run_stack(rig, &input(0, &[&req]));
        let stack = rig.counters.port(Egress::Stack);
        assert_eq!(stack.rx_frames.get(), 1, "one ARP reply from the stack");
        assert_eq!(tx(rig, 0), 1, "to web.lan, whose MAC asked");
        // The capture's first DNS query, to the switch's MAC (UDP checksum
        // left out, as IPv4 allows): answered from the topology's names.
        let mut q = frames(DNS)[0].to_vec();
        q[..6].copy_from_slice(&crate::stack::switch_mac("fz", 0).octets());
        q[40..42].fill(0);
        let rig = &mut fresh_rig(topology());
        run_stack(rig, &input(0, &[&q]));
        let c = rig.stack.as_deref().map(|s| &s.net_counters[0]);
        assert_eq!(
            c.map(|c| c.dns_answered.get()),
            Some(1),
            "web.lan.test answered"
        );
        assert!(tx(rig, 0) >= 1, "the answer reaches web.lan");
        // A TCP super-frame with its virtio-net header from a macvlan host:
        // the AF_XDP-kind parent takes no offload, so it gets segments.
        let mut sup = vec![0x40 | 4];
        sup.extend_from_slice(&(GSO.len() as u16).to_be_bytes());
        sup.extend_from_slice(GSO);
        let rig = &mut fresh_rig(topology());
        run_pipeline(rig, &sup);
        let up = rig.counters.port(testing_port(7).into());
        assert!(up.tx_gso_segments.get() > 1, "segmented for the parent");
    }
}
