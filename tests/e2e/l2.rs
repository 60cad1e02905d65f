//! L2 behaviour of the foundation: learning, flooding, ageing, split horizon,
//! MAC moves, static entries, a full FDB, bad input, a host vanishing, exact
//! counters, bring-up and teardown.
//!
//! The stimuli follow the kernel's bridge selftests
//! (tools/testing/selftests/net/forwarding/lib.sh: `learning_test` sends from
//! an unknown source, checks the FDB, then checks that frames to it are no
//! longer flooded; `flood_test` sends to an unknown MAC and a broadcast and
//! checks every other port got it). Frames carry a marker (test id +
//! sequence number) and use the experimental EtherType 0x88b5, so the
//! namespaces' kernels ignore them and unrelated frames never count.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{
    exec, pids_with_arg, ping, run, socket_path, Background, Host, Stats, Switch, TestResult,
    Topology, SHUNT,
};
use shunt_tools::{FrameBuilder, MacAddr, Marker, RawPort, XorShift};

/// How long frames get to cross the switch before sniffers are read.
const WAIT: Duration = Duration::from_millis(400);

/// A test: its name and its body.
pub type Test = (&'static str, fn() -> TestResult);

pub fn tests() -> Vec<Test> {
    vec![
        ("l2::ping_all_pairs", ping_all_pairs),
        ("l2::learning_stops_flooding", learning_stops_flooding),
        ("l2::ageing_resumes_flooding", ageing_resumes_flooding),
        ("l2::multicast_source_dropped", multicast_source_dropped),
        ("l2::split_horizon", split_horizon),
        (
            "l2::mac_move_and_static_entries",
            mac_move_and_static_entries,
        ),
        ("l2::fdb_full", fdb_full),
        ("l2::bad_input", bad_input),
        ("l2::host_namespace_deleted", host_namespace_deleted),
        ("l2::counters_exact", counters_exact),
        (
            "l2::bring_up_teardown_and_kill9",
            bring_up_teardown_and_kill9,
        ),
    ]
}

/// A marked frame of test `tag`.
fn frame(tag: u8, dst: MacAddr, src: MacAddr, seq: u32) -> Vec<u8> {
    FrameBuilder::new(dst, src)
        .marker(Marker::new(u32::from(tag), seq))
        .build()
}

fn send_n(
    port: &mut RawPort,
    tag: u8,
    dst: MacAddr,
    src: MacAddr,
    seqs: Range<u32>,
) -> Result<(), String> {
    for seq in seqs {
        port.send(&frame(tag, dst, src, seq))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Wait for frames to cross, then count at each sniffer the frames of test
/// `tag` whose sequence number is in `seqs`.
fn seen(sniffers: &mut [RawPort], tag: u8, seqs: Range<u32>) -> Vec<usize> {
    std::thread::sleep(WAIT);
    sniffers
        .iter_mut()
        .map(|p| {
            p.markers_for(Duration::from_millis(30), u32::from(tag))
                .iter()
                .filter(|m| seqs.contains(&m.seq))
                .count()
        })
        .collect()
}

/// Let the topology go quiet and empty the sniffers.
fn settle(sniffers: &mut [RawPort]) {
    std::thread::sleep(Duration::from_millis(300));
    for s in sniffers.iter_mut() {
        s.drain();
    }
}

fn names(hosts: &[Host]) -> Vec<&str> {
    hosts.iter().map(|h| h.name.as_str()).collect()
}

fn expect_seen(what: &str, hosts: &[Host], got: &[usize], want: &[usize]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: frames seen at {:?}: got {got:?}, want {want:?}",
            names(hosts)
        ))
    }
}

/// Sends frames `seqs` from host `from` to `dst` with source `src`, and
/// checks how many each host saw.
#[allow(clippy::too_many_arguments)]
fn flow(
    sn: &mut [RawPort],
    hosts: &[Host],
    tag: u8,
    from: usize,
    (dst, src): (MacAddr, MacAddr),
    seqs: Range<u32>,
    what: &str,
    want: &[usize],
) -> Result<(), String> {
    send_n(&mut sn[from], tag, dst, src, seqs.clone())?;
    let got = seen(sn, tag, seqs);
    expect_seen(what, hosts, &got, want)
}

fn three(tag: u8) -> Topology {
    Topology::new(tag, 3)
}

