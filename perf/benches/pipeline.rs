//! The in-memory pipeline: frames/s per core and ns per frame for the
//! cases of issue 4 (see docs/PERF.md for the figures and the method).
//!
//! Every measured iteration "receives" a batch of 64 frames (rewrites their
//! MAC addresses and metadata in place, as a port's receive would write
//! them), runs `pipeline::run` over it and empties the transmit queues.
//! `rx_only` measures that receive step alone, so it can be subtracted.
//! Nothing is allocated inside a measured loop.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shunt_perf::{access_ports, frame, mac, port, run_and_send, trunk_and_access, Rig, Rng, NET0};
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
    let mut rig = Rig::with_fdb(&access_ports(ports), macs as usize);
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
    let p0 = port(0);
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
                black_box(rig.run(p0, NOW))
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
                black_box(rig.run(p0, NOW))
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
    let p0 = port(0);
    let mut g = c.benchmark_group("flood");
    g.throughput(Throughput::Elements(BATCH as u64));
    for out in [4usize, 16] {
        let mut rig = Rig::with_fdb(&access_ports(out + 1), 1 << 16);
        // 64 sources on port 0, broadcast destination: a copy to every other port.
        let pairs: Pairs = (0..BATCH as u64).map(|i| ([0xff; 6], mac(i))).collect();
        rig.load(&[frame([0xff; 6], mac(0), None); BATCH]);
        g.bench_function(BenchmarkId::new("broadcast_to_ports", out), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs);
                let n = rig.run(p0, NOW);
                debug_assert_eq!(n, BATCH * out);
                black_box(n)
            })
        });
    }
    g.finish();
}

fn vlan(c: &mut Criterion) {
    let p0 = port(0);
    let mut g = c.benchmark_group("vlan");
    g.throughput(Throughput::Elements(BATCH as u64));
    // push: access port 1 (untagged) -> trunk port 0 (tag 10 pushed).
    // pop: trunk port 0 (tagged 10) -> access port 1 (tag removed).
    for (name, ingress, tagged) in [("push", 1u16, false), ("pop", 0, true)] {
        let mut rig = Rig::with_fdb(&trunk_and_access(), 1 << 16);
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
                black_box(rig.run(port(ingress.into()), NOW))
            })
        });
        g.bench_function(BenchmarkId::new(name, "queue+copy"), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs);
                black_box(run_and_send(&mut rig, port(ingress.into()), NOW))
            })
        });
    }
    // The same copy with no tag to write: access -> access.
    let mut rig = Rig::with_fdb(&access_ports(2), 1 << 16);
    let dst = mac(1000);
    rig.fdb.learn(NET0, &dst, 1, NOW);
    let pairs: Pairs = (0..BATCH as u64).map(|i| (dst, mac(i))).collect();
    rig.load(&[frame(dst, mac(0), None); BATCH]);
    g.bench_function(BenchmarkId::new("untagged", "queue+copy"), |bench| {
        bench.iter(|| {
            rig.readdress(&pairs);
            black_box(run_and_send(&mut rig, p0, NOW))
        })
    });
    g.finish();
}

