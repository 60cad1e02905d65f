//! Link impairment: what a real link does to frames (delay, jitter, loss,
//! a rate limit, duplication, reordering, corruption) and link state (a
//! link taken down by `shunt link` or a flap schedule), per port and
//! direction. `egress` is what the switch sends out of a port towards its
//! host, `ingress` what it receives from it. netem does not exist on every
//! kernel (not on this machine's): shunt does it where it already touches
//! every frame. docs/impair.md says what each knob does and how it differs
//! from netem.
//!
//! ```text
//!  control (file, `shunt impair`, `shunt link`)
//!     └─> Shared: per-port Specs (ArcSwap), link-down flags, a generation
//!           └─> each worker's Impair (sync once per loop turn when the generation moved)
//!                 lines[port][dir]: Line = decisions (Rng) + Queue (bounded arena, FIFO by due time)
//!  ingress: Port::recv ─> Impair::ingress (lost: dropped; held: copied out) ─> pipeline
//!  egress:  edit::run copy ─> Impair::egress (lost / now / held) ─> Port::send
//!  each loop turn: Impair::serve sends what is due; poll sleeps until the next due frame
//! ```
//!
//! Workers own their lines (one writer, no locks); the control plane only
//! publishes specs and reads counters. A port without impairment costs one
//! check of a worker-local flag per copy when any port is impaired, and
//! nothing else.

pub mod line;

pub mod rng;
pub mod state;
pub mod values;

pub use line::{Decision, Fate, Held, Line};
pub use state::Impair;

use crate::counters::Counter;
use crate::ids::MAX_PORTS;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;

/// Which way frames go through a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Out of the port, towards its host.
    Egress,
    /// Into the switch, from the port's host.
    Ingress,
    Both,
}

impl Direction {
    pub fn parse(s: &str) -> Result<Direction, String> {
        match s {
            "egress" | "out" => Ok(Direction::Egress),
            "ingress" | "in" => Ok(Direction::Ingress),
            "both" => Ok(Direction::Both),
            _ => Err(format!(
                "direction {s:?}: write \"egress\", \"ingress\" or \"both\""
            )),
        }
    }
    pub fn egress(self) -> bool {
        self != Direction::Ingress
    }
    pub fn ingress(self) -> bool {
        self != Direction::Egress
    }
}

/// How jitter is spread around the delay (netem's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// delay ± jitter, every value alike.
    #[default]
    Uniform,
    /// jitter is the standard deviation.
    Normal,
    /// A long tail of late frames (shape 3), jitter its standard deviation.
    Pareto,
    /// A quarter normal, three quarters Pareto, as netem's table.
    ParetoNormal,
}

impl Distribution {
    pub fn parse(s: &str) -> Result<Distribution, String> {
        match s {
            "uniform" => Ok(Distribution::Uniform),
            "normal" => Ok(Distribution::Normal),
            "pareto" => Ok(Distribution::Pareto),
            "paretonormal" | "pareto-normal" | "pareto_normal" => Ok(Distribution::ParetoNormal),
            _ => Err(format!(
                "distribution {s:?}: write \"uniform\", \"normal\", \"pareto\" or \"paretonormal\""
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::ParetoNormal => "paretonormal",
        }
    }
}

/// Which frames are lost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    #[default]
    None,
    /// Each frame alike, with this probability.
    Random(f64),
    /// Bursts (Gilbert-Elliott, netem's `gemodel p r 1-h 1-k`): from the
    /// good state to the bad one with probability `p` per frame, back with
    /// `r`; a frame is lost with `bad` in the bad state, `good` in the good.
    Gilbert { p: f64, r: f64, bad: f64, good: f64 },
}

impl Loss {
    /// `10%` (random), `random 10%`, or `gemodel P [R [BAD [GOOD]]]`
    /// (R defaults to 1 - P, BAD to 100%, GOOD to 0%, as netem).
    pub fn parse(s: &str) -> Result<Loss, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let l = match words.as_slice() {
            [] => return Err("an empty loss: write it like \"1%\" or \"gemodel 1% 30%\"".into()),
            [p] | ["random", p] => Loss::Random(values::share(p)?),
            ["gemodel" | "gilbert", first, rest @ ..] if rest.len() <= 3 => {
                let p = values::share(first)?;
                // From the first probability on: p, r, bad, good.
                let rest = words.get(1..).unwrap_or_default();
                let get = |i: usize, d: f64| rest.get(i).map_or(Ok(d), |v| values::share(v));
                Loss::Gilbert {
                    p,
                    r: get(1, 1.0 - p)?,
                    bad: get(2, 1.0)?,
                    good: get(3, 0.0)?,
                }
            }
            _ => {
                return Err(format!(
                    "loss {s:?}: write a share (\"1%\") or \"gemodel P R [BAD [GOOD]]\" (Gilbert-Elliott: P to enter the bad state, R to leave it)"
                ))
            }
        };
        Ok(match l {
            Loss::Random(0.0) => Loss::None,
            l => l,
        })
    }

