#!/bin/sh
# Per-core busy and irq+softirq fractions from /proc/stat, once a second
# for $1 seconds (default 30): run it beside a `shunt bench` to see which
# core is full (docs/PERF.md, "A fresh VM: all four paths").
#   perf/percore.sh 30 > /tmp/percore.log & shunt bench --tcp-only ...
exec python3 - "${1:-30}" <<'PY'
import sys
import time


def read():
    d = {}
    for line in open("/proc/stat"):
        if line.startswith("cpu") and line[3] != " ":
            f = line.split()
            v = list(map(int, f[1:]))
            d[f[0]] = (sum(v), v[3] + v[4], v[5] + v[6])  # total, idle+iowait, irq+softirq
    return d


a = read()
for _ in range(int(sys.argv[1])):
    time.sleep(1)
    b = read()
    print(" ".join(
        f"{c}: busy {1 - (b[c][1] - a[c][1]) / max(1, b[c][0] - a[c][0]):.2f} "
        f"sirq {(b[c][2] - a[c][2]) / max(1, b[c][0] - a[c][0]):.2f}" for c in sorted(b)), flush=True)
    a = b
PY
