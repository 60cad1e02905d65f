//! `shunt storm PORT [--broadcast N] [--multicast N] [--unknown-unicast N]
//! [--burst D] [--clear]`: storm control at run time (docs/storm.md). The
//! workers' buckets are atomics (pipeline/storm.rs): a change takes effect
//! with the next batch, with a full bucket.

use crate::config::{guard::DEFAULT_BURST_NS, StormRate};
use crate::control::proto::StormSpec;
use crate::counters::FloodCause;
use crate::ids::PortId;
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum StormError {
    #[error("no port or host named {0:?}")]
    NoPort(String),
    #[error("burst {0:?}: write it like \"100ms\" or \"1s\" (at least 1ms)")]
    Burst(String),
    #[error("{what} = {n}: at most {max} frames per second")]
    Rate {
        what: &'static str,
        n: u64,
        max: i64,
    },
}

pub(super) fn apply(rt: &Runtime, spec: &StormSpec) -> Result<String, StormError> {
    let ports = crate::control::answers::resolve_ports(rt, &spec.port);
    if ports.is_empty() {
        return Err(StormError::NoPort(spec.port.clone()));
    }
    let burst_ns = match &spec.burst {
        None => None,
        Some(b) => match crate::impair::values::duration_ns(b) {
            Ok(ns) if ns >= 1_000_000 => Some(ns),
            _ => return Err(StormError::Burst(b.clone())),
        },
    };
    let asked = [
        (FloodCause::Broadcast, "broadcast", spec.broadcast),
        (FloodCause::Multicast, "multicast", spec.multicast),
        (
            FloodCause::UnknownUnicast,
            "unknown_unicast",
            spec.unknown_unicast,
        ),
    ];
    let max = crate::config::guard::MAX_STORM_RATE;
    for (_, what, n) in asked {
        if let Some(n) = n.filter(|&n| n > max as u64) {
            return Err(StormError::Rate { what, n, max });
        }
    }
    let change = spec.clear || burst_ns.is_some() || asked.iter().any(|a| a.2.is_some());
    let mut said = Vec::new();
    for p in ports.into_iter().filter_map(|p| PortId::new(p.into())) {
        let mut rates = rt.guard.storm.get(p);
        if spec.clear {
            rates = [None; 3];
        }
        for (cause, _, n) in asked {
            if let Some(per_sec) = n {
                let burst_ns = burst_ns
                    .or(rates[cause as usize].map(|r| r.burst_ns))
                    .unwrap_or(DEFAULT_BURST_NS);
                rates[cause as usize] = Some(StormRate { per_sec, burst_ns });
            }
        }
        if let Some(b) = burst_ns {
            for r in rates.iter_mut().flatten() {
                r.burst_ns = b;
            }
        }
        if change {
            rt.guard.storm.set(p, rates);
        }
        said.push(format!("{}: {}", rt.port_name(p.into()), describe(&rates)));
    }
    Ok(said.join("; "))
}

/// A port's limits in words.
pub fn describe(rates: &[Option<StormRate>; 3]) -> String {
    let parts: Vec<String> = FloodCause::ALL
        .iter()
        .filter_map(|&c| {
            let r = rates[c as usize]?;
            Some(format!(
                "{} {}/s (burst {} ms)",
                c.name(),
                r.per_sec,
                r.burst_ns / 1_000_000
            ))
        })
        .collect();
    if parts.is_empty() {
        "no storm control".into()
    } else {
        format!("storm control {}", parts.join(", "))
    }
}
