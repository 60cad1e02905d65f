//! The running switch: what workers and the control plane share.
//!
//! Workers never lock: the plan is an `ArcSwap` loaded once per batch,
//! ports are `ArcSwapOption`s, link state and ownership are atomics. The
//! topology (names, addresses) is the control plane's, behind a mutex that
//! no worker touches.

use crate::config::Topology;
use crate::counters::WorkerCounters;
use crate::pipeline::Plan;
use crate::port::Tap;
use crate::trace::Tracer;
use arc_swap::{ArcSwap, ArcSwapOption};
use shunt_tables::Fdb;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Port ids are below this; the host stack's pseudo port is `MAX_PORTS`.
pub const MAX_PORTS: usize = 1024;

pub struct Runtime {
    topo: Mutex<Topology>,
    pub name: String,
    pub bare: bool,
    pub plan: ArcSwap<Plan>,
    pub fdb: Fdb,
    /// Port devices by id; None for ids not (or no longer) in use.
    pub taps: Box<[ArcSwapOption<Tap>]>,
    pub port_up: Box<[AtomicBool]>,
    /// Which worker receives from each port.
    pub port_worker: Box<[AtomicUsize]>,
    /// Bumped when a port comes, goes, or goes down, so workers rebuild
    /// their poll sets.
    pub port_generation: AtomicU64,
    pub counters: Vec<Arc<WorkerCounters>>,
    pub tracer: Tracer,
    pub stop: AtomicBool,
    pub started: Instant,
    /// Counter slots per worker (ports plus the host stack's).
    pub max_ports: usize,
    /// The host stack's link, when some network gives the switch an
    /// address or suppresses ARP.
    pub host: Option<Arc<crate::host::HostLink>>,
    /// The pseudo port id frames from the host stack enter on.
    pub host_port: u16,
    /// Namespaces this switch created and removes on the way down.
    pub owned_namespaces: Mutex<Vec<String>>,
}

impl Runtime {
    pub fn new(
        topo: Topology,
        fdb: Fdb,
        taps: Vec<Tap>,
        nworkers: usize,
        host: Option<Arc<crate::host::HostLink>>,
        owned_namespaces: Vec<String>,
    ) -> Runtime {
        let plan = Plan::from_topology(&topo);
        let n = taps.len();
        let mut slots: Vec<ArcSwapOption<Tap>> = taps
            .into_iter()
            .map(|t| ArcSwapOption::from_pointee(t))
            .collect();
        slots.resize_with(MAX_PORTS, ArcSwapOption::empty);
        Runtime {
            name: topo.switch.name.clone(),
            bare: topo.switch.bare,
            plan: ArcSwap::from_pointee(plan),
            fdb,
            taps: slots.into_boxed_slice(),
            port_up: (0..MAX_PORTS).map(|p| AtomicBool::new(p < n)).collect(),
            port_worker: (0..MAX_PORTS)
                .map(|p| AtomicUsize::new(p % nworkers.max(1)))
                .collect(),
            port_generation: AtomicU64::new(0),
            counters: (0..nworkers.max(1))
                .map(|_| Arc::new(WorkerCounters::new(MAX_PORTS + 1)))
                .collect(),
            tracer: Tracer::new(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            max_ports: MAX_PORTS + 1,
            host,
            host_port: MAX_PORTS as u16,
            owned_namespaces: Mutex::new(owned_namespaces),
            topo: Mutex::new(topo),
        }
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

    /// A port's name; the host stack's pseudo port is "switch".
    pub fn port_name(&self, port: u16) -> String {
        match self.plan.load().ports.get(port as usize) {
            Some(p) => p.name.clone(),
            None if port == self.host_port => "switch".to_string(),
            None => format!("port{port}"),
        }
    }

    /// Marks a port down (once), forgets what was learned on it, and says so.
    pub fn port_gone(&self, port: u16, why: &str) {
        let Some(up) = self.port_up.get(port as usize) else {
            return;
        };
        if up.swap(false, Relaxed) {
            let flushed = self.fdb.flush_port(port);
            self.port_generation.fetch_add(1, Relaxed);
            let name = self.port_name(port);
            eprintln!("shunt: port {name} is down: {why}; {flushed} learned entries flushed");
        }
    }
}
