//! The switch's own stack: its addresses on each network, ARP, ping
//! and the embedded DNS responder (DESIGN.md, "The switch's own stack").
//!
//! The pipeline detours frames for the switch (`pipeline::local`) into
//! `StackLink::to_host`; the host thread answers and puts frames to send in
//! `StackLink::from_host`, which a worker runs through forward and egress
//! like frames from a port. Both queues are bounded and lock-free; full is
//! a counted drop. Each direction has an eventfd so that neither side
//! polls: a worker signals after a batch that delivered frames, the host
//! thread after it produced some.

pub mod arp;
pub mod device;
pub mod dns;
pub mod iface;
pub mod names;
pub mod resolv;
pub mod underlay;

use crate::counters::Counter;
use crate::ids::{NetId, Segment};
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};
use shunt_parsers::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Largest frame carried to or from the switch's stack.
pub const STACK_FRAME: usize = 1536;
const QUEUE: usize = 1024;

/// A frame to or from the switch's stack, with its network. Fixed size: the
/// queues hold these by value, so nothing is allocated per frame.
#[derive(Clone, Copy)]
pub struct StackPkt {
    pub net: Segment,
    pub len: u16,
    pub data: [u8; STACK_FRAME],
}

impl StackPkt {
    /// Gathers `parts` into a packet; None if it does not fit.
    pub fn gather(net: Segment, parts: &[&[u8]]) -> Option<StackPkt> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > STACK_FRAME {
            return None;
        }
        let mut p = StackPkt {
            net,
            len: len as u16,
            data: [0; STACK_FRAME],
        };
        let mut at = 0;
        for part in parts {
            p.data[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Some(p)
    }

    pub fn frame(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(STACK_FRAME)]
    }
}

/// The switch's identity on one network.
#[derive(Debug, Clone)]
pub struct NetAddr {
    pub mac: MacAddr,
    pub ip: Option<Ipv4Addr>,
    pub arp_suppress: bool,
}

#[derive(Default)]
pub struct StackCounters {
    /// Frames detoured to the switch's stack.
    pub delivered: Counter,
    /// ARP requests answered by the switch for a known host (suppression).
    pub arp_suppressed: Counter,
}

/// Per network, written by the host thread only (single writer).
#[derive(Default)]
pub struct NetCounters {
    /// ARP requests answered in the place of a known host.
    pub arp_suppressed: Counter,
    /// Datagrams to port 53 at the switch's address.
    pub dns_queries: Counter,
    /// Answered from our names (NOERROR, with or without records).
    pub dns_answered: Counter,
    pub dns_nxdomain: Counter,
    pub dns_servfail: Counter,
    pub dns_notimp: Counter,
    /// Sent on to the network's upstream resolver.
    pub dns_forwarded: Counter,
    pub dns_upstream_timeout: Counter,
    /// Answers cut to fit the UDP size (TC set).
    pub dns_truncated: Counter,
    /// Datagrams that are not a readable query (garbage, truncated,
    /// pointer loops, responses).
    pub dns_malformed: Counter,
    pub dns_send_failed: Counter,
    /// Frames for a network where the switch has no address (dropped).
    pub rx_no_address: Counter,
    /// Frames smoltcp could not take (its queue was full).
    pub rx_dropped_full: Counter,
    /// Frames the switch's stack could not hand to the workers (queue full).
    pub tx_dropped_full: Counter,
}

impl NetCounters {
    /// (name, value) of every counter, for `shunt stats --json`.
    pub fn fields(&self) -> [(&'static str, u64); 14] {
        [
            ("arp_suppressed", self.arp_suppressed.get()),
            ("dns_queries", self.dns_queries.get()),
            ("dns_answered", self.dns_answered.get()),
            ("dns_nxdomain", self.dns_nxdomain.get()),
            ("dns_servfail", self.dns_servfail.get()),
            ("dns_notimp", self.dns_notimp.get()),
            ("dns_forwarded", self.dns_forwarded.get()),
            ("dns_upstream_timeout", self.dns_upstream_timeout.get()),
            ("dns_truncated", self.dns_truncated.get()),
            ("dns_malformed", self.dns_malformed.get()),
            ("dns_send_failed", self.dns_send_failed.get()),
            ("rx_no_address", self.rx_no_address.get()),
            ("rx_dropped_full", self.rx_dropped_full.get()),
            ("tx_dropped_full", self.tx_dropped_full.get()),
        ]
    }
}

/// What workers and the host thread share.
pub struct StackLink {
    pub nets: Box<[NetAddr]>,
    pub to_host: ArrayQueue<StackPkt>,
    pub from_host: ArrayQueue<StackPkt>,
    pub to_host_event: EventFd,
    pub from_host_event: EventFd,
    /// (network, IPv4) -> MAC, for ARP suppression: the topology's hosts
    /// plus what ARP snooping saw. Replaced whole by the host thread;
    /// workers only load it.
    pub arp: ArcSwap<HashMap<(u16, Ipv4Addr), MacAddr>>,
    /// (network, sender IP, sender MAC) seen in ARP frames; lossy.
    pub snoop: ArrayQueue<(u16, Ipv4Addr, MacAddr)>,
    /// Per worker (single writer each), summed by readers.
    pub counters: Box<[StackCounters]>,
    /// Per network, written by the host thread.
    pub net_counters: Box<[NetCounters]>,
    /// The names the DNS responder serves; replaced whole (`set_names`).
    pub names: ArcSwap<names::Names>,
    /// The VXLAN underlay's ARP and next hops, when there is a `[vtep]`.
    pub underlay: Option<underlay::Underlay>,
}

impl StackLink {
    pub fn new(nets: Vec<NetAddr>, workers: usize) -> std::io::Result<StackLink> {
        let ev = || {
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(std::io::Error::from)
        };
        let nnets = nets.len();
        Ok(StackLink {
            net_counters: (0..nnets).map(|_| NetCounters::default()).collect(),
            names: ArcSwap::from_pointee(names::Names::default()),
            nets: nets.into_boxed_slice(),
            to_host: ArrayQueue::new(QUEUE),
            from_host: ArrayQueue::new(QUEUE),
            to_host_event: ev()?,
            from_host_event: ev()?,
            arp: ArcSwap::from_pointee(HashMap::new()),
            snoop: ArrayQueue::new(QUEUE),
            counters: (0..workers).map(|_| StackCounters::default()).collect(),
            underlay: None,
        })
    }

