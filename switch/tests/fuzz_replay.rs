//! Replays the fuzz targets' seeds and every input that once made a
//! target fail (fuzz/seeds/<target>, fuzz/regressions/<target>) through
//! the same drivers libFuzzer runs (shunt_switch::testing::fuzz), so a
//! regression shows in `cargo test` without nightly or cargo-fuzz.

use shunt_switch::testing::fuzz;
use std::path::Path;

fn replay(target: &str, driver: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            eprintln!("{target}: {}", f.display());
            driver(&data);
            n += 1;
        }
    }
    assert!(n > 0, "no seeds for {target}: run fuzz/make_seeds.py");
}

#[test]
fn pipeline() {
    replay("pipeline", fuzz::pipeline);
}

#[test]
fn stack() {
    replay("stack", fuzz::stack);
}

#[test]
fn dns() {
    replay("dns", fuzz::dns);
}

#[test]
fn topology() {
    replay("topology", fuzz::topology_file);
}

#[test]
fn control() {
    replay("control", fuzz::control);
}

#[test]
fn packet() {
    replay("packet", fuzz::packet);
}
