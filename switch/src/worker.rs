//! Workers: pinned threads, each owning the receive side of a set of ports.
//! A worker only moves frames: it polls its ports, receives a batch from
//! each ready one (`Port::recv`), runs the pipeline over it, sends each
//! copy as the edit stage made it (`Port::send`, or the UMEM frame itself),
//! flushes each port once, and hands over what belongs to another worker.
//!
//! ```text
//!   Port::recv ──> batch ──> pipeline::run ──> tx queues ──edit──> Port::send / send_frame ──> flush
//!                                                            │
//!                                                            └──> handoff[me][owner] ──> owner's AF_XDP port
//! ```
//!
//! TAP ports can be written by any thread (the kernel serialises writes on
//! a TAP), so a worker transmits directly on a TAP another worker receives
//! from. An AF_XDP socket's rings have one producer: only the worker that
//! owns the port transmits on it; frames for it from other workers cross
//! through a bounded single-producer/single-consumer queue and one eventfd
//! write per batch wakes the owner. A worker whose queue lacks room for a
//! batch leaves its ports unread until the owner has taken from it (the
//! frames wait in their rings); full is a counted drop, `handoff_full`. Counters stay per worker, single writer. The plan is loaded once
//! per batch, so ports attached or detached at run time take effect between
//! batches without stopping anyone.

use crate::config::{PollMode, TapIo};
use crate::counters::{DropReason, WorkerCounters};
use crate::ids::{Egress, PortId};
use crate::pipeline::edit::{self, Copy, Edit, Out, SegmentBuf};
use crate::pipeline::{self, local, Batch, Context, TxQueues, BATCH};
use crate::port::{
    self, AfXdpPort, Device, Kind, Offload, Port, TapQueue, TapRing, TxError, TxTag, UmemFrame,
};
use crate::runtime::{Handoff, Runtime, MAX_PORTS};
use crate::stack::StackLink;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::fence;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::Arc;

mod impaired;

/// What a poll set entry stands for.
enum Src {
    Port(PortId),
    Wake,
    Stack,
    L2,
}

pub struct Worker {
    pub id: usize,
    rt: Arc<Runtime>,
    counters: Arc<WorkerCounters>,
    batch: Batch,
    tx: TxQueues,
    /// Where super-frames are cut for ports that take no segmentation.
    seg: SegmentBuf,
    core: Option<core_affinity::CoreId>,
    io: Io,
    /// Link impairment: this worker's lines (impair/, worker/impaired.rs).
    imp: crate::impair::Impair,
}

/// A worker's ports and what moves frames between them and the batch.
struct Io {
    id: usize,
    rt: Arc<Runtime>,
    counters: Arc<WorkerCounters>,
    /// The ports this worker receives from, by port id: a handle of a
    /// shared TAP, or an AF_XDP socket with its rings (which only this
    /// worker uses).
    ports: Vec<Option<Device>>,
    /// Owned AF_XDP ports with frames queued since their last flush.
    xdp_dirty: Vec<PortId>,
    /// Owned AF_XDP ports whose transmit ring still holds frames after a
    /// flush (the kernel was busy): flushed again on the next loop turn.
    xdp_pending: Vec<PortId>,
    /// Owned AF_XDP ports flushed since the last pass of frames back to an
    /// ingress port.
    tx_ports: Vec<PortId>,
    /// Workers this batch handed frames to (to wake them once).
    woke: Vec<bool>,
    /// Set when a queue to another worker lacked room for a batch: the
    /// next poll leaves the ports unread (see `room_to_hand_over`).
    held_back: bool,
    /// Per sending worker: a frame taken from its queue while the egress
    /// port's transmit ring was full, sent first on the next turn.
    stash: Vec<Option<Handoff>>,
    /// This worker's io_uring for TAP frames (`tap_io = "uring"`), made on
    /// its own thread; flushed in `kick`.
    tap_ring: Option<Box<TapRing>>,
}

/// A UMEM frame ready to go, with where its bytes are.
struct Held {
    frame: UmemFrame,
    start: u16,
    len: u16,
    /// Filled by a copy (for the `tx_zero_copy` count).
    copied: bool,
}

