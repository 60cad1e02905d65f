//! Batched TAP I/O through io_uring: one ring per worker, many frames per
//! `io_uring_enter(2)` instead of one `readv(2)` or `writev(2)` each.
//!
//! Receive: one READ per slot of the batch, submitted together; each lands
//! at `HEADROOM - 24` so the virtio-net header (24 bytes, tap.rs) ends where the frame starts.
//! The TAP descriptors are non-blocking, so io_uring tries every read
//! inline and an empty queue answers `EAGAIN` at once: all the reads have
//! completed when the call returns. How many reads go is adapted per queue
//! (a read that finds nothing costs about as much as one that finds a frame).
//!
//! Transmit: each frame is copied with its header into one of the ring's
//! own buffers (the parts point into the batch and into per-copy scratch
//! that does not outlive `Port::send`) and a WRITE queued; `flush`, once per
//! batch, submits them all and waits for their completions, so no buffer is
//! reused while the kernel may read it. A frame too large for a buffer (a
//! GSO super-frame) flushes what is queued, to keep the order, and goes out
//! with one `writev(2)` as before: its copy would cost more than the call.
//!
//! Every operation waits for all its completions before it returns: the
//! kernel never holds a pointer into the batch or the buffers between two
//! calls, and the completion queue is empty between them.

use super::tap::Tap;
use super::tap::TAP_HDR_LEN as VNET_HDR_LEN;
use super::{Rx, RxError, Slots, TxError, HEADROOM, MAX_FRAME};
use crate::ids::{Egress, PortId};
use io_uring::{opcode, types, IoUring};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Frames a ring queues for transmission before it flushes by itself.
pub const TX_SLOTS: usize = 128;
/// Bytes of one transmit buffer: a header and a frame of up to 2,036
/// bytes (a full-sized frame with tags, or a VXLAN-encapsulated one).
pub const TX_BUF: usize = 2048;
/// Submission queue entries: a batch of reads or a ring's worth of writes.
const ENTRIES: u32 = 256;
/// user_data of a transmit entry: its buffer index with this bit.
const TX_BIT: u64 = 1 << 32;
/// The fewest reads one receive submits.
pub const RX_MIN: usize = 4;

/// A frame that could not be sent, found when the ring flushed (it was
/// counted as sent when it was queued, as an AF_XDP frame is).
#[derive(Debug, Clone, Copy)]
pub struct TxFailure {
    pub to: Egress,
    pub dev: PortId,
    pub mirror: bool,
    pub error: TxError,
}

/// Who a queued frame is for, as the worker counts it.
#[derive(Debug, Clone, Copy)]
pub struct TxTag {
    pub to: Egress,
    pub dev: PortId,
    /// A mirror port's copy (counted as one).
    pub mirror: bool,
}

/// One worker's ring.
pub struct TapRing {
    // Dropped first: the ring closes before the memory its entries named
    // goes (none is in flight between calls anyway).
    ring: IoUring,
    /// `TX_SLOTS` buffers of `TX_BUF` bytes.
    tx_bufs: Box<[u8]>,
    tx_tags: Box<[Option<TxTag>]>,
    /// Writes queued since the last flush.
    tx_queued: usize,
    /// The TAPs the queued writes go to (their descriptors stay open until
    /// the flush even if a detach lets go of them meanwhile); one entry
    /// per run of frames to the same TAP.
    pins: Vec<Arc<Tap>>,
    failed: Vec<TxFailure>,
    broken: bool,
    /// Per receive: each read's result.
    rx_res: [i32; crate::ids::BATCH],
    /// Where a frame is moved through when a read between two that found
    /// frames found none (a frame arrived meanwhile).
    scratch: Box<[u8]>,
}

impl std::fmt::Debug for TapRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapRing")
            .field("tx_queued", &self.tx_queued)
            .finish_non_exhaustive()
    }
}

