//! A quick sanity timing, not a benchmark (perf/ has those):
//! `cargo test -p shunt-tables --release --test timing -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;

use shunt_tables::{Fdb, FdbConfig, Learn};

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

fn per_op(start: Instant, ops: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// ns per op of `pass` (which does `ops` ops): best of 7 passes, so that
/// other processes on the machine disturb it less.
fn best(ops: usize, mut pass: impl FnMut()) -> f64 {
    pass(); // warm caches and TLB
    (0..7)
        .map(|_| {
            let t = Instant::now();
            pass();
            per_op(t, ops)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn sanity_timing() {
    const N: u32 = 65536;
    let fdb = Fdb::new(FdbConfig::default());
    // Keys in a scrambled order, precomputed: building a MAC from a loop
    // counter right before the call distorts the loop (store forwarding).
    let keys: Vec<[u8; 6]> = (0..N)
        .map(|i| mac(i.wrapping_mul(0x9E37_79B9) % N))
        .collect();

    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(fdb.learn(1, k, (i % 64) as u16, 0), Learn::New);
    }
    let learn_new = per_op(t, N as usize);

    let reps = 10;
    let ops = reps * N as usize;
    let lookup_hit = best(ops, || {
        let mut hits = 0usize;
        for _ in 0..reps {
            for k in &keys {
                hits += usize::from(black_box(fdb.lookup(1, black_box(k))).is_some());
            }
        }
        assert_eq!(hits, ops);
    });
    let lookup_prefetch = best(ops, || {
        for _ in 0..reps {
            for (j, k) in keys.iter().enumerate() {
                if let Some(ahead) = keys.get(j + 4) {
                    fdb.prefetch(1, ahead);
                }
                black_box(fdb.lookup(1, black_box(k)));
            }
        }
    });
    let lookup_miss = best(ops, || {
        for _ in 0..reps {
            for k in &keys {
                black_box(fdb.lookup(2, black_box(k)));
            }
        }
    });
    let learn_same = best(ops, || {
        for _ in 0..reps {
            for (i, k) in keys.iter().enumerate() {
                black_box(fdb.learn(1, black_box(k), (i % 64) as u16, 10));
            }
        }
    });

    // Calibration: the same access pattern on a plain 2 MiB array of u64
    // (one random read per op, no key, no atomics, no branches).
    let plain: Vec<u64> = (0..(2u64 << 20) / 8).collect();
    let pmask = plain.len() - 1;
    let floor = best(ops, || {
        let mut sum = 0u64;
        for _ in 0..reps {
            for i in 0..N {
                let h = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
                sum = sum.wrapping_add(plain[h as usize & pmask]);
            }
        }
        black_box(sum);
    });

    // New MACs at full speed on a big table: 1M entries, then lookups.
    const BIG: u32 = 1 << 20;
    let big = Fdb::new(FdbConfig {
        max_entries: BIG as usize,
        aging_ms: 300_000,
    });
    let big_keys: Vec<[u8; 6]> = (0..BIG).map(|i| mac(i.wrapping_mul(0x9E37_79B9))).collect();
    let t = Instant::now();
    for k in &big_keys {
        black_box(big.learn(1, k, 1, 0));
    }
    let learn_new_big = per_op(t, BIG as usize);
    assert_eq!(big.len(), BIG as usize);
    let big_hit = best(BIG as usize, || {
        for k in &big_keys {
            black_box(big.lookup(1, black_box(k)));
        }
    });
    let big_prefetch = best(BIG as usize, || {
        for (j, k) in big_keys.iter().enumerate() {
            if let Some(ahead) = big_keys.get(j + 4) {
                big.prefetch(1, ahead);
            }
            black_box(big.lookup(1, black_box(k)));
        }
    });

    eprintln!("calibration, random u64 read in a 2 MiB array: {floor:6.1} ns");
    eprintln!("64k-entry table ({} KiB):", fdb.memory_bytes() / 1024);
    eprintln!("  lookup, known entry:           {lookup_hit:6.1} ns");
    eprintln!("  lookup, known, prefetch 4 ahead:{lookup_prefetch:6.1} ns");
    eprintln!("  lookup, unknown entry:         {lookup_miss:6.1} ns");
    eprintln!("  learn, existing, same port:    {learn_same:6.1} ns");
    eprintln!(
        "  learn, new MAC:                {learn_new:6.1} ns = {:.1} M/s",
        1e3 / learn_new
    );
    eprintln!("1M-entry table ({} MiB):", big.memory_bytes() >> 20);
    eprintln!(
        "  learn, new MAC (up to full):   {learn_new_big:6.1} ns = {:.1} M/s",
        1e3 / learn_new_big
    );
    eprintln!("  lookup, known entry:           {big_hit:6.1} ns");
    eprintln!("  lookup, known, prefetch 4 ahead:{big_prefetch:6.1} ns");
}
