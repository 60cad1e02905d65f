//! The queues between the workers and the L2 control thread (`shunt-l2`):
//! copies of control frames as received go one way ([`CtlPkt`]), frames
//! to send out of one given port go the other ([`CtlOut`]).
//!
//! Both are bounded lock-free queues of fixed-size records, so nothing is
//! allocated per frame, and each has an eventfd so that neither side polls:
//! a worker signals after a batch that copied frames, the l2 thread after a
//! turn that queued some. Full is never waited for: a copy that does not
//! fit is counted (`to_l2_full`; the frame itself is still forwarded), a
//! frame the thread cannot queue is counted (`from_l2_full`).

use crate::counters::Counter;
use crate::ids::{NetId, PortId};
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Largest control frame carried either way (bytes, Ethernet header
/// included, no VLAN tag). An IGMPv3 or MLDv2 report of a 1500-byte MTU
/// fits; a longer frame is not copied (`to_l2_oversize`).
pub const CTL_FRAME: usize = 1536;
/// Records per queue, each way.
pub const CTL_QUEUE: usize = 512;

/// What a control frame is (which protocol of the l2 thread takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CtlKind {
    /// A frame to 01:80:c2:00:00:00 (STP/RSTP BPDUs).
    Bpdu = 0,
    /// IPv4 with protocol 2 (IGMP).
    Igmp = 1,
    /// ICMPv6 multicast listener messages (MLD: types 130, 131, 132, 143).
    Mld = 2,
}

impl CtlKind {
    pub const ALL: [CtlKind; 3] = [CtlKind::Bpdu, CtlKind::Igmp, CtlKind::Mld];

    #[inline]
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            CtlKind::Bpdu => "bpdu",
            CtlKind::Igmp => "igmp",
            CtlKind::Mld => "mld",
        }
    }
}

/// What the pipeline does with a frame of a kind a protocol claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A copy goes to the l2 thread; the frame is forwarded as any other
    /// (IGMP and MLD: the snooping bridge still forwards reports and
    /// queries).
    Copy,
    /// The frame goes to the l2 thread and no further (the switch's own
    /// BPDUs when it runs spanning tree): verdict `Control`.
    Consume,
}

/// A control frame as a worker received it: its ingress port, its network
/// (`None` where classify found none, e.g. a BPDU on a trunk without a
/// native network), and its bytes without the VLAN tag classify consumed.
#[derive(Clone, Copy)]
pub struct CtlPkt {
    pub port: PortId,
    pub net: Option<NetId>,
    pub kind: CtlKind,
    /// The VLAN id of the tag it came with (0: untagged or priority).
    pub vid: u16,
    pub len: u16,
    pub data: [u8; CTL_FRAME],
}

impl CtlPkt {
    /// Gathers `parts` into a record; None if they do not fit.
    pub fn gather(
        port: PortId,
        net: Option<NetId>,
        kind: CtlKind,
        vid: u16,
        parts: &[&[u8]],
    ) -> Option<CtlPkt> {
        let mut data = [0; CTL_FRAME];
        let len = gather(&mut data, parts)?;
        Some(CtlPkt {
            port,
            net,
            kind,
            vid,
            len,
            data,
        })
    }

    /// The frame's bytes (untagged).
    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.data[..usize::from(self.len).min(CTL_FRAME)]
    }
}

/// A frame the l2 thread sends out of port `port` directly, past forward
/// (a BPDU leaves a discarding port too). With `net`, the frame belongs to
/// that network and leaves tagged as the port carries it (dropped as
/// `no_destination` where the port does not carry it); without, it leaves
/// as it is (untagged BPDUs).
#[derive(Clone, Copy)]
pub struct CtlOut {
    pub port: PortId,
    pub net: Option<NetId>,
    pub len: u16,
    pub data: [u8; CTL_FRAME],
}

