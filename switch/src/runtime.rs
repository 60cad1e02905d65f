//! The running switch: what workers and the control plane share.
//!
//! Workers never lock: the plan is an `ArcSwap` loaded once per batch,
//! ports are `ArcSwapOption`s, link state and ownership are atomics. The
//! topology (names, addresses) is the control plane's, behind a mutex that
//! no worker touches.

use crate::config::Topology;
use crate::counters::WorkerCounters;
use crate::ids::{Egress, PortId};
use crate::pipeline::Plan;
use crate::port::{AfXdpPort, Device, Kind, KindCell, PacketPort, Tap};
use crate::trace::Tracer;
use arc_swap::{ArcSwap, ArcSwapOption};
use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};
use shunt_tables::Fdb;
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::ids::MAX_PORTS;

/// Frames per cross-worker queue (AF_XDP ports transmit only from the
/// worker that owns their rings): as many as the owner's transmit ring
/// takes. With 256, one TCP stream across workers lost 1 frame in 60
/// (`handoff_full`; docs/reliability.md); the sender now also holds off
/// receiving while a queue lacks room for a batch.
pub const HANDOFF_QUEUE: usize = crate::port::umem::RING_SIZE as usize;

/// A frame for another worker's AF_XDP port: the UMEM frame itself (the
/// rings of a socket have one producer, so the owner puts it on the
/// transmit ring), with where its bytes are.
pub struct Handoff {
    pub port: PortId,
    pub start: u16,
    pub len: u16,
    pub frame: crate::port::UmemFrame,
    /// Whether the sender copied the frame into this UMEM frame (it came
    /// from a TAP, the switch's stack, or was one copy of a flood).
    pub copied: bool,
    /// A mirror port's copy (counted as one by the owner).
    pub mirror: bool,
}

/// The kernel's counters of one AF_XDP socket, as the worker that owns it
/// last read them (about once a second).
#[derive(Default)]
pub struct XdpQueueCell {
    pub rx_dropped: AtomicU64,
    pub rx_fill_ring_empty: AtomicU64,
    pub rx_ring_full: AtomicU64,
    pub rx_invalid_descs: AtomicU64,
    pub tx_invalid_descs: AtomicU64,
    pub bad_kernel_descs: AtomicU64,
    /// Free frames in the socket's cache (for the UMEM's frame count).
    pub cached: AtomicU64,
}

/// The kernel's counters of one AF_XDP port: one line per worker, for the
/// socket it owns (one, or one per queue of a multi-queue veth, each
/// written by its own worker); `shunt stats --json` shows their sum.
pub struct XdpStatsCell {
    queues: Box<[XdpQueueCell]>,
}

impl XdpStatsCell {
    pub fn new(workers: usize) -> XdpStatsCell {
        XdpStatsCell {
            queues: (0..workers.max(1))
                .map(|_| XdpQueueCell::default())
                .collect(),
        }
    }

    /// Worker `w`'s socket's counters and free frames.
    pub fn store(&self, w: usize, s: &crate::port::AfXdpStats, cached: u64) {
        let Some(q) = self.queues.get(w) else { return };
        q.rx_dropped.store(s.rx_dropped, Relaxed);
        q.rx_fill_ring_empty.store(s.rx_fill_ring_empty, Relaxed);
        q.rx_ring_full.store(s.rx_ring_full, Relaxed);
        q.rx_invalid_descs.store(s.rx_invalid_descs, Relaxed);
        q.tx_invalid_descs.store(s.tx_invalid_descs, Relaxed);
        q.bad_kernel_descs.store(s.bad_kernel_descs, Relaxed);
        q.cached.store(cached, Relaxed);
    }

    /// Worker `w` let go of its socket: its frames went back to the pool.
    pub fn let_go(&self, w: usize) {
        if let Some(q) = self.queues.get(w) {
            q.cached.store(0, Relaxed);
        }
    }

    /// Everything back to zero (the port id is given again).
    pub fn reset(&self) {
        for w in 0..self.queues.len() {
            self.store(w, &Default::default(), 0);
        }
    }

    /// Free frames in the caches of the port's sockets.
    pub fn cached(&self) -> u64 {
        self.sum(|q| &q.cached)
    }

    fn sum(&self, f: impl Fn(&XdpQueueCell) -> &AtomicU64) -> u64 {
        self.queues.iter().map(|q| f(q).load(Relaxed)).sum()
    }

