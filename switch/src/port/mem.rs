//! The in-memory port: frames a test (or a benchmark) pushes in are
//! received, frames sent are kept for it to read. No I/O; all memory is
//! taken in `new`, nothing is allocated per frame (DESIGN.md: the pipeline
//! tests and perf/ use it).
//!
//! Sent frames are queued until [`Port::flush`], as a ring would hold them:
//! [`MemPort::sent`] shows only flushed frames, so a test sees that the
//! worker flushed once per batch.

use super::{
    Caps, Kind, Offload, OffloadError, Offloads, Port, Rx, RxError, Slots, TxError, HEADROOM,
};

/// The largest frame an in-memory port holds (its rings are of fixed-size
/// frames: the size of a UMEM frame after its headroom keeps them small).
pub const MAX_FRAME: usize = super::MAX_UMEM_FRAME;

/// A fixed ring of frames of up to `frame` bytes each, with each frame's
/// offload state.
#[derive(Debug)]
struct Ring {
    bytes: Box<[u8]>,
    lens: Box<[u16]>,
    offs: Box<[Result<Offload, OffloadError>]>,
    frame: usize,
    head: usize,
    count: usize,
}

impl Ring {
    fn new(frames: usize, frame: usize) -> Ring {
        Ring {
            bytes: vec![0; frames * frame].into_boxed_slice(),
            lens: vec![0; frames].into_boxed_slice(),
            offs: vec![Ok(Offload::NONE); frames].into_boxed_slice(),
            frame,
            head: 0,
            count: 0,
        }
    }

    fn cap(&self) -> usize {
        self.lens.len()
    }

    /// Appends a frame gathered from `parts`; false when full or too long.
    fn push(&mut self, parts: &[&[u8]], off: Result<Offload, OffloadError>) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.count == self.cap() || len > self.frame {
            return false;
        }
        let k = (self.head + self.count) % self.cap();
        let mut at = k * self.frame;
        for p in parts {
            self.bytes[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.lens[k] = len as u16;
        self.offs[k] = off;
        self.count += 1;
        true
    }

    fn get(&self, n: usize) -> Option<(&[u8], Result<Offload, OffloadError>)> {
        if n >= self.count {
            return None;
        }
        let k = (self.head + n) % self.cap();
        let at = k * self.frame;
        Some((
            &self.bytes[at..at + usize::from(self.lens[k])],
            self.offs[k],
        ))
    }

    fn pop_front(&mut self) {
        if self.count > 0 {
            self.head = (self.head + 1) % self.cap();
            self.count -= 1;
        }
    }

    fn clear(&mut self) {
        self.head = 0;
        self.count = 0;
    }
}

#[derive(Debug)]
pub struct MemPort {
    rx: Ring,
    tx: Ring,
    /// Of the frames in `tx`, the first `flushed` were flushed.
    flushed: usize,
    caps: Caps,
    /// Calls to `flush`.
    pub flushes: u64,
}

impl MemPort {
    /// A port that holds up to `frames` frames each way.
    pub fn new(frames: usize) -> MemPort {
        MemPort::with_caps(
            frames,
            Caps {
                zero_copy: false,
                offloads: Offloads::default(),
                queues: 1,
            },
        )
    }

    /// The same, claiming `caps` (for tests of what the edit stage does
    /// for ports with and without an offload).
    pub fn with_caps(frames: usize, caps: Caps) -> MemPort {
        MemPort::sized(frames, MAX_FRAME, caps)
    }

    /// A port for frames of up to [`super::MAX_FRAME`] bytes (GSO
    /// super-frames), taking the offloads `offloads` says.
    pub fn large(frames: usize, offloads: Offloads) -> MemPort {
        MemPort::sized(
            frames,
            super::MAX_FRAME,
            Caps {
                zero_copy: false,
                offloads,
                queues: 1,
            },
        )
    }

    fn sized(frames: usize, frame: usize, caps: Caps) -> MemPort {
        let frames = frames.max(1);
        MemPort {
            rx: Ring::new(frames, frame),
            tx: Ring::new(frames, frame),
            flushed: 0,
            caps,
            flushes: 0,
        }
    }

