//! The forwarding database: (network, MAC) -> port, lock-free, fixed capacity.
//!
//! See `tables/README.md` for the slot layout and the concurrency argument;
//! the comments here say which step of that argument a line is.

use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::slot::{self, Val, FREE};

/// A port of the switch. `PortId::MAX` is reserved and never stored.
pub type PortId = u16;
/// A network (bridge domain).
pub type NetworkId = u16;

/// Slots per bucket: a bucket is two 64-byte lines holding an overflow
/// counter and seven (key, value) pairs.
pub const SLOTS_PER_BUCKET: usize = 7;

/// How many times an operation starts over after interference from another
/// thread before it reports `Contended`. Reaching it needs adversarial churn
/// on one key; ordinary races resolve in one or two rounds.
const MAX_ATTEMPTS: usize = 16;

/// A learn of an existing entry rewrites its time only when the time moved
/// forward by this much (capped), so that workers on several cores seeing
/// frames from one MAC do not bounce its cache line on every frame.
const MAX_REFRESH_MS: u64 = 1000;

/// Sizing of an [`Fdb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbConfig {
    /// Most entries that *learning* may fill the table to. Static entries
    /// count toward it too, but may be added beyond it (see
    /// [`Fdb::add_static`]).
    pub max_entries: usize,
    /// A dynamic entry not seen for longer than this is removed by
    /// [`Fdb::age`].
    pub aging_ms: u64,
}

impl Default for FdbConfig {
    fn default() -> Self {
        FdbConfig {
            max_entries: 65536,
            aging_ms: 300_000,
        }
    }
}

/// What the FDB knows about one (network, MAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub port: PortId,
    pub is_static: bool,
    /// When a frame from the MAC was last seen, in the caller's clock; it
    /// lags the real last frame by less than [`Fdb::refresh_ms`]. `0` for
    /// static entries, which do not track time.
    pub last_seen_ms: u64,
}

/// The outcome of [`Fdb::learn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learn {
    /// A new entry was stored.
    New,
    /// The entry exists on this port (its time was rewritten if it moved
    /// forward by at least [`Fdb::refresh_ms`]). Also returned when another
    /// thread is inserting the same key at this instant: the first inserter's
    /// port wins, and the next frame from the MAC moves it if needed.
    Refreshed,
    /// The entry existed on another port and now points to this one.
    Moved { from: PortId },
    /// A static entry exists: neither moved nor refreshed.
    Static,
    /// `max_entries` is reached: not learned.
    Full,
    /// The port holds its learning limit ([`Fdb::set_port_limit`]): not
    /// learned. For a MAC that moved to such a port, its entry on the old
    /// port is removed (frames to it are flooded until it is learned where
    /// there is room), so that nothing is sent to where it no longer is.
    PortLimit,
    /// Not learned: the source MAC is multicast or broadcast.
    GroupSource,
    /// Not learned: `PortId::MAX` is reserved.
    ReservedPort,
    /// Not learned: other threads kept changing this key or its slots for
    /// `MAX_ATTEMPTS` rounds. Nothing changed; the next frame tries again.
    Contended,
}

/// Why a control-path change of the FDB failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdbError {
    /// A multicast or broadcast MAC cannot be an FDB key (frames to group
    /// addresses are flooded, never looked up).
    GroupAddress,
    /// `PortId::MAX` is reserved.
    ReservedPort,
    /// No room even for a static entry: the table holds its hard limit
    /// (7/8 of its slots). Flush dynamic entries or build a bigger table.
    Full,
    /// Other threads kept changing this key; try again.
    Contended,
}

impl fmt::Display for FdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FdbError::GroupAddress => "a multicast or broadcast MAC cannot be an FDB entry",
            FdbError::ReservedPort => "port id 65535 is reserved",
            FdbError::Full => {
                "the FDB is full even for static entries: flush dynamic entries or configure more max_entries"
            }
            FdbError::Contended => "the entry was being changed concurrently; try again",
        })
    }
}

impl std::error::Error for FdbError {}

/// One entry: key and value side by side. A bucket's seven slots span its
/// two cache lines, so the key scan pulls both lines in parallel and the
/// value read after a key match hits L1 (keys in one line and values in the
/// other made a hit cost two misses in a row).
#[repr(C)]
struct Slot {
    key: AtomicU64,
    val: AtomicU64,
}

/// 128 bytes: the tag word, seven slots and the overflow counter. A lookup
/// loads the tag word (first line) and the overflow counter (second line)
/// independently, so a bucket out of the caches costs one miss time, not
/// two in a row.
#[repr(C, align(128))]
struct Bucket {
    /// Byte `s` (0..7) is the tag of the key slot `s` holds or last held
    /// (`slot::tag_of`): a lookup compares only the keys whose tag matches
    /// (one word compared, instead of seven keys). A hint, never the truth:
    /// a match is confirmed on the key; only the thread that claimed a
    /// slot's key writes its byte, before it announces the key (README,
    /// "Tags").
    tags: AtomicU64,
    slots: [Slot; SLOTS_PER_BUCKET],
    /// How many stored (or being-inserted) keys have their home bucket
    /// before this one and sit after it, i.e. probed through it because it
    /// was full. A probe stops after a bucket whose count is 0, so freed
    /// slots need no tombstones.
    overflow: AtomicU64,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tags: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Slot {
                key: AtomicU64::new(FREE),
                val: AtomicU64::new(Val::INIT.0),
            }),
            overflow: AtomicU64::new(0),
        }
    }

    /// Sets the tag of slot `s`, whose key the caller has just claimed.
    /// Only the key's claimer writes the byte, so the byte read here is
    /// stable, and one atomic xor (which leaves the other bytes as other
    /// claimers set them) makes it `tag`. No write if it already is (a
    /// key learned again into the slot it had).
    fn set_tag(&self, s: usize, tag: u64) {
        let old = slot::tag_in(self.tags.load(Relaxed), s);
        if old != tag {
            self.tags.fetch_xor((old ^ tag) << (8 * s), SeqCst);
        }
    }
}

