//! Frame memory: the UMEM shared by every AF_XDP port, the frame handles
//! that travel through the switch instead of bytes, and the batch slots a
//! worker's pipeline reads frames from.
//!
//! - [`SharedUmem`]: one page-aligned area cut into 4 KiB frames, with one
//!   lock-free pool of free frames ([`crossbeam_queue::ArrayQueue`]) and a
//!   table that says, per frame, which socket lent it to the kernel. Every
//!   port registers the *whole* area as its UMEM, so a frame address means
//!   the same frame in every port: a frame received on one port is sent on
//!   another by putting its address on that port's transmit ring.
//! - [`UmemFrame`]: a handle to one frame. Not `Clone`: whoever holds it
//!   owns the frame (it is in no ring and no pool), which is what makes the
//!   safe byte access below sound.
//! - [`Slots`]: a batch's frame memory. Each slot shows 4 KiB: its own
//!   buffer, or a UMEM frame the slot holds. The pipeline reads frames
//!   through it without knowing which.
//!
//! Frames move between the pool and a port's cache in chunks, so the common
//! case (a port refilling its fill ring with frames its completions gave
//! back) touches no shared state.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;

/// Size of one UMEM frame (one page: what veth and most drivers want).
pub const FRAME_SIZE: u32 = 4096;
/// Entries of each of the four rings of a port.
pub const RING_SIZE: u32 = 2048;
/// Frames the area holds per port it is made for: a full receive side plus
/// a full transmit side.
pub const FRAMES_PER_PORT: u32 = 2 * RING_SIZE;
/// Frames a port keeps at hand; above this it gives half back to the pool.
pub const CACHE: usize = 1024;
/// Frames taken from the pool at once when a port's cache runs dry.
const CHUNK: usize = 256;

static NEXT_AREA_ID: AtomicU32 = AtomicU32::new(1);

/// What went wrong creating the area or taking a socket's place in it.
#[derive(Debug, thiserror::Error)]
pub enum UmemError {
    #[error("afxdp: the shared UMEM has room for {ports} ports, all taken (create it with more)")]
    Full { ports: usize },
    #[error("afxdp: cannot map a shared UMEM of {bytes} bytes: {source}")]
    Map { bytes: usize, source: io::Error },
}

/// The memory behind one `mmap`, its pool of free frames, and who lent
/// which frame to the kernel.
pub(crate) struct UmemArea {
    pub(crate) base: NonNull<u8>,
    pub(crate) len: usize,
    id: u32,
    ports: usize,
    /// Socket places taken (their index + 1 marks their lent frames).
    taken: Mutex<Vec<bool>>,
    /// Free frames (offsets of frame starts).
    free: ArrayQueue<u64>,
    /// Per frame: the socket place + 1 while the frame is in a ring of that
    /// socket (fill, receive, transmit, completion), 0 otherwise.
    lent: Box<[AtomicU16]>,
}

// SAFETY: the area is plain anonymous memory owned by this struct for its
// whole life. Its bytes are only reached through a `UmemFrame` (one owner
// per frame), `Slots` (which owns the frames it shows) or a port (which
// owns the frames it has in hand); the pool, the table of places and the
// lent table are thread-safe types.
unsafe impl Send for UmemArea {}
// SAFETY: as above.
unsafe impl Sync for UmemArea {}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned in
        // SharedUmem::new, and nothing refers to the area any more (ports,
        // slots and clones each hold an Arc).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

impl UmemArea {
    /// The frame a UMEM offset falls in, if the offset is inside the area.
    #[inline]
    fn index(&self, addr: u64) -> Option<usize> {
        let i = (addr / u64::from(FRAME_SIZE)) as usize;
        (i < self.lent.len()).then_some(i)
    }

