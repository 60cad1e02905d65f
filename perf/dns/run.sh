#!/usr/bin/env bash
# DNS load: dnsperf from host hsa against the switch's responder for a
# minute (issue 6). Usage: perf/dns/run.sh [SECONDS]; as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
cargo build --release -q -p shunt
shunt="${CARGO_TARGET_DIR:-target}/release/shunt"
trap '$shunt down dnsperf >/dev/null 2>&1 || true' EXIT
$shunt up perf/dns/topology.toml --detach
ip netns exec hsa dnsperf -s 10.88.0.1 -d perf/dns/queries.txt -l "$secs"
$shunt stats --name dnsperf --json | python3 -c 'import json,sys; h=json.load(sys.stdin)["host"]["networks"]["lan"]; print("switch counters:", {k: h[k] for k in ("dns_queries","dns_answered","dns_nxdomain","dns_malformed","rx_dropped_full","tx_dropped_full")})'
