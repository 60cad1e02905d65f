//! The `shunt` command.

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use shunt_switch::{config, control, daemon};
use std::io::Write;
use std::process::ExitCode;

/// `println!` that ends quietly when stdout is closed (`shunt fdb | head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[derive(Parser)]
#[command(
    name = "shunt",
    version,
    about = "A userspace Ethernet switch for test topologies of network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring up the switch and the topology in FILE (default: three hosts on one network).
    Up {
        /// Topology file (TOML); without it, the built-in default topology.
        file: Option<String>,
        /// Return once everything is up and forwarding; the switch runs on in the background.
        #[arg(long)]
        detach: bool,
        /// Only check the file and print what it would create.
        #[arg(long)]
        check: bool,
        /// Switch name, instead of the file's `[switch] name`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop the switch and remove everything `up` created.
    Down {
        /// Switch name (same as --name).
        name: Option<String>,
        #[arg(long = "name")]
        name_opt: Option<String>,
    },
    /// Run CMD inside a host's network namespace.
    Exec {
        host: String,
        /// Only if HOST is a host of this switch.
        #[arg(long)]
        name: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Ports: kind, worker, mode, networks, link state, frames.
    Ports {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The forwarding database.
    Fdb {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        json: bool,
        /// Forget the entry of this MAC in --network (a learned one returns with
        /// the next frame from it).
        #[arg(long, value_name = "MAC", requires = "network")]
        delete: Option<String>,
    },
    /// Counters per port: frames, bytes, floods by cause, drops by reason.
    Stats {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The names the switch's DNS responder serves.
    Dns {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        /// Only the names of this network.
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Plug a host into a network while the switch runs (a new host gets a namespace).
    Attach {
        host: String,
        network: String,
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
    },
    /// Unplug a host from a network while the switch runs.
    Detach {
        host: String,
        network: String,
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
    },
    /// Live: what the switch decides for each frame, and why.
    Trace {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        /// Only frames entering on this port (or on any port of this host).
        #[arg(long)]
        port: Option<String>,
        /// Stop after N frames.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Measure forwarding rate, loss and latency through shunt (and the Linux bridge).
    Bench(shunt_perf::linerate::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shunt: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(file: Option<&str>) -> Result<config::Topology, String> {
    match file {
        Some(f) => {
            let src = std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?;
            config::parse(f, &src).map_err(|e| e.to_string())
        }
        None => {
            config::parse("(default topology)", config::DEFAULT_TOPOLOGY).map_err(|e| e.to_string())
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let cmd_name = match &cli.cmd {
        Cmd::Attach { .. } => "attach",
        _ => "detach",
    };
    match cli.cmd {
        Cmd::Up {
            file,
            detach,
            check,
            name,
        } => {
            let mut topo = load(file.as_deref())?;
            if let Some(n) = &name {
                config::check_switch_name(n)?;
                topo.switch.name = n.clone();
            }
            if check {
                print_plan(&topo);
                return Ok(());
            }
            if detach {
                let abs = match &file {
                    Some(f) => Some(
                        std::fs::canonicalize(f)
                            .map_err(|e| format!("{f}: {e}"))?
                            .display()
                            .to_string(),
                    ),
                    None => None,
                };
                let pid = daemon::detach(&topo.switch.name, abs.as_deref(), name.as_deref())
                    .map_err(|e| e.to_string())?;
                out!(
                    "switch {:?} is up (pid {pid}); log: {}",
                    topo.switch.name,
                    daemon::log_path(&topo.switch.name).display()
                );
                Ok(())
            } else {
                daemon::run(topo).map_err(|e| e.to_string())
            }
        }
        Cmd::Down { name, name_opt } => {
            let name = control::pick_name(name.or(name_opt));
            let msg = daemon::down(&name).map_err(|e| e.to_string())?;
            out!("{msg}");
            Ok(())
        }
        Cmd::Exec { host, name, cmd } => {
            if let Some(n) = name {
                let v =
                    control::request(&n, &json!({"cmd": "ports"})).map_err(|e| e.to_string())?;
                let ours = v
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["host"].as_str() == Some(host.as_str())));
                if !ours {
                    return Err(format!("{host:?} is not a host of switch {n:?}"));
                }
            }
            if !shunt_switch::netns::exists(&host) {
                return Err(format!(
                    "no host {host:?} (no network namespace of that name); is the switch up?"
                ));
            }
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new("ip")
                .args(["netns", "exec", &host])
                .args(&cmd)
                .exec();
            Err(format!("cannot run ip netns exec: {err}"))
        }
        Cmd::Attach {
            host,
            network,
            name,
        }
        | Cmd::Detach {
            host,
            network,
            name,
        } => {
            let name = control::pick_name(name);
            let v = control::request(
                &name,
                &json!({"cmd": cmd_name, "host": host, "network": network}),
            )
            .map_err(|e| e.to_string())?;
            out!(
                "{}",
                v.get("message").and_then(Value::as_str).unwrap_or("ok")
            );
            Ok(())
        }
        Cmd::Ports { name, json } => show(name, json!({"cmd": "ports"}), json, print_ports),
        Cmd::Fdb {
            name,
            network,
            json: _,
            delete: Some(mac),
        } => {
            let name = control::pick_name(name);
            let req = json!({"cmd": "fdb_delete", "network": network, "mac": mac});
            let v = control::request(&name, &req).map_err(|e| e.to_string())?;
            if v["removed"].as_bool() == Some(true) {
                out!("removed {mac} from the FDB");
                Ok(())
            } else {
                Err(format!(
                    "no entry for {mac} in network {}",
                    network.unwrap_or_default()
                ))
            }
        }
        Cmd::Fdb {
            name,
            network,
            json,
            delete: None,
        } => show(
            name,
            json!({"cmd": "fdb", "network": network}),
            json,
            print_fdb,
        ),
        Cmd::Dns {
            name,
            network,
            json,
        } => show(name, json!({"cmd": "dns", "network": network}), json, |v| {
            print!("{}", shunt_switch::stack::names::listing_text(v))
        }),
        Cmd::Stats { name, json } => show(name, json!({"cmd": "stats"}), json, print_stats),
        Cmd::Bench(args) => shunt_perf::linerate::run(args).map_err(|e| e.to_string()),
        Cmd::Trace {
            name,
            port,
            count,
            seconds,
            json,
        } => {
            let name = control::pick_name(name);
            let req = json!({"cmd": "trace", "port": port, "count": count, "seconds": seconds});
            let (mut r, _s) = control::open(&name, &req).map_err(|e| e.to_string())?;
            let first = control::read_value(&name, &mut r).map_err(|e| e.to_string())?;
            if !json {
                eprintln!(
                    "tracing {}; stop with Ctrl-C",
                    port.as_deref().unwrap_or("all ports")
                );
            }
            let _ = first;
            let stdout = std::io::stdout();
            loop {
                let v = control::read_value(&name, &mut r).map_err(|e| e.to_string())?;
                if v.get("end").is_some() {
                    break;
                }
                let mut out = stdout.lock();
                let line = if json {
                    v.to_string()
                } else {
                    v.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// Asks the switch one question and prints the answer as JSON or as text.
fn show(name: Option<String>, req: Value, json: bool, text: impl Fn(&Value)) -> Result<(), String> {
    let name = control::pick_name(name);
    let v = control::request(&name, &req).map_err(|e| e.to_string())?;
    if json {
        out!("{v}");
    } else {
        text(&v);
    }
    Ok(())
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(&format!("{:<width$}  ", c, width = w[i]));
        }
        out!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

fn print_ports(v: &Value) {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let nets = p["networks"]
                        .as_array()
                        .map(|n| {
                            n.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    let nets = match p.get("native").and_then(Value::as_str) {
                        Some(n) => format!("{nets} native={n}"),
                        None => nets,
                    };
                    vec![
                        s(p, "name"),
                        s(p, "kind"),
                        s(p, "worker"),
                        s(p, "mode"),
                        nets,
                        if p["up"].as_bool() == Some(true) {
                            "up".into()
                        } else {
                            "DOWN".into()
                        },
                        s(p, "rx_frames"),
                        s(p, "tx_frames"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "port", "kind", "worker", "mode", "networks", "link", "rx", "tx",
        ],
        rows,
    );
}

fn print_fdb(v: &Value) {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    vec![
                        s(e, "network"),
                        s(e, "vlan"),
                        s(e, "mac"),
                        s(e, "port"),
                        if e["static"].as_bool() == Some(true) {
                            "static".into()
                        } else {
                            "learned".into()
                        },
                        if e["static"].as_bool() == Some(true) {
                            "-".into()
                        } else {
                            format!("{:.1}", e["age_secs"].as_f64().unwrap_or(0.0))
                        },
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let n = rows.len();
    table(&["network", "vlan", "mac", "port", "type", "age(s)"], rows);
    out!("{n} entries");
}

fn print_stats(v: &Value) {
    let mut rows = Vec::new();
    if let Some(ports) = v["ports"].as_object() {
        for (name, p) in ports {
            let fl = &p["flooded"];
            let mut drops: Vec<String> = p["drops"]
                .as_object()
                .map(|d| {
                    d.iter()
                        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                        .map(|(k, n)| format!("{k}={n}"))
                        .collect()
                })
                .unwrap_or_default();
            // An AF_XDP port's socket drops frames before the switch sees
            // them: say so, with the kernel's words.
            for k in ["rx_fill_ring_empty", "rx_ring_full", "rx_oversize"] {
                if let Some(n) = p["afxdp"][k].as_u64().filter(|&n| n > 0) {
                    drops.push(format!("kernel:{k}={n}"));
                }
            }
            rows.push(vec![
                name.clone(),
                s(p, "rx_frames"),
                s(p, "rx_bytes"),
                s(p, "tx_frames"),
                s(p, "tx_bytes"),
                format!(
                    "{}/{}/{}",
                    s(fl, "broadcast"),
                    s(fl, "unknown_unicast"),
                    s(fl, "multicast")
                ),
                if drops.is_empty() {
                    "-".into()
                } else {
                    drops.join(" ")
                },
            ]);
        }
    }
    table(
        &[
            "port",
            "rx",
            "rx bytes",
            "tx",
            "tx bytes",
            "flood b/u/m",
            "drops",
        ],
        rows,
    );
    out!(
        "fdb: {} entries (capacity {})",
        s(&v["fdb"], "entries"),
        s(&v["fdb"], "capacity")
    );
    let u = &v["umem"];
    if !u.is_null() {
        let zero_copy: u64 = v["ports"]
            .as_object()
            .map(|ps| ps.values().filter_map(|p| p["tx_zero_copy"].as_u64()).sum())
            .unwrap_or(0);
        out!(
            "umem: {} frames: {} in the pool, {} in ports' caches, {} in kernel rings; {zero_copy} frames sent without a copy",
            s(u, "frames"),
            s(u, "pool"),
            s(u, "cached"),
            s(u, "in_kernel")
        );
    }
}

fn print_plan(t: &config::Topology) {
    out!(
        "switch {:?}: {} worker(s), fdb ageing {} s, at most {} entries",
        t.switch.name,
        t.switch.workers,
        t.switch.fdb_aging_secs,
        t.switch.fdb_max_entries
    );
    for n in &t.networks {
        out!(
            "network {}: vlan {}, subnet {}, switch address {}",
            n.name,
            n.vlan.map(|v| v.to_string()).unwrap_or("-".into()),
            n.subnet.map(|v| v.to_string()).unwrap_or("-".into()),
            n.address.map(|v| v.to_string()).unwrap_or("-".into())
        );
    }
    for h in &t.hosts {
        for l in &h.links {
            out!(
                "host {}: {} in {} with {} {}",
                h.name,
                l.ifname,
                t.networks[l.network].name,
                l.ip.map(|v| v.to_string()).unwrap_or("no address".into()),
                config::fmt_mac(&l.mac)
            );
        }
    }
    for p in t.ports.iter().filter(|p| p.host.is_none()) {
        out!("port {}: {} on {}", p.name, p.kind.as_str(), p.interface);
    }
}
