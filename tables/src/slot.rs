//! Bit packing of one FDB slot: a key word and a value word, each a `u64`,
//! so that each can be read and written atomically (see README.md).
//!
//! Key word (`0` = free slot):
//!
//! ```text
//!  63        48 47                                      0
//! +------------+-----------------------------------------+
//! | network id |  MAC, first octet high, group bit (40)  |
//! |            |  flipped: always 1 in a stored key      |
//! +------------+-----------------------------------------+
//! ```
//!
//! Value word:
//!
//! ```text
//!  63                    24 23    17  16    15         0
//! +------------------------+--------+------+-----------+
//! | last seen, ms mod 2^40 | gen(7) |static|   port    |
//! +------------------------+--------+------+-----------+
//! port == 0xFFFF: not a live entry; then bit 16 set = PENDING (being
//! inserted), clear = DEAD (free, or being freed).
//! ```

/// The group (multicast) bit of the first MAC octet, at its place in the key.
const GROUP_BIT: u64 = 1 << 40;

/// Key word of a free slot. Never a stored key: stored keys have the
/// (flipped) group bit set, because group MACs are never stored.
pub(crate) const FREE: u64 = 0;

/// True for multicast and broadcast MACs (I/G bit set): never stored.
#[inline]
pub(crate) fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// Packs (network, unicast MAC) into a non-zero key word.
#[inline]
pub(crate) fn encode_key(net: u16, mac: &[u8; 6]) -> u64 {
    let m = u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
    ((u64::from(net) << 48) | m) ^ GROUP_BIT
}

#[inline]
pub(crate) fn decode_key(key: u64) -> (u16, [u8; 6]) {
    let b = (key ^ GROUP_BIT).to_be_bytes();
    (
        u16::from_be_bytes([b[0], b[1]]),
        [b[2], b[3], b[4], b[5], b[6], b[7]],
    )
}

/// The hash of a key: its high bits pick the bucket ([`bucket_of`]), its
/// low bits the slot's tag ([`tag_of`]). One 64x64->128-bit multiply by an
/// odd constant, the two halves folded with xor (the mixing step of wyhash):
/// the low half spreads the low key bits upward, the high half carries
/// every key bit, so MACs that differ only in the last octet, only in the
/// OUI, or keys that differ only in the network spread evenly (see the
/// test). One multiply instead of murmur3's fmix64 (two multiplies, three
/// shift-xors); a single multiply without the fold (Fibonacci hashing)
/// clustered OUI-only differences.
#[inline]
pub(crate) fn hash(key: u64) -> u64 {
    let p = u128::from(key) * u128::from(HASH_MUL);
    (p >> 64) as u64 ^ p as u64
}

const HASH_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

/// The bucket index of hash `h` among `1 << (64 - shift)` buckets.
#[inline]
pub(crate) fn bucket_of(h: u64, shift: u32) -> usize {
    (h >> shift) as usize
}

/// The tag byte of hash `h`: 7 hash bits, the top bit always set, so that
/// the zero byte of a never-used slot matches no key.
#[inline]
pub(crate) fn tag_of(h: u64) -> u64 {
    (h & 0x7f) | 0x80
}

/// One in each tag byte of the seven slots (byte 7 of the tag word is unused).
const TAG_LOW: u64 = 0x0001_0101_0101_0101;
const TAG_HIGH: u64 = TAG_LOW << 7;

/// The slots of a bucket whose tag may be `tag`, as the top bit of their
/// byte in the tag word (slot `s`: bit `8 s + 7`). Exact for the lowest
/// match; a higher byte may show a false match (a borrow), which the key
/// comparison that follows rejects, as it rejects tag collisions.
#[inline]
pub(crate) fn tag_matches(tags: u64, tag: u64) -> u64 {
    let x = tags ^ tag.wrapping_mul(TAG_LOW);
    x.wrapping_sub(TAG_LOW) & !x & TAG_HIGH
}

/// The tag of slot `s` in a tag word.
#[inline]
pub(crate) fn tag_in(tags: u64, s: usize) -> u64 {
    (tags >> (8 * s)) & 0xff
}

