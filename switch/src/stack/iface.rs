//! The switch's own stack thread. One smoltcp `Interface` per network that gives
//! the switch an address (ARP and ping are smoltcp's), a UDP socket on port
//! 53 there (the DNS responder), a second UDP socket that forwards other
//! names to the network's upstream resolver, and ARP suppression.
//!
//! ```text
//!  workers --to_host--> [dispatch by net] --ARP for a known host--> reply in its place
//!                            |                                      (or back to flood)
//!                            v
//!                    NetDevice (per net) <--> smoltcp Interface --> udp/53 --> names::decide
//!                            |                                         \--> upstream (pending ids)
//!  workers <--from_host------/
//! ```
//!
//! The thread waits on `to_host_event` with poll(2), at most until smoltcp's
//! next timer, and never blocks a worker: both queues are bounded.

use super::arp::{self, ArpTable};
use super::device::NetDevice;
use super::dns::{self, AnswerFlags, Query};
use super::names::{self, Decision, Names, Rotation};
use super::{NetCounters, StackLink, StackPkt};
use crate::config::{Ipv4Net, Topology};
use crate::ids::{NetId, Segment};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use shunt_parsers::{ArpOp, ArpRepr};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The DNS port.
pub const DNS_PORT: u16 = 53;
/// The local port the forwarder asks upstream resolvers from.
pub const FORWARD_PORT: u16 = 53053;
/// How long an upstream gets to answer before the client gets SERVFAIL.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries waiting for an upstream at once; more get SERVFAIL.
const MAX_PENDING: usize = 4096;
/// Longest sleep between rounds (so `stop` is seen).
const MAX_WAIT_MS: u64 = 100;

/// What the host thread starts from.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Per network id: the switch's address with the subnet's prefix.
    pub addresses: Vec<Option<Ipv4Net>>,
    /// The names to serve at start (with the topology's ARP entries).
    pub names: Names,
}

impl HostConfig {
    pub fn from_topology(topo: &Topology) -> HostConfig {
        let addresses = topo
            .networks
            .iter()
            .map(|n| {
                let prefix = n.subnet.map(|s| s.prefix).unwrap_or(32);
                n.address.map(|addr| Ipv4Net { addr, prefix })
            })
            .collect();
        HostConfig {
            addresses,
            names: Names::from_topology(topo),
        }
    }
}

/// One network's interface.
struct NetStack {
    net: u16,
    addr: Ipv4Net,
    iface: Interface,
    dev: NetDevice,
    sockets: SocketSet<'static>,
    dns: SocketHandle,
    fwd: SocketHandle,
}

/// A query sent upstream, waiting for its answer.
struct Pending {
    /// The network (stack index) the query came from, and from whom.
    from: usize,
    client: IpEndpoint,
    orig_id: u16,
    upstream: Ipv4Addr,
    deadline: Instant,
    query: Query,
}

/// Something to send from a stack's socket after the sockets were read.
enum Out {
    Dns {
        stack: usize,
        to: IpEndpoint,
        data: Vec<u8>,
    },
    Fwd {
        stack: usize,
        to: IpEndpoint,
        data: Vec<u8>,
    },
}

struct NetIface {
    link: Arc<StackLink>,
    stacks: Vec<NetStack>,
    /// Network id -> index in `stacks`.
    by_net: HashMap<u16, usize>,
    arp: ArpTable,
    /// The names (and topology ARP entries) last taken into `arp`.
    names_seen: Arc<Names>,
    rotation: Rotation,
    pending: HashMap<u16, Pending>,
    next_id: u16,
    started: Instant,
    /// Frames pushed to `from_host` outside smoltcp (ARP suppression).
    sent: usize,
}

fn udp_socket() -> udp::Socket<'static> {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 512], vec![0u8; 512 * 1024]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 512], vec![0u8; 512 * 1024]);
    udp::Socket::new(rx, tx)
}

