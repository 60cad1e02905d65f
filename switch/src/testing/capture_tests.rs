//! Capture stage tests: a batch through the rig with a capture running,
//! then what the capture's rings hold (pipeline::capture).

use crate::counters::{DropReason, FloodCause};
use crate::ids::{Egress, NetId};
use crate::pipeline::capture::{Decision, Dir, Filter, Record, Session, RING};
use crate::pipeline::Verdict;
use crate::testing::{port, Rig};
use shunt_parsers::MacAddr;

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const BCAST: [u8; 6] = [0xff; 6];

fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(vid) = tag {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.resize(f.len().max(60), 0x5a);
    f
}

/// Access a (blue, 10), access b (blue), trunk t (blue only).
const NET: &str = r#"
[[network]]
name = "blue"
vlan = 10
[[port]]
name = "a"
network = "blue"
[[port]]
name = "b"
network = "blue"
[[port]]
name = "t"
mode = "trunk"
networks = ["blue"]
"#;

fn start(r: &Rig, filter: Filter, ports: &[u16]) {
    let ports: Vec<_> = ports.iter().map(|&p| port(p.into())).collect();
    assert!(r.capture.start(Session::new(filter, &ports, 1)));
}

/// Sends `frames` in on port `p` and returns what the capture took.
fn feed(r: &mut Rig, p: u16, frames: &[Vec<u8>]) -> Vec<Record> {
    for f in frames {
        assert!(r.ports[usize::from(p)].push(f));
    }
    r.step(port(p.into()), 1000);
    let s = r.capture.session();
    let s = s.as_ref().expect("a capture runs");
    // Copied out, the box given back as the writer does.
    std::iter::from_fn(|| {
        s.pop(0).map(|b| {
            let r = *b;
            s.give_back(0, b);
            r
        })
    })
    .collect()
}

fn at(p: u16) -> Egress {
    port(p.into()).into()
}

fn words(r: &Record) -> String {
    let name = |e: Egress| match e.port().map(|p| p.index()) {
        Some(0) => "a".to_string(),
        Some(1) => "b".to_string(),
        Some(2) => "t".to_string(),
        _ => "switch".to_string(),
    };
    crate::trace::describe(&r.what, &name, &|_: NetId| "blue".to_string()).text
}

#[test]
fn a_flood_is_captured_in_and_out_with_its_decision() {
    let mut r = Rig::new(NET);
    start(&r, Filter::default(), &[]);
    let f = frame(BCAST, A, None, 0x0806);
    let got = feed(&mut r, 0, std::slice::from_ref(&f));
    let dirs: Vec<_> = got.iter().map(|c| (c.dir, c.at)).collect();
    assert_eq!(
        dirs,
        [(Dir::In, at(0)), (Dir::Out, at(1)), (Dir::Out, at(2))]
    );
    // In: as received. Out towards the trunk: as sent, the tag pushed.
    assert_eq!(got[0].data(), &f[..]);
    assert_eq!(got[1].data(), &f[..]);
    assert_eq!(got[2].orig_len as usize, f.len() + 4);
    assert_eq!(&got[2].data()[12..16], &[0x81, 0, 0, 10]);
    assert_eq!(got[2].copy_vid.map(|v| v.get()), Some(10));
    assert_eq!(got[0].what.verdict, Verdict::Flood(FloodCause::Broadcast));
    let w = words(&got[0]);
    assert!(
        w.ends_with("broadcast in blue: flooded to b, t (tagged 10)"),
        "{w}"
    );
    // Forwarding was not changed by it.
    assert_eq!(r.ports[2].sent().count(), 1);
}

#[test]
fn drops_only_takes_the_dropped_frame_as_received_with_its_reason() {
    let mut r = Rig::new(NET);
    start(
        &r,
        Filter {
            drops_only: true,
            ..Filter::default()
        },
        &[],
    );
    // VLAN 20 is not allowed on trunk t; the other frame is fine.
    let bad = frame(BCAST, A, Some(20), 0x0800);
    let got = feed(&mut r, 2, &[bad.clone(), frame(BCAST, A, Some(10), 0x0800)]);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].dir, got[0].at), (Dir::In, at(2)));
    assert_eq!(got[0].data(), &bad[..]);
    assert_eq!(
        got[0].what.verdict,
        Verdict::Drop(DropReason::VlanNotAllowed)
    );
    let w = words(&got[0]);
    assert!(w.contains("dropped (vlan_not_allowed)"), "{w}");
}

