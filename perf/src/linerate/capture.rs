//! `shunt bench --capture none,one,all`: a trial with the switch's own
//! capture running (issue 14, "Cost"). The capture is `shunt capture` run
//! as a child on the switch's cores, writing pcapng to /dev/null, as a user
//! would run it; what it says at the end (packets captured, packets not
//! captured because the reader was too slow) is the count.

use super::BenchError;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a trial captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// No capture (the baseline).
    None,
    /// The generator's port (`shunt capture gen`): one record per frame.
    One,
    /// Every port (`shunt capture`): the frame in and its copy out, two
    /// records per frame.
    All,
}

impl CaptureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::None => "none",
            CaptureMode::One => "one",
            CaptureMode::All => "all",
        }
    }

    /// The targets of `shunt capture` (none: every port).
    fn targets(self) -> &'static [&'static str] {
        match self {
            CaptureMode::One => &["gen"],
            _ => &[],
        }
    }
}

/// What one capture counted, and what its command cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CaptureCount {
    /// Packets written to the file ("N packets captured").
    pub captured: u64,
    /// Records the switch dropped because the reader was too slow ("N
    /// packets not captured").
    pub lost: u64,
    /// CPU of the `shunt capture` process over its whole run, in seconds.
    pub reader_cpu_seconds: Option<f64>,
}

/// A running `shunt capture` child.
pub struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Starts `shunt capture` of `mode` on switch `name` for `seconds`, pinned
/// to `cores`; returns once the capture has started (None for
/// [`CaptureMode::None`]).
pub fn start(
    name: &str,
    mode: CaptureMode,
    cores: &[usize],
    seconds: f64,
) -> Result<Option<Running>, BenchError> {
    if mode == CaptureMode::None {
        return Ok(None);
    }
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Setup(format!("finding the shunt binary: {e}")))?;
    let cpus = cores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let secs = format!("{seconds:.3}");
    let mut child = Command::new("taskset")
        .args(["-c", &cpus])
        .arg(&exe)
        .args(["capture", "--name", name])
        .args(mode.targets())
        .args(["--seconds", &secs, "-w", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| BenchError::Setup(format!("starting `shunt capture`: {e}")))?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let reader = child.stderr.take().map(|err| {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("capturing") {
                    let _ = tx.send(());
                }
                if let Ok(mut l) = log.lock() {
                    l.push(line);
                }
            }
        })
    });
    let mut run = Running { child, log, reader };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
            return Ok(Some(run));
        }
        let exited = run.child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline || super::interrupted() {
            let _ = run.child.kill();
            let _ = run.child.wait();
            if let Some(r) = run.reader.take() {
                let _ = r.join();
            }
            return Err(BenchError::Switch(format!(
                "`shunt capture` did not start{}:\n{}",
                exited.map(|s| format!(" ({s})")).unwrap_or_default(),
                run.said()
            )));
        }
    }
}

