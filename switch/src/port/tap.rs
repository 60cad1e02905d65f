//! TAP ports: one file descriptor per device, non-blocking, one read or one
//! write system call per frame (the kernel's TAP interface offers no batch).
//!
//! Every TAP is opened with the virtio-net header (`IFF_VNET_HDR`) and
//! offers the kernel checksum, TSO and USO offload (`TUNSETOFFLOAD`): the
//! host's stack hands over 64 KiB TCP super-frames with their checksum left
//! to compute, as it does to a virtio-net NIC, and takes them back the same
//! way. The header is read and written in the same system call as the
//! frame (readv/writev). It is 24 bytes on every TAP
//! (`virtio_net_hdr_v1_hash_tunnel`, `TAP_HDR_LEN`): the 12 of
//! `virtio_net_hdr_v1`, then the hash report and the two UDP-tunnel
//! offsets, which only a TAP offered UDP-tunnel GSO uses (the VXLAN
//! underlay, [`Tap::enable_udp_tunnel`], Linux 6.17+); on any other the
//! kernel writes zeros there (or, before 6.17, skips them) and ignores what
//! we write.
//!
//! A TAP that plugs in a host is created in the switch's namespace under a
//! temporary name and then moved into the host's namespace as `eth0`
//! (daemon/plug.rs): a TAP opened inside the host's namespace would keep that
//! namespace alive. The descriptor keeps working across the move.

use shunt_parsers::virtio_net::{Offload, VirtioNetHdr, VNET_HDR_TNL_LEN};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use super::uring::{TapRing, TxTag, RX_MIN};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
/// `_IOW('T', 202, int)` from linux/if_tun.h.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `_IOW('T', 216, int)`.
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
/// `_IOW('T', 226, int)`: the device's carrier on or off.
const TUNSETCARRIER: libc::c_ulong = 0x4004_54e2;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
/// UDP segmentation (Linux 6.2+).
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;
/// UDP-tunnel GSO (Linux 6.17+, "tun: enable UDP tunnel GSO"): needs a
/// header of 24 bytes and some plain GSO offered with it.
const TUN_F_UDP_TUNNEL_GSO: libc::c_uint = 0x80;
/// ... with the outer UDP checksum made per segment.
const TUN_F_UDP_TUNNEL_GSO_CSUM: libc::c_uint = 0x100;

/// The virtio-net header in front of every frame on a TAP.
pub const TAP_HDR_LEN: usize = VNET_HDR_TNL_LEN;

/// Whether this kernel gave some TAP UDP-tunnel GSO (the plan offers it
/// to the underlay on that word: it is the kernel's property).
static UDP_TUNNEL_GSO: AtomicBool = AtomicBool::new(false);

/// Whether a TAP was given UDP-tunnel GSO in this process.
pub fn udp_tunnel_gso() -> bool {
    UDP_TUNNEL_GSO.load(Relaxed)
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags; padded to
/// the kernel's 40 bytes.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot open /dev/net/tun (is the tun module there, and are you root?): {0}")]
    OpenTun(io::Error),
    #[error("TUNSETIFF for {name:?} failed: {source}")]
    SetIff { name: String, source: io::Error },
    #[error("device name {0:?} is longer than 15 bytes")]
    Name(String),
    #[error("{what} for {name:?} failed: {source}")]
    Offload {
        name: String,
        what: &'static str,
        source: io::Error,
    },
}

/// A TAP device: one descriptor per queue (one, or one per worker with
/// `IFF_MULTI_QUEUE`: the kernel spreads the host's flows over the queues
/// by hash, so each flow stays on one queue and in order).
#[derive(Debug)]
pub struct Tap {
    queues: Box<[File]>,
    /// Per queue: how many reads the next batched receive submits (from
    /// the last one's haul; only the queue's one worker touches it).
    rx_want: Box<[AtomicU8]>,
    name: String,
    /// What the kernel agreed to hand us (and so takes from us).
    offloads: super::Offloads,
    /// UDP-tunnel GSO agreed ([`Tap::enable_udp_tunnel`]).
    tunnel: AtomicBool,
}

