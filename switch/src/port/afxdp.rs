//! AF_XDP ports: attach to an existing interface (a veth, a NIC) and move
//! frames through the four AF_XDP rings instead of the kernel stack.
//!
//! Pieces:
//! - [`SharedUmem`]: one page-aligned memory area for the frames of every
//!   AF_XDP port of the switch, cut into fixed 4 KiB frames. Each port takes
//!   its own partition of frames when it opens and gives it back when it is
//!   dropped. Every port registers the *whole* area as its UMEM, so a frame
//!   address means the same frame in every port (the ground for handing
//!   frames between ports without a copy; see docs/afxdp.md).
//! - [`AfXdpPort`]: one XDP socket on queue 0 of one interface, with its own
//!   fill, completion, receive and transmit rings (xdpilone), plus the XDP
//!   redirect program attached through a BPF link (`xdp_loader`), so that the
//!   program goes away with the process, also after `kill -9`.
//!
//! Frame accounting of a port (never more than [`FRAMES_PER_PORT`] frames):
//! - receive side: frames in the fill ring or in the receive ring, at most
//!   [`RING_SIZE`] (`rx_out`);
//! - transmit side: frames in the transmit ring or the completion ring, at
//!   most [`RING_SIZE`] (`tx_out`);
//! - the rest is in the port's free list, a `Vec` allocated once at open.
//!   So neither side can starve the other.
//!
//! The datapath (`recv_batch`, `send`, `flush`) allocates nothing, takes no
//! lock and logs nothing; its only system calls are the wake-ups the kernel
//! asks for (need_wakeup) and the `sendto` that makes copy mode transmit.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig};

use super::xdp_loader::{Hook, XdpLink, XskProgram};
use crate::config::XdpMode;

/// Size of one UMEM frame (one page: what veth and most drivers want).
pub const FRAME_SIZE: u32 = 4096;
/// Entries of each of the four rings of a port.
pub const RING_SIZE: u32 = 2048;
/// Frames a port owns: a full receive side plus a full transmit side.
pub const FRAMES_PER_PORT: u32 = 2 * RING_SIZE;
/// What the kernel keeps in front of a received frame (XDP_PACKET_HEADROOM).
const XDP_PACKET_HEADROOM: u32 = 256;
/// The queue we bind to. Only queue 0: the XSKMAP has one entry and frames
/// that arrive on other queues go to the kernel stack (see docs/afxdp.md).
const QUEUE: u32 = 0;
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
    #[error("afxdp port on {ifname:?}: {step}: {source}{hint}")]
    Setup {
        ifname: String,
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
    #[error("afxdp port on {ifname:?}: still busy after {tries} tries ({step}): another XDP program or AF_XDP socket holds queue 0 (`ip link show dev {ifname}`; `ip link set dev {ifname} xdp off` if it is stale)")]
    Busy {
        ifname: String,
        step: &'static str,
        tries: usize,
    },
    #[error("afxdp: the shared UMEM has room for {ports} ports, all taken (create it with more)")]
    UmemFull { ports: usize },
    #[error("afxdp: cannot map a shared UMEM of {bytes} bytes: {source}")]
    UmemMap { bytes: usize, source: io::Error },
}

/// Why a frame could not be queued for transmission. The frame is not sent;
/// the caller counts it (`tx_full`, or oversize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transmit ring or free frame pool full")]
    Full,
    #[error("frame larger than a UMEM frame")]
    Oversize,
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
    /// Descriptors from the kernel that pointed outside this port's frames
    /// (never seen; counted instead of trusted).
    pub bad_kernel_descs: u64,
}

/// The memory behind one `mmap`, cut into frames, with a table of which
/// port partitions are taken.
struct UmemArea {
    base: NonNull<u8>,
    len: usize,
    ports: usize,
    taken: Mutex<Vec<bool>>,
}

// SAFETY: the area is plain anonymous memory owned by this struct for its
// whole life. Ports touch only frames of their own partition (disjoint), the
// partition table is behind a Mutex (control path only), and nothing here is
// tied to a thread.
unsafe impl Send for UmemArea {}
// SAFETY: as above: shared access is either to disjoint partitions or
// through the Mutex.
unsafe impl Sync for UmemArea {}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned in
        // SharedUmem::new, and no port is left (each port holds an Arc).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// One frame area shared by all AF_XDP ports of a switch. Cheap to clone
/// (an `Arc`); the memory lives until the last port and the last clone go.
#[derive(Clone)]
pub struct SharedUmem {
    area: Arc<UmemArea>,
}

