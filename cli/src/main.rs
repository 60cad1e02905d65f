//! The `shunt` command.

mod capture;

use clap::{Parser, Subcommand};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shunt_switch::control::proto::{
    self, DnsName, Done, FdbEntry, MdbRow, PortInfo, Removed, Request, Stats, TraceEvent,
    TraceStart,
};
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

mod stp;

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
    /// Spanning tree: the bridge, the root, each port's role and state.
    Stp {
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
    /// Multicast groups learned by IGMP/MLD snooping (or the router ports).
    Mdb {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        /// Only this network.
        #[arg(long)]
        network: Option<String>,
        /// The router ports (where queries come from) instead of the groups.
        #[arg(long)]
        routers: bool,
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
    /// Live: what the switch decides for each frame, and why (the frames
    /// `shunt capture` would select); or, with --packet, what it would do
    /// with a frame described, stage by stage, sending nothing.
    Trace {
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
        /// Only frames entering on this port (or on any port of this host):
        /// TARGET --direction in.
        #[arg(long)]
        port: Option<String>,
        #[command(flatten)]
        filter: capture::FilterArgs,
        /// Ask about a frame instead: "in=h1.lan dst=02:42:0a:00:00:03 vlan=10 type=arp"
        /// (keys: in, src, dst, vlan, type, src_ip, dst_ip, len; docs/trace.md).
        #[arg(long, value_name = "SPEC", conflicts_with_all = ["port", "count", "seconds"])]
        packet: Option<String>,
        /// Stop after N frames.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Impair a port's link at run time: delay, jitter, loss, rate, duplication,
    /// reordering, corruption (docs/impair.md). Knobs not given are off.
    Impair(Box<ImpairArgs>),
    /// Take a port's link down (the host sees NO-CARRIER) or up again.
    Link {
        /// A port (h1.lan), or a host: all its ports.
        port: String,
        /// up or down.
        #[arg(value_parser = ["up", "down"])]
        state: String,
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
    },
    /// Storm control of a port at run time: frames per second allowed in per
    /// class (docs/storm.md). Without a rate or --clear: shows the limits.
    Storm {
        /// A port (h1.lan), or a host: all its ports.
        port: String,
        #[arg(long, value_name = "FPS")]
        broadcast: Option<u64>,
        #[arg(long, value_name = "FPS")]
        multicast: Option<u64>,
        #[arg(long = "unknown-unicast", value_name = "FPS")]
        unknown_unicast: Option<u64>,
        /// Bucket depth as time at the rate, like 100ms or 1s (default 1s).
        #[arg(long, value_name = "D")]
        burst: Option<String>,
        /// No storm control on the port (rates given with it start afresh).
        #[arg(long)]
        clear: bool,
        /// Switch name (default: "shunt", or the only switch running).
        #[arg(long)]
        name: Option<String>,
    },
    /// Capture frames to pcapng, with the switch's decision on each (docs/capture.md).
    Capture(capture::CaptureArgs),
    /// Measure forwarding rate, loss and latency through shunt (and the Linux bridge).
    Bench(shunt_perf::linerate::BenchArgs),
}

#[derive(clap::Args)]
struct ImpairArgs {
    /// A port (h1.lan), or a host: all its ports.
    port: String,
    /// Switch name (default: "shunt", or the only switch running).
    #[arg(long)]
    name: Option<String>,
    /// egress (what the switch sends to the host), ingress (what it receives), both.
    #[arg(long, default_value = "both")]
    direction: String,
    /// Delay, like 20ms or 500us.
    #[arg(long)]
    delay: Option<String>,
    /// Jitter around the delay (never reorders).
    #[arg(long)]
    jitter: Option<String>,
    /// uniform (default), normal, pareto or paretonormal.
    #[arg(long)]
    distribution: Option<String>,
    /// Loss: a share like 1%, or "gemodel P R [BAD [GOOD]]" for bursts.
    #[arg(long, allow_hyphen_values = true)]
    loss: Option<String>,
    /// Rate limit, like 10mbit or 1gbit.
    #[arg(long)]
    rate: Option<String>,
    /// Frames held at most (delay, rate); beyond: impair_queue_full.
    #[arg(long)]
    limit: Option<u64>,
    /// Bytes held at most, like 4mb.
    #[arg(long)]
    limit_bytes: Option<String>,
    #[arg(long)]
    duplicate: Option<String>,
    /// A share of frames sent ahead of those held before them.
    #[arg(long)]
    reorder: Option<String>,
    /// A share of frames with one payload bit flipped.
    #[arg(long)]
    corrupt: Option<String>,
    /// Seed: the same seed and the same frames make the same decisions.
    #[arg(long)]
    seed: Option<u64>,
    /// Remove the impairment (of --direction).
    #[arg(long)]
    clear: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: a switch started with --detach has its log as
            // stderr, and a full /run must not turn the error into a panic.
            shunt_switch::say!("shunt: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a command can fail with; printed once, in `main`.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Path {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    SwitchName(#[from] config::BadSwitchName),
    #[error(transparent)]
    Up(#[from] daemon::UpError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("{host:?} is not a host of switch {switch:?}")]
    NotOurHost { host: String, switch: String },
    #[error("no host {0:?} (no network namespace of that name); is the switch up?")]
    NoHost(String),
    #[error("cannot run ip netns exec: {0}")]
    Exec(std::io::Error),
    #[error("no entry for {mac} in network {network}")]
    NoEntry { mac: String, network: String },
    #[error(transparent)]
    Bench(#[from] shunt_perf::linerate::BenchError),
    #[error(transparent)]
    Capture(#[from] capture::CaptureCliError),
}

fn load(file: Option<&str>) -> Result<config::Topology, CliError> {
    match file {
        Some(f) => {
            let src = std::fs::read_to_string(f).map_err(|source| CliError::Read {
                path: f.to_string(),
                source,
            })?;
            Ok(config::parse(f, &src)?)
        }
        None => Ok(config::parse(
            "(default topology)",
            config::DEFAULT_TOPOLOGY,
        )?),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
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
                            .map_err(|source| CliError::Path {
                                path: f.clone(),
                                source,
                            })?
                            .display()
                            .to_string(),
                    ),
                    None => None,
                };
                let pid = daemon::up_detached(&topo.switch.name, abs.as_deref(), name.as_deref())?;
                out!(
                    "switch {:?} is up (pid {pid}); log: {}",
                    topo.switch.name,
                    daemon::log_path(&topo.switch.name).display()
                );
                Ok(())
            } else {
                Ok(daemon::run(topo)?)
            }
        }
        Cmd::Down { name, name_opt } => {
            let name = control::pick_name(name.or(name_opt));
            let msg = daemon::down(&name)?;
            out!("{msg}");
            Ok(())
        }
        Cmd::Exec { host, name, cmd } => {
            if let Some(n) = name {
                let ports: Vec<PortInfo> = control::request(&n, &Request::Ports)?;
                if !ports
                    .iter()
                    .any(|p| p.host.as_deref() == Some(host.as_str()))
                {
                    return Err(CliError::NotOurHost { host, switch: n });
                }
            }
            if !shunt_switch::netns::exists(&host) {
                return Err(CliError::NoHost(host));
            }
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new("ip")
                .args(["netns", "exec", &host])
                .args(&cmd)
                .exec();
            Err(CliError::Exec(err))
        }
        Cmd::Attach {
            host,
            network,
            name,
        } => done(name, &Request::Attach { host, network }),
        Cmd::Detach {
            host,
            network,
            name,
        } => done(name, &Request::Detach { host, network }),
        Cmd::Ports { name, json } => show(name, &Request::Ports, json, |p: &Vec<PortInfo>| {
            print_ports(p)
        }),
        Cmd::Fdb {
            name,
            network,
            json: _,
            delete: Some(mac),
        } => {
            let name = control::pick_name(name);
            let network = network.unwrap_or_default();
            let req = Request::FdbDelete {
                network: network.clone(),
                mac: mac.clone(),
            };
            let r: Removed = control::request(&name, &req)?;
            if r.removed {
                out!("removed {mac} from the FDB");
                Ok(())
            } else {
                Err(CliError::NoEntry { mac, network })
            }
        }
        Cmd::Fdb {
            name,
            network,
            json,
            delete: None,
        } => show(
            name,
            &Request::Fdb { network },
            json,
            |v: &Vec<FdbEntry>| print_fdb(v),
        ),
        Cmd::Dns {
            name,
            network,
            json,
        } => show(name, &Request::Dns { network }, json, |v: &Vec<DnsName>| {
            print_dns(v)
        }),
        Cmd::Stats { name, json } => show(name, &Request::Stats, json, print_stats),
        Cmd::Stp { name, json } => show(name, &Request::Stp, json, stp::print),
        Cmd::Mdb {
            name,
            network,
            routers,
            json,
        } => show(
            name,
            &Request::Mdb { network, routers },
            json,
            |v: &Vec<MdbRow>| print_mdb(v, routers),
        ),
        Cmd::Impair(args) => {
            let ImpairArgs {
                port,
                name,
                direction,
                delay,
                jitter,
                distribution,
                loss,
                rate,
                limit,
                limit_bytes,
                duplicate,
                reorder,
                corrupt,
                seed,
                clear,
            } = *args;
            done(
                name,
                &Request::Impair {
                    port,
                    direction: Some(direction),
                    settings: Box::new(shunt_switch::impair::Settings {
                        delay,
                        jitter,
                        distribution,
                        loss,
                        rate,
                        limit,
                        limit_bytes,
                        duplicate,
                        reorder,
                        corrupt,
                        seed,
                    }),
                    clear,
                },
            )
        }
        Cmd::Link { port, state, name } => done(
            name,
            &Request::Link {
                port,
                up: state == "up",
            },
        ),
        Cmd::Storm {
            port,
            broadcast,
            multicast,
            unknown_unicast,
            burst,
            clear,
            name,
        } => done(
            name,
            &Request::Storm(proto::StormSpec {
                port,
                broadcast,
                multicast,
                unknown_unicast,
                burst,
                clear,
            }),
        ),
        Cmd::Bench(args) => Ok(shunt_perf::linerate::run(args)?),
        Cmd::Capture(args) => Ok(capture::run(args)?),
        Cmd::Trace {
            name,
            filter,
            packet: Some(packet),
            json,
            ..
        } => {
            let name = control::pick_name(name);
            if filter.spec() != proto::CaptureSpec::default() {
                return Err(CliError::Usage(
                    "--packet describes one frame: it takes no targets or filters".into(),
                ));
            }
            let v: serde_json::Value = control::request(&name, &Request::TracePacket { packet })?;
            if json {
                out!("{v}");
                return Ok(());
            }
            let report: shunt_switch::probe::Report =
                serde_json::from_value(v).map_err(control::ControlError::Unreadable)?;
            out!("{}", report.packet);
            for s in &report.stages {
                out!("{:>9}: {}", s.stage, s.text);
            }
            Ok(())
        }
        Cmd::Trace {
            name,
            port,
            count,
            seconds,
            filter,
            json,
            ..
        } => {
            let name = control::pick_name(name);
            let spec = proto::CaptureSpec {
                count,
                seconds,
                ..filter.spec()
            };
            let req = Request::Trace {
                port: port.clone(),
                spec,
            };
            let (mut r, _s) = control::open(&name, &req)?;
            let _: TraceStart = control::read(&name, &mut r)?;
            if !json {
                let mut what: Vec<String> = filter.targets.clone();
                what.extend(port.clone());
                let filtered = proto::CaptureSpec {
                    targets: Vec::new(),
                    ..filter.spec()
                } != proto::CaptureSpec::default();
                eprintln!(
                    "tracing {}{}; stop with Ctrl-C",
                    if what.is_empty() {
                        "all ports".to_string()
                    } else {
                        what.join(", ")
                    },
                    if filtered {
                        ", the frames the filters select"
                    } else {
                        ""
                    }
                );
            }
            let stdout = std::io::stdout();
            loop {
                let v = control::read_value(&name, &mut r)?;
                let line =
                    match TraceEvent::from_value(v).map_err(control::ControlError::Unreadable)? {
                        TraceEvent::End(_) => break,
                        TraceEvent::Frame { record, .. } if json => record.to_string(),
                        TraceEvent::Frame { text, .. } => text,
                    };
                let mut out = stdout.lock();
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// Asks the switch one question and prints the answer as JSON (as it came:
/// keys sorted) or as text.
/// Sends a request whose answer is a sentence (attach, detach) and prints it.
fn done(name: Option<String>, req: &Request) -> Result<(), CliError> {
    let d: Done = control::request(&control::pick_name(name), req)?;
    out!("{}", d.message);
    Ok(())
}

fn show<T: DeserializeOwned + Serialize>(
    name: Option<String>,
    req: &Request,
    json: bool,
    text: impl Fn(&T),
) -> Result<(), CliError> {
    let name = control::pick_name(name);
    let v: T = control::request(&name, req)?;
    if json {
        out!("{}", proto::to_line(&v).trim_end());
    } else {
        text(&v);
    }
    Ok(())
}

/// A value for a table cell: "-" when there is none.
fn cell<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
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

fn print_ports(ports: &[PortInfo]) {
    let rows = ports
        .iter()
        .map(|p| {
            let nets = p.networks.join(",");
            let nets = match &p.native {
                Some(n) => format!("{nets} native={n}"),
                None => nets,
            };
            vec![
                p.name.clone(),
                p.kind.clone(),
                p.worker.to_string(),
                p.mode.clone(),
                nets,
                if p.up { "up".into() } else { "DOWN".into() },
                p.rx_frames.to_string(),
                p.tx_frames.to_string(),
                impair_cell(p),
            ]
        })
        .collect();
    table(
        &[
            "port", "kind", "worker", "mode", "networks", "link", "rx", "tx", "impair",
        ],
        rows,
    );
}

/// A port's impairment for the ports table: `out: delay 20ms / in: ...`.
fn impair_cell(p: &PortInfo) -> String {
    let Some(i) = &p.impair else {
        return "-".into();
    };
    let mut w = Vec::new();
    match (&i.egress, &i.ingress) {
        (Some(e), Some(n)) if e == n => w.push(e.clone()),
        (e, n) => {
            if let Some(e) = e {
                w.push(format!("egress: {e}"));
            }
            if let Some(n) = n {
                w.push(format!("ingress: {n}"));
            }
        }
    }
    if let Some(f) = &i.flap {
        w.push(format!("flap {f}"));
    }
    w.join(" / ")
}

fn print_fdb(entries: &[FdbEntry]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                cell(e.vlan),
                e.mac.clone(),
                e.port.clone(),
                if e.is_static { "static" } else { "learned" }.into(),
                if e.is_static {
                    "-".into()
                } else {
                    format!("{:.1}", e.age_secs)
                },
            ]
        })
        .collect();
    let n = rows.len();
    table(&["network", "vlan", "mac", "port", "type", "age(s)"], rows);
    out!("{n} entries");
}

fn print_mdb(rows: &[MdbRow], routers: bool) {
    let what = if routers { "family" } else { "group" };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.network.clone(),
                cell(r.group.clone().or_else(|| r.family.clone())),
                r.port.clone(),
                format!("{:.1}", r.age_secs),
                format!("{:.1}", r.expires_secs),
            ]
        })
        .collect();
    let n = cells.len();
    table(&["network", what, "port", "age(s)", "expires(s)"], cells);
    out!(
        "{n} {}",
        if routers {
            "router ports"
        } else {
            "memberships"
        }
    );
}

