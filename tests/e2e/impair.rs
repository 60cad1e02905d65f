//! Link impairment and link state (docs/impair.md) with real tools: ping's
//! round-trip times for a delay, numbered pings for seeded loss, iperf3
//! for a rate, `ip link` inside the host for `shunt link` and a flap
//! schedule. Tags 84 to 89, 140, and 94, 95 (AF_XDP hosts).
//!
//! The machine these run on is shared: round-trip times are compared as
//! medians against an unimpaired baseline measured in the same test, so
//! that the load of others shifts both alike.

use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{exec, iperf3_tcp, run_timeout, Background, Switch, TestResult, Topology};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        ("impair::delay_adds_to_the_rtt", delay_adds_to_the_rtt),
        (
            "impair::seeded_loss_duplicates_corruption_reordering",
            seeded_loss_and_more,
        ),
        ("impair::rate_limits_tcp_and_udp", rate_limits_tcp_and_udp),
        (
            "impair::rate_is_the_ports_across_workers",
            rate_across_workers,
        ),
        ("impair::link_down_and_up_tap", link_down_and_up_tap),
        ("impair::link_down_and_up_veth", link_down_and_up_veth),
        ("impair::flap_schedule", flap_schedule),
    ]
}

/// AF_XDP hosts (veths attached with AF_XDP): the same delay and link tests.
pub fn afxdp_tests() -> Vec<Test> {
    vec![
        ("impair::delay_adds_to_the_rtt_afxdp", delay_afxdp),
        ("impair::link_down_and_up_afxdp", link_afxdp),
    ]
}

/// Host keys of an AF_XDP host.
const AFXDP: &str = "link = \"veth\"\nveth_attach = \"afxdp\"\nxdp_mode = \"auto\"\n";

fn delay_afxdp() -> TestResult {
    delay_rtt(94, AFXDP)
}

fn link_afxdp() -> TestResult {
    link_down_and_up(95, AFXDP)
}

/// A two-host topology of tag `tag`, with `extra` TOML after it, up.
fn up(tag: u8, host_keys: &str, extra: &str) -> Result<(Topology, Switch), String> {
    let t = Topology::new(tag, 2);
    let mut toml = t.toml();
    if !host_keys.is_empty() {
        // In place of the variant's `link = "tap"`.
        toml = toml.replace("link = \"tap\"\n", host_keys);
    }
    toml += extra;
    let hosts: Vec<String> = t.hosts.iter().map(|h| h.name.clone()).collect();
    let sw = Switch::up_toml(&t.switch, &toml, &hosts)?;
    Ok((t, sw))
}

/// The round-trip times of `n` pings from `from` to `ip`, `gap` apart, in ms.
fn rtts(from: &str, ip: &str, n: u32, gap: &str) -> Result<Vec<f64>, String> {
    let out = exec(
        from,
        &["ping", "-c", &n.to_string(), "-i", gap, "-W", "2", ip],
    )
    .or_else(|e| if e.contains("time=") { Ok(e) } else { Err(e) })?;
    Ok(out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("time="))
        .filter_map(|t| t.parse().ok())
        .collect())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn spread(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// `delay = "20ms"` on both directions of a's port (from the file): the
/// median RTT is 40 ms above the unimpaired one (± 2 ms) and none is below
/// 40 ms; with 5 ms of jitter the deviation grows; `--clear` at run time
/// takes it away within a second.
fn delay_adds_to_the_rtt() -> TestResult {
    delay_rtt(84, "")
}

fn delay_rtt(tag: u8, host_keys: &str) -> TestResult {
    let (t, sw) = up_with_port_impair(tag, host_keys, "delay = \"20ms\"\n")?;
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    // ARP first: its frames take the delay too.
    let _ = rtts(&a.name, b.ip(), 2, "0.2")?;
    let delayed = rtts(&a.name, b.ip(), 30, "0.1")?;
    ensure!(
        delayed.len() >= 28,
        "pings lost under a delay alone: {delayed:?}"
    );
    let min = delayed.iter().cloned().fold(f64::MAX, f64::min);
    ensure!(
        min >= 40.0,
        "a round trip shorter than both delays: {min} ms"
    );
    sw.cmd(&[
        "impair",
        &a.port(),
        "--delay",
        "20ms",
        "--jitter",
        "5ms",
        "--distribution",
        "normal",
    ])?;
    std::thread::sleep(Duration::from_millis(300));
    let jittered = rtts(&a.name, b.ip(), 30, "0.1")?;
    sw.cmd(&["impair", &a.port(), "--clear"])?;
    std::thread::sleep(Duration::from_millis(1000));
    let base = rtts(&a.name, b.ip(), 30, "0.1")?;
    let added = median(&delayed) - median(&base);
    eprintln!(
        "impair: median RTT {:.2} ms with 20 ms each way, {:.2} ms without: {added:.2} ms added; deviation {:.2} ms, {:.2} ms with 5 ms jitter",
        median(&delayed),
        median(&base),
        spread(&delayed),
        spread(&jittered)
    );
    ensure!(
        (38.0..=42.0).contains(&added),
        "the delay added {added:.2} ms, not 40 ± 2"
    );
    ensure!(
        median(&base) < 10.0,
        "cleared at run time, the RTT is still {:.2} ms",
        median(&base)
    );
    ensure!(
        spread(&jittered) > spread(&delayed) + 1.0,
        "jitter did not widen the deviation: {:.2} vs {:.2} ms",
        spread(&jittered),
        spread(&delayed)
    );
    let ports = sw.ports()?;
    let p = ports.iter().find(|p| p.name == b.port());
    ensure!(p.is_some_and(|p| p.impair.is_none()), "b is not impaired");
    Ok(())
}

/// The topology of tag `tag` with `keys` impairing both directions of the
/// first host's port.
fn up_with_port_impair(tag: u8, host_keys: &str, keys: &str) -> Result<(Topology, Switch), String> {
    let t = Topology::new(tag, 2);
    let extra = format!("\n[[impair]]\nport = \"{}\"\n{keys}", t.hosts[0].port());
    up(tag, host_keys, &extra)
}

/// Sequence numbers of the echo replies `n` pings got, `gap` apart.
fn replies(from: &str, ip: &str, n: u32, gap: &str) -> Result<Vec<u32>, String> {
    // ping fails when replies are missing: its output is still read.
    let out = exec(
        from,
        &["ping", "-c", &n.to_string(), "-i", gap, "-W", "1", ip],
    )
    .unwrap_or_else(|e| e);
    Ok(out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("icmp_seq="))
        .filter_map(|t| t.parse().ok())
        .collect())
}