impl std::fmt::Debug for SharedUmem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedUmem")
            .field("bytes", &self.area.len)
            .field("ports", &self.area.ports)
            .finish()
    }
}

impl SharedUmem {
    /// Maps an area for `ports` AF_XDP ports ([`FRAMES_PER_PORT`] frames of
    /// [`FRAME_SIZE`] bytes each: 16 MiB per port). The pages are pinned by
    /// the kernel when a port registers them; root's CAP_IPC_LOCK keeps that
    /// out of RLIMIT_MEMLOCK.
    pub fn new(ports: usize) -> Result<SharedUmem, AfXdpError> {
        let ports = ports.max(1);
        let len = ports
            .checked_mul(FRAMES_PER_PORT as usize * FRAME_SIZE as usize)
            .ok_or_else(|| AfXdpError::UmemMap {
                bytes: usize::MAX,
                source: io::Error::other("too many ports"),
            })?;
        // SAFETY: anonymous private mapping, no fd, no fixed address; the
        // result is checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(AfXdpError::UmemMap {
                bytes: len,
                source: io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| AfXdpError::UmemMap {
            bytes: len,
            source: io::Error::other("mmap returned null"),
        })?;
        Ok(SharedUmem {
            area: Arc::new(UmemArea {
                base,
                len,
                ports,
                taken: Mutex::new(vec![false; ports]),
            }),
        })
    }

    /// How many ports the area has room for.
    pub fn ports(&self) -> usize {
        self.area.ports
    }

    /// Bytes in the area.
    pub fn len(&self) -> usize {
        self.area.len
    }

    pub fn is_empty(&self) -> bool {
        self.area.len == 0
    }

    fn take_partition(&self) -> Result<Partition, AfXdpError> {
        let mut taken = self
            .area
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = taken.iter().position(|t| !t).ok_or(AfXdpError::UmemFull {
            ports: self.area.ports,
        })?;
        taken[index] = true;
        Ok(Partition {
            area: self.area.clone(),
            index,
        })
    }
}

/// A port's share of the area; given back on drop.
struct Partition {
    area: Arc<UmemArea>,
    index: usize,
}

impl Partition {
    fn first_addr(&self) -> u64 {
        self.index as u64 * u64::from(FRAMES_PER_PORT) * u64::from(FRAME_SIZE)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let mut taken = self
            .area
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(t) = taken.get_mut(self.index) {
            *t = false;
        }
    }
}

/// One AF_XDP socket on queue 0 of an interface.
pub struct AfXdpPort {
    // Field order is drop order: first detach the program, so the kernel
    // stops redirecting to us; then close the rings and the socket; then
    // the program and map; then give the frames back.
    link: XdpLink,
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    _umem: Umem,
    _program: XskProgram,
    partition: Partition,

    ifname: String,
    ifindex: u32,
    mode: &'static str,
    mtu: Option<u32>,
    /// Start of the whole area, and the address range (UMEM offsets) of our
    /// partition.
    base: NonNull<u8>,
    lo: u64,
    hi: u64,
    /// Free frames (UMEM offsets of frame starts). Capacity FRAMES_PER_PORT,
    /// never grows.
    free: Vec<u64>,
    /// Frames in the fill ring + receive ring.
    rx_out: u32,
    /// Frames in the transmit ring + completion ring.
    tx_out: u32,
    /// Frames queued since the last flush.
    tx_queued: u32,
    bad_kernel_descs: u64,
}

