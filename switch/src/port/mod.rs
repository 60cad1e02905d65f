//! Ports: the ways frames enter and leave the switch. One file per kind
//! (TAP, AF_XDP, AF_PACKET, in memory), one trait for all of them (Open vSwitch's
//! netdev shape: receive a batch, send, flush once per batch, and say what
//! the port can do).
//!
//! ```text
//!   Port::recv  --(a batch into Slots: own buffers, or UMEM frames)--> pipeline
//!   pipeline --> edit --> Port::send (gathered copy) ... Port::flush (once per batch)
//!                     \-> AfXdpPort::send_frame (the received UMEM frame itself)
//! ```
//!
//! This module is the only one with `unsafe` (umem.rs, afxdp.rs, packet.rs, sys.rs,
//! xdp_loader.rs), each with its argument next to it.

// The kernel-facing files: the crate denies `unsafe_code` everywhere else.
#[allow(unsafe_code)]
pub mod afxdp;
pub mod mem;
#[allow(unsafe_code)]
pub mod packet;
#[allow(unsafe_code)]
pub mod sys;
#[allow(unsafe_code)]
pub mod tap;
#[allow(unsafe_code)]
pub mod umem;
#[allow(unsafe_code)]
pub mod uring;
#[allow(unsafe_code)]
pub mod xdp_loader;

pub use afxdp::{AfXdpError, AfXdpPort, AfXdpStats};
pub use mem::MemPort;
pub use packet::{PacketError, PacketPort};
pub use tap::{Tap, TapError, TapQueue};
pub use umem::{SharedUmem, Slots, UmemFrame};
pub use uring::{TapRing, TxTag};

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

pub use shunt_parsers::virtio_net::{Gso, Offload, OffloadError};
pub use sys::{poll, poll_ns, pollfd};

/// Where a received frame starts in its slot: room in front for headers
/// the switch prepends in place (a VLAN tag, a VXLAN encapsulation).
/// Frames received by AF_XDP start 256 bytes in (the kernel's headroom).
pub const HEADROOM: usize = 192;
/// The largest frame an own slot takes (what a 16-bit length holds: a
/// 64 KiB TSO super-frame with its headers); a longer one is cut and
/// counted oversize. A UMEM frame takes `Slots::SIZE` minus its headroom.
pub const MAX_FRAME: usize = u16::MAX as usize;
/// The largest frame a UMEM frame takes after its headroom.
pub const MAX_UMEM_FRAME: usize = Slots::SIZE - HEADROOM;

/// The kinds of port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Tap = 1,
    AfXdp = 2,
    Mem = 3,
    Packet = 4,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tap => "tap",
            Kind::AfXdp => "afxdp",
            Kind::Mem => "mem",
            Kind::Packet => "packet",
        }
    }
}

/// A port id's kind, readable by every worker (`None`: the id is free).
#[derive(Debug, Default)]
pub struct KindCell(AtomicU8);

impl KindCell {
    #[inline]
    pub fn load(&self) -> Option<Kind> {
        match self.0.load(Relaxed) {
            1 => Some(Kind::Tap),
            2 => Some(Kind::AfXdp),
            3 => Some(Kind::Mem),
            4 => Some(Kind::Packet),
            _ => None,
        }
    }
    pub fn store(&self, k: Option<Kind>) {
        self.0.store(k.map_or(0, |k| k as u8), Relaxed);
    }
}

/// What a port takes on transmit, through the virtio-net header in front
/// of each frame: a checksum left to compute (`csum`), TCP super-frames
/// (`tso`), UDP super-frames (`uso`), super-frames inside a UDP tunnel
/// (`udp_tunnel`: a VXLAN underlay TAP on Linux 6.17+, with the 24-byte
/// header). Where a copy's egress lacks one, the switch does the work in
/// software first (docs/offloads.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    pub csum: bool,
    pub tso: bool,
    pub uso: bool,
    pub udp_tunnel: bool,
}

impl Offloads {
    /// Everything a TAP with the virtio-net header takes (tunnels aside:
    /// only the underlay is offered them).
    pub const ALL: Offloads = Offloads {
        csum: true,
        tso: true,
        uso: true,
        udp_tunnel: false,
    };

    /// Whether a frame with offload state `off` can go out as it is.
    #[inline]
    pub fn take(&self, off: &Offload) -> bool {
        let gso = match off.gso {
            Gso::None => true,
            Gso::Tcp4 | Gso::Tcp6 => self.tso,
            Gso::Udp4 | Gso::Udp6 => self.uso,
        };
        gso && (off.csum.is_none() || self.csum) && (off.tunnel.is_none() || self.udp_tunnel)
    }
}

/// What a port can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Received frames stay where the device put them (the AF_XDP UMEM):
    /// they can be sent on by another zero-copy port without a copy.
    pub zero_copy: bool,
    pub offloads: Offloads,
    /// Receive queues (one worker each).
    pub queues: u16,
}

/// Where a received frame is in its slot, and its offload state (from
/// the virtio-net header; `Err` when the header did not fit the frame: it
/// is dropped as `bad_offload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rx {
    pub start: u16,
    pub len: u16,
    pub off: Result<Offload, OffloadError>,
}

impl Default for Rx {
    fn default() -> Rx {
        Rx {
            start: 0,
            len: 0,
            off: Ok(Offload::NONE),
        }
    }
}

