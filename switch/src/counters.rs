//! Counters. Each worker owns one `WorkerCounters` and is its only writer
//! (a relaxed load and store, no shared atomic add per frame, as Open
//! vSwitch does); readers sum over workers.

use crate::ids::Egress;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One list makes the enum, its stable snake_case names and its
/// explanations (VPP's error lists do the same).
macro_rules! drop_reasons {
    ($($variant:ident => $name:literal : $why:literal,)*) => {
        /// Why a frame was dropped. Every drop has exactly one reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum DropReason { $($variant,)* }
        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            /// The stable name used in `shunt stats --json`.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            /// One sentence for people reading `shunt stats` or a trace.
            pub fn explain(self) -> &'static str {
                match self { $(DropReason::$variant => $why,)* }
            }
        }
    };
}

drop_reasons! {
    Runt => "runt": "shorter than an Ethernet header (14 bytes)",
    Oversize => "oversize": "longer than the port's MTU allows",
    SrcMulticast => "src_multicast": "source MAC is multicast or broadcast",
    SamePort => "same_port": "destination learned on the ingress port",
    LinkLocal => "link_local": "link-local control frame (01:80:c2:00:00:0x) is never forwarded",
    StpDiscarding => "stp_discarding": "spanning tree: received on a port that is not forwarding (discarding or learning), or to a known destination behind one",
    NoDestination => "no_destination": "no other port in the network to deliver to",
    PortDown => "port_down": "the egress port is down",
    TxFull => "tx_full": "the egress port's transmit queue was full",
    TxError => "tx_error": "the egress port refused the frame",
    HandoffFull => "handoff_full": "the queue to the worker that owns the egress AF_XDP port was full",
    FdbFull => "fdb_full": "source not learned: the FDB is full (the frame itself is forwarded)",
    VlanNotAllowed => "vlan_not_allowed": "VLAN tag not allowed on the ingress port",
    VlanUntagged => "vlan_untagged": "untagged frame on a trunk port without a native network",
    VlanReserved => "vlan_reserved": "VLAN ID 4095 is reserved",
    HostQueueFull => "host_queue_full": "the queue to the switch's host stack was full (or, for a control frame the switch consumes, such as its spanning tree's BPDUs, the queue to its L2 control thread)",
    MacvlanUnknown => "macvlan_unknown": "unicast from a macvlan parent to a MAC no host has (never flooded)",
    MacvlanFiltered => "macvlan_filtered": "multicast a macvlan host sent, back from the parent: its mode delivers it to no host",
    UnderlayOther => "underlay_other": "on the VXLAN underlay but neither ARP nor VXLAN to the VTEP's address and UDP port",
    VxlanFragment => "vxlan_fragment": "a fragment of an IPv4 packet to the VTEP (VXLAN is never reassembled)",
    VxlanShort => "vxlan_short": "UDP to the VTEP port too short for a VXLAN header, or its length field disagrees",
    VxlanFlags => "vxlan_flags": "VXLAN header without the I flag (the VNI is not valid)",
    VxlanUnknownVni => "vxlan_unknown_vni": "VXLAN with a VNI no network of this switch has",
    VxlanUnknownVtep => "vxlan_unknown_vtep": "VXLAN from an address that is not a configured remote VTEP",
    VxlanInnerShort => "vxlan_inner_short": "the frame inside the VXLAN packet is shorter than an Ethernet header",
    VxlanInnerTagged => "vxlan_inner_tagged": "the frame inside the VXLAN packet carries a VLAN tag (RFC 7348 section 6.1)",
    VxlanNoNexthop => "vxlan_no_nexthop": "the underlay next hop towards the remote VTEP is not resolved (ARP) yet",
    VxlanTooBig => "vxlan_too_big": "the frame with its VXLAN encapsulation exceeds the underlay MTU",
    StackGso => "stack_gso": "a GSO super-frame for the switch's own stack, which takes none (it has no TCP: ARP, ping and DNS only)",
    LinkDown => "link_down": "the port's link is down (`shunt link PORT down`, or a flap schedule)",
    ImpairLoss => "impair_loss": "lost on purpose: the port's impairment (`loss`) took it",
    ImpairQueueFull => "impair_queue_full": "the port's impairment queue (delay, rate) was full: its limit of frames or bytes",
    StormBroadcast => "storm_broadcast": "storm control: the ingress port's broadcast frames per second ([[storm]] broadcast) were used up",
    StormMulticast => "storm_multicast": "storm control: the ingress port's multicast frames per second ([[storm]] multicast) were used up",
    StormUnknownUnicast => "storm_unknown_unicast": "storm control: the ingress port's unknown-unicast frames per second ([[storm]] unknown_unicast) were used up",
    PortLearnLimit => "port_learn_limit": "source not learned: the ingress port holds its max_learned MACs (the frame itself is forwarded)",
    MacFlapBlocked => "mac_flap_blocked": "source not learned: the MAC flapped between ports and its learning is blocked for a while (the frame itself is forwarded)",
    MirrorDestination => "mirror_destination": "received on a mirror's destination port, which takes no part in forwarding ([[mirror]], `shunt mirror`)",
    MirrorFull => "mirror_full": "a mirror copy not sent: the destination's queue had no room left beyond what original frames need",
    BadOffload => "bad_offload": "offload metadata (virtio-net header) that does not fit the frame: GSO size 0, checksum beyond the frame, a GSO type that does not match the headers, a length that lies",
}

