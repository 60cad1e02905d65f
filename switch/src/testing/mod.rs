//! A switch without I/O, for the pipeline tests and the in-memory
//! benchmarks (perf/): one rig serves both (docs/decisions.md).
//!
//! A [`Rig`] is what a worker has, built the same way but with an
//! in-memory port ([`MemPort`]) behind every port of the topology: a
//! `Plan` from the topology (`Plan::from_topology` creates no device), an
//! FDB with the topology's static entries, one worker's counters, an idle
//! tracer, every port up, no switch stack unless [`Rig::with_stack`] adds
//! one (the fuzz targets do). [`Rig::step`] does what a worker
//! does with a ready port: receive a batch, run the pipeline, run the edit
//! stage and send every copy to its port, flush. The pieces
//! ([`Rig::receive`], [`Rig::process`], [`Rig::transmit`]) are there for
//! tests that look in between, and [`Rig::load`] / [`Rig::readdress`] for
//! benchmarks that "receive" by rewriting a batch in place.

use crate::config::{self, Topology};
use crate::counters::WorkerCounters;
use crate::ids::PortId;
use crate::pipeline::edit::Out;
use crate::pipeline::{self, edit, Batch, Context, Plan, TxQueues, BATCH};
use crate::port::{MemPort, Offload, Port, TxError};
use crate::stack::StackLink;
use crate::trace::Tracer;
use shunt_parsers::{EthernetFrame, MacAddr};
use shunt_tables::{Fdb, FdbConfig};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The stages' view of a rig (a macro, not a method: the batch and the
/// queues stay free to borrow mutably beside it).
macro_rules! context {
    ($rig:expr) => {
        Context {
            plan: &$rig.plan,
            fdb: &$rig.fdb,
            counters: &$rig.counters,
            port_up: &$rig.port_up,
            tracer: &$rig.tracer,
            capture: &$rig.capture,
            stack: $rig.stack.as_deref(),
            stp: $rig.stp.as_deref(),
            l2: $rig.l2.as_deref(),
            mdb: $rig.mdb.as_deref(),
            worker: 0,
            guard: &$rig.guard,
            dry: false,
        }
    };
}

/// Frames each in-memory port holds each way.
pub const PORT_FRAMES: usize = 4 * BATCH;

/// Port id `i`.
///
/// # Panics
/// If `i` is not below `ids::MAX_PORTS` (a test's mistake).
pub fn port(i: usize) -> PortId {
    match PortId::new(i) {
        Some(p) => p,
        None => panic!("port id {i} out of range"),
    }
}

/// The pipeline's state for one worker, with in-memory ports.
pub struct Rig {
    pub plan: Plan,
    /// Shared with the rigs made by [`Rig::sharing_fdb`], as the workers of
    /// a switch share one table.
    pub fdb: Arc<Fdb>,
    pub counters: WorkerCounters,
    pub tracer: Tracer,
    pub capture: crate::pipeline::Capture,
    pub port_up: Box<[AtomicBool]>,
    pub batch: Batch,
    pub tx: TxQueues,
    /// One in-memory port per topology port, by port id.
    pub ports: Vec<MemPort>,
    /// The switch's stack's queues (no host thread: frames detoured to it
    /// stay in `to_host` for the test to take); None unless `with_stack`.
    pub stack: Option<Arc<StackLink>>,
    /// Spanning-tree port states (pipeline/stp.rs); None: spanning tree off.
    pub stp: Option<Box<[std::sync::atomic::AtomicU8]>>,
    /// The L2 control thread's queues (no thread: copies stay in `to_l2`
    /// for the test to take); None unless `with_l2`.
    pub l2: Option<Arc<crate::l2::L2Link>>,
    /// Snooping's snapshot as a worker loads it (from `l2` at each
    /// `process`).
    pub mdb: Option<Arc<crate::l2::mdb::Mdb>>,
    /// Ports sent to since their last flush.
    sent_to: Vec<PortId>,
    /// Where super-frames are cut (as a worker's).
    seg: edit::SegmentBuf,
    /// Where the batch in hand came from (for the capture's outbound copies).
    ingress: crate::ids::Egress,
    /// Storm control and MAC-flap detection, as the topology says.
    pub guard: crate::pipeline::Guard,
    /// Link impairment, as worker 0 of a switch has it; None unless
    /// [`Rig::with_impair`].
    pub impair: Option<crate::impair::Impair>,
    /// The impairment's clock starts here (a worker's `Runtime::now_ns`).
    started: std::time::Instant,
}

