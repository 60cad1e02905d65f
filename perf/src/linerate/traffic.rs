//! Offering traffic and measuring what arrives.
//!
//! A trial sends one frame size at a rate (or as fast as the generator can)
//! for a while from the generator's namespace, then counts what the sink's
//! interface received (`ip -s -j link`): the forwarding rate is received
//! frames over the sending time, the loss is sent minus received.
//! A latency trial sends timestamped frames one at a time, evenly paced,
//! and a receiver in the sink's namespace takes each frame's kernel receive
//! time: latency = receive time - send time (one clock for all namespaces).

use super::frame as raw;
use super::lab::{if_stats, Path, GEN_NS, SINK_NS};
use super::packet::{realtime_ns, PacketSocket, TxRing};
use super::{interrupted, BenchError};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames handed to the kernel per `send` when paced: small, so that the
/// rate is smooth.
const PACED_BATCH: usize = 32;
/// ... and when sending as fast as possible: large, so that one system
/// call moves many frames (trafgen flushes only when its ring is full).
const FLOOD_BATCH: usize = 1024;
/// Time allowed for frames in flight to arrive after the generator stops.
const DRAIN: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Trial {
    /// Frames the generator handed to the kernel.
    pub sent: u64,
    /// Frames the sink's interface received.
    pub received: u64,
    pub seconds: f64,
    /// Offered rate: sent / seconds.
    pub offered_fps: f64,
    /// Forwarding rate: received / seconds.
    pub fps: f64,
    pub loss: u64,
    pub loss_ratio: f64,
    /// CPU the switch process used while the generator sent, in cores
    /// (1.0: one core busy all the time). None for the kernel paths.
    pub switch_cpu: Option<f64>,
    /// How busy the cores other than the generator's were (0..1), whoever
    /// kept them busy: the switch, and the kernel's packet work for its
    /// ports (copy-mode AF_XDP transmit, the sink's receive), which runs in
    /// softirq and is not charged to the switch process.
    pub switch_side_busy: Option<f64>,
}

/// (busy, total) jiffies summed over every CPU but `except` (/proc/stat).
fn cpu_jiffies(except: Option<usize>) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let (mut busy, mut total) = (0u64, 0u64);
    for line in s.lines() {
        let mut f = line.split_whitespace();
        let Some(n) = f.next().and_then(|c| c.strip_prefix("cpu")) else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue }; // the "cpu" total
        if Some(n) == except {
            continue;
        }
        // user nice system idle iowait irq softirq steal
        let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 {
            return None;
        }
        busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        total += v.iter().sum::<u64>();
    }
    (total > 0).then_some((busy, total))
}

/// CPU time of process `pid`, all threads, in seconds (/proc/PID/stat).
pub(super) fn cpu_seconds(pid: u32) -> Option<f64> {
    proc_stat(pid).map(|(_, secs)| secs)
}

/// The state letter (`Z`: exited, not reaped) and the CPU time in seconds
/// of process `pid` (/proc/PID/stat).
pub(super) fn proc_stat(pid: u32) -> Option<(char, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let hz = shunt_switch::port::sys::clock_ticks() as f64;
    Some((state, (utime + stime) / hz.max(1.0)))
}

/// Teaches the switch (or bridge) where the sink is: a few broadcast frames
/// from the sink's interface.
pub fn announce_sink(path: &Path) -> Result<(), BenchError> {
    let s = PacketSocket::sender(SINK_NS, &path.sink_if).map_err(BenchError::Traffic)?;
    let f = raw::udp_frame(64, [0xff; 6], path.sink_mac);
    for _ in 0..3 {
        s.send_one(&f);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}

/// Progress shown on stderr while a trial runs.
pub struct Progress<'a> {
    pub label: &'a str,
    pub quiet: bool,
}

