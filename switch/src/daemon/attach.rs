//! `shunt attach` and `shunt detach`: hosts plugged in and out while the
//! switch runs. A host attached gets the address and MAC it would get from
//! the file (config::addresses), so attaching is the same as writing it.

use super::plug::{make_namespace, plug_tap, PlugError};
use super::state::{read_state, write_state, State};
use crate::config::addresses::assign_link;
use crate::config::{inner_mtu, Host, HostLink, PortCfg, DEFAULT_MTU};
use crate::ids::{PortId, MAX_PORTS};
use crate::netns;
use crate::runtime::Runtime;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a host could not be attached or detached; said to the client.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no network named {0:?}")]
    NoNetwork(String),
    #[error("host name {0:?} is not valid: use letters, digits, '-' or '_'")]
    BadHostName(String),
    #[error("host {host:?} is already on network {network:?}")]
    AlreadyOn { host: String, network: String },
    #[error("host {host:?} is not on network {network:?}")]
    NotOn { host: String, network: String },
    #[error("no port left: at most {MAX_PORTS} ports")]
    NoPortLeft,
    #[error("network namespace {0:?} exists and is not one of this switch's hosts")]
    NamespaceTaken(String),
    #[error("network {0:?} has no free address left")]
    NoFreeAddress(String),
    #[error(transparent)]
    Plug(#[from] PlugError),
}

/// Attaches and detaches, one at a time. Each holds this for all its
/// work, and the topology's lock only to read it at the start and to
/// change it at the end: what runs `ip` in between (namespaces, TAPs,
/// devices deleted: a second and more under load) leaves the topology to
/// `shunt stats` and the other readers (docs/reliability.md, "Soak").
/// Only attach and detach change the topology, so between their two
/// looks at it nothing else does.
static CHANGES: Mutex<()> = Mutex::new(());

pub(super) fn changes() -> MutexGuard<'static, ()> {
    CHANGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// What an attach decided from the topology before it makes anything.
struct AttachPlan {
    ni: usize,
    port_name: String,
    ip: Option<crate::config::Ipv4Net>,
    mac: shunt_parsers::MacAddr,
    /// The host's index, or None for a host this attach adds.
    host: Option<usize>,
    /// For a host of the topology whose namespace is gone (deleted from
    /// outside): it is made again, with IPv6 or not.
    remake: Option<bool>,
    new_host_mtu: u16,
    ifname: String,
    mtu: u16,
    tap_queues: usize,
    /// Port ids in use when the id was taken (the topology's port count).
    next: usize,
    pid: PortId,
}

/// `shunt attach HOST NETWORK`: plugs a host (new or existing) into a
/// network while the switch runs. Nothing else is disturbed: the new plan
/// is published and workers pick it up between batches.
pub fn attach(rt: &Runtime, host: &str, network: &str) -> Result<String, AttachError> {
    let _one = changes();
    let p = plan_attach(rt, host, network)?;
    if let Err(e) = make_host(rt, host, &p) {
        rt.give_back_port_id(p.pid, p.next);
        return Err(e);
    }
    let tap = plug_tap(
        &p.port_name,
        host,
        &p.ifname,
        Some(p.mac),
        p.mtu,
        p.ip,
        p.tap_queues,
    );
    let mut topo = rt.topo();
    // A host made here stays in the topology even when its TAP could not
    // be made, as its namespace stays among the switch's.
    let hi = match p.host {
        Some(i) => i,
        None => {
            topo.hosts.push(Host {
                name: host.to_string(),
                links: vec![],
                aliases: vec![],
                ipv6: false,
                mtu: p.new_host_mtu,
                line: 0,
            });
            topo.hosts.len() - 1
        }
    };
    let tap = match tap {
        Ok(t) => t,
        Err(e) => {
            rt.give_back_port_id(p.pid, p.next);
            return Err(e.into());
        }
    };
    let id = p.pid.index();
    let (ni, mac, ip, ifname) = (p.ni, p.mac, p.ip, p.ifname);
    topo.hosts[hi].links.push(HostLink {
        network: ni,
        ifname: ifname.clone(),
        ip,
        mac,
    });
    let cfg = PortCfg::host_port(host, network, ni, &ifname, p.mtu, 0);
    match topo.ports.get_mut(id) {
        Some(old) => *old = cfg,
        None => topo.ports.push(cfg),
    }
    if topo.networks[ni].macvlan.is_some() {
        let _ = rt.fdb.add_static(ni as u16, mac.as_bytes(), id as u16);
    }
    rt.taps[id].store(Some(Arc::new(tap)));
    rt.port_kind[id].store(Some(crate::port::Kind::Tap));
    rt.port_worker[id].store(id % rt.counters.len(), Relaxed);
    rt.port_up[id].store(true, Relaxed);
    rt.plan
        .store(Arc::new(crate::pipeline::Plan::from_topology(&topo)));
    rt.port_generation.fetch_add(1, Relaxed);
    let port_name = p.port_name;
    crate::say!("shunt: attached {port_name} ({ifname} in {host})");
    crate::stack::topology_changed(rt.stack.as_deref(), &topo);
    Ok(format!(
        "attached {host} to {network}: port {port_name}, {ifname} in {host}{}",
        ip.map(|i| format!(" with {i}")).unwrap_or_default()
    ))
}

