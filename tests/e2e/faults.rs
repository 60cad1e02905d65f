//! Faults (issue 17): what happens when the world under the switch goes
//! away. Each test brings its own switch (names `sq<N><run>`); results and
//! the bugs they found are in docs/reliability.md ("Faults").
//!
//! - `kill -9` in the middle of `shunt up`, after some devices exist: the
//!   next `down` (or `up`, then `down`) leaves no namespace, no device and
//!   no file of it;
//! - an AF_XDP port's interface deleted under traffic: the port goes down
//!   (said in the log and by `shunt ports`), the switch lives and the other
//!   hosts still reach each other;
//! - a host's namespace deleted under traffic, then the host detached and
//!   attached again: it comes back (that attach failed before);
//! - a read-only or a full /run/shunt at start-up: a clear error naming the
//!   file, exit status 1 (not a panic), and nothing created.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{
    exec, netns_exists, output_timeout, ping, run, run_id, Background, Switch, TestResult, SHUNT,
};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        (
            "faults::kill_during_up_leaves_nothing",
            kill_during_up_leaves_nothing,
        ),
        (
            "faults::afxdp_interface_deleted_under_traffic",
            afxdp_interface_deleted_under_traffic,
        ),
        (
            "faults::namespace_deleted_then_attached_again",
            namespace_deleted_then_attached_again,
        ),
        (
            "faults::run_dir_read_only_or_full",
            run_dir_read_only_or_full,
        ),
    ]
}

/// A one-network topology: hosts `sw` + each letter, with `keys` lines each
/// (by letter), the switch's address .1.
fn lab(sw: &str, net: u8, hosts: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut t = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 2\n\n[[network]]\nname = \"lan\"\n\
         subnet = \"10.86.{net}.0/24\"\naddress = \"10.86.{net}.1\"\n"
    );
    let mut names = Vec::new();
    for (h, keys) in hosts {
        let name = format!("{sw}{h}");
        t += &format!("\n[[host]]\nname = \"{name}\"\nnetworks = [\"lan\"]\n{keys}");
        names.push(name);
    }
    (t, names)
}

const VETH_AFXDP: &str = "link = \"veth\"\nveth_attach = \"afxdp\"\n";
const VETH_PACKET: &str = "link = \"veth\"\n";

/// Devices in this namespace whose names the switch of `pid` made
/// (`sht<pid hex>x<n>` TAPs, `shv<pid hex>x<n>` veth ends).
fn devices_of(pid: u32) -> Vec<String> {
    let out = run("ip", &["-br", "link"]).unwrap_or_default();
    let (t, v) = (format!("sht{pid:x}x"), format!("shv{pid:x}x"));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(&t) || n.starts_with(&v))
        .collect()
}

fn files_of(sw: &str) -> Vec<String> {
    ["sock", "state", "log", "state.tmp"]
        .iter()
        .map(|e| format!("/run/shunt/{sw}.{e}"))
        .filter(|p| Path::new(p).exists())
        .collect()
}

/// What `down` must have removed: namespaces, devices of every pid the
/// switch ran as, files under /run/shunt, resolver folders.
fn nothing_left(sw: &str, hosts: &[String], pids: &[u32]) -> Result<(), String> {
    let ns: Vec<&String> = hosts.iter().filter(|h| netns_exists(h)).collect();
    let devs: Vec<String> = pids.iter().flat_map(|p| devices_of(*p)).collect();
    let files = files_of(sw);
    let resolv: Vec<&String> = hosts
        .iter()
        .filter(|h| Path::new(&format!("/etc/netns/{h}")).exists())
        .collect();
    if ns.is_empty() && devs.is_empty() && files.is_empty() && resolv.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "left behind: namespaces {ns:?}, devices {devs:?}, files {files:?}, resolver folders {resolv:?}"
        ))
    }
}

