//! `shunt bench --vs-ovs`: the same traffic through Open vSwitch's
//! userspace datapath (`datapath_type=netdev`), the switch users of shunt
//! would otherwise reach for.
//!
//! ```text
//!   shb-gen: shb-og == shb-ogp --- ovs-vswitchd (bridge shb-ovs, NORMAL) --- shb-osp == shb-os :shb-sink
//! ```
//!
//! Its own ovsdb-server and ovs-vswitchd, in a directory of the bench's
//! (`/run/shunt-bench-ovs`: database, sockets, logs, pid files), so that an
//! Open vSwitch the machine runs is not touched. ovs-vswitchd is pinned to
//! the switch's cores (its PMD threads by `pmd-cpu-mask`, the rest by
//! taskset), as shunt's workers are. Its ports are, as shunt's:
//! `--port-kind tap`, `type=tap` TAPs (made by ovs-vswitchd, then moved
//! into the hosts' namespaces); `afxdp`, `type=afxdp` on the outer ends of
//! veth pairs (the namespaces' veths with transmit checksums off, as
//! shunt's AF_XDP hosts have); `packet`, `type=system` (AF_PACKET) on
//! veths. `userspace-tso-enable` carries the virtio-net header on the TAPs
//! and the AF_PACKET sockets, as shunt's ports do.
//! `pmd-maxsleep`: an idle PMD thread sleeps, so that it does not take the
//! switch's core while the paths it alternates with run.

use super::lab::{ip, TcpAddrs, GEN_NS, SINK_NS};
use super::{BenchError, PortKind};
use shunt_switch::netns;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bridge's name (also its internal port, a TAP in the bench's
/// namespace while ovs-vswitchd runs).
pub const BRIDGE: &str = "shb-ovs";
/// The hosts' ends of the veth pairs, in [`GEN_NS`] and [`SINK_NS`].
pub const HOST_IFS: (&str, &str) = ("shb-og", "shb-os");
/// The ends Open vSwitch attaches, in the bench's namespace.
const OUTER: [&str; 2] = ["shb-ogp", "shb-osp"];
const DIR: &str = "/run/shunt-bench-ovs";
const PROGRAMS: [&str; 4] = ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"];
/// An idle PMD thread sleeps up to this long (us; Open vSwitch 3.1's
/// `pmd-maxsleep`, whose upper limit it is).
const PMD_MAXSLEEP_US: u32 = 10_000;

pub const OVS_TCP: TcpAddrs = TcpAddrs {
    gen_v4: "10.199.6.1",
    sink_v4: "10.199.6.2",
    gen_v6: "fd00:199:6::1",
    sink_v6: "fd00:199:6::2",
};

/// A running Open vSwitch of the bench's own; dropping it stops it and
/// removes its veths and its directory.
pub struct Ovs {
    db: Child,
    vswitchd: Child,
    /// "afxdp" or "system".
    pub port_type: &'static str,
    /// `ovs-vswitchd --version`'s first line.
    pub version: String,
}

/// Open vSwitch's interface type for the bench's port kind.
pub fn port_type(kind: PortKind) -> &'static str {
    match kind {
        PortKind::Afxdp => "afxdp",
        PortKind::Tap => "tap",
        PortKind::Packet => "system",
    }
}

/// `pmd-cpu-mask` for `cores`: hexadecimal, bit n for core n.
pub fn cpu_mask(cores: &[usize]) -> String {
    let mask = cores
        .iter()
        .filter(|&&c| c < 128)
        .fold(0u128, |m, &c| m | 1u128 << c);
    format!("0x{mask:x}")
}

/// Whether Open vSwitch's programs are on PATH; the error says how to get
/// them.
pub fn available() -> Result<(), BenchError> {
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BenchError::Unavailable(format!(
            "--vs-ovs needs Open vSwitch ({} not found): install it (Debian: apt-get install openvswitch-switch; scripts/setup.sh does), or leave --vs-ovs out",
            missing.join(", ")
        )))
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// A command of Open vSwitch's that keeps everything in [`DIR`].
fn ovs_cmd(prog: &str) -> Command {
    let mut c = Command::new(prog);
    for k in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        c.env(k, DIR);
    }
    c.stdin(Stdio::null());
    c
}

fn db_socket() -> String {
    format!("unix:{DIR}/db.sock")
}

