//! The worker's side of link impairment (impair/): frames a line holds go
//! out when due, copies for an impaired egress are decided here, frames
//! from an impaired ingress are taken out of the batch before the
//! pipeline. Only reached when the worker's `Impair` is on.

use super::{Io, Worker};
use crate::counters::DropReason;
use crate::ids::{Egress, PortId};
use crate::impair::{Fate, Impair};
use crate::pipeline::edit::{Copy, Out};
use crate::pipeline::{Batch, Verdict, BATCH};
use crate::port::{Kind, Offload, Port, TapQueue, TxError};
use std::sync::Arc;

/// Frames a line sends per loop turn at most (the rest on the next).
const SERVE_MAX: usize = 4 * BATCH;

impl Worker {
    /// Sends (egress) or runs through the pipeline (ingress) what the
    /// lines hold that is due now. Returns when the next frame is due.
    pub(super) fn serve_impaired(&mut self) {
        if !self.imp.on {
            return;
        }
        let now = self.rt.now_ns();
        // By index: no list is made per turn (forward() leaves it alone).
        for k in 0..self.imp.live_count() {
            let Some((p, egress)) = self.imp.live_at(k) else {
                break;
            };
            let Some(id) = PortId::new(p) else { continue };
            if egress {
                let down = self.imp.is_down(p);
                let io = &mut self.io;
                if let Some((line, c)) = self.imp.line(p, true) {
                    line.serve(now, SERVE_MAX, c, |h| {
                        if down {
                            io.counters.count_drop(h.to, DropReason::LinkDown);
                        } else {
                            io.send_bytes(id, h.to, h.bytes, &h.off);
                        }
                    });
                }
                continue;
            }
            if self.imp.is_down(p) {
                // Held from before the link went down: they never arrive.
                let counters = &self.io.counters;
                if let Some((line, c)) = self.imp.line(p, false) {
                    line.serve(now, SERVE_MAX, c, |_| {
                        counters.count_drop(id.into(), DropReason::LinkDown)
                    });
                }
                continue;
            }
            for _ in 0..SERVE_MAX / BATCH {
                self.batch.clear();
                let batch = &mut self.batch;
                let Some((line, c)) = self.imp.line(p, false) else {
                    break;
                };
                line.serve(now, BATCH, c, |h| {
                    if batch.push(h.bytes) {
                        batch.meta[batch.count - 1].off = h.off;
                    }
                });
                if self.batch.count == 0 {
                    break;
                }
                self.forward(id);
            }
        }
        self.io.kick();
        self.imp.after_serve();
    }

    /// Nanoseconds until the next held frame is due (None: none held).
    pub(super) fn impair_wait_ns(&self) -> Option<u64> {
        if !self.imp.on {
            return None;
        }
        let due = self.imp.next_due()?;
        Some(due.saturating_sub(self.rt.now_ns()))
    }

    /// Before the pipeline, on a batch from `p`: a link that is down
    /// takes every frame (`link_down`); an impaired ingress loses some
    /// (`impair_loss`), and the frames it holds leave the batch (their
    /// UMEM frames go back to the port).
    pub(super) fn impair_ingress(&mut self, p: PortId) {
        let batch = &mut self.batch;
        if self.imp.is_down(p.index()) {
            for m in &mut batch.meta[..batch.count] {
                m.verdict = Verdict::Drop(DropReason::LinkDown);
            }
            return;
        }
        let now = self.rt.now_ns();
        let Some((line, c)) = self.imp.line(p.index(), false) else {
            return;
        };
        let mut keep = 0;
        for i in 0..batch.count {
            let m = batch.meta[i];
            let mut stays = m.verdict != Verdict::Pending;
            if !stays {
                let d = line.decide(c);
                if d.n == 0 {
                    batch.meta[i].verdict = Verdict::Drop(DropReason::ImpairLoss);
                    stays = true;
                }
                for (k, f) in d.fates[..d.n].iter().enumerate() {
                    match (k, *f) {
                        // The frame itself, now: it stays in the batch.
                        (0, Fate::Now) => stays = true,
                        (_, f) => {
                            let corrupt = matches!(f, Fate::Hold { corrupt: true });
                            let fr = batch.frame(i);
                            if !line.hold(now, &[fr], m.off, Egress::Port(p), corrupt, c) && k == 0
                            {
                                batch.meta[i].verdict = Verdict::Drop(DropReason::ImpairQueueFull);
                                stays = true;
                            }
                        }
                    }
                }
            }
            if stays {
                if keep != i {
                    batch.slots.swap(keep, i);
                    batch.meta.swap(keep, i);
                }
                keep += 1;
            }
        }
        // The frames held were copied: their buffers go back.
        for i in keep..batch.count {
            if let Some(f) = batch.slots.take(i) {
                self.io.give_back(p.into(), f);
            }
        }
        batch.count = keep;
    }
}