/// RFC 2889 §5.8 address learning rate: a stream of frames, each from a
/// source never seen, to a known destination. The table (1M entries) is
/// emptied, untimed, whenever it holds 512k, so learning always runs on a
/// table between empty and half full.
fn learning(c: &mut Criterion) {
    let p0 = port(0);
    let mut g = c.benchmark_group("learning");
    g.throughput(Throughput::Elements(BATCH as u64));
    // The table is emptied (untimed) at half its size, so it always learns
    // into a table between empty and half full: a 64k table sits in the
    // caches, a 1M one (32 MiB) does not.
    for (label, max) in [("64k", 1usize << 16), ("1M", 1 << 20)] {
        let mut rig = Rig::with_fdb(&access_ports(2), max);
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
                        black_box(rig.run(p0, NOW));
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

/// A 64-byte IPv4 frame from `src` to multicast group 239.1.1.1 (UDP), or
/// with `igmp`, an IGMPv2 report for it (Router Alert, as Linux sends it).
fn to_group(src: [u8; 6], igmp: bool) -> [u8; 64] {
    let g = [239, 1, 1, 1];
    let mut f = frame([1, 0, 0x5e, 1, 1, 1], src, None);
    let ip = &mut f[14..];
    let (ihl, proto, len) = match igmp {
        true => (6, 2, 32u16),
        false => (5, 17, 46),
    };
    ip[0] = 0x40 | ihl;
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ip[8] = 1;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 0, 0, src[5]]);
    ip[16..20].copy_from_slice(&g);
    let h = usize::from(ihl) * 4;
    if igmp {
        ip[20..24].copy_from_slice(&[0x94, 0x04, 0, 0]);
    }
    let c = !shunt_parsers::checksum::data(&ip[..h]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let l4 = &mut ip[h..];
    if igmp {
        l4[..8].copy_from_slice(&[0x16, 0, 0, 0, g[0], g[1], g[2], g[3]]);
        let c = !shunt_parsers::checksum::data(&l4[..8]);
        l4[2..4].copy_from_slice(&c.to_be_bytes());
    } else {
        // UDP 5000 -> 5000, no checksum (allowed over IPv4).
        l4[..8].copy_from_slice(&[0x13, 0x88, 0x13, 0x88, 0, 26, 0, 0]);
    }
    f
}

/// Storm control and IGMP/MLD snooping on the hot path (issue 15): known
/// unicast, broadcast and multicast to a group, each without either, with
/// storm control configured on the ingress port (limits never reached;
/// and at the limit: every frame dropped), and with snooping (the switch
/// as querier, two members of the group), in one run.
fn guard(c: &mut Criterion) {
    let p0 = port(0);
    let mut g = c.benchmark_group("guard");
    g.throughput(Throughput::Elements(BATCH as u64));
    let base = access_ports(4);
    let storm = |limit: u64| {
        format!(
            "{base}\n[[storm]]\nport = \"p0\"\nbroadcast = {limit}\nmulticast = {limit}\nunknown_unicast = {limit}\nburst = \"60s\"\n"
        )
    };
    // The highest rate the file takes, a minute deep: never reached in a
    // run (the clock does not move).
    let never = storm(100_000_000);
    let always = storm(0);
    let querier = base.replace(
        "name = \"lan\"\n",
        "name = \"lan\"\nmulticast_querier = true\n",
    );
    let unsnooped = base.replace(
        "name = \"lan\"\n",
        "name = \"lan\"\nmulticast_snooping = false\n",
    );
    // Past the querier's response time (10 s), as a running switch.
    let now = NOW + 11_000;
    let snooping = |toml: &str, macs: u64| {
        let rig = Rig::with_fdb(toml, macs as usize);
        let (mut rig, mut reg) = rig.with_snooping(toml).expect("eventfds");
        // p1 and p2 join 239.1.1.1.
        for p in [1usize, 2] {
            rig.load(&[to_group(mac(p as u64), true)]);
            rig.run(port(p), now);
            reg.round(now);
        }
        while rig.l2.as_ref().is_some_and(|l| l.to_l2.pop().is_some()) {}
        rig
    };
    let learn = |rig: &mut Rig, macs: u64| {
        for i in 0..macs {
            rig.fdb.learn(NET0, &mac(i), (i % 4) as u16, now);
        }
    };
    let macs = 1u64 << 16;
    let pairs = unicast_pairs(macs);
    let bcast: Pairs = (0..BATCH as u64).map(|i| ([0xff; 6], mac(i * 4))).collect();
    type Setup<'a> = (&'a str, Box<dyn Fn() -> Rig + 'a>);
    let rigs: [Setup; 4] = [
        ("off", Box::new(|| Rig::with_fdb(&base, macs as usize))),
        ("storm", Box::new(|| Rig::with_fdb(&never, macs as usize))),
        ("snooping", Box::new(|| snooping(&querier, macs))),
        (
            "storm_at_limit",
            Box::new(|| Rig::with_fdb(&always, macs as usize)),
        ),
    ];
    for (name, make) in &rigs {
        let mut rig = make();
        learn(&mut rig, macs);
        rig.load(&[frame([0xff; 6], mac(0), None); BATCH]);
        let want = if *name == "storm_at_limit" {
            0
        } else {
            3 * BATCH
        };
        assert_eq!(rig.run(p0, now), want, "{name}");
        rig.load(&[frame(mac(1), mac(0), None); BATCH]);
        if *name != "storm_at_limit" {
            let mut b = 0;
            g.bench_function(BenchmarkId::new("known_unicast_64k", name), |bench| {
                bench.iter(|| {
                    rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                    b = (b + 1) % BATCHES;
                    black_box(rig.run(p0, now))
                })
            });
        }
        rig.load(&[frame([0xff; 6], mac(0), None); BATCH]);
        g.bench_function(BenchmarkId::new("broadcast_to_3", name), |bench| {
            bench.iter(|| {
                rig.readdress(&bcast);
                black_box(rig.run(p0, now))
            })
        });
    }
    // Multicast data to a group with two members: flooded to the three
    // other ports without snooping, to the two members with it.
    for (name, mut rig) in [
        ("unsnooped_flood", Rig::with_fdb(&unsnooped, 1024)),
        ("snooped_to_members", snooping(&querier, 1024)),
    ] {
        let frames = [to_group(mac(0), false); BATCH];
        let want = if name == "unsnooped_flood" { 3 } else { 2 };
        rig.load(&frames);
        assert_eq!(rig.run(p0, now), BATCH * want, "{name}");
        g.bench_function(BenchmarkId::new("multicast_data", name), |bench| {
            bench.iter(|| {
                rig.load(&frames);
                black_box(rig.run(p0, now))
            })
        });
    }
    g.finish();
}

/// Link impairment on the hot path (issue 16): known unicast among four
/// ports (64k MACs, frames sent to their in-memory ports, as a worker's
/// edit stage and sends), with a fifth port that carries none of it
/// unimpaired (`none`) and impaired (`other_port_impaired`: delay 20 ms
/// and 1% loss on both directions), in one run; each iteration also does
/// a worker's per-turn impairment work (a spec check, the held frames
/// due). And, for the cost of an impaired egress itself, every frame to
/// one port (p1), unimpaired and with 1% loss there.
fn impair(c: &mut Criterion) {
    let p0 = port(0);
    let mut g = c.benchmark_group("impair");
    g.throughput(Throughput::Elements(BATCH as u64));
    let base = access_ports(5);
    let other =
        format!("{base}\n[[impair]]\nport = \"p4\"\ndelay = \"20ms\"\nloss = \"1%\"\nseed = 1\n");
    let lossy = format!("{base}\n[[impair]]\nport = \"p1\"\nloss = \"1%\"\nseed = 1\n");
    let macs = 1u64 << 16;
    // MAC i on port i % 4: p4 learns nothing, no frame goes there.
    let pairs = unicast_pairs(macs);
    let to_p1: Pairs = (0..BATCH * BATCHES)
        .map(|i| {
            (
                mac(1 + 4 * (i as u64 % (macs / 4))),
                mac(4 * (i as u64 % (macs / 4))),
            )
        })
        .collect();
    for (name, toml, pairs) in [
        ("none", &base, &pairs),
        ("other_port_impaired", &other, &pairs),
        ("to_one_port", &base, &to_p1),
        ("to_one_port_with_1pct_loss", &lossy, &to_p1),
    ] {
        let mut rig = learned_on_four(Rig::with_fdb(toml, macs as usize).with_impair(toml), macs);
        let mut b = 0;
        g.bench_function(BenchmarkId::new("known_unicast_64k", name), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                b = (b + 1) % BATCHES;
                rig.impair_turn();
                black_box(run_and_send(&mut rig, p0, NOW))
            })
        });
    }
    g.finish();
}