// 1 ---------------------------------------------------------------------

fn ping_all_pairs() -> TestResult {
    let topo = three(1);
    let sw = Switch::up(&topo)?;
    if crate::harness::variant().multiqueue {
        // The variant is what it says: every TAP with a queue per worker.
        let ports = sw.ports()?;
        ensure!(
            ports.iter().all(|p| p.queues == 2),
            "multi-queue variant, ports without 2 queues: {:?}",
            ports
                .iter()
                .map(|p| (&p.name, p.queues))
                .collect::<Vec<_>>()
        );
    }
    for a in &topo.hosts {
        for b in &topo.hosts {
            if a.name != b.name {
                ping(&a.name, b.ip())?;
            }
        }
    }
    // `shunt exec` reaches the same namespace as `ip netns exec`.
    let h0 = &topo.hosts[0];
    let out = run(
        SHUNT,
        &[
            "exec",
            &h0.name,
            "--",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            topo.hosts[1].ip(),
        ],
    )
    .map_err(|e| format!("shunt exec: {e}"))?;
    ensure!(out.contains("1 received"), "shunt exec ping output: {out}");
    let addr = run(
        SHUNT,
        &[
            "exec", &h0.name, "--", "ip", "-o", "addr", "show", "dev", "eth0",
        ],
    )?;
    ensure!(
        addr.contains(&h0.cidr),
        "shunt exec {} -- ip addr: want {} on eth0, got: {addr}",
        h0.name,
        h0.cidr
    );
    Ok(())
}

// 2 ---------------------------------------------------------------------

fn learning_stops_flooding() -> TestResult {
    let tag = 2;
    let topo = three(tag);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    settle(&mut sn);
    let s0 = sw.stats()?;

    // c has never sent: its MAC is unknown, frames to it are flooded.
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (c.mac, a.mac),
        0..10,
        "10 frames a -> c's unknown MAC (flooded)",
        &[0, 10, 10],
    )?;
    let s1 = sw.stats()?;
    let uu = s1.flooded(&a.port(), "unknown_unicast") - s0.flooded(&a.port(), "unknown_unicast");
    ensure!(
        uu == 10,
        "stats: {}.flooded.unknown_unicast went up by {uu}, want 10",
        a.port()
    );

    // c speaks once (to a, whose MAC is known by now: a gets it alone).
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        2,
        (a.mac, c.mac),
        100..101,
        "c -> a after a was learned",
        &[1, 0, 0],
    )?;

    let fdb = sw.fdb()?;
    let e = fdb
        .find(c.mac)
        .ok_or_else(|| format!("fdb: {} (c) not learned: {:?}", c.mac, fdb.0))?;
    ensure!(
        e.port == c.port() && !e.is_static && e.network == "lan",
        "fdb entry for c: want port {} network lan static false, got {e:?}",
        c.port()
    );
    ensure!(
        fdb.port_of(a.mac) == Some(a.port().as_str()),
        "fdb: a's MAC {} want on {}, got {:?}",
        a.mac,
        a.port(),
        fdb.port_of(a.mac)
    );

    // Now frames to c go to c only.
    let s2 = sw.stats()?;
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (c.mac, a.mac),
        200..210,
        "10 frames a -> c after c was learned",
        &[0, 0, 10],
    )?;
    let s3 = sw.stats()?;
    let uu = s3.flooded(&a.port(), "unknown_unicast") - s2.flooded(&a.port(), "unknown_unicast");
    ensure!(
        uu == 0,
        "flooded.unknown_unicast went up by {uu} for known unicast"
    );
    Ok(())
}

// 3 ---------------------------------------------------------------------

