//! The answers to the control requests that read the running switch:
//! ports, FDB, counters, DNS names, and the live trace.

use super::proto::{
    FdbEntry, FdbUsage, HandoffStats, ImpairInfo, ImpairStats, PacketKernel, PortInfo, PortStats,
    Stats, TapKernel, TraceEnd, TraceStart, Umem, VtepStats,
};
use crate::config::PortMode;
use crate::counters::{sum_port, DropReason, FloodCause, PortTotals};
use crate::ids::{Egress, NetId, PortId, VtepId};
use crate::runtime::Runtime;
use shunt_parsers::MacAddr;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Why a request could not be answered; said to the client.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("no network named {0:?}")]
    NoNetwork(String),
    #[error("no port or host named {0:?}")]
    NoPort(String),
    #[error("a trace is already running on this switch")]
    TraceBusy,
    #[error("{0:?} is not a MAC address")]
    BadMac(String),
}

/// Port names a user may give: a port name, or a host name meaning all of
/// that host's ports.
pub fn resolve_ports(rt: &Runtime, name: &str) -> Vec<u16> {
    let plan = rt.plan.load();
    let exact: Vec<u16> = plan
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name == name)
        .map(|(i, _)| i as u16)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let prefix = format!("{name}.");
    plan.ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name.starts_with(&prefix))
        .map(|(i, _)| i as u16)
        .collect()
}

/// Port `i`'s counters summed over the workers.
fn port_totals(rt: &Runtime, i: usize) -> PortTotals {
    PortId::new(i)
        .map(|p| sum_port(&rt.counters, p.into()))
        .unwrap_or_default()
}

/// `shunt ports --json`.
pub fn ports(rt: &Runtime) -> Vec<PortInfo> {
    let topo = rt.topo();
    let net = |n: usize| topo.networks[n].name.clone();
    let imp = rt.impair.ports.load();
    topo.ports
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.removed)
        .map(|(i, p)| {
            let t = port_totals(rt, i);
            let (mode, networks, native, vlans) = match &p.mode {
                PortMode::Access { network } => ("access", vec![net(*network)], None, vec![]),
                PortMode::Trunk { allowed, native } => (
                    "trunk",
                    allowed.iter().map(|&n| net(n)).collect(),
                    native.map(net),
                    allowed
                        .iter()
                        .filter_map(|&n| topo.networks[n].vlan)
                        .collect(),
                ),
            };
            let underlay = topo.vtep.as_ref().is_some_and(|v| v.port == i);
            PortInfo {
                name: p.name.clone(),
                kind: p.kind.as_str().to_string(),
                // An id an AF_XDP port had may now be a TAP's.
                xdp_mode: (rt.port_kind[i].load() == Some(crate::port::Kind::AfXdp))
                    .then(|| rt.xdp_mode.get(i).copied().flatten())
                    .flatten()
                    .map(str::to_string),
                worker: rt.port_worker.get(i).map(|w| w.load(Relaxed)).unwrap_or(0),
                mode: if underlay { "underlay" } else { mode }.to_string(),
                up: rt.port_up[i].load(Relaxed) && !rt.impair.is_down(i),
                link_down: rt.impair.is_down(i),
                impair: imp.get(i).and_then(impair_info),
                networks,
                native,
                vlans,
                host: p.host.clone(),
                namespace: p.netns.clone(),
                interface: p.interface.clone(),
                mtu: p.mtu,
                rx_frames: t.rx_frames,
                tx_frames: t.tx_frames,
                queues: match rt.port_kind[i].load() {
                    Some(crate::port::Kind::Tap) => {
                        rt.taps[i].load().as_deref().map_or(1, |t| t.queues())
                    }
                    Some(crate::port::Kind::AfXdp) => {
                        rt.xdp_queues.get(i).map_or(1, |&q| usize::from(q.max(1)))
                    }
                    _ => 1,
                },
                mirror_destination: topo
                    .mirror
                    .iter()
                    .find(|m| m.destination == i)
                    .map(|m| m.name.clone()),
            }
        })
        .collect()
}

