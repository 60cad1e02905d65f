//! egress: queues each frame on its output ports with the VLAN it must
//! carry there (untagged toward access ports and a trunk's native network,
//! tagged with the network's VLAN toward trunks). The tag itself is
//! written when the queue is flushed, by the port, without copying.

use super::{forward::port_up, Batch, Context, TxEntry, TxQueues, Verdict};
use crate::counters::{DropReason, FloodCause};
use crate::ids::{Egress, NetId, PortId, Vid};

pub fn run(ctx: &Context, ingress: Egress, batch: &mut Batch, tx: &mut TxQueues) {
    let c = ctx.counters.port(ingress);
    // The ports a flood goes to, worked out once per network and cause in
    // a batch rather than per frame (a batch nearly always floods one set):
    // the member checks (link, spanning tree, flood flags, tag) cost more
    // than the copies' queueing. Taken out of `tx` to be read while `tx`
    // is pushed to; put back below (no allocation either way).
    let mut set = std::mem::take(&mut tx.flood);
    let mut key: Option<(usize, FloodCause)> = None;
    for i in 0..batch.count {
        let m = batch.meta[i];
        let net = m.net.map_or(usize::MAX, NetId::index);
        match m.verdict {
            Verdict::Unicast(p) => match egress_vid(ctx, p, net) {
                None => batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination),
                Some(vid) => tx.push(p, TxEntry::new(i, vid)),
            },
            Verdict::Flood(cause) => {
                let Some(n) = ctx.plan.nets.get(net) else {
                    continue;
                };
                if key != Some((net, cause)) {
                    key = Some((net, cause));
                    flood_set(ctx, ingress, net, cause, &n.members, &mut set);
                }
                let mut sent = set.len();
                for &(p, vid) in &set {
                    tx.push(p.into(), TxEntry::new(i, vid));
                }
                // Head-end replication, never from a VTEP back to VTEPs.
                if m.vtep.is_none() {
                    sent += super::vxlan::flood_peers(ctx, net, i, tx);
                }
                if sent == 0 {
                    batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination);
                }
            }
            Verdict::Macvlan { parent, except, .. } => {
                let Some(n) = ctx.plan.nets.get(net) else {
                    continue;
                };
                let mvparent = n.macvlan.map(|(_, p)| p);
                let mut sent = 0;
                for &p in &n.members {
                    if Egress::Port(p) == ingress
                        || Some(p) == except
                        || (Some(p) == mvparent && !parent)
                        || !port_up(ctx, p.into())
                        || !super::stp::forwarding(ctx, p)
                    {
                        continue;
                    }
                    let vid = ctx.plan.ports[p.index()].egress_vid[net].and_then(|c| c.tag());
                    tx.push(p.into(), TxEntry::new(i, vid));
                    sent += 1;
                }
                if sent == 0 {
                    batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination);
                }
            }
            Verdict::Group { slot, .. } => {
                if super::mcast::egress(ctx, ingress, batch, i, net, slot, tx) == 0 {
                    batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination);
                }
            }
            Verdict::Drop(_) | Verdict::Pending | Verdict::Local | Verdict::Control(_) => {}
        }
        if let Verdict::Drop(r) = batch.meta[i].verdict {
            c.drops[r as usize].add(1);
        }
    }
    tx.flood = set;
}

/// The members of network `net` a flood of `cause` from `ingress` goes
/// to, with the tag each carries, into `set` (cleared first).
fn flood_set(
    ctx: &Context,
    ingress: Egress,
    net: usize,
    cause: FloodCause,
    members: &[PortId],
    set: &mut Vec<(PortId, Option<Vid>)>,
) {
    set.clear();
    for &p in members {
        if Egress::Port(p) == ingress || !port_up(ctx, p.into()) || !super::stp::forwarding(ctx, p)
        {
            continue;
        }
        let Some(pp) = ctx.plan.ports.get(p.index()) else {
            continue;
        };
        let allowed = match cause {
            FloodCause::UnknownUnicast => pp.flood_unknown,
            FloodCause::Multicast => pp.flood_multicast,
            FloodCause::Broadcast => true,
        };
        if allowed {
            let vid = pp.egress_vid.get(net).copied().flatten();
            set.push((p, vid.and_then(|c| c.tag())));
        }
    }
}

/// The tag frame of network `net` carries out of `to` (`Some(None)`:
/// untagged), or `None` when `to` does not carry the network.
#[inline]
fn egress_vid(ctx: &Context, to: Egress, net: usize) -> Option<Option<Vid>> {
    match to {
        Egress::Port(p) => ctx
            .plan
            .ports
            .get(p.index())
            .and_then(|p| p.egress_vid.get(net).copied().flatten())
            .map(|c| c.tag()),
        // Remote VTEPs carry networks with a VNI, untagged inside VXLAN.
        Egress::Vtep(_) => ctx.plan.nets.get(net).and_then(|n| n.vni).map(|_| None),
        Egress::Stack => None,
    }
}
