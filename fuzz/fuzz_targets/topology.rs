//! Fuzz target: a topology file: an error with its line, or a topology the switch builds.
//! See shunt_switch::testing::fuzz::topology_file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shunt_switch::testing::fuzz::topology_file(data));
