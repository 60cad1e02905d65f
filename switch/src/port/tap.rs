//! TAP ports: one file descriptor per device, non-blocking, one read or one
//! write system call per frame (the kernel's TAP interface offers no batch).
//!
//! A TAP that plugs in a host is created in the switch's namespace under a
//! temporary name and then moved into the host's namespace as `eth0`
//! (daemon/plug.rs): a TAP opened inside the host's namespace would keep that
//! namespace alive. The descriptor keeps working across the move.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// `_IOW('T', 202, int)` from linux/if_tun.h.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

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
}

#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Creates (or attaches to) the TAP device `name` in the calling
    /// thread's network namespace.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        if name.len() >= libc::IFNAMSIZ || name.is_empty() {
            return Err(TapError::Name(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::OpenTun)?;
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
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
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame (`&self`: the kernel serialises reads and writes on a
    /// TAP, so any worker may transmit on any TAP port); `WouldBlock` when none is waiting. A frame longer
    /// than `buf` comes back cut to `buf.len()`.
    #[inline]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame gathered from `parts` (so a tag can be pushed or
    /// popped without copying the frame).
    #[inline]
    pub fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.file).write_vectored(parts)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// On `&Tap`: any worker may receive or send on a shared TAP (`Read` and
/// `Write` are on `&File` for the same reason).
impl super::Port for &Tap {
    fn kind(&self) -> super::Kind {
        super::Kind::Tap
    }

    fn caps(&self) -> super::Caps {
        // No IFF_VNET_HDR: the kernel hands over finished frames.
        super::Caps {
            zero_copy: false,
            offloads: super::Offloads::default(),
            queues: 1,
        }
    }

    /// One read(2) per frame, each after the slot's headroom, until the
    /// device has nothing more.
    fn recv(
        &mut self,
        slots: &mut super::Slots,
        got: &mut [super::Rx],
    ) -> Result<usize, super::RxError> {
        let mut n = 0;
        let max = got.len().min(slots.len());
        while n < max {
            let area = &mut slots.slot_mut(n)[super::HEADROOM..super::HEADROOM + super::MAX_FRAME];
            match Tap::recv(self, area) {
                Ok(len) => {
                    got[n] = super::Rx {
                        start: super::HEADROOM as u16,
                        len: len as u16,
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

    /// One writev(2): the parts are gathered by the kernel, not copied here.
    fn send(&mut self, parts: &[&[u8]]) -> Result<usize, super::TxError> {
        let mut iov = [IoSlice::new(&[]); 4];
        let n = parts.len().min(iov.len());
        for (v, p) in iov.iter_mut().zip(parts) {
            *v = IoSlice::new(p);
        }
        Tap::send(self, &iov[..n]).map_err(|err| match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => super::TxError::Full,
            Some(e @ (libc::EIO | libc::EBADFD | libc::ENODEV)) => super::TxError::Gone(e),
            Some(e) => super::TxError::Refused(e),
            None => super::TxError::Refused(0),
        })
    }

    fn flush(&mut self) {}
}
