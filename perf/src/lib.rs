//! Helpers for the in-memory pipeline benchmarks (`cargo bench -p shunt-perf`).
//!
//! A [`Rig`] is everything `pipeline::run` needs, built the way a worker
//! builds it but with no device behind any port: a `Plan` from a topology of
//! bare `[[port]]` TAP tables (`Plan::from_topology` creates nothing), an
//! FDB, one worker's counters, an idle tracer, every port up and no host
//! stack. Frames are written straight into a [`Batch`]; what a port would
//! transmit is left in the [`TxQueues`]. See docs/PERF.md.

// `unsafe` only in the module that talks to the kernel (linerate::packet).
#![deny(unsafe_code)]

pub mod linerate;

use shunt_switch::config;
use shunt_switch::counters::WorkerCounters;
use shunt_switch::ids::PortId;
use shunt_switch::pipeline::{self, Batch, Context, Plan, TxQueues, BATCH, SLOT};
use shunt_switch::trace::Tracer;
use shunt_tables::{Fdb, FdbConfig};
use std::sync::atomic::AtomicBool;

/// Bytes of an output area for [`Rig::run_and_copy`]: a batch of slots.
pub const OUT_BYTES: usize = BATCH * SLOT;

/// The network id of the first `[[network]]` of a topology.
pub const NET0: u16 = 0;

/// The pipeline's state for one worker, with no I/O behind it.
pub struct Rig {
    pub plan: Plan,
    pub fdb: Fdb,
    pub counters: WorkerCounters,
    pub tracer: Tracer,
    pub port_up: Box<[AtomicBool]>,
    pub batch: Batch,
    pub tx: TxQueues,
}

impl Rig {
    /// A rig for `toml` (a topology file) with an FDB of `max_entries`.
    ///
    /// # Panics
    /// If the topology does not parse: benchmarks build their own.
    pub fn new(toml: &str, max_entries: usize) -> Rig {
        let topo = match config::parse("bench.toml", toml) {
            Ok(t) => t,
            Err(e) => panic!("benchmark topology: {e}"),
        };
        let plan = Plan::from_topology(&topo);
        let n = plan.ports.len();
        Rig {
            plan,
            fdb: Fdb::new(FdbConfig {
                max_entries,
                aging_ms: 300_000,
            }),
            counters: WorkerCounters::new(),
            tracer: Tracer::new(),
            port_up: (0..n).map(|_| AtomicBool::new(true)).collect(),
            batch: Batch::new(),
            tx: TxQueues::new(),
        }
    }

    /// Loads `frames` (at most a batch) into the batch, as a port's receive
    /// would: header bytes written, metadata reset.
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
            let area = self.batch.rx_area(i);
            area[0..6].copy_from_slice(d);
            area[6..12].copy_from_slice(s);
            let len = self.batch.meta[i].len as usize;
            self.batch.set_received(i, len);
        }
    }

    /// Runs the pipeline over the batch as if it came in on `ingress`, then
    /// empties the transmit queues. Returns the number of queued transmissions.
    #[inline]
    pub fn run(&mut self, ingress: u16, now_ms: u64) -> usize {
        self.process(ingress, now_ms);
        let queued = self.tx.dirty.iter().map(|&p| self.tx.queue(p).len()).sum();
        self.tx.clear();
        queued
    }

    /// The pipeline over the loaded batch, leaving the queues filled.
    #[inline]
    fn process(&mut self, ingress: u16, now_ms: u64) {
        let ctx = Context {
            plan: &self.plan,
            fdb: &self.fdb,
            counters: &self.counters,
            port_up: &self.port_up,
            tracer: &self.tracer,
            host: None,
            worker: 0,
        };
        let Some(ingress) = PortId::new(ingress.into()) else {
            return;
        };
        pipeline::run(&ctx, ingress, &mut self.batch, &mut self.tx, now_ms);
    }

    /// Like [`Rig::run`], but also writes every queued frame into `out` the
    /// way a copying port (TAP's writev) lays it out: the MAC addresses, the
    /// 802.1Q tag the egress stage asked for (if any), then the rest of the
    /// frame without its ingress tag. Transmission `k` goes to
    /// `out[k * SLOT..]` ([`OUT_BYTES`] hold a batch). Returns the bytes written.
    #[inline]
    pub fn run_and_copy(&mut self, ingress: u16, now_ms: u64, out: &mut [u8]) -> usize {
        self.process(ingress, now_ms);
        let mut written = 0;
        let mut k = 0;
        for &p in &self.tx.dirty {
            for e in self.tx.queue(p) {
                let i = e.frame as usize;
                let f = self.batch.frame(i);
                let m = &self.batch.meta[i];
                let rest = &f[12 + m.tag_len as usize..];
                let n = if e.vid.is_some() {
                    16 + rest.len()
                } else {
                    12 + rest.len()
                };
                let Some(o) = out.get_mut(k * SLOT..k * SLOT + n) else {
                    continue;
                };
                k += 1;
                o[..12].copy_from_slice(&f[..12]);
                let body = if let Some(vid) = e.vid {
                    let tci = (u16::from(m.pcp_dei) << 8) | vid.get();
                    o[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
                    o[14..16].copy_from_slice(&tci.to_be_bytes());
                    &mut o[16..]
                } else {
                    &mut o[12..]
                };
                body.copy_from_slice(rest);
                written += n;
            }
        }
        self.tx.clear();
        written
    }
}

/// A locally administered unicast MAC for index `i` (up to 2^40).
#[inline]
pub fn mac(i: u64) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// A 64-byte Ethernet frame (60 bytes before the FCS, as a port hands it
/// over; the bench counts it as 64) from `src` to `dst`, optionally tagged.
pub fn frame(dst: [u8; 6], src: [u8; 6], vid: Option<u16>) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    let mut o = 12;
    if let Some(v) = vid {
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14..16].copy_from_slice(&v.to_be_bytes());
        o = 16;
    }
    f[o..o + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    f
}

/// xorshift64*: a reproducible stream of indexes, no allocation.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform enough in `0..n` for picking table entries.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

/// A topology of `n` bare TAP access ports on one network.
pub fn access_ports(n: usize) -> String {
    let mut s = String::from("[switch]\nname = \"perf\"\n\n[[network]]\nname = \"lan\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "\n[[port]]\nname = \"p{i}\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"lan\"\n"
        ));
    }
    s
}

/// A trunk port (p0, carrying network `v10` tagged with VLAN 10) and an
/// access port (p1) on `v10`.
pub fn trunk_and_access() -> String {
    "[switch]\nname = \"perf\"\n\n[[network]]\nname = \"v10\"\nvlan = 10\n\n\
     [[port]]\nname = \"p0\"\nkind = \"tap\"\nmode = \"trunk\"\nnetworks = [\"v10\"]\n\n\
     [[port]]\nname = \"p1\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"v10\"\n"
        .to_string()
}