/// Where a key lives: computed once per operation from one hash.
#[derive(Clone, Copy)]
struct Probe {
    key: u64,
    home: usize,
    tag: u64,
}

/// Keeps the entry counter, written on every insert and remove, off the
/// line of read-mostly fields that every lookup reads.
#[repr(align(128))]
struct Padded<T>(T);

/// The forwarding database. All methods take `&self`: worker threads learn
/// and look up while a control thread ages, flushes and lists, without locks.
pub struct Fdb {
    buckets: Box<[Bucket]>,
    mask: usize,
    /// 64 - log2(bucket count): the hash's high bits pick the bucket.
    shift: u32,
    max_entries: usize,
    /// Physical limit, for static entries: 7/8 of the slots.
    hard_limit: usize,
    aging_ms: AtomicU64,
    refresh_ms: AtomicU64,
    /// A recent full time from the caller, to rebuild full times from the
    /// 40 stored bits. Written only when the caller's clock is far from it
    /// (at the first call with a wall-clock epoch; then every 2^38 ms).
    clock_ref: AtomicU64,
    count: Padded<AtomicUsize>,
    /// Per-port learned counts and limits, for ports below its length
    /// (empty: none kept, see [`Fdb::with_port_limits`]).
    ports: Box<[PortLearn]>,
}

/// One port's dynamic entries and their limit (0: none). The count is an
/// upper bound of the port's live dynamic entries at every instant: taken
/// before an entry goes live on the port, given back after it stopped
/// being (README, "Per-port learning limits"). One line per port, so that
/// workers learning on different ports do not share it.
#[repr(align(64))]
#[derive(Default)]
struct PortLearn {
    learned: AtomicU64,
    max: AtomicU64,
}

/// What a probe for a key found.
enum Find {
    Live {
        b: usize,
        s: usize,
        v: Val,
    },
    /// Another thread is inserting the key right now.
    Pending,
    Missing,
}

/// Verdict of an inserter's re-scan after it claimed a slot.
enum Verdict {
    Commit,
    Yield,
}

enum Insert {
    New,
    Full,
    Retry,
}

/// Reading a slot consistently.
enum Read {
    /// The slot holds the key, in this state (live, pending or dead).
    Holds(Val),
    /// The slot holds another key (or none).
    Other,
    /// The slot kept changing while being read.
    Unsure,
}

impl Fdb {
    /// Builds an empty table sized for `cfg.max_entries` at a load of at
    /// most 75% (bucket count a power of two: the load ends between 37.5%
    /// and 75%).
    pub fn new(cfg: FdbConfig) -> Fdb {
        let want_slots = cfg.max_entries.saturating_mul(4) / 3 + 1;
        let nb = want_slots
            .div_ceil(SLOTS_PER_BUCKET)
            .max(2)
            .checked_next_power_of_two()
            .unwrap_or(1 << (usize::BITS - 1));
        let buckets: Box<[Bucket]> = (0..nb).map(|_| Bucket::new()).collect();
        let slots = nb * SLOTS_PER_BUCKET;
        let fdb = Fdb {
            buckets,
            mask: nb - 1,
            shift: 64 - nb.trailing_zeros(),
            max_entries: cfg.max_entries,
            hard_limit: slots - slots / 8,
            aging_ms: AtomicU64::new(0),
            refresh_ms: AtomicU64::new(0),
            clock_ref: AtomicU64::new(0),
            count: Padded(AtomicUsize::new(0)),
            ports: Box::new([]),
        };
        fdb.set_aging_ms(cfg.aging_ms);
        fdb
    }

    /// [`Fdb::new`], keeping a count of learned entries for each port
    /// below `ports`, so that those ports can be given a learning limit
    /// ([`Fdb::set_port_limit`]). The counting costs one atomic add on the
    /// port's own line per entry learned, moved or removed (not per
    /// refresh or lookup).
    pub fn with_port_limits(cfg: FdbConfig, ports: usize) -> Fdb {
        let mut fdb = Fdb::new(cfg);
        fdb.ports = (0..ports.min(PortId::MAX as usize))
            .map(|_| PortLearn::default())
            .collect();
        fdb
    }

    /// Limits the dynamic entries learned on `port` to `max` (0: no limit
    /// but the table's). Entries already beyond a lowered limit stay until
    /// they age, move or are flushed; no new one is learned meanwhile.
    /// Returns false (nothing set) for a port the table keeps no count of.
    pub fn set_port_limit(&self, port: PortId, max: usize) -> bool {
        match self.ports.get(usize::from(port)) {
            Some(p) => {
                p.max.store(max as u64, Relaxed);
                true
            }
            None => false,
        }
    }

    /// The dynamic entries on `port`, as counted (exact when no change is
    /// in flight), and its limit (0: none); None for a port not counted.
    pub fn port_learned(&self, port: PortId) -> Option<(usize, usize)> {
        let p = self.ports.get(usize::from(port))?;
        Some((
            p.learned.load(Relaxed) as usize,
            p.max.load(Relaxed) as usize,
        ))
    }

    /// Takes room for one more dynamic entry on `port`: false if the port
    /// holds its limit. A plain load first, so that a port at its limit
    /// under a MAC flood costs no shared write.
    #[inline]
    fn take_port(&self, port: PortId) -> bool {
        let Some(p) = self.ports.get(usize::from(port)) else {
            return true;
        };
        let max = p.max.load(Relaxed);
        if max != 0 && p.learned.load(Relaxed) >= max {
            return false;
        }
        if p.learned.fetch_add(1, AcqRel) >= max && max != 0 {
            p.learned.fetch_sub(1, AcqRel);
            return false;
        }
        true
    }

