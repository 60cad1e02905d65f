//! Bringing a topology up and down: namespaces, TAP devices, workers, the
//! control socket, and the record that lets a later run clean up after a
//! switch that was killed.

use crate::config::{fmt_mac, PortKind, Topology};
use crate::control;
use crate::ids::{Egress, PortId, VtepId};
use crate::netns::{self, NetnsError};
use crate::port::{AfXdpPort, Device, Tap, TapError};
use crate::runtime::Runtime;
use crate::stack::{switch_mac, NetAddr, StackLink};
use crate::worker::Worker;
use serde::{Deserialize, Serialize};
use shunt_tables::{Fdb, FdbConfig};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("shunt needs root (it creates namespaces and devices): run it with sudo")]
    NotRoot,
    #[error("switch {name:?} is already running (pid {pid}): `shunt down {name}` first")]
    AlreadyRunning { name: String, pid: u32 },
    #[error("network namespace {0:?} already exists and was not created by this switch: remove it (`ip netns del {0}`) or rename the host")]
    NamespaceTaken(String),
    #[error("host {host}: {source}")]
    Netns { host: String, source: NetnsError },
    #[error("port {port}: {source}")]
    Tap { port: String, source: TapError },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("the switch did not come up: {0}")]
    Start(String),
}

/// What a running switch created, written before it creates anything.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub resolv_dirs: Vec<String>,
}

pub fn state_path(name: &str) -> PathBuf {
    PathBuf::from(control::RUN_DIR).join(format!("{name}.state"))
}

pub fn log_path(name: &str) -> PathBuf {
    PathBuf::from(control::RUN_DIR).join(format!("{name}.log"))
}

fn read_state(name: &str) -> Option<State> {
    let s = std::fs::read_to_string(state_path(name)).ok()?;
    serde_json::from_str(&s).ok()
}

fn write_state(name: &str, st: &State) -> Result<(), UpError> {
    let io = |source| UpError::Io {
        what: format!("writing {}", state_path(name).display()),
        source,
    };
    std::fs::create_dir_all(control::RUN_DIR).map_err(io)?;
    let s = serde_json::to_string_pretty(st).unwrap_or_default();
    std::fs::write(state_path(name), s).map_err(io)
}

/// A live shunt process (a zombie has finished: its parent just has not
/// reaped it yet).
fn pid_is_shunt(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    pid != std::process::id()
        && !matches!(state, None | Some("Z") | Some("X"))
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() == "shunt")
            .unwrap_or(false)
}

/// Removes what a switch that is no longer running left behind. Returns
/// what was removed, or an error if that switch is in fact running.
pub fn clean_stale(name: &str) -> Result<Vec<String>, UpError> {
    let mut removed = Vec::new();
    if let Some(st) = read_state(name) {
        if pid_is_shunt(st.pid) {
            return Err(UpError::AlreadyRunning {
                name: name.to_string(),
                pid: st.pid,
            });
        }
        for ns in &st.namespaces {
            if netns::exists(ns) && netns::del(ns).is_ok() {
                removed.push(format!("namespace {ns}"));
            }
        }
        for d in &st.resolv_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = std::fs::remove_file(state_path(name));
        let _ = std::fs::remove_file(log_path(name));
    }
    if std::fs::remove_file(control::socket_path(name)).is_ok() {
        removed.push("control socket".into());
    }

    Ok(removed)
}

fn nerr(who: &str) -> impl Fn(NetnsError) -> UpError {
    let host = who.to_string();
    move |source| UpError::Netns {
        host: host.clone(),
        source,
    }
}

/// Creates namespace `ns` with loopback up and, unless `ipv6`, IPv6 off
/// (no router solicitations, DAD or MLD noise on the wire: devices that
/// arrive in the namespace take the default).
fn make_namespace(ns: &str, ipv6: bool) -> Result<(), UpError> {
    netns::add(ns).map_err(nerr(ns))?;
    if !ipv6 {
        netns::in_netns(ns, || {
            for k in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
            }
        })
        .map_err(nerr(ns))?;
    }
    netns::ip(&["-n", ns, "link", "set", "lo", "up"]).map_err(nerr(ns))?;
    Ok(())
}

