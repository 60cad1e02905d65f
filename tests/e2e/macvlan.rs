//! macvlan networks, each mode against the Linux kernel's own macvlan as
//! the reference: the same stimuli through both give the same deliveries.
//!
//! Both sides have the same shape. Two hosts `a` and `b` hang off a parent;
//! the parent leads into an "outside" namespace whose kernel bridge has the
//! parent's link in hairpin mode (a reflective relay, as VEPA needs) and an
//! external host `x`. On shunt's side the parent is a `[[port]]` TAP inside
//! the outside namespace and the hosts are TAPs; on the kernel's side the
//! parent is a veth whose other end is in the bridge, and the hosts are
//! macvlan devices on it, moved into their own namespaces.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ensure;
use crate::harness::{run, run_id, Switch, Tcpdump, TestResult};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, MacAddr, Marker, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("macvlan::bridge_mode_matches_kernel", || {
            mode_matches_kernel("bridge", 0)
        }),
        ("macvlan::vepa_mode_matches_kernel", || {
            mode_matches_kernel("vepa", 1)
        }),
        ("macvlan::private_mode_matches_kernel", || {
            mode_matches_kernel("private", 2)
        }),
        ("macvlan::passthru_mode_matches_kernel", || {
            mode_matches_kernel("passthru", 3)
        }),
        // The parent written without `mode` and `network`: the macvlan
        // network's `parent` says it carries the network.
        ("macvlan::parent_inferred_matches_kernel", || {
            mode_matches_kernel("bridge", 4)
        }),
    ]
}

const A: MacAddr = MacAddr([0x02, 0, 0x5e, 0x50, 0, 0x0a]);
const B: MacAddr = MacAddr([0x02, 0, 0x5e, 0x50, 0, 0x0b]);
const X: MacAddr = MacAddr([0x02, 0, 0x5e, 0x50, 0, 0x1a]);
const UNKNOWN: MacAddr = MacAddr([0x02, 0, 0x5e, 0x50, 0, 0x99]);
const ALL_HOSTS: MacAddr = MacAddr([0x01, 0, 0x5e, 0, 0, 0x01]);

/// Namespaces deleted on drop (the kernel side has no switch to do it).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

/// A device of the root namespace deleted on drop.
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.0]);
    }
}

/// One side of the comparison: where each endpoint lives.
struct Side {
    /// label -> (namespace, interface)
    ends: BTreeMap<&'static str, (String, String)>,
}

