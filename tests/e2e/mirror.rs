//! Mirror ports (docs/mirror.md) with real namespaces: a monitor host's
//! tcpdump sees the pings between two hosts, once each, in the directions
//! the mirror says; the counters agree; `shunt mirror add|del` change it
//! while the switch runs; the monitor takes no part in forwarding; a
//! mirror that would loop is refused, in the file and at run time.
//! Tags 240 to 243.

use std::time::Duration;

use crate::ensure;
use crate::harness::{exec, run_timeout, Host, Switch, Tcpdump, TestResult, Topology, SHUNT};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        ("mirror::monitor_sees_each_ping_once", both_ways),
        ("mirror::in_then_out_then_none_at_run_time", at_run_time),
        ("mirror::loops_are_refused", loops_refused),
        (
            "mirror::a_slow_destination_loses_copies_not_frames",
            slow_destination,
        ),
    ]
}

/// Three hosts on `lan` (a, b, and the monitor m), with `extra` after the
/// file, up.
fn up(tag: u8, extra: impl Fn(&Topology) -> String) -> Result<(Topology, Switch), String> {
    let t = Topology::new(tag, 3);
    let toml = format!("{}{}", t.toml(), extra(&t));
    let hosts: Vec<String> = t.hosts.iter().map(|h| h.name.clone()).collect();
    let sw = Switch::up_toml(&t.switch, &toml, &hosts)?;
    Ok((t, sw))
}

/// A `[[mirror]]` "mon" of the hosts' ports to `dest`'s port (its
/// destination key on the table's sixth line, after a blank one).
fn mirror_table(sources: &[Host], direction: &str, dest: &Host) -> String {
    let src: Vec<String> = sources
        .iter()
        .map(|h| format!("\"{}\"", h.port()))
        .collect();
    format!(
        "\n[[mirror]]\nname = \"mon\"\nsource = [{}]\ndirection = \"{direction}\"\ndestination = \"{}\"\n",
        src.join(", "),
        dest.port()
    )
}

/// Pings `n` times from `from` to `to`, quickly.
fn pings(from: &Host, to: &Host, n: u32) -> Result<(), String> {
    let count = n.to_string();
    let out = exec(
        &from.name,
        &["ping", "-c", &count, "-i", "0.2", "-W", "2", "-q", to.ip()],
    )?;
    ensure!(
        out.contains(&format!("{n} received")),
        "ping {} -> {}: {out}",
        from.name,
        to.name
    );
    Ok(())
}

/// ICMP echo requests and replies among `frames`, from `src`'s MAC.
fn echoes(frames: &[Vec<u8>], src: &Host) -> (usize, usize) {
    let mut got = (0, 0);
    for f in frames {
        let ipv4_icmp = f.len() > 34 && f[12..14] == [0x08, 0x00] && f[23] == 1;
        if !ipv4_icmp || f[6..12] != src.mac.0 {
            continue;
        }
        match f[34] {
            8 => got.0 += 1,
            0 => got.1 += 1,
            _ => {}
        }
    }
    got
}

/// While `a` pings `b` 3 times, the monitor `m`'s tcpdump sees `want`:
/// (requests, replies) from a, then from b.
fn seen_during_pings(
    a: &Host,
    b: &Host,
    m: &Host,
    what: &str,
    want: [(usize, usize); 2],
) -> Result<(), String> {
    let cap = Tcpdump::start(&m.name, "eth0")?;
    pings(a, b, 3)?;
    std::thread::sleep(Duration::from_millis(200));
    let frames = cap.stop()?;
    let got = [echoes(&frames, a), echoes(&frames, b)];
    ensure!(
        got == want,
        "{what}: the monitor saw (requests, replies) from a and from b {got:?}; want {want:?}"
    );
    Ok(())
}

/// The monitor's mirror counters (sent, dropped) and the sources' copies.
fn mirror_counts(sw: &Switch, mon: &Host, sources: &[&Host]) -> Result<(u64, u64, u64), String> {
    let st = sw.stats()?;
    let m = st
        .typed
        .ports
        .get(&mon.port())
        .map(|p| p.mirror)
        .unwrap_or_default();
    let copied = sources
        .iter()
        .filter_map(|h| st.typed.ports.get(&h.port()))
        .map(|p| p.mirror.copied)
        .sum();
    Ok((m.sent, m.dropped, copied))
}

