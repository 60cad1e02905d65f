//! The forwarding plan: what the control plane decided about ports and
//! networks, in the shape the stages read fastest. Immutable once built.

use crate::config::{MacvlanMode, PortKind, PortMode, Topology};
use crate::ids::{Egress, NetId, PortId, Vid, VtepId, VLAN_IDS};

/// How a port carries a network on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// Untagged (access ports, a trunk's native network).
    Untagged,
    /// Tagged with the network's VLAN (trunks).
    Tagged(Vid),
}

impl Carry {
    /// The tag to push on the way out, if any.
    #[inline]
    pub fn tag(self) -> Option<Vid> {
        match self {
            Carry::Untagged => None,
            Carry::Tagged(v) => Some(v),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PortPlan {
    pub name: String,
    /// Ingress: VLAN id -> network, `None` where the VLAN is not allowed.
    pub vid_net: Box<[Option<NetId>]>,
    /// Ingress: the network of untagged and priority-tagged frames.
    pub untagged_net: Option<NetId>,
    pub trunk: bool,
    /// Egress: network -> how the port carries it (`None`: it does not).
    pub egress_vid: Box<[Option<Carry>]>,
    pub learning: bool,
    pub flood_unknown: bool,
    pub flood_multicast: bool,
    /// Longest frame accepted: MTU + Ethernet header (+ a tag on trunks).
    /// For a GSO super-frame: the longest of its segments.
    pub max_frame: usize,
    /// What the port takes on transmit (docs/offloads.md): a TAP takes
    /// super-frames and unfinished checksums through its virtio-net header;
    /// an AF_XDP port takes neither, so the edit stage does them first.
    pub offloads: crate::port::Offloads,
}

#[derive(Debug, Clone)]
pub struct NetPlan {
    pub name: String,
    pub vlan: Option<u16>,
    /// Ports carrying this network, in port order: the flood list.
    pub members: Vec<PortId>,
    /// macvlan-style network: its mode and parent port.
    pub macvlan: Option<(MacvlanMode, PortId)>,
    /// VXLAN: the network's VNI, and its peer VTEPs to flood to.
    pub vni: Option<u32>,
    pub peers: Vec<Egress>,
    /// What 01:80:c2:00:00:0X frames get (`link_local`).
    pub link_local: crate::config::LinkLocal,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub ports: Vec<PortPlan>,
    pub nets: Vec<NetPlan>,
    /// The VTEP, when the topology has one.
    pub vxlan: Option<super::vxlan::VxlanPlan>,
    /// Mirror ports, when the topology has any (pipeline/mirror.rs).
    pub mirror: Option<super::mirror::MirrorPlan>,
}

impl Plan {
    pub fn from_topology(t: &Topology) -> Plan {
        let nnets = t.networks.len();
        let mut nets: Vec<NetPlan> = t
            .networks
            .iter()
            .map(|n| NetPlan {
                name: n.name.clone(),
                vlan: n.vlan,
                members: Vec::new(),
                macvlan: n
                    .macvlan
                    .and_then(|m| Some((m.mode, PortId::new(m.parent)?))),
                vni: n.vni,
                peers: n
                    .vtep_peers
                    .iter()
                    .filter_map(|ip| t.vtep.as_ref()?.remotes.iter().position(|r| r == ip))
                    .filter_map(VtepId::new)
                    .map(Egress::Vtep)
                    .collect(),
                link_local: n.link_local,
            })
            .collect();
        let mut ports = Vec::with_capacity(t.ports.len());
        for (pi, p) in t.ports.iter().enumerate() {
            let Some(port) = PortId::new(pi) else {
                break;
            };
            let mut vid_net = vec![None; VLAN_IDS].into_boxed_slice();
            let mut egress_vid = vec![None; nnets].into_boxed_slice();
            // A mirror's destination takes no part in forwarding: it
            // carries no network while it is one (docs/mirror.md).
            let dest = t.mirror.iter().any(|m| m.destination == pi);
            let (untagged_net, trunk) = match &p.mode {
                _ if p.removed || dest => (None, false),
                PortMode::Access { network } => {
                    egress_vid[*network] = Some(Carry::Untagged);
                    (NetId::new(*network), false)
                }
                PortMode::Trunk { allowed, native } => {
                    for &n in allowed {
                        if let Some(v) = t.networks[n].vlan.and_then(Vid::new) {
                            vid_net[usize::from(v.get())] = NetId::new(n);
                            egress_vid[n] = Some(Carry::Tagged(v));
                        }
                    }
                    if let Some(n) = native {
                        egress_vid[*n] = Some(Carry::Untagged);
                    }
                    (native.and_then(NetId::new), true)
                }
            };
            for (n, v) in egress_vid.iter().enumerate() {
                if v.is_some() {
                    nets[n].members.push(port);
                }
            }
            ports.push(PortPlan {
                name: p.name.clone(),
                vid_net,
                untagged_net,
                trunk,
                egress_vid,
                learning: p.learning,
                flood_unknown: p.flood_unknown,
                flood_multicast: p.flood_multicast,
                // classify adds the tag's 4 bytes for tagged frames.
                max_frame: p.mtu as usize + shunt_parsers::ethernet::HEADER_LEN,
                offloads: match p.kind {
                    // The underlay TAP, given UDP-tunnel GSO at bring-up
                    // where the kernel has it (port/tap.rs).
                    PortKind::Tap if t.vtep.as_ref().is_some_and(|v| v.port == pi) => {
                        crate::port::Offloads {
                            udp_tunnel: crate::port::tap::udp_tunnel_gso(),
                            ..crate::port::Offloads::ALL
                        }
                    }
                    PortKind::Tap | PortKind::Packet => crate::port::Offloads::ALL,
                    PortKind::Afxdp => crate::port::Offloads::default(),
                },
            });
        }
        let vxlan = super::vxlan::VxlanPlan::from_topology(t);
        let mirror = super::mirror::MirrorPlan::from_topology(t);
        Plan {
            ports,
            nets,
            vxlan,
            mirror,
        }
    }
}