/// `shunt fdb --json`, of one network or all, collected (tests and small
/// tables; the server streams [`fdb_rows`] with `control::send_list`).
pub fn fdb(rt: &Runtime, network: Option<&str>) -> Result<Vec<FdbEntry>, AnswerError> {
    Ok(fdb_rows(rt, network)?.iter().collect())
}

/// What `shunt fdb --json` lists, ready to be encoded one entry at a time:
/// the table's entries as the table stores them (24 bytes each, not the
/// answer's kilobyte), and the names to give them.
pub struct FdbRows {
    entries: Vec<(u16, [u8; 6], shunt_tables::Entry)>,
    /// Each network's name and VLAN, by index.
    networks: Vec<(String, Option<u16>)>,
    plan: std::sync::Arc<crate::pipeline::Plan>,
    now_ms: u64,
}

/// The FDB's entries of one network or all, sorted by (network, MAC).
/// The topology is locked only to copy the networks' names: a request
/// that waits for it (`stats`, an attach) does not wait for the walk of
/// the table, nor for the answer to be written.
pub fn fdb_rows(rt: &Runtime, network: Option<&str>) -> Result<FdbRows, AnswerError> {
    let (filter, networks) = {
        let topo = rt.topo();
        let filter = match network {
            Some(n) => Some(
                topo.network_index(n)
                    .ok_or_else(|| AnswerError::NoNetwork(n.to_string()))? as u16,
            ),
            None => None,
        };
        let networks: Vec<(String, Option<u16>)> = topo
            .networks
            .iter()
            .map(|n| (n.name.clone(), n.vlan))
            .collect();
        (filter, networks)
    };
    let plan = rt.plan.load_full();
    let now_ms = rt.now_ms();
    // Fdb::entries sorts by (network, MAC).
    let mut entries = rt.fdb.entries();
    entries.retain(|(net, _, _)| filter.is_none_or(|f| f == *net));
    Ok(FdbRows {
        entries,
        networks,
        plan,
        now_ms,
    })
}

impl FdbRows {
    /// The entries as the answer lists them, each made when it is asked
    /// for. Those of the switch's own stack are not listed.
    pub fn iter(&self) -> impl Iterator<Item = FdbEntry> + '_ {
        self.entries.iter().filter_map(|(net, mac, e)| {
            let (name, vlan) = self.networks.get(*net as usize)?;
            let port = match Egress::decode(e.port)? {
                Egress::Port(p) => self.plan.ports.get(p.index())?.name.clone(),
                // Learned behind a remote VTEP.
                Egress::Vtep(k) => format!("vxlan:{}", self.plan.vxlan.as_ref()?.remote(k)?),
                Egress::Stack => return None,
            };
            Some(FdbEntry {
                network: name.clone(),
                vlan: *vlan,
                mac: MacAddr(*mac).to_string(),
                port,
                is_static: e.is_static,
                age_secs: if e.is_static {
                    0.0
                } else {
                    self.now_ms.saturating_sub(e.last_seen_ms) as f64 / 1000.0
                },
            })
        })
    }
}

/// `fdb_delete`: whether there was an entry to forget.
pub fn fdb_delete(rt: &Runtime, network: &str, mac: &str) -> Result<bool, AnswerError> {
    let ni = rt
        .topo()
        .network_index(network)
        .ok_or_else(|| AnswerError::NoNetwork(network.to_string()))?;
    let m: MacAddr = mac
        .parse()
        .map_err(|_| AnswerError::BadMac(mac.to_string()))?;
    Ok(rt.fdb.remove(ni as u16, m.as_bytes()))
}

