//! flap: the datapath's half of MAC-flap detection (`[switch] mac_flap`,
//! docs/storm.md). learn hands every move of a MAC between ports to a
//! bounded lock-free queue of its worker (`ArrayQueue::push`: no lock, no
//! allocation; a full queue drops the event and counts it); a control
//! thread (daemon/flap.rs) drains the queues, counts moves per MAC in its
//! window, logs and acts. The datapath never logs.
//!
//! The `block` action puts the MAC in a small fixed table that learn
//! consults only while it holds something (one load per batch otherwise).

use crate::counters::Counter;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Mutex;

/// Events each worker's queue holds; the control thread drains every
/// 100 ms, and a flap needs only a few moves, so losing events under a
/// loop (every frame a move) loses nothing that matters.
pub const QUEUE: usize = 1024;
/// MACs blocked at once at most (a flap beyond that is logged, not blocked).
pub const BLOCK_SLOTS: usize = 64;

/// One move of a MAC, as learn saw it (ports as `Egress::encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub net: u16,
    pub mac: [u8; 6],
    pub from: u16,
    pub to: u16,
    pub at_ms: u64,
}

/// A flap the control thread found, for `shunt stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlapRecord {
    pub mac: String,
    pub network: String,
    /// The ports it moved between, the one it moved to last at the end.
    pub ports: Vec<String>,
    /// Moves within the window when it was found.
    pub moves: u32,
    pub action: &'static str,
    /// Milliseconds since the switch started.
    pub at_ms: u64,
    /// When the action ends (block, port_down), in the same clock.
    pub until_ms: Option<u64>,
}

/// Flaps remembered for `shunt stats`.
pub const RECENT: usize = 16;

/// Control-path record of flaps (only the control thread and `shunt
/// stats` touch it).
#[derive(Debug, Default)]
pub struct FlapLog {
    pub total: u64,
    pub recent: std::collections::VecDeque<FlapRecord>,
}

pub struct Flap {
    on: AtomicBool,
    queues: Box<[ArrayQueue<Move>]>,
    /// Per worker: events its full queue refused (single writer each).
    lost: Box<[Counter]>,
    /// Blocked (network, MAC) keys, `key | 1 << 63`; 0: a free slot.
    blocked: Box<[AtomicU64]>,
    blocking: AtomicUsize,
    /// Control path only (never locked by a worker).
    pub log: Mutex<FlapLog>,
}

impl Flap {
    pub fn new(workers: usize) -> Flap {
        let workers = workers.max(1);
        Flap {
            on: AtomicBool::new(false),
            queues: (0..workers).map(|_| ArrayQueue::new(QUEUE)).collect(),
            lost: (0..workers).map(|_| Counter::default()).collect(),
            blocked: (0..BLOCK_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            blocking: AtomicUsize::new(0),
            log: Mutex::new(FlapLog::default()),
        }
    }

    /// Detection on or off (moves are handed over only while on).
    pub fn enable(&self, on: bool) {
        self.on.store(on, Release);
    }

    pub fn enabled(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// learn: `mac` moved from `from` to `to`. No lock, no allocation.
    #[inline]
    pub fn moved(&self, worker: usize, m: Move) {
        if !self.on.load(Relaxed) {
            return;
        }
        if let Some(q) = self.queues.get(worker) {
            if q.push(m).is_err() {
                if let Some(c) = self.lost.get(worker) {
                    c.add(1);
                }
            }
        }
    }

    /// Takes what the workers handed over (control thread).
    pub fn drain(&self, mut f: impl FnMut(Move)) {
        for q in self.queues.iter() {
            while let Some(m) = q.pop() {
                f(m);
            }
        }
    }

    /// Events lost to full queues, over all workers.
    pub fn lost(&self) -> u64 {
        self.lost.iter().map(Counter::get).sum()
    }

    /// learn, once per batch: is any MAC blocked?
    #[inline]
    pub fn blocking(&self) -> bool {
        self.blocking.load(Acquire) > 0
    }

    /// learn, per frame while [`Flap::blocking`]: is (net, mac) blocked?
    #[inline]
    pub fn is_blocked(&self, net: u16, mac: &[u8; 6]) -> bool {
        let k = key(net, mac);
        self.blocked.iter().any(|s| s.load(Relaxed) == k)
    }

    /// Blocks learning of (net, mac); false if the table is full.
    pub fn block(&self, net: u16, mac: &[u8; 6]) -> bool {
        let k = key(net, mac);
        if self.blocked.iter().any(|s| s.load(Relaxed) == k) {
            return true;
        }
        for s in self.blocked.iter() {
            if s.compare_exchange(0, k, Release, Relaxed).is_ok() {
                self.blocking.fetch_add(1, Release);
                return true;
            }
        }
        false
    }

    /// Lets (net, mac) be learned again.
    pub fn unblock(&self, net: u16, mac: &[u8; 6]) {
        let k = key(net, mac);
        for s in self.blocked.iter() {
            if s.compare_exchange(k, 0, Release, Relaxed).is_ok() {
                self.blocking.fetch_sub(1, Release);
            }
        }
    }
}

impl Flap {
    /// `shunt stats` "mac_flap" (control path): the count, what the
    /// queues lost, and the recent flaps with their age.
    pub fn report(&self, now_ms: u64) -> serde_json::Value {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let recent: Vec<serde_json::Value> = log
            .recent
            .iter()
            .rev()
            .map(|r| {
                serde_json::json!({
                    "mac": r.mac,
                    "network": r.network,
                    "ports": r.ports,
                    "moves": r.moves,
                    "action": r.action,
                    "age_secs": now_ms.saturating_sub(r.at_ms) as f64 / 1000.0,
                    "holds_secs": r.until_ms.map(|u| u.saturating_sub(now_ms) as f64 / 1000.0),
                })
            })
            .collect();
        serde_json::json!({
            "enabled": self.enabled(),
            "flaps": log.total,
            "events_lost": self.lost(),
            "blocked": self.blocking.load(Relaxed),
            "recent": recent,
        })
    }
}

fn key(net: u16, mac: &[u8; 6]) -> u64 {
    let [n0, n1] = net.to_be_bytes();
    let [a, b, c, d, e, f] = *mac;
    u64::from_be_bytes([n0, n1, a, b, c, d, e, f]) | 1 << 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_are_handed_over_only_when_on() {
        let f = Flap::new(2);
        let m = Move {
            net: 1,
            mac: [2, 0, 0, 0, 0, 1],
            from: 1,
            to: 2,
            at_ms: 5,
        };
        f.moved(0, m);
        let mut got = Vec::new();
        f.drain(|m| got.push(m));
        assert!(got.is_empty());
        f.enable(true);
        for _ in 0..QUEUE + 3 {
            f.moved(1, m);
        }
        f.drain(|m| got.push(m));
        assert_eq!(got.len(), QUEUE);
        assert_eq!(f.lost(), 3);
    }

    #[test]
    fn block_and_unblock() {
        let f = Flap::new(1);
        let mac = [2, 0, 0, 0, 0, 1];
        assert!(!f.blocking());
        assert!(f.block(1, &mac));
        assert!(f.block(1, &mac), "twice is once");
        assert!(f.blocking());
        assert!(f.is_blocked(1, &mac));
        assert!(!f.is_blocked(2, &mac));
        f.unblock(1, &mac);
        assert!(!f.blocking());
        assert!(!f.is_blocked(1, &mac));
        for i in 0..BLOCK_SLOTS as u8 {
            assert!(f.block(1, &[2, 0, 0, 0, 1, i]));
        }
        assert!(!f.block(1, &mac), "full");
    }
}
