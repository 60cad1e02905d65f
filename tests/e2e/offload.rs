//! Offloads (issue 12): TCP and UDP through shunt with the hosts' TSO,
//! USO and checksum offload on, as a virtio-net NIC would have them.
//! Super-frames must arrive whole where the egress takes them (a TAP) and
//! segmented, with correct checksums, where it does not (an AF_XDP veth
//! host); tags are pushed and popped on super-frames (a trunk between two
//! shunts through a kernel bridge). Real iperf3, netcat, sha256sum, ethtool.

use std::time::Duration;

use crate::ensure;
use crate::harness::{exec, run, run_id, run_timeout, Background, Switch, TestResult};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        ("offload::tap_hosts_tcp", tap_hosts_tcp),
        ("offload::trunk_between_switches", trunk_between_switches),
    ]
}

/// The tests that need AF_XDP.
pub fn afxdp_tests() -> Vec<Test> {
    vec![("offload::tap_to_afxdp_host", tap_to_afxdp_host)]
}

fn names(tag: u8) -> String {
    format!("so{tag:02}{:03}", run_id())
}

/// `ethtool -k eth0` in `ns` says TSO and checksum offload are on.
pub(crate) fn offloads_on(ns: &str) -> Result<(), String> {
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

/// iperf3 TCP from `client` to `server_ip` in `server`, `streams`
/// parallel streams, IPv4 or IPv6 by the address; the receiver's bit/s.
pub(crate) fn iperf3(
    server: &str,
    server_ip: &str,
    client: &str,
    streams: u32,
) -> Result<f64, String> {
    let six = server_ip.contains(':');
    let _srv = Background::spawn(
        "ip",
        &[
            "netns", "exec", server, "iperf3", "-s", "-1", "-B", server_ip,
        ],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let p = streams.to_string();
    let mut args = vec![
        "netns", "exec", client, "iperf3", "-c", server_ip, "-t", "3", "-J", "-P", &p,
    ];
    if six {
        args.push("-6");
    }
    let out = run_timeout("ip", &args, Duration::from_secs(25))?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 -J: {e}: {out}"))?;
    Ok(v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0))
}

/// At least `gbit` Gbit/s: a black hole, or a path that fell back to
/// retransmissions, moves next to nothing (VPP#3184 fell to Mbit/s).
pub(crate) fn moves(what: &str, bps: f64, gbit: f64) -> Result<(), String> {
    if bps < gbit * 1e9 {
        return Err(format!(
            "{what}: {:.3} Gbit/s, less than {gbit} Gbit/s",
            bps / 1e9
        ));
    }
    Ok(())
}

/// IPv6 on eth0 of `ns` (shunt turns it off in hosts) with address `addr`.
fn ipv6(ns: &str, addr: &str) -> Result<(), String> {
    exec(
        ns,
        &[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.eth0.disable_ipv6=0",
        ],
    )?;
    exec(
        ns,
        &["ip", "-6", "addr", "add", addr, "dev", "eth0", "nodad"],
    )
    .map(|_| ())
}

/// A file of `mb` MiB of random bytes sent with netcat from `client` to
/// `server` (at `server_ip`) arrives with the same sha256.
pub(crate) fn netcat_file(
    server: &str,
    server_ip: &str,
    client: &str,
    mb: u32,
) -> Result<(), String> {
    let dir = std::env::temp_dir();
    let id = format!("{server}-{}", std::process::id());
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
                &format!("ip netns exec {server} nc -l -N {server_ip} 5201 > {dst_s}"),
            ],
        )?;
        std::thread::sleep(Duration::from_millis(400));
        run_timeout(
            "sh",
            &[
                "-c",
                &format!("ip netns exec {client} nc -N {server_ip} 5201 < {src_s}"),
            ],
            Duration::from_secs(30),
        )?;
        // The listener ends when the sender shuts the connection down.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0) < u64::from(mb) << 20
            && std::time::Instant::now() < deadline
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
            "netcat: {mb} MiB sent from {client} arrived with sha256 {b}, not {a}"
        );
        Ok(())
    })();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    result
}

/// An offload counter of a port (`shunt stats --json`, "offload").
pub(crate) fn offload(sw: &Switch, port: &str, counter: &str) -> Result<u64, String> {
    let st = sw.stats()?;
    Ok(st.json["ports"][port]["offload"][counter]
        .as_u64()
        .unwrap_or(0))
}