#[test]
fn filters_select_by_port_mac_type_vlan_reason_and_decision() {
    let mut r = Rig::new(NET);
    // Only port b: the flood from a shows as its copy out of b.
    start(&r, Filter::default(), &[1]);
    let got = feed(&mut r, 0, &[frame(BCAST, A, None, 0x0800)]);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].dir, got[0].at), (Dir::Out, at(1)));
    r.capture.stop();

    let cases: [(Filter, usize); 7] = [
        (
            Filter {
                mac: Some(MacAddr(B)),
                ..Filter::default()
            },
            0,
        ),
        (
            Filter {
                mac: Some(MacAddr(A)),
                inbound: false,
                ..Filter::default()
            },
            2,
        ),
        (
            Filter {
                ethertype: Some(0x0806),
                ..Filter::default()
            },
            0,
        ),
        (
            Filter {
                ethertype: Some(0x0800),
                outbound: false,
                ..Filter::default()
            },
            1,
        ),
        // The copy tagged 10 towards the trunk, and the frame itself
        // (access port a: its network's VLAN is not a tag it came with).
        (
            Filter {
                vlan: Some(10),
                ..Filter::default()
            },
            1,
        ),
        (
            Filter {
                decision: Some(Decision::Unicast),
                ..Filter::default()
            },
            0,
        ),
        (
            Filter {
                reason: Some(DropReason::SamePort),
                ..Filter::default()
            },
            0,
        ),
    ];
    for (k, (f, n)) in cases.into_iter().enumerate() {
        start(&r, f, &[]);
        let got = feed(&mut r, 0, &[frame(BCAST, A, None, 0x0800)]);
        assert_eq!(got.len(), n, "case {k}");
        r.capture.stop();
    }
}

#[test]
fn a_full_ring_loses_records_never_frames() {
    let mut r = Rig::new(NET);
    start(
        &r,
        Filter {
            outbound: false,
            ..Filter::default()
        },
        &[],
    );
    let batches = RING / 60 + 2;
    let mut sent = 0;
    for _ in 0..batches {
        for p in &mut r.ports {
            p.clear_sent();
        }
        for _ in 0..60 {
            assert!(r.ports[0].push(&frame(BCAST, A, None, 0x0800)));
        }
        r.step(port(0), 1000);
        sent += r.ports[1].sent().count();
    }
    assert_eq!(sent, batches * 60);
    let s = r.capture.stop().expect("the capture ran");
    let kept = std::iter::from_fn(|| s.pop(0)).count();
    assert_eq!(kept, RING);
    assert_eq!(s.lost() as usize, batches * 60 - RING);
}

#[test]
fn no_capture_no_records() {
    let mut r = Rig::new(NET);
    assert!(!r.capture.active());
    for _ in 0..3 {
        assert!(r.ports[0].push(&frame(BCAST, A, None, 0x0800)));
    }
    r.step(port(0), 1000);
    assert!(r.capture.stop().is_none());
    // One capture at a time.
    start(&r, Filter::default(), &[]);
    assert!(!r.capture.start(Session::new(Filter::default(), &[], 1)));
}

/// An ended session's rings serve the next capture, emptied; the stream's
/// buffers come back with their capacity: a capture after the first
/// allocates nothing (the soak's memory check, docs/reliability.md).
#[test]
fn rings_and_buffers_are_kept_for_the_next_capture() {
    let mut r = Rig::new(NET);
    let rings = r.capture.rings(1);
    let at = rings[0].capacity();
    let first: *const _ = &*rings;
    assert!(r
        .capture
        .start(Session::with_rings(Filter::default(), &[], rings)));
    assert!(r.ports[0].push(&frame(BCAST, A, None, 0x0800)));
    r.step(port(0), 1000);
    let ended = r.capture.stop().expect("the capture ran");
    assert!(ended.pop(0).is_some(), "the frame was recorded");
    r.capture.recycle(ended);
    let again = r.capture.rings(1);
    assert_eq!(&*again as *const _, first, "the same rings");
    assert_eq!(again[0].capacity(), at);
    assert!(again.iter().all(|q| q.is_empty()), "emptied");
    // Rings for another number of workers are new.
    r.capture.recycle(std::sync::Arc::new(Session::with_rings(
        Filter::default(),
        &[],
        again,
    )));
    assert_eq!(r.capture.rings(2).len(), 2);
    // A session still held elsewhere (a worker's batch) is left to its
    // holder, not kept.
    let held = std::sync::Arc::new(Session::new(Filter::default(), &[], 1));
    r.capture.recycle(std::sync::Arc::clone(&held));
    assert_eq!(std::sync::Arc::strong_count(&held), 1);
    // One let go of soon (a worker's batch ending after the stop) is
    // waited for, and its rings kept.
    let rings = r.capture.rings(1);
    let these: *const _ = &*rings;
    let s = std::sync::Arc::new(Session::with_rings(Filter::default(), &[], rings));
    let worker = std::sync::Arc::clone(&s);
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(10));
        drop(worker);
    });
    r.capture.recycle(s);
    t.join().unwrap();
    assert_eq!(&*r.capture.rings(1) as *const _, these, "kept");

    let (mut batch, mut buf) = r.capture.buffers();
    batch.reserve_exact(256);
    buf.extend_from_slice(&[1; 1000]);
    let (cb, cu) = (batch.capacity(), buf.capacity());
    r.capture.keep_buffers(batch, buf);
    let (batch, buf) = r.capture.buffers();
    assert!(batch.is_empty() && buf.is_empty());
    assert_eq!((batch.capacity(), buf.capacity()), (cb, cu));
}

