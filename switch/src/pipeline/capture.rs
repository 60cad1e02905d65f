//! The capture's datapath side (`shunt capture`): while a capture runs,
//! the frames it selects are copied, with the switch's decision, into
//! boxed records that move between two bounded lock-free queues per worker
//! (free and full; allocated by the first capture and kept for the next,
//! none per frame); the capture's writer (capture.rs, at SCHED_IDLE)
//! turns them into pcapng and gives the boxes back. No free box loses the
//! record (counted), never the frame. With no capture running the cost is
//! one check per batch, as the trace's.
//!
//! ```text
//!                     free[worker] <------------- writer gives boxes back
//!                          | pop
//!  pipeline::run (decided) --inbound--> full[worker] --writer--> pcapng fd
//!  edit::run's copy, before Port::send --outbound--^
//! ```

use super::edit::{Copy, Out};
use super::learn::Learned;
use super::tracer::{self, TraceRecord, MAX_OUT};
use super::{Batch, Context, Meta, TxQueues, Verdict};
use crate::counters::DropReason;
use crate::ids::{Egress, PortId, Vid};
use arc_swap::ArcSwapOption;
use crossbeam_queue::ArrayQueue;
use shunt_parsers::MacAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The most bytes of a frame a record holds (`--snaplen` up to this): a
/// 1500-byte frame with a tag and a VXLAN outer header fits whole.
pub const MAX_SNAP: usize = 1600;
/// What a capture keeps of each frame unless told otherwise: every header
/// of a VXLAN-encapsulated TCP frame, and a ping whole.
pub const DEFAULT_SNAP: usize = 256;
/// Records per worker ring: 1024 boxes of ~1.9 KiB, allocated by the
/// first capture and kept.
pub const RING: usize = 1024;
const WORDS: usize = Egress::SLOTS.div_ceil(64);

/// Which way a captured frame went through its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// As received, before any edit.
    In,
    /// As sent, after the tag and VXLAN edits.
    Out,
}

/// The decision a capture can select on (`--decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Flooded,
    Unicast,
    Dropped,
    Local,
}

impl Decision {
    pub const NAMES: [&'static str; 4] = ["flooded", "unicast", "dropped", "local"];

    pub fn from_name(s: &str) -> Option<Decision> {
        match s {
            "flooded" | "flood" => Some(Decision::Flooded),
            "unicast" | "known_unicast" => Some(Decision::Unicast),
            "dropped" | "drop" => Some(Decision::Dropped),
            "local" => Some(Decision::Local),
            _ => None,
        }
    }

    fn of(v: Verdict) -> Option<Decision> {
        match v {
            Verdict::Flood(_) | Verdict::Macvlan { .. } | Verdict::Group { .. } => {
                Some(Decision::Flooded)
            }
            Verdict::Unicast(_) => Some(Decision::Unicast),
            Verdict::Drop(_) => Some(Decision::Dropped),
            Verdict::Local | Verdict::Control(_) => Some(Decision::Local),
            Verdict::Pending => None,
        }
    }
}

/// What a capture selects. Every field set must match.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    pub inbound: bool,
    pub outbound: bool,
    /// Only dropped frames (`--drops`).
    pub drops_only: bool,
    /// Source or destination.
    pub mac: Option<MacAddr>,
    /// The VLAN the frame came in with, or the tag of an outbound copy.
    pub vlan: Option<u16>,
    /// The ethertype after any 802.1Q tag.
    pub ethertype: Option<u16>,
    pub reason: Option<DropReason>,
    pub decision: Option<Decision>,
    pub snaplen: usize,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            inbound: true,
            outbound: true,
            drops_only: false,
            mac: None,
            vlan: None,
            ethertype: None,
            reason: None,
            decision: None,
            snaplen: DEFAULT_SNAP,
        }
    }
}

impl Filter {
    /// The checks that need no parsing: direction and verdict. A frame
    /// whose source the full FDB could not learn counts as dropped for
    /// `fdb_full`, the one reason that loses no frame (counters.rs): it is
    /// the frame someone debugging a full FDB wants to see.
    #[inline]
    fn wants_verdict(&self, dir: Dir, m: &Meta) -> bool {
        let v = m.verdict;
        let reason = match v {
            Verdict::Drop(d) => Some(d),
            _ => m.learned.reason(),
        };
        let dir_ok = match dir {
            Dir::In => self.inbound,
            // The dropped frames are taken as they came in.
            Dir::Out => self.outbound && !self.drops_only,
        };
        let drop_ok = !self.drops_only || reason.is_some();
        let reason_ok = self.reason.is_none_or(|r| reason == Some(r));
        let decision_ok = self.decision.is_none_or(|d| Decision::of(v) == Some(d));
        dir_ok && drop_ok && reason_ok && decision_ok
    }

