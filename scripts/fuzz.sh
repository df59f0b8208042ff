#!/usr/bin/env bash
# Fuzzing (cargo-fuzz / libFuzzer, AddressSanitizer) of the usmp core and C API: fuzz/.
#
#   scripts/fuzz.sh ci                 # CI: replay fuzz/regressions, then every target for
#                                      #   FUZZ_CI_SECONDS (20) each, two at a time (~2 min)
#   scripts/fuzz.sh long [SECONDS]     # every target for SECONDS (default 600), two at a time
#   scripts/fuzz.sh run TARGET [SECONDS] [libFuzzer args...]   # one target
#   scripts/fuzz.sh depth [RUNS] [MAX_SECONDS]   # every target until RUNS executions
#                                      #   (default 10 M; at most MAX_SECONDS, default 10 h)
#   scripts/fuzz.sh regress            # only replay fuzz/regressions/
#   scripts/fuzz.sh list               # the targets
# Environment: FUZZ_TARGETS (subset), FUZZ_JOBS (parallel runs, default 2), FUZZ_CI_SECONDS,
# FUZZ_SANITIZER (address, the default, or none).
#
# Fails on any crash, panic, sanitizer report, leak or slow input (-timeout=5). Works on
# stable Rust: cargo-fuzz needs nightly flags (-Zsanitizer=address, sanitizer coverage), which
# RUSTC_BOOTSTRAP=1 unlocks on a stable toolchain; the stable toolchain ships the ASan
# runtime. Installs cargo-fuzz (pinned) when missing. Crash inputs go to fuzz/artifacts/<t>/;
# reproduce one with `scripts/fuzz.sh run <t> 0 fuzz/artifacts/<t>/crash-...` (add
# USMP_FUZZ_TRACE=1 to see what the target does). Build output: $USMP_BUILD_DIR/fuzz-target
# (default build/). The summary (execs per target) goes to $USMP_BUILD_DIR/fuzz-summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${USMP_BUILD_DIR:-$root/build}
mkdir -p "$build"

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(frame handshake responder session_raw session_keyed datagram capi interleave ota discovery cobs)
# FUZZ_TARGETS="capi datagram" restricts ci/long/regress to those targets.
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
# Overflow checks and debug assertions on for usmp and the harness (fuzz/Cargo.toml's profile):
# an arithmetic overflow is a finding too. -O keeps cargo-fuzz from turning them on in every
# crate: curve25519-dalek's limb-bound assertions alone halved the handshake-heavy targets' rate.
# FUZZ_SANITIZER=none (for long runs: several times the executions per second; panics,
# overflow checks and the oracles still apply) builds into a directory of its own.
san=${FUZZ_SANITIZER:-address}
fuzz_dir="$build/fuzz-target"
[ "$san" = address ] || fuzz_dir="$build/fuzz-target-$san"
fuzz_flags=(-O -s "$san" --target-dir "$fuzz_dir")
bin_dir="$fuzz_dir/$TRIPLE/release"
jobs=${FUZZ_JOBS:-2}

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

prepare() {
  python3 fuzz/seed_corpus.py
  cargo fuzz build "${fuzz_flags[@]}" >/dev/null 2>"$build/fuzz-build.log" || {
    cat "$build/fuzz-build.log" >&2
    exit 1
  }
}

# run_one TARGET SECONDS [extra libFuzzer args]: one bounded run; its log in $build/fuzz-<t>.log.
run_one() {
  local t=$1 secs=$2
  shift 2
  local log="$build/fuzz-$t.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local rc=0
  # -timeout: one input taking > 5 s is a hang; -rss_limit_mb: a runaway allocation; leaks are
  # detected by default (LeakSanitizer); -print_final_stats for the exec count.
  cargo fuzz run "${fuzz_flags[@]}" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 "$@" >"$log" 2>&1 || rc=$?
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  local cov
  cov=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  local corpus
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  if [ $rc -ne 0 ]; then
    printf '%-14s FAILED (rc %s) after %s execs, see %s\n' "$t" "$rc" "${execs:-?}" "$log" | tee -a "$summary"
    grep -E 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY|Test unit written|^[a-z].*\.rs:[0-9]+' "$log" | head -12 >&2 || true
    return 1
  fi
  printf '%-14s ok  %10s execs in %4ss  cov %5s  corpus %5s\n' "$t" "${execs:-?}" "$secs" "${cov:-?}" "$corpus" | tee -a "$summary"
}

# run_all SECONDS [libFuzzer args]: every target, $jobs at a time; fails if any failed.
run_all() {
  local secs=$1 failed=0 pids=() names=()
  shift
  for t in "${TARGETS[@]}"; do
    run_one "$t" "$secs" "$@" &
    pids+=($!)
    names+=("$t")
    if [ ${#pids[@]} -ge "$jobs" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
      names=("${names[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  return $failed
}

# Replays fuzz/regressions/<target>/*: every file must run clean, except those listed in
# fuzz/regressions/EXPECTED_FAILURES (open findings), which must still fail; one that passes
# means the fix landed: remove its line. Open findings run with USMP_FUZZ_OPEN_FINDINGS=1
# (a harness that steps around an open finding while fuzzing takes its path then).
regress() {
  local bad=0 expected=fuzz/regressions/EXPECTED_FAILURES
  for t in "${TARGETS[@]}"; do
    [ -d "fuzz/regressions/$t" ] || continue
    for f in "fuzz/regressions/$t"/*; do
      local name="$t/$(basename "$f")" rc=0 open=
      grep -qx "$name" "$expected" 2>/dev/null && open=1
      USMP_FUZZ_OPEN_FINDINGS=$open "$bin_dir/$t" "$f" >"$build/fuzz-regress.log" 2>&1 || rc=$?
      if [ -n "$open" ]; then
        if [ $rc -ne 0 ]; then
          echo "regress XFAIL $name (open finding: $(grep -m1 -A1 'panicked at' "$build/fuzz-regress.log" | tail -1))"
        else
          echo "regress XPASS $name: fixed? remove it from $expected" >&2
          bad=1
        fi
      elif [ $rc -ne 0 ]; then
        echo "regress FAIL  $name" >&2
        tail -20 "$build/fuzz-regress.log" >&2
        bad=1
      else
        echo "regress ok    $name"
      fi
    done
  done
  return $bad
}

mode=${1:-ci}
summary="$build/fuzz-summary.txt"
case "$mode" in
  list)
    printf '%s\n' "${ALL_TARGETS[@]}"
    ;;
  regress)
    prepare
    regress
    ;;
  ci)
    prepare
    : >"$summary"
    status=0
    regress || status=1
    run_all "${FUZZ_CI_SECONDS:-20}" || status=1
    echo "fuzz summary: $summary"
    exit $status
    ;;
  long)
    prepare
    : >"$summary"
    run_all "${2:-600}"
    echo "fuzz summary: $summary"
    ;;
  depth)
    # Every target until RUNS executions (or MAX_SECONDS), $jobs at a time: the depth runs
    # recorded in SECURITY.md (FUZZ_SANITIZER=none for speed).
    prepare
    : >"$summary"
    run_all "${3:-36000}" -runs="${2:-10000000}"
    echo "fuzz summary: $summary"
    ;;
  run)
    t=${2:?usage: scripts/fuzz.sh run TARGET [SECONDS] [libFuzzer args...]}
    secs=${3:-60}
    shift $(($# < 3 ? $# : 3))
    prepare
    : >"$summary"
    if [ "$secs" = 0 ]; then
      # Replay the given inputs (crash reproduction).
      exec "$bin_dir/$t" "$@"
    fi
    run_one "$t" "$secs" "$@"
    ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
