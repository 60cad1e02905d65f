//! One line: one direction of one port in one worker. It decides each
//! frame's fate (lost, sent now, held) with its own seeded randomness, and
//! holds frames in a bounded queue until they are due.
//!
//! The queue is a calendar of one bucket: due times never decrease (a
//! frame is never due before the one held before it, so jitter does not
//! reorder), which makes it a FIFO whose head is the next frame due. The
//! worker looks at the head once per loop turn (no timer, no system call
//! per frame) and sleeps in poll(2) until the head is due. Frames are
//! copied into an arena of `limit_bytes`, taken when the line is made,
//! with room for `limit` descriptors: a frame that finds no room is
//! dropped (`impair_queue_full`), never queued in memory taken later.
//!
//! Fates, per frame, in netem's order: duplicated (a second copy), lost
//! (one copy less; none left: `impair_loss`), and for each copy left:
//! reordered (sent now, ahead of the held ones, without its delay),
//! corrupted (one bit of the payload flipped in the held copy), or held
//! for its delay and the rate (a token bucket one frame deep: a frame
//! starts when the one before it has gone, and takes its bytes' time at
//! the rate).

use super::rng::{threshold, Rng};
use super::{Distribution, LineCounters, Loss, Spec};
use crate::ids::Egress;
use shunt_parsers::virtio_net::Offload;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What to do with one copy of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Send it now, as it is.
    Now,
    /// Hold it (see [`Line::hold`]), corrupted or not.
    Hold { corrupt: bool },
}

/// A frame's fate: `n` copies (0: lost), each with its fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub n: usize,
    pub fates: [Fate; 2],
}

/// A held frame that is due.
pub struct Held<'a> {
    pub bytes: &'a [u8],
    pub off: Offload,
    pub to: Egress,
}

/// The probabilities of a spec, as integer thresholds.
#[derive(Debug, Clone, Copy)]
struct Odds {
    duplicate: u64,
    reorder: u64,
    corrupt: u64,
    loss: LossOdds,
}

#[derive(Debug, Clone, Copy)]
enum LossOdds {
    None,
    Random(u64),
    Gilbert { p: u64, r: u64, bad: u64, good: u64 },
}

impl Odds {
    fn of(s: &Spec) -> Odds {
        Odds {
            duplicate: threshold(s.duplicate),
            reorder: threshold(s.reorder),
            corrupt: threshold(s.corrupt),
            loss: match s.loss {
                Loss::None => LossOdds::None,
                Loss::Random(p) => LossOdds::Random(threshold(p)),
                Loss::Gilbert { p, r, bad, good } => LossOdds::Gilbert {
                    p: threshold(p),
                    r: threshold(r),
                    bad: threshold(bad),
                    good: threshold(good),
                },
            },
        }
    }
}

pub struct Line {
    spec: Spec,
    odds: Odds,
    rng: Rng,
    /// Gilbert-Elliott: in the bad state.
    bad: bool,
    /// The due time of the last frame held (none is due before it).
    last_due: u64,
    /// When the rate lets the next frame start: shared by every worker's
    /// line of the same port and direction (`Shared::pace`), so that the
    /// rate is the port's, whichever workers send to it.
    next_free: Arc<AtomicU64>,
    q: Queue,
    /// Limits of a new spec, applied once the queue is empty.
    resize: Option<(u32, u32)>,
}

impl Line {
    /// A line for `spec`, drawing from `seed`; its arena is taken here.
    pub fn new(spec: Spec, seed: u64) -> Line {
        Line {
            odds: Odds::of(&spec),
            rng: Rng::new(seed),
            bad: false,
            last_due: 0,
            next_free: Arc::new(AtomicU64::new(0)),
            q: Queue::new(spec.limit as usize, spec.limit_bytes as usize),
            resize: None,
            spec,
        }
    }