fn kill_during_up_leaves_nothing() -> TestResult {
    let sw = format!("sq2{:03}", run_id());
    let (toml, hosts) = lab(
        &sw,
        2,
        &[
            ("a", ""),
            ("b", VETH_PACKET),
            ("c", VETH_AFXDP),
            ("d", ""),
            ("e", VETH_PACKET),
            ("f", VETH_AFXDP),
        ],
    );
    // The guard downs the switch and deletes the namespaces whatever happens.
    let guard = Switch::up_toml(&sw, &toml, &hosts)?;
    let file = guard.file.to_string_lossy().into_owned();
    run(SHUNT, &["down", "--name", &sw])?;
    // Killed when 1, 3 and 5 of the 6 namespaces exist (devices of the
    // earlier hosts are in them by then); cleaned by `down`, by `up` + `down`.
    for (round, at) in [1usize, 3, 5].into_iter().enumerate() {
        let mut child = Command::new(SHUNT)
            .args(["up", &file])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting shunt up: {e}"))?;
        let pid = child.id();
        let t = Instant::now();
        let mut seen = 0;
        while t.elapsed() < Duration::from_secs(60) {
            seen = hosts.iter().filter(|h| netns_exists(h)).count();
            if seen >= at || matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let devices = devices_of(pid);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        eprintln!(
            "kill -9 at round {round}: {seen} namespaces, devices in ours {devices:?} after {:?}",
            t.elapsed()
        );
        ensure!(
            seen >= at,
            "shunt up never had {at} namespaces (had {seen})"
        );
        let mut pids = vec![pid];
        if round == 1 {
            // `up` cleans first, comes up, and `down` removes it all.
            let out = run(SHUNT, &["up", &file, "--detach"])?;
            if let Some(p) = out
                .split("pid ")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|p| p.parse().ok())
            {
                pids.push(p);
            }
            ping(&hosts[0], "10.86.2.1")?;
        }
        let out = run(SHUNT, &["down", "--name", &sw])?;
        // The kernel frees a deleted namespace's devices (veth pairs with
        // it) a moment later, asynchronously: allowed 10 s.
        let t = Instant::now();
        let mut left = nothing_left(&sw, &hosts, &pids);
        while left.is_err() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            left = nothing_left(&sw, &hosts, &pids);
        }
        eprintln!("  down: {} (all gone {:?} later)", out.trim(), t.elapsed());
        left.map_err(|e| format!("round {round}: 10 s after down: {e}"))?;
    }
    drop(guard);
    Ok(())
}