/// Creates a TAP for `port` and plugs it into namespace `ns` as `ifname`,
/// with the given MAC, MTU and address, up.
///
/// The TAP is created in the switch's namespace and then moved: a TAP
/// opened inside the other namespace would hold that namespace alive, and
/// deleting it must take the port down.
fn plug_tap(
    port: &str,
    ns: &str,
    ifname: &str,
    mac: Option<&[u8; 6]>,
    mtu: u16,
    ip: Option<crate::config::Ipv4Net>,
) -> Result<Tap, UpError> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let temp = format!("sht{:x}x{}", std::process::id(), SEQ.fetch_add(1, Relaxed));
    let tap = Tap::open(&temp).map_err(|source| UpError::Tap {
        port: port.to_string(),
        source,
    })?;
    netns::ip(&["link", "set", "dev", &temp, "netns", ns]).map_err(nerr(ns))?;
    let mtu = mtu.to_string();
    let mut args = vec![
        "-n", ns, "link", "set", "dev", &temp, "name", ifname, "mtu", &mtu,
    ];
    let mac_s = mac.map(fmt_mac);
    if let Some(m) = &mac_s {
        args.extend(["address", m]);
    }
    args.push("up");
    netns::ip(&args).map_err(nerr(ns))?;
    if let Some(ip) = ip {
        netns::ip(&["-n", ns, "addr", "add", &ip.to_string(), "dev", ifname]).map_err(nerr(ns))?;
    }
    Ok(tap)
}

/// Creates the namespaces and TAP devices. Returns the TAPs by port id.
/// Creates a veth pair for `port`: one end in namespace `ns` as `ifname`
/// (MAC, MTU, address, up), the other in the switch's namespace, where an
/// AF_XDP socket attaches to it. Returns the outer name.
fn plug_veth(
    ns: &str,
    ifname: &str,
    mac: &[u8; 6],
    mtu: u16,
    ip: Option<crate::config::Ipv4Net>,
) -> Result<String, UpError> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let outer = format!("shv{:x}x{}", std::process::id(), SEQ.fetch_add(1, Relaxed));
    // The outer end takes frames larger than the port's MTU, so that the
    // switch sees them and counts them (oversize) instead of the kernel
    // dropping them unseen; 3000 stays under veth's limit for native XDP.
    let outer_mtu = mtu.max(3000).to_string();
    let mtu = mtu.to_string();
    netns::ip(&[
        "link", "add", &outer, "mtu", &outer_mtu, "type", "veth", "peer", "name", ifname, "netns",
        ns,
    ])
    .map_err(nerr(ns))?;
    netns::ip(&[
        "-n",
        ns,
        "link",
        "set",
        "dev",
        ifname,
        "address",
        &fmt_mac(mac),
        "mtu",
        &mtu,
        "up",
    ])
    .map_err(nerr(ns))?;
    if let Some(ip) = ip {
        netns::ip(&["-n", ns, "addr", "add", &ip.to_string(), "dev", ifname]).map_err(nerr(ns))?;
    }
    // A veth offloads TCP/UDP checksums to its peer: the host's frames
    // would leave with a partial checksum, and AF_XDP carries no word of
    // that, so the switch's own stack and the hosts behind other ports
    // would see bad checksums and drop the frames. With the offload off the
    // host's kernel writes complete checksums.
    netns::tx_checksum_off(ns, ifname).map_err(|e| UpError::Start(format!("host {ns}: {e}")))?;
    netns::ip(&["link", "set", "dev", &outer, "up"]).map_err(nerr(ns))?;
    Ok(outer)
}

/// Opens an AF_XDP port on `ifname`, saying at start-up which mode it got
/// and the largest frame it carries.
fn open_afxdp(
    port: &str,
    ifname: &str,
    mode: crate::config::XdpMode,
    umem: &crate::port::SharedUmem,
) -> Result<Device, UpError> {
    let x = AfXdpPort::open(ifname, mode, umem)
        .map_err(|e| UpError::Start(format!("port {port}: {e}")))?;
    eprintln!("shunt: port {port}: {}", x.summary());
    Ok(Device::AfXdp(Box::new(x)))
}

/// For an AF_XDP port on an interface the user brought: if it is a veth,
/// says at start-up what its peer's checksum offload does to TCP and UDP
/// (shunt's own veth hosts have it turned off).
fn note_veth_checksums(port: &str, ifname: &str) {
    if crate::port::sys::driver_name(ifname).is_ok_and(|d| d == "veth") {
        eprintln!(
            "shunt: port {port}: {ifname} is a veth: TCP and UDP its peer's kernel sends carry partial checksums unless transmit checksum offload is off on the peer (`ethtool -K PEER tx off`); see docs/afxdp.md#checksums"
        );
    }
}