impl CtlOut {
    pub fn gather(port: PortId, net: Option<NetId>, parts: &[&[u8]]) -> Option<CtlOut> {
        let mut data = [0; CTL_FRAME];
        let len = gather(&mut data, parts)?;
        Some(CtlOut {
            port,
            net,
            len,
            data,
        })
    }

    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.data[..usize::from(self.len).min(CTL_FRAME)]
    }
}

/// Copies `parts` one after the other into `buf`; their length, or None
/// when they do not fit.
fn gather(buf: &mut [u8; CTL_FRAME], parts: &[&[u8]]) -> Option<u16> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > CTL_FRAME {
        return None;
    }
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Some(len as u16)
}

/// Per worker, that worker the only writer.
#[derive(Default)]
pub struct WorkerL2Counters {
    /// Control frames copied to the l2 thread.
    pub to_l2: Counter,
    /// Copies that found the queue full (the frame itself went on, or,
    /// when consumed, was dropped as `control_queue_full`).
    pub to_l2_full: Counter,
    /// Control frames longer than `CTL_FRAME`, not copied.
    pub to_l2_oversize: Counter,
    /// Frames the l2 thread asked to send that this worker queued.
    pub from_l2: Counter,
}

/// Per worker: what snooping did to multicast frames (pipeline/mcast.rs).
#[derive(Default)]
pub struct McastCounters {
    /// Frames to a registered group: sent to its members and router ports.
    pub to_members: Counter,
    /// Frames to an unregistered group sent to the router ports only.
    pub to_routers: Counter,
    /// Frames to an unregistered group flooded (no querier known, or
    /// `multicast_flood_unregistered`).
    pub flooded_unregistered: Counter,
    /// Frames to a group that is always flooded (224.0.0.0/24, ff02::1).
    pub flooded_link_local: Counter,
}

/// Written by the l2 thread only.
#[derive(Default)]
pub struct ThreadL2Counters {
    /// Frames the protocols sent.
    pub sent: Counter,
    /// Frames the protocols sent that found the queue full (lost).
    pub from_l2_full: Counter,
    /// Frames longer than `CTL_FRAME`, refused.
    pub from_l2_oversize: Counter,
    /// Copies the thread took from the workers.
    pub received: Counter,
    /// Copies of a kind no protocol takes (claims changed meanwhile).
    pub unclaimed: Counter,
}

/// What the workers and the l2 thread share.
pub struct L2Link {
    pub to_l2: ArrayQueue<CtlPkt>,
    pub from_l2: ArrayQueue<CtlOut>,
    pub to_l2_event: EventFd,
    pub from_l2_event: EventFd,
    /// Kinds some protocol takes (`CtlKind::bit`), and of those the ones
    /// consumed. Zero: the pipeline's control stage costs one check per
    /// batch.
    wants: AtomicU8,
    consumes: AtomicU8,
    /// Per worker.
    pub counters: Box<[WorkerL2Counters]>,
    pub thread: ThreadL2Counters,
    /// Snooping's snapshot for the workers (loaded once per batch) and
    /// for `shunt mdb`, and its counters (l2/snoop.rs).
    pub mdb: ArcSwap<super::mdb::Mdb>,
    pub mdb_list: ArcSwap<super::snoop::MdbList>,
    pub snoop: super::snoop::SnoopCounters,
    /// Per worker.
    pub mcast: Box<[McastCounters]>,
}

impl L2Link {
    pub fn new(workers: usize) -> std::io::Result<L2Link> {
        let ev = || {
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(std::io::Error::from)
        };
        Ok(L2Link {
            to_l2: ArrayQueue::new(CTL_QUEUE),
            from_l2: ArrayQueue::new(CTL_QUEUE),
            to_l2_event: ev()?,
            from_l2_event: ev()?,
            wants: AtomicU8::new(0),
            consumes: AtomicU8::new(0),
            counters: (0..workers.max(1))
                .map(|_| WorkerL2Counters::default())
                .collect(),
            thread: ThreadL2Counters::default(),
            mdb: ArcSwap::from_pointee(super::mdb::Mdb::default()),
            mdb_list: ArcSwap::from_pointee(super::snoop::MdbList::default()),
            snoop: super::snoop::SnoopCounters::default(),
            mcast: (0..workers.max(1))
                .map(|_| McastCounters::default())
                .collect(),
        })
    }

