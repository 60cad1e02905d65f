//! VLANs: the truth table of ingress port kind x tag (in the spirit of Open
//! vSwitch's "VLAN handling" test in tests/ofproto-dpif.at), isolation
//! between networks (the kernel's no_forwarding.sh), the VLAN hopping
//! attack, per-network learning, and attach/detach at run time.
//!
//! Trunk ports are bare TAPs placed in namespaces of the test's own
//! (`[[port]] namespace`), so the test sends and captures tagged frames on
//! them. Captures use tcpdump, which gives back the tags the kernel lifts
//! off received frames.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ensure;
use crate::harness::{ping, run_id, Switch, Tcpdump, TestResult};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, FrameSummary, MacAddr, Marker, RawPort, VlanTag};

const WAIT: Duration = Duration::from_millis(500);

pub fn tests() -> Vec<Test> {
    vec![
        ("vlan::truth_table", truth_table_tap),
        ("vlan::truth_table[packet,w2]", truth_table_packet),
        ("vlan::isolation", isolation),
        ("vlan::per_network_learning", per_network_learning),
        ("vlan::attach_detach", attach_detach),
    ]
}

/// The tests that need AF_XDP.
pub fn afxdp_tests() -> Vec<Test> {
    vec![("vlan::truth_table[afxdp,w2]", truth_table_afxdp)]
}

fn names(tag: u8) -> String {
    format!("sv{tag:02}{:03}", run_id())
}

/// The truth-table topology: access ports a (blue, vlan 10), b (red, vlan
/// 20), c (green, vlan 30); trunk t carrying blue and red with no native
/// network; trunk n carrying blue and red tagged and green untagged.
/// `kind` "afxdp": every port is an AF_XDP port (hosts on veths; the
/// trunks on veths whose inner ends `t` and `n` the caller puts in
/// namespaces `{sw}t` and `{sw}n`, outer ends `{sw}to` and `{sw}no`), under
/// two workers. "packet": the same with packet ports. "tap": TAPs.
fn truth_topology(sw: &str, kind: &str) -> (String, Vec<String>) {
    let (workers, link, t_port, n_port) = if kind == "afxdp" {
        (
            2,
            "link = \"veth\"\nveth_attach = \"afxdp\"\nxdp_mode = \"native\"\n",
            format!("kind = \"afxdp\"\ninterface = \"{sw}to\"\nxdp_mode = \"native\""),
            format!("kind = \"afxdp\"\ninterface = \"{sw}no\"\nxdp_mode = \"generic\""),
        )
    } else if kind == "packet" {
        (
            2,
            "link = \"veth\"\n",
            format!("kind = \"packet\"\ninterface = \"{sw}to\""),
            format!("kind = \"packet\"\ninterface = \"{sw}no\""),
        )
    } else {
        (
            1,
            "",
            format!("namespace = \"{sw}t\""),
            format!("namespace = \"{sw}n\""),
        )
    };
    let toml = format!(
        r#"[switch]
name = "{sw}"
workers = {workers}

[[network]]
name = "blue"
vlan = 10
[[network]]
name = "red"
vlan = 20
[[network]]
name = "green"
vlan = 30

[[host]]
name = "{sw}a"
networks = ["blue"]
mac = ["02:00:5e:40:00:0a"]
{link}
[[host]]
name = "{sw}b"
networks = ["red"]
mac = ["02:00:5e:40:00:0b"]
{link}
[[host]]
name = "{sw}c"
networks = ["green"]
mac = ["02:00:5e:40:00:0c"]
{link}
[[port]]
name = "t"
mode = "trunk"
networks = ["blue", "red"]
{t_port}

[[port]]
name = "n"
mode = "trunk"
networks = ["blue", "red"]
native = "green"
{n_port}
"#
    );
    let ns = ["a", "b", "c", "t", "n"]
        .iter()
        .map(|s| format!("{sw}{s}"))
        .collect();
    (toml, ns)
}

/// Where a frame went: receiving port -> outer tag (vid, pcp) or None.
type Seen = BTreeMap<String, Option<(u16, u8)>>;