// 240 -------------------------------------------------------------------

fn both_ways() -> TestResult {
    let (t, sw) = up(240, |t| mirror_table(&t.hosts[..2], "both", &t.hosts[2]))?;
    let (a, b, m) = (&t.hosts[0], &t.hosts[1], &t.hosts[2]);
    let cap = Tcpdump::start(&m.name, "eth0")?;
    let (sent0, _, _) = mirror_counts(&sw, m, &[a, b])?;
    pings(a, b, 3)?;
    pings(b, a, 2)?;
    std::thread::sleep(Duration::from_millis(300));
    let (sent1, dropped, copied) = mirror_counts(&sw, m, &[a, b])?;
    let frames = cap.stop()?;
    // Each frame between the two sources crossed both (in on one, out of
    // the other): the monitor has it once.
    ensure!(
        echoes(&frames, a) == (3, 2) && echoes(&frames, b) == (2, 3),
        "the monitor saw from a (requests, replies) {:?}, from b {:?}; want (3, 2) and (2, 3); {} frames",
        echoes(&frames, a),
        echoes(&frames, b),
        frames.len()
    );
    ensure!(dropped == 0, "{dropped} mirror copies dropped");
    // Every copy made was sent, and tcpdump has every one sent meanwhile.
    ensure!(copied == sent1, "copies made {copied}, sent {sent1}");
    let delta = (sent1 - sent0) as usize;
    ensure!(
        delta >= 10 && frames.len() >= delta,
        "copies sent during the pings: {delta}; the monitor captured {}",
        frames.len()
    );
    // The monitor takes no part in forwarding: it cannot ping a, and what
    // it sends is dropped as mirror_destination.
    let r = exec(&m.name, &["ping", "-c", "1", "-W", "1", "-q", a.ip()]);
    ensure!(r.is_err(), "the mirror destination could ping a: {r:?}");
    let st = sw.stats()?;
    ensure!(
        st.port_drop(&m.port(), "mirror_destination") > 0,
        "no mirror_destination drops on {}: {}",
        m.port(),
        st.port_drops_text(&m.port())
    );
    Ok(())
}

// 241 -------------------------------------------------------------------

fn at_run_time() -> TestResult {
    let (t, sw) = up(241, |_| String::new())?;
    let (a, b, m) = (&t.hosts[0], &t.hosts[1], &t.hosts[2]);
    let list = |sw: &Switch| -> Result<serde_json::Value, String> {
        let out = sw.cmd(&["mirror", "list", "--json"])?;
        serde_json::from_str(&out).map_err(|e| format!("mirror list --json: {e}: {out}"))
    };
    ensure!(list(&sw)? == serde_json::json!([]), "a mirror before any");
    // in: a's requests only.
    sw.cmd(&[
        "mirror",
        "add",
        "tap",
        "--source",
        &a.port(),
        "--direction",
        "in",
        "--destination",
        &m.name,
    ])?;
    let l = list(&sw)?;
    ensure!(
        l[0]["name"] == "tap"
            && l[0]["source"] == serde_json::json!([a.port()])
            && l[0]["direction"] == "in"
            && l[0]["destination"] == m.port().as_str(),
        "mirror list: {l}"
    );
    seen_during_pings(a, b, m, "direction in", [(3, 0), (0, 0)])?;
    // A second mirror to the same port, or one that loops, is refused.
    let r = sw.cmd(&[
        "mirror",
        "add",
        "x",
        "--source",
        &b.port(),
        "--destination",
        &m.port(),
    ]);
    ensure!(
        r.as_ref()
            .is_err_and(|e| e.contains("its own destination port")),
        "a second mirror to {}: {r:?}",
        m.port()
    );
    let r = sw.cmd(&[
        "mirror",
        "add",
        "x",
        "--source",
        &format!("{},{}", b.port(), m.port()),
        "--destination",
        &a.port(),
    ]);
    ensure!(
        r.as_ref().is_err_and(|e| e.contains("loop")),
        "a mirror to a source: {r:?}"
    );
    // out: the replies a gets.
    sw.cmd(&["mirror", "del", "tap"])?;
    sw.cmd(&[
        "mirror",
        "add",
        "tap",
        "--source",
        &a.port(),
        "--direction",
        "out",
        "--destination",
        &m.port(),
    ])?;
    seen_during_pings(a, b, m, "direction out", [(0, 0), (0, 3)])?;
    let l = list(&sw)?;
    let sent = l[0]["sent"].as_u64().unwrap_or(0);
    ensure!(
        sent >= 3 && l[0]["dropped"] == 0,
        "mirror list after out: {l}"
    );
    // del: no more copies, and m forwards again (it pings a).
    sw.cmd(&["mirror", "del", "tap"])?;
    seen_during_pings(a, b, m, "after del", [(0, 0), (0, 0)])?;
    pings(m, a, 1)?;
    let r = sw.cmd(&["mirror", "del", "tap"]);
    ensure!(
        r.as_ref().is_err_and(|e| e.contains("no mirror named")),
        "del of a mirror that is gone: {r:?}"
    );
    Ok(())
}

