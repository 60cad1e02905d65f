//! The recorder of the frame trace (`shunt trace`), the pipeline's side:
//! while a trace is active, each traced frame's decisions go into a bounded
//! lock-free queue (fixed-size records, no allocation); the trace module
//! (trace.rs) turns them into plain words for the control plane. With no
//! trace active the cost is one check per batch. (Here, not in trace.rs, so
//! that the pipeline imports nothing that imports it back.)

use super::capture::Filter;
use super::{learn::Learned, Batch, Context, TxQueues, Verdict};
use crate::ids::{Egress, NetId, PortId, Vid};
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use shunt_parsers::gso::Segmenter;
use shunt_parsers::virtio_net::Gso;
use shunt_parsers::{EtherType, EthernetFrame, MacAddr, VlanTag};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

pub const MAX_OUT: usize = 32;
/// One bit per egress a frame can come from (ports, the stack, VTEPs).
const INGRESS_WORDS: usize = Egress::SLOTS.div_ceil(64);

#[derive(Debug, Clone, Copy)]
pub struct TraceRecord {
    pub ingress: Egress,
    pub net: Option<NetId>,
    pub vid_in: Option<u16>,
    pub src: MacAddr,
    pub dst: MacAddr,
    pub ethertype: u16,
    pub len: u16,
    pub learned: Learned,
    pub verdict: Verdict,
    pub out: [(Egress, Option<Vid>); MAX_OUT],
    pub n_out: u16,
    /// The network's VXLAN VNI (0: none).
    pub vni: u32,
    /// A GSO super-frame: its kind, how many segments it makes and of how
    /// many payload bytes each.
    pub gso: Option<(Gso, u16, u16)>,
    /// Bit k: `out[k]` takes the super-frame whole (else it is cut in
    /// software for it).
    pub whole: u32,
    /// A multicast IP frame's group (the trace names it).
    pub group: Option<crate::l2::mdb::Group>,
}

