//! The l2 thread's registry without the thread: copies in, rounds, frames
//! out, on in-memory queues.

use super::*;

/// Port id `i` (tests only use small ones).
fn port(i: usize) -> PortId {
    PortId::new(i).expect("in range")
}

/// Takes BPDUs (consumed), remembers what it saw, answers each with one
/// frame out of the ingress port, and counts its ticks.
struct Echo {
    seen: Vec<(PortId, Option<NetId>, u16, Vec<u8>)>,
    ticks: Vec<u64>,
}

impl Protocol for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn claims(&self) -> &[(CtlKind, Claim)] {
        &[(CtlKind::Bpdu, Claim::Consume)]
    }
    fn frame(&mut self, pkt: &CtlPkt, _now_ms: u64, out: &mut Sender<'_>) {
        self.seen
            .push((pkt.port, pkt.net, pkt.vid, pkt.frame().to_vec()));
        out.send(pkt.port, None, &[pkt.frame()]);
    }
    fn tick(&mut self, now_ms: u64, _out: &mut Sender<'_>) {
        self.ticks.push(now_ms);
    }
}

fn pkt(kind: CtlKind, len: usize) -> CtlPkt {
    let data = vec![0xab; len];
    CtlPkt::gather(port(3), NetId::new(1), kind, 0, &[&data]).expect("fits")
}

#[test]
fn claims_set_the_links_kinds() {
    let link = Arc::new(L2Link::new(1).expect("eventfds"));
    assert_eq!(link.wants(), 0);
    let mut reg = Registry::new(Arc::clone(&link));
    assert!(reg.is_empty());
    reg.add(Box::new(Echo {
        seen: Vec::new(),
        ticks: Vec::new(),
    }));
    assert_eq!(link.wants(), CtlKind::Bpdu.bit());
    assert!(link.consumes(CtlKind::Bpdu));
    assert!(!link.consumes(CtlKind::Igmp));
    link.claim(CtlKind::Igmp, Claim::Copy);
    assert_eq!(link.wants(), CtlKind::Bpdu.bit() | CtlKind::Igmp.bit());
    assert!(!link.consumes(CtlKind::Igmp));
    link.release(CtlKind::Bpdu);
    assert_eq!(link.wants(), CtlKind::Igmp.bit());
    assert!(!link.consumes(CtlKind::Bpdu));
}

#[test]
fn rounds_dispatch_copies_and_tick_every_100ms() {
    let link = Arc::new(L2Link::new(2).expect("eventfds"));
    let mut reg = Registry::new(Arc::clone(&link));
    reg.add(Box::new(Echo {
        seen: Vec::new(),
        ticks: Vec::new(),
    }));
    assert!(link.push(1, pkt(CtlKind::Bpdu, 60)));
    // A kind nobody claims is counted, not dispatched.
    assert!(link.push(1, pkt(CtlKind::Mld, 80)));
    assert_eq!(reg.round(0), 1);
    assert_eq!(link.thread.received.get(), 2);
    assert_eq!(link.thread.unclaimed.get(), 1);
    assert_eq!(link.counters[1].to_l2.get(), 2);
    // The answer is queued for port 3, untagged, and worker 0 was woken.
    let out = link.from_l2.pop().expect("an answer");
    assert_eq!((out.port, out.net, out.frame().len()), (port(3), None, 60));
    assert!(link.from_l2.pop().is_none());
    assert_eq!(link.from_l2_event.read().ok(), Some(1));
    // Ticks: at the first round, then once TICK_MS passed.
    reg.round(50);
    reg.round(100);
    reg.round(150);
    reg.round(250);
    assert_eq!(reg.wait_ms(260), 90);
    assert_eq!(link.thread.sent.get(), 1);
}

#[test]
fn full_queues_are_counted_never_waited_for() {
    let link = L2Link::new(1).expect("eventfds");
    for _ in 0..link::CTL_QUEUE {
        assert!(link.push(0, pkt(CtlKind::Igmp, 64)));
    }
    assert!(!link.push(0, pkt(CtlKind::Igmp, 64)));
    assert_eq!(link.counters[0].to_l2_full.get(), 1);
    let mut out = Sender::new(&link);
    for _ in 0..link::CTL_QUEUE {
        assert!(out.send(port(0), None, &[&[1u8; 64]]));
    }
    assert!(!out.send(port(0), None, &[&[1u8; 64]]));
    assert!(!out.send(port(0), None, &[&[1u8; CTL_FRAME + 1]]));
    assert_eq!(link.thread.from_l2_full.get(), 1);
    assert_eq!(link.thread.from_l2_oversize.get(), 1);
    assert_eq!(out.queued(), link::CTL_QUEUE);
    assert!(CtlPkt::gather(port(0), None, CtlKind::Bpdu, 0, &[&[0; CTL_FRAME + 1]]).is_none());
    let stats = link.stats_json();
    assert_eq!(stats["to_l2_full"], 1);
    assert_eq!(stats["sent"], link::CTL_QUEUE as u64);
}

/// The thread itself: a copy pushed and signalled is answered within a
/// tick or two, and the thread stops when told.
#[test]
fn the_thread_answers_and_stops() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let link = Arc::new(L2Link::new(1).expect("eventfds"));
    let mut reg = Registry::new(Arc::clone(&link));
    reg.add(Box::new(Echo {
        seen: Vec::new(),
        ticks: Vec::new(),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let s2 = Arc::clone(&stop);
    let h = spawn(
        reg,
        move || started.elapsed().as_millis() as u64,
        move || s2.load(Relaxed),
    )
    .expect("thread");
    assert!(link.push(0, pkt(CtlKind::Bpdu, 64)));
    L2Link::signal(&link.to_l2_event);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while link.from_l2.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(link.from_l2.len(), 1);
    stop.store(true, Relaxed);
    h.join().expect("joins");
}
