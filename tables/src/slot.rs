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

/// The bucket index of `key` among `1 << (64 - shift)` buckets: the high
/// bits of murmur3's fmix64 finaliser. Every key bit reaches them, so MACs
/// that differ only in the last octet, only in the OUI, or keys that differ
/// only in the network spread evenly. (A single multiply, Fibonacci-style,
/// was ~1 ns faster but clustered OUI-only differences: see the test.)
#[inline]
pub(crate) fn bucket_of(key: u64, shift: u32) -> usize {
    let mut h = key;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> shift) as usize
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
            seen.insert(bucket_of(k, 64 - 12));
        }
        // A random function fills about 63% of 4096 buckets with 4096 keys.
        assert!(seen.len() > 2400, "{}", seen.len());
        let nets: std::collections::HashSet<_> = (0..4096u16)
            .map(|n| bucket_of(encode_key(n, &[0x02, 0, 0, 0, 0, 1]), 64 - 12))
            .collect();
        assert!(nets.len() > 2400, "{}", nets.len());
        let ouis: std::collections::HashSet<_> = (0..4096u16)
            .map(|i| {
                let [a, b] = i.to_be_bytes();
                bucket_of(encode_key(1, &[a << 2, b, 0, 0, 0, 1]), 64 - 12)
            })
            .collect();
        assert!(ouis.len() > 2400, "{}", ouis.len());
    }
}
