//! `shunt bench --tcp`: iperf3 through the switch and through the kernel,
//! runs interleaved (kernel, shunt, kernel, shunt, ...) so that the load of
//! a shared machine falls on both alike, and what each run cost in CPU.
//!
//! The switch's CPU is its processes' utime + stime, all threads
//! (/proc/PID/stat), over the run's wall time: cores. The kernel's paths
//! (bridge, vxlan) run in softirq, charged to no process; for them the
//! machine's softirq time (/proc/stat) over the same window is the nearest
//! figure. It is taken for every run, so shunt's runs show it too. Neither
//! is only the forwarding: the softirq time includes the receiving
//! namespace's TCP/IP receive, and the switch's system time includes the
//! kernel's TAP or socket work done in its system calls, part of which is
//! that same receive.

use super::lab::{GEN_NS, SINK_NS, UNDERLAY_NS};
use super::{interrupted, BenchError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One way through for iperf3: the client runs in [`GEN_NS`], the server
/// in [`SINK_NS`] on `v4` / `v6`.
#[derive(Debug, Clone)]
pub struct TcpPath {
    /// "linux-bridge", "shunt", "linux-vxlan", "shunt-vxlan".
    pub name: &'static str,
    pub v4: &'static str,
    pub v6: &'static str,
    /// The switch processes this path goes through (none: the kernel's).
    pub pids: Vec<u32>,
}

/// What to run: every (streams, IP version) on every path, `rounds` times.
#[derive(Debug, Clone)]
pub struct TcpPlan {
    pub streams: Vec<u32>,
    pub ips: Vec<u8>,
    pub rounds: u32,
    pub secs: u64,
    /// The iperf3 client's core.
    pub core: Option<usize>,
    /// The iperf3 server's core (None: not pinned).
    pub server_core: Option<usize>,
    pub quiet: bool,
}

/// One iperf3 run.
#[derive(Debug, Clone, Serialize)]
pub struct Tcp {
    pub path: String,
    pub gbit_per_s: f64,
    /// 4 or 6.
    pub ip: u8,
    /// iperf3 -P.
    pub streams: u32,
    /// 1-based: the n-th time this comparison ran in this bench.
    pub round: u32,
    /// TCP retransmits the sender counted (iperf3's sum_sent).
    pub retransmits: u64,
    /// Wall time of the window the CPU figures are taken over.
    pub seconds: f64,
    /// CPU of the switch process(es), in cores (1.0: one core all the
    /// time); None on the kernel's paths.
    pub switch_cpu: Option<f64>,
    pub switch_cpu_per_gbit: Option<f64>,
    /// The whole machine's softirq time, in cores.
    pub softirq_cpu: Option<f64>,
    pub softirq_cpu_per_gbit: Option<f64>,
    /// The whole machine's busy time (all but idle and iowait), in cores.
    pub busy_cpu: Option<f64>,
    /// /proc/loadavg after the run.
    pub load_1min: f64,
    /// Frames the kernel's interfaces of the bench dropped during the run
    /// (`ip -s link`: "shb-gen/shb-xg.tx_dropped"), only those that
    /// moved: losses that neither iperf3 nor the switch's counters place
    /// (a veth's ring towards an XDP socket full, a packet socket's queue).
    pub link_drops: BTreeMap<String, u64>,
    /// The sum of `link_drops`.
    pub link_drops_total: u64,
}

/// Median and range over the rounds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(v: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One path at one (IP version, streams), over its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct TcpSummary {
    pub path: String,
    pub ip: u8,
    pub streams: u32,
    pub runs: usize,
    pub gbit_per_s: Spread,
    pub retransmits: Spread,
    /// Of `link_drops_total`.
    pub link_drops: Spread,
    pub switch_cpu_per_gbit: Option<Spread>,
    pub softirq_cpu_per_gbit: Option<Spread>,
}

/// shunt's path against the kernel's at one (IP version, streams).
#[derive(Debug, Clone, Serialize)]
pub struct TcpRatio {
    /// e.g. "shunt/linux-bridge".
    pub ratio: String,
    pub ip: u8,
    pub streams: u32,
    /// Median of shunt's runs over the median of the kernel's.
    pub of_medians: f64,
    /// The ratio of each round's pair (run n of each), over the rounds.
    pub paired: Spread,
}

