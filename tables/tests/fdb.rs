//! Behaviour of the FDB, single-threaded, time passed in.

use shunt_tables::{Entry, Fdb, FdbConfig, FdbError, Learn};

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

fn fdb(max_entries: usize, aging_ms: u64) -> Fdb {
    Fdb::new(FdbConfig {
        max_entries,
        aging_ms,
    })
}

#[test]
fn learn_then_lookup() {
    let f = fdb(1024, 10_000);
    assert!(f.is_empty());
    assert_eq!(f.lookup(1, &mac(1)), None);
    assert_eq!(f.learn(1, &mac(1), 3, 500), Learn::New);
    assert_eq!(
        f.lookup(1, &mac(1)),
        Some(Entry {
            port: 3,
            is_static: false,
            last_seen_ms: 500
        })
    );
    assert_eq!(f.lookup(2, &mac(1)), None, "other network");
    assert_eq!(f.lookup(1, &mac(2)), None, "other mac");
    assert_eq!(f.len(), 1);
    f.validate().expect("valid");
}

#[test]
fn refresh_rewrites_time_only_past_the_granularity() {
    let f = fdb(1024, 16_000);
    assert_eq!(f.refresh_ms(), 1000);
    assert_eq!(f.learn(1, &mac(1), 3, 10_000), Learn::New);
    // Within the granularity: nothing written.
    assert_eq!(f.learn(1, &mac(1), 3, 10_999), Learn::Refreshed);
    assert_eq!(f.lookup(1, &mac(1)).map(|e| e.last_seen_ms), Some(10_000));
    assert_eq!(f.learn(1, &mac(1), 3, 11_000), Learn::Refreshed);
    assert_eq!(f.lookup(1, &mac(1)).map(|e| e.last_seen_ms), Some(11_000));
    // Time never goes back (a worker with an older clock reading).
    assert_eq!(f.learn(1, &mac(1), 3, 5_000), Learn::Refreshed);
    assert_eq!(f.lookup(1, &mac(1)).map(|e| e.last_seen_ms), Some(11_000));
    // Small ageing times get a finer granularity.
    f.set_aging_ms(800);
    assert_eq!(f.refresh_ms(), 50);
}

#[test]
fn refresh_keeps_an_entry_alive() {
    let f = fdb(1024, 1000);
    assert_eq!(f.learn(1, &mac(1), 3, 0), Learn::New);
    assert_eq!(f.learn(1, &mac(1), 3, 600), Learn::Refreshed);
    assert_eq!(f.age(1500), 0);
    assert!(f.lookup(1, &mac(1)).is_some());
    assert_eq!(f.age(1601), 1);
    assert_eq!(f.lookup(1, &mac(1)), None);
}

#[test]
fn move_updates_the_port() {
    let f = fdb(1024, 10_000);
    assert_eq!(f.learn(1, &mac(1), 3, 0), Learn::New);
    assert_eq!(f.learn(1, &mac(1), 4, 10), Learn::Moved { from: 3 });
    let e = f.lookup(1, &mac(1)).expect("present");
    assert_eq!((e.port, e.last_seen_ms), (4, 10));
    assert_eq!(f.learn(1, &mac(1), 4, 20), Learn::Refreshed);
    assert_eq!(f.len(), 1);
}

#[test]
fn static_entries_never_move_age_or_get_evicted() {
    let f = fdb(4, 1000);
    f.add_static(1, &mac(1), 7).expect("add");
    assert_eq!(f.learn(1, &mac(1), 3, 0), Learn::Static);
    assert_eq!(
        f.lookup(1, &mac(1)),
        Some(Entry {
            port: 7,
            is_static: true,
            last_seen_ms: 0
        })
    );
    assert_eq!(f.age(1_000_000), 0);
    assert_eq!(f.flush_port(7), 0);
    assert_eq!(f.flush_network(1), 0);
    // Fill the rest of max_entries with dynamic ones, then more: Full, and
    // the static entry is still there.
    for i in 2..5 {
        assert_eq!(f.learn(1, &mac(i), 3, 0), Learn::New);
    }
    assert_eq!(f.learn(1, &mac(99), 3, 0), Learn::Full);
    assert_eq!(
        f.lookup(1, &mac(1)).map(|e| (e.port, e.is_static)),
        Some((7, true))
    );
    assert_eq!(f.age(1_000_000), 3);
    assert_eq!(f.len(), 1);
    // Only remove deletes it.
    assert!(f.remove(1, &mac(1)));
    assert_eq!(f.lookup(1, &mac(1)), None);
    f.validate().expect("valid");
}

