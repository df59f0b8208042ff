#!/usr/bin/env bash
# The footprint/speed budget gate (budgets.toml; how each figure is measured: BENCHMARKS.md).
# Builds the release static library per profile (size = Cargo.toml as it is, speed = the
# [profile.speed] of budgets.toml), links the probe that calls the whole C API for
# thumbv7em / riscv32imc / thumbv6m, runs the measurement firmware in QEMU (netduinoplus2,
# Cortex-M4: peak stack per call, instruction counts) and compares with the budgets.
#
#   scripts/check-budgets.sh              report; fails only on figures in [gate] enforce
#   scripts/check-budgets.sh --enforce    fails on every figure above its budget
#   scripts/check-budgets.sh --profile size|speed|all  (default all)   --json FILE
#
# Exit: 0 pass, 1 a figure over an enforced budget (or the probe misses an API function),
# 2 a measurement could not be made. Report: target/measure/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# QEMU (private Debian copy unless USMP_QEMU is set), quietly.
if [ -z "${USMP_QEMU:-}" ]; then
  USMP_QEMU=$(scripts/setup-qemu.sh 2>/dev/null | tail -n 1)
  export USMP_QEMU
fi
# The firmware's gateway frames must match the vectors (needs Python's `cryptography`).
if python3 -c 'import cryptography' 2>/dev/null; then
  python3 tools/stack/gen_frames.py --check
fi
exec python3 tools/measure/measure.py check "$@"
