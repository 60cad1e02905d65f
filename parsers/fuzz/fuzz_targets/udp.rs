//! Fuzz target: `udp` views and helpers must not panic on any input.
//! Seeds are whole Ethernet frames (see ../seeds), so the view is also tried
//! where it sits in one (UDP after Ethernet + IPv4).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    for off in [0, 34] {
        exercise::udp(data.get(off..).unwrap_or(&[]));
    }
});
