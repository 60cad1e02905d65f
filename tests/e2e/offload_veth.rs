//! veth hosts keep their offloads (issue 12, item 5): a host with `link =
//! "veth"` is attached with a packet socket that carries the virtio-net
//! header, so TSO and checksum offload stay on inside the host and its
//! TCP super-frames cross the switch whole, to another veth host and to a
//! TAP host. Jumbo frames (MTU 9000) through both kinds. Real iperf3,
//! ethtool, netcat and sha256sum.

use crate::ensure;
use crate::harness::{exec, run, run_id, Switch, TestResult};
use crate::l2::Test;
use crate::offload::{iperf3, moves, netcat_file, offload, offloads_on, udp_gso};

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
    let sw = format!("sk{tag:02}{:03}", run_id());
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

/// Two veth hosts and a TAP host, offloads on in all of them: TCP over
/// IPv4 (one and four streams) and IPv6 between the veth hosts, their
/// super-frames passed whole (never cut in software), TCP from the TAP
/// host to a veth host, files intact both ways, UDP super-frames
/// (`UDP_SEGMENT`) arriving as datagrams of their segment size, TCP through
/// a VXLAN device inside the veth hosts, nothing `bad_offload`.
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
    moves("TCP veth to veth", iperf3(&b, &b_ip, &a, 1)?, 0.5)?;
    moves(
        "TCP veth to veth, 4 streams",
        iperf3(&b, &b_ip, &a, 4)?,
        0.5,
    )?;
    moves(
        "TCP over IPv6 veth to veth",
        iperf3(&b, &format!("fd00:74:{tag}::12"), &a, 1)?,
        0.5,
    )?;
    let pb = format!("{b}.lan");
    let whole = offload(&sw, &pb, "tx_gso_whole")?;
    ensure!(
        whole > 1000,
        "only {whole} super-frames from {a} passed whole to {b}"
    );
    // The kernel's counters of the packet sockets are in the stats.
    let st = sw.stats()?;
    let given = st.json["ports"][format!("{a}.lan")]["packet"]["rx_packets"]
        .as_u64()
        .unwrap_or(0);
    ensure!(
        given >= whole,
        "stats: {a}.lan's socket was given {given} frames, fewer than the {whole} super-frames"
    );
    let cut = offload(&sw, &pb, "tx_gso_segments")?;
    ensure!(
        cut == 0,
        "{cut} segments cut in software for {b}, whose port takes super-frames"
    );
    // A TAP host's super-frames into a veth host, and back.
    moves("TCP TAP to veth", iperf3(&a, &a_ip, &c, 1)?, 0.5)?;
    moves(
        "TCP veth to TAP",
        iperf3(&c, &format!("10.74.{tag}.13"), &a, 1)?,
        0.5,
    )?;
    netcat_file(&b, &b_ip, &a, 8)?;
    netcat_file(&a, &a_ip, &b, 8)?;
    // UDP with UDP_SEGMENT: veth to veth (passed whole), TAP to veth.
    udp_gso(&a, &b, &b_ip)?;
    udp_gso(&c, &a, &a_ip)?;
    // A VXLAN device inside each veth host, over eth0: its super-frames
    // are a tunnel's, which the virtio-net header cannot describe, so shunt
    // turns that offload off in the host (the kernel would drop every one
    // at the packet socket: 228 kbit/s before).
    for (h, i, peer) in [(&a, 1, &b_ip), (&b, 2, &a_ip)] {
        exec(
            h,
            &[
                "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "remote", peer, "dstport",
                "4789", "dev", "eth0",
            ],
        )?;
        exec(
            h,
            &[
                "ip",
                "addr",
                "add",
                &format!("192.168.74.{i}/24"),
                "dev",
                "vx0",
            ],
        )?;
        exec(h, &["ip", "link", "set", "vx0", "up"])?;
    }
    moves(
        "TCP through VXLAN in the veth hosts",
        iperf3(&b, "192.168.74.2", &a, 1)?,
        0.1,
    )?;
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
