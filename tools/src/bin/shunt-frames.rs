//! `shunt-frames`: send crafted Ethernet frames from, or capture frames on,
//! an interface inside a network namespace. For debugging L2 behaviour.
//!
//! ```text
//! shunt-frames send --netns h1 --dev eth0 --dst ff:ff:ff:ff:ff:ff --src 02:00:00:00:00:01 --vlan 10:3 --count 5
//! shunt-frames capture --netns h2 --dev eth0 --seconds 3 --json
//! ```

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use shunt_tools::frame::{parse_vid_pcp, VlanTag, ETHERTYPE_EXPERIMENTAL};
use shunt_tools::rawport::{PACKET_BROADCAST, PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST};
use shunt_tools::{FrameBuilder, FrameSummary, MacAddr, Marker, RawPort};

#[derive(Parser)]
#[command(
    name = "shunt-frames",
    version,
    about = "Send and capture raw Ethernet frames inside a network namespace"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send crafted frames (payload: a test marker with --id and a sequence number, then zeros).
    Send {
        /// Network namespace (as in `ip netns`); omit for the current one.
        #[arg(long, default_value = "")]
        netns: String,
        /// Interface inside the namespace.
        #[arg(long, default_value = "eth0")]
        dev: String,
        #[arg(long)]
        dst: MacAddr,
        #[arg(long)]
        src: MacAddr,
        /// VID[:PCP]; repeat for stacked tags, outermost first. With two or
        /// more, the outer ones are 802.1ad (0x88a8), the innermost 802.1Q.
        #[arg(long = "vlan", value_parser = parse_vid_pcp)]
        vlans: Vec<(u16, u8)>,
        /// EtherType after the tags (hex with 0x, or decimal).
        #[arg(long, default_value = "0x88b5", value_parser = parse_u16)]
        ethertype: u16,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Total frame size in bytes (no FCS); smaller frames are padded to 60.
        #[arg(long, default_value_t = 60)]
        size: usize,
        /// Marker id put in the payload.
        #[arg(long, default_value_t = 0)]
        id: u32,
        /// Pause between frames, milliseconds.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
    /// Print the frames coming in on an interface (our own outgoing frames excluded).
    Capture {
        #[arg(long, default_value = "")]
        netns: String,
        #[arg(long, default_value = "eth0")]
        dev: String,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Stop after this many frames.
        #[arg(long)]
        count: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn parse_u16(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn pkttype_name(t: u8) -> &'static str {
    match t {
        PACKET_HOST => "host",
        PACKET_BROADCAST => "broadcast",
        PACKET_MULTICAST => "multicast",
        PACKET_OTHERHOST => "otherhost",
        _ => "other",
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Send {
            netns,
            dev,
            dst,
            src,
            vlans,
            ethertype,
            count,
            size,
            id,
            interval_ms,
        } => {
            let mut port = RawPort::open(&netns, &dev).map_err(|e| e.to_string())?;
            let n = vlans.len();
            for seq in 0..count {
                let mut b = FrameBuilder::new(dst, src).ethertype(ethertype);
                for (i, (vid, pcp)) in vlans.iter().enumerate() {
                    let tag = if i + 1 < n {
                        VlanTag::dot1ad(*vid, *pcp)
                    } else {
                        VlanTag::dot1q(*vid, *pcp)
                    };
                    b = b.tag(tag);
                }
                if ethertype == ETHERTYPE_EXPERIMENTAL {
                    b = b.marker(Marker::new(id, seq));
                }
                let frame = b.pad_to(size).build();
                port.send(&frame).map_err(|e| e.to_string())?;
                if interval_ms > 0 && seq + 1 < count {
                    std::thread::sleep(Duration::from_millis(interval_ms));
                }
            }
            eprintln!(
                "sent {count} frame(s) on {}/{dev}",
                if netns.is_empty() { "-" } else { &netns }
            );
            Ok(())
        }
        Cmd::Capture {
            netns,
            dev,
            seconds,
            count,
            json,
        } => {
            if !(seconds.is_finite() && seconds >= 0.0) {
                return Err(format!("--seconds {seconds}: want a non-negative number"));
            }
            let mut port = RawPort::open(&netns, &dev).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut seen = 0usize;
            while let Some(r) = port.recv_until(deadline).map_err(|e| e.to_string())? {
                seen += 1;
                let summary = FrameSummary::parse(&r.bytes);
                if json {
                    let v = match &summary {
                        Some(s) => serde_json::json!({
                            "src": s.src.to_string(),
                            "dst": s.dst.to_string(),
                            "tags": s.tags.iter().map(|t| serde_json::json!({
                                "tpid": format!("{:#06x}", t.tpid), "vid": t.vid, "pcp": t.pcp, "dei": t.dei,
                            })).collect::<Vec<_>>(),
                            "ethertype": format!("{:#06x}", s.ethertype),
                            "len": s.len,
                            "pkttype": pkttype_name(r.pkttype),
                            "marker": s.marker(&r.bytes).map(|m| serde_json::json!({"id": m.test_id, "seq": m.seq})),
                        }),
                        None => {
                            serde_json::json!({"len": r.bytes.len(), "runt": true, "pkttype": pkttype_name(r.pkttype)})
                        }
                    };
                    println!("{v}");
                } else {
                    match &summary {
                        Some(s) => {
                            let marker = s
                                .marker(&r.bytes)
                                .map(|m| format!(" marker {}/{}", m.test_id, m.seq))
                                .unwrap_or_default();
                            println!("{s} ({}){marker}", pkttype_name(r.pkttype));
                        }
                        None => println!("runt len {}", r.bytes.len()),
                    }
                }
                if count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            if !json {
                eprintln!("{seen} frame(s)");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shunt-frames: {e}");
            ExitCode::FAILURE
        }
    }
}
