//! Typed ids and every limit of the switch, in one leaf module (it imports
//! nothing from the crate, so any module may use it without a cycle).
//!
//! There are no sentinel numbers: "no network", "no VLAN", "not from a
//! VTEP" are `None`; the switch's own stack and the remote VTEPs are
//! variants of [`Egress`]. Where a table needs a number (the FDB stores a
//! `u16` port, counters and transmit queues are arrays), the one encoding
//! is [`Egress::encode`] / [`Egress::decode`] and [`Egress::slot`].

use std::num::NonZeroU16;

/// Ports (TAP, AF_XDP) per switch: port ids are `0..MAX_PORTS`.
pub const MAX_PORTS: usize = 1024;
/// Remote VXLAN VTEPs per switch.
pub const MAX_VTEPS: usize = 64;
/// Networks (bridge domains) per switch: what a `u16` FDB key holds once
/// the two values the FDB and the old encoding reserved are left out.
pub const MAX_NETS: usize = u16::MAX as usize - 1;
/// VLAN ids run 0..VLAN_IDS (0: priority tag, 4095: reserved).
pub const VLAN_IDS: usize = 4096;

/// A port of the switch (TAP or AF_XDP), `0..MAX_PORTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u16);

impl PortId {
    #[inline]
    pub const fn new(i: usize) -> Option<PortId> {
        if i < MAX_PORTS {
            Some(PortId(i as u16))
        } else {
            None
        }
    }
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
    /// All port ids, in order.
    pub fn all() -> impl Iterator<Item = PortId> {
        (0..MAX_PORTS as u16).map(PortId)
    }
}

/// A network (bridge domain), `0..MAX_NETS`. Stored as index + 1 so that
/// `Option<NetId>` takes two bytes in every frame's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetId(NonZeroU16);

impl NetId {
    #[inline]
    pub const fn new(i: usize) -> Option<NetId> {
        if i < MAX_NETS {
            match NonZeroU16::new(i as u16 + 1) {
                Some(n) => Some(NetId(n)),
                None => None,
            }
        } else {
            None
        }
    }
    #[inline]
    pub const fn index(self) -> usize {
        self.0.get() as usize - 1
    }
    /// The network's key in the FDB and the other `u16`-keyed tables.
    #[inline]
    pub const fn raw(self) -> u16 {
        self.0.get() - 1
    }
}

/// A VLAN id a tag carries, 1..=4095 (VID 0 is a priority tag: no VLAN).
/// `Option<Vid>` is two bytes: `None` is "untagged".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vid(NonZeroU16);

impl Vid {
    #[inline]
    pub const fn new(v: u16) -> Option<Vid> {
        if (v as usize) < VLAN_IDS {
            match NonZeroU16::new(v) {
                Some(n) => Some(Vid(n)),
                None => None,
            }
        } else {
            None
        }
    }
    #[inline]
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

/// A remote VXLAN VTEP, `0..MAX_VTEPS` (its place in the `[vtep]` remotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VtepId(u8);

impl VtepId {
    #[inline]
    pub const fn new(k: usize) -> Option<VtepId> {
        if k < MAX_VTEPS {
            Some(VtepId(k as u8))
        } else {
            None
        }
    }
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a frame goes (or came from, or where the FDB learned a MAC): a
/// port, the switch's own stack, or a remote VTEP behind the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Egress {
    Port(PortId),
    Stack,
    Vtep(VtepId),
}

impl Egress {
    /// Slots of per-egress arrays (counters, transmit queues): the ports,
    /// the stack, the VTEPs.
    pub const SLOTS: usize = MAX_PORTS + 1 + MAX_VTEPS;

    /// The `u16` the FDB stores: ports as themselves, then the stack, then
    /// the VTEPs (the numbering shunt has always used, so state files and
    /// `shunt fdb` read the same).
    #[inline]
    pub const fn encode(self) -> u16 {
        match self {
            Egress::Port(p) => p.0,
            Egress::Stack => MAX_PORTS as u16,
            Egress::Vtep(k) => MAX_PORTS as u16 + 1 + k.0 as u16,
        }
    }

    /// The inverse of [`Egress::encode`]; `None` for a number no egress has.
    #[inline]
    pub const fn decode(v: u16) -> Option<Egress> {
        let v = v as usize;
        if v < MAX_PORTS {
            Some(Egress::Port(PortId(v as u16)))
        } else if v == MAX_PORTS {
            Some(Egress::Stack)
        } else if v < Self::SLOTS {
            Some(Egress::Vtep(VtepId((v - MAX_PORTS - 1) as u8)))
        } else {
            None
        }
    }

    /// The egress's index in per-egress arrays, `0..SLOTS`.
    #[inline]
    pub const fn slot(self) -> usize {
        self.encode() as usize
    }

    #[inline]
    pub const fn port(self) -> Option<PortId> {
        match self {
            Egress::Port(p) => Some(p),
            _ => None,
        }
    }

    #[inline]
    pub const fn is_vtep(self) -> bool {
        matches!(self, Egress::Vtep(_))
    }
}

impl From<PortId> for Egress {
    #[inline]
    fn from(p: PortId) -> Egress {
        Egress::Port(p)
    }
}

/// The segment a frame of the switch's own stack belongs to: one of the
/// networks, or the VXLAN underlay (whose ARP the stack answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    Net(NetId),
    Underlay,
}

impl Segment {
    /// The number the switch's MAC on the segment is derived from (the
    /// underlay's is the one it has always had, so MACs stay the same).
    #[inline]
    pub const fn mac_salt(self) -> u16 {
        match self {
            Segment::Net(n) => n.raw(),
            Segment::Underlay => u16::MAX - 1,
        }
    }
}

/// Frames per batch: what one poll takes from a port at most (the
/// pipeline's and the ports' batch size).
pub const BATCH: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_encoding_round_trips() {
        for v in 0..=u16::MAX {
            match Egress::decode(v) {
                Some(e) => assert_eq!(e.encode(), v),
                None => assert!(v as usize >= Egress::SLOTS),
            }
        }
        assert_eq!(Egress::Stack.encode() as usize, MAX_PORTS);
        let last = Egress::Vtep(VtepId::new(MAX_VTEPS - 1).expect("in range"));
        assert_eq!(last.slot(), Egress::SLOTS - 1);
    }

    #[test]
    fn ids_are_small_and_bounded() {
        assert_eq!(std::mem::size_of::<Option<NetId>>(), 2);
        assert_eq!(std::mem::size_of::<Option<Vid>>(), 2);
        assert_eq!(std::mem::size_of::<Egress>(), 4);
        assert_eq!(NetId::new(0).map(NetId::raw), Some(0));
        assert!(NetId::new(MAX_NETS).is_none());
        assert!(Vid::new(0).is_none() && Vid::new(4096).is_none());
        assert_eq!(Vid::new(4095).map(Vid::get), Some(4095));
        assert!(PortId::new(MAX_PORTS).is_none());
    }
}