// 242 -------------------------------------------------------------------

fn loops_refused() -> TestResult {
    // Only checked (`up --check`): nothing is created.
    let t = Topology::new(242, 3);
    let (a, m) = (&t.hosts[0], &t.hosts[2]);
    let base = t.toml();
    let mirror = mirror_table(&[a.clone(), m.clone()], "both", m);
    let file = std::env::temp_dir().join(format!("shunt-e2e-mirror-{}.toml", std::process::id()));
    std::fs::write(&file, format!("{base}{mirror}")).map_err(|e| e.to_string())?;
    let path = file.to_string_lossy().into_owned();
    let r = run_timeout(SHUNT, &["up", &path, "--check"], Duration::from_secs(20));
    let _ = std::fs::remove_file(&file);
    // The destination line: the file's lines, then the table's sixth.
    let line = base.lines().count() + 6;
    let want = format!(":{line}: [[mirror]] destination: mirror \"mon\": destination");
    ensure!(
        r.as_ref().is_err_and(|e| e.contains(&want)
            && e.contains("loop")
            && e.contains("out of `source`")),
        "shunt up --check of a looping mirror: {r:?} (want {want:?})"
    );
    Ok(())
}

// 243 -------------------------------------------------------------------

/// The destination cannot keep up (its egress limited to 1 Mbit/s, 20
/// frames held): copies are lost and counted, every original arrives.
fn slow_destination() -> TestResult {
    let (t, sw) = up(243, |t| {
        format!(
            "{}\n[[impair]]\nport = \"{}\"\ndirection = \"egress\"\nrate = \"1mbit\"\nlimit = 20\n",
            mirror_table(&t.hosts[..1], "both", &t.hosts[2]),
            t.hosts[2].port()
        )
    })?;
    let (a, b, m) = (&t.hosts[0], &t.hosts[1], &t.hosts[2]);
    // 2,000 echoes of 1,000 bytes as fast as they come back: about 16
    // Mbit/s each way through a, 32 into a mirror of 1 Mbit/s.
    let out = exec(
        &a.name,
        &[
            "ping",
            "-f",
            "-c",
            "2000",
            "-s",
            "1000",
            "-W",
            "1",
            "-q",
            b.ip(),
        ],
    )?;
    ensure!(
        out.contains("2000 received"),
        "originals lost beside a slow mirror: {out}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (sent, dropped, copied) = mirror_counts(&sw, m, &[a])?;
    ensure!(
        dropped > 0 && sent > 0 && sent + dropped == copied && copied >= 4000,
        "copies made {copied}, sent {sent}, dropped {dropped}"
    );
    let st = sw.stats()?;
    let q = st.port_drop(&m.port(), "impair_queue_full");
    ensure!(
        q == dropped,
        "{q} impair_queue_full on {}, {dropped} mirror copies dropped",
        m.port()
    );
    for h in [a, b] {
        let d: u64 = st
            .typed
            .ports
            .get(&h.port())
            .map_or(0, |p| p.drops.values().sum());
        ensure!(
            d == 0,
            "drops on {}: {}",
            h.port(),
            st.port_drops_text(&h.port())
        );
    }
    Ok(())
}
