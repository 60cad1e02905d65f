//! storm: storm control per ingress port (`[[storm]]`, docs/storm.md).
//! Broadcast, multicast and unknown-unicast frames that forward decided
//! to flood pass at most at their class's rate; the excess is dropped as
//! `storm_broadcast`, `storm_multicast`, `storm_unknown_unicast`.
//!
//! Once per class and batch, after forward: count the batch's frames of
//! the class, take that many from the class's bucket at once, and drop the
//! last frames of the class that found no token. A port without storm
//! control costs one load per batch.
//!
//! The bucket is GCRA (the "virtual scheduling" form of a token bucket):
//! one word, the theoretical arrival time `tat` of the next frame. A frame
//! passes while `tat <= now + burst`; each frame that passes moves `tat`
//! on by `1 / rate`. Taking `n` frames is one compare-and-swap of that
//! word, so the workers of a multi-queue port share one limit without a
//! lock, and the bucket is full again after `burst` without traffic. Time
//! is the worker's clock of the batch (milliseconds since the switch
//! started), never read here.

use super::{Batch, Context, Verdict, BATCH};
use crate::config::{StormCfg, StormRate, Topology};
use crate::counters::{DropReason, FloodCause};
use crate::ids::{PortId, MAX_PORTS};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// One class's bucket. `interval_ns == 0`: the class is not limited.
#[derive(Default)]
struct Bucket {
    /// Nanoseconds per frame at the rate (`u64::MAX` for a rate of 0).
    interval_ns: AtomicU64,
    /// The bucket's depth as time at the rate (at least one frame's).
    burst_ns: AtomicU64,
    /// When the next frame is due, in nanoseconds of the batch clock.
    tat_ns: AtomicU64,
}

impl Bucket {
    fn set(&self, rate: Option<StormRate>) {
        let (interval, burst) = match rate {
            None => (0, 0),
            Some(r) => {
                let interval = match r.per_sec {
                    0 => u64::MAX,
                    n => (1_000_000_000 / n).max(1),
                };
                (interval, r.burst_ns.max(interval.min(1_000_000_000)))
            }
        };
        // A new limit starts with a full bucket.
        self.tat_ns.store(0, Relaxed);
        self.burst_ns.store(burst, Relaxed);
        self.interval_ns.store(interval, Relaxed);
    }

    /// Takes up to `n` frames' tokens at `now_ns`; returns how many it got.
    #[inline]
    fn take(&self, n: u64, now_ns: u64) -> u64 {
        let interval = self.interval_ns.load(Relaxed);
        if interval == 0 {
            return n;
        }
        let burst = self.burst_ns.load(Relaxed);
        let mut tat = self.tat_ns.load(Relaxed);
        loop {
            let start = tat.max(now_ns);
            let room = now_ns.saturating_add(burst).saturating_sub(start);
            let k = (room / interval).min(n);
            if k == 0 {
                // At the limit: no shared write.
                return 0;
            }
            let next = start.saturating_add(k * interval);
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Relaxed, Relaxed)
            {
                Ok(_) => return k,
                Err(t) => tat = t,
            }
        }
    }

    /// How many of `n` frames [`Bucket::take`] would let through at
    /// `now_ns`, taking nothing (a dry run).
    #[inline]
    fn peek(&self, n: u64, now_ns: u64) -> u64 {
        let interval = self.interval_ns.load(Relaxed);
        if interval == 0 {
            return n;
        }
        let start = self.tat_ns.load(Relaxed).max(now_ns);
        let room = now_ns
            .saturating_add(self.burst_ns.load(Relaxed))
            .saturating_sub(start);
        (room / interval).min(n)
    }

    fn rate(&self) -> Option<StormRate> {
        match self.interval_ns.load(Relaxed) {
            0 => None,
            u64::MAX => Some(StormRate {
                per_sec: 0,
                burst_ns: self.burst_ns.load(Relaxed),
            }),
            i => Some(StormRate {
                per_sec: 1_000_000_000 / i,
                burst_ns: self.burst_ns.load(Relaxed),
            }),
        }
    }
}

/// A port's buckets, one line of its own.
#[repr(align(64))]
#[derive(Default)]
struct PortStorm {
    on: AtomicBool,
    class: [Bucket; 3],
}

/// Storm control of every port: shared by the workers (the buckets are
/// atomics), set by the control path (the topology, `shunt storm`).
pub struct Storm {
    ports: Box<[PortStorm]>,
}

impl Default for Storm {
    fn default() -> Self {
        Self::new()
    }
}

impl Storm {
    pub fn new() -> Storm {
        Storm {
            ports: (0..MAX_PORTS).map(|_| PortStorm::default()).collect(),
        }
    }

    /// As the topology's `[[storm]]` tables say (a later table for a port
    /// replaces an earlier one's limits).
    pub fn from_topology(t: &Topology) -> Storm {
        let s = Storm::new();
        s.apply(&t.storm);
        s
    }

    /// Sets every port named in `cfgs`; other ports keep what they had.
    pub fn apply(&self, cfgs: &[StormCfg]) {
        for c in cfgs {
            for &p in &c.ports {
                if let Some(id) = PortId::new(p) {
                    self.set(id, c.rates);
                }
            }
        }
    }

