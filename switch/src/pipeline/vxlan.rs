//! vxlan: the switch as a VXLAN tunnel endpoint (RFC 7348, docs/vxlan.md).
//!
//! ```text
//!  underlay port rx --> decap --(inner frame, network of its VNI, from VTEP k)--> learn --> forward --> egress
//!        |                 \--ARP--> stack::underlay (answers for the VTEP address, resolves next hops)
//!        \--anything else: dropped with a reason
//!
//!  egress --> queue of remote VTEP k (`Egress::Vtep(k)`)
//!         --> flush: [50-byte outer header on the stack, inner frame without its tag] --> underlay port
//! ```
//!
//! Remote VTEPs are egresses of their own (`Egress::Vtep`), stored in the
//! FDB like ports, so learning, ageing and flushing treat them as ports. Decapsulation moves the frame's start in
//! its slot (no copy); encapsulation is a gather list, so the inner frame is
//! never moved either. Split horizon: a frame that came from a VTEP never
//! goes back to a VTEP.

use super::{Batch, Context, Meta, TxEntry, TxQueues, Verdict};
use crate::config::Topology;
use crate::counters::DropReason;
use crate::ids::{Egress, NetId, PortId, Segment, VtepId};
use crate::stack::underlay::Underlay;
use crate::stack::StackPkt;
use shunt_parsers::virtio_net::Csum;
use shunt_parsers::vxlan::{self, emit_vxlan_encap, entropy_port, Refused, VxlanEncap, ENCAP_LEN};
use shunt_parsers::{ip, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, Untagged};
use std::net::Ipv4Addr;

/// Outer header bytes.
pub const OVERHEAD: usize = ENCAP_LEN;

/// What the stages need to know about the VTEP.
#[derive(Debug, Clone)]
pub struct VxlanPlan {
    /// The underlay port.
    pub underlay: PortId,
    /// Our MAC and address on the underlay.
    pub mac: MacAddr,
    pub addr: Ipv4Addr,
    pub udp_port: u16,
    pub ttl: u8,
    /// Longest outer frame: the underlay's MTU + the Ethernet header.
    pub max_outer: usize,
    /// Remote VTEP k is `Egress::Vtep(k)`.
    pub remotes: Vec<Ipv4Addr>,
    /// (VNI, network), sorted by VNI.
    pub vni_net: Vec<(u32, NetId)>,
}

impl VxlanPlan {
    pub fn from_topology(t: &Topology) -> Option<VxlanPlan> {
        let v = t.vtep.as_ref()?;
        let mut vni_net: Vec<(u32, NetId)> = t
            .networks
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.vni?, NetId::new(i)?)))
            .collect();
        vni_net.sort_unstable();
        Some(VxlanPlan {
            underlay: PortId::new(v.port)?,
            mac: underlay_mac(&t.switch.name),
            addr: v.address.addr,
            udp_port: v.udp_port,
            ttl: v.ttl,
            max_outer: t.ports.get(v.port).map(|p| p.mtu as usize).unwrap_or(1500)
                + shunt_parsers::ethernet::HEADER_LEN,
            remotes: v.remotes.clone(),
            vni_net,
        })
    }

    #[inline]
    fn net_of(&self, vni: u32) -> Option<NetId> {
        self.vni_net
            .binary_search_by_key(&vni, |x| x.0)
            .ok()
            .map(|i| self.vni_net[i].1)
    }

    #[inline]
    fn remote_of(&self, ip: Ipv4Addr) -> Option<VtepId> {
        self.remotes
            .iter()
            .position(|r| *r == ip)
            .and_then(VtepId::new)
    }

    /// The remote VTEP's address.
    pub fn remote(&self, k: VtepId) -> Option<Ipv4Addr> {
        self.remotes.get(k.index()).copied()
    }
}

pub use crate::stack::underlay_mac;

/// Where a frame came from: its VTEP, or the batch's ingress.
#[inline]
pub fn from(ingress: Egress, m: &Meta) -> Egress {
    match m.vtep {
        Some(k) => Egress::Vtep(k),
        None => ingress,
    }
}

/// What a frame on the underlay is.
enum Seen {
    Arp,
    Vxlan {
        net: NetId,
        remote: VtepId,
        inner_off: usize,
        inner_len: usize,
    },
}

