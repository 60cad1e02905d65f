//! Fuzz target: the `igmp` and `mld` views and finders must not panic on
//! any input. Seeds are whole Ethernet frames (see ../seeds), so the views
//! are also tried where they sit in one (after Ethernet, after a tag).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    for off in [0, 14, 18] {
        exercise::mcast(data.get(off..).unwrap_or(&[]));
    }
});