#[test]
fn add_static_overwrites_a_dynamic_entry_and_ignores_max_entries() {
    let f = fdb(2, 1000);
    assert_eq!(f.learn(1, &mac(1), 3, 0), Learn::New);
    assert_eq!(f.learn(1, &mac(2), 3, 0), Learn::New);
    f.add_static(1, &mac(1), 9).expect("overwrite");
    assert_eq!(
        f.lookup(1, &mac(1)).map(|e| (e.port, e.is_static)),
        Some((9, true))
    );
    assert_eq!(f.len(), 2);
    // The table is at max_entries, but an administrator's entry still fits.
    f.add_static(1, &mac(3), 9).expect("beyond max_entries");
    assert_eq!(f.len(), 3);
    assert_eq!(f.learn(1, &mac(4), 3, 0), Learn::Full);
    // Idempotent, and re-pointable.
    f.add_static(1, &mac(3), 9).expect("again");
    f.add_static(1, &mac(3), 10).expect("re-point");
    assert_eq!(f.lookup(1, &mac(3)).map(|e| e.port), Some(10));
    assert_eq!(f.len(), 3);
    f.validate().expect("valid");
}

#[test]
fn ageing_removes_idle_dynamic_entries_and_lookup_does_not_refresh() {
    let f = fdb(1024, 1000);
    assert_eq!(f.learn(1, &mac(1), 3, 100), Learn::New);
    assert_eq!(f.learn(1, &mac(2), 3, 900), Learn::New);
    // Frames *to* mac(1) are lookups: they must not keep it alive.
    for _ in 0..10 {
        assert!(f.lookup(1, &mac(1)).is_some());
    }
    assert_eq!(f.age(1100), 0, "exactly aging_ms idle is kept");
    assert_eq!(f.age(1101), 1);
    assert_eq!(f.lookup(1, &mac(1)), None);
    assert!(f.lookup(1, &mac(2)).is_some());
    assert_eq!(f.age(1901), 1);
    assert!(f.is_empty());
    f.validate().expect("valid");
}

#[test]
fn entries_ahead_of_the_ageing_clock_are_kept() {
    let f = fdb(1024, 1000);
    assert_eq!(f.learn(1, &mac(1), 3, 50_000), Learn::New);
    assert_eq!(f.age(10_000), 0);
    assert_eq!(f.len(), 1);
}

#[test]
fn capacity_limit_then_existing_entries_keep_working() {
    let f = fdb(100, 10_000);
    for i in 0..100 {
        assert_eq!(f.learn(1, &mac(i), 1, 0), Learn::New);
    }
    let mut full = 0;
    for i in 100..200 {
        if f.learn(1, &mac(i), 1, 0) == Learn::Full {
            full += 1;
        }
    }
    assert_eq!(full, 100);
    assert_eq!(f.len(), 100);
    assert_eq!(f.lookup(1, &mac(150)), None);
    // Existing entries refresh and move while full.
    assert_eq!(f.learn(1, &mac(5), 1, 5000), Learn::Refreshed);
    assert_eq!(f.lookup(1, &mac(5)).map(|e| e.last_seen_ms), Some(5000));
    assert_eq!(f.learn(1, &mac(6), 2, 5000), Learn::Moved { from: 1 });
    // Room again after a removal.
    assert!(f.remove(1, &mac(7)));
    assert_eq!(f.learn(1, &mac(150), 1, 5000), Learn::New);
    assert_eq!(f.learn(1, &mac(151), 1, 5000), Learn::Full);
    f.validate().expect("valid");
}

#[test]
fn flush_by_port_and_by_network() {
    let f = fdb(1024, 10_000);
    for i in 0..10 {
        f.learn(1, &mac(i), (i % 2) as u16, 0);
        f.learn(2, &mac(i), (i % 2) as u16, 0);
    }
    f.add_static(1, &mac(100), 0).expect("static");
    assert_eq!(f.len(), 21);
    assert_eq!(f.flush_port(0), 10, "dynamic on port 0, both networks");
    assert_eq!(
        f.lookup(1, &mac(100)).map(|e| e.port),
        Some(0),
        "static stays"
    );
    assert_eq!(f.flush_network(2), 5);
    assert_eq!(f.len(), 6);
    assert!(f
        .entries()
        .iter()
        .all(|(net, _, e)| *net == 1 && (e.port == 1 || e.is_static)));
    assert_eq!(f.remove_network(1), 6, "static ones included");
    assert!(f.is_empty());
    f.validate().expect("valid");
}

#[test]
fn same_mac_in_two_networks_on_two_ports() {
    let f = fdb(1024, 10_000);
    assert_eq!(f.learn(10, &mac(1), 1, 0), Learn::New);
    assert_eq!(f.learn(20, &mac(1), 2, 0), Learn::New);
    assert_eq!(f.lookup(10, &mac(1)).map(|e| e.port), Some(1));
    assert_eq!(f.lookup(20, &mac(1)).map(|e| e.port), Some(2));
    // Learning in one network is not a move in the other.
    assert_eq!(f.learn(20, &mac(1), 2, 5), Learn::Refreshed);
    assert_eq!(f.flush_network(10), 1);
    assert_eq!(f.lookup(20, &mac(1)).map(|e| e.port), Some(2));
}

