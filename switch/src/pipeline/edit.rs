//! edit: what each copy of a frame looks like on its egress. Between
//! forward/egress (which queued the copies) and the ports (which only move
//! bytes): per copy, the 802.1Q tag is pushed, popped or rewritten, or the
//! inner frame gets its VXLAN encapsulation (without its tag, RFC 7348
//! §6.1); and the copy gets what its egress takes of the frame's offload
//! state (docs/offloads.md): a port that takes it (a TAP, through its
//! virtio-net header) gets a super-frame whole and a checksum still to
//! compute, with the checksum start moved by the tag change; for any other
//! (AF_XDP, a remote VTEP) the checksum is completed here, in the frame,
//! and a super-frame is cut into segments here (shunt_parsers::gso), each
//! with its own tag or outer header, into the worker's segment buffer.
//!
//! ```text
//!  tx queues --> edit::run (per copy: tag / outer header, offload, or a drop reason)
//!                   |--> Out::Frame: the frame with an Edit
//!                   |      |--> Edit::apply: the frame's last copy, in its own buffer
//!                   |      |    (tag via shunt_parsers::vlan, outer header into the headroom)
//!                   |      \--> Edit::parts: any other copy, a gather list over the
//!                   |           frame [outer, MACs, tag, rest] (writev, or one copy)
//!                   \--> Out::Segment: one segment of a super-frame, finished bytes
//! ```
//!
//! A frame is edited in place only for its last copy, so the copies before
//! it still see the frame as received. A checksum completed in place is
//! final for every later copy too (their offload state says so).

use super::mirror::Mirrored;
use super::{Batch, Context, Meta, Plan, TxEntry, TxQueues, BATCH};
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};
use crate::port::{Offload, Offloads};
use crate::stack::underlay::Underlay;
use shunt_parsers::gso::{self, Segmenter};
use shunt_parsers::virtio_net::{Csum, Tunnel};
use shunt_parsers::vlan::{pop_tag, push_tag, set_outer_tag, Untagged, MACS_LEN};
use shunt_parsers::EtherType;
use std::sync::atomic::Ordering::Relaxed;

/// An 802.1Q tag.
const TAG: usize = 4;

/// The edits of one copy.
#[derive(Debug, Clone, Copy)]
pub struct Edit {
    /// The 802.1Q tag to carry (TPID and TCI), or untagged.
    tag: Option<[u8; TAG]>,
    /// Its TCI, for the in-place edits.
    tci: Option<u16>,
    /// The VXLAN outer header in front of the inner frame.
    outer: Option<[u8; super::vxlan::OVERHEAD]>,
    /// Bytes of ingress tag after the MACs, removed (or rewritten).
    tag_len: usize,
    /// What the port is to be told (its virtio-net header): the frame's
    /// offload state where the port takes it, `Offload::NONE` otherwise.
    pub off: Offload,
}

impl Edit {
    /// An edit that only sets the tag: `tci` to carry (None: untagged) on
    /// a frame whose ingress tag is `tag_len` bytes.
    #[inline]
    pub fn tag(tag_len: usize, tci: Option<u16>) -> Edit {
        Edit {
            tag: tci.map(tag_bytes),
            tci,
            outer: None,
            tag_len,
            off: Offload::NONE,
        }
    }

    /// Bytes the edit adds in front of the L3 header (negative: removes):
    /// how far a checksum start moves.
    #[inline]
    fn shift(&self) -> i32 {
        let new_tag = if self.tag.is_some() { TAG } else { 0 };
        let outer = self.outer.as_ref().map_or(0, |o| o.len());
        (new_tag + outer) as i32 - self.tag_len as i32
    }

