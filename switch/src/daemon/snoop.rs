//! IGMP/MLD snooping's control side: the protocol for the l2 thread, built
//! from the topology, and `shunt mdb`'s answer (docs/multicast.md).

use crate::ids::{NetId, PortId};
use crate::l2::mdb::Family;
use crate::l2::snoop::{Listed, Snoop, SnoopNet};
use crate::l2::L2Link;
use crate::runtime::Runtime;
use std::sync::Arc;

/// The snooping protocol for the networks of the running topology.
pub(super) fn protocol(rt: &Arc<Runtime>, link: &Arc<L2Link>) -> Snoop {
    let topo = rt.topo();
    let nets = topo
        .networks
        .iter()
        .enumerate()
        // macvlan networks deliver by their mode, not by groups.
        .filter(|(_, n)| n.macvlan.is_none())
        .filter_map(|(i, n)| {
            Some(SnoopNet {
                net: NetId::new(i)?,
                name: n.name.clone(),
                cfg: n.mcast,
                mac: crate::stack::switch_mac(&topo.switch.name, i as u16).octets(),
                ip: n.address,
            })
        })
        .collect();
    let rt2 = Arc::clone(rt);
    let ports_of = move |net: NetId| -> Vec<PortId> {
        rt2.plan
            .load()
            .nets
            .get(net.index())
            .map_or_else(Vec::new, |n| n.members.clone())
    };
    Snoop::new(
        Arc::clone(link),
        nets,
        topo.networks.len(),
        Box::new(ports_of),
    )
}

/// `shunt mdb --json`: one object per membership `{ "network", "group",
/// "port", "age_secs", "expires_secs" }`; with `routers`, the router ports
/// instead: `{ "network", "family", "port", "age_secs", "expires_secs" }`.
pub(super) fn mdb_json(
    rt: &Runtime,
    network: Option<&str>,
    routers: bool,
) -> Result<serde_json::Value, String> {
    let topo = rt.topo();
    let filter = match network {
        Some(n) => Some(
            topo.networks
                .iter()
                .position(|x| x.name == n)
                .ok_or_else(|| format!("no network named {n:?}"))?,
        ),
        None => None,
    };
    let Some(l2) = &rt.l2 else {
        return Ok(serde_json::Value::Array(Vec::new()));
    };
    let list = l2.mdb_list.load();
    let now = rt.now_ms();
    let rows = if routers {
        &list.routers
    } else {
        &list.members
    };
    let out = rows
        .iter()
        .filter(|l| filter.is_none_or(|f| l.net.index() == f))
        .map(|l| row(rt, &topo, l, now, routers))
        .collect();
    Ok(serde_json::Value::Array(out))
}

fn row(
    rt: &Runtime,
    topo: &crate::config::Topology,
    l: &Listed,
    now: u64,
    router: bool,
) -> serde_json::Value {
    let secs = |ms: u64| (ms as f64 / 100.0).round() / 10.0;
    let network = topo
        .networks
        .get(l.net.index())
        .map_or(String::new(), |n| n.name.clone());
    let mut o = serde_json::json!({
        "network": network,
        "port": rt.port_name(l.port.into()),
        "age_secs": secs(now.saturating_sub(l.heard_ms)),
        "expires_secs": secs(l.expires_ms.saturating_sub(now)),
    });
    if router {
        o["family"] = match l.family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
        .into();
    } else {
        o["group"] = l.group.map_or(String::new(), |g| g.to_string()).into();
    }
    o
}