fn ageing_resumes_flooding() -> TestResult {
    let tag = 3;
    let aging = 2u64;
    let topo = three(tag).aging(aging);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    settle(&mut sn);

    send_n(&mut sn[0], tag, MacAddr::BROADCAST, a.mac, 0..1)?;
    send_n(&mut sn[2], tag, a.mac, c.mac, 1..2)?;
    std::thread::sleep(Duration::from_millis(100));
    let learned_at = Instant::now();
    let fdb = sw.fdb()?;
    let e = fdb
        .find(c.mac)
        .ok_or_else(|| format!("c's MAC not learned: {:?}", fdb.0))?;
    ensure!(
        (e.age_secs as u64) < aging,
        "fresh entry has age_secs {} (>= ageing time {aging})",
        e.age_secs
    );

    // Keep sending *to* c (never from c): that must not refresh c's entry.
    let deadline = learned_at + Duration::from_secs(aging + 4);
    let mut seq = 1000;
    let gone_after = loop {
        send_n(&mut sn[0], tag, c.mac, a.mac, seq..seq + 1)?;
        seq += 1;
        std::thread::sleep(Duration::from_millis(200));
        if sw.fdb()?.find(c.mac).is_none() {
            break learned_at.elapsed();
        }
        ensure!(
            Instant::now() < deadline,
            "c's entry still in the fdb {:?} after learning (ageing time {aging} s, frames *to* c \
             were sent every 200 ms: they must not refresh it): {:?}",
            learned_at.elapsed(),
            sw.fdb()?.find(c.mac)
        );
    };
    ensure!(
        gone_after >= Duration::from_millis(aging * 1000 - 500),
        "c's entry disappeared after only {gone_after:?} (ageing time {aging} s)"
    );

    // Flooding resumes.
    settle(&mut sn);
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (c.mac, a.mac),
        5000..5010,
        "10 frames a -> c after c's entry aged out (flooded again)",
        &[0, 10, 10],
    )?;
    Ok(())
}

// 4 ---------------------------------------------------------------------

fn multicast_source_dropped() -> TestResult {
    let tag = 4;
    let topo = three(tag);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    // b speaks so that b's MAC is known (a unicast destination).
    send_n(&mut sn[1], tag, MacAddr::BROADCAST, b.mac, 0..1)?;
    settle(&mut sn);
    let s0 = sw.stats()?;

    let mcast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, tag]);
    let v6mcast = MacAddr([0x33, 0x33, 0x00, 0x00, 0x00, tag]);
    send_n(&mut sn[0], tag, b.mac, mcast, 10..15)?;
    send_n(
        &mut sn[0],
        tag,
        MacAddr::BROADCAST,
        MacAddr::BROADCAST,
        15..20,
    )?;
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, v6mcast, 20..25)?;
    let got = seen(&mut sn, tag, 10..25);
    expect_seen(
        "15 frames with multicast/broadcast sources",
        &topo.hosts,
        &got,
        &[0, 0, 0],
    )?;

    let s1 = sw.stats()?;
    let p = a.port();
    let d = s1.port_drop(&p, "src_multicast") - s0.port_drop(&p, "src_multicast");
    ensure!(
        d == 15,
        "stats: {p}.drops.src_multicast went up by {d}, want 15 (drops now {})",
        s1.port_drops_text(&p)
    );
    let g = s1.drop("src_multicast") - s0.drop("src_multicast");
    ensure!(
        g == 15,
        "stats: drops.src_multicast (switch-wide) went up by {g}, want 15"
    );
    let rx = s1.port(&p, "rx_frames") - s0.port(&p, "rx_frames");
    ensure!(rx == 15, "stats: {p}.rx_frames went up by {rx}, want 15");

    let fdb = sw.fdb()?;
    for m in [mcast, v6mcast, MacAddr::BROADCAST] {
        ensure!(
            fdb.find(m).is_none(),
            "fdb learned the group address {m}: {:?}",
            fdb.0
        );
    }
    Ok(())
}

// 5 ---------------------------------------------------------------------

fn split_horizon() -> TestResult {
    let tag = 5;
    let topo = three(tag);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    settle(&mut sn);

    let unknown = shunt_tools::test_mac(tag, 0, 0x99);
    let group = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, tag]);
    for (what, dst, base) in [
        ("broadcast", MacAddr::BROADCAST, 0),
        ("multicast", group, 100),
        ("unknown unicast", unknown, 200),
    ] {
        send_n(&mut sn[0], tag, dst, a.mac, base..base + 10)?;
        let got = seen(&mut sn, tag, base..base + 10);
        expect_seen(
            &format!("10 {what} frames from a (never back to a)"),
            &topo.hosts,
            &got,
            &[0, 10, 10],
        )?;
    }

    // m is learned on a's port; then a sends to m: destination on the
    // ingress port, dropped as same_port.
    let m = shunt_tools::test_mac(tag, 0, 0x77);
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (MacAddr::BROADCAST, m),
        300..301,
        "broadcast from m (on a's port)",
        &[0, 1, 1],
    )?;
    let fdb = sw.fdb()?;
    ensure!(
        fdb.port_of(m) == Some(a.port().as_str()),
        "fdb: {m} want on {}, got {:?}",
        a.port(),
        fdb.port_of(m)
    );
    let s0 = sw.stats()?;
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (m, a.mac),
        400..410,
        "10 frames a -> m (m is on a's own port)",
        &[0, 0, 0],
    )?;
    let s1 = sw.stats()?;
    let p = a.port();
    let d = s1.port_drop(&p, "same_port") - s0.port_drop(&p, "same_port");
    ensure!(
        d == 10,
        "stats: {p}.drops.same_port went up by {d}, want 10 (drops now {})",
        s1.port_drops_text(&p)
    );
    Ok(())
}