    /// The copy as a gather list over the frame `f`: [outer, MACs, tag,
    /// rest], the empty parts left out. Returns the parts and their count.
    #[inline]
    pub fn parts<'a>(&'a self, f: &'a [u8]) -> ([&'a [u8]; 3], usize) {
        // Classify dropped anything shorter than an Ethernet header (plus
        // the tag it found), so `None` is unreachable; the frame then goes
        // as it is.
        let Some(u) = Untagged::new(f, self.tag_len) else {
            return ([f, &[], &[]], 1);
        };
        let (head, rest) = (u.macs(), u.rest());
        match (&self.outer, &self.tag) {
            (Some(o), _) => ([o, head, rest], 3),
            (None, Some(t)) => ([head, t, rest], 3),
            (None, None) => ([head, rest, &[]], 2),
        }
    }

    /// Makes the copy in the frame's own buffer: the frame at
    /// `buf[start..start + len]` gets its tag popped, pushed or rewritten
    /// (the payload does not move: the MACs move by 4 bytes) and the outer
    /// header written into the headroom in front. Returns the new start and
    /// length, or None, with `buf` untouched, when the headroom is too
    /// small or the frame too short (the caller copies instead).
    pub fn apply(&self, buf: &mut [u8], start: usize, len: usize) -> Option<(usize, usize)> {
        let end = start.checked_add(len)?;
        Untagged::new(buf.get(start..end)?, self.tag_len)?;
        let prefix = self.outer.as_ref().map_or(0, |o| o.len());
        let new_tag = if self.tag.is_some() { TAG } else { 0 };
        // Checked before anything moves, so that a refusal changes nothing.
        (start + self.tag_len).checked_sub(new_tag + prefix)?;
        let (mut s, mut l) = (start, len);
        match (self.tag_len > 0, self.tci) {
            (false, None) => {}
            (false, Some(t)) => (s, l) = push_tag(buf, s, l, EtherType::Vlan, t)?,
            (true, None) => (s, l) = pop_tag(buf, s, l)?,
            (true, Some(t)) => set_outer_tag(&mut buf[s..s + l], EtherType::Vlan, t).ok()?,
        }
        if let Some(o) = &self.outer {
            let at = s - o.len();
            buf[at..s].copy_from_slice(o);
            (s, l) = (at, l + o.len());
        }
        Some((s, l))
    }
}

#[inline]
fn tag_bytes(tci: u16) -> [u8; TAG] {
    let [t0, t1] = EtherType::Vlan.to_u16().to_be_bytes();
    let [t2, t3] = tci.to_be_bytes();
    [t0, t1, t2, t3]
}

/// One copy the edit stage made ready: frame `frame` of the batch, for
/// queue `to`, leaving by port `dev`; `last` when no other copy of the
/// frame is still to come (it may then be edited in place and sent as it
/// is; never for a segment).
#[derive(Debug, Clone, Copy)]
pub struct Copy {
    pub to: Egress,
    pub dev: PortId,
    pub frame: usize,
    pub last: bool,
    /// A mirror port's copy (pipeline/mirror.rs): counted as one, and the
    /// first refused when the destination lacks room.
    pub mirror: bool,
}

