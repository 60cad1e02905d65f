//! The switch's own addresses, end to end: ARP and ping to the switch,
//! the embedded DNS responder asked with `dig` and used by `ping NAME`
//! through the /etc/netns/HOST/resolv.conf that `shunt up` writes,
//! forwarding to an upstream resolver, garbage on port 53, and ARP
//! suppression checked with tcpdump on a bystander.
//!
//! Names: switch `sdTTRRR` (TT the test's tag, RRR the run id), hosts
//! `sdTTRRRa`, ...; subnets 10.79.TT.0/24 (lan) and 10.79.(TT+100).0/24.

use std::time::Duration;

use crate::ensure;
use crate::harness::{exec, run_id, run_timeout, Switch, Tcpdump, TestResult, SHUNT};

pub fn tests() -> Vec<crate::l2::Test> {
    vec![
        ("dns::names_answered", names_answered),
        (
            "dns::ping_by_name_and_resolv_conf",
            ping_by_name_and_resolv_conf,
        ),
        (
            "dns::switch_answers_arp_and_ping",
            switch_answers_arp_and_ping,
        ),
        ("dns::garbage_then_answers", garbage_then_answers),
        ("dns::forwarded_to_upstream", forwarded_to_upstream),
        ("dns::arp_suppression", arp_suppression),
        (
            "dns::attached_hosts_appear_at_once",
            attached_hosts_appear_at_once,
        ),
    ]
}

/// The libtest-mimic trials of this file (for a harness that wants them
/// ready-made; main.rs maps `tests()` itself to say "skipped").
#[allow(dead_code)]
pub fn trials() -> Vec<libtest_mimic::Trial> {
    tests()
        .into_iter()
        .map(|(n, t)| libtest_mimic::Trial::test(n, t))
        .collect()
}

struct Lab {
    sw: Switch,
    /// Hosts: a and b on lan (alias "web" on both), c on blue only.
    a: String,
    b: String,
    c: String,
    /// The switch's address on lan, and the hosts' addresses there.
    gw: String,
    gw_blue: String,
    ip_a: String,
    ip_b: String,
    domain: String,
}

/// Brings up a two-network lab for test `tag`; `extra` is appended to the
/// lan network's table (arp_suppress, dns_upstream...), `more` to the file.
/// The hosts a, b, c are plugged in as the running variant says (TAP, or
/// veth with AF_XDP or a packet socket), under its number of workers.
fn lab(tag: u8, extra: &str, more: &str) -> Result<Lab, String> {
    let v = crate::harness::variant();
    let name = format!("sd{tag:02}{}{:03}", v.idx, run_id());
    let link = v.host_keys();
    let workers = v.workers;
    let (a, b, c) = (format!("{name}a"), format!("{name}b"), format!("{name}c"));
    let domain = format!("{name}.test");
    let blue = tag as u16 + 100;
    let toml = format!(
        r#"[switch]
name = "{name}"
workers = {workers}

[[network]]
name = "lan"
subnet = "10.79.{tag}.0/24"
address = "10.79.{tag}.1"
domain = "{domain}"
{extra}

[[network]]
name = "blue"
subnet = "10.79.{blue}.0/24"
address = "10.79.{blue}.1"

[[host]]
name = "{a}"
networks = ["lan"]
ip = ["10.79.{tag}.11/24"]
aliases = ["web"]
{link}

[[host]]
name = "{b}"
networks = ["lan"]
ip = ["10.79.{tag}.12/24"]
aliases = ["web"]
{link}

[[host]]
name = "{c}"
networks = ["blue"]
ip = ["10.79.{blue}.13/24"]
{link}
{more}"#
    );
    let mut ns = vec![a.clone(), b.clone(), c.clone()];
    // Hosts of `more` are namespaces the switch creates too.
    ns.extend(
        more.split("name = \"")
            .skip(1)
            .filter_map(|x| x.split('"').next())
            .map(str::to_string),
    );
    let sw = Switch::up_toml(&name, &toml, &ns)?;
    Ok(Lab {
        sw,
        a,
        b,
        c,
        gw: format!("10.79.{tag}.1"),
        gw_blue: format!("10.79.{blue}.1"),
        ip_a: format!("10.79.{tag}.11"),
        ip_b: format!("10.79.{tag}.12"),
        domain,
    })
}

/// What `dig` said: status and the answer section's data.
#[derive(Debug)]
struct Dig {
    status: String,
    answers: Vec<String>,
    flags: String,
}

