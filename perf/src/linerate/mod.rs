//! `shunt bench`: how fast is this switch, and how does it compare to the
//! Linux bridge, here, now (issue 4; docs/PERF.md).
//!
//! It builds its own topology ([`lab`]): a generator namespace and a sink
//! namespace, joined three ways: through shunt (a child `shunt up` with two
//! ports), through a kernel bridge (veth pairs), and directly (a veth pair:
//! the generator's own ceiling). For each frame size it offers traffic
//! with its own AF_PACKET generator ([`traffic`]) pinned to one core, the
//! switch's workers pinned to the others, and reports the forwarding rate
//! and loss, optionally the RFC 2544 zero-loss throughput, and latency
//! percentiles at a fraction of the measured rate.

mod capture;
mod frame;
mod lab;
mod ovs;
// The one module of this crate that talks to the kernel (packet sockets,
// their ring mapping): every `unsafe` there carries its `// SAFETY:`.
#[allow(unsafe_code)]
mod packet;
mod plot;
mod tcp;
mod traffic;

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;
use traffic::{fmt_rate, Latency, Progress, Trial};

/// Flip when the AF_XDP port can be driven by a topology file: the bench
/// then attaches veth pairs with `kind = "afxdp"` ports (lab::topology).
pub const AFXDP_READY: bool = true;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "shunt bench needs root (it creates namespaces, veth pairs and a bridge): run it with sudo"
    )]
    NotRoot,
    #[error("setting up the bench topology: {0}")]
    Setup(String),
    #[error("the switch under test: {0}")]
    Switch(String),
    #[error("traffic: {0}")]
    Traffic(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Usage(String),
    #[error("interrupted; everything the bench created was removed")]
    Interrupted,
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    Tap,
    Afxdp,
    /// veth pairs attached with packet sockets (the default for veth hosts).
    Packet,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Afxdp => "afxdp",
            PortKind::Packet => "packet",
        }
    }
}

/// `[switch] poll` of the switch under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Poll {
    Interrupt,
    Adaptive,
    Busy,
}

impl Poll {
    pub fn as_str(self) -> &'static str {
        match self {
            Poll::Interrupt => "interrupt",
            Poll::Adaptive => "adaptive",
            Poll::Busy => "busy",
        }
    }
}

/// `[switch] tap_io` of the switch under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TapIo {
    Syscall,
    Uring,
}

impl TapIo {
    pub fn as_str(self) -> &'static str {
        match self {
            TapIo::Syscall => "syscall",
            TapIo::Uring => "uring",
        }
    }
}

pub use capture::CaptureMode;

/// `shunt bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Frame sizes in bytes, FCS included (64..=1518).
    #[arg(long, value_delimiter = ',', default_value = "64,512,1518")]
    pub sizes: Vec<usize>,
    /// Seconds per trial.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Kind of the switch's two ports.
    #[arg(long, value_enum, default_value_t = PortKind::Tap)]
    pub port_kind: PortKind,
    /// Worker threads of the switch under test.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Flows the generator sends in turn (UDP source ports 49184 and up,
    /// 1..=2048): something for a multi-queue TAP to spread over its queues.
    #[arg(long, default_value_t = 1)]
    pub flows: usize,
    /// TAP ports with one queue per worker (`[switch] multiqueue = true`):
    /// with `--flows N --workers 2`, one port's frames on both workers.
    #[arg(long)]
    pub multiqueue: bool,
    /// Also run the same traffic through a Linux bridge (default, and with
    /// RPS moving its work off the generator's core) and give the ratios.
    #[arg(long)]
    pub vs_linux_bridge: bool,
    /// Also run the same traffic through Open vSwitch's userspace datapath
    /// (its own ovs-vswitchd on the switch's cores, ports of the same
    /// kind: TAPs, AF_XDP or AF_PACKET on veths, userspace TSO on) and give
    /// the ratios.
    #[arg(long)]
    pub vs_ovs: bool,
    /// Also run the same ports with no switching logic (port 0 to port 1).
    #[arg(long)]
    pub bare: bool,
    /// Carry the traffic over VXLAN: the switch encapsulates every frame to
    /// a Linux kernel VTEP in the sink's namespace, which decapsulates it;
    /// the sink counts at that VTEP (vx0).
    #[arg(long)]
    pub vxlan: bool,
    /// RFC 2544 zero-loss throughput: binary search on the offered rate.
    #[arg(long)]
    pub rfc2544: bool,
    /// Latency is measured at this fraction of each path's forwarding rate
    /// (0 turns latency off).
    #[arg(long, default_value_t = 0.5)]
    pub latency_at: f64,
    /// TCP throughput with iperf3, through shunt (and the bridge with
    /// --vs-linux-bridge; with --vxlan: two shunts over a VXLAN underlay,
    /// and the kernel's VXLAN with --vs-linux-bridge).
    #[arg(long)]
    pub tcp: bool,
    /// Only the TCP runs: no frame-size trials (implies --tcp).
    #[arg(long)]
    pub tcp_only: bool,
    /// iperf3 streams (-P), one run per value: `--streams 1,4`.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub streams: Vec<u32>,
    /// IP versions of the TCP runs: `--ip 4,6`.
    #[arg(long = "ip", value_delimiter = ',', default_value = "4")]
    pub ip_versions: Vec<u8>,
    /// Every TCP comparison (and every --capture series) this many times,
    /// interleaved (bridge, shunt, bridge, shunt, ...); the report gives
    /// the median and the range.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// The generator's core; the switch's workers get the other cores.
    #[arg(long, default_value_t = 0)]
    pub gen_core: usize,
    /// The switch's cores, instead of every core but the generator's (a
    /// list: `--switch-cores 0,1`). For TCP runs, where iperf3 and the
    /// kernel's own work are spread over every core, the switch's workers
    /// can share them too; the generator's core may be one of them.
    #[arg(long, value_delimiter = ',')]
    pub switch_cores: Vec<usize>,
    /// With `--tcp --vxlan`: the second switch's cores (the sink's side);
    /// default: the same as the first's. Two shunts over a tunnel stand
    /// for two machines; on a small one each can have a core of its own
    /// (`--switch-cores 0 --peer-switch-cores 1`).
    #[arg(long, value_delimiter = ',')]
    pub peer_switch_cores: Vec<usize>,
    /// With `--tcp`: pin the iperf3 server to this core (default: not
    /// pinned; the client is on the generator's core). `--server-core 0`
    /// keeps both hosts on core 0 and leaves the other cores to the
    /// switch, on every path alike: the kernel's paths then forward on
    /// the hosts' core, where their work runs.
    #[arg(long)]
    pub server_core: Option<usize>,
    /// Bridged frames go through br_netfilter's hooks on the kernel
    /// bridges of the bench (`net.bridge.bridge-nf-call-iptables`,
    /// `-ip6tables`, `-arptables` = 1 in their namespaces, as on a host
    /// where Docker loaded br_netfilter). Default: off, the kernel bridge
    /// at its fastest. The bridges are in namespaces of the bench's own;
    /// the machine's setting is not touched.
    #[arg(long)]
    pub bridge_netfilter: bool,
    /// Run the switch under `nice -n N` (-20..=19): on a machine shared
    /// with other work, a negative N gives it the precedence the kernel's
    /// softirq (the bridge's work) has anyway.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub switch_nice: i32,
    /// How the switch's workers wait for frames (`[switch] poll`; default:
    /// the switch's own default). A list (`--poll interrupt,busy`) runs one
    /// switch per mode in this run, named `shunt-MODE`.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub poll: Vec<Poll>,
    /// How TAP frames move (`[switch] tap_io`; default: the switch's own).
    /// A list (`--tap-io syscall,uring`) runs one switch per value, named
    /// `shunt-VALUE` (and `bare-VALUE` with --bare), interleaved.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub tap_io: Vec<TapIo>,
    /// Trials with the switch's own capture running (`shunt capture ... -w
    /// /dev/null` on the switch's cores): `none` (the baseline), `one` (the
    /// generator's port), `all` (every port); a list, each value a trial
    /// per frame size and round (--rounds), in the order given.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub capture: Vec<CaptureMode>,
    /// The --capture trials offer this many frames/s (0: as fast as the
    /// generator can, a flood): below the switch's limit its CPU per frame
    /// is the capture's cost alone, not shared with a saturated core.
    #[arg(long, default_value_t = 0.0)]
    pub capture_rate: f64,
    /// Seconds of no traffic after each switch starts, over which its CPU
    /// use is measured (/proc/PID/stat); 0: not measured.
    #[arg(long, default_value_t = 0.0)]
    pub idle_cpu: f64,
    /// Also run a switch with a third port (a TAP into the sink's
    /// namespace, sent nothing) impaired as given on both directions:
    /// `delay=20ms,loss=1%` (the keys of `[[impair]]`, docs/impair.md).
    /// Its path is `shunt-impaired-other`; `shunt` then has the same third
    /// port unimpaired, and the ratio of the two is reported.
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub impair_other: Option<String>,
    /// Also run a switch whose sink port is limited to this rate on
    /// egress (`1gbit`, `--impair-rate "1gbit,limit=2000"` for more keys):
    /// path `shunt-rate`; a note gives the frame bytes (FCS not counted,
    /// as the rate counts them) forwarded per second against the rate.
    #[arg(long, value_name = "RATE[,KEY=VALUE...]")]
    pub impair_rate: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG chart: rate by frame size, latency distribution.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once SIGINT or SIGTERM arrived: loops stop, guards clean up.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Relaxed)
}

fn catch_signals() {
    shunt_switch::port::sys::on_interrupt(&INTERRUPTED);
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub load_1min: f64,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu,
        kernel,
        load_1min: load_1min(),
    }
}

