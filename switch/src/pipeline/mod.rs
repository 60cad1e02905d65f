//! The forwarding pipeline: each stage in its own file, each run over a
//! whole batch (VPP's shape). `run` takes a batch from a port, `run_stack`
//! one from the switch's own stack.
//!
//! ```text
//!  Port::recv --> classify --> learn --> ctl -----> local --> forward --> egress --> TxQueues --> edit::run --> Port::send
//!                 (network,    (source   (control   (to the   (unicast,   (a queue              (per copy:     (the worker
//!                  VLAN,        MAC)      frames to  switch's  flood,      entry per             tag push/pop/  or the test
//!                  size)                  the l2     stack)    drop)       output, VID)          rewrite, VXLAN rig moves
//!                                         thread)                                                header)        the bytes)
//!  the underlay port: vxlan::decap_run in place of classify (inner frame, VNI's network, VTEP k)
//!  the switch's stack: run_stack = vxlan::stack_output --> forward --> egress --> TxQueues --> edit::run
//! ```
//!
//! Frames sit in a `Batch`: fixed slots with headroom, filled by the port,
//! never allocated per frame. A slot shows either its own buffer (TAP and
//! in-memory ports, the switch's stack) or the AF_XDP UMEM frame the port
//! received into (`port::Slots`): the stages read frames the same way in
//! both cases. Each stage writes its decision into the frame's `Meta`; a
//! decided drop is final and has one reason. The edit stage (`edit::run`)
//! runs after `run`, driven by whoever moves the bytes (the worker, the
//! test rig), because how a copy is made (in place, gathered) depends on the
//! port.

pub mod capture;
pub mod classify;
pub mod ctl;
pub mod dry;
pub mod edit;
pub mod egress;
pub mod flap;
pub mod forward;
pub mod guard;
pub mod learn;
pub mod local;
pub mod macvlan;
pub mod mcast;
pub mod plan;
pub mod storm;
pub mod stp;
pub mod tracer;
pub mod vxlan;

pub use capture::Capture;
pub use guard::Guard;
pub use plan::{Carry, NetPlan, Plan, PortPlan};
pub use tracer::Tracer;

use crate::counters::{DropReason, FloodCause, WorkerCounters};
use crate::ids::{Egress, NetId, PortId, Vid, VtepId};
use crate::port::{Offload, Port, Rx, RxError};
use crate::stack::StackLink;
use shunt_tables::Fdb;
use std::sync::atomic::AtomicBool;

/// Frames per batch: what one poll takes from a port at most.
pub const BATCH: usize = crate::ids::BATCH;
/// Bytes per slot (the size of a UMEM frame); a frame starts after
/// `HEADROOM` so that headers (a VLAN tag, a VXLAN encapsulation) can be
/// prepended in place. Frames received by AF_XDP start 256 bytes in.
pub const SLOT: usize = crate::port::Slots::SIZE;
pub use crate::port::{HEADROOM, MAX_FRAME};

/// What the pipeline decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still being processed.
    Pending,
    Drop(DropReason),
    Unicast(Egress),
    Flood(FloodCause),
    /// For the switch itself: handed to the switch's stack.
    Local,
    /// A control frame the switch's L2 protocols take (its own BPDUs when
    /// it runs spanning tree): handed to the l2 thread, not forwarded.
    Control(crate::l2::CtlKind),
    /// IGMP/MLD snooping: to the ports of set `slot` of the snapshot in
    /// `Context::mdb` (a registered group's members and router ports, or,
    /// not `registered`, the router ports alone; pipeline/mcast.rs).
    Group {
        slot: u16,
        registered: bool,
    },
    /// A macvlan network's multicast: to its hosts (except `except`), and
    /// to the parent when `parent`.
    Macvlan {
        cause: FloodCause,
        parent: bool,
        except: Option<PortId>,
    },
}

/// Per-frame metadata written by the stages.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub len: u16,
    /// Network (bridge domain), set by classify (`None` before, and for
    /// the underlay's own frames).
    pub net: Option<NetId>,
    /// Bytes of 802.1Q tag after the MAC addresses that classify consumed
    /// (0 or 4): egress removes or rewrites them.
    pub tag_len: u8,
    /// PCP and DEI bits of the ingress tag, kept on a push (top 4 bits).
    pub pcp_dei: u8,
    pub verdict: Verdict,
    /// What learn did, for the trace.
    pub learned: learn::Learned,
    /// Where the frame starts in its slot (`HEADROOM` as received; more
    /// after VXLAN decapsulation moved it to the inner frame).
    pub start: u16,
    /// The remote VTEP the frame came from, if it was decapsulated.
    pub vtep: Option<VtepId>,
    /// Offload state from the ingress port (a TAP's virtio-net header): a
    /// checksum still to compute, a GSO super-frame. The edit stage gives
    /// each copy what its egress takes and does the rest in software.
    pub off: Offload,
}

