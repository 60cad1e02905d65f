#!/usr/bin/env bash
# Where shunt's time goes with AF_XDP ports: runs `shunt bench --port-kind
# afxdp` (max-rate trial only) and, while the switch forwards, samples the
# switch process with `perf record` for a few seconds. Prints the forwarding
# rate, the share of the samples in the kernel, in shunt and in libc (the
# memcpy of a copying build shows there), and shunt's top symbols.
#
#   perf/afxdp-profile.sh [SHUNT_BINARY] [FRAME_SIZE] [SECONDS]
#
# Root only (namespaces, veth, AF_XDP, perf). The bench removes what it
# creates. Needs `perf` (Debian: linux-perf).
set -euo pipefail
shunt=${1:-target/release/shunt}
size=${2:-64}
secs=${3:-2}
out=$(mktemp)
data=$(mktemp)
trap 'rm -f "$out" "$data"' EXIT
"$shunt" bench --port-kind afxdp --duration $((secs + 5)) --sizes "$size" \
    --quiet --latency-at 0 >"$out" 2>&1 &
bench=$!
pid=""
for _ in $(seq 1 80); do
    pid=$(pgrep -f "$shunt up" | head -1 || true)
    [ -n "$pid" ] && break
    sleep 0.25
done
[ -n "$pid" ] || { echo "the switch did not start" >&2; cat "$out" >&2; exit 1; }
sleep 3 # past start-up and the first burst
perf record -q -p "$pid" -o "$data" -- sleep "$secs" >/dev/null 2>&1
wait "$bench" || true
echo "$size B: $(grep -E '^  shunt ' "$out" | head -1 | tr -s ' ')"
perf report -i "$data" --sort dso 2>/dev/null | grep '%' | head -4 | tr -s ' '
perf report -i "$data" --sort symbol --dso shunt 2>/dev/null | grep '%' | head -6 | tr -s ' '
