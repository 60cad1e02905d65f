//! A worker's side of impairment: its lines (one per impaired port and
//! direction), made and changed when the control plane publishes new
//! specs, and its copy of which links are down. Only its worker touches it.

use super::rng::line_seed;
use super::{line_index, Line, LineCounters, Shared};
use crate::ids::MAX_PORTS;
use std::sync::atomic::Ordering::Acquire;
use std::sync::Arc;

pub struct Impair {
    worker: usize,
    shared: Arc<Shared>,
    /// The generation of `shared` the lines were made from.
    seen: u64,
    /// Whether anything is impaired, held or down: the one check a copy
    /// pays when nothing is.
    pub on: bool,
    lines: Vec<Option<Box<Line>>>,
    /// The `PortImpair::version` each port's lines were made for.
    versions: Box<[u64]>,
    /// The lines that exist, by index.
    live: Vec<usize>,
    down: Box<[bool]>,
    any_down: bool,
    /// Per port: down, or with a line in either direction (the one look
    /// an unimpaired port's copy pays while other ports are impaired).
    touched: Box<[bool]>,
}

impl Impair {
    pub fn new(worker: usize, shared: Arc<Shared>) -> Impair {
        Impair {
            worker,
            shared,
            seen: u64::MAX,
            on: false,
            lines: (0..MAX_PORTS * 2).map(|_| None).collect(),
            versions: vec![0; MAX_PORTS].into_boxed_slice(),
            live: Vec::with_capacity(MAX_PORTS * 2),
            down: vec![false; MAX_PORTS].into_boxed_slice(),
            any_down: false,
            touched: vec![false; MAX_PORTS].into_boxed_slice(),
        }
    }

    /// Takes what the control plane published since the last call (one
    /// atomic load when nothing changed). A new line takes its arena here;
    /// a changed one keeps its frames; a cleared one lives on until the
    /// frames it holds are sent.
    /// `name_of(p)`: port p's name (its lines' seeds mix it in); asked only
    /// when something changed.
    pub fn sync(&mut self, name_of: impl Fn(usize) -> String) {
        let g = self.shared.generation.load(Acquire);
        if g == self.seen {
            return;
        }
        self.seen = g;
        let ports = self.shared.ports.load();
        for (p, pi) in ports.iter().enumerate().take(MAX_PORTS) {
            let again = std::mem::replace(&mut self.versions[p], pi.version) != pi.version;
            for (egress, want) in [(true, pi.egress), (false, pi.ingress)] {
                let i = line_index(p, egress);
                let name = &name_of(p);
                match (&mut self.lines[i], want) {
                    (None, None) => {}
                    (slot @ None, Some(s)) => {
                        let seed = line_seed(s.seed.unwrap_or(0), name, egress);
                        let pace = self.shared.pace.get(i).cloned();
                        let line = Line::new(s, seed);
                        *slot = Some(Box::new(match pace {
                            Some(pace) => line.paced_by(pace),
                            None => line,
                        }));
                    }
                    (Some(l), Some(s)) => {
                        if again || *l.spec() != s {
                            l.respec(s, line_seed(s.seed.unwrap_or(0), name, egress));
                        }
                    }
                    (Some(l), None) => {
                        if !l.spec().is_noop() {
                            l.respec(super::Spec::default(), 0);
                        }
                    }
                }
            }
            self.down[p] = self.shared.is_down(p);
        }
        self.any_down = self.down.iter().any(|&d| d);
        self.tidy();
    }

    /// Lets go of cleared lines that hold nothing more; recomputes `on`.
    fn tidy(&mut self) {
        self.live.clear();
        self.touched.copy_from_slice(&self.down);
        for (i, l) in self.lines.iter_mut().enumerate() {
            if l.as_ref()
                .is_some_and(|l| l.spec().is_noop() && l.held() == 0)
            {
                *l = None;
            }
            if l.is_some() {
                self.live.push(i);
                self.touched[i / 2] = true;
            }
        }
        self.on = self.any_down || !self.live.is_empty();
    }

    /// Whether port `p` is down or impaired in either direction.
    #[inline]
    pub fn touches(&self, p: usize) -> bool {
        self.touched.get(p).copied().unwrap_or(false)
    }

    /// Whether port `p`'s link is down.
    #[inline]
    pub fn is_down(&self, p: usize) -> bool {
        self.down.get(p).copied().unwrap_or(false)
    }

    /// Port `p`'s line in one direction, with this worker's counters of it.
    #[inline]
    pub fn line(&mut self, p: usize, egress: bool) -> Option<(&mut Line, &LineCounters)> {
        let i = line_index(p, egress);
        let l = self.lines.get_mut(i)?.as_deref_mut()?;
        let c = self.shared.counters.get(self.worker)?.get(i)?;
        Some((l, c))
    }

    /// How many lines exist now.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The `k`th line that exists: (port, egress).
    pub fn live_at(&self, k: usize) -> Option<(usize, bool)> {
        self.live.get(k).map(|&i| (i / 2, i % 2 == 0))
    }

    /// When the next held frame of any line is due.
    pub fn next_due(&self) -> Option<u64> {
        self.live
            .iter()
            .filter_map(|&i| self.lines[i].as_ref()?.next_due())
            .min()
    }

    /// After serving: cleared lines that emptied go.
    pub fn after_serve(&mut self) {
        let done = self.live.iter().any(|&i| {
            self.lines[i]
                .as_ref()
                .is_some_and(|l| l.spec().is_noop() && l.held() == 0)
        });
        if done {
            self.tidy();
        }
    }
}
