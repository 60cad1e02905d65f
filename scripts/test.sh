#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, the end-to-end
# tests with real namespaces (root needed; without root they say skipped)
# and a short run of every fuzz target.
# Ends with one line that sums every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# No import cycle between the switch's top-level modules (issue 11).
python3 scripts/check-cycles.py
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?
# A test of the process's own malloc settings, alone in its process.
cargo test -p shunt-switch --lib -- --ignored --exact port::sys::tests::mmap_threshold_stays_fixed 2>&1 | tee -a "$log" || status=$?
# Every fuzz target for a short time (issue 17), so that a parser or a
# stage that panics on some input is caught before it lands; the long
# campaign is `scripts/fuzz.sh SECONDS` by hand (docs/reliability.md).
# About 2 min of fuzzing for 13 targets, plus the build (cached in
# target/fuzz).
fuzz=ok
scripts/fuzz.sh "${FUZZ_SECONDS:-10}" || { fuzz=FAILED; status=1; }
echo "fuzz: $fuzz"
# "ignored" covers the tests that said "skipped" (and the benchmarks that
# only run on request).
awk '/^test result:/ { for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed;?$/) p += $i;
        if ($(i+1) ~ /^failed;?$/) f += $i;
        if ($(i+1) ~ /^ignored;?$/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
