#!/usr/bin/env bash
# The soak (issue 17): a release build of shunt under TCP streams, UDP
# floods of small frames, a churn of 64k MACs, hosts attached and detached
# in a loop, a host namespace deleted and recreated under traffic, traces
# and captures, for MINUTES (default 10); then it checks and prints: no
# panic and no restart, every frame accounted per port against the kernel's
# counters, every UMEM frame accounted, resident memory flat, latency at
# the end no worse than at the start. Exits 1 when a check fails. The
# traffic and the checks are perf/soak.py's (its docstring says which
# host does what); docs/reliability.md has the figures of a 10-minute run.
#
#   perf/soak.sh [MINUTES] [soak.py options...]
#   SHUNT=/path/to/shunt perf/soak.sh 10     # a given binary (no build)
#
# Root only. Its switch, namespaces and devices are its own (names
# sk<pid>...) and are removed at the end, also when a check fails. On a
# shared machine run it as `nice -n 5 perf/soak.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
[ $# -gt 0 ] && shift
if [ -z "${SHUNT:-}" ]; then
    cargo build --release -p shunt --bin shunt
    SHUNT=target/release/shunt
fi
exec python3 perf/soak.py --shunt "$SHUNT" --minutes "$minutes" "$@"
