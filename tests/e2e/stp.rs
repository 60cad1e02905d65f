//! Spanning tree (docs/stp.md) with real namespaces and the Linux kernel's
//! own bridge STP (802.1D, `stp_state 1`) as the reference:
//!
//! - a loop of shunt and two kernel bridges, each pair joined by a veth
//!   (shunt's ends are packet ports): it converges with one port blocked,
//!   `shunt stp --json` and /sys/class/net/br0/brif/*/state agree, a
//!   broadcast from each host reaches every other host exactly once, and
//!   taking a link down reconverges so that the hosts ping again;
//! - two shunts in a loop with each other (two veth links): RSTP's
//!   proposal/agreement converges within seconds, one port alternate.
//!
//! Names: `stRRR*` and `srRRR*` (RRR: this run's pid), subnets
//! 10.96.1.0/24 and 10.96.2.0/24.

use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{run, run_id, run_timeout, Switch, Tcpdump, TestResult, SHUNT};
use serde_json::Value;

pub fn tests() -> Vec<crate::l2::Test> {
    vec![
        ("stp::loop_with_kernel_bridges", loop_with_kernel_bridges),
        ("stp::two_shunts_in_a_loop", two_shunts_in_a_loop),
    ]
}

/// The kernel bridge with STP: `Err(reason)` when this kernel has none.
pub fn prerequisites() -> Result<(), String> {
    let ns = format!("stprobe{}", std::process::id() % 100000);
    run("ip", &["netns", "add", &ns])?;
    let r = run(
        "ip",
        &[
            "-n",
            &ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "1",
        ],
    )
    .map(drop)
    .map_err(|e| format!("no kernel bridge with STP: {e}"));
    let _ = run("ip", &["netns", "del", &ns]);
    r.and_then(|_| {
        run("tcpdump", &["--version"])
            .map(drop)
            .map_err(|e| format!("no tcpdump: {e}"))
    })
}