const POLL_MS: i32 = 100;
/// Free frames an egress AF_XDP port keeps for its own copies when it
/// passes the rest back to the ingress port.
const PASS_KEEP: usize = 64;
/// How often a worker publishes its AF_XDP sockets' kernel counters.
const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Worker {
    pub fn new(id: usize, rt: Arc<Runtime>, core: Option<core_affinity::CoreId>) -> Worker {
        let counters = Arc::clone(&rt.counters[id]);
        let nworkers = rt.counters.len();
        Worker {
            id,
            imp: crate::impair::Impair::new(id, Arc::clone(&rt.impair)),
            io: Io {
                id,
                rt: Arc::clone(&rt),
                counters: Arc::clone(&counters),
                ports: (0..MAX_PORTS).map(|_| None).collect(),
                xdp_dirty: Vec::with_capacity(MAX_PORTS),
                xdp_pending: Vec::with_capacity(MAX_PORTS),
                tx_ports: Vec::with_capacity(MAX_PORTS),
                woke: vec![false; nworkers],
                held_back: false,
                stash: (0..nworkers).map(|_| None).collect(),
                tap_ring: None,
            },
            rt,
            counters,
            batch: Batch::new(),
            tx: TxQueues::new(),
            seg: SegmentBuf::new(),
            core,
        }
    }

    /// The loop: poll, receive, run the pipeline, send, hand over.
    pub fn run(mut self) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                crate::say!(
                    "shunt: worker {} could not be pinned to core {}",
                    self.id,
                    core.id
                );
            }
        }
        let rt = Arc::clone(&self.rt);
        if rt.tap_io == TapIo::Uring {
            self.io.tap_ring = match TapRing::new() {
                Ok(r) => Some(Box::new(r)),
                Err(e) => {
                    crate::say!(
                        "shunt: worker {}: no io_uring ({e}): one system call per TAP frame",
                        self.id
                    );
                    None
                }
            };
        }
        // The poll set, rebuilt only when a port comes, goes or goes down.
        let mut srcs: Vec<Src> = Vec::new();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut seen_gen = u64::MAX;
        // fds[..nports] are ports, the rest the wake and stack events.
        let mut nports = 0;
        let mut last_stats = std::time::Instant::now();
        let mut last_work = std::time::Instant::now();
        while !rt.stop.load(Relaxed) {
            // About once a second, not per batch: one getsockopt per port.
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = std::time::Instant::now();
                self.io.publish_xdp_stats();
                self.io.refill_xdp();
            }
            let gen = rt.port_generation.load(Acquire);
            if gen != seen_gen {
                seen_gen = gen;
                // What was handed over before goes (or is dropped, its
                // port gone) before this worker says it is quiescent.
                self.io.take_handoffs();
                self.io.adopt_ports();
                nports = self.io.poll_set(&mut srcs, &mut fds);
                // A quiescent point: no frame held, gone ports let go of
                // (Runtime::quiesce, before a port id is given again).
                rt.quiescent[self.id].store(gen, Release);
            }
            // Impairment: new specs, and what the lines hold that is due.
            self.imp.sync(|p| port_name(&rt, p));
            self.serve_impaired();
            // Frames left in a transmit ring must not wait for new traffic.
            let mut timeout = if self.io.xdp_pending.is_empty() {
                POLL_MS
            } else {
                // Nothing else is queued between batches: flush these again.
                let io = &mut self.io;
                io.xdp_dirty.append(&mut io.xdp_pending);
                io.kick();
                1
            };
            // A frame handed over that met a full transmit ring goes now.
            if self.io.stash.iter().any(Option::is_some) {
                self.io.take_handoffs();
                timeout = 1;
            }
            // Held back for room in a hand-over queue: the ports stay
            // unread (their frames wait in their rings) until the owner
            // wakes this worker, or for a millisecond.
            let first = if std::mem::take(&mut self.io.held_back) {
                timeout = 1;
                nports
            } else {
                0
            };
            // The polling mode: an adaptive worker keeps polling without
            // sleeping for a while after its last frame (a sleep and a
            // wake-up per frame cost more than the frame on a VM).
            match rt.poll {
                PollMode::Busy => timeout = 0,
                PollMode::Adaptive { budget_us } => {
                    if last_work.elapsed() < std::time::Duration::from_micros(budget_us.into()) {
                        timeout = 0;
                    }
                }
                PollMode::Interrupt => {}
            }
            // Held frames: sleep only until the next is due.
            let polled = match self.impair_wait_ns() {
                Some(ns) if timeout != 0 && ns < u64::from(timeout.unsigned_abs()) * 1_000_000 => {
                    port::poll_ns(&mut fds[first..], std::time::Duration::from_nanos(ns))
                }
                _ => port::poll(&mut fds[first..], timeout),
            };
            match polled {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::say!("shunt: worker {}: poll failed: {e}", self.id);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            }
            for (i, src) in srcs.iter().enumerate().skip(first) {
                let rev = fds[i].revents;
                if rev == 0 {
                    continue;
                }
                let broken = rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
                match src {
                    Src::Port(p) if broken => {
                        rt.port_gone(*p, "the device went away (its namespace was deleted?)");
                    }
                    Src::Port(p) => {
                        if self.drain(*p) > 0 {
                            last_work = std::time::Instant::now();
                        }
                    }
                    Src::Wake => {
                        let _ = rt.wake[self.id].read();
                        self.io.take_handoffs();
                    }
                    Src::Stack => self.send_stack_output(),
                    Src::L2 => self.send_l2_output(),
                }
            }
        }
        // A stopped worker holds nothing: no detach waits for it.
        rt.quiescent[self.id].store(u64::MAX, Release);
    }

    /// Takes batches from port `p` until it has nothing more (at most a few
    /// batches, so one busy port cannot starve the others).
    /// Returns how many frames it took.
    fn drain(&mut self, p: PortId) -> usize {
        // A spec published before these frames arrived applies to them.
        let rt = Arc::clone(&self.rt);
        self.imp.sync(|p| port_name(&rt, p));
        let mut taken = 0;
        for _ in 0..4 {
            if !self.io.room_to_hand_over() || self.io.receive(&mut self.batch, p) == 0 {
                return taken;
            }
            taken += self.batch.count;
            if self.imp.on && self.imp.touches(p.index()) {
                self.impair_ingress(p);
            }
            self.forward(p);
            // A short batch does not end the turn: frames that arrived
            // while this one was processed are taken now, without a poll(2)
            // in between (the receive that finds nothing ends it). Measured:
            // TAP forwarding went from 0.85x to 0.96-1.00x of `--bare`.
        }
        taken
    }

    /// Runs the pipeline over the batch (frames from port `p`) and sends
    /// what it queued.
    fn forward(&mut self, p: PortId) {
        let rt = Arc::clone(&self.rt);
        let counters = Arc::clone(&self.counters);
        let plan = rt.plan.load();
        let mdb = rt.l2.as_ref().map(|l| l.mdb.load());
        let ctx = context(&rt, &plan, mdb.as_deref().map(|m| &**m), &counters, self.id);
        if rt.bare {
            bare(&ctx, p, &self.batch, &mut self.tx);
        } else {
            let now = rt.now_ms();
            let delivered = pipeline::run(&ctx, p, &mut self.batch, &mut self.tx, now);
            if delivered > 0 {
                if let Some(h) = &rt.stack {
                    StackLink::signal(&h.to_host_event);
                }
            }
        }
        self.send(&ctx, p.into());
        if !rt.bare {
            counters.batches.add(1);
        }
    }

    /// Sends what the switch's stack produced, a batch at a time.
    fn send_stack_output(&mut self) {
        let rt = Arc::clone(&self.rt);
        let counters = Arc::clone(&self.counters);
        let Some(h) = rt.stack.as_deref() else { return };
        StackLink::clear(&h.from_host_event);
        loop {
            local::take_output(h, &mut self.batch);
            if self.batch.count == 0 {
                return;
            }
            let plan = rt.plan.load();
            let mdb = rt.l2.as_ref().map(|l| l.mdb.load());
            let ctx = context(&rt, &plan, mdb.as_deref().map(|m| &**m), &counters, self.id);
            pipeline::run_stack(&ctx, &mut self.batch, &mut self.tx);
            self.send(&ctx, Egress::Stack);
        }
    }

    /// Sends what the L2 control thread wants sent out of given ports
    /// (l2/: BPDUs, queries), a batch at a time, straight to those ports.
    fn send_l2_output(&mut self) {
        let rt = Arc::clone(&self.rt);
        let counters = Arc::clone(&self.counters);
        let Some(l2) = rt.l2.as_deref() else { return };
        crate::l2::L2Link::clear(&l2.from_l2_event);
        loop {
            let plan = rt.plan.load();
            let mdb = rt.l2.as_ref().map(|l| l.mdb.load());
            let ctx = context(&rt, &plan, mdb.as_deref().map(|m| &**m), &counters, self.id);
            if pipeline::ctl::take_output(&ctx, l2, &mut self.batch, &mut self.tx) == 0 {
                return;
            }
            // From the switch itself, as its stack's frames.
            self.send(&ctx, Egress::Stack);
        }
    }

    /// Sends every queued copy as the edit stage makes it, then recycles
    /// the frames left, flushes the ports once and wakes the workers that
    /// were handed frames.
    fn send(&mut self, ctx: &Context, ingress: Egress) {
        let io = &mut self.io;
        let tx = &self.tx;
        // One check per batch when no capture runs (pipeline::capture).
        let capture = ctx.capture.active().then(|| ctx.capture.session());
        let cap = capture.as_ref().and_then(|g| g.as_deref());
        let ts = cap.map_or(0, |_| pipeline::capture::now_ns());
        let imp = &mut self.imp;
        // One check per batch when no port is impaired (impair/).
        let now = if imp.on { self.rt.now_ns() } else { 0 };
        edit::run(ctx, &mut self.batch, tx, &mut self.seg, |batch, c, out| {
            if let Some(s) = cap {
                // As it will be sent: before an in-place edit takes the frame.
                s.outbound_copy(ctx, ingress, batch, tx, c, &out, ts);
            }
            if imp.on && imp.touches(c.dev.index()) {
                io.send_impaired(imp, now, batch, ingress, c, out)
            } else {
                io.send_copy(batch, ingress, c, out)
            }
        });
        self.tx.clear();
        self.io.recycle_batch(&mut self.batch, ingress);
        self.io.kick();
        self.io.pass_frames_back(ingress);
    }
}

