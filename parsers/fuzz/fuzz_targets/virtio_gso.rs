//! Fuzz target: a virtio-net header (12 bytes) and the frame after it.
//! `check_header` must never panic, and whatever it accepts must segment:
//! every segment written into a fixed buffer, none longer than it, every
//! IPv4 header and L4 checksum right, the payloads adding up to the
//! frame's; `complete_csum` on a copy writes only the checksum field.
//! The same bytes read as a 24-byte UDP-tunnel header and its outer frame:
//! whatever `check_tunnel_header` accepts has its offsets in order and an
//! inner frame that segments.
//! Seeds: ../seeds_gso (header + super-frame, from `cargo test -p
//! shunt-parsers --test gso -- --ignored write_fuzz_seeds`).

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/exercise.rs"]
mod exercise;

thread_local! {
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0; exercise::GSO_OUT_LEN]);
}

fuzz_target!(|data: &[u8]| {
    OUT.with(|out| exercise::virtio_gso(data, &mut out.borrow_mut()));
});