impl Meta {
    pub const EMPTY: Meta = Meta {
        len: 0,
        net: None,
        tag_len: 0,
        pcp_dei: 0,
        verdict: Verdict::Pending,
        learned: learn::Learned::Nothing,
        start: HEADROOM as u16,
        vtep: None,
        off: Offload::NONE,
    };
}

/// A batch of frames from one ingress port.
pub struct Batch {
    pub slots: crate::port::Slots,
    pub meta: [Meta; BATCH],
    pub count: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            slots: crate::port::Slots::new(BATCH),
            meta: [Meta::EMPTY; BATCH],
            count: 0,
        }
    }

    /// The receive area of slot `i` (after its headroom).
    #[inline]
    pub fn rx_area(&mut self, i: usize) -> &mut [u8] {
        &mut self.slots.slot_mut(i)[HEADROOM..HEADROOM + MAX_FRAME]
    }

    /// Frame `i` (from where its `Meta::start` says).
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        let m = &self.meta[i];
        let s = self.slots.slot(i);
        let off = (m.start as usize).min(s.len());
        let len = (m.len as usize).min(s.len() - off);
        &s[off..off + len]
    }

    /// Frame `i`, writable (checksums completed in place).
    #[inline]
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        let m = &self.meta[i];
        let (start, len) = (m.start as usize, m.len as usize);
        let s = self.slots.slot_mut(i);
        let off = start.min(s.len());
        let len = len.min(s.len() - off);
        &mut s[off..off + len]
    }

    /// Reads the first byte of every frame. Frames another core just wrote
    /// (AF_XDP: the kernel's receive) are cache misses; taken here in one
    /// loop of independent loads they overlap, where classify would wait
    /// for each in turn (measured: the first load of classify was 97% of
    /// its samples).
    #[inline]
    pub fn touch_headers(&self) {
        for i in 0..self.count {
            std::hint::black_box(self.frame(i).first().copied());
        }
    }

    /// Empties the batch and receives up to a batch from `port`.
    #[inline]
    pub fn receive(&mut self, port: &mut impl Port) -> Result<usize, RxError> {
        self.clear();
        let mut got = [Rx::default(); BATCH];
        let r = port.recv(&mut self.slots, &mut got);
        let n = match &r {
            Ok(n) => *n,
            Err(e) => e.received,
        };
        for (m, g) in self.meta.iter_mut().zip(&got[..n.min(BATCH)]) {
            *m = Meta {
                len: g.len,
                start: g.start,
                ..Meta::EMPTY
            };
            match g.off {
                Ok(off) => m.off = off,
                // A decided drop is final: no stage looks at it again.
                Err(_) => m.verdict = Verdict::Drop(DropReason::BadOffload),
            }
        }
        self.count = n.min(BATCH);
        r
    }

    /// Appends a frame (tests, benchmarks). False if full or the frame
    /// does not fit a slot.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if self.count == BATCH || frame.len() > MAX_FRAME {
            return false;
        }
        let i = self.count;
        self.rx_area(i)[..frame.len()].copy_from_slice(frame);
        self.set_received(i, frame.len());
        self.count += 1;
        true
    }

    /// Records that slot `i` holds a received frame of `len` bytes.
    #[inline]
    pub fn set_received(&mut self, i: usize, len: usize) {
        self.meta[i] = Meta {
            len: len.min(u16::MAX as usize) as u16,
            ..Meta::EMPTY
        };
    }

    /// Empties the batch. UMEM frames still held (the worker normally
    /// gives them back to their port first) go back to the shared pool.
    pub fn clear(&mut self) {
        self.slots.release_all();
        self.count = 0;
    }
}

/// One queued transmission: which frame of the batch, and the VLAN to tag
/// it with on the way out (`None`: untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxEntry {
    pub frame: u8,
    pub vid: Option<Vid>,
}