/// Starts the host thread. It runs until `stop()` says so (checked at
/// least every 100 ms).
pub fn spawn(
    link: Arc<StackLink>,
    cfg: HostConfig,
    stop: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let mut host = NetIface::new(link, cfg).map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("shunt-host".into())
        .spawn(move || host.run(stop))
}

/// The host thread's work without the thread, one round at a time: the
/// fuzz target (fuzz/) and tests put frames in `link.to_host`, call
/// [`Host::round`] and read what the stack sent in `link.from_host`.
pub struct Host(NetIface);

impl Host {
    pub fn new(link: Arc<StackLink>, cfg: HostConfig) -> Result<Host, String> {
        NetIface::new(link, cfg).map(Host)
    }

    /// Takes what is queued for the stack, lets smoltcp and the DNS
    /// responder answer, queues the answers.
    pub fn round(&mut self) {
        self.0.round();
    }
}

impl NetIface {
    fn new(link: Arc<StackLink>, cfg: HostConfig) -> Result<NetIface, String> {
        let started = Instant::now();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed);
        let mut stacks = Vec::new();
        let mut by_net = HashMap::new();
        for (i, na) in link.nets.iter().enumerate() {
            let Some(addr) = cfg.addresses.get(i).copied().flatten() else {
                continue;
            };
            let Some(id) = NetId::new(i) else { continue };
            let net = id.raw();
            let mut dev = NetDevice::new(id, Arc::clone(&link));
            let mut config =
                Config::new(HardwareAddress::Ethernet(EthernetAddress(na.mac.octets())));
            config.random_seed = seed ^ u64::from(net);
            let mut iface = Interface::new(config, &mut dev, smoltcp::time::Instant::ZERO);
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(addr.addr), addr.prefix));
            });
            let mut sockets = SocketSet::new(Vec::new());
            let mut dns_sock = udp_socket();
            dns_sock
                .bind(IpEndpoint::new(IpAddress::Ipv4(addr.addr), DNS_PORT))
                .map_err(|e| format!("binding the DNS socket on {}: {e}", addr.addr))?;
            let mut fwd_sock = udp_socket();
            fwd_sock
                .bind(IpEndpoint::new(IpAddress::Ipv4(addr.addr), FORWARD_PORT))
                .map_err(|e| format!("binding the forwarder's socket on {}: {e}", addr.addr))?;
            let dns = sockets.add(dns_sock);
            let fwd = sockets.add(fwd_sock);
            by_net.insert(net, stacks.len());
            stacks.push(NetStack {
                net,
                addr,
                iface,
                dev,
                sockets,
                dns,
                fwd,
            });
        }
        link.set_names(cfg.names);
        let mut host = NetIface {
            link,
            stacks,
            by_net,
            arp: ArpTable::default(),
            names_seen: Arc::new(Names::default()),
            rotation: Rotation::default(),
            pending: HashMap::new(),
            next_id: (seed as u16) | 1,
            started,
            sent: 0,
        };
        host.names_changed();
        Ok(host)
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.started.elapsed().as_micros() as i64)
    }

    fn counters(&self, net: u16) -> Option<&NetCounters> {
        self.link.net_counters.get(net as usize)
    }

    fn run(&mut self, stop: impl Fn() -> bool) {
        while !stop() {
            let wait = self.wait_ms();
            {
                let mut fds = [PollFd::new(
                    self.link.to_host_event.as_fd(),
                    PollFlags::POLLIN,
                )];
                let t = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
                let _ = poll(&mut fds, t);
            }
            StackLink::clear(&self.link.to_host_event);
            self.round();
        }
    }

    /// How long to sleep: until smoltcp's next timer or a forward's
    /// deadline, at most MAX_WAIT_MS.
    fn wait_ms(&mut self) -> u64 {
        let now = self.now();
        let mut ms = MAX_WAIT_MS;
        for s in &mut self.stacks {
            if let Some(d) = s.iface.poll_delay(now, &s.sockets) {
                ms = ms.min(d.total_millis());
            }
        }
        if !self.pending.is_empty() {
            let t = Instant::now();
            for p in self.pending.values() {
                ms = ms.min(p.deadline.saturating_duration_since(t).as_millis() as u64);
            }
        }
        ms
    }

    /// One round: snooped ARP, frames in, smoltcp, sockets, frames out.
    fn round(&mut self) {
        self.names_changed();
        while let Some((net, ip, mac)) = self.link.snoop.pop() {
            // Never let a host claim the switch's own address.
            if self.link.nets.get(net as usize).and_then(|n| n.ip) != Some(ip) {
                self.arp.insert(net, ip, mac);
            }
        }
        self.publish_arp();
        // At most one queue's worth per round, so timers still run.
        for _ in 0..self.link.to_host.capacity() {
            let Some(p) = self.link.to_host.pop() else {
                break;
            };
            self.dispatch(p);
        }
        let now = self.now();
        for s in &mut self.stacks {
            s.iface.poll(now, &mut s.dev, &mut s.sockets);
        }
        let mut out = Vec::new();
        for i in 0..self.stacks.len() {
            self.read_dns(i, &mut out);
            self.read_upstream(i, &mut out);
        }
        self.expire(&mut out);
        for o in out {
            let (stack, handle, to, data) = match o {
                Out::Dns { stack, to, data } => (stack, None, to, data),
                Out::Fwd { stack, to, data } => (stack, Some(()), to, data),
            };
            let Some(s) = self.stacks.get_mut(stack) else {
                continue;
            };
            let h = if handle.is_some() { s.fwd } else { s.dns };
            let sock = s.sockets.get_mut::<udp::Socket>(h);
            if sock.send_slice(&data, to).is_err() {
                if let Some(c) = self.link.net_counters.get(s.net as usize) {
                    c.dns_send_failed.add(1);
                }
            }
        }
        let now = self.now();
        let mut sent = std::mem::take(&mut self.sent);
        for s in &mut self.stacks {
            s.iface.poll(now, &mut s.dev, &mut s.sockets);
            sent += std::mem::take(&mut s.dev.sent);
        }
        if sent > 0 {
            StackLink::signal(&self.link.from_host_event);
        }
    }

    /// Takes the topology's ARP entries of a new name table: entries of
    /// hosts that went away are forgotten, new ones known at once.
    fn names_changed(&mut self) {
        let cur = self.link.names.load_full();
        if Arc::ptr_eq(&cur, &self.names_seen) {
            return;
        }
        for &(net, ip, _) in &self.names_seen.arp {
            if !cur.arp.iter().any(|&(n, i, _)| n == net && i == ip) {
                self.arp.remove(net, ip);
            }
        }
        for &(net, ip, mac) in &cur.arp {
            self.arp.insert(net, ip, mac);
        }
        self.names_seen = cur;
        self.publish_arp();
    }

    fn publish_arp(&mut self) {
        if self.arp.take_dirty() {
            self.link.arp.store(Arc::new(self.arp.map.clone()));
        }
    }

    /// Sends a frame built here (not by smoltcp).
    fn send_frame(&mut self, net: u16, frame: &[u8]) {
        let seg = NetId::new(usize::from(net)).map(Segment::Net);
        match seg.and_then(|seg| StackPkt::gather(seg, &[frame])) {
            Some(p) if self.link.from_host.push(p).is_ok() => self.sent += 1,
            _ => {
                if let Some(c) = self.counters(net) {
                    c.tx_dropped_full.add(1);
                }
            }
        }
    }

    fn dispatch(&mut self, p: StackPkt) {
        // The underlay's frames go to its own handler, never here.
        let Segment::Net(net) = p.net else { return };
        let net = net.raw();
        let Some((suppress, own_ip)) = self
            .link
            .nets
            .get(net as usize)
            .map(|n| (n.arp_suppress, n.ip))
        else {
            return;
        };
        if suppress {
            if let Ok(a) = ArpRepr::parse_frame(p.frame()) {
                if a.op == ArpOp::Request && own_ip != Some(a.target_ip) {
                    self.suppress(net, &a, &p);
                    return;
                }
            }
        }
        match self.by_net.get(&net).copied() {
            Some(i) => {
                self.stacks[i].dev.push_rx(p);
            }
            None => {
                if let Some(c) = self.counters(net) {
                    c.rx_no_address.add(1);
                }
            }
        }
    }

    /// Answers an ARP request in the place of the host that owns the
    /// address; if the switch no longer knows it, the request goes back to
    /// the pipeline to be flooded as it would have been.
    fn suppress(&mut self, net: u16, a: &ArpRepr, p: &StackPkt) {
        match self.arp.map.get(&(net, a.target_ip)).copied() {
            Some(mac) => {
                let mut buf = [0u8; shunt_parsers::arp::FRAME_LEN];
                if let Some(n) = arp::write_reply(a, mac, &mut buf) {
                    self.send_frame(net, &buf[..n]);
                    if let Some(c) = self.counters(net) {
                        c.arp_suppressed.add(1);
                    }
                }
            }
            None => {
                let f = *p;
                self.send_frame(net, f.frame());
            }
        }
    }

    /// Reads the DNS socket of stack `i` and decides each query.
    fn read_dns(&mut self, i: usize, out: &mut Vec<Out>) {
        loop {
            let s = &mut self.stacks[i];
            let net = s.net;
            let sock = s.sockets.get_mut::<udp::Socket>(s.dns);
            let (data, client) = match sock.recv() {
                Ok((d, meta)) => (d.to_vec(), meta.endpoint),
                Err(_) => break,
            };
            if let Some(reply) = self.answer(i, net, &data, client) {
                out.push(reply);
            }
        }
    }

    fn answer(&mut self, i: usize, net: u16, data: &[u8], client: IpEndpoint) -> Option<Out> {
        let link = Arc::clone(&self.link);
        let c = link.net_counters.get(net as usize)?;
        let names = link.names.load();
        let reply = |data| {
            Some(Out::Dns {
                stack: i,
                to: client,
                data,
            })
        };
        match respond(&names, net, data, &mut self.rotation, c) {
            Reply::Send(msg) => reply(msg),
            Reply::Nothing => None,
            Reply::Forward { upstream, query } => {
                match self.forward(i, client, upstream, data, query) {
                    Ok(o) => {
                        c.dns_forwarded.add(1);
                        Some(o)
                    }
                    Err(q) => {
                        c.dns_servfail.add(1);
                        reply(dns::build_answer(&q, servfail(), &[]).0)
                    }
                }
            }
        }
    }

    /// Sends `data` to `up` with a fresh ID, from the interface on the
    /// upstream's subnet (else the querier's own). Err(query) when it
    /// cannot be sent (too many pending).
    fn forward(
        &mut self,
        from: usize,
        client: IpEndpoint,
        up: Ipv4Addr,
        data: &[u8],
        q: Query,
    ) -> Result<Out, Query> {
        if self.pending.len() >= MAX_PENDING {
            return Err(q);
        }
        let via = self
            .stacks
            .iter()
            .position(|s| s.addr.contains(up))
            .unwrap_or(from);
        let mut id = self.next_id;
        while self.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(7919);
        let mut msg = data.to_vec();
        dns::set_message_id(&mut msg, id);
        self.pending.insert(
            id,
            Pending {
                from,
                client,
                orig_id: q.id,
                upstream: up,
                deadline: Instant::now() + FORWARD_TIMEOUT,
                query: q,
            },
        );
        Ok(Out::Fwd {
            stack: via,
            to: IpEndpoint::new(IpAddress::Ipv4(up), DNS_PORT),
            data: msg,
        })
    }

    /// Relays what upstream resolvers answered back to the clients.
    fn read_upstream(&mut self, i: usize, out: &mut Vec<Out>) {
        loop {
            let s = &mut self.stacks[i];
            let sock = s.sockets.get_mut::<udp::Socket>(s.fwd);
            let (mut data, from) = match sock.recv() {
                Ok((d, meta)) => (d.to_vec(), meta.endpoint),
                Err(_) => break,
            };
            let Some(id) = dns::message_id(&data) else {
                continue;
            };
            let ok = self.pending.get(&id).is_some_and(|p| {
                from.port == DNS_PORT
                    && from.addr == IpAddress::Ipv4(p.upstream)
                    && dns::is_response(&data)
            });
            if !ok {
                continue;
            }
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            dns::set_message_id(&mut data, p.orig_id);
            out.push(Out::Dns {
                stack: p.from,
                to: p.client,
                data,
            });
        }
    }

    /// SERVFAIL for forwarded queries whose upstream did not answer.
    fn expire(&mut self, out: &mut Vec<Out>) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let late: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            let net = self.stacks.get(p.from).map(|s| s.net).unwrap_or(0);
            if let Some(c) = self.counters(net) {
                c.dns_upstream_timeout.add(1);
                c.dns_servfail.add(1);
            }
            out.push(Out::Dns {
                stack: p.from,
                to: p.client,
                data: dns::build_answer(&p.query, servfail(), &[]).0,
            });
        }
    }
}

