//! local: frames for the switch itself go to the switch's stack instead of
//! being forwarded (Firecracker's detour for its metadata service): frames
//! to the switch's MAC on the network, ARP requests for the switch's
//! address, and, on networks with ARP suppression, ARP requests for hosts
//! the switch knows, which it answers in their place.

use super::{Batch, Context, Verdict};
use crate::counters::DropReason;
use crate::ids::Segment;
use crate::stack::{StackLink, StackPkt};
use std::net::Ipv4Addr;

const ETHERTYPE_ARP: u16 = 0x0806;

/// Returns how many frames were detoured (the caller wakes the host thread).
pub fn run(ctx: &Context, worker: usize, batch: &mut Batch) -> usize {
    let Some(host) = ctx.stack else { return 0 };
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
        let tl = m.tag_len as usize;
        let body = &f[12 + tl..];
        let mut local = f[0..6] == na.mac;
        let mut suppressed = false;
        if !local && body.len() >= 2 + 28 && u16::from_be_bytes([body[0], body[1]]) == ETHERTYPE_ARP
        {
            let arp = &body[2..];
            // Ethernet/IPv4 ARP only.
            if arp[0..6] == [0, 1, 8, 0, 6, 4] {
                let op = u16::from_be_bytes([arp[6], arp[7]]);
                let sha: [u8; 6] = [arp[8], arp[9], arp[10], arp[11], arp[12], arp[13]];
                let spa = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
                let tpa = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
                if na.arp_suppress && !spa.is_unspecified() {
                    let _ = host.snoop.push((net.raw(), spa, sha));
                }
                if op == 1 {
                    if na.ip == Some(tpa) {
                        local = true;
                    } else if na.arp_suppress && spa != tpa && host.arp_known(net, tpa).is_some() {
                        local = true;
                        suppressed = true;
                    }
                }
            }
        }
        if !local {
            continue;
        }
        // The switch's stack sees untagged frames of one network.
        let verdict = match StackPkt::gather(Segment::Net(net), &[&f[..12], body]) {
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