impl Rig {
    /// A rig for `toml` (a topology file), its FDB as large as the file
    /// says.
    ///
    /// # Panics
    /// If the topology does not parse: tests and benchmarks write their own.
    pub fn new(toml: &str) -> Rig {
        let topo = parse(toml);
        let max = topo.switch.fdb_max_entries;
        Rig::from_topology(&topo, max)
    }

    /// The same with an FDB of `max_entries`.
    ///
    /// # Panics
    /// As [`Rig::new`].
    pub fn with_fdb(toml: &str, max_entries: usize) -> Rig {
        Rig::from_topology(&parse(toml), max_entries)
    }

    pub fn from_topology(topo: &Topology, max_entries: usize) -> Rig {
        Rig::build(topo, Arc::new(fdb(topo, max_entries)))
    }

    /// A rig around `plan` and `fdb`: every port up and empty, its own
    /// counters, no stack.
    fn build(topo: &Topology, fdb: Arc<Fdb>) -> Rig {
        let plan = Plan::from_topology(topo);
        let n = plan.ports.len();
        Rig {
            plan,
            fdb,
            counters: WorkerCounters::new(),
            tracer: Tracer::new(),
            capture: crate::pipeline::Capture::new(),
            port_up: (0..n).map(|_| AtomicBool::new(true)).collect(),
            batch: Batch::new(),
            tx: TxQueues::new(),
            ports: (0..n).map(|_| MemPort::new(PORT_FRAMES)).collect(),
            stack: None,
            stp: None,
            l2: None,
            mdb: None,
            sent_to: Vec::with_capacity(n),
            seg: edit::SegmentBuf::new(),
            ingress: crate::ids::Egress::Stack,
            guard: crate::pipeline::Guard::from_topology(topo, 1),
            impair: None,
            started: std::time::Instant::now(),
        }
    }

    /// The same rig with link impairment as `toml` (this rig's topology)
    /// sets it in `[[impair]]`, as a worker has it: [`Rig::transmit`] then
    /// decides each copy for an impaired egress (lost, sent now, held),
    /// and [`Rig::impair_turn`] does a worker's per-turn part (perf/benches
    /// pipeline.rs, group `impair`). Ingress impairment is not modelled.
    pub fn with_impair(mut self, toml: &str) -> Rig {
        let topo = parse(toml);
        let shared = crate::impair::Shared::with_ports(1, config::port_impairs(&topo));
        let mut imp = crate::impair::Impair::new(0, Arc::new(shared));
        let plan = &self.plan;
        imp.sync(|p| plan.ports.get(p).map_or(String::new(), |x| x.name.clone()));
        self.impair = Some(imp);
        self
    }

    /// What a worker does with impairment each loop turn: takes a new
    /// spec (one atomic load when nothing changed) and sends the held
    /// frames that are due to their in-memory ports. Returns how many.
    pub fn impair_turn(&mut self) -> usize {
        let now = self.started.elapsed().as_nanos() as u64;
        let Some(imp) = self.impair.as_mut() else {
            return 0;
        };
        let plan = &self.plan;
        imp.sync(|p| plan.ports.get(p).map_or(String::new(), |x| x.name.clone()));
        if !imp.on {
            return 0;
        }
        let mut sent = 0;
        for k in 0..imp.live_count() {
            let Some((p, true)) = imp.live_at(k) else {
                continue;
            };
            let (Some((line, c)), Some(port)) = (imp.line(p, true), self.ports.get_mut(p)) else {
                continue;
            };
            sent += line.serve(now, 4 * BATCH, c, |h| {
                let _ = port.send(&[h.bytes], &h.off);
            });
            port.flush();
        }
        imp.after_serve();
        sent
    }

    /// The same rig with the switch's stack's queues that `topo` needs
    /// (its addresses, ARP suppression, the VXLAN underlay), as
    /// `shunt up` makes them, so `local` detours frames and VXLAN has
    /// an underlay to resolve next hops in.
    pub fn with_stack(mut self, topo: &Topology) -> std::io::Result<Rig> {
        self.stack = StackLink::for_topology(topo, 1)?.map(Arc::new);
        Ok(self)
    }

