//! Per-port learning limits (`Fdb::set_port_limit`, the topology's
//! `max_learned`): a port at its limit learns nothing new, room comes back
//! when its entries age, move away, are flushed or removed, and the count
//! stays exact with several learners and a control thread at once.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::thread;

use shunt_tables::{Fdb, FdbConfig, Learn};

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x77, b[0], b[1], b[2], b[3]]
}

fn table(ports: usize) -> Fdb {
    Fdb::with_port_limits(
        FdbConfig {
            max_entries: 10_000,
            aging_ms: 1000,
        },
        ports,
    )
}

#[test]
fn a_port_at_its_limit_learns_nothing_new() {
    let f = table(8);
    assert!(f.set_port_limit(1, 3));
    assert!(!f.set_port_limit(8, 3), "port 8 is not counted");
    for i in 0..3 {
        assert_eq!(f.learn(1, &mac(i), 1, 0), Learn::New);
    }
    assert_eq!(f.learn(1, &mac(3), 1, 0), Learn::PortLimit);
    // The ones it has keep refreshing; other ports still learn.
    assert_eq!(f.learn(1, &mac(0), 1, 500), Learn::Refreshed);
    assert_eq!(f.learn(1, &mac(10), 2, 0), Learn::New);
    assert_eq!(f.port_learned(1), Some((3, 3)));
    assert_eq!(f.port_learned(2), Some((1, 0)));
    f.validate().expect("valid");

    // Room again: a removal, a flush, ageing, a move away.
    assert!(f.remove(1, &mac(1)));
    assert_eq!(f.learn(1, &mac(3), 1, 0), Learn::New);
    assert_eq!(
        f.learn(1, &mac(3), 2, 0),
        Learn::Moved { from: 1 },
        "a move away gives room"
    );
    assert_eq!(f.port_learned(1), Some((2, 3)));
    assert_eq!(f.learn(1, &mac(4), 1, 0), Learn::New);
    assert_eq!(f.port_learned(1), Some((3, 3)));
    // Ageing: mac(0) was refreshed at 500 (refresh granularity 62 ms), the
    // others were learned at 0.
    assert_eq!(
        f.age(1200),
        4,
        "mac(2), mac(4) on port 1, mac(3), mac(10) on 2"
    );
    assert_eq!(f.port_learned(1), Some((1, 3)));
    assert_eq!(f.flush_port(1), 1);
    assert_eq!(f.port_learned(1), Some((0, 3)));
    f.validate().expect("valid");
}

#[test]
fn a_move_onto_a_full_port_removes_the_entry() {
    let f = table(8);
    f.set_port_limit(1, 1);
    assert_eq!(f.learn(1, &mac(0), 1, 0), Learn::New);
    assert_eq!(f.learn(1, &mac(1), 2, 0), Learn::New);
    // mac(1) shows up on port 1, which has no room: it is no longer on
    // port 2 either, so frames to it are flooded instead of sent there.
    assert_eq!(f.learn(1, &mac(1), 1, 0), Learn::PortLimit);
    assert_eq!(f.lookup_port(1, &mac(1)), None);
    assert_eq!(f.port_learned(2), Some((0, 0)));
    f.validate().expect("valid");
}

#[test]
fn static_entries_do_not_count() {
    let f = table(8);
    f.set_port_limit(1, 1);
    assert_eq!(f.add_static(1, &mac(0), 1), Ok(()));
    assert_eq!(f.learn(1, &mac(1), 1, 0), Learn::New);
    // A learned entry made static gives its room back.
    assert_eq!(f.add_static(1, &mac(1), 1), Ok(()));
    assert_eq!(f.port_learned(1), Some((0, 1)));
    assert_eq!(f.learn(1, &mac(2), 1, 0), Learn::New);
    f.validate().expect("valid");
}

#[test]
fn a_table_without_counts_has_no_limits() {
    let f = Fdb::new(FdbConfig::default());
    assert!(!f.set_port_limit(1, 1));
    assert_eq!(f.port_learned(1), None);
    assert_eq!(f.learn(1, &mac(0), 1, 0), Learn::New);
    assert_eq!(f.learn(1, &mac(1), 1, 0), Learn::New);
}

/// Four learners, each flooding one limited port with fresh MACs and
/// moving shared MACs between the ports, while a control thread ages,
/// flushes and removes. The count never lets a port hold more than its
/// limit (sampled from `entries()` after the run and checked exact by
/// `validate`), and every port still learns once room comes back.
#[test]
fn counts_stay_exact_under_concurrency() {
    const LEARNERS: u16 = 4;
    const LIMIT: usize = 50;
    let f = Arc::new(table(16));
    for p in 0..LEARNERS {
        f.set_port_limit(p, LIMIT);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(LEARNERS as usize + 1));
    let mut learners = Vec::new();
    for t in 0..LEARNERS {
        let (f, start) = (Arc::clone(&f), Arc::clone(&start));
        learners.push(thread::spawn(move || {
            start.wait();
            let mut over = 0;
            for round in 0..200u32 {
                let now = u64::from(round) * 10;
                for i in 0..200u32 {
                    let own = mac((u32::from(t) << 24) | (round * 200 + i));
                    f.learn(1, &own, t, now);
                    // Shared MACs hop from port to port.
                    f.learn(1, &mac(0x00ff_0000 | (i % 64)), t, now);
                }
                let (n, max) = f.port_learned(t).unwrap_or((0, 0));
                // The count is taken before an entry goes live: a brief
                // excess of at most the learners in flight at once.
                if n > max + LEARNERS as usize {
                    over += 1;
                }
            }
            over
        }));
    }
    let control = {
        let (f, stop, start) = (Arc::clone(&f), Arc::clone(&stop), Arc::clone(&start));
        thread::spawn(move || {
            start.wait();
            let mut k = 0u64;
            while !stop.load(Relaxed) {
                k += 1;
                f.age(k * 20);
                if k.is_multiple_of(3) {
                    f.flush_port((k % u64::from(LEARNERS)) as u16);
                }
                f.remove(1, &mac(0x00ff_0000 | (k % 64) as u32));
                thread::yield_now();
            }
        })
    };
    let over: usize = learners
        .into_iter()
        .map(|h| h.join().expect("learner"))
        .sum();
    stop.store(true, Relaxed);
    control.join().expect("control");
    assert_eq!(over, 0, "a count went beyond its limit");
    f.validate().expect("counts exact after the run");
    for p in 0..LEARNERS {
        let on_port = f
            .entries()
            .iter()
            .filter(|(_, _, e)| e.port == p && !e.is_static)
            .count();
        assert!(on_port <= LIMIT, "port {p}: {on_port} entries");
        assert_eq!(f.port_learned(p), Some((on_port, LIMIT)));
    }
    // Flushed, every port learns again.
    for p in 0..LEARNERS {
        f.flush_port(p);
        assert_eq!(f.learn(2, &mac(u32::from(p)), p, 1_000_000), Learn::New);
    }
    f.validate().expect("valid");
}
