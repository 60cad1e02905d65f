//! `shunt up` in the foreground: clean up after an earlier run, record
//! what will be created, create the namespaces and devices, run, and
//! remove it all again.

use super::cleanup::{clean_stale, teardown};
use super::plug::{
    make_namespace, nerr, note_veth_checksums, note_veth_tunnels, open_afxdp, open_packet,
    plug_tap, plug_veth,
};
use super::serve::serve;
use super::state::{write_state, State};
use super::UpError;
use crate::config::{PortKind, Topology};
use crate::netns;
use crate::port::{Device, SharedUmem, Tap};

/// Creates the namespaces and devices. Returns the devices by port id, and
/// notes in `topo` the outer interface of each host port that is a veth.
fn build(topo: &mut Topology) -> Result<Vec<Device>, UpError> {
    let mut devs: Vec<Option<Device>> = topo.ports.iter().map(|_| None).collect();
    // `multiqueue`: a veth host on AF_XDP gets as many queues as a TAP
    // (one per worker), with a socket on each; an interface the user
    // brought keeps one socket, on queue 0.
    let veth_queues = topo.switch.tap_queues;
    let n_xdp: usize = topo
        .ports
        .iter()
        .filter(|p| p.kind == PortKind::Afxdp)
        .map(|p| if p.host.is_some() { veth_queues } else { 1 })
        .sum();
    // Two 4096-frame shares per socket: a socket may hold up to 7168 frames
    // at once (receive side 4096, transmit side 2048, cache 1024), and
    // frames in batches and hand-over queues come on top. (AF_XDP ports are
    // not attached at run time: `shunt attach` makes TAP ports.)
    let umem = if n_xdp > 0 {
        Some(SharedUmem::new(n_xdp * 2)?)
    } else {
        None
    };
    let hosts = topo.hosts.clone();
    for h in &hosts {
        make_namespace(&h.name, h.ipv6)?;
        for link in &h.links {
            let port = format!("{}.{}", h.name, topo.networks[link.network].name);
            let Some(pi) = topo.port_index(&port) else {
                continue;
            };
            let kind = topo.ports[pi].kind;
            if kind == PortKind::Packet {
                let outer = plug_veth(&h.name, &link.ifname, link.mac, h.mtu, link.ip, true, 1)?;
                devs[pi] = Some(open_packet(&port, &outer)?);
                topo.ports[pi].outer = Some(outer);
            } else if kind == PortKind::Afxdp {
                let outer = plug_veth(
                    &h.name,
                    &link.ifname,
                    link.mac,
                    h.mtu,
                    link.ip,
                    false,
                    veth_queues,
                )?;
                let Some(umem) = &umem else { continue };
                let mode = topo.ports[pi].xdp_mode;
                devs[pi] = Some(open_afxdp(&port, &outer, mode, umem, veth_queues)?);
                topo.ports[pi].outer = Some(outer);
            } else {
                let queues = topo.switch.tap_queues;
                let tap = plug_tap(
                    &port,
                    &h.name,
                    &link.ifname,
                    Some(link.mac),
                    h.mtu,
                    link.ip,
                    queues,
                )?;
                devs[pi] = Some(Device::tap(tap));
            }
        }
    }
    for (pi, p) in topo.ports.iter().enumerate() {
        if p.host.is_some() {
            continue;
        }
        if p.kind == PortKind::Packet {
            devs[pi] = Some(open_packet(&p.name, &p.interface)?);
            note_veth_tunnels(&p.name, &p.interface);
            continue;
        }
        if p.kind == PortKind::Afxdp {
            if let Some(umem) = &umem {
                devs[pi] = Some(open_afxdp(&p.name, &p.interface, p.xdp_mode, umem, 1)?);
                note_veth_checksums(&p.name, &p.interface);
            }
            continue;
        }
        if let Some(ns) = &p.netns {
            // A bare TAP inside a namespace of its own (a trunk into a
            // router namespace, a test's sniffer).
            if !netns::exists(ns) {
                make_namespace(ns, false)?;
            }
            devs[pi] = Some(Device::tap(plug_tap(
                &p.name,
                ns,
                &p.interface,
                None,
                p.mtu,
                None,
                topo.switch.tap_queues,
            )?));
            continue;
        }
        let tap = Tap::open_queues(&p.interface, topo.switch.tap_queues).map_err(|source| {
            super::PlugError::Tap {
                port: p.name.clone(),
                source,
            }
        })?;
        let qlen = super::plug::TAP_TXQUEUELEN.to_string();
        let mtu = p.mtu.to_string();
        netns::ip(&[
            "link",
            "set",
            &p.interface,
            "mtu",
            &mtu,
            "txqueuelen",
            &qlen,
            "up",
        ])
        .map_err(nerr(&p.name))?;
        devs[pi] = Some(Device::tap(tap));
    }
    // VXLAN: the underlay TAP takes whole encapsulated super-frames where
    // the kernel can (port/tap.rs, docs/offloads.md).
    if let Some(Some(Device::Tap(t, _))) = topo.vtep.as_ref().and_then(|v| devs.get(v.port)) {
        crate::port::tap::offer_underlay_tunnel(t);
    }
    devs.into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.ok_or_else(|| UpError::NoDevice {
                port: topo.ports[i].name.clone(),
            })
        })
        .collect()
}