impl TapRing {
    /// A ring for the calling thread (it must be the only one to use it:
    /// `IORING_SETUP_SINGLE_ISSUER`, with completions run only when it
    /// asks for them, `DEFER_TASKRUN`; plain on kernels without them).
    pub fn new() -> io::Result<TapRing> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_submit_all()
            .setup_cqsize(ENTRIES * 2)
            .build(ENTRIES)
            .or_else(|_| IoUring::builder().setup_cqsize(ENTRIES * 2).build(ENTRIES))?;
        Ok(TapRing {
            ring,
            tx_bufs: vec![0u8; TX_SLOTS * TX_BUF].into_boxed_slice(),
            tx_tags: vec![None; TX_SLOTS].into_boxed_slice(),
            tx_queued: 0,
            pins: Vec::with_capacity(TX_SLOTS),
            failed: Vec::with_capacity(TX_SLOTS),
            broken: false,
            rx_res: [0; crate::ids::BATCH],
            scratch: vec![0u8; VNET_HDR_LEN + MAX_FRAME].into_boxed_slice(),
        })
    }

    /// Receives up to `want` frames (at most the batch) from `fd` into
    /// `slots` from slot 0, each read at `HEADROOM - 24`. Returns how many.
    pub fn recv(
        &mut self,
        fd: RawFd,
        want: usize,
        slots: &mut Slots,
        got: &mut [Rx],
        tunnel: bool,
    ) -> Result<usize, RxError> {
        let n = want.min(got.len()).min(slots.len()).min(self.rx_res.len());
        let start = HEADROOM - VNET_HDR_LEN;
        {
            let mut sq = self.ring.submission();
            for i in 0..n {
                let slot = slots.slot_mut(i);
                let end = slot.len().min(HEADROOM + MAX_FRAME);
                let Some(area) = slot.get_mut(start..end) else {
                    break;
                };
                // RWF_NOWAIT: an empty queue answers EAGAIN; without it
                // (O_NONBLOCK is not enough) io_uring arms a poll and the
                // read waits for a frame.
                let e = opcode::Read::new(types::Fd(fd), area.as_mut_ptr(), area.len() as u32)
                    .offset(u64::MAX)
                    .rw_flags(libc::RWF_NOWAIT)
                    .build()
                    .user_data(i as u64);
                // SAFETY: the entry names `area`, inside slot i of `slots`,
                // which the caller lends mutably for this whole call; the
                // call waits below for every read's completion before it
                // returns, so the kernel writes there only while it may.
                // The queue has room: ENTRIES > BATCH and the queue is
                // empty between calls.
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
            }
        }
        let queued = self.ring.submission().len();
        let res = &mut self.rx_res;
        let waited = complete(&mut self.ring, queued, |(i, r)| {
            if let Some(v) = res.get_mut(i as usize) {
                *v = r;
            }
        });
        if let Err(error) = waited {
            self.broken = true;
            return Err(RxError { received: 0, error });
        }
        // Frames in read order; a read that found nothing may sit between
        // two that did (a frame arrived in between): move the later down.
        let mut out = 0;
        for i in 0..queued {
            let res = self.rx_res[i];
            if res < 0 {
                match -res {
                    libc::EAGAIN | libc::EINTR => continue,
                    e => {
                        return Err(RxError {
                            received: out,
                            error: io::Error::from_raw_os_error(e),
                        })
                    }
                }
            }
            let len = (res as usize).saturating_sub(VNET_HDR_LEN);
            let total = VNET_HDR_LEN + len;
            if i != out {
                self.scratch[..total].copy_from_slice(&slots.slot(i)[start..start + total]);
                slots.slot_mut(out)[start..start + total].copy_from_slice(&self.scratch[..total]);
            }
            let s = slots.slot(out);
            let mut hdr = [0u8; VNET_HDR_LEN];
            hdr.copy_from_slice(&s[start..HEADROOM]);
            got[out] = super::tap::rx_entry(&hdr, &s[HEADROOM..HEADROOM + len], tunnel);
            out += 1;
        }
        Ok(out)
    }

    /// Whether a frame of `len` bytes goes through a buffer.
    #[inline]
    pub fn fits(&self, len: usize) -> bool {
        VNET_HDR_LEN + len <= TX_BUF
    }

    /// Queues one frame (`hdr`, then `parts`) for `tap`'s descriptor `fd`;
    /// sent at the next [`TapRing::flush`] (or now, when the ring is full).
    /// The caller checked [`TapRing::fits`]. Returns the frame's length.
    pub fn queue(
        &mut self,
        tap: &Arc<Tap>,
        fd: RawFd,
        hdr: &[u8; VNET_HDR_LEN],
        parts: &[&[u8]],
        tag: TxTag,
    ) -> usize {
        if self.tx_queued == TX_SLOTS {
            self.flush();
        }
        let k = self.tx_queued;
        let buf = &mut self.tx_bufs[k * TX_BUF..(k + 1) * TX_BUF];
        buf[..VNET_HDR_LEN].copy_from_slice(hdr);
        let mut at = VNET_HDR_LEN;
        for p in parts {
            let end = (at + p.len()).min(TX_BUF);
            buf[at..end].copy_from_slice(&p[..end - at]);
            at = end;
        }
        if !self.pins.last().is_some_and(|t| Arc::ptr_eq(t, tap)) {
            self.pins.push(Arc::clone(tap));
        }
        self.tx_tags[k] = Some(tag);
        let e = opcode::Write::new(types::Fd(fd), buf.as_ptr(), at as u32)
            .offset(u64::MAX)
            .build()
            .user_data(TX_BIT | k as u64);
        // SAFETY: the entry names buffer k of `tx_bufs`, owned by this ring
        // and not written again until the flush that waits for this write's
        // completion; `fd` is kept open by the pin above until then. The
        // queue has room: at most TX_SLOTS < ENTRIES entries are queued.
        let pushed = unsafe { self.ring.submission().push(&e) };
        if pushed.is_ok() {
            self.tx_queued += 1;
        } else {
            self.fail(tag, TxError::Full);
        }
        at - VNET_HDR_LEN
    }

    /// Submits the queued writes with one system call and waits for them.
    /// Failures wait in [`TapRing::take_failures`].
    pub fn flush(&mut self) {
        if self.tx_queued == 0 {
            return;
        }
        let n = self.tx_queued;
        let tags = &self.tx_tags;
        let failed = &mut self.failed;
        let mut done = |r: (u64, i32)| {
            let Some(Some(t)) = tags.get((r.0 & !TX_BIT) as usize) else {
                return;
            };
            if r.1 < 0 {
                let error = super::tap::tx_error(io::Error::from_raw_os_error(-r.1));
                if failed.len() < failed.capacity() {
                    failed.push(TxFailure {
                        to: t.to,
                        dev: t.dev,
                        mirror: t.mirror,
                        error,
                    });
                }
            }
        };
        if let Err(e) = complete(&mut self.ring, n, &mut done) {
            // What was not sent is not known: every queued frame counts
            // as failed, and the worker stops using the ring.
            self.broken = true;
            for k in 0..n {
                if let Some(t) = self.tx_tags[k] {
                    self.fail(t, TxError::Refused(e.raw_os_error().unwrap_or(0)));
                }
            }
        }
        self.tx_queued = 0;
        self.pins.clear();
    }

    /// Records a frame that could not go (up to `TX_SLOTS` between two
    /// takes: no allocation; more are not told apart).
    fn fail(&mut self, t: TxTag, error: TxError) {
        if self.failed.len() < self.failed.capacity() {
            self.failed.push(TxFailure {
                to: t.to,
                dev: t.dev,
                mirror: t.mirror,
                error,
            });
        }
    }

    /// Frames that failed at the last flushes (the caller counts them).
    pub fn take_failures(&mut self) -> impl Iterator<Item = TxFailure> + '_ {
        self.failed.drain(..)
    }

    /// Whether a call failed in a way that retrying does not mend: the
    /// worker then goes back to one system call per frame.
    pub fn broken(&self) -> bool {
        self.broken
    }
}