/// The iperf3 runs of `paths`, interleaved: for each round, for each
/// (streams, IP version), every path in turn. `alive` is asked after each
/// run through a switch (the switch may have stopped).
pub fn compare(
    paths: &[TcpPath],
    plan: &TcpPlan,
    alive: &mut dyn FnMut() -> Result<(), BenchError>,
) -> Result<Vec<Tcp>, BenchError> {
    let mut out = Vec::new();
    for round in 1..=plan.rounds {
        for &streams in &plan.streams {
            for &ip in &plan.ips {
                for p in paths {
                    if interrupted() {
                        return Err(BenchError::Interrupted);
                    }
                    if !plan.quiet {
                        eprint!(
                            "\r\x1b[Ktcp round {round}/{}: IPv{ip}, {streams} stream(s), {}",
                            plan.rounds, p.name
                        );
                    }
                    let server = if ip == 6 { p.v6 } else { p.v4 };
                    let mut t = iperf3(
                        server,
                        streams,
                        plan.secs,
                        [plan.core, plan.server_core],
                        &p.pids,
                    )?;
                    if !p.pids.is_empty() {
                        alive()?;
                    }
                    t.path = p.name.into();
                    t.ip = ip;
                    t.round = round;
                    out.push(t);
                }
            }
        }
    }
    super::traffic::clear_progress(plan.quiet);
    Ok(out)
}

/// Medians per (path, IP version, streams), in the order first run.
pub fn summarize(runs: &[Tcp]) -> Vec<TcpSummary> {
    let mut keys: Vec<(String, u8, u32)> = Vec::new();
    for t in runs {
        let k = (t.path.clone(), t.ip, t.streams);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .filter_map(|(path, ip, streams)| {
            let of: Vec<&Tcp> = runs
                .iter()
                .filter(|t| t.path == path && t.ip == ip && t.streams == streams)
                .collect();
            let col = |f: &dyn Fn(&Tcp) -> Option<f64>| -> Vec<f64> {
                of.iter().filter_map(|t| f(t)).collect()
            };
            Some(TcpSummary {
                runs: of.len(),
                gbit_per_s: Spread::of(&col(&|t| Some(t.gbit_per_s)))?,
                retransmits: Spread::of(&col(&|t| Some(t.retransmits as f64)))?,
                link_drops: Spread::of(&col(&|t| Some(t.link_drops_total as f64)))?,
                switch_cpu_per_gbit: Spread::of(&col(&|t| t.switch_cpu_per_gbit)),
                softirq_cpu_per_gbit: Spread::of(&col(&|t| t.softirq_cpu_per_gbit)),
                path,
                ip,
                streams,
            })
        })
        .collect()
}

/// shunt against the kernel: "shunt" over "linux-bridge", "shunt-vxlan"
/// over "linux-vxlan", wherever both ran.
pub fn ratios(runs: &[Tcp], sums: &[TcpSummary]) -> Vec<TcpRatio> {
    let mut out = Vec::new();
    for s in sums {
        let references: &[&str] = match s.path.as_str() {
            "shunt" => &["linux-bridge", "ovs"],
            "ovs" => &["linux-bridge"],
            "shunt-vxlan" => &["linux-vxlan"],
            _ => continue,
        };
        for &reference in references {
            let Some(r) = sums
                .iter()
                .find(|r| r.path == reference && r.ip == s.ip && r.streams == s.streams)
            else {
                continue;
            };
            if r.gbit_per_s.median <= 0.0 {
                continue;
            }
            let rate = |path: &str, round: u32| {
                runs.iter()
                    .find(|t| {
                        t.path == path && t.ip == s.ip && t.streams == s.streams && t.round == round
                    })
                    .map(|t| t.gbit_per_s)
            };
            let paired: Vec<f64> = runs
                .iter()
                .filter(|t| t.path == s.path && t.ip == s.ip && t.streams == s.streams)
                .filter_map(|t| {
                    let k = rate(reference, t.round)?;
                    (k > 0.0).then(|| t.gbit_per_s / k)
                })
                .collect();
            let Some(paired) = Spread::of(&paired) else {
                continue;
            };
            out.push(TcpRatio {
                ratio: format!("{}/{reference}", s.path),
                ip: s.ip,
                streams: s.streams,
                of_medians: s.gbit_per_s.median / r.gbit_per_s.median,
                paired,
            });
        }
    }
    out
}

/// The text report's TCP part.
pub fn text(
    o: &mut String,
    secs: u64,
    sums: &[TcpSummary],
    ratios: &[TcpRatio],
    counted: &[SwitchCounters],
) {
    use std::fmt::Write;
    let rounds = sums.iter().map(|s| s.runs).max().unwrap_or(0);
    let _ = writeln!(
        o,
        "\nTCP (iperf3 -t {secs}, {rounds} run(s) each, interleaved; median [min-max])"
    );
    let _ = writeln!(
        o,
        "  {:<14} {:>2} {:>7} {:>7} {:<13} {:>7} {:>7} {:>17} {:>14}",
        "path",
        "IP",
        "streams",
        "Gbit/s",
        " [min-max]",
        "retrans",
        "drops",
        "switch CPU/Gbit/s",
        "softirq/Gbit/s"
    );
    let cpu = |s: Option<Spread>| {
        s.map(|s| format!("{:.3}", s.median))
            .unwrap_or_else(|| "n/a".into())
    };
    for s in sums {
        let g = s.gbit_per_s;
        let _ = writeln!(
            o,
            "  {:<14} {:>2} {:>7} {:>7.2} {:<13} {:>7.0} {:>7.0} {:>17} {:>14}",
            s.path,
            s.ip,
            s.streams,
            g.median,
            format!(" [{:.2}-{:.2}]", g.min, g.max),
            s.retransmits.median,
            s.link_drops.median,
            cpu(s.switch_cpu_per_gbit),
            cpu(s.softirq_cpu_per_gbit),
        );
    }
    for r in ratios {
        let _ = writeln!(
            o,
            "  {} (IPv{}, {} stream(s)): {:.2}x (per round {:.2}-{:.2}x)",
            r.ratio, r.ip, r.streams, r.of_medians, r.paired.min, r.paired.max
        );
    }
    if !sums.is_empty() {
        let _ = writeln!(
            o,
            "  CPU in cores per Gbit/s: the switch's processes (utime+stime), the whole machine's softirq; drops: the bench's interfaces' rx/tx dropped (ip -s link)"
        );
    }
    for c in counted {
        let list: Vec<String> = c.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            o,
            "  {} counted during its TCP runs: {}",
            c.switch,
            if list.is_empty() {
                "nothing".into()
            } else {
                list.join(", ")
            }
        );
    }
}

