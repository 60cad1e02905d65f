//! Fuzz target: the `tcp` view must not panic on any input, and a
//! checksum it fills must verify. Seeds are whole Ethernet frames (see
//! ../seeds), so the view is also tried where it sits in one (after
//! Ethernet + IPv4, and after Ethernet + IPv6).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    for off in [0, 34, 54] {
        exercise::tcp(data.get(off..).unwrap_or(&[]));
    }
});
