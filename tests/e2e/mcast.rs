//! IGMP/MLD snooping against the Linux bridge (`mcast_snooping 1`) as the
//! reference: the same stimuli through both give the same deliveries.
//!
//! Both sides have four hosts: `s` sends, `m1` and `m2` join groups with
//! real sockets (`IP_ADD_MEMBERSHIP`, `IPV6_JOIN_GROUP` in python3: their
//! kernels send the reports and, when the socket closes, the leaves), `r`
//! joins nothing (and, in one test, sends a general query, which makes its
//! port a router port). The kernel's side is a bridge in a namespace of
//! its own with a veth per host; shunt's side is a switch with a TAP per
//! host. What each host received is counted with a packet socket (frames
//! carry a marker); the sender's own socket is not asked.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::ensure;
use crate::harness::{run, run_id, Background, Switch, TestResult};
use crate::l2::Test;
use shunt_tools::{MacAddr, Marker, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("mcast::igmp_querier_matches_bridge", igmp_querier),
        (
            "mcast::igmp_query_router_port_matches_bridge",
            igmp_router_port,
        ),
        ("mcast::mld_querier_matches_bridge", mld_querier),
    ]
}

const HOSTS: [&str; 4] = ["s", "m1", "m2", "r"];

fn host_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0, 0x5e, 0x51, 0, 0x0a + i as u8])
}

fn host_ip(tag: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 78, tag, 11 + i as u8)
}

/// Namespaces deleted on drop (the kernel side has no switch to do it).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

/// One side: label -> namespace (the interface is eth0 everywhere).
struct Side {
    ns: BTreeMap<&'static str, String>,
}

impl Side {
    fn ns(&self, label: &str) -> Result<&str, String> {
        self.ns
            .get(label)
            .map(String::as_str)
            .ok_or_else(|| format!("no host {label}"))
    }

    /// A socket of `label` joined to `group` while the value lives.
    fn join(&self, label: &str, group: &str) -> Result<Background, String> {
        let fam = if group.contains(':') { "6" } else { "4" };
        Background::spawn(
            "ip",
            &[
                "netns",
                "exec",
                self.ns(label)?,
                "python3",
                "-c",
                JOIN,
                fam,
                group,
            ],
        )
    }
}

/// Joins argv[2] (family argv[1]) on eth0 and sleeps until killed.
const JOIN: &str = r#"
import socket, struct, sys, time
fam, group = sys.argv[1], sys.argv[2]
idx = socket.if_nametoindex('eth0')
if fam == '4':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mreq = socket.inet_aton(group) + socket.inet_aton('0.0.0.0') + struct.pack('@i', idx)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack('@I', idx)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
time.sleep(3600)
"#;

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A UDP datagram with a marker from host `i` to an IPv4 group.
fn udp4(tag: u8, i: usize, g: Ipv4Addr, m: Marker) -> Vec<u8> {
    let o = g.octets();
    let mut f = vec![1, 0, 0x5e, o[1] & 0x7f, o[2], o[3]];
    f.extend_from_slice(&host_mac(i).0);
    f.extend_from_slice(&[0x08, 0x00]);
    let payload = m.to_bytes();
    let udp_len = 8 + payload.len();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 1, 17, 0, 0]);
    ip.extend_from_slice(&host_ip(tag, i).octets());
    ip.extend_from_slice(&o);
    let c = fold(sum16(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0x13, 0x89, 0x13, 0x89]);
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    f.extend_from_slice(&payload);
    f
}

/// The same to an IPv6 group, from host `i`'s link-local address.
fn udp6(i: usize, g: Ipv6Addr, m: Marker) -> Vec<u8> {
    let o = g.octets();
    let mut f = vec![0x33, 0x33, o[12], o[13], o[14], o[15]];
    f.extend_from_slice(&host_mac(i).0);
    f.extend_from_slice(&[0x86, 0xdd]);
    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x51, 0x0a + i as u16);
    let payload = m.to_bytes();
    let udp_len = (8 + payload.len()) as u16;
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[17, 1]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&o);
    let mut udp = vec![0x13, 0x89, 0x13, 0x89];
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let mut ph = Vec::new();
    ph.extend_from_slice(&src.octets());
    ph.extend_from_slice(&o);
    ph.extend_from_slice(&u32::from(udp_len).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 17]);
    let c = fold(sum16(&ph) + sum16(&udp));
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

/// Whether frame `f` carries marker `m` anywhere.
fn carries(f: &[u8], m: &Marker) -> bool {
    let b = m.to_bytes();
    f.windows(b.len()).any(|w| w == b)
}