/// What one switch counted during the TCP runs: per port, the offload
/// counters and the drops that moved ("gen.rx_gso", "sink.drop.tx_full",
/// "vtep 192.0.3.12.drop.vxlan_too_big").
#[derive(Debug, Clone, Serialize)]
pub struct SwitchCounters {
    pub switch: String,
    pub counters: BTreeMap<String, u64>,
}

/// The counters of switch `name` (`shunt stats`); empty if it does not
/// answer.
pub fn counters(name: &str) -> BTreeMap<String, u64> {
    use shunt_switch::control::{
        proto::{Request, Stats},
        request,
    };
    let mut m = BTreeMap::new();
    let Ok(st) = request::<Stats>(name, &Request::Stats) else {
        return m;
    };
    for (port, p) in st.ports {
        let o = p.offload;
        for (k, v) in [
            ("rx_gso", o.rx_gso),
            ("tx_gso_whole", o.tx_gso_whole),
            ("tx_gso_segments", o.tx_gso_segments),
            ("tx_csum_soft", o.tx_csum_soft),
            ("rx_frames", p.rx_frames),
            ("tx_frames", p.tx_frames),
        ] {
            m.insert(format!("{port}.{k}"), v);
        }
        for (r, v) in p.drops {
            m.insert(format!("{port}.drop.{r}"), v);
        }
        // The kernel's own counters of the port: losses before shunt
        // saw a frame (a full socket buffer, TAP queue or XDP ring).
        if let Some(k) = p.packet {
            m.insert(format!("{port}.packet.rx_dropped"), k.rx_dropped);
        }
        if let Some(k) = p.tap {
            m.insert(format!("{port}.tap.rx_dropped"), k.rx_dropped);
            m.insert(format!("{port}.tap.tx_dropped"), k.tx_dropped);
        }
        if let Some(serde_json::Value::Object(x)) = &p.afxdp {
            for (k, v) in x {
                if let Some(v) = v.as_u64() {
                    m.insert(format!("{port}.afxdp.{k}"), v);
                }
            }
        }
    }
    for (ip, v) in st.vteps {
        for (r, n) in v.drops {
            m.insert(format!("vtep {ip}.drop.{r}"), n);
        }
    }
    m
}

