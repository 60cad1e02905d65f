//! forward: known unicast goes to one port; broadcast, multicast and
//! unknown unicast are flooded; a destination learned on the ingress port
//! is dropped (split horizon); link-local control frames stay here.

use super::{Batch, Context, Verdict, BATCH};
use crate::counters::{DropReason, FloodCause};
use shunt_parsers::EthernetFrame;
use std::sync::atomic::Ordering::Relaxed;

pub fn run(ctx: &Context, ingress: u16, batch: &mut Batch) {
    let c = &ctx.counters.ports[ingress as usize];
    // Bounded by BATCH, so that indexing `meta` needs no check per frame.
    for i in 0..batch.count.min(BATCH) {
        if batch.meta[i].verdict != Verdict::Pending {
            continue;
        }
        // Every frame that got here holds a whole Ethernet header (classify,
        // decap and process_host checked); the `else` cannot happen.
        let Ok(eth) = EthernetFrame::new_checked(batch.frame(i)) else {
            batch.meta[i].verdict = Verdict::Drop(DropReason::Runt);
            continue;
        };
        let dst = eth.dst_addr();
        let net = batch.meta[i].net;
        if let Some(&(mode, parent)) = ctx
            .plan
            .nets
            .get(net as usize)
            .and_then(|n| n.macvlan.as_ref())
        {
            let src = eth.src_addr();
            let v = super::macvlan::decide(ctx, net, mode, parent, ingress, dst, src);
            match v {
                Verdict::Macvlan { cause, .. } => c.flooded[cause as usize].add(1),
                Verdict::Flood(cause) => c.flooded[cause as usize].add(1),
                _ => {}
            }
            batch.meta[i].verdict = v;
            continue;
        }
        let v = if dst.is_multicast() {
            if dst.is_broadcast() {
                Verdict::Flood(FloodCause::Broadcast)
            } else if dst.is_link_local() {
                // 802.1D reserved group addresses (STP, LACP, LLDP...).
                Verdict::Drop(DropReason::LinkLocal)
            } else {
                Verdict::Flood(FloodCause::Multicast)
            }
        } else {
            let from = super::vxlan::from(ingress, &batch.meta[i]);
            match ctx.fdb.lookup_port(net, dst.as_bytes()) {
                // Split horizon: from a VTEP, never back to a VTEP.
                Some(port)
                    if port == from
                        || (super::vxlan::is_vtep(from) && super::vxlan::is_vtep(port)) =>
                {
                    Verdict::Drop(DropReason::SamePort)
                }
                Some(port) if port_up(ctx, port) => Verdict::Unicast(port),
                _ => Verdict::Flood(FloodCause::UnknownUnicast),
            }
        };
        if let Verdict::Flood(cause) = v {
            c.flooded[cause as usize].add(1);
        }
        batch.meta[i].verdict = v;
    }
}

#[inline]
pub fn port_up(ctx: &Context, port: u16) -> bool {
    // A remote VTEP is reachable while the underlay port is up.
    let port = match &ctx.plan.vxlan {
        Some(v) if super::vxlan::is_vtep(port) => v.underlay,
        _ => port,
    };
    ctx.port_up
        .get(port as usize)
        .is_some_and(|u| u.load(Relaxed))
}
