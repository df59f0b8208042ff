#!/usr/bin/env bash
# Library flash/RAM after a real link, per target: builds the release staticlib the way it
# ships (`cargo rustc --crate-type staticlib`, so LTO really applies), links
# tools/size/probe.c (every C API function) with --gc-sections and prints text/data/bss,
# flash, the library's share (from the map file) and sizeof(usmp_t).
#
#   tools/size/size-report.sh [TARGET ...]                  Cargo.toml as it is (profile "size")
#   tools/size/size-report.sh --profile speed               a [profile.*] of budgets.toml
#   tools/size/size-report.sh --rustflags '--cfg aes_compact' --features sha2/force-soft-compact \
#                             --config 'profile.release.opt-level="s"' [--breakdown] [TARGET ...]
#   tools/size/size-report.sh --levers [--no-run] [--targets T,T] [--only NAME,..]
#                                                           the lever comparison table
# Targets: thumbv7em-none-eabihf (default set: + thumbv6m-none-eabi, riscv32imc-unknown-none-elf),
# riscv32imac-unknown-none-elf. Details: tools/measure/measure.py --help, BENCHMARKS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${1:-}" = "--levers" ]; then
  shift
  exec python3 "$root/tools/measure/measure.py" levers "$@"
fi
exec python3 "$root/tools/measure/measure.py" size "$@"
