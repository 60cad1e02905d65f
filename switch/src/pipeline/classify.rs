//! classify: which network a frame belongs to, by ingress port and VLAN tag.
//!
//! The rules (DESIGN.md): on an access port, untagged and priority-tagged
//! (VID 0) frames join the port's network and any other tag is dropped; on
//! a trunk, tagged frames join the network of their VLAN if allowed, and
//! untagged frames join the native network or are dropped without one; VID
//! 4095 is dropped everywhere. An outer 802.1ad tag (0x88a8) is not a VLAN
//! tag to this switch (an 802.1Q C-VLAN bridge): such a frame is handled as
//! untagged, its S-tag carried as data (docs/vlan.md).

use super::{Batch, Context, Verdict};
use crate::counters::DropReason;
use crate::ids::PortId;
use shunt_parsers::gso::Segmenter;
use shunt_parsers::virtio_net::Gso;
use shunt_parsers::{vlan, EtherType, EthernetFrame, VlanTag};

pub const ETH_HDR: usize = shunt_parsers::ethernet::HEADER_LEN;
pub const TPID_8021Q: u16 = EtherType::Vlan.to_u16();

pub fn run(ctx: &Context, ingress: PortId, batch: &mut Batch) {
    let Some(port) = ctx.plan.ports.get(ingress.index()) else {
        return;
    };
    for i in 0..batch.count {
        // Dropped on receive (bad offload metadata): stays dropped.
        if batch.meta[i].verdict != Verdict::Pending {
            continue;
        }
        let verdict = process(port, batch, i);
        if let Err(r) = verdict {
            batch.meta[i].verdict = Verdict::Drop(r);
        }
    }
}

#[inline]
fn process(port: &super::PortPlan, batch: &mut Batch, i: usize) -> Result<(), DropReason> {
    let f = batch.frame(i);
    let len = f.len();
    let eth = EthernetFrame::new_checked(f).map_err(|_| DropReason::Runt)?;
    let (net, tag_len, pcp_dei) = if eth.ethertype() == EtherType::Vlan {
        let tag = VlanTag::new_checked(eth.payload()).map_err(|_| DropReason::Runt)?;
        let vid = tag.vid();
        // PCP and DEI, the top 4 bits of the TCI, kept for the egress tag.
        let pcp_dei = (tag.tci() >> 8) as u8 & 0xf0;
        let net = match vid {
            0 => port.untagged_net, // priority tag
            vlan::VID_RESERVED => return Err(DropReason::VlanReserved),
            v => port.vid_net[v as usize],
        };
        let Some(net) = net else {
            return Err(if vid == 0 {
                DropReason::VlanUntagged
            } else {
                DropReason::VlanNotAllowed
            });
        };
        (net, vlan::TAG_LEN as u8, pcp_dei)
    } else {
        let Some(net) = port.untagged_net else {
            return Err(DropReason::VlanUntagged);
        };
        (net, 0, 0)
    };
    // A super-frame is as long as its longest segment (VPP#3184: a GSO
    // frame measured whole against the MTU is a black hole).
    let len = match batch.meta[i].off.gso {
        Gso::None => len,
        _ => {
            let s = Segmenter::new(f, &batch.meta[i].off).map_err(|_| DropReason::BadOffload)?;
            (s.payload + s.mss).min(len)
        }
    };
    if len > port.max_frame + tag_len as usize {
        return Err(DropReason::Oversize);
    }
    let m = &mut batch.meta[i];
    m.net = Some(net);
    m.tag_len = tag_len;
    m.pcp_dei = pcp_dei;
    Ok(())
}