fn truth_table_tap() -> TestResult {
    let sw = names(40);
    let (toml, ns) = truth_topology(&sw, "tap");
    let swg = Switch::up_toml(&sw, &toml, &ns)?;
    truth_table(&sw, swg, false)
}

/// The truth-table lab with every port of `kind` ("afxdp", "packet") on
/// veths: the switch, and the trunks' veths (removed when dropped).
fn veth_truth_lab(tag: u8, kind: &str) -> Result<(String, Switch, [TrunkVeth; 2]), String> {
    let sw = names(tag);
    let (toml, ns) = truth_topology(&sw, kind);
    let t = TrunkVeth::new(&format!("{sw}t"), "t", &format!("{sw}to"))?;
    let n = TrunkVeth::new(&format!("{sw}n"), "n", &format!("{sw}no"))?;
    let hosts: Vec<String> = ns.into_iter().take(3).collect();
    let swg = Switch::up_toml(&sw, &toml, &hosts)?;
    Ok((sw, swg, [t, n]))
}

/// The same table with packet ports only, under two workers: the kernel
/// takes a tag out of a frame's bytes before a packet socket sees it, so
/// the port must put it back for any row to hold.
fn truth_table_packet() -> TestResult {
    let (sw, swg, _trunks) = veth_truth_lab(46, "packet")?;
    let log = std::fs::read_to_string(format!("/run/shunt/{sw}.log")).unwrap_or_default();
    ensure!(
        log.contains(&format!("{sw}to is a veth")) && log.contains("tx-udp_tnl-segmentation off"),
        "no tunnel-offload note for the veth trunks in the log:\n{log}"
    );
    truth_table(&sw, swg, false)
}

/// The same table with AF_XDP ports only, under two workers: every frame
/// that arrives somewhere leaves its last port as the UMEM frame it came in
/// (tag pushed, popped or rewritten in place), handed between workers
/// where the ports' owners differ.
fn truth_table_afxdp() -> TestResult {
    let (sw, swg, _trunks) = veth_truth_lab(44, "afxdp")?;
    // The trunks are veths the test brought: the start-up log says what
    // their peers' checksum offload means.
    let log = std::fs::read_to_string(format!("/run/shunt/{sw}.log")).unwrap_or_default();
    ensure!(
        log.contains(&format!("{sw}to is a veth")) && log.contains("ethtool -K PEER tx off"),
        "no checksum note for the veth trunks in the log:\n{log}"
    );
    truth_table(&sw, swg, true)
}

/// The network of access host `a`, `b` or `c` in the truth table.
fn net_of(host: &str) -> &'static str {
    match host {
        "a" => "blue",
        "b" => "red",
        _ => "green",
    }
}

/// A namespace with the inner end of a veth in it (IPv6 off, so the kernel
/// sends nothing of its own), the outer end in the switch's namespace.
/// Dropping it removes both.
struct TrunkVeth {
    ns: String,
    outer: String,
}

impl TrunkVeth {
    fn new(ns: &str, inner: &str, outer: &str) -> Result<TrunkVeth, String> {
        let v = TrunkVeth {
            ns: ns.to_string(),
            outer: outer.to_string(),
        };
        v.remove();
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", ns],
            vec![
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
            vec![
                "ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns,
            ],
            vec!["ip", "-n", ns, "link", "set", "dev", inner, "up"],
            vec!["ip", "link", "set", "dev", outer, "up"],
        ];
        for a in steps {
            crate::harness::run(a[0], &a[1..])?;
        }
        Ok(v)
    }

    fn remove(&self) {
        let _ = crate::harness::run("ip", &["link", "del", &self.outer]);
        let _ = crate::harness::run("ip", &["netns", "del", &self.ns]);
    }
}

impl Drop for TrunkVeth {
    fn drop(&mut self) {
        self.remove();
    }
}