/// One value per drop reason. A newtype over the array: std and serde
/// give `Default` and `Serialize` to arrays of at most 32 elements, and
/// there are more reasons than that. Indexes and iterates as the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerReason<T>(pub [T; DropReason::COUNT]);

impl<T: Default> Default for PerReason<T> {
    fn default() -> Self {
        PerReason(std::array::from_fn(|_| T::default()))
    }
}

impl<T> std::ops::Deref for PerReason<T> {
    type Target = [T; DropReason::COUNT];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> std::ops::DerefMut for PerReason<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T: serde::Serialize> serde::Serialize for PerReason<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As serde writes an array: a tuple.
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(DropReason::COUNT)?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

impl DropReason {
    /// `fdb_full`, `port_learn_limit` and `mac_flap_blocked` count
    /// learning that did not happen, not a frame lost.
    pub fn loses_frame(self) -> bool {
        !matches!(
            self,
            DropReason::FdbFull | DropReason::PortLearnLimit | DropReason::MacFlapBlocked
        )
    }
}

/// Why a frame was flooded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FloodCause {
    Broadcast = 0,
    UnknownUnicast = 1,
    Multicast = 2,
}

impl FloodCause {
    pub const ALL: [FloodCause; 3] = [
        FloodCause::Broadcast,
        FloodCause::UnknownUnicast,
        FloodCause::Multicast,
    ];
    pub fn name(self) -> &'static str {
        match self {
            FloodCause::Broadcast => "broadcast",
            FloodCause::UnknownUnicast => "unknown_unicast",
            FloodCause::Multicast => "multicast",
        }
    }
}

/// A counter with a single writer.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: load + store is enough and avoids a locked add.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// Takes back `n` this writer added (storm control's drops of frames
    /// forward counted as flooded).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(n), Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    /// Back to zero: only while its writer cannot write it (a detached
    /// port's slot after every worker passed a quiescent point).
    pub(crate) fn reset(&self) {
        self.0.store(0, Relaxed);
    }
}