/// Submits what is queued on `ring` and waits until `n` completions came
/// back, each (user_data, result) handed to `each`. Interrupted waits are
/// resumed: no entry is in flight when this returns `Ok`.
fn complete(ring: &mut IoUring, n: usize, mut each: impl FnMut((u64, i32))) -> io::Result<()> {
    let mut seen = 0;
    while seen < n {
        match ring.submit_and_wait(n - seen) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        for c in ring.completion() {
            each((c.user_data(), c.result()));
            seen += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn ip(args: &[&str]) -> bool {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Reads that find nothing come back at once (no read is left armed,
    /// waiting for a frame), and frames the kernel sends are received.
    /// Needs root (a TAP of its own, ARP from the host's stack into it).
    #[test]
    fn batched_reads_return_at_once() {
        let name = "shuntur0";
        let Ok(tap) = Tap::open(name) else {
            eprintln!("skipped: batched_reads_return_at_once: no TAP (root?)");
            return;
        };
        let tap = Arc::new(tap);
        let mut ring = TapRing::new().expect("ring");
        let mut slots = Slots::new(crate::ids::BATCH);
        let mut got = [Rx::default(); crate::ids::BATCH];
        let t0 = Instant::now();
        let n = ring
            .recv(fd(&tap), 8, &mut slots, &mut got, false)
            .expect("recv");
        assert_eq!(n, 0);
        assert!(t0.elapsed() < Duration::from_millis(500));
        assert!(ip(&["link", "set", name, "up"]));
        assert!(ip(&["addr", "add", "10.213.77.1/24", "dev", name]));
        // ARP requests for a neighbour that is not there go out the TAP.
        let _ = Command::new("ping")
            .args(["-c", "3", "-i", "0.2", "-W", "1", "10.213.77.2"])
            .output();
        let t0 = Instant::now();
        let n = ring
            .recv(fd(&tap), 16, &mut slots, &mut got, false)
            .expect("recv");
        assert!(t0.elapsed() < Duration::from_millis(500));
        assert!(n >= 1, "no frame came");
        let f = &slots.slot(0)[HEADROOM..HEADROOM + got[0].len as usize];
        assert!(f.len() >= 14);
        // Transmit: a frame to the host's stack goes without error.
        let hdr = [0u8; VNET_HDR_LEN];
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        let tag = TxTag {
            to: Egress::Stack,
            dev: PortId::new(0).expect("id"),
            mirror: false,
        };
        for _ in 0..3 {
            ring.queue(&tap, fd(&tap), &hdr, &[&frame], tag);
        }
        ring.flush();
        assert_eq!(ring.take_failures().count(), 0);
        assert!(!ring.broken());
    }

    fn fd(t: &Tap) -> RawFd {
        use std::os::fd::AsRawFd;
        t.queue_fd(0).as_raw_fd()
    }
}