#[test]
fn group_sources_and_reserved_port_are_refused() {
    let f = fdb(1024, 10_000);
    let bcast = [0xff; 6];
    let mcast = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
    let v6mcast = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
    for m in [bcast, mcast, v6mcast] {
        assert_eq!(f.learn(1, &m, 1, 0), Learn::GroupSource);
        assert_eq!(f.lookup(1, &m), None);
        assert_eq!(f.add_static(1, &m, 1), Err(FdbError::GroupAddress));
        assert!(!f.remove(1, &m));
    }
    assert_eq!(f.learn(1, &mac(1), u16::MAX, 0), Learn::ReservedPort);
    assert_eq!(
        f.add_static(1, &mac(1), u16::MAX),
        Err(FdbError::ReservedPort)
    );
    assert!(f.is_empty());
    // Extreme keys that are unicast are fine.
    assert_eq!(f.learn(0, &[0; 6], 0, 0), Learn::New);
    assert_eq!(
        f.learn(u16::MAX, &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff], 0xFFFE, 0),
        Learn::New
    );
    assert_eq!(f.lookup(0, &[0; 6]).map(|e| e.port), Some(0));
    f.validate().expect("valid");
}

#[test]
fn remove_then_relearn() {
    let f = fdb(1024, 10_000);
    assert_eq!(f.learn(1, &mac(1), 3, 0), Learn::New);
    assert!(f.remove(1, &mac(1)));
    assert!(!f.remove(1, &mac(1)));
    assert_eq!(f.lookup(1, &mac(1)), None);
    assert_eq!(f.learn(1, &mac(1), 4, 10), Learn::New);
    assert_eq!(f.lookup(1, &mac(1)).map(|e| e.port), Some(4));
    assert_eq!(f.len(), 1);
    f.validate().expect("valid");
}

#[test]
fn entries_lists_each_key_once_sorted() {
    let f = fdb(1024, 10_000);
    for i in (0..50).rev() {
        f.learn((i % 3) as u16, &mac(i), i as u16, 1000 + u64::from(i));
    }
    f.add_static(0, &mac(1000), 5).expect("static");
    let e = f.entries();
    assert_eq!(e.len(), 51);
    assert_eq!(e.len(), f.len());
    assert!(e.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    for (net, m, entry) in &e {
        if entry.is_static {
            continue;
        }
        let i = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
        assert_eq!(*net, (i % 3) as u16);
        assert_eq!(entry.port, i as u16);
        assert_eq!(entry.last_seen_ms, 1000 + u64::from(i));
    }
}

#[test]
fn wall_clock_epochs_work() {
    // A caller may pass milliseconds since 1970 (more than 40 bits).
    let t0 = 1_764_000_000_000u64;
    let f = fdb(1024, 300_000);
    assert_eq!(f.learn(1, &mac(1), 3, t0), Learn::New);
    assert_eq!(f.lookup(1, &mac(1)).map(|e| e.last_seen_ms), Some(t0));
    assert_eq!(f.age(t0 + 300_000), 0);
    assert_eq!(f.learn(1, &mac(2), 3, t0 + 200_000), Learn::New);
    assert_eq!(f.age(t0 + 300_001), 1);
    assert_eq!(
        f.lookup(1, &mac(2)).map(|e| e.last_seen_ms),
        Some(t0 + 200_000)
    );
}

/// Many learn/age cycles of distinct MACs must not clog the table: freed
/// slots are reused and probe chains shrink back (no tombstones).
#[test]
fn slot_reuse_after_ageing() {
    let f = fdb(16 * 1024, 1000);
    let slots = f.slots();
    let mem = f.memory_bytes();
    let mut now = 0u64;
    let mut next = 0u32;
    for _round in 0..100 {
        for _ in 0..10_000 {
            assert_eq!(f.learn(7, &mac(next), (next % 48) as u16, now), Learn::New);
            next += 1;
        }
        assert_eq!(f.len(), 10_000);
        now += 2000;
        assert_eq!(f.age(now), 10_000);
        assert!(f.is_empty());
    }
    assert_eq!(next, 1_000_000);
    assert_eq!((f.slots(), f.memory_bytes()), (slots, mem));
    // validate() also checks that every overflow counter went back to 0.
    f.validate().expect("valid after 1M learns");
    // And the table still takes a full load.
    for i in 0..16 * 1024 {
        assert_eq!(f.learn(8, &mac(i), 1, now), Learn::New);
    }
    assert_eq!(f.learn(8, &mac(999_999), 1, now), Learn::Full);
    f.validate().expect("valid when full");
}

#[test]
fn fdb_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Fdb>();
}