    /// Gives back what [`Fdb::take_port`] took, or the count of an entry
    /// that stopped being a dynamic entry on `port`.
    #[inline]
    fn give_port(&self, port: PortId) {
        if let Some(p) = self.ports.get(usize::from(port)) {
            p.learned.fetch_sub(1, AcqRel);
        }
    }

    /// The entry for (net, mac), if stored. Never blocks, never writes.
    ///
    /// Time is not consulted: an entry past its ageing time is returned
    /// until [`Fdb::age`] removes it (the pipeline ages once per batch or
    /// per tick, so the window is short, and lookups stay free of clock
    /// reads). A lookup does not refresh the entry.
    #[inline]
    pub fn lookup(&self, net: NetworkId, mac: &[u8; 6]) -> Option<Entry> {
        if slot::is_group(mac) {
            return None;
        }
        match self.find(self.probe(net, mac)) {
            Find::Live { v, .. } => Some(self.entry(v)),
            Find::Pending | Find::Missing => None,
        }
    }

    /// The port of (net, mac), if stored: [`Fdb::lookup`] without the
    /// static flag and the time, which the forwarding of a frame does not
    /// need (and whose rebuilding from 40 bits costs a few instructions).
    #[inline]
    pub fn lookup_port(&self, net: NetworkId, mac: &[u8; 6]) -> Option<PortId> {
        if slot::is_group(mac) {
            return None;
        }
        match self.find(self.probe(net, mac)) {
            Find::Live { v, .. } => Some(v.port()),
            Find::Pending | Find::Missing => None,
        }
    }

    /// Starts loading the bucket where (net, mac) would be, without
    /// waiting for it. A stage that looks up a batch calls this a few frames
    /// ahead of `lookup`/`learn`, so that the cache misses of several frames
    /// overlap. Plain loads, not prefetch instructions (those would need
    /// `unsafe`), so they run at most a reorder buffer's worth ahead
    /// (docs/PERF.md has what they gain per table size).
    #[inline]
    pub fn prefetch(&self, net: NetworkId, mac: &[u8; 6]) {
        if let Some(bucket) = self.buckets.get(self.probe(net, mac).home) {
            // One word in each of the bucket's two lines.
            std::hint::black_box(bucket.tags.load(Relaxed));
            std::hint::black_box(bucket.overflow.load(Relaxed));
        }
    }

    /// Learns that a frame *from* `mac` arrived on `port` in network `net`
    /// at `now_ms` (the caller's monotonic clock, any epoch). Call it for
    /// source MACs only: frames *to* a MAC must not refresh it.
    ///
    /// Refuses group (multicast/broadcast) MACs ([`Learn::GroupSource`]) and
    /// `PortId::MAX` ([`Learn::ReservedPort`]). Never blocks, never
    /// allocates; writes shared memory only for a new entry, a move, or a
    /// refresh by at least [`Fdb::refresh_ms`].
    #[inline]
    pub fn learn(&self, net: NetworkId, mac: &[u8; 6], port: PortId, now_ms: u64) -> Learn {
        if slot::is_group(mac) {
            return Learn::GroupSource;
        }
        if port == PortId::MAX {
            return Learn::ReservedPort;
        }
        let p = self.probe(net, mac);
        let t = now_ms & slot::TIME_MASK;
        // The common case, inlined into the caller: the entry is there, on
        // this port, and its time recent enough: nothing to write.
        if let Find::Live { v, .. } = self.find(p) {
            if v.is_static() {
                return Learn::Static;
            }
            if v.port() == port && !self.is_stale(v, t) {
                return Learn::Refreshed;
            }
        }
        self.learn_write(p, port, now_ms)
    }

    /// What [`Fdb::learn`] would answer for a frame from `mac` on `port`
    /// now, without writing anything: no entry, time, count or port count
    /// changes (`shunt trace --packet` asks this). A key another thread is
    /// inserting reads as [`Learn::Refreshed`], as `learn` says then; a
    /// refresh is `Refreshed` whether or not its time would be rewritten.
    pub fn would_learn(&self, net: NetworkId, mac: &[u8; 6], port: PortId) -> Learn {
        if slot::is_group(mac) {
            return Learn::GroupSource;
        }
        if port == PortId::MAX {
            return Learn::ReservedPort;
        }
        let at_limit = |q: PortId| {
            self.ports.get(usize::from(q)).is_some_and(|p| {
                let max = p.max.load(Relaxed);
                max != 0 && p.learned.load(Relaxed) >= max
            })
        };
        match self.find(self.probe(net, mac)) {
            Find::Live { v, .. } if v.is_static() => Learn::Static,
            Find::Live { v, .. } if v.port() == port => Learn::Refreshed,
            Find::Live { .. } if at_limit(port) => Learn::PortLimit,
            Find::Live { v, .. } => Learn::Moved { from: v.port() },
            Find::Pending => Learn::Refreshed,
            Find::Missing if at_limit(port) => Learn::PortLimit,
            Find::Missing if self.count.0.load(Relaxed) >= self.max_entries => Learn::Full,
            Find::Missing => Learn::New,
        }
    }

    /// True if a learn at time `t` should rewrite the time of `v`: it moved
    /// forward by at least [`Fdb::refresh_ms`].
    #[inline(always)]
    fn is_stale(&self, v: Val, t: u64) -> bool {
        let ahead = slot::time_diff(t, v.time());
        ahead > 0 && ahead as u64 >= self.refresh_ms.load(Relaxed)
    }