/// The 1-minute load average (/proc/loadavg).
fn load_1min() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// One path's results at one frame size.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// "shunt", "bare", "linux-bridge", "linux-bridge-rps".
    pub path: String,
    /// As fast as the generator can offer.
    pub max: Trial,
    pub bits_per_s: f64,
    /// The path took (nearly) all the generator offered while the switch
    /// had CPU to spare (or, for the bridge, while the generator offered
    /// its ceiling): the generator, not the path, was the limit.
    pub generator_limited: bool,
    /// What limited the rate, in words.
    pub limit: String,
    pub rfc2544_fps: Option<f64>,
    pub latency: Option<Latency>,
    /// The switch's `[switch] poll` as it ran (its default included);
    /// None for the kernel's paths.
    pub poll: Option<String>,
    /// The switch's `[switch] tap_io` as it ran; None for the kernel's.
    pub tap_io: Option<String>,
    /// `--impair-other`, `--impair-rate`: the impairment of this path's
    /// switch, as given (`other: delay=20ms,loss=1%`); None: none.
    pub impair: Option<String>,
}

/// One switch the bench started: its modes as they ran, and its CPU use
/// with no traffic (--idle-cpu).
#[derive(Debug, Clone, Serialize)]
pub struct SwitchRun {
    pub path: String,
    pub poll: String,
    pub tap_io: String,
    /// Seconds of no traffic measured (None: --idle-cpu 0).
    pub idle_seconds: Option<f64>,
    /// The switch process's CPU over them, in cores (0.2: a fifth of one).
    pub idle_cpu: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    pub size: usize,
    /// The generator into the sink over a direct veth pair, no switch.
    pub generator_ceiling: Trial,
    pub paths: Vec<PathResult>,
    /// Forwarding-rate ratios, e.g. "shunt/linux-bridge".
    pub ratios: Vec<(String, f64)>,
}

pub use tcp::{Spread, SwitchCounters, Tcp, TcpRatio, TcpSummary};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub port_kind: PortKind,
    pub workers: usize,
    /// `--flows`: UDP flows the generator sent in turn.
    pub flows: usize,
    /// `--multiqueue`: TAPs with one queue per worker.
    pub multiqueue: bool,
    pub generator_core: usize,
    pub switch_cores: Vec<usize>,
    /// `--peer-switch-cores` (empty: the second switch of `--tcp --vxlan`
    /// ran on `switch_cores`).
    pub peer_switch_cores: Vec<usize>,
    /// `--server-core`: the iperf3 server's core (null: not pinned).
    pub server_core: Option<usize>,
    /// `--bridge-netfilter`: br_netfilter's hooks were on for the kernel
    /// bridges' frames.
    pub bridge_netfilter: bool,
    /// `--vs-ovs`: Open vSwitch's interface type (`tap`, `afxdp`,
    /// `system`); None without it.
    pub ovs_port_type: Option<String>,
    /// `--switch-nice`.
    pub switch_nice: i32,
    /// `--poll` when one mode was given; None: the switch's default, or
    /// several modes (`polls`).
    pub poll: Option<Poll>,
    /// `--poll`, every mode given.
    pub polls: Vec<Poll>,
    /// `--tap-io`, every value given.
    pub tap_io: Vec<TapIo>,
    /// Every switch started, in order, with its modes as they ran.
    pub switches: Vec<SwitchRun>,
    /// `--capture-rate`: the capture trials' offered rate (None: a flood).
    pub capture_rate: Option<f64>,
    /// `--capture`: every trial, in the order run.
    pub capture: Vec<capture::CaptureTrial>,
    /// Per size, path and capture mode: medians of the rounds.
    pub capture_summary: Vec<capture::CaptureSummary>,
    pub trial_seconds: f64,
    pub latency_fraction: f64,
    pub sizes: Vec<SizeResult>,
    /// Every iperf3 run, in the order run.
    pub tcp: Vec<Tcp>,
    /// iperf3 -t of each run (None: no TCP runs).
    pub tcp_seconds: Option<u64>,
    /// Per path, IP version and streams: the median and range of its runs.
    pub tcp_summary: Vec<TcpSummary>,
    /// shunt over the kernel at each IP version and streams.
    pub tcp_ratios: Vec<TcpRatio>,
    /// What each switch counted during its TCP runs (offloads, drops).
    pub tcp_switch_counters: Vec<SwitchCounters>,
    pub notes: Vec<String>,
}

/// The options' values, checked before anything is set up.
fn validate(args: &mut BenchArgs) -> Result<(), BenchError> {
    if let Some(&s) = args.sizes.iter().find(|&&s| !(64..=1518).contains(&s)) {
        return Err(BenchError::Usage(format!(
            "--sizes: {s} is not a frame size in 64..=1518"
        )));
    }
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        return Err(BenchError::Usage(
            "--duration: give seconds in (0, 3600]".into(),
        ));
    }
    if !(0.0..=1.0).contains(&args.latency_at) {
        return Err(BenchError::Usage(
            "--latency-at: give a fraction in [0, 1]".into(),
        ));
    }
    if args.workers == 0 || args.workers > 64 {
        return Err(BenchError::Usage("--workers: give 1..=64".into()));
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (flag, cores) in [
        ("--switch-cores", args.switch_cores.as_slice()),
        ("--peer-switch-cores", args.peer_switch_cores.as_slice()),
        ("--server-core", args.server_core.as_slice()),
    ] {
        if let Some(&c) = cores.iter().find(|&&c| c >= ncpu) {
            return Err(BenchError::Usage(format!(
                "{flag}: core {c} does not exist (this machine has cores 0..={})",
                ncpu - 1
            )));
        }
    }
    if args.server_core.is_some() && !(args.tcp || args.tcp_only) {
        return Err(BenchError::Usage(
            "--server-core pins the iperf3 server of the TCP runs: add --tcp or --tcp-only".into(),
        ));
    }
    if !args.peer_switch_cores.is_empty() && !((args.tcp || args.tcp_only) && args.vxlan) {
        return Err(BenchError::Usage(
            "--peer-switch-cores is for the second switch of `--tcp --vxlan`; without them there is one switch: use --switch-cores".into(),
        ));
    }
    if args.flows == 0 || args.flows > packet::TxRing::SLOTS {
        return Err(BenchError::Usage(format!(
            "--flows: give 1..={} (the generator's ring holds that many distinct frames)",
            packet::TxRing::SLOTS
        )));
    }
    if args.multiqueue && args.port_kind != PortKind::Tap {
        return Err(BenchError::Usage(
            "--multiqueue: multi-queue ports are TAPs; add --port-kind tap".into(),
        ));
    }
    if args.port_kind == PortKind::Afxdp && !AFXDP_READY {
        return Err(BenchError::Unavailable(
            "--port-kind afxdp: not available yet (the AF_XDP port is being integrated into shunt); use --port-kind tap".into(),
        ));
    }
    if let Some(&n) = args.streams.iter().find(|&&n| !(1..=128).contains(&n)) {
        return Err(BenchError::Usage(format!(
            "--streams: {n} is not a number of iperf3 streams in 1..=128"
        )));
    }
    if let Some(&v) = args.ip_versions.iter().find(|&&v| v != 4 && v != 6) {
        return Err(BenchError::Usage(format!(
            "--ip: {v} is not an IP version (4 or 6)"
        )));
    }
    if args.streams.is_empty() || args.ip_versions.is_empty() {
        return Err(BenchError::Usage(
            "--streams and --ip need at least one value".into(),
        ));
    }
    if !(-20..=19).contains(&args.switch_nice) {
        return Err(BenchError::Usage("--switch-nice: give -20..=19".into()));
    }
    if args.rounds == 0 || args.rounds > 100 {
        return Err(BenchError::Usage("--rounds: give 1..=100".into()));
    }
    if !args.tap_io.is_empty() && args.port_kind != PortKind::Tap {
        return Err(BenchError::Usage(
            "--tap-io: it sets how TAP frames move; add --port-kind tap".into(),
        ));
    }
    if !(args.capture_rate >= 0.0 && args.capture_rate <= 1e8) {
        return Err(BenchError::Usage(
            "--capture-rate: give frames/s in [0, 100000000] (0: a flood)".into(),
        ));
    }
    if !(args.idle_cpu >= 0.0 && args.idle_cpu <= 600.0) {
        return Err(BenchError::Usage(
            "--idle-cpu: give seconds in [0, 600]".into(),
        ));
    }
    for (flag, spec) in [
        ("--impair-other", &args.impair_other),
        ("--impair-rate", &args.impair_rate),
    ] {
        let Some(spec) = spec else { continue };
        if args.vxlan {
            return Err(BenchError::Usage(format!(
                "{flag}: not with --vxlan (the sink's port is the underlay there)"
            )));
        }
        impair_keys(flag, spec)?;
    }
    if args.tcp_only {
        args.tcp = true;
        args.sizes.clear();
    }
    if args.vs_ovs {
        if args.vxlan {
            return Err(BenchError::Usage(
                "--vs-ovs: Open vSwitch is compared as one switch between the two hosts; not with --vxlan (run the two separately)".into(),
            ));
        }
        ovs::available()?;
    }
    if !args.capture.is_empty() && args.sizes.is_empty() {
        return Err(BenchError::Usage(
            "--capture: the capture trials are frame-size trials; drop --tcp-only".into(),
        ));
    }
    dedup(&mut args.poll);
    dedup(&mut args.tap_io);
    dedup(&mut args.capture);
    dedup(&mut args.streams);
    dedup(&mut args.ip_versions);
    Ok(())
}