/// `shunt dns --json`: the names the switch's DNS responder serves, as
/// the stack lists them (rows of proto::DnsName).
pub fn dns(rt: &Runtime, network: Option<&str>) -> Result<serde_json::Value, AnswerError> {
    // The stack's only refusal is a network it does not know.
    crate::stack::dns_json(rt.stack.as_deref(), network)
        .map_err(|_| AnswerError::NoNetwork(network.unwrap_or_default().to_string()))
}

/// Drops by reason, every reason listed (`all`) or only those that
/// happened; each is added to `total`.
fn drops(t: &PortTotals, total: &mut [u64; DropReason::COUNT], all: bool) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in DropReason::ALL {
        let n = t.drops[*r as usize];
        total[*r as usize] += n;
        if all || n > 0 {
            out.insert(r.name().to_string(), n);
        }
    }
    out
}

/// `shunt stats --json`.
pub fn stats(rt: &Runtime) -> Stats {
    let mut ports = BTreeMap::new();
    let mut total = [0u64; DropReason::COUNT];
    // A copy, so that the TAPs' kernel counters (a thread into each host's
    // namespace) are read with the topology unlocked.
    let topo = rt.topo().clone();
    let taps = tap_kernel_counters(rt, &topo);
    for (i, p) in topo.ports.iter().enumerate() {
        if p.removed {
            continue;
        }
        let t = port_totals(rt, i);
        let flooded = FloodCause::ALL
            .iter()
            .map(|&c| (c.name().to_string(), t.flooded[c as usize]))
            .collect();
        ports.insert(
            p.name.clone(),
            PortStats {
                rx_frames: t.rx_frames,
                rx_by_worker: PortId::new(i).map_or_else(Vec::new, |p| {
                    rt.counters
                        .iter()
                        .map(|w| w.port(p.into()).rx_frames.get())
                        .collect()
                }),
                tx_frames: t.tx_frames,
                rx_bytes: t.rx_bytes,
                tx_bytes: t.tx_bytes,
                tx_zero_copy: t.tx_zero_copy,
                offload: t.offload,
                flooded,
                drops: drops(&t, &mut total, true),
                learned: t.learned,
                moved: t.moved,
                mirror: t.mirror,
                up: rt.port_up[i].load(Relaxed),
                afxdp: (rt.port_kind[i].load() == Some(crate::port::Kind::AfXdp))
                    .then(|| rt.xdp_stats[i].json()),
                tap: taps.get(&i).copied(),
                impair: impair_stats(rt, i),
                packet: packet_kernel_counters(rt, i),
            },
        );
    }
    let vteps = vteps(rt, &mut total);
    let drops = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), total[*r as usize]))
        .collect();
    Stats {
        umem: umem(rt),
        vteps,
        ports,
        drops,
        fdb: FdbUsage {
            entries: rt.fdb.len() as u64,
            capacity: topo.switch.fdb_max_entries as u64,
        },
        trace_lost: rt.tracer.lost.load(Relaxed),
        handoff: handoff(rt),
        workers: rt
            .counters
            .iter()
            .map(|w| super::proto::WorkerStats {
                rx_frames: PortId::all()
                    .map(|p| w.port(p.into()).rx_frames.get())
                    .sum(),
                batches: w.batches.get(),
            })
            .collect(),
        l2: rt.l2.as_ref().map(|l| l.stats_json()),
        stp: rt.stp.as_ref().map(|s| s.stats_json()),
        host: rt.stack.as_ref().map(|h| {
            h.stats_json(|i| {
                topo.networks
                    .get(i)
                    .map(|n| n.name.clone())
                    .unwrap_or_default()
            })
        }),
        mac_flap: Some(rt.guard.flap.report(rt.now_ms())),
    }
}

/// A port's impairment in words, None without any.
fn impair_info(p: &crate::impair::PortImpair) -> Option<ImpairInfo> {
    if p.egress.is_none() && p.ingress.is_none() && p.flap.is_none() {
        return None;
    }
    use crate::impair::values::show_ns;
    Some(ImpairInfo {
        egress: p.egress.map(|s| s.describe()),
        ingress: p.ingress.map(|s| s.describe()),
        flap: p.flap.map(|f| {
            format!(
                "every {} down for {}",
                show_ns(f.every_ns),
                show_ns(f.down_for_ns)
            )
        }),
    })
}

