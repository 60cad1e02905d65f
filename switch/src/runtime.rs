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
    /// The host stack's link, when some network gives the switch an
    /// address or suppresses ARP.
    pub host: Option<Arc<crate::host::HostLink>>,
    /// The pseudo port id frames from the host stack enter on (one past
    /// the last real port).
    pub host_port: u16,
}

impl Runtime {
    /// Milliseconds since the switch started: the clock the FDB ages by.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A port's name; the host stack's pseudo port is "switch".
    pub fn port_name(&self, port: u16) -> String {
        match self.plan.ports.get(port as usize) {
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
