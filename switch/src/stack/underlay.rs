//! underlay: the VTEP's own small IPv4 host on the underlay port. It
//! answers ARP for the VTEP address and resolves, with ARP, the next hop
//! towards each remote VTEP (the remote itself inside the VTEP's prefix,
//! else the gateway), then refreshes it periodically; a reply or a
//! gratuitous ARP with a new MAC takes effect at once.
//!
//! ```text
//!  workers --ARP frames (rx)--> underlay thread --ARP replies/requests--> from_host --> worker 0 --> underlay port
//!                                    |
//!                                    \--> next-hop MAC per remote VTEP (atomics) <-- read by the encapsulation
//! ```
//!
//! Plain ARP is all the underlay needs, so this is a few lines of its own
//! rather than a smoltcp `Interface` (docs/vxlan.md says why).

use super::{StackLink, StackPkt};
use crate::config::{Ipv4Net, Vtep};
use crate::counters::Counter;
use crate::ids::Segment;
use crossbeam_queue::ArrayQueue;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use shunt_parsers::{ArpOp, ArpRepr, MacAddr};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Unresolved next hops are asked for this often.
const RETRY: Duration = Duration::from_secs(1);
/// Resolved next hops are asked for again this often (a changed MAC is
/// also taken from any ARP frame the next hop sends).
const REFRESH: Duration = Duration::from_secs(30);
const RESOLVED: u64 = 1 << 48;

/// What workers and the underlay thread share.
pub struct Underlay {
    pub port: u16,
    pub mac: MacAddr,
    pub addr: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub remotes: Box<[Ipv4Addr]>,
    /// Per remote VTEP: its next hop's MAC | `RESOLVED`, or 0.
    nexthop: Box<[AtomicU64]>,
    /// ARP frames from the underlay port, for this thread.
    pub rx: ArrayQueue<StackPkt>,
    pub rx_event: EventFd,
    /// Written by the underlay thread only.
    pub arp_requests_sent: Counter,
    pub arp_replies_sent: Counter,
    pub arp_received: Counter,
    pub tx_dropped_full: Counter,
}

impl std::fmt::Debug for Underlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Underlay({} on port {})", self.addr, self.port)
    }
}

impl Underlay {
    pub fn new(v: &Vtep, mac: MacAddr) -> std::io::Result<Underlay> {
        Ok(Underlay {
            port: v.port as u16,
            mac,
            addr: v.address,
            gateway: v.gateway,
            remotes: v.remotes.clone().into_boxed_slice(),
            nexthop: v.remotes.iter().map(|_| AtomicU64::new(0)).collect(),
            rx: ArrayQueue::new(256),
            rx_event: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
            arp_requests_sent: Counter::default(),
            arp_replies_sent: Counter::default(),
            arp_received: Counter::default(),
            tx_dropped_full: Counter::default(),
        })
    }

    /// The MAC to send frames for remote VTEP `k` to, once resolved.
    /// (Raw bytes: what the control path formats; a `MacAddr` once the
    /// control path takes that type.)
    #[inline]
    pub fn nexthop_mac(&self, k: usize) -> Option<[u8; 6]> {
        let v = self.nexthop.get(k)?.load(Relaxed);
        if v & RESOLVED == 0 {
            return None;
        }
        Some(MacAddr::from_u64(v).octets())
    }

    /// The next hop towards remote VTEP `ip`.
    pub fn nexthop_of(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.addr.contains(ip) {
            Some(ip)
        } else {
            self.gateway
        }
    }

    /// Next hops by address, resolved or not (control path).
    pub fn neighbours(&self) -> Vec<(Ipv4Addr, Ipv4Addr, Option<[u8; 6]>)> {
        self.remotes
            .iter()
            .enumerate()
            .filter_map(|(k, r)| Some((*r, self.nexthop_of(*r)?, self.nexthop_mac(k))))
            .collect()
    }

    /// Records the MAC of next hop `nh` for every remote VTEP behind it.
    pub fn set_nexthop(&self, nh: Ipv4Addr, mac: MacAddr) {
        let v = mac.as_u64() | RESOLVED;
        for (k, r) in self.remotes.iter().enumerate() {
            if self.nexthop_of(*r) == Some(nh) {
                self.nexthop[k].store(v, Relaxed);
            }
        }
    }
}

struct Thread {
    link: Arc<StackLink>,
    /// Next hop -> when it was last asked for.
    asked: HashMap<Ipv4Addr, Instant>,
    /// Next hop -> its MAC, as last heard.
    known: HashMap<Ipv4Addr, MacAddr>,
}

impl Thread {
    fn ul(&self) -> Option<&Underlay> {
        self.link.underlay.as_ref()
    }

