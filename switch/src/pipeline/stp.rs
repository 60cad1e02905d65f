//! stp: the spanning tree's port states, enforced (docs/stp.md). A frame
//! received on a port that is not forwarding is dropped as
//! `stp_discarding` (after learn, which learns on a learning port and not
//! on a discarding one, and after ctl, which has taken the BPDUs); floods
//! leave out ports that are not forwarding (no copy, as for a port that is
//! down), and known unicast to such a port is dropped as `stp_discarding`.
//!
//! The states are one atomic byte per port, written by the l2 thread
//! (stp::glue) and read here: one load per batch for the ingress port,
//! one per flood member and unicast. With `stp = "off"` the context has
//! none and each check is one branch.

use super::{Batch, Context, Verdict, BATCH};
use crate::counters::DropReason;
use crate::ids::PortId;
use crate::stp::PortState;
use std::sync::atomic::Ordering::Relaxed;

/// The port's state (forwarding when spanning tree is off or the port is
/// outside it).
#[inline]
pub fn state(ctx: &Context, p: PortId) -> PortState {
    match ctx.stp {
        None => PortState::Forwarding,
        Some(s) => s.get(p.index()).map_or(PortState::Forwarding, |x| {
            PortState::from_u8(x.load(Relaxed))
        }),
    }
}

#[inline]
pub fn forwarding(ctx: &Context, p: PortId) -> bool {
    ctx.stp.is_none() || state(ctx, p) == PortState::Forwarding
}

/// Drops what is still pending in a batch from a port that is not
/// forwarding. Returns the frames dropped.
pub fn run(ctx: &Context, ingress: PortId, batch: &mut Batch) -> usize {
    if forwarding(ctx, ingress) {
        return 0;
    }
    let mut n = 0;
    for i in 0..batch.count.min(BATCH) {
        if batch.meta[i].verdict == Verdict::Pending {
            batch.meta[i].verdict = Verdict::Drop(DropReason::StpDiscarding);
            n += 1;
        }
    }
    n
}
