//! AF_PACKET ports: a raw packet socket bound to an existing interface (the
//! outer end of a veth host, or any interface a `[[port]] kind = "packet"`
//! names), with the virtio-net header in front of every frame, as Open
//! vSwitch's userspace TSO does. Unlike AF_XDP, the header carries the
//! frame's offload state both ways, so the host behind a veth keeps its
//! checksum offload and TSO: its 64 KiB super-frames come through whole
//! (docs/decisions.md, "veth hosts").
//!
//! ```text
//!   recvmmsg: [virtio_net_hdr_v1 (12) | frame ............]  x up to a batch
//!   sendmsg:  [virtio_net_hdr_v1 (12) | parts[0] | parts[1] ...]  one per frame
//! ```
//!
//! Like a TAP it is one descriptor that any worker may write to (the
//! kernel serialises), read by the one worker that polls it. The datapath
//! (`recv`, `send`) allocates nothing: the batch's message headers live on
//! the stack.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use shunt_parsers::ethernet::EtherType;
use shunt_parsers::virtio_net::{Offload, OffloadError, VirtioNetHdr, VNET_HDR_LEN};
use shunt_parsers::vlan;

/// linux/if_packet.h (newer than some libc crates).
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Since 6.2: a virtio-net header of this many bytes (10 or 12) in front
/// of each frame. 12 is `virtio_net_hdr_v1`, what the TAPs use.
const PACKET_VNET_HDR_SZ: libc::c_int = 24;
/// Socket buffers: a 64 KiB super-frame costs about 70 KiB of buffer, so
/// the default 208 KiB would hold three. 4 MiB holds a batch and more.
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Messages per `recvmmsg`: the switch's batch.
const RECV_BATCH: usize = 64;
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// `struct tpacket_auxdata`: what `PACKET_AUXDATA` says beside a frame.
#[repr(C)]
#[derive(Clone, Copy)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// Room for one control message with an `AuxData` (`CMSG_SPACE(20)` is 40
/// on 64-bit Linux), in u64s so that it is aligned as a `cmsghdr`.
const CTRL_WORDS: usize = 8;

/// What went wrong while opening a packet port.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("packet port on {ifname:?}: no such interface: {source}")]
    NoInterface { ifname: String, source: io::Error },
    #[error("packet port on {ifname:?}: {step}: {source}{hint}")]
    Setup {
        ifname: String,
        step: &'static str,
        source: io::Error,
        hint: &'static str,
    },
}

/// The kernel's counters of a packet socket since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Frames the socket was given (including those dropped).
    pub packets: u64,
    /// Frames dropped because the receive buffer was full.
    pub drops: u64,
}

#[derive(Debug)]
pub struct PacketPort {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    /// `PACKET_STATISTICS` resets on each read: the sums of the reads.
    packets: AtomicU64,
    drops: AtomicU64,
}

impl PacketPort {
    /// Opens a packet socket on `ifname` (in the calling thread's network
    /// namespace): every frame the interface receives, with its virtio-net
    /// header; what we send goes out of it with the header's offload state.
    pub fn open(ifname: &str) -> Result<PacketPort, PacketError> {
        let no_interface = |source| PacketError::NoInterface {
            ifname: ifname.to_string(),
            source,
        };
        let cname = std::ffi::CString::new(ifname)
            .map_err(|_| no_interface(io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: if_nametoindex reads the NUL-terminated name, which lives
        // across the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(no_interface(io::Error::last_os_error()));
        }
        let setup = |step, hint| {
            let ifname = ifname.to_string();
            move |source| PacketError::Setup {
                ifname: ifname.clone(),
                step,
                source,
                hint,
            }
        };
        // SAFETY: plain socket(2); the descriptor goes into an OwnedFd.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                // Nothing is delivered before bind: the protocol is set there.
                0,
            )
        };
        if raw < 0 {
            return Err(setup("socket(AF_PACKET)", " (are you root?)")(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_VNET_HDR_SZ,
            VNET_HDR_LEN as libc::c_int,
        )
        .map_err(setup(
            "PACKET_VNET_HDR_SZ",
            " (the kernel needs to be 6.2 or newer)",
        ))?;
        // Or the socket reads back every frame it sends.
        setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            .map_err(setup("PACKET_IGNORE_OUTGOING", ""))?;
        // The kernel takes a frame's VLAN tag out of its bytes before a
        // packet socket sees it (skb_vlan_untag) and says it beside the
        // frame: we put it back, or tagged frames would look untagged.
        setsockopt(&fd, libc::SOL_PACKET, PACKET_AUXDATA, 1)
            .map_err(setup("PACKET_AUXDATA", ""))?;
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            // FORCE passes rmem_max (root); the plain one is capped by it.
            if setsockopt(&fd, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
                setsockopt(&fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER)
                    .map_err(setup("SO_RCVBUF/SO_SNDBUF", ""))?;
            }
        }
        // SAFETY: an all-zero sockaddr_ll is valid; we fill in what bind reads.
        let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ETH_P_ALL_BE;
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: bind(2) reads `size_of::<sockaddr_ll>()` bytes of the
        // live local `sa`.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(setup("bind", "")(io::Error::last_os_error()));
        }
        Ok(PacketPort {
            fd,
            ifname: ifname.to_string(),
            ifindex,
            packets: AtomicU64::new(0),
            drops: AtomicU64::new(0),
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The kernel's counters since the socket was opened: how many frames
    /// the receive buffer had no room for (the control path reads them;
    /// `PACKET_STATISTICS` resets on each read, so the reads are summed).
    pub fn stats(&self) -> io::Result<PacketStats> {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: getsockopt(2) writes at most `len` bytes into the live
        // local `st` and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketStats {
            packets: self.packets.fetch_add(st.tp_packets.into(), Relaxed)
                + u64::from(st.tp_packets),
            drops: self.drops.fetch_add(st.tp_drops.into(), Relaxed) + u64::from(st.tp_drops),
        })
    }

