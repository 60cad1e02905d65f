//! Traffic that crosses workers (issue 18): one TCP stream between hosts
//! whose ports two different workers receive from. Over AF_XDP ports the
//! frames cross by the hand-over queue, which pushes back instead of
//! dropping; over TAPs the losses that remain are the kernel's, at the
//! TAP's queue, and `shunt stats` shows them as the kernel counts them.
//! (Rates across and within one worker: perf/crossworker.py, whose figures
//! are in docs/reliability.md.)

use crate::ensure;
use crate::harness::{iperf3_tcp, run, run_id, Switch, TestResult};
use crate::l2::Test;

pub fn afxdp_tests() -> Vec<Test> {
    vec![(
        "handoff::tcp_across_workers_is_not_dropped",
        tcp_across_workers_is_not_dropped,
    )]
}

pub fn tests() -> Vec<Test> {
    vec![(
        "handoff::tap_queue_drops_are_the_kernels",
        tap_queue_drops_are_the_kernels,
    )]
}

/// Two workers, hosts a and b on "lan" (ports 0 and 1: workers 0 and 1),
/// each host with `extra` lines.
fn toml(sw: &str, subnet: u8, extra: &str) -> String {
    let mut t = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 2\n[[network]]\nname = \"lan\"\nsubnet = \"10.75.{subnet}.0/24\"\naddress = \"10.75.{subnet}.1\"\n"
    );
    for h in ["a", "b"] {
        t += &format!("[[host]]\nname = \"{sw}{h}\"\nnetworks = [\"lan\"]\n{extra}");
    }
    t
}

fn tcp_across_workers_is_not_dropped() -> TestResult {
    let sw = format!("sh8{:03}", run_id());
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let cfg = toml(&sw, 8, "link = \"veth\"\nveth_attach = \"afxdp\"\n");
    let s = Switch::up_toml(&sw, &cfg, &[a.clone(), b.clone()])?;
    let workers: Vec<usize> = s.ports()?.iter().map(|p| p.worker).collect();
    ensure!(
        workers == [0, 1],
        "ports on workers {workers:?}, not [0, 1]"
    );
    let bps = iperf3_tcp(&b, "10.75.8.3", &a, 4)?;
    let st = s.stats()?;
    let to_b = st
        .typed
        .handoff
        .iter()
        .find(|h| (h.from, h.to) == (0, 1))
        .copied()
        .ok_or("no hand-over 0 -> 1 in `shunt stats --json`")?;
    eprintln!(
        "handoff: {:.2} Gbit/s across workers; 0 -> 1: {to_b:?}",
        bps / 1e9
    );
    ensure!(bps > 0.0, "iperf3 moved nothing");
    ensure!(
        to_b.frames > 10_000,
        "only {} frames handed over to worker 1",
        to_b.frames
    );
    ensure!(
        st.drop("handoff_full") == 0 && to_b.full == 0,
        "frames dropped at the hand-over: handoff_full {}, {to_b:?}",
        st.drop("handoff_full")
    );
    Ok(())
}

/// The kernel's `tx_dropped` of `eth0` in namespace `ns`, and its
/// txqueuelen.
fn tx_dropped_and_qlen(ns: &str) -> Result<(u64, u64), String> {
    let out = run("ip", &["-n", ns, "-s", "-j", "link", "show", "dev", "eth0"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("ip -j link: {e}: {out}"))?;
    let d = v[0]["stats64"]["tx"]["dropped"].as_u64();
    let q = v[0]["txqlen"].as_u64();
    d.zip(q)
        .ok_or_else(|| format!("no tx dropped / txqlen: {out}"))
}

fn tap_queue_drops_are_the_kernels() -> TestResult {
    let sw = format!("sh9{:03}", run_id());
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let s = Switch::up_toml(&sw, &toml(&sw, 9, ""), &[a.clone(), b.clone()])?;
    let (_, qlen) = tx_dropped_and_qlen(&a)?;
    ensure!(qlen == 4096, "the TAP's txqueuelen is {qlen}, not 4096");
    // A small queue, so that the stream overflows it for sure.
    run(
        "ip",
        &["-n", &a, "link", "set", "dev", "eth0", "txqueuelen", "16"],
    )?;
    let bps = iperf3_tcp(&b, "10.75.9.3", &a, 3)?;
    let (kernel, _) = tx_dropped_and_qlen(&a)?;
    let st = s.stats()?;
    let tap = st
        .typed
        .ports
        .get(&format!("{a}.lan"))
        .and_then(|p| p.tap)
        .ok_or("no `tap` counters for the TAP port")?;
    eprintln!(
        "handoff: {:.2} Gbit/s with txqueuelen 16: kernel tx_dropped {kernel}, shunt says {tap:?}",
        bps / 1e9
    );
    ensure!(kernel > 0, "a queue of 16 dropped nothing");
    ensure!(
        tap.tx_dropped == kernel,
        "shunt says the TAP dropped {}, the kernel {kernel}",
        tap.tx_dropped
    );
    Ok(())
}
