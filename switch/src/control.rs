//! The control socket: a Unix stream socket, root only (mode 0600), one
//! JSON request per line, JSON answers. No TCP listener, ever.

use crate::config::fmt_mac;
use crate::counters::{sum_port, DropReason, FloodCause};
use crate::ids::{Egress, NetId, PortId, VtepId};
use crate::runtime::Runtime;
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const RUN_DIR: &str = "/run/shunt";

pub fn socket_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.sock"))
}

/// The switch a command means: the one named, else $SHUNT_NAME, else
/// "shunt" if it runs, else the only switch running, else "shunt".
pub fn pick_name(given: Option<String>) -> String {
    if let Some(n) = given.or_else(|| std::env::var("SHUNT_NAME").ok()) {
        return n;
    }
    let default = crate::config::DEFAULT_NAME;
    if socket_path(default).exists() {
        return default.to_string();
    }
    let running: Vec<String> = std::fs::read_dir(RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".sock")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    match running.as_slice() {
        [only] => only.clone(),
        _ => default.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "switch {name:?} is not running (no control socket at {path}): start it with `shunt up`"
    )]
    NotRunning { name: String, path: String },
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the switch answered something unreadable: {0}")]
    Protocol(String),
    #[error("{0}")]
    Remote(String),
}

/// Binds the control socket, readable and writable by root only.
pub fn bind(name: &str) -> Result<UnixListener, ControlError> {
    let path = socket_path(name);
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(RUN_DIR).map_err(io)?;
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(l)
}

/// Serves requests until the listener is closed. `shutdown` asks the main
/// thread to tear everything down.
pub fn serve(l: UnixListener, rt: Arc<Runtime>, shutdown: Sender<()>) {
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        if rt.stop.load(Relaxed) {
            break;
        }
        let rt = Arc::clone(&rt);
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(conn, &rt, &shutdown) {
                eprintln!("shunt: control connection: {e}");
            }
        });
    }
}

fn handle(conn: UnixStream, rt: &Runtime, shutdown: &Sender<()>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let req: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => return reply(&mut out, &json!({"error": format!("bad request: {e}")})),
    };
    let cmd = req.get("cmd").and_then(Value::as_str).unwrap_or("");
    match cmd {
        "ping" => reply(
            &mut out,
            &json!({"ok": true, "name": rt.name, "pid": std::process::id()}),
        ),
        "ports" => reply(&mut out, &ports_json(rt)),
        "fdb" => {
            let net = req.get("network").and_then(Value::as_str);
            match fdb_json(rt, net) {
                Ok(v) => reply(&mut out, &v),
                Err(e) => reply(&mut out, &json!({ "error": e })),
            }
        }
        "stats" => reply(&mut out, &stats_json(rt)),
        // {"cmd": "fdb_delete", "network": N, "mac": M}: forgets one entry
        // (a learned one comes back with the next frame from that MAC).
        "fdb_delete" => {
            let net = req.get("network").and_then(Value::as_str).unwrap_or("");
            let mac = req.get("mac").and_then(Value::as_str).unwrap_or("");
            let ni = rt.topo().network_index(net);
            match (ni, crate::config::parse_mac(mac)) {
                (Some(ni), Some(m)) => {
                    let removed = rt.fdb.remove(ni as u16, &m);
                    reply(&mut out, &json!({"ok": true, "removed": removed}))
                }
                (None, _) => reply(
                    &mut out,
                    &json!({"error": format!("no network named {net:?}")}),
                ),
                (_, None) => reply(
                    &mut out,
                    &json!({"error": format!("{mac:?} is not a MAC address")}),
                ),
            }
        }
        "trace" => trace(&mut out, rt, &req),
        "dns" => {
            let net = req.get("network").and_then(Value::as_str);
            match crate::stack::dns_json(rt.host.as_deref(), net) {
                Ok(v) => reply(&mut out, &v),
                Err(e) => reply(&mut out, &json!({ "error": e })),
            }
        }
        "attach" | "detach" => {
            let host = req.get("host").and_then(Value::as_str).unwrap_or("");
            let net = req.get("network").and_then(Value::as_str).unwrap_or("");
            let r = if cmd == "attach" {
                crate::daemon::attach(rt, host, net)
            } else {
                crate::daemon::detach_host(rt, host, net)
            };
            match r {
                Ok(msg) => reply(&mut out, &json!({"ok": true, "message": msg})),
                Err(e) => reply(&mut out, &json!({ "error": e })),
            }
        }
        "shutdown" => {
            reply(&mut out, &json!({"ok": true, "pid": std::process::id()}))?;
            let _ = shutdown.send(());
            Ok(())
        }
        other => reply(
            &mut out,
            &json!({"error": format!("unknown command {other:?}")}),
        ),
    }
}

