//! The in-memory pipeline: frames/s per core and ns per frame for the
//! cases of issue 4 (see docs/PERF.md for the figures and the method).
//!
//! Every measured iteration "receives" a batch of 64 frames (rewrites their
//! MAC addresses and metadata in place, as a port's receive would write
//! them), runs `pipeline::run` over it and empties the transmit queues.
//! `rx_only` measures that receive step alone, so it can be subtracted.
//! Nothing is allocated inside a measured loop.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shunt_perf::{access_ports, frame, mac, trunk_and_access, Rig, Rng, NET0, OUT_BYTES};
use shunt_switch::pipeline::BATCH;
use std::time::{Duration, Instant};

const NOW: u64 = 1_000_000;
/// Distinct batches of addresses cycled through (spreads lookups over the table).
const BATCHES: usize = 1024;

type Pairs = Vec<([u8; 6], [u8; 6])>;

/// Address pairs for `BATCHES` batches: sources learned on port 0,
/// destinations learned on ports 1..=3, both picked at random over the table.
fn unicast_pairs(macs: u64) -> Pairs {
    let mut rng = Rng::new(macs);
    (0..BATCHES * BATCH)
        .map(|_| {
            // MAC i is learned on port i % 4.
            let s = rng.below(macs / 4) * 4;
            let d = rng.below(macs / 4) * 4 + 1 + rng.below(3);
            (mac(d), mac(s))
        })
        .collect()
}

fn learned_rig(ports: usize, macs: u64) -> Rig {
    let mut rig = Rig::new(&access_ports(ports), macs as usize);
    for i in 0..macs {
        rig.fdb.learn(NET0, &mac(i), (i % ports as u64) as u16, NOW);
    }
    assert_eq!(
        rig.fdb.len() as u64,
        macs,
        "table too small for the benchmark"
    );
    rig.load(&[frame(mac(1), mac(0), None); BATCH]);
    rig
}

fn known_unicast(c: &mut Criterion) {
    let mut g = c.benchmark_group("known_unicast");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (label, macs) in [("1k", 1u64 << 10), ("64k", 1 << 16), ("1M", 1 << 20)] {
        let mut rig = learned_rig(4, macs);
        let pairs = unicast_pairs(macs);
        let mut b = 0;
        g.bench_function(BenchmarkId::from_parameter(label), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                b = (b + 1) % BATCHES;
                black_box(rig.run(0, NOW))
            })
        });
        // An experiment, not the switch: the same with every frame's two
        // FDB buckets (source and destination) loaded for the whole batch
        // before the pipeline runs, as a stage could do (docs/PERF.md).
        let mut b = 0;
        g.bench_function(BenchmarkId::new("prefetched", label), |bench| {
            bench.iter(|| {
                let p = &pairs[b * BATCH..(b + 1) * BATCH];
                rig.readdress(p);
                for (d, s) in p {
                    rig.fdb.prefetch(NET0, s);
                    rig.fdb.prefetch(NET0, d);
                }
                b = (b + 1) % BATCHES;
                black_box(rig.run(0, NOW))
            })
        });
        // The receive step alone, for subtraction.
        let mut b = 0;
        g.bench_function(BenchmarkId::new("rx_only", label), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                b = (b + 1) % BATCHES;
                black_box(&rig.batch.meta[0]);
            })
        });
    }
    g.finish();
}

fn flooding(c: &mut Criterion) {
    let mut g = c.benchmark_group("flood");
    g.throughput(Throughput::Elements(BATCH as u64));
    for out in [4usize, 16] {
        let mut rig = Rig::new(&access_ports(out + 1), 1 << 16);
        // 64 sources on port 0, broadcast destination: a copy to every other port.
        let pairs: Pairs = (0..BATCH as u64).map(|i| ([0xff; 6], mac(i))).collect();
        rig.load(&[frame([0xff; 6], mac(0), None); BATCH]);
        g.bench_function(BenchmarkId::new("broadcast_to_ports", out), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs);
                let n = rig.run(0, NOW);
                debug_assert_eq!(n, BATCH * out);
                black_box(n)
            })
        });
    }
    g.finish();
}