/// Classifies one frame from the underlay. Never panics: the parsers'
/// views check every length.
#[inline]
fn parse(v: &VxlanPlan, f: &[u8]) -> Result<Seen, DropReason> {
    let eth = EthernetFrame::new_checked(f).map_err(|_| DropReason::Runt)?;
    match eth.ethertype() {
        EtherType::Arp => return Ok(Seen::Arp),
        EtherType::Ipv4 => {}
        // Tagged frames too: the underlay carries no VLAN.
        _ => return Err(DropReason::UnderlayOther),
    }
    let d = vxlan::decap_for(f, Some((v.addr, v.udp_port))).map_err(|r| match r {
        Refused::NotVxlan(_) => DropReason::UnderlayOther,
        Refused::Fragment => DropReason::VxlanFragment,
        Refused::Short(_) => DropReason::VxlanShort,
        Refused::NoVni => DropReason::VxlanFlags,
    })?;
    let net = v.net_of(d.vni).ok_or(DropReason::VxlanUnknownVni)?;
    let remote = v.remote_of(d.src_ip).ok_or(DropReason::VxlanUnknownVtep)?;
    let inner = f.get(d.inner.clone()).unwrap_or_default();
    let inner_eth = EthernetFrame::new_checked(inner).map_err(|_| DropReason::VxlanInnerShort)?;
    if inner_eth.ethertype().is_vlan_tag() {
        return Err(DropReason::VxlanInnerTagged);
    }
    Ok(Seen::Vxlan {
        net,
        remote,
        inner_off: d.inner.start,
        inner_len: inner.len(),
    })
}

/// The decap stage, for a batch from the underlay port (instead of
/// classify). Returns how many ARP frames went to the underlay's handler.
pub fn decap_run(ctx: &Context, v: &VxlanPlan, batch: &mut Batch) -> usize {
    let ul = ctx.stack.and_then(|h| h.underlay.as_ref());
    let mut to_arp = 0;
    for i in 0..batch.count {
        let verdict = match parse(v, batch.frame(i)) {
            Ok(Seen::Vxlan {
                net,
                remote,
                inner_off,
                inner_len,
            }) => {
                let m = &mut batch.meta[i];
                // The underlay TAP may leave the inner L4 checksum to do
                // (an encapsulated CHECKSUM_PARTIAL): it now counts from
                // the inner frame. One left in the outer header goes with
                // it. A UDP-tunnel super-frame (an underlay TAP with
                // tunnel GSO) becomes the inner super-frame, a plain one,
                // if its header's inner offset is where this VXLAN
                // header says the inner frame is; a plain super-frame on
                // the underlay is no VXLAN the kernel makes.
                if m.off.gso.is_some() {
                    let inner_l3 = inner_off + shunt_parsers::ethernet::HEADER_LEN;
                    match m.off.tunnel {
                        Some(t) if usize::from(t.inner_l3) == inner_l3 => m.off.tunnel = None,
                        _ => {
                            m.verdict = Verdict::Drop(DropReason::BadOffload);
                            continue;
                        }
                    }
                }
                m.off.csum = m.off.csum.and_then(|c| {
                    Some(Csum {
                        start: c.start.checked_sub(inner_off as u16)?,
                        offset: c.offset,
                    })
                });
                m.start = m.start.saturating_add(inner_off as u16);
                m.len = inner_len as u16;
                m.net = Some(net);
                m.tag_len = 0;
                m.pcp_dei = 0;
                m.vtep = Some(remote);
                let c = ctx.counters.port(Egress::Vtep(remote));
                c.rx_frames.add(1);
                c.rx_bytes.add(inner_len as u64);
                continue;
            }
            Ok(Seen::Arp) => match ul {
                Some(ul) => match StackPkt::gather(Segment::Underlay, &[batch.frame(i)]) {
                    Some(p) if ul.rx.push(p).is_ok() => {
                        to_arp += 1;
                        Verdict::Local
                    }
                    _ => Verdict::Drop(DropReason::HostQueueFull),
                },
                None => Verdict::Drop(DropReason::UnderlayOther),
            },
            Err(r) => Verdict::Drop(r),
        };
        batch.meta[i].verdict = verdict;
    }
    if to_arp > 0 {
        if let Some(ul) = ul {
            crate::stack::StackLink::signal(&ul.rx_event);
        }
    }
    to_arp
}