/// Seeded loss of 10% on b's egress: of 500 pings the number lost is
/// within three standard deviations of 50, and the same seed loses the
/// same ones again; then duplication (DUP! replies), corruption (bad
/// checksums: no replies, the frames counted corrupted) and reordering
/// behind a delay (replies out of order).
fn seeded_loss_and_more() -> TestResult {
    let (t, sw) = up(85, "", "")?;
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    // No ARP during the runs: only the pings cross b's egress, the same
    // frames both times.
    exec(
        &a.name,
        &[
            "ip",
            "neigh",
            "replace",
            b.ip(),
            "lladdr",
            &b.mac.to_string(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )?;
    exec(
        &b.name,
        &[
            "ip",
            "neigh",
            "replace",
            a.ip(),
            "lladdr",
            &a.mac.to_string(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )?;
    let port = b.port();
    let loss = |seed: &str| -> Result<Vec<u32>, String> {
        sw.cmd(&[
            "impair",
            &port,
            "--direction",
            "egress",
            "--loss",
            "10%",
            "--seed",
            seed,
        ])?;
        let got = replies(&a.name, b.ip(), 500, "0.005")?;
        Ok((1..=500).filter(|s| !got.contains(s)).collect())
    };
    let first = loss("7")?;
    let again = loss("7")?;
    let other = loss("8")?;
    // sqrt(500 * 0.1 * 0.9) = 6.7.
    ensure!(
        (30..=70).contains(&first.len()),
        "{} of 500 lost at 10%",
        first.len()
    );
    ensure!(
        first == again,
        "the same seed lost other pings: {first:?} vs {again:?}"
    );
    ensure!(first != other, "another seed lost the same pings");
    let st = sw.stats()?;
    let counted = st.port_drop(&port, "impair_loss");
    let lost = (first.len() + again.len() + other.len()) as u64;
    ensure!(counted == lost, "impair_loss {counted}, pings lost {lost}");
    // Duplicates: ping says DUP!.
    sw.cmd(&[
        "impair",
        &port,
        "--direction",
        "egress",
        "--duplicate",
        "50%",
        "--seed",
        "1",
    ])?;
    let out = exec(&a.name, &["ping", "-c", "100", "-i", "0.01", b.ip()]).unwrap_or_else(|e| e);
    let dups = out.matches("DUP!").count();
    ensure!((25..=75).contains(&dups), "{dups} duplicates of 100 at 50%");
    // Corruption: a bit of every request flipped, no checksum mended.
    sw.cmd(&[
        "impair",
        &port,
        "--direction",
        "egress",
        "--corrupt",
        "100%",
    ])?;
    let got = replies(&a.name, b.ip(), 50, "0.01")?;
    ensure!(
        got.len() <= 2,
        "{} replies to corrupted requests",
        got.len()
    );
    // Reordering behind a 20 ms delay: replies out of order.
    sw.cmd(&[
        "impair",
        &port,
        "--direction",
        "egress",
        "--delay",
        "20ms",
        "--reorder",
        "30%",
        "--seed",
        "3",
    ])?;
    let got = replies(&a.name, b.ip(), 100, "0.005")?;
    let back = got.windows(2).filter(|w| w[1] < w[0]).count();
    ensure!(got.len() >= 95, "{} of 100 replies", got.len());
    ensure!(back > 5, "replies in order under 30% reordering: {got:?}");
    let v = sw.stats()?.json;
    let imp = &v["ports"][&port]["impair"]["egress"];
    for k in ["duplicated", "corrupted", "reordered", "delayed", "lost"] {
        ensure!(
            imp[k].as_u64().unwrap_or(0) > 0,
            "stats --json impair.egress.{k} is 0: {imp}"
        );
    }
    Ok(())
}

/// `rate = "10mbit"` on a's port: iperf3 TCP gets 9.0 to 10.5 Mbit/s; UDP
/// at 20 Mbit/s loses what the queue cannot hold, as `impair_queue_full`.
fn rate_limits_tcp_and_udp() -> TestResult {
    let (t, sw) = up_with_port_impair(86, "", "rate = \"10mbit\"\n")?;
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    let tcp = iperf3_tcp(&b.name, b.ip(), &a.name, 6)? / 1e6;
    eprintln!("impair: TCP through a 10mbit port: {tcp:.2} Mbit/s");
    ensure!(
        (9.0..=10.5).contains(&tcp),
        "TCP at {tcp:.2} Mbit/s through 10mbit"
    );
    let _server = Background::spawn(
        "ip",
        &["netns", "exec", &b.name, "iperf3", "-s", "-1", "-B", b.ip()],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let out = run_timeout(
        "ip",
        &[
            "netns",
            "exec",
            &a.name,
            "iperf3",
            "-c",
            b.ip(),
            "-u",
            "-b",
            "20M",
            "-t",
            "4",
            "-J",
        ],
        Duration::from_secs(25),
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let lost = v["end"]["sum"]["lost_percent"].as_f64().unwrap_or(0.0);
    let full = sw.stats()?.port_drop(&a.port(), "impair_queue_full");
    eprintln!("impair: UDP at 20 Mbit/s through 10mbit: {lost:.1}% lost, {full} impair_queue_full");
    // Half is beyond the rate; the queue (1000 frames, 1.2 s) drains after.
    ensure!((20.0..=60.0).contains(&lost), "UDP lost {lost:.1}%");
    ensure!(full > 0, "no impair_queue_full drops");
    Ok(())
}

/// Bytes received by the interfaces of namespace `ns` (all but lo).
fn rx_bytes(ns: &str) -> Result<u64, String> {
    let out = run_timeout(
        "ip",
        &["-n", ns, "-j", "-s", "link"],
        Duration::from_secs(5),
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo")
        .map(|l| l["stats64"]["rx"]["bytes"].as_u64().unwrap_or(0))
        .sum())
}

/// Two workers send to one rate-limited port: a on worker 0 and b on
/// worker 1 each send 12 Mbit/s of UDP to c, whose egress is limited to
/// 10 Mbit/s. Every worker has a line for c (any worker writes to a TAP),
/// and they take their slots from one timeline: c receives 10 Mbit/s, not
/// 20.
fn rate_across_workers() -> TestResult {
    let t = Topology::new(140, 3);
    let (a, b, c) = (&t.hosts[0], &t.hosts[1], &t.hosts[2]);
    let mut toml = t.toml();
    for w in 1..=8 {
        toml = toml.replace(&format!("workers = {w}\n"), "workers = 2\n");
    }
    toml += &format!(
        "\n[[impair]]\nport = \"{}\"\ndirection = \"egress\"\nrate = \"10mbit\"\n",
        c.port()
    );
    let hosts: Vec<String> = t.hosts.iter().map(|h| h.name.clone()).collect();
    let sw = Switch::up_toml(&t.switch, &toml, &hosts)?;
    let ports = sw.ports()?;
    let worker =
        |h: &crate::harness::Host| ports.iter().find(|p| p.name == h.port()).map(|p| p.worker);
    ensure!(
        worker(a) != worker(b),
        "a and b on one worker: {:?} {:?}",
        worker(a),
        worker(b)
    );
    let mut servers = Vec::new();
    for port in ["5301", "5302"] {
        servers.push(Background::spawn(
            "ip",
            &[
                "netns",
                "exec",
                &c.name,
                "iperf3",
                "-s",
                "-1",
                "-B",
                c.ip(),
                "-p",
                port,
            ],
        )?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let clients: Vec<Background> = [(a, "5301"), (b, "5302")]
        .iter()
        .map(|(h, port)| {
            Background::spawn(
                "ip",
                &[
                    "netns",
                    "exec",
                    &h.name,
                    "iperf3",
                    "-c",
                    c.ip(),
                    "-p",
                    port,
                    "-u",
                    "-b",
                    "12M",
                    "-t",
                    "5",
                ],
            )
        })
        .collect::<Result<_, _>>()?;
    // The middle of the run: both senders going, the queues full.
    std::thread::sleep(Duration::from_millis(1500));
    let (b0, t0) = (rx_bytes(&c.name)?, Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (b1, t1) = (rx_bytes(&c.name)?, Instant::now());
    let mbit = (b1 - b0) as f64 * 8.0 / (t1 - t0).as_secs_f64() / 1e6;
    drop(clients);
    drop(servers);
    eprintln!(
        "impair: 2 x 12 Mbit/s from two workers into a 10mbit egress: {mbit:.2} Mbit/s received"
    );
    // Ethernet bytes as the host counts them; the rate counts the same.
    ensure!(
        (8.5..=10.8).contains(&mbit),
        "c received {mbit:.2} Mbit/s through a 10mbit egress fed by two workers"
    );
    Ok(())
}

/// The carrier the host sees: false when `ip link` says NO-CARRIER.
fn carrier(host: &str) -> Result<bool, String> {
    let out = exec(host, &["ip", "-o", "link", "show", "eth0"])?;
    Ok(!out.contains("NO-CARRIER"))
}

/// `shunt link a.lan down`: a sees NO-CARRIER, pings fail and are counted
/// `link_down`, a's MAC leaves the FDB; `up` restores it all.
fn link_down_and_up(tag: u8, host_keys: &str) -> TestResult {
    let (t, sw) = up(tag, host_keys, "")?;
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    crate::harness::ping(&b.name, a.ip())?;
    ensure!(sw.fdb()?.port_of(a.mac).is_some(), "a not learned");
    sw.cmd(&["link", &a.port(), "down"])?;
    ensure!(!carrier(&a.name)?, "a still has its carrier");
    ensure!(
        crate::harness::ping(&b.name, a.ip()).is_err(),
        "pings pass a link that is down"
    );
    let st = sw.stats()?;
    ensure!(
        st.port_drop(&a.port(), "link_down") > 0,
        "nothing counted link_down: {}",
        st.port_drops_text(&a.port())
    );
    ensure!(
        sw.fdb()?.port_of(a.mac).is_none(),
        "a's MAC stayed in the FDB"
    );
    let ports = sw.ports()?;
    ensure!(
        ports
            .iter()
            .any(|p| p.name == a.port() && !p.up && p.link_down),
        "shunt ports does not show the link down"
    );
    sw.cmd(&["link", &a.port(), "up"])?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !carrier(&a.name)? && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(carrier(&a.name)?, "no carrier after up");
    let mut ok = false;
    while !ok && Instant::now() < deadline + Duration::from_secs(5) {
        ok = crate::harness::ping(&b.name, a.ip()).is_ok();
    }
    ensure!(ok, "pings fail after the link came up");
    Ok(())
}

fn link_down_and_up_tap() -> TestResult {
    link_down_and_up(87, "")
}

fn link_down_and_up_veth() -> TestResult {
    link_down_and_up(88, "link = \"veth\"\n")
}

/// `flap = { every = "1s", down_for = "400ms" }`: a's carrier goes and
/// comes back at those times (sampled from inside a).
fn flap_schedule() -> TestResult {
    let (t, _sw) =
        up_with_port_impair(89, "", "flap = { every = \"1s\", down_for = \"400ms\" }\n")?;
    let a = &t.hosts[0];
    let start = Instant::now();
    let mut changes = Vec::new();
    let mut last = carrier(&a.name)?;
    while start.elapsed() < Duration::from_millis(4200) {
        std::thread::sleep(Duration::from_millis(40));
        let now = carrier(&a.name)?;
        if now != last {
            changes.push((start.elapsed().as_millis(), now));
            last = now;
        }
    }
    eprintln!("impair: carrier changes (ms, carrier): {changes:?}");
    ensure!(
        changes.len() >= 6,
        "{} carrier changes in 4.2 s: {changes:?}",
        changes.len()
    );
    // Each time down: about 400 ms.
    for w in changes.windows(2) {
        if let [(t0, false), (t1, true)] = w {
            let d = t1 - t0;
            ensure!(
                (250..=650).contains(&d),
                "down for {d} ms, not about 400: {changes:?}"
            );
        }
    }
    Ok(())
}
