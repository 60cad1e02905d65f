#!/usr/bin/env bash
# The demo: brings up the default topology (h1, h2, h3 on network lan,
# 10.0.0.0/24), pings between all hosts (and by name, through the switch's
# DNS), shows what the switch learned and
# counted, traces a ping, and takes everything down again.
# Keep it running afterwards with: scripts/demo.sh --keep
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q -p shunt
shunt="${CARGO_TARGET_DIR:-target}/release/shunt"
keep=${1:-}

cleanup() { [ "$keep" = "--keep" ] || $shunt down >/dev/null 2>&1 || true; }
trap cleanup EXIT

set -x
$shunt up --detach
$shunt ports
{ set +x; } 2>/dev/null
for a in h1 h2 h3; do
  for b in 10.0.0.2 10.0.0.3 10.0.0.4; do
    $shunt exec "$a" ping -c 1 -W 1 -q "$b" >/dev/null && echo "$a -> $b: ok" || { echo "$a -> $b: FAILED"; exit 1; }
  done
done
# Names resolve through the switch's own DNS responder (10.0.0.1).
$shunt exec h1 ping -c 1 -W 1 -q h2 >/dev/null && echo "h1 -> h2 (by name): ok" || { echo "h1 -> h2 (by name): FAILED"; exit 1; }
set -x
$shunt dns
$shunt fdb
$shunt stats
{ set +x; } 2>/dev/null
echo "+ shunt trace --count 4 (while h1 pings h3)"
$shunt trace --count 4 --seconds 5 &
sleep 0.3
$shunt exec h1 ping -c 2 -q 10.0.0.4 >/dev/null
wait
if [ "$keep" = "--keep" ]; then
  echo "The switch keeps running. Try: $shunt exec h1 ping 10.0.0.3; $shunt fdb; $shunt down"
else
  $shunt down
fi