fn vlan(c: &mut Criterion) {
    let mut g = c.benchmark_group("vlan");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut out = vec![0u8; OUT_BYTES];
    // push: access port 1 (untagged) -> trunk port 0 (tag 10 pushed).
    // pop: trunk port 0 (tagged 10) -> access port 1 (tag removed).
    for (name, ingress, tagged) in [("push", 1u16, false), ("pop", 0, true)] {
        let mut rig = Rig::new(&trunk_and_access(), 1 << 16);
        let egress = 1 - ingress;
        let dst = mac(1000);
        rig.fdb.learn(NET0, &dst, egress, NOW);
        let vid = tagged.then_some(10);
        let frames: Vec<[u8; 64]> = (0..BATCH as u64).map(|i| frame(dst, mac(i), vid)).collect();
        let pairs: Pairs = (0..BATCH as u64).map(|i| (dst, mac(i))).collect();
        rig.load(&frames);
        g.bench_function(BenchmarkId::new(name, "queue"), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs);
                black_box(rig.run(ingress, NOW))
            })
        });
        g.bench_function(BenchmarkId::new(name, "queue+copy"), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs);
                black_box(rig.run_and_copy(ingress, NOW, &mut out))
            })
        });
    }
    // The same copy with no tag to write: access -> access.
    let mut rig = Rig::new(&access_ports(2), 1 << 16);
    let dst = mac(1000);
    rig.fdb.learn(NET0, &dst, 1, NOW);
    let pairs: Pairs = (0..BATCH as u64).map(|i| (dst, mac(i))).collect();
    rig.load(&[frame(dst, mac(0), None); BATCH]);
    g.bench_function(BenchmarkId::new("untagged", "queue+copy"), |bench| {
        bench.iter(|| {
            rig.readdress(&pairs);
            black_box(rig.run_and_copy(0, NOW, &mut out))
        })
    });
    g.finish();
}

/// RFC 2889 §5.8 address learning rate: a stream of frames, each from a
/// source never seen, to a known destination. The table (1M entries) is
/// emptied, untimed, whenever it holds 512k, so learning always runs on a
/// table between empty and half full.
fn learning(c: &mut Criterion) {
    let mut g = c.benchmark_group("learning");
    g.throughput(Throughput::Elements(BATCH as u64));
    // The table is emptied (untimed) at half its size, so it always learns
    // into a table between empty and half full: a 64k table sits in the
    // caches, a 1M one (32 MiB) does not.
    for (label, max) in [("64k", 1usize << 16), ("1M", 1 << 20)] {
        let mut rig = Rig::new(&access_ports(2), max);
        let dst = mac(1 << 39);
        rig.fdb.add_static(NET0, &dst, 1).expect("static entry");
        rig.load(&[frame(dst, mac(0), None); BATCH]);
        let mut next: u64 = 1;
        g.bench_function(BenchmarkId::new("pipeline_new_sources", label), |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    if rig.fdb.len() > max / 2 {
                        rig.fdb.flush_network(NET0);
                    }
                    let chunk = (iters - done).min((max / 4 / BATCH) as u64).max(1);
                    let t = Instant::now();
                    for _ in 0..chunk {
                        for i in 0..BATCH {
                            rig.batch.rx_area(i)[6..12].copy_from_slice(&mac(next));
                            rig.batch.set_received(i, 64);
                            next += 1;
                        }
                        black_box(rig.run(0, NOW));
                    }
                    total += t.elapsed();
                    done += chunk;
                }
                total
            })
        });
        // The table alone: `Fdb::learn` of new MACs, 64 per iteration.
        let fdb = &rig.fdb;
        g.bench_function(BenchmarkId::new("fdb_learn_new", label), |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    if fdb.len() > max / 2 {
                        fdb.flush_network(NET0);
                    }
                    let chunk = (iters - done).min((max / 4 / BATCH) as u64).max(1);
                    let t = Instant::now();
                    for _ in 0..chunk * BATCH as u64 {
                        black_box(fdb.learn(NET0, &mac(next), 0, NOW));
                        next += 1;
                    }
                    total += t.elapsed();
                    done += chunk;
                }
                total
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = known_unicast, flooding, vlan, learning
}
criterion_main!(benches);
