#!/usr/bin/env python3
"""TCP across workers against TCP within one worker, in the same run (issue 18).

A switch with two workers and three hosts a, b, c on one network: ports
0, 1, 2 go to workers 0, 1, 0, so a -> b crosses workers (a's frames are
received by worker 0 and leave by b's port, owned by worker 1; b's ACKs the
other way) and a -> c stays within worker 0. One iperf3 TCP stream per
trial, the two kinds interleaved, ROUNDS times. Each trial prints the
receiver's rate, the sender's retransmits, what shunt counted as dropped
(by reason), the frames handed over between workers, and the kernel's own
drop counters of the hosts' interfaces (`ip -s link` in each namespace:
for a TAP these are the other side of shunt's counters).

    perf/crossworker.py [--shunt target/release/shunt] [--link tap|veth|afxdp]
                        [--secs 10] [--rounds 3] [--json FILE] [--txqueuelen N] [--no-tso]

Root only; creates namespaces xw<pid>a/b/c and removes them (`shunt down`).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def sh(*args, check=True, timeout=120):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def kernel_counters(ns):
    """rx/tx dropped and errors of eth0 in namespace ns, as the kernel counts."""
    v = json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", "dev", "eth0"))
    s = v[0]["stats64"]
    return {
        "rx_dropped": s["rx"]["dropped"],
        "tx_dropped": s["tx"]["dropped"],
        "rx_errors": s["rx"]["errors"],
        "tx_errors": s["tx"]["errors"],
    }


def stats(shunt, sw):
    return json.loads(sh(shunt, "stats", "--name", sw, "--json"))


def drops_of(st):
    return {k: v for k, v in st["drops"].items() if v}


def delta(after, before):
    out = {}
    for k, v in after.items():
        if isinstance(v, dict):
            d = delta(v, before.get(k, {}))
            if d:
                out[k] = d
        elif isinstance(v, (int, float)) and v - before.get(k, 0):
            out[k] = v - before.get(k, 0)
    return out


def handoff_of(st):
    """Frames handed over per worker pair, when the switch reports them."""
    return {
        f"{h['from']}->{h['to']}": {k: h.get(k, 0) for k in ("frames", "full", "held_back")}
        for h in st.get("handoff", [])
    }


def port_kernel_of(st):
    """Per port, the kernel's counters shunt reports: an AF_XDP socket's
    drops, a packet socket's, a TAP device's (when the switch reports them)."""
    out = {}
    for name, p in st["ports"].items():
        k = {}
        for key in ("rx_fill_ring_empty", "rx_ring_full", "rx_dropped"):
            if p.get("afxdp"):
                k["afxdp_" + key] = p["afxdp"].get(key, 0)
        for key, v in (p.get("packet") or {}).items():
            if "dropped" in key:
                k["packet_" + key] = v
        for key, v in (p.get("tap") or {}).items():
            if "dropped" in key:
                k["tap_" + key] = v
        out[name] = k
    return out


def iperf(server_ns, server_ip, client_ns, secs):
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        out = sh(
            "ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip,
            "-t", str(secs), "-J", timeout=secs + 30,
        )
    finally:
        srv.kill()
        srv.wait()
    v = json.loads(out)
    return (
        v["end"]["sum_received"]["bits_per_second"] / 1e9,
        v["end"]["sum_sent"].get("retransmits", 0),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shunt", default="target/release/shunt")
    # veth: an AF_PACKET port (the default for veth hosts); afxdp: a veth
    # with an AF_XDP port (the only kind that crosses workers by hand-over).
    ap.add_argument("--link", default="tap", choices=["tap", "veth", "afxdp"])
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--txqueuelen", type=int, help="set on every host's eth0 after bring-up")
    ap.add_argument("--no-tso", action="store_true",
                    help="turn TSO/GSO off in the hosts (one packet per frame on a TAP)")
    a = ap.parse_args()
    sw = f"xw{os.getpid() % 10000}"
    hosts = [f"{sw}{h}" for h in "abc"]
    ip = {h: f"10.77.{os.getpid() % 200}.{i + 2}" for i, h in enumerate(hosts)}
    net = ip[hosts[0]].rsplit(".", 1)[0]
    toml = (
        f'[switch]\nname = "{sw}"\nworkers = 2\n'
        f'[[network]]\nname = "lan"\nsubnet = "{net}.0/24"\naddress = "{net}.1"\n'
    )
    for h in hosts:
        link = "tap" if a.link == "tap" else "veth"
        toml += f'[[host]]\nname = "{h}"\nnetworks = ["lan"]\nlink = "{link}"\n'
        if a.link == "afxdp":
            toml += 'veth_attach = "afxdp"\n'
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml)
    results = []
    try:
        sh(a.shunt, "up", f.name, "--detach")
        ports = {p["name"]: p["worker"] for p in json.loads(sh(a.shunt, "ports", "--name", sw, "--json"))}
        print(f"# {a.link} hosts, 2 workers: " + ", ".join(f"{p} on worker {w}" for p, w in ports.items()))
        src, cross, same = hosts
        if a.no_tso:
            for h in hosts:
                sh("ip", "netns", "exec", h, "ethtool", "-K", "eth0", "tso", "off", "gso", "off")
        if a.txqueuelen:
            for h in hosts:
                sh("ip", "-n", h, "link", "set", "dev", "eth0", "txqueuelen", str(a.txqueuelen))
        for h in hosts:
            for o in hosts:
                if o != h:
                    sh("ip", "netns", "exec", h, "ping", "-c", "1", "-W", "2", "-q", ip[o], check=False)
        for r in range(a.rounds):
            # Interleaved, and the order alternates between rounds.
            order = [("cross", cross), ("same", same)]
            if r % 2:
                order.reverse()
            for kind, dst in order:
                k0 = {h: kernel_counters(h) for h in (src, dst)}
                s0 = stats(a.shunt, sw)
                gbit, retr = iperf(dst, ip[dst], src, a.secs)
                s1 = stats(a.shunt, sw)
                k1 = {h: kernel_counters(h) for h in (src, dst)}
                row = {
                    "round": r,
                    "kind": kind,
                    "gbit_per_s": round(gbit, 3),
                    "retransmits": retr,
                    "shunt_drops": delta(drops_of(s1), drops_of(s0)),
                    "handoff": delta(handoff_of(s1), handoff_of(s0)),
                    "port_kernel": delta(port_kernel_of(s1), port_kernel_of(s0)),
                    "kernel": {
                        "sender_eth0": delta(k1[src], k0[src]),
                        "receiver_eth0": delta(k1[dst], k0[dst]),
                    },
                }
                results.append(row)
                print(json.dumps(row, sort_keys=True), flush=True)
    finally:
        sh(a.shunt, "down", "--name", sw, check=False)
        os.unlink(f.name)
    for kind in ("cross", "same"):
        g = [x["gbit_per_s"] for x in results if x["kind"] == kind]
        rt = [x["retransmits"] for x in results if x["kind"] == kind]
        if g:
            print(f"{kind}: Gbit/s {' '.join(f'{x:.2f}' for x in g)} (mean {sum(g) / len(g):.2f}); "
                  f"retransmits {' '.join(map(str, rt))}")
    c = [x["gbit_per_s"] for x in results if x["kind"] == "cross"]
    s = [x["gbit_per_s"] for x in results if x["kind"] == "same"]
    if c and s:
        print(f"cross / same: {sum(c) / len(c) / (sum(s) / len(s)):.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
