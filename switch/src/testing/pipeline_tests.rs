//! Stage tests: build a batch, run the pipeline, check where each frame
//! went and why (STYLE.md). No I/O: what a port would send is left in the
//! transmit queues. They live beside the rig they drive, not in pipeline/,
//! so that the pipeline does not import its own test rig (check-cycles.py).

use crate::counters::{DropReason, FloodCause};
use crate::ids::{PortId, Vid};
use crate::pipeline::*;
use crate::testing::{self, Rig};

/// The pipeline tests' way to drive the shared rig (`crate::testing`).
trait Drive {
    /// Runs `frames` in from port `ingress` through its in-memory port;
    /// returns (verdicts, per frame the ports and VLANs it was queued to,
    /// 0: untagged). The copies are then sent to the in-memory ports.
    fn feed(&mut self, ingress: u16, frames: &[Vec<u8>]) -> (Vec<Verdict>, Vec<Vec<(u16, u16)>>);
    fn drops(&self, port: u16, r: DropReason) -> u64;
    /// What port `p` sent (and flushed) since its last clear.
    fn sent(&mut self, p: u16) -> Vec<Vec<u8>>;
}

impl Drive for Rig {
    fn feed(&mut self, ingress: u16, frames: &[Vec<u8>]) -> (Vec<Verdict>, Vec<Vec<(u16, u16)>>) {
        self.tx.clear();
        for p in &mut self.ports {
            p.clear_sent();
        }
        let p = port(ingress);
        for f in frames {
            assert!(self.ports[p.index()].push(f));
        }
        assert_eq!(self.receive(p), frames.len());
        self.process(p, 1000);
        let verdicts = (0..frames.len())
            .map(|i| self.batch.meta[i].verdict)
            .collect();
        let mut outs = vec![Vec::new(); frames.len()];
        for &p in &self.tx.dirty {
            for e in self.tx.queue(p) {
                outs[e.frame as usize].push((p.encode(), e.vid.map_or(0, Vid::get)));
            }
        }
        for o in &mut outs {
            o.sort_unstable();
        }
        self.transmit();
        (verdicts, outs)
    }

    fn drops(&self, p: u16, r: DropReason) -> u64 {
        self.counters.port(port(p).into()).drops[r as usize].get()
    }

    fn sent(&mut self, p: u16) -> Vec<Vec<u8>> {
        self.ports[usize::from(p)]
            .sent()
            .map(|f| f.to_vec())
            .collect()
    }
}

fn port(p: u16) -> PortId {
    testing::port(p.into())
}

/// Known unicast to port `p`.
fn unicast(p: u16) -> Verdict {
    Verdict::Unicast(port(p).into())
}

fn frame(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.resize(f.len().max(60), 0);
    f
}

const BCAST: [u8; 6] = [0xff; 6];
const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

/// Three access ports on one network: 0, 1, 2.
const THREE: &str = r#"
[[network]]
name = "lan"
[[port]]
name = "p0"
network = "lan"
[[port]]
name = "p1"
network = "lan"
[[port]]
name = "p2"
network = "lan"
"#;

#[test]
fn learn_then_unicast_and_split_horizon() {
    let mut r = Rig::new(THREE);
    // Unknown destination: flooded to the others, never back.
    let (v, out) = r.feed(0, &[frame(B, A, &[])]);
    assert_eq!(v[0], Verdict::Flood(FloodCause::UnknownUnicast));
    assert_eq!(out[0], vec![(1, 0), (2, 0)]);
    // B speaks from port 1; now A -> B is one port.
    r.feed(1, &[frame(A, B, &[])]);
    let (v, out) = r.feed(0, &[frame(B, A, &[])]);
    assert_eq!(v[0], unicast(1));
    assert_eq!(out[0], vec![(1, 0)]);
    // A destination learned on the ingress port is dropped.
    let (v, out) = r.feed(1, &[frame(B, C, &[])]);
    assert_eq!(v[0], Verdict::Drop(DropReason::SamePort));
    assert!(out[0].is_empty());
    assert_eq!(r.drops(1, DropReason::SamePort), 1);
}