/// Namespaces and root-namespace devices of the test's own, removed on
/// drop (also when the test fails).
struct Cleanup {
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = run("ip", &["link", "del", l]);
        }
        for n in &self.namespaces {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

fn ns_run(ns: &str, cmd: &[&str]) -> Result<String, String> {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(cmd);
    run("ip", &a)
}

/// `shunt stp --json` of switch `name`.
fn stp_json(name: &str) -> Result<Value, String> {
    let out = run_timeout(
        SHUNT,
        &["stp", "--name", name, "--json"],
        Duration::from_secs(10),
    )?;
    serde_json::from_str(&out).map_err(|e| format!("`shunt stp --json` is not JSON ({e}): {out}"))
}

/// (role, state) of each port of `v`.
fn port_states(v: &Value) -> Vec<(String, String, String)> {
    v["ports"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        p["role"].as_str().unwrap_or("?").to_string(),
                        p["state"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A kernel bridge port's state (/sys/class/net/br0/brif/IF/state):
/// 0 disabled, 1 listening, 2 learning, 3 forwarding, 4 blocking.
fn brif_state(ns: &str, ifname: &str) -> Result<u8, String> {
    let p = format!("/sys/class/net/br0/brif/{ifname}/state");
    ns_run(ns, &["cat", &p])?
        .trim()
        .parse()
        .map_err(|e| format!("{ns} {p}: {e}"))
}

fn bridge_attr(ns: &str, attr: &str) -> Result<String, String> {
    Ok(
        ns_run(ns, &["cat", &format!("/sys/class/net/br0/bridge/{attr}")])?
            .trim()
            .to_string(),
    )
}

/// Polls `check` every 250 ms until it says Ok(true), for at most `limit`.
fn wait_for(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match check() {
            Ok(true) => return Ok(start.elapsed()),
            Ok(false) => {}
            Err(e) => last = e,
        }
        if start.elapsed() > limit {
            return Err(format!("{what}: not after {limit:?} {last}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// ICMP echo requests to the broadcast address among `frames`.
fn broadcast_pings(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| {
            f.len() > 34
                && f[..6] == [0xff; 6]
                && f[12..14] == [0x08, 0x00]
                && f[23] == 1
                && f[34] == 8
        })
        .count()
}

/// `count` broadcast pings from `ns`, captured on `(namespace, interface)`
/// each: how many copies each saw.
fn broadcast_once(
    ns: &str,
    bcast: &str,
    count: usize,
    at: &[(String, String)],
) -> Result<Vec<usize>, String> {
    let caps = at
        .iter()
        .map(|(n, i)| Tcpdump::start(n, i))
        .collect::<Result<Vec<_>, _>>()?;
    let c = count.to_string();
    // Nobody answers a broadcast ping (icmp_echo_ignore_broadcasts): ping
    // fails, the requests went out.
    let _ = ns_run(ns, &["ping", "-b", "-c", &c, "-i", "0.3", "-W", "1", bcast]);
    std::thread::sleep(Duration::from_millis(700));
    caps.into_iter()
        .map(|t| t.stop().map(|f| broadcast_pings(&f)))
        .collect()
}

fn loop_with_kernel_bridges() -> TestResult {
    let p = format!("st{:03}", run_id());
    let (k1, k2, host) = (format!("{p}k1"), format!("{p}k2"), format!("{p}a"));
    let (s1, s2, x1, x2) = (
        format!("{p}s1"),
        format!("{p}s2"),
        format!("{p}x1"),
        format!("{p}x2"),
    );
    let _clean = Cleanup {
        namespaces: vec![k1.clone(), k2.clone()],
        links: vec![s1.clone(), s2.clone()],
    };
    for ns in [&k1, &k2] {
        let _ = run("ip", &["netns", "del", ns]);
        run("ip", &["netns", "add", ns])?;
        ns_run(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
    }
    for l in [&s1, &s2] {
        let _ = run("ip", &["link", "del", l]);
    }
    // shunt -- k1, shunt -- k2 (outer ends in our namespace), k1 -- k2.
    let (s1p, s2p) = (format!("{s1}p"), format!("{s2}p"));
    run(
        "ip",
        &[
            "link", "add", &s1, "type", "veth", "peer", "name", &s1p, "netns", &k1,
        ],
    )?;
    run(
        "ip",
        &[
            "link", "add", &s2, "type", "veth", "peer", "name", &s2p, "netns", &k2,
        ],
    )?;
    run(
        "ip",
        &[
            "link", "add", &x1, "netns", &k1, "type", "veth", "peer", "name", &x2, "netns", &k2,
        ],
    )?;
    // Kernel bridges with STP: hello 1 s, max age 6 s, forward delay 4 s
    // (iproute2 takes hundredths of a second); k1 beats k2 as a bridge,
    // shunt (priority 4096) beats both and is the root.
    for (ns, ports, prio, ip) in [
        (&k1, [&s1p, &x1], "32768", "10.96.1.12/24"),
        (&k2, [&s2p, &x2], "36864", "10.96.1.13/24"),
    ] {
        ns_run(
            ns,
            &[
                "ip",
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "1",
                "hello_time",
                "100",
                "max_age",
                "600",
                "forward_delay",
                "400",
                "priority",
                prio,
            ],
        )?;
        for port in ports {
            ns_run(ns, &["ip", "link", "set", port, "master", "br0"])?;
            ns_run(ns, &["ip", "link", "set", port, "up"])?;
        }
        ns_run(ns, &["ip", "addr", "add", ip, "dev", "br0"])?;
        ns_run(ns, &["ip", "link", "set", "br0", "up"])?;
        ns_run(ns, &["ip", "link", "set", "lo", "up"])?;
    }
    run("ip", &["link", "set", &s1, "up"])?;
    run("ip", &["link", "set", &s2, "up"])?;
    let toml = format!(
        r#"[switch]
name = "{p}"
workers = 1
stp = "rstp"
stp_priority = 4096
stp_hello_secs = 1
stp_max_age_secs = 6
stp_forward_delay_secs = 4

[[network]]
name = "lan"
subnet = "10.96.1.0/24"

[[host]]
name = "{host}"
networks = ["lan"]
ip = ["10.96.1.11/24"]

[[port]]
name = "k1"
kind = "packet"
interface = "{s1}"
network = "lan"

[[port]]
name = "k2"
kind = "packet"
interface = "{s2}"
network = "lan"
"#
    );
    let mut sw = Switch::up_toml(&p, &toml, std::slice::from_ref(&host))?;
    // Converged: shunt's ports forward, and the kernel blocks exactly one
    // port, k2's towards k1 (equal paths to the root; k1 is the better
    // designated bridge on their link).
    let took = wait_for(Duration::from_secs(45), "convergence", || {
        let v = stp_json(&p)?;
        let ours = port_states(&v);
        let kernel = [
            brif_state(&k1, &s1p)?,
            brif_state(&k1, &x1)?,
            brif_state(&k2, &s2p)?,
            brif_state(&k2, &x2)?,
        ];
        Ok(ours
            .iter()
            .all(|(n, _, s)| s == "forwarding" || n.contains('.'))
            && kernel == [3, 3, 3, 4])
    })?;
    println!("stp::loop_with_kernel_bridges: converged in {took:?}");
    let v = stp_json(&p)?;
    let bridge_id = v["bridge_id"].as_str().unwrap_or("").to_string();
    ensure!(v["root_id"] == v["bridge_id"], "shunt is not the root: {v}");
    for ns in [&k1, &k2] {
        let root = bridge_attr(ns, "root_id")?;
        ensure!(
            root == bridge_id,
            "{ns}'s root {root}, shunt's id {bridge_id}"
        );
    }
    for port in ["k1", "k2"] {
        let pv = &v["ports"][port];
        ensure!(
            pv["role"] == "designated" && pv["state"] == "forwarding" && pv["protocol"] == "stp",
            "{port}: {pv} (towards an STP bridge: designated, forwarding, config BPDUs)"
        );
    }
    ensure!(
        v["ports"][format!("{host}.lan")]["role"] == "edge",
        "the host's port is an edge port: {v}"
    );
    // Exactly once everywhere, back to nobody.
    let at = vec![
        (k1.clone(), "br0".to_string()),
        (k2.clone(), "br0".to_string()),
        (host.clone(), "eth0".to_string()),
    ];
    let seen = broadcast_once(&host, "10.96.1.255", 3, &at)?;
    ensure!(
        seen == vec![3, 3, 0],
        "broadcast copies at k1, k2, the sender: {seen:?}"
    );
    let seen = broadcast_once(
        &k2,
        "10.96.1.255",
        3,
        &[
            (k1.clone(), "br0".to_string()),
            (host.clone(), "eth0".to_string()),
        ],
    )?;
    ensure!(
        seen == vec![3, 3],
        "k2's broadcast at k1 and the host: {seen:?}"
    );
    ns_run(&host, &["ping", "-c", "1", "-W", "2", "10.96.1.13"])?;
    let st: Value = serde_json::from_str(&run(SHUNT, &["stats", "--name", &p, "--json"])?)
        .map_err(|e| format!("stats: {e}"))?;
    ensure!(
        st["stp"]["bpdus_in"].as_u64() > Some(0) && st["stp"]["bpdus_out"].as_u64() > Some(0),
        "stp counters: {}",
        st["stp"]
    );
    // shunt's link to k2 goes down: k2's blocked port is its way to the
    // root now, and the host reaches k2 through k1.
    sw.cmd(&["link", "k2", "down"])?;
    let took = wait_for(Duration::from_secs(60), "reconvergence", || {
        Ok(brif_state(&k2, &x2)? == 3
            && ns_run(&host, &["ping", "-c", "1", "-W", "1", "10.96.1.13"]).is_ok())
    })?;
    println!("stp::loop_with_kernel_bridges: reconverged in {took:?}");
    let v = stp_json(&p)?;
    ensure!(
        v["ports"]["k2"]["role"] == "disabled" && v["ports"]["k2"]["state"] == "discarding",
        "k2 after link down: {}",
        v["ports"]["k2"]
    );
    ensure!(
        bridge_attr(&k2, "root_port")? != "0",
        "k2 has a root port again"
    );
    sw.down()?;
    Ok(())
}

fn two_shunts_in_a_loop() -> TestResult {
    let p = format!("sr{:03}", run_id());
    let (a, b) = (format!("{p}x"), format!("{p}y"));
    let (ha, hb) = (format!("{a}h"), format!("{b}h"));
    let links: Vec<(String, String)> = (1..=2)
        .map(|i| (format!("{p}a{i}"), format!("{p}b{i}")))
        .collect();
    let _clean = Cleanup {
        namespaces: Vec::new(),
        links: links.iter().map(|(x, _)| x.clone()).collect(),
    };
    for (x, y) in &links {
        let _ = run("ip", &["link", "del", x]);
        run("ip", &["link", "add", x, "type", "veth", "peer", "name", y])?;
        run("ip", &["link", "set", x, "up"])?;
        run("ip", &["link", "set", y, "up"])?;
    }
    let topo = |name: &str, host: &str, ip: &str, side: usize| {
        let mut s = format!(
            "[switch]\nname = \"{name}\"\nworkers = 1\nstp = \"rstp\"\n\n[[network]]\nname = \"lan\"\nsubnet = \"10.96.2.0/24\"\n\n[[host]]\nname = \"{host}\"\nnetworks = [\"lan\"]\nip = [\"{ip}\"]\n"
        );
        for (i, l) in links.iter().enumerate() {
            let dev = if side == 0 { &l.0 } else { &l.1 };
            s += &format!(
                "\n[[port]]\nname = \"l{}\"\nkind = \"packet\"\ninterface = \"{dev}\"\nnetwork = \"lan\"\n",
                i + 1
            );
        }
        s
    };
    let mut swa = Switch::up_toml(
        &a,
        &topo(&a, &ha, "10.96.2.11/24", 0),
        std::slice::from_ref(&ha),
    )?;
    let mut swb = Switch::up_toml(
        &b,
        &topo(&b, &hb, "10.96.2.12/24", 1),
        std::slice::from_ref(&hb),
    )?;
    // Proposal and agreement: no forward delay (15 s) to wait.
    let took = wait_for(Duration::from_secs(10), "convergence", || {
        let (va, vb) = (stp_json(&a)?, stp_json(&b)?);
        let all: Vec<_> = port_states(&va)
            .into_iter()
            .chain(port_states(&vb))
            .filter(|(n, _, _)| !n.contains('.'))
            .collect();
        let blocked = all.iter().filter(|(_, _, s)| s == "discarding").count();
        let alternate = all.iter().filter(|(_, r, _)| r == "alternate").count();
        let forwarding = all.iter().filter(|(_, _, s)| s == "forwarding").count();
        Ok(blocked == 1 && alternate == 1 && forwarding == 3 && va["root_id"] == vb["root_id"])
    })?;
    println!("stp::two_shunts_in_a_loop: converged {took:?} after the second switch was up");
    ensure!(
        took <= Duration::from_secs(3),
        "convergence took {took:?}: proposal/agreement should take well under 3 s"
    );
    let (va, vb) = (stp_json(&a)?, stp_json(&b)?);
    let root_is_a = va["root_id"] == va["bridge_id"];
    let (root, other) = if root_is_a { (&va, &vb) } else { (&vb, &va) };
    for port in ["l1", "l2"] {
        ensure!(
            root["ports"][port]["role"] == "designated",
            "root's {port}: {root}"
        );
        ensure!(
            other["ports"][port]["protocol"] == "rstp",
            "{port} speaks RSTP: {other}"
        );
    }
    let seen = broadcast_once(
        &ha,
        "10.96.2.255",
        3,
        &[(hb.clone(), "eth0".into()), (ha.clone(), "eth0".into())],
    )?;
    ensure!(
        seen == vec![3, 0],
        "broadcast copies at the other host, the sender: {seen:?}"
    );
    ns_run(&ha, &["ping", "-c", "2", "-W", "2", "10.96.2.12"])?;
    swb.down()?;
    swa.down()?;
    Ok(())
}
