//! AF_PACKET sockets for the benchmark's own generator and timestamping
//! receiver: a sender that hands frames to the driver in batches
//! (`PACKET_TX_RING`, qdisc bypassed, as trafgen does), and a receiver that reads
//! the kernel's receive timestamp of each frame (`SO_TIMESTAMPNS`), so the
//! receiving thread's own scheduling delay is not part of the latency.

// Every unsafe block here says why it is sound; clippy holds us to it.
#![deny(clippy::undocumented_unsafe_blocks)]

use super::frame::{self, STAMP_AT};
use shunt_switch::netns;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Nanoseconds of CLOCK_REALTIME, the clock of `SO_TIMESTAMPNS` (shared by
/// every namespace, like CLOCK_MONOTONIC).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A raw packet socket bound to one interface of one namespace.
pub struct PacketSocket {
    fd: OwnedFd,
}

/// Sets a socket option whose value is a plain C value (an int, a
/// `timeval`, a `tpacket_req`): one unsafe call for all of them.
fn setsockopt<T: Copy>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` is valid for reads of `size_of::<T>()` bytes during the
    // call; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt_int(fd: &OwnedFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    setsockopt(fd, level, name, &val)
}

fn open_bound(ifname: &str, protocol: u16) -> io::Result<OwnedFd> {
    open_bound_with(ifname, protocol, |_| Ok(()))
}

/// Opens a packet socket, runs `prepare` on it (ring set-up must come
/// before `bind`), then binds it to `ifname`.
fn open_bound_with(
    ifname: &str,
    protocol: u16,
    prepare: impl FnOnce(&OwnedFd) -> io::Result<()>,
) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    let proto = protocol.to_be();
    // SAFETY: plain socket creation; the descriptor is owned right after.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    prepare(&fd)?;
    // SAFETY: an all-zero sockaddr_ll is valid; the fields we need are set.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn in_ns<T: Send>(
    ns: &str,
    what: &str,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> Result<T, String> {
    match netns::in_netns(ns, f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what} in namespace {ns}: {e}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

impl PacketSocket {
    /// A socket that only sends (protocol 0 receives nothing), bypassing the
    /// qdisc: frames go straight to the driver. For single frames (latency
    /// probes, announcements); bulk traffic goes through [`TxRing`].
    pub fn sender(ns: &str, ifname: &str) -> Result<PacketSocket, String> {
        let fd = in_ns(ns, &format!("opening a packet socket on {ifname}"), || {
            let fd = open_bound(ifname, 0)?;
            setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
            let _ = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 4 << 20);
            Ok(fd)
        })?;
        Ok(PacketSocket { fd })
    }

    /// A socket that receives every frame of `ifname` with its kernel
    /// receive time (ETH_P_ALL: also frames addressed to another host).
    pub fn stamped_receiver(ns: &str, ifname: &str) -> Result<PacketSocket, String> {
        let fd = in_ns(ns, &format!("opening a packet socket on {ifname}"), || {
            let fd = open_bound(ifname, libc::ETH_P_ALL as u16)?;
            setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
            let _ = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20);
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
            Ok(fd)
        })?;
        Ok(PacketSocket { fd })
    }

    /// Sends one frame. False if the kernel refused it.
    pub fn send_one(&self, frame: &[u8]) -> bool {
        // SAFETY: `frame` is valid for reads of its length during the call.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        r == frame.len() as isize
    }

    /// Receives one frame into `buf`; returns its length and its kernel
    /// receive time (CLOCK_REALTIME ns), or None on the 100 ms timeout.
    pub fn recv_stamped(&self, buf: &mut [u8]) -> io::Result<Option<(usize, u64)>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; 16];
        // SAFETY: an all-zero msghdr is valid; the fields set point at
        // buffers that outlive the call.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        hdr.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: `hdr` is valid as set up above.
        let r = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut hdr, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut stamp = 0;
        // SAFETY: walking the control messages the kernel wrote into
        // `cbuf`, within `msg_controllen`, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                }
                c = libc::CMSG_NXTHDR(&hdr, c);
            }
        }
        Ok(Some((r as usize, stamp)))
    }
}

/// A packet socket with a transmit ring (`PACKET_TX_RING`, TPACKET_V2),
/// as trafgen sends: frames are written into a ring shared with the
/// kernel, and one `send` hands over all that are ready. About 1.2-1.4x the
/// rate of `sendmmsg` into a veth on the machine of docs/PERF.md.
pub struct TxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    frame_size: usize,
    frames: usize,
    next: usize,
}

// SAFETY: the mapping is owned by this value and used by one thread at a time.
unsafe impl Send for TxRing {}

/// `tp_status` values (linux/if_packet.h).
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_SENDING: u32 = 2;
/// Where frame data starts in a TPACKET_V2 slot: TPACKET2_HDRLEN minus
/// the sockaddr_ll the kernel does not expect on transmit.
const TX_DATA_OFF: usize = 32;
const RING_FRAME: usize = 2048;
const RING_BLOCK: usize = 1 << 16;
const RING_BLOCKS: usize = 64;

impl TxRing {
    /// Slots of a ring: the most distinct frames (flows) it cycles through.
    pub const SLOTS: usize = RING_BLOCK * RING_BLOCKS / RING_FRAME;
}

impl TxRing {
    /// A ring of [`TxRing::SLOTS`] slots on `ifname` in namespace `ns`,
    /// slot i holding a copy of `frames[i % frames.len()]` (each at most
    /// 2000 bytes): frames sent in turn, as many flows interleaved.
    pub fn new(ns: &str, ifname: &str, frames: &[Vec<u8>]) -> Result<TxRing, String> {
        if let Some(f) = frames.iter().find(|f| f.len() > RING_FRAME - TX_DATA_OFF) {
            return Err(format!(
                "frame of {} bytes does not fit a ring slot",
                f.len()
            ));
        }
        if frames.is_empty() {
            return Err("no frame to send".into());
        }
        let map_len = RING_BLOCK * RING_BLOCKS;
        let slots = map_len / RING_FRAME;
        let fd = in_ns(ns, &format!("opening a transmit ring on {ifname}"), || {
            open_bound_with(ifname, 0, |fd| {
                setsockopt_int(
                    fd,
                    libc::SOL_PACKET,
                    libc::PACKET_VERSION,
                    libc::tpacket_versions::TPACKET_V2 as i32,
                )?;
                setsockopt_int(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
                // Room for every slot in flight: a device that holds frames
                // (a TAP's queue) must drop what it cannot take, not slow
                // the generator down through socket memory.
                let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 64 << 20);
                let req = libc::tpacket_req {
                    tp_block_size: RING_BLOCK as u32,
                    tp_block_nr: RING_BLOCKS as u32,
                    tp_frame_size: RING_FRAME as u32,
                    tp_frame_nr: slots as u32,
                };
                setsockopt(fd, libc::SOL_PACKET, libc::PACKET_TX_RING, &req)
            })
        })?;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!(
                "mapping the transmit ring of {ifname}: {}",
                io::Error::last_os_error()
            ));
        }
        let ring = TxRing {
            fd,
            map: map as *mut u8,
            map_len,
            frame_size: RING_FRAME,
            frames: slots,
            next: 0,
        };
        for i in 0..ring.frames {
            let frame = &frames[i % frames.len()];
            // SAFETY: slot i lies within the mapping; the kernel does not
            // touch slots whose status is AVAILABLE.
            unsafe {
                let slot = ring.map.add(i * ring.frame_size);
                std::ptr::copy_nonoverlapping(frame.as_ptr(), slot.add(TX_DATA_OFF), frame.len());
                std::ptr::write_volatile(slot.add(4) as *mut u32, frame.len() as u32);
            }
        }
        Ok(ring)
    }

    fn status(&self, i: usize) -> *mut u32 {
        // SAFETY: i < frames, so the slot header lies within the mapping.
        unsafe { self.map.add(i * self.frame_size) as *mut u32 }
    }

    /// Queues up to `count` frames (fewer if the ring is full of frames the
    /// kernel still holds) and hands them to the kernel. Returns how many
    /// were handed over. `stamp`, if given, is written into each frame.
    pub fn send(&mut self, count: usize, stamp: Option<&dyn Fn() -> u64>) -> usize {
        let mut queued = 0;
        while queued < count {
            let st = self.status(self.next);
            // SAFETY: the status word is shared with the kernel: volatile.
            let s = unsafe { std::ptr::read_volatile(st) };
            if s != TP_STATUS_AVAILABLE && s != TP_STATUS_SEND_REQUEST && s != TP_STATUS_SENDING {
                // WRONG_FORMAT and friends: give the slot back.
                // SAFETY: as above.
                unsafe { std::ptr::write_volatile(st, TP_STATUS_AVAILABLE) };
            } else if s != TP_STATUS_AVAILABLE {
                break; // the kernel still holds it
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            if let Some(f) = stamp {
                // SAFETY: the stamp lies inside the frame copied into the slot.
                unsafe {
                    let data = (st as *mut u8).add(TX_DATA_OFF);
                    let bytes = std::slice::from_raw_parts_mut(data, STAMP_AT + 8);
                    frame::stamp(bytes, f());
                }
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            // SAFETY: as above.
            unsafe { std::ptr::write_volatile(st, TP_STATUS_SEND_REQUEST) };
            self.next = (self.next + 1) % self.frames;
            queued += 1;
        }
        if queued == 0 {
            // Let the kernel finish what it holds.
            self.kick();
            return 0;
        }
        self.kick();
        queued
    }

    fn kick(&self) {
        // SAFETY: send with no data flushes the ring's SEND_REQUEST slots.
        unsafe {
            libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT);
        }
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`, used by no one else.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.map_len) };
    }
}
