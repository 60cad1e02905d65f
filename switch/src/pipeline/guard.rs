//! What protects the switch, shared by the workers (docs/storm.md): storm
//! control's buckets and MAC-flap detection's queues. Learning limits live
//! in the FDB (`Fdb::set_port_limit`), link-local frames in forward.

use super::flap::Flap;
use super::storm::Storm;
use crate::config::Topology;

pub struct Guard {
    pub storm: Storm,
    pub flap: Flap,
}

impl Guard {
    /// As the topology says, for `workers` workers.
    pub fn from_topology(t: &Topology, workers: usize) -> Guard {
        let g = Guard {
            storm: Storm::from_topology(t),
            flap: Flap::new(workers),
        };
        g.flap.enable(t.switch.mac_flap.is_some());
        g
    }
}

/// An FDB for `topo`: with a learned count per port, and each port's
/// `max_learned`, when some port has one (the counting costs an atomic add
/// per entry learned, moved or removed; none without limits).
pub fn fdb_for(topo: &Topology, cfg: shunt_tables::FdbConfig) -> shunt_tables::Fdb {
    if topo.ports.iter().all(|p| p.max_learned == 0) {
        return shunt_tables::Fdb::new(cfg);
    }
    let fdb = shunt_tables::Fdb::with_port_limits(cfg, crate::ids::Egress::SLOTS);
    for (i, p) in topo.ports.iter().enumerate() {
        if let Some(id) = crate::ids::PortId::new(i) {
            fdb.set_port_limit(crate::ids::Egress::Port(id).encode(), p.max_learned);
        }
    }
    fdb
}