    /// Whether `shunt trace` takes frame `r` (metadata `m`): as it came
    /// in on a traced port (`inbound`), or by a copy out of a port that
    /// `traced` says is traced. One line per frame, however many match.
    pub fn traces(
        &self,
        r: &TraceRecord,
        m: &Meta,
        inbound: bool,
        traced: impl Fn(Egress) -> bool,
    ) -> bool {
        if inbound && self.wants_verdict(Dir::In, m) && self.wants_record(r, None) {
            return true;
        }
        self.outbound
            && self.wants_verdict(Dir::Out, m)
            && r.out[..usize::from(r.n_out).min(r.out.len())]
                .iter()
                .any(|&(p, vid)| traced(p) && self.wants_record(r, vid))
    }

    /// The checks on the frame's headers (from its trace record).
    fn wants_record(&self, r: &TraceRecord, copy_vid: Option<Vid>) -> bool {
        let mac_ok = self.mac.is_none_or(|m| r.src == m || r.dst == m);
        let vlan_ok = self
            .vlan
            .is_none_or(|v| r.vid_in == Some(v) || copy_vid.map(Vid::get) == Some(v));
        let type_ok = self.ethertype.is_none_or(|t| r.ethertype == t);
        mac_ok && vlan_ok && type_ok
    }

    /// Whether [`Filter::wants_record`] looks at headers at all.
    fn by_headers(&self) -> bool {
        self.mac.is_some() || self.vlan.is_some() || self.ethertype.is_some()
    }
}

/// One captured frame: where and when it was seen, which way, the
/// decision about it, and its first bytes.
#[derive(Clone, Copy)]
pub struct Record {
    /// Nanoseconds since the Unix epoch (read once per batch).
    pub ts_ns: u64,
    /// The interface: the port (or the switch's stack) it came in on, or
    /// the port it left by.
    pub at: Egress,
    pub dir: Dir,
    /// The frame's length on the wire (a super-frame's whole length).
    pub orig_len: u32,
    /// How many of `bytes` hold the frame.
    pub snap: u16,
    /// The outbound copy's 802.1Q tag.
    pub copy_vid: Option<Vid>,
    /// The queue the copy came from (a remote VTEP for an encapsulated one).
    pub copy_to: Egress,
    /// The outbound copy is a mirror port's (docs/mirror.md).
    pub mirror: bool,
    pub what: TraceRecord,
    pub bytes: [u8; MAX_SNAP],
}

/// One worker's records: boxes to fill (`free`) and filled ones for the
/// writer (`full`). The worker takes a box, writes the record into it in
/// place and passes the pointer on; the writer gives it back: no record is
/// allocated or copied whole per frame, and a ring with no free box loses
/// the record (counted), never the frame.
pub struct Ring {
    free: ArrayQueue<Box<Record>>,
    full: ArrayQueue<Box<Record>>,
    /// Records lost for want of a free box, written by the ring's worker
    /// alone.
    lost: Lost,
}

/// A counter on a cache line of its own (each worker writes its own).
#[repr(align(64))]
#[derive(Default)]
struct Lost(AtomicU64);

impl Lost {
    #[inline]
    fn add(&self) {
        // One writer: a load and a store, no shared atomic add.
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }
}

impl Ring {
    fn new(n: usize) -> Ring {
        let r = Ring {
            free: ArrayQueue::new(n),
            full: ArrayQueue::new(n),
            lost: Lost::default(),
        };
        r.top_up();
        r
    }

    /// Every box back in `free`, and new ones for any that went missing.
    fn top_up(&self) {
        while let Some(b) = self.full.pop() {
            let _ = self.free.push(b);
        }
        while !self.free.is_full() {
            let _ = self.free.push(Box::new(Record::EMPTY));
        }
        self.lost.0.store(0, Relaxed);
    }

    /// Records the ring holds when every box is filled.
    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }

    /// Whether no record waits and every box is free.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.free.is_full()
    }
}