impl Running {
    fn said(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits for the capture to end by itself (its `--seconds`), then
    /// reads what it counted.
    pub fn finish(mut self) -> Result<CaptureCount, BenchError> {
        let pid = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The process's CPU is read while it is a zombie: exited, its
        // times final, not yet reaped.
        let mut cpu = None;
        while let Some((state, secs)) = super::traffic::proc_stat(pid) {
            if state == 'Z' {
                cpu = Some(secs);
                break;
            }
            if Instant::now() > deadline || super::interrupted() {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let said = self.said();
        if !status.is_ok_and(|s| s.success()) {
            return Err(BenchError::Switch(format!(
                "`shunt capture` failed:\n{said}"
            )));
        }
        let mut c = parse_counts(&said)
            .ok_or_else(|| BenchError::Switch(format!("`shunt capture` gave no count:\n{said}")))?;
        c.reader_cpu_seconds = cpu;
        Ok(c)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The counts `shunt capture` prints at its end: "N packets captured" and,
/// when some were lost, "M packets not captured: the reader was too slow".
fn parse_counts(said: &str) -> Option<CaptureCount> {
    let count = |suffix: &str| {
        said.lines().find_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            let rest = rest
                .strip_prefix("packets ")
                .or(rest.strip_prefix("packet "))?;
            (rest == suffix || rest.starts_with(&format!("{suffix}:")))
                .then(|| n.parse::<u64>().ok())
                .flatten()
        })
    };
    Some(CaptureCount {
        captured: count("captured")?,
        lost: count("not captured").unwrap_or(0),
        reader_cpu_seconds: None,
    })
}

/// One trial with a capture running (or none, the baseline).
#[derive(Debug, Clone, Serialize)]
pub struct CaptureTrial {
    pub size: usize,
    /// The switch's path ("shunt", or "shunt-busy" with several `--poll`).
    pub path: String,
    pub mode: CaptureMode,
    pub round: u32,
    pub max: super::traffic::Trial,
    /// None for mode "none".
    pub count: Option<CaptureCount>,
    /// The switch's CPU per forwarded frame over the sending time, in ns.
    pub switch_ns_per_frame: Option<f64>,
    /// The switch's extra CPU per captured packet against the "none" trial
    /// of the same round, in ns: (CPU per forwarded frame here - CPU per
    /// forwarded frame without capture) x forwarded frames here / packets
    /// captured. None without a "none" trial or a captured packet.
    pub ns_per_captured: Option<f64>,
    /// The same extra CPU over every record the capture took, captured or
    /// lost (the worker describes both; only the captured ones are copied
    /// out and written).
    pub ns_per_record: Option<f64>,
    pub load_1min: f64,
}

/// CPU nanoseconds of the switch per forwarded frame in `t`.
pub fn ns_per_frame(t: &super::traffic::Trial) -> Option<f64> {
    let cpu = t.switch_cpu? * t.seconds;
    (t.received > 0).then(|| cpu * 1e9 / t.received as f64)
}

/// Fills in the extra cost of each capture trial against the baseline of
/// its round, size and path.
pub fn costs(trials: &mut [CaptureTrial]) {
    let base: Vec<(usize, String, u32, f64)> = trials
        .iter()
        .filter(|t| t.mode == CaptureMode::None)
        .filter_map(|t| Some((t.size, t.path.clone(), t.round, t.switch_ns_per_frame?)))
        .collect();
    for t in trials.iter_mut() {
        let (Some(count), Some(here)) = (t.count, t.switch_ns_per_frame) else {
            continue;
        };
        let Some(&(.., b)) = base
            .iter()
            .find(|(s, p, r, _)| *s == t.size && *p == t.path && *r == t.round)
        else {
            continue;
        };
        let extra = (here - b) * t.max.received as f64;
        let per = |n: u64| (n > 0).then(|| extra / n as f64);
        t.ns_per_captured = per(count.captured);
        t.ns_per_record = per(count.captured + count.lost);
    }
}

/// Per size, path and mode: the median of its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureSummary {
    pub size: usize,
    pub path: String,
    pub mode: CaptureMode,
    pub rounds: usize,
    pub fps: Option<super::Spread>,
    pub captured: u64,
    pub lost: u64,
    pub ns_per_captured: Option<super::Spread>,
    /// Median forwarding rate over the median of the "none" trials.
    pub fps_vs_none: Option<f64>,
}

pub fn summarize(trials: &[CaptureTrial]) -> Vec<CaptureSummary> {
    let mut keys: Vec<(usize, String, CaptureMode)> = Vec::new();
    for t in trials {
        let k = (t.size, t.path.clone(), t.mode);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut out: Vec<CaptureSummary> = keys
        .into_iter()
        .map(|(size, path, mode)| {
            let of: Vec<&CaptureTrial> = trials
                .iter()
                .filter(|t| t.size == size && t.path == path && t.mode == mode)
                .collect();
            let costs: Vec<f64> = of.iter().filter_map(|t| t.ns_per_captured).collect();
            CaptureSummary {
                size,
                rounds: of.len(),
                fps: super::Spread::of(&of.iter().map(|t| t.max.fps).collect::<Vec<_>>()),
                captured: of.iter().filter_map(|t| t.count).map(|c| c.captured).sum(),
                lost: of.iter().filter_map(|t| t.count).map(|c| c.lost).sum(),
                ns_per_captured: super::Spread::of(&costs),
                fps_vs_none: None,
                path,
                mode,
            }
        })
        .collect();
    let base: Vec<(usize, String, f64)> = out
        .iter()
        .filter(|s| s.mode == CaptureMode::None)
        .filter_map(|s| Some((s.size, s.path.clone(), s.fps?.median)))
        .collect();
    for s in out.iter_mut() {
        if let Some(&(.., b)) = base.iter().find(|(z, p, _)| *z == s.size && *p == s.path) {
            s.fps_vs_none = s.fps.filter(|_| b > 0.0).map(|f| f.median / b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_what_capture_says() {
        let said = "capturing every port (2 interfaces) to /dev/null; stop with Ctrl-C\n\
                    19571 packets captured\n\
                    213651 packets not captured: the reader was too slow\n";
        let c = parse_counts(said).expect("counts");
        assert_eq!((c.captured, c.lost), (19571, 213651));
        let c = parse_counts("capturing gen\n1 packet captured\n").expect("one, none lost");
        assert_eq!((c.captured, c.lost), (1, 0));
        assert!(parse_counts("capturing gen\n").is_none());
    }

    fn trial(
        mode: CaptureMode,
        round: u32,
        received: u64,
        cpu: f64,
        captured: u64,
    ) -> CaptureTrial {
        CaptureTrial {
            size: 64,
            path: "shunt".into(),
            mode,
            round,
            max: super::super::traffic::Trial {
                sent: received,
                received,
                seconds: 1.0,
                offered_fps: received as f64,
                fps: received as f64,
                loss: 0,
                loss_ratio: 0.0,
                switch_cpu: Some(cpu),
                switch_side_busy: None,
            },
            count: (mode != CaptureMode::None).then_some(CaptureCount {
                captured,
                lost: captured,
                reader_cpu_seconds: None,
            }),
            switch_ns_per_frame: None,
            ns_per_captured: None,
            ns_per_record: None,
            load_1min: 0.0,
        }
    }

    /// 1 s of a core for 1M frames is 1,000 ns a frame; with a capture the
    /// same core forwards 800k: 1,250 ns a frame, 250 ns more for each of
    /// 800k frames over 400k packets captured: 500 ns a packet, 250 ns a
    /// record (400k lost as well).
    #[test]
    fn cost_against_the_same_round() {
        let mut t = vec![
            trial(CaptureMode::None, 1, 1_000_000, 1.0, 0),
            trial(CaptureMode::All, 1, 800_000, 1.0, 400_000),
            trial(CaptureMode::None, 2, 500_000, 1.0, 0),
        ];
        for x in t.iter_mut() {
            x.switch_ns_per_frame = ns_per_frame(&x.max);
        }
        costs(&mut t);
        assert_eq!(t[0].ns_per_captured, None);
        let c = t[1].ns_per_captured.expect("a cost");
        assert!((c - 500.0).abs() < 1e-6, "{c}");
        let r = t[1].ns_per_record.expect("a cost per record");
        assert!((r - 250.0).abs() < 1e-6, "{r}");
        let s = summarize(&t);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].rounds, 2);
        let v = s[1].fps_vs_none.expect("against none");
        assert!((v - 800_000.0 / 750_000.0).abs() < 1e-9, "{v}");
    }
}
