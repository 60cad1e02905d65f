//! `shunt capture`: pcapng read back by the real tools (tcpdump, tshark):
//! a ping between two hosts seen on every port with the switch's decision
//! on each packet, dropped frames with their reason (`--drops`), a live
//! `-w - | tcpdump -r -`, Ctrl-C ending with a whole file, filters, and
//! a flood captured on every port: records lost and counted, every record
//! accounted for.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{exec, run_timeout, Switch, TestResult, Topology, SHUNT};
use crate::l2::Test;
use shunt_tools::{FrameBuilder, MacAddr, RawPort};

pub fn tests() -> Vec<Test> {
    vec![
        ("capture::ping_on_every_port", ping_on_every_port),
        ("capture::drops_with_their_reason", drops_with_their_reason),
        ("capture::live_to_tcpdump", live_to_tcpdump),
        ("capture::filters", filters),
        (
            "capture::json_lines_without_a_descriptor",
            json_lines_without_a_descriptor,
        ),
        (
            "capture::flood_of_every_port_loses_only_records",
            flood_of_every_port_loses_only_records,
        ),
    ]
}

/// Whether tshark is here (scripts/setup.sh installs it).
fn tshark() -> Result<(), String> {
    Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("tshark is missing (scripts/setup.sh installs it): {e}"))
        .map(|_| ())
}

/// A pcapng file of the test's own, removed on drop.
struct File(PathBuf);

