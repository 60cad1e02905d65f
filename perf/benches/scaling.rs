//! Workers sharing one FDB (issue 13, "scaling measured where it can be"):
//! the in-memory pipeline, known unicast over a table of 64k MACs, with 1
//! worker and with 2 workers on 2 cores, aggregate frames per second.
//!
//! Each worker is a thread pinned to a core of its own with its own rig
//! (plan, counters, batch, queues), all rigs sharing one `Fdb`, as a
//! switch's workers do. Worker `w` receives on port `2w`; its sources are
//! the MACs learned on that port (so learning refreshes, never moves),
//! its destinations are MACs learned on any other port, at random over the
//! whole table. The clock moves (milliseconds, read every 256 batches), so
//! refreshes write the shared table as they would in a switch.
//!
//! Not criterion: the figure is an aggregate over threads. Every setting is
//! run `ROUNDS` times, interleaved (1, 2, 1, 2, ...), and each trial
//! prints; the summary gives the median.
//!
//!   cargo bench -p shunt-perf --bench scaling [-- SECONDS ROUNDS MACS]

use shunt_perf::{access_ports, frame, mac, port, Rig, Rng, NET0};
use shunt_switch::pipeline::BATCH;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const PORTS: u64 = 4;
const BATCHES: usize = 1024;

fn main() {
    // `cargo bench` passes `--bench`; keep only our numbers.
    let nums: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let secs = nums.first().copied().unwrap_or(3.0);
    let rounds = nums.get(1).copied().unwrap_or(3.0) as usize;
    let macs = nums.get(2).copied().unwrap_or(65536.0) as u64;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    println!(
        "scaling: known unicast, {macs} MACs, {secs} s per trial, {rounds} rounds, {} cores",
        cores.len()
    );
    let base = learned(macs);
    let mut results: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        for workers in [1usize, 2] {
            if workers > cores.len().max(1) {
                continue;
            }
            let fps = trial(&base, workers, macs, secs, &cores);
            println!(
                "round {round}: {workers} worker(s): {:.2} Mframes/s",
                fps / 1e6
            );
            results[workers - 1].push(fps);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let one = med(&mut results[0]);
    let two = med(&mut results[1]);
    println!(
        "median: 1 worker {:.2} Mframes/s, 2 workers {:.2} Mframes/s: {:.2}x",
        one / 1e6,
        two / 1e6,
        if one > 0.0 { two / one } else { 0.0 }
    );
}

/// A rig with `macs` MACs learned, MAC i on port i % PORTS.
fn learned(macs: u64) -> Rig {
    let rig = Rig::with_fdb(&access_ports(PORTS as usize), macs as usize);
    for i in 0..macs {
        rig.fdb.learn(NET0, &mac(i), (i % PORTS) as u16, now_ms());
    }
    assert_eq!(rig.fdb.len() as u64, macs, "table too small");
    rig
}

fn now_ms() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    // Far from 0, as a switch's clock is.
    1_000_000 + START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Runs `workers` threads for `secs`; returns the aggregate frames/s.
fn trial(base: &Rig, workers: usize, macs: u64, secs: f64, cores: &[core_affinity::CoreId]) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(workers + 1));
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let mut rig = base.sharing_fdb(&access_ports(PORTS as usize));
            let core = cores.get(w).copied();
            let (stop, start) = (Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                let ingress = 2 * w as u64;
                let pairs = pairs(macs, ingress, w as u64 + 1);
                rig.load(&[frame(mac(1), mac(ingress), None); BATCH]);
                let p = port(ingress as usize);
                start.wait();
                let (mut b, mut n, mut now) = (0, 0u64, now_ms());
                while !stop.load(Ordering::Relaxed) {
                    rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                    b = (b + 1) % BATCHES;
                    black_box(rig.run(p, now));
                    n += 1;
                    if n % 256 == 0 {
                        now = now_ms();
                    }
                }
                n * BATCH as u64
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let frames: u64 = threads.into_iter().filter_map(|t| t.join().ok()).sum();
    frames as f64 / t.elapsed().as_secs_f64()
}

/// (destination, source) pairs: sources learned on `ingress`,
/// destinations on the other ports, uniform over the table.
fn pairs(macs: u64, ingress: u64, seed: u64) -> Vec<([u8; 6], [u8; 6])> {
    let mut rng = Rng::new(seed * 0x9e37_79b9 + macs);
    (0..BATCHES * BATCH)
        .map(|_| {
            let s = rng.below(macs / PORTS) * PORTS + ingress;
            let d = rng.below(macs / PORTS) * PORTS + (ingress + 1 + rng.below(PORTS - 1)) % PORTS;
            (mac(d), mac(s))
        })
        .collect()
}
