//! `shunt bench` itself: a short TCP comparison runs, reports both paths,
//! says how the kernel bridge ran (`bridge_netfilter`), and leaves no
//! namespace behind. Not a timing test: it asserts that traffic moved,
//! not how fast.
//!
//! The bench has fixed names (shb-gen, shb-br, ...), so it runs in a
//! network and mount namespace of its own, as perf/issue12.sh runs it: a
//! bench someone runs by hand on the machine is not disturbed, and the
//! namespaces it leaves (if any) are seen in that private /run/netns.

use std::process::Command;

use crate::ensure;
use crate::harness::{TestResult, SHUNT};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![("bench::tcp_both_paths_and_clean_up", tcp_both_paths)]
}

/// The `--vs-ovs` tests: they need Open vSwitch's programs.
pub fn ovs_tests() -> Vec<Test> {
    vec![
        ("bench::vs_ovs_frames_and_tcp", vs_ovs),
        ("bench::vs_ovs_tap_ports_tcp", vs_ovs_tap),
    ]
}

/// Open vSwitch is installed (scripts/setup.sh installs it).
pub fn ovs_prerequisites() -> Result<(), String> {
    match ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"]
        .into_iter()
        .find(|p| !crate::harness::on_path(p))
    {
        Some(p) => Err(format!(
            "{p} not found (apt-get install openvswitch-switch)"
        )),
        None => Ok(()),
    }
}

/// Runs `shunt bench ARGS` in private namespaces; then lists the network
/// namespaces left there. Returns (status ok, stdout, stderr, left).
fn bench(args: &[&str]) -> Result<(bool, String, String, String), String> {
    let script = r#"
        mkdir -p /run/netns && mount -t tmpfs bench-netns /run/netns &&
        mkdir -p /run/shunt && mount -t tmpfs bench-shunt /run/shunt &&
        mount -t sysfs bench-sys /sys && ip link set lo up || exit 97
        "$@"; rc=$?
        echo "left: $(ip netns list | awk '{print $1}' | tr '\n' ' ')" >&2
        exit $rc"#;
    let out = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(SHUNT)
        .arg("bench")
        .args(args)
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let left = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("left: "))
        .unwrap_or("?")
        .trim()
        .to_string();
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        left,
    ))
}

