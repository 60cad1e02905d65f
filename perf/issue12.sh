#!/bin/sh
# The TCP figures of docs/PERF.md "Issue 12: TCP with offloads", as root,
# with a release build: every comparison 3 times, kernel and shunt
# interleaved inside one `shunt bench` run; JSON reports into $OUT.
#   perf/issue12.sh                      # tap packet afxdp vxlan
#   perf/issue12.sh tap vxlan            # some
#   BEFORE=/path/to/old/shunt perf/issue12.sh before-tap before-afxdp
#                                        # the old build's `bench --tcp
#                                        # --vs-linux-bridge` and this one's,
#                                        # alternating, $ROUNDS times
set -eu
SHUNT=${SHUNT:-target/release/shunt}
OUT=${OUT:-/tmp/bench12}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- tap packet afxdp vxlan

# Runs `BINARY bench ARGS...` in a network and mount namespace of its own
# (its own /run/netns and /run/shunt): another bench on the machine uses
# the same names, and its clean-up would remove this one's namespaces.
# Tries three times; stdout goes to $JSON.
bench() {
    for try in 1 2 3; do
        echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $* > $JSON" >&2
        if unshare --net --mount --propagation private sh -c '
            mount -t tmpfs bench-netns /run/netns && mkdir -p /run/shunt &&
            mount -t tmpfs bench-shunt /run/shunt && ip link set lo up &&
            exec "$@"' sh "$@" >"$JSON"; then
            return 0
        fi
        echo "failed (try $try)" >&2
    done
    return 1
}

for what in "$@"; do
    case $what in
    vxlan)
        JSON=$OUT/vxlan.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge --vxlan \
            --streams 1,4 --ip 4 --rounds "$ROUNDS" --duration 5 --json --quiet
        ;;
    before-*)
        kind=${what#before-}
        for r in $(seq "$ROUNDS"); do
            JSON=$OUT/before-$kind-old-$r.json bench "$BEFORE" bench --tcp --vs-linux-bridge \
                --port-kind "$kind" --sizes 64 --latency-at 0 --duration 5 --json --quiet
            JSON=$OUT/before-$kind-new-$r.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge \
                --port-kind "$kind" --duration 5 --json --quiet
        done
        ;;
    *)
        JSON=$OUT/$what.json bench "$SHUNT" bench --tcp-only --vs-linux-bridge --port-kind "$what" \
            --streams 1,4 --ip 4,6 --rounds "$ROUNDS" --duration 5 --json --quiet
        ;;
    esac
done
