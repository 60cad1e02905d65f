//! Between the state machine ([`super::Bridge`]) and the switch: which
//! ports take part and with what parameters, the per-port states the
//! workers read ([`Shared::states`]), the status `shunt stp` shows, and
//! the counters `shunt stats` shows.

use super::{BridgeConfig, PortConfig, PortState, Status};
use crate::config::{StpMode, Topology};
use crate::ids::{PortId, MAX_PORTS};
use shunt_parsers::MacAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

/// One port of the instance.
#[derive(Debug, Clone)]
pub struct StpPort {
    pub id: PortId,
    pub name: String,
    pub cfg: PortConfig,
}

/// What the workers, the control socket and the l2 thread share.
pub struct Shared {
    /// Per port id, a `PortState` as u8. Ports outside the instance (none
    /// at start: every port of the topology takes part; ports attached at
    /// run time do not) stay forwarding.
    pub states: Box<[AtomicU8]>,
    pub bridge: BridgeConfig,
    pub ports: Vec<StpPort>,
    /// The latest status, written by the l2 thread after each change.
    pub status: Mutex<Option<Status>>,
    /// BPDUs taken from the ports, parsed or not.
    pub bpdus_in: AtomicU64,
    /// BPDUs that did not parse (or came tagged), ignored.
    pub bpdus_bad: AtomicU64,
    pub bpdus_out: AtomicU64,
}

/// The bridge MAC of switch `name`: locally administered, from the name
/// (FNV-1a, 32 bits of it), so that two switches' bridge ids differ.
pub fn bridge_mac(name: &str) -> [u8; 6] {
    let mut h: u32 = 2166136261;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    let [a, b, c, d] = h.to_be_bytes();
    [0x06, 0x53, a, b, c, d]
}

/// The source MAC of the BPDUs out of instance port `i` (802.1D: the
/// port's own address; the Linux bridge learns it, so one per port).
pub fn port_mac(bridge: [u8; 6], i: usize) -> MacAddr {
    // Locally administered (0x0a), the port number in the low bytes.
    let [_, b1, b2, b3, b4, b5] = bridge;
    let [hi, lo] = (i as u16).to_be_bytes();
    MacAddr([0x0a, b1, b2, b3, b4 ^ hi, b5 ^ lo])
}

impl Shared {
    /// The instance `t` asks for; None with `stp = "off"`.
    pub fn for_topology(t: &Topology) -> Option<Shared> {
        let s = t.switch.stp;
        if s.mode == StpMode::Off {
            return None;
        }
        let bridge = BridgeConfig {
            priority: s.priority,
            mac: bridge_mac(&t.switch.name),
            hello_secs: s.hello_secs,
            max_age_secs: s.max_age_secs,
            forward_delay_secs: s.forward_delay_secs,
            force_stp: false,
        };
        let ports: Vec<StpPort> = t
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.removed)
            .filter_map(|(i, p)| {
                Some(StpPort {
                    id: PortId::new(i)?,
                    name: p.name.clone(),
                    cfg: PortConfig {
                        cost: p.stp.cost,
                        priority: p.stp.priority,
                        edge: p.stp.edge,
                    },
                })
            })
            .collect();
        let states: Box<[AtomicU8]> = (0..MAX_PORTS)
            .map(|_| AtomicU8::new(PortState::Forwarding as u8))
            .collect();
        // Until the protocol says otherwise, a port that is not an edge
        // port discards: a loop must not form while the l2 thread starts.
        for p in &ports {
            if !p.cfg.edge {
                states[p.id.index()].store(PortState::Discarding as u8, Relaxed);
            }
        }
        Some(Shared {
            states,
            bridge,
            ports,
            status: Mutex::new(None),
            bpdus_in: AtomicU64::new(0),
            bpdus_bad: AtomicU64::new(0),
            bpdus_out: AtomicU64::new(0),
        })
    }

    pub fn state(&self, p: PortId) -> PortState {
        self.states
            .get(p.index())
            .map_or(PortState::Forwarding, |s| {
                PortState::from_u8(s.load(Relaxed))
            })
    }

    /// `shunt stp --json`.
    pub fn json(&self) -> serde_json::Value {
        let st = self.status.lock().map(|s| s.clone()).unwrap_or(None);
        let bridge_id = super::BridgeId::new(self.bridge.priority, self.bridge.mac);
        let mut ports = serde_json::Map::new();
        let (root_id, root_port, cost, tcs, last_tc) = match &st {
            Some(s) => (
                s.root_id,
                s.root_port
                    .and_then(|i| self.ports.get(i))
                    .map(|p| p.name.clone()),
                s.root_path_cost,
                s.topology_changes,
                s.last_topology_change,
            ),
            None => (bridge_id, None, 0, 0, None),
        };
        for (i, p) in self.ports.iter().enumerate() {
            let Some(ps) = st.as_ref().and_then(|s| s.ports.get(i)) else {
                continue;
            };
            ports.insert(
                p.name.clone(),
                serde_json::json!({
                    "role": ps.role_name(),
                    "state": ps.state.name(),
                    "edge": ps.edge,
                    "cost": ps.cost,
                    "priority": ps.priority,
                    "port_id": format!("{:04x}", ps.port_id),
                    "protocol": if ps.rstp { "rstp" } else { "stp" },
                    "designated_bridge": ps.designated_bridge.to_string(),
                    "designated_port": format!("{:04x}", ps.designated_port),
                    "bpdus_in": ps.rx_bpdus,
                    "bpdus_out": ps.tx_bpdus,
                }),
            );
        }
        serde_json::json!({
            "stp": "rstp",
            "bridge_id": bridge_id.to_string(),
            "root_id": root_id.to_string(),
            "root_port": root_port,
            "root_path_cost": cost,
            "topology_changes": tcs,
            "last_topology_change_ms": last_tc,
            "hello_secs": self.bridge.hello_secs,
            "max_age_secs": self.bridge.max_age_secs,
            "forward_delay_secs": self.bridge.forward_delay_secs,
            "ports": ports,
        })
    }

    /// `shunt stats --json` "stp".
    pub fn stats_json(&self) -> serde_json::Value {
        let tcs = self
            .status
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.topology_changes))
            .unwrap_or(0);
        serde_json::json!({
            "bpdus_in": self.bpdus_in.load(Relaxed),
            "bpdus_bad": self.bpdus_bad.load(Relaxed),
            "bpdus_out": self.bpdus_out.load(Relaxed),
            "topology_changes": tcs,
        })
    }
}

/// `shunt stp --json` with `stp = "off"`: the same shape, no ports.
pub fn off_json(switch_name: &str, priority: u16) -> serde_json::Value {
    let id = super::BridgeId::new(priority, bridge_mac(switch_name)).to_string();
    serde_json::json!({
        "stp": "off",
        "bridge_id": id,
        "root_id": id,
        "root_port": null,
        "ports": {},
    })
}