/// Sends `size`-byte frames along `path` at `rate` frames/s (None: as fast
/// as possible) for `dur`, with the sending thread pinned to `core`.
pub fn trial(
    path: &Path,
    size: usize,
    rate: Option<f64>,
    dur: Duration,
    core: Option<usize>,
    switch_pid: Option<u32>,
    progress: &Progress,
) -> Result<Trial, BenchError> {
    let frames: Vec<Vec<u8>> = (0..path.flows.max(1))
        .map(|f| raw::udp_flow_frame(size, path.sink_mac, path.gen_mac, f as u16))
        .collect();
    let mut ring = TxRing::new(GEN_NS, &path.gen_if, &frames).map_err(BenchError::Traffic)?;
    let before = if_stats(SINK_NS, &path.sink_if)?;
    let cpu_before = switch_pid.and_then(cpu_seconds);
    let side_before = cpu_jiffies(core);
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let seconds = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            pin(core);
            let t0 = Instant::now();
            let mut n: u64 = 0;
            while !interrupted() {
                let now = t0.elapsed();
                if now >= dur {
                    break;
                }
                if let Some(r) = rate {
                    // Pace: frame n leaves at n / r.
                    let due = Duration::from_secs_f64(n as f64 / r);
                    if due > now {
                        spin_until(t0 + due);
                        continue;
                    }
                }
                let batch = if rate.is_some() {
                    PACED_BATCH
                } else {
                    FLOOD_BATCH
                };
                n += ring.send(batch, None) as u64;
                sent.store(n, Relaxed);
            }
            done.store(true, Relaxed);
            t0.elapsed().as_secs_f64()
        });
        while !done.load(Relaxed) && !interrupted() {
            std::thread::sleep(Duration::from_millis(250));
            show(progress, start, sent.load(Relaxed), rate);
        }
        sender.join().unwrap_or(0.0)
    });
    let cpu_after = switch_pid.and_then(cpu_seconds);
    let side_after = cpu_jiffies(core);
    std::thread::sleep(DRAIN);
    let after = if_stats(SINK_NS, &path.sink_if)?;
    let sent = sent.load(Relaxed);
    let received = after.rx_packets.saturating_sub(before.rx_packets);
    let seconds = seconds.max(1e-9);
    let loss = sent.saturating_sub(received);
    Ok(Trial {
        sent,
        received,
        seconds,
        offered_fps: sent as f64 / seconds,
        fps: received as f64 / seconds,
        loss,
        loss_ratio: if sent == 0 {
            0.0
        } else {
            loss as f64 / sent as f64
        },
        switch_cpu: cpu_before.zip(cpu_after).map(|(a, b)| (b - a) / seconds),
        switch_side_busy: side_before
            .zip(side_after)
            .and_then(|((b0, t0), (b1, t1))| {
                (t1 > t0).then(|| (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64)
            }),
    })
}

fn show(p: &Progress, start: Instant, sent: u64, rate: Option<f64>) {
    if p.quiet {
        return;
    }
    let t = start.elapsed().as_secs_f64();
    let r = rate
        .map(|r| format!(" (paced at {})", fmt_rate(r)))
        .unwrap_or_default();
    eprint!("\r\x1b[K{}: {:.1} s, {} frames sent{}", p.label, t, sent, r);
}

pub fn clear_progress(quiet: bool) {
    if !quiet {
        eprint!("\r\x1b[K");
    }
}

pub fn fmt_rate(fps: f64) -> String {
    if fps >= 1e6 {
        format!("{:.2} Mfps", fps / 1e6)
    } else {
        format!("{:.1} kfps", fps / 1e3)
    }
}

/// RFC 2544 §26.1 throughput: the highest rate offered in full with no
/// loss, by binary search between 0 and `high` (a rate known to lose, or
/// the generator's ceiling), to within 1% or `max_trials` trials.
pub fn rfc2544(
    path: &Path,
    size: usize,
    high: f64,
    dur: Duration,
    core: Option<usize>,
    switch_pid: Option<u32>,
    progress: &Progress,
) -> Result<(f64, Vec<(f64, Trial)>), BenchError> {
    let (label, quiet) = (progress.label, progress.quiet);
    let max_trials = 10;
    let (mut lo, mut hi) = (0.0f64, high);
    let mut tried = Vec::new();
    let mut rate = high;
    for k in 0..max_trials {
        if interrupted() {
            break;
        }
        let lbl = format!("{label} rfc2544 trial {} at {}", k + 1, fmt_rate(rate));
        let t = trial(
            path,
            size,
            Some(rate),
            dur,
            core,
            switch_pid,
            &Progress { label: &lbl, quiet },
        )?;
        tried.push((rate, t));
        // A pass needs no loss *and* the rate actually offered: a TAP that
        // pushes back on the generator loses nothing but slows it down.
        if t.loss == 0 && t.offered_fps >= 0.99 * rate {
            lo = rate;
            if k == 0 {
                break; // no loss at the top: that is the answer
            }
        } else {
            hi = rate;
        }
        if hi - lo <= 0.01 * hi {
            break;
        }
        rate = (lo + hi) / 2.0;
    }
    Ok((lo, tried))
}

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub rate_fps: f64,
    pub samples: u64,
    pub lost: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// (latency µs, fraction of samples at or below it), for the plot.
    #[serde(skip)]
    pub cdf: Vec<(f64, f64)>,
}

