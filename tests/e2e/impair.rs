//! Link impairment and link state (docs/impair.md) with real tools: ping's
//! round-trip times for a delay, numbered frames (sent and received by
//! packet sockets inside the hosts) for seeded loss, duplication,
//! reordering, corruption and a change at run time, iperf3 for a rate,
//! `ip link` inside the host for `shunt link` and `ip monitor link` for a
//! flap schedule. Each test runs for TAP hosts and for veth hosts attached
//! with AF_XDP (`afxdp_tests`), every impairment both from the topology
//! file and at run time. Tags 84 to 89, 140, 94, 95 and 180 to 188.
//!
//! The machine these run on is shared: round-trip times are compared as
//! medians against an unimpaired baseline measured in the same test, so
//! that the load of others shifts both alike.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{
    exec, iperf3_tcp, run_timeout, Background, Host, Switch, TestResult, Topology,
};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, Marker, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("impair::delay_adds_to_the_rtt", delay_adds_to_the_rtt),
        ("impair::loss_of_10000_numbered_frames", loss_tap),
        (
            "impair::duplicate_reorder_corrupt_from_file",
            fates_file_tap,
        ),
        (
            "impair::duplicate_reorder_corrupt_at_run_time",
            fates_run_tap,
        ),
        ("impair::change_at_run_time_keeps_queued_frames", change_tap),
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

/// AF_XDP hosts (veths attached with AF_XDP): the same tests.
pub fn afxdp_tests() -> Vec<Test> {
    vec![
        ("impair::delay_adds_to_the_rtt_afxdp", delay_afxdp),
        ("impair::loss_of_10000_numbered_frames_afxdp", loss_afxdp),
        (
            "impair::duplicate_reorder_corrupt_from_file_afxdp",
            fates_file_afxdp,
        ),
        (
            "impair::duplicate_reorder_corrupt_at_run_time_afxdp",
            fates_run_afxdp,
        ),
        (
            "impair::change_at_run_time_keeps_queued_frames_afxdp",
            change_afxdp,
        ),
        ("impair::rate_limits_tcp_and_udp_afxdp", rate_afxdp),
        ("impair::link_down_and_up_afxdp", link_afxdp),
        ("impair::flap_schedule_afxdp", flap_afxdp),
    ]
}

/// Host keys of a TAP host (the topology's own).
const TAP: &str = "";
/// Host keys of an AF_XDP host.
const AFXDP: &str = "link = \"veth\"\nveth_attach = \"afxdp\"\nxdp_mode = \"auto\"\n";

/// Where a test's impairment comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// `[[impair]]` in the topology file.
    File,
    /// `shunt impair` once the switch is up.
    RunTime,
}

fn delay_afxdp() -> TestResult {
    delay_rtt(94, AFXDP)
}

fn link_afxdp() -> TestResult {
    link_down_and_up(95, AFXDP)
}

fn loss_tap() -> TestResult {
    loss_of_numbered_frames(85, TAP)
}

fn loss_afxdp() -> TestResult {
    loss_of_numbered_frames(180, AFXDP)
}

fn fates_file_tap() -> TestResult {
    fates_of_numbered_frames(181, TAP, Source::File)
}

fn fates_run_afxdp() -> TestResult {
    fates_of_numbered_frames(183, AFXDP, Source::RunTime)
}

fn fates_run_tap() -> TestResult {
    fates_of_numbered_frames(187, TAP, Source::RunTime)
}

fn fates_file_afxdp() -> TestResult {
    fates_of_numbered_frames(188, AFXDP, Source::File)
}

fn change_tap() -> TestResult {
    change_at_run_time(182, TAP)
}

fn change_afxdp() -> TestResult {
    change_at_run_time(186, AFXDP)
}

fn rate_limits_tcp_and_udp() -> TestResult {
    rate_limits(86, TAP, Source::File)
}

fn rate_afxdp() -> TestResult {
    rate_limits(184, AFXDP, Source::RunTime)
}

fn flap_schedule() -> TestResult {
    flap(89, TAP)
}