    /// The same line, its rate's clock shared with other lines (the other
    /// workers' lines of its port and direction).
    pub fn paced_by(mut self, pace: Arc<AtomicU64>) -> Line {
        self.next_free = pace;
        self
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// A new spec, keeping the frames held (they keep their due times:
    /// what the new setting still allows is not dropped). New limits take
    /// effect once the queue is empty.
    pub fn respec(&mut self, spec: Spec, seed: u64) {
        if (spec.limit, spec.limit_bytes) != (self.spec.limit, self.spec.limit_bytes) {
            self.resize = Some((spec.limit, spec.limit_bytes));
        }
        self.odds = Odds::of(&spec);
        self.rng = Rng::new(seed);
        self.bad = false;
        self.spec = spec;
        self.maybe_resize();
    }

    fn maybe_resize(&mut self) {
        if self.q.is_empty() {
            if let Some((f, b)) = self.resize.take() {
                self.q = Queue::new(f as usize, b as usize);
            }
        }
    }

    /// Frames held now.
    pub fn held(&self) -> usize {
        self.q.len
    }

    /// When the next held frame is due.
    #[inline]
    pub fn next_due(&self) -> Option<u64> {
        self.q.head().map(|d| d.due)
    }

    /// Whether a frame is lost (and the Gilbert-Elliott state moves).
    fn lost(&mut self) -> bool {
        match self.odds.loss {
            LossOdds::None => false,
            LossOdds::Random(t) => self.rng.chance(t),
            LossOdds::Gilbert { p, r, bad, good } => {
                // As netem: the state the frame meets decides, then moves.
                let lost = if self.bad {
                    self.rng.chance(bad)
                } else {
                    self.rng.chance(good)
                };
                let flip = if self.bad { r } else { p };
                if self.rng.chance(flip) {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }

    /// Decides the fate of the next frame. Counts the lost, duplicated,
    /// reordered and corrupted ones in `c`.
    pub fn decide(&mut self, c: &LineCounters) -> Decision {
        let mut n = 1;
        if self.rng.chance(self.odds.duplicate) {
            n += 1;
            c.duplicated.add(1);
        }
        if self.lost() {
            n -= 1;
            c.lost.add(1);
        }
        let mut fates = [Fate::Now; 2];
        let holds = self.spec.holds();
        for (k, f) in fates.iter_mut().enumerate().take(n) {
            if (holds || !self.q.is_empty()) && self.rng.chance(self.odds.reorder) {
                c.reordered.add(1);
                continue;
            }
            let corrupt = k == 0 && self.rng.chance(self.odds.corrupt);
            if corrupt {
                c.corrupted.add(1);
            }
            // Behind frames still held, a frame waits its turn: nothing
            // overtakes them unless reordered.
            if corrupt || holds || !self.q.is_empty() {
                *f = Fate::Hold { corrupt };
            }
        }
        Decision { n, fates }
    }

    /// This frame's delay: the delay and a draw of the jitter (never
    /// below zero).
    fn delay(&mut self) -> u64 {
        let s = &self.spec;
        if s.jitter_ns == 0 {
            return s.delay_ns;
        }
        let x = match s.distribution {
            Distribution::Uniform => 2.0 * self.rng.unit() - 1.0,
            Distribution::Normal => self.rng.normal(),
            Distribution::Pareto => self.rng.pareto(),
            Distribution::ParetoNormal => 0.25 * self.rng.normal() + 0.75 * self.rng.pareto(),
        };
        let d = s.delay_ns as f64 + s.jitter_ns as f64 * x;
        d.max(0.0) as u64
    }

    /// Holds a copy gathered from `parts`, due after the rate and the
    /// delay; `corrupt`: one bit of its payload flipped. False when the
    /// queue has no room (nothing changed then: the caller drops it as
    /// `impair_queue_full`).
    pub fn hold(
        &mut self,
        now: u64,
        parts: &[&[u8]],
        off: Offload,
        to: Egress,
        corrupt: bool,
        c: &LineCounters,
    ) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let Some(at) = self.q.reserve(len) else {
            c.queue_full.add(1);
            return false;
        };
        let buf = &mut self.q.bytes[at..at + len];
        let mut o = 0;
        for p in parts {
            buf[o..o + p.len()].copy_from_slice(p);
            o += p.len();
        }
        if corrupt {
            flip_a_payload_bit(buf, &mut self.rng);
        }
        let wire = wire_len(buf, &off);
        let mut t = now;
        if self.spec.rate_bps > 0 {
            let tx = (wire as u128 * 8_000_000_000 / u128::from(self.spec.rate_bps)) as u64;
            // Take the next slot of the port's timeline: a compare-and-swap
            // (lock-free), contended only when two workers send to one
            // rate-limited port at once.
            let mut cur = self.next_free.load(Relaxed);
            loop {
                let start = t.max(cur);
                match self
                    .next_free
                    .compare_exchange_weak(cur, start + tx, Relaxed, Relaxed)
                {
                    Ok(_) => {
                        t = start + tx;
                        break;
                    }
                    Err(now_there) => cur = now_there,
                }
            }
        }
        let due = (t + self.delay()).max(self.last_due);
        self.last_due = due;
        self.q.push(Desc {
            due,
            at: at as u32,
            len: len as u32,
            off,
            to,
        });
        c.delayed.add(1);
        self.gauge(c);
        true
    }

    fn gauge(&self, c: &LineCounters) {
        c.queued_frames.store(self.q.len as u64, Relaxed);
        c.queued_bytes.store(self.q.bytes_held as u64, Relaxed);
    }

    /// Hands the frames due by `now` to `send`, oldest first, at most
    /// `max`. Returns how many.
    pub fn serve(
        &mut self,
        now: u64,
        max: usize,
        c: &LineCounters,
        mut send: impl FnMut(Held<'_>),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Some(d) = self.q.head().copied() else {
                break;
            };
            if d.due > now {
                break;
            }
            let bytes = &self.q.bytes[d.at as usize..(d.at + d.len) as usize];
            send(Held {
                bytes,
                off: d.off,
                to: d.to,
            });
            self.q.pop();
            n += 1;
        }
        if n > 0 {
            self.gauge(c);
            self.maybe_resize();
        }
        n
    }
}

/// The bytes a frame takes on the wire: a GSO super-frame's segments each
/// carry the headers again (the rate counts what the host would have sent
/// had it not offloaded segmentation).
fn wire_len(frame: &[u8], off: &Offload) -> usize {
    if !off.gso.is_some() {
        return frame.len();
    }
    match shunt_parsers::gso::Segmenter::new(frame, off) {
        Ok(s) if s.count > 1 => frame.len() + (s.count - 1) * s.payload,
        _ => frame.len(),
    }
}

/// Flips one bit of the frame's payload (after the Ethernet header; the
/// checksums are left as they are, so a receiver sees a bad one).
fn flip_a_payload_bit(frame: &mut [u8], rng: &mut Rng) {
    let Ok(mut f) = shunt_parsers::ethernet::EthernetFrame::new_checked(frame) else {
        return;
    };
    let p = f.payload_mut();
    if p.is_empty() {
        return;
    }
    let i = rng.below(p.len());
    p[i] ^= 1 << rng.below(8);
}

/// A held frame: when it is due, where its bytes are, what it carries.
#[derive(Debug, Clone, Copy)]
struct Desc {
    due: u64,
    at: u32,
    len: u32,
    off: Offload,
    to: Egress,
}

/// A FIFO of descriptors over a byte ring, both sized once.
struct Queue {
    desc: Box<[Option<Desc>]>,
    head: usize,
    len: usize,
    bytes: Box<[u8]>,
    /// Where the oldest frame's bytes start, and the next frame's go.
    bhead: usize,
    btail: usize,
    /// The newest frames wrapped to the start, before `bhead`.
    wrapped: bool,
    bytes_held: usize,
}

impl Queue {
    fn new(frames: usize, bytes: usize) -> Queue {
        Queue {
            desc: vec![None; frames.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            // Zeroed: the pages become memory only as frames fill them.
            bytes: vec![0u8; bytes].into_boxed_slice(),
            bhead: 0,
            btail: 0,
            wrapped: false,
            bytes_held: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn head(&self) -> Option<&Desc> {
        if self.len == 0 {
            return None;
        }
        self.desc[self.head].as_ref()
    }

    /// Room for `n` bytes and a descriptor: where the bytes go.
    fn reserve(&mut self, n: usize) -> Option<usize> {
        if self.len == self.desc.len() {
            return None;
        }
        if self.len == 0 {
            (self.bhead, self.btail, self.wrapped) = (0, 0, false);
        }
        let cap = self.bytes.len();
        if !self.wrapped {
            if cap - self.btail >= n {
                return Some(self.btail);
            }
            // The end is too short: start again at 0, before the oldest.
            if self.bhead >= n {
                self.wrapped = true;
                self.btail = 0;
                return Some(0);
            }
            return None;
        }
        (self.bhead - self.btail >= n).then_some(self.btail)
    }

    /// Appends `d`, whose bytes `reserve` placed.
    fn push(&mut self, d: Desc) {
        let i = (self.head + self.len) % self.desc.len();
        self.btail = (d.at + d.len) as usize;
        self.bytes_held += d.len as usize;
        self.desc[i] = Some(d);
        self.len += 1;
    }

    fn pop(&mut self) {
        let Some(d) = self.desc[self.head].take() else {
            return;
        };
        self.bytes_held -= d.len as usize;
        self.head = (self.head + 1) % self.desc.len();
        self.len -= 1;
        match self.head() {
            None => (self.bhead, self.btail, self.wrapped) = (0, 0, false),
            Some(next) => {
                let at = next.at as usize;
                // The next oldest is at the start: the end is all free.
                if self.wrapped && at < self.bhead {
                    self.wrapped = false;
                }
                self.bhead = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::Settings;

    const P: Egress = Egress::Stack;

    fn spec(f: impl FnOnce(&mut Settings)) -> Spec {
        let mut s = Settings::default();
        f(&mut s);
        s.spec().expect("a valid spec")
    }

    /// A 100-byte frame numbered `n` (in its last 4 bytes).
    fn frame(n: u32) -> Vec<u8> {
        let mut f = vec![0u8; 100];
        f[12] = 0x08;
        f[96..].copy_from_slice(&n.to_be_bytes());
        f
    }

    fn number(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[96..100].try_into().expect("4 bytes"))
    }

    /// Runs `n` frames one per `gap` ns through a line; returns (frame
    /// number, time sent) of what came out, in order.
    fn run(line: &mut Line, n: u32, gap: u64) -> Vec<(u32, u64)> {
        let c = LineCounters::default();
        let mut out = Vec::new();
        let mut now = 0;
        for i in 0..n {
            now = u64::from(i) * gap;
            line.serve(now, usize::MAX, &c, |h| out.push((number(h.bytes), now)));
            let d = line.decide(&c);
            for f in &d.fates[..d.n] {
                match *f {
                    Fate::Now => out.push((i, now)),
                    Fate::Hold { corrupt } => {
                        let b = frame(i);
                        line.hold(now, &[&b], Offload::NONE, P, corrupt, &c);
                    }
                }
            }
        }
        while let Some(due) = line.next_due() {
            now = now.max(due);
            line.serve(now, usize::MAX, &c, |h| out.push((number(h.bytes), now)));
        }
        out
    }

    #[test]
    fn delay_is_exact_and_jitter_never_reorders() {
        let mut l = Line::new(spec(|s| s.delay = Some("20ms".into())), 1);
        for (i, (n, t)) in run(&mut l, 100, 1_000_000).into_iter().enumerate() {
            assert_eq!(n as usize, i);
            assert_eq!(t, u64::from(n) * 1_000_000 + 20_000_000);
        }
        for dist in ["uniform", "normal", "pareto", "paretonormal"] {
            let mut l = Line::new(
                spec(|s| {
                    s.delay = Some("20ms".into());
                    s.jitter = Some("10ms".into());
                    s.distribution = Some(dist.into());
                }),
                2,
            );
            let out = run(&mut l, 1000, 1_000_000);
            assert_eq!(out.len(), 1000);
            assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "{dist} reordered");
            let delays: Vec<f64> = out
                .iter()
                .map(|&(n, t)| (t - u64::from(n) * 1_000_000) as f64 / 1e6)
                .collect();
            let spread = delays.iter().cloned().fold(0.0, f64::max)
                - delays.iter().cloned().fold(f64::MAX, f64::min);
            assert!(spread > 5.0, "{dist}: jitter made no spread ({spread} ms)");
        }
    }

    #[test]
    fn loss_is_within_bounds_and_repeats_with_the_seed() {
        let s = spec(|s| {
            s.loss = Some("10%".into());
            s.seed = Some(5);
        });
        let got = |seed| {
            let mut l = Line::new(s, seed);
            run(&mut l, 10_000, 1000)
                .into_iter()
                .map(|x| x.0)
                .collect::<Vec<_>>()
        };
        let a = got(5);
        let lost = 10_000 - a.len();
        // Three standard deviations: sqrt(10000 * 0.1 * 0.9) = 30.
        assert!((910..=1090).contains(&lost), "{lost} lost");
        assert_eq!(a, got(5), "the same seed loses the same frames");
        assert_ne!(a, got(6));
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        // Enter the bad state with 1%, leave with 10%: bursts of about 10.
        let s = spec(|s| s.loss = Some("gemodel 1% 10%".into()));
        let mut l = Line::new(s, 9);
        let out: Vec<u32> = run(&mut l, 100_000, 1000)
            .into_iter()
            .map(|x| x.0)
            .collect();
        let lost = 100_000 - out.len();
        // In the bad state 1/11 of the time: about 9,100 lost.
        assert!((7000..=11_000).contains(&lost), "{lost}");
        let gaps: Vec<u32> = out
            .windows(2)
            .map(|w| w[1] - w[0] - 1)
            .filter(|&g| g > 0)
            .collect();
        let mean = gaps.iter().sum::<u32>() as f64 / gaps.len() as f64;
        assert!((7.0..13.0).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn rate_paces_and_the_queue_is_bounded() {
        // 100-byte frames at 8 Mbit/s: 100 us each. Offered every 50 us.
        let s = spec(|s| {
            s.rate = Some("8mbit".into());
            s.limit = Some(10);
        });
        let mut l = Line::new(s, 1);
        let c = LineCounters::default();
        let out = run(&mut l, 1000, 50_000);
        // The queue holds 10: about half the frames are dropped.
        assert!((480..=520).contains(&out.len()), "{}", out.len());
        assert!(out.windows(2).all(|w| w[1].1 - w[0].1 >= 100_000 - 50_000));
        let _ = c;
        // Offered below the rate, nothing is lost, each takes 100 us.
        let mut l = Line::new(s, 1);
        let out = run(&mut l, 100, 200_000);
        assert_eq!(out.len(), 100);
        assert!(out
            .iter()
            .all(|&(n, t)| t - u64::from(n) * 200_000 <= 200_000));
    }

    /// Two workers' lines of one port (sharing its pace) together keep to
    /// the port's rate, not twice it.
    #[test]
    fn two_lines_of_a_port_share_its_rate() {
        // 100-byte frames at 8 Mbit/s: 100 us each; each line offered one
        // every 100 us, so together twice the rate.
        let s = spec(|s| {
            s.rate = Some("8mbit".into());
            s.limit = Some(1000);
        });
        let pace = Arc::new(AtomicU64::new(0));
        let mut a = Line::new(s, 1).paced_by(Arc::clone(&pace));
        let mut b = Line::new(s, 2).paced_by(Arc::clone(&pace));
        let c = LineCounters::default();
        let mut sent = Vec::new();
        for i in 0..400u32 {
            let now = u64::from(i) * 100_000;
            for l in [&mut a, &mut b] {
                l.serve(now, usize::MAX, &c, |_| sent.push(now));
                assert!(l.hold(now, &[&frame(i)], Offload::NONE, P, false, &c));
            }
        }
        // After 40 ms at 100 us a frame: about 400 of the 800 out.
        assert!((395..=405).contains(&sent.len()), "{}", sent.len());
        // Unshared, each line would have sent its 400 at its own rate.
        let mut lone = Line::new(s, 1);
        let mut n = 0;
        for i in 0..400u32 {
            let now = u64::from(i) * 100_000;
            lone.serve(now, usize::MAX, &c, |_| n += 1);
            assert!(lone.hold(now, &[&frame(i)], Offload::NONE, P, false, &c));
        }
        assert!(n >= 395, "{n}");
    }

    #[test]
    fn duplicate_reorder_corrupt() {
        let s = spec(|s| s.duplicate = Some("10%".into()));
        let mut l = Line::new(s, 3);
        let out = run(&mut l, 10_000, 1000);
        assert!(
            (900..=1100).contains(&(out.len() - 10_000)),
            "{}",
            out.len()
        );
        let s = spec(|s| {
            s.delay = Some("10ms".into());
            s.reorder = Some("25%".into());
        });
        let mut l = Line::new(s, 3);
        let out = run(&mut l, 10_000, 1_000_000);
        assert_eq!(out.len(), 10_000);
        let ahead = out.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(ahead > 1000, "{ahead} frames overtaken");
        // Corruption: one bit of the payload, the header untouched.
        let s = spec(|s| s.corrupt = Some("100%".into()));
        let mut l = Line::new(s, 3);
        let c = LineCounters::default();
        let d = l.decide(&c);
        assert_eq!(d.fates[0], Fate::Hold { corrupt: true });
        let b = frame(7);
        assert!(l.hold(0, &[&b[..50], &b[50..]], Offload::NONE, P, true, &c));
        let mut got = Vec::new();
        l.serve(0, 8, &c, |h| got = h.bytes.to_vec());
        let diff: u32 = got.iter().zip(&b).map(|(x, y)| (x ^ y).count_ones()).sum();
        assert_eq!(diff, 1);
        assert_eq!(got[..14], b[..14]);
        assert_eq!(c.corrupted.get(), 1);
    }

    #[test]
    fn byte_ring_wraps_and_refuses_when_full() {
        let mut q = Queue::new(100, 1000);
        let d = |at: usize, len: usize| Desc {
            due: 0,
            at: at as u32,
            len: len as u32,
            off: Offload::NONE,
            to: P,
        };
        for _ in 0..3 {
            let at = q.reserve(300).expect("room");
            q.push(d(at, 300));
        }
        assert_eq!(q.reserve(300), None, "100 left at the end, none before");
        q.pop();
        // 100 at the end is too short: wraps to 0, before the oldest (300).
        let at = q.reserve(250).expect("wraps");
        assert_eq!(at, 0);
        q.push(d(at, 250));
        assert_eq!(q.reserve(100), None, "50 left before the oldest");
        q.pop();
        q.pop();
        // Only the wrapped one is left: the end is free again.
        assert_eq!(q.reserve(700), Some(250));
        q.pop();
        assert!(q.is_empty());
        assert_eq!(q.reserve(1000), Some(0));
        // The descriptor limit.
        let mut q = Queue::new(2, 1000);
        for _ in 0..2 {
            let at = q.reserve(10).expect("room");
            q.push(d(at, 10));
        }
        assert_eq!(q.reserve(10), None);
    }

    #[test]
    fn respec_keeps_what_is_held() {
        let mut l = Line::new(spec(|s| s.delay = Some("50ms".into())), 1);
        let c = LineCounters::default();
        let b = frame(1);
        assert!(l.hold(0, &[&b], Offload::NONE, P, false, &c));
        l.respec(spec(|s| s.delay = Some("1ms".into())), 1);
        assert_eq!(l.held(), 1);
        assert_eq!(l.next_due(), Some(50_000_000));
        // A new frame is not due before the one held before it.
        let d = l.decide(&c);
        assert_eq!(d.fates[0], Fate::Hold { corrupt: false });
        assert!(l.hold(1_000_000, &[&b], Offload::NONE, P, false, &c));
        let mut n = 0;
        l.serve(50_000_000, 8, &c, |_| n += 1);
        assert_eq!(n, 2);
    }
}