// 6 ---------------------------------------------------------------------

fn mac_move_and_static_entries() -> TestResult {
    let tag = 6;
    let aging = 2u64;
    let base = three(tag).aging(aging);
    let s_mac = shunt_tools::test_mac(tag, 0, 0x55);
    let c_port = base.hosts[2].port();
    let topo = base.static_entry(s_mac, &c_port);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    settle(&mut sn);

    // M appears on a, then on b: it moves.
    let m = shunt_tools::test_mac(tag, 0, 0x66);
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, m, 0..1)?;
    std::thread::sleep(Duration::from_millis(100));
    let p = sw.fdb()?.port_of(m).map(str::to_string);
    ensure!(
        p.as_deref() == Some(a.port().as_str()),
        "M first seen on a: fdb says {p:?}"
    );
    send_n(&mut sn[1], tag, MacAddr::BROADCAST, m, 1..2)?;
    std::thread::sleep(Duration::from_millis(100));
    let p = sw.fdb()?.port_of(m).map(str::to_string);
    ensure!(
        p.as_deref() == Some(b.port().as_str()),
        "M then seen on b: want fdb to say {}, got {p:?}",
        b.port()
    );
    settle(&mut sn);
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        2,
        (m, c.mac),
        100..110,
        "10 frames c -> M after M moved to b",
        &[0, 10, 0],
    )?;

    // The static entry: on c, static, does not move when a sends from it.
    let fdb = sw.fdb()?;
    let e = fdb
        .find(s_mac)
        .ok_or_else(|| format!("static entry {s_mac} missing: {:?}", fdb.0))?;
    ensure!(
        e.port == c_port && e.is_static,
        "static entry: want port {c_port} static true, got {e:?}"
    );
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, s_mac, 200..205)?;
    std::thread::sleep(WAIT);
    let fdb = sw.fdb()?;
    let e = fdb
        .find(s_mac)
        .ok_or_else(|| format!("static entry gone after a sent from it: {:?}", fdb.0))?;
    ensure!(
        e.port == c_port && e.is_static,
        "static entry moved after a sent from {s_mac}: want port {c_port} static, got {e:?}"
    );
    settle(&mut sn);
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (s_mac, a.mac),
        300..310,
        "10 frames a -> static MAC (on c)",
        &[0, 0, 10],
    )?;

    // Longer than the ageing time: the static entry stays, M (learned) goes.
    std::thread::sleep(Duration::from_secs(aging + 2));
    let fdb = sw.fdb()?;
    let e = fdb
        .find(s_mac)
        .ok_or_else(|| format!("static entry aged out after {} s: {:?}", aging + 2, fdb.0))?;
    ensure!(
        e.port == c_port && e.is_static,
        "static entry after ageing time: {e:?}"
    );
    ensure!(
        fdb.find(m).is_none(),
        "learned entry for M still there {} s after its last frame (ageing {aging} s): {:?}",
        aging + 2,
        fdb.find(m)
    );
    settle(&mut sn);
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        0,
        (s_mac, a.mac),
        400..410,
        "10 frames a -> static MAC after ageing time",
        &[0, 0, 10],
    )?;
    Ok(())
}

// 7 ---------------------------------------------------------------------

