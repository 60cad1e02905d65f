#!/usr/bin/env python3
"""Tables of perf/ovs.sh's reports: python3 perf/ovs-table.py DIR."""
import glob
import json
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench-ovs"
paths = ["linux-bridge", "linux-bridge-rps", "ovs", "shunt"]

print("Frames: forwarded kfps (latency p50 / p99 us at half of each path's rate), per run")
print("| port kind | size | " + " | ".join(paths) + " | shunt/ovs |")
print("|---" * (len(paths) + 3) + "|")
for f in sorted(glob.glob(os.path.join(d, "frames-*.json"))):
    try:
        r = json.load(open(f))
    except ValueError:
        continue
    for s in r["sizes"]:
        cells = []
        for p in paths:
            x = next((q for q in s["paths"] if q["path"] == p), None)
            if x is None:
                cells.append("-")
                continue
            lat = x.get("latency") or {}
            l = f" ({lat['p50_us']:.0f} / {lat['p99_us']:.0f})" if lat else ""
            cells.append(f"{x['max']['fps'] / 1000:.0f}{l}")
        ratio = dict((k, v) for k, v in s["ratios"]).get("shunt/ovs")
        rs = f"{ratio:.2f}x" if ratio else "-"
        kind = r["port_kind"] + " (ovs " + (r.get("ovs_port_type") or "?") + ")"
        print(f"| {kind} | {s['size']} | " + " | ".join(cells) + f" | {rs} |")

print()
print("TCP: Gbit/s median [min-max] of the rounds; switch CPU cores per Gbit/s (median)")
print("| port kind | streams | linux-bridge | ovs | shunt | ovs cpu/Gbit | shunt cpu/Gbit | shunt/ovs | shunt/bridge | ovs/bridge |")
print("|---" * 10 + "|")
for f in sorted(glob.glob(os.path.join(d, "tcp-*.json"))):
    try:
        r = json.load(open(f))
    except ValueError:
        continue
    sums = {(s["path"], s["streams"]): s for s in r["tcp_summary"]}
    rat = {(t["ratio"], t["streams"]): t["paired"]["median"] for t in r["tcp_ratios"]}
    for n in sorted({s["streams"] for s in r["tcp_summary"]}):
        def g(p):
            s = sums.get((p, n))
            if not s:
                return "-"
            m = s["gbit_per_s"]
            return f"{m['median']:.1f} [{m['min']:.1f}-{m['max']:.1f}]"

        def cpu(p):
            v = [t["switch_cpu_per_gbit"] for t in r["tcp"]
                 if t["path"] == p and t["streams"] == n and t["switch_cpu_per_gbit"] is not None]
            v.sort()
            return f"{v[len(v) // 2]:.3f}" if v else "-"

        def ra(k):
            v = rat.get((k, n))
            return f"{v:.2f}x" if v is not None else "-"
        kind = r["port_kind"] + " (ovs " + (r.get("ovs_port_type") or "?") + ")"
        print(f"| {kind} | {n} | {g('linux-bridge')} | {g('ovs')} | {g('shunt')} | {cpu('ovs')} | {cpu('shunt')} | "
              f"{ra('shunt/ovs')} | {ra('shunt/linux-bridge')} | {ra('ovs/linux-bridge')} |")