/// `--impair-other` or `--impair-rate` (`flag`) as `[[impair]]` keys in
/// TOML, checked as the switch reads them: `delay=20ms,loss=1%`, or for
/// `--impair-rate` a rate first (`1gbit,limit=2000`).
fn impair_keys(flag: &str, spec: &str) -> Result<String, BenchError> {
    let bad = |e: String| BenchError::Usage(format!("{flag} {spec:?}: {e}"));
    let mut s = shunt_switch::impair::Settings::default();
    let mut toml = String::new();
    for (i, kv) in spec.split(',').map(str::trim).enumerate() {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.trim().replace('-', "_"), v.trim()),
            None if i == 0 && flag == "--impair-rate" => ("rate".to_string(), kv),
            None => return Err(bad(format!("{kv:?}: write KEY=VALUE"))),
        };
        let number = |v: &str| v.parse::<u64>().map_err(|e| bad(format!("{k}: {e}")));
        let text = Some(v.to_string());
        match k.as_str() {
            "delay" => s.delay = text,
            "jitter" => s.jitter = text,
            "distribution" => s.distribution = text,
            "loss" => s.loss = text,
            "rate" => s.rate = text,
            "limit_bytes" => s.limit_bytes = text,
            "duplicate" => s.duplicate = text,
            "reorder" => s.reorder = text,
            "corrupt" => s.corrupt = text,
            "limit" => s.limit = Some(number(v)?),
            "seed" => s.seed = Some(number(v)?),
            _ => return Err(bad(format!("{k:?} is not a key of [[impair]]"))),
        }
        match k.as_str() {
            "limit" | "seed" => toml.push_str(&format!("{k} = {v}\n")),
            _ => toml.push_str(&format!("{k} = {v:?}\n")),
        }
    }
    let spec = s.spec().map_err(bad)?;
    if flag == "--impair-rate" && spec.rate_bps == 0 {
        return Err(bad("give a rate (`1gbit`)".into()));
    }
    Ok(toml)
}

/// The TOML a variant adds to the bench's topology for its impairment.
fn impair_extra(flag: &str, spec: &str) -> String {
    let keys = impair_keys(flag, spec).unwrap_or_default();
    match flag {
        "--impair-rate" => {
            format!("\n[[impair]]\nport = \"sink\"\ndirection = \"egress\"\n{keys}")
        }
        _ => format!("{}\n[[impair]]\nport = \"other\"\n{keys}", lab::OTHER_PORT),
    }
}

/// Keeps the first of each value, in order.
fn dedup<T: PartialEq + Copy>(v: &mut Vec<T>) {
    let mut seen = Vec::with_capacity(v.len());
    v.retain(|x| {
        let new = !seen.contains(x);
        if new {
            seen.push(*x);
        }
        new
    });
}

/// Runs the benchmark and prints the report.
pub fn run(mut args: BenchArgs) -> Result<(), BenchError> {
    validate(&mut args)?;
    catch_signals();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let gen_core = args.gen_core.min(ncpu - 1);
    let mut switch_cores: Vec<usize> = if args.switch_cores.is_empty() {
        (0..ncpu)
            .filter(|&c| c != gen_core)
            .take(args.workers)
            .collect()
    } else {
        args.switch_cores.clone()
    };
    if switch_cores.is_empty() {
        switch_cores.push(gen_core);
    }
    let report = measure(&args, gen_core, &switch_cores)?;
    if args.json {
        let s = serde_json::to_string_pretty(&report)
            .map_err(|e| BenchError::Traffic(format!("encoding the report: {e}")))?;
        println!("{s}");
    } else {
        print!("{}", text(&report));
    }
    if let Some(f) = &args.plot {
        std::fs::write(f, plot::svg(&report)).map_err(|source| BenchError::Write {
            path: f.clone(),
            source,
        })?;
        if !args.json {
            println!("chart: {f}");
        }
    }
    Ok(())
}

fn check() -> Result<(), BenchError> {
    if interrupted() {
        return Err(BenchError::Interrupted);
    }
    Ok(())
}

fn measure(
    args: &BenchArgs,
    gen_core: usize,
    switch_cores: &[usize],
) -> Result<Report, BenchError> {
    let dur = Duration::from_secs_f64(args.duration);
    let core = Some(gen_core);
    let q = args.quiet;
    let mut notes = Vec::new();
    let tcp_setup = args.tcp.then_some(lab::TcpSetup {
        ipv6: args.ip_versions.contains(&6),
    });
    let mut lab = lab::Lab::new(tcp_setup, args.bridge_netfilter)?;
    lab.switch_nice = args.switch_nice;
    lab.switch_poll = args.poll.first().copied();
    lab.switch_tap_io = args.tap_io.first().copied();
    lab.switch_multiqueue = args.multiqueue;
    lab.flows = args.flows;
    let mut sizes: Vec<SizeResult> = Vec::new();

    // The generator's own ceiling: no switch between it and the sink.
    let direct = lab.path("shb-dg", "shb-ds")?;
    for &size in &args.sizes {
        check()?;
        let label = format!("{size} B: generator ceiling (direct veth)");
        let t = traffic::trial(
            &direct,
            size,
            None,
            dur,
            core,
            None,
            &Progress {
                label: &label,
                quiet: q,
            },
        )?;
        sizes.push(SizeResult {
            size,
            generator_ceiling: t,
            paths: Vec::new(),
            ratios: Vec::new(),
        });
    }

    if args.vs_linux_bridge && !sizes.is_empty() {
        let br = lab.path("shb-bg", "shb-bs")?;
        traffic::announce_sink(&br)?;
        let rps_core = switch_cores.first().copied().filter(|&c| c != gen_core);
        for (name, rps) in [("linux-bridge", None), ("linux-bridge-rps", rps_core)] {
            if name == "linux-bridge-rps" && rps.is_none() {
                notes.push("linux-bridge-rps skipped: no core other than the generator's".into());
                continue;
            }
            lab.bridge_rps(rps)?;
            for sr in sizes.iter_mut() {
                check()?;
                sr.paths.push(run_path(args, &br, name, sr, core, None)?);
            }
        }
        lab.bridge_rps(None)?;
    }

    if args.vs_ovs && !sizes.is_empty() {
        check()?;
        if !q {
            eprint!("\r\x1b[Kstarting Open vSwitch");
        }
        let path = lab.start_ovs(args.port_kind, switch_cores, None)?;
        traffic::announce_sink(&path)?;
        notes.extend(lab.ovs_note(switch_cores));
        for sr in sizes.iter_mut() {
            check()?;
            let r = run_path(args, &path, "ovs", sr, core, lab.ovs_pid());
            alive(&mut lab)?;
            sr.paths.push(r?);
        }
        lab.stop_ovs();
    }

    let plan = tcp::TcpPlan {
        streams: args.streams.clone(),
        ips: args.ip_versions.clone(),
        rounds: args.rounds,
        secs: dur.as_secs().max(2),
        core,
        server_core: args.server_core,
        quiet: q,
    };
    let mut tcp_runs = Vec::new();
    let mut tcp_switch_counters = Vec::new();
    if args.vxlan && args.bare {
        notes.push(
            "--vxlan: no bare run over VXLAN (bare forwards raw frames, with no encapsulation)"
                .into(),
        );
    }
    if args.vxlan && !sizes.is_empty() {
        notes.push(
            "--vxlan: shunt's sink port is its VTEP underlay (VNI 1000, 192.0.2.1 -> 192.0.2.2); the kernel VTEP in shb-sink decapsulates; counted at vx0".into(),
        );
    }
    let mut switches = Vec::new();
    let mut capture_trials = Vec::new();
    let mut tcp_done = false;
    for v in variants(args) {
        let name = v.name.as_str();
        let tcp_here = args.tcp && !v.bare && !args.vxlan && !tcp_done;
        if sizes.is_empty() && !tcp_here {
            continue;
        }
        check()?;
        if !q {
            eprint!("\r\x1b[Kstarting the switch ({name})");
        }
        let opts = lab::SwitchOpts {
            kind: args.port_kind,
            workers: args.workers,
            bare: v.bare,
            tcp: tcp_setup.filter(|_| tcp_here),
            vxlan: args.vxlan,
        };
        lab.switch_poll = v.poll;
        lab.switch_tap_io = v.tap_io;
        lab.switch_extra = v.extra.clone();
        let path = lab.start_switch(&opts, switch_cores)?;
        traffic::announce_sink(&path)?;
        let (poll, tap_io) = lab.switch_modes();
        let idle = if args.idle_cpu > 0.0 {
            if !q {
                eprint!("\r\x1b[K{name}: {} s idle", args.idle_cpu);
            }
            idle_cpu(lab.switch_pid(), args.idle_cpu)
        } else {
            None
        };
        switches.push(SwitchRun {
            path: name.into(),
            poll: poll.clone(),
            tap_io: tap_io.clone(),
            idle_seconds: (args.idle_cpu > 0.0).then_some(args.idle_cpu),
            idle_cpu: idle,
        });
        for sr in sizes.iter_mut() {
            check()?;
            let r = run_path(args, &path, name, sr, core, lab.switch_pid());
            alive(&mut lab)?;
            let mut r = r?;
            r.poll = Some(poll.clone());
            r.tap_io = Some(tap_io.clone());
            r.impair = v.impair.clone();
            sr.paths.push(r);
        }
        if !v.bare && !args.capture.is_empty() {
            let sizes: Vec<usize> = sizes.iter().map(|s| s.size).collect();
            capture_series(args, &mut lab, &path, name, &sizes, core, switch_cores)
                .map(|t| capture_trials.extend(t))?;
        }
        if tcp_here {
            tcp_done = true;
            let mut paths = Vec::new();
            if args.vs_linux_bridge {
                paths.push(tcp_path("linux-bridge", &lab::BRIDGE_TCP, Vec::new()));
            }
            if args.vs_ovs {
                if !q {
                    eprint!("\r\x1b[Kstarting Open vSwitch");
                }
                lab.start_ovs(args.port_kind, switch_cores, tcp_setup)?;
                let note = lab.ovs_note(switch_cores);
                if sizes.is_empty() {
                    notes.extend(note);
                }
                let pids = lab.ovs_pid().into_iter().collect();
                paths.push(tcp_path("ovs", &ovs::OVS_TCP, pids));
            }
            paths.push(tcp_path("shunt", &lab::SHUNT_TCP, lab.switch_pids()));
            let before = tcp::counters(lab::SWITCH);
            tcp_runs.extend(tcp::compare(&paths, &plan, &mut || alive(&mut lab))?);
            let after = tcp::counters(lab::SWITCH);
            tcp_switch_counters.push(tcp::counters_delta(lab::SWITCH, &before, &after));
            lab.stop_ovs();
            if name != "shunt" {
                notes.push(format!(
                    "TCP ran through the first switch only ({name}), named \"shunt\" there"
                ));
            }
        }
        lab.stop_switch();
    }
    lab.switch_extra.clear();
    capture::costs(&mut capture_trials);
    let capture_summary = capture::summarize(&capture_trials);
    if !capture_trials.is_empty() {
        notes.push("--capture: `shunt capture [gen] --seconds S -w /dev/null` pinned to the switch's cores; cost per captured packet = (the switch's CPU per forwarded frame with the capture - without, same round) x frames forwarded / packets captured; the capture command's own CPU is reader_cpu_seconds".into());
    }
    if args.tcp && args.vxlan {
        check()?;
        let setup = tcp_setup.unwrap_or(lab::TcpSetup { ipv6: false });
        let mut paths = Vec::new();
        if args.vs_linux_bridge {
            lab.kernel_vxlan(setup)?;
            paths.push(tcp_path("linux-vxlan", &lab::KVX_TCP, Vec::new()));
        }
        if !q {
            eprint!("\r\x1b[Kstarting two switches joined by VXLAN");
        }
        lab.switch_poll = args.poll.first().copied();
        lab.switch_tap_io = args.tap_io.first().copied();
        let peer_cores = if args.peer_switch_cores.is_empty() {
            switch_cores
        } else {
            &args.peer_switch_cores[..]
        };
        lab.start_vxlan_pair(
            args.port_kind,
            args.workers,
            [switch_cores, peer_cores],
            setup,
        )?;
        paths.push(tcp_path(
            "shunt-vxlan",
            &lab::SHUNT_VXLAN_TCP,
            lab.switch_pids(),
        ));
        let names = [lab::SWITCH, lab::PEER_SWITCH];
        let before = names.map(tcp::counters);
        tcp_runs.extend(tcp::compare(&paths, &plan, &mut || alive(&mut lab))?);
        for (name, before) in names.iter().zip(&before) {
            let after = tcp::counters(name);
            tcp_switch_counters.push(tcp::counters_delta(name, before, &after));
        }
        lab.stop_switch();
        notes.push(format!(
            "--tcp --vxlan: shunt-vxlan is two switches (VNI 2000, inner MTU 1450), the first on core(s) {switch_cores:?}, the second on {peer_cores:?}, their underlay TAPs in one kernel bridge; linux-vxlan is a kernel vxlan device in each namespace over the bridge path (inner MTU 1450)"
        ));
    }
    traffic::clear_progress(q);

    for sr in sizes.iter_mut() {
        sr.ratios = ratios(&sr.paths);
    }
    if args.impair_other.is_some() {
        notes.push(format!(
            "--impair-other: every shunt path has a third port `other` (a TAP into {}, sent nothing); in the -impaired-other paths it is impaired both ways",
            lab::SINK_NS
        ));
    }
    notes.extend(rate_notes(args, &sizes));
    if sizes
        .iter()
        .flat_map(|s| &s.paths)
        .any(|p| p.generator_limited && p.max.switch_cpu.is_some())
    {
        notes.push("where the generator was the limit, the switch's rate is a lower bound: it took all that was offered with CPU to spare".into());
    }
    if args.tcp && args.port_kind == PortKind::Afxdp {
        notes.push("--port-kind afxdp: the namespaces' veths have transmit checksum offload (and so TSO) off: AF_XDP carries no partial checksum".into());
    }
    let tcp_summary = tcp::summarize(&tcp_runs);
    let tcp_ratios = tcp::ratios(&tcp_runs, &tcp_summary);
    Ok(Report {
        machine: machine(),
        port_kind: args.port_kind,
        workers: args.workers,
        flows: args.flows,
        multiqueue: args.multiqueue,
        generator_core: gen_core,
        switch_cores: switch_cores.to_vec(),
        peer_switch_cores: args.peer_switch_cores.clone(),
        server_core: args.server_core,
        bridge_netfilter: args.bridge_netfilter,
        ovs_port_type: args
            .vs_ovs
            .then(|| ovs::port_type(args.port_kind).to_string()),
        switch_nice: args.switch_nice,
        poll: (args.poll.len() == 1).then(|| args.poll[0]),
        polls: args.poll.clone(),
        tap_io: args.tap_io.clone(),
        switches,
        capture_rate: (args.capture_rate > 0.0).then_some(args.capture_rate),
        capture: capture_trials,
        capture_summary,
        trial_seconds: args.duration,
        latency_fraction: args.latency_at,
        sizes,
        tcp_seconds: args.tcp.then_some(plan.secs),
        tcp: tcp_runs,
        tcp_summary,
        tcp_ratios,
        tcp_switch_counters,
        notes,
    })
}