fn fdb_full() -> TestResult {
    let tag = 7;
    let topo = three(tag).max_entries(3);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    settle(&mut sn);

    let m1 = shunt_tools::test_mac(tag, 0, 0x71);
    let m2 = shunt_tools::test_mac(tag, 0, 0x72);
    let m3 = shunt_tools::test_mac(tag, 0, 0x73);
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, a.mac, 0..1)?;
    send_n(&mut sn[1], tag, MacAddr::BROADCAST, b.mac, 1..2)?;
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, m1, 2..3)?;
    std::thread::sleep(Duration::from_millis(200));
    let fdb = sw.fdb()?;
    ensure!(
        fdb.0.len() == 3,
        "fdb after 3 sources: want 3 entries, got {:?}",
        fdb.0
    );
    settle(&mut sn);

    let s0 = sw.stats()?;
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, m2, 3..4)?;
    send_n(&mut sn[0], tag, MacAddr::BROADCAST, m3, 4..5)?;
    let got = seen(&mut sn, tag, 3..5);
    expect_seen(
        "broadcasts from 2 new MACs with the fdb full (still forwarded)",
        &topo.hosts,
        &got,
        &[0, 2, 2],
    )?;
    let s1 = sw.stats()?;
    let fdb = sw.fdb()?;
    ensure!(fdb.0.len() == 3, "fdb over its maximum of 3: {:?}", fdb.0);
    ensure!(
        fdb.find(m2).is_none() && fdb.find(m3).is_none(),
        "new MACs learned although the fdb is full: {:?}",
        fdb.0
    );
    for (mac, port) in [(a.mac, a.port()), (b.mac, b.port()), (m1, a.port())] {
        ensure!(
            fdb.port_of(mac) == Some(port.as_str()),
            "existing entry {mac} want on {port}, got {:?}",
            fdb.port_of(mac)
        );
    }
    let g = s1.drop("fdb_full") - s0.drop("fdb_full");
    ensure!(
        g == 2,
        "stats: drops.fdb_full (switch-wide) went up by {g}, want 2"
    );
    let p = a.port();
    let d = s1.port_drop(&p, "fdb_full") - s0.port_drop(&p, "fdb_full");
    ensure!(
        d == 2,
        "stats: {p}.drops.fdb_full went up by {d}, want 2 (counted on the ingress port; drops now {})",
        s1.port_drops_text(&p)
    );

    // Frames to a MAC that could not be learned are flooded.
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        2,
        (m2, c.mac),
        100..110,
        "10 frames c -> unlearned m2 (flooded)",
        &[10, 10, 0],
    )?;
    // Existing entries keep forwarding.
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        2,
        (b.mac, c.mac),
        200..210,
        "10 frames c -> b (known)",
        &[0, 10, 0],
    )?;
    flow(
        &mut sn,
        &topo.hosts,
        tag,
        2,
        (m1, c.mac),
        300..310,
        "10 frames c -> m1 (known, on a)",
        &[10, 0, 0],
    )?;
    Ok(())
}

// 8 ---------------------------------------------------------------------