fn print_dns(names: &[DnsName]) {
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|r| {
            vec![
                r.network.clone(),
                r.name.clone(),
                r.kind.clone(),
                r.addresses.join(","),
            ]
        })
        .collect();
    let n = rows.len();
    table(&["network", "name", "type", "addresses"], rows);
    out!("{n} names");
}

/// MAC-flap detection's part of `shunt stats` (docs/storm.md).
fn print_mac_flap(v: &Stats) {
    let Some(f) = v.mac_flap.as_ref().filter(|f| f["enabled"] == true) else {
        return;
    };
    out!(
        "mac flaps: {} (events lost: {})",
        f["flaps"].as_u64().unwrap_or(0),
        f["events_lost"].as_u64().unwrap_or(0)
    );
    for r in f["recent"].as_array().into_iter().flatten() {
        let ports: Vec<&str> = r["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .collect();
        out!(
            "  {} in {}: {} moves between {}, {:.0} s ago, action {}",
            r["mac"].as_str().unwrap_or("?"),
            r["network"].as_str().unwrap_or("?"),
            r["moves"].as_u64().unwrap_or(0),
            ports.join(", "),
            r["age_secs"].as_f64().unwrap_or(0.0),
            r["action"].as_str().unwrap_or("?")
        );
    }
}

fn print_stats(v: &Stats) {
    let mut rows = Vec::new();
    for (name, p) in &v.ports {
        let fl = |c: &str| cell(p.flooded.get(c));
        let mut drops: Vec<String> = p
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        // An AF_XDP port's socket drops frames before the switch sees
        // them: say so, with the kernel's words.
        if let Some(x) = &p.afxdp {
            for k in ["rx_fill_ring_empty", "rx_ring_full", "rx_oversize"] {
                if let Some(n) = x[k].as_u64().filter(|&n| n > 0) {
                    drops.push(format!("kernel:{k}={n}"));
                }
            }
        }
        // So does a TAP's queue (the host's tx_dropped: frames shunt never
        // read), and the host's kernel may drop what shunt wrote.
        if let Some(t) = &p.tap {
            for (k, n) in [("tx_dropped", t.tx_dropped), ("rx_dropped", t.rx_dropped)] {
                if n > 0 {
                    drops.push(format!("kernel:{k}={n}"));
                }
            }
        }
        // And a packet socket whose receive buffer was full.
        if let Some(n) = p.packet.map(|k| k.rx_dropped).filter(|&n| n > 0) {
            drops.push(format!("kernel:rx_dropped={n}"));
        }
        rows.push(vec![
            name.clone(),
            p.rx_frames.to_string(),
            p.rx_bytes.to_string(),
            p.tx_frames.to_string(),
            p.tx_bytes.to_string(),
            format!(
                "{}/{}/{}",
                fl("broadcast"),
                fl("unknown_unicast"),
                fl("multicast")
            ),
            if drops.is_empty() {
                "-".into()
            } else {
                drops.join(" ")
            },
        ]);
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
    print_mac_flap(v);
    // Offloads (docs/offloads.md), for the ports and VTEPs that saw any.
    let ports = v.ports.iter().map(|(n, p)| (n.clone(), &p.offload));
    let vteps = v
        .vteps
        .iter()
        .map(|(ip, t)| (format!("vtep {ip}"), &t.offload));
    for (name, o) in ports.chain(vteps) {
        if o.rx_gso + o.tx_gso_whole + o.tx_gso_segments + o.tx_csum_soft > 0 {
            out!(
                "offload {name}: {} super-frames received, {} sent whole, {} segments cut in software, {} checksums completed in software",
                o.rx_gso,
                o.tx_gso_whole,
                o.tx_gso_segments,
                o.tx_csum_soft
            );
        }
    }
    // Impairment (docs/impair.md), for the ports that have or had any.
    for (name, p) in &v.ports {
        let Some(i) = &p.impair else { continue };
        for (dir, t) in [("egress", &i.egress), ("ingress", &i.ingress)] {
            if t.is_zero() {
                continue;
            }
            out!(
                "impair {name} {dir}: {} delayed, {} lost, {} duplicated, {} reordered, {} corrupted, {} queue full; {} frames ({} bytes) held now",
                t.delayed,
                t.lost,
                t.duplicated,
                t.reordered,
                t.corrupted,
                t.queue_full,
                t.queued_frames,
                t.queued_bytes
            );
        }
    }
    out!(
        "fdb: {} entries (capacity {})",
        v.fdb.entries,
        v.fdb.capacity
    );
    if v.handoff
        .iter()
        .any(|h| h.frames + h.full + h.held_back > 0)
    {
        let rows = v
            .handoff
            .iter()
            .map(|h| {
                vec![
                    format!("{} -> {}", h.from, h.to),
                    h.frames.to_string(),
                    h.full.to_string(),
                    h.held_back.to_string(),
                    h.queued.to_string(),
                ]
            })
            .collect();
        table(
            &["hand-over", "frames", "full", "held back", "queued"],
            rows,
        );
    }
    if let Some(u) = &v.umem {
        let zero_copy: u64 = v.ports.values().map(|p| p.tx_zero_copy).sum();
        out!(
            "umem: {} frames: {} in the pool, {} in ports' caches, {} in kernel rings; {zero_copy} frames sent without a copy",
            u.frames,
            u.pool,
            u.cached,
            u.in_kernel
        );
    }
    if let Some(s) = &v.stp {
        out!(
            "stp: {} BPDUs in ({} ignored), {} out, {} topology changes",
            s["bpdus_in"],
            s["bpdus_bad"],
            s["bpdus_out"],
            s["topology_changes"]
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
                l.mac
            );
        }
    }
    for p in t.ports.iter().filter(|p| p.host.is_none()) {
        out!("port {}: {} on {}", p.name, p.kind.as_str(), p.interface);
    }
}