/// What port `i`'s impairment did, None when nothing ever happened.
fn impair_stats(rt: &Runtime, i: usize) -> Option<ImpairStats> {
    use crate::impair::line_index;
    let s = ImpairStats {
        egress: rt.impair.totals(line_index(i, true)),
        ingress: rt.impair.totals(line_index(i, false)),
    };
    let had = rt
        .impair
        .ports
        .load()
        .get(i)
        .is_some_and(|p| p.egress.is_some() || p.ingress.is_some());
    (had || !s.egress.is_zero() || !s.ingress.is_zero()).then_some(s)
}

/// Per ordered pair of workers: what the first handed over to the second.
fn handoff(rt: &Runtime) -> Vec<HandoffStats> {
    let mut out = Vec::new();
    for (from, w) in rt.counters.iter().enumerate() {
        for to in 0..rt.counters.len() {
            let (Some(c), Some(q)) = (w.handoff(to), rt.handoff[from].get(to)) else {
                continue;
            };
            if from != to {
                out.push(HandoffStats {
                    from,
                    to,
                    frames: c.frames.get(),
                    full: c.full.get(),
                    held_back: c.held_back.get(),
                    queued: q.len() as u64,
                });
            }
        }
    }
    out
}

/// The kernel's counters of packet port `i`'s socket, if it is one.
fn packet_kernel_counters(rt: &Runtime, i: usize) -> Option<PacketKernel> {
    let st = rt.packets.get(i)?.load().as_deref()?.stats().ok()?;
    Some(PacketKernel {
        rx_packets: st.packets,
        rx_dropped: st.drops,
    })
}

/// The kernel's counters of the TAP ports, by port index: one read of
/// /proc/net/dev per namespace the TAPs live in.
fn tap_kernel_counters(
    rt: &Runtime,
    topo: &crate::config::Topology,
) -> std::collections::HashMap<usize, TapKernel> {
    let mut by_ns: BTreeMap<Option<&str>, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, p) in topo.ports.iter().enumerate() {
        if !p.removed && rt.port_kind[i].load() == Some(crate::port::Kind::Tap) {
            by_ns
                .entry(p.netns.as_deref())
                .or_default()
                .push((i, p.interface.as_str()));
        }
    }
    let read = || std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    let mut out = std::collections::HashMap::new();
    for (ns, ports) in by_ns {
        let text = match ns {
            Some(ns) => crate::netns::in_netns(ns, read).unwrap_or_default(),
            None => read(),
        };
        for (i, ifname) in ports {
            if let Some(k) = proc_net_dev(&text, ifname) {
                out.insert(i, k);
            }
        }
    }
    out
}

/// The counters of `ifname` in the text of /proc/net/dev ("  eth0: rx
/// bytes, packets, errs, drop, ... | tx bytes, packets, errs, drop, ...").
fn proc_net_dev(text: &str, ifname: &str) -> Option<TapKernel> {
    text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(TapKernel {
            rx_packets: at(1),
            rx_dropped: at(3),
            tx_packets: at(9),
            tx_dropped: at(11),
        })
    })
}

/// Where the AF_XDP frames are (None without AF_XDP ports). When the
/// switch is idle, `frames` = `pool` + `cached` + `in_kernel`; during
/// traffic the rest are in batches and hand-over queues.
fn umem(rt: &Runtime) -> Option<Umem> {
    let u = rt.umem.as_ref()?;
    Some(Umem {
        frames: u.frames() as u64,
        pool: u.free_frames() as u64,
        cached: rt.xdp_stats.iter().map(|c| c.cached()).sum(),
        in_kernel: u.lent_frames() as u64,
    })
}