fn bad_input() -> TestResult {
    let tag = 8;
    let topo = three(tag);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    let p = a.port();
    settle(&mut sn);

    // Runt: the kernel refuses to send a frame shorter than the Ethernet
    // header from a packet socket (dev_validate_header), so the switch's
    // `runt` path cannot be reached from a namespace.
    let s0 = sw.stats()?;
    match sn[0].send(&[0xffu8; 10]) {
        Err(e) => println!(
            "note: runt not testable from a namespace: the kernel refused a 10-byte frame ({e})"
        ),
        Ok(()) => {
            std::thread::sleep(WAIT);
            let d = sw.stats()?.port_drop(&p, "runt") - s0.port_drop(&p, "runt");
            ensure!(
                d == 1,
                "a 10-byte frame was sent; {p}.drops.runt went up by {d}, want 1"
            );
        }
    }

    // Oversize: the host side of a's link allows 2000 bytes, the switch's
    // port MTU is 1500 (frames up to 1514 bytes untagged).
    exec(&a.name, &["ip", "link", "set", "eth0", "mtu", "2000"])?;
    settle(&mut sn);
    let s0 = sw.stats()?;
    for seq in 0..5 {
        let f = FrameBuilder::new(MacAddr::BROADCAST, a.mac)
            .marker(Marker::new(u32::from(tag), seq))
            .pad_to(1600)
            .build();
        sn[0].send(&f)?;
    }
    let got = seen(&mut sn, tag, 0..5);
    expect_seen(
        "5 broadcasts of 1600 bytes (over the MTU)",
        &topo.hosts,
        &got,
        &[0, 0, 0],
    )?;
    let s1 = sw.stats()?;
    let d = s1.port_drop(&p, "oversize") - s0.port_drop(&p, "oversize");
    ensure!(
        d == 5,
        "stats: {p}.drops.oversize went up by {d}, want 5 (drops now {})",
        s1.port_drops_text(&p)
    );
    // Exactly MTU + 14 is fine.
    for seq in 10..13 {
        let f = FrameBuilder::new(MacAddr::BROADCAST, a.mac)
            .marker(Marker::new(u32::from(tag), seq))
            .pad_to(1514)
            .build();
        sn[0].send(&f)?;
    }
    let got = seen(&mut sn, tag, 10..13);
    expect_seen(
        "3 broadcasts of exactly 1514 bytes",
        &topo.hosts,
        &got,
        &[0, 3, 3],
    )?;

    // Random bytes (never a VLAN TPID, never to a link-local group): each
    // is received, and those with a group source bit are src_multicast.
    let mut rng = XorShift::new(0x5eed_0008);
    let mut frames = Vec::new();
    let mut want_src_mcast = 0;
    for _ in 0..50 {
        let mut f = vec![0u8; rng.range(14, 200)];
        rng.fill(&mut f);
        if shunt_tools::frame::is_tpid(u16::from_be_bytes([f[12], f[13]])) {
            f[12] = 0x12;
        }
        if MacAddr::from_bytes(&f).is_some_and(|d| d.is_link_local()) {
            f[0] = 0x02;
        }
        if f[6] & 1 == 1 {
            want_src_mcast += 1;
        }
        frames.push(f);
    }
    settle(&mut sn);
    let s0 = sw.stats()?;
    for f in &frames {
        sn[0].send(f)?;
    }
    std::thread::sleep(WAIT);
    let s1 = sw.stats()?;
    let rx = s1.port(&p, "rx_frames") - s0.port(&p, "rx_frames");
    ensure!(
        rx == 50,
        "stats: {p}.rx_frames went up by {rx} for 50 random frames"
    );
    let d = s1.port_drop(&p, "src_multicast") - s0.port_drop(&p, "src_multicast");
    ensure!(
        d == want_src_mcast,
        "stats: {p}.drops.src_multicast went up by {d}, want {want_src_mcast} (random frames with a group source)"
    );

    // Forwarding goes on.
    exec(&a.name, &["ip", "link", "set", "eth0", "mtu", "1500"])?;
    ping(&a.name, b.ip())?;
    ping(&c.name, a.ip())?;
    Ok(())
}

// 9 ---------------------------------------------------------------------

