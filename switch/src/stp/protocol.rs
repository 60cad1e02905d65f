//! RSTP as one of the l2 thread's protocols (l2::Protocol): BPDUs the
//! workers took (consumed: never forwarded) go to the [`Bridge`], its
//! ticks are the l2 thread's, and what it decides goes out as frames
//! (l2::Sender, past forward), port states (the atomics the workers read),
//! FDB flushes and `shunt stp`'s status.

use super::glue::{port_mac, Shared};
use super::{Bridge, Event, PortState};
use crate::ids::{PortId, MAX_PORTS};
use crate::l2::{Claim, CtlKind, CtlPkt, Protocol, Sender};
use shunt_parsers::stp::{Bpdu, MAX_FRAME_LEN};
use shunt_parsers::MacAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Whether a port's link is up (carrier, not `shunt link PORT down`).
pub type LinkUp = Box<dyn Fn(PortId) -> bool + Send>;
/// Removes what the FDB learned on a port; returns how many entries.
pub type Flush = Box<dyn Fn(PortId) -> usize + Send>;

pub struct Rstp {
    bridge: Bridge,
    shared: Arc<Shared>,
    /// Port id -> instance port.
    index: Box<[Option<usize>]>,
    macs: Vec<MacAddr>,
    enabled: Vec<bool>,
    link_up: LinkUp,
    flush: Flush,
    events: Vec<Event>,
}

const CLAIMS: [(CtlKind, Claim); 1] = [(CtlKind::Bpdu, Claim::Consume)];

impl Rstp {
    pub fn new(shared: Arc<Shared>, now_ms: u64, link_up: LinkUp, flush: Flush) -> Rstp {
        let cfgs: Vec<_> = shared.ports.iter().map(|p| p.cfg).collect();
        let bridge = Bridge::new(shared.bridge, &cfgs, now_ms);
        let mut index = vec![None; MAX_PORTS].into_boxed_slice();
        for (i, p) in shared.ports.iter().enumerate() {
            index[p.id.index()] = Some(i);
        }
        let macs = (0..cfgs.len())
            .map(|i| port_mac(shared.bridge.mac, i))
            .collect();
        Rstp {
            bridge,
            index,
            macs,
            enabled: vec![true; cfgs.len()],
            shared,
            link_up,
            flush,
            events: Vec::new(),
        }
    }

    /// Carries out what the bridge decided.
    fn apply(&mut self, out: &mut Sender<'_>) {
        for e in self.events.drain(..) {
            match e {
                Event::Send { port, bpdu } => {
                    let (Some(p), Some(&mac)) = (self.shared.ports.get(port), self.macs.get(port))
                    else {
                        continue;
                    };
                    let mut buf = [0u8; MAX_FRAME_LEN];
                    if let Ok(n) = bpdu.emit_frame(mac, &mut buf) {
                        if out.send(p.id, None, &[&buf[..n]]) {
                            self.shared.bpdus_out.fetch_add(1, Relaxed);
                        }
                    }
                }
                Event::State { port, state } => {
                    let Some(p) = self.shared.ports.get(port) else {
                        continue;
                    };
                    self.shared.states[p.id.index()].store(state as u8, Relaxed);
                    let role = self
                        .bridge
                        .status()
                        .ports
                        .get(port)
                        .map_or("?", |s| s.role_name());
                    eprintln!("shunt: stp: port {} is {} ({role})", p.name, state.name());
                }
                Event::Flush { port } => {
                    if let Some(p) = self.shared.ports.get(port) {
                        (self.flush)(p.id);
                    }
                }
            }
        }
        if let Ok(mut s) = self.shared.status.lock() {
            *s = Some(self.bridge.status());
        }
    }

    /// The state of every instance port as the bridge has it now, into
    /// the workers' atomics (the start, before the first BPDU).
    pub fn publish_states(&self) {
        for (i, p) in self.shared.ports.iter().enumerate() {
            let s = self.bridge.state(i).unwrap_or(PortState::Discarding);
            self.shared.states[p.id.index()].store(s as u8, Relaxed);
        }
    }
}

impl Protocol for Rstp {
    fn name(&self) -> &'static str {
        "rstp"
    }

    fn claims(&self) -> &[(CtlKind, Claim)] {
        &CLAIMS
    }

    fn frame(&mut self, pkt: &CtlPkt, now_ms: u64, out: &mut Sender<'_>) {
        let Some(i) = self.index.get(pkt.port.index()).copied().flatten() else {
            return;
        };
        self.shared.bpdus_in.fetch_add(1, Relaxed);
        // BPDUs are untagged; a tagged one is some other bridge's per-VLAN
        // business (PVST), not ours.
        let parsed = (pkt.vid == 0)
            .then(|| Bpdu::parse_frame(pkt.frame()).ok())
            .flatten();
        match parsed {
            Some(b) => self.bridge.receive(i, &b, now_ms, &mut self.events),
            None => {
                self.shared.bpdus_bad.fetch_add(1, Relaxed);
                return;
            }
        }
        self.apply(out);
    }

    fn tick(&mut self, now_ms: u64, out: &mut Sender<'_>) {
        for i in 0..self.enabled.len() {
            let Some(p) = self.shared.ports.get(i) else {
                continue;
            };
            let up = (self.link_up)(p.id);
            if up != self.enabled[i] {
                self.enabled[i] = up;
                eprintln!(
                    "shunt: stp: port {} link {}",
                    p.name,
                    if up { "up" } else { "down" }
                );
                self.bridge.set_enabled(i, up, now_ms, &mut self.events);
            }
        }
        self.bridge.tick(now_ms, &mut self.events);
        self.apply(out);
    }
}
