//! local: frames for the switch itself go to the switch's stack instead of
//! being forwarded (Firecracker's detour for its metadata service): frames
//! to the switch's MAC on the network, ARP requests for the switch's
//! address, and, on networks with ARP suppression, ARP requests for hosts
//! the switch knows, which it answers in their place.

use super::{Batch, Context, Verdict};
use crate::counters::DropReason;
use crate::ids::Segment;
use crate::stack::{StackLink, StackPkt};
use shunt_parsers::gso;
use shunt_parsers::{ethernet, ArpOp, ArpPacket, ArpRepr, EtherType, Untagged};

/// Returns how many frames were detoured (the caller wakes the host thread).
pub fn run(ctx: &Context, worker: usize, batch: &mut Batch) -> usize {
    let Some(host) = ctx.stack else { return 0 };
    // A dry run decides the same but hands nothing to the stack (tested
    // only on the frames for the switch and ARP, not on every frame).
    let dry = ctx.dry;
    let mut delivered = 0;
    for i in 0..batch.count {
        let m = batch.meta[i];
        let Some(net) = m.net else { continue };
        if m.verdict != Verdict::Pending || !host.serves(net) {
            continue;
        }
        let f = batch.frame(i);
        let Some(na) = host.nets.get(net.index()) else {
            continue;
        };
        // The frame without the tag classify found: what the stack sees.
        let Some(frame) = Untagged::new(f, usize::from(m.tag_len)) else {
            continue;
        };
        let mut local = ethernet::dst_addr(f) == Some(na.mac);
        let mut suppressed = false;
        let arp = match frame.ethertype() {
            EtherType::Arp if !local => ArpPacket::new_checked(frame.payload()).ok(),
            _ => None,
        };
        // Ethernet/IPv4 ARP only.
        if let Some(a) = arp.and_then(|p| ArpRepr::parse(&p).ok()) {
            if na.arp_suppress && !a.sender_ip.is_unspecified() && !dry {
                let _ = host.snoop.push((net.raw(), a.sender_ip, a.sender_mac));
            }
            if a.op == ArpOp::Request {
                if na.ip == Some(a.target_ip) {
                    local = true;
                } else if na.arp_suppress
                    && a.sender_ip != a.target_ip
                    && host.arp_known(net, a.target_ip).is_some()
                {
                    local = true;
                    suppressed = true;
                }
            }
        }
        if !local {
            continue;
        }
        // The stack checks checksums: one the sender left to compute is
        // completed first. It takes no super-frame (it has no TCP).
        if m.off.gso.is_some() {
            batch.meta[i].verdict = Verdict::Drop(DropReason::StackGso);
            continue;
        }
        if let Some(c) = m.off.csum {
            if gso::complete_csum(batch.frame_mut(i), c).is_err() {
                batch.meta[i].verdict = Verdict::Drop(DropReason::BadOffload);
                continue;
            }
            batch.meta[i].off.csum = None;
        }
        if dry {
            batch.meta[i].verdict = Verdict::Local;
            continue;
        }
        let Some(frame) = Untagged::new(batch.frame(i), usize::from(m.tag_len)) else {
            continue;
        };
        // The switch's stack sees untagged frames of one network.
        let verdict = match StackPkt::gather(Segment::Net(net), &[frame.macs(), frame.rest()]) {
            Some(p) if host.to_host.push(p).is_ok() => {
                delivered += 1;
                if let Some(c) = host.counters.get(worker) {
                    c.delivered.add(1);
                    if suppressed {
                        c.arp_suppressed.add(1);
                    }
                }
                Verdict::Local
            }
            _ => Verdict::Drop(DropReason::HostQueueFull),
        };
        batch.meta[i].verdict = verdict;
    }
    delivered
}

/// Fills `batch` with frames the switch's stack wants sent (up to a batch).
pub fn take_output(host: &StackLink, batch: &mut Batch) {
    batch.clear();
    while batch.count < super::BATCH {
        let Some(p) = host.from_host.pop() else { break };
        let i = batch.count;
        if batch.push(p.frame()) {
            // The underlay's frames have no network (`vxlan::stack_output`).
            batch.meta[i].net = match p.net {
                Segment::Net(n) => Some(n),
                Segment::Underlay => None,
            };
        }
    }
}