fn truth_table(sw: &str, mut swg: Switch, afxdp: bool) -> TestResult {
    // Receiving side: (label, namespace, interface).
    let ports: Vec<(&str, String, &str)> = vec![
        ("a", format!("{sw}a"), "eth0"),
        ("b", format!("{sw}b"), "eth0"),
        ("c", format!("{sw}c"), "eth0"),
        ("t", format!("{sw}t"), "t"),
        ("n", format!("{sw}n"), "n"),
    ];
    // (ingress label, tags outermost first, expected: label -> outer (vid, pcp) or untagged)
    type Row = (
        &'static str,
        Vec<VlanTag>,
        Vec<(&'static str, Option<(u16, u8)>)>,
        &'static str,
    );
    let none: Vec<VlanTag> = vec![];
    let rows: Vec<Row> = vec![
        // Access port a (blue, vlan 10).
        (
            "a",
            none.clone(),
            vec![("t", Some((10, 0))), ("n", Some((10, 0)))],
            "untagged on access joins blue",
        ),
        (
            "a",
            vec![VlanTag::dot1q(0, 5)],
            vec![("t", Some((10, 5))), ("n", Some((10, 5)))],
            "priority tag joins blue, PCP kept",
        ),
        (
            "a",
            vec![VlanTag::dot1q(10, 0)],
            vec![],
            "access port's own VID tagged: dropped",
        ),
        (
            "a",
            vec![VlanTag::dot1q(20, 0)],
            vec![],
            "another VID on access: dropped",
        ),
        (
            "a",
            vec![VlanTag::dot1q(4095, 0)],
            vec![],
            "VID 4095: dropped",
        ),
        // Trunk t (blue, red; no native).
        (
            "t",
            none.clone(),
            vec![],
            "untagged on trunk without native: dropped",
        ),
        (
            "t",
            vec![VlanTag::dot1q(0, 3)],
            vec![],
            "priority-tagged on trunk without native: dropped",
        ),
        (
            "t",
            vec![VlanTag::dot1q(10, 6)],
            vec![("a", None), ("n", Some((10, 6)))],
            "VID 10 on trunk: blue, tag popped to access, kept to trunk",
        ),
        (
            "t",
            vec![VlanTag::dot1q(20, 0)],
            vec![("b", None), ("n", Some((20, 0)))],
            "VID 20 on trunk: red",
        ),
        (
            "t",
            vec![VlanTag::dot1q(30, 0)],
            vec![],
            "VID 30 not allowed on t: dropped",
        ),
        (
            "t",
            vec![VlanTag::dot1q(4095, 0)],
            vec![],
            "VID 4095 on trunk: dropped",
        ),
        // Trunk n (blue, red tagged; green native).
        (
            "n",
            none.clone(),
            vec![("c", None)],
            "untagged on trunk joins native green",
        ),
        (
            "n",
            vec![VlanTag::dot1q(0, 2)],
            vec![("c", None)],
            "priority-tagged on trunk joins native",
        ),
        (
            "n",
            vec![VlanTag::dot1q(10, 0)],
            vec![("a", None), ("t", Some((10, 0)))],
            "VID 10 on n: blue",
        ),
        (
            "n",
            vec![VlanTag::dot1q(20, 7)],
            vec![("b", None), ("t", Some((20, 7)))],
            "VID 20 on n: red",
        ),
        (
            "n",
            vec![VlanTag::dot1q(30, 0)],
            vec![],
            "native's VID tagged (not in networks): dropped",
        ),
        (
            "n",
            vec![VlanTag::dot1q(99, 0)],
            vec![],
            "VID 99 not allowed: dropped",
        ),
        (
            "n",
            vec![VlanTag::dot1q(4095, 0)],
            vec![],
            "VID 4095 on native trunk: dropped",
        ),
        // 802.1ad: an S-tag is not a VLAN tag to this switch (docs/vlan.md).
        (
            "a",
            vec![VlanTag::dot1ad(20, 0)],
            vec![("t", Some((10, 0))), ("n", Some((10, 0)))],
            "802.1ad on access: untagged, joins blue",
        ),
        (
            "t",
            vec![VlanTag::dot1ad(10, 0)],
            vec![],
            "802.1ad on trunk without native: untagged, dropped",
        ),
        // VLAN hopping: a priority tag hiding VID 20 never leaves on VID 20.
        (
            "a",
            vec![VlanTag::dot1q(0, 0), VlanTag::dot1q(20, 0)],
            vec![("t", Some((10, 0))), ("n", Some((10, 0)))],
            "double tag on access stays in blue",
        ),
        (
            "a",
            vec![VlanTag::dot1q(10, 0), VlanTag::dot1q(20, 0)],
            vec![],
            "double tag with the access VID: dropped",
        ),
    ];
    let caps: Vec<(&str, Tcpdump)> = ports
        .iter()
        .map(|(l, n, i)| Tcpdump::start(n, i).map(|t| (*l, t)))
        .collect::<Result<_, _>>()?;
    let mut senders: BTreeMap<&str, RawPort> = BTreeMap::new();
    for (l, n, i) in &ports {
        senders.insert(
            l,
            RawPort::open(n, i).map_err(|e| format!("raw port {n}/{i}: {e}"))?,
        );
    }
    let s0 = swg.stats()?;
    for (seq, (from, tags, _, _)) in rows.iter().enumerate() {
        let mut b = FrameBuilder::new(MacAddr::BROADCAST, shunt_tools::test_mac(40, 1, seq as u8));
        for t in tags {
            b = b.tag(*t);
        }
        let f = b
            .ethertype(0x88b5)
            .marker(Marker::new(40, seq as u32))
            .build();
        senders
            .get_mut(from)
            .ok_or("no sender")?
            .send(&f)
            .map_err(|e| format!("send on {from}: {e}"))?;
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(WAIT);
    let mut seen: Vec<Seen> = vec![Seen::new(); rows.len()];
    for (label, cap) in caps {
        for f in cap.stop()? {
            let Some(sum) = FrameSummary::parse(&f) else {
                continue;
            };
            let Some(m) = sum.marker(&f) else { continue };
            if m.test_id != 40 || m.seq as usize >= rows.len() {
                continue;
            }
            // What matters is the outer 802.1Q tag (an inner one or an
            // 802.1ad tag below it is data the switch carries).
            let outer = sum
                .tags
                .first()
                .filter(|t| t.tpid == 0x8100)
                .map(|t| (t.vid, t.pcp));
            seen[m.seq as usize].insert(label.to_string(), outer);
        }
    }
    let mut failures = Vec::new();
    for (i, (from, tags, expect, what)) in rows.iter().enumerate() {
        let want: Seen = expect.iter().map(|(l, t)| (l.to_string(), *t)).collect();
        // Captures take incoming frames only: a frame back on its own port
        // would show up here as a failure.
        let got = seen[i].clone();
        if got != want {
            failures.push(format!(
                "row {i} ({what}): from {from} with {tags:?}: expected {want:?}, got {got:?}"
            ));
        }
    }
    let s1 = swg.stats()?;
    let d = |r: &str| s1.drop(r) - s0.drop(r);
    ensure!(failures.is_empty(), "truth table:\n{}", failures.join("\n"));
    if afxdp {
        // Each frame that went anywhere left its last port without a copy.
        let labels = ["t", "n"]
            .map(String::from)
            .into_iter()
            .chain(["a", "b", "c"].map(|h| format!("{sw}{h}.{}", net_of(h))));
        let zc: u64 = labels
            .map(|p| s1.port(&p, "tx_zero_copy") - s0.port(&p, "tx_zero_copy"))
            .sum();
        let delivered = rows.iter().filter(|r| !r.2.is_empty()).count() as u64;
        ensure!(
            zc == delivered,
            "tx_zero_copy counted {zc}, want one per delivered frame ({delivered})"
        );
        // A burst through both workers (floods: copies and the frame
        // itself; tags pushed and popped), then no UMEM frame may be
        // missing: idle, every frame is in the pool, a port's cache or a
        // kernel ring.
        for (from, tag) in [("t", Some(VlanTag::dot1q(10, 0))), ("a", None)] {
            let port = senders.get_mut(from).ok_or("no sender")?;
            for seq in 0..3000u32 {
                let mut b = FrameBuilder::new(MacAddr::BROADCAST, shunt_tools::test_mac(44, 2, 1));
                if let Some(t) = tag {
                    b = b.tag(t);
                }
                let f = b.ethertype(0x88b5).marker(Marker::new(44, seq)).build();
                port.send(&f).map_err(|e| format!("send on {from}: {e}"))?;
            }
        }
        swg.umem_accounted(Duration::from_secs(5))?;
    }
    ensure!(
        d("vlan_reserved") == 3,
        "vlan_reserved counted {} (3 sent)",
        d("vlan_reserved")
    );
    ensure!(
        d("vlan_untagged") == 3,
        "vlan_untagged counted {} (3 sent)",
        d("vlan_untagged")
    );
    ensure!(
        d("vlan_not_allowed") == 6,
        "vlan_not_allowed counted {} (6 sent)",
        d("vlan_not_allowed")
    );
    swg.down()?;
    Ok(())
}

/// Nothing sent on one network reaches a host of another: unicast,
/// multicast and broadcast, untagged and with the VIDs of the kernel's
/// no_forwarding.sh. A host of the same network is the positive control.
fn isolation() -> TestResult {
    let sw = names(41);
    let toml = format!(
        r#"[switch]
name = "{sw}"
workers = 1
[[network]]
name = "one"
vlan = 100
[[network]]
name = "two"
vlan = 200
[[host]]
name = "{sw}a"
networks = ["one"]
mac = ["02:00:5e:41:00:0a"]
[[host]]
name = "{sw}b"
networks = ["one"]
mac = ["02:00:5e:41:00:0b"]
[[host]]
name = "{sw}x"
networks = ["two"]
mac = ["02:00:5e:41:00:1a"]
[[port]]
name = "t"
mode = "trunk"
networks = ["two"]
namespace = "{sw}t"
"#
    );
    let ns: Vec<String> = ["a", "b", "x", "t"]
        .iter()
        .map(|s| format!("{sw}{s}"))
        .collect();
    let mut swg = Switch::up_toml(&sw, &toml, &ns)?;
    let x_mac = MacAddr([0x02, 0, 0x5e, 0x41, 0, 0x1a]);
    let mut x = RawPort::open(&ns[2], "eth0").map_err(|e| e.to_string())?;
    // x speaks first, so its MAC is known (in network two).
    x.send(
        &FrameBuilder::new(MacAddr::BROADCAST, x_mac)
            .ethertype(0x88b5)
            .build(),
    )
    .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));
    let cap_b = Tcpdump::start(&ns[1], "eth0")?;
    let cap_x = Tcpdump::start(&ns[2], "eth0")?;
    let cap_t = Tcpdump::start(&ns[3], "t")?;
    let mut a = RawPort::open(&ns[0], "eth0").map_err(|e| e.to_string())?;
    let a_mac = MacAddr([0x02, 0, 0x5e, 0x41, 0, 0x0a]);
    let vids: [Option<u16>; 15] = [
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(5),
        Some(10),
        Some(20),
        Some(50),
        Some(100),
        Some(200),
        Some(500),
        Some(1000),
        Some(2000),
        Some(4000),
        Some(4094),
    ];
    let dsts = [
        x_mac,
        MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
        MacAddr::BROADCAST,
    ];
    let mut seq = 0u32;
    let mut expected_in_one = 0usize;
    for d in dsts {
        for v in vids {
            let mut b = FrameBuilder::new(d, a_mac);
            if let Some(v) = v {
                b = b.tag(VlanTag::dot1q(v, 0));
            }
            a.send(&b.ethertype(0x88b5).marker(Marker::new(41, seq)).build())
                .map_err(|e| e.to_string())?;
            // Untagged and priority-tagged frames are in network one.
            if matches!(v, None | Some(0)) {
                expected_in_one += 1;
            }
            seq += 1;
        }
    }
    std::thread::sleep(WAIT);
    let count = |frames: Vec<Vec<u8>>| {
        frames
            .iter()
            .filter(|f| Marker::in_frame(f).is_some_and(|m| m.test_id == 41))
            .count()
    };
    let at_b = count(cap_b.stop()?);
    let at_x = count(cap_x.stop()?);
    let at_t = count(cap_t.stop()?);
    ensure!(
        at_x == 0,
        "{at_x} frames from network one reached host x of network two"
    );
    ensure!(
        at_t == 0,
        "{at_t} frames from network one reached trunk t (network two only)"
    );
    ensure!(
        at_b == expected_in_one,
        "host b of network one got {at_b} frames, expected {expected_in_one}"
    );
    swg.down()?;
    Ok(())
}