/// `--impair-rate`: what each `-rate` path forwarded, in frame bytes per
/// second (the switch counts a frame's bytes, not its FCS), against the
/// rate.
fn rate_notes(args: &BenchArgs, sizes: &[SizeResult]) -> Vec<String> {
    let Some(spec) = &args.impair_rate else {
        return Vec::new();
    };
    let rate = spec.split(',').next().unwrap_or_default().trim();
    let rate = rate.strip_prefix("rate=").unwrap_or(rate);
    let Ok(bps) = shunt_switch::impair::values::rate_bps(rate) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sr in sizes {
        let frame_bps = |p: &PathResult| p.max.fps * (sr.size - 4) as f64 * 8.0;
        for p in sr.paths.iter().filter(|p| p.path.ends_with("-rate")) {
            // The same switch without the rate: did it carry more than the
            // rate? If not, the rate was not what limited the path.
            let unlimited = sr
                .paths
                .iter()
                .find(|u| u.path == p.path.trim_end_matches("-rate"))
                .map(frame_bps);
            let beside = match unlimited {
                Some(u) if u < 1.05 * bps as f64 => format!(
                    "; unlimited, the same switch carried {:.1} Mbit/s: the rate was not the limit",
                    u / 1e6
                ),
                _ => String::new(),
            };
            out.push(format!(
                "{} B: {} forwarded {:.1} Mbit/s of frame bytes ({} B frames, no FCS) through rate {rate}: {:.3} of it{beside}",
                sr.size,
                p.path,
                frame_bps(p) / 1e6,
                sr.size - 4,
                frame_bps(p) / bps as f64
            ));
        }
    }
    out
}

/// One switch of the run: shunt or bare, with a poll mode and a TAP I/O,
/// and with `--impair-other` / `--impair-rate` its impairment.
#[derive(Debug, Clone, PartialEq)]
struct Variant {
    name: String,
    bare: bool,
    poll: Option<Poll>,
    tap_io: Option<TapIo>,
    /// TOML added to the topology (impair_extra).
    extra: String,
    /// The impairment in words (PathResult::impair).
    impair: Option<String>,
}

/// The switches to run, in order: shunt in every mode, then bare in every
/// mode (with --bare). A mode named in the path only when several were
/// given (`shunt-busy`, `bare-uring`), so one `--poll busy` keeps "shunt".
fn variants(args: &BenchArgs) -> Vec<Variant> {
    let bares: &[bool] = if args.bare && !args.vxlan {
        &[false, true]
    } else {
        &[false]
    };
    let polls: Vec<Option<Poll>> = match args.poll.as_slice() {
        [] => vec![None],
        p => p.iter().copied().map(Some).collect(),
    };
    let taps: Vec<Option<TapIo>> = match args.tap_io.as_slice() {
        [] => vec![None],
        t => t.iter().copied().map(Some).collect(),
    };
    let mut out = Vec::new();
    for &bare in bares {
        for &poll in &polls {
            for &tap_io in &taps {
                let mut name = String::from(if bare { "bare" } else { "shunt" });
                if let Some(p) = poll.filter(|_| polls.len() > 1) {
                    name.push('-');
                    name.push_str(p.as_str());
                }
                if let Some(t) = tap_io.filter(|_| taps.len() > 1) {
                    name.push('-');
                    name.push_str(t.as_str());
                }
                let plain = Variant {
                    name,
                    bare,
                    poll,
                    tap_io,
                    extra: String::new(),
                    impair: None,
                };
                out.extend(impaired_variants(args, plain));
            }
        }
    }
    out
}

