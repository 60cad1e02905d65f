//! The e2e harness: topologies written to temporary TOML files, the switch
//! brought up with `shunt up FILE --detach` and always taken down again (a
//! Drop guard, which also runs when a test fails or panics), `fdb`, `stats`
//! and `ports` read as the control protocol's types
//! (shunt_switch::control::proto), and command helpers.
//!
//! Every test has a number (its "tag") from which all its names derive:
//! switch `seNNRRR`, hosts `seNNRRRa`, `seNNRRRb`, ... (RRR: three digits of
//! this run's pid, so that two runs of the suite at once do not collide),
//! MACs `02:00:5e:NN:00:xx`, subnet 10.77.NN.0/24. Namespace names are global
//! on the machine, so tags must be unique across the suite.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shunt_switch::control::proto;
use shunt_tools::{MacAddr, RawPort};

/// The binary under test.
pub const SHUNT: &str = env!("CARGO_BIN_EXE_shunt");

/// The test's result type: any error with a message fails the trial.
pub type TestResult = Result<(), libtest_mimic::Failed>;

/// Fail the test with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    // A match, not `if !cond`: conditions on floats (rates) read as
    // written, without clippy's neg_cmp_op_on_partial_ord.
    ($cond:expr, $($fmt:tt)+) => {
        match $cond {
            true => {}
            false => return Err(format!($($fmt)+).into()),
        }
    };
}