/// The same MAC in two networks on two ports: two entries, one per network.
fn per_network_learning() -> TestResult {
    let sw = names(42);
    let toml = format!(
        r#"[switch]
name = "{sw}"
workers = 1
[[network]]
name = "one"
[[network]]
name = "two"
[[host]]
name = "{sw}a"
networks = ["one"]
mac = ["02:00:5e:42:00:0a"]
[[host]]
name = "{sw}b"
networks = ["two"]
mac = ["02:00:5e:42:00:0b"]
"#
    );
    let ns: Vec<String> = ["a", "b"].iter().map(|s| format!("{sw}{s}")).collect();
    let mut swg = Switch::up_toml(&sw, &toml, &ns)?;
    let m = shunt_tools::test_mac(42, 9, 9);
    for h in &ns {
        let mut p = RawPort::open(h, "eth0").map_err(|e| e.to_string())?;
        p.send(
            &FrameBuilder::new(MacAddr::BROADCAST, m)
                .ethertype(0x88b5)
                .build(),
        )
        .map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let fdb = swg.fdb()?;
    let rows: Vec<(String, String)> = fdb
        .0
        .iter()
        .filter(|e| e.mac == m.to_string())
        .map(|e| (e.network.clone(), e.port.clone()))
        .collect();
    ensure!(
        rows.contains(&("one".into(), format!("{}.one", ns[0])))
            && rows.contains(&("two".into(), format!("{}.two", ns[1]))),
        "fdb rows for {m}: {rows:?}"
    );
    swg.down()?;
    Ok(())
}

/// `shunt attach` plugs a new host in while others talk; `shunt detach`
/// takes it out again without disturbing them.
fn attach_detach() -> TestResult {
    let sw = names(43);
    let toml = format!(
        r#"[switch]
name = "{sw}"
[[network]]
name = "lan"
subnet = "10.78.43.0/24"
address = "10.78.43.254"
[[host]]
name = "{sw}a"
networks = ["lan"]
[[host]]
name = "{sw}b"
networks = ["lan"]
"#
    );
    // The switch is .254: a is .1, b is .2, the attached host .3.
    let new = format!("{sw}c");
    let ns = vec![format!("{sw}a"), format!("{sw}b"), new.clone()];
    let mut swg = Switch::up_toml(&sw, &toml, &ns)?;
    let out = swg.cmd(&["attach", &new, "lan"])?;
    ensure!(out.contains("10.78.43.3"), "attach said: {out}");
    ping(&new, "10.78.43.1")?;
    ping(&ns[0], "10.78.43.3")?;
    let ports = swg.ports()?;
    ensure!(
        ports.iter().any(|p| p.name == format!("{new}.lan") && p.up),
        "attached port not listed: {ports:?}"
    );
    // Detach while a pings b: no loss between a and b.
    let pinger = std::thread::spawn({
        let a = ns[0].clone();
        move || {
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &a,
                    "ping",
                    "-c",
                    "30",
                    "-i",
                    "0.05",
                    "-q",
                    "10.78.43.2",
                ])
                .output()
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    swg.cmd(&["detach", &new, "lan"])?;
    let out = pinger
        .join()
        .map_err(|_| "pinger panicked")?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains(" 0% packet loss"),
        "a -> b during detach: {text}"
    );
    let ports = swg.ports()?;
    ensure!(
        !ports.iter().any(|p| p.name == format!("{new}.lan")),
        "detached port still listed: {ports:?}"
    );
    ensure!(
        ping(&new, "10.78.43.1").is_err(),
        "detached host still reaches a"
    );
    // Attached again straight away: the old device is gone already.
    swg.cmd(&["detach", &ns[1], "lan"])?;
    swg.cmd(&["attach", &ns[1], "lan"])?;
    ping(&ns[0], "10.78.43.2")?;
    let resolv = format!("/etc/netns/{new}");
    ensure!(
        std::path::Path::new(&resolv).exists(),
        "no resolver folder {resolv} for the attached host"
    );
    swg.down()?;
    ensure!(
        !std::path::Path::new(&resolv).exists(),
        "resolver folder {resolv} of the attached host left after down"
    );
    Ok(())
}