impl TxEntry {
    #[inline]
    pub fn new(frame: usize, vid: Option<Vid>) -> TxEntry {
        TxEntry {
            frame: frame as u8,
            vid,
        }
    }
}

/// Transmit queues, one per egress (ports, the stack, VTEPs), flushed once
/// per batch.
pub struct TxQueues {
    queues: Box<[Vec<TxEntry>]>,
    /// Egresses with something queued, in first-queued order.
    pub dirty: Vec<Egress>,
    /// egress's scratch: the ports a flood goes to and their tags, worked
    /// out once per batch (capacity `MAX_PORTS`: never grows).
    pub flood: Vec<(crate::ids::PortId, Option<crate::ids::Vid>)>,
}

impl Default for TxQueues {
    fn default() -> Self {
        Self::new()
    }
}

impl TxQueues {
    pub fn new() -> TxQueues {
        TxQueues {
            // Each frame goes to an egress at most once: BATCH entries suffice.
            queues: (0..Egress::SLOTS)
                .map(|_| Vec::with_capacity(BATCH))
                .collect(),
            dirty: Vec::with_capacity(Egress::SLOTS),
            flood: Vec::with_capacity(crate::ids::MAX_PORTS),
        }
    }

    #[inline]
    pub fn push(&mut self, to: Egress, e: TxEntry) {
        let Some(q) = self.queues.get_mut(to.slot()) else {
            return;
        };
        if q.is_empty() {
            self.dirty.push(to);
        }
        if q.len() < BATCH {
            q.push(e);
        }
    }

    /// What is queued for `to`.
    #[inline]
    pub fn queue(&self, to: Egress) -> &[TxEntry] {
        self.queues.get(to.slot()).map_or(&[], |q| &q[..])
    }

    pub fn clear(&mut self) {
        for &p in &self.dirty {
            if let Some(q) = self.queues.get_mut(p.slot()) {
                q.clear();
            }
        }
        self.dirty.clear();
    }
}

/// What the stages share: the plan, the FDB, this worker's counters.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub fdb: &'a Fdb,
    pub counters: &'a WorkerCounters,
    pub port_up: &'a [AtomicBool],
    pub tracer: &'a Tracer,
    /// `shunt capture`: one check per batch when none runs.
    pub capture: &'a Capture,
    /// The switch's own stack, when a network gives it something to do.
    pub stack: Option<&'a StackLink>,
    /// Spanning-tree state per port (`stp::PortState` as u8), when the
    /// switch runs spanning tree (pipeline/stp.rs).
    pub stp: Option<&'a [std::sync::atomic::AtomicU8]>,
    /// The L2 control thread's queues (l2/), when it runs.
    pub l2: Option<&'a crate::l2::L2Link>,
    /// Snooping's snapshot, loaded once per batch (None: no snooping).
    pub mdb: Option<&'a crate::l2::mdb::Mdb>,
    pub worker: usize,
    /// Storm control and MAC-flap detection (docs/storm.md).
    pub guard: &'a Guard,
    /// A dry run (`shunt trace --packet`, pipeline/dry.rs): the stages
    /// decide as always but change nothing shared (no learning, no token
    /// taken, nothing handed to the stack or the l2 thread); the caller
    /// gives the context counters, a tracer and a capture of its own.
    /// Read once per batch by the stages that would write; its `worker`
    /// is `dry::DRY_WORKER`, which has no per-worker counters or queues.
    pub dry: bool,
}

/// The stages of [`run`], in order: where [`run_seen`] lets a dry run
/// look at the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// classify, or (a batch from the VXLAN underlay) decapsulation.
    Classify,
    Learn,
    Ctl,
    Stp,
    Local,
    Forward,
    Storm,
    Egress,
}

/// Runs the whole pipeline over one batch from `ingress`, leaving the
/// frames to send in `tx`. Returns how many frames went to the switch's stack.
pub fn run(
    ctx: &Context,
    ingress: PortId,
    batch: &mut Batch,
    tx: &mut TxQueues,
    now_ms: u64,
) -> usize {
    // The worker's: nothing is looked at between the stages (the empty
    // closure leaves no code behind).
    run_seen(ctx, ingress, batch, tx, now_ms, |_, _| {})
}

