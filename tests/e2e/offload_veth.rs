//! veth hosts keep their offloads (issue 12, item 5): a host with `link =
//! "veth"` is attached with a packet socket that carries the virtio-net
//! header, so TSO and checksum offload stay on inside the host and its
//! TCP super-frames cross the switch whole, to another veth host and to a
//! TAP host. Jumbo frames (MTU 9000) through both kinds. Real iperf3,
//! ethtool, netcat and sha256sum.

use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{exec, run, run_id, run_timeout, Background, Switch, TestResult};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        ("offload_veth::packet_hosts_tcp", packet_hosts_tcp),
        ("offload_veth::jumbo_frames", jumbo_frames),
    ]
}

/// The tools these tests drive beyond the harness's own list (main.rs
/// says "skipped" without them).
pub fn prerequisites() -> Result<(), String> {
    for tool in ["ethtool", "nc", "sha256sum", "dd"] {
        run("sh", &["-c", &format!("command -v {tool}")])
            .map_err(|_| format!("`{tool}` is not on PATH (scripts/setup.sh installs it)"))?;
    }
    Ok(())
}

/// A switch `sw` with network `lan` (10.74.`tag`.0/24) and hosts
/// `{sw}a`, `{sw}b` on veths (the default attachment) and `{sw}c` on a
/// TAP, all with MTU `mtu`; IPv6 on in the hosts.
fn lab(tag: u8, mtu: u16) -> Result<(Switch, [String; 3]), String> {
    let sw = format!("sv{tag:02}{:03}", run_id());
    let hosts = [format!("{sw}a"), format!("{sw}b"), format!("{sw}c")];
    let host = |h: &str, i: u8, link: &str| {
        format!(
            "\n[[host]]\nname = \"{h}\"\nnetworks = [\"lan\"]\nip = [\"10.74.{tag}.{i}/24\"]\n\
             link = \"{link}\"\nmtu = {mtu}\nipv6 = true\n"
        )
    };
    let toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 2\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.74.{tag}.0/24\"\naddress = \"10.74.{tag}.1\"\n{}{}{}",
        host(&hosts[0], 11, "veth"),
        host(&hosts[1], 12, "veth"),
        host(&hosts[2], 13, "tap"),
    );
    let s = Switch::up_toml(&sw, &toml, &hosts)?;
    for (i, h) in hosts.iter().enumerate() {
        exec(
            h,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("fd00:74:{tag}::{}/64", 11 + i),
                "dev",
                "eth0",
                "nodad",
            ],
        )?;
    }
    Ok((s, hosts))
}

/// `ethtool -k eth0` in `ns` says TSO and transmit checksum offload are on.
fn offloads_on(ns: &str) -> Result<(), String> {
    let k = exec(ns, &["ethtool", "-k", "eth0"])?;
    for feature in [
        "tx-checksumming: on",
        "tcp-segmentation-offload: on",
        "tx-tcp-segmentation: on",
        "tx-tcp6-segmentation: on",
    ] {
        ensure!(
            k.lines().any(|l| l.trim() == feature),
            "{ns}: `ethtool -k eth0` lacks \"{feature}\":\n{k}"
        );
    }
    Ok(())
}

