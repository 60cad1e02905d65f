//! Concurrency stress: four workers learn and look up while a fifth thread
//! ages, flushes, removes, adds static entries and lists.
//!
//! Every port a worker learns encodes (a hash of) the exact key it is
//! learned for, so a lookup that returned a port belonging to another key
//! (a torn read, or a write that landed in a reused slot) is caught.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::thread;

use shunt_tables::{Fdb, FdbConfig, Learn};

const WORKERS: u16 = 4;
const ROUNDS: u64 = 200;
const N: u32 = 1500;
const STATICS: u32 = 400;
const AGING_MS: u64 = 10_000;
/// Workers' clock starts here; the ager ages at NOW + 5000, which removes
/// only what was learned with time 0.
const NOW: u64 = 1_000_000;

// Networks, one per kind of key.
const STABLE: u16 = 1; // 1..=4: thread t's own keys, never aged or flushed
const SHARED: u16 = 50; // all threads, moves between them, never removed
const AGED: u16 = 300; // all threads, learned with time 0: aged and removed
const FLUSHED_NET: u16 = 400; // all threads: flush_network
const FLUSHED_PORT: u16 = 500; // all threads, ports 0x8000 + t: flush_port
const STATIC: u16 = 600; // learned by workers, made static by the controller
const NEVER: u16 = 999; // looked up, never learned

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x5a, b[0], b[1], b[2], b[3]]
}

fn tag(net: u16, mac: &[u8; 6]) -> u16 {
    let k = u64::from_be_bytes([
        (net >> 8) as u8,
        net as u8,
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5],
    ]);
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 51) as u16 // 13 bits
}

/// The port worker `t` learns (net, mac) on.
fn port_for(net: u16, mac: &[u8; 6], t: u16) -> u16 {
    match net {
        STABLE..=4 => tag(net, mac) << 2, // one thread only
        FLUSHED_PORT => 0x8000 | t,
        _ => (tag(net, mac) << 2) | t,
    }
}

fn static_port(mac: &[u8; 6]) -> u16 {
    0xC000 | tag(STATIC, mac)
}

/// Could `port` have been stored for this exact key by anyone?
fn valid(net: u16, mac: &[u8; 6], port: u16, is_static: bool) -> bool {
    match net {
        STABLE..=4 => !is_static && port == tag(net, mac) << 2,
        FLUSHED_PORT => !is_static && port & 0xFFFC == 0x8000,
        STATIC if is_static => port == static_port(mac),
        SHARED | AGED | FLUSHED_NET | STATIC => {
            !is_static && port >> 2 == tag(net, mac) // low 2 bits: any of the 4 workers
        }
        _ => false,
    }
}