/// Records move as boxes between the free and full queues: the writer
/// gets the box the worker filled and gives it back, and a later capture
/// fills the same boxes (no record allocated per frame or per capture).
#[test]
fn records_move_in_the_same_boxes() {
    let mut r = Rig::new(NET);
    let mut seen = Vec::new();
    for round in 0..2 {
        let rings = r.capture.rings(1);
        let inbound = Filter {
            outbound: false,
            ..Filter::default()
        };
        assert!(r.capture.start(Session::with_rings(inbound, &[], rings)));
        // Every box filled once: RING frames, in batches of 64.
        for _ in 0..RING / 64 {
            for _ in 0..64 {
                assert!(r.ports[0].push(&frame(BCAST, A, None, 0x0800)));
            }
            r.step(port(0), 1000);
        }
        let s = r.capture.stop().expect("the capture ran");
        assert_eq!(s.lost(), 0, "round {round}");
        let mut boxes: Vec<usize> = std::iter::from_fn(|| s.pop(0))
            .map(|b| {
                let p = &*b as *const Record as usize;
                s.give_back(0, b);
                p
            })
            .collect();
        boxes.sort_unstable();
        assert_eq!(boxes.len(), RING, "round {round}");
        r.capture.recycle(s);
        seen.push(boxes);
    }
    assert_eq!(seen[0], seen[1], "the same boxes");
    let again = r.capture.rings(1);
    assert!(again[0].is_empty() && again[0].capacity() == RING);
}

/// `shunt trace` with the capture's filters (Filter::traces): a trace of
/// port b takes the frames that came in on b and, with `outbound`, those
/// sent to b; the header checks apply as in the capture; one record per
/// frame.
#[test]
fn the_trace_takes_the_capture_filters() {
    let mut r = Rig::new(NET);
    let records = |r: &Rig| std::iter::from_fn(|| r.tracer.pop()).collect::<Vec<_>>();
    let send = |r: &mut Rig, p: u16, f: Vec<u8>| {
        assert!(r.ports[usize::from(p)].push(&f));
        r.step(port(p.into()), 1000);
    };
    // b speaks (in on b); a floods (out to b and t); a sends ARP to b.
    let only_in = Filter {
        outbound: false,
        ..Filter::default()
    };
    r.tracer.start(&[port(1)], only_in);
    send(&mut r, 1, frame(BCAST, B, None, 0x88b5));
    send(&mut r, 0, frame(BCAST, A, None, 0x88b5));
    let got = records(&r);
    assert_eq!(got.len(), 1, "in on b only: {got:?}");
    assert_eq!(got[0].src, MacAddr(B));
    // Both ways: a's frames to b too, one record each; ARP only.
    r.tracer.start(
        &[port(1)],
        Filter {
            ethertype: Some(0x0806),
            ..Filter::default()
        },
    );
    send(&mut r, 0, frame(B, A, None, 0x0806));
    send(&mut r, 0, frame(BCAST, A, None, 0x0806));
    send(&mut r, 0, frame(B, A, None, 0x88b5));
    send(
        &mut r,
        2,
        frame(BCAST, [2, 0, 0, 0, 0, 0xc], Some(10), 0x0806),
    );
    let got = records(&r);
    assert_eq!(got.len(), 3, "a's two ARPs to b and t's: {got:?}");
    assert!(got.iter().all(|x| x.ethertype == 0x0806));
    // A decision and a MAC: only the unicast to b.
    r.tracer.start(
        &[],
        Filter {
            decision: Some(Decision::Unicast),
            mac: Some(MacAddr(B)),
            ..Filter::default()
        },
    );
    send(&mut r, 0, frame(B, A, None, 0x88b5));
    send(&mut r, 0, frame(BCAST, A, None, 0x88b5));
    let got = records(&r);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].verdict, Verdict::Unicast(port(1).into()));
    r.tracer.stop();
}