#[test]
fn bad_frames_are_dropped_with_their_reason() {
    let mut r = Rig::new(THREE);
    let runt = vec![0u8; 10];
    let oversize = {
        let mut f = frame(BCAST, A, &[]);
        f.resize(1600, 0);
        f
    };
    let mcast_src = frame(BCAST, [0x01, 0, 0x5e, 0, 0, 1], &[]);
    let stp = frame([0x01, 0x80, 0xc2, 0, 0, 0], A, &[]);
    let ok = frame(BCAST, A, &[]);
    let (v, out) = r.feed(0, &[runt, oversize, mcast_src, stp, ok]);
    assert_eq!(v[0], Verdict::Drop(DropReason::Runt));
    assert_eq!(v[1], Verdict::Drop(DropReason::Oversize));
    assert_eq!(v[2], Verdict::Drop(DropReason::SrcMulticast));
    assert_eq!(v[3], Verdict::Drop(DropReason::LinkLocal));
    assert_eq!(v[4], Verdict::Flood(FloodCause::Broadcast));
    assert_eq!(out[4].len(), 2, "forwarding goes on after bad frames");
    // The multicast source was not learned.
    assert!(r.fdb.lookup(0, &[0x01, 0, 0x5e, 0, 0, 1]).is_none());
    for reason in [
        DropReason::Runt,
        DropReason::Oversize,
        DropReason::SrcMulticast,
        DropReason::LinkLocal,
    ] {
        assert_eq!(r.drops(0, reason), 1, "{}", reason.name());
    }
}

#[test]
fn flood_flags_and_down_ports() {
    let mut r = Rig::new(
        r#"
[[network]]
name = "lan"
[[port]]
name = "p0"
network = "lan"
[[port]]
name = "p1"
network = "lan"
flood_unknown = false
[[port]]
name = "p2"
network = "lan"
flood_multicast = false
"#,
    );
    let (_, out) = r.feed(
        0,
        &[
            frame(B, A, &[]),
            frame([0x01, 0, 0x5e, 0, 0, 9], A, &[]),
            frame(BCAST, A, &[]),
        ],
    );
    assert_eq!(out[0], vec![(2, 0)], "unknown unicast skips p1");
    assert_eq!(out[1], vec![(1, 0)], "multicast skips p2");
    assert_eq!(out[2], vec![(1, 0), (2, 0)], "broadcast reaches all");
    r.port_up[1].store(false, std::sync::atomic::Ordering::Relaxed);
    r.port_up[2].store(false, std::sync::atomic::Ordering::Relaxed);
    let (v, _) = r.feed(0, &[frame(BCAST, A, &[])]);
    assert_eq!(v[0], Verdict::Drop(DropReason::NoDestination));
}

#[test]
fn fdb_full_still_forwards() {
    let mut r = Rig::new(&format!("[switch]\nfdb_max_entries = 1\n{THREE}"));
    r.feed(0, &[frame(BCAST, A, &[])]);
    let (v, out) = r.feed(1, &[frame(A, B, &[])]);
    assert_eq!(v[0], unicast(0), "A is known");
    assert_eq!(out[0], vec![(0, 0)]);
    assert_eq!(r.drops(1, DropReason::FdbFull), 1, "B was not learned");
    let (v, _) = r.feed(0, &[frame(B, A, &[])]);
    assert_eq!(v[0], Verdict::Flood(FloodCause::UnknownUnicast));
}

#[test]
fn static_entries_never_move() {
    let mut r = Rig::new(&format!(
        "{THREE}\n[[fdb]]\nnetwork = \"lan\"\nmac = \"02:00:00:00:00:0c\"\nport = \"p2\"\n"
    ));
    // C shows up on port 0: the static entry stays on p2.
    r.feed(0, &[frame(BCAST, C, &[])]);
    assert_eq!(r.fdb.lookup(0, &C).map(|e| e.port), Some(2));
    let (v, _) = r.feed(1, &[frame(C, B, &[])]);
    assert_eq!(v[0], unicast(2));
}

