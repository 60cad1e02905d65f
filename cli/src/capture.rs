//! `shunt capture`: asks the switch for a capture and writes what it
//! streams as pcapng, to a file or to standard output (`-w -`), flushed as
//! packets come so that `| tcpdump -r -` reads it live. Ctrl-C, `--count`
//! or `--seconds` end it with a whole file.

use shunt_switch::capture::{from_hex, PcapngOut};
use shunt_switch::control::{self, proto::CaptureEvent, proto::CaptureSpec, proto::Request};
use std::io::{BufWriter, Write};
use std::net::Shutdown;

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
    #[error("cannot write pcapng to {path}: {source}")]
    Pcap {
        path: String,
        source: pcap_file::PcapError,
    },
    #[error("the switch sent a packet that is not hex")]
    BadPacket,
    #[error("the switch said {0:?} before the capture started")]
    NoStart(String),
    #[error("cannot take Ctrl-C: {0}")]
    Signal(nix::Error),
}

/// Whether a write failed because the reader of standard output went
/// away (`| head`, tcpdump -c): then the capture just ends.
fn reader_gone(e: &pcap_file::PcapError) -> bool {
    matches!(e, pcap_file::PcapError::IoError(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
}

pub fn run(a: CaptureArgs) -> Result<(), CaptureCliError> {
    let name = control::pick_name(a.name.clone());
    // Ctrl-C is taken by a thread of its own (signals blocked here, before
    // any thread starts, stay blocked in all of them): it closes the
    // connection, the loop below sees the end and closes the file whole.
    let mut sigs = nix::sys::signal::SigSet::empty();
    sigs.add(nix::sys::signal::Signal::SIGINT);
    sigs.add(nix::sys::signal::Signal::SIGTERM);
    sigs.thread_block().map_err(CaptureCliError::Signal)?;
    let spec = CaptureSpec {
        count: a.count,
        seconds: a.seconds,
        snaplen: a.snaplen,
        ..a.filter.spec()
    };
    let (mut r, sock) = control::open(&name, &Request::Capture(spec))?;
    let (interfaces, snaplen) = match serde_json::from_value(control::read_value(&name, &mut r)?)
        .map_err(control::ControlError::from)?
    {
        CaptureEvent::Start {
            interfaces,
            snaplen,
        } => (interfaces, snaplen),
        other => return Err(CaptureCliError::NoStart(format!("{other:?}"))),
    };
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let sock = sock.try_clone().map_err(|source| CaptureCliError::Write {
            path: control::socket_path(&name).display().to_string(),
            source,
        })?;
        let interrupted = std::sync::Arc::clone(&interrupted);
        std::thread::spawn(move || {
            if sigs.wait().is_ok() {
                interrupted.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = sock.shutdown(Shutdown::Both);
            }
        });
    }
    let path = if a.write == "-" {
        "standard output".to_string()
    } else {
        a.write.clone()
    };
    let sink: Box<dyn Write> = if a.write == "-" {
        Box::new(std::io::stdout())
    } else {
        let f = std::fs::File::create(&a.write).map_err(|source| CaptureCliError::Write {
            path: path.clone(),
            source,
        })?;
        Box::new(f)
    };
    let pcap_err = |source| CaptureCliError::Pcap {
        path: path.clone(),
        source,
    };
    let mut out = PcapngOut::new(BufWriter::new(sink), &interfaces, snaplen).map_err(pcap_err)?;
    out.get_mut()
        .flush()
        .map_err(|e| pcap_err(pcap_file::PcapError::IoError(e)))?;
    let what = if a.filter.targets.is_empty() {
        "every port".to_string()
    } else {
        a.filter.targets.join(", ")
    };
    eprintln!(
        "capturing {what} ({} interfaces) to {path}; stop with Ctrl-C",
        interfaces.len()
    );
    let (mut packets, mut lost) = (0u64, 0u64);
    loop {
        let v = match control::read_value(&name, &mut r) {
            Ok(v) => v,
            // Ctrl-C closed the connection.
            Err(_) if interrupted.load(std::sync::atomic::Ordering::Relaxed) => break,
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_value(v).map_err(control::ControlError::from)? {
            CaptureEvent::Packet {
                interface,
                ts_ns,
                dir,
                len,
                data,
                comment,
            } => {
                let bytes = from_hex(&data).ok_or(CaptureCliError::BadPacket)?;
                let w = out.packet(&interface, ts_ns, dir == "in", len, &bytes, &comment);
                match w {
                    Ok(()) => packets += 1,
                    Err(e) if reader_gone(&e) => return Ok(()),
                    Err(e) => return Err(pcap_err(e)),
                }
            }
            CaptureEvent::Progress { lost: l, .. } => lost = l,
            CaptureEvent::End { lost: l, .. } => {
                lost = l;
                break;
            }
            CaptureEvent::Start { .. } => {}
        }
        // Live: what has come goes on before waiting for more.
        if r.buffer().is_empty() {
            match out.get_mut().flush() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(pcap_err(pcap_file::PcapError::IoError(e))),
            }
        }
    }
    match out.get_mut().flush() {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(pcap_err(pcap_file::PcapError::IoError(e))),
    }
    let plural = |n: u64| if n == 1 { "packet" } else { "packets" };
    eprintln!("{packets} {} captured", plural(packets));
    if lost > 0 {
        eprintln!(
            "{lost} {} not captured: the reader was too slow",
            plural(lost)
        );
    }
    Ok(())
}
