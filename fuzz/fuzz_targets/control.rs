//! Fuzz target: one request line of the control socket.
//! See shunt_switch::testing::fuzz::control.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shunt_switch::testing::fuzz::control(data));