const PORT_MASK: u64 = 0xFFFF;
const NOT_LIVE_PORT: u64 = PORT_MASK;
const FLAG_BIT: u64 = 1 << 16;
const GEN_SHIFT: u32 = 17;
const GEN_MASK: u64 = (1 << 7) - 1;
const TIME_SHIFT: u32 = 24;
pub(crate) const TIME_BITS: u32 = 40;
pub(crate) const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// Largest ageing time that wrapping 40-bit time differences can express.
pub(crate) const MAX_SPAN_MS: u64 = (1 << (TIME_BITS - 1)) - 1;

/// A value word. The generation counts the slot's lives (one per key that
/// claimed it), so that a compare-and-swap prepared against one life can
/// never land in a later life of the same slot (the ABA problem).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Val(pub(crate) u64);

impl Val {
    /// The value of a never-used slot.
    pub(crate) const INIT: Val = Val::dead(0);

    #[inline]
    pub(crate) const fn dead(gen: u64) -> Val {
        Val(NOT_LIVE_PORT | ((gen & GEN_MASK) << GEN_SHIFT))
    }

    #[inline]
    pub(crate) const fn pending(gen: u64) -> Val {
        Val(NOT_LIVE_PORT | FLAG_BIT | ((gen & GEN_MASK) << GEN_SHIFT))
    }

    /// `port` must not be `u16::MAX` (checked by the callers).
    #[inline]
    pub(crate) const fn live(gen: u64, port: u16, is_static: bool, time: u64) -> Val {
        let flag = if is_static { FLAG_BIT } else { 0 };
        Val(port as u64
            | flag
            | ((gen & GEN_MASK) << GEN_SHIFT)
            | ((time & TIME_MASK) << TIME_SHIFT))
    }

    #[inline]
    pub(crate) const fn is_live(self) -> bool {
        self.0 & PORT_MASK != NOT_LIVE_PORT
    }

    #[inline]
    pub(crate) const fn is_pending(self) -> bool {
        !self.is_live() && self.0 & FLAG_BIT != 0
    }

    #[inline]
    pub(crate) const fn port(self) -> u16 {
        (self.0 & PORT_MASK) as u16
    }

    /// Meaningful only for live values.
    #[inline]
    pub(crate) const fn is_static(self) -> bool {
        self.0 & FLAG_BIT != 0
    }

    #[inline]
    pub(crate) const fn gen(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }

    #[inline]
    pub(crate) const fn time(self) -> u64 {
        self.0 >> TIME_SHIFT
    }

    /// Same life and port, new time (a refresh).
    #[inline]
    pub(crate) const fn with_time(self, time: u64) -> Val {
        Val((self.0 & ((1 << TIME_SHIFT) - 1)) | ((time & TIME_MASK) << TIME_SHIFT))
    }
}

/// Signed difference `a - b` of two 40-bit wrapped times: correct whatever
/// epoch the caller's clock has, as long as the real difference is within
/// +/- 2^39 ms (17 years).
#[inline]
pub(crate) fn time_diff(a: u64, b: u64) -> i64 {
    let d = a.wrapping_sub(b) & TIME_MASK;
    // Sign-extend from 40 bits.
    ((d << (64 - TIME_BITS)) as i64) >> (64 - TIME_BITS)
}

