//! TAP ports: one file descriptor per device, non-blocking, one read or one
//! write system call per frame (the kernel's TAP interface offers no batch).
//!
//! Every TAP is opened with the virtio-net header (`IFF_VNET_HDR`, 12 bytes:
//! `virtio_net_hdr_v1`) and offers the kernel checksum, TSO and USO
//! offload (`TUNSETOFFLOAD`): the host's stack hands over 64 KiB TCP
//! super-frames with their checksum left to compute, as it does to a
//! virtio-net NIC, and takes them back the same way. The header is read and
//! written in the same system call as the frame (readv/writev).
//!
//! A TAP that plugs in a host is created in the switch's namespace under a
//! temporary name and then moved into the host's namespace as `eth0`
//! (daemon/plug.rs): a TAP opened inside the host's namespace would keep that
//! namespace alive. The descriptor keeps working across the move.

use shunt_parsers::virtio_net::{Offload, VirtioNetHdr, VNET_HDR_LEN};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

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
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
/// UDP segmentation (Linux 6.2+).
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

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
    name: String,
    /// What the kernel agreed to hand us (and so takes from us).
    offloads: super::Offloads,
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
            queues: queues.into_boxed_slice(),
            name: name.to_string(),
            offloads,
        })
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
    pub fn recv(
        &self,
        q: usize,
        hdr: &mut [u8; VNET_HDR_LEN],
        buf: &mut [u8],
    ) -> io::Result<usize> {
        let mut iov = [IoSliceMut::new(hdr), IoSliceMut::new(buf)];
        let n = self.queue(q).read_vectored(&mut iov)?;
        Ok(n.saturating_sub(VNET_HDR_LEN))
    }

    /// Writes one frame gathered from `parts` (so a tag can be pushed or
    /// popped without copying the frame); `parts[0]` is its virtio-net
    /// header. Returns the frame's length.
    /// On queue `q` (any queue takes any frame: the host's stack gets it).
    #[inline]
    pub fn send(&self, q: usize, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.queue(q).write_vectored(parts)?;
        Ok(n.saturating_sub(VNET_HDR_LEN))
    }

    /// What this TAP takes (and hands over) through its header.
    pub fn offloads(&self) -> super::Offloads {
        self.offloads
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
    let hdr_len = VNET_HDR_LEN as libc::c_int;
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
    let ioctl = |flags: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned
        // int of flags); the descriptor is an open TAP.
        let rc =
            unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
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

impl AsFd for Tap {
    /// Queue 0's.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue(0).as_fd()
    }
}

/// One queue of a shared TAP, as a port: any worker may receive or send on
/// a shared TAP (`Read` and `Write` are on `&File` for the same reason);
/// a worker uses its own queue of a multi-queue TAP.
#[derive(Debug, Clone, Copy)]
pub struct TapQueue<'a> {
    pub tap: &'a Tap,
    pub q: usize,
}

impl super::Port for TapQueue<'_> {
    fn kind(&self) -> super::Kind {
        super::Kind::Tap
    }

    fn caps(&self) -> super::Caps {
        super::Caps {
            zero_copy: false,
            offloads: self.tap.offloads,
            queues: self.tap.queues() as u16,
        }
    }

    /// One readv(2) per frame (its header, then the frame after the slot's
    /// headroom), until the device has nothing more. A header that does not
    /// fit its frame is reported in `Rx::off` (the frame is dropped as
    /// `bad_offload`). The area takes 65,535 bytes: more than the kernel
    /// hands over (a TSO super-frame is at most 64 KiB with its headers,
    /// the kernel's `gso_max_size`).
    fn recv(
        &mut self,
        slots: &mut super::Slots,
        got: &mut [super::Rx],
    ) -> Result<usize, super::RxError> {
        let mut n = 0;
        let max = got.len().min(slots.len());
        while n < max {
            let slot = slots.slot_mut(n);
            let end = slot.len().min(super::HEADROOM + super::MAX_FRAME);
            let Some(area) = slot.get_mut(super::HEADROOM..end) else {
                break;
            };
            let mut hdr = [0u8; VNET_HDR_LEN];
            match self.tap.recv(self.q, &mut hdr, area) {
                Ok(len) => {
                    let frame = area.get(..len).unwrap_or_default();
                    let off = VirtioNetHdr::parse(&hdr)
                        .map_err(|_| shunt_parsers::virtio_net::OffloadError::Length)
                        .and_then(|h| Offload::from_header(&h, frame));
                    got[n] = super::Rx {
                        start: super::HEADROOM as u16,
                        len: len.min(super::MAX_FRAME) as u16,
                        off,
                    };
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

    /// One writev(2) of the header and the parts: gathered by the kernel,
    /// not copied here. `off` is the frame's offload state as the edit
    /// stage left it (checksum start already moved for a tag change).
    fn send(&mut self, parts: &[&[u8]], off: &Offload) -> Result<usize, super::TxError> {
        let hdr = off.to_header(0, 0).to_bytes();
        let mut iov = [IoSlice::new(&[]); 5];
        iov[0] = IoSlice::new(&hdr);
        let n = parts.len().min(iov.len() - 1);
        for (v, p) in iov[1..].iter_mut().zip(parts) {
            *v = IoSlice::new(p);
        }
        self.tap
            .send(self.q, &iov[..n + 1])
            .map_err(|err| match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => super::TxError::Full,
                Some(e @ (libc::EIO | libc::EBADFD | libc::ENODEV)) => super::TxError::Gone(e),
                Some(e) => super::TxError::Refused(e),
                None => super::TxError::Refused(0),
            })
    }

    fn flush(&mut self) {}
}