/// Creates the namespaces and devices. Returns the devices by port id, and
/// the outer interface of each host port that is a veth.
fn build(topo: &mut Topology) -> Result<Vec<Device>, UpError> {
    let mut devs: Vec<Option<Device>> = topo.ports.iter().map(|_| None).collect();
    let n_xdp = topo
        .ports
        .iter()
        .filter(|p| p.kind == PortKind::Afxdp)
        .count();
    // Two 4096-frame shares per port: a port may hold up to 7168 frames at
    // once (receive side 4096, transmit side 2048, cache 1024), and frames
    // in batches and hand-over queues come on top. (AF_XDP ports are not
    // attached at run time: `shunt attach` makes TAP ports.)
    let umem = if n_xdp > 0 {
        Some(crate::port::SharedUmem::new(n_xdp * 2).map_err(|e| UpError::Start(e.to_string()))?)
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
            if topo.ports[pi].kind == PortKind::Afxdp {
                let outer = plug_veth(&h.name, &link.ifname, &link.mac, h.mtu, link.ip)?;
                let Some(umem) = &umem else { continue };
                devs[pi] = Some(open_afxdp(&port, &outer, topo.ports[pi].xdp_mode, umem)?);
                topo.ports[pi].outer = Some(outer);
            } else {
                let tap = plug_tap(
                    &port,
                    &h.name,
                    &link.ifname,
                    Some(&link.mac),
                    h.mtu,
                    link.ip,
                )?;
                devs[pi] = Some(Device::Tap(tap));
            }
        }
    }
    for (pi, p) in topo.ports.iter().enumerate() {
        if p.host.is_some() {
            continue;
        }
        if p.kind == PortKind::Afxdp {
            if let Some(umem) = &umem {
                devs[pi] = Some(open_afxdp(&p.name, &p.interface, p.xdp_mode, umem)?);
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
            devs[pi] = Some(Device::Tap(plug_tap(
                &p.name,
                ns,
                &p.interface,
                None,
                p.mtu,
                None,
            )?));
            continue;
        }
        let tap = Tap::open(&p.interface).map_err(|source| UpError::Tap {
            port: p.name.clone(),
            source,
        })?;
        netns::ip(&["link", "set", &p.interface, "mtu", &p.mtu.to_string(), "up"])
            .map_err(nerr(&p.name))?;
        devs[pi] = Some(Device::Tap(tap));
    }
    devs.into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.ok_or_else(|| UpError::Start(format!("port {} has no device", topo.ports[i].name)))
        })
        .collect()
}