/// The first look of an attach at the topology: whether the host may be
/// attached, with which address, MAC, interface and port id.
fn plan_attach(rt: &Runtime, host: &str, network: &str) -> Result<AttachPlan, AttachError> {
    let topo = rt.topo();
    let ni = topo
        .network_index(network)
        .ok_or_else(|| AttachError::NoNetwork(network.to_string()))?;
    if host.is_empty()
        || host.len() > 32
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AttachError::BadHostName(host.to_string()));
    }
    let port_name = format!("{host}.{network}");
    if topo.ports.iter().any(|p| p.name == port_name && !p.removed) {
        return Err(AttachError::AlreadyOn {
            host: host.to_string(),
            network: network.to_string(),
        });
    }
    // The address and MAC come first: a host that cannot have them is
    // refused before anything is created.
    let (ip, mac) = assign_link(&topo, host, ni)
        .map_err(|_| AttachError::NoFreeAddress(network.to_string()))?;
    // A host made here gets what the same host written in the file would.
    let new_host_mtu = match (&topo.vtep, topo.networks.get(ni).and_then(|n| n.vni)) {
        (Some(v), Some(_)) => topo
            .ports
            .get(v.port)
            .map_or(DEFAULT_MTU, |u| inner_mtu(u.mtu)),
        _ => DEFAULT_MTU,
    };
    let (host_i, remake, links, mtu) = match topo.hosts.iter().position(|h| h.name == host) {
        // A host of this switch whose namespace was deleted from outside
        // (`ip netns del`): its ports went down with it; attaching it again
        // makes the namespace anew, as for a new host (it was refused with
        // `ip link set ... netns H` failing: docs/reliability.md, Faults).
        Some(i) => {
            let h = &topo.hosts[i];
            let remake = (!netns::exists(host)).then_some(h.ipv6);
            (Some(i), remake, h.links.clone(), h.mtu)
        }
        None => {
            if netns::exists(host) {
                return Err(AttachError::NamespaceTaken(host.to_string()));
            }
            (None, None, Vec::new(), new_host_mtu)
        }
    };
    let ifname = (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !links.iter().any(|l| &l.ifname == n))
        .unwrap_or_else(|| "eth0".into());
    // A detached port's id when one is free (Runtime::take_port_id).
    let next = topo.ports.len();
    let pid = rt.take_port_id(next).ok_or(AttachError::NoPortLeft)?;
    Ok(AttachPlan {
        ni,
        port_name,
        ip,
        mac,
        host: host_i,
        remake,
        new_host_mtu,
        ifname,
        mtu,
        tap_queues: topo.switch.tap_queues,
        next,
        pid,
    })
}

