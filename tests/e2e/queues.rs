//! Multi-queue TAP ports (issue 13): `[switch] multiqueue = true` gives
//! every TAP one queue per worker; the host's kernel spreads its flows over
//! the queues by hash and each worker polls its own. With several TCP
//! streams both workers receive frames, the MACs are learned on the right
//! port whichever worker learned them, and TCP moves without a
//! retransmission storm (one flow, one queue: no reordering).

use std::time::Duration;

use crate::ensure;
use crate::harness::{exec, run_id, run_timeout, Background, Switch, TestResult};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![(
        "queues::multiqueue_tap_spreads_flows",
        multiqueue_tap_spreads_flows,
    )]
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
    let _srv = Background::spawn(
        "ip",
        &["netns", "exec", &b, "iperf3", "-s", "-1", "-B", &b_ip],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let out = run_timeout(
        "ip",
        &[
            "netns", "exec", &a, "iperf3", "-c", &b_ip, "-t", "3", "-P", "8", "-J",
        ],
        Duration::from_secs(25),
    )?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 -J: {e}: {out}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    ensure!(bps > 1e8, "eight streams moved {bps} bit/s");
    let st = swg.stats()?;
    let workers: Vec<u64> = st.typed.workers.iter().map(|w| w.rx_frames).collect();
    ensure!(
        workers.len() == 2 && workers.iter().all(|&n| n > 100),
        "frames received per worker: {workers:?} (both queues should carry flows)"
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
