//! A dry run (`shunt trace --packet`, docs/trace.md): one frame through
//! the real stages, in the datapath's order ([`super::run_seen`]), then
//! through the edit stage, on the control thread. The stages decide as
//! they always do, from the same plan, FDB and port states; `Context::dry`
//! tells the few that write shared state to leave it alone (learn asks
//! the FDB what it would do, storm control looks at its bucket without
//! taking a token, nothing is handed to the switch's stack or the l2
//! thread), and the counters, tracer and capture they write are this
//! run's own ([`Scratch`]), thrown away. What the worker pays for this:
//! one check of `dry` per batch in the stages that write.
//!
//! ```text
//!  frame --> run_seen(dry ctx): classify .. egress, the frame's Meta kept after each stage
//!        --> edit::run: each copy's bytes, as the port would be given them (not sent)
//! ```

use super::edit::{self, Out, SegmentBuf};
use super::tracer::{self, TraceRecord};
use super::{Batch, Capture, Context, Meta, Stage, Tracer, TxQueues};
use crate::counters::{DropReason, WorkerCounters};
use crate::ids::{Egress, PortId};

/// The worker index of a dry run: no worker's.
pub const DRY_WORKER: usize = usize::MAX;

/// What a dry run writes in place of the switch's state, and its batch.
pub struct Scratch {
    counters: WorkerCounters,
    tracer: Tracer,
    capture: Capture,
    batch: Batch,
    tx: TxQueues,
    seg: SegmentBuf,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            counters: WorkerCounters::new(),
            tracer: Tracer::with_capacity(1),
            capture: Capture::new(),
            batch: Batch::new(),
            tx: TxQueues::new(),
            seg: SegmentBuf::new(),
        }
    }
}

/// One copy the edit stage made: where it goes, and its bytes as the
/// port would be handed them (after the tag and VXLAN edits).
#[derive(Debug, Clone)]
pub struct Sent {
    /// The queue: a port, or a remote VTEP.
    pub to: Egress,
    /// The port it leaves by (the underlay, for a remote VTEP).
    pub dev: PortId,
    pub bytes: Vec<u8>,
}

/// What the stages decided for the frame.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// The frame's metadata after each stage, in order.
    pub stages: Vec<(Stage, Meta)>,
    /// The decision as the trace records it (trace::describe has words).
    pub record: TraceRecord,
    /// The copies the edit stage made.
    pub sent: Vec<Sent>,
    /// Queues that got the frame but no copy from the edit stage, with
    /// the reason it counted (the port is down, no VXLAN next hop...).
    pub refused: Vec<(Egress, Option<DropReason>)>,
}

