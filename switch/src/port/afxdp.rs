//! AF_XDP ports: attach to an existing interface (a veth, a NIC) and move
//! frames through the four AF_XDP rings instead of the kernel stack.
//!
//! Pieces:
//! - the frame memory, [`SharedUmem`] (in `umem.rs`): one area for the
//!   frames of every AF_XDP port of the switch, with one pool of free
//!   frames. Every port registers the *whole* area as its UMEM, so a frame
//!   address means the same frame in every port and a received frame is
//!   sent on another port by handing over its address (no copy).
//! - [`AfXdpPort`]: one XDP socket on one queue of one interface (queue 0,
//!   or each queue of a multi-queue veth: one socket per queue, each polled
//!   by its own worker), with its own fill, completion, receive and
//!   transmit rings (xdpilone). The sockets of one interface share the XDP
//!   redirect program (its XSKMAP has an entry per queue) attached through
//!   a BPF link (`xdp_loader`), so that the program goes away with the
//!   process, also after `kill -9`.
//!
//! Frame accounting of a port:
//! - receive side: frames in the fill ring or in the receive ring, at most
//!   [`RING_SIZE`] (`rx_out`);
//! - transmit side: frames in the transmit ring or the completion ring, at
//!   most [`RING_SIZE`] (`tx_out`);
//! - a cache of free frames (at most `umem::CACHE`) in front of the shared
//!   pool. A frame received here and sent elsewhere completes on the other
//!   port and lands in its cache; caches give back to the pool when full
//!   and take from it when empty, in chunks.
//! - every frame in one of the socket's rings is marked as lent by it, so
//!   descriptors from the kernel are checked against what we gave it, and
//!   closing the port returns all of them to the pool.
//!
//! The datapath (`recv_into`, `recv_batch`, `send`, `send_frame`, `flush`)
//! allocates nothing, takes no lock and logs nothing; its only system calls
//! are the wake-ups the kernel asks for (need_wakeup) and the `sendto` that
//! makes copy mode transmit.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig};

use super::umem::{FrameCache, Slots, UmemError};
pub use super::umem::{SharedUmem, UmemFrame, FRAMES_PER_PORT, FRAME_SIZE, RING_SIZE};
use super::xdp_loader::{Hook, XdpLink, XskProgram};
use crate::config::XdpMode;

/// What the kernel keeps in front of a received frame (XDP_PACKET_HEADROOM),
/// and where the frames we write start: room for a VXLAN encapsulation or
/// a VLAN tag written in front of a frame in place.
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// Frames a port keeps on its receive side (fill ring + receive ring).
const RX_FRAMES: u32 = 2 * RING_SIZE;
/// EBUSY retries at open (a previous owner of the interface still going
/// away): delays in milliseconds, about 2 s in all.
const BUSY_RETRY_MS: [u64; 9] = [20, 40, 80, 120, 160, 250, 350, 450, 500];

const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;

/// What went wrong while opening an AF_XDP port: the interface, the step,
/// the kernel's error, and what to do about it where we know.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("afxdp port on {ifname:?}: no such interface: {source}")]
    NoInterface { ifname: String, source: io::Error },
    #[error("afxdp port on {ifname:?}{}: {step}: {source}{hint}", on_queue(*.queue))]
    Setup {
        ifname: String,
        /// The queue whose socket failed; None for the interface's steps.
        queue: Option<u32>,
        step: &'static str,
        source: io::Error,
        hint: &'static str,
    },
    #[error("afxdp port on {ifname:?}: loading the XDP program failed at {step}: {source}{log}")]
    Program {
        ifname: String,
        step: &'static str,
        source: io::Error,
        /// The verifier's log, prefixed with a newline, when there is one.
        log: String,
    },
    #[error("afxdp port on {ifname:?}{}: still busy after {tries} tries ({step}): another XDP program or AF_XDP socket holds the interface or the queue (`ip link show dev {ifname}`; `ip link set dev {ifname} xdp off` if it is stale)", on_queue(*.queue))]
    Busy {
        ifname: String,
        queue: Option<u32>,
        step: &'static str,
        tries: usize,
    },
    #[error(transparent)]
    Umem(#[from] UmemError),
}

pub use super::TxError;