#[test]
fn workers_and_controller_race() {
    let fdb = Arc::new(Fdb::new(FdbConfig {
        max_entries: 20_000,
        aging_ms: AGING_MS,
    }));
    let done = Arc::new(AtomicBool::new(false));
    let contended = Arc::new(AtomicUsize::new(0));

    let workers: Vec<_> = (0..WORKERS)
        .map(|t| {
            let fdb = Arc::clone(&fdb);
            let contended = Arc::clone(&contended);
            thread::spawn(move || {
                let mut rng = 0x1234_5678_9abc_def0u64 ^ u64::from(t);
                let mut lookups = 0u64;
                for round in 0..ROUNDS {
                    let now = NOW + round * 50;
                    // Threads walk the shared sets from different offsets,
                    // so they meet on the same new keys at different times.
                    for j in 0..N {
                        let i = (j + u32::from(t) * 97 + round as u32 * 13) % N;
                        for (net, when) in [
                            (STABLE + t, now),
                            (SHARED, now),
                            (AGED, 0),
                            (FLUSHED_NET, now),
                            (FLUSHED_PORT, now),
                        ] {
                            let m = mac(i);
                            match fdb.learn(net, &m, port_for(net, &m, t), when) {
                                Learn::Full | Learn::GroupSource | Learn::ReservedPort => {
                                    panic!("unexpected learn result for {net}/{i}")
                                }
                                Learn::Static => assert_eq!(net, STATIC),
                                Learn::Contended => {
                                    contended.fetch_add(1, Relaxed);
                                }
                                _ => {}
                            }
                        }
                        if i < STATICS {
                            let m = mac(i);
                            let r = fdb.learn(STATIC, &m, port_for(STATIC, &m, t), now);
                            assert!(!matches!(r, Learn::Full | Learn::GroupSource), "{r:?}");
                        }
                        // Lookups of random keys of every kind.
                        for _ in 0..2 {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            let net = [
                                STABLE + (rng % 4) as u16,
                                SHARED,
                                AGED,
                                FLUSHED_NET,
                                FLUSHED_PORT,
                                STATIC,
                                NEVER,
                            ][(rng >> 8) as usize % 7];
                            let m = mac((rng >> 16) as u32 % N);
                            lookups += 1;
                            if let Some(e) = fdb.lookup(net, &m) {
                                assert!(
                                    valid(net, &m, e.port, e.is_static),
                                    "lookup {net}/{m:?} gave {e:?}"
                                );
                            }
                        }
                    }
                    // Our own stable keys are never aged nor flushed.
                    for i in (0..N).step_by(7) {
                        let m = mac(i);
                        let e = fdb.lookup(STABLE + t, &m).expect("own stable key lost");
                        assert_eq!(e.port, tag(STABLE + t, &m) << 2);
                    }
                }
                lookups
            })
        })
        .collect();

    let controller = {
        let fdb = Arc::clone(&fdb);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let (mut aged, mut flushed, mut removed, mut passes) = (0, 0, 0, 0u32);
            let mut next_static = 0;
            while !done.load(Relaxed) {
                passes += 1;
                aged += fdb.age(NOW + 5000);
                flushed += fdb.flush_network(FLUSHED_NET);
                flushed += fdb.flush_port(0x8000 | (passes % u32::from(WORKERS)) as u16);
                for i in (passes % 50..N).step_by(50) {
                    removed += usize::from(fdb.remove(AGED, &mac(i)));
                }
                for i in next_static..(next_static + 40).min(STATICS) {
                    fdb.add_static(STATIC, &mac(i), static_port(&mac(i)))
                        .expect("add_static");
                }
                next_static = (next_static + 40).min(STATICS);
                let entries = fdb.entries();
                let mut keys = HashSet::new();
                for (net, m, e) in &entries {
                    assert!(keys.insert((*net, *m)), "{net}/{m:?} listed twice");
                    assert!(
                        valid(*net, m, e.port, e.is_static),
                        "entry {net}/{m:?} {e:?}"
                    );
                    if *net == STATIC && u32::from_be_bytes([m[2], m[3], m[4], m[5]]) < next_static
                    {
                        assert!(e.is_static, "static entry {m:?} turned dynamic");
                    }
                }
                // Static entries never move, whatever the workers learn.
                for i in 0..next_static {
                    let e = fdb.lookup(STATIC, &mac(i)).expect("static lost");
                    assert_eq!((e.port, e.is_static), (static_port(&mac(i)), true));
                }
            }
            (aged, flushed, removed, passes, next_static)
        })
    };

    let lookups: u64 = workers
        .into_iter()
        .map(|w| w.join().expect("worker panicked"))
        .sum();
    done.store(true, Relaxed);
    let (aged, flushed, removed, passes, statics) = controller.join().expect("controller panicked");
    eprintln!(
        "lookups {lookups}, controller passes {passes}: aged {aged}, flushed {flushed}, removed {removed}, \
         made static {statics}, contended learns {}",
        contended.load(Relaxed)
    );
    assert!(passes >= 2, "the controller barely ran");

    // Quiescence: exact checks.
    fdb.validate().expect("table invariants");
    let entries = fdb.entries();
    assert_eq!(fdb.len(), entries.len());
    for (net, m, e) in &entries {
        assert!(
            valid(*net, m, e.port, e.is_static),
            "entry {net}/{m:?} {e:?}"
        );
    }
    // Nothing lost: keys never aged, flushed or removed are all there.
    for i in 0..N {
        let m = mac(i);
        for t in 0..WORKERS {
            let e = fdb.lookup(STABLE + t, &m).expect("stable key lost");
            assert_eq!((e.port, e.is_static), (tag(STABLE + t, &m) << 2, false));
        }
        let e = fdb.lookup(SHARED, &m).expect("shared key lost");
        assert!(valid(SHARED, &m, e.port, e.is_static));
    }
    for i in 0..statics {
        let e = fdb.lookup(STATIC, &mac(i)).expect("static key lost");
        assert_eq!((e.port, e.is_static), (static_port(&mac(i)), true));
    }
    // What ages does age: nothing learned with time 0 survives a last pass.
    fdb.age(NOW + 5000);
    assert!(entries_of(&fdb, AGED) == 0);
    fdb.validate().expect("table invariants after the last age");
}

fn entries_of(fdb: &Fdb, net: u16) -> usize {
    fdb.entries().iter().filter(|e| e.0 == net).count()
}

