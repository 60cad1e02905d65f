//! Bringing a topology up and down: namespaces, TAP devices, workers, the
//! control socket, and the record that lets a later run clean up after a
//! switch that was killed.

use crate::config::{fmt_mac, PortKind, Topology};
use crate::control;
use crate::counters::WorkerCounters;
use crate::host::{switch_mac, HostLink, NetAddr};
use crate::netns::{self, NetnsError};
use crate::pipeline::Plan;
use crate::port::{Tap, TapError};
use crate::runtime::Runtime;
use crate::trace::Tracer;
use crate::worker::Worker;
use serde::{Deserialize, Serialize};
use shunt_tables::{Fdb, FdbConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
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

/// Creates the namespaces and TAP devices. Returns the TAPs by port id.
fn build(topo: &Topology) -> Result<Vec<Tap>, UpError> {
    let nerr = |host: &str| {
        let host = host.to_string();
        move |source| UpError::Netns {
            host: host.clone(),
            source,
        }
    };
    let mut taps: Vec<Option<Tap>> = topo.ports.iter().map(|_| None).collect();
    for h in &topo.hosts {
        netns::add(&h.name).map_err(nerr(&h.name))?;
        if !h.ipv6 {
            // No router solicitations, DAD or MLD noise on the wire: devices
            // that arrive in the namespace take the default.
            netns::in_netns(&h.name, || {
                for k in ["all", "default"] {
                    let _ =
                        std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
                }
            })
            .map_err(nerr(&h.name))?;
        }
        netns::ip(&["-n", &h.name, "link", "set", "lo", "up"]).map_err(nerr(&h.name))?;
        for link in &h.links {
            // The TAP is created in the switch's namespace and then moved:
            // a TAP opened inside the host's namespace would hold that
            // namespace alive, and deleting it must take the port down.
            let temp = format!(
                "sht{:x}x{}",
                std::process::id(),
                taps.iter().filter(|t| t.is_some()).count()
            );
            let tap = Tap::open(&temp).map_err(|source| UpError::Tap {
                port: format!("{}.{}", h.name, topo.networks[link.network].name),
                source,
            })?;
            netns::ip(&["link", "set", "dev", &temp, "netns", &h.name]).map_err(nerr(&h.name))?;
            let mtu = h.mtu.to_string();
            let mac = fmt_mac(&link.mac);
            netns::ip(&[
                "-n",
                &h.name,
                "link",
                "set",
                "dev",
                &temp,
                "name",
                &link.ifname,
                "address",
                &mac,
                "mtu",
                &mtu,
                "up",
            ])
            .map_err(nerr(&h.name))?;
            if let Some(ip) = link.ip {
                netns::ip(&[
                    "-n",
                    &h.name,
                    "addr",
                    "add",
                    &ip.to_string(),
                    "dev",
                    &link.ifname,
                ])
                .map_err(nerr(&h.name))?;
            }
            let port = format!("{}.{}", h.name, topo.networks[link.network].name);
            if let Some(pi) = topo.port_index(&port) {
                taps[pi] = Some(tap);
            }
        }
    }
    for (pi, p) in topo.ports.iter().enumerate() {
        if p.host.is_some() || p.kind != PortKind::Tap {
            continue;
        }
        if let Some(ns) = &p.netns {
            // A bare TAP inside a namespace of its own (a trunk into a
            // router namespace, a test's sniffer): created like a host's.
            if !netns::exists(ns) {
                netns::add(ns).map_err(nerr(ns))?;
                netns::in_netns(ns, || {
                    for k in ["all", "default"] {
                        let _ = std::fs::write(
                            format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"),
                            "1",
                        );
                    }
                })
                .map_err(nerr(ns))?;
                netns::ip(&["-n", ns, "link", "set", "lo", "up"]).map_err(nerr(ns))?;
            }
            let temp = format!("sht{:x}p{pi}", std::process::id());
            let tap = Tap::open(&temp).map_err(|source| UpError::Tap {
                port: p.name.clone(),
                source,
            })?;
            netns::ip(&["link", "set", "dev", &temp, "netns", ns]).map_err(nerr(ns))?;
            let mtu = p.mtu.to_string();
            netns::ip(&[
                "-n",
                ns,
                "link",
                "set",
                "dev",
                &temp,
                "name",
                &p.interface,
                "mtu",
                &mtu,
                "up",
            ])
            .map_err(nerr(ns))?;
            taps[pi] = Some(tap);
            continue;
        }
        let tap = Tap::open(&p.interface).map_err(|source| UpError::Tap {
            port: p.name.clone(),
            source,
        })?;
        netns::ip(&["link", "set", &p.interface, "mtu", &p.mtu.to_string(), "up"])
            .map_err(nerr(&p.name))?;
        taps[pi] = Some(tap);
    }
    taps.into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.ok_or_else(|| UpError::Start(format!("port {} has no device", topo.ports[i].name)))
        })
        .collect()
}