fn dig(host: &str, server: &str, args: &[&str]) -> Result<Dig, String> {
    let at = format!("@{server}");
    let mut cmd = vec![
        "dig",
        at.as_str(),
        "+noall",
        "+comments",
        "+answer",
        "+tries=1",
        "+time=2",
    ];
    cmd.extend_from_slice(args);
    let out = exec(host, &cmd)?;
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string();
    let flags = out
        .split("flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .to_string();
    let answers = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    if status.is_empty() {
        return Err(format!("dig {args:?} got no answer: {out}"));
    }
    Ok(Dig {
        status,
        answers,
        flags,
    })
}

fn names_answered() -> TestResult {
    let l = lab(1, "", "")?;
    let (a, gw) = (&l.a, &l.gw);
    // Host name, name.network, name.domain, any case.
    for q in [
        l.b.clone(),
        format!("{}.lan", l.b),
        format!("{}.{}", l.b, l.domain),
        l.b.to_uppercase(),
    ] {
        let d = dig(a, gw, &[&q])?;
        ensure!(
            d.status == "NOERROR" && d.answers == vec![l.ip_b.clone()],
            "{q}: {d:?}"
        );
        ensure!(d.flags.contains("aa"), "{q}: not authoritative: {d:?}");
    }
    // An alias two hosts carry: both addresses, rotated.
    let d1 = dig(a, gw, &["web"])?;
    let d2 = dig(a, gw, &["web"])?;
    let mut all = d1.answers.clone();
    all.sort();
    ensure!(
        all == vec![l.ip_a.clone(), l.ip_b.clone()],
        "web should have both addresses: {d1:?}"
    );
    ensure!(
        d1.answers.first() != d2.answers.first(),
        "the order should rotate: {d1:?} then {d2:?}"
    );
    // IPv4-only host: AAAA is an empty NOERROR.
    let d = dig(a, gw, &[&l.b, "AAAA"])?;
    ensure!(d.status == "NOERROR" && d.answers.is_empty(), "AAAA: {d:?}");
    // Unknown in the domain: NXDOMAIN; outside with no upstream: SERVFAIL.
    let d = dig(a, gw, &[&format!("nosuch.{}", l.domain)])?;
    ensure!(d.status == "NXDOMAIN", "nosuch: {d:?}");
    let d = dig(a, gw, &["example.com"])?;
    ensure!(d.status == "SERVFAIL", "example.com: {d:?}");
    // A name of another network is not answered here.
    for q in [l.c.clone(), format!("{}.blue", l.c)] {
        let d = dig(a, gw, &[&q])?;
        ensure!(
            d.answers.is_empty() && d.status != "NOERROR",
            "{q} is on blue only, yet lan answered: {d:?}"
        );
    }
    // ...but it is on its own network.
    let d = dig(&l.c, &l.gw_blue, &[&l.c])?;
    ensure!(
        d.status == "NOERROR" && d.answers.len() == 1,
        "c on blue: {d:?}"
    );
    // PTR.
    let d = dig(a, gw, &["-x", &l.ip_b])?;
    ensure!(
        d.answers == vec![format!("{}.{}.", l.b, l.domain)],
        "PTR: {d:?}"
    );
    // EDNS0 with a large buffer and a cookie (dig's default) is echoed.
    let out = exec(a, &["dig", &format!("@{gw}"), &l.b, "+tries=1", "+time=2"])?;
    ensure!(out.contains("OPT PSEUDOSECTION"), "no OPT echoed: {out}");
    // `shunt dns --json` lists what is served.
    let out = l.sw.cmd(&["dns", "--json"])?;
    let rows: Vec<shunt_switch::control::proto::DnsName> =
        serde_json::from_str(&out).map_err(|e| format!("shunt dns --json: {e}: {out}"))?;
    ensure!(
        rows.iter()
            .any(|r| r.name == l.b && r.network == "lan" && r.addresses.first() == Some(&l.ip_b)),
        "shunt dns does not list {}: {out}",
        l.b
    );
    let lan_only = l.sw.cmd(&["dns", "--network", "lan"])?;
    ensure!(
        !lan_only.contains(&l.c),
        "--network lan lists {}: {lan_only}",
        l.c
    );
    Ok(())
}

fn ping_by_name_and_resolv_conf() -> TestResult {
    let mut l = lab(2, "", "")?;
    let conf = format!("/etc/netns/{}/resolv.conf", l.a);
    let text = std::fs::read_to_string(&conf).map_err(|e| format!("{conf}: {e}"))?;
    ensure!(
        text.contains(&format!("nameserver {}", l.gw)),
        "resolv.conf: {text}"
    );
    // ping resolves through the switch (search list: domain, network).
    exec(&l.a, &["ping", "-c", "2", "-W", "2", "-q", &l.b])
        .map_err(|e| format!("ping {} by name: {e}", l.b))?;
    exec(
        &l.a,
        &["ping", "-c", "1", "-W", "2", "-q", &format!("{}.lan", l.b)],
    )?;
    // `shunt exec` sees the same resolver.
    let out = run_timeout(
        SHUNT,
        &["exec", &l.a, "--", "getent", "hosts", "web"],
        Duration::from_secs(20),
    )?;
    ensure!(
        out.contains(&l.ip_a) || out.contains(&l.ip_b),
        "getent hosts web: {out}"
    );
    l.sw.down()?;
    ensure!(
        !std::path::Path::new(&conf).exists(),
        "{conf} is still there after down"
    );
    Ok(())
}

fn switch_answers_arp_and_ping() -> TestResult {
    let l = lab(3, "", "")?;
    let out = exec(&l.a, &["arping", "-c", "2", "-w", "4", &l.gw])?;
    ensure!(
        out.contains("Received 2 response") || out.contains("2 response"),
        "arping: {out}"
    );
    exec(
        &l.a,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "-q", &l.gw],
    )?;
    // A large ping too (smoltcp echoes the payload).
    exec(
        &l.a,
        &["ping", "-c", "1", "-s", "1400", "-W", "2", "-q", &l.gw],
    )?;
    Ok(())
}

