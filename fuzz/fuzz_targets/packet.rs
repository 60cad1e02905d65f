//! Fuzz target: a `shunt trace --packet` description.
//! See shunt_switch::testing::fuzz::packet.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shunt_switch::testing::fuzz::packet(data));