fn host_namespace_deleted() -> TestResult {
    let tag = 9;
    let topo = three(tag);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    // No sniffer in b: an open socket would keep its namespace alive.
    let _to_b = Background::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &a.name,
            "ping",
            "-q",
            "-i",
            "0.2",
            "-c",
            "100",
            b.ip(),
        ],
    )?;
    let _c_to_b = Background::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &c.name,
            "ping",
            "-q",
            "-i",
            "0.2",
            "-c",
            "100",
            b.ip(),
        ],
    )?;
    let _a_to_c = Background::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &a.name,
            "ping",
            "-q",
            "-i",
            "0.2",
            "-c",
            "100",
            c.ip(),
        ],
    )?;
    std::thread::sleep(Duration::from_secs(1));
    run("ip", &["netns", "del", &b.name])?;

    let deadline = Instant::now() + Duration::from_secs(5);
    let ports = loop {
        let ports = sw.ports()?;
        let bp = ports.iter().find(|p| p.name == b.port());
        match bp.map(|p| p.up) {
            Some(false) => break ports,
            None if bp.is_none() => break ports, // the port was removed: also fine
            _ => {}
        }
        ensure!(
            Instant::now() < deadline,
            "{} still up 5 s after its namespace was deleted: {bp:?}",
            b.port()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for h in [a, c] {
        let up = ports.iter().find(|p| p.name == h.port()).map(|p| p.up);
        ensure!(
            up == Some(true),
            "{} want up, got {up:?} in {ports:?}",
            h.port()
        );
    }
    ping(&a.name, c.ip())?;
    ping(&c.name, a.ip())?;
    let st = sw.stats()?;
    ensure!(
        st.has_port(&a.port()),
        "stats after the deletion has no {}: {:?}",
        a.port(),
        st.json
    );
    // AF_XDP: the frames the vanished port's socket held came back.
    drop((_to_b, _c_to_b, _a_to_c));
    sw.umem_accounted(Duration::from_secs(5))?;
    Ok(())
}

// 10 --------------------------------------------------------------------

fn counters_exact() -> TestResult {
    let tag = 10;
    let topo = three(tag);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let mut sn = sw.sniffers(&[a, b, c])?;
    std::thread::sleep(Duration::from_secs(1));
    settle(&mut sn);
    let s0 = sw.stats()?;

    send_n(&mut sn[0], tag, MacAddr::BROADCAST, a.mac, 0..7)?; // flooded to b, c
    std::thread::sleep(Duration::from_millis(100));
    send_n(&mut sn[1], tag, a.mac, b.mac, 100..105)?; // to a only
    std::thread::sleep(Duration::from_millis(100));
    send_n(&mut sn[2], tag, b.mac, c.mac, 200..203)?; // to b only
    let got = seen(&mut sn, tag, 0..1000);
    expect_seen(
        "7 bcast from a, 5 b->a, 3 c->b",
        &topo.hosts,
        &got,
        &[5, 10, 7],
    )?;
    std::thread::sleep(Duration::from_millis(200));
    let s1 = sw.stats()?;

    let mut errors = Vec::new();
    let want: [(&Host, [u64; 4]); 3] = [
        (a, [7, 5, 7 * 60, 5 * 60]),
        (b, [5, 10, 5 * 60, 10 * 60]),
        (c, [3, 7, 3 * 60, 7 * 60]),
    ];
    for (h, w) in want {
        let p = h.port();
        for (counter, want) in ["rx_frames", "tx_frames", "rx_bytes", "tx_bytes"]
            .iter()
            .zip(w)
        {
            let got = s1.port(&p, counter) - s0.port(&p, counter);
            if got != want {
                errors.push(format!("{p}.{counter}: +{got}, want +{want}"));
            }
        }
    }
    let flood = |s: &Stats, cause| s.flooded(&a.port(), cause);
    for (cause, want) in [("broadcast", 7), ("unknown_unicast", 0), ("multicast", 0)] {
        let got = flood(&s1, cause) - flood(&s0, cause);
        if got != want {
            errors.push(format!(
                "{}.flooded.{cause}: +{got}, want +{want}",
                a.port()
            ));
        }
    }
    for h in [b, c] {
        for cause in ["broadcast", "unknown_unicast", "multicast"] {
            let got = s1.flooded(&h.port(), cause) - s0.flooded(&h.port(), cause);
            if got != 0 {
                errors.push(format!("{}.flooded.{cause}: +{got}, want +0", h.port()));
            }
        }
    }
    if s1.typed.drops != s0.typed.drops {
        errors.push(format!(
            "drops changed: before {:?}, after {:?}",
            s0.typed.drops, s1.typed.drops
        ));
    }

    let fdb = sw.fdb()?;
    if fdb.0.len() != 3 {
        errors.push(format!("fdb: want exactly 3 entries, got {:?}", fdb.0));
    }
    for h in [a, b, c] {
        match fdb.find(h.mac) {
            Some(e) => {
                if e.port != h.port()
                    || e.network != "lan"
                    || e.vlan.is_some()
                    || e.is_static
                    || !(0.0..10.0).contains(&e.age_secs)
                {
                    errors.push(format!(
                        "fdb entry of {}: want network lan, vlan null, port {}, static false, age < 10 s; got {e:?}",
                        h.name,
                        h.port()
                    ));
                }
            }
            None => errors.push(format!("fdb: no entry for {} ({})", h.name, h.mac)),
        }
    }

    let ports = sw.ports()?;
    if ports.len() != 3 {
        errors.push(format!("ports: want 3, got {}", ports.len()));
    }
    for h in [a, b, c] {
        let Some(pj) = ports.iter().find(|p| p.name == h.port()) else {
            errors.push(format!("ports: no {}", h.port()));
            continue;
        };
        let kind = crate::harness::variant().host_kind();
        if pj.kind != kind || pj.mode != "access" {
            errors.push(format!(
                "ports {}: want kind {kind}, mode access: {pj:?}",
                h.port()
            ));
        }
        if !pj.up {
            errors.push(format!("ports {}: want up true: {pj:?}", h.port()));
        }
        // An integer worker: `ports()` reads `worker` as one, or fails.
        if pj.networks != ["lan"] {
            errors.push(format!(
                "ports {}: want networks [\"lan\"]: {pj:?}",
                h.port()
            ));
        }
        for (k, got) in [("rx_frames", pj.rx_frames), ("tx_frames", pj.tx_frames)] {
            let got = Some(got);
            if got != Some(s1.port(&h.port(), k)) {
                errors.push(format!(
                    "ports {}.{k} = {got:?} but stats says {}",
                    h.port(),
                    s1.port(&h.port(), k)
                ));
            }
        }
    }
    ensure!(errors.is_empty(), "{}", errors.join("\n"));
    Ok(())
}

// 11 --------------------------------------------------------------------

/// What of switch `name` / hosts is still on the machine.
fn leftovers(sw: &Switch) -> Vec<String> {
    let mut left = Vec::new();
    for h in &sw.hosts {
        if crate::harness::netns_exists(h) {
            left.push(format!("namespace {h}"));
        }
    }
    if socket_path(&sw.name).exists() {
        left.push(format!("socket {}", socket_path(&sw.name).display()));
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for l in links.lines() {
            let dev = l.split(':').nth(1).unwrap_or("").trim();
            if dev.starts_with(&sw.name) {
                left.push(format!("device {dev}"));
            }
        }
    }
    let file = sw.file.to_string_lossy().into_owned();
    for pid in pids_with_arg(&file) {
        left.push(format!("process {pid} (shunt up {file})"));
    }
    left
}

fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        // A zombie counts as gone (its parent, `shunt up --detach`, has exited).
        if std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn bring_up_teardown_and_kill9() -> TestResult {
    let tag = 11;
    let topo = Topology::new(tag, 2);
    let mut sw = Switch::up(&topo)?;
    let [a, b] = [&topo.hosts[0], &topo.hosts[1]];
    for h in [a, b] {
        ensure!(
            crate::harness::netns_exists(&h.name),
            "namespace {} missing after up",
            h.name
        );
    }
    ensure!(
        socket_path(&sw.name).exists(),
        "control socket {} missing after up",
        socket_path(&sw.name).display()
    );
    ping(&a.name, b.ip())?;

    sw.down()?;
    let left = leftovers(&sw);
    ensure!(left.is_empty(), "after `shunt down`: left behind: {left:?}");

    // Up again, then kill -9 the switch: stale state stays behind...
    sw.up_again()?;
    let file = sw.file.to_string_lossy().into_owned();
    let pids = pids_with_arg(&file);
    ensure!(
        pids.len() == 1,
        "want one switch process running `shunt up {file}`, found {pids:?}"
    );
    run("kill", &["-9", &pids[0].to_string()])?;
    ensure!(
        wait_gone(pids[0]),
        "switch process {} survived kill -9",
        pids[0]
    );
    // The XDP programs were attached through BPF links: the kernel detached
    // them when the process died, though its veths are still there.
    // The kernel releases a BPF link in deferred work: allow it a moment.
    let prefix = format!("shv{:x}x", pids[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let links = run("ip", &["-d", "-o", "link", "show"])?;
        let ours: Vec<&str> = links
            .lines()
            .filter(|l| l.contains(&format!(": {prefix}")))
            .collect();
        if crate::harness::variant().link == "veth" {
            ensure!(
                !ours.is_empty(),
                "no veth {prefix}* of the killed switch found (the check would prove nothing)"
            );
        }
        let with_xdp: Vec<&&str> = ours.iter().filter(|l| l.contains("xdp")).collect();
        if with_xdp.is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "XDP program left 5 s after kill -9: {with_xdp:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // ... and `up` cleans it.
    sw.up_again()
        .map_err(|e| format!("`shunt up` after kill -9 of the previous switch: {e}"))?;
    ping(&a.name, b.ip())?;
    ensure!(
        sw.stats()?.has_port(&a.port()),
        "stats after restart lacks {}",
        a.port()
    );
    sw.down()?;
    let left = leftovers(&sw);
    ensure!(
        left.is_empty(),
        "after kill -9, up, down: left behind: {left:?}"
    );
    Ok(())
}
