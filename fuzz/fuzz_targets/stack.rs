//! Fuzz target: frames to the switch's own stack (smoltcp's ARP and ping, the DNS responder, ARP suppression), and its answers through the pipeline.
//! See shunt_switch::testing::fuzz::stack.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shunt_switch::testing::fuzz::stack(data));
