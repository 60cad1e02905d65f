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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub use crate::ids::MAX_PORTS;

/// Frames per cross-worker queue (AF_XDP ports transmit only from the
/// worker that owns their rings).
pub const HANDOFF_QUEUE: usize = 256;

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
}

/// The kernel's counters of one AF_XDP socket, as its owning worker last
/// read them (about once a second; `shunt stats --json` shows them).
#[derive(Default)]
pub struct XdpStatsCell {
    pub rx_dropped: AtomicU64,
    pub rx_fill_ring_empty: AtomicU64,
    pub rx_ring_full: AtomicU64,
    pub rx_invalid_descs: AtomicU64,
    pub tx_invalid_descs: AtomicU64,
    pub bad_kernel_descs: AtomicU64,
    /// Free frames in the port's cache (for the UMEM's frame count).
    pub cached: AtomicU64,
}

impl XdpStatsCell {
    pub fn store(&self, s: &crate::port::AfXdpStats) {
        self.rx_dropped.store(s.rx_dropped, Relaxed);
        self.rx_fill_ring_empty.store(s.rx_fill_ring_empty, Relaxed);
        self.rx_ring_full.store(s.rx_ring_full, Relaxed);
        self.rx_invalid_descs.store(s.rx_invalid_descs, Relaxed);
        self.tx_invalid_descs.store(s.tx_invalid_descs, Relaxed);
        self.bad_kernel_descs.store(s.bad_kernel_descs, Relaxed);
    }

    pub fn json(&self) -> serde_json::Value {
        let rx_dropped = self.rx_dropped.load(Relaxed);
        let fill_empty = self.rx_fill_ring_empty.load(Relaxed);
        serde_json::json!({
            "rx_dropped": rx_dropped,
            "rx_fill_ring_empty": fill_empty,
            "rx_oversize": rx_dropped.saturating_sub(fill_empty),
            "rx_ring_full": self.rx_ring_full.load(Relaxed),
            "rx_invalid_descs": self.rx_invalid_descs.load(Relaxed),
            "tx_invalid_descs": self.tx_invalid_descs.load(Relaxed),
            "bad_kernel_descs": self.bad_kernel_descs.load(Relaxed),
        })
    }
}

pub struct Runtime {
    topo: Mutex<Topology>,
    pub name: String,
    pub bare: bool,
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
    /// The kernel's counters of each AF_XDP port's socket.
    pub xdp_stats: Box<[XdpStatsCell]>,
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
    /// with one producer and one consumer. Full is a counted drop.
    /// (Frames still queued when the switch stops are freed with the UMEM.)
    pub handoff: Vec<Vec<ArrayQueue<Handoff>>>,
    /// Per worker: written after a batch that handed frames to it.
    pub wake: Vec<EventFd>,
    /// Bumped when a port comes, goes, or goes down, so workers rebuild
    /// their poll sets.
    pub port_generation: AtomicU64,
    pub counters: Vec<Arc<WorkerCounters>>,
    pub tracer: Tracer,
    pub stop: AtomicBool,
    pub started: Instant,
    /// The switch's stack's link, when some network gives the switch an
    /// address or suppresses ARP.
    pub stack: Option<Arc<crate::stack::StackLink>>,
    /// Namespaces this switch created and removes on the way down.
    pub owned_namespaces: Mutex<Vec<String>>,
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
        for (p, d) in devices.into_iter().enumerate() {
            let Some(id) = PortId::new(p) else { break };
            match d {
                Device::Tap(t) => {
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
                Device::AfXdp(x) => {
                    kinds[p].store(Some(Kind::AfXdp));
                    umem.get_or_insert_with(|| x.umem());
                    xdp_mode[p] = Some(x.mode());
                    slots.push(ArcSwapOption::empty());
                    // Fresh queues of MAX_PORTS slots: cannot be full.
                    let _ = inbox[p % nworkers].push((id, x));
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
            plan: ArcSwap::from_pointee(plan),
            fdb,
            taps: slots.into_boxed_slice(),
            packets,
            port_up: (0..MAX_PORTS).map(|p| AtomicBool::new(p < n)).collect(),
            port_worker: (0..MAX_PORTS)
                .map(|p| AtomicUsize::new(p % nworkers))
                .collect(),
            port_kind: kinds,
            xdp_stats: (0..MAX_PORTS).map(|_| XdpStatsCell::default()).collect(),
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
            wake: (0..nworkers)
                .map(|_| ev())
                .collect::<std::io::Result<_>>()?,
            port_generation: AtomicU64::new(0),
            counters: (0..nworkers)
                .map(|_| Arc::new(WorkerCounters::new()))
                .collect(),
            tracer: Tracer::new(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            stack,
            owned_namespaces: Mutex::new(owned_namespaces),
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
            eprintln!("shunt: port {name} is down: {why}; {flushed} learned entries flushed");
        }
    }
}

#[cfg(test)]
mod tests {
    /// docs/pipeline/workers.md gives the size of a hand-over record.
    #[test]
    fn handoff_is_a_small_record() {
        assert_eq!(std::mem::size_of::<super::Handoff>(), 24);
    }
}
