//! ctl: control frames for the switch's L2 protocols (l2/): a copy of each
//! frame of a kind some protocol claimed goes to the l2 thread
//! (`L2Link::to_l2`); a consumed kind stops here (verdict `Control`).
//! And the other way, [`take_output`]: frames the l2 thread sends out of
//! one given port, queued straight to that port (no forward: a BPDU
//! leaves a discarding port too).
//!
//! With no protocol claiming anything this stage costs one load per
//! batch; with one, a test of the destination's multicast bit per frame
//! (control frames are all multicast), so known unicast pays nothing more.

use super::{Batch, Context, TxEntry, TxQueues, Verdict, BATCH};
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};
use crate::l2::{CtlKind, CtlPkt, L2Link};
use shunt_parsers::{ethernet, EthernetFrame, MacAddr, Untagged, VlanTag};

/// The destination of BPDUs (802.1D's bridge group address).
pub const BRIDGE_GROUP: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]);

/// Copies (or takes) the batch's control frames for the l2 thread and
/// wakes it once if it got any. Returns the frames handed over.
pub fn run(ctx: &Context, ingress: PortId, batch: &mut Batch) -> usize {
    let Some(l2) = ctx.l2 else { return 0 };
    let wants = l2.wants();
    if wants == 0 {
        return 0;
    }
    let mut handed = 0;
    for i in 0..batch.count.min(BATCH) {
        let m = batch.meta[i];
        // A BPDU is taken also where classify found no network for it (a
        // trunk without a native network); anything else decided stays so.
        let open = matches!(
            m.verdict,
            Verdict::Pending | Verdict::Drop(DropReason::VlanUntagged)
        );
        if !open {
            continue;
        }
        let f = batch.frame(i);
        // The one test per frame: control frames are multicast.
        if !matches!(f.first(), Some(b) if b & 1 == 1) {
            continue;
        }
        let Some(kind) = kind_of(ctx, wants, &m, f) else {
            continue;
        };
        if m.verdict != Verdict::Pending && kind != CtlKind::Bpdu {
            continue;
        }
        let consume = l2.consumes(kind);
        // A dry run hands nothing over: it says what would be taken.
        let copied = ctx.dry || copy(l2, ctx.worker, ingress, &m, f, kind);
        if copied {
            handed += 1;
        }
        if consume {
            batch.meta[i].verdict = if copied {
                Verdict::Control(kind)
            } else {
                Verdict::Drop(DropReason::HostQueueFull)
            };
        }
    }
    if handed > 0 && !ctx.dry {
        L2Link::signal(&l2.to_l2_event);
    }
    handed
}

/// The kind of control frame `f` is, if some protocol wants it.
#[inline]
fn kind_of(ctx: &Context, wants: u8, m: &super::Meta, f: &[u8]) -> Option<CtlKind> {
    let dst = ethernet::dst_addr(f)?;
    if dst == BRIDGE_GROUP {
        return (wants & CtlKind::Bpdu.bit() != 0).then_some(CtlKind::Bpdu);
    }
    super::mcast::control_kind(ctx, wants, m, f)
}

/// Hands a copy of frame `f` (untagged) to the l2 thread; false when it
/// did not fit or the queue was full (both counted).
fn copy(
    l2: &L2Link,
    worker: usize,
    ingress: PortId,
    m: &super::Meta,
    f: &[u8],
    kind: CtlKind,
) -> bool {
    let tag = usize::from(m.tag_len);
    let vid = match tag {
        0 => 0,
        _ => EthernetFrame::new_checked(f)
            .ok()
            .and_then(|e| VlanTag::new_checked(e.payload()).ok().map(|t| t.vid()))
            .unwrap_or(0),
    };
    let Some(u) = Untagged::new(f, tag) else {
        return false;
    };
    match CtlPkt::gather(ingress, m.net, kind, vid, &[u.macs(), u.rest()]) {
        Some(p) => l2.push(worker, p),
        None => {
            if let Some(c) = l2.counters.get(worker) {
                c.to_l2_oversize.add(1);
            }
            false
        }
    }
}

/// Fills `batch` with up to a batch of frames the l2 thread wants sent
/// and queues each on its port, tagged as the port carries its network
/// (untagged without one). A port that does not carry the network drops
/// it as `no_destination`. Returns the frames taken (0: none left).
pub fn take_output(ctx: &Context, l2: &L2Link, batch: &mut Batch, tx: &mut TxQueues) -> usize {
    batch.clear();
    let mut taken = 0;
    while batch.count < BATCH {
        let Some(p) = l2.from_l2.pop() else { break };
        taken += 1;
        let i = batch.count;
        if !batch.push(p.frame()) {
            ctx.counters.port(p.port.into()).drops[DropReason::Oversize as usize].add(1);
            continue;
        }
        let to = Egress::Port(p.port);
        let vid = match p.net {
            None => Some(None),
            Some(n) => ctx
                .plan
                .ports
                .get(p.port.index())
                .and_then(|pp| pp.egress_vid.get(n.index()).copied().flatten())
                .map(|c| c.tag()),
        };
        batch.meta[i].net = p.net;
        match vid {
            Some(vid) => {
                batch.meta[i].verdict = Verdict::Unicast(to);
                tx.push(to, TxEntry::new(i, vid));
            }
            None => {
                batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination);
                ctx.counters.port(to).drops[DropReason::NoDestination as usize].add(1);
            }
        }
    }
    if let Some(c) = l2.counters.get(ctx.worker) {
        c.from_l2.add(taken as u64);
    }
    taken
}