#[derive(Default)]
pub struct PortCounters {
    pub rx_frames: Counter,
    pub rx_bytes: Counter,
    pub tx_frames: Counter,
    pub tx_bytes: Counter,
    /// Of `tx_frames`, those an AF_XDP port sent as the UMEM frame they
    /// arrived in (no copy).
    pub tx_zero_copy: Counter,
    /// GSO super-frames received (each counted once in `rx_frames`).
    pub rx_gso: Counter,
    /// Super-frames sent whole (the port takes the offload).
    pub tx_gso_whole: Counter,
    /// Segments the switch cut in software for this port (each also
    /// counted in `tx_frames`).
    pub tx_gso_segments: Counter,
    /// Checksums the switch completed in software for this port.
    pub tx_csum_soft: Counter,
    pub flooded: [Counter; 3],
    pub drops: PerReason<Counter>,
    pub learned: Counter,
    pub moved: Counter,
    /// Mirror copies made of this port's frames (it is a source).
    pub mirrored: Counter,
    /// Mirror copies sent out of this port (it is a destination; each
    /// also counted in `tx_frames`).
    pub mirror_sent: Counter,
    /// Mirror copies for this port that were not sent (each also counted
    /// under its drop reason).
    pub mirror_dropped: Counter,
}

// By hand: arrays of more than 32 (the drop reasons) derive no Default.
impl PortCounters {
    /// Zeroes every counter of the slot (see [`Counter::reset`]): a port
    /// id given to a new port starts from nothing.
    pub fn reset(&self) {
        let all = [
            &self.rx_frames,
            &self.rx_bytes,
            &self.tx_frames,
            &self.tx_bytes,
            &self.tx_zero_copy,
            &self.learned,
            &self.moved,
            &self.mirrored,
            &self.mirror_sent,
            &self.mirror_dropped,
        ];
        for c in all
            .into_iter()
            .chain(&self.flooded)
            .chain(self.drops.iter())
        {
            c.reset();
        }
    }
}

/// What one worker handed over to another (`shunt stats`: hand-over).
#[derive(Default)]
pub struct HandoffCounters {
    /// Frames put on the queue to the other worker.
    pub frames: Counter,
    /// Frames dropped because that queue was full (also counted as the
    /// egress port's `handoff_full`).
    pub full: Counter,
    /// Times this worker left frames in its ingress ring for the next poll
    /// because the queue lacked room for a batch (push-back, not a drop).
    pub held_back: Counter,
}

/// One worker's counters, one slot per egress (`Egress::slot`: the ports,
/// the switch's stack, the remote VTEPs), and one per worker it hands
/// frames over to.
pub struct WorkerCounters {
    ports: Box<[PortCounters]>,
    handoff: Box<[HandoffCounters]>,
    pub batches: Counter,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerCounters {
    pub fn new() -> WorkerCounters {
        Self::with_workers(1)
    }

    /// Counters of one of `workers` workers.
    pub fn with_workers(workers: usize) -> WorkerCounters {
        WorkerCounters {
            ports: (0..Egress::SLOTS)
                .map(|_| PortCounters::default())
                .collect(),
            handoff: (0..workers).map(|_| HandoffCounters::default()).collect(),
            batches: Counter::default(),
        }
    }

    /// What this worker handed over to worker `to` (None: no such worker).
    #[inline]
    pub fn handoff(&self, to: usize) -> Option<&HandoffCounters> {
        self.handoff.get(to)
    }

    /// The counters of `e` (every egress has its slot).
    #[inline]
    pub fn port(&self, e: Egress) -> &PortCounters {
        // `new` made `Egress::SLOTS` slots and every slot is below that.
        &self.ports[e.slot()]
    }

    #[inline]
    pub fn count_drop(&self, e: Egress, reason: DropReason) {
        self.port(e).drops[reason as usize].add(1);
    }

    /// Counts the outcome of sending one copy queued for `to` out of port
    /// `dev`: transmitted (on both when the queue is a VTEP behind the
    /// underlay), or dropped for the one reason the port gave.
    #[inline]
    pub fn count_tx(
        &self,
        to: Egress,
        dev: crate::ids::PortId,
        sent: Result<usize, impl Into<DropReason>>,
    ) {
        self.count_copy(to, dev, false, sent)
    }

    /// [`count_tx`](Self::count_tx) for a copy that may be a mirror's
    /// (`mirror`): then also counted as a mirror copy sent or dropped.
    #[inline]
    pub fn count_copy(
        &self,
        to: Egress,
        dev: crate::ids::PortId,
        mirror: bool,
        sent: Result<usize, impl Into<DropReason>>,
    ) {
        let pc = self.port(to);
        match sent {
            Ok(n) => {
                pc.tx_frames.add(1);
                pc.tx_bytes.add(n as u64);
                if mirror {
                    pc.mirror_sent.add(1);
                }
                if Egress::Port(dev) != to {
                    let dc = self.port(dev.into());
                    dc.tx_frames.add(1);
                    dc.tx_bytes.add(n as u64);
                }
            }
            Err(e) => self.count_copy_drop(to, mirror, e.into()),
        }
    }

    /// A copy for `to` lost for `reason`; a mirror's (`mirror`) also
    /// counted as a mirror copy dropped.
    #[inline]
    pub fn count_copy_drop(&self, to: Egress, mirror: bool, reason: DropReason) {
        let pc = self.port(to);
        pc.drops[reason as usize].add(1);
        if mirror {
            pc.mirror_dropped.add(1);
        }
    }
}

/// A port's counters summed over workers (control path).
#[derive(Debug, Clone, Default)]
pub struct PortTotals {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_zero_copy: u64,
    pub offload: OffloadTotals,
    pub flooded: [u64; 3],
    pub drops: PerReason<u64>,
    pub learned: u64,
    pub moved: u64,
    pub mirror: MirrorTotals,
}

/// A port's mirror counters (`shunt stats`: "mirror").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MirrorTotals {
    /// Copies made of the port's frames (a source).
    pub copied: u64,
    /// Copies sent out of the port (a destination).
    pub sent: u64,
    /// Copies for the port that were not sent (a destination).
    pub dropped: u64,
}