/// A running capture: what it selects and where its records go.
pub struct Session {
    pub filter: Filter,
    ports: [AtomicU64; WORDS],
    all: bool,
    rings: Box<[Ring]>,
    /// Records of a thread with no ring of its own (none today).
    lost_elsewhere: AtomicU64,
}

impl Session {
    /// A capture of frames on `ports` (all, and the switch's stack, if
    /// empty) for `workers` workers.
    pub fn new(filter: Filter, ports: &[PortId], workers: usize) -> Session {
        Session::with_rings(filter, ports, rings(workers))
    }

    /// [`Session::new`] on rings given (one per worker, every box free):
    /// those of an earlier session ([`Capture::rings`]).
    pub fn with_rings(filter: Filter, ports: &[PortId], rings: Box<[Ring]>) -> Session {
        let all = ports.is_empty();
        let words: [AtomicU64; WORDS] =
            std::array::from_fn(|_| AtomicU64::new(if all { u64::MAX } else { 0 }));
        for &p in ports {
            let s = Egress::Port(p).slot();
            if let Some(w) = words.get(s / 64) {
                w.fetch_or(1 << (s % 64), Relaxed);
            }
        }
        Session {
            filter: Filter {
                snaplen: filter.snaplen.clamp(1, MAX_SNAP),
                ..filter
            },
            ports: words,
            all,
            rings,
            lost_elsewhere: AtomicU64::new(0),
        }
    }

    fn wants(&self, at: Egress) -> bool {
        let s = at.slot();
        self.ports
            .get(s / 64)
            .is_some_and(|w| w.load(Relaxed) & (1 << (s % 64)) != 0)
    }

    /// Worker `worker`'s oldest record; give its box back with
    /// [`Session::give_back`].
    pub fn pop(&self, worker: usize) -> Option<Box<Record>> {
        self.rings.get(worker)?.full.pop()
    }

    /// A written record's box, free again for worker `worker`.
    pub fn give_back(&self, worker: usize, b: Box<Record>) {
        if let Some(r) = self.rings.get(worker) {
            let _ = r.free.push(b);
        }
    }

    pub fn workers(&self) -> usize {
        self.rings.len()
    }

    /// Records lost so far: no free box when the frame came (the reader
    /// was too slow).
    pub fn lost(&self) -> u64 {
        let rings: u64 = self.rings.iter().map(|r| r.lost.0.load(Relaxed)).sum();
        rings + self.lost_elsewhere.load(Relaxed)
    }

    fn lose(&self, w: usize) {
        match self.rings.get(w) {
            Some(r) => r.lost.add(),
            None => {
                self.lost_elsewhere.fetch_add(1, Relaxed);
            }
        }
    }

    /// A box holding the trace record of a frame the filter wants, or None:
    /// not wanted, or lost (counted) for want of a free box. `describe`
    /// (the frame's trace record and its copy's tag) runs only when its
    /// answer is needed: under a flood the rings are full and a lost
    /// record costs the worker a failed pop and a count, not a description
    /// (unless a header filter must first say whether it is wanted).
    #[inline]
    fn claim(
        &self,
        w: usize,
        describe: impl FnOnce() -> (TraceRecord, Option<Vid>),
    ) -> Option<Box<Record>> {
        // Empty is two loads; a failed pop would add a full fence, per
        // frame, while a flood keeps every box full.
        let free = self.rings.get(w).filter(|r| !r.free.is_empty());
        match free.and_then(|r| r.free.pop()) {
            Some(mut b) => {
                let (what, vid) = describe();
                if self.filter.wants_record(&what, vid) {
                    b.what = what;
                    b.copy_vid = vid;
                    Some(b)
                } else {
                    self.give_back(w, b);
                    None
                }
            }
            None => {
                let wanted = !self.filter.by_headers() || {
                    let (what, vid) = describe();
                    self.filter.wants_record(&what, vid)
                };
                if wanted {
                    self.lose(w);
                }
                None
            }
        }
    }

    /// A filled box to the writer.
    #[inline]
    fn commit(&self, w: usize, b: Box<Record>) {
        if let Some(r) = self.rings.get(w) {
            // Never full: the ring's boxes fit in either queue.
            let _ = r.full.push(b);
        }
    }

