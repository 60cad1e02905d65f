//! The switch's own host stack: its addresses on each network, ARP, ping
//! and the embedded DNS responder (DESIGN.md, "The host stack").
//!
//! The pipeline detours frames for the switch (`pipeline::local`) into
//! `HostLink::to_host`; the host thread answers and puts frames to send in
//! `HostLink::from_host`, which a worker runs through forward and egress
//! like frames from a port. Both queues are bounded and lock-free; full is
//! a counted drop. Each direction has an eventfd so that neither side
//! polls: a worker signals after a batch that delivered frames, the host
//! thread after it produced some.

use crate::counters::Counter;
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Largest frame carried to or from the host stack.
pub const HOST_FRAME: usize = 1536;
const QUEUE: usize = 1024;

/// A frame to or from the host stack, with its network. Fixed size: the
/// queues hold these by value, so nothing is allocated per frame.
#[derive(Clone, Copy)]
pub struct HostPkt {
    pub net: u16,
    pub len: u16,
    pub data: [u8; HOST_FRAME],
}

impl HostPkt {
    /// Gathers `parts` into a packet; None if it does not fit.
    pub fn gather(net: u16, parts: &[&[u8]]) -> Option<HostPkt> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > HOST_FRAME {
            return None;
        }
        let mut p = HostPkt {
            net,
            len: len as u16,
            data: [0; HOST_FRAME],
        };
        let mut at = 0;
        for part in parts {
            p.data[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Some(p)
    }

    pub fn frame(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(HOST_FRAME)]
    }
}

/// The switch's identity on one network.
#[derive(Debug, Clone)]
pub struct NetAddr {
    pub mac: [u8; 6],
    pub ip: Option<Ipv4Addr>,
    pub arp_suppress: bool,
}

#[derive(Default)]
pub struct HostCounters {
    /// Frames detoured to the host stack.
    pub delivered: Counter,
    /// ARP requests answered by the switch for a known host (suppression).
    pub arp_suppressed: Counter,
}

/// What workers and the host thread share.
pub struct HostLink {
    pub nets: Box<[NetAddr]>,
    pub to_host: ArrayQueue<HostPkt>,
    pub from_host: ArrayQueue<HostPkt>,
    pub to_host_event: EventFd,
    pub from_host_event: EventFd,
    /// (network, IPv4) -> MAC, for ARP suppression: the topology's hosts
    /// plus what ARP snooping saw. Replaced whole by the host thread;
    /// workers only load it.
    pub arp: ArcSwap<HashMap<(u16, Ipv4Addr), [u8; 6]>>,
    /// (network, sender IP, sender MAC) seen in ARP frames; lossy.
    pub snoop: ArrayQueue<(u16, Ipv4Addr, [u8; 6])>,
    /// Per worker (single writer each), summed by readers.
    pub counters: Box<[HostCounters]>,
}

impl HostLink {
    pub fn new(nets: Vec<NetAddr>, workers: usize) -> std::io::Result<HostLink> {
        let ev = || {
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(std::io::Error::from)
        };
        Ok(HostLink {
            nets: nets.into_boxed_slice(),
            to_host: ArrayQueue::new(QUEUE),
            from_host: ArrayQueue::new(QUEUE),
            to_host_event: ev()?,
            from_host_event: ev()?,
            arp: ArcSwap::from_pointee(HashMap::new()),
            snoop: ArrayQueue::new(QUEUE),
            counters: (0..workers).map(|_| HostCounters::default()).collect(),
        })
    }

    /// True when the switch has something to do on network `net`.
    #[inline]
    pub fn serves(&self, net: u16) -> bool {
        self.nets
            .get(net as usize)
            .is_some_and(|n| n.ip.is_some() || n.arp_suppress)
    }

    pub fn arp_known(&self, net: u16, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.arp.load().get(&(net, ip)).copied()
    }

    /// Wakes the other side (an eventfd write; a full counter is fine:
    /// the reader is then already awake).
    pub fn signal(ev: &EventFd) {
        let _ = ev.write(1);
    }

    /// Clears an eventfd after wake-up.
    pub fn clear(ev: &EventFd) {
        let _ = ev.read();
    }

    pub fn arp_suppressed(&self) -> u64 {
        self.counters.iter().map(|c| c.arp_suppressed.get()).sum()
    }
}

/// The switch's MAC on network `net`: locally administered, derived from
/// the switch name so that two switches (say, VXLAN peers) differ.
pub fn switch_mac(switch_name: &str, net: u16) -> [u8; 6] {
    let mut h: u32 = 2166136261;
    for b in switch_name.bytes() {
        h = (h ^ b as u32).wrapping_mul(16777619);
    }
    let h = h.to_be_bytes();
    let n = net.to_be_bytes();
    [0x02, 0x53, h[0], h[1], n[0], n[1]]
}
