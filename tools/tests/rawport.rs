//! RawPort against a real veth pair between two namespaces of our own
//! (`stt-a`, `stt-b`). Needs root; says "skipped" otherwise.

use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use shunt_tools::{FrameBuilder, MacAddr, Marker, RawPort};

const NS_A: &str = "stt-a";
const NS_B: &str = "stt-b";
const MAC_A: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0xee, 0x00, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0xee, 0x00, 0x0b]);
const TEST_ID: u32 = 0x5474;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The two namespaces and the veth between them; deleted on drop.
struct Pair;

impl Pair {
    fn new() -> Result<Pair, String> {
        Self::cleanup();
        let pair = Pair;
        ip(&["netns", "add", NS_A])?;
        ip(&["netns", "add", NS_B])?;
        ip(&[
            "link", "add", "stt-va", "netns", NS_A, "type", "veth", "peer", "name", "stt-vb",
            "netns", NS_B,
        ])?;
        for (ns, dev, mac) in [(NS_A, "stt-va", MAC_A), (NS_B, "stt-vb", MAC_B)] {
            let mac = mac.to_string();
            ip(&["-n", ns, "link", "set", dev, "address", &mac])?;
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{dev}.disable_ipv6=1"))
                .status();
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    fn cleanup() {
        for ns in [NS_A, NS_B] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        Self::cleanup();
    }
}

fn marked(dst: MacAddr, src: MacAddr, seq: u32) -> Vec<u8> {
    FrameBuilder::new(dst, src)
        .marker(Marker::new(TEST_ID, seq))
        .build()
}

fn veth_round_trip() -> Result<(), Failed> {
    let _pair = Pair::new()?;
    let mut a = RawPort::open(NS_A, "stt-va")?;
    let mut b = RawPort::open(NS_B, "stt-vb")?;
    // Give the link a moment to come up.
    std::thread::sleep(Duration::from_millis(200));
    a.drain();
    b.drain();

    for seq in 0..10 {
        a.send(&marked(MAC_B, MAC_A, seq))?;
    }
    // A frame to another MAC (not ours) still reaches the sniffer.
    a.send(&marked(shunt_tools::test_mac(0xee, 0, 0x99), MAC_A, 100))?;
    // A broadcast.
    a.send(&marked(MacAddr::BROADCAST, MAC_A, 101))?;

    let at_b = b.markers_for(Duration::from_millis(500), TEST_ID);
    let seqs: Vec<u32> = at_b.iter().map(|m| m.seq).collect();
    let want: Vec<u32> = (0..10).chain([100, 101]).collect();
    if seqs != want {
        return Err(format!("at b: got sequence numbers {seqs:?}, want {want:?}").into());
    }
    // The sender's own sniffer must not see its outgoing frames.
    let at_a = a.markers_for(Duration::from_millis(100), TEST_ID);
    if !at_a.is_empty() {
        return Err(format!("a saw its own outgoing frames: {at_a:?}").into());
    }

    // The other way, and a frame of exactly 60 bytes arrives as 60 bytes.
    b.send(&marked(MAC_A, MAC_B, 7))?;
    let frames = a.recv_for(Duration::from_millis(300));
    let ours: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| Marker::in_frame(f).is_some_and(|m| m.test_id == TEST_ID))
        .collect();
    if ours.len() != 1 || ours[0].len() != 60 {
        return Err(format!(
            "b->a: want one 60-byte frame, got lengths {:?}",
            ours.iter().map(|f| f.len()).collect::<Vec<_>>()
        )
        .into());
    }
    Ok(())
}

fn tagged_frame_goes_out() -> Result<(), Failed> {
    let _pair = Pair::new()?;
    let mut a = RawPort::open(NS_A, "stt-va")?;
    let mut b = RawPort::open(NS_B, "stt-vb")?;
    std::thread::sleep(Duration::from_millis(200));
    b.drain();
    let f = FrameBuilder::new(MAC_B, MAC_A)
        .vlan(10, 3)
        .marker(Marker::new(TEST_ID, 1))
        .build();
    a.send(&f)?;
    let got = b.recv_for(Duration::from_millis(300));
    // The kernel strips the tag on receive before packet sockets see the
    // frame; what must hold is that the frame arrives with its marker.
    let n = got
        .iter()
        .filter(|f| Marker::in_frame(f).is_some_and(|m| m.test_id == TEST_ID && m.seq == 1))
        .count();
    if n != 1 {
        return Err(format!("want the tagged frame once at b, got {n}").into());
    }
    Ok(())
}

fn runt_is_refused_by_kernel() -> Result<(), Failed> {
    // Documents what the e2e suite relies on: an AF_PACKET socket cannot
    // send a frame shorter than the Ethernet header.
    let _pair = Pair::new()?;
    let mut a = RawPort::open(NS_A, "stt-va")?;
    match a.send(&[0u8; 10]) {
        Err(_) => Ok(()),
        Ok(()) => {
            println!("note: the kernel accepted a 10-byte frame");
            Ok(())
        }
    }
}

fn prerequisites() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root (namespaces and AF_PACKET need it)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("`ip` not found".into());
    }
    Ok(())
}

type TestFn = fn() -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let skip = prerequisites().err();
    let tests: Vec<(&str, TestFn)> = vec![
        ("veth_round_trip", veth_round_trip),
        ("tagged_frame_goes_out", tagged_frame_goes_out),
        ("runt_is_refused_by_kernel", runt_is_refused_by_kernel),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| match &skip {
            Some(reason) => {
                println!("skipped: {name}: {reason}");
                Trial::test(name, || Ok(())).with_ignored_flag(true)
            }
            None => Trial::test(name, f),
        })
        .collect();
    // The tests share the two namespaces: one at a time.
    let mut args = args;
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials).exit();
}
