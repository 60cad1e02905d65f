//! Link state on the control path: `shunt link PORT down|up` and the flap
//! schedules of the topology file. A link taken down looks to its host as
//! a pulled cable: a TAP's carrier goes off (TUNSETCARRIER), a veth's
//! outer end is set down (its peer in the host then has no carrier). The
//! workers stop polling the port and drop what they would send to it as
//! `link_down`; what was learned on it is flushed, as a real switch does.

use crate::ids::{Egress, PortId};
use crate::runtime::Runtime;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no port or host named {0:?}")]
    NoPort(String),
    #[error("port {port}: cannot turn the TAP's carrier {what}: {source}")]
    Carrier {
        port: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("port {port}: {source}")]
    Ip {
        port: String,
        source: crate::netns::NetnsError,
    },
    #[error("port {0} has no device (it went away): nothing to take up or down")]
    Gone(String),
}

/// How long a link change waits for the workers to stop polling the port
/// before its device goes down (a packet socket reports the device down
/// as an error, which a worker would take for the device gone).
const QUIESCE: Duration = Duration::from_secs(2);

/// Takes the links of `name` (a port, or a host's ports, resolved by the
/// control path into `ports`) up or down.
pub fn set_by_name(
    rt: &Runtime,
    name: &str,
    ports: Vec<u16>,
    up: bool,
) -> Result<String, LinkError> {
    if ports.is_empty() {
        return Err(LinkError::NoPort(name.to_string()));
    }
    let mut said = Vec::new();
    for p in ports {
        let Some(id) = PortId::new(p.into()) else {
            continue;
        };
        said.push(set(rt, id, up)?);
    }
    Ok(said.join("; "))
}

/// Takes port `p`'s link up or down. Returns what was done, in words.
pub fn set(rt: &Runtime, p: PortId, up: bool) -> Result<String, LinkError> {
    let i = p.index();
    let name = rt.port_name(p.into());
    let Some(flag) = rt.impair.link_down.get(i) else {
        return Err(LinkError::NoPort(name));
    };
    let (kind, dev) = {
        let topo = rt.topo();
        let Some(c) = topo.ports.get(i).filter(|c| !c.removed) else {
            return Err(LinkError::NoPort(name));
        };
        (
            rt.taps[i].load().is_some(),
            c.outer.clone().unwrap_or_else(|| c.interface.clone()),
        )
    };
    if flag.load(Relaxed) != up {
        let state = if up { "up" } else { "down" };
        return Ok(format!("{name}: link already {state}"));
    }
    if !up {
        flag.store(true, Relaxed);
        rt.impair.generation.fetch_add(1, Release);
        // The workers rebuild their poll sets without the port before its
        // device goes down.
        rt.quiesce(QUIESCE);
        carrier(rt, p, kind, &dev, &name, false)?;
        let flushed = rt.fdb.flush_port(Egress::Port(p).encode());
        crate::say!("shunt: port {name}: link down; {flushed} learned entries flushed");
        return Ok(format!(
            "{name}: link down ({flushed} learned entries flushed)"
        ));
    }
    carrier(rt, p, kind, &dev, &name, true)?;
    flag.store(false, Relaxed);
    rt.impair.generation.fetch_add(1, Release);
    rt.port_generation.fetch_add(1, Release);
    for w in &rt.wake {
        let _ = w.write(1);
    }
    crate::say!("shunt: port {name}: link up");
    Ok(format!("{name}: link up"))
}

/// The device side of a link change.
fn carrier(
    rt: &Runtime,
    p: PortId,
    // The port is a TAP (its carrier is switched), else a veth end.
    tap: bool,
    dev: &str,
    name: &str,
    on: bool,
) -> Result<(), LinkError> {
    let what = if on { "on" } else { "off" };
    match tap {
        true => {
            let tap = rt.taps[p.index()].load_full();
            let t = tap.ok_or_else(|| LinkError::Gone(name.to_string()))?;
            t.set_carrier(on).map_err(|source| LinkError::Carrier {
                port: name.to_string(),
                what,
                source,
            })
        }
        false => {
            let state = if on { "up" } else { "down" };
            crate::netns::ip(&["link", "set", "dev", dev, state]).map_err(|source| {
                LinkError::Ip {
                    port: name.to_string(),
                    source,
                }
            })?;
            if on {
                // The packet socket kept the "network down" error of the
                // way down: read it now, or the next poll reports it.
                if let Some(pk) = rt.packets[p.index()].load_full() {
                    let _ = pk.take_error();
                }
            }
            Ok(())
        }
    }
}

/// Runs the flap schedules of the topology (`flap` in `[[impair]]`): the
/// link of a port with one goes down every `every`, for `down_for`,
/// counted from the start of the switch (or from when the schedule was set).
pub fn spawn_flapper(rt: &Arc<Runtime>) -> std::io::Result<()> {
    // Schedules come from the file only: none there, no thread.
    if !rt.impair.ports.load().iter().any(|p| p.flap.is_some()) {
        return Ok(());
    }
    let rt = Arc::clone(rt);
    std::thread::Builder::new()
        .name("shunt-flap".into())
        .spawn(move || {
            let mut since: Vec<Option<(crate::impair::Flap, Instant)>> =
                vec![None; crate::ids::MAX_PORTS];
            while !rt.stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let ports = rt.impair.ports.load();
                for (i, pi) in ports.iter().enumerate() {
                    let Some(f) = pi.flap else {
                        since[i] = None;
                        continue;
                    };
                    let t0 = match since[i] {
                        Some((g, t)) if g == f => t,
                        _ => {
                            let t = Instant::now();
                            since[i] = Some((f, t));
                            t
                        }
                    };
                    let e = t0.elapsed().as_nanos() as u64;
                    let down = e >= f.every_ns && e % f.every_ns < f.down_for_ns;
                    let Some(id) = PortId::new(i) else { continue };
                    if rt.impair.is_down(i) != down {
                        if let Err(err) = set(&rt, id, !down) {
                            crate::say!("shunt: flap: {err}");
                        }
                    }
                }
            }
        })
        .map(drop)
}
