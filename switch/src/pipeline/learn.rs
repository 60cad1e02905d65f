//! learn: the source MAC of each frame is learned against its network and
//! ingress port. Multicast and broadcast sources are never learned, and
//! such frames are dropped. Only frames *from* a MAC refresh it.

use super::{Batch, Context, Verdict, BATCH};
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};
use shunt_parsers::ethernet;
use shunt_tables::Learn;

/// What learning did with a frame's source, for counters and the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    Nothing,
    New,
    Refreshed,
    Moved {
        from: Egress,
    },
    Static,
    Full,
    Disabled,
    /// Not learned: the port holds its `max_learned` MACs.
    Limited,
    /// Not learned: the MAC flapped and is blocked (`mac_flap`).
    Blocked,
}

impl Learned {
    /// The counted reason of learning that did not happen (the frame goes
    /// on): `fdb_full`, `port_learn_limit`, `mac_flap_blocked`.
    pub fn reason(self) -> Option<DropReason> {
        match self {
            Learned::Full => Some(DropReason::FdbFull),
            Learned::Limited => Some(DropReason::PortLearnLimit),
            Learned::Blocked => Some(DropReason::MacFlapBlocked),
            _ => None,
        }
    }
}

pub fn run(ctx: &Context, ingress: PortId, batch: &mut Batch, now_ms: u64) {
    // Once per batch: a dry run asks the FDB what learning would do.
    match ctx.dry {
        false => run_as::<false>(ctx, ingress, batch, now_ms),
        true => run_as::<true>(ctx, ingress, batch, now_ms),
    }
}

/// The stage, learning (`DRY` false) or only asking what learning would
/// do (a dry run: the FDB and the flap detector are not written).
#[inline(always)]
fn run_as<const DRY: bool>(ctx: &Context, ingress: PortId, batch: &mut Batch, now_ms: u64) {
    let Some(port) = ctx.plan.ports.get(ingress.index()) else {
        return;
    };
    let c = ctx.counters.port(ingress.into());
    // Spanning tree: a discarding port learns nothing (a learning one does).
    let stp_learns = super::stp::state(ctx, ingress) != crate::stp::PortState::Discarding;
    // MAC-flap blocks: one load per batch while none is set.
    let blocking = ctx.guard.flap.blocking();
    // Bounded by BATCH, so that indexing `meta` needs no check per frame.
    for i in 0..batch.count.min(BATCH) {
        if batch.meta[i].verdict != Verdict::Pending {
            continue;
        }
        // Every frame that got here holds a whole Ethernet header (classify,
        // decap and the stack's queue checked); `None` cannot happen.
        let Some(src) = ethernet::src_addr(batch.frame(i)) else {
            batch.meta[i].verdict = Verdict::Drop(DropReason::Runt);
            continue;
        };
        if src.is_multicast() {
            batch.meta[i].verdict = Verdict::Drop(DropReason::SrcMulticast);
            continue;
        }
        // macvlan networks deliver by the hosts' fixed MACs: no learning.
        let Some(net) = batch.meta[i].net else {
            continue;
        };
        let macvlan = ctx
            .plan
            .nets
            .get(net.index())
            .is_some_and(|n| n.macvlan.is_some());
        if !port.learning || macvlan || !stp_learns {
            batch.meta[i].learned = Learned::Disabled;
            continue;
        }
        if blocking && ctx.guard.flap.is_blocked(net.raw(), src.as_bytes()) {
            c.drops[DropReason::MacFlapBlocked as usize].add(1);
            batch.meta[i].learned = Learned::Blocked;
            continue;
        }
        // A frame from a remote VTEP is learned behind that VTEP.
        let from = super::vxlan::from(ingress.into(), &batch.meta[i]);
        let learned = match DRY {
            false => ctx
                .fdb
                .learn(net.raw(), src.as_bytes(), from.encode(), now_ms),
            true => ctx
                .fdb
                .would_learn(net.raw(), src.as_bytes(), from.encode()),
        };
        batch.meta[i].learned = match learned {
            Learn::New => {
                c.learned.add(1);
                Learned::New
            }
            Learn::Refreshed => Learned::Refreshed,
            Learn::Moved { from: old } => {
                c.moved.add(1);
                let at_ms = now_ms;
                let (net, mac, to) = (net.raw(), *src.as_bytes(), from.encode());
                let m = super::flap::Move {
                    net,
                    mac,
                    from: old,
                    to,
                    at_ms,
                };
                if !DRY {
                    ctx.guard.flap.moved(ctx.worker, m);
                }
                match Egress::decode(old) {
                    Some(from) => Learned::Moved { from },
                    None => Learned::Nothing,
                }
            }
            Learn::Static => Learned::Static,
            Learn::Full => {
                // The frame goes on; only its learning is lost.
                c.drops[DropReason::FdbFull as usize].add(1);
                Learned::Full
            }
            Learn::PortLimit => {
                // As fdb_full: the frame goes on.
                c.drops[DropReason::PortLearnLimit as usize].add(1);
                Learned::Limited
            }
            // Group sources were dropped above; the next frame retries a
            // contended key.
            Learn::GroupSource | Learn::ReservedPort | Learn::Contended => Learned::Nothing,
        };
    }
}
