#!/usr/bin/env python3
"""The soak (issue 17): a switch under mixed traffic and churn for MINUTES,
then the checks. See perf/soak.sh (the entry point) and docs/reliability.md.

One switch `sk<pid>` with two workers and one network, nine hosts:

    a, b   TAP          TCP a -> b (iperf3, --rate)
    c, d   veth AF_XDP  TCP c -> d; UDP floods of small frames d -> c
                        (iperf3 -u -l 18: 60-byte frames)
    e      veth packet  a churn of 64k source MACs (raw socket), each round
                        of 65,536 new ones, to a's MAC; fdb_aging_secs 30
                        makes the table learn and age them out all along
    p, q   TAP          latency (ping -c 100 p -> q, at the start and at
                        the end), and q pings r all along
    r      TAP          deleted (`ip netns del`) under q's pings every
                        --recreate seconds, then detached and attached again
    x0-x2               attached, pinged from, detached, in a loop

and every --observe seconds a `shunt trace` and a `shunt capture` of 2 s.

Checks (each printed, PASS or FAIL; the exit status is 1 when one fails):
  - the same switch process all along (pid), its log without a panic;
  - every frame accounted per port, the kernel's counters (`ip -s link`
    inside the namespaces, and of the veths' outer ends) as the other side:
    what the host sent (tx_packets) = what shunt received + what the
    kernel dropped after counting it sent, each drop once: an AF_XDP
    socket's (rx_dropped, rx_ring_full: parts of the outer veth's
    rx_dropped), a packet socket's own, and what else the outer veth
    dropped beyond the host's tx_dropped (a frame the veth or a TAP
    refused is the host's tx_dropped and never in its tx_packets); and
    what shunt sent = what the host received + the outer veth's tx_dropped;
  - every UMEM frame accounted at the end (frames = pool + ports' caches +
    kernel rings, `umem` in `shunt stats --json`);
  - resident memory flat: after the warm-up (at least 2 minutes, and two
    whole-table dumps, a namespace recreated, a trace and a capture done),
    every RSS sample (four a second) within 5% of the median RSS of the
    warm-up's last minute; the switch's mappings (/proc/PID/smaps, every
    --smaps seconds) name what grew: each step of 1 MiB or more is logged
    with its mapping, the readings kept in /tmp/<switch>-maps.jsonl;
  - latency: the p50 of ping -c 100 p -> q at the end at most 1.5 x the
    p50 at the start + 0.1 ms (the machine is shared: noise of that order
    was seen between two idle runs), or else shunt's own share over a bare
    veth measured at the same moments within that bound;
  - `stats` answered within 1 s on the control socket (every 5 s, and 0.1 s
    into each whole-table dump, while the switch writes it).
Printed besides (INFO, not checks): the same requests timed with the
`shunt` command (its process's start included), the whole-table dumps'
times and sizes, the load average.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

TAGS = {"a": "tap", "b": "tap", "c": "afxdp", "d": "afxdp", "e": "packet",
        "p": "tap", "q": "tap", "r": "tap"}


def sh(*args, check=True, timeout=60):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def churn(args):
    """Runs inside host e's namespace: frames from 64k MACs per round, each
    round new ones, `rate` frames a second, to `dst`, until killed."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("eth0", 0))
    dst = bytes.fromhex(args.dst.replace(":", ""))
    body = struct.pack("!H", 0x88B5) + bytes(46)
    burst = 100
    gap = burst / args.pps
    n = 0
    t = time.monotonic()
    while True:
        rnd = (n >> 16) & 0xFF
        for _ in range(burst):
            src = bytes([0x02, 0x5F, rnd]) + (n & 0xFFFF).to_bytes(2, "big") + b"\x01"
            s.send(dst + src + body)
            n += 1
        t += gap
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)