/// A shunt variant and, with `--impair-other` / `--impair-rate`, its
/// impaired twins after it (`-impaired-other`, `-rate`); bare as it is.
fn impaired_variants(args: &BenchArgs, v: Variant) -> Vec<Variant> {
    if v.bare {
        return vec![v];
    }
    let mut out = Vec::new();
    let mut base = v.clone();
    if let Some(spec) = &args.impair_other {
        // The same third port, unimpaired: the two differ in the impairment alone.
        base.extra = lab::OTHER_PORT.to_string();
        out.push(base.clone());
        out.push(Variant {
            name: format!("{}-impaired-other", v.name),
            extra: impair_extra("--impair-other", spec),
            impair: Some(format!("other: {spec}")),
            ..v.clone()
        });
    } else {
        out.push(base.clone());
    }
    if let Some(spec) = &args.impair_rate {
        out.push(Variant {
            name: format!("{}-rate", v.name),
            extra: base.extra.clone() + &impair_extra("--impair-rate", spec),
            impair: Some(format!("sink egress: {spec}")),
            ..v
        });
    }
    out
}

/// Forwarding-rate ratios of one size: every switch path over each bridge,
/// shunt over bare of the same modes, io_uring over system calls.
fn ratios(paths: &[PathResult]) -> Vec<(String, f64)> {
    let fps = |n: &str| paths.iter().find(|p| p.path == n).map(|p| p.max.fps);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for p in paths
        .iter()
        .filter(|p| p.path.starts_with("shunt") || p.path == "ovs")
    {
        for b in ["linux-bridge", "linux-bridge-rps"] {
            pairs.push((p.path.clone(), b.into()));
        }
        if p.path != "ovs" {
            pairs.push((p.path.clone(), "ovs".into()));
            pairs.push((p.path.clone(), p.path.replacen("shunt", "bare", 1)));
        }
    }
    for p in paths.iter().filter(|p| p.path.ends_with("-impaired-other")) {
        pairs.push((p.path.clone(), p.path.replace("-impaired-other", "")));
    }
    for p in paths.iter().filter(|p| p.path.ends_with("-uring")) {
        pairs.push((p.path.clone(), p.path.replace("-uring", "-syscall")));
    }
    pairs
        .into_iter()
        .filter_map(|(a, b)| {
            let (x, y) = (fps(&a)?, fps(&b)?);
            (y > 0.0).then(|| (format!("{a}/{b}"), x / y))
        })
        .collect()
}

/// CPU of the switch process over `secs` of no traffic, in cores.
fn idle_cpu(pid: Option<u32>, secs: f64) -> Option<f64> {
    let pid = pid?;
    // Let the announcement's frames and start-up work settle.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let c0 = traffic::cpu_seconds(pid)?;
    while t0.elapsed().as_secs_f64() < secs && !interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let c1 = traffic::cpu_seconds(pid)?;
    Some((c1 - c0) / t0.elapsed().as_secs_f64())
}

/// `--capture`: per size and round, one trial per capture mode, with the
/// switch's own capture running through each (none: no capture).
#[allow(clippy::too_many_arguments)]
fn capture_series(
    args: &BenchArgs,
    lab: &mut lab::Lab,
    path: &lab::Path,
    name: &str,
    sizes: &[usize],
    core: Option<usize>,
    switch_cores: &[usize],
) -> Result<Vec<capture::CaptureTrial>, BenchError> {
    let dur = Duration::from_secs_f64(args.duration);
    let mut out = Vec::new();
    for &size in sizes {
        for round in 1..=args.rounds {
            for &mode in &args.capture {
                check()?;
                let label = format!("{size} B: {name}, capture {}, round {round}", mode.as_str());
                // The capture outlasts the trial: it ends by itself
                // after the sending time and the drain.
                let running = capture::start(lab::SWITCH, mode, switch_cores, args.duration + 1.0)?;
                let rate = (args.capture_rate > 0.0).then_some(args.capture_rate);
                let max = traffic::trial(
                    path,
                    size,
                    rate,
                    dur,
                    core,
                    lab.switch_pid(),
                    &Progress {
                        label: &label,
                        quiet: args.quiet,
                    },
                )?;
                let count = running.map(|r| r.finish()).transpose()?;
                alive(lab)?;
                out.push(capture::CaptureTrial {
                    size,
                    path: name.into(),
                    mode,
                    round,
                    switch_ns_per_frame: capture::ns_per_frame(&max),
                    max,
                    count,
                    ns_per_captured: None,
                    ns_per_record: None,
                    load_1min: load_1min(),
                });
            }
        }
    }
    Ok(out)
}

fn tcp_path(name: &'static str, a: &lab::TcpAddrs, pids: Vec<u32>) -> tcp::TcpPath {
    tcp::TcpPath {
        name,
        v4: a.sink_v4,
        v6: a.sink_v6,
        pids,
    }
}

fn alive(lab: &mut lab::Lab) -> Result<(), BenchError> {
    if let Err(log) = lab.ovs_alive() {
        return Err(BenchError::Switch(format!(
            "Open vSwitch (ovs-vswitchd or ovsdb-server) stopped during the run:\n{log}"
        )));
    }
    if lab.ovs_pid().is_some() && lab.switch_pid().is_none() {
        return Ok(());
    }
    if lab.switch_alive() {
        Ok(())
    } else {
        Err(BenchError::Switch(format!(
            "the switch stopped during the run:\n{}",
            lab.switch_log()
        )))
    }
}

fn run_path(
    args: &BenchArgs,
    path: &lab::Path,
    name: &str,
    sr: &SizeResult,
    core: Option<usize>,
    switch_pid: Option<u32>,
) -> Result<PathResult, BenchError> {
    let q = args.quiet;
    let (size, ceiling) = (sr.size, sr.generator_ceiling.offered_fps);
    let dur = Duration::from_secs_f64(args.duration);
    let label = format!("{size} B: {name}");
    let max = traffic::trial(
        path,
        size,
        None,
        dur,
        core,
        switch_pid,
        &Progress {
            label: &label,
            quiet: q,
        },
    )?;
    let took_all = max.loss_ratio < 0.01;
    let limit = match max.switch_cpu {
        // With AF_XDP on veth the XDP receive (the copy into the UMEM) runs
        // on the generator's core: when everything got through, that core
        // was the limit.
        Some(_) if args.port_kind == PortKind::Afxdp && took_all => {
            "the generator's core, which also runs the XDP receive into the switch".into()
        }
        Some(c) if c >= 0.9 => format!("the switch (its core {:.0}% busy)", c * 100.0),
        // The switch process is not busy, its core is: the kernel's work
        // for the switch's ports (in softirq, charged to no process).
        Some(c) if max.switch_side_busy.is_some_and(|b| b >= 0.9) => format!(
            "the switch's core ({:.0}% busy: {:.0}% the switch, the rest the kernel's packet I/O for its ports)",
            max.switch_side_busy.unwrap_or(0.0) * 100.0,
            c * 100.0
        ),
        Some(c) if took_all => format!("the generator (switch core {:.0}% busy)", c * 100.0),
        Some(c) => format!("the switch's ports (switch core {:.0}% busy)", c * 100.0),
        None if !took_all => "the bridge (frames lost)".into(),
        None if max.offered_fps >= 0.9 * ceiling => "the generator".into(),
        None => "the generator's core, which also does the bridge's work".into(),
    };
    let generator_limited = limit.starts_with("the generator");
    let rfc2544_fps = if args.rfc2544 {
        if max.loss == 0 {
            Some(max.fps)
        } else {
            Some(
                traffic::rfc2544(
                    path,
                    size,
                    max.offered_fps,
                    dur,
                    core,
                    switch_pid,
                    &Progress {
                        label: &label,
                        quiet: q,
                    },
                )?
                .0,
            )
        }
    } else {
        None
    };
    let latency = if args.latency_at > 0.0 && max.fps > 0.0 {
        let rate = args.latency_at * max.fps;
        let label = format!("{size} B: {name} latency");
        Some(traffic::latency(
            path,
            size,
            rate,
            dur,
            core,
            &Progress {
                label: &label,
                quiet: q,
            },
        )?)
    } else {
        None
    };
    if interrupted() {
        return Err(BenchError::Interrupted);
    }
    Ok(PathResult {
        path: name.into(),
        bits_per_s: max.fps * size as f64 * 8.0,
        max,
        generator_limited,
        limit,
        rfc2544_fps,
        latency,
        poll: None,
        tap_io: None,
        impair: None,
    })
}

fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let m = &r.machine;
    let _ = writeln!(
        o,
        "shunt bench: {} ports, {} worker(s) on core(s) {:?}, generator on core {}, {} s per trial",
        r.port_kind.as_str(),
        r.workers,
        r.switch_cores,
        r.generator_core,
        r.trial_seconds
    );
    if r.switch_nice != 0 {
        let _ = writeln!(o, "the switch runs at nice {}", r.switch_nice);
    }
    if let Some(c) = r.server_core {
        let _ = writeln!(o, "the iperf3 server runs on core {c}");
    }
    if r.bridge_netfilter {
        let _ = writeln!(
            o,
            "the kernel bridges' frames go through br_netfilter's hooks"
        );
    }
    if let Some(p) = r.poll {
        let _ = writeln!(o, "the switch's workers poll: {}", p.as_str());
    }
    if r.flows > 1 || r.multiqueue {
        let _ = writeln!(
            o,
            "{} flow(s) (UDP source ports 49184 and up){}",
            r.flows,
            if r.multiqueue {
                ", multi-queue TAPs (one queue per worker)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "machine: {} cores, {}, kernel {}, load average {:.2} at the end",
        m.nproc, m.cpu, m.kernel, m.load_1min
    );
    for w in &r.switches {
        let idle = match (w.idle_cpu, w.idle_seconds) {
            (Some(c), Some(s)) => format!(", idle CPU {:.1}% of a core over {s} s", c * 100.0),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "switch {}: poll = {}, tap_io = {}{idle}",
            w.path, w.poll, w.tap_io
        );
    }
    for s in &r.sizes {
        let _ = writeln!(o, "\n{}-byte frames", s.size);
        let _ = writeln!(
            o,
            "  {:<18} {:>12} {:>12} {:>10} {:>8}  notes",
            "path", "offered", "forwarded", "Mbit/s", "loss"
        );
        let c = &s.generator_ceiling;
        let _ = writeln!(
            o,
            "  {:<18} {:>12} {:>12} {:>10.1} {:>7.2}%  direct veth, no switch",
            "generator ceiling",
            fmt_rate(c.offered_fps),
            fmt_rate(c.fps),
            c.fps * s.size as f64 * 8.0 / 1e6,
            c.loss_ratio * 100.0
        );
        for p in &s.paths {
            let mut notes = Vec::new();
            notes.push(format!("limit: {}", p.limit));
            if let Some(t) = p.rfc2544_fps {
                notes.push(format!("rfc2544 zero-loss {}", fmt_rate(t)));
            }
            let _ = writeln!(
                o,
                "  {:<18} {:>12} {:>12} {:>10.1} {:>7.2}%  {}",
                p.path,
                fmt_rate(p.max.offered_fps),
                fmt_rate(p.max.fps),
                p.bits_per_s / 1e6,
                p.max.loss_ratio * 100.0,
                notes.join(", ")
            );
        }
        let lat: Vec<_> = s
            .paths
            .iter()
            .filter_map(|p| p.latency.as_ref().map(|l| (p, l)))
            .collect();
        if !lat.is_empty() {
            let _ = writeln!(
                o,
                "  latency (µs) at {:.0}% of each path's forwarding rate:",
                r.latency_fraction * 100.0
            );
            let _ = writeln!(
                o,
                "  {:<18} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
                "path", "rate", "p50", "p90", "p99", "p99.9", "max", "lost"
            );
            for (p, l) in lat {
                let _ = writeln!(
                    o,
                    "  {:<18} {:>11} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>8}",
                    p.path,
                    fmt_rate(l.rate_fps),
                    l.p50_us,
                    l.p90_us,
                    l.p99_us,
                    l.p999_us,
                    l.max_us,
                    l.lost
                );
            }
        }
        for (name, v) in &s.ratios {
            let _ = writeln!(o, "  {name}: {v:.2}x");
        }
    }
    if !r.tcp_summary.is_empty() {
        tcp::text(
            &mut o,
            r.tcp_seconds.unwrap_or(0),
            &r.tcp_summary,
            &r.tcp_ratios,
            &r.tcp_switch_counters,
        );
    }
    capture_text(&mut o, r);
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

/// The `--capture` series: per size, path and mode, the median rate, what
/// was captured and lost, and the cost per captured packet.
fn capture_text(o: &mut String, r: &Report) {
    use std::fmt::Write;
    if r.capture_summary.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\ncapture while {} (median of {} round(s) [min-max]; cost: the switch's extra CPU per captured packet)",
        r.capture_rate
            .map(|f| format!("offering {}", fmt_rate(f)))
            .unwrap_or_else(|| "flooding".into()),
        r.capture_summary.iter().map(|s| s.rounds).max().unwrap_or(0)
    );
    let _ = writeln!(
        o,
        "  {:>5} {:<14} {:<5} {:>12} {:>23} {:>7} {:>11} {:>11} {:>18}",
        "size",
        "path",
        "mode",
        "forwarded",
        "[min-max]",
        "vs none",
        "captured",
        "not capt.",
        "ns/captured"
    );
    for s in &r.capture_summary {
        let (fps, range) = match s.fps {
            Some(f) => (
                fmt_rate(f.median),
                format!("[{}-{}]", fmt_rate(f.min), fmt_rate(f.max)),
            ),
            None => ("n/a".into(), String::new()),
        };
        let vs = s
            .fps_vs_none
            .map(|v| format!("{v:.3}"))
            .unwrap_or_else(|| "-".into());
        let cost = s
            .ns_per_captured
            .map(|c| format!("{:.0} [{:.0}-{:.0}]", c.median, c.min, c.max))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "  {:>5} {:<14} {:<5} {:>12} {:>23} {:>7} {:>11} {:>11} {:>18}",
            s.size,
            s.path,
            s.mode.as_str(),
            fps,
            range,
            vs,
            s.captured,
            s.lost,
            cost
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let trial = Trial {
            sent: 200_000,
            received: 190_000,
            seconds: 2.0,
            offered_fps: 100_000.0,
            fps: 95_000.0,
            loss: 10_000,
            loss_ratio: 0.05,
            switch_cpu: Some(0.95),
            switch_side_busy: Some(1.0),
        };
        let latency = Latency {
            rate_fps: 47_500.0,
            samples: 95_000,
            lost: 0,
            p50_us: 10.0,
            p90_us: 20.0,
            p99_us: 30.0,
            p999_us: 40.0,
            max_us: 50.0,
            cdf: vec![(10.0, 0.5), (50.0, 1.0)],
        };
        let tcp = |path: &str, gbit: f64, cpu: Option<f64>| Tcp {
            path: path.into(),
            gbit_per_s: gbit,
            ip: 4,
            streams: 1,
            round: 1,
            retransmits: 3,
            seconds: 5.3,
            switch_cpu: cpu,
            switch_cpu_per_gbit: cpu.map(|c| c / gbit),
            softirq_cpu: Some(0.4),
            softirq_cpu_per_gbit: Some(0.4 / gbit),
            busy_cpu: Some(1.9),
            load_1min: 2.5,
            link_drops: [("shb-gen/shb-xg.tx_dropped".to_string(), 7)].into(),
            link_drops_total: 7,
        };
        let runs = vec![tcp("linux-bridge", 2.0, None), tcp("shunt", 1.5, Some(0.9))];
        let capture_trials = vec![
            capture::CaptureTrial {
                size: 64,
                path: "shunt".into(),
                mode: CaptureMode::None,
                round: 1,
                max: trial,
                count: None,
                switch_ns_per_frame: Some(10_000.0),
                ns_per_captured: None,
                ns_per_record: None,
                load_1min: 0.5,
            },
            capture::CaptureTrial {
                size: 64,
                path: "shunt".into(),
                mode: CaptureMode::All,
                round: 1,
                max: Trial {
                    received: 95_000,
                    fps: 47_500.0,
                    ..trial
                },
                count: Some(capture::CaptureCount {
                    captured: 1_000,
                    lost: 189_000,
                    reader_cpu_seconds: Some(0.25),
                }),
                switch_ns_per_frame: Some(20_000.0),
                ns_per_captured: Some(950_000.0),
                ns_per_record: Some(5_000.0),
                load_1min: 0.5,
            },
        ];
        let sums = tcp::summarize(&runs);
        let ratios = tcp::ratios(&runs, &sums);
        Report {
            machine: Machine {
                nproc: 2,
                cpu: "cpu".into(),
                kernel: "6.1".into(),
                load_1min: 0.5,
            },
            port_kind: PortKind::Tap,
            workers: 1,
            flows: 1,
            multiqueue: false,
            generator_core: 0,
            switch_cores: vec![1],
            peer_switch_cores: Vec::new(),
            server_core: None,
            bridge_netfilter: false,
            ovs_port_type: None,
            switch_nice: 0,
            poll: Some(Poll::Busy),
            polls: vec![Poll::Busy],
            tap_io: Vec::new(),
            switches: vec![SwitchRun {
                path: "shunt".into(),
                poll: "busy".into(),
                tap_io: "syscall".into(),
                idle_seconds: Some(5.0),
                idle_cpu: Some(0.995),
            }],
            capture_rate: None,
            capture: capture_trials.clone(),
            capture_summary: capture::summarize(&capture_trials),
            trial_seconds: 2.0,
            latency_fraction: 0.5,
            sizes: vec![SizeResult {
                size: 64,
                generator_ceiling: Trial {
                    switch_cpu: None,
                    switch_side_busy: None,
                    ..trial
                },
                paths: vec![PathResult {
                    path: "shunt".into(),
                    max: trial,
                    bits_per_s: 48_640_000.0,
                    generator_limited: false,
                    limit: "the switch (its core 95% busy)".into(),
                    rfc2544_fps: Some(90_000.0),
                    latency: Some(latency),
                    poll: Some("busy".into()),
                    tap_io: Some("syscall".into()),
                    impair: None,
                }],
                ratios: vec![("shunt/bare".into(), 0.9)],
            }],
            tcp: runs.clone(),
            tcp_seconds: Some(5),
            tcp_summary: sums,
            tcp_ratios: ratios,
            tcp_switch_counters: vec![SwitchCounters {
                switch: "shb".into(),
                counters: [("gen.rx_gso".to_string(), 9)].into(),
            }],
            notes: vec!["a note".into()],
        }
    }

    fn fields(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let here = format!("{at}.{k}");
                    out.push(here.clone());
                    fields(x, &here, out);
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    fields(x, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }

    /// `shunt bench --json` keeps its fields (../shared/TOPOLOGY.md: --json
    /// output stays stable; scripts read these).
    #[test]
    fn json_fields() {
        let v = serde_json::to_value(report()).expect("the report serializes");
        let mut got = Vec::new();
        fields(&v, "", &mut got);
        got.sort();
        got.dedup();
        let want = [
            ".bridge_netfilter",
            ".capture",
            ".capture[].count",
            ".capture[].count.captured",
            ".capture[].count.lost",
            ".capture[].count.reader_cpu_seconds",
            ".capture[].load_1min",
            ".capture[].max",
            ".capture[].max.fps",
            ".capture[].max.loss",
            ".capture[].max.loss_ratio",
            ".capture[].max.offered_fps",
            ".capture[].max.received",
            ".capture[].max.seconds",
            ".capture[].max.sent",
            ".capture[].max.switch_cpu",
            ".capture[].max.switch_side_busy",
            ".capture[].mode",
            ".capture[].ns_per_captured",
            ".capture[].ns_per_record",
            ".capture[].path",
            ".capture[].round",
            ".capture[].size",
            ".capture[].switch_ns_per_frame",
            ".capture_rate",
            ".capture_summary",
            ".capture_summary[].captured",
            ".capture_summary[].fps",
            ".capture_summary[].fps.max",
            ".capture_summary[].fps.median",
            ".capture_summary[].fps.min",
            ".capture_summary[].fps_vs_none",
            ".capture_summary[].lost",
            ".capture_summary[].mode",
            ".capture_summary[].ns_per_captured",
            ".capture_summary[].ns_per_captured.max",
            ".capture_summary[].ns_per_captured.median",
            ".capture_summary[].ns_per_captured.min",
            ".capture_summary[].path",
            ".capture_summary[].rounds",
            ".capture_summary[].size",
            ".flows",
            ".generator_core",
            ".latency_fraction",
            ".machine",
            ".machine.cpu",
            ".machine.kernel",
            ".machine.load_1min",
            ".machine.nproc",
            ".multiqueue",
            ".notes",
            ".ovs_port_type",
            ".peer_switch_cores",
            ".poll",
            ".polls",
            ".port_kind",
            ".server_core",
            ".sizes",
            ".sizes[].generator_ceiling",
            ".sizes[].generator_ceiling.fps",
            ".sizes[].generator_ceiling.loss",
            ".sizes[].generator_ceiling.loss_ratio",
            ".sizes[].generator_ceiling.offered_fps",
            ".sizes[].generator_ceiling.received",
            ".sizes[].generator_ceiling.seconds",
            ".sizes[].generator_ceiling.sent",
            ".sizes[].generator_ceiling.switch_cpu",
            ".sizes[].generator_ceiling.switch_side_busy",
            ".sizes[].paths",
            ".sizes[].paths[].bits_per_s",
            ".sizes[].paths[].generator_limited",
            ".sizes[].paths[].impair",
            ".sizes[].paths[].latency",
            ".sizes[].paths[].latency.lost",
            ".sizes[].paths[].latency.max_us",
            ".sizes[].paths[].latency.p50_us",
            ".sizes[].paths[].latency.p90_us",
            ".sizes[].paths[].latency.p999_us",
            ".sizes[].paths[].latency.p99_us",
            ".sizes[].paths[].latency.rate_fps",
            ".sizes[].paths[].latency.samples",
            ".sizes[].paths[].limit",
            ".sizes[].paths[].max",
            ".sizes[].paths[].max.fps",
            ".sizes[].paths[].max.loss",
            ".sizes[].paths[].max.loss_ratio",
            ".sizes[].paths[].max.offered_fps",
            ".sizes[].paths[].max.received",
            ".sizes[].paths[].max.seconds",
            ".sizes[].paths[].max.sent",
            ".sizes[].paths[].max.switch_cpu",
            ".sizes[].paths[].max.switch_side_busy",
            ".sizes[].paths[].path",
            ".sizes[].paths[].poll",
            ".sizes[].paths[].rfc2544_fps",
            ".sizes[].paths[].tap_io",
            ".sizes[].ratios",
            ".sizes[].size",
            ".switch_cores",
            ".switch_nice",
            ".switches",
            ".switches[].idle_cpu",
            ".switches[].idle_seconds",
            ".switches[].path",
            ".switches[].poll",
            ".switches[].tap_io",
            ".tap_io",
            ".tcp",
            ".tcp[].busy_cpu",
            ".tcp[].gbit_per_s",
            ".tcp[].ip",
            ".tcp[].link_drops",
            ".tcp[].link_drops.shb-gen/shb-xg.tx_dropped",
            ".tcp[].link_drops_total",
            ".tcp[].load_1min",
            ".tcp[].path",
            ".tcp[].retransmits",
            ".tcp[].round",
            ".tcp[].seconds",
            ".tcp[].softirq_cpu",
            ".tcp[].softirq_cpu_per_gbit",
            ".tcp[].streams",
            ".tcp[].switch_cpu",
            ".tcp[].switch_cpu_per_gbit",
            ".tcp_ratios",
            ".tcp_ratios[].ip",
            ".tcp_ratios[].of_medians",
            ".tcp_ratios[].paired",
            ".tcp_ratios[].paired.max",
            ".tcp_ratios[].paired.median",
            ".tcp_ratios[].paired.min",
            ".tcp_ratios[].ratio",
            ".tcp_ratios[].streams",
            ".tcp_seconds",
            ".tcp_summary",
            ".tcp_summary[].gbit_per_s",
            ".tcp_summary[].gbit_per_s.max",
            ".tcp_summary[].gbit_per_s.median",
            ".tcp_summary[].gbit_per_s.min",
            ".tcp_summary[].ip",
            ".tcp_summary[].link_drops",
            ".tcp_summary[].link_drops.max",
            ".tcp_summary[].link_drops.median",
            ".tcp_summary[].link_drops.min",
            ".tcp_summary[].path",
            ".tcp_summary[].retransmits",
            ".tcp_summary[].retransmits.max",
            ".tcp_summary[].retransmits.median",
            ".tcp_summary[].retransmits.min",
            ".tcp_summary[].runs",
            ".tcp_summary[].softirq_cpu_per_gbit",
            ".tcp_summary[].softirq_cpu_per_gbit.max",
            ".tcp_summary[].softirq_cpu_per_gbit.median",
            ".tcp_summary[].softirq_cpu_per_gbit.min",
            ".tcp_summary[].streams",
            ".tcp_summary[].switch_cpu_per_gbit",
            ".tcp_summary[].switch_cpu_per_gbit.max",
            ".tcp_summary[].switch_cpu_per_gbit.median",
            ".tcp_summary[].switch_cpu_per_gbit.min",
            ".tcp_switch_counters",
            ".tcp_switch_counters[].counters",
            ".tcp_switch_counters[].counters.gen.rx_gso",
            ".tcp_switch_counters[].switch",
            ".trial_seconds",
            ".workers",
        ];
        assert_eq!(got, want);
        assert_eq!(v["port_kind"], "tap");
        assert_eq!(v["tcp"][1]["path"], "shunt");
        assert_eq!(v["tcp"][1]["gbit_per_s"], 1.5);
        assert_eq!(v["tcp"][0]["switch_cpu"], serde_json::Value::Null);
        assert_eq!(v["tcp_ratios"][0]["ratio"], "shunt/linux-bridge");
        assert_eq!(v["tcp_ratios"][0]["of_medians"], 0.75);
        assert_eq!(
            v["sizes"][0]["ratios"][0],
            serde_json::json!(["shunt/bare", 0.9])
        );
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    /// `shunt bench ARGS`, parsed and checked as `run` does.
    fn args(a: &[&str]) -> Result<BenchArgs, String> {
        use clap::Parser;
        let mut b = Cli::try_parse_from(std::iter::once("bench").chain(a.iter().copied()))
            .map_err(|e| e.to_string())?
            .bench;
        validate(&mut b).map_err(|e| e.to_string())?;
        Ok(b)
    }

    #[test]
    fn tcp_options() {
        let b = args(&[]).expect("no options");
        assert_eq!(b.sizes, [64, 512, 1518]);
        assert!(!b.tcp);
        assert_eq!((b.streams, b.ip_versions, b.rounds), (vec![1], vec![4], 1));
        let b = args(&["--tcp", "--streams", "1,4", "--ip", "4,6", "--rounds", "3"])
            .expect("a list of streams");
        assert!(b.tcp);
        assert_eq!(
            b.sizes,
            [64, 512, 1518],
            "--tcp keeps the frame-size trials"
        );
        assert_eq!(
            (b.streams, b.ip_versions, b.rounds),
            (vec![1, 4], vec![4, 6], 3)
        );
        let b = args(&["--streams", "4,1,4", "--streams", "8"]).expect("repeated");
        assert_eq!(b.streams, [4, 1, 8]);
        assert_eq!(
            args(&["--switch-nice", "-10"]).expect("nice").switch_nice,
            -10
        );
        assert!(args(&["--switch-nice", "-21"]).is_err());
        // Core 0 only: every machine has it, so the refusal below is the
        // missing tunnel, not a missing core.
        let b = args(&[
            "--tcp-only",
            "--vxlan",
            "--switch-cores",
            "0",
            "--peer-switch-cores",
            "0",
        ])
        .expect("cores for the tunnel's second switch");
        assert_eq!((b.switch_cores, b.peer_switch_cores), (vec![0], vec![0]));
        let b = args(&["--tcp-only", "--server-core", "0"]).expect("a server core");
        assert_eq!(b.server_core, Some(0));
        let e = args(&["--server-core", "0"]).expect_err("no TCP runs");
        assert!(e.contains("add --tcp"), "{e}");
        let e = args(&["--tcp", "--server-core", "4096"]).expect_err("no such core");
        assert!(e.contains("--server-core: core 4096 does not exist"), "{e}");
        let e = args(&["--tcp-only", "--peer-switch-cores", "0"]).expect_err("one switch only");
        assert!(e.contains("second switch of `--tcp --vxlan`"), "{e}");
        let b = args(&["--tcp-only", "--streams=2"]).expect("tcp only");
        assert!(b.tcp && b.sizes.is_empty());
        assert_eq!(b.streams, [2]);
        for bad in [
            &["--streams", "0"][..],
            &["--streams", "129"],
            &["--streams", "1,x"],
            &["--streams", ""],
            &["--ip", "5"],
            &["--rounds", "0"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} was accepted");
        }
        let e = args(&["--streams", "0"]).expect_err("0 streams");
        assert!(e.contains("--streams: 0"), "{e}");
    }

    /// `--poll`, `--tap-io` and `--capture` take lists; the switches run
    /// are named after the modes only when several were given.
    #[test]
    fn mode_lists() {
        let b = args(&[]).expect("no options");
        assert!(b.poll.is_empty() && b.tap_io.is_empty() && b.capture.is_empty());
        assert_eq!(b.idle_cpu, 0.0);
        let names = |b: &BenchArgs| variants(b).into_iter().map(|v| v.name).collect::<Vec<_>>();
        assert_eq!(names(&b), ["shunt"]);
        let b = args(&["--poll", "busy", "--bare"]).expect("one mode");
        assert_eq!(b.poll, [Poll::Busy]);
        assert_eq!(names(&b), ["shunt", "bare"]);
        assert_eq!(variants(&b)[1].poll, Some(Poll::Busy));
        let b = args(&["--poll", "interrupt,busy,adaptive,busy"]).expect("three modes");
        assert_eq!(b.poll, [Poll::Interrupt, Poll::Busy, Poll::Adaptive]);
        assert_eq!(
            names(&b),
            ["shunt-interrupt", "shunt-busy", "shunt-adaptive"]
        );
        let b = args(&["--tap-io", "syscall,uring", "--bare"]).expect("two TAP I/Os");
        assert_eq!(
            names(&b),
            ["shunt-syscall", "shunt-uring", "bare-syscall", "bare-uring"]
        );
        assert_eq!(variants(&b)[3].tap_io, Some(TapIo::Uring));
        assert!(args(&["--tap-io", "uring", "--port-kind", "afxdp"]).is_err());
        assert!(args(&["--tap-io", "epoll"]).is_err());
        let b = args(&[
            "--capture",
            "none,one,all",
            "--rounds",
            "3",
            "--idle-cpu",
            "5",
        ])
        .expect("capture modes");
        assert_eq!(
            b.capture,
            [CaptureMode::None, CaptureMode::One, CaptureMode::All]
        );
        assert_eq!((b.rounds, b.idle_cpu, b.capture_rate), (3, 5.0, 0.0));
        assert_eq!(
            args(&["--capture-rate", "50000"])
                .expect("paced")
                .capture_rate,
            50_000.0
        );
        assert!(args(&["--capture-rate", "-5"]).is_err());
        assert!(args(&["--capture", "some"]).is_err());
        assert!(args(&["--capture", "all", "--tcp-only"]).is_err());
        assert!(args(&["--idle-cpu", "-1"]).is_err());
    }

    /// `--impair-other` and `--impair-rate`: keys checked as the switch
    /// reads them, an impaired twin after each shunt variant.
    #[test]
    fn impair_options() {
        let b = args(&[
            "--impair-other",
            "delay=20ms,loss=1%",
            "--impair-rate",
            "1gbit",
        ])
        .expect("impair options");
        let v = variants(&b);
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["shunt", "shunt-impaired-other", "shunt-rate"]);
        assert_eq!(
            v[0].extra,
            lab::OTHER_PORT,
            "the same third port, unimpaired"
        );
        assert!(v[1]
            .extra
            .ends_with("port = \"other\"\ndelay = \"20ms\"\nloss = \"1%\"\n"));
        assert!(v[2]
            .extra
            .contains("port = \"sink\"\ndirection = \"egress\"\nrate = \"1gbit\"\n"));
        for t in [&v[1].extra, &v[2].extra] {
            let topo = lab::topology(PortKind::Tap, 1, false, false).expect("topology") + t;
            shunt_switch::config::parse("bench.toml", &topo).expect("the switch reads it");
        }
        assert_eq!(
            impair_keys("--impair-rate", "1gbit,limit=2000").expect("keys"),
            "rate = \"1gbit\"\nlimit = 2000\n"
        );
        assert!(args(&["--impair-other", "delay=20 parsecs"]).is_err());
        assert!(args(&["--impair-other", "speed=1"]).is_err());
        assert!(args(&["--impair-rate", "loss=1%"]).is_err());
        assert!(args(&["--impair-rate", "1gbit", "--vxlan"]).is_err());
        // Without them: the variants as before.
        let b = args(&["--bare"]).expect("bare");
        let names: Vec<String> = variants(&b).into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["shunt", "bare"]);
    }

    /// Ratios: each switch over the bridges and over bare of the same
    /// modes, io_uring over system calls.
    #[test]
    fn ratios_of_modes() {
        let r = report();
        let p = |name: &str, fps: f64| PathResult {
            path: name.into(),
            max: Trial {
                fps,
                ..r.sizes[0].paths[0].max
            },
            ..r.sizes[0].paths[0].clone()
        };
        let paths = [
            p("linux-bridge", 100.0),
            p("shunt-syscall", 200.0),
            p("shunt-uring", 300.0),
            p("bare-syscall", 400.0),
        ];
        let got = ratios(&paths);
        let want: Vec<(String, f64)> = [
            ("shunt-syscall/linux-bridge", 2.0),
            ("shunt-syscall/bare-syscall", 0.5),
            ("shunt-uring/linux-bridge", 3.0),
            ("shunt-uring/shunt-syscall", 1.5),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
        assert_eq!(got, want);

        // --vs-ovs: Open vSwitch against the bridges, shunt against it;
        // never against itself or a bare of its own.
        let paths = [
            p("linux-bridge", 100.0),
            p("ovs", 150.0),
            p("shunt", 300.0),
            p("bare", 400.0),
        ];
        let got = ratios(&paths);
        let want: Vec<(String, f64)> = [
            ("ovs/linux-bridge", 1.5),
            ("shunt/linux-bridge", 3.0),
            ("shunt/ovs", 2.0),
            ("shunt/bare", 0.75),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
        assert_eq!(got, want);
    }

    /// `--vs-ovs`: the TCP ratios pair shunt with the bridge and with Open
    /// vSwitch, round by round, and Open vSwitch with the bridge.
    #[test]
    fn tcp_ratios_with_ovs() {
        let run = |path: &str, round: u32, gbit: f64| Tcp {
            round,
            gbit_per_s: gbit,
            path: path.into(),
            ..report().tcp[0].clone()
        };
        let runs = vec![
            run("linux-bridge", 1, 10.0),
            run("ovs", 1, 5.0),
            run("shunt", 1, 10.0),
            run("linux-bridge", 2, 20.0),
            run("ovs", 2, 10.0),
            run("shunt", 2, 15.0),
        ];
        let sums = tcp::summarize(&runs);
        let got: Vec<(String, f64)> = tcp::ratios(&runs, &sums)
            .into_iter()
            .map(|r| (r.ratio, r.paired.median))
            .collect();
        assert_eq!(
            got,
            [
                ("ovs/linux-bridge".to_string(), 0.5),
                ("shunt/linux-bridge".to_string(), 0.875),
                ("shunt/ovs".to_string(), 1.75),
            ]
        );
    }

    #[test]
    fn ovs_options() {
        assert!(args(&["--vs-ovs", "--tcp", "--vxlan"])
            .expect_err("not with --vxlan")
            .contains("--vs-ovs"));
        assert!(!args(&[]).expect("no options").vs_ovs);
    }

    /// The text report, line for line: the format `shunt bench` prints.
    #[test]
    fn text_report() {
        let want = [
            "shunt bench: tap ports, 1 worker(s) on core(s) [1], generator on core 0, 2 s per trial\n",
            "the switch's workers poll: busy\n",
            "machine: 2 cores, cpu, kernel 6.1, load average 0.50 at the end\n",
            "switch shunt: poll = busy, tap_io = syscall, idle CPU 99.5% of a core over 5 s\n",
            "\n",
            "64-byte frames\n",
            "  path                    offered    forwarded     Mbit/s     loss  notes\n",
            "  generator ceiling    100.0 kfps    95.0 kfps       48.6    5.00%  direct veth, no switch\n",
            "  shunt                100.0 kfps    95.0 kfps       48.6    5.00%  limit: the switch (its core 95% busy), rfc2544 zero-loss 90.0 kfps\n",
            "  latency (µs) at 50% of each path's forwarding rate:\n",
            "  path                      rate      p50      p90      p99    p99.9       max     lost\n",
            "  shunt                47.5 kfps     10.0     20.0     30.0     40.0      50.0        0\n",
            "  shunt/bare: 0.90x\n",
            "\n",
            "TCP (iperf3 -t 5, 1 run(s) each, interleaved; median [min-max])\n",
            "  path           IP streams  Gbit/s  [min-max]    retrans   drops switch CPU/Gbit/s softirq/Gbit/s\n",
            "  linux-bridge    4       1    2.00  [2.00-2.00]        3       7               n/a          0.200\n",
            "  shunt           4       1    1.50  [1.50-1.50]        3       7             0.600          0.267\n",
            "  shunt/linux-bridge (IPv4, 1 stream(s)): 0.75x (per round 0.75-0.75x)\n",
            "  CPU in cores per Gbit/s: the switch's processes (utime+stime), the whole machine's softirq; drops: the bench's interfaces' rx/tx dropped (ip -s link)\n",
            "  shb counted during its TCP runs: gen.rx_gso 9\n",
            "\n",
            "capture while flooding (median of 1 round(s) [min-max]; cost: the switch's extra CPU per captured packet)\n",
            "   size path           mode     forwarded               [min-max] vs none    captured   not capt.        ns/captured\n",
            "     64 shunt          none     95.0 kfps   [95.0 kfps-95.0 kfps]   1.000           0           0                  -\n",
            "     64 shunt          all      47.5 kfps   [47.5 kfps-47.5 kfps]   0.500        1000      189000 950000 [950000-950000]\n",
            "note: a note\n",
        ]
        .concat();
        assert_eq!(text(&report()), want);
    }
}
