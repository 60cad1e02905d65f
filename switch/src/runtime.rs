//! The running switch: what workers and the control plane share.

use crate::config::Topology;
use crate::counters::WorkerCounters;
use crate::pipeline::Plan;
use crate::port::Tap;
use crate::trace::Tracer;
use shunt_tables::Fdb;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

pub struct Runtime {
    pub topo: Topology,
    pub plan: Plan,
    pub fdb: Fdb,
    /// Indexed by port id.
    pub taps: Vec<Tap>,
    pub port_up: Box<[AtomicBool]>,
    /// Bumped when a port goes up or down, so workers rebuild poll sets.
    pub port_generation: AtomicU64,
    pub counters: Vec<Arc<WorkerCounters>>,
    /// Which worker receives from each port.
    pub port_worker: Vec<usize>,
    pub tracer: Tracer,
    pub stop: AtomicBool,
    pub started: Instant,
    pub max_ports: usize,
}

impl Runtime {
    /// Milliseconds since the switch started: the clock the FDB ages by.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Marks a port down (once), forgets what was learned on it, and says so.
    pub fn port_gone(&self, port: u16, why: &str) {
        let Some(up) = self.port_up.get(port as usize) else {
            return;
        };
        if up.swap(false, Relaxed) {
            let flushed = self.fdb.flush_port(port);
            self.port_generation.fetch_add(1, Relaxed);
            let name = self
                .plan
                .ports
                .get(port as usize)
                .map(|p| p.name.as_str())
                .unwrap_or("?");
            eprintln!("shunt: port {name} is down: {why}; {flushed} learned entries flushed");
        }
    }
}