fn reply(out: &mut UnixStream, v: &Value) -> std::io::Result<()> {
    let mut s = v.to_string();
    s.push('\n');
    out.write_all(s.as_bytes())
}

/// Port names a user may give: a port name, or a host name meaning all of
/// that host's ports.
pub fn resolve_ports(rt: &Runtime, name: &str) -> Vec<u16> {
    let plan = rt.plan.load();
    let exact: Vec<u16> = plan
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name == name)
        .map(|(i, _)| i as u16)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let prefix = format!("{name}.");
    plan.ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name.starts_with(&prefix))
        .map(|(i, _)| i as u16)
        .collect()
}

/// Port `i`'s counters summed over the workers.
fn port_totals(rt: &Runtime, i: usize) -> crate::counters::PortTotals {
    PortId::new(i)
        .map(|p| sum_port(&rt.counters, p.into()))
        .unwrap_or_default()
}

pub fn ports_json(rt: &Runtime) -> Value {
    let topo = rt.topo();
    let arr: Vec<Value> = topo
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.removed)
        .map(|(i, p)| {
            let t = port_totals(rt, i);
            let (mode, nets, native) = match &p.mode {
                crate::config::PortMode::Access { network } => {
                    ("access", vec![topo.networks[*network].name.clone()], None)
                }
                crate::config::PortMode::Trunk { allowed, native } => (
                    "trunk",
                    allowed
                        .iter()
                        .map(|&n| topo.networks[n].name.clone())
                        .collect(),
                    native.map(|n| topo.networks[n].name.clone()),
                ),
            };
            let vlans: Vec<Value> = match &p.mode {
                crate::config::PortMode::Access { .. } => vec![],
                crate::config::PortMode::Trunk { allowed, .. } => allowed
                    .iter()
                    .filter_map(|&n| topo.networks[n].vlan)
                    .map(Value::from)
                    .collect(),
            };
            let underlay = topo.vtep.as_ref().is_some_and(|v| v.port == i);
            json!({
                "name": p.name,
                "kind": p.kind.as_str(),
                "xdp_mode": rt.xdp_mode.get(i).copied().flatten(),
                "worker": rt.port_worker.get(i).map(|w| w.load(Relaxed)).unwrap_or(0),
                "mode": if underlay { "underlay" } else { mode },
                "up": rt.port_up[i].load(Relaxed),
                "networks": nets,
                "native": native,
                "vlans": vlans,
                "host": p.host,
                "namespace": p.netns,
                "interface": p.interface,
                "mtu": p.mtu,
                "rx_frames": t.rx_frames,
                "tx_frames": t.tx_frames,
            })
        })
        .collect();
    Value::Array(arr)
}