impl Tap {
    /// Creates (or attaches to) the TAP device `name` in the calling
    /// thread's network namespace, with one queue.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        Tap::open_queues(name, 1)
    }

    /// The same with `n` queues (`IFF_MULTI_QUEUE` when more than one).
    pub fn open_queues(name: &str, n: usize) -> Result<Tap, TapError> {
        if name.len() >= libc::IFNAMSIZ || name.is_empty() {
            return Err(TapError::Name(name.to_string()));
        }
        let n = n.clamp(1, MAX_QUEUES);
        let mut queues = Vec::with_capacity(n);
        let mut offloads = super::Offloads::ALL;
        for _ in 0..n {
            let (file, o) = open_queue(name, n > 1)?;
            offloads = o;
            queues.push(file);
        }
        Ok(Tap {
            rx_want: queues.iter().map(|_| AtomicU8::new(RX_MIN as u8)).collect(),
            queues: queues.into_boxed_slice(),
            name: name.to_string(),
            offloads,
            tunnel: AtomicBool::new(false),
        })
    }

    /// Offers the kernel UDP-tunnel super-frames (and their outer UDP
    /// checksum) on every queue, with what was agreed at open: the VXLAN
    /// underlay then hands over and takes whole encapsulated super-frames.
    /// `Ok(false)` where the kernel does not know them (before 6.17:
    /// `EINVAL`); the TAP then keeps what it had.
    pub fn enable_udp_tunnel(&self) -> io::Result<bool> {
        let mut flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if self.offloads.uso {
            flags |= TUN_F_USO4 | TUN_F_USO6;
        }
        for (i, q) in self.queues.iter().enumerate() {
            match set_offload_flags(q, flags | TUN_F_UDP_TUNNEL_GSO | TUN_F_UDP_TUNNEL_GSO_CSUM) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && i == 0 => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.tunnel.store(true, Relaxed);
        UDP_TUNNEL_GSO.store(true, Relaxed);
        Ok(true)
    }

    /// Queues of this TAP (each a descriptor).
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Queue `q`'s descriptor (queue 0 past the last).
    #[inline]
    fn queue(&self, q: usize) -> &File {
        // `queues` is never empty (open_queues opens at least one).
        &self.queues[q.min(self.queues.len() - 1)]
    }

    /// Queue `q`'s descriptor, to poll.
    pub fn queue_fd(&self, q: usize) -> BorrowedFd<'_> {
        self.queue(q).as_fd()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame and its virtio-net header (`&self`: the kernel
    /// serialises reads and writes on a TAP, so any worker may transmit on
    /// any TAP port); `WouldBlock` when none is waiting. Returns the
    /// frame's length; a frame longer than `buf` comes back cut.
    /// From queue `q`.
    #[inline]
    pub fn recv(&self, q: usize, hdr: &mut [u8; TAP_HDR_LEN], buf: &mut [u8]) -> io::Result<usize> {
        let mut iov = [IoSliceMut::new(hdr), IoSliceMut::new(buf)];
        let n = self.queue(q).read_vectored(&mut iov)?;
        Ok(n.saturating_sub(TAP_HDR_LEN))
    }

    /// Writes one frame gathered from `parts` (so a tag can be pushed or
    /// popped without copying the frame); `parts[0]` is its virtio-net
    /// header. Returns the frame's length.
    /// On queue `q` (any queue takes any frame: the host's stack gets it).
    #[inline]
    pub fn send(&self, q: usize, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.queue(q).write_vectored(parts)?;
        Ok(n.saturating_sub(TAP_HDR_LEN))
    }

    /// Turns the device's carrier on or off: the host sees `NO-CARRIER`
    /// (`shunt link PORT down`), as it would with its cable pulled.
    pub fn set_carrier(&self, on: bool) -> io::Result<()> {
        let v = libc::c_int::from(on);
        // SAFETY: TUNSETCARRIER reads one int from the pointer, which points
        // at a live local; the descriptor is an open TAP.
        let rc = unsafe { libc::ioctl(self.queue(0).as_raw_fd(), TUNSETCARRIER as _, &v) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// What this TAP takes (and hands over) through its header.
    pub fn offloads(&self) -> super::Offloads {
        super::Offloads {
            udp_tunnel: self.tunnel(),
            ..self.offloads
        }
    }

    /// Whether the kernel hands over (and takes) UDP-tunnel super-frames.
    #[inline]
    pub fn tunnel(&self) -> bool {
        self.tunnel.load(Relaxed)
    }
}

/// Offers the VXLAN underlay TAP `t` UDP-tunnel GSO and says what came of
/// it (the switch works either way: without it, super-frames for remote
/// VTEPs are segmented in software).
pub fn offer_underlay_tunnel(t: &Tap) {
    match t.enable_udp_tunnel() {
        Ok(true) => crate::say!(
            "underlay {}: UDP-tunnel GSO on (super-frames encapsulated whole)",
            t.name()
        ),
        Ok(false) => crate::say!(
            "underlay {}: this kernel has no UDP-tunnel GSO on TAPs (6.17+): \
             super-frames for remote VTEPs are segmented in software",
            t.name()
        ),
        Err(e) => crate::say!(
            "underlay {}: UDP-tunnel GSO refused ({e}): segmenting in software",
            t.name()
        ),
    }
}

/// The most queues a TAP gets (the kernel allows 256; one per worker is
/// what the switch uses).
pub const MAX_QUEUES: usize = 64;

/// Opens one queue of TAP `name` (of a multi-queue TAP when `multi`) with
/// the virtio-net header and the offloads; returns its descriptor and the
/// offloads agreed.
fn open_queue(name: &str, multi: bool) -> Result<(File, super::Offloads), TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(TapError::OpenTun)?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | if multi { IFF_MULTI_QUEUE } else { 0 },
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads a `struct ifreq` (name + flags); `req` is
    // a properly sized and initialised `repr(C)` value that outlives the
    // call, and the descriptor is an open /dev/net/tun file.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if rc < 0 {
        return Err(TapError::SetIff {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    let fail = |what, source| TapError::Offload {
        name: name.to_string(),
        what,
        source,
    };
    let hdr_len = TAP_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int from the pointer, which
    // points at a live local; the descriptor is an open TAP.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETVNETHDRSZ as _, &hdr_len) };
    if rc < 0 {
        return Err(fail("TUNSETVNETHDRSZ", io::Error::last_os_error()));
    }
    let offloads = set_offload(&file).map_err(|e| fail("TUNSETOFFLOAD", e))?;
    Ok((file, offloads))
}

/// Offers the kernel every offload it has: checksum, TSO (with ECN) and,
/// on kernels that know it (6.2+), USO. Returns what was agreed.
fn set_offload(file: &File) -> io::Result<super::Offloads> {
    let base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    let ioctl = |flags| set_offload_flags(file, flags);
    match ioctl(base | TUN_F_USO4 | TUN_F_USO6) {
        Ok(()) => Ok(super::Offloads::ALL),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            ioctl(base)?;
            Ok(super::Offloads {
                uso: false,
                ..super::Offloads::ALL
            })
        }
        Err(e) => Err(e),
    }
}

/// TUNSETOFFLOAD with `flags` (the kernel answers EINVAL for a flag it
/// does not know).
fn set_offload_flags(file: &File, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int of
    // flags); the descriptor is an open TAP.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl AsFd for Tap {
    /// Queue 0's.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue(0).as_fd()
    }
}

/// One queue of a shared TAP, as a port: any worker may receive or send on
/// a shared TAP (`Read` and `Write` are on `&File` for the same reason);
/// a worker uses its own queue of a multi-queue TAP. With a ring, frames
/// move in batches (port/uring.rs), else one system call each.
#[derive(Debug)]
pub struct TapQueue<'a> {
    pub tap: &'a Arc<Tap>,
    pub q: usize,
    ring: Option<&'a mut TapRing>,
    /// Who a frame queued on the ring is counted for when it fails.
    tag: Option<TxTag>,
}

impl<'a> TapQueue<'a> {
    /// One system call per frame.
    pub fn new(tap: &'a Arc<Tap>, q: usize) -> TapQueue<'a> {
        TapQueue {
            tap,
            q,
            ring: None,
            tag: None,
        }
    }

    /// Through the worker's ring (when it has one); a frame sent is
    /// counted for `tag` if it fails when the ring flushes.
    pub fn with_ring(
        tap: &'a Arc<Tap>,
        q: usize,
        ring: Option<&'a mut TapRing>,
        tag: Option<TxTag>,
    ) -> TapQueue<'a> {
        TapQueue { tap, q, ring, tag }
    }
}

/// A received frame's entry from its virtio-net header: a header that does
/// not fit its frame is reported in `Rx::off` (the frame is dropped as
/// `bad_offload`). `tunnel`: the TAP takes UDP-tunnel GSO, so the header's
/// tunnel offsets are read and a tunnel super-frame is checked as one
/// (elsewhere its tunnel bits are refused).
#[inline]
pub(super) fn rx_entry(hdr: &[u8; TAP_HDR_LEN], frame: &[u8], tunnel: bool) -> super::Rx {
    let off = if tunnel {
        VirtioNetHdr::parse_tnl(hdr).map(|h| Offload::from_tunnel_header(&h, frame))
    } else {
        VirtioNetHdr::parse(hdr).map(|h| Offload::from_header(&h, frame))
    };
    let off = off.unwrap_or(Err(shunt_parsers::virtio_net::OffloadError::Length));
    super::Rx {
        start: super::HEADROOM as u16,
        len: frame.len().min(super::MAX_FRAME) as u16,
        off,
    }
}

/// A write's error as the worker counts it.
pub(super) fn tx_error(err: io::Error) -> super::TxError {
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::ENOBUFS) => super::TxError::Full,
        Some(e @ (libc::EIO | libc::EBADFD | libc::ENODEV)) => super::TxError::Gone(e),
        Some(e) => super::TxError::Refused(e),
        None => super::TxError::Refused(0),
    }
}