impl File {
    fn new(sw: &Switch, what: &str) -> File {
        File(std::env::temp_dir().join(format!(
            "shunt-e2e-{}-{what}-{}.pcapng",
            sw.name,
            std::process::id()
        )))
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running `shunt capture`, killed on drop if still running.
struct Capture {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Capture {
    /// Starts `shunt capture ARGS` and waits until it says it captures
    /// (a capture just ended may hold the switch for a few milliseconds).
    fn start(sw: &Switch, args: &[&str]) -> Result<Capture, String> {
        let t = Instant::now();
        loop {
            match Capture::try_start(sw, args) {
                Err(e) if e.contains("already running") && t.elapsed() < Duration::from_secs(2) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                r => return r,
            }
        }
    }

    fn try_start(sw: &Switch, args: &[&str]) -> Result<Capture, String> {
        let mut child = Command::new(SHUNT)
            .arg("capture")
            .args(["--name", &sw.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("shunt capture: {e}"))?;
        let err = child.stderr.take().ok_or("no stderr")?;
        let mut stderr = BufReader::new(err);
        let mut line = String::new();
        stderr
            .read_line(&mut line)
            .map_err(|e| format!("shunt capture's stderr: {e}"))?;
        ensure_s(
            line.starts_with("capturing "),
            format!("shunt capture {args:?} did not start: {line:?}"),
        )?;
        Ok(Capture { child, stderr })
    }

    /// Waits for it to end (at most `within`); its last words.
    fn wait(mut self, within: Duration) -> Result<String, String> {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                let mut rest = String::new();
                let _ = self.stderr.read_to_string(&mut rest);
                ensure_s(
                    st.success(),
                    format!("shunt capture ended with {st}: {rest}"),
                )?;
                return Ok(rest);
            }
            if t.elapsed() > within {
                return Err("shunt capture did not end in time".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, as a user gives it.
    fn interrupt(self) -> Result<String, String> {
        let pid = self.child.id().to_string();
        run_timeout("kill", &["-INT", &pid], Duration::from_secs(5))?;
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_s(cond: bool, msg: String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg)
    }
}

/// tshark's fields of every packet of `file` (tab-separated, one row each).
fn fields(file: &File, filter: &str, names: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let mut args = vec!["-r".to_string(), file.path(), "-T".into(), "fields".into()];
    if !filter.is_empty() {
        args.extend(["-Y".into(), filter.into()]);
    }
    for n in names {
        args.extend(["-e".into(), n.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_timeout("tshark", &args, Duration::from_secs(60))?;
    // The direction flag reads as 0x00000001: 1 in, 2 out.
    let norm = |f: &str| match f.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).map_or(f.to_string(), |n| n.to_string()),
        None => f.to_string(),
    };
    Ok(out
        .lines()
        .map(|l| l.split('\t').map(norm).collect())
        .collect())
}

/// `tcpdump -n -r FILE FILTER`, its lines.
fn tcpdump(file: &File, filter: &str) -> Result<Vec<String>, String> {
    let p = file.path();
    let mut args = vec!["-n", "-r", &p];
    if !filter.is_empty() {
        args.push(filter);
    }
    let out = run_timeout("tcpdump", &args, Duration::from_secs(30))?;
    Ok(out.lines().map(str::to_string).collect())
}

fn ping(from: &str, to: &str, n: u32) -> Result<String, String> {
    let n = n.to_string();
    exec(from, &["ping", "-c", &n, "-i", "0.2", "-W", "2", to])
}

fn ping_on_every_port() -> TestResult {
    tshark()?;
    let topo = Topology::new(90, 3);
    let sw = Switch::up(&topo)?;
    let [a, b, c] = [&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]];
    let file = File::new(&sw, "all");
    let cap = Capture::start(&sw, &["-w", &file.path()])?;
    let out = ping(&a.name, b.ip(), 3)?;
    ensure!(
        out.contains("3 packets transmitted, 3 received"),
        "ping: {out}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let said = cap.interrupt()?;
    ensure!(
        said.contains("packets captured"),
        "shunt capture said: {said}"
    );

    // Exactly what the hosts sent and received: each echo in on its
    // sender's port and out of its receiver's.
    let icmp = tcpdump(&file, "icmp")?;
    let req = icmp.iter().filter(|l| l.contains("echo request")).count();
    let rep = icmp.iter().filter(|l| l.contains("echo reply")).count();
    ensure!(
        (req, rep) == (6, 6),
        "tcpdump -r saw {req} echo requests and {rep} replies, want 6 and 6: {icmp:#?}"
    );
    let rows = fields(
        &file,
        "icmp",
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "icmp.type",
            "frame.comment",
        ],
    )?;
    ensure!(rows.len() == 12, "tshark rows: {rows:#?}");
    let (ap, bp) = (a.port(), b.port());
    for r in &rows {
        let [iface, dir, ty, comment] = &r[..] else {
            return Err(format!("tshark row: {r:?}").into());
        };
        // A request goes in at a and out at b; a reply the other way.
        let want = match (ty.as_str(), dir.as_str()) {
            ("8", "1") | ("0", "2") => &ap,
            ("8", "2") | ("0", "1") => &bp,
            _ => return Err(format!("unexpected row: {r:?}").into()),
        };
        ensure!(iface == want, "row on {iface}, want {want}: {r:?}");
        let to = if ty == "8" { &bp } else { &ap };
        ensure!(
            comment.contains(&format!("learned in lan: sent to {to}")),
            "comment without the decision: {r:?}"
        );
    }
    // The ARP broadcast was flooded, and its copy seen on c's port too.
    let arp = fields(
        &file,
        "arp.opcode == 1",
        &["frame.interface_name", "frame.comment"],
    )?;
    let on_c = arp.iter().any(|r| r[0] == c.port());
    ensure!(on_c, "no flooded ARP request on {}: {arp:#?}", c.port());
    ensure!(
        arp.iter()
            .all(|r| r[1].contains(&format!("broadcast in lan: flooded to {bp}, {}", c.port()))),
        "ARP request comments: {arp:#?}"
    );
    Ok(())
}

fn drops_with_their_reason() -> TestResult {
    tshark()?;
    // An FDB of 3: a, b and one more MAC; a fourth is not learned.
    let topo = Topology::new(91, 2).max_entries(3);
    let sw = Switch::up(&topo)?;
    let [a, b] = [&topo.hosts[0], &topo.hosts[1]];
    let mut pa = RawPort::open(&a.name, "eth0").map_err(|e| e.to_string())?;
    let mut pb = RawPort::open(&b.name, "eth0").map_err(|e| e.to_string())?;
    let frame = |dst: MacAddr, src: MacAddr| FrameBuilder::new(dst, src).ethertype(0x88b5);
    let local = shunt_tools::test_mac(91, 7, 7);
    pb.send(&frame(MacAddr::BROADCAST, b.mac).build())
        .map_err(|e| e.to_string())?;
    pa.send(&frame(MacAddr::BROADCAST, local).build())
        .map_err(|e| e.to_string())?;
    pa.send(&frame(MacAddr::BROADCAST, a.mac).build())
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));

    let file = File::new(&sw, "drops");
    let cap = Capture::start(
        &sw,
        &[
            "--drops",
            "--count",
            "4",
            "--seconds",
            "20",
            "-w",
            &file.path(),
        ],
    )?;
    let stimuli = [
        // Tagged 99 on an access port.
        frame(MacAddr::BROADCAST, a.mac).vlan(99, 0).build(),
        // A multicast source.
        frame(MacAddr::BROADCAST, MacAddr([0x01, 0, 0x5e, 0, 0, 9])).build(),
        // To a MAC learned on the ingress port.
        frame(local, a.mac).build(),
        // A forwarded frame, which no --drops capture takes.
        frame(b.mac, a.mac).build(),
        // A new source with the FDB full: forwarded, not learned.
        frame(b.mac, shunt_tools::test_mac(91, 8, 8)).build(),
    ];
    for f in &stimuli {
        pa.send(f).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(50));
    }
    let said = cap.wait(Duration::from_secs(20))?;
    ensure!(
        said.contains("4 packets captured"),
        "shunt capture said: {said}"
    );
    let rows = fields(
        &file,
        "",
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "frame.comment",
        ],
    )?;
    ensure!(rows.len() == 4, "tshark rows: {rows:#?}");
    for (r, reason) in rows.iter().zip([
        "dropped (vlan_not_allowed)",
        "dropped (src_multicast)",
        "dropped (same_port)",
        "fdb_full",
    ]) {
        ensure!(
            r[0] == a.port() && r[1] == "1",
            "not inbound on {}: {r:?}",
            a.port()
        );
        ensure!(r[2].contains(reason), "comment without {reason:?}: {r:?}");
    }
    // As received: the tag that got the frame dropped is still there.
    let tagged = tcpdump(&file, "vlan 99")?;
    // (tcpdump dumps an unknown payload on lines of its own, indented.)
    let n = tagged.iter().filter(|l| !l.starts_with('\t')).count();
    ensure!(n == 1, "tcpdump -r 'vlan 99': {tagged:#?}");
    Ok(())
}

fn live_to_tcpdump() -> TestResult {
    let topo = Topology::new(92, 2);
    let sw = Switch::up(&topo)?;
    let [a, b] = [&topo.hosts[0], &topo.hosts[1]];
    // Learned first, so that the capture holds only the echoes.
    ping(&a.name, b.ip(), 1)?;
    let pipe = format!(
        "{SHUNT} capture --name {} {} --ethertype ipv4 --count 6 --seconds 20 -w - | tcpdump -n -l -r -",
        sw.name,
        a.port()
    );
    let mut child = Command::new("sh")
        .args(["-c", &pipe])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sh -c {pipe}: {e}"))?;
    std::thread::sleep(Duration::from_millis(700));
    let pinged = ping(&a.name, b.ip(), 3);
    let out = child.stdout.take().ok_or("no stdout")?;
    // Lines come while the capture runs: tcpdump reads the stream live.
    let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
    let st = child.wait().map_err(|e| e.to_string())?;
    pinged?;
    ensure!(st.success(), "the pipe ended with {st}");
    let req = lines.iter().filter(|l| l.contains("echo request")).count();
    let rep = lines.iter().filter(|l| l.contains("echo reply")).count();
    ensure!(
        (req, rep) == (3, 3),
        "tcpdump -r - printed {req} requests and {rep} replies: {lines:#?}"
    );
    Ok(())
}

fn filters() -> TestResult {
    tshark()?;
    let topo = Topology::new(93, 3);
    let sw = Switch::up(&topo)?;
    let [a, b] = [&topo.hosts[0], &topo.hosts[1]];
    let arp = File::new(&sw, "arp");
    let cap = Capture::start(&sw, &["--ethertype", "arp", "-w", &arp.path()])?;
    // One capture at a time.
    let busy = Command::new(SHUNT)
        .args(["capture", "--name", &sw.name, "-w", "/dev/null"])
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&busy.stderr);
    ensure!(
        !busy.status.success() && err.contains("a capture is already running"),
        "a second capture: {} {err}",
        busy.status
    );
    ping(&a.name, b.ip(), 2)?;
    cap.interrupt()?;
    let lines = tcpdump(&arp, "")?;
    ensure!(
        lines.len() >= 2 && lines.iter().all(|l| l.contains("ARP")),
        "--ethertype arp: {lines:#?}"
    );

    // Known unicast as received, from or to b: the echoes and b's ARP reply.
    let uni = File::new(&sw, "unicast");
    let cap = Capture::start(
        &sw,
        &[
            "--decision",
            "unicast",
            "--direction",
            "in",
            "--mac",
            &b.mac.to_string(),
            "-w",
            &uni.path(),
        ],
    )?;
    ping(&a.name, b.ip(), 2)?;
    std::thread::sleep(Duration::from_millis(200));
    cap.interrupt()?;
    let rows = fields(
        &uni,
        "",
        &["frame.packet_flags_direction", "icmp.type", "frame.comment"],
    )?;
    let echoes = rows.iter().filter(|r| !r[1].is_empty()).count();
    ensure!(echoes == 4, "echoes in a unicast capture: {rows:#?}");
    ensure!(
        rows.iter()
            .all(|r| r[0] == "1" && r[2].contains("learned in lan: sent to")),
        "not all inbound known unicast: {rows:#?}"
    );
    Ok(())
}

/// "N packets captured" and "M packets not captured" (0 if not said) in
/// what `shunt capture` said at the end.
fn counts(said: &str) -> Result<(u64, u64), String> {
    let num = |line: &dyn Fn(&str) -> bool| {
        said.lines()
            .find(|l| line(l))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
    };
    let captured = num(&|l| l.ends_with(" captured") && !l.contains(" not "))
        .ok_or(format!("no count in {said:?}"))?;
    Ok((
        captured,
        num(&|l| l.contains(" not captured: ")).unwrap_or(0),
    ))
}

/// Issue 14's cost: under a flood captured on every port, the capture
/// loses records (the writer runs at SCHED_IDLE: only spare CPU), says how
/// many, and captured + lost is every record: each frame in on each port,
/// each copy out. The file is whole: tshark reads every packet, with its
/// interface name and comment.
fn flood_of_every_port_loses_only_records() -> TestResult {
    tshark()?;
    let topo = Topology::new(190, 2);
    let sw = Switch::up(&topo)?;
    let [a, b] = [&topo.hosts[0], &topo.hosts[1]];
    // Nothing but the flood: no IPv6 chatter (router solicitations, MLD)
    // between the counters read before and after.
    for h in [a, b] {
        exec(
            &h.name,
            &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        )?;
    }
    let mut pa = RawPort::open(&a.name, "eth0").map_err(|e| e.to_string())?;
    let mut pb = RawPort::open(&b.name, "eth0").map_err(|e| e.to_string())?;
    let frame = |dst: MacAddr, src: MacAddr| FrameBuilder::new(dst, src).ethertype(0x88b5);
    pb.send(&frame(MacAddr::BROADCAST, b.mac).build())
        .map_err(|e| e.to_string())?;
    pa.send(&frame(MacAddr::BROADCAST, a.mac).build())
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1500));

    let records = |st: &crate::harness::Stats| -> u64 {
        [a.port(), b.port()]
            .iter()
            .map(|p| st.port(p, "rx_frames") + st.port(p, "tx_frames"))
            .sum()
    };
    let file = File::new(&sw, "flood");
    let before = sw.stats()?;
    let cap = Capture::start(&sw, &["--seconds", "4", "-w", &file.path()])?;
    // Known unicast from a to b, 64 bytes, as fast as a packet socket
    // sends, for two seconds.
    let unicast = frame(b.mac, a.mac).build();
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < Duration::from_secs(2) {
        for _ in 0..256 {
            // A full queue in the kernel refuses some: not the switch's.
            if pa.send(&unicast).is_ok() {
                sent += 1;
            }
        }
    }
    let said = cap.wait(Duration::from_secs(120))?;
    let after = sw.stats()?;
    let (captured, lost) = counts(&said)?;
    let want = records(&after) - records(&before);
    ensure!(
        lost > 0 && said.contains("packets not captured: the reader was too slow"),
        "a flood of {sent} frames lost no record? {said}"
    );
    ensure!(
        captured + lost == want,
        "captured {captured} + lost {lost} = {}, but the ports counted {want} frames in and out ({sent} sent): {said}",
        captured + lost
    );
    let forwarded = after.port(&b.port(), "tx_frames") - before.port(&b.port(), "tx_frames");
    ensure!(
        forwarded > 1000,
        "only {forwarded} of {sent} frames forwarded"
    );
    // Every packet in the file, each on a named interface with the
    // switch's words.
    let rows = fields(&file, "", &["frame.interface_name", "frame.comment"])?;
    ensure!(
        rows.len() as u64 == captured,
        "tshark read {} packets, shunt capture said {captured}",
        rows.len()
    );
    let (ap, bp) = (a.port(), b.port());
    let sent_to_b = format!("learned in lan: sent to {bp}");
    for r in &rows {
        ensure!(
            r.len() == 2 && (r[0] == ap || r[0] == bp) && r[1].contains(&sent_to_b),
            "row without its interface or decision: {r:?}"
        );
    }
    Ok(())
}

