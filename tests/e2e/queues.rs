//! Multi-queue ports (issue 13): `[switch] multiqueue = true` gives every
//! TAP one queue per worker, and every veth host on AF_XDP a veth pair with
//! one queue per worker and one XDP socket per queue; the host's kernel
//! spreads its flows over the queues by hash and each worker polls its
//! own. With several flows both workers receive frames of one port, the
//! MACs are learned on the right port whichever worker learned them, and
//! TCP moves without a retransmission storm (one flow, one queue: no
//! reordering).

use std::time::Duration;

use crate::ensure;
use crate::harness::{exec, netns_exists, run_id, run_timeout, Background, Switch, TestResult};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![(
        "queues::multiqueue_tap_spreads_flows",
        multiqueue_tap_spreads_flows,
    )]
}

/// Those that need AF_XDP (skipped with the reason when it is missing).
pub fn afxdp_tests() -> Vec<Test> {
    vec![
        ("queues::multiqueue_afxdp_spreads_flows", || {
            multiqueue_afxdp(210, "native")
        }),
        ("queues::multiqueue_afxdp_generic", || {
            multiqueue_afxdp(211, "generic")
        }),
    ]
}

/// The queue directories (`rx-0`, `tx-1`, ...) of `dev` in namespace `ns`
/// (None: the switch's), as rx and tx counts.
fn queue_counts(ns: Option<&str>, dev: &str) -> Result<(usize, usize, String), String> {
    let path = format!("/sys/class/net/{dev}/queues");
    let q = match ns {
        Some(ns) => exec(ns, &["ls", &path])?,
        None => run_timeout("ls", &[&path], Duration::from_secs(5))?,
    };
    let count = |p: &str| q.split_whitespace().filter(|w| w.starts_with(p)).count();
    Ok((
        count("rx-"),
        count("tx-"),
        q.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// The switch's end of host `ns`'s eth0 (a veth): the interface of the
/// switch's namespace whose index is eth0's peer link.
fn outer_end(ns: &str) -> Result<String, String> {
    let peer = exec(ns, &["cat", "/sys/class/net/eth0/iflink"])?;
    let peer = peer.trim();
    let dir = std::fs::read_dir("/sys/class/net").map_err(|e| format!("/sys/class/net: {e}"))?;
    for e in dir.flatten() {
        let idx = std::fs::read_to_string(e.path().join("ifindex")).unwrap_or_default();
        if idx.trim() == peer {
            return Ok(e.file_name().to_string_lossy().into_owned());
        }
    }
    Err(format!(
        "no interface with index {peer} (the peer of {ns}'s eth0)"
    ))
}

/// Two veth hosts on AF_XDP (`mode`) with `multiqueue = true` and two
/// workers: both ends of each veth have two queues, the port two sockets;
/// sixteen UDP flows from one host arrive in order and, in native mode,
/// are received by both workers from that one port; TCP with four streams
/// moves; the MACs stay on their ports; no frame crosses between workers
/// (each transmits on its own queue); when a host's namespace goes, its
/// port goes down and every UMEM frame is back.
fn multiqueue_afxdp(tag: u8, mode: &str) -> TestResult {
    let sw = format!("sq{tag:02}{:03}", run_id());
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let host = |n: &str, i: u8| {
        format!(
            "\n[[host]]\nname = \"{n}\"\nnetworks = [\"lan\"]\nip = [\"10.77.{tag}.{}/24\"]\nmac = [\"02:00:5e:{tag:02x}:00:{:02x}\"]\n\
             link = \"veth\"\nveth_attach = \"afxdp\"\nxdp_mode = \"{mode}\"\n",
            10 + i,
            9 + i
        )
    };
    let toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 2\nmultiqueue = true\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.77.{tag}.0/24\"\n{}{}",
        host(&a, 1),
        host(&b, 2)
    );
    let swg = Switch::up_toml(&sw, &toml, &[a.clone(), b.clone()])?;
    let (pa, pb) = (format!("{a}.lan"), format!("{b}.lan"));
    // Two queues each way on both ends of both veths.
    for h in [&a, &b] {
        let outer = outer_end(h)?;
        for (ns, dev) in [(Some(h.as_str()), "eth0"), (None, outer.as_str())] {
            let (rx, tx, q) = queue_counts(ns, dev)?;
            ensure!(
                rx == 2 && tx == 2,
                "{dev} ({}) has queues {q:?}, not rx-0 rx-1 tx-0 tx-1",
                ns.unwrap_or("the switch's namespace")
            );
        }
    }
    let ports = swg.ports()?;
    for p in &ports {
        let m = p.xdp_mode.clone().unwrap_or_default();
        ensure!(
            p.kind == "afxdp" && p.queues == 2 && m.starts_with(mode),
            "port {}: kind {}, {} queues, mode {m:?} (want afxdp, 2 queues, {mode})",
            p.name,
            p.kind,
            p.queues
        );
    }

    // Sixteen UDP flows (one source port each) from a to b, one way.
    let b_ip = format!("10.77.{tag}.12");
    let before = swg.stats()?;
    let srv = Background::spawn(
        "ip",
        &["netns", "exec", &b, "iperf3", "-s", "-1", "-B", &b_ip],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let out = run_timeout(
        "ip",
        &[
            "netns", "exec", &a, "iperf3", "-c", &b_ip, "-u", "-b", "4M", "-l", "1000", "-t", "2",
            "-P", "16", "-J",
        ],
        Duration::from_secs(25),
    )?;
    drop(srv);
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 -u -J: {e}: {out}"))?;
    let streams = v["end"]["streams"].as_array().cloned().unwrap_or_default();
    let udp = |k: &str| -> u64 {
        streams
            .iter()
            .map(|s| s["udp"][k].as_u64().unwrap_or(0))
            .sum()
    };
    let (packets, lost, reordered) = (udp("packets"), udp("lost_packets"), udp("out_of_order"));
    ensure!(
        streams.len() == 16 && packets > 1000,
        "UDP: {} streams, {packets} packets: {out}",
        streams.len()
    );
    ensure!(
        reordered == 0,
        "UDP: {reordered} of {packets} datagrams arrived out of order (one flow must stay on one queue)"
    );
    ensure!(
        lost * 50 <= packets,
        "UDP: {lost} of {packets} datagrams lost"
    );
    let after = swg.stats()?;
    let by_worker = |s: &crate::harness::Stats, p: &str| {
        s.typed
            .ports
            .get(p)
            .map(|x| x.rx_by_worker.clone())
            .unwrap_or_default()
    };
    let (b0, a0) = (by_worker(&before, &pa), by_worker(&after, &pa));
    let spread: Vec<u64> = a0
        .iter()
        .zip(b0.iter().chain(std::iter::repeat(&0)))
        .map(|(x, y)| x - y)
        .collect();
    let total: u64 = spread.iter().sum();
    ensure!(
        spread.len() == 2 && total >= packets - lost,
        "{pa}: frames per worker {spread:?} for {packets} datagrams sent"
    );
    if mode == "native" {
        ensure!(
            spread.iter().all(|&n| n * 20 >= total),
            "{pa}: frames per worker {spread:?}: sixteen flows should reach both queues"
        );
    }

    // TCP, four streams.
    let (bps, retr) = iperf3_streams(&a, &b, &b_ip, 4)?;
    ensure!(bps > 5e7, "four TCP streams moved {bps} bit/s");

    let st = swg.stats()?;
    let fdb = swg.fdb()?;
    for (m, port) in [(0x0a, &pa), (0x0b, &pb)] {
        let mac = shunt_tools::MacAddr([0x02, 0x00, 0x5e, tag, 0, m]);
        ensure!(
            fdb.port_of(mac) == Some(port.as_str()),
            "{mac:?} learned on {:?}, not {port}",
            fdb.port_of(mac)
        );
    }
    for p in [&pa, &pb] {
        ensure!(
            st.port(p, "moved") == 0,
            "{p}: {} MAC moves (two workers learning one port's MAC must not move it)",
            st.port(p, "moved")
        );
    }
    let handed: u64 = st.typed.handoff.iter().map(|h| h.frames).sum();
    ensure!(
        handed == 0,
        "{handed} frames handed between workers (each should send on its own queue)"
    );
    swg.umem_accounted(Duration::from_secs(5))?;
    let tcp_spread = by_worker(&st, &pa);

    // A host's namespace goes: its port goes down, the switch stays.
    run_timeout("ip", &["netns", "del", &b], Duration::from_secs(10))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let down = swg.ports()?.iter().any(|p| p.name == pb && !p.up);
        if down {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{pb} still up 5 s after its namespace was deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ensure!(!netns_exists(&b), "{b} still exists");
    swg.umem_accounted(Duration::from_secs(5))?;
    ensure!(
        swg.ports()?.iter().any(|p| p.name == pa && p.up),
        "{pa} went down with {pb}"
    );
    println!(
        "queues::multiqueue_afxdp[{mode}]: UDP 16 flows: {packets} datagrams, {lost} lost, 0 out of order, {pa} frames per worker {spread:?}; TCP 4 streams {:.2} Gbit/s, {retr} retransmits, {pa} frames per worker so far {tcp_spread:?}",
        bps / 1e9
    );
    Ok(())
}

fn multiqueue_tap_spreads_flows() -> TestResult {
    let tag = 83;
    let sw = format!("sq{tag:02}{:03}", run_id());
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 2\nmultiqueue = true\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.77.{tag}.0/24\"\n\n\
         [[host]]\nname = \"{a}\"\nnetworks = [\"lan\"]\nip = [\"10.77.{tag}.11/24\"]\nmac = [\"02:00:5e:{tag:02x}:00:0a\"]\n\n\
         [[host]]\nname = \"{b}\"\nnetworks = [\"lan\"]\nip = [\"10.77.{tag}.12/24\"]\nmac = [\"02:00:5e:{tag:02x}:00:0b\"]\n"
    );
    let swg = Switch::up_toml(&sw, &toml, &[a.clone(), b.clone()])?;
    // Inside the host: two queues each way.
    let q = exec(&a, &["ls", "/sys/class/net/eth0/queues"])?;
    let (rx, tx) = (
        q.split_whitespace()
            .filter(|w| w.starts_with("rx-"))
            .count(),
        q.split_whitespace()
            .filter(|w| w.starts_with("tx-"))
            .count(),
    );
    ensure!(
        rx == 2 && tx == 2,
        "{a}'s eth0 has queues {q:?}, not rx-0, rx-1, tx-0, tx-1"
    );
    let ports = swg.ports()?;
    ensure!(
        ports.iter().all(|p| p.queues == 2),
        "ports without 2 queues: {:?}",
        ports
            .iter()
            .map(|p| (&p.name, p.queues))
            .collect::<Vec<_>>()
    );
    // Eight TCP streams: the kernel hashes them over both queues.
    let b_ip = format!("10.77.{tag}.12");
    let (bps, retr) = iperf3_streams(&a, &b, &b_ip, 8)?;
    ensure!(bps > 1e8, "eight streams moved {bps} bit/s");
    let st = swg.stats()?;
    // Of a's port alone (the data's way in; b's ACKs come on b's port):
    // both workers received its frames.
    let pa = format!("{a}.lan");
    let workers: Vec<u64> = st
        .typed
        .ports
        .get(&pa)
        .map(|x| x.rx_by_worker.clone())
        .unwrap_or_default();
    ensure!(
        workers.len() == 2 && workers.iter().all(|&n| n > 100),
        "{pa}: frames received per worker {workers:?} (both queues should carry flows)"
    );
    let fdb = swg.fdb()?;
    for (m, port) in [(0x0a, format!("{a}.lan")), (0x0b, format!("{b}.lan"))] {
        let mac = shunt_tools::MacAddr([0x02, 0x00, 0x5e, tag, 0, m]);
        ensure!(
            fdb.port_of(mac) == Some(port.as_str()),
            "{mac:?} learned on {:?}, not {port}",
            fdb.port_of(mac)
        );
    }
    println!(
        "queues::multiqueue_tap_spreads_flows: {:.2} Gbit/s, {retr} retransmits, frames per worker {workers:?}",
        bps / 1e9
    );
    Ok(())
}

/// iperf3 TCP from `a` to `b` (at `b_ip`), `streams` at once for 3 s:
/// bits per second received and the sender's retransmits.
fn iperf3_streams(a: &str, b: &str, b_ip: &str, streams: u32) -> Result<(f64, u64), String> {
    let _srv = Background::spawn(
        "ip",
        &["netns", "exec", b, "iperf3", "-s", "-1", "-B", b_ip],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let p = streams.to_string();
    let out = run_timeout(
        "ip",
        &[
            "netns", "exec", a, "iperf3", "-c", b_ip, "-t", "3", "-P", &p, "-J",
        ],
        Duration::from_secs(25),
    )?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 -J: {e}: {out}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    Ok((bps, retr))
}