/// Runs the switch in the foreground until SIGINT, SIGTERM or `shunt down`.
pub fn run(topo: Topology) -> Result<(), UpError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UpError::NotRoot);
    }
    let name = topo.switch.name.clone();
    let removed = clean_stale(&name)?;
    if !removed.is_empty() {
        crate::say!(
            "shunt: cleaned up after an earlier run of {name:?}: {}",
            removed.join(", ")
        );
    }
    for h in &topo.hosts {
        if netns::exists(&h.name) {
            return Err(UpError::NamespaceTaken(h.name.clone()));
        }
    }
    // The namespaces this run creates, and so removes: every host's, and
    // those of `[[port]] namespace` that do not exist yet.
    let mut owned: Vec<String> = topo.hosts.iter().map(|h| h.name.clone()).collect();
    for p in &topo.ports {
        if let Some(ns) = &p.netns {
            if !owned.contains(ns) && !netns::exists(ns) {
                owned.push(ns.clone());
            }
        }
    }
    // Large per-request buffers (a capture's rings, a whole-table answer's
    // copy) go back to the kernel when freed, not into the arena of the
    // thread that served the request.
    crate::port::sys::fix_mmap_threshold();
    // Block the stop signals before any thread exists, so that only the
    // signal thread sees them.
    let mut sigs = nix::sys::signal::SigSet::empty();
    sigs.add(nix::sys::signal::Signal::SIGINT);
    sigs.add(nix::sys::signal::Signal::SIGTERM);
    sigs.thread_block().map_err(|e| UpError::Io {
        what: "blocking signals".into(),
        source: e.into(),
    })?;

    write_state(
        &name,
        &State {
            pid: std::process::id(),
            namespaces: owned.clone(),
            resolv_dirs: crate::stack::resolv::dirs(&topo),
        },
    )?;
    let mut topo = topo;
    let devices = match build(&mut topo) {
        Ok(t) => t,
        Err(e) => {
            teardown(&topo, &owned);
            return Err(e);
        }
    };
    if let Err(source) = crate::stack::resolv::write(&topo) {
        teardown(&topo, &owned);
        return Err(UpError::Io {
            what: "writing /etc/netns/HOST/resolv.conf".into(),
            source,
        });
    }
    match serve(topo.clone(), devices, sigs, owned.clone()) {
        // Hosts attached at run time are in the final topology.
        Ok(ended) => {
            teardown(&ended.topo, &ended.owned);
            Ok(())
        }
        Err(e) => {
            teardown(&topo, &owned);
            Err(e)
        }
    }
}