fn two_hosts_toml(sw: &str, tag: u8, b_link: &str) -> String {
    format!(
        "[switch]\nname = \"{sw}\"\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.77.{tag}.0/24\"\naddress = \"10.77.{tag}.1\"\n\n\
         [[host]]\nname = \"{sw}a\"\nnetworks = [\"lan\"]\nip = [\"10.77.{tag}.11/24\"]\n\n\
         [[host]]\nname = \"{sw}b\"\nnetworks = [\"lan\"]\nip = [\"10.77.{tag}.12/24\"]\nlink = \"{b_link}\"\n{}",
        if b_link == "veth" { "veth_attach = \"afxdp\"\n" } else { "" }
    )
}

/// Two TAP hosts: offloads on inside, TCP over IPv4 and IPv6 with one and
/// four streams, super-frames passed whole (counted), a file intact.
fn tap_hosts_tcp() -> TestResult {
    let tag = 80;
    let sw = names(tag);
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let swg = Switch::up_toml(
        &sw,
        &two_hosts_toml(&sw, tag, "tap"),
        &[a.clone(), b.clone()],
    )?;
    offloads_on(&a)?;
    offloads_on(&b)?;
    let b_ip = format!("10.77.{tag}.12");
    moves("TCP, one stream", iperf3(&b, &b_ip, &a, 1)?, 0.5)?;
    moves("TCP, four streams", iperf3(&b, &b_ip, &a, 4)?, 0.5)?;
    let rx = offload(&swg, &format!("{a}.lan"), "rx_gso")?;
    let whole = offload(&swg, &format!("{b}.lan"), "tx_gso_whole")?;
    ensure!(
        rx > 1000 && whole >= rx / 2,
        "super-frames: {rx} received from {a}, {whole} passed whole to {b}"
    );
    ensure!(
        offload(&swg, &format!("{b}.lan"), "tx_gso_segments")? == 0,
        "segments were cut for a TAP host, which takes super-frames"
    );
    ipv6(&a, &format!("fd00:77:{tag}::11/64"))?;
    ipv6(&b, &format!("fd00:77:{tag}::12/64"))?;
    let b6 = format!("fd00:77:{tag}::12");
    moves("TCP over IPv6, one stream", iperf3(&b, &b6, &a, 1)?, 0.5)?;
    moves("TCP over IPv6, four streams", iperf3(&b, &b6, &a, 4)?, 0.5)?;
    netcat_file(&b, &b_ip, &a, 8)?;
    netcat_file(&a, &format!("10.77.{tag}.11"), &b, 8)?;
    let st = swg.stats()?;
    let bad = st.drop("bad_offload");
    ensure!(bad == 0, "{bad} frames dropped as bad_offload");
    Ok(())
}

/// A TAP host to a veth host attached with AF_XDP (which takes no
/// offload): every super-frame is cut in software, with checksums the
/// receiving kernel accepts; and the other way round.
fn tap_to_afxdp_host() -> TestResult {
    let tag = 81;
    let sw = names(tag);
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let swg = Switch::up_toml(
        &sw,
        &two_hosts_toml(&sw, tag, "veth"),
        &[a.clone(), b.clone()],
    )?;
    offloads_on(&a)?;
    let (a_ip, b_ip) = (format!("10.77.{tag}.11"), format!("10.77.{tag}.12"));
    // The tests run the debug build: cutting segments is slow there.
    moves("TCP TAP to AF_XDP host", iperf3(&b, &b_ip, &a, 1)?, 0.1)?;
    moves("TCP AF_XDP to TAP host", iperf3(&a, &a_ip, &b, 1)?, 0.1)?;
    let segs = offload(&swg, &format!("{b}.lan"), "tx_gso_segments")?;
    ensure!(
        segs > 1000,
        "only {segs} segments made in software for the AF_XDP host"
    );
    netcat_file(&b, &b_ip, &a, 8)?;
    udp_gso(&a, &b, &b_ip)?;
    Ok(())
}

