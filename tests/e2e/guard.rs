//! Protecting the switch (docs/storm.md) with real namespaces and raw
//! sockets in them: storm control holds a broadcast flood to its rate
//! while the switch keeps answering, link-local frames are dropped or
//! flooded as the network says (tcpdump sees the LLDP frame), a MAC sent
//! from two hosts in turn is found flapping (log, stats, block and
//! port_down), and a host sending from 5,000 source MACs keeps at most its
//! max_learned in the FDB. Tags 150 to 155.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{run_timeout, Switch, Tcpdump, TestResult, Topology, SHUNT};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, MacAddr, Marker, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("guard::storm_control_holds_a_broadcast_flood", storm_flood),
        ("guard::link_local_dropped_or_forwarded", link_local),
        ("guard::mac_flap_logged_and_blocked", mac_flap_block),
        (
            "guard::mac_flap_takes_the_newer_port_down",
            mac_flap_port_down,
        ),
        ("guard::max_learned_under_a_mac_flood", max_learned),
    ]
}

/// `n` hosts on `lan`, with `edit` applied to the TOML, up.
fn up(
    tag: u8,
    n: usize,
    edit: impl Fn(&Topology, String) -> String,
) -> Result<(Topology, Switch), String> {
    let t = Topology::new(tag, n);
    let toml = edit(&t, t.toml());
    let hosts: Vec<String> = t.hosts.iter().map(|h| h.name.clone()).collect();
    let sw = Switch::up_toml(&t.switch, &toml, &hosts)?;
    Ok((t, sw))
}

/// Adds `keys` to host `h`'s table.
fn host_keys(toml: &str, host: &str, keys: &str) -> String {
    toml.replace(
        &format!("name = \"{host}\"\n"),
        &format!("name = \"{host}\"\n{keys}"),
    )
}

fn open(host: &str) -> Result<RawPort, String> {
    RawPort::open(host, "eth0").map_err(|e| format!("raw socket in {host}: {e}"))
}

const BCAST: MacAddr = MacAddr([0xff; 6]);

// 150 -------------------------------------------------------------------

const RATE: u64 = 2000;
const BURST_MS: u64 = 100;

