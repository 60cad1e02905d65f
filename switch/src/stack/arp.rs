//! arp: ARP suppression. The host thread answers ARP requests for hosts it
//! knows *in their place* (the reply says "target IP is at target MAC"), so
//! the request is not flooded to every port. What it knows: the topology's
//! host addresses, plus what ARP snooping saw (`StackLink::snoop`).

use std::collections::HashMap;
use std::net::Ipv4Addr;

const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethernet header + ARP for Ethernet/IPv4.
pub const ARP_FRAME_LEN: usize = 14 + 28;

/// An Ethernet/IPv4 ARP packet, as read from an untagged frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

fn mac(b: &[u8]) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&b[..6]);
    m
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Reads an untagged Ethernet frame as Ethernet/IPv4 ARP; None otherwise.
pub fn parse(frame: &[u8]) -> Option<Arp> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let a = frame.get(14..14 + 28)?;
    if et != ETHERTYPE_ARP || a[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: mac(&a[8..14]),
        spa: ip(&a[14..18]),
        tha: mac(&a[18..24]),
        tpa: ip(&a[24..28]),
    })
}

/// The reply to `req` on behalf of the host that owns `req.tpa` at `mac`:
/// written into `out` (the caller's buffer, as Firecracker's
/// `write_next_frame`); returns its length.
pub fn write_reply(req: &Arp, target_mac: [u8; 6], out: &mut [u8]) -> Option<usize> {
    let out = out.get_mut(..ARP_FRAME_LEN)?;
    out[0..6].copy_from_slice(&req.sha);
    out[6..12].copy_from_slice(&target_mac);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let a = &mut out[14..];
    a[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    a[6..8].copy_from_slice(&2u16.to_be_bytes());
    a[8..14].copy_from_slice(&target_mac);
    a[14..18].copy_from_slice(&req.tpa.octets());
    a[18..24].copy_from_slice(&req.sha);
    a[24..28].copy_from_slice(&req.spa.octets());
    Some(ARP_FRAME_LEN)
}

/// The suppression table as the host thread keeps it: the topology's
/// entries (never replaced by snooping... unless the host really moved) and
/// what was snooped. Published to workers as a whole new map when it
/// changed.
#[derive(Debug, Default)]
pub struct ArpTable {
    pub map: HashMap<(u16, Ipv4Addr), [u8; 6]>,
    dirty: bool,
}

impl ArpTable {
    pub fn insert(&mut self, net: u16, ip: Ipv4Addr, mac: [u8; 6]) {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return;
        }
        if mac[0] & 1 != 0 || mac == [0; 6] {
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
