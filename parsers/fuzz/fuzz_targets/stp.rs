//! Fuzz target: the spanning-tree BPDU view, its decoded form and the
//! frame helpers must not panic on any input, and what parses must survive
//! a rebuild. Seeds are whole Ethernet frames (see ../seeds, stp_bpdu-00 is
//! a kernel bridge's configuration BPDU), so the view is also tried where
//! it sits in one (after Ethernet and LLC, offset 17).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    for off in [0, 14, 17] {
        exercise::stp(data.get(off..).unwrap_or(&[]));
    }
});