    /// Where frame `base` (a frame start inside the area) begins. Making
    /// bytes of it is the caller's business: only the frame's owner may.
    #[inline]
    fn frame_ptr(&self, base: u64) -> *mut u8 {
        debug_assert!(base as usize + FRAME_SIZE as usize <= self.len);
        self.base.as_ptr().wrapping_add(base as usize)
    }
}

/// One frame area shared by all AF_XDP ports of a switch. Cheap to clone
/// (an `Arc`); the memory lives until the last port, slot and clone go.
#[derive(Clone)]
pub struct SharedUmem {
    pub(crate) area: Arc<UmemArea>,
}

impl std::fmt::Debug for SharedUmem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedUmem")
            .field("bytes", &self.area.len)
            .field("ports", &self.area.ports)
            .field("free", &self.area.free.len())
            .finish()
    }
}

impl SharedUmem {
    /// Maps an area for `ports` AF_XDP ports ([`FRAMES_PER_PORT`] frames of
    /// [`FRAME_SIZE`] bytes each: 16 MiB per port). The pages are pinned by
    /// the kernel when a port registers them; root's CAP_IPC_LOCK keeps that
    /// out of RLIMIT_MEMLOCK.
    pub fn new(ports: usize) -> Result<SharedUmem, UmemError> {
        let ports = ports.clamp(1, u16::MAX as usize - 1);
        let frames = ports * FRAMES_PER_PORT as usize;
        let len = frames
            .checked_mul(FRAME_SIZE as usize)
            .ok_or_else(|| UmemError::Map {
                bytes: usize::MAX,
                source: io::Error::other("too many ports"),
            })?;
        let base = map_area(len)?;
        let free = ArrayQueue::new(frames);
        for i in 0..frames as u64 {
            // Exactly `frames` pushes into a queue of that capacity.
            let _ = free.push(i * u64::from(FRAME_SIZE));
        }
        Ok(SharedUmem {
            area: Arc::new(UmemArea {
                base,
                len,
                id: NEXT_AREA_ID.fetch_add(1, Relaxed),
                ports,
                taken: Mutex::new(vec![false; ports]),
                free,
                lent: (0..frames).map(|_| AtomicU16::new(0)).collect(),
            }),
        })
    }

    /// Frames in the area.
    pub fn frames(&self) -> usize {
        self.area.lent.len()
    }

    /// Frames in the shared pool now (not counting ports' caches).
    pub fn free_frames(&self) -> usize {
        self.area.free.len()
    }

    /// Frames lent to the kernel now by an open socket (in its fill,
    /// receive, transmit or completion ring). A mark left by a closed
    /// socket is not counted: its frames should be back in the pool. A scan
    /// of the owner table under the places' lock: control path only.
    pub fn lent_frames(&self) -> usize {
        let taken = self
            .area
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.area
            .lent
            .iter()
            .filter(|l| {
                let m = usize::from(l.load(Relaxed));
                m != 0 && taken.get(m - 1).copied().unwrap_or(false)
            })
            .count()
    }

    /// Takes one free frame from the pool (the copy path: a frame from a
    /// TAP or the switch's stack bound for an AF_XDP port of another worker).
    pub fn alloc(&self) -> Option<UmemFrame> {
        let addr = self.area.free.pop()?;
        Some(UmemFrame {
            addr,
            area: self.area.id,
        })
    }

    /// Gives a frame back to the pool. A frame of another area is dropped
    /// (it belongs to no pool here).
    pub fn release(&self, f: UmemFrame) {
        if f.area == self.area.id {
            // Cannot be full: the queue holds every frame of the area.
            let _ = self.area.free.push(f.addr);
        }
    }

