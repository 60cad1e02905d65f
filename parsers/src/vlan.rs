//! IEEE 802.1Q (C-tag, TPID 0x8100) and 802.1ad (S-tag, TPID 0x88a8) VLAN
//! tags.
//!
//! Two ways in:
//! - [`VlanTag`], a layered view like the others: it wraps the *payload* of
//!   an Ethernet frame whose EtherType is a TPID, i.e. TCI (2 bytes), inner
//!   EtherType (2 bytes), then the inner payload. Stacked tags (QinQ) are
//!   parsed by wrapping [`VlanTag::payload`] again.
//! - Raw-frame helpers for the switch hot path, which never build a view:
//!   [`outer_tag`] reads bytes 12..18 only; [`push_tag`], [`pop_tag`] and
//!   [`set_outer_tag`] edit a frame in place inside a buffer with headroom,
//!   moving only the 12 MAC bytes, never the payload.

use crate::bytes::{get_u16, set_u16};
use crate::error::{Error, Result};
use crate::ethernet::EtherType;

/// Length of one tag as it appears in a frame: TPID + TCI.
pub const TAG_LEN: usize = 4;
/// Highest VLAN id that may be configured; 4095 is reserved (dropped
/// everywhere) and 0 means "priority tag, no VLAN".
pub const VID_MAX: u16 = 4094;
/// The reserved VID 4095.
pub const VID_RESERVED: u16 = 0x0fff;

/// Where the MAC addresses end and the first TPID / EtherType starts.
/// The destination and source MAC in front of a tag.
pub const MACS_LEN: usize = 12;
/// An EtherType (or TPID) field.
const ETHERTYPE_LEN: usize = 2;

mod field {
    use core::ops::{Range, RangeFrom};

    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of the [`VlanTag`] view's header (TCI + inner EtherType).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// Builds a Tag Control Information word: PCP (3 bits), DEI (1 bit),
/// VID (12 bits). Out-of-range `pcp` / `vid` bits are masked off.
#[inline]
pub const fn tci(pcp: u8, dei: bool, vid: u16) -> u16 {
    ((pcp as u16 & 0x7) << 13) | ((dei as u16) << 12) | (vid & 0x0fff)
}

#[inline]
const fn tci_pcp(tci: u16) -> u8 {
    (tci >> 13) as u8
}

#[inline]
const fn tci_dei(tci: u16) -> bool {
    tci & 0x1000 != 0
}

#[inline]
const fn tci_vid(tci: u16) -> u16 {
    tci & 0x0fff
}

/// A view of the 4 bytes that follow a TPID: TCI and inner EtherType.
///
/// Wraps the payload of an [`EthernetFrame`](crate::EthernetFrame) (or of an
/// outer `VlanTag`) whose EtherType is [`EtherType::Vlan`] or
/// [`EtherType::QinQ`]; the TPID itself belongs to the enclosing layer.
///
/// Once [`check_len`](Self::check_len) has succeeded, no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<VlanTag<T>> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// Ensures the buffer holds TCI and inner EtherType.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    #[inline]
    pub fn tci(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (802.1p), 0..=7.
    #[inline]
    pub fn pcp(&self) -> u8 {
        tci_pcp(self.tci())
    }

    /// Drop eligible indicator (formerly CFI).
    #[inline]
    pub fn dei(&self) -> bool {
        tci_dei(self.tci())
    }

    /// VLAN id, 0..=4095 (0: priority tag only; 4095: reserved).
    #[inline]
    pub fn vid(&self) -> u16 {
        tci_vid(self.tci())
    }

    /// EtherType of what follows the tag (may be another TPID).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from_u16(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        set_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let t = self.tci();
        self.set_tci(tci(pcp, tci_dei(t), tci_vid(t)));
    }

    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let t = self.tci();
        self.set_tci(tci(tci_pcp(t), dei, tci_vid(t)));
    }

    /// Sets the VID; bits above the low 12 are ignored.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let t = self.tci();
        self.set_tci(tci(tci_pcp(t), tci_dei(t), vid));
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.to_u16());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The outermost VLAN tag of a frame, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// [`EtherType::Vlan`] (0x8100) or [`EtherType::QinQ`] (0x88a8).
    pub tpid: EtherType,
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    /// What follows the tag; another TPID for stacked tags.
    pub inner_ethertype: EtherType,
}

impl Tag {
    /// The TCI word this tag was decoded from.
    #[inline]
    pub const fn tci(&self) -> u16 {
        tci(self.pcp, self.dei, self.vid)
    }