/// A stimulus: the sender's label, a name for messages, the frame.
struct Stim {
    what: String,
    frame: Vec<u8>,
    marker: Marker,
}

/// Sends each stimulus from `s` (a few copies, 20 ms apart) and returns,
/// per stimulus, the hosts (not `s`) that received it.
fn deliveries(side: &Side, stims: &[Stim]) -> Result<Vec<Vec<&'static str>>, String> {
    let mut ports: BTreeMap<&str, RawPort> = BTreeMap::new();
    for l in HOSTS {
        let ns = side.ns(l)?;
        ports.insert(
            l,
            RawPort::open(ns, "eth0").map_err(|e| format!("{ns}/eth0: {e}"))?,
        );
    }
    for p in ports.values_mut() {
        p.drain();
    }
    for s in stims {
        for _ in 0..3 {
            ports
                .get_mut("s")
                .ok_or("no sender")?
                .send(&s.frame)
                .map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(400));
    let mut got = vec![Vec::new(); stims.len()];
    for (l, p) in ports.iter_mut().filter(|(l, _)| **l != "s") {
        let frames = p.recv_for(Duration::from_millis(50));
        for (k, s) in stims.iter().enumerate() {
            if frames.iter().any(|f| carries(f, &s.marker)) {
                got[k].push(*l);
            }
        }
    }
    Ok(got)
}

fn compare(
    what: &str,
    want: &[Vec<&str>],
    got: &[Vec<&str>],
    stims: &[Stim],
) -> Result<(), String> {
    let diffs: Vec<String> = stims
        .iter()
        .enumerate()
        .filter(|(k, _)| want[*k] != got[*k])
        .map(|(k, s)| {
            format!(
                "{what}: {}: the bridge delivered to {:?}, shunt to {:?}",
                s.what, want[k], got[k]
            )
        })
        .collect();
    match diffs.is_empty() {
        true => Ok(()),
        false => Err(diffs.join("\n")),
    }
}

/// The kernel's side: a bridge with `opts` in namespace `b`, the hosts on
/// veths, IPv4 addresses, IPv6 on.
fn kernel_side(prefix: &str, tag: u8, opts: &[&str]) -> Result<(Side, Namespaces), String> {
    let b = format!("{prefix}kb");
    let mut names = vec![b.clone()];
    let mut side = Side {
        ns: BTreeMap::new(),
    };
    for l in HOSTS {
        let n = format!("{prefix}k{l}");
        names.push(n.clone());
        side.ns.insert(l, n);
    }
    let guard = Namespaces(names.clone());
    for n in &names {
        run("ip", &["netns", "add", n])?;
        run("ip", &["-n", n, "link", "set", "lo", "up"])?;
    }
    // The bridge's link-local address usable at once (no DAD): its MLD
    // queries need a source address.
    for k in ["all", "default"] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &b,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{k}.accept_dad=0"),
            ],
        )?;
    }
    let mut add = vec!["-n", &b, "link", "add", "br0", "type", "bridge"];
    add.extend_from_slice(opts);
    run("ip", &add)?;
    for (i, l) in HOSTS.iter().enumerate() {
        let ns = side.ns(l)?.to_string();
        let v = format!("v{l}");
        run(
            "ip",
            &[
                "-n", &b, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run("ip", &["-n", &b, "link", "set", &v, "master", "br0", "up"])?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "link",
                "set",
                "eth0",
                "address",
                &host_mac(i).to_string(),
                "up",
            ],
        )?;
        let cidr = format!("{}/24", host_ip(tag, i));
        run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
    }
    run("ip", &["-n", &b, "link", "set", "br0", "up"])?;
    Ok((side, guard))
}

/// shunt's side: the same four hosts on one network with `keys`.
fn shunt_side(prefix: &str, tag: u8, keys: &str) -> Result<(Side, Switch), String> {
    let sw = format!("{prefix}s");
    let mut side = Side {
        ns: BTreeMap::new(),
    };
    let mut toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 1\n[[network]]\nname = \"lan\"\nsubnet = \"10.78.{tag}.0/24\"\n{keys}\n"
    );
    let mut names = Vec::new();
    for (i, l) in HOSTS.iter().enumerate() {
        let n = format!("{prefix}{l}");
        toml += &format!(
            "[[host]]\nname = \"{n}\"\nnetworks = [\"lan\"]\nip = [\"{}/24\"]\nmac = [\"{}\"]\nipv6 = true\n",
            host_ip(tag, i),
            host_mac(i)
        );
        names.push(n.clone());
        side.ns.insert(l, n);
    }
    let swg = Switch::up_toml(&sw, &toml, &names)?;
    Ok((side, swg))
}