impl Rx {
    /// A finished frame (no offload state).
    #[inline]
    pub fn plain(start: u16, len: u16) -> Rx {
        Rx {
            start,
            len,
            off: Ok(Offload::NONE),
        }
    }
}

/// A receive that failed: the device is gone. The frames received before
/// the error are in the batch.
#[derive(Debug)]
pub struct RxError {
    pub received: usize,
    pub error: std::io::Error,
}

/// Why a frame could not be queued for transmission. The frame is not sent;
/// the caller counts it under one drop reason (`From<TxError> for DropReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transmit ring or free frame pool full")]
    Full,
    #[error("frame larger than the port sends")]
    Oversize,
    #[error("frame of another UMEM")]
    Foreign,
    /// The device went away (errno); the port is to be marked down.
    #[error("the device is gone: {}", std::io::Error::from_raw_os_error(*.0))]
    Gone(i32),
    /// The device refused this frame (errno).
    #[error("the device refused the frame: {}", std::io::Error::from_raw_os_error(*.0))]
    Refused(i32),
}

/// One port, whatever its kind.
pub trait Port {
    fn kind(&self) -> Kind;
    fn caps(&self) -> Caps;
    /// Receives up to `got.len()` frames into `slots`, from slot 0, and
    /// says in `got` where each is. Returns how many. Never blocks.
    fn recv(&mut self, slots: &mut Slots, got: &mut [Rx]) -> Result<usize, RxError>;
    /// Sends (or queues until [`Port::flush`]) one frame gathered from
    /// `parts` (at most 4), with offload state `off` for the kernel (a port
    /// whose `caps().offloads` does not take it is only ever given
    /// `Offload::NONE`: the edit stage did the work). Returns its length.
    fn send(&mut self, parts: &[&[u8]], off: &Offload) -> Result<usize, TxError>;
    /// Once per batch: sends what `send` queued.
    fn flush(&mut self);
}

/// A port as a worker holds it: TAPs are shared (any worker may write to
/// any TAP: the kernel serialises), an AF_XDP port belongs to the one
/// worker that owns its rings, an in-memory port to its test.
#[derive(Debug)]
pub enum Device {
    /// A shared TAP and the queue this holder uses.
    Tap(Arc<Tap>, usize),
    AfXdp(Box<AfXdpPort>),
    Mem(Box<MemPort>),
    /// Shared as a TAP is: one descriptor, any worker sends.
    Packet(Arc<PacketPort>),
}

impl Device {
    pub fn tap(t: Tap) -> Device {
        Device::Tap(Arc::new(t), 0)
    }

    /// The AF_XDP port, for what only it does (zero-copy send, frames back
    /// to the fill ring).
    #[inline]
    pub fn afxdp(&mut self) -> Option<&mut AfXdpPort> {
        match self {
            Device::AfXdp(x) => Some(x),
            _ => None,
        }
    }

    /// The descriptor to poll; None for in-memory ports.
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Device::Tap(t, q) => Some(t.queue_fd(*q)),
            Device::AfXdp(x) => Some(x.as_fd()),
            Device::Mem(_) => None,
            Device::Packet(p) => Some(p.as_fd()),
        }
    }
}

impl Port for Device {
    #[inline]
    fn kind(&self) -> Kind {
        match self {
            Device::Tap(..) => Kind::Tap,
            Device::AfXdp(_) => Kind::AfXdp,
            Device::Mem(_) => Kind::Mem,
            Device::Packet(_) => Kind::Packet,
        }
    }
    fn caps(&self) -> Caps {
        match self {
            Device::Tap(t, q) => TapQueue::new(t, *q).caps(),
            Device::AfXdp(x) => x.caps(),
            Device::Mem(m) => m.caps(),
            Device::Packet(p) => Port::caps(&&**p),
        }
    }
    #[inline]
    fn recv(&mut self, slots: &mut Slots, got: &mut [Rx]) -> Result<usize, RxError> {
        match self {
            Device::Tap(t, q) => TapQueue::new(t, *q).recv(slots, got),
            Device::AfXdp(x) => Port::recv(&mut **x, slots, got),
            Device::Mem(m) => m.recv(slots, got),
            Device::Packet(p) => Port::recv(&mut &**p, slots, got),
        }
    }
    #[inline]
    fn send(&mut self, parts: &[&[u8]], off: &Offload) -> Result<usize, TxError> {
        match self {
            Device::Tap(t, q) => TapQueue::new(t, *q).send(parts, off),
            Device::AfXdp(x) => Port::send(&mut **x, parts, off),
            Device::Mem(m) => m.send(parts, off),
            Device::Packet(p) => Port::send(&mut &**p, parts, off),
        }
    }
    #[inline]
    fn flush(&mut self) {
        match self {
            Device::Tap(..) | Device::Packet(_) => {}
            Device::AfXdp(x) => x.flush(),
            Device::Mem(m) => m.flush(),
        }
    }
}

/// The reason a frame a port would not send is dropped for (here, so that
/// the counters need not know the ports).
impl From<TxError> for crate::counters::DropReason {
    fn from(e: TxError) -> Self {
        use crate::counters::DropReason;
        match e {
            TxError::Full => DropReason::TxFull,
            TxError::Oversize => DropReason::Oversize,
            TxError::Gone(_) => DropReason::PortDown,
            TxError::Foreign | TxError::Refused(_) => DropReason::TxError,
        }
    }
}