/// Access a (vlan 10), access b (vlan 20), trunk t (10, 20, native 30 =
/// green), access c (green).
const VLANS: &str = r#"
[[network]]
name = "blue"
vlan = 10
[[network]]
name = "red"
vlan = 20
[[network]]
name = "green"
vlan = 30
[[port]]
name = "a"
network = "blue"
[[port]]
name = "b"
network = "red"
[[port]]
name = "t"
mode = "trunk"
networks = ["blue", "red"]
native = "green"
[[port]]
name = "c"
network = "green"
"#;

const Q: u16 = 0x8100;

#[test]
fn vlan_tags_in_and_out() {
    let mut r = Rig::new(VLANS);
    // Access, untagged -> trunk tagged 10.
    let (v, out) = r.feed(0, &[frame(BCAST, A, &[])]);
    assert_eq!(v[0], Verdict::Flood(FloodCause::Broadcast));
    assert_eq!(out[0], vec![(2, 10)]);
    // Priority tag on access: joins blue; PCP 5 survives the push.
    let (_, out) = r.feed(0, &[frame(BCAST, A, &[(Q, 5 << 13)])]);
    assert_eq!(out[0], vec![(2, 10)]);
    assert_eq!(r.batch.meta[0].pcp_dei >> 5, 5);
    assert_eq!(
        r.batch.meta[0].tag_len, 4,
        "the priority tag is replaced, not stacked"
    );
    // Any VID on an access port, and 4095 anywhere: dropped.
    let (v, _) = r.feed(
        0,
        &[frame(BCAST, A, &[(Q, 10)]), frame(BCAST, A, &[(Q, 4095)])],
    );
    assert_eq!(v[0], Verdict::Drop(DropReason::VlanNotAllowed));
    assert_eq!(v[1], Verdict::Drop(DropReason::VlanReserved));
    // Trunk: VID 20 -> red, untagged to b; untagged -> native green.
    let (_, out) = r.feed(
        2,
        &[
            frame(BCAST, B, &[(Q, 20)]),
            frame(BCAST, C, &[]),
            frame(BCAST, C, &[(Q, 99)]),
        ],
    );
    assert_eq!(out[0], vec![(1, 0)]);
    assert_eq!(out[1], vec![(3, 0)]);
    assert_eq!(
        r.batch.meta[2].verdict,
        Verdict::Drop(DropReason::VlanNotAllowed)
    );
    // The native network's own VID tagged is not in `networks`: dropped.
    let (v, _) = r.feed(2, &[frame(BCAST, C, &[(Q, 30)])]);
    assert_eq!(v[0], Verdict::Drop(DropReason::VlanNotAllowed));
    // Green from c leaves the trunk untagged (native).
    let (_, out) = r.feed(3, &[frame(BCAST, C, &[])]);
    assert_eq!(out[0], vec![(2, 0)]);
    // 802.1ad outer tag on an access port: untagged to this switch.
    let (v, out) = r.feed(0, &[frame(BCAST, A, &[(0x88a8, 20)])]);
    assert_eq!(v[0], Verdict::Flood(FloodCause::Broadcast));
    assert_eq!(out[0], vec![(2, 10)]);
    assert_eq!(
        r.batch.meta[0].tag_len, 0,
        "the S-tag stays in the frame as data"
    );
}

#[test]
fn learning_is_per_network() {
    let mut r = Rig::new(VLANS);
    r.feed(0, &[frame(BCAST, A, &[])]);
    r.feed(2, &[frame(BCAST, A, &[(Q, 20)])]);
    assert_eq!(r.fdb.lookup(0, &A).map(|e| e.port), Some(0));
    assert_eq!(r.fdb.lookup(1, &A).map(|e| e.port), Some(2));
}

