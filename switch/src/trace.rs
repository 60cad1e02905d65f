//! The frame trace (`shunt trace`): while a trace is active, the pipeline
//! records each traced frame's decisions into a bounded lock-free queue
//! (fixed-size records, no allocation); the control plane turns them into
//! plain words. With no trace active the cost is one check per batch.

use crate::counters::{DropReason, FloodCause};
use crate::pipeline::{learn::Learned, Batch, Context, TxQueues, Verdict, NO_NET};
use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use shunt_parsers::{EtherType, EthernetFrame, MacAddr, VlanTag};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

pub const MAX_OUT: usize = 32;
// 1024 ports and the switch's stack's pseudo port (1024).
const PORT_WORDS: usize = 17;

#[derive(Debug, Clone, Copy)]
pub struct TraceRecord {
    pub ingress: u16,
    pub net: u16,
    pub vid_in: Option<u16>,
    pub src: MacAddr,
    pub dst: MacAddr,
    pub ethertype: u16,
    pub len: u16,
    pub learned: Learned,
    pub verdict: Verdict,
    pub out: [(u16, u16); MAX_OUT],
    pub n_out: u16,
    /// The network's VXLAN VNI (0: none).
    pub vni: u32,
}

pub struct Tracer {
    active: AtomicBool,
    ports: [AtomicU64; PORT_WORDS],
    queue: ArrayQueue<TraceRecord>,
    pub lost: AtomicU64,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracer {
    pub fn new() -> Tracer {
        Tracer {
            active: AtomicBool::new(false),
            ports: Default::default(),
            queue: ArrayQueue::new(4096),
            lost: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Starts tracing frames that enter on `ports` (all ports if empty).
    pub fn start(&self, ports: &[u16]) {
        for w in &self.ports {
            w.store(if ports.is_empty() { u64::MAX } else { 0 }, Relaxed);
        }
        for &p in ports {
            if let Some(w) = self.ports.get(p as usize / 64) {
                w.fetch_or(1 << (p % 64), Relaxed);
            }
        }
        while self.queue.pop().is_some() {}
        self.active.store(true, Relaxed);
    }

    pub fn stop(&self) {
        self.active.store(false, Relaxed);
    }

    pub fn pop(&self) -> Option<TraceRecord> {
        self.queue.pop()
    }

    fn wants(&self, port: u16) -> bool {
        self.ports
            .get(port as usize / 64)
            .is_some_and(|w| w.load(Relaxed) & (1 << (port % 64)) != 0)
    }

    /// Called once per batch while active.
    pub fn record_batch(&self, ctx: &Context, ingress: u16, batch: &Batch, tx: &TxQueues) {
        if !self.wants(ingress) {
            return;
        }
        for i in 0..batch.count {
            let f = batch.frame(i);
            let m = &batch.meta[i];
            let mut r = TraceRecord {
                // A decapsulated frame came in from its remote VTEP.
                ingress: crate::pipeline::vxlan::from(ingress, m),
                net: m.net,
                vid_in: None,
                src: MacAddr::ZERO,
                dst: MacAddr::ZERO,
                ethertype: 0,
                len: m.len,
                learned: m.learned,
                verdict: m.verdict,
                out: [(0, 0); MAX_OUT],
                n_out: 0,
                vni: ctx
                    .plan
                    .nets
                    .get(m.net as usize)
                    .and_then(|n| n.vni)
                    .unwrap_or(0),
            };
            if let Ok(eth) = EthernetFrame::new_checked(f) {
                r.dst = eth.dst_addr();
                r.src = eth.src_addr();
                r.ethertype = eth.ethertype().to_u16();
                // The 802.1Q tag classify reads; an 802.1ad one is data.
                if eth.ethertype() == EtherType::Vlan {
                    if let Ok(tag) = VlanTag::new_checked(eth.payload()) {
                        r.vid_in = Some(tag.vid());
                        r.ethertype = tag.ethertype().to_u16();
                    }
                }
            }
            for &p in &tx.dirty {
                for e in &tx.queues[p as usize] {
                    if e.frame as usize == i && (r.n_out as usize) < MAX_OUT {
                        r.out[r.n_out as usize] = (p, e.vid);
                        r.n_out += 1;
                    }
                }
            }
            if self.queue.push(r).is_err() {
                self.lost.fetch_add(1, Relaxed);
            }
        }
    }
}

/// A trace record in words and as JSON (`shunt trace --json`).
#[derive(Debug, Serialize)]
pub struct TraceLine {
    pub ingress: String,
    pub network: Option<String>,
    pub vlan_in: Option<u16>,
    pub src: String,
    pub dst: String,
    pub ethertype: String,
    pub len: u16,
    pub learning: String,
    pub action: String,
    pub reason: Option<String>,
    pub out: Vec<TraceOut>,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct TraceOut {
    pub port: String,
    pub vlan: Option<u16>,
}

pub fn describe(
    r: &TraceRecord,
    port_name: &dyn Fn(u16) -> String,
    net_name: &dyn Fn(u16) -> String,
) -> TraceLine {
    let mac = |m: &MacAddr| m.to_string();
    let network = (r.net != NO_NET).then(|| net_name(r.net));
    let ingress = port_name(r.ingress);
    let learning = match r.learned {
        Learned::Nothing => "not learned".to_string(),
        Learned::New => format!("source {} learned on {ingress}", mac(&r.src)),
        Learned::Refreshed => format!("source {} already known on {ingress}", mac(&r.src)),
        Learned::Moved { from } => format!(
            "source {} moved from {} to {ingress}",
            mac(&r.src),
            port_name(from)
        ),
        Learned::Static => format!("source {} is a static entry: not moved", mac(&r.src)),
        Learned::Full => format!("source {} not learned: FDB full", mac(&r.src)),
        Learned::Disabled => "learning is off on this port".to_string(),
    };
    let out: Vec<TraceOut> = r.out[..r.n_out as usize]
        .iter()
        .map(|&(p, vid)| TraceOut {
            port: port_name(p),
            vlan: (vid != 0).then_some(vid),
        })
        .collect();
    let outs = out
        .iter()
        .map(|o| match o.vlan {
            Some(v) => format!("{} (tagged {v})", o.port),
            None => o.port.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let net_s = network.clone().unwrap_or_else(|| "-".into());
    let (action, reason, decision) = match r.verdict {
        Verdict::Unicast(p) if crate::pipeline::vxlan::is_vtep(p) => (
            "forward",
            None,
            format!(
                "destination {} learned behind VTEP {}: encapsulated, VNI {}",
                mac(&r.dst),
                port_name(p).trim_start_matches("vxlan:"),
                r.vni
            ),
        ),
        Verdict::Unicast(_) => (
            "forward",
            None,
            format!(
                "destination {} learned in {net_s}: sent to {outs}",
                mac(&r.dst)
            ),
        ),
        Verdict::Flood(cause) => {
            let why = match cause {
                FloodCause::Broadcast => "broadcast".to_string(),
                FloodCause::Multicast => "multicast".to_string(),
                FloodCause::UnknownUnicast => format!("destination {} unknown", mac(&r.dst)),
            };
            (
                "flood",
                Some(cause.name().to_string()),
                format!("{why} in {net_s}: flooded to {outs}"),
            )
        }
        Verdict::Drop(d) => (
            "drop",
            Some(d.name().to_string()),
            format!("dropped ({}): {}", d.name(), drop_words(d)),
        ),
        Verdict::Macvlan { cause, .. } => (
            "flood",
            Some(cause.name().to_string()),
            format!(
                "{} in macvlan network {net_s}: sent to {outs}",
                cause.name()
            ),
        ),
        Verdict::Local => (
            "local",
            None,
            "for the switch itself: handed to its own stack".to_string(),
        ),
        Verdict::Pending => ("none", None, "no decision".to_string()),
    };
    let vlan_s = match r.vid_in {
        Some(v) => format!(" tagged {v}"),
        None => " untagged".to_string(),
    };
    let vlan_s = if crate::pipeline::vxlan::is_vtep(r.ingress) {
        format!(" decapsulated, VNI {}", r.vni)
    } else {
        vlan_s
    };
    let text = format!(
        "{ingress}: {} > {} type 0x{:04x} len {}{vlan_s}, network {net_s}; {learning}; {decision}",
        mac(&r.src),
        mac(&r.dst),
        r.ethertype,
        r.len
    );
    TraceLine {
        ingress,
        network,
        vlan_in: r.vid_in,
        src: mac(&r.src),
        dst: mac(&r.dst),
        ethertype: format!("0x{:04x}", r.ethertype),
        len: r.len,
        learning,
        action: action.to_string(),
        reason,
        out,
        text,
    }
}

fn drop_words(d: DropReason) -> &'static str {
    d.explain()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::MAX_PORTS;

    fn record(verdict: Verdict, outs: &[(u16, u16)]) -> TraceRecord {
        let mut r = TraceRecord {
            ingress: 0,
            net: 0,
            vid_in: None,
            src: MacAddr([2, 0, 0, 0, 0, 0xa]),
            dst: MacAddr([2, 0, 0, 0, 0, 0xb]),
            ethertype: 0x0800,
            len: 98,
            learned: Learned::Refreshed,
            verdict,
            out: [(0, 0); MAX_OUT],
            n_out: outs.len() as u16,
            vni: 1000,
        };
        r.out[..outs.len()].copy_from_slice(outs);
        r
    }

    fn words(r: &TraceRecord) -> TraceLine {
        let vtep = (MAX_PORTS + 1) as u16;
        let port = move |p: u16| match p {
            0 => "h1.lan".to_string(),
            1 => "h2.lan".to_string(),
            2 => "t".to_string(),
            p if p == vtep => "vxlan:192.0.2.2".to_string(),
            p => format!("port{p}"),
        };
        describe(r, &port, &|_| "lan".to_string())
    }

    #[test]
    fn decisions_read_as_plain_words() {
        let l = words(&record(Verdict::Unicast(1), &[(1, 0)]));
        assert!(
            l.text
                .ends_with("destination 02:00:00:00:00:0b learned in lan: sent to h2.lan"),
            "{}",
            l.text
        );
        assert!(l
            .text
            .contains("source 02:00:00:00:00:0a already known on h1.lan"));
        let l = words(&record(
            Verdict::Flood(FloodCause::UnknownUnicast),
            &[(1, 0), (2, 10)],
        ));
        assert!(
            l.text.ends_with(
                "destination 02:00:00:00:00:0b unknown in lan: flooded to h2.lan, t (tagged 10)"
            ),
            "{}",
            l.text
        );
        assert_eq!(l.reason.as_deref(), Some("unknown_unicast"));
        assert_eq!(l.out[1].vlan, Some(10));
        let l = words(&record(Verdict::Drop(DropReason::SamePort), &[]));
        assert!(
            l.text
                .ends_with("dropped (same_port): destination learned on the ingress port"),
            "{}",
            l.text
        );
        assert_eq!(
            (l.action.as_str(), l.reason.as_deref()),
            ("drop", Some("same_port"))
        );
    }

    #[test]
    fn vxlan_decisions_name_the_vtep_and_vni() {
        let vtep = (MAX_PORTS + 1) as u16;
        let l = words(&record(Verdict::Unicast(vtep), &[(vtep, 0)]));
        assert!(
            l.text.contains("destination 02:00:00:00:00:0b learned behind VTEP 192.0.2.2: encapsulated, VNI 1000"),
            "{}",
            l.text
        );
        let mut r = record(Verdict::Unicast(0), &[(0, 0)]);
        r.ingress = vtep;
        let l = words(&r);
        assert!(l.text.starts_with("vxlan:192.0.2.2:"), "{}", l.text);
        assert!(l.text.contains("decapsulated, VNI 1000"), "{}", l.text);
    }
}