/// Runs `frame`, received on `ingress` at `now_ms`, through the stages
/// with `base`'s plan, tables and states, changing none of them. None if
/// the frame does not fit a slot.
pub fn run(
    base: &Context,
    scratch: &mut Scratch,
    ingress: PortId,
    frame: &[u8],
    now_ms: u64,
) -> Option<DryRun> {
    let Scratch {
        counters,
        tracer,
        capture,
        batch,
        tx,
        seg,
    } = scratch;
    let ctx = Context {
        dry: true,
        counters,
        tracer,
        capture,
        // No worker's: what is kept per worker and reached by
        // `.get(worker)` (snooping's and the stack's counters, capture
        // rings) has no slot for it.
        worker: DRY_WORKER,
        ..*base
    };
    batch.clear();
    tx.clear();
    if !batch.push(frame) {
        return None;
    }
    let mut stages = Vec::with_capacity(8);
    // (What it returns, the frames handed to the stack, is 0 in a dry run:
    // the verdict says `Local`.)
    super::run_seen(&ctx, ingress, batch, tx, now_ms, |s, b| {
        stages.push((s, b.meta[0]));
    });
    let record = tracer::record(&ctx, ingress.into(), batch, tx, 0);
    let mut sent = Vec::new();
    edit::run(&ctx, batch, tx, seg, |b, c, out| {
        let bytes = match out {
            Out::Frame(e) => {
                let (parts, n) = e.parts(b.frame(c.frame));
                parts[..n].concat()
            }
            Out::Segment(s) => s.to_vec(),
        };
        sent.push(Sent {
            to: c.to,
            dev: c.dev,
            bytes,
        });
    });
    let refused = tx
        .dirty
        .iter()
        .filter(|&&to| !sent.iter().any(|s| s.to == to))
        .map(|&to| {
            let c = counters.port(to);
            let why = DropReason::ALL
                .iter()
                .copied()
                .find(|&r| c.drops[r as usize].get() > 0);
            (to, why)
        })
        .collect();
    tx.clear();
    batch.clear();
    Some(DryRun {
        stages,
        record,
        sent,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Verdict;
    use crate::testing::{port, Rig};

    const TOPO: &str = r#"
[switch]
name = "dry"
[[network]]
name = "lan"
vlan = 10
subnet = "10.0.0.0/24"
[[host]]
name = "h1"
networks = ["lan"]
[[host]]
name = "h2"
networks = ["lan"]
[[port]]
name = "t"
kind = "tap"
mode = "trunk"
networks = ["lan"]
[[storm]]
port = "h1.lan"
broadcast = 1
"#;

    fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        f
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn decides_as_the_datapath_and_changes_nothing() {
        let mut rig = Rig::new(TOPO);
        // h2 is known: a real frame from it.
        rig.ports[1].push(&frame(B, [0xff; 6]));
        rig.step(port(1), 1000);
        let fdb_before = rig.fdb.entries();
        let rx_before = rig.counters.port(port(0).into()).rx_frames.get();
        let mut scratch = Scratch::new();
        let ctx = rig.context();
        // Known unicast from h1 to h2: to h2.lan, h1's MAC not learned.
        let d = run(&ctx, &mut scratch, port(0), &frame(A, B), 2000).expect("fits");
        assert_eq!(d.record.verdict, Verdict::Unicast(port(1).into()));
        assert_eq!(d.stages.len(), 8);
        assert_eq!(d.stages[0].0, Stage::Classify);
        assert_eq!(d.sent.len(), 1);
        assert_eq!(d.sent[0].dev, port(1));
        // Unknown: flooded to h2 and the trunk, tagged 10 there.
        let d = run(
            &ctx,
            &mut scratch,
            port(0),
            &frame(A, [2, 0, 0, 0, 0, 0xc]),
            2000,
        )
        .expect("fits");
        assert!(matches!(d.record.verdict, Verdict::Flood(_)), "{d:?}");
        let trunk = d
            .sent
            .iter()
            .find(|s| s.dev == port(2))
            .expect("trunk copy");
        assert_eq!(&trunk.bytes[12..16], &[0x81, 0, 0, 10]);
        // Broadcasts at 1/s: the bucket holds one token; a dry run never
        // takes it, however often it asks.
        for _ in 0..5 {
            let d = run(&ctx, &mut scratch, port(0), &frame(A, [0xff; 6]), 2000).expect("fits");
            assert!(matches!(d.record.verdict, Verdict::Flood(_)), "{d:?}");
        }
        // A tag not allowed on the trunk: dropped at classify.
        let mut tagged = frame(A, B);
        tagged.splice(12..12, [0x81, 0, 0, 30]);
        let d = run(&ctx, &mut scratch, port(2), &tagged, 2000).expect("fits");
        assert_eq!(d.record.verdict, Verdict::Drop(DropReason::VlanNotAllowed));
        assert_eq!(d.stages[0].1.verdict, d.record.verdict);
        // A jumbo frame (`len=9216`) on a 1500 port: oversize, no panic.
        let mut big = frame(A, B);
        big.resize(crate::probe::MAX_LEN, 0);
        let d = run(&ctx, &mut scratch, port(0), &big, 2000).expect("fits a slot");
        assert_eq!(d.record.verdict, Verdict::Drop(DropReason::Oversize));
        assert_eq!(rig.fdb.entries(), fdb_before, "nothing learned");
        assert!(rig.fdb.entries().iter().all(|(_, m, _)| *m != A));
        assert_eq!(
            rig.counters.port(port(0).into()).rx_frames.get(),
            rx_before,
            "nothing counted"
        );
        // The real frame after five dry broadcasts still finds its token.
        rig.ports[0].push(&frame(A, [0xff; 6]));
        rig.step(port(0), 2000);
        assert_eq!(
            rig.counters.port(port(0).into()).drops[DropReason::StormBroadcast as usize].get(),
            0
        );
    }

    const VXLAN: &str = r#"
[switch]
name = "dryx"
[[network]]
name = "ovl"
subnet = "10.0.0.0/24"
address = "10.0.0.1"
vni = 1000
vtep_peers = ["192.0.2.2"]
[[port]]
name = "t0"
kind = "tap"
interface = "t0"
mode = "access"
network = "ovl"
[[port]]
name = "ul0"
kind = "tap"
interface = "ul0"
mode = "underlay"
[vtep]
port = "ul0"
address = "192.0.2.1/24"
"#;

    #[test]
    fn a_flood_to_a_vtep_is_shown_encapsulated_and_nothing_leaves() {
        let topo = crate::config::parse("t.toml", VXLAN).expect("topology");
        let rig = Rig::new(VXLAN).with_stack(&topo).expect("stack");
        let ul = rig.stack.as_ref().and_then(|s| s.underlay.as_ref());
        ul.expect("underlay").set_nexthop(
            std::net::Ipv4Addr::new(192, 0, 2, 2),
            shunt_parsers::MacAddr([2, 0, 0, 0, 0, 2]),
        );
        let mut scratch = Scratch::new();
        let ctx = rig.context();
        let d = run(&ctx, &mut scratch, port(0), &frame(A, [0xff; 6]), 1000).expect("fits");
        assert!(matches!(d.record.verdict, Verdict::Flood(_)), "{d:?}");
        let copy = d
            .sent
            .iter()
            .find(|s| s.to.is_vtep())
            .expect("a copy for the VTEP");
        assert_eq!(copy.dev, port(1), "it leaves by the underlay");
        let x = shunt_parsers::vxlan::decap_for(&copy.bytes, None).expect("VXLAN");
        assert_eq!(
            (x.vni, x.dst_ip),
            (1000, std::net::Ipv4Addr::new(192, 0, 2, 2))
        );
        assert_eq!(
            &copy.bytes[x.inner.clone()][..12],
            &frame(A, [0xff; 6])[..12]
        );
        // For the switch itself: said so, and nothing handed to its stack.
        let stack = rig.stack.as_ref().expect("stack");
        let own = stack.nets[0].mac;
        let d = run(&ctx, &mut scratch, port(0), &frame(A, own.0), 1000).expect("fits");
        assert_eq!(d.record.verdict, Verdict::Local);
        assert!(
            stack.to_host.is_empty(),
            "a dry run hands the stack nothing"
        );
        // Nothing was sent, nothing learned.
        assert!(rig.ports.iter().all(|p| p.sent().next().is_none()));
        assert!(rig.fdb.is_empty());
    }
}
