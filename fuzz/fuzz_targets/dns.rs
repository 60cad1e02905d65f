//! Fuzz target: one datagram to the DNS responder and its codec.
//! See shunt_switch::testing::fuzz::dns.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shunt_switch::testing::fuzz::dns(data));
