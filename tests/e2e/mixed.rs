//! TAP, AF_XDP and packet ports side by side in one switch, under two
//! workers: a host on a TAP, hosts on veths (AF_XDP, native and generic)
//! and a veth host on a packet socket (offloads on) reach each other, and
//! each port is what it says.

use crate::ensure;
use crate::harness::{netns_exists, output_timeout, ping, run_id, Switch, TestResult, SHUNT};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        (
            "mixed::tap_and_afxdp_side_by_side",
            tap_and_afxdp_side_by_side,
        ),
        ("mixed::failed_start_says_why", failed_start_says_why),
    ]
}

fn tap_and_afxdp_side_by_side() -> TestResult {
    let sw = format!("sm9{:03}", run_id());
    let toml = format!(
        r#"[switch]
name = "{sw}"
workers = 2
[[network]]
name = "lan"
subnet = "10.76.9.0/24"
address = "10.76.9.254"
[[host]]
name = "{sw}t"
networks = ["lan"]
[[host]]
name = "{sw}n"
networks = ["lan"]
link = "veth"
veth_attach = "afxdp"
xdp_mode = "native"
[[host]]
name = "{sw}g"
networks = ["lan"]
link = "veth"
veth_attach = "afxdp"
xdp_mode = "generic"
[[host]]
name = "{sw}p"
networks = ["lan"]
link = "veth"
"#
    );
    let hosts: Vec<String> = ["t", "n", "g", "p"]
        .iter()
        .map(|h| format!("{sw}{h}"))
        .collect();
    let mut s = Switch::up_toml(&sw, &toml, &hosts)?;
    let ports = s.ports()?;
    let kind = |h: &str| {
        ports
            .iter()
            .find(|p| p.host.as_deref() == Some(h))
            .map(|p| p.kind.clone())
            .unwrap_or_default()
    };
    ensure!(kind(&hosts[0]) == "tap", "ports: {ports:?}");
    ensure!(
        kind(&hosts[1]) == "afxdp" && kind(&hosts[2]) == "afxdp" && kind(&hosts[3]) == "packet",
        "ports: {ports:?}"
    );
    let xdp_mode = |h: &str| {
        ports
            .iter()
            .find(|p| p.host.as_deref() == Some(h))
            .and_then(|p| p.xdp_mode.clone())
    };
    ensure!(
        xdp_mode(&hosts[0]).is_none()
            && xdp_mode(&hosts[1]).as_deref() == Some("native-copy")
            && xdp_mode(&hosts[2]).as_deref() == Some("generic-copy")
            && xdp_mode(&hosts[3]).is_none(),
        "xdp_mode in ports: {ports:?}"
    );
    let workers: std::collections::BTreeSet<usize> = ports.iter().map(|p| p.worker).collect();
    ensure!(
        workers.len() == 2,
        "ports spread over {workers:?}, want two workers"
    );
    // The switch's own address (its host stack) from each host, and its DNS
    // from an AF_XDP host: frames into the host stack leave the UMEM by a
    // copy, its answers enter an AF_XDP port by a copy.
    for h in &hosts {
        ping(h, "10.76.9.254")?;
    }
    let out = crate::harness::exec(
        &hosts[2],
        &[
            "dig",
            "+short",
            "+time=2",
            "+tries=2",
            "@10.76.9.254",
            &hosts[1],
        ],
    )?;
    ensure!(
        out.trim() == "10.76.9.2",
        "dig {} from {} said {out:?}",
        hosts[1],
        hosts[2]
    );
    // TCP between the two AF_XDP hosts and from the TAP host to one (the
    // hosts' veths compute their checksums: a partial checksum would be
    // dropped by the receiver), and between the packet host, whose
    // super-frames are cut in software for an AF_XDP host, and one.
    for (server, ip, client) in [
        (2, "10.76.9.3", 1),
        (1, "10.76.9.2", 0),
        (1, "10.76.9.2", 3),
        (3, "10.76.9.4", 2),
    ] {
        let bps = crate::harness::iperf3_tcp(&hosts[server], ip, &hosts[client], 1)?;
        let mbps = (bps / 1e6) as u64;
        ensure!(
            mbps >= 1,
            "iperf3 from {} to {}: {bps} bit/s",
            hosts[client],
            hosts[server]
        );
    }
    // Every pair, both ways: TAP, AF_XDP and packet ports, across workers.
    let ips = ["10.76.9.1", "10.76.9.2", "10.76.9.3", "10.76.9.4"];
    for (i, h) in hosts.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                ping(h, ip)?;
            }
        }
    }
    // The kernel's counters of each AF_XDP socket are in `stats --json`
    // (published by the owning worker about once a second); a TAP has none.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let st = s.stats()?;
    for p in &ports {
        let name = p.name.as_str();
        let x = &st.json["ports"][name]["afxdp"];
        match p.kind.as_str() {
            "tap" | "packet" => ensure!(
                x.is_null(),
                "{} port {name} has afxdp counters: {x}",
                p.kind
            ),
            _ => ensure!(
                x["rx_fill_ring_empty"].is_u64()
                    && x["rx_ring_full"].is_u64()
                    && x["bad_kernel_descs"] == 0,
                "AF_XDP port {name}: afxdp counters {x}"
            ),
        }
    }
    s.down()?;
    Ok(())
}

/// A switch that cannot start (an AF_XDP port on an interface that does
/// not exist) says why, and leaves nothing behind: no namespace, no socket,
/// no log.
fn failed_start_says_why() -> TestResult {
    let sw = format!("sm8{:03}", run_id());
    let host = format!("{sw}a");
    let toml = format!(
        "[switch]\nname = \"{sw}\"\n[[network]]\nname = \"n\"\n[[host]]\nname = \"{host}\"\nnetworks = [\"n\"]\n\
         [[port]]\nname = \"up\"\nkind = \"afxdp\"\ninterface = \"{sw}nosuch\"\nnetwork = \"n\"\n"
    );
    let file = std::env::temp_dir().join(format!("shunt-e2e-{sw}.toml"));
    std::fs::write(&file, toml).map_err(|e| e.to_string())?;
    let f = file.to_string_lossy().into_owned();
    let out = output_timeout(
        SHUNT,
        &["up", &f, "--detach"],
        std::time::Duration::from_secs(60),
    );
    let _ = std::fs::remove_file(&file);
    let out = out?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "shunt up succeeded: {err}");
    ensure!(
        err.contains("no such interface") && err.contains(&format!("{sw}nosuch")),
        "the error does not say why: {err}"
    );
    ensure!(!netns_exists(&host), "namespace {host} left behind");
    for leftover in [
        format!("/run/shunt/{sw}.sock"),
        format!("/run/shunt/{sw}.log"),
        format!("/run/shunt/{sw}.state"),
    ] {
        ensure!(
            !std::path::Path::new(&leftover).exists(),
            "{leftover} left behind"
        );
    }
    Ok(())
}
