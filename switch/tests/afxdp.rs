//! The AF_XDP port on its own, on veth pairs this test creates: receive and
//! transmit in native and generic mode, two ports sharing a UMEM forwarding
//! between two veths, the fallback of `auto`, oversize frames, quick
//! re-open (EBUSY retry), two queues sharing one program, and no XDP
//! program left behind after drop or after `kill -9`.
//!
//! Needs root (namespaces, veth, AF_XDP). A test that cannot run prints
//! `skipped: <reason>` and returns; the end-to-end suite runs the behaviour
//! tests per port kind with its own harness.
//!
//! Devices: `axt<N>a` (root namespace, the port's side) and `axt<N>b`
//! (inside namespace `axt<N>ns`), one N per test, removed by a Drop guard.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shunt_switch::config::XdpMode;
use shunt_switch::port::afxdp::{AfXdpPort, SharedUmem, TxError, FRAME_SIZE, RING_SIZE};
use shunt_switch::port::{sys, Slots};
use shunt_tools::{FrameBuilder, MacAddr, Marker};

#[macro_use]
mod common;
use common::{sh, Veth};

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (needs namespaces, veth and AF_XDP)".into());
    }
    if sh(&["ip", "-V"]).is_err() {
        return Some("no `ip` command".into());
    }
    if let Err(e) = shunt_switch::port::afxdp::available() {
        return Some(format!("no AF_XDP sockets: {e}"));
    }
    None
}

/// Does `ip -d link show dev X` show an XDP program?
fn has_xdp(ifname: &str) -> bool {
    let out = sh(&["ip", "-d", "link", "show", "dev", ifname]).unwrap_or_default();
    out.contains("prog/xdp") || out.contains(" xdp")
}