    pub fn describe(&self) -> Option<String> {
        use values::show_share as s;
        match *self {
            Loss::None => None,
            Loss::Random(p) => Some(s(p)),
            Loss::Gilbert { p, r, bad, good } => {
                Some(format!("gemodel {} {} {} {}", s(p), s(r), s(bad), s(good)))
            }
        }
    }
}

/// Frames a line holds at most unless told (netem's default limit).
pub const DEFAULT_LIMIT: u32 = 1000;
/// Bytes a line holds at most unless told: its arena, taken when the line
/// is configured (zeroed pages: only what frames touch becomes memory).
pub const DEFAULT_LIMIT_BYTES: u32 = 16 << 20;

/// What one direction of one port does to frames. All zero: nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub delay_ns: u64,
    pub jitter_ns: u64,
    pub distribution: Distribution,
    pub loss: Loss,
    /// Bits per second, 0 for no limit.
    pub rate_bps: u64,
    /// Frames held at most (delayed or waiting for the rate).
    pub limit: u32,
    /// Bytes held at most.
    pub limit_bytes: u32,
    pub duplicate: f64,
    pub reorder: f64,
    pub corrupt: f64,
    /// The seed of the line's randomness; None: one drawn at configuration.
    pub seed: Option<u64>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            delay_ns: 0,
            jitter_ns: 0,
            distribution: Distribution::Uniform,
            loss: Loss::None,
            rate_bps: 0,
            limit: DEFAULT_LIMIT,
            limit_bytes: DEFAULT_LIMIT_BYTES,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            seed: None,
        }
    }
}

impl Spec {
    /// Whether the spec changes anything at all.
    pub fn is_noop(&self) -> bool {
        self.delay_ns == 0
            && self.jitter_ns == 0
            && self.loss == Loss::None
            && self.rate_bps == 0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.corrupt == 0.0
    }

    /// Whether frames wait in the line's queue (for a delay or the rate).
    pub fn holds(&self) -> bool {
        self.delay_ns > 0 || self.jitter_ns > 0 || self.rate_bps > 0
    }

    /// In words, as `shunt ports` shows it: `delay 20ms jitter 5ms loss 1%`.
    pub fn describe(&self) -> String {
        use values::{show_bps, show_ns, show_share};
        let mut w = Vec::new();
        if self.delay_ns > 0 || self.jitter_ns > 0 {
            w.push(format!("delay {}", show_ns(self.delay_ns)));
        }
        if self.jitter_ns > 0 {
            w.push(format!("jitter {}", show_ns(self.jitter_ns)));
            if self.distribution != Distribution::Uniform {
                w.push(self.distribution.name().to_string());
            }
        }
        if let Some(l) = self.loss.describe() {
            w.push(format!("loss {l}"));
        }
        if self.rate_bps > 0 {
            w.push(format!("rate {}", show_bps(self.rate_bps)));
        }
        for (what, p) in [
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if p > 0.0 {
                w.push(format!("{what} {}", show_share(p)));
            }
        }
        if let Some(s) = self.seed {
            w.push(format!("seed {s}"));
        }
        w.join(" ")
    }
}

