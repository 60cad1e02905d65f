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
//! The kernel bridge and its two ports are in a namespace of their own,
//! shb-br, so that its `net.bridge.bridge-nf-call-*` (per namespace, on by
//! default where br_netfilter is built in) can be set for the bench
//! without touching the machine's (`--bridge-netfilter`).
//!
//! The namespaces are ours; the switch puts its TAPs into them
//! (`[[port]] namespace`) and leaves them when it stops. Everything is
//! removed when the [`Lab`] is dropped: on success, on error, on Ctrl-C.
//! With `--port-kind afxdp` or `packet` the switch's ports are the outer
//! ends (shb-xgp, shb-xsp) of veth pairs whose inner ends (shb-xg, shb-xs)
//! are in the namespaces.
//!
//! `--tcp --vxlan` replaces the switch by two, one per namespace, joined
//! over VXLAN (VNI 2000, inner MTU 1450); the kernel's counterpart is a
//! vxlan device in each namespace over the bridge path:
//!
//! ```text
//!   shb-gen: shb-tg -- shunt "shb" (VTEP 192.0.3.11) -- TAP shb-ua --+
//!                                                        shb-ul: br0 (kernel bridge)
//!   shb-sink: shb-ts -- shunt "shb2" (VTEP 192.0.3.12) -- TAP shb-ub -+
//!
//!   shb-gen: shb-kvx (vxlan 2000, 192.0.3.1 over shb-bg) --- shb-br0 --- shb-kvx (192.0.3.2 over shb-bs) :shb-sink
//! ```

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
/// The kernel bridge's namespace.
pub const BRIDGE_NS: &str = "shb-br";
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
    /// Flows the generator sends (UDP source ports 49184 and up): a
    /// multi-queue TAP spreads them over its queues by hash.
    pub flows: usize,
}