    /// Copies `parts` into frame `f` from byte `off` on. False when they do
    /// not fit or `f` belongs to another area.
    pub fn write(&self, f: &mut UmemFrame, off: usize, parts: &[&[u8]]) -> bool {
        if f.area != self.area.id {
            return false;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if off + len > FRAME_SIZE as usize {
            return false;
        }
        // SAFETY: `f` is the only handle to its frame (not Clone, made only
        // from frames taken out of rings or the pool) and we hold it
        // mutably; the frame is inside this area (same id), FRAME_SIZE long.
        let frame = unsafe {
            std::slice::from_raw_parts_mut(self.area.frame_ptr(f.addr), FRAME_SIZE as usize)
        };
        let mut at = off;
        for p in parts {
            frame[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        true
    }

    /// Takes a socket's place in the area (control path).
    pub(crate) fn take_place(&self) -> Result<FrameCache, UmemError> {
        let mut taken = self
            .area
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = taken.iter().position(|t| !t).ok_or(UmemError::Full {
            ports: self.area.ports,
        })?;
        taken[index] = true;
        Ok(FrameCache {
            area: self.area.clone(),
            mark: index as u16 + 1,
            cache: Vec::with_capacity(CACHE),
        })
    }
}

/// Huge page size the area is aligned to.
const HUGE: usize = 2 << 20;

/// Maps `len` bytes (a multiple of 2 MiB) of anonymous memory aligned to
/// 2 MiB, asks for transparent huge pages and faults it all in. Huge pages
/// matter here: every frame is its own 4 KiB page otherwise, so each frame
/// the pipeline reads costs a TLB miss. Without THP (`never`, or no 2 MiB
/// pages free) the area still works, in 4 KiB pages.
fn map_area(len: usize) -> Result<NonNull<u8>, UmemError> {
    let err = |source| UmemError::Map { bytes: len, source };
    let span = len
        .checked_add(HUGE)
        .ok_or_else(|| err(io::Error::other("too large")))?;
    // SAFETY: anonymous private mapping, no fd, no fixed address; the
    // result is checked for MAP_FAILED below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(err(io::Error::last_os_error()));
    }
    let start = p as usize;
    let aligned = (start + HUGE - 1) & !(HUGE - 1);
    let head = aligned - start;
    let tail = span - head - len;
    // SAFETY: both ranges lie inside the mapping just made and outside the
    // aligned area we keep; unmapping them touches nothing else.
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    let base = aligned as *mut libc::c_void;
    // SAFETY: advice on our own mapping [base, base + len); failures only
    // mean no huge pages or no populate-advice (older kernels).
    unsafe {
        libc::madvise(base, len, libc::MADV_HUGEPAGE);
        if libc::madvise(base, len, MADV_POPULATE_WRITE) != 0 {
            // Fault the pages in by hand (one write per 4 KiB page).
            for off in (0..len).step_by(4096) {
                std::ptr::write_volatile((aligned + off) as *mut u8, 0);
            }
        }
    }
    NonNull::new(base.cast::<u8>()).ok_or_else(|| err(io::Error::other("mmap returned null")))
}

/// `MADV_POPULATE_WRITE` (Linux 5.14), not in every libc crate version.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// A handle to one UMEM frame: its offset in the area. Whoever holds it
/// owns the frame; dropping it without giving it back loses the frame to
/// the pool (never memory: the area is freed as a whole).
#[derive(Debug, PartialEq, Eq)]
pub struct UmemFrame {
    addr: u64,
    area: u32,
}

/// A port's place in the area and its cache of free frames. Dropped last
/// by the port, after its socket: then every frame the socket had lent to
/// the kernel goes back to the pool, with the cache.
pub(crate) struct FrameCache {
    area: Arc<UmemArea>,
    /// This socket's mark in the lent table.
    mark: u16,
    cache: Vec<u64>,
}

impl FrameCache {
    pub(crate) fn area(&self) -> &Arc<UmemArea> {
        &self.area
    }

    /// A free frame start, from the cache or, when it is empty, the pool.
    #[inline]
    pub(crate) fn get(&mut self) -> Option<u64> {
        if self.cache.is_empty() {
            self.top_up(CHUNK);
        }
        self.cache.pop()
    }

    /// Makes the cache hold at least `n` frames if the pool has them.
    pub(crate) fn top_up(&mut self, n: usize) {
        let n = n.min(CACHE);
        while self.cache.len() < n {
            match self.area.free.pop() {
                Some(a) => self.cache.push(a),
                None => break,
            }
        }
    }

    /// Gives back a frame start; half the cache goes to the pool when full.
    #[inline]
    pub(crate) fn put(&mut self, base: u64) {
        if self.cache.len() == CACHE {
            for a in self.cache.drain(CACHE / 2..) {
                let _ = self.area.free.push(a);
            }
        }
        self.cache.push(base);
    }

    /// Takes a handle back (a frame of another area is dropped).
    #[inline]
    pub(crate) fn put_frame(&mut self, f: UmemFrame) {
        if f.area == self.area.id {
            self.put(f.addr);
        }
    }

    /// Moves the most recently freed frames beyond `keep` to `to` (same
    /// area), most recent last, so `to` reuses them first while they are
    /// still in the caches.
    pub(crate) fn pass_to(&mut self, to: &mut FrameCache, keep: usize) {
        if !Arc::ptr_eq(&self.area, &to.area) {
            return;
        }
        let room = CACHE - to.cache.len();
        let n = self.cache.len().saturating_sub(keep).min(room);
        let from = self.cache.len() - n;
        to.cache.extend_from_slice(&self.cache[from..]);
        self.cache.truncate(from);
    }

    /// Frames at hand.
    pub(crate) fn cached(&self) -> &[u64] {
        &self.cache
    }

    /// Drops cached frames `start..start + n` (they went into a ring).
    pub(crate) fn remove(&mut self, start: usize, n: usize) {
        let end = (start + n).min(self.cache.len());
        self.cache.drain(start.min(end)..end);
    }

    /// Marks frame `base` as lent to the kernel by this socket.
    #[inline]
    pub(crate) fn lend(&self, base: u64) {
        if let Some(i) = self.area.index(base) {
            self.area.lent[i].store(self.mark, Relaxed);
        }
    }

    /// Takes back a frame the kernel returned through one of this socket's
    /// rings: its start, if it is inside the area, the descriptor stays
    /// inside the frame, and this socket had lent it (else the descriptor
    /// is not trusted and the frame not touched).
    #[inline]
    pub(crate) fn unlend(&self, addr: u64, len: u32) -> Option<u64> {
        let base = addr & !u64::from(FRAME_SIZE - 1);
        let i = self.area.index(base)?;
        if addr + u64::from(len) > base + u64::from(FRAME_SIZE) {
            return None;
        }
        let slot = &self.area.lent[i];
        if slot.load(Relaxed) != self.mark {
            return None;
        }
        slot.store(0, Relaxed);
        Some(base)
    }

    /// A handle for a frame start this cache owns.
    #[inline]
    pub(crate) fn handle(&self, base: u64) -> UmemFrame {
        UmemFrame {
            addr: base,
            area: self.area.id,
        }
    }

    /// The frame start behind a handle, if the handle is of this area.
    #[inline]
    pub(crate) fn open(&self, f: UmemFrame) -> Result<u64, UmemFrame> {
        if f.area == self.area.id {
            Ok(f.addr)
        } else {
            Err(f)
        }
    }

    /// Whole frame `base` as bytes.
    ///
    /// # Safety
    /// The port owns the frame (it came out of this cache or a ring of this
    /// socket and went nowhere since) for as long as the slice lives, and
    /// `base` is a frame start inside the area.
    #[inline]
    pub(crate) unsafe fn frame_mut(&mut self, base: u64) -> &mut [u8] {
        std::slice::from_raw_parts_mut(self.area.frame_ptr(base), FRAME_SIZE as usize)
    }
}

impl Drop for FrameCache {
    fn drop(&mut self) {
        for a in self.cache.drain(..) {
            let _ = self.area.free.push(a);
        }
        // The socket is closed by now (the port drops its rings first):
        // what it had lent is ours again.
        for (i, slot) in self.area.lent.iter().enumerate() {
            if slot.load(Relaxed) == self.mark {
                slot.store(0, Relaxed);
                let _ = self.area.free.push(i as u64 * u64::from(FRAME_SIZE));
            }
        }
        let mut taken = self
            .area
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(t) = taken.get_mut(usize::from(self.mark) - 1) {
            *t = false;
        }
    }
}

/// The frame memory of a batch: `n` slots, each showing its own buffer of
/// [`Slots::OWN`] bytes (room for a GSO super-frame of up to 64 KiB: the
/// large buffer class) or a UMEM frame of [`FRAME_SIZE`] bytes it holds.
/// Own buffers are only touched as far as frames fill them, so the large
/// class costs address space, not cache.
pub struct Slots {
    /// The own buffers, kept alive here (reached through `at`/`own_at`).
    _own: Box<[u8]>,
    /// Where each slot's bytes are: into `own`, or a held UMEM frame.
    at: Box<[NonNull<u8>]>,
    /// Each slot's own buffer in `own` (a permutation of them: `swap`
    /// exchanges slots' buffers too).
    own_at: Box<[NonNull<u8>]>,
    /// The UMEM frame slot i holds, if any.
    held: Box<[Option<UmemFrame>]>,
    /// The area of the held frames (kept alive while any is held).
    area: Option<Arc<UmemArea>>,
}

// SAFETY: the pointers in `at` point into `own` (owned, boxed: it does not
// move with the struct) or into frames of `area` that this struct holds
// the handles of (and an Arc of the area). Nothing is tied to a thread.
unsafe impl Send for Slots {}

impl Slots {
    /// Bytes of a UMEM frame slot.
    pub const SIZE: usize = FRAME_SIZE as usize;
    /// Bytes of an own slot: the headroom, a frame of up to 65,535 bytes
    /// (what a 16-bit length holds: a 64 KiB TSO super-frame with its
    /// headers) and a tail, rounded to 256.
    pub const OWN: usize = 65_536 + 256;

    pub fn new(n: usize) -> Slots {
        let mut own = vec![0u8; n * Self::OWN].into_boxed_slice();
        let p = own.as_mut_ptr();
        let at: Box<[NonNull<u8>]> = (0..n)
            // SAFETY: i * OWN < n * OWN, inside `own`; a boxed slice of
            // n * OWN bytes (non-zero for n > 0; for n = 0 nothing is made).
            .map(|i| unsafe { NonNull::new_unchecked(p.add(i * Self::OWN)) })
            .collect();
        Slots {
            _own: own,
            own_at: at.clone(),
            at,
            held: (0..n).map(|_| None).collect(),
            area: None,
        }
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Bytes slot `i` shows: [`Self::OWN`], or [`Self::SIZE`] for a UMEM
    /// frame.
    #[inline]
    fn size(&self, i: usize) -> usize {
        if self.held[i].is_some() {
            Self::SIZE
        } else {
            Self::OWN
        }
    }

    /// Slot `i`'s bytes (all of them: [`Self::OWN`] or [`Self::SIZE`]).
    #[inline]
    pub fn slot(&self, i: usize) -> &[u8] {
        let p = self.at[i];
        // SAFETY: `at[i]` points at `size(i)` bytes this struct owns: a
        // slice of `own` (OWN bytes), or a UMEM frame (SIZE bytes) whose
        // handle is in `held[i]` (so nobody else reaches it) and whose area
        // `self.area` keeps mapped.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), self.size(i)) }
    }

    /// Slot `i`'s bytes, writable.
    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let p = self.at[i];
        let n = self.size(i);
        // SAFETY: as in `slot`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), n) }
    }

    /// Whether slot `i` shows a UMEM frame.
    #[inline]
    pub fn holds(&self, i: usize) -> bool {
        self.held[i].is_some()
    }

    /// Makes slot `i` show UMEM frame `f` (of `area`). A frame the slot
    /// held before goes back to the pool. Gives `f` back if it is not of
    /// `area`, or the slots already hold frames of another area.
    pub(crate) fn hold(
        &mut self,
        i: usize,
        f: UmemFrame,
        area: &Arc<UmemArea>,
    ) -> Result<(), UmemFrame> {
        if f.area != area.id || i >= self.at.len() {
            return Err(f);
        }
        match &self.area {
            Some(a) if a.id != area.id => return Err(f),
            Some(_) => {}
            None => self.area = Some(area.clone()),
        }
        if let Some(old) = self.held[i].take() {
            let _ = area.free.push(old.addr);
        }
        // SAFETY: f.addr is a frame start inside `area` (same id; handles
        // are only made for frames of their area), FRAME_SIZE bytes long.
        self.at[i] = unsafe { NonNull::new_unchecked(area.base.as_ptr().add(f.addr as usize)) };
        self.held[i] = Some(f);
        Ok(())
    }

    /// Takes the UMEM frame slot `i` shows, if any; the slot shows its own
    /// buffer again.
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<UmemFrame> {
        let f = self.held.get_mut(i)?.take()?;
        // The slot's own buffer (i < n: held[i] exists, so own_at[i] does).
        self.at[i] = self.own_at[i];
        Some(f)
    }

    /// Exchanges slots `i` and `j`: what each shows, its UMEM frame and
    /// its own buffer (a batch that takes frames out of its middle moves
    /// the rest up without copying them).
    pub fn swap(&mut self, i: usize, j: usize) {
        if i < self.at.len() && j < self.at.len() {
            self.at.swap(i, j);
            self.own_at.swap(i, j);
            self.held.swap(i, j);
        }
    }

    /// Gives every held frame back to the pool.
    pub fn release_all(&mut self) {
        for i in 0..self.at.len() {
            if let Some(f) = self.take(i) {
                if let Some(a) = &self.area {
                    if f.area == a.id {
                        let _ = a.free.push(f.addr);
                    }
                }
            }
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_round_without_loss() {
        let umem = SharedUmem::new(1).expect("map");
        let total = umem.frames();
        assert_eq!(umem.free_frames(), total);
        let mut c = umem.take_place().expect("place");
        let a = c.get().expect("frame");
        assert_eq!(umem.free_frames() + c.cached().len() + 1, total);
        c.lend(a);
        assert_eq!(c.unlend(a + 256, 60), Some(a));
        // Not lent any more: a second return is not trusted.
        assert_eq!(c.unlend(a + 256, 60), None);
        // A descriptor that runs past its frame is not trusted.
        c.lend(a);
        assert_eq!(c.unlend(a + 4000, 200), None);
        assert_eq!(umem.lent_frames(), 1);
        drop(c);
        assert_eq!(umem.free_frames(), total, "lent frame and cache returned");
        assert_eq!(umem.lent_frames(), 0);
    }

    #[test]
    fn slots_show_umem_frames_and_give_them_back() {
        let umem = SharedUmem::new(1).expect("map");
        let total = umem.frames();
        let mut s = Slots::new(4);
        s.slot_mut(1)[..3].copy_from_slice(b"own");
        let mut f = umem.alloc().expect("frame");
        assert!(umem.write(&mut f, 256, &[b"ab", b"cd"]));
        s.hold(1, f, &umem.area).expect("same area");
        assert!(s.holds(1));
        assert_eq!(&s.slot(1)[256..260], b"abcd");
        let f = s.take(1).expect("held");
        assert_eq!(&s.slot(1)[..3], b"own");
        s.hold(2, f, &umem.area).expect("again");
        let other = SharedUmem::new(1).expect("map");
        let g = other.alloc().expect("frame");
        assert!(s.hold(3, g, &umem.area).is_err(), "frame of another area");
        drop(s);
        assert_eq!(umem.free_frames(), total);
    }
}