/// `shunt attach HOST NETWORK`: plugs a host (new or existing) into a
/// network while the switch runs. Nothing else is disturbed: the new plan
/// is published and workers pick it up between batches.
pub fn attach(rt: &Runtime, host: &str, network: &str) -> Result<String, String> {
    use crate::config::{HostLink as Link, Ipv4Net, PortCfg, PortMode, XdpMode, DEFAULT_MTU};
    let mut topo = rt.topo();
    let ni = topo
        .network_index(network)
        .ok_or_else(|| format!("no network named {network:?}"))?;
    if host.is_empty()
        || host.len() > 32
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "host name {host:?} is not valid: use letters, digits, '-' or '_'"
        ));
    }
    let port_name = format!("{host}.{network}");
    if topo.ports.iter().any(|p| p.name == port_name && !p.removed) {
        return Err(format!("host {host:?} is already on network {network:?}"));
    }
    let id = topo.ports.len();
    if id >= crate::runtime::MAX_PORTS {
        return Err(format!(
            "no port left: at most {} ports",
            crate::runtime::MAX_PORTS
        ));
    }
    let hi = match topo.hosts.iter().position(|h| h.name == host) {
        Some(i) => i,
        None => {
            if netns::exists(host) {
                return Err(format!(
                    "network namespace {host:?} exists and is not one of this switch's hosts"
                ));
            }
            make_namespace(host, false).map_err(|e| e.to_string())?;
            if let Ok(mut owned) = rt.owned_namespaces.lock() {
                owned.push(host.to_string());
                let st = State {
                    pid: std::process::id(),
                    namespaces: owned.clone(),
                    resolv_dirs: {
                        // The host's resolver folder, written once it is attached.
                        let mut d = read_state(&rt.name)
                            .map(|s| s.resolv_dirs)
                            .unwrap_or_default();
                        d.push(crate::stack::resolv::dir(host).display().to_string());
                        d
                    },
                };
                let _ = write_state(&rt.name, &st);
            }
            topo.hosts.push(crate::config::Host {
                name: host.to_string(),
                links: vec![],
                aliases: vec![],
                ipv6: false,
                mtu: DEFAULT_MTU,
                line: 0,
            });
            topo.hosts.len() - 1
        }
    };
    // The next free address of the subnet (the switch's own included).
    let ip = topo.networks[ni].subnet.map(|sn| {
        let mut used: std::collections::HashSet<u32> = topo.networks[ni]
            .address
            .map(u32::from)
            .into_iter()
            .collect();
        for h in &topo.hosts {
            for l in h.links.iter().filter(|l| l.network == ni) {
                if let Some(ip) = l.ip {
                    used.insert(u32::from(ip.addr));
                }
            }
        }
        let mut a = sn.network() + 1;
        while a < sn.broadcast() && used.contains(&a) {
            a += 1;
        }
        (a < sn.broadcast()).then_some(Ipv4Net {
            addr: a.into(),
            prefix: sn.prefix,
        })
    });
    let ip = match ip {
        Some(None) => return Err(format!("network {network:?} has no free address left")),
        Some(Some(ip)) => Some(ip),
        None => None,
    };
    let mut mac = match ip {
        Some(ip) => {
            let o = ip.addr.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        None => [0x02, 0x43, (id >> 8) as u8, id as u8, 0, ni as u8],
    };
    let taken =
        |m: &[u8; 6], t: &Topology| t.hosts.iter().any(|h| h.links.iter().any(|l| &l.mac == m));
    while taken(&mac, &topo) {
        mac[5] = mac[5].wrapping_add(1);
    }
    let h = &topo.hosts[hi];
    let ifname = (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !h.links.iter().any(|l| &l.ifname == n))
        .unwrap_or_else(|| "eth0".into());
    let mtu = h.mtu;
    let tap =
        plug_tap(&port_name, host, &ifname, Some(&mac), mtu, ip).map_err(|e| e.to_string())?;
    topo.hosts[hi].links.push(Link {
        network: ni,
        ifname: ifname.clone(),
        ip,
        mac,
    });
    topo.ports.push(PortCfg {
        name: port_name.clone(),
        kind: PortKind::Tap,
        interface: ifname.clone(),
        xdp_mode: XdpMode::Auto,
        mode: PortMode::Access { network: ni },
        learning: true,
        flood_unknown: true,
        flood_multicast: true,
        mtu,
        host: Some(host.to_string()),
        outer: None,
        removed: false,
        netns: Some(host.to_string()),
        line: 0,
    });
    if topo.networks[ni].macvlan.is_some() {
        let _ = rt.fdb.add_static(ni as u16, &mac, id as u16);
    }
    rt.taps[id].store(Some(Arc::new(tap)));
    rt.port_kind[id].store(crate::runtime::KIND_TAP, Relaxed);
    rt.port_worker[id].store(id % rt.counters.len(), Relaxed);
    rt.port_up[id].store(true, Relaxed);
    rt.plan
        .store(Arc::new(crate::pipeline::Plan::from_topology(&topo)));
    rt.port_generation.fetch_add(1, Relaxed);
    eprintln!("shunt: attached {port_name} ({ifname} in {host})");
    crate::stack::topology_changed(rt.host.as_deref(), &topo);
    Ok(format!(
        "attached {host} to {network}: port {port_name}, {ifname} in {host}{}",
        ip.map(|i| format!(" with {i}")).unwrap_or_default()
    ))
}

