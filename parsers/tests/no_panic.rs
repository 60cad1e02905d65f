//! Property-style test: no view and no helper panics on any input. Every
//! prefix (0..=len) of every real frame, and many randomly corrupted and
//! purely random buffers, go through `new_checked` and every getter of
//! every view (tests/common/exercise.rs, shared with the fuzz targets).

#![allow(clippy::unwrap_used)]

mod common;

use common::{exercise, pcap};

/// xorshift64*: deterministic, no dependency; good enough to scatter bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_prefix_of_every_real_frame() {
    let mut count = 0;
    for (_, frames) in pcap::all_captures() {
        for frame in frames {
            for n in 0..=frame.len() {
                exercise::all(&frame[..n]);
                count += 1;
            }
        }
    }
    assert!(count > 5000, "only {count} prefixes");
}

#[test]
fn corrupted_real_frames() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for (_, frames) in pcap::all_captures() {
        for frame in &frames {
            for _ in 0..200 {
                let mut f = frame.clone();
                // Flip a few bytes, biased towards the headers where the
                // length fields live.
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(f.len().min(80));
                    f[i] = rng.next() as u8;
                }
                // Sometimes cut it short, sometimes append junk.
                match rng.below(4) {
                    0 => f.truncate(rng.below(f.len() + 1)),
                    1 => f.extend((0..rng.below(32)).map(|_| rng.next() as u8)),
                    _ => {}
                }
                exercise::all(&f);
            }
        }
    }
}

#[test]
fn random_buffers() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..5000 {
        let len = rng.below(160);
        let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise::all(&buf);
    }
}

#[test]
fn extreme_length_fields() {
    // Headers whose length fields say 0 or 0xffff, every other byte 0x00
    // or 0xff: the corners where off-by-one bugs hide.
    for fill in [0x00u8, 0xff] {
        for len in 0..=80 {
            exercise::all(&vec![fill; len]);
        }
    }
}