    /// Takes the socket's pending error (`SO_ERROR`), which clears it: the
    /// "network is down" a device taken down and up again left behind
    /// (`shunt link`), which poll(2) would report as an error until read.
    pub fn take_error(&self) -> io::Result<i32> {
        let mut err: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) writes at most `len` bytes into the live
        // local `err` and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(err)
    }

    /// Receives up to `got.len()` frames with one `recvmmsg(2)`, each after
    /// its slot's headroom. A frame whose virtio-net header does not fit it
    /// is reported in `Rx::off` (dropped as `bad_offload`); one longer than
    /// the slot comes back cut (and is dropped as oversize).
    fn recv_batch(
        &self,
        slots: &mut super::Slots,
        got: &mut [super::Rx],
    ) -> Result<usize, super::RxError> {
        let max = got.len().min(slots.len()).min(RECV_BATCH);
        let mut hdrs = [[0u8; VNET_HDR_LEN]; RECV_BATCH];
        // SAFETY: all-zero iovec and mmsghdr are valid (null pointers,
        // zero lengths); the ones passed to the kernel are filled below.
        let mut iov: [[libc::iovec; 2]; RECV_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { zeroed() };
        let mut ctrl = [[0u64; CTRL_WORDS]; RECV_BATCH];
        let mut n = 0;
        for (i, (h, v)) in hdrs.iter_mut().zip(iov.iter_mut()).take(max).enumerate() {
            let slot = slots.slot_mut(i);
            let end = slot.len().min(super::HEADROOM + super::MAX_FRAME);
            let Some(area) = slot.get_mut(super::HEADROOM..end) else {
                break;
            };
            v[0] = libc::iovec {
                iov_base: h.as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            v[1] = libc::iovec {
                iov_base: area.as_mut_ptr().cast(),
                iov_len: area.len(),
            };
            n = i + 1;
        }
        for ((m, v), c) in msgs
            .iter_mut()
            .zip(iov.iter_mut())
            .zip(ctrl.iter_mut())
            .take(n)
        {
            m.msg_hdr.msg_iov = v.as_mut_ptr();
            m.msg_hdr.msg_iovlen = 2;
            m.msg_hdr.msg_control = c.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = size_of::<[u64; CTRL_WORDS]>();
        }
        if n == 0 {
            return Ok(0);
        }
        let r = loop {
            // SAFETY: `msgs[..n]` point at iovecs of `iov`, which point at
            // `hdrs` and at distinct slot areas of `slots`, and at control
            // buffers of `ctrl`, all live and exclusively borrowed across
            // the call; the kernel writes at most `iov_len` (or
            // `msg_controllen`) bytes into each and fills `msg_len`,
            // `msg_controllen` and `msg_flags`. No timeout (MSG_DONTWAIT).
            let r = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(0),
                Some(libc::EINTR) => continue,
                // The kernel could not describe a frame's offload state
                // (a GSO type the header has no word for, such as a UDP
                // tunnel's): it dropped that frame. Nothing was received.
                Some(libc::EINVAL) => {
                    got[0] = super::Rx {
                        start: super::HEADROOM as u16,
                        len: 0,
                        off: Err(OffloadError::GsoType),
                    };
                    return Ok(1);
                }
                _ => return Err(super::RxError { received: 0, error }),
            }
        };
        for (i, (m, h)) in msgs.iter().zip(&hdrs).take(r).enumerate() {
            let len = (m.msg_len as usize).saturating_sub(VNET_HDR_LEN);
            let mut len = len.min(super::MAX_FRAME);
            let mut start = super::HEADROOM;
            let cut = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let mut hdr = VirtioNetHdr::parse(h);
            let slot = slots.slot_mut(i);
            if let Some((tpid, tci)) = vlan_tag(&m.msg_hdr) {
                // Back into the bytes, where it was on the wire (4 bytes
                // of headroom); the checksum start counted without it.
                if let Some((s, l)) = vlan::push_tag(slot, start, len, tpid, tci) {
                    (start, len) = (s, l.min(super::MAX_FRAME));
                    if let Ok(h) = &mut hdr {
                        h.csum_start = h.csum_start.saturating_add(vlan::TAG_LEN as u16);
                    }
                }
            }
            let frame = slot.get(start..start + len).unwrap_or_default();
            let off = if cut {
                // A cut frame's metadata describes bytes we do not have;
                // its length makes it an oversize drop.
                Ok(Offload::NONE)
            } else {
                hdr.map_err(|_| OffloadError::Length)
                    .and_then(|h| Offload::from_header(&h, frame))
            };
            got[i] = super::Rx {
                start: start as u16,
                len: len as u16,
                off,
            };
        }
        Ok(r)
    }

    /// Sends one frame: its virtio-net header (`off`), then `parts`,
    /// gathered by the kernel in one `sendmsg(2)`.
    fn send_frame(&self, parts: &[&[u8]], off: &Offload) -> Result<usize, super::TxError> {
        let hdr = off.to_header(0, 0).to_bytes();
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 5];
        iov[0] = libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        };
        let n = parts.len().min(iov.len() - 1);
        let mut len = 0;
        for (v, p) in iov[1..].iter_mut().zip(parts) {
            *v = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            len += p.len();
        }
        // SAFETY: an all-zero msghdr is valid (no name, no control data);
        // its iovecs are set below.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n + 1;
        loop {
            // SAFETY: `msg` points at `iov[..n + 1]`, which point at `hdr`
            // and the caller's parts, all live across the call; the kernel
            // only reads them. No name: the socket's bound interface.
            let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
            if r >= 0 {
                return Ok(len);
            }
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(match e {
                libc::EINTR => continue,
                libc::EAGAIN | libc::ENOBUFS => super::TxError::Full,
                libc::EMSGSIZE => super::TxError::Oversize,
                // The interface went away (or down): ENXIO once its index
                // is gone, ENETDOWN when it is down.
                libc::ENXIO | libc::ENODEV | libc::ENETDOWN => super::TxError::Gone(e),
                e => super::TxError::Refused(e),
            });
        }
    }
}