fn flap_afxdp() -> TestResult {
    flap(185, AFXDP)
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

/// The topology of tag `tag` with `keys` impairing both directions of the
/// first host's port.
fn up_with_port_impair(tag: u8, host_keys: &str, keys: &str) -> Result<(Topology, Switch), String> {
    let t = Topology::new(tag, 2);
    let extra = format!("\n[[impair]]\nport = \"{}\"\n{keys}", t.hosts[0].port());
    up(tag, host_keys, &extra)
}

/// An `[[impair]]` table for `port` in `direction` with `keys` (name,
/// value as TOML).
fn impair_table(port: &str, direction: &str, keys: &[(&str, &str)]) -> String {
    let mut s = format!("\n[[impair]]\nport = \"{port}\"\ndirection = \"{direction}\"\n");
    for (k, v) in keys {
        s += &format!("{k} = {v}\n");
    }
    s
}

/// Frame number `seq` of stream `id` from `from` to `to`, `len` bytes (at
/// least 64): a test marker (with the number) first in the payload, zeros,
/// and the number again in the middle and in the last four bytes: a frame
/// with one bit of its payload flipped is still known by the two copies
/// of its number left alike.
fn numbered_frame(from: &Host, to: &Host, id: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut f = FrameBuilder::new(to.mac, from.mac)
        .marker(Marker::new(id, seq))
        .pad_to(len)
        .build();
    for at in &seq_copies(f.len())[1..] {
        f[*at..*at + 4].copy_from_slice(&seq.to_be_bytes());
    }
    f
}

/// Where a numbered frame of `len` bytes has its number: in the marker
/// (after the Ethernet header, the magic and the test id), the middle,
/// the end.
fn seq_copies(len: usize) -> [usize; 3] {
    [14 + 12, (len / 2) & !3, len - 4]
}

/// A stream of numbered frames through the switch, sent and received by
/// packet sockets on eth0 inside the hosts.
struct Stream<'a> {
    from: &'a Host,
    to: &'a Host,
    id: u32,
    n: u32,
    pps: u32,
    len: usize,
    /// How long the receiver waits for more after the last frame is sent
    /// (longer than what the switch holds a frame).
    settle: Duration,
}

/// One frame of a stream as it arrived.
struct Arrival {
    at: Instant,
    bytes: Vec<u8>,
}

impl Stream<'_> {
    fn frames(&self) -> Vec<Vec<u8>> {
        (0..self.n)
            .map(|i| numbered_frame(self.from, self.to, self.id, i, self.len))
            .collect()
    }

    /// Sends the stream at its rate; returns when each frame was sent and
    /// what arrived, in the order it arrived.
    fn run(&self) -> Result<(Vec<Instant>, Vec<Arrival>), String> {
        let frames = self.frames();
        let mut tx = RawPort::open(&self.from.name, "eth0")
            .map_err(|e| format!("packet socket in {}: {e}", self.from.name))?;
        let src = self.from.mac.0;
        let done = &AtomicBool::new(false);
        let (ready, is_ready) = std::sync::mpsc::channel();
        std::thread::scope(|sc| {
            let rx = sc.spawn(move || -> Result<Vec<Arrival>, String> {
                let mut rx = RawPort::open(&self.to.name, "eth0")
                    .map_err(|e| format!("packet socket in {}: {e}", self.to.name))?;
                let _ = ready.send(());
                let mut got = Vec::new();
                let mut last = Instant::now();
                let mut seen_done = false;
                let give_up = Instant::now() + Duration::from_secs(120);
                loop {
                    let r = rx
                        .recv_until(Instant::now() + Duration::from_millis(20))
                        .map_err(|e| format!("receiving in {}: {e}", self.to.name))?;
                    let now = Instant::now();
                    if let Some(r) = r {
                        let b = r.bytes;
                        let ours = b.len() == self.len
                            && b[6..12] == src
                            && b[12..14]
                                == shunt_tools::frame::ETHERTYPE_EXPERIMENTAL.to_be_bytes();
                        if ours {
                            got.push(Arrival { at: now, bytes: b });
                            last = now;
                        }
                    }
                    if !seen_done && done.load(Relaxed) {
                        seen_done = true;
                        last = last.max(now);
                    }
                    if (seen_done && now.duration_since(last) >= self.settle) || now > give_up {
                        return Ok(got);
                    }
                }
            });
            if is_ready.recv_timeout(Duration::from_secs(10)).is_err() {
                done.store(true, Relaxed);
                return Err(match rx.join() {
                    Ok(Err(e)) => e,
                    _ => "the receiver did not start".to_string(),
                });
            }
            let gap = Duration::from_secs_f64(1.0 / f64::from(self.pps));
            let t0 = Instant::now();
            let mut sent = Vec::with_capacity(frames.len());
            let mut failed = None;
            for (i, f) in frames.iter().enumerate() {
                let due = t0 + gap.mul_f64(i as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                sent.push(Instant::now());
                if let Err(e) = tx.send(f) {
                    failed = Some(format!("sending frame {i}: {e}"));
                    break;
                }
            }
            done.store(true, Relaxed);
            let got = rx
                .join()
                .map_err(|_| "the receiver panicked".to_string())??;
            match failed {
                Some(e) => Err(e),
                None => Ok((sent, got)),
            }
        })
    }
}

