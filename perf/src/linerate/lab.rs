//! The bench topology and its clean-up.
//!
//! ```text
//!                 +--------------- shunt (child: `shunt up`, workers on core 1) ---+
//!   shb-gen       |  port gen: TAP shb-tg               port sink: TAP shb-ts      |   shb-sink
//!   (generator,   +------------------------------------------------------------------+   (sink)
//!    core 0)      shb-bg == shb-bgp --- shb-br0 (kernel bridge) --- shb-bsp == shb-bs
//!                 shb-dg ===================== direct veth ===================== shb-ds
//! ```
//!
//! The two namespaces are ours; the switch puts its TAPs into them
//! (`[[port]] namespace`) and leaves them when it stops. Everything is
//! removed when the [`Lab`] is dropped: on success, on error, on Ctrl-C.

use super::{BenchError, PortKind};
use shunt_switch::netns;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const GEN_NS: &str = "shb-gen";
pub const SINK_NS: &str = "shb-sink";
pub const BRIDGE: &str = "shb-br0";
/// The switch's name: its control socket and devices derive from it.
pub const SWITCH: &str = "shb";
/// `--vxlan`: the kernel VTEP in the sink's namespace.
pub const VXLAN_DEV: &str = "shb-vx0";

/// The MAC address the generator sends to. Not the sink interface's own:
/// the sink's kernel takes the frames as "for another host" and drops them
/// at once (`ip_rcv`), without a route lookup per frame; the interface
/// counts them first, and packet sockets still see them. The sink
/// announces this address (`traffic::announce_sink`) so that the switches
/// learn where it is.
pub const SINK_STATION: [u8; 6] = [0x02, 0x5b, 0, 0, 0, 0x02];

/// One way from the generator to the sink: the interface to send on and
/// the one to count at.
#[derive(Debug, Clone)]
pub struct Path {
    pub gen_if: String,
    pub sink_if: String,
    pub gen_mac: [u8; 6],
    pub sink_mac: [u8; 6],
}

fn ip(args: &[&str]) -> Result<String, BenchError> {
    netns::ip(args).map_err(|e| BenchError::Setup(e.to_string()))
}

