//! mcast: IGMP/MLD snooping in the datapath (docs/multicast.md). Which
//! multicast frames are IGMP or MLD (copied to the l2 thread by `ctl`),
//! where a multicast IP frame goes on a snooping network ([`decide`], from
//! forward), and the copies to a group's ports ([`egress`]). The state is
//! the snapshot the l2 thread publishes (l2/mdb.rs), loaded by the worker
//! once per batch (`Context::mdb`).
//!
//! As the Linux bridge with `mcast_snooping 1`:
//! - a family (IPv4, IPv6) with no querier known is flooded as without
//!   snooping;
//! - 224.0.0.0/24 and ff02::1 are always flooded;
//! - a registered group goes to its members and the family's router ports;
//! - an unregistered group's data goes to the router ports (the bridge's
//!   `mrouters_only`), or everywhere with `multicast_flood_unregistered`;
//! - IGMP and MLD messages never go by their group: IGMPv1/v2 and MLDv1
//!   reports go to the router ports only, everything else (queries,
//!   leaves, IGMPv3/MLDv2 reports) is flooded.
//!
//! Only frames whose destination MAC is multicast get here: known unicast
//! pays nothing.

use super::{forward::port_up, Batch, Context, Meta, TxEntry, TxQueues, Verdict};
use crate::ids::{Egress, NetId};
use crate::l2::mdb::{Delivery, Group};
use crate::l2::CtlKind;
use shunt_parsers::{igmp, mld, EtherType, IpProtocol, Ipv4Packet, Ipv6Packet, Untagged};

/// What a multicast IP frame is to snooping: its group, and whether an
/// unregistered group sends it to the router ports only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McastFrame {
    pub group: Group,
    pub routers_only: bool,
    /// IGMP or MLD (a copy goes to the l2 thread).
    pub control: Option<CtlKind>,
}

/// Reads frame `f` (tag of `tag_len` bytes) as a multicast IP packet.
#[inline]
pub fn classify(f: &[u8], tag_len: usize) -> Option<McastFrame> {
    let u = Untagged::new(f, tag_len)?;
    match u.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(u.payload()).ok()?;
            let dst = ip.dst_addr();
            if !dst.is_multicast() {
                return None;
            }
            let (routers_only, control) = if ip.protocol() == IpProtocol::Unknown(2) {
                match igmp::in_ipv4(u.payload()).map(|m| m.msg_type()) {
                    Some(t) => (
                        matches!(t, igmp::IgmpType::ReportV1 | igmp::IgmpType::ReportV2),
                        Some(CtlKind::Igmp),
                    ),
                    None => (true, None),
                }
            } else {
                (true, None)
            };
            Some(McastFrame {
                group: Group::V4(dst),
                routers_only,
                control,
            })
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(u.payload()).ok()?;
            let dst = ip.dst_addr();
            if !dst.is_multicast() {
                return None;
            }
            let mld = mld::icmpv6_after_hop_by_hop(u.payload())
                .and_then(|(_, t)| mld::MldType::from_u8(t))
                .filter(|_| mld::in_ipv6(u.payload()).is_some());
            let (routers_only, control) = match mld {
                Some(t) => (t == mld::MldType::ReportV1, Some(CtlKind::Mld)),
                None => (true, None),
            };
            Some(McastFrame {
                group: Group::V6(dst),
                routers_only,
                control,
            })
        }
        _ => None,
    }
}

/// The kind of control frame a multicast frame `f` is for the snooping
/// protocol (IGMP, MLD) on a snooping network, if it wants it.
#[inline]
pub fn control_kind(ctx: &Context, wants: u8, m: &Meta, f: &[u8]) -> Option<CtlKind> {
    if wants & (CtlKind::Igmp.bit() | CtlKind::Mld.bit()) == 0 {
        return None;
    }
    let net = m.net?;
    if !ctx.mdb?.snoops(net) {
        return None;
    }
    let k = classify(f, usize::from(m.tag_len))?.control?;
    (wants & k.bit() != 0).then_some(k)
}

/// Where a multicast frame of network `net` goes under snooping; None
/// where snooping has no say (it is off, the frame is not IP, or it is
/// flooded): forward floods it then.
#[inline]
pub fn decide(ctx: &Context, net: NetId, m: &Meta, f: &[u8]) -> Option<Verdict> {
    let mdb = ctx.mdb?;
    let ns = mdb.net(net)?;
    let mf = classify(f, usize::from(m.tag_len))?;
    // (A dry run's worker has no counters here: nothing counted.)
    let c = ctx.l2.and_then(|l| l.mcast.get(ctx.worker));
    match mdb.delivery(net, ns, mf.group, mf.routers_only, mf.control.is_some()) {
        Delivery::Set { slot, registered } => {
            if let Some(c) = c {
                match registered {
                    true => c.to_members.add(1),
                    false => c.to_routers.add(1),
                }
            }
            Some(Verdict::Group { slot, registered })
        }
        Delivery::Flood => {
            if let Some(c) = c {
                match mf.group.always_flooded() {
                    true => c.flooded_link_local.add(1),
                    false => c.flooded_unregistered.add(1),
                }
            }
            None
        }
    }
}

/// Queues frame `i` (network `net`) on the ports of set `slot` that are
/// in the network, up and not its ingress, and on the remote VTEPs (whose
/// listeners snooping cannot see); returns the copies queued.
pub fn egress(
    ctx: &Context,
    ingress: Egress,
    batch: &Batch,
    i: usize,
    net: usize,
    slot: u16,
    tx: &mut TxQueues,
) -> usize {
    let (Some(n), Some(set)) = (ctx.plan.nets.get(net), ctx.mdb.and_then(|m| m.set(slot))) else {
        return 0;
    };
    let mut sent = 0;
    for &p in &n.members {
        if Egress::Port(p) == ingress || !set.contains(p) || !port_up(ctx, p.into()) {
            continue;
        }
        let vid = ctx.plan.ports[p.index()].egress_vid[net].and_then(|c| c.tag());
        tx.push(p.into(), TxEntry::new(i, vid));
        sent += 1;
    }
    if batch.meta[i].vtep.is_none() {
        sent += super::vxlan::flood_peers(ctx, net, i, tx);
    }
    sent
}