/// Which frame of `frames` an arrival is (the number two of its three
/// copies agree on), and how many bits of it changed. Err when that is
/// more than one, or no two copies agree.
fn identify(frames: &[Vec<u8>], b: &[u8]) -> Result<(u32, u32), String> {
    let n: Vec<u32> = seq_copies(b.len())
        .iter()
        .filter_map(|&at| Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?)))
        .collect();
    let seq = match n[..] {
        [x, y, _] if x == y => x,
        [x, _, z] if x == z => x,
        [_, y, z] if y == z => y,
        _ => return Err(format!("a frame whose number copies disagree: {b:02x?}")),
    };
    let want = frames
        .get(seq as usize)
        .ok_or_else(|| format!("frame number {seq} was not sent: {b:02x?}"))?;
    let bits: u32 = want.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
    if bits > 1 {
        return Err(format!(
            "frame {seq} arrived with {bits} bits changed: {b:02x?}"
        ));
    }
    Ok((seq, bits))
}

/// Echo replies of `n` pings from `from` to `ip`, `gap` apart, in the
/// order they came: (icmp_seq, round-trip time in ms).
fn pings(from: &str, ip: &str, n: u32, gap: &str) -> Result<Vec<(u32, f64)>, String> {
    // ping fails when replies are missing: its output is still read.
    let out = exec(
        from,
        &["ping", "-c", &n.to_string(), "-i", gap, "-W", "2", ip],
    )
    .or_else(|e| if e.contains("time=") { Ok(e) } else { Err(e) })?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k).map(str::to_string))
            };
            Some((
                field("icmp_seq=")?.parse().ok()?,
                field("time=")?.parse().ok()?,
            ))
        })
        .collect())
}

