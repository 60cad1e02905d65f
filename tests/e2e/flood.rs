//! The MAC flood (issue 17; RFC 2889 section 5.9, Open vSwitch's MAC-table
//! overflow test): one host sends frames from a million random source MACs
//! as fast as it can while two others ping each other. The table is small
//! (`fdb_max_entries = 512`), so it is full after the first few hundred
//! frames and the rest are counted `fdb_full`. Checked throughout: the two
//! hosts' frames keep going to their one port (a third host sees none of
//! them, and their ports' flood counters do not grow), the static entry
//! stays, and `shunt fdb --json` and `shunt stats --json` answer within a
//! second. Results: docs/reliability.md ("MAC flood").

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{run_id, run_timeout, Background, Switch, TestResult};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, MacAddr, RawPort, XorShift};

pub fn tests() -> Vec<Test> {
    vec![("flood::mac_table_overflow", mac_table_overflow)]
}

/// Frames the flooder sends (each from a new random source MAC).
const FRAMES: u32 = 1_000_000;
/// The FDB's capacity in this test.
const CAPACITY: u64 = 512;

fn mac_table_overflow() -> TestResult {
    let sw = format!("sq1{:03}", run_id());
    let names: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|h| format!("{sw}{h}"))
        .collect();
    let (a, b, c, d) = (&names[0], &names[1], &names[2], &names[3]);
    let mac = |i: u8| MacAddr([0x02, 0x00, 0x5e, 0x86, 0x01, i]);
    let (mac_a, mac_b, mac_c, mac_d) = (mac(0x0a), mac(0x0b), mac(0x0c), mac(0x0d));
    let static_mac = mac(0x99);
    let mut toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 2\nfdb_max_entries = {CAPACITY}\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.86.1.0/24\"\n"
    );
    for (i, (h, m)) in names.iter().zip([mac_a, mac_b, mac_c, mac_d]).enumerate() {
        toml += &format!(
            "\n[[host]]\nname = \"{h}\"\nnetworks = [\"lan\"]\nip = [\"10.86.1.{}/24\"]\nmac = [\"{m}\"]\n",
            11 + i
        );
    }
    toml += &format!("\n[[fdb]]\nnetwork = \"lan\"\nmac = \"{static_mac}\"\nport = \"{c}.lan\"\n");
    let s = Switch::up_toml(&sw, &toml, &names)?;
    let ip_b = "10.86.1.12";

    // a and b learned, and c (the flood's destination) and d.
    crate::harness::ping(a, ip_b)?;
    crate::harness::ping(c, "10.86.1.14")?;
    let before = s.stats()?;
    let flooded_before: u64 = [a, b]
        .iter()
        .map(|h| before.flooded(&format!("{h}.lan"), "unknown_unicast"))
        .sum();

    // c watches for a's and b's frames; d floods, to c's MAC (a known
    // destination: the flood's frames go to c alone, as unicast).
    let mut sniffer = RawPort::open(c, "eth0").map_err(|e| format!("sniffer on {c}: {e}"))?;
    sniffer.drain();
    let done = Arc::new(AtomicBool::new(false));
    let flooder = {
        let d = d.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || -> Result<(u32, Duration), String> {
            let mut port = RawPort::open(&d, "eth0").map_err(|e| format!("{d}: {e}"))?;
            let mut rng = XorShift::new(0x5eed_0017);
            let mut frame = FrameBuilder::new(mac_c, mac_d).pad_to(60).build();
            let t = Instant::now();
            let mut sent = 0;
            for _ in 0..FRAMES {
                // Unicast, locally administered, random otherwise.
                rng.fill(&mut frame[6..12]);
                frame[6] = (frame[6] & 0xfc) | 0x02;
                if port.send(&frame).is_ok() {
                    sent += 1;
                }
            }
            done.store(true, Relaxed);
            Ok((sent, t.elapsed()))
        })
    };
    // a pings b all through the flood (its summary read at the end).
    let ping = Command::new("ip")
        .args([
            "netns", "exec", a, "ping", "-i", "0.01", "-W", "1", "-q", ip_b,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting ping: {e}"))?;
    let ping = Background::from_child(ping);

    // Throughout the flood: both commands answer within a second; the
    // static entry stays; c sees nothing of a's and b's.
    let mut slowest = (Duration::ZERO, Duration::ZERO);
    let mut rounds = 0;
    let mut leaked = 0;
    let t0 = Instant::now();
    while !done.load(Relaxed) && t0.elapsed() < Duration::from_secs(40) {
        let t = Instant::now();
        let fdb = s.fdb()?;
        let tf = t.elapsed();
        let t = Instant::now();
        let st = s.stats()?;
        let ts = t.elapsed();
        slowest = (slowest.0.max(tf), slowest.1.max(ts));
        rounds += 1;
        ensure!(
            tf < Duration::from_secs(1) && ts < Duration::from_secs(1),
            "under the flood, `shunt fdb --json` took {tf:?} and `shunt stats --json` {ts:?}"
        );
        let e = fdb.find(static_mac);
        ensure!(
            e.is_some_and(|e| e.is_static && e.port == format!("{c}.lan")),
            "the static entry {static_mac} is gone or moved under the flood: {e:?}"
        );
        ensure!(
            st.typed.fdb.entries <= CAPACITY,
            "{} entries in an FDB of {CAPACITY}",
            st.typed.fdb.entries
        );
        leaked += sniffer.count_for(Duration::from_millis(200), |f| {
            let src = &f[6..12];
            f.len() >= 14 && f[0] & 1 == 0 && (src == mac_a.0 || src == mac_b.0)
        });
    }
    let (sent, took) = flooder.join().map_err(|_| "the flooder panicked")??;
    let during = ping.interrupt_output(Duration::from_secs(5))?;
    let (tx_during, rx_during) = ping_counts(&during);
    leaked += sniffer.count_for(Duration::from_millis(300), |f| {
        let src = &f[6..12];
        f.len() >= 14 && f[0] & 1 == 0 && (src == mac_a.0 || src == mac_b.0)
    });
    // The ping went on: b still answers a.
    let out = run_timeout(
        "ip",
        &[
            "netns", "exec", a, "ping", "-c", "20", "-i", "0.05", "-W", "1", "-q", ip_b,
        ],
        Duration::from_secs(10),
    )?;
    let st = s.stats()?;
    let fdb_full = st.drop("fdb_full");
    let flooded_after: u64 = [a, b]
        .iter()
        .map(|h| st.flooded(&format!("{h}.lan"), "unknown_unicast"))
        .sum();
    let rx_d = st.port(&format!("{d}.lan"), "rx_frames");
    // What d sent beyond the switch's rate its TAP's queue dropped.
    let tap_dropped = &st.json["ports"][format!("{d}.lan")]["tap"]["tx_dropped"];
    eprintln!(
        "flood: {sent} frames in {took:.2?} ({:.0} frames/s), {rx_d} received by the switch \
         ({tap_dropped} dropped by the kernel at d's TAP queue), \
         fdb_full {fdb_full}, {} entries of {CAPACITY}; {rounds} rounds of fdb+stats, slowest \
         {:?} / {:?}; {leaked} of a's and b's unicast frames seen by c; unknown unicast floods \
         from a and b {flooded_before} -> {flooded_after}; a -> b pings during the flood \
         {rx_during} of {tx_during} answered, after it {}",
        f64::from(sent) / took.as_secs_f64(),
        st.typed.fdb.entries,
        slowest.0,
        slowest.1,
        out.lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or("?")
    );
    ensure!(
        sent > FRAMES / 2,
        "the flooder sent only {sent} of {FRAMES}"
    );
    ensure!(rounds >= 2, "the flood ended before it could be watched");
    let (_, answered) = ping_counts(&out);
    ensure!(
        rx_during * 2 >= tx_during && tx_during > 0,
        "a -> b during the flood: {rx_during} of {tx_during} pings answered"
    );
    ensure!(answered >= 15, "a -> b after the flood: {out}");
    ensure!(
        leaked == 0,
        "{leaked} of a's and b's unicast frames reached c (flooded)"
    );
    ensure!(
        flooded_after == flooded_before,
        "a's and b's ports flooded unknown unicast during the flood: {flooded_before} -> {flooded_after}"
    );
    // Every frame from a new MAC after the table filled is counted.
    let learned = u64::from(sent).min(rx_d);
    ensure!(
        fdb_full + CAPACITY >= learned,
        "fdb_full {fdb_full}: fewer than the {learned} frames from new MACs less the table's {CAPACITY}"
    );
    let fdb = s.fdb()?;
    ensure!(
        fdb.port_of(mac_a) == Some(&format!("{a}.lan"))
            && fdb.port_of(mac_b) == Some(&format!("{b}.lan")),
        "a's or b's entry changed: {:?} {:?}",
        fdb.find(mac_a),
        fdb.find(mac_b)
    );
    Ok(())
}

/// (transmitted, received) from ping's summary line.
fn ping_counts(out: &str) -> (u32, u32) {
    let field = |suffix: &str| {
        out.split(", ")
            .flat_map(|p| p.split('\n'))
            .find_map(|p| p.trim().strip_suffix(suffix)?.parse::<u32>().ok())
            .unwrap_or(0)
    };
    (field(" packets transmitted"), field(" received"))
}