/// `shunt detach HOST NETWORK`: unplugs a host from a network while the
/// switch runs; its device goes away, what was learned on it is flushed.
pub fn detach_host(rt: &Runtime, host: &str, network: &str) -> Result<String, String> {
    let mut topo = rt.topo();
    let port_name = format!("{host}.{network}");
    let id = topo
        .ports
        .iter()
        .position(|p| p.name == port_name && !p.removed && p.host.is_some())
        .ok_or_else(|| format!("host {host:?} is not on network {network:?}"))?;
    let ni = topo.network_index(network).unwrap_or(usize::MAX);
    topo.ports[id].removed = true;
    let mut removed_link = None;
    if let Some(h) = topo.hosts.iter_mut().find(|h| h.name == host) {
        removed_link = h.links.iter().find(|l| l.network == ni).cloned();
        h.links.retain(|l| l.network != ni);
    }
    rt.port_up[id].store(false, Relaxed);
    rt.plan
        .store(Arc::new(crate::pipeline::Plan::from_topology(&topo)));
    rt.taps[id].store(None);
    rt.port_kind[id].store(crate::runtime::KIND_NONE, Relaxed);
    rt.port_generation.fetch_add(1, Relaxed);
    // Remove the device now rather than when the last worker lets go of
    // its descriptor, so the host can be attached again at once.
    if let Some(l) = &removed_link {
        let _ = netns::ip(&["-n", host, "link", "del", "dev", &l.ifname]);
    }
    let flushed = rt.fdb.flush_port(id as u16);
    if let Some(l) = removed_link {
        if topo.networks[ni].macvlan.is_some() {
            rt.fdb.remove(ni as u16, &l.mac);
        }
    }
    eprintln!("shunt: detached {port_name}; {flushed} learned entries flushed");
    crate::stack::topology_changed(rt.host.as_deref(), &topo);
    Ok(format!(
        "detached {host} from {network}; {flushed} learned entries flushed"
    ))
}

fn teardown(topo: &Topology, owned: &[String]) {
    for ns in owned {
        if netns::exists(ns) {
            if let Err(e) = netns::del(ns) {
                eprintln!("shunt: removing namespace {ns}: {e}");
            }
        }
    }
    crate::stack::resolv::remove(topo);
    let name = &topo.switch.name;
    let _ = std::fs::remove_file(control::socket_path(name));
    let _ = std::fs::remove_file(state_path(name));
    // The log stays: when a detached switch fails to come up, `shunt up`
    // shows it; `shunt down` removes it once the switch has stopped.
}