/// The round-trip times of `n` pings from `from` to `ip`, `gap` apart, in ms.
fn rtts(from: &str, ip: &str, n: u32, gap: &str) -> Result<Vec<f64>, String> {
    Ok(pings(from, ip, n, gap)?.into_iter().map(|p| p.1).collect())
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
/// 40 ms; with 5 ms of jitter (at run time) the deviation grows and, with
/// pings 2 ms apart (well within the jitter), no reply comes out of
/// order; `--clear` at run time takes it away within a second.
fn delay_adds_to_the_rtt() -> TestResult {
    delay_rtt(84, TAP)
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
    let jittered = pings(&a.name, b.ip(), 200, "0.002")?;
    let order: Vec<u32> = jittered.iter().map(|p| p.0).collect();
    let jittered: Vec<f64> = jittered.iter().map(|p| p.1).collect();
    sw.cmd(&["impair", &a.port(), "--clear"])?;
    std::thread::sleep(Duration::from_millis(1000));
    let base = rtts(&a.name, b.ip(), 30, "0.1")?;
    let added = median(&delayed) - median(&base);
    eprintln!(
        "impair: median RTT {:.2} ms with 20 ms each way, {:.2} ms without: {added:.2} ms added; deviation {:.2} ms, {:.2} ms with 5 ms jitter ({} replies, pings 2 ms apart)",
        median(&delayed),
        median(&base),
        spread(&delayed),
        spread(&jittered),
        order.len()
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
        order.len() >= 190,
        "{} of 200 pings answered under jitter alone",
        order.len()
    );
    ensure!(
        order.windows(2).all(|w| w[0] < w[1]),
        "jitter reordered the replies: {order:?}"
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

/// Frames of the loss test.
const LOSS_FRAMES: u32 = 10_000;

/// `loss = "10%"` with a seed on b's egress, from the file: of 10,000
/// numbered frames a sends b, the number lost is within three standard
/// deviations of 1,000 (sqrt(10000 * 0.1 * 0.9) = 30), none reordered or
/// doubled; the same seed set at run time loses the same frames twice,
/// another seed others; `impair_loss` counts exactly the frames lost.
fn loss_of_numbered_frames(tag: u8, host_keys: &str) -> TestResult {
    let t = Topology::new(tag, 2);
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    let port = b.port();
    let table = impair_table(&port, "egress", &[("loss", "\"10%\""), ("seed", "7")]);
    let (_t, sw) = up(tag, host_keys, &table)?;
    let lost = |id: u32| -> Result<Vec<u32>, String> {
        let st0 = sw.stats()?;
        let s = Stream {
            from: a,
            to: b,
            id,
            n: LOSS_FRAMES,
            pps: 5000,
            len: 64,
            settle: Duration::from_millis(500),
        };
        let frames = s.frames();
        let (_, got) = s.run()?;
        let seqs = got
            .iter()
            .map(|g| identify(&frames, &g.bytes).map(|x| x.0))
            .collect::<Result<Vec<u32>, String>>()?;
        if !seqs.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("loss alone reordered or doubled frames: {seqs:?}"));
        }
        let mut seen = vec![false; LOSS_FRAMES as usize];
        for s in &seqs {
            seen[*s as usize] = true;
        }
        // Frames lost outside the switch's impairment (a packet socket or a
        // device queue overflowing on a loaded machine) would spoil the
        // counts: said as such, not as a wrong loss rate.
        let st = sw.stats()?;
        let (rx, tx) = (
            st.port(&a.port(), "rx_frames") - st0.port(&a.port(), "rx_frames"),
            st.port(&port, "tx_frames") - st0.port(&port, "tx_frames"),
        );
        let dropped = st.port_drop(&port, "impair_loss") - st0.port_drop(&port, "impair_loss");
        if rx != u64::from(LOSS_FRAMES) || tx != seqs.len() as u64 || rx != tx + dropped {
            return Err(format!(
                "run {id}: frames lost outside the impairment: a.lan received {rx} of {LOSS_FRAMES}, b.lan sent {tx} and lost {dropped}, b received {}; drops of b.lan: {}",
                seqs.len(),
                st.port_drops_text(&port)
            ));
        }
        Ok((0..LOSS_FRAMES).filter(|&s| !seen[s as usize]).collect())
    };
    let seed = |s: &str| {
        sw.cmd(&[
            "impair",
            &port,
            "--direction",
            "egress",
            "--loss",
            "10%",
            "--seed",
            s,
        ])
    };
    let before = sw.stats()?.port_drop(&port, "impair_loss");
    let from_file = lost(1)?;
    seed("7")?;
    let first = lost(2)?;
    seed("7")?;
    let again = lost(3)?;
    seed("8")?;
    let other = lost(4)?;
    let st = sw.stats()?;
    let counted = st.port_drop(&port, "impair_loss") - before;
    let line_lost = st.json["ports"][&port]["impair"]["egress"]["lost"]
        .as_u64()
        .unwrap_or(0);
    let runs = [
        ("from the file, seed 7", &from_file),
        ("seed 7 at run time", &first),
        ("seed 7 again", &again),
        ("seed 8", &other),
    ];
    eprintln!(
        "impair: lost of {LOSS_FRAMES} at 10%: {}; the file's seed and the same seed at run time lost {} frames",
        runs.iter()
            .map(|(w, l)| format!("{} ({w})", l.len()))
            .collect::<Vec<_>>()
            .join(", "),
        if from_file == first { "the same" } else { "other" }
    );
    for (what, l) in runs {
        ensure!(
            (910..=1090).contains(&l.len()),
            "{} of {LOSS_FRAMES} lost at 10% ({what}): beyond 1000 ± 3 sigma (90)",
            l.len()
        );
    }
    ensure!(
        first == again,
        "the same seed lost other frames: {} of {} in common",
        first.iter().filter(|s| again.contains(s)).count(),
        first.len()
    );
    // Nothing but these frames crosses b's egress (the hosts have no IPv6,
    // and send no IP): the line the file made drew for them alone.
    ensure!(
        from_file == first,
        "the file's seed 7 and seed 7 at run time lost other frames"
    );
    ensure!(first != other, "another seed lost the same frames");
    let lost: u64 = runs.iter().map(|(_, l)| l.len() as u64).sum();
    ensure!(
        counted == lost && line_lost >= lost,
        "impair_loss counted {counted} (stats --json impair.egress.lost {line_lost}), the receiver missed {lost}"
    );
    Ok(())
}

/// Frames of the duplication, reordering and corruption test.
const FATE_FRAMES: u32 = 3000;

/// Duplication (10%), reordering (25%, behind a 5 ms delay) and
/// corruption (5%), seeded, on one direction: from the file on a's
/// ingress, or at run time on b's egress. A receiver of 3,000 numbered
/// frames sees every frame, the duplicates the switch counted as second
/// copies, frames arriving after higher-numbered ones (reordered), and as
/// many frames with one bit of their payload changed as the switch
/// counted corrupted.
fn fates_of_numbered_frames(tag: u8, host_keys: &str, from: Source) -> TestResult {
    let t = Topology::new(tag, 2);
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    let (port, dir) = match from {
        Source::File => (a.port(), "ingress"),
        Source::RunTime => (b.port(), "egress"),
    };
    let keys = [
        ("delay", "5ms"),
        ("duplicate", "10%"),
        ("reorder", "25%"),
        ("corrupt", "5%"),
    ];
    let table = match from {
        Source::File => {
            let quoted: Vec<(&str, String)> =
                keys.iter().map(|(k, v)| (*k, format!("\"{v}\""))).collect();
            let mut all: Vec<(&str, &str)> = quoted.iter().map(|(k, v)| (*k, v.as_str())).collect();
            all.push(("seed", "3"));
            impair_table(&port, dir, &all)
        }
        Source::RunTime => String::new(),
    };
    let (_t, sw) = up(tag, host_keys, &table)?;
    if from == Source::RunTime {
        let opts: Vec<String> = keys
            .iter()
            .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
            .collect();
        let mut args = vec!["impair", &port, "--direction", dir, "--seed", "3"];
        args.extend(opts.iter().map(String::as_str));
        sw.cmd(&args)?;
    }
    let s = Stream {
        from: a,
        to: b,
        id: 1,
        n: FATE_FRAMES,
        pps: 2000,
        len: 200,
        settle: Duration::from_millis(500),
    };
    let frames = s.frames();
    let (_, got) = s.run()?;
    let v = sw.stats()?.json;
    let imp = &v["ports"][&port]["impair"][dir];
    let counter = |k: &str| imp[k].as_u64().unwrap_or(0);
    let (dup, reordered, corrupt, delayed) = (
        counter("duplicated"),
        counter("reordered"),
        counter("corrupted"),
        counter("delayed"),
    );
    // Held for the 5 ms: every copy not reordered (on ingress a second
    // copy is held even when reordered: it cannot join the batch twice).
    ensure!(
        delayed > 0 && delayed + reordered >= u64::from(FATE_FRAMES) + dup,
        "stats --json impair.{dir}: {delayed} delayed and {reordered} reordered of {} copies",
        u64::from(FATE_FRAMES) + dup
    );
    let mut copies = vec![0u32; FATE_FRAMES as usize];
    let (mut changed, mut late, mut highest) = (0u64, 0u64, None);
    for g in &got {
        let (seq, bits) = identify(&frames, &g.bytes)?;
        copies[seq as usize] += 1;
        changed += u64::from(bits);
        if highest.is_some_and(|h| seq < h) {
            late += 1;
        }
        highest = highest.max(Some(seq));
    }
    let doubled = copies.iter().filter(|&&c| c == 2).count() as u64;
    let missing = copies.iter().filter(|&&c| c == 0).count();
    eprintln!(
        "impair: {FATE_FRAMES} frames on {port} {dir}: {} arrived; {dup} duplicated ({doubled} seen twice), {reordered} reordered ({late} arrived after a higher number), {corrupt} corrupted ({changed} seen with a bit changed)",
        got.len()
    );
    ensure!(missing == 0, "{missing} frames never arrived");
    ensure!(
        got.len() as u64 == u64::from(FATE_FRAMES) + dup && doubled == dup,
        "{} frames arrived ({doubled} twice) for {FATE_FRAMES} sent and {dup} duplicated",
        got.len()
    );
    // 10% of 3,000: 300 ± 4 sigma (66), as for reordering below. The
    // draws are seeded but shared with the host's own frames on the port
    // (ARP, neighbour discovery), so the count varies from run to run: at
    // 3 sigma one run in a few hundred failed (351, 2026-12-04).
    ensure!(
        (234..=366).contains(&dup),
        "{dup} duplicated of {FATE_FRAMES} at 10%"
    );
    // Each copy is reordered with 25%: 3,300 copies, sigma 25.
    let copies_sent = f64::from(FATE_FRAMES) + dup as f64;
    let want = 0.25 * copies_sent;
    ensure!(
        (reordered as f64 - want).abs() <= 4.0 * (copies_sent * 0.25 * 0.75).sqrt(),
        "{reordered} of {copies_sent} copies reordered at 25%"
    );
    ensure!(
        late >= reordered / 2,
        "only {late} frames arrived after a higher-numbered one, {reordered} reordered"
    );
    ensure!(
        changed == corrupt && corrupt > 0,
        "{changed} frames arrived with a bit changed, {corrupt} counted corrupted"
    );
    Ok(())
}

/// A delay of 200 ms on b's egress (from the file), changed at run time to
/// 50 ms and then cleared while a sends b 1,000 numbered frames a second:
/// every frame arrives, once and in order (the frames held at each change
/// keep their due times: nothing the new setting allows is dropped), and
/// within a second of each change the frames show the new delay.
fn change_at_run_time(tag: u8, host_keys: &str) -> TestResult {
    let t = Topology::new(tag, 2);
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    let port = b.port();
    let table = impair_table(&port, "egress", &[("delay", "\"200ms\"")]);
    let (_t, sw) = up(tag, host_keys, &table)?;
    let s = Stream {
        from: a,
        to: b,
        id: 1,
        n: 4500,
        pps: 1000,
        len: 64,
        settle: Duration::from_millis(700),
    };
    let frames = s.frames();
    let (sent, got, changes) = std::thread::scope(|sc| {
        let changer = sc.spawn(|| -> Result<(Vec<(Instant, Instant)>, u64), String> {
            let mut when = Vec::new();
            let mut depth = 0;
            for (after, args) in [(800, &["--delay", "50ms"][..]), (1700, &["--clear"][..])] {
                std::thread::sleep(Duration::from_millis(after));
                if when.is_empty() {
                    // 200 ms of frames at 1,000 a second are held now.
                    let v = sw.stats()?.json;
                    depth = v["ports"][&port]["impair"]["egress"]["queued_frames"]
                        .as_u64()
                        .unwrap_or(0);
                }
                let t0 = Instant::now();
                let mut a = vec!["impair", &port, "--direction", "egress"];
                a.extend_from_slice(args);
                sw.cmd(&a)?;
                when.push((t0, Instant::now()));
            }
            Ok((when, depth))
        });
        let run = s.run();
        let changes = changer
            .join()
            .map_err(|_| "the changer panicked".to_string())?;
        run.and_then(|(sent, got)| Ok((sent, got, changes?)))
    })?;
    let seqs = got
        .iter()
        .map(|g| identify(&frames, &g.bytes).map(|x| x.0))
        .collect::<Result<Vec<u32>, String>>()?;
    ensure!(
        seqs.len() == sent.len() && seqs.iter().enumerate().all(|(i, &q)| q as usize == i),
        "{} of {} frames arrived (or not in order) across two changes: nothing held should be lost",
        seqs.len(),
        sent.len()
    );
    // Latency of each frame, in ms, by the time it was sent.
    let lat: Vec<(Instant, f64)> = sent
        .iter()
        .zip(&got)
        .map(|(s, g)| (*s, g.at.duration_since(*s).as_secs_f64() * 1e3))
        .collect();
    let window = |from: Instant, to: Instant| -> Vec<f64> {
        lat.iter()
            .filter(|(s, _)| *s >= from && *s < to)
            .map(|x| x.1)
            .collect()
    };
    let (changes, depth) = changes;
    let [(c1, c1_done), (c2, c2_done)] = changes[..] else {
        return Err("two changes were not made".into());
    };
    let end = sent.last().copied().unwrap_or(c2_done) + Duration::from_millis(1);
    let start = sent.first().copied().unwrap_or(c1);
    let old = window(start, c1);
    let new = window(c1_done + Duration::from_secs(1), c2);
    let none = window(c2_done + Duration::from_secs(1), end);
    // When each change showed: the first frame sent after it with the new
    // delay (within 15 ms of it).
    let showed = |after: Instant, max_ms: f64| {
        lat.iter()
            .find(|(s, l)| *s >= after && *l <= max_ms)
            .map(|(s, _)| s.duration_since(after).as_millis())
    };
    let (s1, s2) = (showed(c1, 65.0), showed(c2, 15.0));
    let min = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
    ensure!(
        (150..=250).contains(&depth),
        "stats --json impair.egress.queued_frames {depth} under 200 ms at 1,000 frames/s"
    );
    eprintln!(
        "impair: {depth} frames held under 200 ms; 200 ms: median {:.1} ms (min {:.1}); 50 ms a second after the change: median {:.1} (min {:.1}), shown {s1:?} ms after it; cleared: median {:.1}, shown {s2:?} ms after it",
        median(&old),
        min(&old),
        median(&new),
        min(&new),
        median(&none)
    );
    ensure!(
        !old.is_empty() && !new.is_empty() && !none.is_empty(),
        "a phase without frames: {} {} {}",
        old.len(),
        new.len(),
        none.len()
    );
    // The lower bounds are the switch's (a frame is never early); above
    // them, the medians leave room for a loaded machine's scheduling.
    ensure!(
        min(&old) >= 199.0 && median(&old) <= 250.0,
        "before the change, delays of {:.1} to {:.1} ms (median) for 200 ms",
        min(&old),
        median(&old)
    );
    ensure!(
        (49.0..=60.0).contains(&min(&new)) && median(&new) <= 100.0,
        "a second after the change to 50 ms, delays of {:.1} ms (min) and {:.1} ms (median)",
        min(&new),
        median(&new)
    );
    ensure!(
        min(&none) <= 5.0 && median(&none) <= 30.0,
        "a second after --clear, delays of {:.1} ms (min) and {:.1} ms (median)",
        min(&none),
        median(&none)
    );
    ensure!(
        s1.is_some_and(|ms| ms < 1000) && s2.is_some_and(|ms| ms < 1000),
        "a change took more than a second to show: {s1:?} {s2:?} ms"
    );
    Ok(())
}

/// `rate = "10mbit"` on a's port, both directions (from the file, or at
/// run time): iperf3 TCP gets 9.0 to 10.5 Mbit/s; UDP at 20 Mbit/s loses
/// what the queue cannot hold, as `impair_queue_full`.
fn rate_limits(tag: u8, host_keys: &str, from: Source) -> TestResult {
    let (t, sw) = match from {
        Source::File => up_with_port_impair(tag, host_keys, "rate = \"10mbit\"\n")?,
        Source::RunTime => up(tag, host_keys, "")?,
    };
    let (a, b) = (&t.hosts[0], &t.hosts[1]);
    if from == Source::RunTime {
        sw.cmd(&["impair", &a.port(), "--rate", "10mbit"])?;
    }
    let tcp = iperf3_tcp(&b.name, b.ip(), &a.name, 6)? / 1e6;
    eprintln!("impair: TCP through a 10mbit port ({from:?}): {tcp:.2} Mbit/s");
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

/// Carrier changes of eth0 in `ip -ts monitor link` output: (seconds of
/// the day, carrier), each a change from the one before.
fn carrier_changes(monitor: &str) -> Vec<(f64, bool)> {
    let mut out: Vec<(f64, bool)> = Vec::new();
    for l in monitor.lines() {
        // `[2026-12-02T19:50:01.123456] 2: eth0: <NO-CARRIER,...> ...`
        let Some(rest) = l.strip_prefix('[') else {
            continue;
        };
        let Some((ts, msg)) = rest.split_once(']') else {
            continue;
        };
        if !msg.contains(" eth0") || msg.contains("Deleted") {
            continue;
        }
        let Some(clock) = ts.split('T').nth(1) else {
            continue;
        };
        let hms: Vec<f64> = clock.split(':').filter_map(|x| x.parse().ok()).collect();
        let [h, m, s] = hms[..] else { continue };
        let carrier = !msg.contains("NO-CARRIER");
        if out.last().map(|x| x.1) != Some(carrier) {
            out.push((h * 3600.0 + m * 60.0 + s, carrier));
        }
    }
    out
}

/// Carrier changes of eth0 in namespace `ns` over `dur`, read with `ip
/// link` about every 10 ms: (seconds since the start, carrier), each a
/// change from the one before, timed at the middle of the read that saw it.
fn sampled_carrier_changes(ns: &str, dur: Duration) -> Result<Vec<(f64, bool)>, String> {
    let start = Instant::now();
    let mut out: Vec<(f64, bool)> = Vec::new();
    while start.elapsed() < dur {
        let t0 = start.elapsed().as_secs_f64();
        let l = run_timeout(
            "ip",
            &["-n", ns, "-o", "link", "show", "dev", "eth0"],
            Duration::from_secs(5),
        )?;
        let at = (t0 + start.elapsed().as_secs_f64()) / 2.0;
        let carrier = !l.contains("NO-CARRIER");
        if out.last().map(|x| x.1) != Some(carrier) {
            out.push((at, carrier));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(out)
}

/// `flap = { every = "1s", down_for = "400ms" }` (from the file): the
/// carrier changes the host sees come at those times: down 1 s after the
/// down before, up 400 ms after going down (± 75 ms). A veth host's are
/// read from `ip monitor link` (its timestamps); a TAP host's by reading
/// `ip link` every 10 ms, because the kernel reports a TAP's carrier
/// changes to `ip monitor` at most once a second (linkwatch delays the
/// events of devices that are not stacked on another): a 400 ms loss
/// there comes late or not at all, while `ip link` shows the carrier flag
/// as it is.
fn flap(tag: u8, host_keys: &str) -> TestResult {
    let (t, _sw) = up_with_port_impair(
        tag,
        host_keys,
        "flap = { every = \"1s\", down_for = \"400ms\" }\n",
    )?;
    let a = &t.hosts[0];
    let watch = Duration::from_millis(4600);
    let (changes, out) = if host_keys == TAP {
        (sampled_carrier_changes(&a.name, watch)?, String::new())
    } else {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &a.name, "ip", "-ts", "monitor", "link"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting ip monitor: {e}"))?;
        std::thread::sleep(watch);
        let out = Background::from_child(child).interrupt_output(Duration::from_secs(3))?;
        (carrier_changes(&out), out)
    };
    let t0 = changes.first().map_or(0.0, |c| c.0);
    let rel: Vec<(u64, bool)> = changes
        .iter()
        .map(|&(s, c)| (((s - t0) * 1000.0).round() as u64, c))
        .collect();
    let how = if host_keys == TAP {
        "ip link, sampled"
    } else {
        "ip monitor"
    };
    eprintln!("impair: carrier changes ({how}; ms after the first, carrier): {rel:?}");
    let downs: Vec<f64> = changes.iter().filter(|c| !c.1).map(|c| c.0).collect();
    ensure!(
        downs.len() >= 3,
        "{} carrier losses in 4.6 s of a 1 s flap ({how}): {rel:?}\n{out}",
        downs.len()
    );
    for w in downs.windows(2) {
        let ms = (w[1] - w[0]) * 1000.0;
        ensure!(
            (925.0..=1075.0).contains(&ms),
            "carrier lost {ms:.0} ms after the loss before, not 1000 ± 75: {rel:?}"
        );
    }
    let mut ups = 0;
    for w in changes.windows(2) {
        if let [(t0, false), (t1, true)] = w {
            ups += 1;
            let ms = (t1 - t0) * 1000.0;
            ensure!(
                (325.0..=475.0).contains(&ms),
                "down for {ms:.0} ms, not 400 ± 75: {rel:?}"
            );
        }
    }
    ensure!(ups >= 2, "the carrier came back {ups} times: {rel:?}");
    Ok(())
}