    /// VID 0: a priority tag, the frame belongs to the port's VLAN.
    #[inline]
    pub const fn is_priority_only(&self) -> bool {
        self.vid == 0
    }
}

/// The outer tag of a raw frame, reading bytes 12..18 only.
///
/// `None` if the frame is untagged (EtherType is not 0x8100 / 0x88a8) or too
/// short to hold a whole tag and inner EtherType (18 bytes).
#[inline]
pub fn outer_tag(frame: &[u8]) -> Option<Tag> {
    let b = frame.get(MACS_LEN..MACS_LEN + TAG_LEN + 2)?;
    let tpid = EtherType::from_u16(u16::from_be_bytes([b[0], b[1]]));
    if !tpid.is_vlan_tag() {
        return None;
    }
    let t = u16::from_be_bytes([b[2], b[3]]);
    Some(Tag {
        tpid,
        pcp: tci_pcp(t),
        dei: tci_dei(t),
        vid: tci_vid(t),
        inner_ethertype: EtherType::from_u16(u16::from_be_bytes([b[4], b[5]])),
    })
}

/// Inserts a tag after the MAC addresses of the frame at
/// `buf[start..start + len]`, by moving the 12 MAC bytes 4 bytes to the
/// left into headroom (the payload stays where it is).
///
/// Returns the new `(start, len)` = `(start - 4, len + 4)`, or `None`
/// without touching `buf` if there is less than 4 bytes of headroom, the
/// frame is shorter than an Ethernet header (14 bytes) or `start + len`
/// lies outside `buf`.
#[inline]
pub fn push_tag(
    buf: &mut [u8],
    start: usize,
    len: usize,
    tpid: EtherType,
    tci: u16,
) -> Option<(usize, usize)> {
    let end = start.checked_add(len)?;
    if start < TAG_LEN || len < crate::ethernet::HEADER_LEN || end > buf.len() {
        return None;
    }
    let new_start = start - TAG_LEN;
    buf.copy_within(start..start + MACS_LEN, new_start);
    let tag = buf.get_mut(new_start + MACS_LEN..start + MACS_LEN)?;
    tag[0..2].copy_from_slice(&tpid.to_u16().to_be_bytes());
    tag[2..4].copy_from_slice(&tci.to_be_bytes());
    Some((new_start, len + TAG_LEN))
}

/// Removes the outer tag of the frame at `buf[start..start + len]`, by
/// moving the 12 MAC bytes 4 bytes to the right (the payload stays).
///
/// Returns the new `(start, len)` = `(start + 4, len - 4)`, or `None`
/// without touching `buf` if the frame has no 802.1Q/802.1ad outer tag, is
/// shorter than a tagged header (18 bytes), or lies outside `buf`.
#[inline]
pub fn pop_tag(buf: &mut [u8], start: usize, len: usize) -> Option<(usize, usize)> {
    let end = start.checked_add(len)?;
    let frame = buf.get(start..end)?;
    outer_tag(frame)?;
    buf.copy_within(start..start + MACS_LEN, start + TAG_LEN);
    Some((start + TAG_LEN, len - TAG_LEN))
}

/// Rewrites the outer tag of a raw frame in place (VLAN translation, PCP
/// remark). Errors with [`Error::Malformed`] if the frame is not tagged and
/// [`Error::Truncated`] if it is too short to be.
#[inline]
pub fn set_outer_tag(frame: &mut [u8], tpid: EtherType, tci: u16) -> Result<()> {
    let b = frame
        .get_mut(MACS_LEN..MACS_LEN + TAG_LEN + 2)
        .ok_or(Error::Truncated)?;
    if !EtherType::from_u16(u16::from_be_bytes([b[0], b[1]])).is_vlan_tag() {
        return Err(Error::Malformed);
    }
    b[0..2].copy_from_slice(&tpid.to_u16().to_be_bytes());
    b[2..4].copy_from_slice(&tci.to_be_bytes());
    Ok(())
}