fn servfail() -> AnswerFlags {
    AnswerFlags {
        rcode: dns::RCODE_SERVFAIL,
        authoritative: false,
        recursion_available: true,
        ttl: 0,
    }
}

/// What the responder does with one datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send this answer back.
    Send(Vec<u8>),
    /// Ask `upstream` (the caller forwards and relays the answer).
    Forward { upstream: Ipv4Addr, query: Query },
    /// Say nothing (unreadable, or a response).
    Nothing,
}

/// The responder's decision for one datagram `data` that arrived on
/// network `net`, counted in `c`. Pure apart from the counters and the
/// rotation, so the tests drive it with byte arrays.
pub fn respond(names: &Names, net: u16, data: &[u8], rot: &mut Rotation, c: &NetCounters) -> Reply {
    c.dns_queries.add(1);
    let q = match dns::parse_query(data) {
        Ok(q) => q,
        Err(m) => {
            c.dns_malformed.add(1);
            return match m.header {
                Some((id, flags)) if m.why != dns::Why::Response => {
                    Reply::Send(dns::build_error(id, flags, dns::RCODE_FORMERR))
                }
                _ => Reply::Nothing,
            };
        }
    };
    let upstream = names
        .nets
        .get(net as usize)
        .and_then(|n| n.upstream)
        .is_some();
    let flags = |rcode, authoritative| AnswerFlags {
        rcode,
        authoritative,
        recursion_available: upstream,
        ttl: names::TTL,
    };
    if q.opcode() != 0 {
        c.dns_notimp.add(1);
        return Reply::Send(dns::build_error(q.id, q.flags, dns::RCODE_NOTIMP));
    }
    if q.edns.is_some_and(|e| e.version != 0) {
        return Reply::Send(dns::build_answer(&q, flags(dns::RCODE_BADVERS, false), &[]).0);
    }
    match names::decide(names, net, &q, rot) {
        Decision::Answer { rcode, records } => {
            if rcode == dns::RCODE_NXDOMAIN {
                c.dns_nxdomain.add(1);
            } else {
                c.dns_answered.add(1);
            }
            let (msg, truncated) = dns::build_answer(&q, flags(rcode, true), &records);
            if truncated {
                c.dns_truncated.add(1);
            }
            Reply::Send(msg)
        }
        Decision::ServFail => {
            c.dns_servfail.add(1);
            Reply::Send(dns::build_answer(&q, flags(dns::RCODE_SERVFAIL, false), &[]).0)
        }
        Decision::Forward(upstream) => Reply::Forward { upstream, query: q },
    }
}