    /// The same rig with the L2 control thread's queues (and no thread:
    /// tests run `l2::Registry::round` themselves, or look in the queues).
    pub fn with_l2(mut self) -> std::io::Result<Rig> {
        self.l2 = Some(Arc::new(crate::l2::L2Link::new(1)?));
        Ok(self)
    }

    /// The same rig with the l2 thread's queues and IGMP/MLD snooping on
    /// the networks of `toml` (this rig's topology) that have it, as
    /// `shunt up` starts it; the protocol is in the returned registry, with
    /// no thread: feed it with `Registry::round` (the snooping tests,
    /// perf/benches/pipeline.rs). Queriers count after their response time
    /// (10 s): pass times past it.
    ///
    /// # Panics
    /// On a topology that does not parse, as [`Rig::new`].
    pub fn with_snooping(self, toml: &str) -> std::io::Result<(Rig, crate::l2::Registry)> {
        use crate::l2::snoop::{Snoop, SnoopNet};
        let rig = self.with_l2()?;
        let l2 = rig.l2.clone().ok_or(std::io::ErrorKind::Other)?;
        let topo = parse(toml);
        let nets = topo
            .networks
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                Some(SnoopNet {
                    net: crate::ids::NetId::new(i)?,
                    name: n.name.clone(),
                    cfg: n.mcast,
                    mac: [2, 0x53, 0, 0, 0, i as u8],
                    ip: n.address,
                })
            })
            .collect();
        let members: Vec<Vec<PortId>> = rig.plan.nets.iter().map(|n| n.members.clone()).collect();
        let ports_of =
            move |n: crate::ids::NetId| members.get(n.index()).cloned().unwrap_or_default();
        let snoop = Snoop::new(
            Arc::clone(&l2),
            nets,
            topo.networks.len(),
            Box::new(ports_of),
        );
        let mut reg = crate::l2::Registry::new(l2);
        reg.add(Box::new(snoop));
        Ok((rig, reg))
    }

    /// What worker 0 does when the l2 thread has frames to send: takes up
    /// to a batch, queues each on its port and sends. Returns the frames
    /// taken (0: none left).
    pub fn run_l2_output(&mut self) -> usize {
        let Some(l2) = self.l2.clone() else {
            return 0;
        };
        self.ingress = crate::ids::Egress::Stack;
        let ctx = context!(self);
        let n = pipeline::ctl::take_output(&ctx, &l2, &mut self.batch, &mut self.tx);
        if n > 0 {
            self.transmit();
        }
        n
    }

    /// Back to how `from_topology` left it, without allocating again (the
    /// fuzz targets run thousands of inputs a second): a fresh FDB with
    /// the static entries, every port up and empty, nothing queued, no
    /// trace, the stack's queues empty. Counters keep counting (read differences).
    pub fn reset(&mut self, topo: &Topology) {
        self.fdb = Arc::new(fdb(topo, self.fdb.capacity()));
        for up in self.port_up.iter() {
            up.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        for p in &mut self.ports {
            while p.pending() > 0 && self.batch.receive(p).is_ok() {}
            p.clear_sent();
        }
        self.batch.clear();
        self.tx.clear();
        // Storm buckets full again, no move left queued.
        self.guard.storm.apply(&topo.storm);
        self.guard.flap.drain(drop);
        self.tracer.stop();
        while self.tracer.pop().is_some() {}
        if let Some(s) = self.stack.as_deref() {
            while s.to_host.pop().is_some() {}
            while s.from_host.pop().is_some() {}
            while s.snoop.pop().is_some() {}
            if let Some(ul) = &s.underlay {
                while ul.rx.pop().is_some() {}
            }
        }
        if let Some(l2) = self.l2.as_deref() {
            while l2.to_l2.pop().is_some() {}
            while l2.from_l2.pop().is_some() {}
        }
    }

    /// A second worker's rig for `toml` (the same topology as this one's),
    /// sharing this rig's FDB as a switch's workers share it: counters,
    /// batch, queues and ports of its own (perf/benches/scaling.rs).
    pub fn sharing_fdb(&self, toml: &str) -> Rig {
        Rig::build(&parse(toml), Arc::clone(&self.fdb))
    }

    /// The same rig with in-memory ports that take frames of up to 64 KiB
    /// (GSO super-frames) and claim the offloads the plan gives their kind
    /// (a TAP's: all; an AF_XDP port's: none).
    pub fn large_ports(mut self) -> Rig {
        self.ports = self
            .plan
            .ports
            .iter()
            .map(|p| MemPort::large(PORT_FRAMES, p.offloads))
            .collect();
        self
    }

    /// The stages' view of the rig (for a dry run: pipeline::dry).
    pub fn context(&self) -> Context<'_> {
        context!(self)
    }

    /// Receives a batch from port `p` (what was pushed into its
    /// `MemPort`), runs the pipeline and sends what it decided. Returns how
    /// many copies were sent.
    pub fn step(&mut self, p: PortId, now_ms: u64) -> usize {
        self.receive(p);
        self.process(p, now_ms);
        self.transmit()
    }

    /// Receives up to a batch from port `p` into the batch.
    pub fn receive(&mut self, p: PortId) -> usize {
        match self.ports.get_mut(p.index()) {
            // An in-memory port never fails.
            Some(port) => self.batch.receive(port).unwrap_or(0),
            None => {
                self.batch.clear();
                0
            }
        }
    }

    /// Runs the pipeline over the batch as if it came in on `ingress`,
    /// leaving the copies in the transmit queues.
    #[inline]
    pub fn process(&mut self, ingress: PortId, now_ms: u64) {
        self.ingress = ingress.into();
        if let Some(l2) = &self.l2 {
            // Once per batch, as a worker.
            self.mdb = Some(l2.mdb.load_full());
        }
        let ctx = context!(self);
        pipeline::run(&ctx, ingress, &mut self.batch, &mut self.tx, now_ms);
    }

    /// The edit stage and the ports, as a worker runs them after the
    /// pipeline: every queued copy edited and sent to its in-memory port,
    /// each port flushed once, the queues emptied. Returns the copies sent.
    pub fn transmit(&mut self) -> usize {
        let ctx = context!(self);
        let (ports, sent_to) = (&mut self.ports, &mut self.sent_to);
        let mut sent = 0;
        let (tx, ingress) = (&self.tx, self.ingress);
        // As the worker does (worker.rs `send`): outbound copies captured.
        let capture = ctx.capture.active().then(|| ctx.capture.session());
        let cap = capture.as_ref().and_then(|g| g.as_deref());
        let ts = cap.map_or(0, |_| pipeline::capture::now_ns());
        // One check per batch when no port is impaired, as a worker.
        let imp = &mut self.impair;
        let now = match imp {
            Some(i) if i.on => self.started.elapsed().as_nanos() as u64,
            _ => 0,
        };
        edit::run(&ctx, &mut self.batch, tx, &mut self.seg, |batch, c, out| {
            if let Some(s) = cap {
                s.outbound_copy(&ctx, ingress, batch, tx, c, &out, ts);
            }
            let port = ports.get_mut(c.dev.index());
            if let Some(i) = imp.as_mut().filter(|i| i.on && i.touches(c.dev.index())) {
                if let (Some(p), Some((line, lc))) = (port, i.line(c.dev.index(), true)) {
                    sent += impaired_copy(line, lc, now, batch, c, out, p, ctx.counters);
                    if !sent_to.contains(&c.dev) {
                        sent_to.push(c.dev);
                    }
                }
                return;
            }
            let r = match (out, port) {
                (Out::Frame(e), Some(p)) => {
                    let (parts, n) = e.parts(batch.frame(c.frame));
                    p.send(&parts[..n], &e.off)
                }
                (Out::Segment(b), Some(p)) => p.send(&[b], &Offload::NONE),
                (_, None) => Err(TxError::Gone(libc::ENODEV)),
            };
            if r.is_ok() {
                sent += 1;
                if !sent_to.contains(&c.dev) {
                    sent_to.push(c.dev);
                }
            }
            ctx.counters.count_copy(c.to, c.dev, c.mirror, r);
        });
        for p in self.sent_to.drain(..) {
            if let Some(port) = self.ports.get_mut(p.index()) {
                port.flush();
            }
        }
        self.tx.clear();
        sent
    }

    /// What a worker does when the switch's stack has frames to send:
    /// takes up to a batch of them, runs them through forward and egress
    /// and sends the copies. Returns the frames taken (0: none left).
    pub fn run_stack_output(&mut self) -> usize {
        let Some(h) = self.stack.as_deref() else {
            return 0;
        };
        crate::pipeline::local::take_output(h, &mut self.batch);
        let n = self.batch.count;
        if n > 0 {
            self.ingress = crate::ids::Egress::Stack;
            let ctx = context!(self);
            pipeline::run_stack(&ctx, &mut self.batch, &mut self.tx);
            self.transmit();
        }
        n
    }

    /// Runs the pipeline over the batch, then empties the transmit queues
    /// without sending (the benchmarks of the pipeline alone). Returns the
    /// number of queued copies.
    #[inline]
    pub fn run(&mut self, ingress: PortId, now_ms: u64) -> usize {
        self.process(ingress, now_ms);
        let queued = self.tx.dirty.iter().map(|&p| self.tx.queue(p).len()).sum();
        self.tx.clear();
        queued
    }

    /// Loads `frames` (at most a batch) into the batch, as a port's receive
    /// would: bytes written, metadata reset.
    #[inline]
    pub fn load(&mut self, frames: &[[u8; 64]]) {
        self.batch.clear();
        for f in frames.iter().take(BATCH) {
            self.batch.push(f);
        }
    }

    /// Rewrites the MAC addresses of the batch's frames in place (a cheaper
    /// "receive" for streams of distinct addresses) and resets their
    /// metadata. `macs[i]` is (destination, source) of frame `i`.
    #[inline]
    pub fn readdress(&mut self, macs: &[([u8; 6], [u8; 6])]) {
        for (i, (d, s)) in macs.iter().enumerate().take(self.batch.count) {
            let mut eth = EthernetFrame::new_unchecked(self.batch.rx_area(i));
            eth.set_dst_addr(MacAddr(*d));
            eth.set_src_addr(MacAddr(*s));
            let len = self.batch.meta[i].len as usize;
            self.batch.set_received(i, len);
        }
    }
}