/// Mirror ports (docs/mirror.md): known unicast from p0 to p1..p3 sent,
/// with no mirror, with a mirror of another port (the one check per batch
/// and the plan), and with p0's frames mirrored in to p4 (a copy per frame,
/// edited and sent like a flood's).
fn mirror(c: &mut Criterion) {
    let p0 = port(0);
    let mut g = c.benchmark_group("mirror");
    g.throughput(Throughput::Elements(BATCH as u64));
    let base = access_ports(6);
    let m = |src: &str, dir: &str| {
        format!("{base}\n[[mirror]]\nname = \"m\"\nsource = [\"{src}\"]\ndirection = \"{dir}\"\ndestination = \"p4\"\n")
    };
    let other = m("p5", "both");
    let rx = m("p0", "in");
    let both = format!(
        "{base}\n[[mirror]]\nname = \"m\"\nsource = [\"p0\", \"p1\", \"p2\", \"p3\"]\ndestination = \"p4\"\n"
    );
    let macs = 1u64 << 16;
    let pairs = unicast_pairs(macs);
    for (name, toml) in [
        ("none", &base),
        ("other_port_mirrored", &other),
        ("ingress_mirrored_in", &rx),
        ("all_ports_mirrored_both", &both),
    ] {
        let mut rig = learned_on_four(Rig::with_fdb(toml, macs as usize), macs);
        let mut b = 0;
        g.bench_function(BenchmarkId::new("known_unicast_64k", name), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                b = (b + 1) % BATCHES;
                black_box(run_and_send(&mut rig, p0, NOW))
            })
        });
    }
    g.finish();
}

