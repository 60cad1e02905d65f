//! The frame trace (`shunt trace`): while a trace is active, the pipeline
//! records each traced frame's decisions into a bounded lock-free queue
//! (fixed-size records, no allocation: `pipeline::tracer`); here the
//! control plane turns them into plain words. With no trace active the cost
//! is one check per batch.

use crate::counters::{DropReason, FloodCause};
use crate::ids::{Egress, NetId, Vid};
use crate::pipeline::{learn::Learned, Verdict};
use serde::Serialize;
use shunt_parsers::virtio_net::Gso;
use shunt_parsers::MacAddr;

pub use crate::pipeline::tracer::{TraceRecord, Tracer, MAX_OUT};

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
    /// The decision in words (the end of `text`).
    pub decision: String,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct TraceOut {
    pub port: String,
    pub vlan: Option<u16>,
}

pub fn describe(
    r: &TraceRecord,
    port_name: &dyn Fn(Egress) -> String,
    net_name: &dyn Fn(NetId) -> String,
) -> TraceLine {
    let mac = |m: &MacAddr| m.to_string();
    let network = r.net.map(net_name);
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
        Learned::Limited => format!(
            "source {} not learned: {ingress} holds its max_learned MACs",
            mac(&r.src)
        ),
        Learned::Blocked => format!(
            "source {} not learned: it flapped between ports and is blocked for a while",
            mac(&r.src)
        ),
    };
    let out: Vec<TraceOut> = r.out[..r.n_out as usize]
        .iter()
        .map(|&(p, vid)| TraceOut {
            port: port_name(p),
            vlan: vid.map(Vid::get),
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
        Verdict::Unicast(p) if p.is_vtep() => (
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
        Verdict::Group { registered, .. } => {
            let g = r.group.map_or(String::new(), |g| format!(" {g}"));
            let to = match registered {
                true => "sent to members",
                false => "unregistered group: sent to router ports",
            };
            let to = if outs.is_empty() {
                format!("{to}: none")
            } else {
                format!("{to} {outs}")
            };
            ("forward", None, format!("multicast{g} in {net_s}: {to}"))
        }
        Verdict::Flood(cause) => {
            let why = match cause {
                FloodCause::Broadcast => "broadcast".to_string(),
                FloodCause::Multicast => match r.group {
                    Some(g) => format!("multicast {g}"),
                    None => "multicast".to_string(),
                },
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
            // The words users and tests know (docs/trace.md): "host stack" here is the switch's own stack.
            "for the switch itself: handed to its host stack".to_string(),
        ),
        Verdict::Control(kind) => (
            "local",
            None,
            format!(
                "control frame ({}) for the switch's L2 protocols: taken, not forwarded",
                kind.name()
            ),
        ),
        Verdict::Pending => ("none", None, "no decision".to_string()),
    };
    let vlan_s = match r.vid_in {
        Some(v) => format!(" tagged {v}"),
        None => " untagged".to_string(),
    };
    let vlan_s = if r.ingress.is_vtep() {
        format!(" decapsulated, VNI {}", r.vni)
    } else {
        vlan_s
    };
    let mut text = format!(
        "{ingress}: {} > {} type 0x{:04x} len {}{vlan_s}, network {net_s}; {learning}; {decision}",
        mac(&r.src),
        mac(&r.dst),
        r.ethertype,
        r.len
    );
    if let Some(words) = super_frame_words(r, &out) {
        text.push_str("; ");
        text.push_str(&words);
    }
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
        decision,
        text,
    }
}

/// "TCP super-frame of 64,066 bytes, 45 segments of 1,448: passed whole
/// to h2.lan; segmented in software for h3.lan".
fn super_frame_words(r: &TraceRecord, out: &[TraceOut]) -> Option<String> {
    let (kind, segments, mss) = r.gso?;
    let proto = match kind {
        Gso::Tcp4 | Gso::Tcp6 => "TCP",
        Gso::Udp4 | Gso::Udp6 | Gso::None => "UDP",
    };
    let mut w = format!(
        "{proto} super-frame of {} bytes, {segments} segments of {}",
        thousands(r.len.into()),
        thousands(mss.into())
    );
    let (whole, cut): (Vec<_>, Vec<_>) = out
        .iter()
        .enumerate()
        .partition(|(k, _)| r.whole & (1 << k) != 0);
    let names = |v: Vec<(usize, &TraceOut)>| {
        v.iter()
            .map(|(_, o)| o.port.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sep = ": ";
    if !whole.is_empty() {
        w.push_str(&format!("{sep}passed whole to {}", names(whole)));
        sep = "; ";
    }
    if !cut.is_empty() {
        w.push_str(&format!("{sep}segmented in software for {}", names(cut)));
    }
    Some(w)
}

/// 64066 -> "64,066".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::with_capacity(s.len() + s.len() / 3);
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

fn drop_words(d: DropReason) -> &'static str {
    d.explain()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PortId, VtepId};

    fn port(i: usize) -> Egress {
        Egress::Port(PortId::new(i).expect("in range"))
    }

    fn vtep() -> Egress {
        Egress::Vtep(VtepId::new(0).expect("in range"))
    }

    fn record(verdict: Verdict, outs: &[(Egress, Option<Vid>)]) -> TraceRecord {
        let mut r = TraceRecord {
            ingress: port(0),
            net: NetId::new(0),
            vid_in: None,
            src: MacAddr([2, 0, 0, 0, 0, 0xa]),
            dst: MacAddr([2, 0, 0, 0, 0, 0xb]),
            ethertype: 0x0800,
            len: 98,
            learned: Learned::Refreshed,
            verdict,
            out: [(port(0), None); MAX_OUT],
            n_out: outs.len() as u16,
            vni: 1000,
            gso: None,
            whole: 0,
            group: None,
        };
        r.out[..outs.len()].copy_from_slice(outs);
        r
    }

    fn words(r: &TraceRecord) -> TraceLine {
        let port = move |p: Egress| match p {
            Egress::Port(p) if p.index() == 0 => "h1.lan".to_string(),
            Egress::Port(p) if p.index() == 1 => "h2.lan".to_string(),
            Egress::Port(p) if p.index() == 2 => "t".to_string(),
            Egress::Vtep(_) => "vxlan:192.0.2.2".to_string(),
            p => format!("port{}", p.encode()),
        };
        describe(r, &port, &|_| "lan".to_string())
    }

    #[test]
    fn decisions_read_as_plain_words() {
        let l = words(&record(Verdict::Unicast(port(1)), &[(port(1), None)]));
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
            &[(port(1), None), (port(2), Vid::new(10))],
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
    fn super_frames_say_who_got_them_whole() {
        let mut r = record(
            Verdict::Flood(FloodCause::Broadcast),
            &[(port(1), None), (port(2), Vid::new(10))],
        );
        r.len = 64066;
        r.gso = Some((Gso::Tcp4, 45, 1448));
        r.whole = 0b01;
        let l = words(&r);
        assert!(
            l.text.ends_with(
                "; TCP super-frame of 64,066 bytes, 45 segments of 1,448: passed whole to h2.lan; segmented in software for t"
            ),
            "{}",
            l.text
        );
        r.whole = 0;
        assert!(words(&r)
            .text
            .ends_with(": segmented in software for h2.lan, t"));
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn vxlan_decisions_name_the_vtep_and_vni() {
        let vtep = vtep();
        let l = words(&record(Verdict::Unicast(vtep), &[(vtep, None)]));
        assert!(
            l.text.contains("destination 02:00:00:00:00:0b learned behind VTEP 192.0.2.2: encapsulated, VNI 1000"),
            "{}",
            l.text
        );
        let mut r = record(Verdict::Unicast(port(0)), &[(port(0), None)]);
        r.ingress = vtep;
        let l = words(&r);
        assert!(l.text.starts_with("vxlan:192.0.2.2:"), "{}", l.text);
        assert!(l.text.contains("decapsulated, VNI 1000"), "{}", l.text);
    }
}
