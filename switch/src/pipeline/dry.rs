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

/// The dry run's batch holds one frame: this is its index.
const THE_FRAME: usize = 0;

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
        stages.push((s, b.meta[THE_FRAME]));
    });
    let record = tracer::record(&ctx, ingress.into(), batch, tx, THE_FRAME);
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