/// Makes the host's namespace when it has none (a new host, or one whose
/// namespace was deleted), with the topology unlocked.
fn make_host(rt: &Runtime, host: &str, p: &AttachPlan) -> Result<(), AttachError> {
    match (p.host, p.remake) {
        (Some(_), None) => Ok(()),
        (Some(_), Some(ipv6)) => {
            make_namespace(host, ipv6)?;
            let owned = rt
                .owned_namespaces
                .lock()
                .is_ok_and(|o| o.iter().any(|n| n == host));
            if !owned {
                record_namespace(rt, host);
            }
            Ok(())
        }
        (None, _) => {
            make_namespace(host, false)?;
            record_namespace(rt, host);
            Ok(())
        }
    }
}

/// A namespace created for an attached host: the switch owns it (removes
/// it on the way down), and so does the state file, in case it is killed.
fn record_namespace(rt: &Runtime, host: &str) {
    let Ok(mut owned) = rt.owned_namespaces.lock() else {
        return;
    };
    owned.push(host.to_string());
    // The host's resolver folder, written once it is attached.
    let mut resolv_dirs = read_state(&rt.name)
        .map(|s| s.resolv_dirs)
        .unwrap_or_default();
    resolv_dirs.push(crate::stack::resolv::dir(host).display().to_string());
    let st = State {
        pid: std::process::id(),
        namespaces: owned.clone(),
        resolv_dirs,
    };
    if let Err(e) = write_state(&rt.name, &st) {
        crate::say!("shunt: {e}");
    }
}

/// `shunt detach HOST NETWORK`: unplugs a host from a network while the
/// switch runs; its device goes away, what was learned on it is flushed.
pub fn detach(rt: &Runtime, host: &str, network: &str) -> Result<String, AttachError> {
    let _one = changes();
    let port_name = format!("{host}.{network}");
    let (id, ni, removed_link, macvlan) = {
        let mut topo = rt.topo();
        let id = topo
            .ports
            .iter()
            .position(|p| p.name == port_name && !p.removed && p.host.is_some())
            .ok_or_else(|| AttachError::NotOn {
                host: host.to_string(),
                network: network.to_string(),
            })?;
        let ni = topo.network_index(network).unwrap_or(usize::MAX);
        topo.ports[id].removed = true;
        let mut removed_link = None;
        if let Some(h) = topo.hosts.iter_mut().find(|h| h.name == host) {
            removed_link = h.links.iter().find(|l| l.network == ni).cloned();
            h.links.retain(|l| l.network != ni);
        }
        // Its id may be given to the next port attached: no mirror keeps it.
        super::mirror::port_removed(&mut topo, id);
        rt.port_up[id].store(false, Relaxed);
        rt.plan
            .store(Arc::new(crate::pipeline::Plan::from_topology(&topo)));
        rt.taps[id].store(None);
        rt.packets[id].store(None);
        rt.port_kind[id].store(None);
        rt.port_generation.fetch_add(1, Relaxed);
        crate::stack::topology_changed(rt.stack.as_deref(), &topo);
        let macvlan = topo.networks.get(ni).is_some_and(|n| n.macvlan.is_some());
        (id, ni, removed_link, macvlan)
    };
    // Remove the device now rather than when the last worker lets go of
    // its descriptor, so the host can be attached again at once.
    if let Some(l) = &removed_link {
        let _ = netns::ip(&["-n", host, "link", "del", "dev", &l.ifname]);
    }
    let mut flushed = rt.fdb.flush_port(id as u16);
    if let Some(l) = removed_link.filter(|_| macvlan) {
        rt.fdb.remove(ni as u16, l.mac.as_bytes());
    }
    // The id is given again only once no worker can still hold anything
    // of this port (docs/pipeline/workers.md#port-ids).
    if let Some(pid) = PortId::new(id) {
        flushed += rt.retire_port(pid);
    }
    crate::say!("shunt: detached {port_name}; {flushed} learned entries flushed");
    Ok(format!(
        "detached {host} from {network}; {flushed} learned entries flushed"
    ))
}