/// ", queue N" for an error of one queue's socket.
fn on_queue(q: Option<u32>) -> String {
    q.map(|q| format!(", queue {q}")).unwrap_or_default()
}

/// An error maker for `step` of interface `ifname` (`queue`: of that
/// queue's socket).
fn setup_err(
    ifname: &str,
    queue: Option<u32>,
    step: &'static str,
    hint: &'static str,
) -> impl FnOnce(io::Error) -> AfXdpError {
    let ifname = ifname.to_string();
    move |source| AfXdpError::Setup {
        ifname,
        queue,
        step,
        source,
        hint,
    }
}

/// The kernel's counters for one socket, plus ours. Read on the control
/// path (one `getsockopt`), never per frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfXdpStats {
    /// Frames the kernel dropped before our receive ring: too large for a
    /// frame, or no frame in the fill ring.
    pub rx_dropped: u64,
    /// Of those, frames too large for a UMEM frame (rx_dropped minus the
    /// fill-ring-empty drops; the kernel has no separate counter).
    pub oversize: u64,
    /// Frames the kernel found no fill-ring frame for.
    pub rx_fill_ring_empty: u64,
    /// Frames dropped because our receive ring was full.
    pub rx_ring_full: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Descriptors from the kernel that pointed at frames this socket had
    /// not lent it, or past a frame's end (never seen; counted instead of
    /// trusted).
    pub bad_kernel_descs: u64,
}

/// What the sockets on the queues of one interface share: the redirect
/// program, its XSKMAP and the BPF link that attaches it. The last socket
/// of the interface to close drops it (the program goes with the link).
struct Attachment {
    // Field order is drop order: detach first, then the program and map.
    link: XdpLink,
    _program: XskProgram,
}

/// One AF_XDP socket on one queue of an interface (queue 0, or each queue
/// of a multi-queue veth: [`AfXdpPort::open_queues`]).
pub struct AfXdpPort {
    // Field order is drop order: first the program's attachment (detached
    // when this is the interface's last socket, so the kernel stops
    // redirecting to us; a socket closed while the program stays is
    // taken out of the XSKMAP by the kernel, and its queue's frames go to
    // the kernel stack); then close the rings and the socket; then give
    // the frames back.
    attachment: Arc<Attachment>,
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    _umem: Umem,
    /// Last: after the socket is closed, every frame it had lent to the
    /// kernel goes back to the pool with the cache.
    frames: FrameCache,

    ifname: String,
    ifindex: u32,
    mode: &'static str,
    mtu: Option<u32>,
    /// The queue this socket is bound to, and how many the port has.
    queue: u32,
    queues: u32,
    /// The sockets of the other queues, from `open_queues` until
    /// [`split_queues`](Self::split_queues) gives each to its worker.
    rest: Vec<AfXdpPort>,
    /// Frames in the fill ring + receive ring.
    rx_out: u32,
    /// Frames in the transmit ring + completion ring.
    tx_out: u32,
    /// Frames queued since the last flush.
    tx_queued: u32,
    bad_kernel_descs: u64,
}

/// One queue's socket, bound and with its fill ring filled, before the
/// program is attached.
struct Bound {
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    umem: Umem,
    frames: FrameCache,
    rx_out: u32,
}

// SAFETY: the port touches only frames it owns (in its cache, or handed
// back by its rings), inside the area its FrameCache keeps alive (an Arc);
// the xdpilone rings and Umem (raw pointers to their mmaps and to the area)
// are owned by the port and used only through `&mut self` or `&self` of the
// port. Moving the whole port to another thread moves all of that together.
unsafe impl Send for AfXdpPort {}

fn os_err(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EBUSY)
}

/// Runs `f` until it does not fail with EBUSY, sleeping a little between
/// tries. Returns the last result, and whether we gave up on EBUSY.
fn retry_busy<T>(mut f: impl FnMut() -> io::Result<T>) -> (io::Result<T>, usize) {
    let mut tries = 1;
    let mut r = f();
    for ms in BUSY_RETRY_MS {
        match &r {
            Err(e) if is_busy(e) => {
                std::thread::sleep(Duration::from_millis(ms));
                tries += 1;
                r = f();
            }
            _ => break,
        }
    }
    (r, tries)
}