/// What to send for one copy.
#[derive(Debug, Clone, Copy)]
pub enum Out<'a> {
    /// The batch's frame with this edit.
    Frame(&'a Edit),
    /// One segment of a super-frame, made in software: finished bytes,
    /// no offload left.
    Segment(&'a [u8]),
}

/// The buffer segments are cut into, one at a time (a worker's, a test
/// rig's): room for the largest segment a port sends (a 9,000-byte MTU,
/// a tag and a VXLAN header), taken once.
pub struct SegmentBuf(Box<[u8]>);

impl Default for SegmentBuf {
    fn default() -> Self {
        SegmentBuf::new()
    }
}

impl SegmentBuf {
    pub const LEN: usize = 16 * 1024;
    pub fn new() -> SegmentBuf {
        SegmentBuf(vec![0; Self::LEN].into_boxed_slice())
    }
}

/// The edit stage over one batch's transmit queues: for every queued copy,
/// in queue order, the port it leaves by and what to send, handed to
/// `send` (the worker's, or a test's, way of moving bytes). Copies for a
/// port that is down, or that cannot be made (a runt, no VXLAN next hop,
/// too big for the underlay, bad offload metadata), are counted as drops
/// here and not handed on.
pub fn run(
    ctx: &Context,
    batch: &mut Batch,
    tx: &TxQueues,
    seg: &mut SegmentBuf,
    mut send: impl FnMut(&mut Batch, Copy, Out<'_>),
) {
    let underlay = ctx.stack.and_then(|h| h.underlay.as_ref());
    let mut uses = [0u16; BATCH];
    for &p in &tx.dirty {
        for e in tx.queue(p) {
            if let Some(u) = uses.get_mut(usize::from(e.frame)) {
                *u += 1;
            }
        }
    }
    for &to in &tx.dirty {
        let queue = tx.queue(to);
        let dev = device(ctx.plan, to)
            .filter(|d| ctx.port_up.get(d.index()).is_some_and(|u| u.load(Relaxed)));
        let of = |d: PortId| {
            ctx.plan
                .ports
                .get(d.index())
                .map_or(Offloads::default(), |p| p.offloads)
        };
        // A remote VTEP takes no checksum offload (the outer header is
        // ours); super-frames go whole inside the tunnel where the
        // underlay takes UDP-tunnel GSO.
        let takes_as = |to: Egress| match (to, dev) {
            (Egress::Port(_), Some(d)) => of(d),
            (Egress::Vtep(_), Some(d)) => Offloads {
                udp_tunnel: of(d).udp_tunnel,
                ..Offloads::default()
            },
            _ => Offloads::default(),
        };
        let takes_own = takes_as(to);
        for &e in queue {
            let i = usize::from(e.frame);
            let Some(u) = uses.get_mut(i) else { continue };
            *u = u.saturating_sub(1);
            let last = *u == 0;
            let mirror = e.mirror != Mirrored::No;
            let Some(dev) = dev else {
                ctx.counters
                    .count_copy_drop(to, mirror, DropReason::PortDown);
                continue;
            };
            let c = Copy {
                to,
                dev,
                frame: i,
                last,
                mirror,
            };
            // A copy made as another egress's: what that egress takes.
            let takes = match e.mirror {
                Mirrored::As(x @ Egress::Vtep(_)) => takes_as(x),
                _ => takes_own,
            };
            let m = batch.meta[i];
            if m.off.is_none() {
                match edit(ctx.plan, underlay, to, e, &m, batch.frame(i), None) {
                    Ok(ed) => send(batch, c, Out::Frame(&ed)),
                    Err(r) => ctx.counters.count_copy_drop(to, mirror, r),
                }
                continue;
            }
            if let Err(r) = offloaded(ctx, underlay, batch, seg, takes, c, e, &mut send) {
                ctx.counters.count_copy_drop(to, mirror, r);
            }
        }
    }
}

/// A copy of a frame with offload state: passed whole where the egress
/// takes it, else its checksum completed (in the frame, for every later
/// copy too) or the super-frame cut into segments.
#[allow(clippy::too_many_arguments)]
fn offloaded(
    ctx: &Context,
    underlay: Option<&Underlay>,
    batch: &mut Batch,
    seg: &mut SegmentBuf,
    takes: Offloads,
    c: Copy,
    e: TxEntry,
    send: &mut impl FnMut(&mut Batch, Copy, Out<'_>),
) -> Result<(), DropReason> {
    let pc = ctx.counters.port(c.to);
    let i = c.frame;
    let m = batch.meta[i];
    if takes.udp_tunnel && m.off.gso.is_some() && matches!(e.edit_as(c.to), Egress::Vtep(_)) {
        if let Some(ed) = tunneled(ctx.plan, underlay, c.to, e, &m, batch.frame(i))? {
            pc.tx_gso_whole.add(1);
            send(batch, c, Out::Frame(&ed));
            return Ok(());
        }
    }
    if takes.take(&m.off) {
        let mut ed = edit(ctx.plan, underlay, c.to, e, &m, batch.frame(i), None)?;
        let shift = ed.shift();
        ed.off = m.off;
        if let Some(cs) = &mut ed.off.csum {
            let start = i32::from(cs.start) + shift;
            cs.start = u16::try_from(start).map_err(|_| DropReason::BadOffload)?;
        }
        if m.off.gso.is_some() {
            pc.tx_gso_whole.add(1);
        }
        send(batch, c, Out::Frame(&ed));
        return Ok(());
    }
    if !m.off.gso.is_some() {
        // A checksum only: completed once, in the frame.
        if let Some(cs) = m.off.csum {
            gso::complete_csum(batch.frame_mut(i), cs).map_err(|_| DropReason::BadOffload)?;
            batch.meta[i].off.csum = None;
            batch.meta[i].off.data_valid = true;
            pc.tx_csum_soft.add(1);
        }
        let m = batch.meta[i];
        let ed = edit(ctx.plan, underlay, c.to, e, &m, batch.frame(i), None)?;
        send(batch, c, Out::Frame(&ed));
        return Ok(());
    }
    let f = batch.frame(i);
    let s = Segmenter::new(f, &m.off).map_err(|_| DropReason::BadOffload)?;
    // Checked once for the longest segment (the first): the others are
    // no longer.
    let ed = edit(
        ctx.plan,
        underlay,
        c.to,
        e,
        &m,
        f,
        Some(s.l3 + s.segment_l3_len(0)),
    )?;
    for j in 0..s.count {
        let len = {
            let f = batch.frame(i);
            let ed = match e.edit_as(c.to) {
                // Each segment's outer header has its own lengths.
                Egress::Vtep(_) => edit(
                    ctx.plan,
                    underlay,
                    c.to,
                    e,
                    &m,
                    f,
                    Some(s.l3 + s.segment_l3_len(j)),
                )?,
                _ => ed,
            };
            let l2 = f.get(..s.l3).ok_or(DropReason::BadOffload)?;
            let (parts, n) = ed.parts(l2);
            let mut at = 0;
            for p in &parts[..n] {
                let dst = seg
                    .0
                    .get_mut(at..at + p.len())
                    .ok_or(DropReason::Oversize)?;
                dst.copy_from_slice(p);
                at += p.len();
            }
            let rest = seg.0.get_mut(at..).ok_or(DropReason::Oversize)?;
            at + s.write_l3(f, j, rest).ok_or(DropReason::BadOffload)?
        };
        pc.tx_gso_segments.add(1);
        let bytes = seg.0.get(..len).ok_or(DropReason::Oversize)?;
        // Segments go out as copies: never edited in place.
        send(batch, Copy { last: false, ..c }, Out::Segment(bytes));
    }
    Ok(())
}

/// A super-frame for remote VTEP `to` encapsulated once, for an underlay
/// that takes UDP-tunnel GSO: one outer header whose IPv4 total length and
/// UDP length say the whole frame (the kernel rewrites them, the IPv4 id
/// and header checksum per segment, as `inet_gso_segment` and
/// `__skb_udp_tunnel_segment` do; the outer UDP checksum stays 0, as in
/// the segments the switch makes itself), and the tunnel header: the inner
/// L4 checksum to finish, the outer UDP and inner IP offsets. The MTU check
/// is on the longest segment, as in software. `Ok(None)`: the whole would
/// not fit the outer IPv4 length field: segmented in software instead.
fn tunneled(
    plan: &Plan,
    underlay: Option<&Underlay>,
    to: Egress,
    e: TxEntry,
    m: &Meta,
    f: &[u8],
) -> Result<Option<Edit>, DropReason> {
    let s = Segmenter::new(f, &m.off).map_err(|_| DropReason::BadOffload)?;
    let csum = m.off.csum.ok_or(DropReason::BadOffload)?;
    let tag_len = usize::from(m.tag_len);
    let inner_len = f.len().saturating_sub(tag_len);
    // The outer frame must fit the outer IPv4 length field, and a
    // receiving TAP's 64 KiB read (port/tap.rs): the frame itself at most
    // 65,535 bytes.
    if inner_len + super::vxlan::OVERHEAD > usize::from(u16::MAX) {
        return Ok(None);
    }
    let longest = s.l3 + s.segment_l3_len(0);
    let mut ed = edit_sized(plan, underlay, to, e, m, f, Some(inner_len), Some(longest))?;
    let at = |x: usize| u16::try_from(super::vxlan::OVERHEAD + x - tag_len);
    let bad = |_| DropReason::BadOffload;
    ed.off = Offload {
        csum: Some(Csum {
            start: at(s.l4()).map_err(bad)?,
            offset: csum.offset,
        }),
        data_valid: false,
        tunnel: Some(Tunnel {
            outer_v6: false,
            udp_csum: false,
            outer_l4: OUTER_L4 as u16,
            inner_l3: at(s.l3).map_err(bad)?,
            hdr_end: at(s.payload).map_err(bad)?,
        }),
        ..m.off
    };
    Ok(Some(ed))
}

/// Where the outer IPv4 header starts, and the outer UDP header, in a
/// VXLAN frame (Ethernet, IPv4 without options, UDP).
const OUTER_L3: usize = shunt_parsers::ethernet::HEADER_LEN;
const OUTER_L4: usize = OUTER_L3 + shunt_parsers::ipv4::HEADER_LEN;

/// The port the frames queued for `to` leave by: the port itself, the
/// underlay for a remote VTEP; None for the switch's stack (never queued)
/// or a VTEP without a VXLAN plan.
#[inline]
fn device(plan: &Plan, to: Egress) -> Option<PortId> {
    match to {
        Egress::Port(p) => Some(p),
        Egress::Vtep(_) => plan.vxlan.as_ref().map(|v| v.underlay),
        Egress::Stack => None,
    }
}

/// The edit for the copy `e` of frame `f` (metadata `m`) queued for `to`,
/// or why it cannot be made. `seg_len`: the length of the segment of `f`
/// this edit is for, when `f` is a super-frame.
#[inline]
fn edit(
    plan: &Plan,
    underlay: Option<&Underlay>,
    to: Egress,
    e: TxEntry,
    m: &Meta,
    f: &[u8],
    seg_len: Option<usize>,
) -> Result<Edit, DropReason> {
    edit_sized(plan, underlay, to, e, m, f, seg_len, seg_len)
}

/// [`edit`] whose outer header says `seg_len` (the frame sent) while the
/// underlay's MTU is checked against `mtu_len` (its longest segment, for
/// a super-frame sent whole).
#[allow(clippy::too_many_arguments)]
#[inline]
fn edit_sized(
    plan: &Plan,
    underlay: Option<&Underlay>,
    to: Egress,
    e: TxEntry,
    m: &Meta,
    f: &[u8],
    seg_len: Option<usize>,
    mtu_len: Option<usize>,
) -> Result<Edit, DropReason> {
    let tag_len = usize::from(m.tag_len);
    // Classify let no frame this short through; `--bare` does not
    // classify, so check rather than trust.
    if f.len() < MACS_LEN + tag_len {
        return Err(DropReason::Runt);
    }
    let to = match e.mirror {
        Mirrored::No => to,
        // As received: the frame unchanged, its tag (if any) left on.
        Mirrored::Received => return Ok(Edit::tag(0, None)),
        Mirrored::As(x) => x,
    };
    let Egress::Vtep(k) = to else {
        let tci = e.vid.map(|v| (u16::from(m.pcp_dei) << 8) | v.get());
        return Ok(Edit::tag(tag_len, tci));
    };
    let v = plan.vxlan.as_ref().ok_or(DropReason::NoDestination)?;
    let vni = m
        .net
        .and_then(|n| plan.nets.get(n.index()))
        .and_then(|n| n.vni);
    // A segment is as long as it is, not as its super-frame.
    let inner_len = seg_len.unwrap_or(f.len()).saturating_sub(tag_len);
    let mtu_len = mtu_len.unwrap_or(f.len()).saturating_sub(tag_len);
    let outer =
        super::vxlan::outer_header_checked(v, underlay, k, vni, f, tag_len, inner_len, mtu_len)?;
    Ok(Edit {
        tag: None,
        tci: None,
        outer: Some(outer),
        tag_len,
        off: Offload::NONE,
    })
}

#[cfg(test)]
mod tests {
    use super::Edit;

    /// The TCI of a tag's 4 bytes (test data is written as bytes).
    fn tci_of(t: [u8; 4]) -> u16 {
        u16::from_be_bytes([t[2], t[3]])
    }

    /// The in-place form of the gather list [prefix, head, tag, rest], as
    /// the worker's `rewrite_in_place` had it: `tag` (TPID and TCI) or
    /// untagged, `prefix` an outer header of 50 bytes or none.
    fn rewrite_in_place(
        buf: &mut [u8],
        start: usize,
        len: usize,
        tag_len: usize,
        tag: Option<[u8; 4]>,
        prefix: &[u8],
    ) -> Option<(usize, usize)> {
        let mut e = Edit::tag(tag_len, tag.map(tci_of));
        if !prefix.is_empty() {
            e.outer = Some(prefix.try_into().ok()?);
        }
        e.apply(buf, start, len)
    }

    /// A frame at 256 in a 4 KiB buffer: addresses 0..12, then `mid`,
    /// then the payload "PAYLOAD".
    fn frame(mid: &[u8]) -> (Vec<u8>, usize, usize) {
        let mut buf = vec![0xee; 4096];
        let mut f: Vec<u8> = (0..12).collect();
        f.extend_from_slice(mid);
        f.extend_from_slice(b"PAYLOAD");
        buf[256..256 + f.len()].copy_from_slice(&f);
        (buf, 256, f.len())
    }

    fn out(buf: &[u8], at: (usize, usize)) -> Vec<u8> {
        buf[at.0..at.0 + at.1].to_vec()
    }

    #[test]
    fn push_pop_rewrite_and_prefix_in_place() {
        let tag = [0x81, 0x00, 0x20, 0x0a];
        let addrs: Vec<u8> = (0..12).collect();
        let want = |parts: &[&[u8]]| parts.concat();
        // Push onto an untagged frame.
        let (mut b, s, l) = frame(&[]);
        let r = rewrite_in_place(&mut b, s, l, 0, Some(tag), &[]).expect("fits");
        assert_eq!(out(&b, r), want(&[&addrs, &tag, b"PAYLOAD"]));
        // Pop a tag.
        let (mut b, s, l) = frame(&[0x81, 0, 0, 10]);
        let r = rewrite_in_place(&mut b, s, l, 4, None, &[]).expect("fits");
        assert_eq!(out(&b, r), want(&[&addrs, b"PAYLOAD"]));
        // Rewrite a tag.
        let (mut b, s, l) = frame(&[0x81, 0, 0, 10]);
        let r = rewrite_in_place(&mut b, s, l, 4, Some(tag), &[]).expect("fits");
        assert_eq!(r.0, s);
        assert_eq!(out(&b, r), want(&[&addrs, &tag, b"PAYLOAD"]));
        // An outer header in front of a frame whose tag is dropped.
        let outer = [7u8; 50];
        let (mut b, s, l) = frame(&[0x81, 0, 0, 10]);
        let r = rewrite_in_place(&mut b, s, l, 4, None, &outer).expect("fits");
        assert_eq!(out(&b, r), want(&[&outer, &addrs, b"PAYLOAD"]));
        // Unchanged frame.
        let (mut b, s, l) = frame(&[]);
        let r = rewrite_in_place(&mut b, s, l, 0, None, &[]).expect("fits");
        assert_eq!(r, (s, l));
    }

    #[test]
    fn no_headroom_or_short_frame_is_refused() {
        let mut b = vec![0u8; 4096];
        // 40 bytes of headroom: no room for a 50-byte header.
        assert_eq!(rewrite_in_place(&mut b, 40, 60, 0, None, &[1; 50]), None);
        // Shorter than its addresses and tag.
        assert_eq!(rewrite_in_place(&mut b, 256, 14, 4, None, &[]), None);
        // Past the buffer.
        assert_eq!(rewrite_in_place(&mut b, 4000, 200, 0, None, &[]), None);
    }

    #[test]
    fn parts_match_the_edit_in_place() {
        let tag = [0x81, 0x00, 0x20, 0x0a];
        for (mid, tag_len, t) in [
            (&[][..], 0, None),
            (&[][..], 0, Some(tag)),
            (&[0x81, 0, 0, 10][..], 4, None),
            (&[0x81, 0, 0, 10][..], 4, Some(tag)),
        ] {
            let (mut b, s, l) = frame(mid);
            let e = Edit::tag(tag_len, t.map(tci_of));
            let (parts, n) = e.parts(&b[s..s + l]);
            let gathered = parts[..n].concat();
            let r = e.apply(&mut b, s, l).expect("fits");
            assert_eq!(out(&b, r), gathered, "{mid:?} {t:?}");
        }
    }
}
