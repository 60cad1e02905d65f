//! resolv: each host's resolver configuration, `/etc/netns/HOST/resolv.conf`,
//! which `ip netns exec HOST` (and so `shunt exec HOST`) bind-mounts over
//! /etc/resolv.conf. The nameserver is the switch's address on the host's
//! first network that has one; the search list holds the domain (when set)
//! and the name of each of the host's networks with an address, so `ping h2`
//! resolves `h2.lan`.

use crate::config::{Host, Topology};
use std::path::PathBuf;

pub const NETNS_ETC: &str = "/etc/netns";

/// The folder `ip netns exec` reads for host `name`.
pub fn dir(name: &str) -> PathBuf {
    PathBuf::from(NETNS_ETC).join(name)
}

/// The resolv.conf text for a host, or None when none of its networks
/// gives the switch an address (then it has no resolver to use).
pub fn contents(topo: &Topology, h: &Host) -> Option<String> {
    let nets: Vec<_> = h
        .links
        .iter()
        .filter_map(|l| topo.networks.get(l.network))
        .filter(|n| n.address.is_some())
        .collect();
    let server = nets.first()?.address?;
    let mut search: Vec<String> = Vec::new();
    for n in &nets {
        for s in n.domain.iter().chain(std::iter::once(&n.name)) {
            if !search.contains(s) {
                search.push(s.clone());
            }
        }
    }
    Some(format!(
        "# written by shunt (switch {:?}); removed by `shunt down`\nnameserver {server}\nsearch {}\noptions timeout:2 attempts:2\n",
        topo.switch.name,
        search.join(" ")
    ))
}

/// The folders `write` will create (recorded in the state file first, so
/// a later run can remove them after a kill -9).
pub fn dirs(topo: &Topology) -> Vec<String> {
    topo.hosts
        .iter()
        .filter(|h| contents(topo, h).is_some())
        .map(|h| dir(&h.name).display().to_string())
        .collect()
}

/// Writes every host's resolv.conf.
pub fn write(topo: &Topology) -> std::io::Result<()> {
    for h in &topo.hosts {
        let Some(text) = contents(topo, h) else {
            continue;
        };
        let d = dir(&h.name);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("resolv.conf"), text)?;
    }
    Ok(())
}

/// Removes what `write` created (the file, then the folder if empty).
pub fn remove(topo: &Topology) {
    for h in &topo.hosts {
        let d = dir(&h.name);
        let _ = std::fs::remove_file(d.join("resolv.conf"));
        let _ = std::fs::remove_dir(&d);
    }
}