    /// Frames of `kind` go to the l2 thread from now on, as `claim` says.
    pub fn claim(&self, kind: CtlKind, claim: Claim) {
        self.wants.fetch_or(kind.bit(), Relaxed);
        match claim {
            Claim::Copy => self.consumes.fetch_and(!kind.bit(), Relaxed),
            Claim::Consume => self.consumes.fetch_or(kind.bit(), Relaxed),
        };
    }

    /// Frames of `kind` no longer go to the l2 thread.
    pub fn release(&self, kind: CtlKind) {
        self.wants.fetch_and(!kind.bit(), Relaxed);
        self.consumes.fetch_and(!kind.bit(), Relaxed);
    }

    /// The kinds wanted (bits of `CtlKind::bit`), read once per batch.
    #[inline]
    pub fn wants(&self) -> u8 {
        self.wants.load(Relaxed)
    }

    /// Whether frames of `kind` stop at the l2 thread.
    #[inline]
    pub fn consumes(&self, kind: CtlKind) -> bool {
        self.consumes.load(Relaxed) & kind.bit() != 0
    }

    /// Worker `worker` hands a copy over; false when the queue was full
    /// (counted).
    #[inline]
    pub fn push(&self, worker: usize, pkt: CtlPkt) -> bool {
        let c = self.counters.get(worker);
        match self.to_l2.push(pkt) {
            Ok(()) => {
                if let Some(c) = c {
                    c.to_l2.add(1);
                }
                true
            }
            Err(_) => {
                if let Some(c) = c {
                    c.to_l2_full.add(1);
                }
                false
            }
        }
    }

    /// Wakes the other side (an eventfd write; a full counter is fine:
    /// the reader is then already awake).
    pub fn signal(ev: &EventFd) {
        let _ = ev.write(1);
    }

    /// Clears an eventfd after wake-up.
    pub fn clear(ev: &EventFd) {
        let _ = ev.read();
    }

    /// `shunt stats --json` "l2": the channel's counters summed.
    pub fn stats_json(&self) -> serde_json::Value {
        let sum = |f: fn(&WorkerL2Counters) -> u64| self.counters.iter().map(f).sum::<u64>();
        let mc = |f: fn(&McastCounters) -> u64| self.mcast.iter().map(f).sum::<u64>();
        let mut snoop = serde_json::Map::new();
        for (k, v) in self.snoop.fields() {
            snoop.insert(k.to_string(), v.into());
        }
        let m = self.mdb.load();
        snoop.insert("mdb_groups".into(), (m.groups() as u64).into());
        snoop.insert(
            "mdb_entries".into(),
            (self.mdb_list.load().members.len() as u64).into(),
        );
        snoop.insert("to_members".into(), mc(|c| c.to_members.get()).into());
        snoop.insert("to_routers".into(), mc(|c| c.to_routers.get()).into());
        snoop.insert(
            "flooded_unregistered".into(),
            mc(|c| c.flooded_unregistered.get()).into(),
        );
        snoop.insert(
            "flooded_link_local".into(),
            mc(|c| c.flooded_link_local.get()).into(),
        );
        serde_json::json!({
            "snooping": snoop,
            "to_l2": sum(|c| c.to_l2.get()),
            "to_l2_full": sum(|c| c.to_l2_full.get()),
            "to_l2_oversize": sum(|c| c.to_l2_oversize.get()),
            "from_l2": sum(|c| c.from_l2.get()),
            "sent": self.thread.sent.get(),
            "from_l2_full": self.thread.from_l2_full.get(),
            "from_l2_oversize": self.thread.from_l2_oversize.get(),
            "received": self.thread.received.get(),
            "unclaimed": self.thread.unclaimed.get(),
        })
    }
}