pub struct Tracer {
    active: AtomicBool,
    /// The trace takes every port (started with none named).
    all: AtomicBool,
    ports: [AtomicU64; INGRESS_WORDS],
    /// What the trace selects (`shunt capture`'s filters), set by
    /// `start` and loaded once per batch while active.
    filter: ArcSwap<Filter>,
    queue: ArrayQueue<TraceRecord>,
    pub lost: AtomicU64,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracer {
    pub fn new() -> Tracer {
        Tracer::with_capacity(4096)
    }

    /// A tracer whose queue holds `records` (a dry run's, never started,
    /// holds 1).
    pub fn with_capacity(records: usize) -> Tracer {
        Tracer {
            active: AtomicBool::new(false),
            all: AtomicBool::new(false),
            ports: Default::default(),
            filter: ArcSwap::from_pointee(Filter::default()),
            queue: ArrayQueue::new(records.max(1)),
            lost: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Starts tracing the frames of `ports` (all ports if empty) that
    /// `filter` selects: those that enter on one of them
    /// (`filter.inbound`), or leave by one (`filter.outbound`).
    pub fn start(&self, ports: &[PortId], filter: Filter) {
        self.filter.store(std::sync::Arc::new(filter));
        for w in &self.ports {
            w.store(if ports.is_empty() { u64::MAX } else { 0 }, Relaxed);
        }
        for &p in ports {
            let s = Egress::Port(p).slot();
            if let Some(w) = self.ports.get(s / 64) {
                w.fetch_or(1 << (s % 64), Relaxed);
            }
        }
        self.all.store(ports.is_empty(), Relaxed);
        while self.queue.pop().is_some() {}
        self.active.store(true, Relaxed);
    }

    /// A detached port's id leaves a trace of named ports, so that the
    /// port that gets its id next is not traced in its place.
    pub fn forget(&self, p: PortId) {
        if self.all.load(Relaxed) {
            return;
        }
        let s = Egress::Port(p).slot();
        if let Some(w) = self.ports.get(s / 64) {
            w.fetch_and(!(1 << (s % 64)), Relaxed);
        }
    }

    pub fn stop(&self) {
        self.active.store(false, Relaxed);
    }

    pub fn pop(&self) -> Option<TraceRecord> {
        self.queue.pop()
    }

    fn wants(&self, from: Egress) -> bool {
        let s = from.slot();
        self.ports
            .get(s / 64)
            .is_some_and(|w| w.load(Relaxed) & (1 << (s % 64)) != 0)
    }

    /// Called once per batch while active.
    pub fn record_batch(&self, ctx: &Context, ingress: Egress, batch: &Batch, tx: &TxQueues) {
        let filter = self.filter.load();
        let inbound = filter.inbound && self.wants(ingress);
        if !inbound && !filter.outbound {
            return;
        }
        for i in 0..batch.count {
            let r = record(ctx, ingress, batch, tx, i);
            if !filter.traces(&r, &batch.meta[i], inbound, |p| self.wants(p)) {
                continue;
            }
            if self.queue.push(r).is_err() {
                self.lost.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Frame `i`'s decisions as a trace record: what it is, what learn and
/// forward did, and the copies queued for it in `tx` (the capture's
/// comments say the same words).
pub fn record(
    ctx: &Context,
    ingress: Egress,
    batch: &Batch,
    tx: &TxQueues,
    i: usize,
) -> TraceRecord {
    let f = batch.frame(i);
    let m = &batch.meta[i];
    let mut r = TraceRecord {
        // A decapsulated frame came in from its remote VTEP.
        ingress: crate::pipeline::vxlan::from(ingress, m),
        net: m.net,
        vid_in: None,
        src: MacAddr::ZERO,
        dst: MacAddr::ZERO,
        ethertype: 0,
        len: m.len,
        learned: m.learned,
        verdict: m.verdict,
        out: [(ingress, None); MAX_OUT],
        n_out: 0,
        vni: m
            .net
            .and_then(|n| ctx.plan.nets.get(n.index()))
            .and_then(|n| n.vni)
            .unwrap_or(0),
        gso: None,
        whole: 0,
        group: match m.verdict {
            Verdict::Group { .. } | Verdict::Flood(crate::counters::FloodCause::Multicast) => {
                super::mcast::classify(f, usize::from(m.tag_len)).map(|g| g.group)
            }
            _ => None,
        },
    };
    if m.off.gso.is_some() {
        r.gso = Segmenter::new(f, &m.off)
            .ok()
            .map(|s| (m.off.gso, s.count as u16, s.mss as u16));
    }
    if let Ok(eth) = EthernetFrame::new_checked(f) {
        r.dst = eth.dst_addr();
        r.src = eth.src_addr();
        r.ethertype = eth.ethertype().to_u16();
        // The 802.1Q tag classify reads; an 802.1ad one is data.
        if eth.ethertype() == EtherType::Vlan {
            if let Ok(tag) = VlanTag::new_checked(eth.payload()) {
                r.vid_in = Some(tag.vid());
                r.ethertype = tag.ethertype().to_u16();
            }
        }
    }
    for &p in &tx.dirty {
        for e in tx.queue(p) {
            if e.frame as usize == i && (r.n_out as usize) < MAX_OUT {
                r.out[r.n_out as usize] = (p, e.vid);
                // Ports take offloads; a remote VTEP takes a super-frame
                // whole where the underlay takes UDP-tunnel GSO
                // (docs/offloads.md; edit.rs may still cut one whose
                // outer frame would pass 64 KiB).
                let of =
                    |q: crate::ids::PortId| ctx.plan.ports.get(q.index()).map(|pl| pl.offloads);
                let takes = match p {
                    Egress::Port(q) => of(q).is_some_and(|o| o.take(&m.off)),
                    Egress::Vtep(_) => {
                        m.off.gso.is_some()
                            && ctx
                                .plan
                                .vxlan
                                .as_ref()
                                .and_then(|v| of(v.underlay))
                                .is_some_and(|o| o.udp_tunnel)
                    }
                    Egress::Stack => false,
                };
                if takes {
                    r.whole |= 1 << r.n_out;
                }
                r.n_out += 1;
            }
        }
    }
    r
}
