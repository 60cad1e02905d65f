//! The forwarding plan: what the control plane decided about ports and
//! networks, in the shape the stages read fastest. Immutable once built.

use crate::config::{MacvlanMode, PortMode, Topology};

pub const NO_NET: u16 = u16::MAX;

#[derive(Debug, Clone)]
pub struct PortPlan {
    pub name: String,
    /// Ingress: VLAN id -> network, `NO_NET` where the VLAN is not allowed.
    pub vid_net: Box<[u16]>,
    /// Ingress: the network of untagged and priority-tagged frames.
    pub untagged_net: u16,
    pub trunk: bool,
    /// Egress: network -> VLAN to tag with (0: untagged, `NO_NET`: the port
    /// does not carry that network).
    pub egress_vid: Box<[u16]>,
    pub learning: bool,
    pub flood_unknown: bool,
    pub flood_multicast: bool,
    /// Longest frame accepted: MTU + Ethernet header (+ a tag on trunks).
    pub max_frame: usize,
}

#[derive(Debug, Clone)]
pub struct NetPlan {
    pub name: String,
    pub vlan: Option<u16>,
    /// Ports carrying this network, in port order: the flood list.
    pub members: Vec<u16>,
    /// macvlan-style network: its mode and parent port.
    pub macvlan: Option<(MacvlanMode, u16)>,
    /// VXLAN: the network's VNI, and its peer VTEPs (port ids) to flood to.
    pub vni: Option<u32>,
    pub peers: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub ports: Vec<PortPlan>,
    pub nets: Vec<NetPlan>,
    /// The VTEP, when the topology has one.
    pub vxlan: Option<super::vxlan::VxlanPlan>,
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
                macvlan: n.macvlan.map(|m| (m.mode, m.parent as u16)),
                vni: n.vni,
                peers: n
                    .vtep_peers
                    .iter()
                    .filter_map(|ip| t.vtep.as_ref()?.remotes.iter().position(|r| r == ip))
                    .map(|k| super::vxlan::VTEP_BASE + k as u16)
                    .collect(),
            })
            .collect();
        let mut ports = Vec::with_capacity(t.ports.len());
        for (pi, p) in t.ports.iter().enumerate() {
            let mut vid_net = vec![NO_NET; 4096].into_boxed_slice();
            let mut egress_vid = vec![NO_NET; nnets].into_boxed_slice();
            let (untagged_net, trunk) = match &p.mode {
                _ if p.removed => (NO_NET, false),
                PortMode::Access { network } => {
                    egress_vid[*network] = 0;
                    (*network as u16, false)
                }
                PortMode::Trunk { allowed, native } => {
                    for &n in allowed {
                        if let Some(v) = t.networks[n].vlan {
                            vid_net[v as usize] = n as u16;
                            egress_vid[n] = v;
                        }
                    }
                    if let Some(n) = native {
                        egress_vid[*n] = 0;
                    }
                    (native.map(|n| n as u16).unwrap_or(NO_NET), true)
                }
            };
            for (n, &v) in egress_vid.iter().enumerate() {
                if v != NO_NET {
                    nets[n].members.push(pi as u16);
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
            });
        }
        let vxlan = super::vxlan::VxlanPlan::from_topology(t);
        Plan { ports, nets, vxlan }
    }
}
