#!/bin/sh
# The TCP figures of docs/PERF.md "Issue 12: TCP with offloads", as root,
# with a release build: every comparison 3 times, kernel and shunt
# interleaved inside one `shunt bench` run; JSON reports into $OUT.
#   perf/issue12.sh                      # tap packet afxdp vxlan
#   perf/issue12.sh tap vxlan            # some
#   BEFORE=/path/to/old/shunt perf/issue12.sh before-tap before-afxdp:packet
#                                        # the old build's `bench --tcp
#                                        # --vs-linux-bridge` (--port-kind
#                                        # tap, afxdp) and this one's (tap,
#                                        # packet), alternating, $ROUNDS times
#   EXTRA="--server-core 0" OUT=/tmp/b12s perf/issue12.sh tap packet vxlan
#                                        # more `shunt bench` options for
#                                        # every run but the before-* ones
set -eu
SHUNT=${SHUNT:-target/release/shunt}
OUT=${OUT:-/tmp/bench12}
ROUNDS=${ROUNDS:-3}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- tap packet afxdp vxlan

# Runs `BINARY bench ARGS...` in a network and mount namespace of its own
# (its own /run/netns and /run/shunt, and /sys for that network namespace,
# as `ip netns exec` does): another bench on the machine uses the same
# names, and its clean-up would remove this one's namespaces. Tries three
# times; stdout goes to $JSON.
bench() {
    for try in 1 2 3; do
        echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $* > $JSON" >&2
        if unshare --net --mount --propagation private sh -c '
            mkdir -p /run/netns && mount -t tmpfs bench-netns /run/netns && mkdir -p /run/shunt &&
            mount -t tmpfs bench-shunt /run/shunt && mount -t sysfs bench-sys /sys &&
            ip link set lo up &&
            exec "$@"' sh "$@" >"$JSON"; then
            return 0
        fi
        echo "failed (try $try)" >&2
    done
    echo "gave up: $*" >&2
}

for what in "$@"; do
    case $what in
    vxlan)
        JSON=$OUT/vxlan.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge --vxlan \
            --streams 1,4 --ip 4 --rounds "$ROUNDS" --duration 5 --json --quiet $EXTRA
        ;;
    before-*)
        kinds=${what#before-}
        old=${kinds%:*}
        new=${kinds#*:}
        for r in $(seq "$ROUNDS"); do
            JSON=$OUT/before-$old-old-$r.json bench "$BEFORE" bench --tcp --vs-linux-bridge \
                --port-kind "$old" --sizes 64 --latency-at 0 --duration 5 --json --quiet
            JSON=$OUT/before-$new-new-$r.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge \
                --port-kind "$new" --duration 5 --json --quiet
        done
        ;;
    *)
        JSON=$OUT/$what.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge --port-kind "$what" \
            --streams 1,4 --ip 4,6 --rounds "$ROUNDS" --duration 5 --json --quiet $EXTRA
        ;;
    esac
done
