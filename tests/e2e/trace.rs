//! `shunt trace`: for a learned unicast, a flood and a drop, the lines read
//! as Open vSwitch's ofproto/trace does ("why"), and `--json` carries the
//! same facts; the capture's filters select what it shows during a ping;
//! `--packet` answers for a frame never sent, and changes nothing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ensure;
use crate::harness::{
    exec, output_timeout, ping, run_id, run_timeout, Switch, TestResult, Topology, SHUNT,
};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, MacAddr, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("trace::unicast_flood_drop", unicast_flood_drop),
        ("trace::host_stack_frames", host_stack_frames),
        (
            "trace::packet_asks_without_sending",
            packet_asks_without_sending,
        ),
        ("trace::filters_during_a_ping", filters_during_a_ping),
    ]
}

/// Three hosts on `lan` (VLAN 10, the switch at .1) and a trunk `t`
/// carrying it (a TAP in namespace `{sw}t`, quiet: nothing there sends).
fn trunk_lab(tag: u8) -> Result<(Switch, String, Vec<String>), String> {
    let sw = format!("tp{tag}{:03}", run_id());
    let toml = format!(
        r#"[switch]
name = "{sw}"
workers = 1
[[network]]
name = "lan"
vlan = 10
subnet = "10.77.{tag}.0/24"
address = "10.77.{tag}.1"
[[host]]
name = "{sw}a"
networks = ["lan"]
ip = ["10.77.{tag}.11/24"]
[[host]]
name = "{sw}b"
networks = ["lan"]
ip = ["10.77.{tag}.12/24"]
[[host]]
name = "{sw}c"
networks = ["lan"]
ip = ["10.77.{tag}.13/24"]
[[port]]
name = "t"
mode = "trunk"
networks = ["lan"]
namespace = "{sw}t"
"#
    );
    let ns: Vec<String> = ["a", "b", "c", "t"]
        .iter()
        .map(|s| format!("{sw}{s}"))
        .collect();
    let s = Switch::up_toml(&sw, &toml, &ns)?;
    Ok((s, sw, ns))
}

/// `shunt trace --packet SPEC [--json]` on switch `sw`: its output.
fn ask(sw: &str, spec: &str, json: bool) -> Result<String, String> {
    let mut args = vec!["trace", "--name", sw, "--packet", spec];
    if json {
        args.push("--json");
    }
    run_timeout(SHUNT, &args, Duration::from_secs(20))
}

