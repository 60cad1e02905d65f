//! The multicast database as the workers see it: a snapshot the snooping
//! protocol (l2/snoop.rs) publishes whole whenever it changes, and the
//! workers load once per batch (`L2Link::mdb`). Readers never lock; the
//! lookup allocates nothing.

use crate::ids::{NetId, PortId, MAX_PORTS};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Words of a port set.
const SET_WORDS: usize = MAX_PORTS.div_ceil(64);

/// A set of ports, one bit each (128 bytes): copied to egress without
/// allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet([u64; SET_WORDS]);

impl Default for PortSet {
    fn default() -> PortSet {
        PortSet([0; SET_WORDS])
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(PortId::index))
            .finish()
    }
}

impl PortSet {
    #[inline]
    pub fn contains(&self, p: PortId) -> bool {
        let i = p.index();
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn insert(&mut self, p: PortId) {
        let i = p.index();
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn union(&mut self, other: &PortSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = PortId> + '_ {
        PortId::all().filter(|&p| self.contains(p))
    }
}

/// IPv4 or IPv6: snooping keeps router ports and queriers per family, as
/// the Linux bridge does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4 = 0,
    V6 = 1,
}

/// A multicast group address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Group {
    pub fn family(self) -> Family {
        match self {
            Group::V4(_) => Family::V4,
            Group::V6(_) => Family::V6,
        }
    }

    /// Groups never snooped, always flooded, as the Linux bridge: IPv4's
    /// local network control block 224.0.0.0/24 (`ipv4_is_local_multicast`)
    /// and IPv6's all-nodes ff02::1 (`ipv6_addr_is_ll_all_nodes`). Other
    /// link-scope IPv6 groups (solicited-node, ff02::fb) are snooped, as
    /// there.
    pub fn always_flooded(self) -> bool {
        match self {
            Group::V4(a) => a.octets()[..3] == [224, 0, 0],
            Group::V6(a) => a == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        }
    }

    /// A group a membership can be kept for: multicast and not always
    /// flooded.
    pub fn snoopable(self) -> bool {
        let mc = match self {
            Group::V4(a) => a.is_multicast(),
            Group::V6(a) => a.is_multicast(),
        };
        mc && !self.always_flooded()
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::V4(a) => a.fmt(f),
            Group::V6(a) => a.fmt(f),
        }
    }
}

/// A network's snooping state in the snapshot.
#[derive(Debug, Clone, Default)]
pub struct NetSnap {
    /// `multicast_flood_unregistered`.
    pub flood_unregistered: bool,
    /// Per family: a querier is known (another one heard within the
    /// other-querier-present interval, or the switch is querier). Without
    /// one, the bridge floods all multicast of the family, and so does
    /// this.
    pub querier: [bool; 2],
    /// Per family: the slot of the router ports' set.
    pub routers: [u16; 2],
}

/// Where a multicast frame goes, by the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Flooded as without snooping.
    Flood,
    /// To the set in `slot`: a registered group's members and router
    /// ports (`registered`), or the router ports alone.
    Set { slot: u16, registered: bool },
}

/// A multiply-rotate hasher (FxHash's step) for the group lookup every
/// snooped frame makes: the keys are a network index and an address the
/// hosts choose, in a table the l2 thread rebuilds, so there is no
/// flooding attack to defend against with SipHash, and SipHash was most of
/// the lookup (perf/benches/pipeline.rs `guard/multicast_data`).
#[derive(Default, Clone, Copy)]
pub struct GroupHasher(u64);

impl Hasher for GroupHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.write_u64(n.into());
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n.into());
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The snapshot: per network (by index) its state, `None` where snooping
/// is off; the groups and their port sets.
#[derive(Debug, Default)]
pub struct Mdb {
    nets: Vec<Option<NetSnap>>,
    groups: HashMap<(u16, Group), u16, BuildHasherDefault<GroupHasher>>,
    sets: Vec<PortSet>,
}

/// Port sets a snapshot holds at most (groups plus two router sets per
/// network): the slot is a `u16` in every frame's verdict.
pub const MAX_SETS: usize = u16::MAX as usize;

