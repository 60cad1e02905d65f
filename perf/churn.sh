#!/usr/bin/env bash
# A lab whose hosts come and go (issue 18): attaches and detaches hosts on a
# running switch, cycling three names, and prints the switch's resident
# memory and port count every 100 cycles. Stops at the first attach or
# detach that fails, and says which.
#
#   perf/churn.sh [SHUNT_BINARY] [CYCLES]
#
# Root only; the switch, its namespaces and devices are its own (names
# ch<pid>...), removed with `shunt down` at the end.
set -euo pipefail
shunt=${1:-target/release/shunt}
cycles=${2:-2000}
sw=ch$(($$ % 10000))
file=$(mktemp --suffix=.toml)
trap '"$shunt" down --name "$sw" >/dev/null 2>&1 || true; rm -f "$file"' EXIT
cat >"$file" <<EOF
[switch]
name = "$sw"
workers = 2
[[network]]
name = "lan"
subnet = "10.74.$(($$ % 200)).0/24"
address = "10.74.$(($$ % 200)).1"
[[host]]
name = "${sw}b"
networks = ["lan"]
EOF
"$shunt" up "$file" --detach >/dev/null
pid=$(pgrep -f "$shunt up $file" | head -1)
rss() { awk '/VmRSS/ { print $2 }' "/proc/$pid/status"; }
echo "start: RSS $(rss) KiB"
for i in $(seq 1 "$cycles"); do
    h=${sw}x$((i % 3))
    "$shunt" attach "$h" lan --name "$sw" >/dev/null || { echo "attach $i failed"; break; }
    "$shunt" detach "$h" lan --name "$sw" >/dev/null || { echo "detach $i failed"; break; }
    if [ $((i % 100)) -eq 0 ]; then
        echo "cycle $i: RSS $(rss) KiB, $("$shunt" ports --name "$sw" --json | grep -o '"name"' | wc -l) ports"
    fi
done
echo "end: RSS $(rss) KiB"