    /// The frames of a decided batch that came in on `ingress`, as
    /// received (called once per batch while a capture runs).
    pub fn inbound(&self, ctx: &Context, ingress: Egress, batch: &Batch, tx: &TxQueues) {
        if !self.filter.inbound || !self.wants(ingress) {
            return;
        }
        let ts_ns = now_ns();
        for i in 0..batch.count {
            if !self.filter.wants_verdict(Dir::In, &batch.meta[i]) {
                continue;
            }
            let describe = || (tracer::record(ctx, ingress, batch, tx, i), None);
            let Some(mut r) = self.claim(ctx.worker, describe) else {
                continue;
            };
            r.ts_ns = ts_ns;
            r.at = ingress;
            r.dir = Dir::In;
            r.orig_len = batch.meta[i].len.into();
            r.copy_to = ingress;
            r.mirror = false;
            r.fill(&[batch.frame(i)], self.filter.snaplen);
            self.commit(ctx.worker, r);
        }
    }

    /// One outbound copy of frame `i`, leaving by `dev` from queue `to`
    /// (a mirror copy when `mirror`), as the gather list `parts` (called per copy, only
    /// while a capture runs; `ts_ns` read once per batch).
    #[allow(clippy::too_many_arguments)]
    pub fn outbound(
        &self,
        ctx: &Context,
        ingress: Egress,
        batch: &Batch,
        tx: &TxQueues,
        (i, to, dev, mirror): (usize, Egress, PortId, bool),
        parts: &[&[u8]],
        ts_ns: u64,
    ) {
        let at = Egress::Port(dev);
        if !self.filter.outbound || !(self.wants(at) || self.wants(to)) {
            return;
        }
        if !self.filter.wants_verdict(Dir::Out, &batch.meta[i]) {
            return;
        }
        let describe = || {
            let vid = tx
                .queue(to)
                .iter()
                .find(|e| usize::from(e.frame) == i)
                .and_then(|e| e.vid);
            (tracer::record(ctx, ingress, batch, tx, i), vid)
        };
        let Some(mut r) = self.claim(ctx.worker, describe) else {
            return;
        };
        r.ts_ns = ts_ns;
        r.at = at;
        r.dir = Dir::Out;
        r.orig_len = parts.iter().map(|p| p.len() as u32).sum();
        r.copy_to = to;
        r.mirror = mirror;
        r.fill(parts, self.filter.snaplen);
        self.commit(ctx.worker, r);
    }

    /// One copy the edit stage made (`Out`), before it is sent.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn outbound_copy(
        &self,
        ctx: &Context,
        ingress: Egress,
        batch: &Batch,
        tx: &TxQueues,
        c: Copy,
        out: &Out<'_>,
        ts_ns: u64,
    ) {
        let at = (c.frame, c.to, c.dev, c.mirror);
        match *out {
            Out::Frame(e) => {
                let (parts, n) = e.parts(batch.frame(c.frame));
                self.outbound(ctx, ingress, batch, tx, at, &parts[..n], ts_ns);
            }
            Out::Segment(b) => self.outbound(ctx, ingress, batch, tx, at, &[b], ts_ns),
        }
    }

    /// A detached port's id leaves a capture of named ports.
    pub fn forget(&self, p: PortId) {
        if self.all {
            return;
        }
        let s = Egress::Port(p).slot();
        if let Some(w) = self.ports.get(s / 64) {
            w.fetch_and(!(1 << (s % 64)), Relaxed);
        }
    }
}

impl Record {
    /// A box's contents before its first record.
    const EMPTY: Record = Record {
        ts_ns: 0,
        at: Egress::Stack,
        dir: Dir::In,
        orig_len: 0,
        snap: 0,
        copy_vid: None,
        copy_to: Egress::Stack,
        mirror: false,
        what: TraceRecord {
            ingress: Egress::Stack,
            net: None,
            vid_in: None,
            src: MacAddr::ZERO,
            dst: MacAddr::ZERO,
            ethertype: 0,
            len: 0,
            learned: Learned::Nothing,
            verdict: Verdict::Pending,
            out: [(Egress::Stack, None); MAX_OUT],
            n_out: 0,
            vni: 0,
            gso: None,
            whole: 0,
            group: None,
        },
        bytes: [0; MAX_SNAP],
    };

