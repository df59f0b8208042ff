#!/usr/bin/env bash
# Speed figures, printed (no thresholds; the gate is scripts/check-budgets.sh):
#   1. Cortex-M4 in QEMU: peak stack and guest instructions per C API call, for the size and
#      speed profiles of budgets.toml (tools/measure/measure.py bench);
#   2. host: criterion benchmarks of the same operations (benches/usmp.rs).
#
#   scripts/bench.sh [--mcu-only | --host-only] [--quick] [-- CRITERION ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
mcu=1 host=1 quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mcu-only) host=0 ;;
    --host-only) mcu=0 ;;
    --quick) quick=1 ;;
    --) shift; break ;;
    *) echo "usage: scripts/bench.sh [--mcu-only | --host-only] [--quick] [-- CRITERION ARGS]" >&2; exit 2 ;;
  esac
  shift
done
if [ $mcu = 1 ]; then
  if [ -z "${USMP_QEMU:-}" ]; then
    USMP_QEMU=$(scripts/setup-qemu.sh 2>/dev/null | tail -n 1)
    export USMP_QEMU
  fi
  for p in size speed; do
    echo "=== Cortex-M4 (QEMU netduinoplus2), profile $p"
    python3 tools/measure/measure.py bench --profile "$p"
    echo
  done
fi
if [ $host = 1 ]; then
  echo "=== host ($(uname -m)), criterion, [profile.bench] = release (opt-level z, LTO)"
  extra=()
  [ $quick = 1 ] && extra=(--warm-up-time 1 --measurement-time 2)
  cargo bench --features std --bench usmp -- "${extra[@]}" "$@"
fi
