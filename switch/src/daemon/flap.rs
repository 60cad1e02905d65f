//! MAC-flap detection's control thread (docs/storm.md): drains the moves
//! the workers handed over (pipeline/flap.rs), counts each MAC's moves in
//! the window, and on a flap logs a line naming the MAC and its ports,
//! counts it for `shunt stats`, and acts as `[switch] mac_flap` says:
//! nothing more (`log`), no learning of the MAC for `hold` (`block`), or
//! the port it moved to last down for `hold` (`port_down`, err-disable,
//! by `shunt link`'s own path: carrier off, FDB entries flushed).

use super::UpError;
use crate::config::{FlapAction, MacFlapCfg};
use crate::ids::{Egress, PortId};
use crate::pipeline::flap::{FlapRecord, Move, RECENT};
use crate::runtime::Runtime;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// How often the queues are drained.
const EVERY: Duration = Duration::from_millis(100);
/// MACs whose moves are tracked at once; beyond, MACs whose last move is
/// out of the window make room, and failing that a new MAC is not tracked.
const MAX_TRACKED: usize = 4096;
/// Ports remembered per MAC (the ones it moved between last).
const MAX_PORTS_NAMED: usize = 4;

#[derive(Default)]
struct Track {
    /// When it moved, within the window (at most `moves + 1`).
    at: VecDeque<u64>,
    /// Ports it moved between, the latest last.
    ports: Vec<u16>,
    /// While an action holds: nothing is counted.
    held_until: Option<u64>,
}

/// What is being undone when its hold ends.
enum Hold {
    Block { net: u16, mac: [u8; 6] },
    Port(PortId),
}

struct Watch {
    cfg: MacFlapCfg,
    tracked: HashMap<(u16, [u8; 6]), Track>,
    holds: Vec<(u64, Hold)>,
}

/// Starts the thread when the topology asks for detection.
pub(super) fn spawn(rt: &Arc<Runtime>) -> Result<(), UpError> {
    let Some(cfg) = rt.topo().switch.mac_flap else {
        return Ok(());
    };
    let rt = Arc::clone(rt);
    std::thread::Builder::new()
        .name("shunt-flap".into())
        .spawn(move || {
            let mut w = Watch {
                cfg,
                tracked: HashMap::new(),
                holds: Vec::new(),
            };
            while !rt.stop.load(Relaxed) {
                std::thread::sleep(EVERY);
                w.round(&rt);
            }
        })
        .map(drop)
        .map_err(|source| UpError::Thread {
            what: "MAC-flap detection",
            source,
        })
}

impl Watch {
    fn round(&mut self, rt: &Runtime) {
        let now = rt.now_ms();
        let mut moves = Vec::new();
        rt.guard.flap.drain(|m| moves.push(m));
        for m in moves {
            if let Some(n) = self.note(m) {
                self.flap(rt, m, n, now);
            }
        }
        self.release(rt, now);
    }

    /// Counts a move; Some(moves in the window) when it makes a flap.
    fn note(&mut self, m: Move) -> Option<u32> {
        let key = (m.net, m.mac);
        if !self.tracked.contains_key(&key) && self.tracked.len() >= MAX_TRACKED {
            let window = self.cfg.window_ms;
            self.tracked.retain(|_, t| {
                t.held_until.is_some()
                    || t.at
                        .back()
                        .is_some_and(|&a| m.at_ms.saturating_sub(a) <= window)
            });
            if self.tracked.len() >= MAX_TRACKED {
                return None;
            }
        }
        let t = self.tracked.entry(key).or_default();
        if t.held_until.is_some() {
            return None;
        }
        for p in [m.from, m.to] {
            t.ports.retain(|&x| x != p);
            t.ports.push(p);
        }
        if t.ports.len() > MAX_PORTS_NAMED {
            t.ports.remove(0);
        }
        t.at.push_back(m.at_ms);
        while t
            .at
            .front()
            .is_some_and(|&a| m.at_ms.saturating_sub(a) > self.cfg.window_ms)
        {
            t.at.pop_front();
        }
        while t.at.len() > self.cfg.moves as usize + 1 {
            t.at.pop_front();
        }
        let n = t.at.len() as u32;
        (n > self.cfg.moves).then_some(n)
    }

