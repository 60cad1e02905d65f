//! arp: ARP suppression. The host thread answers ARP requests for hosts it
//! knows *in their place* (the reply says "target IP is at target MAC"), so
//! the request is not flooded to every port. What it knows: the topology's
//! host addresses, plus what ARP snooping saw (`StackLink::snoop`).
//!
//! The frames themselves are read and written by `shunt_parsers::ArpRepr`
//! (`parse_frame`, `reply`, `emit_frame`), the one ARP parser of the switch.

use shunt_parsers::{ArpRepr, MacAddr};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The reply to `req` on behalf of the host that owns `req.target_ip` at
/// `target_mac`, from it to the requester: written into `out` (the
/// caller's buffer, as Firecracker's `write_next_frame`); returns its
/// length. `None` if `req` is not a request or `out` is too short.
pub fn write_reply(req: &ArpRepr, target_mac: MacAddr, out: &mut [u8]) -> Option<usize> {
    let reply = req.reply(target_mac)?;
    reply.emit_frame(req.sender_mac, out).ok()
}

/// The suppression table as the host thread keeps it: the topology's
/// entries (never replaced by snooping... unless the host really moved) and
/// what was snooped. Published to workers as a whole new map when it
/// changed.
#[derive(Debug, Default)]
pub struct ArpTable {
    pub map: HashMap<(u16, Ipv4Addr), MacAddr>,
    dirty: bool,
}

impl ArpTable {
    pub fn insert(&mut self, net: u16, ip: Ipv4Addr, mac: MacAddr) {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return;
        }
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return;
        }
        // Bounded: snooping must not grow it without end.
        if self.map.len() >= 65536 && !self.map.contains_key(&(net, ip)) {
            return;
        }
        if self.map.insert((net, ip), mac) != Some(mac) {
            self.dirty = true;
        }
    }

    pub fn remove(&mut self, net: u16, ip: Ipv4Addr) {
        if self.map.remove(&(net, ip)).is_some() {
            self.dirty = true;
        }
    }

    /// True once after something changed.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }
}