/// `after - before`, only what moved.
pub fn counters_delta(
    switch: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> SwitchCounters {
    SwitchCounters {
        switch: switch.into(),
        counters: moved(before, after),
    }
}

/// The rx and tx drop counters of the bench's interfaces: every one in
/// its namespaces but `lo`, and those named `shb-*` in the namespace the
/// bench runs in (the switch-side veths and the bridge; not the machine's
/// own interfaces). Keys "NS/IFNAME.rx_dropped", NS "-" for the bench's
/// own namespace. What `ip` cannot read is left out.
pub fn link_drops() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for ns in [None, Some(GEN_NS), Some(SINK_NS), Some(UNDERLAY_NS)] {
        if ns.is_some_and(|n| !shunt_switch::netns::exists(n)) {
            continue;
        }
        let mut cmd = Command::new("ip");
        if let Some(n) = ns {
            cmd.args(["-n", n]);
        }
        let Ok(out) = cmd.args(["-s", "-j", "link", "show"]).output() else {
            continue;
        };
        if out.status.success() {
            link_drops_of(ns.unwrap_or("-"), &out.stdout, &mut m);
        }
    }
    m
}

/// `ip -s -j link show`'s drop counters into `m` (see [`link_drops`]).
fn link_drops_of(ns: &str, json: &[u8], m: &mut BTreeMap<String, u64>) {
    let Ok(serde_json::Value::Array(links)) = serde_json::from_slice(json) else {
        return;
    };
    for l in &links {
        let Some(name) = l["ifname"].as_str() else {
            continue;
        };
        if name == "lo" || (ns == "-" && !name.starts_with("shb-")) {
            continue;
        }
        for dir in ["rx", "tx"] {
            if let Some(n) = l["stats64"][dir]["dropped"].as_u64() {
                m.insert(format!("{ns}/{name}.{dir}_dropped"), n);
            }
        }
    }
}