/// iperf3 TCP for 3 s from `client` to `server_ip` in `server` with
/// `streams` streams: the receiver's bit/s, at least `min_gbit` Gbit/s
/// (a black hole, or a path living on retransmissions, moves next to
/// nothing).
fn iperf3(
    server: &str,
    server_ip: &str,
    client: &str,
    streams: u32,
    min_gbit: f64,
) -> Result<f64, String> {
    let _srv = Background::spawn(
        "ip",
        &[
            "netns", "exec", server, "iperf3", "-s", "-1", "-B", server_ip,
        ],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let p = streams.to_string();
    let out = run_timeout(
        "ip",
        &[
            "netns", "exec", client, "iperf3", "-c", server_ip, "-t", "3", "-J", "-P", &p,
        ],
        Duration::from_secs(25),
    )?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 -J: {e}: {out}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    ensure!(
        bps >= min_gbit * 1e9,
        "iperf3 {client} -> {server_ip}, {streams} stream(s): {:.3} Gbit/s, less than {min_gbit}",
        bps / 1e9
    );
    Ok(bps)
}

/// A file of `mb` MiB of random bytes sent with netcat from `client` to
/// `server` (at `server_ip`) arrives with the same sha256.
fn netcat_file(server: &str, server_ip: &str, client: &str, mb: u32) -> Result<(), String> {
    let dir = std::env::temp_dir();
    let id = format!("{client}-{server}-{}", std::process::id());
    let src = dir.join(format!("shunt-nc-src-{id}"));
    let dst = dir.join(format!("shunt-nc-dst-{id}"));
    let (src_s, dst_s) = (src.display().to_string(), dst.display().to_string());
    let result = (|| {
        run(
            "dd",
            &[
                "if=/dev/urandom",
                &format!("of={src_s}"),
                "bs=1M",
                &format!("count={mb}"),
                "status=none",
            ],
        )?;
        let listen = Background::spawn(
            "sh",
            &[
                "-c",
                &format!("ip netns exec {server} nc -l -N {server_ip} 5202 > {dst_s}"),
            ],
        )?;
        std::thread::sleep(Duration::from_millis(400));
        run_timeout(
            "sh",
            &[
                "-c",
                &format!("ip netns exec {client} nc -N {server_ip} 5202 < {src_s}"),
            ],
            Duration::from_secs(30),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0) < u64::from(mb) << 20
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(listen);
        let sum = |p: &str| -> Result<String, String> {
            let out = run("sha256sum", &[p])?;
            Ok(out
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string())
        };
        let (a, b) = (sum(&src_s)?, sum(&dst_s)?);
        ensure!(
            a == b,
            "netcat: {mb} MiB from {client} to {server_ip} arrived with sha256 {b}, not {a}"
        );
        Ok(())
    })();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    result
}

/// An offload counter of a port (`shunt stats --json`, "offload").
fn offload(sw: &Switch, port: &str, counter: &str) -> Result<u64, String> {
    Ok(sw.stats()?.json["ports"][port]["offload"][counter]
        .as_u64()
        .unwrap_or(0))
}

/// Two veth hosts and a TAP host, offloads on in all of them: TCP over
/// IPv4 (one and four streams) and IPv6 between the veth hosts, their
/// super-frames passed whole (never cut in software), TCP from the TAP
/// host to a veth host, files intact both ways, nothing `bad_offload`.
fn packet_hosts_tcp() -> TestResult {
    let tag = 1;
    let (sw, [a, b, c]) = lab(tag, 1500)?;
    let ports = sw.ports()?;
    for h in [&a, &b] {
        let kind = ports
            .iter()
            .find(|p| p.host.as_deref() == Some(h))
            .map(|p| p.kind.as_str());
        ensure!(kind == Some("packet"), "{h}: kind {kind:?}: {ports:?}");
        offloads_on(h)?;
    }
    let (a_ip, b_ip) = (format!("10.74.{tag}.11"), format!("10.74.{tag}.12"));
    iperf3(&b, &b_ip, &a, 1, 0.5)?;
    iperf3(&b, &b_ip, &a, 4, 0.5)?;
    iperf3(&b, &format!("fd00:74:{tag}::12"), &a, 1, 0.5)?;
    let pb = format!("{b}.lan");
    let whole = offload(&sw, &pb, "tx_gso_whole")?;
    ensure!(
        whole > 1000,
        "only {whole} super-frames from {a} passed whole to {b}"
    );
    let cut = offload(&sw, &pb, "tx_gso_segments")?;
    ensure!(
        cut == 0,
        "{cut} segments cut in software for {b}, whose port takes super-frames"
    );
    // A TAP host's super-frames into a veth host, and back.
    iperf3(&a, &a_ip, &c, 1, 0.5)?;
    iperf3(&c, &format!("10.74.{tag}.13"), &a, 1, 0.5)?;
    netcat_file(&b, &b_ip, &a, 8)?;
    netcat_file(&a, &a_ip, &b, 8)?;
    let bad = sw.stats()?.drop("bad_offload");
    ensure!(bad == 0, "{bad} frames dropped as bad_offload");
    Ok(())
}

/// MTU 9000 on two veth hosts and a TAP host: a ping of 8,972 bytes that
/// must not be fragmented crosses veth to veth and TAP to veth, one of
/// 8,973 does not (the MTU holds), and a file sent over TCP arrives intact.
fn jumbo_frames() -> TestResult {
    let tag = 2;
    let (sw, [a, b, c]) = lab(tag, 9000)?;
    let (a_ip, b_ip) = (format!("10.74.{tag}.11"), format!("10.74.{tag}.12"));
    let ping = |from: &str, to: &str, size: u32| {
        exec(
            from,
            &[
                "ping",
                "-c",
                "2",
                "-W",
                "2",
                "-q",
                "-M",
                "do",
                "-s",
                &size.to_string(),
                to,
            ],
        )
    };
    ping(&a, &b_ip, 8972).map_err(|e| format!("jumbo ping veth to veth: {e}"))?;
    ping(&c, &a_ip, 8972).map_err(|e| format!("jumbo ping TAP to veth: {e}"))?;
    ensure!(
        ping(&a, &b_ip, 8973).is_err(),
        "a ping of 8,973 bytes with DF left a host with MTU 9000"
    );
    netcat_file(&b, &b_ip, &a, 4)?;
    let bad = sw.stats()?.drop("bad_offload");
    ensure!(bad == 0, "{bad} frames dropped as bad_offload");
    Ok(())
}
