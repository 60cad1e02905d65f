//! RFC 2889 §5.7 address caching capacity, through the pipeline, and the
//! memory the FDB takes. Prints a report; times nothing that matters.
//!
//! For each configured maximum: offer `max + max/64` distinct source MACs
//! on port 1 (learning), then one frame to each of them from port 0, and
//! count how many were forwarded to port 1 (held) and how many flooded
//! (not held). Then the same with exactly `max` addresses: none may flood.
//!
//! `cargo bench -p shunt-perf --bench capacity`

use shunt_perf::{access_ports, frame, mac, Rig};
use shunt_switch::counters::FloodCause;
use shunt_switch::ids::{Egress, PortId};
use shunt_switch::pipeline::BATCH;
use std::time::Instant;

const NOW: u64 = 1_000_000;

/// Offers `n` addresses then probes them. Returns (learned, held, flooded).
fn offer(max: usize, n: u64) -> (usize, u64, u64) {
    let mut rig = Rig::new(&access_ports(2), max);
    rig.load(&[frame([0xff; 6], mac(0), None); BATCH]);
    // Learning phase: broadcast frames from each address on port 1.
    let mut i = 0;
    while i < n {
        let k = (n - i).min(BATCH as u64) as usize;
        rig.batch.count = k;
        for j in 0..k {
            let a = rig.batch.rx_area(j);
            a[0..6].copy_from_slice(&[0xff; 6]);
            a[6..12].copy_from_slice(&mac(i + j as u64));
            rig.batch.set_received(j, 60);
        }
        rig.run(1, NOW);
        i += k as u64;
    }
    let learned = rig.fdb.len();
    // Probe phase: one frame to each address, from a source on port 0.
    let p0 = Egress::Port(PortId::new(0).expect("port 0"));
    let before = rig.counters.port(p0).flooded[FloodCause::UnknownUnicast as usize].get();
    let mut i = 0;
    while i < n {
        let k = (n - i).min(BATCH as u64) as usize;
        rig.batch.count = k;
        for j in 0..k {
            let a = rig.batch.rx_area(j);
            a[0..6].copy_from_slice(&mac(i + j as u64));
            a[6..12].copy_from_slice(&mac(1 << 39));
            rig.batch.set_received(j, 60);
        }
        rig.run(0, NOW);
        i += k as u64;
    }
    let flooded = rig.counters.port(p0).flooded[FloodCause::UnknownUnicast as usize].get() - before;
    (learned, n - flooded, flooded)
}

fn main() {
    println!("RFC 2889 §5.7 address caching capacity (through pipeline::run)");
    println!(
        "{:>12} {:>12} {:>12} {:>12} {:>12} {:>14} {:>10} {:>10}",
        "max_entries", "offered", "learned", "held", "flooded", "memory_bytes", "MiB", "B/entry"
    );
    for max in [1usize << 10, 1 << 16, 1 << 20] {
        for n in [max as u64, max as u64 + max as u64 / 64] {
            let t = Instant::now();
            let (learned, held, flooded) = offer(max, n);
            let rig = Rig::new(&access_ports(2), max);
            let mem = rig.fdb.memory_bytes();
            println!(
                "{:>12} {:>12} {:>12} {:>12} {:>12} {:>14} {:>10.1} {:>10.1}   ({:.1} s)",
                max,
                n,
                learned,
                held,
                flooded,
                mem,
                mem as f64 / (1 << 20) as f64,
                mem as f64 / max as f64,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let rig = Rig::new(&access_ports(2), 1 << 20);
    let mib = rig.fdb.memory_bytes() as f64 / (1 << 20) as f64;
    println!(
        "1M entries: {mib:.1} MiB (target <= 64 MiB: {})",
        if mib <= 64.0 { "met" } else { "MISSED" }
    );
}
