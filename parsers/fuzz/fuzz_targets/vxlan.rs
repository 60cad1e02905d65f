//! Fuzz target: `vxlan` views and helpers must not panic on any input.
//! Seeds are whole Ethernet frames (see ../seeds), so the view is also tried
//! where it sits in one (the VXLAN header after Ethernet + IPv4 + UDP).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    for off in [0, 42] {
        exercise::vxlan(data.get(off..).unwrap_or(&[]));
    }
});