/// The impairment settings as written (the file's `[[impair]]` keys, the
/// options of `shunt impair`): parsed by [`Settings::spec`], which says
/// what is wrong in words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub jitter: Option<String>,
    #[serde(default)]
    pub distribution: Option<String>,
    #[serde(default)]
    pub loss: Option<String>,
    #[serde(default)]
    pub rate: Option<String>,
    /// Frames held at most.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Bytes held at most (`64kb`, `4mb`).
    #[serde(default)]
    pub limit_bytes: Option<String>,
    #[serde(default)]
    pub duplicate: Option<String>,
    #[serde(default)]
    pub reorder: Option<String>,
    #[serde(default)]
    pub corrupt: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Settings {
    /// The spec these settings make. Err: the key and what to write.
    pub fn spec(&self) -> Result<Spec, String> {
        fn key<T>(k: &str, r: Result<T, String>) -> Result<T, String> {
            r.map_err(|e| format!("{k}: {e}"))
        }
        let mut s = Spec::default();
        if let Some(d) = &self.delay {
            s.delay_ns = key("delay", values::duration_ns(d))?;
        }
        if let Some(j) = &self.jitter {
            s.jitter_ns = key("jitter", values::duration_ns(j))?;
        }
        if let Some(d) = &self.distribution {
            s.distribution = key("distribution", Distribution::parse(d))?;
        }
        if let Some(l) = &self.loss {
            s.loss = key("loss", Loss::parse(l))?;
        }
        if let Some(r) = &self.rate {
            s.rate_bps = key("rate", values::rate_bps(r))?;
        }
        if let Some(l) = self.limit {
            if !(1..=1_000_000).contains(&l) {
                return Err(format!("limit: {l} frames is out of range (1 to 1000000)"));
            }
            s.limit = l as u32;
        }
        if let Some(b) = &self.limit_bytes {
            let b = key("limit_bytes", values::size_bytes(b))?;
            if !(2048..=(1 << 30)).contains(&b) {
                return Err(format!(
                    "limit_bytes: {b} bytes is out of range (2kb to 1gb)"
                ));
            }
            s.limit_bytes = b as u32;
        }
        if let Some(p) = &self.duplicate {
            s.duplicate = key("duplicate", values::share(p))?;
        }
        if let Some(p) = &self.reorder {
            s.reorder = key("reorder", values::share(p))?;
        }
        if let Some(p) = &self.corrupt {
            s.corrupt = key("corrupt", values::share(p))?;
        }
        s.seed = self.seed;
        Ok(s)
    }
}

/// A flap schedule: the link goes down every `every_ns`, for `down_for_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flap {
    pub every_ns: u64,
    pub down_for_ns: u64,
}

/// One port's impairment, both directions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortImpair {
    pub egress: Option<Spec>,
    pub ingress: Option<Spec>,
    pub flap: Option<Flap>,
    /// Bumped each time the port's impairment is set: set again, even to
    /// the same spec, its lines start their randomness from the seed again.
    pub version: u64,
}

/// Line index of port `p` in direction `egress`.
#[inline]
pub fn line_index(p: usize, egress: bool) -> usize {
    p * 2 + usize::from(!egress)
}

/// What one line counted (one worker's; single writer, readers sum).
#[derive(Default)]
pub struct LineCounters {
    /// Frames held in the queue (for a delay, the rate, a corruption).
    pub delayed: Counter,
    pub lost: Counter,
    pub duplicated: Counter,
    /// Frames sent ahead of those queued before them.
    pub reordered: Counter,
    pub corrupted: Counter,
    pub queue_full: Counter,
    /// Frames and bytes in the queue now (a gauge, stored by its worker).
    pub queued_frames: AtomicU64,
    pub queued_bytes: AtomicU64,
}

/// What the control plane and the workers share.
pub struct Shared {
    /// Per port (by id); published whole on a change.
    pub ports: ArcSwap<Vec<PortImpair>>,
    /// Bumped on every change of `ports` or of a link's state.
    pub generation: AtomicU64,
    /// Links taken down (`shunt link`, a flap): frames to and from them
    /// are dropped as `link_down`.
    pub link_down: Box<[AtomicBool]>,
    /// Per worker, per line.
    pub counters: Vec<Box<[LineCounters]>>,
    /// Per line (port and direction): when its rate lets the next frame
    /// start, in the workers' clock (ns). Every worker's line of a port and
    /// direction takes its slots from this one timeline (line.rs).
    pub pace: Box<[Arc<AtomicU64>]>,
}