class Soak:
    def __init__(self, a):
        self.a = a
        self.shunt = os.path.abspath(a.shunt)
        self.sw = f"sk{os.getpid() % 1000:03d}"
        self.net = 100 + os.getpid() % 100
        self.subnet = f"10.81.{self.net}"
        self.hosts = {h: f"{self.sw}{h}" for h in TAGS}
        self.extra = [f"{self.sw}x{i}" for i in range(3)]
        # A veth pair between two namespaces of their own, no switch: the
        # latency the machine's load alone gives, measured beside shunt's.
        self.ref = (f"{self.sw}k1", f"{self.sw}k2")
        self.procs = {}  # name -> Popen (our children; killed by pid)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failures = []
        self.events = {"attach_cycles": 0, "recreates": 0, "traces": 0,
                       "captures": 0, "restarts": 0, "ctl_errors": 0}
        # Seconds each control request took: on the socket, and with the
        # `shunt` process (its start included).
        self.times = {k: [] for k in ("stats_sock", "stats_cli", "stats_during_fdb",
                                      "fdb_sock", "fdb_cli")}
        self.fdb_done = 0
        self.t0 = time.monotonic()  # set again when the traffic starts
        self.rss = []  # (t, KiB)
        # The switch's mappings every --smaps seconds: (t, {(start, perms,
        # name): (size KiB, Rss KiB)}); a step in RSS is named by the
        # mapping that grew (a malloc arena's heap, [heap], a new mapping).
        self.maps = []
        self.steps = []  # (t, KiB, [what grew])
        self.stop_rss = threading.Event()
        self.loads = []  # 1-minute load average, every 5 s

    # --- set-up -----------------------------------------------------------
    def topology(self):
        s = (f'[switch]\nname = "{self.sw}"\nworkers = 2\nfdb_aging_secs = 30\n'
             f'fdb_max_entries = 262144\n\n[[network]]\nname = "lan"\n'
             f'subnet = "{self.subnet}.0/24"\naddress = "{self.subnet}.1"\n')
        for h, kind in TAGS.items():
            # Addresses by IPAM (.2, .3, ... in file order): r, detached and
            # attached again, gets its own back (the lowest free one).
            s += f'\n[[host]]\nname = "{self.hosts[h]}"\nnetworks = ["lan"]\n'
            if kind != "tap":
                s += f'link = "veth"\nveth_attach = "{kind}"\n'
        return s

    def ip(self, h):
        return f"{self.subnet}.{2 + list(TAGS).index(h)}"

    def mac(self, h):
        return "02:42:0a:51:%02x:%02x" % (self.net, 2 + list(TAGS).index(h))

    def ctl(self, *args, timeout=30):
        return sh(self.shunt, *args, "--name", self.sw, timeout=timeout)

    def up(self):
        sh(self.shunt, "down", "--name", self.sw, check=False)
        self.file = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        self.file.write(self.topology())
        self.file.close()
        k1, k2 = self.ref
        for ns in self.ref:
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", k1, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", k2)
        for i, ns in enumerate(self.ref):
            sh("ip", "-n", ns, "addr", "add", f"10.82.{self.net}.{i + 1}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        out = sh(self.shunt, "up", self.file.name, "--detach", timeout=120)
        self.pid = int(re.search(r"pid (\d+)", out).group(1))
        log(f"switch {self.sw} up, pid {self.pid}")

    def down(self):
        for name in list(self.procs):
            self.kill(name)
        sh(self.shunt, "down", "--name", self.sw, check=False, timeout=60)
        for ns in list(self.hosts.values()) + self.extra + list(self.ref):
            if os.path.exists(f"/run/netns/{ns}"):
                sh("ip", "netns", "del", ns, check=False)
        try:
            os.unlink(self.file.name)
        except (OSError, AttributeError):
            pass

    # --- background processes ---------------------------------------------
    def spawn(self, name, ns, *cmd):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        with self.lock:
            self.procs[name] = p
        return p

    def kill(self, name):
        with self.lock:
            p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def traffic(self):
        """The generators, (re)started when one has ended."""
        H, rate, secs = self.hosts, self.a.rate, 3600
        want = {
            "srv-b": (H["b"], "iperf3", "-s", "-B", self.ip("b")),
            "srv-d": (H["d"], "iperf3", "-s", "-B", self.ip("d")),
            "srv-c": (H["c"], "iperf3", "-s", "-B", self.ip("c"), "-p", "5202"),
            "tcp-ab": (H["a"], "iperf3", "-c", self.ip("b"), "-t", str(secs), "-b", rate),
            "tcp-cd": (H["c"], "iperf3", "-c", self.ip("d"), "-t", str(secs), "-b", rate),
            "udp-dc": (H["d"], "iperf3", "-c", self.ip("c"), "-p", "5202", "-u", "-l", "18",
                       "-b", self.a.udp_rate, "-t", str(secs)),
            "churn": (H["e"], sys.executable, os.path.abspath(__file__), "churn",
                      "--dst", self.mac("a"), "--pps", str(self.a.churn_rate)),
            "ping-qr": (H["q"], "ping", "-i", "0.05", "-W", "1", "-q", self.ip("r")),
        }
        first = True
        while not self.stop.is_set():
            for name, cmd in want.items():
                with self.lock:
                    p = self.procs.get(name)
                if p is None or p.poll() is not None:
                    if p is not None:
                        self.events["restarts"] += 1
                    self.spawn(name, cmd[0], *cmd[1:])
                    if first and name.startswith("srv"):
                        time.sleep(0.3)
            first = False
            self.stop.wait(2)

    def control_loop(self):
        """Attach/detach cycles, the recreated namespace, trace and capture:
        one thread, so that addresses are handed out in a known order."""
        r = self.hosts["r"]
        next_recreate = time.monotonic() + self.a.recreate
        next_observe = time.monotonic() + self.a.observe / 2
        i = 0
        while not self.stop.is_set():
            x = self.extra[i % 3]
            i += 1
            try:
                self.ctl("attach", x, "lan")
                sh("ip", "netns", "exec", x, "ping", "-c", "1", "-W", "1", "-q",
                   self.ip("p"), check=False)
                self.ctl("detach", x, "lan")
                self.events["attach_cycles"] += 1
            except Exception as e:  # noqa: BLE001
                self.fail_soft(f"attach/detach {x}: {e}")
            now = time.monotonic()
            if now >= next_recreate:
                next_recreate = now + self.a.recreate
                try:
                    sh("ip", "netns", "del", r)
                    time.sleep(1)  # q's pings go on: to a port that is down
                    self.ctl("detach", r, "lan")
                    out = self.ctl("attach", r, "lan")
                    if self.ip("r") not in out:
                        self.fail_soft(f"{r} came back with another address: {out.strip()}")
                    self.events["recreates"] += 1
                except Exception as e:  # noqa: BLE001
                    self.fail_soft(f"recreating {r}: {e}")
            if now >= next_observe:
                next_observe = now + self.a.observe
                try:
                    log(f"{now - self.t0:4.0f} s: a trace, then a capture, of 2 s each")
                    self.ctl("trace", "--seconds", "2", "--json", timeout=20)
                    self.events["traces"] += 1
                    cap = f"/tmp/{self.sw}-cap.pcapng"
                    self.ctl("capture", "--seconds", "2", "-w", cap, timeout=20)
                    if os.path.getsize(cap) < 100:
                        self.fail_soft("capture: an empty file under traffic")
                    os.unlink(cap)
                    self.events["captures"] += 1
                except Exception as e:  # noqa: BLE001
                    self.fail_soft(f"trace/capture: {e}")
            self.stop.wait(self.a.attach_gap)

    def fail_soft(self, msg):
        log(f"ERROR {msg}")
        self.events["ctl_errors"] += 1
        self.failures.append(msg)

    # --- measurements -------------------------------------------------------
    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def smaps(self):
        """Size and Rss (KiB) of each of the switch's mappings, keyed by
        start address, permissions and name: a malloc heap keeps its start
        as it grows, so the same key before and after a step says which."""
        out, key = {}, None
        with open(f"/proc/{self.pid}/smaps") as f:
            for line in f:
                if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    fld = line.split()
                    lo, hi = (int(x, 16) for x in fld[0].split("-"))
                    key = (fld[0].split("-")[0], fld[1], fld[5] if len(fld) > 5 else "")
                    out[key] = [(hi - lo) >> 10, 0]
                elif line.startswith("Rss:") and key:
                    out[key][1] = int(line.split()[1])
        return out

    @staticmethod
    def grew(a, b, least=512):
        """The mappings whose Rss changed by `least` KiB or more from a to
        b, largest change first, in words."""
        d = []
        for k in set(a) | set(b):
            x, y = a.get(k, (0, 0))[1], b.get(k, (0, 0))[1]
            if abs(y - x) >= least:
                start, perms, name = k
                size = (b.get(k) or a.get(k))[0]
                # glibc's per-thread arenas are heaps at 64 MiB-aligned
                # addresses (HEAP_MAX_SIZE); [heap] is the main arena.
                kind = name or ("arena" if int(start, 16) % (64 << 20) == 0 else "anon")
                d.append((y - x, f"{start} {perms} {kind} size {size} KiB: Rss {x} -> {y} ({y - x:+d})"))
        return [w for _, w in sorted(d, key=lambda e: -abs(e[0]))]

    def maps_sampler(self):
        """The mappings every --smaps seconds; a step of 1 MiB or more in
        their sum is logged with the mappings that made it."""
        while not self.stop_rss.is_set():
            try:
                m = self.smaps()
            except OSError:
                return
            t = time.monotonic() - self.t0
            if self.maps:
                prev = self.maps[-1][1]
                dk = sum(v[1] for v in m.values()) - sum(v[1] for v in prev.values())
                if abs(dk) >= 1024:
                    what = self.grew(prev, m)
                    self.steps.append((t, dk, what))
                    log(f"{t:4.0f} s: RSS step {dk:+d} KiB: {'; '.join(what[:3]) or 'spread thin'}")
            self.maps.append((t, m))
            self.stop_rss.wait(self.a.smaps)

    def timed(self, what):
        """`shunt WHAT --json`, timed from the start of the process."""
        t = time.monotonic()
        out = self.ctl(what, "--json", timeout=10)
        dt = time.monotonic() - t
        self.times[f"{what}_cli"].append(dt)
        return json.loads(out), dt

    def sock(self, what):
        """The same request straight on the control socket: the switch's
        own time, without the start of a `shunt` process (tens to hundreds
        of ms under a load of 12)."""
        t = time.monotonic()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect(f"/run/shunt/{self.sw}.sock")
            c.sendall(json.dumps({"cmd": what}).encode() + b"\n")
            chunks = []
            while not (chunks and chunks[-1].endswith(b"\n")):
                b = c.recv(1 << 20)
                if not b:
                    raise RuntimeError(f"{what}: the switch closed the socket mid-answer")
                chunks.append(b)
        dt = time.monotonic() - t
        return b"".join(chunks), dt

    def sock_json(self, what, key):
        raw, dt = self.sock(what)
        self.times[key].append(dt)
        return json.loads(raw), dt

    def rss_sampler(self):
        """RSS four times a second all along: a whole-table dump lasts one
        to two seconds, and its peak is what the memory check is about."""
        while not self.stop_rss.is_set():
            try:
                self.rss.append((time.monotonic() - self.t0, self.rss_kib()))
            except OSError:
                return
            self.stop_rss.wait(0.25)

    def fdb_round(self, el):
        """A whole-table dump on the socket, and a stats request 0.1 s into
        it (answered while the table is written, or held up by it); then
        the same dump with `shunt fdb --json`."""
        got = {}

        def dump():
            try:
                raw, dt = self.sock("fdb")
                got["n"], got["bytes"], got["dt"] = len(json.loads(raw)), len(raw), dt
            except Exception as e:  # noqa: BLE001
                got["err"] = e

        t = threading.Thread(target=dump)
        t.start()
        time.sleep(0.1)
        _, during = self.sock_json("stats", "stats_during_fdb")
        t.join(60)
        if "err" in got:
            raise got["err"]
        self.times["fdb_sock"].append(got["dt"])
        self.fdb_done += 1
        fdb, dt_cli = self.timed("fdb")
        log(f"{el:4.0f} s: whole FDB on the socket: {got['n']} entries, {got['bytes']} bytes in"
            f" {got['dt']:.2f} s, a stats request during it {during:.3f} s;"
            f" `shunt fdb --json` {len(fdb)} entries in {dt_cli:.2f} s")

    def ping100(self, ns, ip):
        out = sh("ip", "netns", "exec", ns, "ping", "-c", "100", "-i", "0.02", "-W", "1", ip,
                 timeout=60, check=False)
        times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
        if len(times) < 90:
            raise RuntimeError(f"ping from {ns} to {ip}: {len(times)} of 100 answered")
        q = statistics.quantiles(times, n=100)
        return {"p50": statistics.median(times), "p90": q[89], "max": max(times)}

    def latency(self):
        """p -> q through shunt, and the kernel-only reference right after."""
        via = self.ping100(self.hosts["p"], self.ip("q"))
        ref = self.ping100(self.ref[0], f"10.82.{self.net}.2")
        return via, ref

    # --- the accounting ---------------------------------------------------
    def link_stats(self, ns, dev):
        args = ["ip"] + (["-n", ns] if ns else []) + ["-s", "-j", "link", "show", "dev", dev]
        s = json.loads(sh(*args))[0]["stats64"]
        return s["rx"], s["tx"]

    def outer(self, ns):
        """The switch's end of the veth whose other end is eth0 in ns."""
        peer = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", "eth0"))[0]["link_index"]
        return next(d["ifname"] for d in json.loads(sh("ip", "-j", "link", "show"))
                    if d["ifindex"] == peer)

    def kernel_view(self, outers):
        out = {}
        for h, kind in TAGS.items():
            ns = self.hosts[h]
            out[h] = (self.link_stats(ns, "eth0"),
                      self.link_stats(None, outers[h]) if outers.get(h) else None)
        return out

    def accounting(self):
        """Kernel counters, shunt's, the kernel's again: taken when the two
        kernel readings agree (a host's ARP probe between them would make
        the sides differ by the frame in flight)."""
        outers = {h: self.outer(self.hosts[h]) for h, kind in TAGS.items() if kind != "tap"}
        for _ in range(20):
            k1 = self.kernel_view(outers)
            st = json.loads(self.ctl("stats", "--json"))
            if self.kernel_view(outers) == k1:
                break
            time.sleep(0.2)
        rows, ok = [], True
        for h, kind in TAGS.items():
            ns = self.hosts[h]
            name = f"{ns}.lan"
            ps = st["ports"].get(name)
            if ps is None:
                rows.append((name, "missing from shunt stats"))
                ok = False
                continue
            (hrx, htx), outer = k1[h]
            # Frames the host sent that did not reach shunt, as the kernel
            # counts them on the way. The host's tx_packets holds only the
            # frames its device handed on: a veth counts a frame sent once
            # its peer took it (veth_xmit: tx counted on NET_RX_SUCCESS,
            # else the sender's tx_dropped), a TAP once shunt has read it
            # (tun_put_user; a full queue is tx_dropped). So the host's
            # tx_dropped is not part of what it sent, and a frame the outer
            # veth refused (its backlog full, or not forwardable) is counted
            # twice, as the host's tx_dropped and the outer's rx_dropped
            # (enqueue_to_backlog), sent by neither: adding both made run
            # A's -2 (docs/reliability.md).
            lost_in, lost_out, parts_in, parts_out = 0, 0, [], []
            info = []
            if htx["dropped"]:
                info.append(f"eth0 tx_dropped {htx['dropped']} (not sent: not in tx_packets)")
            if hrx["dropped"]:
                # Counted in rx_packets too: frames the host's stack
                # threw away once received (the churn's unknown EtherType).
                info.append(f"host stack discarded {hrx['dropped']}")
            sock = ps.get("afxdp") or ps.get("packet") or {}
            own = 0  # the outer veth's rx_dropped that no socket counts
            if kind != "tap":
                orx, otx = outer
                own = orx["dropped"]
                if otx["dropped"]:
                    lost_out += otx["dropped"]
                    parts_out.append(f"outer tx_dropped {otx['dropped']}")
            if kind == "afxdp":
                # A frame the XDP program redirects to a socket that has no
                # free frame (rx_dropped: fill ring empty, or too long) or
                # no room in its receive ring (rx_ring_full) is counted by
                # the socket and by the veth as rx_dropped, after the host
                # counted it sent (the veth's XDP receive counts it): the
                # socket's figures are the lost ones, shown as parts of the
                # outer rx_dropped, not added to it (counting both made the
                # first 10-minute run's accounting fail).
                xsk = sum(sock.get(k) or 0 for k in ("rx_dropped", "rx_ring_full", "rx_invalid_descs"))
                own = outer[0]["dropped"] - xsk
                if xsk:
                    lost_in += xsk
                    parts_in.append(f"AF_XDP socket {xsk}")
                info.append(f"of the outer rx_dropped {outer[0]['dropped']}, the socket's {xsk}"
                            f" (rx_dropped {sock.get('rx_dropped', 0)}, of which fill ring empty"
                            f" {sock.get('rx_fill_ring_empty', 0)}; rx_ring_full"
                            f" {sock.get('rx_ring_full', 0)}) and the veth's own {own}")
                if own < 0:
                    # The socket counted drops the veth did not: the
                    # equation's premise is wrong; say so, do not balance.
                    rows.append((name, f"the AF_XDP socket counts {xsk} drops, more than the"
                                       f" veth's rx_dropped {outer[0]['dropped']}"))
                    ok = False
                    own = 0
            elif kind == "packet":
                # A packet socket's drop (its ring full: tp_drops) is of a
                # copy the kernel made for it; the veth delivered the frame
                # and does not count it.
                v = sock.get("rx_dropped") or 0
                if v:
                    lost_in += v
                    parts_in.append(f"packet socket rx_dropped {v}")
            if own > 0:
                # The veth's own drops: those the host also counts as
                # tx_dropped were refused before being sent (not added);
                # any beyond them were dropped once received (no handler
                # for the frame) and are lost.
                refused = min(own, htx["dropped"])
                info.append(f"outer rx_dropped {own}: {refused} refused from the host (its"
                            f" tx_dropped too), {own - refused} after")
                if own > refused:
                    lost_in += own - refused
                    parts_in.append(f"outer rx_dropped {own - refused}")
            drops = {k: v for k, v in ps["drops"].items() if v}
            res_in = htx["packets"] - ps["rx_frames"] - lost_in
            res_out = ps["tx_frames"] - hrx["packets"] - lost_out
            # Copies shunt cut into segments for this port count once per
            # segment on the wire: the host sees more frames than shunt sent.
            seg = ps.get("offload", {}).get("tx_gso_segments", 0)
            rows.append((name, (
                f"{kind:6} host sent {htx['packets']:>10} = shunt rx {ps['rx_frames']:>10}"
                f" + lost {lost_in} ({', '.join(parts_in) or 'none'}) [residual {res_in}];"
                f" shunt sent {ps['tx_frames']:>10} = host rx {hrx['packets']:>10} + lost"
                f" {lost_out} ({', '.join(parts_out) or 'none'}) [residual {res_out}];"
                f" drops here {drops or '{}'}{f'; segments {seg}' if seg else ''}"
                f"{'; ' + ', '.join(info) if info else ''}")))
            if res_in != 0 or res_out != 0:
                ok = False
        return ok, rows, st

    # --- the run ----------------------------------------------------------
    def run(self):
        self.up()
        time.sleep(1)
        self.lat0, self.ref0 = self.latency()
        log(f"latency at the start (ping -c 100 p -> q, idle): p50 {self.lat0['p50']:.3f} ms,"
            f" p90 {self.lat0['p90']:.3f} ms; over a bare veth: p50 {self.ref0['p50']:.3f} ms")
        threads = [threading.Thread(target=self.traffic, daemon=True),
                   threading.Thread(target=self.control_loop, daemon=True)]
        for t in threads:
            t.start()
        self.t0 = t0 = time.monotonic()
        total = self.a.minutes * 60
        # Warm-up (docs/reliability.md, "Soak"): at least 2 minutes (a fifth
        # of a run shorter than 10), and until the switch has done each
        # thing it does later at least once or twice: two whole-table
        # dumps (the first at 30 s, then every 60 s), a namespace deleted
        # and attached again, a trace and a capture. By then the churn has
        # filled the table to its level (30 s of ageing at --churn-rate)
        # several times over. The baseline is the median RSS of the
        # warm-up's last minute; every sample after it (four a second)
        # must stay within 5% of it.
        warm_min = min(120.0, total * 0.2)
        self.rss_warm, self.warm_t = None, total
        rss_t = threading.Thread(target=self.rss_sampler, daemon=True)
        rss_t.start()
        maps_t = threading.Thread(target=self.maps_sampler, daemon=True)
        if self.a.smaps > 0:
            maps_t.start()
        last_print, next_fdb = 0.0, 30.0
        while (el := time.monotonic() - t0) < total:
            if not os.path.exists(f"/proc/{self.pid}"):
                self.failures.append(f"the switch (pid {self.pid}) is gone after {el:.0f} s")
                break
            self.loads.append(float(open("/proc/loadavg").read().split()[0]))
            if (self.rss_warm is None and el >= warm_min and self.fdb_done >= 2
                    and self.events["recreates"] >= 1 and self.events["captures"] >= 1):
                last = [k for t, k in self.rss if t >= el - 60]
                self.rss_warm, self.warm_t = statistics.median(last), el
                log(f"warm-up over at {el:.0f} s: RSS median of its last minute {self.rss_warm:.0f} KiB")
            try:
                st, dt = self.sock_json("stats", "stats_sock")
                if dt > 1.0:
                    self.failures.append(f"stats on the socket took {dt:.2f} s at {el:.0f} s")
                _, dt = self.timed("stats")
                if dt > 1.0:
                    log(f"`shunt stats --json` took {dt:.2f} s at {el:.0f} s (process start included)")
                if el >= next_fdb:
                    next_fdb = el + 60
                    self.fdb_round(el)
            except Exception as e:  # noqa: BLE001
                self.failures.append(f"control socket at {el:.0f} s: {e}")
                st = None
            if el - last_print >= 30 and st:
                last_print = el
                log(f"{el:4.0f} s: RSS {self.rss[-1][1] if self.rss else 0} KiB, fdb"
                    f" {st['fdb']['entries']} entries, fdb_full {st['drops'].get('fdb_full', 0)},"
                    f" events {self.events}, load {self.loads[-1]}")
            time.sleep(5)
        self.stop_rss.set()
        rss_t.join(5)
        if maps_t.is_alive():
            maps_t.join(5)
        # The samples, to lay beside the log's times of dumps, traces and
        # captures when the memory check fails.
        path = f"/tmp/{self.sw}-rss.csv"
        with open(path, "w") as f:
            f.write("seconds,rss_kib\n" + "".join(f"{t:.2f},{k}\n" for t, k in self.rss))
        log(f"RSS samples in {path}")
        if self.maps:
            # The mappings of 256 KiB of Rss or more at each reading, one
            # JSON line each: what a step was made of, read afterwards.
            mpath = f"/tmp/{self.sw}-maps.jsonl"
            with open(mpath, "w") as f:
                for t, m in self.maps:
                    big = {f"{k[0]} {k[1]} {k[2]}": v for k, v in m.items() if v[1] >= 256}
                    f.write(json.dumps({"t": round(t, 1), "maps": big}) + "\n")
            log(f"mappings (size, Rss in KiB) in {mpath}")
        log("stopping the traffic")
        self.stop.set()
        for t in threads:
            t.join(30)
        for name in list(self.procs):
            self.kill(name)
        time.sleep(3)  # rings and queues drain
        return self.report()

    def report(self):
        checks = []
        alive = os.path.exists(f"/proc/{self.pid}")
        state = {}
        try:
            with open(f"/run/shunt/{self.sw}.state") as f:
                state = json.load(f)
        except OSError:
            pass
        checks.append(("same switch process", alive and state.get("pid") == self.pid,
                       f"pid {self.pid}, alive {alive}, state file pid {state.get('pid')}"))
        logtext = ""
        try:
            with open(f"/run/shunt/{self.sw}.log") as f:
                logtext = f.read()
        except OSError:
            pass
        bad = [ln for ln in logtext.splitlines() if re.search(r"panick|panic|RUST_BACKTRACE", ln)]
        checks.append(("log without a panic", not bad,
                       f"{len(logtext.splitlines())} lines; {bad[:3] if bad else 'no panic'}"))
        ok, rows, st = self.accounting()
        checks.append(("every frame accounted per port", ok,
                       "\n      " + "\n      ".join(f"{n}: {r}" for n, r in rows)))
        u = st.get("umem")
        if u:
            deadline = time.monotonic() + 5
            while u["frames"] != u["pool"] + u["cached"] + u["in_kernel"] and time.monotonic() < deadline:
                time.sleep(0.5)
                u = json.loads(self.ctl("stats", "--json"))["umem"]
            checks.append(("every UMEM frame accounted", u["frames"] == u["pool"] + u["cached"] + u["in_kernel"],
                           f"{u['frames']} frames = {u['pool']} pool + {u['cached']} cached + {u['in_kernel']} in kernel rings"))
        else:
            checks.append(("every UMEM frame accounted", False, "no umem in shunt stats --json"))
        after = [(t, k) for t, k in self.rss if t >= self.warm_t]
        if self.rss_warm and after:
            top_t, top = max(after, key=lambda x: x[1])
            grow = (top - self.rss_warm) / self.rss_warm
            # Least-squares slope after the warm-up, KiB a minute (not a
            # check: a leak would show here before it reached 5%).
            n = len(after)
            mt = sum(t for t, _ in after) / n
            mk = sum(k for _, k in after) / n
            var = sum((t - mt) ** 2 for t, _ in after) or 1.0
            slope = 60 * sum((t - mt) * (k - mk) for t, k in after) / var
            checks.append(("resident memory flat (within 5% after warm-up)", grow <= 0.05,
                           f"warm-up over at {self.warm_t:.0f} s, its last minute's median"
                           f" {self.rss_warm:.0f} KiB; after it {n} samples, largest {top} KiB at"
                           f" {top_t:.0f} s ({grow * 100:+.1f}%), at the end {after[-1][1]} KiB,"
                           f" slope {slope:+.0f} KiB/min; first sample {self.rss[0][1]} KiB"))
        else:
            checks.append(("resident memory flat (within 5% after warm-up)", False,
                           f"the warm-up never ended (dumps {self.fdb_done}, events {self.events})"))
        lat1, ref1 = self.latency()
        lim = self.lat0["p50"] * 1.5 + 0.1
        # On a loaded machine the end can be slower for everyone: then what
        # shunt adds over the bare veth must not have grown by more.
        own0, own1 = self.lat0["p50"] - self.ref0["p50"], lat1["p50"] - ref1["p50"]
        good = lat1["p50"] <= lim or own1 <= max(own0, 0) * 1.5 + 0.1
        checks.append(("latency at the end no worse than at the start", good,
                       f"p50 {self.lat0['p50']:.3f} -> {lat1['p50']:.3f} ms (limit {lim:.3f}),"
                       f" p90 {self.lat0['p90']:.3f} -> {lat1['p90']:.3f} ms; a bare veth at the"
                       f" same times: p50 {self.ref0['p50']:.3f} -> {ref1['p50']:.3f} ms, so shunt's"
                       f" own share {own0:+.3f} -> {own1:+.3f} ms (limit 1.5 x + 0.1 ms)"))
        T = self.times

        def worst(k):
            v = T[k]
            return (f"{len(v)} requests, median {statistics.median(v):.3f} s, slowest {max(v):.3f} s"
                    if v else "none")

        slow = [dt for dt in T["stats_sock"] + T["stats_during_fdb"] if dt > 1.0]
        checks.append(("`stats` answered within 1 s on the socket, also during whole-table dumps",
                       bool(T["stats_sock"]) and not slow,
                       f"every 5 s: {worst('stats_sock')}; 0.1 s into each whole-table dump:"
                       f" {worst('stats_during_fdb')}; over 1 s: {len(slow)}"))
        cli_slow = [dt for dt in T["stats_cli"] if dt > 1.0]
        info = [("`shunt stats --json`, the process's start included",
                 f"{worst('stats_cli')}; over 1 s: {len(cli_slow)}"),
                ("whole-table dumps", f"on the socket: {worst('fdb_sock')};"
                 f" `shunt fdb --json`: {worst('fdb_cli')}"),
                ("load average (1 min, every 5 s)",
                 f"min {min(self.loads, default=0):.1f}, median"
                 f" {statistics.median(self.loads) if self.loads else 0:.1f},"
                 f" max {max(self.loads, default=0):.1f}")]
        if self.maps:
            # What grew between the end of the warm-up and the end of the
            # run, mapping by mapping; and the steps the sampler logged.
            base = min(self.maps, key=lambda tm: abs(tm[0] - self.warm_t))
            what = self.grew(base[1], self.maps[-1][1], 1024)
            after = [f"{t:.0f} s {dk:+d} KiB" for t, dk, _ in self.steps if t >= self.warm_t]
            info.append(("mappings, warm-up end -> the end (changes of 1 MiB or more)",
                         f"{'; '.join(what) or 'none'}; steps of 1 MiB or more after the"
                         f" warm-up (--smaps {self.a.smaps:g} s): {', '.join(after) or 'none'}"))
        checks.append(("loops without an error", not [f for f in self.failures if "took" not in f],
                       f"events {self.events}; errors {self.failures[:5]}"))
        tot = {k: sum(p[k] for p in st["ports"].values()) for k in ("rx_frames", "rx_bytes", "tx_frames")}
        drops = {k: v for k, v in st["drops"].items() if v}
        print(f"\nsoak of {self.a.minutes} min on {self.sw}: rx {tot['rx_frames']} frames"
              f" ({tot['rx_bytes'] / 1e9:.1f} GB), tx {tot['tx_frames']} frames, drops {drops},"
              f" fdb {st['fdb']}, load {open('/proc/loadavg').read().strip()}")
        failed = 0
        for name, good, detail in checks:
            print(f"{'PASS' if good else 'FAIL'} {name}: {detail}")
            failed += not good
        for name, detail in info:
            print(f"INFO {name}: {detail}")
        return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("churn")
    c.add_argument("--dst", required=True)
    c.add_argument("--pps", type=float, default=4000)
    ap.add_argument("--shunt", default="target/release/shunt")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", default="200M", help="each TCP stream's iperf3 -b")
    ap.add_argument("--udp-rate", default="4M", help="the small-frame UDP flood's iperf3 -b")
    ap.add_argument("--churn-rate", type=float, default=4000, help="new-MAC frames a second")
    ap.add_argument("--recreate", type=float, default=60, help="seconds between namespace deletions")
    ap.add_argument("--observe", type=float, default=45, help="seconds between trace+capture")
    ap.add_argument("--smaps", type=float, default=5,
                    help="seconds between readings of the switch's mappings (0: none)")
    ap.add_argument("--attach-gap", type=float, default=2, help="seconds between attach cycles")
    a = ap.parse_args()
    if a.cmd == "churn":
        churn(a)
        return 0
    if os.geteuid() != 0:
        print("soak: root needed (namespaces, TAPs, veths)", file=sys.stderr)
        return 2
    s = Soak(a)
    try:
        return s.run()
    finally:
        s.down()


if __name__ == "__main__":
    sys.exit(main())