/// Runs the switch in the foreground until SIGINT, SIGTERM or `shunt down`.
pub fn run(topo: Topology) -> Result<(), UpError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UpError::NotRoot);
    }
    let name = topo.switch.name.clone();
    let removed = clean_stale(&name)?;
    if !removed.is_empty() {
        eprintln!(
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
    let taps = match build(&mut topo) {
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
    let mut owned_now = owned.clone();
    let mut final_topo = topo.clone();
    let result = serve(
        topo.clone(),
        taps,
        sigs,
        owned,
        &mut owned_now,
        &mut final_topo,
    );
    // Hosts attached at run time are in the final topology.
    teardown(&final_topo, &owned_now);
    result
}

fn serve(
    topo: Topology,
    taps: Vec<Device>,
    sigs: nix::sys::signal::SigSet,
    owned: Vec<String>,
    owned_now: &mut Vec<String>,
    final_topo: &mut Topology,
) -> Result<(), UpError> {
    let name = topo.switch.name.clone();
    let fdb = Fdb::new(FdbConfig {
        max_entries: topo.switch.fdb_max_entries,
        aging_ms: topo.switch.fdb_aging_secs * 1000,
    });
    for s in &topo.fdb {
        if let Err(e) = fdb.add_static(s.network as u16, &s.mac, s.port as u16) {
            return Err(UpError::Start(format!(
                "static entry on line {}: {e}",
                s.line
            )));
        }
    }
    // Static entries behind remote VTEPs.
    if let Some(v) = &topo.vtep {
        for &(net, mac, k) in &v.fdb {
            // The topology holds at most MAX_VTEPS remotes.
            let Some(port) = VtepId::new(k).map(|k| Egress::Vtep(k).encode()) else {
                continue;
            };
            fdb.add_static(net as u16, &mac, port).map_err(|e| {
                UpError::Start(format!("static entry behind VTEP {}: {e}", v.remotes[k]))
            })?;
        }
    }
    // Hosts of macvlan networks are known by their fixed MACs.
    for h in &topo.hosts {
        for l in h
            .links
            .iter()
            .filter(|l| topo.networks[l.network].macvlan.is_some())
        {
            let port = format!("{}.{}", h.name, topo.networks[l.network].name);
            if let Some(pi) = topo.port_index(&port) {
                fdb.add_static(l.network as u16, &l.mac, pi as u16)
                    .map_err(|e| UpError::Start(format!("macvlan host {port}: {e}")))?;
            }
        }
    }
    let nports = topo.ports.len();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let nworkers = topo.switch.workers.clamp(1, nports.max(1));
    let host = if topo.vtep.is_some()
        || topo
            .networks
            .iter()
            .any(|n| n.address.is_some() || n.arp_suppress)
    {
        let nets = topo
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| NetAddr {
                mac: switch_mac(&name, i as u16),
                ip: n.address,
                arp_suppress: n.arp_suppress,
            })
            .collect();
        let mut link = StackLink::new(nets, nworkers).map_err(|source| UpError::Io {
            what: "creating the switch's stack's queues".into(),
            source,
        })?;
        if let Some(v) = &topo.vtep {
            let mac = crate::pipeline::vxlan::underlay_mac(&name);
            link.underlay = Some(crate::stack::underlay::Underlay::new(v, mac).map_err(
                |source| UpError::Io {
                    what: "creating the VXLAN underlay's queue".into(),
                    source,
                },
            )?);
        }
        Some(Arc::new(link))
    } else {
        None
    };
    let aging_secs = topo.switch.fdb_aging_secs;
    let (nhosts, nnets) = (topo.hosts.len(), topo.networks.len());
    let rt = Arc::new(
        Runtime::new(topo, fdb, taps, nworkers, host, owned).map_err(|source| UpError::Io {
            what: "creating the workers' queues".into(),
            source,
        })?,
    );
    let listener = control::bind(&name)?;

    let mut handles = Vec::new();
    for w in 0..nworkers {
        let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
        let worker = Worker::new(w, Arc::clone(&rt), core);
        let h = std::thread::Builder::new()
            .name(format!("shunt-w{w}"))
            .spawn(move || worker.run())
            .map_err(|source| UpError::Io {
                what: "starting a worker".into(),
                source,
            })?;
        handles.push(h);
    }
    if let Some(link) = &rt.host {
        let cfg = crate::stack::iface::HostConfig::from_topology(&rt.topo());
        let rt2 = Arc::clone(&rt);
        let h = crate::stack::iface::spawn(Arc::clone(link), cfg, move || rt2.stop.load(Relaxed))
            .map_err(|source| UpError::Io {
            what: "starting the switch's stack".into(),
            source,
        })?;
        handles.push(h);
        let rt2 = Arc::clone(&rt);
        let ul = crate::stack::underlay::spawn(Arc::clone(link), move || rt2.stop.load(Relaxed))
            .map_err(|source| UpError::Io {
                what: "starting the VXLAN underlay thread".into(),
                source,
            })?;
        handles.extend(ul);
    }
    // Ageing beside the workers, never stopping them.
    {
        let rt = Arc::clone(&rt);
        let every = Duration::from_millis((aging_secs * 1000 / 4).clamp(100, 1000));
        std::thread::Builder::new()
            .name("shunt-ager".into())
            .spawn(move || {
                while !rt.stop.load(Relaxed) {
                    std::thread::sleep(every);
                    rt.fdb.age(rt.now_ms());
                }
            })
            .map_err(|source| UpError::Io {
                what: "starting the ager".into(),
                source,
            })?;
    }
    // An AF_XDP socket says nothing when its interface goes away (a host's
    // namespace deleted takes its veth with it): watch the links instead.
    {
        let rt = Arc::clone(&rt);
        std::thread::Builder::new()
            .name("shunt-links".into())
            .spawn(move || {
                while !rt.stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let gone: Vec<(PortId, String)> = {
                        let topo = rt.topo();
                        topo.ports
                            .iter()
                            .enumerate()
                            .filter(|(i, p)| {
                                !p.removed
                                    && p.kind == PortKind::Afxdp
                                    && rt.port_up[*i].load(Relaxed)
                            })
                            .filter_map(|(i, p)| {
                                Some((
                                    PortId::new(i)?,
                                    p.outer.clone().unwrap_or_else(|| p.interface.clone()),
                                ))
                            })
                            .filter(|(_, ifname)| {
                                !std::path::Path::new("/sys/class/net").join(ifname).exists()
                            })
                            .collect()
                    };
                    for (p, ifname) in gone {
                        rt.port_gone(p, &format!("interface {ifname} went away"));
                    }
                }
            })
            .map_err(|source| UpError::Io {
                what: "starting the link monitor".into(),
                source,
            })?;
    }
    let (tx, rx) = mpsc::channel::<()>();
    {
        let rt = Arc::clone(&rt);
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("shunt-control".into())
            .spawn(move || control::serve(listener, rt, tx))
            .map_err(|source| UpError::Io {
                what: "starting the control socket".into(),
                source,
            })?;
    }
    std::thread::Builder::new()
        .name("shunt-signals".into())
        .spawn(move || {
            if let Ok(sig) = sigs.wait() {
                eprintln!("shunt: {sig:?}: stopping");
            }
            let _ = tx.send(());
        })
        .map_err(|source| UpError::Io {
            what: "starting the signal thread".into(),
            source,
        })?;

    eprintln!(
        "shunt: switch {name:?} is up: {nhosts} hosts, {nports} ports, {nnets} networks, {nworkers} worker(s); control socket {}",
        control::socket_path(&name).display()
    );
    let _ = rx.recv();
    rt.stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    *final_topo = rt.topo().clone();
    *owned_now = rt
        .owned_namespaces
        .lock()
        .map(|o| o.clone())
        .unwrap_or_default();
    eprintln!("shunt: switch {name:?} stopped");
    Ok(())
}