/// Runs `ovs-vsctl` on the bench's database; its stdout.
fn vsctl(args: &[&str]) -> Result<String, BenchError> {
    let out = ovs_cmd("ovs-vsctl")
        .arg(format!("--db={}", db_socket()))
        .arg("--timeout=30")
        .args(args)
        .output()
        .map_err(|e| BenchError::Setup(format!("running ovs-vsctl: {e}")))?;
    if !out.status.success() {
        return Err(BenchError::Setup(format!(
            "ovs-vsctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The last lines of one of the bench's Open vSwitch logs.
fn log_tail(name: &str) -> String {
    let text = std::fs::read_to_string(Path::new(DIR).join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn spawn(c: &mut Command, what: &str) -> Result<Child, BenchError> {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: Ctrl-C reaches the bench, which stops it.
        .process_group(0)
        .spawn()
        .map_err(|e| BenchError::Setup(format!("starting {what}: {e}")))
}

/// SIGTERM, then SIGKILL after 5 s.
fn stop(child: &mut Child) {
    super::lab::terminate(child, Duration::from_secs(5));
}

impl Ovs {
    /// Starts ovsdb-server and ovs-vswitchd (pinned to `cores`), makes the
    /// veth pairs and the bridge with its two ports; returns once both
    /// ports are attached.
    pub fn start(kind: PortKind, cores: &[usize]) -> Result<Ovs, BenchError> {
        available()?;
        cleanup_stale();
        std::fs::create_dir_all(DIR)
            .map_err(|e| BenchError::Setup(format!("creating {DIR}: {e}")))?;
        let db_file = format!("{DIR}/conf.db");
        // The schema is the one installed with the programs (the default).
        let out = ovs_cmd("ovsdb-tool")
            .args(["create", &db_file])
            .output()
            .map_err(|e| BenchError::Setup(format!("running ovsdb-tool: {e}")))?;
        if !out.status.success() {
            return Err(BenchError::Setup(format!(
                "ovsdb-tool create {db_file}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut db = spawn(
            ovs_cmd("ovsdb-server").args([
                db_file.as_str(),
                &format!("--remote=p{}", db_socket()),
                &format!("--pidfile={DIR}/ovsdb-server.pid"),
                &format!("--log-file={DIR}/ovsdb-server.log"),
                "--no-chdir",
            ]),
            "ovsdb-server",
        )?;
        let sock = Path::new(DIR).join("db.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if Instant::now() > deadline || matches!(db.try_wait(), Ok(Some(_))) {
                stop(&mut db);
                return Err(BenchError::Setup(format!(
                    "ovsdb-server did not open {}:\n{}",
                    sock.display(),
                    log_tail("ovsdb-server.log")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let version = ovs_cmd("ovs-vswitchd")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let configured = (|| {
            vsctl(&["--no-wait", "init"])?;
            vsctl(&[
                "--no-wait",
                "set",
                "Open_vSwitch",
                ".",
                "other_config:userspace-tso-enable=true",
                &format!("other_config:pmd-cpu-mask={}", cpu_mask(cores)),
                &format!("other_config:pmd-maxsleep={PMD_MAXSLEEP_US}"),
            ])
            .map(|_| ())
        })();
        if let Err(e) = configured {
            stop(&mut db);
            return Err(e);
        }
        let cpus = cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let vswitchd = match spawn(
            ovs_cmd("taskset").args([
                "-c",
                &cpus,
                "ovs-vswitchd",
                &db_socket(),
                &format!("--pidfile={DIR}/ovs-vswitchd.pid"),
                &format!("--log-file={DIR}/ovs-vswitchd.log"),
                "--no-chdir",
            ]),
            "taskset ovs-vswitchd",
        ) {
            Ok(c) => c,
            Err(e) => {
                stop(&mut db);
                return Err(e);
            }
        };
        // From here on, dropping `ovs` undoes everything.
        let ovs = Ovs {
            db,
            vswitchd,
            port_type: port_type(kind),
            version,
        };
        let tap = kind == PortKind::Tap;
        // TAPs are made by ovs-vswitchd under the hosts' names.
        let attached = if tap { [HOST_IFS.0, HOST_IFS.1] } else { OUTER };
        let veths = [
            (OUTER[0], HOST_IFS.0, GEN_NS),
            (OUTER[1], HOST_IFS.1, SINK_NS),
        ];
        for (outer, inner, ns) in veths.into_iter().filter(|_| !tap) {
            ip(&[
                "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns,
            ])?;
            ip(&["link", "set", outer, "up"])?;
            ip(&["-n", ns, "link", "set", inner, "up"])?;
            if kind == PortKind::Afxdp {
                shunt_switch::port::sys::tx_checksum_off(ns, inner)
                    .map_err(|e| BenchError::Setup(e.to_string()))?;
            }
        }
        let ty = format!("type={}", ovs.port_type);
        vsctl(&[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "--",
            "add-port",
            BRIDGE,
            attached[0],
            "--",
            "set",
            "interface",
            attached[0],
            &ty,
            "--",
            "add-port",
            BRIDGE,
            attached[1],
            "--",
            "set",
            "interface",
            attached[1],
            &ty,
        ])
        .map_err(|e| BenchError::Setup(format!("{e}\n{}", log_tail("ovs-vswitchd.log"))))?;
        for p in attached {
            let ofport = vsctl(&["get", "interface", p, "ofport"])?;
            let error = vsctl(&["get", "interface", p, "error"]).unwrap_or_default();
            if ofport.starts_with('-') || ofport == "[]" || (!error.is_empty() && error != "[]") {
                return Err(BenchError::Setup(format!(
                    "Open vSwitch did not attach {p} as {}: ofport {ofport}, error {error}\n{}",
                    ovs.port_type,
                    log_tail("ovs-vswitchd.log")
                )));
            }
        }
        if tap {
            // The TAPs keep working in another namespace (ovs-vswitchd
            // holds their descriptors); it then no longer finds them by
            // name, says so in its log and shows them link down.
            for (dev, ns) in [(HOST_IFS.0, GEN_NS), (HOST_IFS.1, SINK_NS)] {
                ip(&["link", "set", dev, "netns", ns])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
        }
        Ok(ovs)
    }

    pub fn pid(&self) -> u32 {
        self.vswitchd.id()
    }

    /// True while both daemons run.
    pub fn alive(&mut self) -> bool {
        matches!(self.vswitchd.try_wait(), Ok(None)) && matches!(self.db.try_wait(), Ok(None))
    }

    /// What ovs-vswitchd said last (for error reports).
    pub fn log(&self) -> String {
        log_tail("ovs-vswitchd.log")
    }

    /// One line for the report's notes.
    pub fn describe(&self, cores: &[usize]) -> String {
        format!(
            "--vs-ovs: path ovs is {} with the userspace datapath (datapath_type=netdev), action NORMAL, ports type={}{}, userspace-tso-enable=true, ovs-vswitchd on core(s) {cores:?} (pmd-cpu-mask {}, pmd-maxsleep={PMD_MAXSLEEP_US} us)",
            if self.version.is_empty() { "Open vSwitch" } else { &self.version },
            self.port_type,
            match self.port_type {
                "afxdp" => " on veths (xdp-mode best-effort; the hosts' veths with transmit checksums off)",
                "tap" => " (TAPs ovs-vswitchd made, moved into the hosts' namespaces)",
                _ => " on veths (AF_PACKET)",
            },
            cpu_mask(cores),
        )
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        stop(&mut self.vswitchd);
        stop(&mut self.db);
        remove_devices();
        let _ = std::fs::remove_dir_all(DIR);
    }
}

fn remove_devices() {
    // A TAP left in the bench's namespace (not moved yet) goes too.
    for dev in OUTER.into_iter().chain([HOST_IFS.0, HOST_IFS.1]) {
        if Path::new("/sys/class/net").join(dev).exists() {
            let _ = netns::ip(&["link", "del", dev]);
        }
    }
    // Open vSwitch makes its TAPs persistent: they outlive ovs-vswitchd.
    for (dev, ns) in [(HOST_IFS.0, GEN_NS), (HOST_IFS.1, SINK_NS)] {
        if netns::exists(ns) {
            let _ = netns::ip(&["-n", ns, "link", "del", dev]);
        }
    }
}

/// What a run killed with SIGKILL left: its daemons (by their pid files,
/// only if the process is still that program) and veths.
pub fn cleanup_stale() {
    for (file, comm) in [
        ("ovs-vswitchd.pid", "ovs-vswitchd"),
        ("ovsdb-server.pid", "ovsdb-server"),
    ] {
        let Ok(s) = std::fs::read_to_string(Path::new(DIR).join(file)) else {
            continue;
        };
        let Ok(pid) = s.trim().parse::<i32>() else {
            continue;
        };
        let running = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if running.trim() == comm {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    remove_devices();
    let _ = std::fs::remove_dir_all(DIR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_types() {
        assert_eq!(cpu_mask(&[1]), "0x2");
        assert_eq!(cpu_mask(&[0, 1]), "0x3");
        assert_eq!(cpu_mask(&[4, 9]), "0x210");
        assert_eq!(port_type(PortKind::Afxdp), "afxdp");
        assert_eq!(port_type(PortKind::Packet), "system");
        assert_eq!(port_type(PortKind::Tap), "tap");
    }
}