/// Per remote VTEP address: what went to it and came from it, its next
/// hop, and the drops of frames towards it (added to `total`).
fn vteps(rt: &Runtime, total: &mut [u64; DropReason::COUNT]) -> BTreeMap<String, VtepStats> {
    let plan = rt.plan.load();
    let Some(v) = plan.vxlan.as_ref() else {
        return BTreeMap::new();
    };
    let ul = rt.stack.as_deref().and_then(|h| h.underlay.as_ref());
    let mut out = BTreeMap::new();
    for (k, ip) in v.remotes.iter().enumerate() {
        let Some(id) = VtepId::new(k) else { continue };
        let t = sum_port(&rt.counters, Egress::Vtep(id));
        out.insert(
            ip.to_string(),
            VtepStats {
                rx_frames: t.rx_frames,
                tx_frames: t.tx_frames,
                rx_bytes: t.rx_bytes,
                tx_bytes: t.tx_bytes,
                learned: t.learned,
                offload: t.offload,
                drops: drops(&t, total, false),
                nexthop: ul.and_then(|u| u.nexthop_of(*ip)).map(|a| a.to_string()),
                nexthop_mac: ul
                    .and_then(|u| u.nexthop_mac(k))
                    .map(|m| MacAddr(m).to_string()),
            },
        );
    }
    out
}

/// A network's name, as the trace says it.
pub fn net_name(rt: &Runtime, n: NetId) -> String {
    rt.plan
        .load()
        .nets
        .get(n.index())
        .map(|x| x.name.clone())
        .unwrap_or_else(|| format!("net{}", n.index()))
}

/// `trace`: streams a record per frame that `filter` selects on `ports`
/// to `out` until `count` frames, `seconds`, the client going away, or
/// the switch stopping.
pub fn trace(
    out: &mut std::os::unix::net::UnixStream,
    rt: &Runtime,
    (filter, ports): (crate::pipeline::capture::Filter, Vec<PortId>),
    count: Option<u64>,
    seconds: Option<f64>,
) -> std::io::Result<()> {
    let count = count.unwrap_or(u64::MAX);
    rt.tracer.start(&ports, filter);
    // Whatever number a client sends: too large means no deadline.
    let deadline = seconds
        .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
        .and_then(|d| Instant::now().checked_add(d));
    let port_name = |p: Egress| rt.port_name(p);
    let net_name = |n: NetId| net_name(rt, n);
    let mut sent = 0u64;
    let result = (|| -> std::io::Result<()> {
        // Tells a client that went away from one that is waiting.
        out.set_write_timeout(Some(Duration::from_secs(5)))?;
        super::send(out, &TraceStart { tracing: true })?;
        while sent < count && !rt.stop.load(Relaxed) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match rt.tracer.pop() {
                Some(r) => {
                    let line = crate::trace::describe(&r, &port_name, &net_name);
                    super::send(out, &line)?;
                    sent += 1;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        super::send(
            out,
            &TraceEnd {
                end: true,
                frames: sent,
            },
        )
    })();
    rt.tracer.stop();
    result
}

/// `shunt stp --json` (docs/stp.md): the bridge, the root, each port's
/// role and state; the same shape without ports when spanning tree is off.
pub fn stp(rt: &Runtime) -> serde_json::Value {
    match &rt.stp {
        Some(s) => s.json(),
        None => crate::stp::glue::off_json(&rt.name, rt.topo().switch.stp.priority),
    }
}

#[cfg(test)]
mod tests {
    use super::proc_net_dev;
    use crate::control::proto::TapKernel;

    #[test]
    fn reads_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 9860150  121093    0    7    0     0          0         0 183120464  121170    0 42763    0     0       0          0
";
        assert_eq!(
            proc_net_dev(text, "eth0"),
            Some(TapKernel {
                rx_packets: 121093,
                rx_dropped: 7,
                tx_packets: 121170,
                tx_dropped: 42763,
            })
        );
        assert_eq!(proc_net_dev(text, "eth1"), None);
    }
}
