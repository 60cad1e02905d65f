//! The threads of a running switch beside its workers: the switch's own
//! stack, the FDB ager, the link monitor, the control socket and the
//! signal thread.

use super::UpError;
use crate::config::PortKind;
use crate::ids::PortId;
use crate::runtime::Runtime;
use crate::worker::Worker;
use std::os::unix::net::UnixListener;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Starts thread `name`; `what` says what it is if it cannot start.
fn spawn<T: Send + 'static>(
    name: &str,
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, UpError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|source| UpError::Thread { what, source })
}

/// The workers, each pinned to a core (round robin) where cores are known.
pub(super) fn workers(rt: &Arc<Runtime>, n: usize) -> Result<Vec<JoinHandle<()>>, UpError> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    (0..n)
        .map(|w| {
            let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
            let worker = Worker::new(w, Arc::clone(rt), core);
            spawn(&format!("shunt-w{w}"), "a worker", move || worker.run())
        })
        .collect()
}

/// The switch's stack and the VXLAN underlay's thread, when there is a
/// stack.
pub(super) fn stack(rt: &Arc<Runtime>) -> Result<Vec<JoinHandle<()>>, UpError> {
    let Some(link) = &rt.stack else {
        return Ok(Vec::new());
    };
    let cfg = crate::stack::iface::HostConfig::from_topology(&rt.topo());
    let rt2 = Arc::clone(rt);
    let h = crate::stack::iface::spawn(Arc::clone(link), cfg, move || rt2.stop.load(Relaxed))
        .map_err(|source| UpError::Thread {
            what: "the switch's stack",
            source,
        })?;
    let rt2 = Arc::clone(rt);
    let ul = crate::stack::underlay::spawn(Arc::clone(link), move || rt2.stop.load(Relaxed))
        .map_err(|source| UpError::Thread {
            what: "the VXLAN underlay thread",
            source,
        })?;
    Ok(std::iter::once(h).chain(ul).collect())
}

/// The L2 control thread (l2/) with the protocols the topology asks for;
/// none when it asks for none.
pub(super) fn l2(rt: &Arc<Runtime>) -> Result<Option<JoinHandle<()>>, UpError> {
    let Some(link) = &rt.l2 else {
        return Ok(None);
    };
    let mut reg = crate::l2::Registry::new(Arc::clone(link));
    // Protocols are added here: reg.add(Box::new(...)).
    if let Some(stp) = &rt.stp {
        reg.add(Box::new(rstp(rt, stp)));
    }
    let snoop = super::snoop::protocol(rt, link);
    if snoop.any() {
        reg.add(Box::new(snoop));
    }
    if reg.is_empty() {
        return Ok(None);
    }
    let (rt1, rt2) = (Arc::clone(rt), Arc::clone(rt));
    crate::l2::spawn(reg, move || rt1.now_ms(), move || rt2.stop.load(Relaxed))
        .map(Some)
        .map_err(|source| UpError::Thread {
            what: "the L2 control thread",
            source,
        })
}

/// Spanning tree (stp/) as an l2 protocol: links as the workers see
/// them, flushes into the FDB.
fn rstp(rt: &Arc<Runtime>, stp: &Arc<crate::stp::glue::Shared>) -> crate::stp::protocol::Rstp {
    let (r1, r2) = (Arc::clone(rt), Arc::clone(rt));
    let p = crate::stp::protocol::Rstp::new(
        Arc::clone(stp),
        rt.now_ms(),
        Box::new(move |p: PortId| {
            r1.port_up.get(p.index()).is_some_and(|u| u.load(Relaxed))
                && !r1.impair.is_down(p.index())
        }),
        Box::new(move |p: PortId| r2.fdb.flush_port(crate::ids::Egress::Port(p).encode())),
    );
    p.publish_states();
    p
}

/// Ageing beside the workers, never stopping them.
pub(super) fn ager(rt: &Arc<Runtime>, aging_secs: u64) -> Result<(), UpError> {
    let rt = Arc::clone(rt);
    let every = Duration::from_millis((aging_secs * 1000 / 4).clamp(100, 1000));
    spawn("shunt-ager", "the ager", move || {
        while !rt.stop.load(Relaxed) {
            std::thread::sleep(every);
            rt.fdb.age(rt.now_ms());
        }
    })
    .map(drop)
}

/// An AF_XDP socket says nothing when its interface goes away (a host's
/// namespace deleted takes its veth with it): watch the links instead.
pub(super) fn link_monitor(rt: &Arc<Runtime>) -> Result<(), UpError> {
    let rt = Arc::clone(rt);
    spawn("shunt-links", "the link monitor", move || {
        while !rt.stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let gone: Vec<(PortId, String)> = {
                let topo = rt.topo();
                topo.ports
                    .iter()
                    .enumerate()
                    .filter(|(i, p)| {
                        !p.removed
                            && matches!(p.kind, PortKind::Afxdp | PortKind::Packet)
                            && rt.port_up[*i].load(Relaxed)
                    })
                    .filter_map(|(i, p)| {
                        Some((
                            PortId::new(i)?,
                            p.outer.clone().unwrap_or_else(|| p.interface.clone()),
                        ))
                    })
                    .filter(|(_, ifname)| {
                        !std::path::Path::new("/sys/class/net").join(ifname).exists()
                    })
                    .collect()
            };
            for (p, ifname) in gone {
                rt.port_gone(p, &format!("interface {ifname} went away"));
            }
        }
    })
    .map(drop)
}

/// The control socket's server.
pub(super) fn control(
    rt: &Arc<Runtime>,
    listener: UnixListener,
    stop: Sender<()>,
) -> Result<(), UpError> {
    let rt = Arc::clone(rt);
    spawn("shunt-control", "the control socket", move || {
        super::requests::serve(listener, rt, stop)
    })
    .map(drop)
}

/// Waits for SIGINT or SIGTERM (blocked in every other thread) and says
/// stop.
pub(super) fn signals(sigs: nix::sys::signal::SigSet, stop: Sender<()>) -> Result<(), UpError> {
    spawn("shunt-signals", "the signal thread", move || {
        if let Ok(sig) = sigs.wait() {
            crate::say!("shunt: {sig:?}: stopping");
        }
        let _ = stop.send(());
    })
    .map(drop)
}
