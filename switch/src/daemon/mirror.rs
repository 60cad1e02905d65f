//! `shunt mirror add|del|list`: mirror ports at run time (docs/mirror.md).
//! A change is a new plan (pipeline/mirror.rs reads it once per batch):
//! it takes effect with the workers' next batch, nobody waits.

use crate::config::mirror::{self, MirrorAsk, MirrorError};
use crate::control::proto::{MirrorRow, MirrorSpec};
use crate::counters::sum_port;
use crate::ids::{Egress, PortId};
use crate::runtime::Runtime;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MirrorChangeError {
    #[error(transparent)]
    Bad(#[from] MirrorError),
    #[error("no mirror named {0:?} (`shunt mirror list` shows them)")]
    NoMirror(String),
}

/// Adds a mirror, checked as the topology file's `[[mirror]]` is.
pub(super) fn add(rt: &Runtime, spec: &MirrorSpec) -> Result<String, MirrorChangeError> {
    let _one = super::attach::changes();
    let mut topo = rt.topo();
    let ask = MirrorAsk {
        name: &spec.name,
        source: &spec.source,
        direction: spec.direction.as_deref(),
        destination: &spec.destination,
    };
    let m = mirror::check(topo.mirror_view(), ask)?;
    let said = m.describe(&topo.ports);
    let dest = m.destination;
    topo.mirror.push(m);
    rt.plan
        .store(Arc::new(crate::pipeline::Plan::from_topology(&topo)));
    // What was learned on the destination would send originals to it.
    if let Some(p) = PortId::new(dest) {
        rt.fdb.flush_port(Egress::Port(p).encode());
    }
    crate::say!("shunt: mirror {said}");
    Ok(format!("mirror {said}"))
}

/// Removes a mirror: its destination forwards again from the next batch.
pub(super) fn del(rt: &Runtime, name: &str) -> Result<String, MirrorChangeError> {
    let _one = super::attach::changes();
    let mut topo = rt.topo();
    let at = topo
        .mirror
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| MirrorChangeError::NoMirror(name.to_string()))?;
    let m = topo.mirror.remove(at);
    rt.plan
        .store(Arc::new(crate::pipeline::Plan::from_topology(&topo)));
    let dest = topo
        .ports
        .get(m.destination)
        .map_or("?", |p| p.name.as_str());
    crate::say!("shunt: mirror {name} removed; {dest} forwards again");
    Ok(format!("removed mirror {name}: {dest} forwards again"))
}

/// Every mirror, with its destination's counters.
pub(super) fn list(rt: &Runtime) -> Vec<MirrorRow> {
    let topo = rt.topo();
    topo.mirror
        .iter()
        .map(|m| {
            let totals = PortId::new(m.destination)
                .map(|p| sum_port(&rt.counters, Egress::Port(p)).mirror)
                .unwrap_or_default();
            MirrorRow {
                name: m.name.clone(),
                source: m
                    .sources
                    .iter()
                    .filter_map(|&s| topo.ports.get(s).map(|p| p.name.clone()))
                    .collect(),
                direction: m.direction.name().to_string(),
                destination: topo
                    .ports
                    .get(m.destination)
                    .map_or_else(String::new, |p| p.name.clone()),
                sent: totals.sent,
                dropped: totals.dropped,
            }
        })
        .collect()
}

/// A port leaves the topology (`shunt detach`): it leaves the mirrors'
/// sources, and a mirror to it goes (its id may be given to another port).
pub(super) fn port_removed(topo: &mut crate::config::Topology, port: usize) {
    topo.mirror.retain_mut(|m| {
        m.sources.retain(|&s| s != port);
        m.destination != port && !m.sources.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::port_removed;

    #[test]
    fn a_detached_port_leaves_the_mirrors() {
        let src = "[[network]]\nname = 'n'\n\
            [[host]]\nname = 'a'\nnetworks = ['n']\n[[host]]\nname = 'b'\nnetworks = ['n']\n\
            [[host]]\nname = 'c'\nnetworks = ['n']\n[[host]]\nname = 'd'\nnetworks = ['n']\n\
            [[mirror]]\nname = 'one'\nsource = ['a', 'b']\ndestination = 'c'\n";
        let mut t = crate::config::parse("t", src).expect("parses");
        // A source goes: the mirror stays with the other.
        port_removed(&mut t, 0);
        assert_eq!(t.mirror[0].sources, vec![1]);
        // Its last source goes: the mirror goes.
        port_removed(&mut t, 1);
        assert!(t.mirror.is_empty());
        // Its destination goes: the mirror goes.
        let mut t = crate::config::parse("t", src).expect("parses");
        port_removed(&mut t, 2);
        assert!(t.mirror.is_empty());
    }
}