/// Rebuilds a full millisecond time from its low 40 bits, taking the value
/// nearest to `reference` (a recent full time).
#[inline]
pub(crate) fn expand_time(reference: u64, low: u64) -> u64 {
    let d = time_diff(low, reference & TIME_MASK);
    reference.checked_add_signed(d).unwrap_or(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip_and_never_free() {
        for (net, mac) in [
            (0u16, [0u8; 6]),
            (u16::MAX, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (7, [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
        ] {
            let k = encode_key(net, &mac);
            assert_ne!(k, FREE);
            assert_eq!(decode_key(k), (net, mac));
        }
    }

    #[test]
    fn group_bit() {
        assert!(is_group(&[0xff; 6]));
        assert!(is_group(&[0x01, 0x00, 0x5e, 0, 0, 1]));
        assert!(is_group(&[0x33, 0x33, 0, 0, 0, 1]));
        assert!(!is_group(&[0x02, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn value_states() {
        let d = Val::dead(5);
        assert!(!d.is_live() && !d.is_pending());
        assert_eq!(d.gen(), 5);
        let p = Val::pending(6);
        assert!(!p.is_live() && p.is_pending());
        assert_eq!(p.gen(), 6);
        let l = Val::live(127, 0xFFFE, true, TIME_MASK);
        assert!(l.is_live() && !l.is_pending() && l.is_static());
        assert_eq!((l.port(), l.gen(), l.time()), (0xFFFE, 127, TIME_MASK));
        let l = Val::live(128, 0, false, 12345);
        assert_eq!(
            (l.port(), l.gen(), l.time(), l.is_static()),
            (0, 0, 12345, false)
        );
        let r = l.with_time(99);
        assert_eq!((r.port(), r.gen(), r.time()), (0, 0, 99));
        assert!(Val::INIT.0 != 0 && !Val::INIT.is_live());
    }

    #[test]
    fn wrapping_time() {
        assert_eq!(time_diff(10, 3), 7);
        assert_eq!(time_diff(3, 10), -7);
        assert_eq!(time_diff(2, TIME_MASK), 3);
        assert_eq!(time_diff(TIME_MASK, 2), -3);
        let epoch_ms = 1_764_000_000_000u64; // a wall-clock epoch, > 2^40
        assert_eq!(
            expand_time(epoch_ms, (epoch_ms - 5000) & TIME_MASK),
            epoch_ms - 5000
        );
        assert_eq!(
            expand_time(epoch_ms, (epoch_ms + 5000) & TIME_MASK),
            epoch_ms + 5000
        );
        assert_eq!(expand_time(0, 42), 42);
    }

    #[test]
    fn hash_spreads_sequential_macs_and_networks() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..4096u16 {
            let [a, b] = i.to_be_bytes();
            let k = encode_key(1, &[0x02, 0, 0, 0, a, b]);
            seen.insert(bucket_of(hash(k), 64 - 12));
        }
        // A random function fills about 63% of 4096 buckets with 4096 keys.
        assert!(seen.len() > 2400, "{}", seen.len());
        let nets: std::collections::HashSet<_> = (0..4096u16)
            .map(|n| bucket_of(hash(encode_key(n, &[0x02, 0, 0, 0, 0, 1])), 64 - 12))
            .collect();
        assert!(nets.len() > 2400, "{}", nets.len());
        let ouis: std::collections::HashSet<_> = (0..4096u16)
            .map(|i| {
                let [a, b] = i.to_be_bytes();
                bucket_of(hash(encode_key(1, &[a << 2, b, 0, 0, 0, 1])), 64 - 12)
            })
            .collect();
        assert!(ouis.len() > 2400, "{}", ouis.len());
    }

    #[test]
    fn tags_spread_and_match() {
        let tags: std::collections::HashSet<_> = (0..4096u16)
            .map(|i| {
                let [a, b] = i.to_be_bytes();
                tag_of(hash(encode_key(1, &[0x02, 0, 0, 0, a, b])))
            })
            .collect();
        assert_eq!(tags.len(), 128);
        assert!(tags.iter().all(|&t| (0x80..=0xff).contains(&t)));
        // Slots 0..6 hold tags 0x80..0x86; byte 7 is never a slot.
        let word = (0..7u64).fold(0, |w, s| w | ((0x80 + s) << (8 * s)));
        for s in 0..7u64 {
            assert_eq!(tag_in(word, s as usize), 0x80 + s);
            let m = tag_matches(word, 0x80 + s);
            assert_eq!(m.trailing_zeros() as u64, 8 * s + 7, "{m:x}");
        }
        assert_eq!(tag_matches(word, 0xff), 0);
        assert_eq!(tag_matches(0, 0x80), 0, "a never-used slot matches nothing");
    }
}