pub(super) fn ip(args: &[&str]) -> Result<String, BenchError> {
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
    /// `--tcp --vxlan`: the second switch, at the sink's end of the tunnel.
    peer: Option<SwitchChild>,
    /// `--vs-ovs`: Open vSwitch, while its path runs.
    ovs: Option<super::ovs::Ovs>,
    topo_files: Vec<PathBuf>,
    /// `nice -n` of the switches started from now on.
    pub switch_nice: i32,
    /// `[switch] poll` of the switches started from now on.
    pub switch_poll: Option<super::Poll>,
    /// `[switch] tap_io` of the switches started from now on.
    pub switch_tap_io: Option<super::TapIo>,
    /// `[switch] multiqueue` of the switches started from now on: TAPs
    /// with one queue per worker.
    pub switch_multiqueue: bool,
    /// Flows of the paths made from now on ([`Path::flows`]).
    pub flows: usize,
    /// TOML added to the topology of the switches started from now on
    /// (`--impair-other`, `--impair-rate`: a port, `[[impair]]` tables).
    pub switch_extra: String,
    /// `--bridge-netfilter`: br_netfilter's hooks on the bridges.
    bridge_netfilter: bool,
    /// Held while the bench runs: a second bench would remove this one's
    /// namespaces (they have fixed names).
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Lab {
    /// Removes what an earlier run killed with SIGKILL may have left, then
    /// creates the two namespaces, the kernel bridge path and the direct
    /// veth pair.
    /// `bridge_netfilter`: whether bridged frames go through br_netfilter's
    /// hooks (`bridge-nf-call-iptables` and the rest), on the kernel
    /// bridge here and on the VXLAN underlay's.
    pub fn new(tcp: Option<TcpSetup>, bridge_netfilter: bool) -> Result<Lab, BenchError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(BenchError::NotRoot);
        }
        let lock = take_lock()?;
        cleanup_stale();
        let mut lab = Lab {
            namespaces: true,
            bridge: false,
            switch: None,
            peer: None,
            ovs: None,
            topo_files: Vec::new(),
            switch_nice: 0,
            switch_poll: None,
            switch_tap_io: None,
            switch_multiqueue: false,
            flows: 1,
            switch_extra: String::new(),
            bridge_netfilter,
            _lock: lock,
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
        lab.bridge = true;
        bridge_ns(BRIDGE_NS, bridge_netfilter)?;
        ip(&["-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&[
            "-n", BRIDGE_NS, "link", "add", "shb-bgp", "type", "veth", "peer", "name", "shb-bg",
            "netns", GEN_NS,
        ])?;
        ip(&[
            "-n", BRIDGE_NS, "link", "add", "shb-bsp", "type", "veth", "peer", "name", "shb-bs",
            "netns", SINK_NS,
        ])?;
        for p in ["shb-bgp", "shb-bsp"] {
            ip(&["-n", BRIDGE_NS, "link", "set", p, "master", BRIDGE])?;
            ip(&["-n", BRIDGE_NS, "link", "set", p, "up"])?;
        }
        ip(&["-n", BRIDGE_NS, "link", "set", BRIDGE, "up"])?;
        for (ns, ifs) in [
            (GEN_NS, ["shb-dg", "shb-bg"]),
            (SINK_NS, ["shb-ds", "shb-bs"]),
        ] {
            for i in ifs {
                ip(&["-n", ns, "link", "set", i, "up"])?;
            }
        }
        if let Some(t) = tcp {
            addresses(&BRIDGE_TCP, ("shb-bg", "shb-bs"), t.ipv6)?;
        }
        Ok(lab)
    }

    pub fn path(&self, gen_if: &str, sink_if: &str) -> Result<Path, BenchError> {
        Ok(Path {
            gen_if: gen_if.into(),
            sink_if: sink_if.into(),
            gen_mac: mac_of(GEN_NS, gen_if)?,
            sink_mac: SINK_STATION,
            flows: self.flows,
        })
    }

    /// Moves the kernel bridge's work off the generator's core: RPS on the
    /// bridge port facing the generator steers its frames to `cpu`. `None`
    /// restores the default (no RPS: all on the generator's core).
    pub fn bridge_rps(&self, cpu: Option<usize>) -> Result<(), BenchError> {
        let mask = cpu
            .map(|c| format!("{:x}", 1u64 << c))
            .unwrap_or_else(|| "0".into());
        // In the bridge's namespace: `ip netns exec` mounts its /sys.
        let f = "/sys/class/net/shb-bgp/queues/rx-0/rps_cpus";
        ns_sh(BRIDGE_NS, &format!("echo {mask} > {f}"))
            .map_err(|e| BenchError::Setup(format!("writing {mask} to {f} in {BRIDGE_NS}: {e}")))
    }

    /// `--vs-ovs`: starts Open vSwitch on `cores` with its two ports into
    /// the namespaces (and iperf3's addresses with `tcp`).
    pub fn start_ovs(
        &mut self,
        kind: PortKind,
        cores: &[usize],
        tcp: Option<TcpSetup>,
    ) -> Result<Path, BenchError> {
        self.stop_ovs();
        self.ovs = Some(super::ovs::Ovs::start(kind, cores)?);
        let (g, s) = super::ovs::HOST_IFS;
        if let Some(t) = tcp {
            addresses(&super::ovs::OVS_TCP, (g, s), t.ipv6)?;
        }
        self.path(g, s)
    }

    pub fn stop_ovs(&mut self) {
        self.ovs = None;
    }

    /// ovs-vswitchd's process id, while it runs.
    pub fn ovs_pid(&self) -> Option<u32> {
        self.ovs.as_ref().map(|o| o.pid())
    }

    /// The report's note on how Open vSwitch runs, while it runs.
    pub fn ovs_note(&self, cores: &[usize]) -> Option<String> {
        self.ovs.as_ref().map(|o| o.describe(cores))
    }

    /// True unless Open vSwitch was started and has stopped; its log when
    /// it has.
    pub fn ovs_alive(&mut self) -> Result<(), String> {
        let Some(o) = self.ovs.as_mut() else {
            return Ok(());
        };
        if o.alive() {
            Ok(())
        } else {
            Err(o.log())
        }
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
        let topo = topology(kind, workers, bare, vxlan)? + &self.switch_extra;
        self.switch = Some(self.spawn(SWITCH, &topo, cores)?);
        let (g, s) = kind.host_ifs();
        if let Some(t) = tcp {
            addresses(&SHUNT_TCP, (g, s), t.ipv6)?;
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

    /// `--tcp --vxlan`, the kernel's side: a vxlan device in each namespace
    /// over the bridge path's veths (the namespaces are the VTEPs), inner
    /// MTU 1450 as shunt's hosts get.
    pub fn kernel_vxlan(&mut self, t: TcpSetup) -> Result<(), BenchError> {
        for (ns, dev, me, peer) in [
            (GEN_NS, "shb-bg", KVX_UNDERLAY.0, KVX_UNDERLAY.1),
            (SINK_NS, "shb-bs", KVX_UNDERLAY.1, KVX_UNDERLAY.0),
        ] {
            let _ = ip(&["-n", ns, "link", "del", KVX_DEV]);
            ip(&["-n", ns, "addr", "replace", &format!("{me}/24"), "dev", dev])?;
            ip(&[
                "-n", ns, "link", "add", KVX_DEV, "type", "vxlan", "id", "2000", "local", me,
                "remote", peer, "dstport", "4789", "dev", dev,
            ])?;
            ip(&["-n", ns, "link", "set", KVX_DEV, "mtu", "1450", "up"])?;
        }
        addresses(&KVX_TCP, (KVX_DEV, KVX_DEV), t.ipv6)
    }

    /// `--tcp --vxlan`, shunt's side: two switches, each with one host
    /// port (the generator's, the sink's) on a VXLAN network (VNI 2000),
    /// their underlay TAPs in one kernel bridge in a namespace of the
    /// bench's own (as tests/e2e/vxlan.rs `two_switches`). The first
    /// switch runs on `cores[0]`, the second on `cores[1]`. Returns once a
    /// ping crosses the tunnel.
    pub fn start_vxlan_pair(
        &mut self,
        kind: PortKind,
        workers: usize,
        cores: [&[usize]; 2],
        t: TcpSetup,
    ) -> Result<(), BenchError> {
        self.stop_switch();
        bridge_ns(UNDERLAY_NS, self.bridge_netfilter)?;
        ip(&["-n", UNDERLAY_NS, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", UNDERLAY_NS, "link", "set", "br0", "up"])?;
        let (g, s) = kind.host_ifs();
        let sides = [
            (SWITCH, GEN_NS, "gen", VTEP_ADDRS.0, VTEP_ADDRS.1, "shb-ua"),
            (
                PEER_SWITCH,
                SINK_NS,
                "sink",
                VTEP_ADDRS.1,
                VTEP_ADDRS.0,
                "shb-ub",
            ),
        ];
        for (i, &(name, ns, port, me, peer, ul)) in sides.iter().enumerate() {
            let host = host_port(kind, port, ns, VXLAN_HOST)?;
            let topo = pair_topology(name, workers, me, peer, ul, &host);
            let child = self.spawn(name, &topo, cores[i])?;
            if i == 0 {
                self.switch = Some(child);
            } else {
                self.peer = Some(child);
            }
            ip(&["-n", UNDERLAY_NS, "link", "set", ul, "master", "br0", "up"])?;
        }
        for (ns, dev) in [(GEN_NS, g), (SINK_NS, s)] {
            ip(&["-n", ns, "link", "set", dev, "mtu", "1450", "up"])?;
        }
        addresses(&SHUNT_VXLAN_TCP, (g, s), t.ipv6)?;
        // The switches resolve each other's VTEP address (ARP through the
        // underlay) on the first frame; until then frames wait or drop.
        let deadline = Instant::now() + Duration::from_secs(15);
        let target = SHUNT_VXLAN_TCP.sink_v4;
        while netns::run(
            "ip",
            &[
                "netns", "exec", GEN_NS, "ping", "-c", "1", "-W", "1", "-q", target,
            ],
        )
        .is_err()
        {
            if Instant::now() > deadline || super::interrupted() {
                return Err(BenchError::Switch(format!(
                    "no ping from {GEN_NS} to {target} across the two switches' tunnel:\n{}",
                    self.switch_log()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Writes `topo` to a file of its own and starts `shunt up` on it, its
    /// workers pinned to `cores`; returns once it forwards.
    fn spawn(
        &mut self,
        name: &str,
        topo: &str,
        cores: &[usize],
    ) -> Result<SwitchChild, BenchError> {
        let keys = SwitchKeys {
            poll: self.switch_poll,
            tap_io: self.switch_tap_io,
            multiqueue: self.switch_multiqueue,
        };
        let topo = with_switch_keys(topo, &keys);
        // The modes as the switch will run them, its defaults included.
        let modes = shunt_switch::config::parse("bench.toml", &topo)
            .map(|t| {
                (
                    t.switch.poll.name().to_string(),
                    t.switch.tap_io.name().to_string(),
                )
            })
            .map_err(|e| BenchError::Setup(format!("the generated topology: {e}")))?;
        let file =
            std::env::temp_dir().join(format!("shunt-bench-{}-{name}.toml", std::process::id()));
        std::fs::write(&file, &topo)
            .map_err(|e| BenchError::Setup(format!("writing {}: {e}", file.display())))?;
        if !self.topo_files.contains(&file) {
            self.topo_files.push(file.clone());
        }
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::Setup(format!("finding the shunt binary: {e}")))?;
        let cpus = cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let nice = self.switch_nice.to_string();
        let mut child = Command::new("nice")
            .args(["-n", &nice, "taskset", "-c", &cpus])
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
                    "starting `nice -n {nice} taskset -c {cpus} shunt up` (is util-linux installed?): {e}"
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
        let mut sc = SwitchChild { child, log, modes };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Ok(sc);
            }
            let exited = sc.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline || super::interrupted() {
                let said = sc.log.lock().map(|l| l.join("\n")).unwrap_or_default();
                sc.stop();
                return Err(BenchError::Switch(format!(
                    "shunt up {} did not come up{}:\n{said}",
                    file.display(),
                    exited.map(|s| format!(" ({s})")).unwrap_or_default()
                )));
            }
        }
    }

    /// What the switch said last (for error reports).
    pub fn switch_log(&self) -> String {
        [&self.switch, &self.peer]
            .into_iter()
            .flatten()
            .filter_map(|s| s.log.lock().ok().map(|l| l.join("\n")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The switch's `poll` and `tap_io` as it runs them (its defaults
    /// included); empty when none runs.
    pub fn switch_modes(&self) -> (String, String) {
        self.switch
            .as_ref()
            .map(|s| s.modes.clone())
            .unwrap_or_default()
    }

    /// The switch child's process id, while it runs.
    pub fn switch_pid(&self) -> Option<u32> {
        self.switch.as_ref().map(|s| s.child.id())
    }

    /// The process ids of every switch running (two with `--tcp --vxlan`).
    pub fn switch_pids(&self) -> Vec<u32> {
        [&self.switch, &self.peer]
            .into_iter()
            .flatten()
            .map(|s| s.child.id())
            .collect()
    }

    /// True while the switch children run.
    pub fn switch_alive(&mut self) -> bool {
        self.switch.is_some()
            && [&mut self.switch, &mut self.peer]
                .into_iter()
                .flatten()
                .all(|s| matches!(s.child.try_wait(), Ok(None)))
    }

    pub fn stop_switch(&mut self) {
        for s in [self.switch.take(), self.peer.take()].into_iter().flatten() {
            let mut s = s;
            s.stop();
        }
        if netns::exists(UNDERLAY_NS) {
            let _ = netns::del(UNDERLAY_NS);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_ovs();
        self.stop_switch();
        for f in self.topo_files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
        for dev in ["shb-xgp", "shb-xsp"] {
            if std::path::Path::new("/sys/class/net").join(dev).exists() {
                let _ = netns::ip(&["link", "del", dev]);
            }
        }
        if self.bridge && netns::exists(BRIDGE_NS) {
            // The bridge and the veths' ends in it go with it.
            let _ = netns::del(BRIDGE_NS);
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
    let _ = Command::new(std::env::current_exe().unwrap_or_else(|_| "shunt".into()))
        .args(["down", PEER_SWITCH])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    // The bridge's devices in the machine's namespace: builds before
    // shb-br.
    for dev in ["shb-bgp", "shb-bsp", "shb-xgp", "shb-xsp", BRIDGE] {
        let _ = netns::ip(&["link", "del", dev]);
    }
    for ns in [GEN_NS, SINK_NS, UNDERLAY_NS, BRIDGE_NS] {
        if netns::exists(ns) {
            let _ = netns::del(ns);
        }
    }
    super::ovs::cleanup_stale();
}

/// Runs `script` with `sh -c` in namespace `ns` (`ip netns exec`, which
/// also mounts that namespace's /sys).
fn ns_sh(ns: &str, script: &str) -> Result<(), netns::NetnsError> {
    netns::run("ip", &["netns", "exec", ns, "sh", "-c", script]).map(|_| ())
}

/// Makes namespace `ns` (anew) for a kernel bridge, with br_netfilter's
/// hooks on or off for the frames it bridges (`net.bridge.bridge-nf-call-*`,
/// per namespace since Linux 5.3; absent without br_netfilter, and then
/// off). Each value is read back: a setting that did not take fails the
/// bench rather than measuring the other bridge.
fn bridge_ns(ns: &str, netfilter: bool) -> Result<(), BenchError> {
    if netns::exists(ns) {
        let _ = netns::del(ns);
    }
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    let v = u8::from(netfilter);
    for k in ["iptables", "ip6tables", "arptables"] {
        let f = format!("/proc/sys/net/bridge/bridge-nf-call-{k}");
        let set = format!("[ ! -e {f} ] || {{ echo {v} > {f} && [ \"$(cat {f})\" = {v} ]; }}");
        ns_sh(ns, &set).map_err(|e| BenchError::Setup(format!("{ns}: setting {f} to {v}: {e}")))?;
    }
    Ok(())
}

/// The bench's lock (/run/shunt-bench.lock), taken without waiting.
fn take_lock() -> Result<nix::fcntl::Flock<std::fs::File>, BenchError> {
    let path = "/run/shunt-bench.lock";
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| BenchError::Setup(format!("opening {path}: {e}")))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        BenchError::Setup(format!(
            "another `shunt bench` is running (it holds {path}: {e}); its namespaces have the same names, so wait for it to end"
        ))
    })
}

struct SwitchChild {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// `[switch] poll` and `tap_io` as it runs them.
    modes: (String, String),
}

impl SwitchChild {
    /// SIGTERM (shunt removes its devices), then SIGKILL after 10 s.
    fn stop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// SIGTERM to `child`, then SIGKILL if it has not exited after `grace`.
pub(super) fn terminate(child: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// What the switch under test is run with.
#[derive(Debug, Clone, Copy)]
pub struct SwitchOpts {
    pub kind: PortKind,
    pub workers: usize,
    /// `[switch] bare`: no switching logic.
    pub bare: bool,
    /// Set up for iperf3 (addresses in the namespaces).
    pub tcp: Option<TcpSetup>,
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
    for name in ["gen", "sink"] {
        let underlay = vxlan && name == "sink";
        let (membership, outer_mtu) = if underlay {
            ("mode = \"underlay\"\nmtu = 1600\n", Some(1600))
        } else {
            ("mode = \"access\"\nnetwork = \"bench\"\n", None)
        };
        let ns = if name == "gen" { GEN_NS } else { SINK_NS };
        t.push_str(&host_port_mtu(kind, name, ns, membership, outer_mtu)?);
    }
    Ok(t)
}

/// `--impair-other`: a third port, a TAP into the sink's namespace that no
/// trial sends to, to impair beside the measured path.
pub const OTHER_PORT: &str = "\n[[port]]\nname = \"other\"\nkind = \"tap\"\ninterface = \"shb-to\"\nnamespace = \"shb-sink\"\nmode = \"access\"\nnetwork = \"bench\"\n";

/// The interfaces of the generator's and the sink's ports inside their
/// namespaces.
impl PortKind {
    pub fn host_ifs(self) -> (&'static str, &'static str) {
        match self {
            PortKind::Tap => ("shb-tg", "shb-ts"),
            PortKind::Afxdp | PortKind::Packet => ("shb-xg", "shb-xs"),
        }
    }
}

/// The `[[port]]` table of the generator's (`name` "gen") or the sink's
/// ("sink") port, with `membership` (its mode and network keys); for a
/// veth kind, the veth pair is made here.
fn host_port(kind: PortKind, name: &str, ns: &str, membership: &str) -> Result<String, BenchError> {
    host_port_mtu(kind, name, ns, membership, None)
}

fn host_port_mtu(
    kind: PortKind,
    name: &str,
    ns: &str,
    membership: &str,
    outer_mtu: Option<u16>,
) -> Result<String, BenchError> {
    let (g, s) = kind.host_ifs();
    let inner = if name == "gen" { g } else { s };
    match kind {
        PortKind::Tap => Ok(format!(
            "\n[[port]]\nname = \"{name}\"\nkind = \"tap\"\ninterface = \"{inner}\"\n\
             namespace = \"{ns}\"\n{membership}"
        )),
        PortKind::Afxdp | PortKind::Packet => {
            if kind == PortKind::Afxdp && !super::AFXDP_READY {
                return Err(BenchError::Unavailable(
                    "--port-kind afxdp: AF_XDP ports are not available in shunt yet; use --port-kind tap".into(),
                ));
            }
            // A veth pair: the inner end in the namespace (shb-xg, shb-xs),
            // the outer end (shb-xgp, shb-xsp) attached by the switch with
            // AF_XDP or a packet socket.
            let outer = format!("{inner}p");
            let _ = netns::ip(&["link", "del", &outer]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", inner, "netns", ns,
            ])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&["-n", ns, "link", "set", inner, "up"])?;
            // Complete checksums from the namespaces' stacks (iperf3 in
            // --tcp): AF_XDP carries no partial-checksum note
            // (docs/afxdp.md, "Checksums"). A packet port carries it in
            // the virtio-net header: the offloads stay on.
            if kind == PortKind::Afxdp {
                shunt_switch::port::sys::tx_checksum_off(ns, inner)
                    .map_err(|e| BenchError::Setup(e.to_string()))?;
            }
            if let Some(m) = outer_mtu {
                ip(&["link", "set", &outer, "mtu", &m.to_string()])?;
            }
            Ok(format!(
                "\n[[port]]\nname = \"{name}\"\nkind = \"{}\"\ninterface = \"{outer}\"\n{membership}",
                kind.as_str()
            ))
        }
    }
}

/// The `[switch]` keys the bench's options set.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwitchKeys {
    pub poll: Option<super::Poll>,
    pub tap_io: Option<super::TapIo>,
    pub multiqueue: bool,
}

/// `topo` with the `[switch]` keys of the options set (every topology of
/// the bench has its [switch] table first).
fn with_switch_keys(topo: &str, k: &SwitchKeys) -> String {
    let mut keys = String::from("[switch]\n");
    if let Some(p) = k.poll {
        keys.push_str(&format!("poll = \"{}\"\n", p.as_str()));
    }
    if let Some(t) = k.tap_io {
        keys.push_str(&format!("tap_io = \"{}\"\n", t.as_str()));
    }
    if k.multiqueue {
        keys.push_str("multiqueue = true\n");
    }
    topo.replacen("[switch]\n", &keys, 1)
}

/// The topology of one of the two switches of `--tcp --vxlan`: a VXLAN
/// network (VNI 2000) with one VTEP peer, the underlay TAP `ul_if` in
/// [`UNDERLAY_NS`], and `host` (the host port's `[[port]]` table).
fn pair_topology(
    name: &str,
    workers: usize,
    me: &str,
    peer: &str,
    ul_if: &str,
    host: &str,
) -> String {
    format!(
        "# Generated by `shunt bench --tcp --vxlan`.\n[switch]\nname = \"{name}\"\n\
         workers = {workers}\n\n[[network]]\nname = \"bench\"\nvni = 2000\n\
         vtep_peers = [\"{peer}\"]\n\n[vtep]\nport = \"ul\"\naddress = \"{me}/24\"\n\n\
         [[port]]\nname = \"ul\"\nkind = \"tap\"\ninterface = \"{ul_if}\"\n\
         namespace = \"{UNDERLAY_NS}\"\nmode = \"underlay\"\n{host}"
    )
}

/// The port tables of a VXLAN host: access to "bench", the inner MTU.
const VXLAN_HOST: &str = "mode = \"access\"\nnetwork = \"bench\"\nmtu = 1450\n";

/// Addresses for iperf3 on one path: the generator's and the sink's.
#[derive(Debug, Clone, Copy)]
pub struct TcpAddrs {
    pub gen_v4: &'static str,
    pub sink_v4: &'static str,
    pub gen_v6: &'static str,
    pub sink_v6: &'static str,
}

/// What the TCP runs need of the lab.
#[derive(Debug, Clone, Copy)]
pub struct TcpSetup {
    /// Give the paths IPv6 addresses too.
    pub ipv6: bool,
}

pub const BRIDGE_TCP: TcpAddrs = TcpAddrs {
    gen_v4: "10.199.2.1",
    sink_v4: "10.199.2.2",
    gen_v6: "fd00:199:2::1",
    sink_v6: "fd00:199:2::2",
};
pub const SHUNT_TCP: TcpAddrs = TcpAddrs {
    gen_v4: "10.199.1.1",
    sink_v4: "10.199.1.2",
    gen_v6: "fd00:199:1::1",
    sink_v6: "fd00:199:1::2",
};
/// Inside the kernel's VXLAN (`--tcp --vxlan`).
pub const KVX_TCP: TcpAddrs = TcpAddrs {
    gen_v4: "10.199.4.1",
    sink_v4: "10.199.4.2",
    gen_v6: "fd00:199:4::1",
    sink_v6: "fd00:199:4::2",
};
/// Inside shunt's VXLAN (`--tcp --vxlan`).
pub const SHUNT_VXLAN_TCP: TcpAddrs = TcpAddrs {
    gen_v4: "10.199.5.1",
    sink_v4: "10.199.5.2",
    gen_v6: "fd00:199:5::1",
    sink_v6: "fd00:199:5::2",
};
/// The kernel's VXLAN: its vxlan devices and their underlay addresses
/// (on the bridge path's veths).
pub const KVX_DEV: &str = "shb-kvx";
const KVX_UNDERLAY: (&str, &str) = ("192.0.3.1", "192.0.3.2");
/// shunt's VXLAN: the second switch, the underlay namespace (one kernel
/// bridge joins the switches' underlay TAPs), the VTEP addresses.
pub const PEER_SWITCH: &str = "shb2";
pub const UNDERLAY_NS: &str = "shb-ul";
const VTEP_ADDRS: (&str, &str) = ("192.0.3.11", "192.0.3.12");

/// Puts `a` on the generator's and the sink's interfaces `devs`, with
/// IPv6 (enabled on those two interfaces only: the namespaces keep it off
/// for the frame-size trials) when `ipv6`.
fn addresses(a: &TcpAddrs, devs: (&str, &str), ipv6: bool) -> Result<(), BenchError> {
    for (ns, dev, v4, v6) in [
        (GEN_NS, devs.0, a.gen_v4, a.gen_v6),
        (SINK_NS, devs.1, a.sink_v4, a.sink_v6),
    ] {
        ip(&["-n", ns, "addr", "replace", &format!("{v4}/24"), "dev", dev])?;
        if ipv6 {
            let set = format!("net.ipv6.conf.{dev}.disable_ipv6=0");
            netns::run("ip", &["netns", "exec", ns, "sysctl", "-qw", &set])
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            ip(&[
                "-n",
                ns,
                "-6",
                "addr",
                "replace",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
        }
    }
    Ok(())
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

    /// The two switches of `--tcp --vxlan`: a VTEP each, the host port at
    /// the inner MTU (1450, as the kernel's vxlan devices get).
    #[test]
    fn pair_topologies_parse() {
        let host = host_port(PortKind::Tap, "gen", GEN_NS, VXLAN_HOST).expect("tap port");
        let t = pair_topology(SWITCH, 1, VTEP_ADDRS.0, VTEP_ADDRS.1, "shb-ua", &host);
        let topo = shunt_switch::config::parse("pair.toml", &t).expect("pair topology parses");
        assert_eq!(topo.networks[0].vni, Some(2000));
        assert!(topo.vtep.is_some());
        assert_eq!(topo.ports.len(), 2);
        let gen = topo
            .ports
            .iter()
            .find(|p| p.name == "gen")
            .expect("the host port");
        assert_eq!(gen.mtu, 1450);
        let keys = SwitchKeys {
            poll: Some(super::super::Poll::Busy),
            tap_io: Some(super::super::TapIo::Uring),
            multiqueue: true,
        };
        let t = with_switch_keys(&t, &keys);
        let topo = shunt_switch::config::parse("pair.toml", &t).expect("with poll, parses");
        assert!(
            t.contains("[switch]\npoll = \"busy\"\ntap_io = \"uring\"\nmultiqueue = true\n"),
            "{t}"
        );
        assert_eq!(topo.switch.tap_queues, topo.switch.workers);
        assert_eq!(topo.switch.poll.name(), "busy");
        assert_eq!(topo.switch.tap_io.name(), "uring");
    }
}