/// The stages' view of the runtime for one batch of worker `worker` (and
/// the base of a dry run's: probe.rs).
pub(crate) fn context<'a>(
    rt: &'a Runtime,
    plan: &'a pipeline::Plan,
    mdb: Option<&'a crate::l2::mdb::Mdb>,
    counters: &'a crate::counters::WorkerCounters,
    worker: usize,
) -> Context<'a> {
    Context {
        plan,
        fdb: &rt.fdb,
        counters,
        port_up: &rt.port_up,
        tracer: &rt.tracer,
        capture: &rt.capture,
        stack: rt.stack.as_deref(),
        stp: rt.stp.as_deref().map(|s| &s.states[..]),
        l2: rt.l2.as_deref(),
        guard: &rt.guard,
        mdb,
        worker,
        dry: false,
    }
}

/// `--bare` baseline: the same port I/O with no switching logic (port `p`
/// to port `p ^ 1`).
fn bare(ctx: &Context, p: PortId, batch: &Batch, tx: &mut TxQueues) {
    let Some(out) = PortId::new(p.index() ^ 1) else {
        return;
    };
    let c = ctx.counters.port(p.into());
    for i in 0..batch.count {
        c.rx_frames.add(1);
        c.rx_bytes.add(batch.meta[i].len as u64);
        tx.push(out.into(), pipeline::TxEntry::new(i, None));
    }
}

