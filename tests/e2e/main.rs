//! End-to-end tests of shunt: real network namespaces, TAP ports, real
//! frames and real `ping`, against the `shunt` binary of this build.
//!
//! Run: `cargo test -p shunt --test e2e` (root needed). Filters and
//! `--test-threads` work as usual. When a prerequisite is missing (root,
//! /dev/net/tun, `ip`, `ping`) every test is reported ignored and a line
//! `skipped: <test>: <reason>` is printed for each: never "passed".
//!
//! Each test uses names of its own (see harness.rs) and cleans up after
//! itself also when it fails or panics.

mod bench;
mod capture;
mod ctl;
mod dns;
mod faults;
mod fdb_dump;
mod flood;
mod guard;
mod handoff;
mod harness;
mod impair;
mod l2;
mod macvlan;
mod mcast;
mod mirror;
mod mixed;
mod offload;
mod offload_veth;
mod poll;
mod queues;
mod stp;
mod trace;
mod vlan;
mod vxlan;

use libtest_mimic::{Arguments, Trial};

/// A trial: its name, its body, and why it cannot run here (if so).
type Case = (
    String,
    Box<dyn FnOnce() -> harness::TestResult + Send>,
    Option<String>,
);

fn main() {
    let args = Arguments::from_args();
    let skip = harness::prerequisites().err();
    let skip_xdp = skip.clone().or_else(|| afxdp_available().err());
    let mut tests: Vec<Case> = Vec::new();
    // The foundation's behaviour suite, once per port kind and worker count.
    for v in harness::VARIANTS {
        for (name, test) in l2::tests() {
            let why = if v.afxdp() {
                skip_xdp.clone()
            } else {
                skip.clone()
            };
            tests.push((
                format!("{name}{}", v.label()),
                Box::new(move || {
                    harness::set_variant(v);
                    test()
                }),
                why,
            ));
        }
    }
    for (name, test) in dns::tests()
        .into_iter()
        .chain(ctl::tests())
        .chain(fdb_dump::tests())
        .chain(handoff::tests())
        .chain(vlan::tests())
        .chain(macvlan::tests())
        .chain(mcast::tests())
        .chain(trace::tests())
        .chain(capture::tests())
        .chain(vxlan::tests())
        .chain(offload::tests())
        .chain(impair::tests())
        .chain(queues::tests())
        .chain(poll::tests())
        .chain(guard::tests())
        .chain(flood::tests())
        .chain(faults::tests())
        .chain(mirror::tests())
        .chain(bench::tests())
    {
        tests.push((name.to_string(), Box::new(test), skip.clone()));
    }
    // These need AF_XDP as well. The DNS suite again with its hosts on
    // veths (AF_XDP) under two workers (frames into and out of the host
    // stack cross the UMEM by copies), and the trace of a learned unicast,
    // a flood and a drop (the trace must not depend on where a frame's bytes
    // live). (trace::host_stack_frames has a topology of its own.)
    let v = harness::VARIANTS[3];
    let traced_unicast = trace::tests()
        .into_iter()
        .filter(|(n, _)| *n == "trace::unicast_flood_drop");
    // Mirror copies between AF_XDP ports of two workers (the hand-over,
    // UMEM frames as copies).
    let mirrored = mirror::tests().into_iter().filter(|(n, _)| {
        *n == "mirror::monitor_sees_each_ping_once"
            || *n == "mirror::a_slow_destination_loses_copies_not_frames"
    });
    for (name, test) in dns::tests()
        .into_iter()
        .chain(traced_unicast)
        .chain(mirrored)
    {
        tests.push((
            format!("{name}{}", v.label()),
            Box::new(move || {
                harness::set_variant(v);
                test()
            }),
            skip_xdp.clone(),
        ));
    }
    // veth hosts with their offloads (packet sockets: no AF_XDP needed).
    let skip_offload = skip.clone().or_else(|| offload_veth::prerequisites().err());
    for (name, test) in offload_veth::tests() {
        tests.push((name.to_string(), Box::new(test), skip_offload.clone()));
    }
    for (name, test) in mixed::tests()
        .into_iter()
        .chain(vlan::afxdp_tests())
        .chain(vxlan::afxdp_tests())
        .chain(offload::afxdp_tests())
        .chain(impair::afxdp_tests())
        .chain(handoff::afxdp_tests())
        .chain(poll::afxdp_tests())
        .chain(queues::afxdp_tests())
    {
        tests.push((name.to_string(), Box::new(test), skip_xdp.clone()));
    }
    // `shunt bench --vs-ovs`: Open vSwitch beside shunt.
    let skip_ovs = skip.clone().or_else(|| bench::ovs_prerequisites().err());
    for (name, test) in bench::ovs_tests() {
        tests.push((name.to_string(), Box::new(test), skip_ovs.clone()));
    }
    // Spanning tree against the kernel bridge's STP (packet ports on veths).
    let skip_stp = skip.clone().or_else(|| stp::prerequisites().err());
    for (name, test) in stp::tests() {
        tests.push((name.to_string(), Box::new(test), skip_stp.clone()));
    }
    let trials = tests
        .into_iter()
        .map(|(name, test, why)| match why {
            Some(reason) => {
                println!("skipped: {name}: {reason}");
                Trial::test(name, move || Err(format!("skipped: {reason}").into()))
                    .with_ignored_flag(true)
            }
            None => {
                let alone = ALONE.iter().any(|p| name.starts_with(p));
                Trial::test(name, move || {
                    // A test that times the switch runs with nothing else
                    // beside it; every other test shares the machine.
                    let _alone = alone.then(|| TURNS.write().unwrap_or_else(|e| e.into_inner()));
                    let _shared = (!alone).then(|| TURNS.read().unwrap_or_else(|e| e.into_inner()));
                    test()
                })
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Tests that measure time (a delay to within 2 ms, a rate to within 5%)
/// or that keep both cores busy on purpose (a busy-polling switch): each
/// runs alone. On this 2-core machine, CI's parallel tests once made a
/// 20 ms delay look 21 ms each way (a worker waiting for a core), and a
/// busy-polling switch takes both cores from whatever runs beside it.
const ALONE: &[&str] = &[
    "impair::delay_adds_to_the_rtt",
    "impair::change_at_run_time_keeps_queued_frames",
    "impair::rate_limits_tcp_and_udp",
    "poll::busy_",
    // A flood that keeps both cores busy.
    "capture::flood_",
    // iperf3 through the bridge and through shunt.
    "bench::",
];

/// Whose turn it is: the tests in [`ALONE`] take it for themselves.
static TURNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// AF_XDP on a veth of our own: the variants that need it are skipped when
/// the kernel cannot give it.
fn afxdp_available() -> Result<(), String> {
    use shunt_switch::config::XdpMode;
    use shunt_switch::port::{AfXdpPort, SharedUmem};
    let a = format!("shxprobe{}", std::process::id() % 100000);
    let b = format!("{a}b");
    harness::run(
        "ip",
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    )?;
    let result = (|| {
        harness::run("ip", &["link", "set", &a, "up"])?;
        harness::run("ip", &["link", "set", &b, "up"])?;
        let umem = SharedUmem::new(1).map_err(|e| format!("AF_XDP UMEM: {e}"))?;
        AfXdpPort::open(&a, XdpMode::Generic, &umem)
            .map(|_| ())
            .map_err(|e| format!("AF_XDP unavailable: {e}"))
    })();
    let _ = harness::run("ip", &["link", "del", &a]);
    result
}
