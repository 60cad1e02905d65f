//! Fuzz target: whole frames through the pipeline, batch by batch, against a topology with access, trunk, macvlan and VXLAN ports and the switch's own addresses; the invariants are the driver's.
//! See shunt_switch::testing::fuzz::pipeline.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shunt_switch::testing::fuzz::pipeline(data));