/// UDP with `UDP_SEGMENT` from `client`: 20 sends of 14,000 bytes in
/// datagrams of 1,400 arrive at `server` as 200 datagrams of 1,400 bytes.
pub(crate) fn udp_gso(client: &str, server: &str, server_ip: &str) -> Result<(), String> {
    let recv = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('{server_ip}',5301)); s.settimeout(3)\n\
         sizes=[]\n\
         try:\n    while len(sizes)<200: sizes.append(len(s.recv(65535)))\n\
         except Exception: pass\n\
         print(len(sizes), sorted(set(sizes)))\n"
    );
    let send = format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(17,103,1400)\n\
         for i in range(20): s.sendto(bytes([i])*14000,('{server_ip}',5301)); time.sleep(0.01)\n"
    );
    let listener = std::thread::spawn({
        let server = server.to_string();
        move || {
            run_timeout(
                "ip",
                &["netns", "exec", &server, "python3", "-c", &recv],
                Duration::from_secs(15),
            )
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    exec(client, &["python3", "-c", &send])?;
    let got = listener
        .join()
        .map_err(|_| "the UDP listener panicked".to_string())??;
    ensure!(
        got.trim() == "200 [1400]",
        "UDP GSO: the receiver saw (count, sizes) {}, not 200 datagrams of 1400",
        got.trim()
    );
    Ok(())
}

/// Two shunts joined by a trunk: each has a bare TAP trunk port, both TAPs
/// in one namespace on a kernel bridge. TCP between a host of each crosses
/// it tagged: the tag is pushed on super-frames (the checksum start moves
/// by 4) and popped on the other side, and the bridge carries them whole.
fn trunk_between_switches() -> TestResult {
    let tag = 82;
    let base = names(tag);
    let (s1, s2) = (format!("{base}p"), format!("{base}q"));
    let u = format!("{base}u");
    let _ = run("ip", &["netns", "del", &u]);
    run("ip", &["netns", "add", &u])?;
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = run("ip", &["netns", "del", &self.0]);
        }
    }
    let _u = Del(u.clone());
    run("ip", &["-n", &u, "link", "add", "br0", "type", "bridge"])?;
    run("ip", &["-n", &u, "link", "set", "br0", "up"])?;
    let toml = |sw: &str, host_ip: &str| {
        format!(
            "[switch]\nname = \"{sw}\"\n\n\
             [[network]]\nname = \"blue\"\nvlan = 10\nsubnet = \"10.77.{tag}.0/24\"\n\n\
             [[host]]\nname = \"{sw}h\"\nnetworks = [\"blue\"]\nip = [\"{host_ip}/24\"]\n\n\
             [[port]]\nname = \"up0\"\nkind = \"tap\"\ninterface = \"{sw}t\"\nnamespace = \"{u}\"\n\
             mode = \"trunk\"\nnetworks = [\"blue\"]\n"
        )
    };
    let (h1, h2) = (format!("{s1}h"), format!("{s2}h"));
    let sw1 = Switch::up_toml(
        &s1,
        &toml(&s1, &format!("10.77.{tag}.11")),
        std::slice::from_ref(&h1),
    )?;
    let sw2 = Switch::up_toml(
        &s2,
        &toml(&s2, &format!("10.77.{tag}.12")),
        std::slice::from_ref(&h2),
    )?;
    for t in [format!("{s1}t"), format!("{s2}t")] {
        run("ip", &["-n", &u, "link", "set", &t, "master", "br0", "up"])?;
    }
    let h2_ip = format!("10.77.{tag}.12");
    moves("TCP across the trunk", iperf3(&h2, &h2_ip, &h1, 1)?, 0.5)?;
    moves(
        "TCP across the trunk, back",
        iperf3(&h1, &format!("10.77.{tag}.11"), &h2, 1)?,
        0.5,
    )?;
    let pushed = offload(&sw1, "up0", "tx_gso_whole")?;
    let popped = offload(&sw2, &format!("{h2}.blue"), "tx_gso_whole")?;
    let tagged_in = offload(&sw2, "up0", "rx_gso")?;
    ensure!(
        pushed > 100 && tagged_in > 100 && popped > 100,
        "super-frames: {pushed} sent tagged on {s1}'s trunk, {tagged_in} received tagged on {s2}'s, {popped} passed untagged to {h2}"
    );
    netcat_file(&h2, &h2_ip, &h1, 8)?;
    drop(sw2);
    drop(sw1);
    Ok(())
}