    /// The rest of [`Fdb::learn`], where it may write: a new entry, a move,
    /// a refresh. Probes again (the entry may have changed since).
    #[inline(never)]
    fn learn_write(&self, p: Probe, port: PortId, now_ms: u64) -> Learn {
        // Every time stored is near `clock_ref`: only writes need it.
        self.note_clock(now_ms);
        let t = now_ms & slot::TIME_MASK;
        for _ in 0..MAX_ATTEMPTS {
            match self.find(p) {
                Find::Live { b, s, v } => {
                    if v.is_static() {
                        return Learn::Static;
                    }
                    let moving = v.port() != port;
                    let new = if !moving {
                        if !self.is_stale(v, t) {
                            return Learn::Refreshed;
                        }
                        v.with_time(t)
                    } else {
                        // Room on the new port before the entry is there.
                        if !self.take_port(port) {
                            // The MAC is no longer where the entry says:
                            // removed, not left pointing at the old port.
                            self.kill_live(b, s, p.key, v);
                            return Learn::PortLimit;
                        }
                        let ahead = slot::time_diff(t, v.time()) > 0;
                        let time = if ahead { t } else { v.time() };
                        Val::live(v.gen(), port, false, time)
                    };
                    // The generation in `v` makes this fail if the slot was
                    // freed and reused since it was read.
                    if self.buckets[b].slots[s]
                        .val
                        .compare_exchange(v.0, new.0, AcqRel, Relaxed)
                        .is_ok()
                    {
                        if !moving {
                            return Learn::Refreshed;
                        }
                        self.give_port(v.port());
                        return Learn::Moved { from: v.port() };
                    }
                    if moving {
                        self.give_port(port);
                    }
                }
                Find::Pending => return Learn::Refreshed,
                Find::Missing => {
                    if !self.take_port(port) {
                        return Learn::PortLimit;
                    }
                    match self.insert(p, port, false, t, self.max_entries) {
                        Insert::New => return Learn::New,
                        Insert::Full => {
                            self.give_port(port);
                            return Learn::Full;
                        }
                        Insert::Retry => self.give_port(port),
                    }
                }
            }
        }
        Learn::Contended
    }

    /// Adds a static entry, or turns an existing entry (dynamic or static)
    /// into a static one on `port`. Static entries never move, never age,
    /// are never evicted or flushed by port; only [`Fdb::remove`] and
    /// [`Fdb::remove_network`] delete them.
    ///
    /// Static entries count in [`Fdb::len`] and toward `max_entries` (so
    /// they leave less room for learning), but may be added beyond
    /// `max_entries`, up to 7/8 of the table's slots: an administrator's
    /// entry is not refused because a MAC flood filled the table.
    pub fn add_static(&self, net: NetworkId, mac: &[u8; 6], port: PortId) -> Result<(), FdbError> {
        if slot::is_group(mac) {
            return Err(FdbError::GroupAddress);
        }
        if port == PortId::MAX {
            return Err(FdbError::ReservedPort);
        }
        let p = self.probe(net, mac);
        // Control path: it may wait for a concurrent insert of the same key.
        for _ in 0..MAX_ATTEMPTS * 8 {
            match self.find(p) {
                Find::Live { b, s, v } => {
                    if v.is_static() && v.port() == port {
                        return Ok(());
                    }
                    let new = Val::live(v.gen(), port, true, 0);
                    if self.buckets[b].slots[s]
                        .val
                        .compare_exchange(v.0, new.0, AcqRel, Relaxed)
                        .is_ok()
                    {
                        // A dynamic entry became static: no longer learned.
                        if !v.is_static() {
                            self.give_port(v.port());
                        }
                        return Ok(());
                    }
                }
                Find::Pending => std::thread::yield_now(),
                Find::Missing => match self.insert(p, port, true, 0, self.hard_limit) {
                    Insert::New => return Ok(()),
                    Insert::Full => return Err(FdbError::Full),
                    Insert::Retry => std::thread::yield_now(),
                },
            }
        }
        Err(FdbError::Contended)
    }

    /// Removes the entry for (net, mac), static or dynamic. True if one was
    /// removed by this call.
    pub fn remove(&self, net: NetworkId, mac: &[u8; 6]) -> bool {
        if slot::is_group(mac) {
            return false;
        }
        let p = self.probe(net, mac);
        for _ in 0..MAX_ATTEMPTS {
            match self.find(p) {
                Find::Live { b, s, v } => {
                    if self.kill_live(b, s, p.key, v) {
                        return true;
                    }
                }
                // An insert in flight is not an entry yet: it orders after us.
                Find::Pending | Find::Missing => return false,
            }
        }
        false
    }

    /// Removes the dynamic entries not seen for more than the ageing time
    /// (`now_ms - last_seen > aging_ms`); returns how many. Never touches
    /// static entries. Entries whose time is ahead of `now_ms` (a worker's
    /// clock read later than this one) are kept.
    pub fn age(&self, now_ms: u64) -> usize {
        self.note_clock(now_ms);
        let t = now_ms & slot::TIME_MASK;
        let aging = self.aging_ms.load(Relaxed) as i64;
        self.sweep(|_, v| !v.is_static() && slot::time_diff(t, v.time()) > aging)
    }

    /// Sets the ageing time (capped at 2^39 - 1 ms) and with it the refresh
    /// granularity, [`Fdb::refresh_ms`].
    pub fn set_aging_ms(&self, ms: u64) {
        let ms = ms.min(slot::MAX_SPAN_MS);
        self.aging_ms.store(ms, Relaxed);
        self.refresh_ms
            .store((ms / 16).min(MAX_REFRESH_MS), Relaxed);
    }

