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
    let said = describe(&topo, &m);
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

fn describe(topo: &crate::config::Topology, m: &crate::config::MirrorCfg) -> String {
    let name = |i: usize| topo.ports.get(i).map_or("?", |p| p.name.as_str());
    let sources: Vec<&str> = m.sources.iter().map(|&s| name(s)).collect();
    format!(
        "{}: {} ({}) to {}",
        m.name,
        sources.join(", "),
        m.direction.name(),
        name(m.destination)
    )
}