    /// Sets port `p`'s limits, per class by `FloodCause as usize` (None:
    /// not limited; all None: storm control off on the port).
    pub fn set(&self, p: PortId, rates: [Option<StormRate>; 3]) {
        let Some(ps) = self.ports.get(p.index()) else {
            return;
        };
        ps.on.store(false, Relaxed);
        for (b, r) in ps.class.iter().zip(rates) {
            b.set(r);
        }
        ps.on.store(rates.iter().any(Option::is_some), Relaxed);
    }

    /// Port `p`'s limits now (all None: off).
    pub fn get(&self, p: PortId) -> [Option<StormRate>; 3] {
        match self.ports.get(p.index()) {
            Some(ps) if ps.on.load(Relaxed) => std::array::from_fn(|c| ps.class[c].rate()),
            _ => [None; 3],
        }
    }
}

/// The storm class of a decided verdict: frames forward floods.
#[inline]
fn class(v: Verdict) -> Option<FloodCause> {
    match v {
        Verdict::Flood(c) | Verdict::Macvlan { cause: c, .. } => Some(c),
        _ => None,
    }
}

/// The drop reason of a class's excess.
pub fn reason(c: FloodCause) -> DropReason {
    match c {
        FloodCause::Broadcast => DropReason::StormBroadcast,
        FloodCause::Multicast => DropReason::StormMulticast,
        FloodCause::UnknownUnicast => DropReason::StormUnknownUnicast,
    }
}

/// Storm control over a batch from `ingress`, after forward.
#[inline]
pub fn run(ctx: &Context, ingress: PortId, batch: &mut Batch, now_ms: u64) {
    // The one check a port without storm control pays.
    let Some(ps) = ctx.guard.storm.ports.get(ingress.index()) else {
        return;
    };
    if !ps.on.load(Relaxed) {
        return;
    }
    let n = batch.count.min(BATCH);
    let mut want = [0u64; 3];
    for m in &batch.meta[..n] {
        if let Some(c) = class(m.verdict) {
            want[c as usize] += 1;
        }
    }
    let now_ns = now_ms.saturating_mul(1_000_000);
    let mut got = [0u64; 3];
    for c in FloodCause::ALL {
        let i = c as usize;
        if want[i] > 0 {
            got[i] = match ctx.dry {
                false => ps.class[i].take(want[i], now_ns),
                true => ps.class[i].peek(want[i], now_ns),
            };
        }
    }
    if got == want {
        return;
    }
    let pc = ctx.counters.port(ingress.into());
    let mut seen = [0u64; 3];
    for m in &mut batch.meta[..n] {
        let Some(c) = class(m.verdict) else { continue };
        let i = c as usize;
        seen[i] += 1;
        if seen[i] > got[i] {
            m.verdict = Verdict::Drop(reason(c));
        }
    }
    // egress counts the drops under their reason; forward counted these
    // frames as flooded, and they were not.
    for i in 0..3 {
        if want[i] > got[i] {
            pc.flooded[i].sub(want[i] - got[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_sec: u64, burst_ns: u64) -> Option<StormRate> {
        Some(StormRate { per_sec, burst_ns })
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let b = Bucket::default();
        b.set(rate(1000, 100_000_000)); // 100 frames of depth
        let t0 = 5_000_000_000;
        assert_eq!(b.take(64, t0), 64);
        assert_eq!(b.take(64, t0), 36);
        assert_eq!(b.take(64, t0), 0);
        // 10 ms later: 10 frames.
        assert_eq!(b.take(64, t0 + 10_000_000), 10);
        // A second of quiet fills it to its depth, no more.
        assert_eq!(b.take(1000, t0 + 2_000_000_000), 100);
        // Over a long run: burst + rate * time.
        let mut total = 0;
        for ms in 0..5000u64 {
            total += b.take(64, t0 + 3_000_000_000 + ms * 1_000_000);
        }
        assert!((5090..=5101).contains(&total), "{total}");
    }

    #[test]
    fn rate_zero_drops_all_and_none_passes_all() {
        let b = Bucket::default();
        b.set(rate(0, 1_000_000_000));
        assert_eq!(b.take(64, 1_000_000_000), 0);
        b.set(None);
        assert_eq!(b.take(64, 0), 64);
        // A depth shorter than one frame's interval still lets one through.
        b.set(rate(1, 1_000_000));
        assert_eq!(b.peek(5, 3_000_000_000), 1);
        assert_eq!(b.peek(5, 3_000_000_000), 1, "a peek takes nothing");
        assert_eq!(b.take(5, 3_000_000_000), 1);
        assert_eq!(b.peek(5, 3_000_000_000), 0);
    }

    #[test]
    fn limits_read_back() {
        let s = Storm::new();
        let p = PortId::new(3).expect("port 3");
        assert_eq!(s.get(p), [None; 3]);
        s.set(p, [rate(1000, 1_000_000_000), None, rate(0, 1_000_000_000)]);
        let got = s.get(p);
        assert_eq!(got[0].map(|r| r.per_sec), Some(1000));
        assert_eq!(got[1], None);
        assert_eq!(got[2].map(|r| r.per_sec), Some(0));
        s.set(p, [None; 3]);
        assert_eq!(s.get(p), [None; 3]);
    }
}