impl Io {
    /// The descriptors to poll: this worker's ports that are up, its wake
    /// eventfd, and (worker 0) the switch's stack's output. Returns how
    /// many are ports (they come first).
    fn poll_set(&self, srcs: &mut Vec<Src>, fds: &mut Vec<libc::pollfd>) -> usize {
        let rt = &self.rt;
        srcs.clear();
        fds.clear();
        for id in PortId::all() {
            let p = id.index();
            // A queue of a multi-queue TAP is this worker's too, and so is
            // an AF_XDP socket it holds (one queue of a multi-queue veth).
            let queue = match &self.ports[p] {
                Some(Device::Tap(t, _)) => t.queues() > 1,
                Some(Device::AfXdp(_)) => true,
                _ => false,
            };
            let mine = queue || rt.port_worker[p].load(Relaxed) == self.id;
            if !mine || !rt.port_up[p].load(Relaxed) || rt.impair.is_down(p) {
                continue;
            }
            if let Some(fd) = self.ports[p].as_ref().and_then(Device::poll_fd) {
                fds.push(port::pollfd(fd.as_raw_fd()));
                srcs.push(Src::Port(id));
            }
        }
        let nports = fds.len();
        // Also with one worker: a detach wakes it to a quiescent point.
        fds.push(port::pollfd(rt.wake[self.id].as_fd().as_raw_fd()));
        srcs.push(Src::Wake);
        // Worker 0 also sends what the switch's stack and its L2 control
        // thread produce.
        if self.id == 0 {
            if let Some(h) = &rt.stack {
                fds.push(port::pollfd(h.from_host_event.as_raw_fd()));
                srcs.push(Src::Stack);
            }
            if let Some(l2) = &rt.l2 {
                fds.push(port::pollfd(l2.from_l2_event.as_raw_fd()));
                srcs.push(Src::L2);
            }
        }
        nports
    }