    /// Queues a frame for the switch to receive; false when the port holds
    /// as many as it can or the frame does not fit a slot.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        self.rx.push(&[frame], Ok(Offload::NONE))
    }

    /// Queues a frame with the offload state a virtio-net header would
    /// have given it (`Err`: a header that did not fit the frame).
    pub fn push_offload(&mut self, frame: &[u8], off: Result<Offload, OffloadError>) -> bool {
        self.rx.push(&[frame], off)
    }

    /// Frames waiting to be received.
    pub fn pending(&self) -> usize {
        self.rx.count
    }

    /// The frames sent and flushed since the last [`MemPort::clear_sent`],
    /// in order.
    pub fn sent(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.flushed).filter_map(|n| self.tx.get(n).map(|(f, _)| f))
    }

    /// The same, with the offload state each was sent with.
    pub fn sent_offloads(&self) -> impl Iterator<Item = (&[u8], Offload)> {
        (0..self.flushed)
            .filter_map(|n| self.tx.get(n))
            .map(|(f, o)| (f, o.unwrap_or(Offload::NONE)))
    }

    /// Frames sent but not flushed yet.
    pub fn unflushed(&self) -> usize {
        self.tx.count - self.flushed
    }

    pub fn clear_sent(&mut self) {
        self.tx.clear();
        self.flushed = 0;
    }
}

impl Port for MemPort {
    fn kind(&self) -> Kind {
        Kind::Mem
    }

    fn caps(&self) -> Caps {
        self.caps
    }

    /// Copies the waiting frames into the slots, after their headroom.
    fn recv(&mut self, slots: &mut Slots, got: &mut [Rx]) -> Result<usize, RxError> {
        let max = got.len().min(slots.len());
        let mut n = 0;
        while n < max {
            let Some((f, off)) = self.rx.get(0) else {
                break;
            };
            let len = f.len();
            let Some(area) = slots.slot_mut(n).get_mut(HEADROOM..HEADROOM + len) else {
                break;
            };
            area.copy_from_slice(f);
            got[n] = Rx {
                off,
                ..Rx::plain(HEADROOM as u16, len as u16)
            };
            self.rx.pop_front();
            n += 1;
        }
        Ok(n)
    }

    /// Keeps the frame and its offload state (`Offload::NONE` unless the
    /// port claims offloads: the edit stage did the work).
    fn send(&mut self, parts: &[&[u8]], off: &Offload) -> Result<usize, TxError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.tx.frame {
            return Err(TxError::Oversize);
        }
        if !self.tx.push(parts, Ok(*off)) {
            return Err(TxError::Full);
        }
        Ok(len)
    }

    fn flush(&mut self) {
        self.flushed = self.tx.count;
        self.flushes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_and_out() {
        let mut p = MemPort::new(2);
        assert!(p.push(b"first frame"));
        assert!(p.push(b"second"));
        assert!(!p.push(b"third"), "full");
        let mut slots = Slots::new(4);
        let mut got = [Rx::default(); 4];
        assert_eq!(p.recv(&mut slots, &mut got).ok(), Some(2));
        let at = usize::from(got[1].start);
        assert_eq!(&slots.slot(1)[at..at + usize::from(got[1].len)], b"second");
        assert_eq!(p.pending(), 0);
        assert_eq!(p.send(&[b"ab", b"cd"], &Offload::NONE), Ok(4));
        assert_eq!(p.sent().count(), 0, "not flushed yet");
        p.flush();
        assert_eq!(p.sent().collect::<Vec<_>>(), vec![b"abcd"]);
        assert_eq!(p.send(&[b"x"], &Offload::NONE), Ok(1));
        assert_eq!(p.send(&[b"y"], &Offload::NONE), Err(TxError::Full));
        assert_eq!(
            p.send(&[&[0; MAX_FRAME + 1]], &Offload::NONE),
            Err(TxError::Oversize)
        );
    }
}