/// Sends timestamped frames one at a time at `rate` for `dur` and records
/// each one's latency.
pub fn latency(
    path: &Path,
    size: usize,
    rate: f64,
    dur: Duration,
    core: Option<usize>,
    progress: &Progress,
) -> Result<Latency, BenchError> {
    let tx = PacketSocket::sender(GEN_NS, &path.gen_if).map_err(BenchError::Traffic)?;
    let rx = PacketSocket::stamped_receiver(SINK_NS, &path.sink_if).map_err(BenchError::Traffic)?;
    let mut frame = raw::udp_frame(size, path.sink_mac, path.gen_mac);
    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let start = Instant::now();
    let rate = rate.max(1.0);
    let (hist, sent_n) = std::thread::scope(|s| -> Result<(Histogram<u64>, u64), BenchError> {
        let receiver = s.spawn(|| -> Result<Histogram<u64>, String> {
            // On the generator's core, not the switch's: the switch's core
            // must be the switch's alone. The kernel's receive time is
            // taken before this thread runs, so its delay does not count.
            pin(core);
            let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
                .map_err(|e| format!("latency histogram: {e}"))?;
            let mut buf = vec![0u8; 2048];
            let mut idle_since: Option<Instant> = None;
            loop {
                match rx.recv_stamped(&mut buf) {
                    Ok(Some((n, at))) => {
                        idle_since = None;
                        if let Some(t) = raw::read_stamp(&buf[..n]) {
                            let _ = h.record(at.saturating_sub(t).max(1));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("receiving on {}: {e}", path.sink_if)),
                }
                if done.load(Relaxed) {
                    let t = *idle_since.get_or_insert_with(Instant::now);
                    if t.elapsed() > DRAIN || h.len() >= sent.load(Relaxed) {
                        return Ok(h);
                    }
                }
            }
        });
        let sender = s.spawn(|| {
            pin(core);
            let t0 = Instant::now();
            let mut n = 0u64;
            // Frame n leaves at base + n / rate; a sender that fell behind
            // (descheduled) starts a new schedule rather than bursting.
            let mut base = t0;
            let mut k = 0u64;
            while !interrupted() && t0.elapsed() < dur {
                let due = base + Duration::from_secs_f64(k as f64 / rate);
                let now = Instant::now();
                if now > due + Duration::from_micros(50) {
                    base = now;
                    k = 0;
                }
                while Instant::now() < due {
                    // The receiver shares this core: let it run.
                    std::thread::yield_now();
                }
                k += 1;
                raw::stamp(&mut frame, realtime_ns());
                if tx.send_one(&frame) {
                    n += 1;
                    sent.store(n, Relaxed);
                }
            }
            done.store(true, Relaxed);
            n
        });
        while !done.load(Relaxed) && !interrupted() {
            std::thread::sleep(Duration::from_millis(250));
            show(progress, start, sent.load(Relaxed), Some(rate));
        }
        let n = sender.join().unwrap_or(0);
        done.store(true, Relaxed);
        let h = receiver
            .join()
            .map_err(|_| BenchError::Traffic("latency receiver panicked".into()))?
            .map_err(BenchError::Traffic)?;
        Ok((h, n))
    })?;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let mut cdf = Vec::new();
    for v in hist.iter_quantiles(2) {
        cdf.push((
            v.value_iterated_to() as f64 / 1000.0,
            v.quantile_iterated_to(),
        ));
    }
    Ok(Latency {
        rate_fps: rate,
        samples: hist.len(),
        lost: sent_n.saturating_sub(hist.len()),
        p50_us: us(0.5),
        p90_us: us(0.9),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: hist.max() as f64 / 1000.0,
        cdf,
    })
}

fn spin_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        if t - now > Duration::from_micros(500) {
            std::thread::sleep(Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn pin(core: Option<usize>) {
    if let Some(c) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }
}