    /// Copies the kernel's counters of this worker's AF_XDP sockets where
    /// the control plane reads them.
    fn publish_xdp_stats(&self) {
        for (p, d) in self.ports.iter().enumerate() {
            if let (Some(Device::AfXdp(x)), Some(cell)) = (d, self.rt.xdp_stats.get(p)) {
                cell.store(self.id, &x.stats(), x.cached_frames() as u64);
            }
        }
    }

    /// Tops up the fill ring of every AF_XDP port this worker owns: a port
    /// whose ring ran empty while the pool was dry gets no frame, so no
    /// poll(2) wake-up, until it is refilled (AfXdpPort::refill).
    fn refill_xdp(&mut self) {
        for d in self.ports.iter_mut() {
            if let Some(Device::AfXdp(x)) = d {
                x.refill();
            }
        }
    }

    /// Takes the AF_XDP ports handed to this worker and a handle of each
    /// TAP it receives from, and lets go of ports that went down or were
    /// detached (dropping an AF_XDP port detaches its XDP program).
    fn adopt_ports(&mut self) {
        // The last counts of ports about to be let go stay readable.
        self.publish_xdp_stats();
        let rt = Arc::clone(&self.rt);
        while let Some((p, x)) = rt.inbox[self.id].pop() {
            if let Some(slot) = self.ports.get_mut(p.index()) {
                *slot = Some(Device::AfXdp(x));
            }
        }
        for (p, slot) in self.ports.iter_mut().enumerate() {
            let up = rt.port_up[p].load(Relaxed);
            match rt.port_kind[p].load() {
                Some(Kind::AfXdp) if up => {}
                Some(Kind::Tap) if up => {
                    // The handle keeps the descriptor open while polled. A
                    // multi-queue TAP is polled by every worker with a queue
                    // (its own), any other by its one worker.
                    let owner = rt.port_worker[p].load(Relaxed) == self.id;
                    *slot = rt.taps[p].load_full().and_then(|t| match t.queues() {
                        n if n > self.id && n > 1 => Some(Device::Tap(t, self.id)),
                        _ if owner => Some(Device::Tap(t, 0)),
                        _ => None,
                    });
                }
                Some(Kind::Packet) if up && rt.port_worker[p].load(Relaxed) == self.id => {
                    *slot = rt.packets[p].load_full().map(Device::Packet);
                }
                _ => {
                    if let Some(Device::AfXdp(_)) = slot {
                        // Its socket closes and its frames go back to the pool.
                        rt.xdp_stats[p].let_go(self.id);
                    }
                    *slot = None;
                }
            }
        }
    }

    /// Receives a batch from port `p`; a port whose device failed is marked
    /// down (the frames read before are still processed).
    fn receive(&mut self, batch: &mut Batch, p: PortId) -> usize {
        let Some(dev) = self.ports.get_mut(p.index()).and_then(|d| d.as_mut()) else {
            batch.clear();
            return 0;
        };
        let r = match &mut *dev {
            Device::Tap(t, q) => batch.receive(&mut TapQueue::with_ring(
                t,
                *q,
                self.tap_ring.as_deref_mut(),
                None,
            )),
            d => batch.receive(d),
        };
        if let Err(e) = r {
            self.rt.port_gone(p, &format!("read failed: {}", e.error));
        }
        // Frames another core just wrote (AF_XDP: the kernel's receive).
        if dev.caps().zero_copy {
            batch.touch_headers();
        }
        batch.count
    }