/// Random bytes, a header claiming more records than present, a
/// compression pointer loop, a truncated question: then a normal query.
const GARBAGE: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = (sys.argv[1], 53)
n = 0
for i in range(200):
    s.sendto(os.urandom(i % 97 + 1), dst); n += 1
s.sendto(bytes.fromhex("abcd01000001000500000003") + b"\x03web\x00\x00\x01\x00\x01", dst); n += 1
s.sendto(bytes.fromhex("abce01000001000000000000") + b"\xc0\x0c\x00\x01\x00\x01", dst); n += 1
s.sendto(bytes.fromhex("abcf01000001000000000000") + b"\x01a\xc0\x0c\x00\x01\x00\x01", dst); n += 1
s.sendto(bytes.fromhex("abd001000001000000000000") + b"\x05ab", dst); n += 1
s.sendto(b"", dst); n += 1
print(n)
"#;

fn garbage_then_answers() -> TestResult {
    let l = lab(4, "", "")?;
    let sent = exec(&l.a, &["python3", "-c", GARBAGE, &l.gw])?;
    std::thread::sleep(Duration::from_millis(300));
    let d = dig(&l.a, &l.gw, &[&l.b])?;
    ensure!(
        d.answers == vec![l.ip_b.clone()],
        "after garbage ({}): {d:?}",
        sent.trim()
    );
    let st = l.sw.stats()?;
    let malformed = st.json["host"]["networks"]["lan"]["dns_malformed"]
        .as_u64()
        .unwrap_or(0);
    ensure!(
        malformed >= 150,
        "dns_malformed = {malformed}, expected most of the garbage counted: {}",
        st.json["host"]
    );
    Ok(())
}

/// A minimal upstream: answers every A query with 192.0.2.7.
const UPSTREAM: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    q, peer = s.recvfrom(1500)
    if len(q) < 12: continue
    i = 12
    while i < len(q) and q[i] != 0: i += q[i] + 1
    qend = i + 5
    r = q[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:qend]
    r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 7])
    s.sendto(r, peer)
"#;

