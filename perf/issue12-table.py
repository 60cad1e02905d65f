#!/usr/bin/env python3
"""Markdown rows from the JSON reports of perf/issue12.sh (docs/PERF.md,
"Issue 12: TCP with offloads"): one row per (hosts, IP, streams). Machine
busy: the median over the rounds of the whole machine's busy cores."""
import json
import sys


def fmt(s, d=2):
    if s is None:
        return "n/a"
    return f"{s['median']:.{d}f} [{s['min']:.{d}f}-{s['max']:.{d}f}]"


def main(files):
    print("| hosts | IP | streams | kernel Gbit/s | shunt Gbit/s | ratio (per-round range) "
          "| shunt CPU per Gbit/s | kernel softirq per Gbit/s | machine busy kernel / shunt (cores) "
          "| retransmits kernel / shunt | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for f in files:
        r = json.load(open(f))
        runs = r["tcp"]
        sums = {(s["path"], s["ip"], s["streams"]): s for s in r["tcp_summary"]}
        for q in r["tcp_ratios"]:
            shunt_path, kernel_path = q["ratio"].split("/")
            k = sums[(kernel_path, q["ip"], q["streams"])]
            s = sums[(shunt_path, q["ip"], q["streams"])]
            def busy(path):
                b = sorted(t["busy_cpu"] for t in runs if t["path"] == path and t["ip"] == q["ip"]
                           and t["streams"] == q["streams"] and t.get("busy_cpu") is not None)
                return f"{b[len(b) // 2]:.2f}" if b else "n/a"
            loads = [t["load_1min"] for t in runs if t["ip"] == q["ip"] and t["streams"] == q["streams"]]
            hosts = "vxlan (" + r["port_kind"] + ")" if shunt_path == "shunt-vxlan" else r["port_kind"]
            print(f"| {hosts} | {q['ip']} | {q['streams']} | {fmt(k['gbit_per_s'])} | {fmt(s['gbit_per_s'])} "
                  f"| **{q['of_medians']:.2f}x** ({q['paired']['min']:.2f}-{q['paired']['max']:.2f}) "
                  f"| {fmt(s['switch_cpu_per_gbit'], 3)} | {fmt(k['softirq_cpu_per_gbit'], 3)} "
                  f"| {busy(kernel_path)} / {busy(shunt_path)} "
                  f"| {k['retransmits']['median']:.0f} / {s['retransmits']['median']:.0f} "
                  f"| {min(loads):.1f}-{max(loads):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