/// The counters that moved from `before` to `after`, by how much (one
/// that came since counts from zero).
fn moved(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, &v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Machine-wide (softirq, busy, total) clock ticks (the "cpu" line of
/// /proc/stat).
fn machine_ticks() -> Option<(u64, u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some((v[6], total - v[3] - v[4], total))
}

/// iperf3 from the generator's namespace (client, pinned to `core`) to a
/// server in the sink's namespace at `server_ip` (pinned to
/// `server_core`), `streams` in parallel; the CPU of `pids` and of the
/// machine over the client's run, and the interfaces' drops.
pub fn iperf3(
    server_ip: &str,
    streams: u32,
    secs: u64,
    [core, server_core]: [Option<usize>; 2],
    pids: &[u32],
) -> Result<Tcp, BenchError> {
    let mut server: Vec<String> = ["netns", "exec", SINK_NS].map(String::from).to_vec();
    if let Some(c) = server_core {
        server.extend(["taskset".into(), "-c".into(), c.to_string()]);
    }
    server.extend(["iperf3", "-s", "-1", "-B", server_ip].map(String::from));
    let mut server = Command::new("ip")
        .args(&server)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            BenchError::Traffic(format!("starting iperf3 -s (is iperf3 installed?): {e}"))
        })?;
    std::thread::sleep(Duration::from_millis(300));
    let secs = secs.max(1);
    let mut args: Vec<String> = ["netns", "exec", GEN_NS, "timeout", "-k", "5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // iperf3 ends its run itself; the timeout is for a path that went
    // black in the middle of one.
    args.push((secs + 20).to_string());
    if let Some(c) = core {
        args.extend(["taskset".into(), "-c".into(), c.to_string()]);
    }
    let (streams_s, secs_s) = (streams.to_string(), secs.to_string());
    args.extend(
        [
            "iperf3",
            "-J",
            "--connect-timeout",
            "3000",
            "-c",
            server_ip,
            "-t",
            &secs_s,
            "-P",
            &streams_s,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    // Outside the CPU window: these run `ip` a few times.
    let drops0 = link_drops();
    let cpu0: Option<f64> = pids.iter().map(|&p| super::traffic::cpu_seconds(p)).sum();
    let ticks0 = machine_ticks();
    let t0 = Instant::now();
    let out = Command::new("ip").args(&args).output();
    let seconds = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu1: Option<f64> = pids.iter().map(|&p| super::traffic::cpu_seconds(p)).sum();
    let ticks1 = machine_ticks();
    let link_drops = moved(&drops0, &link_drops());
    let _ = server.kill();
    let _ = server.wait();
    let out = out.map_err(|e| BenchError::Traffic(format!("running iperf3 -c: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        BenchError::Traffic(format!(
            "iperf3 -c {server_ip} (exit {}): no JSON result: {e}",
            out.status
        ))
    })?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| {
            BenchError::Traffic(format!(
                "iperf3 to {server_ip} gave no result: {}",
                v["error"].as_str().unwrap_or("no error message")
            ))
        })?;
    let gbit = bps / 1e9;
    let hz = shunt_switch::port::sys::clock_ticks().max(1) as f64;
    let switch_cpu = if pids.is_empty() {
        None
    } else {
        cpu0.zip(cpu1).map(|(a, b)| (b - a) / seconds)
    };
    let per_gbit = |c: Option<f64>| c.filter(|_| gbit > 0.0).map(|c| c / gbit);
    let machine = ticks0.zip(ticks1).map(|((s0, b0, _), (s1, b1, _))| {
        (
            s1.saturating_sub(s0) as f64 / hz / seconds,
            b1.saturating_sub(b0) as f64 / hz / seconds,
        )
    });
    let softirq_cpu = machine.map(|m| m.0);
    Ok(Tcp {
        path: String::new(),
        gbit_per_s: gbit,
        ip: 4,
        streams,
        round: 1,
        retransmits: v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        seconds,
        switch_cpu,
        switch_cpu_per_gbit: per_gbit(switch_cpu),
        softirq_cpu,
        softirq_cpu_per_gbit: per_gbit(softirq_cpu),
        busy_cpu: machine.map(|m| m.1),
        load_1min: super::load_1min(),
        link_drops_total: link_drops.values().sum(),
        link_drops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(path: &str, streams: u32, round: u32, gbit: f64) -> Tcp {
        Tcp {
            path: path.into(),
            gbit_per_s: gbit,
            ip: 4,
            streams,
            round,
            retransmits: u64::from(round),
            seconds: 5.0,
            switch_cpu: path.starts_with("shunt").then_some(1.0),
            switch_cpu_per_gbit: path.starts_with("shunt").then_some(1.0 / gbit),
            softirq_cpu: Some(0.5),
            softirq_cpu_per_gbit: Some(0.5 / gbit),
            busy_cpu: Some(1.8),
            load_1min: 2.0,
            link_drops: BTreeMap::from([("shb-gen/shb-xg.tx_dropped".into(), u64::from(round))]),
            link_drops_total: u64::from(round),
        }
    }

    #[test]
    fn spread() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).expect("three values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).expect("four values");
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        let s = Spread::of(&[f64::NAN, 5.0]).expect("one finite value");
        assert_eq!(s.median, 5.0);
    }

    /// Medians per path and streams, and ratios both of the medians and
    /// per round (shunt's run n over the bridge's run n).
    #[test]
    fn summary_and_ratios() {
        let runs = vec![
            run("linux-bridge", 1, 1, 10.0),
            run("shunt", 1, 1, 5.0),
            run("linux-bridge", 4, 1, 20.0),
            run("shunt", 4, 1, 20.0),
            run("linux-bridge", 1, 2, 20.0),
            run("shunt", 1, 2, 6.0),
            run("linux-bridge", 4, 2, 20.0),
            run("shunt", 4, 2, 30.0),
            run("linux-bridge", 1, 3, 12.0),
            run("shunt", 1, 3, 12.0),
            run("linux-bridge", 4, 3, 10.0),
            run("shunt", 4, 3, 10.0),
        ];
        let sums = summarize(&runs);
        let names: Vec<(&str, u32)> = sums.iter().map(|s| (s.path.as_str(), s.streams)).collect();
        assert_eq!(
            names,
            [
                ("linux-bridge", 1),
                ("shunt", 1),
                ("linux-bridge", 4),
                ("shunt", 4)
            ]
        );
        assert_eq!(sums[0].runs, 3);
        assert_eq!(sums[0].gbit_per_s.median, 12.0);
        assert_eq!(sums[1].gbit_per_s.median, 6.0);
        assert_eq!(sums[1].retransmits.median, 2.0);
        assert!(sums[0].switch_cpu_per_gbit.is_none());
        assert!(sums[1].switch_cpu_per_gbit.is_some());
        let r = ratios(&runs, &sums);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].ratio, "shunt/linux-bridge");
        assert_eq!(r[0].streams, 1);
        assert_eq!(r[0].of_medians, 0.5);
        // Per round: 0.5, 0.3, 1.0.
        assert_eq!((r[0].paired.min, r[0].paired.max), (0.3, 1.0));
        assert_eq!(r[0].paired.median, 0.5);
        assert_eq!(r[1].of_medians, 1.0);
    }

    /// `ip -s -j link`: every interface of a bench namespace but `lo`;
    /// in the bench's own namespace only the `shb-*` ones; deltas only
    /// of what moved.
    #[test]
    fn link_drops_from_ip() {
        let link = |name: &str, rx: u64, tx: u64| {
            format!(
                r#"{{"ifindex":2,"ifname":"{name}","mtu":1500,"stats64":{{"rx":{{"bytes":1,"packets":1,"errors":0,"dropped":{rx}}},"tx":{{"bytes":1,"packets":1,"errors":0,"dropped":{tx}}}}}}}"#
            )
        };
        let json = format!(
            "[{},{},{}]",
            link("lo", 5, 5),
            link("eth0", 9, 9),
            link("shb-xgp", 3, 0)
        );
        let mut before = BTreeMap::new();
        link_drops_of("-", json.as_bytes(), &mut before);
        assert_eq!(
            before,
            BTreeMap::from([
                ("-/shb-xgp.rx_dropped".to_string(), 3),
                ("-/shb-xgp.tx_dropped".to_string(), 0),
            ])
        );
        let mut gen = BTreeMap::new();
        link_drops_of(GEN_NS, json.as_bytes(), &mut gen);
        assert_eq!(gen.len(), 4, "eth0 and shb-xgp, rx and tx: {gen:?}");
        link_drops_of(GEN_NS, b"not json", &mut gen);
        assert_eq!(gen.len(), 4);
        let mut after = before.clone();
        after.insert("-/shb-xgp.rx_dropped".into(), 10);
        after.insert("-/shb-new.tx_dropped".into(), 2);
        assert_eq!(
            moved(&before, &after),
            BTreeMap::from([
                ("-/shb-new.tx_dropped".to_string(), 2),
                ("-/shb-xgp.rx_dropped".to_string(), 7),
            ])
        );
    }

    #[test]
    fn vxlan_ratio_and_text() {
        let runs = vec![run("linux-vxlan", 1, 1, 8.0), run("shunt-vxlan", 1, 1, 4.0)];
        let sums = summarize(&runs);
        let r = ratios(&runs, &sums);
        assert_eq!(r[0].ratio, "shunt-vxlan/linux-vxlan");
        let mut o = String::new();
        let before = BTreeMap::from([("gen.rx_gso".to_string(), 5), ("gen.drop.runt".into(), 1)]);
        let after = BTreeMap::from([
            ("gen.rx_gso".to_string(), 12),
            ("gen.drop.runt".into(), 1),
            ("sink.tx_gso_whole".into(), 7),
        ]);
        let c = counters_delta("shb", &before, &after);
        text(&mut o, 5, &sums, &r, &[c]);
        let want = [
            "\n",
            "TCP (iperf3 -t 5, 1 run(s) each, interleaved; median [min-max])\n",
            "  path           IP streams  Gbit/s  [min-max]    retrans   drops switch CPU/Gbit/s softirq/Gbit/s\n",
            "  linux-vxlan     4       1    8.00  [8.00-8.00]        1       1               n/a          0.062\n",
            "  shunt-vxlan     4       1    4.00  [4.00-4.00]        1       1             0.250          0.125\n",
            "  shunt-vxlan/linux-vxlan (IPv4, 1 stream(s)): 0.50x (per round 0.50-0.50x)\n",
            "  CPU in cores per Gbit/s: the switch's processes (utime+stime), the whole machine's softirq; drops: the bench's interfaces' rx/tx dropped (ip -s link)\n",
            "  shb counted during its TCP runs: gen.rx_gso 7, sink.tx_gso_whole 7\n",
        ]
        .concat();
        assert_eq!(o, want);
    }
}
