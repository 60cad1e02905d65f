//! A switch that is up: its FDB's static entries, the switch's own stack,
//! the runtime shared by the workers, and its threads until it is told to
//! stop.

use super::{threads, UpError};
use crate::config::Topology;
use crate::control;
use crate::ids::{Egress, VtepId};
use crate::port::Device;
use crate::runtime::Runtime;
use crate::stack::StackLink;
use shunt_tables::{Fdb, FdbConfig};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};

/// What the switch ends with: the topology (hosts attached at run time
/// included) and the namespaces it owns, for the teardown.
pub(super) struct Ended {
    pub topo: Topology,
    pub owned: Vec<String>,
}

/// The FDB with the file's static entries, those behind remote VTEPs, and
/// the hosts of macvlan networks (known by their fixed MACs).
fn fdb(topo: &Topology) -> Result<Fdb, UpError> {
    let fdb = crate::pipeline::guard::fdb_for(
        topo,
        FdbConfig {
            max_entries: topo.switch.fdb_max_entries,
            aging_ms: topo.switch.fdb_aging_secs * 1000,
        },
    );
    for s in &topo.fdb {
        fdb.add_static(s.network as u16, s.mac.as_bytes(), s.port as u16)
            .map_err(|source| UpError::StaticEntry {
                what: format!("static entry on line {}", s.line),
                source,
            })?;
    }
    if let Some(v) = &topo.vtep {
        for &(net, mac, k) in &v.fdb {
            // The topology holds at most MAX_VTEPS remotes.
            let Some(port) = VtepId::new(k).map(|k| Egress::Vtep(k).encode()) else {
                continue;
            };
            fdb.add_static(net as u16, mac.as_bytes(), port)
                .map_err(|source| UpError::StaticEntry {
                    what: format!("static entry behind VTEP {}", v.remotes[k]),
                    source,
                })?;
        }
    }
    for h in &topo.hosts {
        for l in h
            .links
            .iter()
            .filter(|l| topo.networks[l.network].macvlan.is_some())
        {
            let port = format!("{}.{}", h.name, topo.networks[l.network].name);
            if let Some(pi) = topo.port_index(&port) {
                fdb.add_static(l.network as u16, l.mac.as_bytes(), pi as u16)
                    .map_err(|source| UpError::StaticEntry {
                        what: format!("macvlan host {port}"),
                        source,
                    })?;
            }
        }
    }
    Ok(fdb)
}

/// The switch's own stack, when some network gives the switch an address
/// or suppresses ARP, or the switch is a VTEP.
fn stack(topo: &Topology, nworkers: usize) -> Result<Option<Arc<StackLink>>, UpError> {
    let link = StackLink::for_topology(topo, nworkers).map_err(|source| UpError::Io {
        what: "creating the switch's stack's queues".into(),
        source,
    })?;
    Ok(link.map(Arc::new))
}

/// Runs the switch on `devices` until SIGINT, SIGTERM or `shunt down`.
pub(super) fn serve(
    topo: Topology,
    devices: Vec<Device>,
    sigs: nix::sys::signal::SigSet,
    owned: Vec<String>,
) -> Result<Ended, UpError> {
    let name = topo.switch.name.clone();
    let fdb = fdb(&topo)?;
    let nports = topo.ports.len();
    let nworkers = topo.switch.workers.clamp(1, nports.max(1));
    let stack_link = stack(&topo, nworkers)?;
    let aging_secs = topo.switch.fdb_aging_secs;
    let (nhosts, nnets) = (topo.hosts.len(), topo.networks.len());
    let mut rt =
        Runtime::new(topo, fdb, devices, nworkers, stack_link, owned).map_err(|source| {
            UpError::Io {
                what: "creating the workers' queues".into(),
                source,
            }
        })?;
    rt.l2 = Some(Arc::new(crate::l2::L2Link::new(nworkers).map_err(
        |source| UpError::Io {
            what: "creating the L2 control thread's queues".into(),
            source,
        },
    )?));
    let rt = Arc::new(rt);
    let listener = control::bind(&name)?;
    let mut handles = threads::workers(&rt, nworkers)?;
    handles.extend(threads::stack(&rt)?);
    handles.extend(threads::l2(&rt)?);
    threads::ager(&rt, aging_secs)?;
    threads::link_monitor(&rt)?;
    super::flap::spawn(&rt)?;
    super::link::spawn_flapper(&rt).map_err(|source| UpError::Thread {
        what: "the link flapper",
        source,
    })?;
    let (tx, rx) = mpsc::channel::<()>();
    threads::control(&rt, listener, tx.clone())?;
    threads::signals(sigs, tx)?;
    crate::say!(
        "shunt: switch {name:?} is up: {nhosts} hosts, {nports} ports, {nnets} networks, {nworkers} worker(s); control socket {}",
        control::socket_path(&name).display()
    );
    let _ = rx.recv();
    rt.stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let ended = Ended {
        topo: rt.topo().clone(),
        owned: rt
            .owned_namespaces
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default(),
    };
    crate::say!("shunt: switch {name:?} stopped");
    Ok(ended)
}