/// [`run`], handing the batch to `seen` after each stage: the one order
/// of the stages, for the worker and for `shunt trace --packet`
/// (pipeline/dry.rs), so that the dry run cannot drift from the datapath.
#[inline(always)]
pub fn run_seen(
    ctx: &Context,
    ingress: PortId,
    batch: &mut Batch,
    tx: &mut TxQueues,
    now_ms: u64,
    mut seen: impl FnMut(Stage, &Batch),
) -> usize {
    let c = ctx.counters.port(ingress.into());
    // Once per batch, not per frame: the counters are shared cache lines.
    let bytes: u64 = batch.meta[..batch.count].iter().map(|m| m.len as u64).sum();
    c.rx_frames.add(batch.count as u64);
    c.rx_bytes.add(bytes);
    let gso = batch.meta[..batch.count]
        .iter()
        .filter(|m| m.off.gso.is_some())
        .count();
    if gso > 0 {
        c.rx_gso.add(gso as u64);
    }
    let mut delivered = 0;
    match &ctx.plan.vxlan {
        // The underlay carries no network: its frames are decapsulated
        // (or go to its ARP handler, or are dropped) instead of classified.
        Some(v) if v.underlay == ingress => {
            vxlan::decap_run(ctx, v, batch);
        }
        _ => classify::run(ctx, ingress, batch),
    }
    seen(Stage::Classify, batch);
    if ctx.fdb.capacity() >= PREFETCH_FROM_ENTRIES {
        prefetch(ctx, batch);
    }
    learn::run(ctx, ingress, batch, now_ms);
    seen(Stage::Learn, batch);
    ctl::run(ctx, ingress, batch);
    seen(Stage::Ctl, batch);
    stp::run(ctx, ingress, batch);
    seen(Stage::Stp, batch);
    delivered += local::run(ctx, ctx.worker, batch);
    seen(Stage::Local, batch);
    forward::run(ctx, ingress.into(), batch);
    seen(Stage::Forward, batch);
    storm::run(ctx, ingress, batch, now_ms);
    seen(Stage::Storm, batch);
    egress::run(ctx, ingress.into(), batch, tx);
    seen(Stage::Egress, batch);
    // One check per batch when no trace is active.
    if ctx.tracer.active() {
        ctx.tracer.record_batch(ctx, ingress.into(), batch, tx);
    }
    // As received, before any edit: the bytes are unchanged until edit::run.
    if ctx.capture.active() {
        ctx.capture.inbound(ctx, ingress.into(), batch, tx);
    }
    delivered
}

/// From this FDB size on, the table no longer sits in the caches and a
/// first pass that touches every frame's two buckets lets their misses
/// overlap (measured +35-45% at 1M entries; a small loss on small tables,
/// where nothing misses: docs/PERF.md).
pub const PREFETCH_FROM_ENTRIES: usize = 1 << 18;

/// Touches the FDB buckets of every frame's source and destination.
fn prefetch(ctx: &Context, batch: &Batch) {
    for i in 0..batch.count {
        let m = &batch.meta[i];
        if m.verdict != Verdict::Pending {
            continue;
        }
        let Some(net) = m.net else { continue };
        let f = batch.frame(i);
        let dst = shunt_parsers::ethernet::dst_addr(f);
        let src = shunt_parsers::ethernet::src_addr(f);
        if let (Some(dst), Some(src)) = (dst, src) {
            ctx.fdb.prefetch(net.raw(), &src.0);
            ctx.fdb.prefetch(net.raw(), &dst.0);
        }
    }
}

/// Runs frames from the switch's stack (already in their network, untagged)
/// through forward and egress; they come in from `Egress::Stack`.
pub fn run_stack(ctx: &Context, batch: &mut Batch, tx: &mut TxQueues) {
    let c = ctx.counters.port(Egress::Stack);
    for i in 0..batch.count {
        c.rx_frames.add(1);
        c.rx_bytes.add(batch.meta[i].len as u64);
        if batch.frame(i).len() < classify::ETH_HDR {
            batch.meta[i].verdict = Verdict::Drop(DropReason::Runt);
        }
    }
    vxlan::stack_output(ctx, batch, tx);
    forward::run(ctx, Egress::Stack, batch);
    egress::run(ctx, Egress::Stack, batch, tx);
    if ctx.tracer.active() {
        ctx.tracer.record_batch(ctx, Egress::Stack, batch, tx);
    }
    if ctx.capture.active() {
        ctx.capture.inbound(ctx, Egress::Stack, batch, tx);
    }
}