impl super::Port for TapQueue<'_> {
    fn kind(&self) -> super::Kind {
        super::Kind::Tap
    }

    fn caps(&self) -> super::Caps {
        super::Caps {
            zero_copy: false,
            offloads: self.tap.offloads(),
            queues: self.tap.queues() as u16,
        }
    }

    /// With a ring: a batch of reads in one call, as many as the last
    /// receive found room for plus half as many again (at least
    /// `RX_MIN`). Without: one readv(2) per frame (its header, then the
    /// frame after the slot's headroom), until the device has nothing more.
    /// The area takes 65,535 bytes: more than the kernel hands over (a TSO
    /// super-frame is at most 64 KiB with its headers, the kernel's
    /// `gso_max_size`).
    fn recv(
        &mut self,
        slots: &mut super::Slots,
        got: &mut [super::Rx],
    ) -> Result<usize, super::RxError> {
        let max = got.len().min(slots.len());
        if let Some(ring) = self.ring.as_deref_mut() {
            let cell = &self.tap.rx_want[self.q.min(self.tap.rx_want.len() - 1)];
            let want = usize::from(cell.load(Relaxed)).clamp(RX_MIN, max.max(RX_MIN));
            let fd = self.tap.queue(self.q).as_raw_fd();
            let r = ring.recv(fd, want, slots, got, self.tap.tunnel());
            let n = match &r {
                Ok(n) => *n,
                Err(e) => e.received,
            };
            // All found: there may be more (twice as many next time);
            // fewer: about what came, with room for a burst.
            let next = if n == want { want * 2 } else { n + n / 2 };
            cell.store(next.clamp(RX_MIN, max.min(u8::MAX.into())) as u8, Relaxed);
            return r;
        }
        let mut n = 0;
        while n < max {
            let slot = slots.slot_mut(n);
            let end = slot.len().min(super::HEADROOM + super::MAX_FRAME);
            let Some(area) = slot.get_mut(super::HEADROOM..end) else {
                break;
            };
            let mut hdr = [0u8; TAP_HDR_LEN];
            match self.tap.recv(self.q, &mut hdr, area) {
                Ok(len) => {
                    let frame = area.get(..len).unwrap_or_default();
                    got[n] = rx_entry(&hdr, frame, self.tap.tunnel());
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(super::RxError { received: n, error });
                }
            }
        }
        Ok(n)
    }

    /// With a ring: copied with its header into one of the ring's buffers
    /// and written at the worker's flush (a frame too large for a buffer
    /// goes at once, after what was queued). Without: one writev(2) of the
    /// header and the parts, gathered by the kernel, not copied here.
    /// `off` is the frame's offload state as the edit stage left it
    /// (checksum start already moved for a tag change).
    fn send(&mut self, parts: &[&[u8]], off: &Offload) -> Result<usize, super::TxError> {
        let hdr = off.to_header(0, 0).to_bytes_tnl();
        if let (Some(ring), Some(tag)) = (self.ring.as_deref_mut(), self.tag) {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            if ring.fits(len) {
                let fd = self.tap.queue(self.q).as_raw_fd();
                return Ok(ring.queue(self.tap, fd, &hdr, parts, tag));
            }
            // In order with what the ring holds for this TAP.
            ring.flush();
        }
        let mut iov = [IoSlice::new(&[]); 5];
        iov[0] = IoSlice::new(&hdr);
        let n = parts.len().min(iov.len() - 1);
        for (v, p) in iov[1..].iter_mut().zip(parts) {
            *v = IoSlice::new(p);
        }
        self.tap.send(self.q, &iov[..n + 1]).map_err(tx_error)
    }

    /// The ring is flushed by the worker, once per batch over all ports.
    fn flush(&mut self) {}
}