/// The protocol for a client that passes no descriptor (a script on the
/// socket, docs/capture.md "The protocol"): start, a `packet` line per
/// packet with the bytes in hex and the comment, end with the counts.
fn json_lines_without_a_descriptor() -> TestResult {
    use std::io::Write;
    let topo = Topology::new(191, 2);
    let sw = Switch::up(&topo)?;
    let [a, b] = [&topo.hosts[0], &topo.hosts[1]];
    let mut pa = RawPort::open(&a.name, "eth0").map_err(|e| e.to_string())?;
    let mut pb = RawPort::open(&b.name, "eth0").map_err(|e| e.to_string())?;
    let frame = |dst: MacAddr, src: MacAddr| FrameBuilder::new(dst, src).ethertype(0x88b5);
    pb.send(&frame(MacAddr::BROADCAST, b.mac).build())
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));

    let sock = crate::harness::socket_path(&sw.name);
    let mut s = std::os::unix::net::UnixStream::connect(&sock)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    s.write_all(
        b"{\"cmd\": \"capture\", \"ethertype\": \"0x88b5\", \"count\": 2, \"seconds\": 15}\n",
    )
    .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(s.try_clone().map_err(|e| e.to_string())?).lines();
    let mut next = || -> Result<serde_json::Value, String> {
        let l = lines
            .next()
            .ok_or("the switch closed the socket")?
            .map_err(|e| format!("reading the capture: {e}"))?;
        serde_json::from_str(&l).map_err(|e| format!("not JSON ({e}): {l}"))
    };
    let start = next()?;
    ensure!(start["event"] == "start", "first line: {start}");
    let sent = frame(b.mac, a.mac).build();
    pa.send(&sent).map_err(|e| e.to_string())?;
    let mut packets = Vec::new();
    let end = loop {
        let v = next()?;
        match v["event"].as_str() {
            Some("packet") => packets.push(v),
            Some("progress") => {}
            Some("end") => break v,
            _ => return Err(format!("unexpected line: {v}").into()),
        }
    };
    ensure!(
        end["packets"] == 2 && end["lost"] == 0,
        "end: {end}, packets: {packets:#?}"
    );
    let hex: String = sent[..12].iter().map(|x| format!("{x:02x}")).collect();
    let want = [("in", a.port()), ("out", b.port())];
    ensure!(packets.len() == 2, "packets: {packets:#?}");
    for (p, (dir, port)) in packets.iter().zip(want) {
        ensure!(
            p["dir"] == dir
                && p["interface"] == port.as_str()
                && p["data"].as_str().is_some_and(|d| d.starts_with(&hex))
                && p["comment"]
                    .as_str()
                    .is_some_and(|c| c.contains(&format!("sent to {}", b.port()))),
            "want {dir} on {port} with the frame's bytes and decision: {p}"
        );
    }
    Ok(())
}