fn wait_no_xdp(ifname: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        if !has_xdp(ifname) {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SRC: MacAddr = MacAddr([0x02, 0xa7, 0, 0, 0, 1]);
const DST: MacAddr = MacAddr([0x02, 0xa7, 0, 0, 0, 2]);

fn frame(test: u32, seq: u32, len: usize) -> Vec<u8> {
    FrameBuilder::new(DST, SRC)
        .ethertype(0x88b5)
        .marker(Marker::new(test, seq))
        .pad_to(len)
        .build()
}

/// Receives on `port` until `n` frames of `test` came or `within` passed;
/// returns their sequence numbers.
fn recv_markers(port: &mut AfXdpPort, test: u32, n: usize, within: Duration) -> Vec<u32> {
    let end = Instant::now() + within;
    let mut seqs = Vec::new();
    while seqs.len() < n && Instant::now() < end {
        let got = port.recv_batch(64, |f| {
            if let Some(m) = Marker::in_frame(f) {
                if m.test_id == test {
                    seqs.push(m.seq);
                }
            }
        });
        if got == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    seqs
}

fn open(ifname: &str, mode: XdpMode, umem: &SharedUmem) -> AfXdpPort {
    match AfXdpPort::open(ifname, mode, umem) {
        Ok(p) => p,
        Err(e) => panic!("open {ifname} {mode:?}: {e}"),
    }
}

fn receive_in(mode: XdpMode, n: u32, expect_mode: &str) {
    let veth = Veth::new("axt", n);
    let umem = SharedUmem::new(1).expect("umem");
    let mut port = open(&veth.a, mode, &umem);
    println!("{}", port.summary());
    assert_eq!(port.mode(), expect_mode);
    assert!(has_xdp(&veth.a), "no XDP program on {} while open", veth.a);
    let mut peer = veth.peer();
    let test = 100 + n;
    for seq in 0..50 {
        peer.send(&frame(test, seq, 60))
            .expect("send from namespace");
    }
    let mut seqs = recv_markers(&mut port, test, 50, Duration::from_secs(3));
    seqs.sort_unstable();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "frames received");
    drop(port);
    assert!(
        wait_no_xdp(&veth.a, Duration::from_secs(2)),
        "XDP program left on {} after drop",
        veth.a
    );
}

fn transmit_in(mode: XdpMode, n: u32) {
    let veth = Veth::new("axt", n);
    let umem = SharedUmem::new(1).expect("umem");
    let mut port = open(&veth.a, mode, &umem);
    let mut peer = veth.peer();
    let test = 200 + n;
    // 300 frames: more than one sendto batch (32 in copy mode), gathered
    // from two parts (as a caller pushing a VLAN tag would).
    for seq in 0..300 {
        let f = frame(test, seq, 64 + (seq as usize % 200));
        let (head, rest) = f.split_at(12);
        loop {
            match port.send(&[head, rest]) {
                Ok(()) => break,
                Err(TxError::Full) => port.flush(),
                Err(e) => panic!("send: {e}"),
            }
        }
        if seq % 64 == 63 {
            port.flush();
        }
    }
    let end = Instant::now() + Duration::from_secs(2);
    while port.tx_in_flight() > 0 && Instant::now() < end {
        port.flush();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(port.tx_in_flight(), 0, "completions reaped");
    let mut seqs: Vec<u32> = peer
        .markers_for(Duration::from_millis(500), test)
        .iter()
        .map(|m| m.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..300).collect::<Vec<_>>(),
        "frames seen in the namespace"
    );
    assert_eq!(
        port.send(&[&vec![0u8; FRAME_SIZE as usize + 1]]),
        Err(TxError::Oversize)
    );
}

fn receive_native() {
    skip_unless_able!();
    receive_in(XdpMode::Native, 1, "native-copy");
}

fn receive_generic() {
    skip_unless_able!();
    receive_in(XdpMode::Generic, 2, "generic-copy");
}

fn transmit_native() {
    skip_unless_able!();
    transmit_in(XdpMode::Native, 3);
}

fn transmit_generic() {
    skip_unless_able!();
    transmit_in(XdpMode::Generic, 4);
}

fn auto_is_native_on_veth() {
    skip_unless_able!();
    receive_in(XdpMode::Auto, 5, "native-copy");
}

/// MTU 9000 on veth: native XDP refuses it, auto falls back to generic; a
/// frame larger than a UMEM frame is dropped by the kernel and shows up as
/// oversize; normal frames still come through.
fn auto_falls_back_and_counts_oversize() {
    skip_unless_able!();
    let veth = Veth::new("axt", 6);
    veth.set_mtu(9000);
    let umem = SharedUmem::new(1).expect("umem");
    let mut port = open(&veth.a, XdpMode::Auto, &umem);
    println!("{}", port.summary());
    assert_eq!(port.mode(), "generic-copy");
    assert!(port.summary().contains("WARNING"), "{}", port.summary());
    let mut peer = veth.peer();
    peer.send(&frame(306, 0, port.max_frame() + 1))
        .expect("send big");
    peer.send(&frame(306, 1, port.max_frame()))
        .expect("send max");
    peer.send(&frame(306, 2, 60)).expect("send small");
    let mut seqs = recv_markers(&mut port, 306, 2, Duration::from_secs(3));
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2]);
    let stats = port.stats();
    assert_eq!(stats.oversize, 1, "{stats:?}");
}

fn native_refuses_jumbo_veth_with_a_clear_error() {
    skip_unless_able!();
    let veth = Veth::new("axt", 7);
    veth.set_mtu(9000);
    let umem = SharedUmem::new(1).expect("umem");
    let err = AfXdpPort::open(&veth.a, XdpMode::Native, &umem).expect_err("native on MTU 9000");
    let msg = err.to_string();
    assert!(msg.contains(&veth.a) && msg.contains("native"), "{msg}");
    assert!(!has_xdp(&veth.a), "failed open left a program");
    // Its place in the UMEM came back: a generic open on the same UMEM works.
    let port = open(&veth.a, XdpMode::Generic, &umem);
    assert_eq!(port.mode(), "generic-copy");
}

