#!/bin/sh
# docs/PERF.md "Against Open vSwitch": shunt, the Linux bridge and Open
# vSwitch's userspace datapath in the same `shunt bench` runs, as root,
# with a release build; JSON reports into $OUT, a table by perf/ovs-table.py.
#   perf/ovs.sh                  # frames (64 and 1518 B, latency at half
#                                # rate) twice per port kind, alternating;
#                                # TCP (1 and 4 streams, $ROUNDS interleaved
#                                # rounds) per port kind
#   perf/ovs.sh frames           # only the frame runs
#   EXTRA="--server-core 0" perf/ovs.sh tcp
# Every run is in a network and mount namespace of its own, as
# perf/issue12.sh runs them.
set -eu
SHUNT=${SHUNT:-target/release/shunt}
OUT=${OUT:-/tmp/bench-ovs}
ROUNDS=${ROUNDS:-3}
EXTRA=${EXTRA:-}
KINDS=${KINDS:-afxdp packet tap}
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- frames tcp

bench() {
    echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $* > $JSON" >&2
    unshare --net --mount --propagation private sh -c '
        mkdir -p /run/netns && mount -t tmpfs bench-netns /run/netns && mkdir -p /run/shunt &&
        mount -t tmpfs bench-shunt /run/shunt && mount -t sysfs bench-sys /sys &&
        ip link set lo up &&
        exec "$@"' sh "$@" >"$JSON" || echo "failed: $*" >&2
}

for what in "$@"; do
    case $what in
    frames)
        for r in 1 2; do
            for k in $KINDS; do
                JSON=$OUT/frames-$k-$r.json bench "$SHUNT" bench --sizes 64,1518 --duration 3 \
                    --port-kind "$k" --vs-linux-bridge --vs-ovs --json --quiet $EXTRA
            done
        done
        ;;
    tcp)
        for k in $KINDS; do
            JSON=$OUT/tcp-$k.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge --vs-ovs \
                --port-kind "$k" --streams 1,4 --ip 4 --rounds "$ROUNDS" --duration 5 \
                --json --quiet $EXTRA
        done
        ;;
    *)
        echo "perf/ovs.sh: frames or tcp, not $what" >&2
        exit 2
        ;;
    esac
done