/// One copy for an impaired egress, decided as a worker's
/// `send_impaired` decides it (worker/impaired.rs): lost (`impair_loss`),
/// sent now (twice when duplicated), or held in the line
/// (`impair_queue_full` without room). Returns the copies sent now.
#[allow(clippy::too_many_arguments)]
fn impaired_copy(
    line: &mut crate::impair::Line,
    lc: &crate::impair::LineCounters,
    now: u64,
    batch: &Batch,
    c: edit::Copy,
    out: Out<'_>,
    port: &mut MemPort,
    counters: &WorkerCounters,
) -> usize {
    use crate::counters::DropReason;
    use crate::impair::Fate;
    let d = line.decide(lc);
    if d.n == 0 {
        counters.count_drop(c.to, DropReason::ImpairLoss);
        return 0;
    }
    let mut sent = 0;
    for f in &d.fates[..d.n] {
        let (parts, n, off) = match out {
            Out::Frame(e) => {
                let (parts, n) = e.parts(batch.frame(c.frame));
                (parts, n, e.off)
            }
            Out::Segment(b) => {
                let parts: [&[u8]; 3] = [b, &[], &[]];
                (parts, 1, Offload::NONE)
            }
        };
        match *f {
            Fate::Now => {
                let r = port.send(&parts[..n], &off);
                sent += usize::from(r.is_ok());
                counters.count_tx(c.to, c.dev, r);
            }
            Fate::Hold { corrupt } => {
                if !line.hold(now, &parts[..n], off, c.to, corrupt, lc) {
                    counters.count_drop(c.to, DropReason::ImpairQueueFull);
                }
            }
        }
    }
    sent
}

/// An FDB of `max_entries` with the topology's static entries.
fn fdb(topo: &Topology, max_entries: usize) -> Fdb {
    let fdb = crate::pipeline::guard::fdb_for(
        topo,
        FdbConfig {
            max_entries,
            aging_ms: 300_000,
        },
    );
    for s in &topo.fdb {
        // A static entry the FDB refuses (full) is a test's mistake
        // that its assertions show.
        let _ = fdb.add_static(s.network as u16, s.mac.as_bytes(), s.port as u16);
    }
    fdb
}

fn parse(toml: &str) -> Topology {
    match config::parse("rig.toml", toml) {
        Ok(t) => t,
        Err(e) => panic!("rig topology: {e}"),
    }
}

pub mod fuzz;

#[cfg(test)]
mod capture_tests;
#[cfg(test)]
mod dry_tests;
#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod impair_tests;
#[cfg(test)]
mod l2_tests;
#[cfg(test)]
mod mcast_tests;
#[cfg(test)]
mod mirror_tests;
#[cfg(test)]
mod offload_tests;
#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod stp_tests;
