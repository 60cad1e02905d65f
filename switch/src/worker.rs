//! Workers: pinned threads, each owning the receive side of a set of ports.
//! A worker polls its ports, takes up to a batch from each ready one, runs
//! the pipeline over the batch and flushes the transmit queues once.
//!
//! TAP ports can be written by any thread (the kernel serialises writes on
//! a TAP), so a worker transmits directly on a port another worker
//! receives from; counters stay per worker, single writer. The plan is
//! loaded once per batch, so ports attached or detached at run time take
//! effect between batches without stopping anyone.

use crate::counters::{DropReason, WorkerCounters};
use crate::host::HostLink;
use crate::pipeline::{self, classify::TPID_8021Q, local, Batch, Context, TxQueues, BATCH};
use crate::port::{self, Tap};
use crate::runtime::Runtime;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub struct Worker {
    pub id: usize,
    rt: Arc<Runtime>,
    counters: Arc<WorkerCounters>,
    batch: Batch,
    tx: TxQueues,
    core: Option<core_affinity::CoreId>,
}

const POLL_MS: i32 = 100;

impl Worker {
    pub fn new(id: usize, rt: Arc<Runtime>, core: Option<core_affinity::CoreId>) -> Worker {
        let n = rt.max_ports;
        let counters = Arc::clone(&rt.counters[id]);
        Worker {
            id,
            rt,
            counters,
            batch: Batch::new(),
            tx: TxQueues::new(n),
            core,
        }
    }