/// Frames the underlay's ARP handler wants sent (`Segment::Underlay`:
/// `local::take_output` left them without a network) go straight to the
/// underlay port, untagged.
pub fn stack_output(ctx: &Context, batch: &mut Batch, tx: &mut TxQueues) {
    let Some(v) = &ctx.plan.vxlan else { return };
    for i in 0..batch.count {
        if batch.meta[i].net.is_none() && batch.meta[i].verdict == Verdict::Pending {
            batch.meta[i].verdict = Verdict::Local;
            tx.push(v.underlay.into(), TxEntry::new(i, None));
        }
    }
}

/// Head-end replication: one copy of frame `i` for each peer VTEP of
/// network `net`. Returns how many were queued.
#[inline]
pub fn flood_peers(ctx: &Context, net: usize, i: usize, tx: &mut TxQueues) -> usize {
    let Some(n) = ctx.plan.nets.get(net) else {
        return 0;
    };
    if !underlay_up(ctx) {
        return 0;
    }
    for &p in &n.peers {
        tx.push(p, TxEntry::new(i, None));
    }
    n.peers.len()
}

#[inline]
pub fn underlay_up(ctx: &Context) -> bool {
    ctx.plan
        .vxlan
        .as_ref()
        .is_some_and(|v| super::forward::port_up(ctx, v.underlay.into()))
}

/// A hash of the inner frame's addresses (MACs, and IPv4 addresses and
/// ports when there are some): the outer UDP source port, for ECMP.
#[inline]
fn flow_hash(f: &[u8], tag_len: usize) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut mix = |b: &[u8]| {
        for &x in b {
            h = (h ^ u32::from(x)).wrapping_mul(0x0100_0193);
        }
    };
    // Frames shorter than their headers never get here (classify drops
    // them as runts); they would hash as empty.
    let Some(frame) = Untagged::new(f, tag_len) else {
        return h ^ (h >> 16);
    };
    mix(frame.macs());
    if frame.ethertype() == EtherType::Ipv4 {
        if let Ok(ip) = Ipv4Packet::new_checked(frame.payload()) {
            mix(&ip.src_addr().octets());
            mix(&ip.dst_addr().octets());
            if matches!(ip.protocol(), IpProtocol::Tcp | IpProtocol::Udp) {
                if let Some((sport, dport)) = ip::l4_ports(ip.payload()) {
                    mix(&sport.to_be_bytes());
                    mix(&dport.to_be_bytes());
                }
            }
        }
    }
    h ^ (h >> 16)
}

/// The 50 bytes to send in front of the inner frame `f` (whose tag of
/// `tag_len` bytes is left out) to remote VTEP `k`, or why not.
#[inline]
pub fn outer_header(
    v: &VxlanPlan,
    ul: Option<&Underlay>,
    k: VtepId,
    vni: Option<u32>,
    f: &[u8],
    tag_len: usize,
) -> Result<[u8; OVERHEAD], DropReason> {
    outer_header_for(v, ul, k, vni, f, tag_len, f.len().saturating_sub(tag_len))
}

/// [`outer_header`] for an inner frame of `inner_len` bytes taken from
/// `f` (a segment of the super-frame `f`: its flow, its own length).
#[inline]
pub fn outer_header_for(
    v: &VxlanPlan,
    ul: Option<&Underlay>,
    k: VtepId,
    vni: Option<u32>,
    f: &[u8],
    tag_len: usize,
    inner_len: usize,
) -> Result<[u8; OVERHEAD], DropReason> {
    outer_header_checked(v, ul, k, vni, f, tag_len, inner_len, inner_len)
}