fn stim4(tag: u8, what: &str, g: Ipv4Addr, id: u32, seq: u32) -> Stim {
    let marker = Marker::new(id, seq);
    Stim {
        what: format!("{what} ({g})"),
        frame: udp4(tag, 0, g, marker),
        marker,
    }
}

fn stim6(what: &str, g: Ipv6Addr, id: u32, seq: u32) -> Stim {
    let marker = Marker::new(id, seq);
    Stim {
        what: format!("{what} ({g})"),
        frame: udp6(0, g, marker),
        marker,
    }
}

/// A new querier's response time (10 s), and a little more.
const QUERIER_DELAY: Duration = Duration::from_millis(11_000);

const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const G9: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);
const LOCAL: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// The switch is querier (`multicast_querier`, the bridge's
/// `mcast_querier 1`): m1 and m2 join 239.1.1.1; multicast to it reaches
/// them only, an unregistered group reaches no one (there is no router
/// port), 224.0.0.251 everyone; m1 leaves and then only m2 gets it.
fn igmp_querier() -> TestResult {
    let tag = 1;
    let prefix = format!("sn1{:03}", run_id());
    let (k, _kg) = kernel_side(&prefix, tag, &["mcast_snooping", "1", "mcast_querier", "1"])?;
    let (s, mut swg) = shunt_side(&prefix, tag, "multicast_querier = true")?;
    // A querier holds nothing back before its query's response time
    // (10 s) has passed: the bridge's delay_timer, and shunt's.
    std::thread::sleep(QUERIER_DELAY);
    let id = 0x5e51_0100;
    let mut results = Vec::new();
    for side in [&k, &s] {
        let m1 = side.join("m1", "239.1.1.1")?;
        let _m2 = side.join("m2", "239.1.1.1")?;
        std::thread::sleep(Duration::from_millis(1500));
        let before = [
            stim4(tag, "registered group", G1, id, 0),
            stim4(tag, "unregistered group", G9, id, 1),
            stim4(tag, "link-local group", LOCAL, id, 2),
        ];
        let a = deliveries(side, &before)?;
        drop(m1);
        // The leave, then the last-member time (2 x 1 s).
        std::thread::sleep(Duration::from_millis(3500));
        let after = [stim4(tag, "registered group after m1 left", G1, id, 3)];
        let b = deliveries(side, &after)?;
        results.push((a, b, before, after));
    }
    let (ka, kb, before, after) = &results[0];
    let (sa, sb, _, _) = &results[1];
    // The reference did what the bridge's documentation says.
    ensure!(
        ka[0] == vec!["m1", "m2"],
        "bridge: registered group: {:?}",
        ka[0]
    );
    ensure!(kb[0] == vec!["m2"], "bridge: after the leave: {:?}", kb[0]);
    compare("IGMP, switch as querier", ka, sa, before)?;
    compare("IGMP, switch as querier", kb, sb, after)?;
    swg.down()?;
    Ok(())
}