/// The VLAN tag the kernel took out of a received frame, from the
/// `PACKET_AUXDATA` control message of `msg` (TPID 802.1Q unless it says).
fn vlan_tag(msg: &libc::msghdr) -> Option<(EtherType, u16)> {
    // SAFETY: CMSG_LEN is arithmetic on its argument.
    let aux_len = unsafe { libc::CMSG_LEN(size_of::<AuxData>() as u32) } as usize;
    // SAFETY: `msg` is a message header the kernel filled: its control
    // pointer and length describe a buffer of ours that is still live.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return a header inside the
        // control buffer, or null.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_PACKET
            && h.cmsg_type == PACKET_AUXDATA
            && h.cmsg_len as usize >= aux_len
        {
            // SAFETY: the message is long enough for an AuxData (checked
            // above); its data may be unaligned for it, so read it so.
            let aux: AuxData = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            if aux.status & TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if aux.status & TP_STATUS_VLAN_TPID_VALID != 0 {
                EtherType::from(aux.vlan_tpid)
            } else {
                EtherType::Vlan
            };
            return Some((tpid, aux.vlan_tci));
        }
        // SAFETY: as above; `c` is a header of this message.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
    None
}

/// An `int` socket option.
fn setsockopt(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt(2) reads one int from the pointer, which points at
    // the live argument `value`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl AsFd for PacketPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// On `&PacketPort`: any worker may send on a shared packet port.
impl super::Port for &PacketPort {
    fn kind(&self) -> super::Kind {
        super::Kind::Packet
    }

    fn caps(&self) -> super::Caps {
        super::Caps {
            zero_copy: false,
            offloads: super::Offloads::ALL,
            queues: 1,
        }
    }

    fn recv(
        &mut self,
        slots: &mut super::Slots,
        got: &mut [super::Rx],
    ) -> Result<usize, super::RxError> {
        self.recv_batch(slots, got)
    }

    fn send(&mut self, parts: &[&[u8]], off: &Offload) -> Result<usize, super::TxError> {
        self.send_frame(parts, off)
    }

    fn flush(&mut self) {}
}