/// `shunt up --detach`: starts the switch as a background process and
/// returns once it answers on its control socket.
pub fn detach(name: &str, file: Option<&str>, name_arg: Option<&str>) -> Result<u32, UpError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UpError::NotRoot);
    }
    let exe = std::env::current_exe().map_err(|source| UpError::Io {
        what: "finding my own executable".into(),
        source,
    })?;
    std::fs::create_dir_all(control::RUN_DIR).map_err(|source| UpError::Io {
        what: control::RUN_DIR.into(),
        source,
    })?;
    let log = std::fs::File::create(log_path(name)).map_err(|source| UpError::Io {
        what: log_path(name).display().to_string(),
        source,
    })?;
    let log2 = log.try_clone().map_err(|source| UpError::Io {
        what: "log".into(),
        source,
    })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up");
    if let Some(f) = file {
        cmd.arg(f);
    }
    if let Some(n) = name_arg {
        cmd.args(["--name", n]);
    }
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|source| UpError::Io {
            what: "starting the switch".into(),
            source,
        })?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log_path(name)).unwrap_or_default();
            // Said here, so not left behind in /run/shunt.
            let _ = std::fs::remove_file(log_path(name));
            return Err(UpError::Start(format!(
                "it exited ({status}):\n{}",
                log.trim()
            )));
        }
        if let Ok(v) = control::request(name, &serde_json::json!({"cmd": "ping"})) {
            if v.get("pid").and_then(|p| p.as_u64()) == Some(child.id() as u64) {
                return Ok(child.id());
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(UpError::Start(
                "no answer on the control socket after 60 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `shunt down`: asks a running switch to stop and waits until it has
/// removed everything; cleans up after a killed one.
pub fn down(name: &str) -> Result<String, UpError> {
    match control::request(name, &serde_json::json!({"cmd": "shutdown"})) {
        Ok(v) => {
            let pid = v.get("pid").and_then(|p| p.as_u64()).unwrap_or(0) as u32;
            let deadline = Instant::now() + Duration::from_secs(30);
            while pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists() {
                // A zombie (its parent has not reaped it) has finished its work.
                let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if st.split_whitespace().nth(2) == Some("Z") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(UpError::Start(format!(
                        "switch {name:?} (pid {pid}) did not stop within 30 s"
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = std::fs::remove_file(log_path(name));
            Ok(format!(
                "switch {name:?} stopped; its namespaces and devices are gone"
            ))
        }
        Err(control::ControlError::NotRunning { .. }) => {
            let removed = clean_stale(name)?;
            // The log of a switch that failed to come up (kept so that
            // `shunt up` could show it).
            let _ = std::fs::remove_file(log_path(name));
            if removed.is_empty() {
                Ok(format!(
                    "switch {name:?} is not running; nothing to clean up"
                ))
            } else {
                Ok(format!(
                    "switch {name:?} was not running; removed what it left: {}",
                    removed.join(", ")
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}