    pub fn aging_ms(&self) -> u64 {
        self.aging_ms.load(Relaxed)
    }

    /// A learn rewrites an entry's time only when it moved forward by at
    /// least this much: aging_ms / 16, at most 1000 ms. So an entry may age
    /// out up to this much earlier than its last frame plus aging_ms.
    pub fn refresh_ms(&self) -> u64 {
        self.refresh_ms.load(Relaxed)
    }

    /// Removes the dynamic entries on `port` (a port went down or left its
    /// networks); returns how many. Static entries stay.
    pub fn flush_port(&self, port: PortId) -> usize {
        self.sweep(|_, v| !v.is_static() && v.port() == port)
    }

    /// Removes the dynamic entries of network `net`; returns how many.
    /// Static entries stay (see [`Fdb::remove_network`]).
    pub fn flush_network(&self, net: NetworkId) -> usize {
        self.sweep(|k, v| !v.is_static() && slot::decode_key(k).0 == net)
    }

    /// Removes every entry of network `net`, static ones included (the
    /// network is being deleted); returns how many.
    pub fn remove_network(&self, net: NetworkId) -> usize {
        self.sweep(|k, _| slot::decode_key(k).0 == net)
    }

    /// Entries stored, dynamic and static. Exact when no change is in
    /// flight; during concurrent inserts it may count inserts not yet
    /// visible.
    pub fn len(&self) -> usize {
        self.count.0.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries, sorted by (network, MAC), each key once. Walks the whole
    /// table (control path). Not a snapshot: entries changed during the walk
    /// may show their old or new state.
    pub fn entries(&self) -> Vec<(NetworkId, [u8; 6], Entry)> {
        let mut out = Vec::with_capacity(self.len());
        for bucket in self.buckets.iter() {
            for s in 0..SLOTS_PER_BUCKET {
                let k = bucket.slots[s].key.load(Relaxed);
                if k == FREE {
                    continue;
                }
                if let Read::Holds(v) = Self::read(bucket, s, k, Acquire) {
                    if v.is_live() {
                        let (net, mac) = slot::decode_key(k);
                        out.push((net, mac, self.entry(v)));
                    }
                }
            }
        }
        out.sort_unstable_by_key(|e| (e.0, e.1));
        // A key freed from one slot and re-learned in a later one during
        // the walk would show twice.
        out.dedup_by_key(|e| (e.0, e.1));
        out
    }

    /// `max_entries` as configured: the limit of learning.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Slots in the table (a power of two times [`SLOTS_PER_BUCKET`]).
    pub fn slots(&self) -> usize {
        self.buckets.len() * SLOTS_PER_BUCKET
    }

    /// Memory held by the table, allocated once in [`Fdb::new`].
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets) + std::mem::size_of::<Fdb>()
    }

    /// Checks the table's internal invariants. Meant for tests, and valid
    /// only while no other thread uses the table: no pending slot, no key
    /// stored twice, overflow counters equal to what the stored keys need,
    /// `len()` equal to the live entries, every entry found by `lookup`.
    pub fn validate(&self) -> Result<(), String> {
        let nb = self.buckets.len();
        let mut need = vec![0u64; nb];
        let mut seen = std::collections::HashSet::new();
        let mut live = 0usize;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for s in 0..SLOTS_PER_BUCKET {
                let k = bucket.slots[s].key.load(SeqCst);
                let v = Val(bucket.slots[s].val.load(SeqCst));
                if k == FREE {
                    if v.is_live() || v.is_pending() {
                        return Err(format!("free slot {b}/{s} has value {v:?}"));
                    }
                    continue;
                }
                if !v.is_live() {
                    return Err(format!("slot {b}/{s} holds a key in state {v:?}"));
                }
                if !seen.insert(k) {
                    return Err(format!("key {:?} stored twice", slot::decode_key(k)));
                }
                let tag = slot::tag_in(bucket.tags.load(SeqCst), s);
                if tag != slot::tag_of(slot::hash(k)) {
                    return Err(format!("slot {b}/{s} has tag {tag:#x} for its key"));
                }
                live += 1;
                let home = self.home(k);
                let mut i = home;
                while i != b {
                    need[i] += 1;
                    i = (i + 1) & self.mask;
                }
                let (net, mac) = slot::decode_key(k);
                if self.lookup(net, &mac) != Some(self.entry(v)) {
                    return Err(format!(
                        "key {:?} at {b}/{s} not found by lookup",
                        (net, mac)
                    ));
                }
            }
        }
        for (b, bucket) in self.buckets.iter().enumerate() {
            let have = bucket.overflow.load(SeqCst);
            if have != need[b] {
                return Err(format!(
                    "bucket {b}: overflow {have}, keys need {}",
                    need[b]
                ));
            }
        }
        if live != self.len() {
            return Err(format!("len() {} but {live} live entries", self.len()));
        }
        let mut per_port = vec![0u64; self.ports.len()];
        for (_, _, e) in self.entries() {
            if let Some(n) = per_port
                .get_mut(usize::from(e.port))
                .filter(|_| !e.is_static)
            {
                *n += 1;
            }
        }
        for (port, (p, want)) in self.ports.iter().zip(per_port).enumerate() {
            let have = p.learned.load(SeqCst);
            if have != want {
                return Err(format!(
                    "port {port}: learned count {have}, but {want} dynamic entries"
                ));
            }
        }
        Ok(())
    }

    // ---- internals -------------------------------------------------------

    #[inline]
    fn home(&self, key: u64) -> usize {
        slot::bucket_of(slot::hash(key), self.shift)
    }

    #[inline]
    fn probe(&self, net: NetworkId, mac: &[u8; 6]) -> Probe {
        let key = slot::encode_key(net, mac);
        let h = slot::hash(key);
        Probe {
            key,
            home: slot::bucket_of(h, self.shift),
            tag: slot::tag_of(h),
        }
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        (b + 1) & self.mask
    }

    #[inline]
    fn entry(&self, v: Val) -> Entry {
        Entry {
            port: v.port(),
            is_static: v.is_static(),
            last_seen_ms: if v.is_static() {
                0
            } else {
                slot::expand_time(self.clock_ref.load(Relaxed), v.time())
            },
        }
    }

    /// Keeps `clock_ref` within 2^38 ms of the callers' clock; a read in
    /// the common case.
    #[inline]
    fn note_clock(&self, now_ms: u64) {
        if self.clock_ref.load(Relaxed).abs_diff(now_ms) > 1 << 38 {
            self.clock_ref.store(now_ms, Relaxed);
        }
    }

    /// Reads slot `s` as (key, value) of one life of the slot: value, key,
    /// value again, same generation. A key load that follows a value load
    /// sees that life's key or a later one's; if the second value load is
    /// still in that life, the key was that life's key.
    #[inline]
    fn read(bucket: &Bucket, s: usize, key: u64, ord: Ordering) -> Read {
        for _ in 0..4 {
            match Self::read_once(bucket, s, key, ord) {
                Read::Unsure => {}
                r => return r,
            }
        }
        Read::Unsure
    }

    /// One attempt of [`Fdb::read`]: `Unsure` if the generation changed
    /// between the two value loads.
    #[inline(always)]
    fn read_once(bucket: &Bucket, s: usize, key: u64, ord: Ordering) -> Read {
        let load_ord = if ord == SeqCst { SeqCst } else { Acquire };
        let Some(slot) = bucket.slots.get(s) else {
            return Read::Other;
        };
        let v1 = Val(slot.val.load(load_ord));
        if slot.key.load(load_ord) != key {
            return Read::Other;
        }
        let v2 = Val(slot.val.load(load_ord));
        if v1.gen() == v2.gen() {
            Read::Holds(v2)
        } else {
            Read::Unsure
        }
    }

    /// Probes for a key: a live entry if there is one, else whether an
    /// insert of it is in flight. The common cases stay here, inlined into
    /// the datapath's calls: a live entry in the home bucket read at the
    /// first attempt, or a miss with no overflow. Anything else (the key
    /// past its home bucket, a slot in flux) takes the full probe.
    #[inline(always)]
    fn find(&self, p: Probe) -> Find {
        let Some(bucket) = self.buckets.get(p.home) else {
            return Find::Missing; // unreachable: home < bucket count
        };
        // Both lines of the bucket at once: the tags in the first, the
        // overflow in the second, where four of the seven values are. (An
        // overflow read earlier than the keys only makes the probe go on
        // further, or miss a key being inserted meanwhile.)
        let overflow = bucket.overflow.load(Acquire);
        let mut m = slot::tag_matches(bucket.tags.load(Acquire), p.tag);
        while m != 0 {
            let s = (m.trailing_zeros() / 8) as usize;
            m &= m - 1;
            match Self::read_once(bucket, s, p.key, Acquire) {
                Read::Other => {}
                Read::Holds(v) if v.is_live() => return Find::Live { b: p.home, s, v },
                Read::Holds(_) | Read::Unsure => return self.find_chain(p.key, p.home),
            }
        }
        if overflow == 0 {
            return Find::Missing;
        }
        self.find_chain(p.key, p.home)
    }

    /// The full probe: every key of every bucket from home until a bucket
    /// that nothing overflowed, without the tags.
    #[inline(never)]
    fn find_chain(&self, key: u64, home: usize) -> Find {
        let mut pending = false;
        let mut b = home;
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            // Compare all keys without branching: where a key matches is
            // random, so a branch per slot would mispredict on most hits.
            let mut hits = 0u32;
            for (s, slot) in bucket.slots.iter().enumerate() {
                hits |= u32::from(slot.key.load(Relaxed) == key) << s;
            }
            while hits != 0 {
                let s = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if let Read::Holds(v) = Self::read(bucket, s, key, Acquire) {
                    if v.is_live() {
                        return Find::Live { b, s, v };
                    }
                    pending |= v.is_pending();
                }
            }
            if bucket.overflow.load(Acquire) == 0 {
                break;
            }
            b = self.next(b);
        }
        if pending {
            Find::Pending
        } else {
            Find::Missing
        }
    }

    /// Inserts `key`, known missing a moment ago. Lock-free; exactly one of
    /// several concurrent inserters of one key commits (README: "Why
    /// learners cannot duplicate").
    fn insert(&self, p: Probe, port: PortId, is_static: bool, t: u64, limit: usize) -> Insert {
        let (key, home) = (p.key, p.home);
        // Reserve room; a plain load first so that a full table under a MAC
        // flood costs no shared write.
        if self.count.0.load(Relaxed) >= limit {
            return Insert::Full;
        }
        if self.count.0.fetch_add(1, Relaxed) >= limit {
            self.count.0.fetch_sub(1, Relaxed);
            return Insert::Full;
        }
        // Claim the first free slot from home on. Each full bucket passed is
        // counted in its overflow *before* the claim, so that any probe that
        // could need to reach the claimed slot does.
        let mut b = home;
        let mut dist = 0;
        let claimed = loop {
            let bucket = &self.buckets[b];
            let free = (0..SLOTS_PER_BUCKET).find(|&s| {
                bucket.slots[s].key.load(Relaxed) == FREE
                    && bucket.slots[s]
                        .key
                        .compare_exchange(FREE, key, SeqCst, Relaxed)
                        .is_ok()
            });
            if let Some(s) = free {
                break Some(s);
            }
            if dist + 1 == self.buckets.len() {
                break None;
            }
            bucket.overflow.fetch_add(1, SeqCst);
            b = self.next(b);
            dist += 1;
        };
        let Some(s) = claimed else {
            self.unwind(home, dist);
            self.count.0.fetch_sub(1, Relaxed);
            return Insert::Full;
        };
        let bucket = &self.buckets[b];
        // Before the announce: a probe that can see us pending or live
        // through the tags finds our tag set.
        bucket.set_tag(s, p.tag);
        // The previous life left the value DEAD before freeing the key, and
        // only the key's holder writes a DEAD value.
        let dead = Val(bucket.slots[s].val.load(Acquire));
        let pending = Val::pending(dead.gen().wrapping_add(1));
        // The claim proper: from here other inserters of `key` see us.
        let claimed = !dead.is_live()
            && !dead.is_pending()
            && bucket.slots[s]
                .val
                .compare_exchange(dead.0, pending.0, SeqCst, Relaxed)
                .is_ok();
        if claimed {
            if let Verdict::Commit = self.rescan(key, home, dist, s) {
                let live = Val::live(pending.gen(), port, is_static, t);
                // Fails only if a lower-placed inserter of `key` killed us.
                if bucket.slots[s]
                    .val
                    .compare_exchange(pending.0, live.0, SeqCst, Relaxed)
                    .is_ok()
                {
                    return Insert::New;
                }
            }
            // Yield: leave DEAD (a killer may have done it already).
            let _ = bucket.slots[s].val.compare_exchange(
                pending.0,
                Val::dead(pending.gen()).0,
                SeqCst,
                Relaxed,
            );
        }
        bucket.slots[s].key.store(FREE, Release);
        self.unwind(home, dist);
        self.count.0.fetch_sub(1, Relaxed);
        Insert::Retry
    }

    /// After claiming slot `own_s` in the bucket `own_dist` from `home`,
    /// looks for other slots holding `key` (all loads SeqCst: this is the
    /// "at least one of two racing inserters sees the other" step). Any live
    /// one, or a pending one placed before ours: we yield. A pending one
    /// placed after ours: we kill it, so that it cannot commit.
    fn rescan(&self, key: u64, home: usize, own_dist: usize, own_s: usize) -> Verdict {
        let mut b = home;
        for dist in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            for s in 0..SLOTS_PER_BUCKET {
                if dist == own_dist && s == own_s {
                    continue;
                }
                if bucket.slots[s].key.load(SeqCst) != key {
                    continue;
                }
                let mut settled = false;
                for _ in 0..MAX_ATTEMPTS {
                    let v = match Self::read(bucket, s, key, SeqCst) {
                        Read::Other => {
                            settled = true;
                            break;
                        }
                        Read::Unsure => continue,
                        Read::Holds(v) => v,
                    };
                    if v.is_live() {
                        return Verdict::Yield;
                    }
                    if !v.is_pending() {
                        settled = true; // dead: gone
                        break;
                    }
                    if (dist, s) < (own_dist, own_s) {
                        return Verdict::Yield;
                    }
                    if bucket.slots[s]
                        .val
                        .compare_exchange(v.0, Val::dead(v.gen()).0, SeqCst, SeqCst)
                        .is_ok()
                    {
                        settled = true;
                        break;
                    }
                    // It committed, or died, meanwhile: read it again.
                }
                if !settled {
                    return Verdict::Yield; // cannot tell: yielding is always safe
                }
            }
            // Buckets before ours have overflow >= 1 (our own increments);
            // past ours, other inserters' claims are reachable only through
            // overflowing buckets.
            if dist >= own_dist && bucket.overflow.load(SeqCst) == 0 {
                break;
            }
            b = self.next(b);
        }
        Verdict::Commit
    }

    /// Undoes the overflow increments of a key placed `dist` buckets after
    /// `home`; done after its slot stopped holding it.
    fn unwind(&self, home: usize, dist: usize) {
        let mut b = home;
        for _ in 0..dist {
            self.buckets[b].overflow.fetch_sub(1, Release);
            b = self.next(b);
        }
    }

    /// Removes the live entry `v` of `key` in slot (b, s). False if the slot
    /// changed since `v` was read (refreshed, moved, already removed).
    fn kill_live(&self, b: usize, s: usize, key: u64, v: Val) -> bool {
        let bucket = &self.buckets[b];
        // The linearisation point of the removal; the generation makes it
        // fail if the slot is in another life.
        if bucket.slots[s]
            .val
            .compare_exchange(v.0, Val::dead(v.gen()).0, AcqRel, Relaxed)
            .is_err()
        {
            return false;
        }
        // The key cannot change while the value is DEAD and the key set:
        // only we free it.
        bucket.slots[s].key.store(FREE, Release);
        let home = self.home(key);
        self.unwind(home, b.wrapping_sub(home) & self.mask);
        self.count.0.fetch_sub(1, Relaxed);
        if !v.is_static() {
            self.give_port(v.port());
        }
        true
    }

    /// Removes every live entry for which `pred(key, value)` holds.
    fn sweep(&self, pred: impl Fn(u64, Val) -> bool) -> usize {
        let mut removed = 0;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for s in 0..SLOTS_PER_BUCKET {
                // An entry refreshed or moved under us is judged again.
                for _ in 0..4 {
                    let k = bucket.slots[s].key.load(Relaxed);
                    if k == FREE {
                        break;
                    }
                    let v = match Self::read(bucket, s, k, Acquire) {
                        Read::Holds(v) => v,
                        Read::Other | Read::Unsure => continue,
                    };
                    if !v.is_live() || !pred(k, v) {
                        break;
                    }
                    if self.kill_live(b, s, k, v) {
                        removed += 1;
                        break;
                    }
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u32) -> [u8; 6] {
        let b = i.to_be_bytes();
        [0x02, 0x00, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn layout() {
        assert_eq!(std::mem::size_of::<Bucket>(), 128);
        assert_eq!(std::mem::align_of::<Bucket>(), 128);
    }

    #[test]
    fn sizing() {
        let f = Fdb::new(FdbConfig::default());
        assert_eq!(f.capacity(), 65536);
        assert!(f.slots() * 3 / 4 >= 65536);
        assert!(f.memory_bytes() <= 4 << 20, "{}", f.memory_bytes());
        let f = Fdb::new(FdbConfig {
            max_entries: 1 << 20,
            aging_ms: 1000,
        });
        assert!(f.memory_bytes() <= 64 << 20, "{}", f.memory_bytes());
        let f = Fdb::new(FdbConfig {
            max_entries: 0,
            aging_ms: 1000,
        });
        assert_eq!(f.learn(1, &mac(1), 1, 0), Learn::Full);
        assert_eq!(f.add_static(1, &mac(1), 1), Ok(()));
    }

    #[test]
    fn would_learn_answers_as_learn_and_writes_nothing() {
        let f = Fdb::with_port_limits(
            FdbConfig {
                max_entries: 2,
                aging_ms: 1000,
            },
            8,
        );
        f.set_port_limit(5, 1);
        assert_eq!(f.would_learn(1, &mac(1), 1), Learn::New);
        assert!(f.is_empty());
        assert_eq!(f.learn(1, &mac(1), 1, 10), Learn::New);
        assert_eq!(f.would_learn(1, &mac(1), 1), Learn::Refreshed);
        assert_eq!(f.would_learn(1, &mac(1), 2), Learn::Moved { from: 1 });
        assert_eq!(f.lookup_port(1, &mac(1)), Some(1));
        f.add_static(1, &mac(2), 3).expect("static");
        assert_eq!(f.would_learn(1, &mac(2), 1), Learn::Static);
        // Two entries of two: a new MAC finds the table full.
        assert_eq!(f.would_learn(1, &mac(3), 1), Learn::Full);
        assert_eq!(f.learn(1, &mac(3), 1, 10), Learn::Full);
        assert_eq!(f.would_learn(1, &[0xff; 6], 1), Learn::GroupSource);
        assert_eq!(f.would_learn(1, &mac(4), PortId::MAX), Learn::ReservedPort);
        f.remove(1, &mac(2));
        assert_eq!(f.learn(1, &mac(5), 5, 10), Learn::New);
        assert_eq!(f.would_learn(1, &mac(1), 5), Learn::PortLimit);
        assert_eq!(f.port_learned(5), Some((1, 1)));
        assert_eq!(f.len(), 2);
        assert_eq!(f.lookup_port(1, &mac(1)), Some(1));
    }

    #[test]
    fn overflow_chains_and_unwind() {
        // A tiny table (2 buckets, 14 slots) forces long probes and wraps.
        let f = Fdb::new(FdbConfig {
            max_entries: 8,
            aging_ms: 100,
        });
        assert_eq!(f.slots(), 14);
        for i in 0..8 {
            assert_eq!(f.learn(1, &mac(i), 1, 0), Learn::New);
        }
        assert_eq!(f.learn(1, &mac(8), 1, 0), Learn::Full);
        for i in 8..12 {
            assert_eq!(f.add_static(1, &mac(i), 2), Ok(()));
        }
        // hard limit = 14 - 14/8 = 13
        assert_eq!(f.add_static(1, &mac(12), 2), Ok(()));
        assert_eq!(f.add_static(1, &mac(13), 2), Err(FdbError::Full));
        f.validate().expect("valid");
        assert_eq!(f.age(1000), 8);
        f.validate().expect("valid after age");
        assert_eq!(f.len(), 5);
        for i in 8..13 {
            assert!(f.remove(1, &mac(i)));
        }
        f.validate().expect("valid after remove");
        assert!(f.buckets.iter().all(|b| b.overflow.load(SeqCst) == 0));
    }

    #[test]
    fn keys_with_one_tag_in_one_bucket() {
        // 2 buckets: collect keys of bucket 0 that share one tag, so that
        // a probe meets tag matches of other keys before its own.
        let f = Fdb::new(FdbConfig {
            max_entries: 8,
            aging_ms: 100,
        });
        let first = f.probe(1, &mac(0));
        let same: Vec<u32> = (0..1_000_000)
            .filter(|&i| {
                let p = f.probe(1, &mac(i));
                (p.home, p.tag) == (first.home, first.tag)
            })
            .take(5)
            .collect();
        assert_eq!(same.len(), 5);
        for (port, &i) in same.iter().enumerate() {
            assert_eq!(f.learn(1, &mac(i), port as u16, 0), Learn::New);
        }
        for (port, &i) in same.iter().enumerate() {
            assert_eq!(f.lookup_port(1, &mac(i)), Some(port as u16));
            assert_eq!(f.learn(1, &mac(i), port as u16, 0), Learn::Refreshed);
        }
        assert!(f.remove(1, &mac(same[0])));
        assert_eq!(f.lookup_port(1, &mac(same[0])), None);
        assert_eq!(f.lookup_port(1, &mac(same[4])), Some(4));
        f.validate().expect("valid");
    }

    #[test]
    fn generation_advances_per_life() {
        let f = Fdb::new(FdbConfig {
            max_entries: 1,
            aging_ms: 100,
        });
        for round in 0..300u32 {
            assert_eq!(f.learn(1, &mac(round), 3, 0), Learn::New);
            assert!(f.remove(1, &mac(round)));
        }
        f.validate().expect("valid");
    }
}
