//! The L2 control plane: one thread (`shunt-l2`) that runs the switch's
//! own layer-2 protocols (IGMP/MLD snooping, spanning tree) on copies of
//! the control frames the workers receive, and sends frames of its own
//! out of given ports (docs/multicast.md, docs/pipeline/).
//!
//! ```text
//!  worker: classify --> learn --> ctl (pipeline/ctl.rs) --> local --> forward ...
//!                                  |  copy (CtlPkt), or the frame itself when consumed
//!                                  v
//!                          L2Link::to_l2 ──> shunt-l2: Registry ──> Protocol::frame
//!                                                       every TICK  Protocol::tick
//!                                                          |
//!  worker 0: ctl::take_output <── L2Link::from_l2 <────────┘ Sender::send(port, net, frame)
//!            straight to the port's transmit queue (edit: the port's tag), no forward
//! ```
//!
//! A protocol implements [`Protocol`]: it says which kinds of frame it
//! takes ([`Protocol::claims`]), gets each copy ([`Protocol::frame`]) and a
//! tick about every 100 ms ([`Protocol::tick`]), with the time passed in,
//! and sends through a [`Sender`]. What it publishes for the workers
//! (a snapshot behind an `ArcSwap`) or the control socket is its own.

pub mod link;
pub mod mdb;
pub mod snoop;

pub use link::{Claim, CtlKind, CtlOut, CtlPkt, L2Link, CTL_FRAME};

use crate::ids::{NetId, PortId};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;

/// How often protocols are ticked (milliseconds).
pub const TICK_MS: u64 = 100;

/// One of the l2 thread's protocols.
pub trait Protocol: Send {
    /// Its name, for log lines.
    fn name(&self) -> &'static str;
    /// The kinds of control frame it takes, and whether the switch
    /// consumes them (set on the link when the protocol is added).
    fn claims(&self) -> &[(CtlKind, Claim)];
    /// A control frame of a claimed kind, as a worker received it.
    fn frame(&mut self, pkt: &CtlPkt, now_ms: u64, out: &mut Sender<'_>);
    /// About every `TICK_MS`: timers (ageing, hello, queries).
    fn tick(&mut self, now_ms: u64, out: &mut Sender<'_>);
}

/// Where a protocol puts frames to send; the l2 thread wakes worker 0 once
/// per turn in which something was queued.
pub struct Sender<'a> {
    link: &'a L2Link,
    queued: usize,
}

impl<'a> Sender<'a> {
    pub fn new(link: &'a L2Link) -> Sender<'a> {
        Sender { link, queued: 0 }
    }

    /// Queues `parts` (one frame, untagged) to leave port `port`: tagged
    /// as the port carries network `net` when given, as it is without.
    /// False when it was too long or the queue was full (both counted).
    pub fn send(&mut self, port: PortId, net: Option<NetId>, parts: &[&[u8]]) -> bool {
        let t = &self.link.thread;
        let Some(p) = CtlOut::gather(port, net, parts) else {
            t.from_l2_oversize.add(1);
            return false;
        };
        if self.link.from_l2.push(p).is_err() {
            t.from_l2_full.add(1);
            return false;
        }
        t.sent.add(1);
        self.queued += 1;
        true
    }

    /// Frames queued through this sender.
    pub fn queued(&self) -> usize {
        self.queued
    }
}

/// The protocols of one switch, and what the l2 thread does each turn.
pub struct Registry {
    link: Arc<L2Link>,
    protos: Vec<Box<dyn Protocol>>,
    last_tick: Option<u64>,
}

impl Registry {
    pub fn new(link: Arc<L2Link>) -> Registry {
        Registry {
            link,
            protos: Vec::new(),
            last_tick: None,
        }
    }

    /// Adds a protocol; the workers copy its kinds from now on.
    pub fn add(&mut self, p: Box<dyn Protocol>) {
        for &(kind, claim) in p.claims() {
            self.link.claim(kind, claim);
        }
        self.protos.push(p);
    }

    pub fn is_empty(&self) -> bool {
        self.protos.is_empty()
    }

    /// One turn: every copy queued goes to the protocols that claim its
    /// kind, then, if `TICK_MS` passed since the last, every protocol is
    /// ticked. Wakes worker 0 when something was sent. Returns the frames
    /// sent.
    pub fn round(&mut self, now_ms: u64) -> usize {
        let link = Arc::clone(&self.link);
        let mut out = Sender::new(&link);
        while let Some(pkt) = link.to_l2.pop() {
            link.thread.received.add(1);
            let mut taken = false;
            for p in &mut self.protos {
                if p.claims().iter().any(|&(k, _)| k == pkt.kind) {
                    p.frame(&pkt, now_ms, &mut out);
                    taken = true;
                }
            }
            if !taken {
                link.thread.unclaimed.add(1);
            }
        }
        let due = match self.last_tick {
            Some(t) => now_ms.saturating_sub(t) >= TICK_MS,
            None => true,
        };
        if due {
            self.last_tick = Some(now_ms);
            for p in &mut self.protos {
                p.tick(now_ms, &mut out);
            }
        }
        let sent = out.queued();
        if sent > 0 {
            L2Link::signal(&link.from_l2_event);
        }
        sent
    }

    /// Milliseconds until the next tick is due.
    fn wait_ms(&self, now_ms: u64) -> u64 {
        match self.last_tick {
            Some(t) => (t + TICK_MS).saturating_sub(now_ms),
            None => 0,
        }
    }

    /// The thread's loop: wait for copies or the next tick, then a round;
    /// until `stop()` (checked at least every `TICK_MS`).
    pub fn run(mut self, clock: impl Fn() -> u64, stop: impl Fn() -> bool) {
        let link = Arc::clone(&self.link);
        while !stop() {
            let wait = self.wait_ms(clock());
            if wait > 0 {
                let mut fds = [PollFd::new(link.to_l2_event.as_fd(), PollFlags::POLLIN)];
                let t = PollTimeout::try_from(wait.min(TICK_MS)).unwrap_or(PollTimeout::ZERO);
                let _ = poll(&mut fds, t);
            }
            L2Link::clear(&link.to_l2_event);
            self.round(clock());
        }
    }
}

/// Starts the l2 thread with the protocols of `reg`.
pub fn spawn(
    reg: Registry,
    clock: impl Fn() -> u64 + Send + 'static,
    stop: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shunt-l2".into())
        .spawn(move || reg.run(clock, stop))
}

#[cfg(test)]
mod tests;