    fn send(&self, frame: &[u8]) {
        let Some(ul) = self.ul() else { return };
        match StackPkt::gather(Segment::Underlay, &[frame]) {
            Some(p) if self.link.from_host.push(p).is_ok() => {
                StackLink::signal(&self.link.from_host_event);
            }
            _ => ul.tx_dropped_full.add(1),
        }
    }

    /// Sends `a` in an Ethernet frame to `eth_dst`.
    fn send_arp(&self, a: &ArpRepr, eth_dst: MacAddr) {
        let mut f = [0u8; shunt_parsers::arp::FRAME_LEN];
        if let Ok(n) = a.emit_frame(eth_dst, &mut f) {
            self.send(&f[..n]);
        }
    }

    fn receive(&mut self) {
        let Some(ul) = self.link.underlay.as_ref() else {
            return;
        };
        StackLink::clear(&ul.rx_event);
        let mut replies = Vec::new();
        while let Some(p) = ul.rx.pop() {
            ul.arp_received.add(1);
            let Ok(a) = ArpRepr::parse_frame(p.frame()) else {
                continue;
            };
            let (sha, spa) = (a.sender_mac, a.sender_ip);
            let wanted = ul.remotes.iter().any(|r| ul.nexthop_of(*r) == Some(spa));
            if wanted && sha.is_unicast() && self.known.get(&spa) != Some(&sha) {
                self.known.insert(spa, sha);
                ul.set_nexthop(spa, sha);
            }
            if a.target_ip == ul.addr.addr && !spa.is_unspecified() {
                if let Some(reply) = a.reply(ul.mac) {
                    replies.push(reply);
                }
            }
        }
        for r in replies {
            self.send_arp(&r, r.target_mac);
            if let Some(ul) = self.ul() {
                ul.arp_replies_sent.add(1);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let Some(ul) = self.link.underlay.as_ref() else {
            return;
        };
        let mut hops: Vec<Ipv4Addr> = ul
            .remotes
            .iter()
            .filter_map(|r| ul.nexthop_of(*r))
            .collect();
        hops.sort_unstable();
        hops.dedup();
        let mut ask = Vec::new();
        for nh in hops {
            let every = if self.known.contains_key(&nh) {
                REFRESH
            } else {
                RETRY
            };
            if self
                .asked
                .get(&nh)
                .is_none_or(|t| now.duration_since(*t) >= every)
            {
                self.asked.insert(nh, now);
                ask.push(ArpRepr {
                    op: ArpOp::Request,
                    sender_mac: ul.mac,
                    sender_ip: ul.addr.addr,
                    target_mac: MacAddr::ZERO,
                    target_ip: nh,
                });
            }
        }
        for a in ask {
            self.send_arp(&a, MacAddr::BROADCAST);
            if let Some(ul) = self.ul() {
                ul.arp_requests_sent.add(1);
            }
        }
    }
}

/// Starts the underlay thread (when the link has an underlay). It runs
/// until `stop()` says so.
pub fn spawn(
    link: Arc<StackLink>,
    stop: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<Option<JoinHandle<()>>> {
    if link.underlay.is_none() {
        return Ok(None);
    }
    let mut t = Thread {
        link,
        asked: HashMap::new(),
        known: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("shunt-underlay".into())
        .spawn(move || {
            while !stop() {
                let Some(ul) = t.link.underlay.as_ref() else {
                    return;
                };
                let mut fds = [PollFd::new(ul.rx_event.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
                t.receive();
                t.tick(Instant::now());
            }
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_as_the_underlay_sends_them() {
        // What tick() asks and receive() answers, byte for byte as before
        // they were built by shunt_parsers.
        let ask = ArpRepr {
            op: ArpOp::Request,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(192, 0, 2, 2),
        };
        let mut f = [0u8; 42];
        assert_eq!(ask.emit_frame(MacAddr::BROADCAST, &mut f), Ok(42));
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet
            0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
            2, 0, 0, 0, 0, 1, 192, 0, 2, 1, // sender
            0, 0, 0, 0, 0, 0, 192, 0, 2, 2, // target
        ];
        assert_eq!(f, want);
        assert_eq!(ArpRepr::parse_frame(&f), Ok(ask));
        assert!(ArpRepr::parse_frame(&f[..f.len() - 1]).is_err());
        let reply = ask.reply(MacAddr([2, 0, 0, 0, 0, 2])).expect("a request");
        assert_eq!(
            (reply.op, reply.sender_ip, reply.target_mac, reply.target_ip),
            (ArpOp::Reply, ask.target_ip, ask.sender_mac, ask.sender_ip)
        );
    }
}
