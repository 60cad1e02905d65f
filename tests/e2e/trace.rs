//! `shunt trace`: for a learned unicast, a flood and a drop, the lines read
//! as Open vSwitch's ofproto/trace does ("why"), and `--json` carries the
//! same facts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ensure;
use crate::harness::{exec, run_id, Switch, TestResult, Topology, SHUNT};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, MacAddr, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("trace::unicast_flood_drop", unicast_flood_drop),
        ("trace::host_stack_frames", host_stack_frames),
    ]
}

/// Runs `shunt trace` on `port` for `count` frames while `send` runs;
/// returns its output lines.
fn traced(
    sw: &Switch,
    port: &str,
    count: usize,
    json: bool,
    send: &mut dyn FnMut() -> Result<(), String>,
) -> Result<Vec<String>, String> {
    let count_s = count.to_string();
    let mut args = vec![
        "trace",
        "--name",
        &sw.name,
        "--count",
        &count_s,
        "--seconds",
        "10",
    ];
    // An empty port: trace every port.
    if !port.is_empty() {
        args.extend(["--port", port]);
    }
    if json {
        args.push("--json");
    }
    let mut child = Command::new(SHUNT)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("shunt trace: {e}"))?;
    // Let the trace start before the frames go.
    std::thread::sleep(Duration::from_millis(500));
    let sent = send();
    let out = child.stdout.take().ok_or("no stdout")?;
    let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
    let _ = child.wait();
    sent?;
    Ok(lines)
}

fn unicast_flood_drop() -> TestResult {
    let topo = Topology::new(20, 3);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut pa = RawPort::open(&a.name, "eth0").map_err(|e| e.to_string())?;
    let mut pb = RawPort::open(&b.name, "eth0").map_err(|e| e.to_string())?;
    let frame = |dst: MacAddr, src: MacAddr| FrameBuilder::new(dst, src).ethertype(0x88b5).build();
    // b speaks once, so that b's MAC is learned on b's port.
    pb.send(&frame(MacAddr::BROADCAST, b.mac))
        .map_err(|e| e.to_string())?;
    // A MAC learned on a's own port, for the drop.
    let local = shunt_tools::test_mac(20, 7, 7);
    pa.send(&frame(MacAddr::BROADCAST, local))
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let unknown = shunt_tools::test_mac(20, 9, 9);
    let stimuli = [
        frame(b.mac, a.mac),
        frame(unknown, a.mac),
        frame(local, a.mac),
    ];

    for json in [false, true] {
        let lines = traced(&sw, &a.port(), 3, json, &mut || {
            for f in &stimuli {
                pa.send(f).map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })?;
        ensure!(
            lines.len() == 3,
            "trace (json={json}) printed {} lines, want 3: {lines:?}",
            lines.len()
        );
        if !json {
            let (uni, flood, drop) = (&lines[0], &lines[1], &lines[2]);
            ensure!(
                uni.starts_with(&format!("{}:", a.port())),
                "line does not start with the ingress port: {uni}"
            );
            ensure!(uni.contains("network lan"), "no network in: {uni}");
            ensure!(
                uni.contains(&format!(
                    "destination {} learned in lan: sent to {}",
                    b.mac,
                    b.port()
                )),
                "learned unicast line: {uni}"
            );
            ensure!(
                flood.contains(&format!(
                    "destination {unknown} unknown in lan: flooded to {}, {}",
                    b.port(),
                    c.port()
                )),
                "flood line: {flood}"
            );
            ensure!(
                drop.contains("dropped (same_port): destination learned on the ingress port"),
                "drop line: {drop}"
            );
            // a's first frame teaches the switch a's MAC.
            ensure!(
                uni.contains(&format!("source {} learned on {}", a.mac, a.port())),
                "learning words: {uni}"
            );
            ensure!(
                flood.contains(&format!("source {} already known on {}", a.mac, a.port())),
                "learning words: {flood}"
            );
        } else {
            let v: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
                .collect::<Result<_, _>>()?;
            let outs = |x: &serde_json::Value| -> Vec<String> {
                x["out"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o["port"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            ensure!(
                v[0]["action"] == "forward" && outs(&v[0]) == vec![b.port()],
                "json unicast: {}",
                v[0]
            );
            ensure!(
                v[0]["network"] == "lan" && v[0]["ingress"] == a.port().as_str(),
                "json unicast: {}",
                v[0]
            );
            ensure!(
                v[1]["action"] == "flood"
                    && v[1]["reason"] == "unknown_unicast"
                    && outs(&v[1]) == vec![b.port(), c.port()],
                "json flood: {}",
                v[1]
            );
            ensure!(
                v[2]["action"] == "drop" && v[2]["reason"] == "same_port" && outs(&v[2]).is_empty(),
                "json drop: {}",
                v[2]
            );
            ensure!(
                v[1]["dst"] == unknown.to_string().as_str()
                    && v[1]["src"] == a.mac.to_string().as_str(),
                "json addresses: {}",
                v[1]
            );
        }
    }
    Ok(())
}

/// Frames to and from the switch's own address show in the trace: the
/// detour to the host stack, and the replies entering on "switch".
fn host_stack_frames() -> TestResult {
    let sw = format!("st1{:03}", run_id());
    let toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 1\n[[network]]\nname = \"lan\"\nsubnet = \"10.75.1.0/24\"\naddress = \"10.75.1.1\"\n[[host]]\nname = \"{sw}a\"\nnetworks = [\"lan\"]\n"
    );
    let host = format!("{sw}a");
    let s = Switch::up_toml(&sw, &toml, std::slice::from_ref(&host))?;
    let lines = traced(&s, "", 4, false, &mut || {
        exec(&host, &["ping", "-c", "2", "-W", "2", "-q", "10.75.1.1"]).map(|_| ())
    })?;
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("for the switch itself: handed to its host stack")),
        "no detour in the trace: {lines:?}"
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("switch:") && l.contains(&format!("sent to {host}.lan"))),
        "no frame from the host stack in the trace: {lines:?}"
    );
    Ok(())
}
