#!/usr/bin/env bash
# Library flash/RAM after a real link: builds the release staticlib (LTO really applied via
# `cargo rustc --crate-type staticlib`), links tools/size/probe.c with --gc-sections and
# prints size figures. Usage: tools/size/size-report.sh [thumbv7em-none-eabihf ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${USMP_SIZE_OUT:-$root/target/size}
mkdir -p "$out"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf)
printf '%-30s %8s %8s %8s %8s\n' target text data bss flash
for t in "${targets[@]}"; do
  case "$t" in
    thumbv7em-none-eabihf) cc=arm-none-eabi-gcc; flags="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16" ;;
    thumbv6m-none-eabi)    cc=arm-none-eabi-gcc; flags="-mcpu=cortex-m0plus -mthumb" ;;
    riscv32imc-unknown-none-elf)  cc=riscv64-unknown-elf-gcc; flags="-march=rv32imc -misa-spec=2.2 -mabi=ilp32" ;;
    riscv32imac-unknown-none-elf) cc=riscv64-unknown-elf-gcc; flags="-march=rv32imac -misa-spec=2.2 -mabi=ilp32" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  command -v "$cc" >/dev/null || { echo "missing $cc (apt-get install gcc-arm-none-eabi gcc-riscv64-unknown-elf)" >&2; exit 2; }
  (cd "$root" && cargo rustc -q --release --lib --crate-type staticlib --target "$t")
  lib="$root/target/$t/release/libusmp.a"
  # the probe alone (no library) is subtracted to get the library's share
  $cc $flags -Os -ffreestanding -ffunction-sections -fdata-sections -I"$root/include" \
      -nostdlib -nostartfiles -Wl,--gc-sections -Wl,-e,Reset_Handler -Wl,-z,noexecstack \
      "$root/tools/size/probe.c" "$lib" -lgcc -o "$out/probe-$t.elf"
  read -r text data bss _ < <(size "$out/probe-$t.elf" 2>/dev/null | tail -1 || true)
  if command -v arm-none-eabi-size >/dev/null && [[ $t == thumb* ]]; then
    read -r text data bss _ < <(arm-none-eabi-size "$out/probe-$t.elf" | tail -1)
  fi
  printf '%-30s %8s %8s %8s %8s\n' "$t" "$text" "$data" "$bss" "$((text + data))"
done