    /// Sends one copy the edit stage made ready.
    fn send_copy(&mut self, batch: &mut Batch, ingress: Egress, c: Copy, out: Out<'_>) {
        match self.rt.port_kind[c.dev.index()].load() {
            Some(Kind::AfXdp) => match out {
                Out::Frame(e) => self.send_afxdp(batch, ingress, c, e),
                Out::Segment(b) => self.send_afxdp_parts(ingress, c, &[b]),
            },
            Some(Kind::Tap) => {
                // TAPs are written by whichever worker has frames for them.
                let tap = self.rt.taps[c.dev.index()].load();
                match tap.as_ref() {
                    // On this worker's own queue of a multi-queue TAP.
                    Some(t) => {
                        let mut ring = self.tap_ring.take();
                        let tag = TxTag {
                            to: c.to,
                            dev: c.dev,
                        };
                        let mut q = TapQueue::with_ring(t, self.id, ring.as_deref_mut(), Some(tag));
                        self.send_shared(&mut q, batch, c, out);
                        self.tap_ring = ring;
                    }
                    None => self.counters.count_drop(c.to, DropReason::PortDown),
                }
            }
            // Packet ports too (one descriptor, the kernel serialises).
            Some(Kind::Packet) => {
                let pk = self.rt.packets[c.dev.index()].load();
                match pk.as_deref() {
                    Some(p) => self.send_shared(&mut &*p, batch, c, out),
                    None => self.counters.count_drop(c.to, DropReason::PortDown),
                }
            }
            _ => self.counters.count_drop(c.to, DropReason::PortDown),
        }
    }

    /// Sends a copy out of a port any worker may write to (a TAP, a packet
    /// port): one system call, the kernel gathers the parts.
    fn send_shared(&mut self, port: &mut impl Port, batch: &Batch, c: Copy, out: Out<'_>) {
        let sent = match out {
            Out::Frame(e) => {
                let (parts, n) = e.parts(batch.frame(c.frame));
                port.send(&parts[..n], &e.off)
            }
            Out::Segment(b) => port.send(&[b], &Offload::NONE),
        };
        if let Err(TxError::Gone(e)) = sent {
            let err = io::Error::from_raw_os_error(e);
            self.rt.port_gone(c.dev, &format!("write failed: {err}"));
        }
        self.counters.count_tx(c.to, c.dev, sent);
    }

    /// Sends a copy out of AF_XDP port `c.dev`. The frame's last copy, when
    /// it sits in a UMEM frame, travels as that frame, edited in place; any
    /// other is gathered into a free frame.
    fn send_afxdp(&mut self, batch: &mut Batch, ingress: Egress, c: Copy, e: &Edit) {
        let i = c.frame;
        if c.last && batch.slots.holds(i) {
            let m = batch.meta[i];
            if let Some((start, len)) =
                e.apply(batch.slots.slot_mut(i), m.start.into(), m.len.into())
            {
                if let Some(frame) = batch.slots.take(i) {
                    let held = Held {
                        frame,
                        start: start as u16,
                        len: len as u16,
                        copied: false,
                    };
                    self.send_held(ingress, c, held);
                    return;
                }
            }
            // No room in front of the frame: copied below (an edit that
            // did not fit changed nothing).
        }
        let (parts, n) = e.parts(batch.frame(i));
        self.send_afxdp_parts(ingress, c, &parts[..n]);
    }