/// Two ports on one UMEM forwarding frames from one veth to the other in
/// a loop: 1 -> 2 without a copy (the received UMEM frame goes on the other
/// port's transmit ring as it is), 2 -> 1 by copy. Every frame of the UMEM
/// is back in its pool once the ports are closed.
fn shared_umem_forwarding() {
    skip_unless_able!();
    let v1 = Veth::new("axt", 8);
    let v2 = Veth::new("axt", 9);
    let umem = SharedUmem::new(2).expect("umem");
    let mut p1 = open(&v1.a, XdpMode::Native, &umem);
    let mut p2 = open(&v2.a, XdpMode::Generic, &umem);
    assert!(AfXdpPort::open(&v1.a, XdpMode::Generic, &umem).is_err());
    let mut slots = Slots::new(64);
    let mut at = [(0u16, 0u16); 64];
    let mut h1 = v1.peer();
    let mut h2 = v2.peer();
    for seq in 0..500 {
        h1.send(&frame(308, seq, 60 + seq as usize % 1000))
            .expect("send 1");
    }
    for seq in 0..500 {
        h2.send(&frame(309, seq, 60)).expect("send 2");
    }
    let end = Instant::now() + Duration::from_secs(2);
    let (mut fwd12, mut fwd21, mut full) = (0, 0, 0);
    while Instant::now() < end {
        let mut moved = p1.recv_into(&mut slots, 0, |i, off, len| at[i] = (off, len));
        for (i, &(off, len)) in at.iter().enumerate().take(moved) {
            let f = slots.take(i).expect("slot holds the received frame");
            match p2.send_frame(f, off, len) {
                Ok(()) => fwd12 += 1,
                Err(_) => full += 1,
            }
        }
        moved += p2.recv_batch(64, |f| match p1.send(&[f]) {
            Ok(()) => fwd21 += 1,
            Err(_) => full += 1,
        });
        p1.flush();
        p2.flush();
        if moved == 0 {
            if fwd12 >= 500 && fwd21 >= 500 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for _ in 0..100 {
        p1.flush();
        p2.flush();
        if p1.tx_in_flight() == 0 && p2.tx_in_flight() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(full, 0);
    let seen2 = h2.markers_for(Duration::from_millis(300), 308);
    let seen1 = h1.markers_for(Duration::from_millis(300), 309);
    assert_eq!(seen2.len(), 500, "forwarded 1->2 (loop counted {fwd12})");
    assert_eq!(seen1.len(), 500, "forwarded 2->1 (loop counted {fwd21})");
    assert_eq!(p1.stats().bad_kernel_descs + p2.stats().bad_kernel_descs, 0);
    drop((p1, p2, slots));
    assert_eq!(
        umem.free_frames(),
        umem.frames(),
        "frames lost on the way (in rings, caches or slots when the ports closed)"
    );
}

/// Open, drop, open again at once, several times, native and generic: the
/// previous socket and link may still be going away (EBUSY), open retries.
fn reopen_right_after_close() {
    skip_unless_able!();
    let veth = Veth::new("axt", 10);
    let umem = SharedUmem::new(1).expect("umem");
    for i in 0..6 {
        let mode = if i % 2 == 0 {
            XdpMode::Native
        } else {
            XdpMode::Generic
        };
        let mut port = open(&veth.a, mode, &umem);
        let mut peer = veth.peer();
        peer.send(&frame(310, i, 60)).expect("send");
        let seqs = recv_markers(&mut port, 310, 1, Duration::from_secs(2));
        assert_eq!(seqs, vec![i], "round {i} ({})", port.mode());
    }
    assert!(wait_no_xdp(&veth.a, Duration::from_secs(2)));
}

/// The ethtool calls shunt makes on veths: the driver's name (a start-up
/// note for AF_XDP ports on veths) and transmit checksum offload off and on
/// (shunt's veth hosts, `shunt bench`).
fn veth_driver_and_checksum_offload() {
    skip_unless_able!();
    let v = Veth::new("axt", 30);
    assert_eq!(sys::driver_name(&v.a).expect("drvinfo"), "veth");
    assert!(
        sys::tx_checksum(&v.a).expect("get"),
        "veth starts with it on"
    );
    sys::set_tx_checksum(&v.a, false).expect("off");
    assert!(!sys::tx_checksum(&v.a).expect("get"));
    sys::set_tx_checksum(&v.a, true).expect("on");
    assert!(sys::tx_checksum(&v.a).expect("get"));
    assert!(sys::driver_name("axt-nonexistent").is_err());
}

fn umem_full_is_an_error() {
    skip_unless_able!();
    let v1 = Veth::new("axt", 11);
    let v2 = Veth::new("axt", 12);
    let umem = SharedUmem::new(1).expect("umem");
    let _p1 = open(&v1.a, XdpMode::Generic, &umem);
    let err = AfXdpPort::open(&v2.a, XdpMode::Generic, &umem).expect_err("second port");
    assert!(err.to_string().contains("room for 1"), "{err}");
    let err = AfXdpPort::open("axt-nonexistent", XdpMode::Generic, &umem).expect_err("no iface");
    assert!(err.to_string().contains("axt-nonexistent"), "{err}");
}

/// The frame pool run dry (issue 17, "Faults"): every free frame of the
/// UMEM is taken out and every frame received is kept. Frames that then
/// arrive find no frame in the fill ring: the kernel drops them and counts
/// them (`rx_fill_ring_empty`, in `shunt stats` as the port's
/// `afxdp.rx_fill_ring_empty`); a send is refused as `Full` (the worker
/// counts `tx_full`). Once the frames come back, both work again and no
/// frame is lost to the pool.
fn pool_exhausted_is_counted_and_recovers() {
    skip_unless_able!();
    let veth = Veth::new("axt", 23);
    let umem = SharedUmem::new(1).expect("umem");
    let mut port = open(&veth.a, XdpMode::Generic, &umem);
    let mut peer = veth.peer();
    let mut held = Vec::new();
    while let Some(f) = umem.alloc() {
        held.push(f);
    }
    assert_eq!(umem.free_frames(), 0);
    // More than the receive side has frames for, kept as they come.
    let n = RING_SIZE as usize + 500;
    for seq in 0..n as u32 {
        peer.send(&frame(313, seq, 60))
            .expect("send from namespace");
    }
    let mut slots = Slots::new(n);
    let mut kept = 0;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let got = port.recv_into(&mut slots, kept, |_, _, _| {});
        kept += got;
        if got == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let st = port.stats();
    println!(
        "pool dry: {kept} of {n} received and kept; kernel: rx_fill_ring_empty {}, rx_ring_full {}",
        st.rx_fill_ring_empty, st.rx_ring_full
    );
    assert!(kept < n, "all {n} frames received with no free frame left");
    assert_eq!(
        (kept + st.rx_fill_ring_empty as usize + st.rx_ring_full as usize),
        n,
        "every frame received or counted by the kernel"
    );
    assert!(st.rx_fill_ring_empty > 0, "no fill-ring-empty drop counted");
    let f = frame(314, 0, 60);
    let refused = (0..=RING_SIZE).any(|_| matches!(port.send(&[&f]), Err(TxError::Full)));
    assert!(refused, "a send with no free frame was not refused as Full");
    port.flush();
    // The frames come back: receive and transmit work again, once the fill
    // ring has frames again. Nothing arrives to wake a receive (the kernel
    // drops what comes while the ring is empty): the switch's workers
    // refill every port once a second, as here. (Without that, a starved
    // port stayed starved: frames sent now were all dropped.)
    drop(slots);
    for f in held.drain(..) {
        umem.release(f);
    }
    port.refill();
    for seq in 0..50 {
        peer.send(&frame(315, seq, 60))
            .expect("send from namespace");
    }
    let seqs = recv_markers(&mut port, 315, 50, Duration::from_secs(3));
    assert_eq!(seqs.len(), 50, "received after the frames came back");
    peer.drain();
    for seq in 0..50 {
        let f = frame(316, seq, 60);
        while let Err(e) = port.send(&[&f]) {
            assert!(matches!(e, TxError::Full), "send: {e}");
            port.flush();
        }
    }
    for _ in 0..100 {
        port.flush();
        if port.tx_in_flight() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        peer.markers_for(Duration::from_millis(500), 316).len(),
        50,
        "sent after"
    );
    drop(port);
    assert_eq!(umem.free_frames(), umem.frames(), "frames lost to the pool");
}

/// Run by `killed_process_leaves_no_program` in a child process: attach,
/// say so, wait to be killed.
fn child_holds_a_port() {
    let (Ok(ifname), Ok(mode)) = (
        std::env::var("AXT_CHILD_IF"),
        std::env::var("AXT_CHILD_MODE"),
    ) else {
        println!("skipped: helper, needs AXT_CHILD_IF and AXT_CHILD_MODE");
        return;
    };
    let mode = if mode == "native" {
        XdpMode::Native
    } else {
        XdpMode::Generic
    };
    let umem = SharedUmem::new(1).expect("umem");
    let _port = open(&ifname, mode, &umem);
    println!("AXT-READY");
    std::thread::sleep(Duration::from_secs(60));
}

fn killed_process_leaves_no_program() {
    skip_unless_able!();
    let veth = Veth::new("axt", 13);
    let exe = std::env::current_exe().expect("test binary");
    for mode in ["native", "generic"] {
        let mut child = Command::new(&exe)
            .args([
                "child_holds_a_port",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AXT_CHILD_IF", &veth.a)
            .env("AXT_CHILD_MODE", mode)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("AXT-READY"));
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not attach ({mode})");
        }
        assert!(has_xdp(&veth.a), "child attached no program ({mode})");
        // SIGKILL: no destructor runs.
        child.kill().expect("kill -9");
        let _ = child.wait();
        assert!(
            wait_no_xdp(&veth.a, Duration::from_secs(3)),
            "XDP program left on {} after kill -9 ({mode})",
            veth.a
        );
        // And the interface can be taken again right away.
        let umem = SharedUmem::new(1).expect("umem");
        let port = open(&veth.a, XdpMode::Native, &umem);
        drop(port);
    }
}

fn counter(ns: &str, ifname: &str, what: &str) -> u64 {
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{ifname}/statistics/{what}"),
    ])
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// Raw forwarding rate between two veths through two ports on one UMEM, one
/// thread in a tight loop (copy mode): trafgen floods 60-byte frames into
/// the first veth from its namespace; we count what the port forwards and
/// what arrives at the far end. Not a pass/fail test; run it with
/// `cargo test --release -p shunt-switch --test afxdp -- --ignored forwarding_rate --nocapture`
/// (AXT_BENCH_MODE=native|generic, AXT_BENCH_SECS=5, AXT_BENCH_COPY=1 to
/// copy each frame into a new UMEM frame instead of sending the received
/// one, AXT_BENCH_LEN=60..1514 for the frame length without FCS).
fn forwarding_rate() {
    skip_unless_able!();
    if Command::new("trafgen").arg("-v").output().is_err() {
        println!("skipped: no trafgen (netsniff-ng)");
        return;
    }
    let mode = match std::env::var("AXT_BENCH_MODE").as_deref() {
        Ok("generic") => XdpMode::Generic,
        _ => XdpMode::Native,
    };
    let secs: u64 = std::env::var("AXT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let copy = std::env::var("AXT_BENCH_COPY").is_ok_and(|v| v == "1");
    // AXT_BENCH_PASS=0: completed frames return through the shared pool
    // instead of straight to the receiving port.
    let pass = std::env::var("AXT_BENCH_PASS").map_or(true, |v| v != "0");
    let len: usize = std::env::var("AXT_BENCH_LEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .clamp(60, 1514);
    let v1 = Veth::new("axt", 20);
    let v2 = Veth::new("axt", 21);
    let umem = SharedUmem::new(2).expect("umem");
    let mut p1 = open(&v1.a, mode, &umem);
    let mut p2 = open(&v2.a, mode, &umem);
    let mut gen = Command::new("ip")
        .args(["netns", "exec", &v1.ns, "timeout", &(secs + 2).to_string()])
        .args(["taskset", "-c", "0"])
        .args(["trafgen", "--dev", &v1.b, "--cpus", "1", "-Q"])
        .arg(format!(
            "{{ 0x02,0xa7,0,0,0,2, 0x02,0xa7,0,0,0,1, c16(0x88b5), fill(0x00, {}) }}",
            len - 14
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("trafgen");
    // The generator on CPU 0, the forwarding loop on the last CPU.
    if let Some(last) = core_affinity::get_core_ids().and_then(|c| c.last().copied()) {
        core_affinity::set_for_current(last);
    }
    std::thread::sleep(Duration::from_millis(500));
    // Drain what queued up meanwhile (the rings overflowed: not counted).
    while p1.recv_batch(64, |_| ()) > 0 {}
    let sent0 = counter(&v1.ns, &v1.b, "tx_packets");
    let arrived0 = counter(&v2.ns, &v2.b, "rx_packets");
    while p1.recv_batch(64, |_| ()) > 0 {}
    let before = p1.stats();
    let (mut fwd, mut full, mut batches, mut empty) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut slots = Slots::new(64);
    let mut at = [(0u16, 0u16); 64];
    // Time spent on batches that carried frames: the loop's cost per frame,
    // whatever the generator offers.
    let mut busy = Duration::ZERO;
    while Instant::now() < end {
        let t0 = Instant::now();
        let n = if copy {
            p1.recv_batch(64, |f| match p2.send(&[f]) {
                Ok(()) => fwd += 1,
                Err(_) => full += 1,
            })
        } else {
            let n = p1.recv_into(&mut slots, 0, |i, off, len| at[i] = (off, len));
            for (i, &(off, len)) in at.iter().enumerate().take(n) {
                if let Some(f) = slots.take(i) {
                    match p2.send_frame(f, off, len) {
                        Ok(()) => fwd += 1,
                        Err(_) => full += 1,
                    }
                }
            }
            if pass {
                p2.pass_frames(&mut p1, 64);
            }
            n
        };
        p2.flush();
        batches += 1;
        if n == 0 {
            empty += 1;
        } else {
            busy += t0.elapsed();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = p1.stats();
    let sent = counter(&v1.ns, &v1.b, "tx_packets") - sent0;
    let arrived = counter(&v2.ns, &v2.b, "rx_packets") - arrived0;
    // SIGTERM, which `timeout` passes on to trafgen (SIGKILL would not).
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gen.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = gen.wait();
    let dropped = after.rx_dropped - before.rx_dropped;
    let fill_empty = after.rx_fill_ring_empty - before.rx_fill_ring_empty;
    println!(
        "forwarding_rate {} -> {} ({}, {len} B): offered {:.0} f/s, forwarded {:.0} f/s, arrived {:.0} f/s, tx_full {}, batches {} ({} empty), {:.0} ns per forwarded frame (receive, send and flush of batches that had frames), kernel rx drops {} (fill ring empty {})",
        p1.mode(),
        p2.mode(),
        if copy { "copy" } else { "zero-copy" },
        sent as f64 / elapsed,
        fwd as f64 / elapsed,
        arrived as f64 / elapsed,
        full,
        batches,
        empty,
        busy.as_nanos() as f64 / fwd.max(1) as f64,
        dropped,
        fill_empty
    );
}

/// A veth with two queues each way (`ethtool -L`), opened with a socket on
/// each: the second socket is queue 1 and comes out of `split_queues`; the
/// XDP program stays while either socket is open and goes with the last;
/// every frame is back in the pool after both.
fn two_queues_share_one_program() {
    skip_unless_able!();
    let veth = Veth::new("axt", 31);
    let ns = veth.ns.clone();
    let channels = sh(&["ethtool", "-L", &veth.a, "rx", "2", "tx", "2"]).and_then(|_| {
        sh(&[
            "ip", "netns", "exec", &ns, "ethtool", "-L", &veth.b, "rx", "2", "tx", "2",
        ])
    });
    if let Err(e) = channels {
        println!("skipped: cannot give the veth two queues: {e}");
        return;
    }
    let umem = SharedUmem::new(2).expect("umem");
    let total = umem.free_frames();
    let mut q0 = match AfXdpPort::open_queues(&veth.a, XdpMode::Native, &umem, 2) {
        Ok(p) => p,
        Err(e) => panic!("open {} with 2 queues: {e}", veth.a),
    };
    let mut rest = q0.split_queues();
    assert_eq!((q0.queue(), q0.queues(), rest.len()), (0, 2, 1));
    assert!(q0.split_queues().is_empty(), "split twice");
    let q1 = rest.pop().expect("queue 1");
    assert_eq!((q1.queue(), q1.queues()), (1, 2));
    assert!(has_xdp(&veth.a), "no XDP program on {}", veth.a);
    drop(q0);
    std::thread::sleep(Duration::from_millis(50));
    assert!(has_xdp(&veth.a), "program went with queue 0's socket");
    drop(q1);
    assert!(
        wait_no_xdp(&veth.a, Duration::from_secs(2)),
        "program left after both sockets closed"
    );
    assert_eq!(umem.free_frames(), total, "frames not back in the pool");
}

/// Own harness (libtest-mimic): when the machine cannot run these tests
/// (not root, no AF_XDP), every test is reported ignored with a line
/// `skipped: <reason>`, never as passed.
fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let why = cannot_run();
    let tests: Vec<(&str, fn(), bool)> = vec![
        ("receive_native", receive_native as fn(), false),
        ("receive_generic", receive_generic as fn(), false),
        ("transmit_native", transmit_native as fn(), false),
        ("transmit_generic", transmit_generic as fn(), false),
        (
            "auto_is_native_on_veth",
            auto_is_native_on_veth as fn(),
            false,
        ),
        (
            "auto_falls_back_and_counts_oversize",
            auto_falls_back_and_counts_oversize as fn(),
            false,
        ),
        (
            "native_refuses_jumbo_veth_with_a_clear_error",
            native_refuses_jumbo_veth_with_a_clear_error as fn(),
            false,
        ),
        (
            "shared_umem_forwarding",
            shared_umem_forwarding as fn(),
            false,
        ),
        (
            "reopen_right_after_close",
            reopen_right_after_close as fn(),
            false,
        ),
        (
            "umem_full_is_an_error",
            umem_full_is_an_error as fn(),
            false,
        ),
        (
            "pool_exhausted_is_counted_and_recovers",
            pool_exhausted_is_counted_and_recovers as fn(),
            false,
        ),
        (
            "veth_driver_and_checksum_offload",
            veth_driver_and_checksum_offload as fn(),
            false,
        ),
        ("child_holds_a_port", child_holds_a_port as fn(), true),
        (
            "killed_process_leaves_no_program",
            killed_process_leaves_no_program as fn(),
            false,
        ),
        ("forwarding_rate", forwarding_rate as fn(), true),
        (
            "two_queues_share_one_program",
            two_queues_share_one_program as fn(),
            false,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f, ignored)| match &why {
            Some(reason) => {
                println!("skipped: {name}: {reason}");
                libtest_mimic::Trial::test(name, || Ok(())).with_ignored_flag(true)
            }
            None => libtest_mimic::Trial::test(name, move || {
                f();
                Ok(())
            })
            .with_ignored_flag(ignored),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
