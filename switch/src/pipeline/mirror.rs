//! mirror: mirror ports (SPAN, docs/mirror.md). After egress has queued a
//! batch's copies, each mirror's destination gets, per frame, one more
//! queue entry: the frame as received (`in`: its ingress port is a source)
//! or as one of its copies was queued for a source (`out`). The entry is a
//! handle like a flood's copies (frame index, tag, and which egress's edit
//! to make), so the edit stage makes it exactly as that egress's copy
//! (tag pushed or popped, VXLAN outer header) or leaves the frame as it
//! came, and the worker sends it like any other copy.
//!
//! ```text
//!  egress --> [tx queues] --> mirror::run --> [+ destination queues] --> edit::run --> ports
//!                                  \-- in:  frame i of a source's batch, Mirrored::Received
//!                                  \-- out: each entry queued for a source, Mirrored::As(egress)
//! ```
//!
//! - One check per batch when no mirror runs (`Plan::mirror` is None).
//! - A frame reaches a mirror's destination at most once, whatever number
//!   of its sources it crossed (a bit per frame and mirror): a monitor sees
//!   each frame once. The copy as received wins over a copy as sent.
//! - A destination is no source and takes no part in forwarding (the plan
//!   leaves it out of its networks; what it receives is dropped,
//!   `mirror_destination`), so copies never come back into a source and
//!   never crowd out an original frame on its queue. Its queue holds
//!   copies only, queued after every original of the batch: they are the
//!   last sent, and the first refused (docs/mirror.md, "When the
//!   destination cannot keep up").

use super::{Batch, Context, TxEntry, TxQueues};
use crate::config::Topology;
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};

pub use crate::config::mirror::MAX_MIRRORS;

/// How a queue entry's copy is to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mirrored {
    /// An original copy: edited for the egress it is queued for.
    #[default]
    No,
    /// A mirror copy of the frame as received: no edit.
    Received,
    /// A mirror copy made as the copy queued for this egress.
    As(Egress),
}

/// The mirrors in the shape the stage reads: per port, the mirror that
/// takes copies of what it receives and of what it sends.
#[derive(Debug, Clone)]
pub struct MirrorPlan {
    /// Per mirror: its destination.
    pub dest: Vec<PortId>,
    /// Per port (index): the mirror copying what it receives.
    pub rx: Box<[Option<u8>]>,
    /// Per port (index): the mirror copying what it sends.
    pub tx: Box<[Option<u8>]>,
    /// Per port (index): whether it is a mirror's destination.
    pub is_dest: Box<[bool]>,
}

impl MirrorPlan {
    /// None when the topology has no mirror.
    pub fn from_topology(t: &Topology) -> Option<MirrorPlan> {
        if t.mirror.is_empty() {
            return None;
        }
        let n = t.ports.len();
        let mut p = MirrorPlan {
            dest: Vec::with_capacity(t.mirror.len()),
            rx: vec![None; n].into_boxed_slice(),
            tx: vec![None; n].into_boxed_slice(),
            is_dest: vec![false; n].into_boxed_slice(),
        };
        for m in t.mirror.iter().take(MAX_MIRRORS) {
            let Some(d) = PortId::new(m.destination) else {
                continue;
            };
            p.dest.push(d);
            let k = (p.dest.len() - 1) as u8;
            if let Some(x) = p.is_dest.get_mut(m.destination) {
                *x = true;
            }
            for &s in &m.sources {
                if m.direction.rx() {
                    if let Some(x) = p.rx.get_mut(s) {
                        *x = Some(k);
                    }
                }
                if m.direction.tx() {
                    if let Some(x) = p.tx.get_mut(s) {
                        *x = Some(k);
                    }
                }
            }
        }
        Some(p)
    }

    /// Whether port `p` is a mirror's destination.
    #[inline]
    pub fn is_dest(&self, p: PortId) -> bool {
        self.is_dest.get(p.index()).copied().unwrap_or(false)
    }
}

/// Frames received on a mirror's destination: dropped before any stage
/// (`mirror_destination`): the port takes no part in forwarding.
#[inline]
pub fn drop_destination_rx(ctx: &Context, ingress: PortId, batch: &mut Batch) {
    let Some(m) = &ctx.plan.mirror else { return };
    if !m.is_dest(ingress) {
        return;
    }
    for meta in &mut batch.meta[..batch.count] {
        if meta.verdict == super::Verdict::Pending {
            meta.verdict = super::Verdict::Drop(DropReason::MirrorDestination);
        }
    }
}

/// Queues the mirror copies of a batch whose originals egress queued.
pub fn run(ctx: &Context, ingress: Egress, batch: &Batch, tx: &mut TxQueues) {
    // One check per batch when no mirror runs.
    let Some(m) = &ctx.plan.mirror else { return };
    // Frame i went to mirror k's destination: bit i of seen[k].
    let mut seen = [0u64; MAX_MIRRORS];
    const _: () = assert!(super::BATCH <= 64, "a bit per frame of a batch");
    // Not copied: runts (no Ethernet header to copy), and frames the
    // link lost before the switch had them (a link down, an impairment's
    // loss on the way in).
    let skip = |i: usize| {
        batch.frame(i).len() < super::classify::ETH_HDR
            || matches!(
                batch.meta[i].verdict,
                super::Verdict::Drop(DropReason::LinkDown | DropReason::ImpairLoss)
            )
    };
    if let Some(p) = ingress.port() {
        let k = m.rx.get(p.index()).copied().flatten().map(usize::from);
        if let Some((k, &dest)) = k.and_then(|k| Some((k, m.dest.get(k)?))) {
            let mut n = 0;
            for i in 0..batch.count {
                if skip(i) {
                    continue;
                }
                if let Some(s) = seen.get_mut(k) {
                    *s |= 1 << i;
                }
                tx.push(
                    dest.into(),
                    TxEntry {
                        mirror: Mirrored::Received,
                        ..TxEntry::new(i, None)
                    },
                );
                n += 1;
            }
            ctx.counters.port(ingress).mirrored.add(n);
        }
    }
    // The originals' queues, as egress left them (the destinations' queues
    // come after them in `dirty`, and hold copies only).
    let queues = tx.dirty.len();
    for d in 0..queues {
        let to = tx.dirty[d];
        let dev = match to {
            Egress::Port(p) => p,
            Egress::Vtep(_) => match &ctx.plan.vxlan {
                Some(v) => v.underlay,
                None => continue,
            },
            Egress::Stack => continue,
        };
        let Some(k) = m.tx.get(dev.index()).copied().flatten().map(usize::from) else {
            continue;
        };
        let (Some(&dest), Some(bits)) = (m.dest.get(k), seen.get(k).copied()) else {
            continue;
        };
        let mut bits = bits;
        let mut n = 0;
        for j in 0..tx.queue(to).len() {
            let e = tx.queue(to)[j];
            let bit = 1u64 << (e.frame & 63);
            if e.mirror != Mirrored::No || bits & bit != 0 {
                continue;
            }
            bits |= bit;
            tx.push(
                dest.into(),
                TxEntry {
                    mirror: Mirrored::As(to),
                    ..e
                },
            );
            n += 1;
        }
        if let Some(s) = seen.get_mut(k) {
            *s = bits;
        }
        ctx.counters.port(dev.into()).mirrored.add(n);
    }
}
