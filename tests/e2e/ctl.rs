//! The control path end to end: a host attached at run time is the same
//! host as one written in the file (address and MAC, on a network with a
//! subnet and on one without).

use crate::ensure;
use crate::harness::{ping, run, run_id, Switch, TestResult};
use crate::l2::Test;

pub fn tests() -> Vec<Test> {
    vec![
        ("ctl::attach_matches_the_file", attach_matches_the_file),
        (
            "ctl::attach_vxlan_mtu_matches_the_file",
            attach_vxlan_mtu_matches_the_file,
        ),
    ]
}

/// A switch `sw` with `networks` (and whatever else the file needs), host
/// `b` on `b_nets` and, when given, host `a` on `a_nets`.
fn lab_toml(sw: &str, networks: &str, b_nets: &str, a_nets: Option<&str>) -> String {
    let host = |h: &str, nets: &str| format!("[[host]]\nname = \"{sw}{h}\"\nnetworks = [{nets}]\n");
    let a = a_nets.map(|n| host("a", n)).unwrap_or_default();
    format!(
        "[switch]\nname = \"{sw}\"\nworkers = 1\n{networks}{}{a}",
        host("b", b_nets)
    )
}

/// Host `b` on "lan" (10.79.1.0/24, the switch at .1) and, when `with_a`,
/// host `a` on "lan" and on "bare" (a network without a subnet).
fn toml(sw: &str, with_a: bool) -> String {
    let nets = r#"[[network]]
name = "lan"
subnet = "10.79.1.0/24"
address = "10.79.1.1"
[[network]]
name = "bare"
"#;
    lab_toml(sw, nets, r#""lan""#, with_a.then_some(r#""lan", "bare""#))
}

/// (MAC, IPv4 addresses with prefix) of `ifname` in namespace `ns`, as the
/// kernel has them.
fn link_of(ns: &str, ifname: &str) -> Result<(String, Vec<String>), String> {
    let out = run("ip", &["-n", ns, "-j", "addr", "show", "dev", ifname])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("ip -j addr: {e}: {out}"))?;
    let l = &v[0];
    let mac = l["address"]
        .as_str()
        .ok_or_else(|| format!("{ifname} in {ns} has no MAC: {out}"))?
        .to_string();
    let addrs = l["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["family"] == "inet")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or("?"), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default();
    Ok((mac, addrs))
}

fn attach_matches_the_file() -> TestResult {
    let sw = format!("sc1{:03}", run_id());
    let (a, b) = (format!("{sw}a"), format!("{sw}b"));
    let ns = vec![a.clone(), b.clone()];

    // Host a written in the file.
    let mut swg = Switch::up_toml(&sw, &toml(&sw, true), &ns)?;
    let from_file = [link_of(&a, "eth0")?, link_of(&a, "eth1")?];
    ping(&b, "10.79.1.3")?;
    swg.down()?;
    drop(swg);

    // The same host attached at run time, to the same networks in the
    // same order.
    let swg = Switch::up_toml(&sw, &toml(&sw, false), &ns)?;
    let said = swg.cmd(&["attach", &a, "lan"])?;
    ensure!(said.contains("10.79.1.3/24"), "attach a lan said: {said}");
    swg.cmd(&["attach", &a, "bare"])?;
    let attached = [link_of(&a, "eth0")?, link_of(&a, "eth1")?];
    ensure!(
        attached == from_file,
        "a attached: {attached:?}; a in the file: {from_file:?}"
    );
    // The documented derivations (docs/topology.md): 02:42 and the
    // address; 02:43 and a hash of HOST.NETWORK without one.
    ensure!(
        from_file[0].0 == "02:42:0a:4f:01:03" && from_file[0].1 == ["10.79.1.3/24"],
        "a on lan: {:?}",
        from_file[0]
    );
    ensure!(
        from_file[1].0.starts_with("02:43:") && from_file[1].1.is_empty(),
        "a on bare: {:?}",
        from_file[1]
    );
    ping(&b, "10.79.1.3")?;
    // The FDB sees the MAC the host has.
    ping(&a, "10.79.1.2")?;
    let fdb = swg.fdb()?;
    ensure!(
        fdb.0
            .iter()
            .any(|e| e.mac == attached[0].0 && e.port == format!("{a}.lan")),
        "a's MAC not learned on {a}.lan: {:?}",
        fdb.0
    );
    Ok(())
}

/// A VXLAN network "ov" over the underlay port "ul" (in namespace `{sw}u`),
/// host `b` on it and, when `with_a`, host `a` too.
fn vxlan_toml(sw: &str, with_a: bool) -> String {
    let nets = format!(
        r#"[[network]]
name = "ov"
subnet = "10.79.2.0/24"
vni = 4242
[vtep]
port = "ul"
address = "192.0.2.41/24"
[[port]]
name = "ul"
namespace = "{sw}u"
"#
    );
    lab_toml(sw, &nets, r#""ov""#, with_a.then_some(r#""ov""#))
}

/// The MTU of `ifname` in namespace `ns`, as the kernel has it.
fn mtu_of(ns: &str, ifname: &str) -> Result<u64, String> {
    let out = run("ip", &["-n", ns, "-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("ip -j link: {e}: {out}"))?;
    v[0]["mtu"]
        .as_u64()
        .ok_or_else(|| format!("{ifname} in {ns} has no MTU: {out}"))
}

/// A host attached at run time to a VXLAN network gets the MTU the same
/// host in the file gets: the underlay's minus the encapsulation.
fn attach_vxlan_mtu_matches_the_file() -> TestResult {
    let sw = format!("sc2{:03}", run_id());
    let (a, b, u) = (format!("{sw}a"), format!("{sw}b"), format!("{sw}u"));
    let ns = vec![a.clone(), b.clone(), u];

    let mut swg = Switch::up_toml(&sw, &vxlan_toml(&sw, true), &ns)?;
    let from_file = (mtu_of(&a, "eth0")?, mtu_of(&b, "eth0")?);
    swg.down()?;
    drop(swg);

    let swg = Switch::up_toml(&sw, &vxlan_toml(&sw, false), &ns)?;
    let said = swg.cmd(&["attach", &a, "ov"])?;
    let attached = mtu_of(&a, "eth0")?;
    ensure!(
        attached == from_file.0,
        "a attached has MTU {attached}; a in the file {}",
        from_file.0
    );
    ensure!(
        from_file == (1450, 1450),
        "hosts on a VXLAN network over a 1500-byte underlay: {from_file:?}"
    );
    ensure!(said.contains("10.79.2.2/24"), "attach a ov said: {said}");
    ping(&b, "10.79.2.2")?;
    Ok(())
}