fn storm_flood() -> TestResult {
    let (t, sw) = up(150, 3, |t, s| {
        format!(
            "{s}\n[[storm]]\nport = \"{}\"\nbroadcast = {RATE}\nburst = \"{BURST_MS}ms\"\n",
            t.hosts[0].port()
        )
    })?;
    let a = &t.hosts[0];
    let mut rx: Vec<RawPort> = t.hosts[1..]
        .iter()
        .map(|h| open(&h.name))
        .collect::<Result<_, _>>()?;
    let mut tx = open(&a.name)?;
    let id = 150u32;
    let secs = 3.0;
    // Receivers count the flood's frames while it lasts (and a little
    // after, for what is still on its way).
    let counters: Vec<_> = rx
        .drain(..)
        .map(|mut r| {
            std::thread::spawn(move || {
                r.count_for(Duration::from_secs_f64(secs + 1.5), |f| {
                    Marker::in_frame(f).is_some_and(|m| m.test_id == id)
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let stop = Arc::new(AtomicBool::new(false));
    // The switch answers during the storm: `shunt stats` timed from here.
    let probe = {
        let (name, stop) = (sw.name.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Relaxed) {
                let t0 = Instant::now();
                let ok = run_timeout(
                    SHUNT,
                    &["stats", "--name", &name, "--json"],
                    Duration::from_secs(5),
                )
                .is_ok();
                let took = t0.elapsed();
                if !ok {
                    return Err(format!(
                        "shunt stats failed during the storm (after {took:?})"
                    ));
                }
                worst = worst.max(took);
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(worst)
        })
    };
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let f = FrameBuilder::new(BCAST, a.mac)
            .marker(Marker::new(id, sent as u32))
            .build();
        tx.send(&f).map_err(|e| e.to_string())?;
        sent += 1;
    }
    let took = t0.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    let worst = probe.join().map_err(|_| "probe thread panicked")??;
    let got: Vec<usize> = counters
        .into_iter()
        .map(|c| c.join().unwrap_or(0))
        .collect();
    let want = RATE as f64 * took + (RATE * BURST_MS / 1000) as f64;
    let offered = sent as f64 / took;
    eprintln!("storm: offered {offered:.0} frames/s for {took:.2} s ({sent} frames); received {got:?}, want {want:.0} +-10%; worst `shunt stats` {worst:?}");
    ensure!(
        offered > 2.0 * RATE as f64,
        "the sender managed only {offered:.0} frames/s: not a storm above {RATE}/s"
    );
    for (h, n) in t.hosts[1..].iter().zip(&got) {
        let n = *n as f64;
        ensure!(
            (n - want).abs() <= 0.1 * want,
            "{} received {n} of the flood, want {want:.0} +-10% ({RATE}/s for {took:.2} s and a burst of {BURST_MS} ms)",
            h.name
        );
    }
    ensure!(
        worst < Duration::from_secs(1),
        "`shunt stats` took {worst:?} during the storm"
    );
    std::thread::sleep(Duration::from_millis(300));
    let st = sw.stats()?;
    let dropped = st.port_drop(&a.port(), "storm_broadcast");
    let rx_a = st.port(&a.port(), "rx_frames");
    let passed = st.flooded(&a.port(), "broadcast");
    eprintln!(
        "storm: {} rx {rx_a}, flooded {passed}, storm_broadcast {dropped}",
        a.port()
    );
    ensure!(
        dropped > 0,
        "no storm_broadcast drop counted: {}",
        st.port_drops_text(&a.port())
    );
    ensure!(
        passed + dropped <= rx_a && rx_a - (passed + dropped) < 100,
        "rx {rx_a} is not flooded {passed} + storm_broadcast {dropped} (+ a few other frames)"
    );
    ensure!(
        st.drop("storm_broadcast") == dropped,
        "the switch's total storm_broadcast differs from the port's"
    );
    // At run time: off, and the flood passes whole.
    let said = sw.cmd(&["storm", &a.port(), "--clear"])?;
    ensure!(
        said.contains("no storm control"),
        "shunt storm --clear said: {said}"
    );
    let said = sw.cmd(&["storm", &a.port(), "--broadcast", "500"])?;
    ensure!(said.contains("broadcast 500/s"), "shunt storm said: {said}");
    Ok(())
}

// 151 -------------------------------------------------------------------

const LLDP_DST: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]);

fn lldp(src: MacAddr) -> Vec<u8> {
    // An LLDPDU: chassis id, port id, TTL, end.
    let mut p = vec![0x02, 0x07, 0x04];
    p.extend_from_slice(&src.0);
    p.extend_from_slice(&[
        0x04, 0x03, 0x07, b'e', b'0', 0x06, 0x02, 0x00, 0x78, 0x00, 0x00,
    ]);
    FrameBuilder::new(LLDP_DST, src)
        .ethertype(0x88cc)
        .payload(&p)
        .build()
}

fn link_local() -> TestResult {
    // Default first: dropped and counted.
    {
        let (t, sw) = up(151, 3, |_, s| s)?;
        let (a, b) = (&t.hosts[0], &t.hosts[1]);
        let td = Tcpdump::start(&b.name, "eth0")?;
        std::thread::sleep(Duration::from_millis(300));
        let mut tx = open(&a.name)?;
        for _ in 0..5 {
            tx.send(&lldp(a.mac)).map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_millis(500));
        let seen = td.stop()?;
        let n = seen
            .iter()
            .filter(|f| f.get(12..14) == Some(&[0x88, 0xcc]))
            .count();
        ensure!(
            n == 0,
            "with the default link_local, {} saw {n} LLDP frames",
            b.name
        );
        let st = sw.stats()?;
        let d = st.port_drop(&a.port(), "link_local");
        ensure!(d == 5, "link_local drops on {}: {d}, want 5", a.port());
    }
    // "forward": flooded to the others, byte for byte.
    let (t, sw) = up(152, 3, |_, s| {
        s.replace(
            "name = \"lan\"\n",
            "name = \"lan\"\nlink_local = \"forward\"\n",
        )
    })?;
    let a = &t.hosts[0];
    let tds = t.hosts[1..]
        .iter()
        .map(|h| Tcpdump::start(&h.name, "eth0"))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let frame = lldp(a.mac);
    let mut tx = open(&a.name)?;
    for _ in 0..3 {
        tx.send(&frame).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(500));
    for (h, td) in t.hosts[1..].iter().zip(tds) {
        let seen = td.stop()?;
        let lldps: Vec<&Vec<u8>> = seen
            .iter()
            .filter(|f| f.get(12..14) == Some(&[0x88, 0xcc]))
            .collect();
        ensure!(
            lldps.len() == 3,
            "{} saw {} LLDP frames, want 3",
            h.name,
            lldps.len()
        );
        ensure!(
            lldps.iter().all(|f| f[..] == frame[..]),
            "{} got the LLDP frame changed: {:02x?}",
            h.name,
            lldps[0]
        );
    }
    let st = sw.stats()?;
    ensure!(
        st.port_drop(&a.port(), "link_local") == 0,
        "link_local counted with forward"
    );
    ensure!(
        st.flooded(&a.port(), "multicast") >= 3,
        "the LLDP frames were not flooded as multicast"
    );
    Ok(())
}

// 153, 154 --------------------------------------------------------------

/// The MAC both hosts send from.
fn flapper(tag: u8) -> MacAddr {
    shunt_tools::test_mac(tag, 0, 0x77)
}

/// Sends a broadcast from `mac` out of each port in turn, `rounds` times.
fn alternate(ports: &mut [RawPort], mac: MacAddr, rounds: usize) -> Result<(), String> {
    for i in 0..rounds {
        for p in ports.iter_mut() {
            let f = FrameBuilder::new(BCAST, mac)
                .marker(Marker::new(153, i as u32))
                .build();
            p.send(&f).map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn log_of(sw: &Switch) -> String {
    std::fs::read_to_string(format!("/run/shunt/{}.log", sw.name)).unwrap_or_default()
}

fn recent_flap(sw: &Switch, mac: MacAddr) -> Result<serde_json::Value, String> {
    let st = sw.stats()?;
    let f = &st.json["mac_flap"];
    ensure_v(f["flaps"].as_u64().unwrap_or(0) >= 1, || {
        format!("no flap counted: {f}")
    })?;
    f["recent"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["mac"] == mac.to_string()).cloned())
        .ok_or_else(|| format!("no recent flap of {mac} in shunt stats: {f}"))
}

fn ensure_v(ok: bool, msg: impl Fn() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Waits up to `within` for `cond`.
fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

fn mac_flap_block() -> TestResult {
    let (t, sw) = up(153, 3, |_, s| {
        s.replacen(
            "[switch]\n",
            "[switch]\nmac_flap = { moves = 3, window = \"10s\", action = \"block\", hold = \"3s\" }\n",
            1,
        )
    })?;
    let m = flapper(153);
    let mut ports = vec![open(&t.hosts[0].name)?, open(&t.hosts[1].name)?];
    alternate(&mut ports, m, 4)?;
    let (pa, pb) = (t.hosts[0].port(), t.hosts[1].port());
    let logged = wait_for(Duration::from_secs(2), || {
        log_of(&sw)
            .lines()
            .any(|l| l.contains("MAC flap") && l.contains(&m.to_string()))
    });
    let log = log_of(&sw);
    let line = log
        .lines()
        .find(|l| l.contains("MAC flap") && l.contains(&m.to_string()))
        .unwrap_or_default();
    ensure!(logged, "no MAC flap line for {m} in the log:\n{log}");
    ensure!(
        line.contains(&pa) && line.contains(&pb),
        "the flap line does not name both ports: {line}"
    );
    let r = recent_flap(&sw, m)?;
    let ports_named = r["ports"].to_string();
    ensure!(
        ports_named.contains(&pa) && ports_named.contains(&pb) && r["action"] == "block",
        "shunt stats' flap: {r}"
    );
    // Blocked: not in the FDB, its frames counted and still forwarded.
    alternate(&mut ports[..1], m, 2)?;
    std::thread::sleep(Duration::from_millis(200));
    ensure!(
        sw.fdb()?.find(m).is_none(),
        "{m} is in the FDB while blocked"
    );
    let blocked = sw.stats()?.port_drop(&pa, "mac_flap_blocked");
    ensure!(blocked >= 2, "mac_flap_blocked on {pa}: {blocked}");
    // The text output shows it too.
    let text = sw.cmd(&["stats"])?;
    ensure!(
        text.contains("mac flaps: ") && text.contains(&m.to_string()),
        "shunt stats does not show the flap:\n{text}"
    );
    // After the hold it is learned again.
    std::thread::sleep(Duration::from_millis(3300));
    alternate(&mut ports[..1], m, 1)?;
    let back = wait_for(Duration::from_secs(2), || {
        sw.fdb()
            .ok()
            .and_then(|f| f.port_of(m).map(str::to_string))
            .as_deref()
            == Some(pa.as_str())
    });
    ensure!(back, "{m} not learned on {pa} after the hold");
    Ok(())
}

fn mac_flap_port_down() -> TestResult {
    let (t, sw) = up(154, 3, |_, s| {
        s.replacen(
            "[switch]\n",
            "[switch]\nmac_flap = { moves = 3, window = \"10s\", action = \"port_down\", hold = \"3s\" }\n",
            1,
        )
    })?;
    let m = flapper(154);
    let mut ports = vec![open(&t.hosts[0].name)?, open(&t.hosts[1].name)?];
    let pb = t.hosts[1].port();
    // Ends on b: b's port moved to last when the count passes 3 (the
    // moves a->b, b->a, a->b, b->a... the 4th, to a, or later ones).
    let up_of = |name: &str| -> Result<Option<bool>, String> {
        Ok(sw.ports()?.iter().find(|p| p.name == name).map(|p| p.up))
    };
    alternate(&mut ports, m, 3)?;
    let r = wait_for(Duration::from_secs(5), || recent_flap(&sw, m).is_ok());
    ensure!(r, "no flap of {m}: {}", log_of(&sw));
    let rec = recent_flap(&sw, m)?;
    ensure!(rec["action"] == "port_down", "{rec}");
    // The newer port is the last one named.
    let newer = rec["ports"]
        .as_array()
        .and_then(|p| p.last())
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    ensure!(!newer.is_empty(), "no ports in {rec}");
    let down = wait_for(Duration::from_secs(4), || {
        up_of(&newer).ok().flatten() == Some(false)
    });
    ensure!(
        down,
        "{newer} still up after the flap (log: {})",
        log_of(&sw)
    );
    let other = if newer == pb {
        t.hosts[0].port()
    } else {
        pb.clone()
    };
    ensure!(up_of(&other)? == Some(true), "{other} went down too");
    let host = if newer == pb {
        &t.hosts[1].name
    } else {
        &t.hosts[0].name
    };
    let link = run_timeout(
        "ip",
        &["netns", "exec", host, "ip", "link", "show", "eth0"],
        Duration::from_secs(5),
    )?;
    ensure!(
        link.contains("NO-CARRIER"),
        "{host} sees its carrier: {link}"
    );
    let back = wait_for(Duration::from_secs(6), || {
        up_of(&newer).ok().flatten() == Some(true)
    });
    ensure!(back, "{newer} not up again after the hold");
    Ok(())
}

// 155 -------------------------------------------------------------------

fn max_learned() -> TestResult {
    const LIMIT: usize = 100;
    let (t, sw) = up(155, 3, |t, s| {
        host_keys(&s, &t.hosts[0].name, &format!("max_learned = {LIMIT}\n"))
    })?;
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    let mut tx = open(&a.name)?;
    let mut rng = shunt_tools::frame::XorShift::new(155);
    let n = 5000;
    for i in 0..n {
        let mut mac = [0u8; 6];
        rng.fill(&mut mac);
        mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
        let f = FrameBuilder::new(BCAST, MacAddr(mac))
            .marker(Marker::new(155, i))
            .build();
        tx.send(&f).map_err(|e| e.to_string())?;
    }
    // Another host still learns: 50 MACs of its own.
    let mut txb = open(&b.name)?;
    for i in 0..50u8 {
        let f = FrameBuilder::new(BCAST, shunt_tools::test_mac(155, 1, i))
            .marker(Marker::new(155, 9000 + u32::from(i)))
            .build();
        txb.send(&f).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(700));
    let fdb = sw.fdb()?;
    let on_a = fdb.0.iter().filter(|e| e.port == a.port()).count();
    let on_b = fdb.0.iter().filter(|e| e.port == b.port()).count();
    let st = sw.stats()?;
    let limited = st.port_drop(&a.port(), "port_learn_limit");
    let rx = st.port(&a.port(), "rx_frames");
    eprintln!(
        "max_learned: {} has {on_a} entries, {} has {on_b}; port_learn_limit {limited}, rx {rx}",
        a.port(),
        b.port()
    );
    ensure!(
        on_a <= LIMIT,
        "{} holds {on_a} entries, more than max_learned = {LIMIT}",
        a.port()
    );
    ensure!(
        on_a >= LIMIT - 5,
        "{} holds only {on_a} entries of its {LIMIT}",
        a.port()
    );
    ensure!(
        on_b >= 50,
        "{} learned only {on_b} of its 50 MACs",
        b.port()
    );
    ensure!(
        limited + on_a as u64 >= rx.min(n as u64) - 10,
        "port_learn_limit {limited} + {on_a} learned do not account for {rx} frames"
    );
    // Hosts still talk (their own MACs: a's own MAC may be beyond its limit
    // now, so ping between b and c).
    crate::harness::ping(&b.name, t.hosts[2].ip())?;
    // A flush gives room: taking a's link down and up empties its entries.
    sw.cmd(&["link", &a.port(), "down"])?;
    sw.cmd(&["link", &a.port(), "up"])?;
    let fdb = sw.fdb()?;
    ensure!(
        fdb.0.iter().all(|e| e.port != a.port()),
        "entries of {} left after its link went down",
        a.port()
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut tx = open(&a.name)?;
    for i in 0..10u8 {
        let f = FrameBuilder::new(BCAST, shunt_tools::test_mac(155, 2, i)).build();
        tx.send(&f).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let on_a = sw.fdb()?.0.iter().filter(|e| e.port == a.port()).count();
    ensure!(
        on_a >= 10,
        "{} learned {on_a} MACs after its entries were flushed, want 10",
        a.port()
    );
    Ok(())
}