    /// True when the switch has something to do on network `net`.
    #[inline]
    pub fn serves(&self, net: NetId) -> bool {
        self.nets
            .get(net.index())
            .is_some_and(|n| n.ip.is_some() || n.arp_suppress)
    }

    pub fn arp_known(&self, net: NetId, ip: Ipv4Addr) -> Option<MacAddr> {
        self.arp.load().get(&(net.raw(), ip)).copied()
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

    /// Replaces the names the DNS responder serves; the next query sees
    /// them (hosts attached or detached at run time).
    pub fn set_names(&self, names: names::Names) {
        self.names.store(std::sync::Arc::new(names));
    }

    /// `shunt stats --json` "host": per network name, its counters.
    pub fn stats_json(&self, net_name: impl Fn(usize) -> String) -> serde_json::Value {
        let mut nets = serde_json::Map::new();
        for (i, c) in self.net_counters.iter().enumerate() {
            let mut m = serde_json::Map::new();
            for (k, v) in c.fields() {
                m.insert(k.to_string(), v.into());
            }
            nets.insert(net_name(i), serde_json::Value::Object(m));
        }
        serde_json::json!({
            "delivered": self.counters.iter().map(|c| c.delivered.get()).sum::<u64>(),
            "arp_suppressed": self.arp_suppressed(),
            "networks": nets,
        })
    }

    pub fn arp_suppressed(&self) -> u64 {
        self.counters.iter().map(|c| c.arp_suppressed.get()).sum()
    }

    /// The queues of the switch's stack that `topo` needs, for `workers`
    /// workers: when some network gives the switch an address or
    /// suppresses ARP, or the switch is a VTEP (then with the underlay's);
    /// None when nothing would use them.
    pub fn for_topology(
        topo: &crate::config::Topology,
        workers: usize,
    ) -> std::io::Result<Option<StackLink>> {
        let needed = topo.vtep.is_some()
            || topo
                .networks
                .iter()
                .any(|n| n.address.is_some() || n.arp_suppress);
        if !needed {
            return Ok(None);
        }
        let name = &topo.switch.name;
        let nets = topo
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| NetAddr {
                mac: switch_mac(name, i as u16),
                ip: n.address,
                arp_suppress: n.arp_suppress,
            })
            .collect();
        let mut link = StackLink::new(nets, workers)?;
        if let Some(v) = &topo.vtep {
            link.underlay = Some(underlay::Underlay::new(v, underlay_mac(name))?);
        }
        Ok(Some(link))
    }
}

/// The switch's MAC on the VXLAN underlay (locally administered, from its
/// name).
pub fn underlay_mac(switch_name: &str) -> MacAddr {
    switch_mac(switch_name, Segment::Underlay.mac_salt())
}

/// The topology changed at run time (a host attached or detached): serve
/// its names from the next query on, take its ARP entries, and write the
/// resolver configuration of hosts that are new.
pub fn topology_changed(host: Option<&StackLink>, topo: &crate::config::Topology) {
    if let Some(h) = host {
        h.set_names(names::Names::from_topology(topo));
    }
    if let Err(e) = resolv::write(topo) {
        crate::say!("shunt: writing /etc/netns/HOST/resolv.conf: {e}");
    }
}

/// `shunt dns --json`: the names served, one object per (network, name):
/// `{ "name", "network", "type": "host"|"alias", "addresses": [..], "also": [..] }`.
pub fn dns_json(
    host: Option<&StackLink>,
    network: Option<&str>,
) -> Result<serde_json::Value, String> {
    let Some(h) = host else {
        return Ok(serde_json::Value::Array(Vec::new()));
    };
    let names = h.names.load();
    let filter = match network {
        Some(n) => Some(
            names
                .nets
                .iter()
                .position(|x| x.network == n.to_ascii_lowercase())
                .ok_or_else(|| format!("no network named {n:?}"))?,
        ),
        None => None,
    };
    Ok(serde_json::Value::Array(names::listing(&names, filter)))
}

/// The switch's MAC on network `net`: locally administered, derived from
/// the switch name so that two switches (say, VXLAN peers) differ.
pub fn switch_mac(switch_name: &str, net: u16) -> MacAddr {
    let mut h: u32 = 2166136261;
    for b in switch_name.bytes() {
        h = (h ^ b as u32).wrapping_mul(16777619);
    }
    let [h0, h1, _, _] = h.to_be_bytes();
    let [n0, n1] = net.to_be_bytes();
    MacAddr([0x02, 0x53, h0, h1, n0, n1])
}

#[cfg(test)]
mod tests;