fn forwarded_to_upstream() -> TestResult {
    let tag = 5;
    // The variant in the name too: the variants of a test may run at once.
    let up = format!(
        "sd{tag:02}{}{:03}u",
        crate::harness::variant().idx,
        run_id()
    );
    let more = format!(
        "\n[[host]]\nname = \"{up}\"\nnetworks = [\"lan\"]\nip = [\"10.79.{tag}.53/24\"]\n"
    );
    let l = lab(tag, &format!("dns_upstream = \"10.79.{tag}.53\""), &more)?;
    let _server = crate::harness::Background::spawn(
        "ip",
        &["netns", "exec", &up, "python3", "-c", UPSTREAM],
    )?;
    // Until it has bound port 53: python's start-up can take longer than
    // a fixed pause (a pyenv shim takes half a second on its own).
    let bound = || exec(&up, &["ss", "-Hlun", "sport = :53"]).is_ok_and(|o| !o.trim().is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !bound() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = dig(&l.a, &l.gw, &["outside.example"])?;
    ensure!(
        d.status == "NOERROR" && d.answers == vec!["192.0.2.7".to_string()],
        "forwarded: {d:?}"
    );
    // Our own names are still ours.
    let d = dig(&l.a, &l.gw, &[&l.b])?;
    ensure!(d.answers == vec![l.ip_b.clone()], "own name: {d:?}");
    // Unknown in the domain is NXDOMAIN, not forwarded.
    let d = dig(&l.a, &l.gw, &[&format!("nosuch.{}", l.domain)])?;
    ensure!(d.status == "NXDOMAIN", "nosuch: {d:?}");
    let st = l.sw.stats()?;
    ensure!(
        st.json["host"]["networks"]["lan"]["dns_forwarded"].as_u64() == Some(1),
        "dns_forwarded: {}",
        st.json["host"]
    );
    Ok(())
}

fn arp_suppression() -> TestResult {
    // A third host on lan watches; b stays silent (no ARP from it) so only
    // the switch can have answered.
    let tag = 6;
    let w = format!(
        "sd{tag:02}{}{:03}w",
        crate::harness::variant().idx,
        run_id()
    );
    let more =
        format!("\n[[host]]\nname = \"{w}\"\nnetworks = [\"lan\"]\nip = [\"10.79.{tag}.14/24\"]\n");
    let l = lab(tag, "arp_suppress = true", &more)?;
    let watch_w = Tcpdump::start(&w, "eth0")?;
    let watch_b = Tcpdump::start(&l.b, "eth0")?;
    let out = exec(&l.a, &["arping", "-c", "1", "-w", "3", &l.ip_b])?;
    ensure!(out.contains("1 response"), "arping {}: {out}", l.ip_b);
    std::thread::sleep(Duration::from_millis(300));
    let target = l
        .ip_b
        .split('.')
        .filter_map(|x| x.parse::<u8>().ok())
        .collect::<Vec<u8>>();
    let is_req_for_b = |f: &Vec<u8>| {
        f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 1] && f[38..42] == target[..]
    };
    let at_w = watch_w.stop()?;
    let at_b = watch_b.stop()?;
    ensure!(
        !at_w.iter().any(is_req_for_b),
        "the bystander saw the ARP request for {}",
        l.ip_b
    );
    ensure!(
        !at_b.iter().any(is_req_for_b),
        "the target itself saw the ARP request: it was flooded, not suppressed"
    );
    let st = l.sw.stats()?;
    let n = st.json["host"]["networks"]["lan"]["arp_suppressed"]
        .as_u64()
        .unwrap_or(0);
    ensure!(n >= 1, "arp_suppressed = {n}: {}", st.json["host"]);
    Ok(())
}

/// A host attached at run time is answered at once, on its network only,
/// with a resolver file of its own; once detached, its name is gone.
fn attached_hosts_appear_at_once() -> TestResult {
    let l = lab(7, "", "")?;
    let d = format!("{}d", l.sw.name);
    let out = l.sw.cmd(&["attach", &d, "lan"])?;
    // IPAM: the next free address after a (.11) and b (.12) is .2.
    let ip = out
        .split(" with ")
        .nth(1)
        .and_then(|x| x.split('/').next())
        .ok_or_else(|| format!("attach said: {out}"))?
        .to_string();
    let r = dig(&l.a, &l.gw, &[&d, "A"])?;
    ensure!(
        r.status == "NOERROR" && r.answers == vec![ip.clone()],
        "{d} A right after attach: {r:?}"
    );
    let r = dig(&l.c, &l.gw_blue, &[&d, "A"])?;
    ensure!(
        r.status != "NOERROR" || r.answers.is_empty(),
        "{d} answered on blue: {r:?}"
    );
    ensure!(
        std::path::Path::new(&format!("/etc/netns/{d}/resolv.conf")).exists(),
        "no resolv.conf for the attached host"
    );
    // The new host resolves names itself, through the switch.
    let out = exec(&d, &["getent", "hosts", &l.b])?;
    ensure!(
        out.contains(&l.ip_b),
        "getent hosts {} from {d}: {out}",
        l.b
    );
    l.sw.cmd(&["detach", &d, "lan"])?;
    let r = dig(&l.a, &l.gw, &[&format!("{d}.{}", l.domain), "A"])?;
    ensure!(r.status == "NXDOMAIN", "{d} after detach: {r:?}");
    Ok(())
}