/// What a running capture costs the worker (issue 14): known unicast
/// among four ports (64k MACs), every copy sent, with no capture, with a
/// capture of every port whose records have nowhere to go (every box full,
/// as under a flood: each record lost and counted), and with one whose
/// records are taken away after each batch (every frame described and
/// copied in and out; the taking, the writer's part, in the loop too).
fn capture(c: &mut Criterion) {
    use shunt_switch::pipeline::capture::{Filter, Session};
    let p0 = port(0);
    let mut g = c.benchmark_group("capture");
    g.throughput(Throughput::Elements(BATCH as u64));
    let macs = 1u64 << 16;
    let pairs = unicast_pairs(macs);
    for name in ["none", "all_records_lost", "all_records_taken"] {
        let mut rig = learned_rig(4, macs);
        if name != "none" {
            assert!(rig.capture.start(Session::new(Filter::default(), &[], 1)));
        }
        let take = name == "all_records_taken";
        let mut b = 0;
        g.bench_function(BenchmarkId::new("known_unicast_64k", name), |bench| {
            bench.iter(|| {
                rig.readdress(&pairs[b * BATCH..(b + 1) * BATCH]);
                b = (b + 1) % BATCHES;
                let n = run_and_send(&mut rig, p0, NOW);
                if take {
                    let s = rig.capture.session();
                    if let Some(s) = s.as_ref() {
                        while let Some(r) = s.pop(0) {
                            black_box(r.data().len());
                            s.give_back(0, r);
                        }
                    }
                }
                black_box(n)
            })
        });
        if let Some(s) = rig.capture.stop() {
            eprintln!("capture {name}: {} records lost", s.lost());
        }
    }
    g.finish();
}

/// `rig` with MAC i learned on port i % 4 (of `macs`), and a batch loaded.
fn learned_on_four(mut rig: Rig, macs: u64) -> Rig {
    for i in 0..macs {
        rig.fdb.learn(NET0, &mac(i), (i % 4) as u16, NOW);
    }
    rig.load(&[frame(mac(1), mac(0), None); BATCH]);
    rig
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
    targets = known_unicast, flooding, vlan, learning, guard, impair, mirror, capture
}
criterion_main!(benches);