/// The outside: a bridge with `link` (already in namespace `o`) in hairpin
/// mode, and host x behind a veth.
fn outside(o: &str, link: &str, x: &str) -> Result<(), String> {
    let ip = |args: &[&str]| run("ip", args).map(|_| ());
    ip(&["-n", o, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", o, "link", "set", "dev", link, "master", "br0", "up"])?;
    run(
        "ip",
        &[
            "netns", "exec", o, "bridge", "link", "set", "dev", link, "hairpin", "on",
        ],
    )?;
    ip(&[
        "-n", o, "link", "add", "vx", "type", "veth", "peer", "name", "eth0", "netns", x,
    ])?;
    ip(&["-n", o, "link", "set", "vx", "master", "br0", "up"])?;
    ip(&["-n", o, "link", "set", "br0", "up"])?;
    ip(&[
        "-n",
        x,
        "link",
        "set",
        "eth0",
        "address",
        &X.to_string(),
        "up",
    ])?;
    Ok(())
}

fn netns_add(names: &[String]) -> Result<(), String> {
    for n in names {
        run("ip", &["netns", "add", n])?;
        for k in ["all", "default"] {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    n,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                ],
            )?;
        }
        run("ip", &["-n", n, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// The stimuli: (sender, destination).
fn stimuli(passthru: bool) -> Vec<(&'static str, MacAddr)> {
    let mut s = vec![
        ("a", MacAddr::BROADCAST),
        ("a", ALL_HOSTS),
        ("a", X),
        ("x", MacAddr::BROADCAST),
        ("x", ALL_HOSTS),
        ("x", A),
        ("x", UNKNOWN),
    ];
    if !passthru {
        s.extend([("a", B), ("b", A), ("b", MacAddr::BROADCAST), ("x", B)]);
    }
    s
}

fn mac_of(label: &str) -> MacAddr {
    match label {
        "a" => A,
        "b" => B,
        _ => X,
    }
}

/// Sends every stimulus on one side; returns, per stimulus, who got it.
fn run_side(
    side: &Side,
    stim: &[(&'static str, MacAddr)],
    test_id: u32,
) -> Result<Vec<Vec<&'static str>>, String> {
    let mut ports: BTreeMap<&str, RawPort> = BTreeMap::new();
    for (label, (ns, ifname)) in &side.ends {
        ports.insert(
            label,
            RawPort::open(ns, ifname).map_err(|e| format!("{ns}/{ifname}: {e}"))?,
        );
    }
    // Warm-up: everyone speaks once, so the outside bridge knows where
    // each MAC is (its learning decides where hairpinned unicast goes).
    for (label, p) in ports.iter_mut() {
        let f = FrameBuilder::new(MacAddr::BROADCAST, mac_of(label))
            .ethertype(0x88b5)
            .build();
        p.send(&f).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let caps: Vec<(&'static str, Tcpdump)> = side
        .ends
        .iter()
        .map(|(l, (ns, i))| Tcpdump::start(ns, i).map(|t| (*l, t)))
        .collect::<Result<_, _>>()?;
    for (seq, (from, dst)) in stim.iter().enumerate() {
        let f = FrameBuilder::new(*dst, mac_of(from))
            .ethertype(0x88b5)
            .marker(Marker::new(test_id, seq as u32))
            .build();
        ports
            .get_mut(from)
            .ok_or("no port")?
            .send(&f)
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut got: Vec<Vec<&'static str>> = vec![Vec::new(); stim.len()];
    for (label, cap) in caps {
        for f in cap.stop()? {
            if let Some(m) = Marker::in_frame(&f).filter(|m| m.test_id == test_id) {
                if let Some(g) = got.get_mut(m.seq as usize) {
                    g.push(label);
                }
            }
        }
    }
    for g in &mut got {
        g.sort();
    }
    Ok(got)
}

/// The kernel's macvlan in `mode` against shunt's. `idx` names the test;
/// with idx 4, shunt's parent port does not repeat `network = "mv"`.
fn mode_matches_kernel(mode: &'static str, idx: u8) -> TestResult {
    let passthru = mode == "passthru";
    let parent_keys = if idx == 4 {
        ""
    } else {
        "mode = \"access\"\nnetwork = \"mv\"\n"
    };
    let sw = format!("sm{idx}{:03}", run_id());
    let stim = stimuli(passthru);

    // The kernel's side. The lower device stays in the switch's (root)
    // namespace: iproute2 here cannot name a macvlan's link inside another
    // namespace, and moving a lower device would delete its macvlans.
    let k: Vec<String> = ["ka", "kb", "ko", "kx"]
        .iter()
        .map(|s| format!("{sw}{s}"))
        .collect();
    let low = format!("{sw}l");
    let _kguard = Namespaces(k.clone());
    let _lguard = Link(low.clone());
    let (ka, kb, ko, kx) = (&k[0], &k[1], &k[2], &k[3]);
    netns_add(&k)?;
    run(
        "ip",
        &[
            "link", "add", &low, "type", "veth", "peer", "name", "lowp", "netns", ko,
        ],
    )?;
    if passthru {
        // passthru gives the macvlan the lower device's MAC: make that A.
        run("ip", &["link", "set", &low, "address", &A.to_string()])?;
    }
    run("ip", &["link", "set", &low, "up"])?;
    outside(ko, "lowp", kx)?;
    let hosts: &[(&str, &String, MacAddr)] = if passthru {
        &[("ma", ka, A)]
    } else {
        &[("ma", ka, A), ("mb", kb, B)]
    };
    for (dev, ns, mac) in hosts {
        let dev = format!("{sw}{dev}");
        run(
            "ip",
            &[
                "link", "add", &dev, "link", &low, "type", "macvlan", "mode", mode,
            ],
        )?;
        run("ip", &["link", "set", &dev, "netns", ns])?;
        run("ip", &["-n", ns, "link", "set", &dev, "name", "eth0"])?;
        if !passthru {
            run(
                "ip",
                &["-n", ns, "link", "set", "eth0", "address", &mac.to_string()],
            )?;
        }
        run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    }
    let mut kside = Side {
        ends: BTreeMap::new(),
    };
    kside.ends.insert("a", (ka.clone(), "eth0".into()));
    if !passthru {
        kside.ends.insert("b", (kb.clone(), "eth0".into()));
    }
    kside.ends.insert("x", (kx.clone(), "eth0".into()));

    // shunt's side.
    let s: Vec<String> = ["a", "b", "o", "x"]
        .iter()
        .map(|n| format!("{sw}{n}"))
        .collect();
    let (sa, sb, so, sx) = (&s[0], &s[1], &s[2], &s[3]);
    let host_b = if passthru {
        String::new()
    } else {
        format!("[[host]]\nname = \"{sb}\"\nnetworks = [\"mv\"]\nmac = [\"{B}\"]\n")
    };
    let toml = format!(
        r#"[switch]
name = "{sw}"
workers = 1
[[network]]
name = "mv"
kind = "macvlan"
parent = "upl"
macvlan_mode = "{mode}"
[[host]]
name = "{sa}"
networks = ["mv"]
mac = ["{A}"]
{host_b}
[[port]]
name = "upl"
{parent_keys}namespace = "{so}"
"#
    );
    let _sx_guard = Namespaces(vec![sx.clone()]);
    let mut swg = Switch::up_toml(&sw, &toml, &[sa.clone(), sb.clone(), so.clone()])?;
    netns_add(std::slice::from_ref(sx))?;
    outside(so, "upl", sx)?;
    let mut sside = Side {
        ends: BTreeMap::new(),
    };
    sside.ends.insert("a", (sa.clone(), "eth0".into()));
    if !passthru {
        sside.ends.insert("b", (sb.clone(), "eth0".into()));
    }
    sside.ends.insert("x", (sx.clone(), "eth0".into()));

    let want = run_side(&kside, &stim, 50 + idx as u32)?;
    let got = run_side(&sside, &stim, 60 + idx as u32)?;
    let mut diffs = Vec::new();
    for (i, (from, dst)) in stim.iter().enumerate() {
        if want[i] != got[i] {
            diffs.push(format!(
                "{from} -> {dst}: kernel macvlan delivered to {:?}, shunt to {:?}",
                want[i], got[i]
            ));
        }
    }
    ensure!(
        diffs.is_empty(),
        "macvlan mode {mode}:\n{}",
        diffs.join("\n")
    );
    // The reference itself must have behaved as ip-link(8) says, or the
    // comparison proves nothing.
    let of = |from: &str, dst: MacAddr| {
        stim.iter()
            .position(|&(f, d)| f == from && d == dst)
            .map(|i| want[i].clone())
            .unwrap_or_default()
    };
    ensure!(
        of("x", MacAddr::BROADCAST).contains(&"a"),
        "kernel: a did not get x's broadcast: {want:?}"
    );
    ensure!(of("x", A) == vec!["a"], "kernel: x -> a: {:?}", of("x", A));
    match mode {
        "bridge" | "vepa" => {
            ensure!(
                of("a", B) == vec!["b"],
                "kernel {mode}: a -> b: {:?}",
                of("a", B)
            );
            ensure!(
                of("a", MacAddr::BROADCAST).contains(&"b"),
                "kernel {mode}: a's broadcast: {:?}",
                of("a", MacAddr::BROADCAST)
            );
        }
        "private" => {
            ensure!(
                !of("a", MacAddr::BROADCAST).contains(&"b"),
                "kernel private: b got a's broadcast"
            );
        }
        _ => {}
    }
    swg.down()?;
    Ok(())
}