/// `shunt trace --packet SPEC`, which must fail: what it said.
fn refused(sw: &str, spec: &str) -> Result<String, String> {
    let args = ["trace", "--name", sw, "--packet", spec];
    let o = output_timeout(SHUNT, &args, Duration::from_secs(20))?;
    match o.status.success() {
        true => Err(format!("--packet {spec:?} was taken")),
        false => Ok(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

/// The FDB as (MAC, port) pairs, sorted (ages left out: they grow).
fn fdb_pairs(s: &Switch) -> Result<Vec<(String, String)>, String> {
    let mut v: Vec<(String, String)> = s
        .fdb()?
        .0
        .iter()
        .map(|e| (e.mac.to_string(), e.port.clone()))
        .collect();
    v.sort();
    Ok(v)
}

/// The counters `--packet` could touch if it were not dry: every drop,
/// every port's floods, learned and moved MACs, and all of the quiet
/// trunk's counters.
fn touched(s: &Switch) -> Result<serde_json::Value, String> {
    let st = s.stats()?.json;
    let floods: serde_json::Map<String, serde_json::Value> = st["ports"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let learned = serde_json::json!([v["flooded"], v["learned"], v["moved"]]);
                    (k.clone(), learned)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(serde_json::json!({
        "drops": st["drops"],
        "floods": floods,
        "trunk": st["ports"]["t"],
    }))
}

/// `--packet`: a known unicast goes to its port, an unknown destination
/// is flooded to the other ports (tagged 10 on the trunk), VLAN 30 on the
/// trunk is dropped as vlan_not_allowed, the switch's own address is the
/// switch's; a malformed spec names the bad key and the keys; and after
/// all of it the FDB and the counters are as they were.
fn packet_asks_without_sending() -> TestResult {
    let (s, sw, _ns) = trunk_lab(246)?;
    let (a, b, c) = (format!("{sw}a"), format!("{sw}b"), format!("{sw}c"));
    // a and b speak: both MACs learned.
    ping(&a, "10.77.246.12")?;
    let fdb = s.fdb()?;
    let mac_of = |port: &str| {
        fdb.0
            .iter()
            .find(|e| e.port == port)
            .map(|e| e.mac.to_string())
            .ok_or(format!("nothing learned on {port}: {:?}", fdb.0))
    };
    let (a_mac, b_mac) = (mac_of(&format!("{a}.lan"))?, mac_of(&format!("{b}.lan"))?);
    std::thread::sleep(Duration::from_millis(300));
    let fdb_before = fdb_pairs(&s)?;
    let counters_before = touched(&s)?;

    // Known unicast: one port, untagged.
    let out = ask(&sw, &format!("in={a}.lan dst={b_mac}"), false)?;
    ensure!(
        out.contains(&format!(
            "forward: destination {b_mac} learned in lan: sent to {b}.lan"
        )),
        "known unicast:\n{out}"
    );
    ensure!(
        out.contains(&format!("learn: {a_mac} already known on {a}.lan")),
        "learning words:\n{out}"
    );
    ensure!(
        out.contains(&format!("edit: out of {b}.lan: untagged, as received")),
        "edit words:\n{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ask(&sw, &format!("in={a} dst={b_mac}"), true)?)
            .map_err(|e| format!("--json: {e}"))?;
    ensure!(
        v["action"] == "forward" && v["out"][0]["port"] == format!("{b}.lan").as_str(),
        "--json known unicast: {v}"
    );
    ensure!(
        v["out"].as_array().map(Vec::len) == Some(1),
        "one copy: {v}"
    );

    // Unknown destination, from a source the switch never saw.
    let stranger = "02:00:5e:f6:00:99";
    let unknown = "02:00:5e:f6:00:77";
    let spec = format!("in={a}.lan src={stranger} dst={unknown} type=ipv4");
    let out = ask(&sw, &spec, false)?;
    ensure!(
        out.contains(&format!(
            "forward: destination {unknown} unknown in lan: flooded to {b}.lan, {c}.lan, t (tagged 10)"
        )),
        "unknown unicast:\n{out}"
    );
    ensure!(
        out.contains(&format!(
            "learn: would learn {stranger} on {a}.lan (a new entry)"
        )),
        "learning words:\n{out}"
    );
    ensure!(
        out.contains("edit: out of t: tag 10 pushed"),
        "the trunk's copy is tagged:\n{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ask(&sw, &spec, true)?).map_err(|e| format!("--json: {e}"))?;
    let outs: Vec<(String, Option<u64>)> = v["out"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    (
                        o["port"].as_str().unwrap_or("").to_string(),
                        o["vlan"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        v["action"] == "flood"
            && v["reason"] == "unknown_unicast"
            && outs
                == vec![
                    (format!("{b}.lan"), None),
                    (format!("{c}.lan"), None),
                    ("t".to_string(), Some(10))
                ],
        "--json flood: {v}"
    );

    // VLAN 30 into the trunk, which carries 10 only.
    let spec = format!("in=t vlan=30 src={stranger}");
    let out = ask(&sw, &spec, false)?;
    ensure!(
        out.contains("classify: dropped (vlan_not_allowed): VLAN 30 is not allowed on trunk t"),
        "VLAN 30 on the trunk:\n{out}"
    );
    ensure!(
        !out.contains("forward:"),
        "a dropped frame goes no further:\n{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ask(&sw, &spec, true)?).map_err(|e| format!("--json: {e}"))?;
    ensure!(
        v["action"] == "drop" && v["reason"] == "vlan_not_allowed",
        "--json drop: {v}"
    );
    // VLAN 10 on the trunk: popped towards the hosts.
    let out = ask(
        &sw,
        &format!("in=t vlan=10 src={stranger} dst={b_mac}"),
        false,
    )?;
    ensure!(
        out.contains(&format!("edit: out of {b}.lan: tag 10 popped")),
        "VLAN 10 from the trunk:\n{out}"
    );
    // An ARP request for the switch's address is the switch's.
    let out = ask(&sw, &format!("in={a} type=arp dst_ip=10.77.246.1"), false)?;
    ensure!(
        out.contains("local: for the switch itself"),
        "ARP for the switch:\n{out}"
    );

    // A malformed spec: the bad key and the keys, a failed command.
    let err = refused(&sw, &format!("in={a} colour=red"))?;
    ensure!(
        err.contains("unknown key \"colour\"")
            && err.contains("in, src, dst, vlan, type, src_ip, dst_ip, len"),
        "malformed spec: {err}"
    );
    let err = refused(&sw, "dst=ff:ff:ff:ff:ff:ff")?;
    ensure!(err.contains("in=PORT is required"), "no in=: {err}");

    // Nothing learned, nothing counted.
    ensure!(
        fdb_pairs(&s)? == fdb_before,
        "the FDB changed: {:?} -> {:?}",
        fdb_before,
        fdb_pairs(&s)?
    );
    let after = touched(&s)?;
    ensure!(
        after == counters_before,
        "counters changed:\n{counters_before}\n{after}"
    );
    Ok(())
}

/// `shunt trace` with the capture's filters during pings from a to b and
/// from a to c: a target (c's port) and an ethertype (ipv4) show c's
/// ICMP frames, both ways, and nothing else.
fn filters_during_a_ping() -> TestResult {
    let (s, sw, _ns) = trunk_lab(247)?;
    let (a, b, c) = (format!("{sw}a"), format!("{sw}b"), format!("{sw}c"));
    // ARP done first: only ICMP is left to see.
    ping(&a, "10.77.247.12")?;
    ping(&a, "10.77.247.13")?;
    let mut child = Command::new(SHUNT)
        .args([
            "trace",
            "--name",
            &s.name,
            c.as_str(),
            "--ethertype",
            "ipv4",
            "--json",
            "--seconds",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("shunt trace: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let pings = |to: &str| exec(&a, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "-q", to]);
    let pinged = pings("10.77.247.12").and_then(|_| pings("10.77.247.13"));
    let out = child.stdout.take().ok_or("no stdout")?;
    let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
    let _ = child.wait();
    pinged?;
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let (cp, ap) = (format!("{c}.lan"), format!("{a}.lan"));
    let to_c = v
        .iter()
        .filter(|x| x["ingress"] == ap.as_str() && x["out"][0]["port"] == cp.as_str())
        .count();
    let from_c = v
        .iter()
        .filter(|x| x["ingress"] == cp.as_str() && x["out"][0]["port"] == ap.as_str())
        .count();
    ensure!(
        to_c >= 3 && from_c >= 3,
        "want 3 echo requests to c and 3 replies, got {to_c} and {from_c}: {lines:?}"
    );
    for x in &v {
        let touches_c = x["ingress"] == cp.as_str()
            || x["out"]
                .as_array()
                .is_some_and(|o| o.iter().any(|p| p["port"] == cp.as_str()));
        ensure!(
            x["ethertype"] == "0x0800" && touches_c,
            "a frame the filters do not select: {x}"
        );
    }
    // b's pings are not there.
    ensure!(
        !lines.iter().any(|l| l.contains(&format!("{b}.lan"))),
        "b's frames in a trace of c: {lines:?}"
    );
    Ok(())
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