/// A raw frame read past `tag_len` bytes of VLAN tags after its MAC
/// addresses, without moving anything: the 12 MAC bytes and what follows
/// the tags (the EtherType onwards). Gathered, the two pieces are the frame
/// without those tags. For a stage that already knows how many tag bytes a
/// frame carries (classify decided): the tag bytes themselves are not read.
///
/// Made only by [`Untagged::new`], which checks the lengths: no accessor
/// panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Untagged<'a> {
    macs: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Untagged<'a> {
    /// `None` if `frame` is shorter than 14 + `tag_len` bytes.
    #[inline]
    pub fn new(frame: &'a [u8], tag_len: usize) -> Option<Untagged<'a>> {
        let macs = frame.get(..MACS_LEN)?;
        let rest = frame.get(MACS_LEN.checked_add(tag_len)?..)?;
        if rest.len() < ETHERTYPE_LEN {
            return None;
        }
        Some(Untagged { macs, rest })
    }

    /// Destination and source MAC, 12 bytes.
    #[inline]
    pub fn macs(&self) -> &'a [u8] {
        self.macs
    }

    /// Everything after the tags: the EtherType, then the payload.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from_u16(get_u16(self.rest, 0..ETHERTYPE_LEN))
    }

    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.rest[ETHERTYPE_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for VlanTag<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::{EthernetFrame, MacAddr};

    // arp_icmp.pcap frame 2: ARP reply 10.0.0.1 is-at 02:00:00:00:00:01.
    static ARP_REPLY: [u8; 42] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00,
        0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02,
    ];

    // The same reply with an 802.1Q tag PCP 5, DEI 0, VID 100 (TCI 0xa064)
    // inserted by hand (the captures hold no tagged frame); `tcpdump -e`
    // reads it as "vlan 100, p 5, ethertype ARP".
    static ARP_REPLY_VLAN100: [u8; 46] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00,
        0x02,
    ];

    #[test]
    fn test_deconstruct() {
        let eth = EthernetFrame::new_checked(&ARP_REPLY_VLAN100[..]).unwrap();
        assert_eq!(eth.ethertype(), EtherType::Vlan);
        let tag = VlanTag::new_checked(eth.payload()).unwrap();
        assert_eq!(tag.tci(), 0xa064);
        assert_eq!(tag.pcp(), 5);
        assert!(!tag.dei());
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.ethertype(), EtherType::Arp);
        assert_eq!(tag.payload(), &ARP_REPLY[14..]);

        let t = outer_tag(&ARP_REPLY_VLAN100).unwrap();
        assert_eq!(
            t,
            Tag {
                tpid: EtherType::Vlan,
                pcp: 5,
                dei: false,
                vid: 100,
                inner_ethertype: EtherType::Arp
            }
        );
        assert_eq!(t.tci(), 0xa064);
        assert_eq!(outer_tag(&ARP_REPLY), None);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0u8; 46];
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_dst_addr(MacAddr([2, 0, 0, 0, 0, 2]));
        eth.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(EtherType::Vlan);
        let mut tag = VlanTag::new_unchecked(eth.payload_mut());
        tag.set_vid(100);
        tag.set_pcp(5);
        tag.set_dei(true);
        tag.set_dei(false);
        tag.set_ethertype(EtherType::Arp);
        tag.payload_mut().copy_from_slice(&ARP_REPLY[14..]);
        assert_eq!(bytes, ARP_REPLY_VLAN100);
    }

    #[test]
    fn tci_packing() {
        assert_eq!(tci(7, true, 4095), 0xffff);
        assert_eq!(tci(0, false, 1), 0x0001);
        assert_eq!(tci(0, true, 0), 0x1000);
        // Out-of-range bits do not leak into neighbouring fields.
        assert_eq!(tci(0xff, false, 0xffff), 0xefff);
    }

    #[test]
    fn push_then_pop_is_identity_and_moves_only_macs() {
        let mut buf = [0xeeu8; 64];
        let start = 10;
        buf[start..start + 42].copy_from_slice(&ARP_REPLY);
        let payload_ptr_before = buf[start + 14..].as_ptr();

        let (s, l) = push_tag(&mut buf, start, 42, EtherType::Vlan, tci(5, false, 100)).unwrap();
        assert_eq!((s, l), (6, 46));
        assert_eq!(&buf[s..s + l], &ARP_REPLY_VLAN100[..]);
        // The payload did not move: same address, same bytes.
        assert_eq!(buf[s + 18..].as_ptr(), payload_ptr_before);

        let (s, l) = pop_tag(&mut buf, s, l).unwrap();
        assert_eq!((s, l), (start, 42));
        assert_eq!(&buf[s..s + l], &ARP_REPLY[..]);
        // Popping an untagged frame is refused and leaves it alone.
        assert_eq!(pop_tag(&mut buf, s, l), None);
        assert_eq!(&buf[s..s + l], &ARP_REPLY[..]);
    }

    #[test]
    fn qinq_push_stacks_outer_tag() {
        let mut buf = [0u8; 64];
        buf[8..8 + 42].copy_from_slice(&ARP_REPLY);
        let (s, l) = push_tag(&mut buf, 8, 42, EtherType::Vlan, tci(0, false, 100)).unwrap();
        let (s, l) = push_tag(&mut buf, s, l, EtherType::QinQ, tci(0, false, 20)).unwrap();
        assert_eq!((s, l), (0, 50));
        let outer = outer_tag(&buf[s..s + l]).unwrap();
        assert_eq!(
            (outer.tpid, outer.vid, outer.inner_ethertype),
            (EtherType::QinQ, 20, EtherType::Vlan)
        );
        let eth = EthernetFrame::new_checked(&buf[s..s + l]).unwrap();
        let s_tag = VlanTag::new_checked(eth.payload()).unwrap();
        let c_tag = VlanTag::new_checked(s_tag.payload()).unwrap();
        assert_eq!((c_tag.vid(), c_tag.ethertype()), (100, EtherType::Arp));
    }

    #[test]
    fn no_room_returns_none_and_leaves_buffer() {
        let mut buf = [0u8; 46];
        buf[..42].copy_from_slice(&ARP_REPLY);
        let before = buf;
        for start in 0..TAG_LEN {
            assert_eq!(push_tag(&mut buf, start, 42, EtherType::Vlan, 1), None);
        }
        assert_eq!(push_tag(&mut buf, 4, 43, EtherType::Vlan, 1), None); // past the end
        assert_eq!(push_tag(&mut buf, 4, 13, EtherType::Vlan, 1), None); // not a frame
        assert_eq!(push_tag(&mut buf, usize::MAX, 2, EtherType::Vlan, 1), None);
        assert_eq!(pop_tag(&mut buf, usize::MAX, 2), None);
        assert_eq!(pop_tag(&mut buf, 40, 17), None);
        assert_eq!(buf, before);
    }

    #[test]
    fn pop_needs_full_tag() {
        let mut buf = ARP_REPLY_VLAN100;
        assert_eq!(pop_tag(&mut buf, 0, 17), None);
        assert_eq!(pop_tag(&mut buf, 0, 18), Some((4, 14)));
    }

    #[test]
    fn rewrite_outer_tag() {
        let mut f = ARP_REPLY_VLAN100;
        set_outer_tag(&mut f, EtherType::Vlan, tci(0, false, 200)).unwrap();
        let t = outer_tag(&f).unwrap();
        assert_eq!((t.vid, t.pcp), (200, 0));
        let mut untagged = ARP_REPLY;
        assert_eq!(
            set_outer_tag(&mut untagged, EtherType::Vlan, 1),
            Err(Error::Malformed)
        );
        assert_eq!(untagged, ARP_REPLY);
        assert_eq!(
            set_outer_tag(&mut f[..17], EtherType::Vlan, 1),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn untagged_pieces_make_the_frame_without_its_tag() {
        let u = Untagged::new(&ARP_REPLY_VLAN100, TAG_LEN).unwrap();
        assert_eq!(u.macs(), &ARP_REPLY[..12]);
        assert_eq!(u.rest(), &ARP_REPLY[12..]);
        assert_eq!(u.ethertype(), EtherType::Arp);
        assert_eq!(u.payload(), &ARP_REPLY[14..]);
        let u = Untagged::new(&ARP_REPLY, 0).unwrap();
        assert_eq!([u.macs(), u.rest()].concat(), &ARP_REPLY[..]);
        let u = Untagged::new(&ARP_REPLY_VLAN100, 0).unwrap();
        assert_eq!(u.ethertype(), EtherType::Vlan);
        // Exactly the header is enough; one byte less, or a huge tag
        // length, is refused.
        assert!(Untagged::new(&ARP_REPLY_VLAN100[..18], TAG_LEN)
            .is_some_and(|u| u.payload().is_empty()));
        assert_eq!(Untagged::new(&ARP_REPLY_VLAN100[..17], TAG_LEN), None);
        assert_eq!(Untagged::new(&ARP_REPLY[..13], 0), None);
        assert_eq!(Untagged::new(&ARP_REPLY, usize::MAX), None);
    }

    #[test]
    fn short_views_are_truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                VlanTag::new_checked(&ARP_REPLY_VLAN100[14..14 + n]).unwrap_err(),
                Error::Truncated
            );
            assert_eq!(outer_tag(&ARP_REPLY_VLAN100[..14 + n]), None);
        }
    }
}
