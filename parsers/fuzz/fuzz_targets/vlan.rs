//! Fuzz target: `vlan` views and helpers must not panic on any input.
//! Seeds are whole Ethernet frames (see ../seeds), so the view is also tried
//! where it sits in one (a tag's TCI after a 0x8100 EtherType).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    for off in [0, 14] {
        exercise::vlan(data.get(off..).unwrap_or(&[]));
    }
});