pub fn fdb_json(rt: &Runtime, network: Option<&str>) -> Result<Value, String> {
    let topo = rt.topo();
    let plan = rt.plan.load();
    let filter = match network {
        Some(n) => Some(
            topo.network_index(n)
                .ok_or_else(|| format!("no network named {n:?}"))? as u16,
        ),
        None => None,
    };
    let now = rt.now_ms();
    let mut entries = rt.fdb.entries();
    entries.retain(|(net, _, _)| filter.is_none_or(|f| f == *net));
    entries.sort_by_key(|e| (e.0, e.1));
    let arr = entries
        .iter()
        .filter_map(|(net, mac, e)| {
            let n = topo.networks.get(*net as usize)?;
            let port = match Egress::decode(e.port)? {
                Egress::Port(p) => plan.ports.get(p.index())?.name.clone(),
                // Learned behind a remote VTEP.
                Egress::Vtep(k) => format!("vxlan:{}", plan.vxlan.as_ref()?.remote(k)?),
                Egress::Stack => return None,
            };
            Some(json!({
                "network": n.name,
                "vlan": n.vlan,
                "mac": fmt_mac(mac),
                "port": port,
                "static": e.is_static,
                "age_secs": if e.is_static { 0.0 } else { now.saturating_sub(e.last_seen_ms) as f64 / 1000.0 },
            }))
        })
        .collect();
    Ok(Value::Array(arr))
}

pub fn stats_json(rt: &Runtime) -> Value {
    let mut ports = Map::new();
    let mut total = [0u64; DropReason::COUNT];
    let topo = rt.topo();
    for (i, p) in topo.ports.iter().enumerate() {
        if p.removed {
            continue;
        }
        let t = port_totals(rt, i);
        let mut drops = Map::new();
        for r in DropReason::ALL {
            let n = t.drops[*r as usize];
            total[*r as usize] += n;
            drops.insert(r.name().to_string(), n.into());
        }
        let mut flooded = Map::new();
        for c in FloodCause::ALL {
            flooded.insert(c.name().to_string(), t.flooded[c as usize].into());
        }
        ports.insert(
            p.name.clone(),
            json!({
                "rx_frames": t.rx_frames,
                "tx_frames": t.tx_frames,
                "rx_bytes": t.rx_bytes,
                "tx_bytes": t.tx_bytes,
                "tx_zero_copy": t.tx_zero_copy,
                "flooded": flooded,
                "drops": drops,
                "learned": t.learned,
                "moved": t.moved,
                "up": rt.port_up[i].load(Relaxed),
                "afxdp": (rt.port_kind[i].load(Relaxed) == crate::runtime::KIND_AFXDP)
                    .then(|| rt.xdp_stats[i].json()),
            }),
        );
    }
    let vteps = vteps_json(rt, &mut total);
    let mut drops = Map::new();
    for r in DropReason::ALL {
        drops.insert(r.name().to_string(), total[*r as usize].into());
    }
    json!({
        "umem": umem_json(rt),
        "vteps": vteps,
        "ports": ports,
        "drops": drops,
        "fdb": { "entries": rt.fdb.len(), "capacity": topo.switch.fdb_max_entries },
        "trace_lost": rt.tracer.lost.load(Relaxed),
        "host": rt.host.as_ref().map(|h| h.stats_json(|i| {
            topo.networks.get(i).map(|n| n.name.clone()).unwrap_or_default()
        })),
    })
}

/// `shunt stats --json` "umem": where the AF_XDP frames are (null without
/// AF_XDP ports). When the switch is idle, `frames` = `pool` + `cached` +
/// `in_kernel`; during traffic the rest are in batches and hand-over queues.
fn umem_json(rt: &Runtime) -> Value {
    let Some(u) = &rt.umem else {
        return Value::Null;
    };
    let cached: u64 = rt.xdp_stats.iter().map(|c| c.cached.load(Relaxed)).sum();
    json!({
        "frames": u.frames(),
        "pool": u.free_frames(),
        "cached": cached,
        "in_kernel": u.lent_frames(),
    })
}