/// No querier on the switch: everything floods until r sends a general
/// query; then r's port is a router port, a registered group goes to its
/// members and r, an unregistered one to r, and `shunt mdb --json` lists
/// the member.
fn igmp_router_port() -> TestResult {
    let tag = 2;
    let prefix = format!("sn2{:03}", run_id());
    let (k, _kg) = kernel_side(&prefix, tag, &["mcast_snooping", "1"])?;
    let (s, mut swg) = shunt_side(&prefix, tag, "")?;
    let id = 0x5e51_0200;
    let mut results = Vec::new();
    for side in [&k, &s] {
        let _m1 = side.join("m1", "239.1.1.1")?;
        std::thread::sleep(Duration::from_millis(1500));
        let before = [stim4(tag, "registered group, no querier yet", G1, id, 0)];
        let a = deliveries(side, &before)?;
        // r's general query (IGMPv2, 1 s to answer), from r's address.
        let mut q = [0u8; 64];
        let n = shunt_parsers::igmp::emit_query(
            &mut q,
            host_mac(3).0,
            host_ip(tag, 3),
            Ipv4Addr::UNSPECIFIED,
            10,
        )
        .map_err(|e| e.to_string())?;
        let mut rp = RawPort::open(side.ns("r")?, "eth0").map_err(|e| e.to_string())?;
        rp.send(&q[..n]).map_err(|e| e.to_string())?;
        // m1 answers within the 1 s asked.
        std::thread::sleep(Duration::from_millis(2000));
        let after = [
            stim4(tag, "registered group, r a router port", G1, id, 1),
            stim4(tag, "unregistered group, r a router port", G9, id, 2),
        ];
        let b = deliveries(side, &after)?;
        results.push((a, b, before, after));
    }
    let (ka, kb, before, after) = &results[0];
    let (sa, sb, _, _) = &results[1];
    ensure!(
        ka[0] == vec!["m1", "m2", "r"],
        "bridge: no querier, flooded: {:?}",
        ka[0]
    );
    ensure!(
        kb[0] == vec!["m1", "r"],
        "bridge: members and router: {:?}",
        kb[0]
    );
    compare("IGMP, a host's query", ka, sa, before)?;
    compare("IGMP, a host's query", kb, sb, after)?;
    // shunt mdb --json lists m1's port in 239.1.1.1, r as router port.
    let v: serde_json::Value = serde_json::from_str(&swg.cmd(&["mdb", "--json"])?)
        .map_err(|e| format!("shunt mdb --json: {e}"))?;
    let m1_port = format!("{prefix}m1.lan");
    let listed = v.as_array().is_some_and(|a| {
        a.iter().any(|e| {
            e["group"] == "239.1.1.1"
                && e["port"] == m1_port.as_str()
                && e["network"] == "lan"
                && e["age_secs"].is_number()
        })
    });
    ensure!(
        listed,
        "shunt mdb --json does not list {m1_port} in 239.1.1.1: {v}"
    );
    let r: serde_json::Value = serde_json::from_str(&swg.cmd(&["mdb", "--routers", "--json"])?)
        .map_err(|e| format!("shunt mdb --routers --json: {e}"))?;
    let r_port = format!("{prefix}r.lan");
    ensure!(
        r.as_array().is_some_and(|a| a
            .iter()
            .any(|e| e["port"] == r_port.as_str() && e["family"] == "ipv4")),
        "shunt mdb --routers --json does not list {r_port}: {r}"
    );
    swg.down()?;
    Ok(())
}

/// MLD with the switch as querier: as the IGMP test, for ff05::1:1.
fn mld_querier() -> TestResult {
    let prefix = format!("sn3{:03}", run_id());
    // The bridge's first MLD query goes before br0 has an address, fails,
    // and it counts itself no IPv6 querier until a query succeeds: the
    // next startup query, 31.25 s later by default. 1 s here (a setting
    // of the reference, not of what is compared).
    let opts = [
        "mcast_snooping",
        "1",
        "mcast_querier",
        "1",
        "mcast_startup_query_interval",
        "100",
    ];
    let (k, _kg) = kernel_side(&prefix, 3, &opts)?;
    let (s, mut swg) = shunt_side(&prefix, 3, "multicast_querier = true")?;
    // The response time of the first query, as above (the bridge queries
    // MLD once it has an IPv6 address, well within it).
    std::thread::sleep(QUERIER_DELAY);
    let id = 0x5e51_0300;
    let g: Ipv6Addr = "ff05::1:1".parse().map_err(|_| "address")?;
    let g9: Ipv6Addr = "ff05::1:9".parse().map_err(|_| "address")?;
    let all: Ipv6Addr = "ff02::1".parse().map_err(|_| "address")?;
    let mut results = Vec::new();
    for side in [&k, &s] {
        let m1 = side.join("m1", "ff05::1:1")?;
        let _m2 = side.join("m2", "ff05::1:1")?;
        std::thread::sleep(Duration::from_millis(1500));
        let before = [
            stim6("registered group", g, id, 0),
            stim6("unregistered group", g9, id, 1),
            stim6("all nodes", all, id, 2),
        ];
        let a = deliveries(side, &before)?;
        drop(m1);
        std::thread::sleep(Duration::from_millis(3500));
        let after = [stim6("registered group after m1 left", g, id, 3)];
        let b = deliveries(side, &after)?;
        results.push((a, b, before, after));
    }
    let (ka, kb, before, after) = &results[0];
    let (sa, sb, _, _) = &results[1];
    ensure!(
        ka[0] == vec!["m1", "m2"],
        "bridge: registered group: {:?}",
        ka[0]
    );
    ensure!(kb[0] == vec!["m2"], "bridge: after the done: {:?}", kb[0]);
    let mdb = || swg.cmd(&["mdb"]).unwrap_or_default();
    compare("MLD, switch as querier", ka, sa, before)
        .map_err(|e| format!("{e}\nshunt mdb:\n{}", mdb()))?;
    compare("MLD, switch as querier", kb, sb, after)
        .map_err(|e| format!("{e}\nshunt mdb:\n{}", mdb()))?;
    swg.down()?;
    Ok(())
}