    /// Sends a copy gathered from `parts` out of AF_XDP port `c.dev`,
    /// copied into a free UMEM frame.
    fn send_afxdp_parts(&mut self, ingress: Egress, c: Copy, parts: &[&[u8]]) {
        if let Some(x) = owned(&mut self.ports, c.dev.into()) {
            let sent = x.send(parts);
            if sent.is_ok() {
                mark(&mut self.xdp_dirty, c.dev);
            }
            let len = parts.iter().map(|p| p.len()).sum();
            self.counters.count_tx(c.to, c.dev, sent.map(|()| len));
            return;
        }
        // Another worker owns this port's rings: copy into a frame of the
        // shared pool and hand that over.
        let Some(umem) = self.rt.umem.as_ref() else {
            self.counters.count_drop(c.to, DropReason::PortDown);
            return;
        };
        let Some(mut frame) = umem.alloc() else {
            self.counters.count_drop(c.to, DropReason::TxFull);
            return;
        };
        let off = port::afxdp::XDP_PACKET_HEADROOM as usize;
        if !umem.write(&mut frame, off, parts) {
            umem.release(frame);
            self.counters.count_drop(c.to, DropReason::Oversize);
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let held = Held {
            frame,
            start: off as u16,
            len: len as u16,
            copied: true,
        };
        self.send_held(ingress, c, held);
    }

    /// Sends a UMEM frame out of AF_XDP port `c.dev`: straight onto its
    /// transmit ring when this worker owns it, else to the owner through
    /// the handoff queue. A frame that cannot go goes back to the ingress
    /// port's cache (or the pool).
    fn send_held(&mut self, ingress: Egress, c: Copy, h: Held) {
        let counters = Arc::clone(&self.counters);
        if let Some(x) = owned(&mut self.ports, c.dev.into()) {
            let sent = x.send_frame(h.frame, h.start, h.len);
            if sent.is_ok() {
                if !h.copied {
                    counters.port(c.dev.into()).tx_zero_copy.add(1);
                }
                mark(&mut self.xdp_dirty, c.dev);
            }
            counters.count_tx(c.to, c.dev, sent.map(|()| usize::from(h.len)));
            return;
        }
        let owner = self.rt.port_worker[c.dev.index()].load(Relaxed);
        let len = h.len;
        let h = Handoff {
            port: c.dev,
            start: h.start,
            len: h.len,
            frame: h.frame,
            copied: h.copied,
        };
        let refused = match self.rt.handoff[self.id].get(owner) {
            Some(q) => q.push(h).err(),
            None => Some(h),
        };
        let pc = counters.port(c.to);
        let pair = counters.handoff(owner);
        match refused {
            None => {
                if let Some(w) = self.woke.get_mut(owner) {
                    *w = true;
                }
                if let Some(c) = pair {
                    c.frames.add(1);
                }
                // The owner counts the underlay's tx; the remote VTEP's is
                // counted here.
                if Egress::Port(c.dev) != c.to {
                    pc.tx_frames.add(1);
                    pc.tx_bytes.add(len.into());
                }
            }
            Some(h) => {
                pc.drops[DropReason::HandoffFull as usize].add(1);
                if let Some(c) = pair {
                    c.full.add(1);
                }
                self.give_back(ingress, h.frame);
            }
        }
    }

    /// After a batch: UMEM frames the batch still holds (dropped, flooded
    /// by copies, sent to a TAP or the switch's stack) go back to the ingress
    /// port's cache, where its fill ring finds them.
    fn recycle_batch(&mut self, batch: &mut Batch, ingress: Egress) {
        match owned(&mut self.ports, ingress) {
            Some(x) => {
                for i in 0..batch.count {
                    if let Some(f) = batch.slots.take(i) {
                        x.recycle(f);
                    }
                }
            }
            None => batch.slots.release_all(),
        }
    }

    /// Returns a frame to the ingress port's cache when this worker owns
    /// it, else to the shared pool.
    fn give_back(&mut self, ingress: Egress, frame: UmemFrame) {
        match owned(&mut self.ports, ingress) {
            Some(x) => x.recycle(frame),
            None => {
                if let Some(u) = &self.rt.umem {
                    u.release(frame);
                }
            }
        }
    }

    /// Once per batch: AF_XDP ports transmit what was queued, and workers
    /// that were handed frames are woken (one eventfd write each).
    fn kick(&mut self) {
        if let Some(ring) = self.tap_ring.as_deref_mut() {
            ring.flush();
            for f in ring.take_failures() {
                // Counted as sent when queued (as on AF_XDP): the drop too.
                self.counters.count_tx(f.to, f.dev, Err(f.error));
                if let TxError::Gone(e) = f.error {
                    let err = io::Error::from_raw_os_error(e);
                    self.rt.port_gone(f.dev, &format!("write failed: {err}"));
                }
            }
            if ring.broken() {
                crate::say!(
                    "shunt: worker {}: io_uring failed: one system call per TAP frame from now on",
                    self.id
                );
                self.tap_ring = None;
            }
        }
        for &p in &self.xdp_dirty {
            if let Some(x) = owned(&mut self.ports, p.into()) {
                x.flush();
                // Distinct ports only: stays within its capacity.
                mark(&mut self.tx_ports, p);
                if x.tx_in_flight() > 0 {
                    mark(&mut self.xdp_pending, p);
                }
            }
        }
        self.xdp_dirty.clear();
        for (w, woke) in self.woke.iter_mut().enumerate() {
            if *woke {
                *woke = false;
                let _ = self.rt.wake[w].write(1);
            }
        }
    }

    /// Frames the egress AF_XDP ports of this batch got back from their
    /// completion rings go straight to the ingress port, newest first,
    /// where its fill ring reuses them while they are still in the caches
    /// (through the shared pool they would come back last: it is a FIFO
    /// over the whole UMEM).
    fn pass_frames_back(&mut self, ingress: Egress) {
        let Some(to) = ingress.port().map(PortId::index) else {
            return;
        };
        if owned(&mut self.ports, ingress).is_none() {
            return;
        }
        for i in 0..self.tx_ports.len() {
            let from = self.tx_ports[i].index();
            if from == to || from >= self.ports.len() {
                continue;
            }
            // Both ports mutably: split at the higher index.
            let (l, r) = self.ports.split_at_mut(from.max(to));
            let (Some(low), Some(high)) = (l.get_mut(from.min(to)), r.first_mut()) else {
                continue;
            };
            let (a, b) = if from < to { (low, high) } else { (high, low) };
            if let (Some(Device::AfXdp(a)), Some(Device::AfXdp(b))) = (a, b) {
                a.pass_frames(b, PASS_KEEP);
            }
        }
        self.tx_ports.clear();
    }

    /// Whether every queue to another worker has room for a whole batch.
    /// If one has not, the worker holds off receiving (the frames wait in
    /// their ingress rings, where the kernel counts what overflows) rather
    /// than drop frames at the queue, and asks that worker to wake it once
    /// it has taken from the queue.
    fn room_to_hand_over(&mut self) -> bool {
        let rt = &self.rt;
        let room = |q: &crossbeam_queue::ArrayQueue<Handoff>| q.capacity() - q.len() >= BATCH;
        for (to, q) in rt.handoff[self.id].iter().enumerate() {
            if to == self.id || room(q) {
                continue;
            }
            let waiting = &rt.handoff_waiting[self.id][to];
            waiting.store(true, Relaxed);
            // Pairs with the fence in take_handoffs: either the owner sees
            // the flag, or this sees the room it made.
            fence(SeqCst);
            if room(q) {
                waiting.store(false, Relaxed);
                continue;
            }
            if let Some(c) = self.counters.handoff(to) {
                c.held_back.add(1);
            }
            self.held_back = true;
            return false;
        }
        true
    }

    /// Sends the frames other workers handed over for this worker's AF_XDP
    /// ports (UMEM frames: their addresses go on the transmit ring),
    /// flushing every batch so the kernel sends while more are taken. A
    /// frame that meets a full transmit ring is kept for the next turn, and
    /// so is the rest of its queue; a sender that waits for room is woken.
    fn take_handoffs(&mut self) {
        let counters = Arc::clone(&self.counters);
        let rt = Arc::clone(&self.rt);
        for from in 0..rt.handoff.len() {
            let q = &rt.handoff[from][self.id];
            let mut taken = 0usize;
            while let Some(h) = self.stash[from].take().or_else(|| q.pop()) {
                let p = h.port;
                let up = rt.port_up[p.index()].load(Relaxed);
                match owned(&mut self.ports, p.into()) {
                    Some(x) if up => {
                        if x.tx_ring_full() {
                            // Completions may have come back since.
                            x.flush();
                        }
                        if x.tx_ring_full() {
                            self.stash[from] = Some(h);
                            break;
                        }
                        let sent = x.send_frame(h.frame, h.start, h.len);
                        if sent.is_ok() {
                            if !h.copied {
                                counters.port(p.into()).tx_zero_copy.add(1);
                            }
                            mark(&mut self.xdp_dirty, p);
                        }
                        counters.count_tx(p.into(), p, sent.map(|()| usize::from(h.len)));
                        taken += 1;
                        if taken.is_multiple_of(BATCH) {
                            self.kick();
                        }
                    }
                    _ => {
                        counters.count_drop(p.into(), DropReason::PortDown);
                        if let Some(u) = &rt.umem {
                            u.release(h.frame);
                        }
                    }
                }
            }
            // Pairs with the fence in room_to_hand_over.
            fence(SeqCst);
            if rt.handoff_waiting[from][self.id].swap(false, Relaxed) {
                let _ = rt.wake[from].write(1);
            }
        }
        self.kick();
    }
}

/// The AF_XDP port `e` when this worker owns it.
fn owned(ports: &mut [Option<Device>], e: Egress) -> Option<&mut AfXdpPort> {
    let p = e.port()?;
    ports.get_mut(p.index())?.as_mut()?.afxdp()
}

/// Adds `p` to a list of distinct ports.
#[inline]
fn mark(list: &mut Vec<PortId>, p: PortId) {
    if !list.contains(&p) {
        list.push(p);
    }
}

/// Port `p`'s name in the current plan (control-rate: impairment changes).
fn port_name(rt: &Runtime, p: usize) -> String {
    rt.plan
        .load()
        .ports
        .get(p)
        .map_or(String::new(), |x| x.name.clone())
}