impl Mdb {
    /// An empty snapshot with snooping on for the networks `snooping`
    /// says (by index), no querier, nothing learned.
    pub fn new(snooping: &[(bool, bool)]) -> Mdb {
        let mut b = MdbBuilder::new(snooping.len());
        for (i, &(on, flood)) in snooping.iter().enumerate() {
            if on {
                if let Some(n) = NetId::new(i) {
                    b.net(
                        n,
                        flood,
                        [false; 2],
                        [PortSet::default(), PortSet::default()],
                    );
                }
            }
        }
        b.build()
    }

    /// Network `net`'s state, None where it does not snoop.
    #[inline]
    pub fn net(&self, net: NetId) -> Option<&NetSnap> {
        self.nets.get(net.index()).and_then(Option::as_ref)
    }

    /// Whether network `net` snoops.
    #[inline]
    pub fn snoops(&self, net: NetId) -> bool {
        self.net(net).is_some()
    }

    #[inline]
    pub fn set(&self, slot: u16) -> Option<&PortSet> {
        self.sets.get(usize::from(slot))
    }

    /// The delivery of a frame to `group` in `net` (a snooping network),
    /// `routers_only`: where an unregistered group goes to router ports
    /// rather than everywhere (the bridge's `mrouters_only`: data and
    /// v1/v2 reports; not queries, leaves, v3 reports). `control`: an
    /// IGMP or MLD message, whose group is never looked up, as the
    /// bridge's `br_mdb_entry_skb_get`: v1/v2 reports go to the router
    /// ports only, even to a registered group (a member that heard
    /// another's report would suppress its own, and then not send its
    /// leave), the rest is flooded.
    #[inline]
    pub fn delivery(
        &self,
        net: NetId,
        ns: &NetSnap,
        group: Group,
        routers_only: bool,
        control: bool,
    ) -> Delivery {
        let fam = group.family() as usize;
        if !ns.querier[fam] {
            return Delivery::Flood;
        }
        if control {
            return match routers_only {
                true => Delivery::Set {
                    slot: ns.routers[fam],
                    registered: false,
                },
                false => Delivery::Flood,
            };
        }
        if group.always_flooded() {
            return Delivery::Flood;
        }
        match self.groups.get(&(net.raw(), group)) {
            Some(&slot) => Delivery::Set {
                slot,
                registered: true,
            },
            None if routers_only && !ns.flood_unregistered => Delivery::Set {
                slot: ns.routers[fam],
                registered: false,
            },
            None => Delivery::Flood,
        }
    }

    pub fn groups(&self) -> usize {
        self.groups.len()
    }
}

/// Builds a snapshot (control path: the l2 thread).
pub struct MdbBuilder {
    mdb: Mdb,
}

impl MdbBuilder {
    pub fn new(nets: usize) -> MdbBuilder {
        MdbBuilder {
            mdb: Mdb {
                nets: vec![None; nets],
                groups: HashMap::default(),
                sets: Vec::new(),
            },
        }
    }

    fn push(&mut self, s: PortSet) -> Option<u16> {
        let slot = u16::try_from(self.mdb.sets.len()).ok()?;
        self.mdb.sets.push(s);
        Some(slot)
    }

    /// Network `net` snoops, with its queriers and router ports per family.
    pub fn net(
        &mut self,
        net: NetId,
        flood_unregistered: bool,
        querier: [bool; 2],
        routers: [PortSet; 2],
    ) {
        let [r4, r6] = routers;
        let (Some(a), Some(b)) = (self.push(r4), self.push(r6)) else {
            return;
        };
        if let Some(n) = self.mdb.nets.get_mut(net.index()) {
            *n = Some(NetSnap {
                flood_unregistered,
                querier,
                routers: [a, b],
            });
        }
    }

    /// A group of `net` (after `net`): its members; the router ports of its
    /// family are added. False when the snapshot is full.
    pub fn group(&mut self, net: NetId, group: Group, members: PortSet) -> bool {
        let Some(ns) = self.mdb.net(net).cloned() else {
            return false;
        };
        let mut s = members;
        if let Some(r) = self.mdb.set(ns.routers[group.family() as usize]) {
            s.union(r);
        }
        match self.push(s) {
            Some(slot) => {
                self.mdb.groups.insert((net.raw(), group), slot);
                true
            }
            None => false,
        }
    }

    pub fn build(self) -> Mdb {
        self.mdb
    }
}