impl Io {
    /// Sends one copy of an impaired egress: lost, sent now (twice when
    /// duplicated), or held in the line.
    pub(super) fn send_impaired(
        &mut self,
        imp: &mut Impair,
        now: u64,
        batch: &mut Batch,
        ingress: Egress,
        c: Copy,
        out: Out<'_>,
    ) {
        if imp.is_down(c.dev.index()) {
            self.counters
                .count_copy_drop(c.to, c.mirror, DropReason::LinkDown);
            return;
        }
        let Some((line, lc)) = imp.line(c.dev.index(), true) else {
            self.send_copy(batch, ingress, c, out);
            return;
        };
        let d = line.decide(lc);
        if d.n == 0 {
            self.counters
                .count_copy_drop(c.to, c.mirror, DropReason::ImpairLoss);
            return;
        }
        for (k, f) in d.fates[..d.n].iter().enumerate() {
            match *f {
                Fate::Now => {
                    // Sent twice: the first is not the frame's last use.
                    let c = Copy {
                        last: c.last && k + 1 == d.n,
                        ..c
                    };
                    self.send_copy(batch, ingress, c, out);
                }
                Fate::Hold { corrupt } => {
                    let held = match out {
                        Out::Frame(e) => {
                            let (parts, n) = e.parts(batch.frame(c.frame));
                            line.hold(now, &parts[..n], e.off, c.to, corrupt, lc)
                        }
                        Out::Segment(b) => line.hold(now, &[b], Offload::NONE, c.to, corrupt, lc),
                    };
                    if !held {
                        self.counters
                            .count_copy_drop(c.to, c.mirror, DropReason::ImpairQueueFull);
                    }
                }
            }
        }
    }

    /// Sends a frame a line held, out of port `dev` (for queue `to`).
    fn send_bytes(&mut self, dev: PortId, to: Egress, bytes: &[u8], off: &Offload) {
        // What a mirror's destination sends is a mirror copy (its queue
        // holds nothing else); the flag did not travel through the line.
        let mirror = self
            .rt
            .plan
            .load()
            .mirror
            .as_ref()
            .is_some_and(|m| m.is_dest(dev));
        let c = Copy {
            to,
            dev,
            frame: 0,
            last: false,
            mirror,
        };
        let kind = self.rt.port_kind[dev.index()].load();
        if kind == Some(Kind::AfXdp) {
            // Not from any ingress port: a refused frame goes to the pool.
            self.send_afxdp_parts(Egress::Stack, c, &[bytes]);
            return;
        }
        let tap = self.rt.taps[dev.index()].load();
        let packet = self.rt.packets[dev.index()].load();
        let sent = match (kind, tap.as_ref(), packet.as_deref()) {
            (Some(Kind::Tap), Some(t), _) => TapQueue::new(t, self.id).send(&[bytes], off),
            (Some(Kind::Packet), _, Some(p)) => (&mut &*p).send(&[bytes], off),
            // The port went away while its frames were held.
            _ => {
                self.counters
                    .count_copy_drop(to, mirror, DropReason::PortDown);
                return;
            }
        };
        if let Err(TxError::Gone(e)) = sent {
            let rt = Arc::clone(&self.rt);
            rt.port_gone(
                dev,
                &format!("write failed: {}", std::io::Error::from_raw_os_error(e)),
            );
        }
        self.counters.count_copy(to, dev, mirror, sent);
    }
}