    pub fn run(mut self) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                eprintln!(
                    "shunt: worker {} could not be pinned to core {}",
                    self.id, core.id
                );
            }
        }
        let rt = Arc::clone(&self.rt);
        // The poll set, rebuilt only when a port comes, goes or goes down.
        // The Arc keeps each descriptor open while it is in the set.
        let mut rx: Vec<(u16, Arc<Tap>)> = Vec::new();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut seen_gen = u64::MAX;
        while !rt.stop.load(Relaxed) {
            let gen = rt.port_generation.load(Relaxed);
            if gen != seen_gen {
                seen_gen = gen;
                rx.clear();
                for p in 0..rt.taps.len() {
                    if rt.port_worker[p].load(Relaxed) == self.id && rt.port_up[p].load(Relaxed) {
                        if let Some(t) = rt.taps[p].load_full() {
                            rx.push((p as u16, t));
                        }
                    }
                }
                fds.clear();
                fds.extend(rx.iter().map(|(_, t)| port::pollfd(t.as_fd().as_raw_fd())));
                // Worker 0 also sends what the host stack produces.
                if self.id == 0 {
                    if let Some(h) = &rt.host {
                        fds.push(port::pollfd(h.from_host_event.as_raw_fd()));
                    }
                }
            }
            match port::poll(&mut fds, POLL_MS) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("shunt: worker {}: poll failed: {e}", self.id);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            }
            for (i, &(p, ref tap)) in rx.iter().enumerate() {
                let rev = fds[i].revents;
                if rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                    rt.port_gone(p, "the device went away (its namespace was deleted?)");
                    continue;
                }
                if rev & libc::POLLIN != 0 {
                    self.drain(p, tap);
                }
            }
            if fds.len() > rx.len() && fds[rx.len()].revents & libc::POLLIN != 0 {
                self.from_host();
            }
        }
    }

    /// Takes batches from port `p` until it has nothing more (at most a few
    /// batches, so one busy port cannot starve the others).
    fn drain(&mut self, p: u16, tap: &Tap) {
        for _ in 0..4 {
            let n = self.receive(p, tap);
            if n == 0 {
                return;
            }
            if self.rt.bare {
                self.bare(p);
                continue;
            }
            let now = self.rt.now_ms();
            let plan = self.rt.plan.load();
            let ctx = Context {
                plan: &plan,
                fdb: &self.rt.fdb,
                counters: &self.counters,
                port_up: &self.rt.port_up,
                tracer: &self.rt.tracer,
                host: self.rt.host.as_deref(),
                worker: self.id,
            };
            let delivered = pipeline::process(&ctx, p, &mut self.batch, &mut self.tx, now);
            if delivered > 0 {
                if let Some(h) = &self.rt.host {
                    HostLink::signal(&h.to_host_event);
                }
            }
            self.flush();
            self.counters.batches.add(1);
            if n < BATCH {
                return;
            }
        }
    }

    /// `--bare` baseline: the same port I/O with no switching logic.
    fn bare(&mut self, p: u16) {
        let out = p ^ 1;
        let c = &self.counters.ports[p as usize];
        for i in 0..self.batch.count {
            c.rx_frames.add(1);
            c.rx_bytes.add(self.batch.meta[i].len as u64);
            self.tx.push(
                out,
                pipeline::TxEntry {
                    frame: i as u8,
                    vid: 0,
                },
            );
        }
        self.flush();
    }

    /// Sends what the host stack produced, a batch at a time.
    fn from_host(&mut self) {
        let rt = Arc::clone(&self.rt);
        let Some(h) = rt.host.as_deref() else { return };
        HostLink::clear(&h.from_host_event);
        loop {
            local::take_output(h, &mut self.batch);
            if self.batch.count == 0 {
                return;
            }
            let plan = rt.plan.load();
            let ctx = Context {
                plan: &plan,
                fdb: &rt.fdb,
                counters: &self.counters,
                port_up: &rt.port_up,
                tracer: &rt.tracer,
                host: Some(h),
                worker: self.id,
            };
            pipeline::process_host(&ctx, rt.host_port, &mut self.batch, &mut self.tx);
            self.flush();
        }
    }

    fn receive(&mut self, p: u16, tap: &Tap) -> usize {
        self.batch.clear();
        while self.batch.count < BATCH {
            let i = self.batch.count;
            match tap.recv(self.batch.rx_area(i)) {
                Ok(len) => {
                    self.batch.set_received(i, len);
                    self.batch.count += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.rt.port_gone(p, &format!("read failed: {e}"));
                    break;
                }
            }
        }
        self.batch.count
    }

    /// Writes every queued frame, pushing or popping the VLAN tag through
    /// the gather list rather than by moving bytes.
    fn flush(&mut self) {
        for &p in &self.tx.dirty {
            let pc = &self.counters.ports[p as usize];
            let queue = &self.tx.queues[p as usize];
            let guard = self.rt.taps.get(p as usize).map(|t| t.load());
            let tap = match guard.as_ref().and_then(|g| g.as_ref()) {
                Some(t) if self.rt.port_up[p as usize].load(Relaxed) => t,
                _ => {
                    pc.drops[DropReason::PortDown as usize].add(queue.len() as u64);
                    continue;
                }
            };
            for e in queue {
                let i = e.frame as usize;
                let f = self.batch.frame(i);
                let m = &self.batch.meta[i];
                let rest = &f[12 + m.tag_len as usize..];
                let tci = (u16::from(m.pcp_dei) << 8) | e.vid;
                let [t0, t1] = TPID_8021Q.to_be_bytes();
                let [t2, t3] = tci.to_be_bytes();
                let tag = [t0, t1, t2, t3];
                let tagged = [
                    IoSlice::new(&f[..12]),
                    IoSlice::new(&tag),
                    IoSlice::new(rest),
                ];
                let plain = [IoSlice::new(&f[..12]), IoSlice::new(rest)];
                let parts: &[IoSlice] = if e.vid != 0 { &tagged } else { &plain };
                match tap.send(parts) {
                    Ok(n) => {
                        pc.tx_frames.add(1);
                        pc.tx_bytes.add(n as u64);
                    }
                    Err(err) => match err.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                            pc.drops[DropReason::TxFull as usize].add(1)
                        }
                        Some(libc::EIO) | Some(libc::EBADFD) | Some(libc::ENODEV) => {
                            pc.drops[DropReason::PortDown as usize].add(1);
                            self.rt.port_gone(p, &format!("write failed: {err}"));
                        }
                        _ => pc.drops[DropReason::TxError as usize].add(1),
                    },
                }
            }
        }
        self.tx.clear();
    }
}