fn read_mtu(ifname: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl AfXdpPort {
    /// Attaches to the existing interface `ifname` with one socket on queue
    /// 0: [`open_queues`](Self::open_queues) with one queue.
    pub fn open(ifname: &str, mode: XdpMode, umem: &SharedUmem) -> Result<AfXdpPort, AfXdpError> {
        AfXdpPort::open_queues(ifname, mode, umem, 1)
    }

    /// Attaches to the existing interface `ifname`: loads the redirect
    /// program with an XSKMAP of `queues` entries, binds one XDP socket on
    /// each of queues 0..`queues` over the whole of `umem` (each socket
    /// takes one of its places and has its own four rings), and attaches
    /// the program through a BPF link (detached when the last socket is
    /// dropped or the process dies, also by `kill -9`). Returns queue 0's
    /// socket; the others come out of [`split_queues`](Self::split_queues).
    ///
    /// `Native`: driver hook, zero-copy when the driver offers it, copy
    /// otherwise. `Generic`: skb hook, copy mode. `Auto`: native, falling
    /// back to generic with a line on stderr saying so. EBUSY (a previous
    /// owner still going away) is retried for about two seconds.
    pub fn open_queues(
        ifname: &str,
        mode: XdpMode,
        umem: &SharedUmem,
        queues: u32,
    ) -> Result<AfXdpPort, AfXdpError> {
        let queues = queues.max(1);
        let setup = |step: &'static str, hint: &'static str| setup_err(ifname, None, step, hint);

        let cname = std::ffi::CString::new(ifname).map_err(|_| AfXdpError::NoInterface {
            ifname: ifname.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"),
        })?;
        let mut info = IfInfo::invalid();
        info.from_name(&cname)
            .map_err(|e| AfXdpError::NoInterface {
                ifname: ifname.to_string(),
                source: os_err(e),
            })?;
        let ifindex = info.ifindex();

        let program = XskProgram::load(queues).map_err(|e| AfXdpError::Program {
            ifname: ifname.to_string(),
            step: e.step,
            source: e.source,
            log: if e.verifier_log.is_empty() {
                String::new()
            } else {
                format!("\n{}", e.verifier_log)
            },
        })?;
        // Every socket is bound, filled and in the map before the program
        // sends anything our way.
        let mut bound = Vec::with_capacity(queues as usize);
        for q in 0..queues {
            bound.push(bind_queue(ifname, info, q, mode, umem, &program)?);
        }

        let attach = |hook: Hook| retry_busy(|| program.attach(ifindex, hook));
        let busy = |tries| AfXdpError::Busy {
            ifname: ifname.to_string(),
            queue: None,
            step: "attach the XDP program",
            tries,
        };
        let link = match mode {
            XdpMode::Native | XdpMode::Generic => {
                let hook = if mode == XdpMode::Native {
                    Hook::Driver
                } else {
                    Hook::Generic
                };
                match attach(hook) {
                    (Ok(link), _) => link,
                    (Err(e), tries) if is_busy(&e) => return Err(busy(tries)),
                    (Err(e), _) => {
                        return Err(setup(
                            if hook == Hook::Driver {
                                "attach the XDP program in native (driver) mode"
                            } else {
                                "attach the XDP program in generic mode"
                            },
                            if hook == Hook::Driver {
                                " (the driver may lack XDP, or the MTU is too large for it: try xdp_mode = \"generic\" or \"auto\")"
                            } else {
                                ""
                            },
                        )(e))
                    }
                }
            }
            XdpMode::Auto => match attach(Hook::Driver) {
                (Ok(link), _) => link,
                (Err(e), tries) if is_busy(&e) => return Err(busy(tries)),
                (Err(native), _) => {
                    crate::say!(
                        "afxdp: {ifname}: native XDP attach failed ({native}); falling back to generic (skb) mode"
                    );
                    match attach(Hook::Generic) {
                        (Ok(link), _) => link,
                        (Err(e), tries) if is_busy(&e) => return Err(busy(tries)),
                        (Err(e), _) => {
                            return Err(setup("attach the XDP program (native failed too)", "")(e))
                        }
                    }
                }
            },
        };

        let hook = link.hook();
        if queues > 1 && hook == Hook::Generic {
            // Measured on a veth (docs/afxdp.md, "Several queues"): without
            // native XDP the kernel records no receive queue on the frames.
            crate::say!(
                "afxdp: {ifname}: generic XDP: the kernel gives every received frame queue 0, so its socket receives them all; the {queues} sockets still each transmit for their worker"
            );
        }
        let attachment = Arc::new(Attachment {
            link,
            _program: program,
        });
        let mtu = read_mtu(ifname);
        let mut ports: Vec<AfXdpPort> = bound
            .into_iter()
            .zip(0..)
            .map(|(b, queue)| {
                let zerocopy = xsk_zerocopy(b.device.as_raw_fd());
                AfXdpPort {
                    attachment: Arc::clone(&attachment),
                    rx: b.rx,
                    tx: b.tx,
                    device: b.device,
                    _umem: b.umem,
                    frames: b.frames,
                    ifname: ifname.to_string(),
                    ifindex,
                    mode: mode_name(hook, zerocopy),
                    mtu,
                    queue,
                    queues,
                    rest: Vec::new(),
                    rx_out: b.rx_out,
                    tx_out: 0,
                    tx_queued: 0,
                    bad_kernel_descs: 0,
                }
            })
            .collect();
        // Not empty: at least one queue was bound above.
        let mut first = ports.remove(0);
        first.rest = ports;
        Ok(first)
    }

    /// The sockets of queues 1.. of a port opened with several queues
    /// (each goes to the worker that polls it); empty after the first call.
    pub fn split_queues(&mut self) -> Vec<AfXdpPort> {
        std::mem::take(&mut self.rest)
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// How many queues (sockets) the port was opened with.
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// "native-copy", "native-zerocopy", "generic-copy".
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// The XDP hook the program is attached to: "native" or "generic".
    pub fn xdp_hook(&self) -> &'static str {
        self.attachment.link.hook().name()
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The largest frame (Ethernet header included, no FCS) a UMEM frame
    /// holds on receive: the frame size less the kernel's XDP headroom.
    /// Larger frames are dropped by the kernel and show in
    /// [`AfXdpStats::oversize`].
    pub fn max_frame(&self) -> usize {
        (FRAME_SIZE - XDP_PACKET_HEADROOM) as usize
    }

    /// The largest frame `send` takes (a UMEM frame after its headroom).
    pub fn max_tx_frame(&self) -> usize {
        (FRAME_SIZE - XDP_PACKET_HEADROOM) as usize
    }

    /// One line for the start-up log: mode, frame limit, the MTU that
    /// follows, and a warning when the interface's MTU is above it.
    pub fn summary(&self) -> String {
        let max = self.max_frame();
        let limit_mtu = max - 14;
        let mut s = format!(
            "afxdp port on {}: {} mode, {}; frames up to {max} bytes (MTU {limit_mtu}, {} with a VLAN tag); larger frames are dropped and counted as oversize",
            self.ifname,
            self.mode,
            if self.queues > 1 {
                format!("{} queues (one socket each)", self.queues)
            } else {
                "queue 0".to_string()
            },
            limit_mtu - 4
        );
        if let Some(mtu) = self.mtu {
            if mtu as usize > limit_mtu - 4 {
                s.push_str(&format!(
                    "; WARNING: {} has MTU {mtu}, above that limit",
                    self.ifname
                ));
            }
        }
        s
    }

    /// The socket, for poll(2) with POLLIN.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.device`/`self.umem` and
        // stays open at least as long as the borrow of `self`.
        unsafe { BorrowedFd::borrow_raw(self.device.as_raw_fd()) }
    }

    /// Puts free frames into the fill ring until the receive side holds
    /// RING_SIZE frames (or the pool or the ring runs out). Every receive
    /// does it first; a port whose fill ring ran empty (the pool was dry)
    /// receives nothing, so nothing wakes its worker to receive: the worker
    /// calls this for its ports once a second as well (frames that came
    /// back to the pool meanwhile reach the ring; docs/reliability.md,
    /// "Faults"). Cheap when the receive side is full: one subtraction.
    pub fn refill(&mut self) {
        self.rx_out += fill_from(&mut self.device, &mut self.frames, self.rx_out);
    }

    /// Takes the next descriptors off the receive ring (at most `max`),
    /// after topping up the fill ring, and hands each checked frame to `f`
    /// as (frame start, offset of the data in the frame, length). Frames
    /// the kernel should not have given us are counted and skipped.
    #[inline]
    fn receive(&mut self, max: usize, mut f: impl FnMut(&mut FrameCache, u64, u16, u16)) -> usize {
        self.refill();
        let max = u32::try_from(max).unwrap_or(u32::MAX).min(RING_SIZE);
        if max == 0 {
            return 0;
        }
        let mut seen = 0;
        let mut reader = self.rx.receive(max);
        while let Some(desc) = reader.read() {
            self.rx_out = self.rx_out.saturating_sub(1);
            let Some(base) = self.frames.unlend(desc.addr, desc.len) else {
                // Not a frame we lent: do not touch it, do not recycle it.
                self.bad_kernel_descs += 1;
                continue;
            };
            // Both below FRAME_SIZE: unlend checked the frame's end.
            let off = (desc.addr - base) as u16;
            f(&mut self.frames, base, off, desc.len as u16);
            seen += 1;
        }
        reader.release();
        drop(reader);
        if seen == 0 && self.device.needs_wakeup() {
            self.device.wake();
        }
        seen
    }

    /// Receives up to `max` frames and hands each to `f` as a slice valid
    /// only during the call; the frame goes back to the port right after.
    /// Returns how many frames `f` saw. Never blocks. (Tests and tools; the
    /// switch uses [`recv_into`](Self::recv_into).)
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        self.receive(max, |frames, base, off, len| {
            // SAFETY: the frame came back from our receive ring (unlend
            // checked it was ours and lent), so nobody else uses it until
            // `put` below; the slice does not outlive this closure.
            let bytes = unsafe { frames.frame_mut(base) };
            f(&bytes[usize::from(off)..usize::from(off) + usize::from(len)]);
            frames.put(base);
        })
    }

    /// Receives up to `max` frames *without a copy*: slot `first + k` of
    /// `slots` shows the k-th frame (the slot holds its UMEM frame from now
    /// on), and `f(slot, offset, len)` says where the bytes are. Returns
    /// how many slots were filled. The holder sends the frame on with
    /// [`send_frame`](Self::send_frame) (any port of this UMEM) or gives it
    /// back with [`recycle`](Self::recycle).
    pub fn recv_into(
        &mut self,
        slots: &mut Slots,
        first: usize,
        mut f: impl FnMut(usize, u16, u16),
    ) -> usize {
        let room = slots.len().saturating_sub(first);
        let mut i = first;
        self.receive(room, |frames, base, off, len| {
            match slots.hold(i, frames.handle(base), frames.area()) {
                Ok(()) => {
                    f(i, off, len);
                    i += 1;
                }
                Err(h) => frames.put_frame(h),
            }
        });
        i - first
    }

    /// Queues one frame, gathered from `parts` (copied into a free frame),
    /// for transmission. It leaves at the next [`flush`](Self::flush).
    /// `Err(Full)`: the transmit ring or the port's transmit frames are all
    /// in use (count it as tx_full); `Err(Oversize)`: the parts add up to
    /// more than a UMEM frame holds after its headroom.
    pub fn send(&mut self, parts: &[&[u8]]) -> Result<(), TxError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let off = XDP_PACKET_HEADROOM as usize;
        if off + len > FRAME_SIZE as usize {
            return Err(TxError::Oversize);
        }
        if self.tx_out >= RING_SIZE {
            return Err(TxError::Full);
        }
        let Some(base) = self.frames.get() else {
            return Err(TxError::Full);
        };
        // SAFETY: `base` came out of our cache: a free frame nobody else
        // holds; the writes below stay inside it (off + len <= FRAME_SIZE).
        let frame = unsafe { self.frames.frame_mut(base) };
        let mut at = off;
        for p in parts {
            frame[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.queue_tx(base, off as u16, len as u16)
    }

    /// Queues a frame this port or another port of the same UMEM received
    /// (or one from [`SharedUmem::alloc`]) for transmission *as it is*: its
    /// address goes on the transmit ring, no byte is copied. `off` and
    /// `len` say where the frame's bytes are inside the UMEM frame. On
    /// error the frame is taken back into this port's cache.
    pub fn send_frame(&mut self, f: UmemFrame, off: u16, len: u16) -> Result<(), TxError> {
        let base = match self.frames.open(f) {
            Ok(b) => b,
            // Not ours to recycle: the caller's pool will never see it again,
            // but nothing else can either.
            Err(_) => return Err(TxError::Foreign),
        };
        if usize::from(off) + usize::from(len) > FRAME_SIZE as usize {
            self.frames.put(base);
            return Err(TxError::Oversize);
        }
        if self.tx_out >= RING_SIZE {
            self.frames.put(base);
            return Err(TxError::Full);
        }
        self.queue_tx(base, off, len)
    }

    /// Puts frame `base` (owned by us) on the transmit ring, or back into
    /// the cache when the ring is full.
    #[inline]
    fn queue_tx(&mut self, base: u64, off: u16, len: u16) -> Result<(), TxError> {
        let mut writer = self.tx.transmit(1);
        let queued = writer.capacity() > 0
            && writer.insert_once(XdpDesc {
                addr: base + u64::from(off),
                len: u32::from(len),
                options: 0,
            });
        if !queued {
            drop(writer);
            self.frames.put(base);
            return Err(TxError::Full);
        }
        self.frames.lend(base);
        writer.commit();
        drop(writer);
        self.tx_out += 1;
        self.tx_queued += 1;
        Ok(())
    }

    /// Takes back a frame its holder is done with (dropped, or sent by
    /// copy): it goes into this port's cache.
    #[inline]
    pub fn recycle(&mut self, f: UmemFrame) {
        self.frames.put_frame(f);
    }

    /// Gives the free frames of this port's cache beyond `keep` to `to`
    /// (both ports on the same UMEM): frames a transmit port got back from
    /// its completion ring go straight to the receive port whose frames
    /// they were, newest first, instead of through the shared pool (a FIFO
    /// over the whole area, so its frames are the coldest). Measured in
    /// `forwarding_rate`: see docs/afxdp.md.
    pub fn pass_frames(&mut self, to: &mut AfXdpPort, keep: usize) {
        self.frames.pass_to(&mut to.frames, keep);
    }

    /// Free frames in this port's cache.
    pub fn cached_frames(&self) -> usize {
        self.frames.cached().len()
    }

    /// The UMEM this port's frames live in.
    pub fn umem(&self) -> SharedUmem {
        SharedUmem {
            area: self.frames.area().clone(),
        }
    }

    /// Once per batch: asks the kernel to transmit what is queued (a
    /// `sendto` when the ring says it needs a wake-up, as it always does in
    /// copy mode; the kernel sends at most 32 frames per call there, so we
    /// call again while it reports more), then reaps the completion ring
    /// into the cache.
    pub fn flush(&mut self) {
        if self.tx_queued > 0 || self.tx.pending() > 0 {
            self.tx_queued = 0;
            let mut calls = RING_SIZE / 32 + 1;
            while self.tx.pending() > 0 && self.tx.needs_wakeup() && calls > 0 {
                calls -= 1;
                if !kick_tx(self.tx.as_raw_fd()) {
                    break;
                }
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        let mut reader = self.device.complete(RING_SIZE);
        while let Some(addr) = reader.read() {
            self.tx_out = self.tx_out.saturating_sub(1);
            match self.frames.unlend(addr, 0) {
                Some(base) => self.frames.put(base),
                None => self.bad_kernel_descs += 1,
            }
        }
        reader.release();
    }

    /// Frames queued or in flight on the transmit side (not yet completed).
    pub fn tx_in_flight(&self) -> u32 {
        self.tx_out
    }

    /// The transmit side takes no frame now (`send_frame` would say
    /// `Full`): a caller that can keep the frame for later asks first.
    pub fn tx_ring_full(&self) -> bool {
        self.tx_out >= RING_SIZE
    }

    /// The kernel's counters for this socket (one getsockopt: control path).
    pub fn stats(&self) -> AfXdpStats {
        let mut s = AfXdpStats {
            bad_kernel_descs: self.bad_kernel_descs,
            ..Default::default()
        };
        if let Ok(k) = self.device.statistics_v2() {
            s.rx_dropped = k.rx_dropped;
            s.rx_fill_ring_empty = k.rx_fill_ring_empty_descs;
            s.oversize = k.rx_dropped.saturating_sub(k.rx_fill_ring_empty_descs);
            s.rx_ring_full = k.rx_ring_full;
            s.rx_invalid_descs = k.rx_invalid_descs;
            s.tx_invalid_descs = k.tx_invalid_descs;
        }
        s
    }
}

impl super::Port for AfXdpPort {
    fn kind(&self) -> super::Kind {
        super::Kind::AfXdp
    }

    fn caps(&self) -> super::Caps {
        super::Caps {
            zero_copy: true,
            offloads: super::Offloads::default(),
            // The port's queues (this socket is one of them).
            queues: self.queues as u16,
        }
    }

    /// Without a copy: the slots hold the UMEM frames the kernel received
    /// into ([`AfXdpPort::recv_into`]).
    #[inline]
    fn recv(
        &mut self,
        slots: &mut super::Slots,
        got: &mut [super::Rx],
    ) -> Result<usize, super::RxError> {
        Ok(self.recv_into(slots, 0, |i, start, len| {
            if let Some(g) = got.get_mut(i) {
                *g = super::Rx::plain(start, len);
            }
        }))
    }

    #[inline]
    fn send(&mut self, parts: &[&[u8]], _off: &super::Offload) -> Result<usize, TxError> {
        AfXdpPort::send(self, parts)?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }

    #[inline]
    fn flush(&mut self) {
        AfXdpPort::flush(self)
    }
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("cached_frames", &self.cached_frames())
            .finish()
    }
}

impl AsFd for AfXdpPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        AfXdpPort::as_fd(self)
    }
}