/// A port's offload counters (`shunt stats`: "offload").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OffloadTotals {
    /// GSO super-frames received.
    pub rx_gso: u64,
    /// Super-frames sent whole: the port takes the offload.
    pub tx_gso_whole: u64,
    /// Segments made in software for this port.
    pub tx_gso_segments: u64,
    /// Checksums completed in software for this port.
    pub tx_csum_soft: u64,
}

pub fn sum_port(workers: &[std::sync::Arc<WorkerCounters>], e: Egress) -> PortTotals {
    let mut t = PortTotals::default();
    for w in workers {
        let p = w.port(e);
        t.rx_frames += p.rx_frames.get();
        t.rx_bytes += p.rx_bytes.get();
        t.tx_frames += p.tx_frames.get();
        t.tx_bytes += p.tx_bytes.get();
        t.tx_zero_copy += p.tx_zero_copy.get();
        t.offload.rx_gso += p.rx_gso.get();
        t.offload.tx_gso_whole += p.tx_gso_whole.get();
        t.offload.tx_gso_segments += p.tx_gso_segments.get();
        t.offload.tx_csum_soft += p.tx_csum_soft.get();
        t.learned += p.learned.get();
        t.moved += p.moved.get();
        t.mirror.copied += p.mirrored.get();
        t.mirror.sent += p.mirror_sent.get();
        t.mirror.dropped += p.mirror_dropped.get();
        for i in 0..3 {
            t.flooded[i] += p.flooded[i].get();
        }
        for i in 0..DropReason::COUNT {
            t.drops[i] += p.drops[i].get();
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()));
            assert!(r
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!r.explain().is_empty());
        }
    }

    #[test]
    fn sums_over_workers() {
        let a = std::sync::Arc::new(WorkerCounters::new());
        let b = std::sync::Arc::new(WorkerCounters::new());
        let p1 = Egress::Port(crate::ids::PortId::new(1).expect("in range"));
        a.port(p1).rx_frames.add(3);
        b.port(p1).rx_frames.add(4);
        b.count_drop(p1, DropReason::Runt);
        let t = sum_port(&[a, b], p1);
        assert_eq!(t.rx_frames, 7);
        assert_eq!(t.drops[DropReason::Runt as usize], 1);
    }
}