fn tcp_both_paths() -> TestResult {
    let (ok, stdout, stderr, left) = bench(&[
        "--tcp-only",
        "--vs-linux-bridge",
        "--duration",
        "2",
        "--json",
        "--quiet",
    ])?;
    ensure!(ok, "shunt bench failed: {stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|e| format!("bench --json: {e}: {stdout}"))?;
    ensure!(
        v["bridge_netfilter"] == serde_json::Value::Bool(false),
        "bridge_netfilter is {} without --bridge-netfilter",
        v["bridge_netfilter"]
    );
    let runs = v["tcp"].as_array().cloned().unwrap_or_default();
    for path in ["linux-bridge", "shunt"] {
        let rate = runs
            .iter()
            .filter(|r| r["path"] == path)
            .filter_map(|r| r["gbit_per_s"].as_f64())
            .next();
        eprintln!("bench: {path} {rate:?} Gbit/s");
        ensure!(
            rate.is_some_and(|g| g > 0.1),
            "no TCP through {path}: {rate:?} Gbit/s in {runs:?}"
        );
    }
    ensure!(
        v["tcp_ratios"].as_array().is_some_and(|r| !r.is_empty()),
        "no tcp_ratios: {}",
        v["tcp_ratios"]
    );
    ensure!(left.is_empty(), "the bench left namespaces behind: {left}");
    Ok(())
}

/// The bench's Open vSwitch directory: gone when the bench ends.
const OVS_DIR: &str = "/run/shunt-bench-ovs";

/// `--vs-ovs`: 64-byte frames and TCP through Open vSwitch's userspace
/// datapath beside shunt's (packet ports: AF_PACKET on both); the ratios
/// name it; its daemons, veths and directory are gone afterwards.
fn vs_ovs() -> TestResult {
    let (ok, stdout, stderr, left) = bench(&[
        "--sizes",
        "64",
        "--duration",
        "2",
        "--latency-at",
        "0",
        "--tcp",
        "--vs-ovs",
        "--port-kind",
        "packet",
        "--json",
        "--quiet",
    ])?;
    ensure!(ok, "shunt bench --vs-ovs failed: {stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|e| format!("bench --json: {e}: {stdout}"))?;
    ensure!(
        v["ovs_port_type"] == "system",
        "ovs_port_type is {}, not \"system\" with --port-kind packet",
        v["ovs_port_type"]
    );
    let paths = v["sizes"][0]["paths"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fps = |name: &str| {
        paths
            .iter()
            .find(|p| p["path"] == name)
            .and_then(|p| p["max"]["fps"].as_f64())
    };
    for name in ["ovs", "shunt"] {
        eprintln!("bench: 64 B {name} {:?} frames/s", fps(name));
        ensure!(
            fps(name).is_some_and(|f| f > 1000.0),
            "64-byte frames through {name}: {:?} frames/s",
            fps(name)
        );
    }
    let ratios = v["sizes"][0]["ratios"].to_string();
    ensure!(ratios.contains("shunt/ovs"), "no shunt/ovs ratio: {ratios}");
    let runs = v["tcp"].as_array().cloned().unwrap_or_default();
    for path in ["ovs", "shunt"] {
        let rate = runs
            .iter()
            .find(|r| r["path"] == path)
            .and_then(|r| r["gbit_per_s"].as_f64());
        eprintln!("bench: TCP {path} {rate:?} Gbit/s");
        ensure!(
            rate.is_some_and(|g| g > 0.1),
            "no TCP through {path}: {rate:?} Gbit/s in {runs:?}"
        );
        let cpu = runs
            .iter()
            .find(|r| r["path"] == path)
            .and_then(|r| r["switch_cpu"].as_f64());
        ensure!(cpu.is_some(), "no switch_cpu for {path}: {runs:?}");
    }
    ensure!(
        v["tcp_ratios"].to_string().contains("shunt/ovs"),
        "no shunt/ovs TCP ratio: {}",
        v["tcp_ratios"]
    );
    ovs_gone(&left)
}

/// Nothing of the bench's Open vSwitch is left: namespaces, its
/// directory, its daemons.
fn ovs_gone(left: &str) -> TestResult {
    ensure!(left.is_empty(), "the bench left namespaces behind: {left}");
    ensure!(
        !std::path::Path::new(OVS_DIR).exists(),
        "the bench left {OVS_DIR} behind"
    );
    let procs = Command::new("pgrep")
        .args(["-f", OVS_DIR])
        .output()
        .map_err(|e| format!("pgrep: {e}"))?;
    let procs = String::from_utf8_lossy(&procs.stdout).trim().to_string();
    ensure!(
        procs.is_empty(),
        "Open vSwitch processes of the bench still run: {procs}"
    );
    Ok(())
}

/// `--vs-ovs --port-kind tap`: Open vSwitch's own TAPs, moved into the
/// hosts' namespaces, carry TCP.
fn vs_ovs_tap() -> TestResult {
    let (ok, stdout, stderr, left) = bench(&[
        "--tcp-only",
        "--vs-ovs",
        "--port-kind",
        "tap",
        "--duration",
        "2",
        "--json",
        "--quiet",
    ])?;
    ensure!(ok, "shunt bench --vs-ovs --port-kind tap failed: {stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|e| format!("bench --json: {e}: {stdout}"))?;
    ensure!(
        v["ovs_port_type"] == "tap",
        "ovs_port_type is {}, not \"tap\" with --port-kind tap",
        v["ovs_port_type"]
    );
    let rate = v["tcp"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["path"] == "ovs"))
        .and_then(|r| r["gbit_per_s"].as_f64());
    eprintln!("bench: TCP ovs over TAPs {rate:?} Gbit/s");
    ensure!(
        rate.is_some_and(|g| g > 0.1),
        "no TCP through Open vSwitch's TAPs: {rate:?} Gbit/s in {}",
        v["tcp"]
    );
    ovs_gone(&left)
}