/// [`outer_header_for`] whose lengths say `inner_len` while the underlay's
/// MTU is checked against `mtu_len`: a super-frame sent whole (UDP-tunnel
/// GSO) is too big only if its longest segment is.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn outer_header_checked(
    v: &VxlanPlan,
    ul: Option<&Underlay>,
    k: VtepId,
    vni: Option<u32>,
    f: &[u8],
    tag_len: usize,
    inner_len: usize,
    mtu_len: usize,
) -> Result<[u8; OVERHEAD], DropReason> {
    let Some(vni) = vni else {
        return Err(DropReason::NoDestination);
    };
    let Some(&dst_ip) = v.remotes.get(k.index()) else {
        return Err(DropReason::NoDestination);
    };
    if mtu_len + OVERHEAD > v.max_outer {
        return Err(DropReason::VxlanTooBig);
    }
    let dst_mac = ul
        .and_then(|u| u.nexthop_mac(k.index()))
        .ok_or(DropReason::VxlanNoNexthop)?;
    let encap = VxlanEncap {
        src_mac: v.mac,
        dst_mac: MacAddr(dst_mac),
        src_ip: v.addr,
        dst_ip,
        src_port: entropy_port(flow_hash(f, tag_len)),
        dst_port: v.udp_port,
        ttl: v.ttl,
        vni,
        ident: 0,
        dont_frag: true,
    };
    let mut hdr = [0u8; OVERHEAD];
    emit_vxlan_encap(&mut hdr, &encap, inner_len).map_err(|_| DropReason::VxlanTooBig)?;
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shunt_parsers::{ethernet, VxlanPacket, VXLAN_HEADER_LEN};

    fn plan() -> VxlanPlan {
        VxlanPlan {
            underlay: PortId::new(3).expect("in range"),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            addr: Ipv4Addr::new(192, 0, 2, 1),
            udp_port: 4789,
            ttl: 64,
            max_outer: 1514,
            remotes: vec![Ipv4Addr::new(192, 0, 2, 2)],
            vni_net: vec![(1000, NetId::new(0).expect("in range"))],
        }
    }

    fn frame(vni: u32, flags: u8, inner: &[u8]) -> Vec<u8> {
        let mut hdr = [0u8; 50];
        let e = VxlanEncap {
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: Ipv4Addr::new(192, 0, 2, 2),
            dst_ip: Ipv4Addr::new(192, 0, 2, 1),
            src_port: 50000,
            dst_port: 4789,
            ttl: 64,
            vni,
            ident: 0,
            dont_frag: false,
        };
        emit_vxlan_encap(&mut hdr, &e, inner.len()).unwrap();
        VxlanPacket::new_unchecked(&mut hdr[ENCAP_LEN - VXLAN_HEADER_LEN..]).set_flags(flags);
        let mut f = hdr.to_vec();
        f.extend_from_slice(inner);
        f
    }

    fn reason(f: &[u8]) -> Option<DropReason> {
        parse(&plan(), f).err()
    }

    #[test]
    fn decap_checks_each_field() {
        let inner = [0x02u8; 60];
        match parse(&plan(), &frame(1000, 0x08, &inner)) {
            Ok(Seen::Vxlan {
                net,
                remote,
                inner_off,
                inner_len,
            }) => assert_eq!(
                (net.index(), remote.index(), inner_off, inner_len),
                (0, 0, 50, 60)
            ),
            _ => panic!("not decapsulated"),
        }
        assert_eq!(
            reason(&frame(1000, 0, &inner)),
            Some(DropReason::VxlanFlags)
        );
        assert_eq!(
            reason(&frame(7, 8, &inner)),
            Some(DropReason::VxlanUnknownVni)
        );
        assert_eq!(
            reason(&frame(1000, 8, &inner[..ethernet::HEADER_LEN - 1])),
            Some(DropReason::VxlanInnerShort)
        );
        let mut tagged = inner;
        EthernetFrame::new_unchecked(&mut tagged[..]).set_ethertype(EtherType::Vlan);
        assert_eq!(
            reason(&frame(1000, 8, &tagged)),
            Some(DropReason::VxlanInnerTagged)
        );
        // Every prefix is refused with a reason, never a panic.
        let full = frame(1000, 8, &inner);
        for n in 0..full.len() {
            assert!(parse(&plan(), &full[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn encap_round_trips() {
        let inner = [0x02u8; 60];
        let ul = None;
        assert_eq!(
            outer_header(
                &plan(),
                ul,
                VtepId::new(0).expect("in range"),
                Some(1000),
                &inner,
                0
            )
            .err(),
            Some(DropReason::VxlanNoNexthop)
        );
        let big = [0x02u8; 1500];
        assert_eq!(
            outer_header(
                &plan(),
                ul,
                VtepId::new(0).expect("in range"),
                Some(1000),
                &big,
                0
            )
            .err(),
            Some(DropReason::VxlanTooBig)
        );
    }
}