/// Whether this kernel and this process can create AF_XDP sockets (for a
/// test's or a start-up check's "skipped"/"unavailable" message).
pub fn available() -> io::Result<()> {
    // SAFETY: plain socket(2); on success the descriptor is handed to an
    // OwnedFd, which closes it.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    Ok(())
}

/// "native-copy", "native-zerocopy", "generic-copy", "generic-zerocopy".
fn mode_name(hook: Hook, zerocopy: bool) -> &'static str {
    match (hook, zerocopy) {
        (Hook::Driver, false) => "native-copy",
        (Hook::Driver, true) => "native-zerocopy",
        (Hook::Generic, false) => "generic-copy",
        (Hook::Generic, true) => "generic-zerocopy",
    }
}

/// Makes queue `queue`'s socket of interface `info`: registers the whole
/// area of `umem` as its UMEM (taking one of its places), makes the four
/// rings, binds it to the queue (EBUSY retried), fills its fill ring and
/// puts it into the program's XSKMAP under the queue's index.
fn bind_queue(
    ifname: &str,
    mut info: IfInfo,
    queue: u32,
    mode: XdpMode,
    umem: &SharedUmem,
    program: &XskProgram,
) -> Result<Bound, AfXdpError> {
    let setup = |step: &'static str, hint: &'static str| setup_err(ifname, Some(queue), step, hint);
    info.set_queue(queue);
    let mut frames = umem.take_place()?;
    let area = frames.area().clone();
    let config = UmemConfig {
        fill_size: RING_SIZE,
        complete_size: RING_SIZE,
        frame_size: FRAME_SIZE,
        headroom: 0,
        flags: 0,
    };
    let whole = NonNull::slice_from_raw_parts(area.base, area.len);
    // SAFETY: `whole` is the page-aligned mapping of UmemArea, which
    // outlives this Umem (the port holds the area's Arc in `frames` and
    // drops the Umem first). Its length is a multiple of FRAME_SIZE.
    let xumem = unsafe { Umem::new(config, whole) }
        .map_err(os_err)
        .map_err(setup(
            "register the UMEM",
            " (AF_XDP needs root, or CAP_NET_RAW and CAP_IPC_LOCK)",
        ))?;
    let sock = Socket::with_shared(&info, &xumem)
        .map_err(os_err)
        .map_err(setup("create the XDP socket", ""))?;
    let mut device = xumem
        .fq_cq(&sock)
        .map_err(os_err)
        .map_err(setup("set up the fill and completion rings", ""))?;
    let bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP
        | match mode {
            // Copy mode for the generic hook; otherwise the kernel tries
            // zero-copy and falls back to copy by itself.
            XdpMode::Generic => SocketConfig::XDP_BIND_COPY,
            XdpMode::Native | XdpMode::Auto => 0,
        };
    let user = xumem
        .rx_tx(
            &sock,
            &SocketConfig {
                rx_size: NonZeroU32::new(RING_SIZE),
                tx_size: NonZeroU32::new(RING_SIZE),
                bind_flags,
            },
        )
        .map_err(os_err)
        .map_err(setup("set up the receive and transmit rings", ""))?;
    let rx = user
        .map_rx()
        .map_err(os_err)
        .map_err(setup("map the receive ring", ""))?;
    let tx = user
        .map_tx()
        .map_err(os_err)
        .map_err(setup("map the transmit ring", ""))?;
    let (bound, tries) = retry_busy(|| xumem.bind(&user).map_err(os_err));
    match bound {
        Ok(()) => {}
        Err(e) if is_busy(&e) => {
            return Err(AfXdpError::Busy {
                ifname: ifname.to_string(),
                queue: Some(queue),
                step: "bind the XDP socket to its queue",
                tries,
            })
        }
        Err(e) => {
            return Err(setup(
                "bind the XDP socket to its queue",
                " (is the interface up, and does it have that queue?)",
            )(e))
        }
    }
    // Fill the fill ring before the program sends anything our way.
    let rx_out = fill_from(&mut device, &mut frames, 0);

    // SAFETY: the descriptor belongs to `device`/`xumem`, which live on
    // in the port; it is only borrowed for the map update.
    let xsk_fd = unsafe { BorrowedFd::borrow_raw(device.as_raw_fd()) };
    program
        .set_socket(queue, xsk_fd)
        .map_err(setup("put the socket into the XSKMAP", ""))?;
    Ok(Bound {
        rx,
        tx,
        device,
        umem: xumem,
        frames,
        rx_out,
    })
}

