//! egress: queues each frame on its output ports with the VLAN it must
//! carry there (untagged toward access ports and a trunk's native network,
//! tagged with the network's VLAN toward trunks). The tag itself is
//! written when the queue is flushed, by the port, without copying.

use super::{forward::port_up, Batch, Context, TxEntry, TxQueues, Verdict, NO_NET};
use crate::counters::{DropReason, FloodCause};

pub fn run(ctx: &Context, ingress: u16, batch: &mut Batch, tx: &mut TxQueues) {
    let c = &ctx.counters.ports[ingress as usize];
    for i in 0..batch.count {
        let m = batch.meta[i];
        let net = m.net as usize;
        match m.verdict {
            Verdict::Unicast(p) => {
                let vid = egress_vid(ctx, p, net);
                if vid == NO_NET {
                    batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination);
                } else {
                    tx.push(
                        p,
                        TxEntry {
                            frame: i as u8,
                            vid,
                        },
                    );
                }
            }
            Verdict::Flood(cause) => {
                let Some(n) = ctx.plan.nets.get(net) else {
                    continue;
                };
                let mut sent = 0;
                for &p in &n.members {
                    if p == ingress || !port_up(ctx, p) {
                        continue;
                    }
                    let pp = &ctx.plan.ports[p as usize];
                    let allowed = match cause {
                        FloodCause::UnknownUnicast => pp.flood_unknown,
                        FloodCause::Multicast => pp.flood_multicast,
                        FloodCause::Broadcast => true,
                    };
                    if allowed {
                        tx.push(
                            p,
                            TxEntry {
                                frame: i as u8,
                                vid: pp.egress_vid[net],
                            },
                        );
                        sent += 1;
                    }
                }
                // Head-end replication, never from a VTEP back to VTEPs.
                if m.vtep == super::vxlan::NO_VTEP {
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
                let mvparent = n.macvlan.map(|(_, p)| p).unwrap_or(NO_NET);
                let mut sent = 0;
                for &p in &n.members {
                    if p == ingress || p == except || (p == mvparent && !parent) || !port_up(ctx, p)
                    {
                        continue;
                    }
                    tx.push(
                        p,
                        TxEntry {
                            frame: i as u8,
                            vid: ctx.plan.ports[p as usize].egress_vid[net],
                        },
                    );
                    sent += 1;
                }
                if sent == 0 {
                    batch.meta[i].verdict = Verdict::Drop(DropReason::NoDestination);
                }
            }
            Verdict::Drop(_) | Verdict::Pending | Verdict::Local => {}
        }
        if let Verdict::Drop(r) = batch.meta[i].verdict {
            c.drops[r as usize].add(1);
        }
    }
}

#[inline]
fn egress_vid(ctx: &Context, port: u16, net: usize) -> u16 {
    // Remote VTEPs carry networks with a VNI, untagged inside VXLAN.
    if super::vxlan::is_vtep(port) {
        let vni = ctx.plan.nets.get(net).and_then(|n| n.vni);
        return if vni.is_some() { 0 } else { NO_NET };
    }
    ctx.plan
        .ports
        .get(port as usize)
        .and_then(|p| p.egress_vid.get(net).copied())
        .unwrap_or(NO_NET)
}
