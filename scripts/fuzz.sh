#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of the tree (each [[bin]] of
# parsers/fuzz and of fuzz/) for SECONDS each (default 20), one job each,
# starting from its seeds and its corpus of earlier runs. First it replays
# the inputs that once failed (regressions/<target>/). Fails if any target
# crashes, panics, leaks or times out; the input is kept under
# <crate>/artifacts/<target>/ and named at the end.
#
#   scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS=stp scripts/fuzz.sh 60   # one target: the spanning-tree BPDUs
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 3600   # each target to 10M runs, 1 h at most
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address: the targets are safe Rust
#                   apart from the frame slots; ASan halves the rate.
#   FUZZ_TARGETS    only these targets (names, space-separated).
#   FUZZ_RUNS       stop each target after this many runs (SECONDS still
#                   caps its time): issue 17's campaign of 10M per target.
#   FUZZ_TOOLCHAIN  nightly (default) or stable (RUSTC_BOOTSTRAP=1).
#   FUZZ_LOG        where the summary table goes too (default:
#                   target/fuzz/last-run.txt).
#
# Installs what it lacks: the nightly toolchain (rustup) and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). The build is shared by both crates
# (target/fuzz/<toolchain>) and kept between runs, so a run after the first builds only
# what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-20}
san=${FUZZ_SANITIZER:-none}
log=${FUZZ_LOG:-$root/target/fuzz/last-run.txt}

if ! command -v rustup >/dev/null 2>&1; then
  echo "fuzz: rustup is missing (cargo-fuzz needs a nightly toolchain): https://rustup.rs" >&2
  exit 1
fi
# cargo-fuzz passes nightly-only flags to rustc. Where no nightly can be
# had (some machines fetch no other toolchain), the stable compiler takes
# them with RUSTC_BOOTSTRAP=1 (parsers/fuzz/README.md: that works here).
tc=${FUZZ_TOOLCHAIN:-nightly}
if [ "$tc" = nightly ] && ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal || tc=stable
fi
if [ "$tc" != nightly ]; then
  echo "fuzz: no nightly toolchain: the default one with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  flags=(fuzz)
else
  flags=(+nightly fuzz)
fi
# One build directory per toolchain, shared by both crates.
tdir=$root/target/fuzz/$tc
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Large buffers (the stack target's socket buffers, 4 MB an input) from
# mmap every time, which the kernel zeroes only where touched: glibc would
# otherwise recycle them and memset them whole (stack: 1,700 -> 6,200
# inputs/s here).
export MALLOC_MMAP_THRESHOLD_=131072
# -a: overflow checks and debug assertions, which catch arithmetic the
# release datapath would wrap silently.
opts=(-s "$san" -a --target-dir "$tdir")
mkdir -p "$tdir"
: >"$log.tmp"
failed=()
for crate in parsers/fuzz fuzz; do
  echo "fuzz: building $crate"
  (cd "$crate" && cargo "${flags[@]}" build "${opts[@]}")
  for t in $(cd "$crate" && cargo "${flags[@]}" list); do
    if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $t "* ]]; then
      continue
    fi
    dir=$root/$crate
    bin=$tdir/x86_64-unknown-linux-gnu/release/$t
    corpus=$dir/corpus/$t
    art=$dir/artifacts/$t
    mkdir -p "$corpus" "$art"
    # Seeds: the target's own (fuzz/seeds/<target>/, or seeds_<target>/
    # or seeds_<last word>/ as parsers/fuzz/seeds_gso/ for virtio_gso),
    # else the crate's shared seeds/ (parsers/fuzz: whole frames for every
    # view). libFuzzer sizes inputs after the largest seed.
    seeds=()
    for s in "$dir/seeds/$t" "$dir/seeds_$t" "$dir/seeds_${t##*_}" "$dir/seeds"; do
      if [ -d "$s" ] && [ -n "$(find "$s" -maxdepth 1 -type f -print -quit)" ]; then
        seeds=("$s")
        break
      fi
    done
    # Past failures first: each file run once.
    if [ -d "$dir/regressions/$t" ] && [ -n "$(ls -A "$dir/regressions/$t")" ]; then
      if ! "$bin" -runs=1 "$dir"/regressions/"$t"/* >"$art/regressions.log" 2>&1; then
        echo "fuzz: $t: a regression input fails again (see $art/regressions.log)" >&2
        failed+=("$t (regression)")
        continue
      fi
    fi
    echo "fuzz: $t for ${secs}s"
    out=$art/last-run.log
    status=0
    # Artifacts go to artifacts/<target>/ (cargo fuzz's place); a crash
    # stops the run of that target only.
    runs_opt=()
    [ -n "${FUZZ_RUNS:-}" ] && runs_opt=(-runs="$FUZZ_RUNS")
    "$bin" -max_total_time="$secs" "${runs_opt[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$art/" "$corpus" "${seeds[@]}" >"$out" 2>&1 || status=$?
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$out" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$out" | tail -1 || true)
    took=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$out" | tail -1 | awk '{ print $5 }' || true)
    peak=$(awk '/stat::peak_rss_mb/ { print $2 }' "$out" | tail -1)
    printf '%-12s %-8s runs %-10s in %ss %s corpus %s peak %s MB\n' "$crate" "$t" "${runs:-?}" "${took:-?}" \
      "${cov:-cov: ?}" "$(find "$corpus" -type f | wc -l)" "${peak:-?}" | tee -a "$log.tmp"
    if [ "$status" -ne 0 ]; then
      crash=$(grep -Eo "Test unit written to [^ ]+" "$out" | tail -1 | sed 's/Test unit written to //' || true)
      echo "fuzz: $t FAILED (exit $status): ${crash:-see $out}" >&2
      grep -E "panicked at|ERROR: libFuzzer|SUMMARY" "$out" | head -5 >&2 || true
      failed+=("$t")
    fi
  done
done
mv "$log.tmp" "$log"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}; keep the input under <crate>/regressions/<target>/ once fixed" >&2
  exit 1
fi
if [ -n "${FUZZ_RUNS:-}" ]; then
  echo "fuzz: every target ran without a failure (${FUZZ_RUNS} runs or ${secs}s each, whichever came first)"
else
  echo "fuzz: every target ran ${secs}s without a failure"
fi