/// `shunt stats --json` "vteps": per remote VTEP address, what went to it
/// and came from it, its next hop, and the drops of frames towards it
/// (added to `total`).
fn vteps_json(rt: &Runtime, total: &mut [u64; DropReason::COUNT]) -> Value {
    let plan = rt.plan.load();
    let Some(v) = plan.vxlan.as_ref() else {
        return Value::Object(Map::new());
    };
    let ul = rt.host.as_deref().and_then(|h| h.underlay.as_ref());
    let mut out = Map::new();
    for (k, ip) in v.remotes.iter().enumerate() {
        let Some(id) = VtepId::new(k) else { continue };
        let t = sum_port(&rt.counters, Egress::Vtep(id));
        let mut drops = Map::new();
        for r in DropReason::ALL {
            let n = t.drops[*r as usize];
            total[*r as usize] += n;
            if n > 0 {
                drops.insert(r.name().to_string(), n.into());
            }
        }
        out.insert(
            ip.to_string(),
            json!({
                "rx_frames": t.rx_frames,
                "tx_frames": t.tx_frames,
                "rx_bytes": t.rx_bytes,
                "tx_bytes": t.tx_bytes,
                "learned": t.learned,
                "drops": drops,
                "nexthop": ul.and_then(|u| u.nexthop_of(*ip)).map(|a| a.to_string()),
                "nexthop_mac": ul.and_then(|u| u.nexthop_mac(k)).map(|m| fmt_mac(&m)),
            }),
        );
    }
    Value::Object(out)
}

fn trace(out: &mut UnixStream, rt: &Runtime, req: &Value) -> std::io::Result<()> {
    let mut ports = Vec::new();
    if let Some(p) = req.get("port").and_then(Value::as_str) {
        ports = resolve_ports(rt, p);
        if ports.is_empty() {
            return reply(
                out,
                &json!({"error": format!("no port or host named {p:?}")}),
            );
        }
    }
    let count = req.get("count").and_then(Value::as_u64).unwrap_or(u64::MAX);
    let secs = req.get("seconds").and_then(Value::as_f64);
    if rt.tracer.active() {
        return reply(
            out,
            &json!({"error": "a trace is already running on this switch"}),
        );
    }
    let ports: Vec<PortId> = ports
        .iter()
        .filter_map(|&p| PortId::new(p.into()))
        .collect();
    rt.tracer.start(&ports);
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let port_name = |p: Egress| rt.port_name(p);
    let net_name = |n: NetId| {
        rt.plan
            .load()
            .nets
            .get(n.index())
            .map(|x| x.name.clone())
            .unwrap_or_else(|| format!("net{}", n.index()))
    };
    let mut sent = 0u64;
    let result = (|| -> std::io::Result<()> {
        // Tells a client that went away from one that is waiting.
        out.set_write_timeout(Some(Duration::from_secs(5)))?;
        reply(out, &json!({"tracing": true}))?;
        while sent < count && !rt.stop.load(Relaxed) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match rt.tracer.pop() {
                Some(r) => {
                    let line = crate::trace::describe(&r, &port_name, &net_name);
                    reply(out, &serde_json::to_value(&line).unwrap_or(Value::Null))?;
                    sent += 1;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        reply(out, &json!({"end": true, "frames": sent}))
    })();
    rt.tracer.stop();
    result
}

/// Client side: sends one request, returns the first answer line.
pub fn request(name: &str, req: &Value) -> Result<Value, ControlError> {
    let (mut reader, _) = open(name, req)?;
    read_value(name, &mut reader)
}

pub fn open(name: &str, req: &Value) -> Result<(BufReader<UnixStream>, UnixStream), ControlError> {
    let path = socket_path(name);
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning {
                name: name.to_string(),
                path: path.display().to_string(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let r = BufReader::new(s.try_clone().map_err(io)?);
    Ok((r, s))
}

pub fn read_value(name: &str, r: &mut BufReader<UnixStream>) -> Result<Value, ControlError> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|source| ControlError::Io {
        path: socket_path(name).display().to_string(),
        source,
    })?;
    if line.is_empty() {
        return Err(ControlError::Protocol("connection closed".into()));
    }
    let v: Value =
        serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(ControlError::Remote(e.to_string()));
    }
    Ok(v)
}
