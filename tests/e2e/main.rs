//! End-to-end tests of shunt: real network namespaces, TAP ports, real
//! frames and real `ping`, against the `shunt` binary of this build.
//!
//! Run: `cargo test -p shunt-switch --test e2e` (root needed). Filters and
//! `--test-threads` work as usual. When a prerequisite is missing (root,
//! /dev/net/tun, `ip`, `ping`) every test is reported ignored and a line
//! `skipped: <test>: <reason>` is printed for each: never "passed".
//!
//! Each test uses names of its own (see harness.rs) and cleans up after
//! itself also when it fails or panics.

mod dns;
mod harness;
mod l2;
mod macvlan;
mod vlan;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let skip = harness::prerequisites().err();
    let trials = l2::tests()
        .into_iter()
        .chain(dns::tests())
        .chain(vlan::tests())
        .chain(macvlan::tests())
        .map(|(name, test)| match &skip {
            Some(reason) => {
                println!("skipped: {name}: {reason}");
                let reason = reason.clone();
                Trial::test(name, move || Err(format!("skipped: {reason}").into()))
                    .with_ignored_flag(true)
            }
            None => Trial::test(name, test),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