fn afxdp_interface_deleted_under_traffic() -> TestResult {
    let sw = format!("sq3{:03}", run_id());
    let (toml, hosts) = lab(&sw, 3, &[("a", VETH_AFXDP), ("b", VETH_AFXDP), ("c", "")]);
    let s = Switch::up_toml(&sw, &toml, &hosts)?;
    let port_b = format!("{}.lan", hosts[1]);
    let outer = outer_end(&hosts[1])?;
    let state = std::fs::read_to_string(format!("/run/shunt/{sw}.state")).unwrap_or_default();
    // a floods b with pings (and c with pings) while b's outer veth goes.
    ping(&hosts[0], "10.86.3.3")?;
    let _to_b = Background::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &hosts[0],
            "ping",
            "-i",
            "0.002",
            "-W",
            "1",
            "-q",
            "10.86.3.3",
        ],
    )?;
    let _to_c = Background::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &hosts[0],
            "ping",
            "-i",
            "0.01",
            "-W",
            "1",
            "-q",
            "10.86.3.4",
        ],
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let before = s.stats()?;
    run("ip", &["link", "del", &outer])?;
    let t = Instant::now();
    let mut down = false;
    while t.elapsed() < Duration::from_secs(5) {
        down = s.ports()?.iter().any(|p| p.name == port_b && !p.up);
        if down {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(down, "port {port_b} still up 5 s after {outer} was deleted");
    std::thread::sleep(Duration::from_secs(1));
    let mid = s.stats()?;
    std::thread::sleep(Duration::from_secs(1));
    let after = s.stats()?;
    // Nothing goes out of the dead port any more; the rest goes on.
    let tx = |st: &crate::harness::Stats| st.port(&port_b, "tx_frames");
    let port_c = format!("{}.lan", hosts[2]);
    eprintln!(
        "afxdp port gone: {port_b} tx {} -> {} -> {}, up {}; {port_c} rx {} -> {}; drops {:?}",
        tx(&before),
        tx(&mid),
        tx(&after),
        after.json["ports"][&port_b]["up"],
        mid.port(&port_c, "rx_frames"),
        after.port(&port_c, "rx_frames"),
        after
            .typed
            .drops
            .iter()
            .filter(|(_, v)| **v > 0)
            .collect::<Vec<_>>()
    );
    ensure!(
        tx(&after) == tx(&mid),
        "frames still counted as sent out of the deleted port: {} -> {}",
        tx(&mid),
        tx(&after)
    );
    ensure!(
        after.port(&port_c, "rx_frames") > mid.port(&port_c, "rx_frames"),
        "c stopped answering a after b's interface went"
    );
    ping(&hosts[0], "10.86.3.4")?;
    let log = std::fs::read_to_string(format!("/run/shunt/{sw}.log")).unwrap_or_default();
    ensure!(
        log.contains(&format!("port {port_b} is down")) && !log.contains("panick"),
        "the log does not say the port went down (or says a panic): {log}"
    );
    let state2 = std::fs::read_to_string(format!("/run/shunt/{sw}.state")).unwrap_or_default();
    ensure!(state == state2, "the switch restarted: {state} -> {state2}");
    Ok(())
}

/// The switch's end of the veth whose other end is eth0 in `ns` (by the
/// peer's ifindex, as `ip -j link` gives it).
fn outer_end(ns: &str) -> Result<String, String> {
    let inner: serde_json::Value = serde_json::from_str(&run(
        "ip",
        &["-n", ns, "-j", "link", "show", "dev", "eth0"],
    )?)
    .map_err(|e| format!("ip -j link: {e}"))?;
    let peer = inner[0]["link_index"].as_u64().ok_or("eth0 has no peer")?;
    let all: serde_json::Value = serde_json::from_str(&run("ip", &["-j", "link", "show"])?)
        .map_err(|e| format!("ip -j link: {e}"))?;
    all.as_array()
        .and_then(|a| a.iter().find(|d| d["ifindex"].as_u64() == Some(peer)))
        .and_then(|d| d["ifname"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no device with ifindex {peer} (the peer of eth0 in {ns})"))
}

fn namespace_deleted_then_attached_again() -> TestResult {
    let sw = format!("sq4{:03}", run_id());
    let (toml, hosts) = lab(&sw, 4, &[("a", ""), ("b", "")]);
    let s = Switch::up_toml(&sw, &toml, &hosts)?;
    let (a, b) = (&hosts[0], &hosts[1]);
    ping(a, "10.86.4.3")?;
    // Pings into b (from a) go on while b's namespace goes; nothing runs
    // inside b, so the namespace and its TAP really go away.
    let _pings = Background::spawn(
        "ip",
        &[
            "netns",
            "exec",
            a,
            "ping",
            "-i",
            "0.01",
            "-W",
            "1",
            "-q",
            "10.86.4.3",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    run("ip", &["netns", "del", b])?;
    let port_b = format!("{b}.lan");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5)
        && s.ports()?.iter().any(|p| p.name == port_b && p.up)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(
        s.ports()?.iter().any(|p| p.name == port_b && !p.up),
        "{port_b} did not go down with its namespace"
    );
    s.cmd(&["detach", b, "lan"])?;
    // This failed: `ip link set dev ... netns B` on a namespace that is gone.
    let out = s.cmd(&["attach", b, "lan"])?;
    ensure!(
        out.contains("10.86.4.3"),
        "{b} came back with another address: {out}"
    );
    ensure!(netns_exists(b), "attach did not make {b}'s namespace again");
    ping(a, "10.86.4.3")?;
    ping(b, "10.86.4.2")?;
    exec(b, &["ip", "link", "show", "eth0"])?;
    drop(s);
    ensure!(
        !netns_exists(b),
        "the namespace made again was left behind by `down`"
    );
    Ok(())
}

/// `shunt up` inside a mount namespace of its own, where /run/shunt is
/// `mount` (read-only, or 4 KiB and full) and /run/netns a tmpfs of its
/// own (whatever `up` might create there goes with the mount namespace).
fn up_in(mount: &str, fill: bool, file: &str, detach: bool) -> Result<(i32, String), String> {
    let script = format!(
        "mount -t tmpfs {mount} sq-run /run/shunt && mount -t tmpfs sq-netns /run/netns && \
         {} exec \"$0\" up \"$1\" {}",
        if fill {
            "(dd if=/dev/zero of=/run/shunt/fill bs=4096 2>/dev/null; true) &&"
        } else {
            ""
        },
        if detach { "--detach" } else { "" }
    );
    let out = output_timeout(
        "unshare",
        &[
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            SHUNT,
            file,
        ],
        Duration::from_secs(60),
    )?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

fn run_dir_read_only_or_full() -> TestResult {
    let sw = format!("sq5{:03}", run_id());
    let (toml, hosts) = lab(&sw, 5, &[("a", ""), ("b", VETH_PACKET)]);
    let file = std::env::temp_dir().join(format!("shunt-e2e-{sw}.toml"));
    std::fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
    let f = file.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for (what, mount, fill, detach, want) in [
        (
            "read-only, foreground",
            "-o ro",
            false,
            false,
            "Read-only file system",
        ),
        (
            "read-only, --detach",
            "-o ro",
            false,
            true,
            "Read-only file system",
        ),
        (
            "full, foreground",
            "-o size=4k",
            true,
            false,
            "No space left on device",
        ),
        (
            "full, --detach",
            "-o size=4k",
            true,
            true,
            "No space left on device",
        ),
    ] {
        let (code, err) = up_in(mount, fill, &f, detach)?;
        eprintln!("/run/shunt {what}: exit {code}: {err}");
        let clear = err.contains(want) && err.contains(&format!("/run/shunt/{sw}."));
        if code != 1 || !clear {
            failures.push(format!("{what}: exit {code} (want 1), said {err:?}"));
        }
    }
    let _ = std::fs::remove_file(&file);
    let left: Vec<&String> = hosts.iter().filter(|h| netns_exists(h)).collect();
    ensure!(left.is_empty(), "namespaces made: {left:?}");
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}