/// A MAC address of an interface, from `ip -j link show`.
pub fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6], BenchError> {
    let out = ip(&["-n", ns, "-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| BenchError::Setup(format!("parsing `ip -j link show {ifname}`: {e}")))?;
    let s = v[0]["address"].as_str().unwrap_or_default();
    s.parse::<shunt_parsers::MacAddr>()
        .map(|m| m.0)
        .map_err(|_| BenchError::Setup(format!("interface {ifname} in {ns} has no MAC ({s:?})")))
}

/// Frames received and sent by an interface, from `ip -s -j link show`.
#[derive(Debug, Clone, Copy, Default)]
pub struct IfStats {
    pub rx_packets: u64,
}

pub fn if_stats(ns: &str, ifname: &str) -> Result<IfStats, BenchError> {
    let out = ip(&["-n", ns, "-s", "-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| BenchError::Setup(format!("parsing `ip -s -j link show {ifname}`: {e}")))?;
    let s = &v[0]["stats64"];
    let g = |d: &str, k: &str| s[d][k].as_u64().unwrap_or(0);
    Ok(IfStats {
        rx_packets: g("rx", "packets"),
    })
}

/// Everything the benchmark created; dropping it removes all of it.
pub struct Lab {
    namespaces: bool,
    bridge: bool,
    switch: Option<SwitchChild>,
    topo_file: Option<PathBuf>,
}

impl Lab {
    /// Removes what an earlier run killed with SIGKILL may have left, then
    /// creates the two namespaces, the kernel bridge path and the direct
    /// veth pair.
    pub fn new(tcp: bool) -> Result<Lab, BenchError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(BenchError::NotRoot);
        }
        cleanup_stale();
        let mut lab = Lab {
            namespaces: true,
            bridge: false,
            switch: None,
            topo_file: None,
        };
        for ns in [GEN_NS, SINK_NS] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            // No IPv6: no router solicitations or DAD frames in the counts.
            for k in ["all", "default"] {
                let set = format!("net.ipv6.conf.{k}.disable_ipv6=1");
                let _ = netns::run("ip", &["netns", "exec", ns, "sysctl", "-qw", &set]);
            }
        }
        // The direct pair: the generator's ceiling.
        ip(&[
            "link", "add", "shb-dg", "netns", GEN_NS, "type", "veth", "peer", "name", "shb-ds",
            "netns", SINK_NS,
        ])?;
        // The kernel bridge path.
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        lab.bridge = true;
        ip(&[
            "link", "add", "shb-bgp", "type", "veth", "peer", "name", "shb-bg", "netns", GEN_NS,
        ])?;
        ip(&[
            "link", "add", "shb-bsp", "type", "veth", "peer", "name", "shb-bs", "netns", SINK_NS,
        ])?;
        for p in ["shb-bgp", "shb-bsp"] {
            ip(&["link", "set", p, "master", BRIDGE])?;
            ip(&["link", "set", p, "up"])?;
        }
        ip(&["link", "set", BRIDGE, "up"])?;
        for (ns, ifs) in [
            (GEN_NS, ["shb-dg", "shb-bg"]),
            (SINK_NS, ["shb-ds", "shb-bs"]),
        ] {
            for i in ifs {
                ip(&["-n", ns, "link", "set", i, "up"])?;
            }
        }
        if tcp {
            ip(&[
                "-n",
                GEN_NS,
                "addr",
                "add",
                "10.199.2.1/24",
                "dev",
                "shb-bg",
            ])?;
            ip(&[
                "-n",
                SINK_NS,
                "addr",
                "add",
                "10.199.2.2/24",
                "dev",
                "shb-bs",
            ])?;
        }
        Ok(lab)
    }

    pub fn path(&self, gen_if: &str, sink_if: &str) -> Result<Path, BenchError> {
        Ok(Path {
            gen_if: gen_if.into(),
            sink_if: sink_if.into(),
            gen_mac: mac_of(GEN_NS, gen_if)?,
            sink_mac: SINK_STATION,
        })
    }

    /// Moves the kernel bridge's work off the generator's core: RPS on the
    /// bridge port facing the generator steers its frames to `cpu`. `None`
    /// restores the default (no RPS: all on the generator's core).
    pub fn bridge_rps(&self, cpu: Option<usize>) -> Result<(), BenchError> {
        let mask = cpu
            .map(|c| format!("{:x}", 1u64 << c))
            .unwrap_or_else(|| "0".into());
        let f = "/sys/class/net/shb-bgp/queues/rx-0/rps_cpus";
        std::fs::write(f, &mask)
            .map_err(|e| BenchError::Setup(format!("writing {mask} to {f}: {e}")))
    }

    /// Starts `shunt up` with a topology of two ports into the namespaces,
    /// its workers pinned to `cores`; returns once it forwards.
    pub fn start_switch(&mut self, o: &SwitchOpts, cores: &[usize]) -> Result<Path, BenchError> {
        let SwitchOpts {
            kind,
            workers,
            bare,
            tcp,
            vxlan,
        } = *o;
        self.stop_switch();
        let topo = topology(kind, workers, bare, vxlan)?;
        let file = std::env::temp_dir().join(format!("shunt-bench-{}.toml", std::process::id()));
        std::fs::write(&file, topo)
            .map_err(|e| BenchError::Setup(format!("writing {}: {e}", file.display())))?;
        self.topo_file = Some(file.clone());
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::Setup(format!("finding the shunt binary: {e}")))?;
        let cpus = cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut child = Command::new("taskset")
            .args(["-c", &cpus])
            .arg(&exe)
            .arg("up")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: Ctrl-C reaches the bench, which stops
            // the switch itself, in order.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                BenchError::Setup(format!(
                    "starting `taskset -c {cpus} shunt up` (is util-linux installed?): {e}"
                ))
            })?;
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if line.contains("is up") {
                        let _ = tx.send(());
                    }
                    if let Ok(mut l) = log.lock() {
                        if l.len() > 50 {
                            l.remove(0);
                        }
                        l.push(line);
                    }
                }
            });
        }
        self.switch = Some(SwitchChild {
            child,
            log: Arc::clone(&log),
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
            let exited = self
                .switch
                .as_mut()
                .and_then(|s| s.child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline || super::interrupted() {
                let said = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                return Err(BenchError::Switch(format!(
                    "shunt up {} did not come up{}:\n{said}",
                    file.display(),
                    exited.map(|s| format!(" ({s})")).unwrap_or_default()
                )));
            }
        }
        let (g, s) = match kind {
            PortKind::Tap => ("shb-tg", "shb-ts"),
            PortKind::Afxdp | PortKind::Packet => ("shb-xg", "shb-xs"),
        };
        if tcp {
            let _ = ip(&["-n", GEN_NS, "addr", "replace", "10.199.1.1/24", "dev", g]);
            let _ = ip(&["-n", SINK_NS, "addr", "replace", "10.199.1.2/24", "dev", s]);
        }
        if vxlan {
            // The sink side of the tunnel: a kernel VTEP on the switch's
            // underlay port, flooding to the switch's VTEP.
            let _ = ip(&["-n", SINK_NS, "link", "del", VXLAN_DEV]);
            ip(&["-n", SINK_NS, "addr", "replace", "192.0.2.2/24", "dev", s])?;
            ip(&["-n", SINK_NS, "link", "set", "dev", s, "mtu", "1600", "up"])?;
            ip(&[
                "-n",
                SINK_NS,
                "link",
                "add",
                VXLAN_DEV,
                "type",
                "vxlan",
                "id",
                "1000",
                "local",
                "192.0.2.2",
                "dstport",
                "4789",
                "nolearning",
                "dev",
                s,
            ])?;
            ip(&["-n", SINK_NS, "link", "set", VXLAN_DEV, "up"])?;
            netns::run(
                "bridge",
                &[
                    "-n",
                    SINK_NS,
                    "fdb",
                    "append",
                    "00:00:00:00:00:00",
                    "dev",
                    VXLAN_DEV,
                    "dst",
                    "192.0.2.1",
                ],
            )
            .map_err(|e| BenchError::Setup(e.to_string()))?;
            return self.path(g, VXLAN_DEV);
        }
        self.path(g, s)
    }

    /// What the switch said last (for error reports).
    pub fn switch_log(&self) -> String {
        self.switch
            .as_ref()
            .and_then(|s| s.log.lock().ok().map(|l| l.join("\n")))
            .unwrap_or_default()
    }

    /// The switch child's process id, while it runs.
    pub fn switch_pid(&self) -> Option<u32> {
        self.switch.as_ref().map(|s| s.child.id())
    }

    /// True while the switch child runs.
    pub fn switch_alive(&mut self) -> bool {
        self.switch
            .as_mut()
            .is_some_and(|s| matches!(s.child.try_wait(), Ok(None)))
    }

    pub fn stop_switch(&mut self) {
        if let Some(mut s) = self.switch.take() {
            s.stop();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_switch();
        if let Some(f) = self.topo_file.take() {
            let _ = std::fs::remove_file(f);
        }
        for dev in ["shb-xgp", "shb-xsp"] {
            if std::path::Path::new("/sys/class/net").join(dev).exists() {
                let _ = netns::ip(&["link", "del", dev]);
            }
        }
        if self.bridge {
            let _ = netns::ip(&["link", "del", "shb-bgp"]);
            let _ = netns::ip(&["link", "del", "shb-bsp"]);
            let _ = netns::ip(&["link", "del", BRIDGE]);
        }
        if self.namespaces {
            for ns in [GEN_NS, SINK_NS] {
                if netns::exists(ns) {
                    let _ = netns::del(ns);
                }
            }
        }
    }
}

/// Leftovers of a run that could not clean up (SIGKILL, power loss).
fn cleanup_stale() {
    let _ = Command::new(std::env::current_exe().unwrap_or_else(|_| "shunt".into()))
        .args(["down", SWITCH])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    for dev in ["shb-bgp", "shb-bsp", "shb-xgp", "shb-xsp", BRIDGE] {
        let _ = netns::ip(&["link", "del", dev]);
    }
    for ns in [GEN_NS, SINK_NS] {
        if netns::exists(ns) {
            let _ = netns::del(ns);
        }
    }
}

struct SwitchChild {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl SwitchChild {
    /// SIGTERM (shunt removes its devices), then SIGKILL after 10 s.
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the switch under test is run with.
#[derive(Debug, Clone, Copy)]
pub struct SwitchOpts {
    pub kind: PortKind,
    pub workers: usize,
    /// `[switch] bare`: no switching logic.
    pub bare: bool,
    /// Set up for iperf3 (addresses in the namespaces).
    pub tcp: bool,
    pub vxlan: bool,
}

/// The switch's topology: one network, two access ports, the generator's
/// (port 0) and the sink's (port 1), so that `bare` (port i to port i^1)
/// sends the generator's frames to the sink.
pub fn topology(
    kind: PortKind,
    workers: usize,
    bare: bool,
    vxlan: bool,
) -> Result<String, BenchError> {
    let mut t = format!(
        "# Generated by `shunt bench`.\n[switch]\nname = \"{SWITCH}\"\nworkers = {workers}\n{}\n\
         [[network]]\nname = \"bench\"\n{}",
        if bare { "bare = true\n" } else { "" },
        if vxlan {
            "vni = 1000\nvtep_peers = [\"192.0.2.2\"]\n\n[vtep]\nport = \"sink\"\naddress = \"192.0.2.1/24\"\n"
        } else {
            ""
        }
    );
    // With --vxlan the sink port is the VTEP's underlay: no network, and
    // room for the 50 bytes of encapsulation.
    let membership = |name: &str| {
        if vxlan && name == "sink" {
            "mode = \"underlay\"\nmtu = 1600\n".to_string()
        } else {
            "mode = \"access\"\nnetwork = \"bench\"\n".to_string()
        }
    };
    match kind {
        PortKind::Tap => {
            for (name, ifname, ns) in [("gen", "shb-tg", GEN_NS), ("sink", "shb-ts", SINK_NS)] {
                t.push_str(&format!(
                    "\n[[port]]\nname = \"{name}\"\nkind = \"tap\"\ninterface = \"{ifname}\"\n\
                     namespace = \"{ns}\"\n{}",
                    membership(name)
                ));
            }
        }
        PortKind::Afxdp | PortKind::Packet => {
            if kind == PortKind::Afxdp && !super::AFXDP_READY {
                return Err(BenchError::Unavailable(
                    "--port-kind afxdp: AF_XDP ports are not available in shunt yet; use --port-kind tap".into(),
                ));
            }
            // Veth pairs: the inner ends in the namespaces (shb-xg, shb-xs),
            // the outer ends attached by the switch with AF_XDP or a packet
            // socket.
            for (name, outer, inner, ns) in [
                ("gen", "shb-xgp", "shb-xg", GEN_NS),
                ("sink", "shb-xsp", "shb-xs", SINK_NS),
            ] {
                let _ = netns::ip(&["link", "del", outer]);
                ip(&[
                    "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns,
                ])?;
                ip(&["link", "set", outer, "up"])?;
                ip(&["-n", ns, "link", "set", inner, "up"])?;
                // Complete checksums from the namespaces' stacks (iperf3 in
                // --tcp): AF_XDP carries no partial-checksum note
                // (docs/afxdp.md, "Checksums"). A packet port carries it
                // in the virtio-net header: the offloads stay on.
                if kind == PortKind::Afxdp {
                    shunt_switch::port::sys::tx_checksum_off(ns, inner)
                        .map_err(|e| BenchError::Setup(e.to_string()))?;
                }
                if vxlan && name == "sink" {
                    ip(&["link", "set", outer, "mtu", "1600"])?;
                }
                t.push_str(&format!(
                    "\n[[port]]\nname = \"{name}\"\nkind = \"{}\"\ninterface = \"{outer}\"\n{}",
                    kind.as_str(),
                    membership(name)
                ));
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_topologies_parse() {
        for bare in [false, true] {
            let t = topology(PortKind::Tap, 1, bare, false).expect("tap topology");
            let topo = shunt_switch::config::parse("bench.toml", &t).expect("parses");
            assert_eq!(topo.ports.len(), 2);
            assert_eq!(topo.switch.bare, bare);
        }
        let t = topology(PortKind::Tap, 1, false, true).expect("vxlan topology");
        let topo = shunt_switch::config::parse("bench.toml", &t).expect("vxlan topology parses");
        assert_eq!(topo.networks[0].vni, Some(1000));
        assert!(topo.vtep.is_some());
    }
}
