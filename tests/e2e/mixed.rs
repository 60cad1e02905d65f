//! TAP and AF_XDP ports side by side in one switch, under two workers: a
//! host on a TAP and hosts on veths (AF_XDP, native and generic) reach each
//! other, and each port is what it says.

use crate::ensure;
use crate::harness::{ping, run_id, Switch, TestResult};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![(
        "mixed::tap_and_afxdp_side_by_side",
        tap_and_afxdp_side_by_side,
    )]
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
[[host]]
name = "{sw}t"
networks = ["lan"]
[[host]]
name = "{sw}n"
networks = ["lan"]
link = "veth"
xdp_mode = "native"
[[host]]
name = "{sw}g"
networks = ["lan"]
link = "veth"
xdp_mode = "generic"
"#
    );
    let hosts: Vec<String> = ["t", "n", "g"].iter().map(|h| format!("{sw}{h}")).collect();
    let mut s = Switch::up_toml(&sw, &toml, &hosts)?;
    let ports = s.ports()?;
    let kind = |h: &str| {
        ports
            .iter()
            .find(|p| p["host"] == h)
            .and_then(|p| p["kind"].as_str().map(String::from))
            .unwrap_or_default()
    };
    ensure!(kind(&hosts[0]) == "tap", "ports: {ports:?}");
    ensure!(
        kind(&hosts[1]) == "afxdp" && kind(&hosts[2]) == "afxdp",
        "ports: {ports:?}"
    );
    let workers: std::collections::BTreeSet<i64> =
        ports.iter().filter_map(|p| p["worker"].as_i64()).collect();
    ensure!(
        workers.len() == 2,
        "ports spread over {workers:?}, want two workers"
    );
    // Every pair, both ways: TAP <-> AF_XDP and AF_XDP <-> AF_XDP, across workers.
    let ips = ["10.76.9.1", "10.76.9.2", "10.76.9.3"];
    for (i, h) in hosts.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                ping(h, ip)?;
            }
        }
    }
    s.down()?;
    Ok(())
}