// SAFETY: the port owns everything it points into: `base` points into the
// UMEM area kept alive by `partition` (an Arc), and the port only touches
// frames of its own partition; the xdpilone rings and Umem (raw pointers to
// their mmaps and to the area) are owned by the port and used only through
// `&mut self` or `&self` of the port. Moving the whole port to another
// thread moves all of that together.
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
    /// Attaches to the existing interface `ifname`: loads the XSKMAP
    /// redirect program, binds an XDP socket on queue 0 over a partition of
    /// `umem`, and attaches the program through a BPF link (detached when the
    /// port is dropped or the process dies, also by `kill -9`).
    ///
    /// `Native`: driver hook, zero-copy when the driver offers it, copy
    /// otherwise. `Generic`: skb hook, copy mode. `Auto`: native, falling
    /// back to generic with a line on stderr saying so. EBUSY (a previous
    /// owner still going away) is retried for about two seconds.
    pub fn open(ifname: &str, mode: XdpMode, umem: &SharedUmem) -> Result<AfXdpPort, AfXdpError> {
        let setup = |step: &'static str, hint: &'static str| {
            let ifname = ifname.to_string();
            move |source: io::Error| AfXdpError::Setup {
                ifname,
                step,
                source,
                hint,
            }
        };

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
        info.set_queue(QUEUE);
        let ifindex = info.ifindex();

        let program = XskProgram::load(1).map_err(|e| AfXdpError::Program {
            ifname: ifname.to_string(),
            step: e.step,
            source: e.source,
            log: if e.verifier_log.is_empty() {
                String::new()
            } else {
                format!("\n{}", e.verifier_log)
            },
        })?;

        let partition = umem.take_partition()?;
        let area = &partition.area;
        let config = UmemConfig {
            fill_size: RING_SIZE,
            complete_size: RING_SIZE,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let whole = NonNull::slice_from_raw_parts(area.base, area.len);
        // SAFETY: `whole` is the page-aligned mapping of UmemArea, which
        // outlives this Umem (the port holds the Partition's Arc and drops
        // the Umem first). Its length is a multiple of FRAME_SIZE.
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
                    step: "bind the XDP socket to queue 0",
                    tries,
                })
            }
            Err(e) => {
                return Err(setup(
                    "bind the XDP socket to queue 0",
                    " (is the interface up, and does it have a queue 0?)",
                )(e))
            }
        }
        // Fill the fill ring before the program sends anything our way.
        let lo = partition.first_addr();
        let hi = lo + u64::from(FRAMES_PER_PORT) * u64::from(FRAME_SIZE);
        let mut free = Vec::with_capacity(FRAMES_PER_PORT as usize);
        free.extend((0..u64::from(FRAMES_PER_PORT)).map(|i| lo + i * u64::from(FRAME_SIZE)));
        let rx_out = fill_from(&mut device, &mut free, 0);

        // SAFETY: the descriptor belongs to `device`/`xumem`, which live as
        // long as the port; it is only borrowed for the map update.
        let xsk_fd = unsafe { BorrowedFd::borrow_raw(device.as_raw_fd()) };
        program
            .set_socket(QUEUE, xsk_fd)
            .map_err(setup("put the socket into the XSKMAP", ""))?;

        let attach = |hook: Hook| retry_busy(|| program.attach(ifindex, hook));
        let busy = |tries| AfXdpError::Busy {
            ifname: ifname.to_string(),
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
                    eprintln!(
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

        let zerocopy = xsk_zerocopy(device.as_raw_fd());
        let mode_name = match (link.hook(), zerocopy) {
            (Hook::Driver, false) => "native-copy",
            (Hook::Driver, true) => "native-zerocopy",
            (Hook::Generic, false) => "generic-copy",
            (Hook::Generic, true) => "generic-zerocopy",
        };

        let base = partition.area.base;

        let port = AfXdpPort {
            link,
            rx,
            tx,
            device,
            _umem: xumem,
            _program: program,
            partition,
            ifname: ifname.to_string(),
            ifindex,
            mode: mode_name,
            mtu: read_mtu(ifname),
            base,
            lo,
            hi,
            free,
            rx_out,
            tx_out: 0,
            tx_queued: 0,
            bad_kernel_descs: 0,
        };
        Ok(port)
    }

    /// "native-copy", "native-zerocopy", "generic-copy".
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// The XDP hook the program is attached to: "native" or "generic".
    pub fn xdp_hook(&self) -> &'static str {
        self.link.hook().name()
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

    /// The largest frame `send` takes (a whole UMEM frame).
    pub fn max_tx_frame(&self) -> usize {
        FRAME_SIZE as usize
    }

    /// One line for the start-up log: mode, frame limit, the MTU that
    /// follows, and a warning when the interface's MTU is above it.
    pub fn summary(&self) -> String {
        let max = self.max_frame();
        let limit_mtu = max - 14;
        let mut s = format!(
            "afxdp port on {}: {} mode, queue 0; frames up to {max} bytes (MTU {limit_mtu}, {} with a VLAN tag); larger frames are dropped and counted as oversize",
            self.ifname,
            self.mode,
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
    /// RING_SIZE frames (or the free list or the ring runs out).
    fn refill(&mut self) {
        self.rx_out += fill_from(&mut self.device, &mut self.free, self.rx_out);
    }

    /// Receives up to `max` frames: tops up the fill ring first, then hands
    /// each received frame to `f` (the slice is valid only during the call)
    /// and recycles its UMEM frame. Returns how many frames `f` saw. Never
    /// blocks.
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        self.refill();
        let max = u32::try_from(max).unwrap_or(u32::MAX).min(RING_SIZE);
        if max == 0 {
            return 0;
        }
        let mut seen = 0;
        let mut reader = self.rx.receive(max);
        while let Some(desc) = reader.read() {
            let base = desc.addr & !u64::from(FRAME_SIZE - 1);
            let end = desc.addr.checked_add(u64::from(desc.len));
            let inside = base >= self.lo
                && base < self.hi
                && end.is_some_and(|e| e <= base + u64::from(FRAME_SIZE));
            if !inside {
                // Not one of our frames: do not touch it, do not recycle it.
                self.bad_kernel_descs += 1;
                continue;
            }
            // SAFETY: [addr, addr+len) lies inside one frame of our
            // partition (checked above), which lies inside the mapping. The
            // kernel handed this frame to us through the receive ring and
            // will not write it again until we put it back into the fill
            // ring, which happens after `f` returns; no other port touches
            // frames of this partition. The slice does not outlive `f`.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    self.base.as_ptr().add(desc.addr as usize),
                    desc.len as usize,
                )
            };
            f(bytes);
            seen += 1;
            self.rx_out = self.rx_out.saturating_sub(1);
            if self.free.len() < self.free.capacity() {
                self.free.push(base);
            }
        }
        reader.release();
        drop(reader);
        if seen == 0 && self.device.needs_wakeup() {
            self.device.wake();
        }
        seen
    }

    /// Queues one frame, gathered from `parts`, for transmission. It leaves
    /// at the next [`flush`](Self::flush). `Err(Full)`: the transmit ring or
    /// the port's transmit frames are all in use (count it as tx_full);
    /// `Err(Oversize)`: the parts add up to more than a UMEM frame.
    pub fn send(&mut self, parts: &[&[u8]]) -> Result<(), TxError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > FRAME_SIZE as usize {
            return Err(TxError::Oversize);
        }
        if self.tx_out >= RING_SIZE {
            return Err(TxError::Full);
        }
        let Some(&addr) = self.free.last() else {
            return Err(TxError::Full);
        };
        let mut writer = self.tx.transmit(1);
        if writer.capacity() == 0 {
            return Err(TxError::Full);
        }
        // SAFETY: `addr` is the start of a free frame of our partition
        // (frames in the free list are in no kernel ring, and only this port
        // uses its partition), so we have it to ourselves; `len` is at most
        // FRAME_SIZE, so the writes stay inside that frame.
        let frame =
            unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(addr as usize), len) };
        let mut at = 0;
        for p in parts {
            frame[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        let queued = writer.insert_once(XdpDesc {
            addr,
            len: len as u32,
            options: 0,
        });
        if !queued {
            return Err(TxError::Full);
        }
        writer.commit();
        drop(writer);
        self.free.pop();
        self.tx_out += 1;
        self.tx_queued += 1;
        Ok(())
    }

    /// Once per batch: asks the kernel to transmit what is queued (a
    /// `sendto` when the ring says it needs a wake-up, as it always does in
    /// copy mode; the kernel sends at most 32 frames per call there, so we
    /// call again while it reports more), then reaps the completion ring
    /// into the free list.
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
            let base = addr & !u64::from(FRAME_SIZE - 1);
            if base < self.lo || base >= self.hi {
                self.bad_kernel_descs += 1;
                continue;
            }
            self.tx_out = self.tx_out.saturating_sub(1);
            if self.free.len() < self.free.capacity() {
                self.free.push(base);
            }
        }
        reader.release();
    }

    /// Frames queued or in flight on the transmit side (not yet completed).
    pub fn tx_in_flight(&self) -> u32 {
        self.tx_out
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

    /// The UMEM offset range of this port's frames (for tests and docs).
    pub fn frame_range(&self) -> (u64, u64) {
        (self.lo, self.hi)
    }
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("partition", &self.partition.index)
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

/// Moves free frames into the fill ring until the receive side (`rx_out`
/// frames in the fill and receive rings) holds RING_SIZE frames, or the free
/// list or the ring runs out. Returns how many frames it moved.
fn fill_from(device: &mut DeviceQueue, free: &mut Vec<u64>, rx_out: u32) -> u32 {
    let want = RING_SIZE.saturating_sub(rx_out).min(free.len() as u32);
    if want == 0 {
        return 0;
    }
    let mut writer = device.fill(want);
    let cap = writer.capacity() as usize;
    if cap == 0 {
        return 0;
    }
    let start = free.len() - cap;
    // Exactly `cap` items: WriteFill::insert zips the iterator with its
    // slots, and an iterator longer than the slots would lose one item.
    let n = writer.insert(free[start..].iter().copied());
    writer.commit();
    drop(writer);
    free.truncate(free.len() - n as usize);
    n
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