/// Moves free frames into the fill ring until the receive side (`rx_out`
/// frames in the fill and receive rings) holds RING_SIZE frames, or the pool
/// or the ring runs out. Returns how many frames it moved.
fn fill_from(device: &mut DeviceQueue, frames: &mut FrameCache, rx_out: u32) -> u32 {
    let want = RX_FRAMES.saturating_sub(rx_out) as usize;
    if want == 0 {
        return 0;
    }
    frames.top_up(want);
    let have = frames.cached().len().min(want);
    if have == 0 {
        return 0;
    }
    let mut writer = device.fill(have as u32);
    let cap = writer.capacity() as usize;
    if cap == 0 {
        return 0;
    }
    let cached = frames.cached();
    let start = cached.len() - cap;
    // Exactly `cap` items: WriteFill::insert zips the iterator with its
    // slots, and an iterator longer than the slots would lose one item.
    let n = writer.insert(cached[start..].iter().copied()) as usize;
    for &a in &cached[start..start + n] {
        frames.lend(a);
    }
    writer.commit();
    drop(writer);
    frames.remove(start, n);
    n as u32
}

/// One `sendto(fd, NULL, 0, MSG_DONTWAIT)`: makes the kernel transmit from
/// the TX ring. Returns whether calling again may send more (EAGAIN: the
/// kernel stopped after its batch; EBUSY/ENOBUFS: completion ring full or
/// device busy: stop for now, the next flush tries again).
fn kick_tx(fd: libc::c_int) -> bool {
    // SAFETY: a zero-length sendto with no buffer and no address on a
    // socket descriptor we own; the kernel reads nothing from user memory.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if r >= 0 {
        return true;
    }
    matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}

/// Whether the socket was bound in zero-copy mode (XDP_OPTIONS).
fn xsk_zerocopy(fd: libc::c_int) -> bool {
    let mut opts: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `opts`, a u32
    // (struct xdp_options has one u32 field).
    let r = unsafe {
        libc::getsockopt(
            fd,
            SOL_XDP,
            XDP_OPTIONS,
            (&mut opts as *mut u32).cast(),
            &mut len,
        )
    };
    r == 0 && opts & XDP_OPTIONS_ZEROCOPY != 0
}