fn teardown(topo: &Topology, owned: &[String]) {
    for ns in owned {
        if netns::exists(ns) {
            if let Err(e) = netns::del(ns) {
                eprintln!("shunt: removing namespace {ns}: {e}");
            }
        }
    }
    let name = &topo.switch.name;
    let _ = std::fs::remove_file(control::socket_path(name));
    let _ = std::fs::remove_file(state_path(name));
    let _ = std::fs::remove_file(log_path(name));
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
            resolv_dirs: vec![],
        },
    )?;
    let taps = match build(&topo) {
        Ok(t) => t,
        Err(e) => {
            teardown(&topo, &owned);
            return Err(e);
        }
    };
    match serve(topo.clone(), taps, sigs) {
        Ok(()) => {
            teardown(&topo, &owned);
            Ok(())
        }
        Err(e) => {
            teardown(&topo, &owned);
            Err(e)
        }
    }
}

fn serve(topo: Topology, taps: Vec<Tap>, sigs: nix::sys::signal::SigSet) -> Result<(), UpError> {
    let name = topo.switch.name.clone();
    let plan = Plan::from_topology(&topo);
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
    let nports = topo.ports.len();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let nworkers = topo.switch.workers.clamp(1, nports.max(1));
    // One more counter slot: the host stack's pseudo port.
    let counters: Vec<Arc<WorkerCounters>> = (0..nworkers)
        .map(|_| Arc::new(WorkerCounters::new(nports + 1)))
        .collect();
    let host = if topo
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
        let link = HostLink::new(nets, nworkers).map_err(|source| UpError::Io {
            what: "creating the host stack's queues".into(),
            source,
        })?;
        Some(Arc::new(link))
    } else {
        None
    };
    let port_worker: Vec<usize> = (0..nports).map(|p| p % nworkers).collect();
    let rt = Arc::new(Runtime {
        plan,
        fdb,
        taps,
        port_up: (0..nports).map(|_| AtomicBool::new(true)).collect(),
        port_generation: AtomicU64::new(0),
        counters: counters.clone(),
        port_worker: port_worker.clone(),
        tracer: Tracer::new(),
        stop: AtomicBool::new(false),
        started: Instant::now(),
        max_ports: nports + 1,
        host,
        host_port: nports as u16,
        topo,
    });
    let listener = control::bind(&name)?;

    let mut handles = Vec::new();
    for (w, wc) in counters.iter().enumerate() {
        let rx: Vec<u16> = (0..nports)
            .filter(|&p| port_worker[p] == w)
            .map(|p| p as u16)
            .collect();
        let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
        let worker = Worker::new(w, Arc::clone(&rt), rx, Arc::clone(wc), core);
        let h = std::thread::Builder::new()
            .name(format!("shunt-w{w}"))
            .spawn(move || worker.run())
            .map_err(|source| UpError::Io {
                what: "starting a worker".into(),
                source,
            })?;
        handles.push(h);
    }
    // Ageing beside the workers, never stopping them.
    {
        let rt = Arc::clone(&rt);
        let every =
            Duration::from_millis((rt.topo.switch.fdb_aging_secs * 1000 / 4).clamp(100, 1000));
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
        "shunt: switch {name:?} is up: {} hosts, {} ports, {} networks, {} worker(s); control socket {}",
        rt.topo.hosts.len(),
        nports,
        rt.topo.networks.len(),
        nworkers,
        control::socket_path(&name).display()
    );
    let _ = rx.recv();
    rt.stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    eprintln!("shunt: switch {name:?} stopped");
    Ok(())
}

/// `shunt up --detach`: starts the switch as a background process and
/// returns once it answers on its control socket.
pub fn detach(name: &str, file: Option<&str>) -> Result<u32, UpError> {
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
            Ok(format!(
                "switch {name:?} stopped; its namespaces and devices are gone"
            ))
        }
        Err(control::ControlError::NotRunning { .. }) => {
            let removed = clean_stale(name)?;
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