/// Several threads learn the same brand-new keys at the same instant:
/// exactly one of them gets `New` per key and exactly one entry results.
#[test]
fn racing_inserts_of_the_same_key_make_one_entry() {
    const BATCH: u32 = 300;
    const BATCHES: u32 = 40;
    // A small table, so that racing claims land in overflowing buckets too.
    let fdb = Arc::new(Fdb::new(FdbConfig {
        max_entries: 512,
        aging_ms: 1000,
    }));
    let barrier = Arc::new(Barrier::new(usize::from(WORKERS)));
    let handles: Vec<_> = (0..WORKERS)
        .map(|t| {
            let fdb = Arc::clone(&fdb);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut news = vec![0u32; BATCHES as usize];
                for b in 0..BATCHES {
                    barrier.wait();
                    for i in 0..BATCH {
                        let m = mac(b * BATCH + i);
                        match fdb.learn(1, &m, port_for(1 + 5, &m, t), u64::from(b)) {
                            Learn::New => news[b as usize] += 1,
                            Learn::Refreshed | Learn::Moved { .. } | Learn::Contended => {}
                            r => panic!("unexpected {r:?}"),
                        }
                    }
                    barrier.wait();
                    if t == 0 {
                        fdb.validate().expect("invariants after a racing batch");
                        assert_eq!(fdb.len(), BATCH as usize);
                        for i in 0..BATCH {
                            let m = mac(b * BATCH + i);
                            let e = fdb.lookup(1, &m).expect("racing insert lost the key");
                            assert_eq!(e.port >> 2, tag(6, &m));
                        }
                        // Free the slots again, so that the next batch reuses them.
                        assert_eq!(fdb.flush_network(1), BATCH as usize);
                    }
                    barrier.wait();
                }
                news
            })
        })
        .collect();
    let mut news = vec![0u32; BATCHES as usize];
    for h in handles {
        for (n, x) in news.iter_mut().zip(h.join().expect("thread panicked")) {
            *n += x;
        }
    }
    assert!(news.iter().all(|&n| n == BATCH), "New per batch: {news:?}");
}

/// Slot reuse under fire: a tiny table (a few buckets), more keys than it
/// may hold, and a controller that keeps removing, so that slots change
/// owner constantly while workers learn, move and look up. Any port read
/// for the wrong key, any duplicate, any drifting overflow counter fails.
#[test]
fn churn_on_a_tiny_table() {
    const KEYS: u32 = 96;
    // Release builds run ~20x faster: keep the controller in the race.
    const ROUNDS: u32 = if cfg!(debug_assertions) {
        60_000
    } else {
        1_000_000
    };
    let fdb = Arc::new(Fdb::new(FdbConfig {
        max_entries: 40,
        aging_ms: 1000,
    }));
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|t| {
            let fdb = Arc::clone(&fdb);
            thread::spawn(move || {
                let mut full = 0u32;
                for r in 0..ROUNDS {
                    for j in 0..8 {
                        let i = (r * 7 + j * 13 + u32::from(t) * 31) % KEYS;
                        let m = mac(i);
                        if fdb.learn(SHARED, &m, port_for(SHARED, &m, t), u64::from(r))
                            == Learn::Full
                        {
                            full += 1;
                        }
                        let m = mac((i * 5 + 3) % KEYS);
                        if let Some(e) = fdb.lookup(SHARED, &m) {
                            assert!(valid(SHARED, &m, e.port, e.is_static), "{m:?} -> {e:?}");
                        }
                    }
                }
                full
            })
        })
        .collect();
    let controller = {
        let fdb = Arc::clone(&fdb);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut n = 0u32;
            while !done.load(Relaxed) {
                n = n.wrapping_add(1);
                for i in (n % 3..KEYS).step_by(3) {
                    fdb.remove(SHARED, &mac(i));
                }
                fdb.age(u64::from(n % ROUNDS));
                for (net, m, e) in fdb.entries() {
                    assert!(valid(net, &m, e.port, e.is_static), "{m:?} -> {e:?}");
                }
                thread::yield_now();
            }
            n
        })
    };
    let full: u32 = workers
        .into_iter()
        .map(|w| w.join().expect("worker panicked"))
        .sum();
    done.store(true, Relaxed);
    let passes = controller.join().expect("controller panicked");
    eprintln!("churn: {full} Full learns, {passes} controller passes");
    fdb.validate().expect("table invariants after churn");
    assert_eq!(fdb.len(), fdb.entries().len());
    assert!(fdb.len() <= 40);
}