/// Is everything the suite needs here? `Err(reason)` when not.
pub fn prerequisites() -> Result<(), String> {
    let euid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if euid.ok().as_deref() != Some("0") {
        return Err("not running as root (euid != 0): namespaces and TAP devices need it".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing".into());
    }
    // The real tools the tests drive; scripts/setup.sh installs them.
    for tool in [
        "ip", "ping", "tcpdump", "dig", "arping", "bridge", "iperf3", "sysctl", "unshare",
    ] {
        if !on_path(tool) {
            return Err(format!("`{tool}` is not on PATH"));
        }
    }
    Ok(())
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Run a command to completion (at most `timeout`); `Err` with its stderr
/// unless it exited 0.
pub fn run_timeout(prog: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let out = output_timeout(prog, args, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Run a command, killing it (our own child, by its id) after `timeout`.
/// Its output is read while it runs (by a thread per pipe), so a command
/// that prints more than a pipe holds (64 KiB) does not stall until the
/// timeout.
pub fn output_timeout(prog: &str, args: &[&str], timeout: Duration) -> Result<Output, String> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting `{prog}`: {e}"))?;
    fn drain<R: std::io::Read + Send + 'static>(
        pipe: Option<R>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{prog} {}` did not finish within {timeout:?}",
                    args.join(" ")
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for `{prog}`: {e}")),
        }
    };
    let joined = |h: std::thread::JoinHandle<Vec<u8>>| {
        h.join()
            .map_err(|_| format!("reading the output of `{prog}`: the reader panicked"))
    };
    Ok(Output {
        status,
        stdout: joined(out)?,
        stderr: joined(err)?,
    })
}

pub fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    run_timeout(prog, args, Duration::from_secs(30))
}

/// Run a command inside a host's namespace (`ip netns exec HOST CMD...`).
pub fn exec(host: &str, cmd: &[&str]) -> Result<String, String> {
    let mut args = vec!["netns", "exec", host];
    args.extend_from_slice(cmd);
    run("ip", &args)
}

/// `ping -c 2 -W 2` from one host to an address.
pub fn ping(from: &str, to_ip: &str) -> Result<(), String> {
    exec(from, &["ping", "-c", "2", "-W", "2", "-q", to_ip])
        .map(|_| ())
        .map_err(|e| format!("ping from {from} to {to_ip}: {e}"))
}

/// A background command (e.g. a long ping); killed and reaped on drop.
pub struct Background(Child);

impl Background {
    pub fn spawn(prog: &str, args: &[&str]) -> Result<Background, String> {
        Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Background)
            .map_err(|e| format!("starting `{prog}`: {e}"))
    }
}

impl Background {
    /// Takes a child spawned by the caller (with its stdout piped, for
    /// [`interrupt_output`](Self::interrupt_output)).
    pub fn from_child(c: Child) -> Background {
        Background(c)
    }

    /// Interrupts the command (SIGINT: ping prints its summary) and returns
    /// what it wrote on stdout, waiting at most `within`.
    pub fn interrupt_output(mut self, within: Duration) -> Result<String, String> {
        use std::io::Read;
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(mut s) = self.0.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        Ok(out)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// TCP from namespace `client` to `server_ip` in namespace `server` with
/// iperf3 for `secs` seconds; the receiver's rate in bit/s.
pub fn iperf3_tcp(server: &str, server_ip: &str, client: &str, secs: u32) -> Result<f64, String> {
    let _server = Background::spawn(
        "ip",
        &[
            "netns", "exec", server, "iperf3", "-s", "-1", "-B", server_ip,
        ],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let out = run_timeout(
        "ip",
        &[
            "netns",
            "exec",
            client,
            "iperf3",
            "-c",
            server_ip,
            "-t",
            &secs.to_string(),
            "-J",
        ],
        Duration::from_secs(u64::from(secs) + 18),
    )?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("iperf3 -J: {e}: {out}"))?;
    Ok(v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0))
}

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub fn socket_path(switch: &str) -> PathBuf {
    PathBuf::from(format!("/run/shunt/{switch}.sock"))
}

/// Three digits that tell this run of the suite from another one running at
/// the same time on the machine (namespace names are global).
/// How a behaviour test runs: the port kind of its hosts and the number of
/// workers. The foundation's suite is written once and run per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Goes into names, so that variants of one test can run at once.
    pub idx: u8,
    /// `tap`, or `veth` (an AF_XDP or packet port on the veth's outer end).
    pub link: &'static str,
    /// For `veth`: how the switch attaches (`afxdp` or `packet`).
    pub veth_attach: &'static str,
    pub xdp_mode: &'static str,
    pub workers: u8,
    /// `[switch] multiqueue`: TAPs and AF_XDP veths with one queue per
    /// worker (issue 13).
    pub multiqueue: bool,
    /// `[switch] tap_io`, written only when set: the default (io_uring) or
    /// the system-call path it replaced.
    pub tap_io: Option<&'static str>,
}

pub const VARIANTS: [Variant; 8] = [
    Variant {
        idx: 0,
        link: "tap",
        veth_attach: "afxdp",
        xdp_mode: "auto",
        workers: 1,
        multiqueue: false,
        tap_io: None,
    },
    Variant {
        idx: 1,
        link: "tap",
        veth_attach: "afxdp",
        xdp_mode: "auto",
        workers: 2,
        multiqueue: false,
        tap_io: None,
    },
    Variant {
        idx: 2,
        link: "veth",
        veth_attach: "afxdp",
        xdp_mode: "native",
        workers: 1,
        multiqueue: false,
        tap_io: None,
    },
    Variant {
        idx: 3,
        link: "veth",
        veth_attach: "afxdp",
        xdp_mode: "generic",
        workers: 2,
        multiqueue: false,
        tap_io: None,
    },
    // veth hosts as `shunt up` makes them by default: a packet socket
    // with the virtio-net header, the hosts' offloads on.
    Variant {
        idx: 4,
        link: "veth",
        veth_attach: "packet",
        xdp_mode: "auto",
        workers: 2,
        multiqueue: false,
        tap_io: None,
    },
    // Multi-queue TAPs under two workers: each worker polls its own queue
    // of every TAP, so one port's frames are learned and forwarded by both
    // (issue 13: "the whole L2 suite passes with multi-queue ports").
    Variant {
        idx: 5,
        link: "tap",
        veth_attach: "afxdp",
        xdp_mode: "auto",
        workers: 2,
        multiqueue: true,
        tap_io: None,
    },
    // TAPs with one `readv`/`writev` per frame: the path `tap_io =
    // "syscall"` keeps, and the one a worker falls back to without io_uring.
    Variant {
        idx: 6,
        link: "tap",
        veth_attach: "afxdp",
        xdp_mode: "auto",
        workers: 1,
        multiqueue: false,
        tap_io: Some("syscall"),
    },
    // Multi-queue veths on AF_XDP under two workers: one socket per queue,
    // socket k polled by worker k.
    Variant {
        idx: 7,
        link: "veth",
        veth_attach: "afxdp",
        xdp_mode: "native",
        workers: 2,
        multiqueue: true,
        tap_io: None,
    },
];

impl Variant {
    /// A suffix for trial names: `[tap,w1]`, `[afxdp-native,w2]`,
    /// `[packet,w2]`.
    pub fn label(&self) -> String {
        match (self.link, self.veth_attach, self.tap_io) {
            ("veth", "afxdp", _) if self.multiqueue => {
                format!("[afxdp-{}-mq,w{}]", self.xdp_mode, self.workers)
            }
            ("veth", "afxdp", _) => format!("[afxdp-{},w{}]", self.xdp_mode, self.workers),
            ("veth", _, _) => format!("[packet,w{}]", self.workers),
            _ if self.multiqueue => format!("[tap-mq,w{}]", self.workers),
            (_, _, Some(io)) => format!("[tap-{io},w{}]", self.workers),
            _ => format!("[tap,w{}]", self.workers),
        }
    }

    /// Whether it needs AF_XDP.
    pub fn afxdp(&self) -> bool {
        self.link == "veth" && self.veth_attach == "afxdp"
    }

    /// The `[[host]]` keys that plug a host in as this variant says.
    pub fn host_keys(&self) -> String {
        match self.link {
            "veth" => format!(
                "link = \"veth\"\nveth_attach = \"{}\"\nxdp_mode = \"{}\"\n",
                self.veth_attach, self.xdp_mode
            ),
            _ => format!("link = \"{}\"\n", self.link),
        }
    }

    /// The port kind `shunt ports` gives a host port of this variant.
    pub fn host_kind(&self) -> &'static str {
        match self.link {
            "veth" => self.veth_attach,
            _ => "tap",
        }
    }
}

thread_local! {
    static VARIANT: std::cell::Cell<Variant> = const { std::cell::Cell::new(VARIANTS[0]) };
}

/// The variant the running test was started with.
pub fn variant() -> Variant {
    VARIANT.with(|v| v.get())
}

pub fn set_variant(v: Variant) {
    VARIANT.with(|c| c.set(v));
}

pub fn run_id() -> u32 {
    std::process::id() % 1000
}

/// One host of a topology.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    /// Address with prefix, as in the file (`10.77.2.11/24`).
    pub cidr: String,
    pub mac: MacAddr,
}

impl Host {
    /// Address without prefix.
    pub fn ip(&self) -> &str {
        self.cidr.split('/').next().unwrap_or(&self.cidr)
    }

    /// The switch port plugging this host into network `lan`.
    pub fn port(&self) -> String {
        format!("{}.lan", self.name)
    }
}

/// A one-network (`lan`) topology of `n` hosts, written as TOML.
#[derive(Clone, Debug)]
pub struct Topology {
    pub tag: u8,
    pub switch: String,
    pub hosts: Vec<Host>,
    pub aging_secs: Option<u64>,
    pub max_entries: Option<u64>,
    /// Static entries: (mac, port).
    pub statics: Vec<(MacAddr, String)>,
}

impl Topology {
    pub fn new(tag: u8, n: usize) -> Topology {
        let switch = format!("se{tag:02}{}{:03}", variant().idx, run_id());
        let hosts = (0..n)
            .map(|i| Host {
                name: format!("{switch}{}", (b'a' + i as u8) as char),
                cidr: format!("10.77.{tag}.{}/24", 11 + i),
                mac: shunt_tools::test_mac(tag, 0, 0x0a + i as u8),
            })
            .collect();
        Topology {
            tag,
            switch,
            hosts,
            aging_secs: None,
            max_entries: None,
            statics: Vec::new(),
        }
    }

    pub fn aging(mut self, secs: u64) -> Self {
        self.aging_secs = Some(secs);
        self
    }

    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    pub fn static_entry(mut self, mac: MacAddr, port: &str) -> Self {
        self.statics.push((mac, port.to_string()));
        self
    }

    pub fn toml(&self) -> String {
        let v = variant();
        let mut s = format!(
            "[switch]\nname = \"{}\"\nworkers = {}\n",
            self.switch, v.workers
        );
        if v.multiqueue {
            s += "multiqueue = true\n";
        }
        if let Some(io) = v.tap_io {
            s += &format!("tap_io = \"{io}\"\n");
        }
        if let Some(a) = self.aging_secs {
            s += &format!("fdb_aging_secs = {a}\n");
        }
        if let Some(m) = self.max_entries {
            s += &format!("fdb_max_entries = {m}\n");
        }
        s += &format!(
            "\n[[network]]\nname = \"lan\"\nsubnet = \"10.77.{}.0/24\"\n",
            self.tag
        );
        for h in &self.hosts {
            s += &format!(
                "\n[[host]]\nname = \"{}\"\nnetworks = [\"lan\"]\nip = [\"{}\"]\nmac = [\"{}\"]\n{}",
                h.name,
                h.cidr,
                h.mac,
                v.host_keys()
            );
        }
        for (mac, port) in &self.statics {
            s += &format!("\n[[fdb]]\nnetwork = \"lan\"\nmac = \"{mac}\"\nport = \"{port}\"\n");
        }
        s
    }
}

/// A running switch; `shunt down` and namespace clean-up on drop.
pub struct Switch {
    pub name: String,
    pub file: PathBuf,
    pub hosts: Vec<String>,
    down_done: bool,
}

/// Remove what an earlier, interrupted run of the same test may have left.
fn clean_leftovers(switch: &str, hosts: &[String]) {
    let _ = output_timeout(SHUNT, &["down", "--name", switch], Duration::from_secs(20));
    for h in hosts {
        if netns_exists(h) {
            let _ = output_timeout("ip", &["netns", "del", h], Duration::from_secs(10));
        }
    }
}

impl Switch {
    /// Write the topology to a temporary file and run `shunt up FILE --detach`.
    pub fn up(topo: &Topology) -> Result<Switch, String> {
        let hosts: Vec<String> = topo.hosts.iter().map(|h| h.name.clone()).collect();
        clean_leftovers(&topo.switch, &hosts);
        let file = std::env::temp_dir().join(format!(
            "shunt-e2e-{}-{}.toml",
            topo.switch,
            std::process::id()
        ));
        std::fs::write(&file, topo.toml()).map_err(|e| format!("{}: {e}", file.display()))?;
        // The guard exists before `up`, so a half-done bring-up is cleaned too.
        let sw = Switch {
            name: topo.switch.clone(),
            file,
            hosts,
            down_done: false,
        };
        sw.up_again()?;
        Ok(sw)
    }

    /// `shunt up FILE --detach` with this switch's file (again).
    pub fn up_again(&self) -> Result<(), String> {
        let file = self.file.to_string_lossy().into_owned();
        run_timeout(SHUNT, &["up", &file, "--detach"], Duration::from_secs(60))
            .map(|_| ())
            .map_err(|e| format!("bringing up {}: {e}", self.name))
    }

    /// `shunt down --name NAME`.
    pub fn down(&mut self) -> Result<(), String> {
        self.down_done = true;
        run_timeout(
            SHUNT,
            &["down", "--name", &self.name],
            Duration::from_secs(30),
        )
        .map(|_| ())
    }

    /// `shunt WHAT --json`, as JSON and as the control protocol's type
    /// (which checks that every field is there, of its type).
    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<(Value, T), String> {
        let out = run_timeout(
            SHUNT,
            &[what, "--name", &self.name, "--json"],
            Duration::from_secs(10),
        )?;
        let v: Value = serde_json::from_str(&out)
            .map_err(|e| format!("`shunt {what} --json` is not JSON ({e}): {out}"))?;
        let t = serde_json::from_value(v.clone())
            .map_err(|e| format!("`shunt {what} --json` is not what it should be ({e}): {out}"))?;
        Ok((v, t))
    }

    pub fn fdb(&self) -> Result<Fdb, String> {
        let (_, entries): (_, Vec<proto::FdbEntry>) = self.json("fdb")?;
        Ok(Fdb(entries.into_iter().map(FdbEntry::from).collect()))
    }

    pub fn stats(&self) -> Result<Stats, String> {
        let (json, typed) = self.json("stats")?;
        Ok(Stats { json, typed })
    }

    /// Waits (up to `within`) until every frame of the switch's UMEM is
    /// accounted for: in the pool, a port's cache or a kernel ring. Call it
    /// when traffic has stopped; the workers publish their caches' counts
    /// once a second, so a stale count clears within about a second, and a
    /// lost frame never does. Ok without AF_XDP ports.
    pub fn umem_accounted(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let Some(u) = self.stats()?.typed.umem else {
                return Ok(());
            };
            let (all, pool, cached, kernel) = (u.frames, u.pool, u.cached, u.in_kernel);
            if all == pool + cached + kernel {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "UMEM frames unaccounted for: {} of {all} missing ({u:?})",
                    all as i64 - (pool + cached + kernel) as i64
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn ports(&self) -> Result<Vec<proto::PortInfo>, String> {
        self.json("ports").map(|(_, p): (Value, _)| p)
    }

    /// Sniffers on eth0 of each given host, in order.
    pub fn sniffers(&self, hosts: &[&Host]) -> Result<Vec<RawPort>, String> {
        hosts
            .iter()
            .map(|h| {
                RawPort::open(&h.name, "eth0").map_err(|e| format!("sniffer on {}: {e}", h.name))
            })
            .collect()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if !self.down_done || socket_path(&self.name).exists() {
            // Retry a few times: right after a kill -9 the old process may
            // still be an unreaped zombie that `down` takes for alive.
            for attempt in 0..5 {
                match self.down() {
                    Ok(()) if !socket_path(&self.name).exists() => break,
                    Ok(()) => {}
                    Err(e) if attempt == 4 => {
                        eprintln!("cleanup: shunt down --name {}: {e}", self.name)
                    }
                    Err(_) => {}
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        for h in &self.hosts {
            if netns_exists(h) {
                eprintln!("cleanup: namespace {h} was left behind; deleting it");
                let _ = output_timeout("ip", &["netns", "del", h], Duration::from_secs(10));
            }
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// One row of `shunt fdb --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct FdbEntry {
    pub network: String,
    pub vlan: Option<i64>,
    pub mac: String,
    pub port: String,
    pub is_static: bool,
    pub age_secs: f64,
}

impl From<proto::FdbEntry> for FdbEntry {
    fn from(e: proto::FdbEntry) -> FdbEntry {
        FdbEntry {
            network: e.network,
            vlan: e.vlan.map(i64::from),
            mac: e.mac.to_lowercase(),
            port: e.port,
            is_static: e.is_static,
            age_secs: e.age_secs,
        }
    }
}

/// `shunt fdb --json`.
#[derive(Clone, Debug)]
pub struct Fdb(pub Vec<FdbEntry>);

impl Fdb {
    pub fn find(&self, mac: MacAddr) -> Option<&FdbEntry> {
        let m = mac.to_string();
        self.0.iter().find(|e| e.mac == m)
    }

    /// The port `mac` is on, if learned.
    pub fn port_of(&self, mac: MacAddr) -> Option<&str> {
        self.find(mac).map(|e| e.port.as_str())
    }
}

/// `shunt stats --json`: as JSON (for the parts other modules describe,
/// like "host"), and typed; zero for counters that are absent.
#[derive(Clone, Debug)]
pub struct Stats {
    pub json: Value,
    pub typed: proto::Stats,
}

impl Stats {
    fn port_value(&self, port: &str) -> Option<&proto::PortStats> {
        self.typed.ports.get(port)
    }

    pub fn has_port(&self, port: &str) -> bool {
        self.port_value(port).is_some()
    }

    /// `rx_frames`, `tx_frames`, `rx_bytes`, `tx_bytes`, `tx_zero_copy`,
    /// `learned` or `moved` of a port.
    pub fn port(&self, port: &str, counter: &str) -> u64 {
        let Some(p) = self.port_value(port) else {
            return 0;
        };
        match counter {
            "rx_frames" => p.rx_frames,
            "tx_frames" => p.tx_frames,
            "rx_bytes" => p.rx_bytes,
            "tx_bytes" => p.tx_bytes,
            "tx_zero_copy" => p.tx_zero_copy,
            "learned" => p.learned,
            "moved" => p.moved,
            _ => 0,
        }
    }

    pub fn flooded(&self, port: &str, cause: &str) -> u64 {
        self.port_value(port)
            .and_then(|p| p.flooded.get(cause).copied())
            .unwrap_or(0)
    }

    pub fn port_drop(&self, port: &str, reason: &str) -> u64 {
        self.port_value(port)
            .and_then(|p| p.drops.get(reason).copied())
            .unwrap_or(0)
    }

    pub fn drop(&self, reason: &str) -> u64 {
        self.typed.drops.get(reason).copied().unwrap_or(0)
    }

    /// All drop counters of a port, as JSON text (for messages).
    pub fn port_drops_text(&self, port: &str) -> String {
        self.port_value(port)
            .and_then(|p| serde_json::to_string(&p.drops).ok())
            .unwrap_or_else(|| "{}".into())
    }
}

/// Our own processes whose command line contains `needle` (for example the
/// detached switch, which runs as `shunt up /abs/FILE`).
pub fn pids_with_arg(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                    args.first()
                        .is_some_and(|a0| String::from_utf8_lossy(a0).ends_with("shunt"))
                        && args.contains(&needle.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

impl Switch {
    /// Brings up a switch from a TOML text of the test's own; `namespaces`
    /// are those the test expects it to create (cleaned on drop too).
    pub fn up_toml(name: &str, toml: &str, namespaces: &[String]) -> Result<Switch, String> {
        clean_leftovers(name, namespaces);
        let file =
            std::env::temp_dir().join(format!("shunt-e2e-{name}-{}.toml", std::process::id()));
        std::fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
        let sw = Switch {
            name: name.to_string(),
            file,
            hosts: namespaces.to_vec(),
            down_done: false,
        };
        sw.up_again()?;
        Ok(sw)
    }

    /// A control command that prints text (`attach`, `detach`, ...).
    pub fn cmd(&self, args: &[&str]) -> Result<String, String> {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--name", &self.name]);
        run_timeout(SHUNT, &a, Duration::from_secs(30))
    }
}

/// A real tcpdump on an interface inside a namespace, writing a pcap file.
/// Unlike a packet socket it gives back VLAN tags the kernel took off the
/// frame (libpcap puts them back from the packet's metadata).
pub struct Tcpdump {
    child: Child,
    file: PathBuf,
}

impl Tcpdump {
    pub fn start(netns: &str, ifname: &str) -> Result<Tcpdump, String> {
        use std::io::BufRead;
        let file = std::env::temp_dir().join(format!(
            "shunt-e2e-{netns}-{ifname}-{}.pcap",
            std::process::id()
        ));
        let path = file.to_string_lossy().into_owned();
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "tcpdump",
                "-i",
                ifname,
                "-Q",
                "in",
                "-U",
                "-nn",
                "--immediate-mode",
                "-s",
                "256",
                "-w",
                &path,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting tcpdump in {netns}: {e}"))?;
        let stderr = child.stderr.take().ok_or("tcpdump has no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let td = Tcpdump { child, file };
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("tcpdump on {netns}/{ifname} did not start listening"))?;
        Ok(td)
    }

    /// Stops the capture and returns the frames it saw.
    pub fn stop(mut self) -> Result<Vec<Vec<u8>>, String> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let bytes =
            std::fs::read(&self.file).map_err(|e| format!("{}: {e}", self.file.display()))?;
        read_pcap(&bytes)
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The frames of a classic pcap file (little-endian, Ethernet).
pub fn read_pcap(b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if b.len() < 24 || b[0..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        return Err("not a little-endian pcap file".into());
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) as usize;
        at += 16;
        let Some(frame) = b.get(at..at + incl) else {
            break;
        };
        out.push(frame.to_vec());
        at += incl;
    }
    Ok(out)
}