    /// Copies the first `snaplen` bytes of the gathered `parts`.
    fn fill(&mut self, parts: &[&[u8]], snaplen: usize) {
        let mut n = 0;
        for p in parts {
            let k = p.len().min(snaplen.min(MAX_SNAP) - n);
            self.bytes[n..n + k].copy_from_slice(&p[..k]);
            n += k;
        }
        self.snap = n as u16;
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.snap).min(MAX_SNAP)]
    }
}

/// The wall clock in nanoseconds (pcapng's time base).
#[inline]
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One ring per worker, every box free.
fn rings(workers: usize) -> Box<[Ring]> {
    (0..workers.max(1)).map(|_| Ring::new(RING)).collect()
}

/// A record being written, and the worker whose box it is.
pub type Taken = (usize, Box<Record>);

/// What a capture session allocates, kept for the next one: its rings
/// (1,024 boxed records, about 1.9 MiB a worker) and the writer's batch
/// and output buffer. Given back to the allocator after every capture,
/// these were 4.5 MB of the switch's resident memory that came and went
/// with each capture (before glibc's mmap threshold was fixed, 4.2 MB that
/// stayed in a malloc arena each time a capture ran on another thread;
/// docs/reliability.md, "Soak"). One capture runs at a time, so one set is
/// enough.
#[derive(Default)]
struct Spare {
    rings: Option<Box<[Ring]>>,
    batch: Vec<Taken>,
    buf: Vec<u8>,
}

/// The switch's capture: off, or one running session.
#[derive(Default)]
pub struct Capture {
    active: AtomicBool,
    session: ArcSwapOption<Session>,
    spare: Mutex<Spare>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    /// The one check per batch.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// The running session (load it once per batch: a guard, no
    /// reference count touched).
    #[inline]
    pub fn session(&self) -> arc_swap::Guard<Option<Arc<Session>>> {
        self.session.load()
    }

    /// Starts `s`; false (and nothing changed) if a capture runs already.
    pub fn start(&self, s: Session) -> bool {
        let s = Arc::new(s);
        let prev = self
            .session
            .compare_and_swap(&None::<Arc<Session>>, Some(s));
        if prev.is_some() {
            return false;
        }
        self.active.store(true, Relaxed);
        true
    }

    /// Ends the running capture; its records stay readable in the returned
    /// session.
    pub fn stop(&self) -> Option<Arc<Session>> {
        self.active.store(false, Relaxed);
        self.session.swap(None)
    }

    /// Rings for a session of `workers` workers: the last session's if it
    /// had as many, else new ones.
    pub fn rings(&self, workers: usize) -> Box<[Ring]> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        match spare.rings.take() {
            Some(r) if r.len() == workers.max(1) => r,
            _ => rings(workers),
        }
    }

    /// Keeps an ended session's rings for the next, every box free again.
    /// A worker whose batch was under way at the stop holds the session
    /// until the batch ends: waited for, 100 ms at most, because records
    /// freed by the worker would stay in a malloc arena and the next
    /// capture would allocate others (a step in the switch's memory,
    /// docs/reliability.md). Past that the holder frees it.
    pub fn recycle(&self, mut s: Arc<Session>) {
        for _ in 0..100 {
            match Arc::try_unwrap(s) {
                Ok(s) => {
                    for r in s.rings.iter() {
                        r.top_up();
                    }
                    let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
                    spare.rings = Some(s.rings);
                    return;
                }
                Err(held) => {
                    s = held;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    /// The writer's buffers for a capture (empty; their capacity that of
    /// the last capture's), and to give them back.
    pub fn buffers(&self) -> (Vec<Taken>, Vec<u8>) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::take(&mut spare.batch),
            std::mem::take(&mut spare.buf),
        )
    }

    pub fn keep_buffers(&self, mut batch: Vec<Taken>, mut buf: Vec<u8>) {
        batch.clear();
        buf.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        spare.batch = batch;
        spare.buf = buf;
    }

    pub fn forget(&self, p: PortId) {
        if let Some(s) = self.session.load_full() {
            s.forget(p);
        }
    }

    /// Runs the inbound side over a decided batch (pipeline::run).
    #[inline]
    pub fn inbound(&self, ctx: &Context, ingress: Egress, batch: &Batch, tx: &TxQueues) {
        if let Some(s) = self.session().as_ref() {
            s.inbound(ctx, ingress, batch, tx);
        }
    }
}
