//! Ports: the ways frames enter and leave the switch. One file per kind.

pub mod afxdp;
pub mod tap;
pub mod xdp_loader;

pub use afxdp::{AfXdpError, AfXdpPort, AfXdpStats, SharedUmem, TxError};
pub use tap::{Tap, TapError};

/// What backs a port when the switch starts.
pub enum Device {
    Tap(Tap),
    AfXdp(Box<AfXdpPort>),
}

use std::io;
use std::os::fd::RawFd;

/// Waits for any of `fds` (read readiness), at most `timeout_ms`. A thin
/// wrapper so that workers keep plain descriptors, without lifetimes, in
/// poll sets they rebuild when ports come and go.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `pollfd` of
    // the length passed; poll(2) writes only their `revents` fields.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A `pollfd` asking for read readiness on `fd`.
pub fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