/// Hosts ha (port 0, MAC A) and hb (port 1, MAC B) on macvlan network mv
/// whose parent is `up` (port 2). Their MACs are static entries, as the
/// daemon makes them.
fn macvlan(mode: &str) -> Rig {
    let r = Rig::new(&format!(
        r#"
[[network]]
name = "mv"
kind = "macvlan"
parent = "up"
macvlan_mode = "{mode}"
[[host]]
name = "ha"
networks = ["mv"]
mac = ["02:00:00:00:00:0a"]
[[host]]
name = "hb"
networks = ["mv"]
mac = ["02:00:00:00:00:0b"]
[[port]]
name = "up"
network = "mv"
"#
    ));
    r.fdb.add_static(0, &A, 0).expect("static");
    r.fdb.add_static(0, &B, 1).expect("static");
    r
}

#[test]
fn macvlan_decisions() {
    const UP: u16 = 2;
    for mode in ["bridge", "vepa", "private"] {
        let mut r = macvlan(mode);
        // From the parent: unicast by exact MAC, unknown never flooded.
        let (v, _) = r.feed(UP, &[frame(A, C, &[]), frame(C, B, &[])]);
        assert_eq!(v[0], unicast(0), "{mode}");
        assert_eq!(v[1], Verdict::Drop(DropReason::MacvlanUnknown), "{mode}");
        // From ha to hb's MAC: direct in bridge mode, else to the parent.
        let (v, _) = r.feed(0, &[frame(B, A, &[])]);
        let want = if mode == "bridge" {
            unicast(1)
        } else {
            unicast(UP)
        };
        assert_eq!(v[0], want, "{mode}");
        // A broadcast from ha: bridge mode gives it to hb and the parent.
        let (_, out) = r.feed(0, &[frame(BCAST, A, &[])]);
        let want = if mode == "bridge" {
            vec![(1, 0), (UP, 0)]
        } else {
            vec![(UP, 0)]
        };
        assert_eq!(out[0], want, "{mode}");
        // The same broadcast reflected back by the outside.
        let (v, out) = r.feed(UP, &[frame(BCAST, A, &[])]);
        match mode {
            "bridge" => assert_eq!(v[0], Verdict::Drop(DropReason::MacvlanFiltered)),
            "vepa" => assert_eq!(out[0], vec![(1, 0)], "vepa: the other host only"),
            _ => assert_eq!(v[0], unicast(0), "private: back to its sender only"),
        }
        // A broadcast from outside reaches every host.
        let (_, out) = r.feed(UP, &[frame(BCAST, C, &[])]);
        assert_eq!(out[0], vec![(0, 0), (1, 0)], "{mode}");
        // Nothing is learned on a macvlan network.
        assert!(r.fdb.lookup(0, &C).is_none(), "{mode}");
    }
}

#[test]
fn edits_reach_the_wire() {
    let mut r = Rig::new(VLANS);
    // Access a, untagged -> trunk t: the tag of VLAN 10 pushed after the
    // MACs, the rest of the frame unchanged.
    let f = frame(BCAST, A, &[]);
    r.feed(0, std::slice::from_ref(&f));
    let want = [&f[..12], &[0x81, 0x00, 0x00, 10], &f[12..]].concat();
    assert_eq!(r.sent(2), vec![want]);
    assert_eq!(r.ports[2].unflushed(), 0, "flushed once per batch");
    // A priority tag with PCP 5 on the access port: rewritten to VLAN 10,
    // PCP kept.
    let f = frame(BCAST, A, &[(Q, 5 << 13)]);
    r.feed(0, std::slice::from_ref(&f));
    let want = [&f[..12], &[0x81, 0x00, 0xa0, 10], &f[16..]].concat();
    assert_eq!(r.sent(2), vec![want]);
    // Trunk, VLAN 20 -> access b: the tag popped.
    let f = frame(BCAST, B, &[(Q, 20)]);
    r.feed(2, std::slice::from_ref(&f));
    assert_eq!(r.sent(1), vec![[&f[..12], &f[16..]].concat()]);
    assert!(r.sent(0).is_empty() && r.sent(2).is_empty(), "never back");
    assert_eq!(r.counters.port(port(1).into()).tx_frames.get(), 1);
}