impl Shared {
    pub fn new(workers: usize) -> Shared {
        Shared {
            ports: ArcSwap::from_pointee(vec![PortImpair::default(); MAX_PORTS]),
            generation: AtomicU64::new(0),
            link_down: (0..MAX_PORTS).map(|_| AtomicBool::new(false)).collect(),
            counters: (0..workers.max(1))
                .map(|_| {
                    (0..MAX_PORTS * 2)
                        .map(|_| LineCounters::default())
                        .collect()
                })
                .collect(),
            pace: (0..MAX_PORTS * 2)
                .map(|_| Arc::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    /// With the impairment of each port given (the topology file's
    /// `[[impair]]`: config::port_impairs).
    pub fn with_ports(workers: usize, all: Vec<PortImpair>) -> Shared {
        let sh = Shared::new(workers);
        sh.ports.store(Arc::new(all));
        sh
    }

    /// Whether port `p`'s link was taken down.
    #[inline]
    pub fn is_down(&self, p: usize) -> bool {
        self.link_down.get(p).is_some_and(|d| d.load(Relaxed))
    }

    /// Sets port `p`'s impairment (control path).
    pub fn set(&self, p: usize, f: impl FnOnce(&mut PortImpair)) {
        let mut all: Vec<PortImpair> = (**self.ports.load()).clone();
        if let Some(x) = all.get_mut(p) {
            f(x);
            x.version += 1;
        }
        self.ports.store(Arc::new(all));
        self.generation.fetch_add(1, Release);
    }

    /// A port id given back (detached): its impairment and link state go
    /// with it, so that the next port with the id starts clean. Its
    /// counters are reset once no worker writes them (`reset_counters`).
    pub fn forget(&self, p: usize) {
        self.set(p, |x| {
            x.egress = None;
            x.ingress = None;
            x.flap = None;
        });
        if let Some(d) = self.link_down.get(p) {
            d.store(false, Relaxed);
        }
        for i in [line_index(p, true), line_index(p, false)] {
            if let Some(t) = self.pace.get(i) {
                t.store(0, Relaxed);
            }
        }
    }

    /// Zeroes port `p`'s line counters: only once no worker can write
    /// them (after a quiescent point).
    pub fn reset_counters(&self, p: usize) {
        for w in &self.counters {
            for i in [line_index(p, true), line_index(p, false)] {
                if let Some(c) = w.get(i) {
                    for n in [
                        &c.delayed,
                        &c.lost,
                        &c.duplicated,
                        &c.reordered,
                        &c.corrupted,
                        &c.queue_full,
                    ] {
                        n.reset();
                    }
                    c.queued_frames.store(0, Relaxed);
                    c.queued_bytes.store(0, Relaxed);
                }
            }
        }
    }

    /// Line `i`'s counters summed over the workers.
    pub fn totals(&self, i: usize) -> LineTotals {
        let mut t = LineTotals::default();
        for w in &self.counters {
            let Some(c) = w.get(i) else { continue };
            t.delayed += c.delayed.get();
            t.lost += c.lost.get();
            t.duplicated += c.duplicated.get();
            t.reordered += c.reordered.get();
            t.corrupted += c.corrupted.get();
            t.queue_full += c.queue_full.get();
            t.queued_frames += c.queued_frames.load(Relaxed);
            t.queued_bytes += c.queued_bytes.load(Relaxed);
        }
        t
    }
}

/// One direction's counters summed over the workers (`shunt stats --json`:
/// `impair.egress`, `impair.ingress`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineTotals {
    pub delayed: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub queue_full: u64,
    /// Frames and bytes held now (the queue depth).
    pub queued_frames: u64,
    pub queued_bytes: u64,
}

impl LineTotals {
    pub fn is_zero(&self) -> bool {
        *self == LineTotals::default()
    }
}

/// A seed for a spec that names none: drawn once, at configuration (the
/// hasher's keys come from the system), never per frame.
pub fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}