    fn flap(&mut self, rt: &Runtime, m: Move, n: u32, now: u64) {
        let cfg = self.cfg;
        let key = (m.net, m.mac);
        let ports: Vec<u16> = self
            .tracked
            .get(&key)
            .map(|t| t.ports.clone())
            .unwrap_or_default();
        let names: Vec<String> = ports
            .iter()
            .filter_map(|&p| Egress::decode(p))
            .map(|e| rt.port_name(e))
            .collect();
        let mac = shunt_parsers::MacAddr(m.mac).to_string();
        let network = rt
            .topo()
            .networks
            .get(usize::from(m.net))
            .map_or_else(|| m.net.to_string(), |n| n.name.clone());
        let (did, until) = match cfg.action {
            FlapAction::Log => ("logged".to_string(), None),
            FlapAction::Block => {
                if rt.guard.flap.block(m.net, &m.mac) {
                    rt.fdb.remove(m.net, &m.mac);
                    self.holds.push((
                        now + cfg.hold_ms,
                        Hold::Block {
                            net: m.net,
                            mac: m.mac,
                        },
                    ));
                    (
                        format!("its learning blocked for {} s", cfg.hold_ms / 1000),
                        Some(now + cfg.hold_ms),
                    )
                } else {
                    (
                        "not blocked: the table of blocked MACs is full".into(),
                        None,
                    )
                }
            }
            FlapAction::PortDown => match Egress::decode(m.to) {
                Some(Egress::Port(p)) => match super::link::set(rt, p, false) {
                    Ok(_) => {
                        self.holds.push((now + cfg.hold_ms, Hold::Port(p)));
                        (
                            format!(
                                "port {} taken down for {} s",
                                rt.port_name(p.into()),
                                cfg.hold_ms / 1000
                            ),
                            Some(now + cfg.hold_ms),
                        )
                    }
                    Err(e) => (format!("port not taken down: {e}"), None),
                },
                _ => ("not a port of this switch: nothing taken down".into(), None),
            },
        };
        eprintln!(
            "shunt: MAC flap: {mac} in network {network} moved {n} times within {} ms between {}; {did}",
            cfg.window_ms,
            names.join(", ")
        );
        if let Some(t) = self.tracked.get_mut(&key) {
            t.at.clear();
            t.held_until = until;
        }
        let mut log = rt.guard.flap.log.lock().unwrap_or_else(|e| e.into_inner());
        log.total += 1;
        if log.recent.len() == RECENT {
            log.recent.pop_front();
        }
        log.recent.push_back(FlapRecord {
            mac,
            network,
            ports: names,
            moves: n,
            action: cfg.action.name(),
            at_ms: now,
            until_ms: until,
        });
    }

    /// Ends the holds that are due.
    fn release(&mut self, rt: &Runtime, now: u64) {
        let due: Vec<Hold> = {
            let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.holds)
                .into_iter()
                .partition(|(t, _)| *t <= now);
            self.holds = keep;
            due.into_iter().map(|(_, h)| h).collect()
        };
        for h in due {
            match h {
                Hold::Block { net, mac } => {
                    rt.guard.flap.unblock(net, &mac);
                    eprintln!(
                        "shunt: MAC flap: {} learned again",
                        shunt_parsers::MacAddr(mac)
                    );
                }
                Hold::Port(p) => {
                    if let Err(e) = super::link::set(rt, p, true) {
                        eprintln!("shunt: MAC flap: port {}: {e}", rt.port_name(p.into()));
                    }
                }
            }
        }
        for t in self.tracked.values_mut() {
            if t.held_until.is_some_and(|u| u <= now) {
                t.held_until = None;
            }
        }
    }
}
