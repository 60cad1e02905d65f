//! `shunt capture`: asks the switch for a capture and hands it the file
//! (or standard output, `-w -`) to write the pcapng to, over the control
//! socket (SCM_RIGHTS): the switch writes every packet itself, so the
//! command does nothing per packet and `| tcpdump -r -` reads the stream
//! live. It waits for the end and says the counts. Ctrl-C, `--count` or
//! `--seconds` end it with a whole file.

use shunt_switch::control::{self, proto::CaptureEvent, proto::CaptureSpec, proto::Request};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// The frames `shunt capture` and `shunt trace` select: the same flags,
/// the same request fields, the same code in the switch (capture::filter).
#[derive(clap::Args, Clone, Default)]
pub struct FilterArgs {
    /// Ports, hosts (all their ports) or networks (all their ports); none: every port.
    pub targets: Vec<String>,
    /// Frames as received (in), as sent (out), or both (default: both).
    #[arg(long)]
    pub direction: Option<String>,
    /// Only dropped frames.
    #[arg(long)]
    pub drops: bool,
    /// Only frames from or to this MAC.
    #[arg(long)]
    pub mac: Option<String>,
    /// Only frames that came in with this VLAN, or copies tagged with it.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// Only this ethertype: arp, ipv4, ipv6, vlan or a number (0x88cc).
    #[arg(long)]
    pub ethertype: Option<String>,
    /// Only frames dropped for this reason (vlan_not_allowed, same_port, ...).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only frames with this decision: flooded, unicast, dropped, local.
    #[arg(long)]
    pub decision: Option<String>,
}

impl FilterArgs {
    /// The request's selection (count, seconds and snap length left unset).
    pub fn spec(&self) -> CaptureSpec {
        CaptureSpec {
            targets: self.targets.clone(),
            direction: self.direction.clone(),
            drops: self.drops,
            mac: self.mac.clone(),
            vlan: self.vlan,
            ethertype: self.ethertype.clone(),
            reason: self.reason.clone(),
            decision: self.decision.clone(),
            ..CaptureSpec::default()
        }
    }
}

#[derive(clap::Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Switch name (default: "shunt", or the only switch running).
    #[arg(long)]
    name: Option<String>,
    /// Stop after N packets.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Where the pcapng goes: a file, or - for standard output.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: String,
    /// Bytes kept of each frame (at most 1600; the whole length is recorded).
    #[arg(long)]
    snaplen: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureCliError {
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot hand {path} to the switch: {source}")]
    Pass {
        path: String,
        source: std::io::Error,
    },
    #[error("the capture to {path} ended early: {error}")]
    Failed { path: String, error: String },
    #[error("the switch said {0:?} before the capture started")]
    NoStart(String),
    #[error("cannot take Ctrl-C: {0}")]
    Signal(nix::Error),
}

pub fn run(a: CaptureArgs) -> Result<(), CaptureCliError> {
    let name = control::pick_name(a.name.clone());
    // Ctrl-C is taken by a thread of its own (signals blocked here, before
    // any thread starts, stay blocked in all of them): it closes our end
    // of the connection for writing; the switch sees it, ends the file
    // whole and says the counts, which the loop below prints. A second
    // Ctrl-C leaves at once.
    let mut sigs = nix::sys::signal::SigSet::empty();
    sigs.add(nix::sys::signal::Signal::SIGINT);
    sigs.add(nix::sys::signal::Signal::SIGTERM);
    sigs.thread_block().map_err(CaptureCliError::Signal)?;
    let spec = CaptureSpec {
        count: a.count,
        seconds: a.seconds,
        snaplen: a.snaplen,
        fd: true,
        ..a.filter.spec()
    };
    let (mut r, sock) = control::open(&name, &Request::Capture(spec))?;
    let interfaces = match serde_json::from_value(control::read_value(&name, &mut r)?)
        .map_err(control::ControlError::from)?
    {
        CaptureEvent::Start { interfaces, .. } => interfaces,
        other => return Err(CaptureCliError::NoStart(format!("{other:?}"))),
    };
    let path = if a.write == "-" {
        "standard output".to_string()
    } else {
        a.write.clone()
    };
    let pass = |r: std::io::Result<()>| {
        r.map_err(|source| CaptureCliError::Pass {
            path: path.clone(),
            source,
        })
    };
    if a.write == "-" {
        pass(shunt_switch::port::sys::send_fd(
            &sock,
            std::io::stdout().as_fd(),
        ))?;
    } else {
        // Created by us, with our rights; the switch writes to it through
        // the descriptor, and our copy can go.
        let f = std::fs::File::create(&a.write).map_err(|source| CaptureCliError::Write {
            path: path.clone(),
            source,
        })?;
        pass(shunt_switch::port::sys::send_fd(&sock, f.as_fd()))?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let sock = sock.try_clone().map_err(|source| CaptureCliError::Write {
            path: control::socket_path(&name).display().to_string(),
            source,
        })?;
        let interrupted = Arc::clone(&interrupted);
        std::thread::spawn(move || {
            if sigs.wait().is_ok() {
                interrupted.store(true, Relaxed);
                let _ = sock.shutdown(Shutdown::Write);
            }
            if sigs.wait().is_ok() {
                std::process::exit(130);
            }
        });
    }
    let what = if a.filter.targets.is_empty() {
        "every port".to_string()
    } else {
        a.filter.targets.join(", ")
    };
    eprintln!(
        "capturing {what} ({} interfaces) to {path}; stop with Ctrl-C",
        interfaces.len()
    );
    let (packets, lost, error) = loop {
        let v = match control::read_value(&name, &mut r) {
            Ok(v) => v,
            Err(e) => {
                // The switch went away without an end (it stopped): what
                // it wrote is in the file, its counts are not known.
                if interrupted.load(Relaxed) {
                    return Ok(());
                }
                return Err(e.into());
            }
        };
        match serde_json::from_value(v).map_err(control::ControlError::from)? {
            CaptureEvent::End {
                packets,
                lost,
                error,
            } => break (packets, lost, error),
            CaptureEvent::Start { .. }
            | CaptureEvent::Progress { .. }
            | CaptureEvent::Packet { .. } => {}
        }
    };
    let _ = sock.shutdown(Shutdown::Both);
    let plural = |n: u64| if n == 1 { "packet" } else { "packets" };
    eprintln!("{packets} {} captured", plural(packets));
    if lost > 0 {
        eprintln!(
            "{lost} {} not captured: the reader was too slow",
            plural(lost)
        );
    }
    match error {
        Some(error) => Err(CaptureCliError::Failed { path, error }),
        None => Ok(()),
    }
}