    pub fn json(&self) -> serde_json::Value {
        let rx_dropped = self.sum(|q| &q.rx_dropped);
        let fill_empty = self.sum(|q| &q.rx_fill_ring_empty);
        serde_json::json!({
            "rx_dropped": rx_dropped,
            "rx_fill_ring_empty": fill_empty,
            "rx_oversize": rx_dropped.saturating_sub(fill_empty),
            "rx_ring_full": self.sum(|q| &q.rx_ring_full),
            "rx_invalid_descs": self.sum(|q| &q.rx_invalid_descs),
            "tx_invalid_descs": self.sum(|q| &q.tx_invalid_descs),
            "bad_kernel_descs": self.sum(|q| &q.bad_kernel_descs),
        })
    }
}

pub struct Runtime {
    topo: Mutex<Topology>,
    pub name: String,
    pub bare: bool,
    /// How the workers wait for frames.
    pub poll: crate::config::PollMode,
    /// How TAP frames move (one ring per worker, or a call per frame).
    pub tap_io: crate::config::TapIo,
    pub plan: ArcSwap<Plan>,
    pub fdb: Fdb,
    /// Port devices by id; None for ids not (or no longer) in use.
    pub taps: Box<[ArcSwapOption<Tap>]>,
    /// Packet ports (veth hosts) by id, shared the same way as TAPs.
    pub packets: Box<[ArcSwapOption<PacketPort>]>,
    pub port_up: Box<[AtomicBool]>,
    /// Which worker receives from each port.
    pub port_worker: Box<[AtomicUsize]>,
    /// What backs each port id (`None`: nothing, or no longer).
    pub port_kind: Box<[KindCell]>,
    /// The kernel's counters of each AF_XDP port's sockets.
    pub xdp_stats: Box<[XdpStatsCell]>,
    /// Sockets (queues) of each AF_XDP port: 1, or one per worker for a
    /// multi-queue veth (socket k is worker k's); 0 for other ports.
    pub xdp_queues: Box<[u16]>,
    /// The mode each AF_XDP port got at open ("native-copy", ...), for
    /// `shunt ports --json`; None for other ports.
    pub xdp_mode: Box<[Option<&'static str>]>,
    /// The frame memory of the AF_XDP ports (None without any): its pool
    /// gives frames for copies bound for another worker's port, and takes
    /// back frames that cannot be sent.
    pub umem: Option<crate::port::SharedUmem>,
    /// New AF_XDP ports, per worker: the owner takes them when the port
    /// generation changes (lock-free hand-over of the socket and its rings).
    pub inbox: Vec<ArrayQueue<(PortId, Box<AfXdpPort>)>>,
    /// Frames for another worker's AF_XDP port: `handoff[from][to]`, each
    /// with one producer and one consumer. The sender holds off receiving
    /// while one lacks room for a batch; full is a counted drop.
    /// (Frames still queued when the switch stops are freed with the UMEM.)
    pub handoff: Vec<Vec<ArrayQueue<Handoff>>>,
    /// `handoff_waiting[from][to]`: worker `from` holds off receiving until
    /// `to` makes room in their queue; `to` wakes it when it has.
    pub handoff_waiting: Vec<Vec<AtomicBool>>,
    /// Per worker: written after a batch that handed frames to it.
    pub wake: Vec<EventFd>,
    /// Bumped when a port comes, goes, or goes down, so workers rebuild
    /// their poll sets.
    pub port_generation: AtomicU64,
    /// Per worker: the port generation of its last quiescent point (the
    /// top of its loop, where it holds no frame, has let go of the ports
    /// that went away and has sent or dropped what was handed to it);
    /// `u64::MAX` while it is not running. Detach waits on these before an
    /// id is given again (see [`Runtime::quiesce`]).
    pub quiescent: Box<[AtomicU64]>,
    /// Port ids detached at run time (control path only).
    detached: Mutex<DetachedIds>,
    pub counters: Vec<Arc<WorkerCounters>>,
    pub tracer: Tracer,
    /// `shunt capture` (pipeline::capture).
    pub capture: crate::pipeline::Capture,
    pub stop: AtomicBool,
    pub started: Instant,
    /// The switch's stack's link, when some network gives the switch an
    /// address or suppresses ARP.
    pub stack: Option<Arc<crate::stack::StackLink>>,
    /// Spanning tree (stp/), when `[switch] stp` asks for it: the port
    /// states the workers read, the status `shunt stp` shows.
    pub stp: Option<Arc<crate::stp::glue::Shared>>,
    /// The L2 control thread's queues (l2/), set before the workers start.
    pub l2: Option<Arc<crate::l2::L2Link>>,
    /// Namespaces this switch created and removes on the way down.
    pub owned_namespaces: Mutex<Vec<String>>,
    /// Link impairment and link state (impair/): specs the workers take.
    pub impair: Arc<crate::impair::Shared>,
    /// Storm control and MAC-flap detection (docs/storm.md).
    pub guard: crate::pipeline::Guard,
}

impl Runtime {
    pub fn new(
        topo: Topology,
        fdb: Fdb,
        devices: Vec<Device>,
        nworkers: usize,
        stack: Option<Arc<crate::stack::StackLink>>,
        owned_namespaces: Vec<String>,
    ) -> std::io::Result<Runtime> {
        let plan = Plan::from_topology(&topo);
        let n = devices.len();
        let nworkers = nworkers.max(1);
        let inbox: Vec<ArrayQueue<(PortId, Box<AfXdpPort>)>> =
            (0..nworkers).map(|_| ArrayQueue::new(MAX_PORTS)).collect();
        let kinds: Box<[KindCell]> = (0..MAX_PORTS).map(|_| KindCell::default()).collect();
        let mut slots: Vec<ArcSwapOption<Tap>> = Vec::with_capacity(MAX_PORTS);
        let packets: Box<[ArcSwapOption<PacketPort>]> =
            (0..MAX_PORTS).map(|_| ArcSwapOption::empty()).collect();
        let mut umem = None;
        let mut xdp_mode: Vec<Option<&'static str>> = vec![None; MAX_PORTS];
        let mut xdp_queues = vec![0u16; MAX_PORTS];
        let mut owner: Vec<usize> = (0..MAX_PORTS).map(|p| p % nworkers).collect();
        for (p, d) in devices.into_iter().enumerate() {
            let Some(id) = PortId::new(p) else { break };
            match d {
                Device::Tap(t, _) => {
                    kinds[p].store(Some(Kind::Tap));
                    slots.push(ArcSwapOption::new(Some(t)));
                }
                // In-memory ports are driven by their tests, not workers.
                Device::Mem(_) => slots.push(ArcSwapOption::empty()),
                Device::Packet(x) => {
                    kinds[p].store(Some(Kind::Packet));
                    packets[p].store(Some(x));
                    slots.push(ArcSwapOption::empty());
                }
                Device::AfXdp(mut x) => {
                    kinds[p].store(Some(Kind::AfXdp));
                    umem.get_or_insert_with(|| x.umem());
                    xdp_mode[p] = Some(x.mode());
                    slots.push(ArcSwapOption::empty());
                    let rest = x.split_queues();
                    xdp_queues[p] = 1 + rest.len() as u16;
                    // Fresh queues of MAX_PORTS slots, at most one socket
                    // of a port per worker: cannot be full.
                    if rest.is_empty() {
                        let _ = inbox[p % nworkers].push((id, x));
                        continue;
                    }
                    // Socket k to worker k (bring-up opens at most one per
                    // worker); the port's owner, which takes what other
                    // workers hand over, is one of them.
                    let queues = 1 + rest.len();
                    if owner[p] >= queues {
                        owner[p] = 0;
                    }
                    if let Some(first) = inbox.first() {
                        let _ = first.push((id, x));
                    }
                    for q in rest {
                        match inbox.get(q.queue() as usize) {
                            Some(i) => {
                                let _ = i.push((id, Box::new(q)));
                            }
                            // Closed: its queue's frames go to the kernel.
                            None => drop(q),
                        }
                    }
                }
            }
        }
        slots.resize_with(MAX_PORTS, ArcSwapOption::empty);
        let ev = || {
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(std::io::Error::from)
        };
        Ok(Runtime {
            name: topo.switch.name.clone(),
            bare: topo.switch.bare,
            poll: topo.switch.poll,
            tap_io: topo.switch.tap_io,
            plan: ArcSwap::from_pointee(plan),
            fdb,
            taps: slots.into_boxed_slice(),
            packets,
            port_up: (0..MAX_PORTS).map(|p| AtomicBool::new(p < n)).collect(),
            port_worker: owner.into_iter().map(AtomicUsize::new).collect(),
            port_kind: kinds,
            xdp_stats: (0..MAX_PORTS)
                .map(|_| XdpStatsCell::new(nworkers))
                .collect(),
            xdp_queues: xdp_queues.into_boxed_slice(),
            xdp_mode: xdp_mode.into_boxed_slice(),
            umem,
            inbox,
            handoff: (0..nworkers)
                .map(|_| {
                    (0..nworkers)
                        .map(|_| ArrayQueue::new(HANDOFF_QUEUE))
                        .collect()
                })
                .collect(),
            handoff_waiting: (0..nworkers)
                .map(|_| (0..nworkers).map(|_| AtomicBool::new(false)).collect())
                .collect(),
            wake: (0..nworkers)
                .map(|_| ev())
                .collect::<std::io::Result<_>>()?,
            port_generation: AtomicU64::new(0),
            quiescent: (0..nworkers).map(|_| AtomicU64::new(u64::MAX)).collect(),
            detached: Mutex::new(DetachedIds::default()),
            counters: (0..nworkers)
                .map(|_| Arc::new(WorkerCounters::with_workers(nworkers)))
                .collect(),
            tracer: Tracer::new(),
            capture: crate::pipeline::Capture::new(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            stack,
            stp: crate::stp::glue::Shared::for_topology(&topo).map(Arc::new),
            l2: None,
            owned_namespaces: Mutex::new(owned_namespaces),
            impair: Arc::new(crate::impair::Shared::with_ports(
                nworkers,
                crate::config::port_impairs(&topo),
            )),
            guard: crate::pipeline::Guard::from_topology(&topo, nworkers),
            topo: Mutex::new(topo),
        })
    }

    /// The topology as it is now (control path only: this locks).
    pub fn topo(&self) -> MutexGuard<'_, Topology> {
        self.topo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since the switch started: the clock the FDB ages by.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Nanoseconds since the switch started: the clock of impairment's
    /// due times.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// An egress's name: the port's, "switch" for the switch's stack,
    /// "vxlan:<address>" for a remote VTEP.
    pub fn port_name(&self, e: Egress) -> String {
        let plan = self.plan.load();
        match e {
            Egress::Port(p) => match plan.ports.get(p.index()) {
                Some(p) => p.name.clone(),
                None => format!("port{}", p.index()),
            },
            Egress::Stack => "switch".to_string(),
            Egress::Vtep(k) => match plan.vxlan.as_ref().and_then(|v| v.remote(k)) {
                Some(ip) => format!("vxlan:{ip}"),
                None => format!("vxlan:{}", e.encode()),
            },
        }
    }

    /// Marks a port down (once), forgets what was learned on it, and says so.
    pub fn port_gone(&self, port: PortId, why: &str) {
        let Some(up) = self.port_up.get(port.index()) else {
            return;
        };
        if up.swap(false, Relaxed) {
            let flushed = self.fdb.flush_port(Egress::Port(port).encode());
            self.port_generation.fetch_add(1, Relaxed);
            let name = self.port_name(port.into());
            crate::say!("shunt: port {name} is down: {why}; {flushed} learned entries flushed");
        }
    }
}

/// Ids of detached ports: waiting until no worker can still hold anything
/// of the port (`waiting`), then free for the next attach (`free`).
#[derive(Default)]
struct DetachedIds {
    waiting: Vec<PortId>,
    free: Vec<PortId>,
}

/// How long a detach waits for every worker to pass a quiescent point
/// (a worker turns at least every poll timeout, 100 ms; woken, at once).
const QUIESCE_WITHIN: Duration = Duration::from_secs(2);

impl Runtime {
    /// Waits until every running worker has passed two quiescent points
    /// after this call (or `within` passes; false then). After the first,
    /// no worker receives from, sends to or hands over for a port that
    /// was detached before the call; after the second, every frame handed
    /// over before the first has been taken out of its queue. Control
    /// path only: it sleeps.
    pub fn quiesce(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        for _ in 0..2 {
            // Release: a worker that sees the new generation sees what
            // the detach changed before it (the port down, out of the plan).
            let gen = self.port_generation.fetch_add(1, Release) + 1;
            for w in &self.wake {
                let _ = w.write(1);
            }
            while !self
                .quiescent
                .iter()
                .map(|q| q.load(Acquire))
                .all(|g| g >= gen)
            {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        true
    }

    /// A port was detached (already down, out of the plan, its device
    /// let go of): once the workers are quiescent its id is free again,
    /// with nothing of the old port left in it. Returns the learned
    /// entries flushed at that point (frames that were being learned
    /// while it went away).
    pub fn retire_port(&self, id: PortId) -> usize {
        self.detached_ids().waiting.push(id);
        self.settle_detached()
    }

    /// Frees the ids waiting for a quiescent point, if the workers reach
    /// one in time (else they wait for the next attach or detach).
    fn settle_detached(&self) -> usize {
        let mut ids = self.detached_ids();
        if ids.waiting.is_empty() || !self.quiesce(QUIESCE_WITHIN) {
            return 0;
        }
        let waiting = std::mem::take(&mut ids.waiting);
        let mut flushed = 0;
        for id in waiting {
            flushed += self.release_port(id);
            ids.free.push(id);
        }
        flushed
    }

    /// What a port left in the per-port tables, cleared: its learned
    /// entries, its counters in every worker, its socket's counters, its
    /// place in a trace. Only once no worker can write them.
    fn release_port(&self, id: PortId) -> usize {
        let flushed = self.fdb.flush_port(Egress::Port(id).encode());
        for w in &self.counters {
            w.port(id.into()).reset();
        }
        // Impairment and link state stay with the port, not its id.
        self.impair.forget(id.index());
        self.impair.reset_counters(id.index());
        if let Some(x) = self.xdp_stats.get(id.index()) {
            x.reset();
        }
        self.tracer.forget(id);
        self.capture.forget(id);
        flushed
    }

    /// The id for a port attached now: the lowest one a detached port
    /// gave back, else the next never used (`next`, the topology's port
    /// count); None when all `MAX_PORTS` are taken.
    pub fn take_port_id(&self, next: usize) -> Option<PortId> {
        self.settle_detached();
        let mut ids = self.detached_ids();
        ids.free.sort_unstable_by(|a, b| b.cmp(a));
        match ids.free.pop() {
            Some(id) => Some(id),
            None => PortId::new(next),
        }
    }

    /// An id `take_port_id` gave that the attach did not use after all.
    pub fn give_back_port_id(&self, id: PortId, next: usize) {
        if id.index() < next {
            self.detached_ids().free.push(id);
        }
    }

    fn detached_ids(&self) -> MutexGuard<'_, DetachedIds> {
        self.detached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/pipeline/workers.md gives the size of a hand-over record.
    #[test]
    fn handoff_is_a_small_record() {
        assert_eq!(std::mem::size_of::<super::Handoff>(), 24);
    }

    fn runtime(workers: usize) -> Runtime {
        let topo = crate::config::parse(
            "t.toml",
            "[switch]\nname = \"rt\"\n[[network]]\nname = \"lan\"\n[[host]]\nname = \"a\"\nnetworks = [\"lan\"]\n",
        )
        .expect("topology");
        let fdb = Fdb::new(shunt_tables::FdbConfig {
            max_entries: 64,
            aging_ms: 300_000,
        });
        Runtime::new(topo, fdb, Vec::new(), workers, None, Vec::new()).expect("runtime")
    }

    /// A detached id comes back only after a worker passed its quiescent
    /// points, with its counters and FDB entries gone; until then attach
    /// takes a fresh one.
    #[test]
    fn ids_are_reused_after_quiescent_points_only() {
        let rt = Arc::new(runtime(2));
        let p = PortId::new(0).expect("in range");
        // Worker 0 is "running" at generation 0 and stuck; worker 1 is not running.
        rt.quiescent[0].store(0, Release);
        rt.counters[0].port(p.into()).rx_frames.add(5);
        assert!(!rt.quiesce(Duration::from_millis(20)));
        // Detaching while the worker is stuck: the id waits.
        rt.detached_ids().waiting.push(p);
        assert_eq!(rt.take_port_id(1).map(PortId::index), Some(1));
        // A worker that turns: publishes every generation it sees.
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (rt, stop) = (Arc::clone(&rt), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let g = rt.port_generation.load(Acquire);
                    rt.quiescent[0].store(g, Release);
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        let _ = rt.fdb.learn(0, &[2, 0, 0, 0, 0, 1], 0, rt.now_ms());
        assert_eq!(rt.take_port_id(1).map(PortId::index), Some(0));
        assert_eq!(rt.counters[0].port(p.into()).rx_frames.get(), 0);
        assert_eq!(rt.fdb.len(), 0);
        stop.store(true, Relaxed);
        let _ = w.join();
    }
}
