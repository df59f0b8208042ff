#!/usr/bin/env bash
# What gateway discovery costs on a Cortex-M4 (thumbv7em-none-eabihf), measured the way
# BENCHMARKS.md measures the rest of the library:
#   flash  the release static library (cargo rustc --crate-type staticlib, LTO) with and
#          without `--features discovery`, each linked with arm-none-eabi-gcc -Os
#          --gc-sections into tools/size/probe.c (the whole C API), the discovery build also
#          with one more call, usmp_discover_over; text + data of the ELFs;
#   stack  discovery_fw.c on QEMU netduinoplus2 (tools/stack/startup.c and link.ld): the
#          stack painted before each usmp_discover_over call, four checked scenarios.
#
#   tests/discovery/footprint/measure.sh          (~1 min cold; needs what scripts/setup.sh
#                                                  and scripts/setup-qemu.sh install)
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here="$root/tests/discovery/footprint"
out=${USMP_BUILD_DIR:-$root/build}/discovery-footprint
mkdir -p "$out"
M4=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
unset RUSTFLAGS

lib() { # lib TARGET NAME [cargo args...]: the shipped way to build the archive
  local t=$1 name=$2
  shift 2
  (cd "$root" && cargo rustc -q --release --lib --crate-type staticlib --target "$t" \
    --target-dir "$out/$name" "$@")
  echo "$out/$name/$t/release/libusmp.a"
}
flash() { # flash ELF: text + data
  size "$1" | awk 'NR == 2 { print $1 + $2 }'
}
link_probe() { # link_probe CC FLAGS... -- ELF LIB SRC
  local cc=$1
  shift
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  local elf=$1 lib=$2 src=$3
  "$cc" "${flags[@]}" -Os -ffreestanding -ffunction-sections -fdata-sections -I "$root/include" \
    -nostdlib -nostartfiles -Wl,--gc-sections -Wl,-e,Reset_Handler -Wl,-z,noexecstack \
    "$src" "$lib" -lgcc -o "$elf"
}

# tools/size/probe.c with one more call: usmp_discover_over, through a transport behind a
# pointer the linker cannot see through (as the probe does for usmp_connect).
sed -e 's|#include "usmp.h"|#include "usmp_discovery.h"|' \
    -e 's|^  usmp_close(&ctx);|  { static usmp_discover_opts_t o; static usmp_gateway_info_t g; static usmp_discover_stats_t s;\n    sink = usmp_discover_over(\&probe_transport, \&o, \&g, \&s); }\n  usmp_close(\&ctx);|' \
    "$root/tools/size/probe.c" >"$out/probe_discovery.c"
grep -q usmp_discover_over "$out/probe_discovery.c"

for t in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  case $t in
    thumb*) cc=arm-none-eabi-gcc flags=("${M4[@]}") ;;
    riscv*) cc=riscv64-unknown-elf-gcc flags=(-march=rv32imc -misa-spec=2.2 -mabi=ilp32) ;;
  esac
  base=$(lib "$t" base)
  disc=$(lib "$t" discovery --features discovery)
  link_probe "$cc" "${flags[@]}" -- "$out/probe-base-$t.elf" "$base" "$root/tools/size/probe.c"
  link_probe "$cc" "${flags[@]}" -- "$out/probe-unused-$t.elf" "$disc" "$root/tools/size/probe.c"
  link_probe "$cc" "${flags[@]}" -- "$out/probe-discovery-$t.elf" "$disc" "$out/probe_discovery.c"
  fb=$(flash "$out/probe-base-$t.elf")
  fu=$(flash "$out/probe-unused-$t.elf")
  fd=$(flash "$out/probe-discovery-$t.elf")
  echo "$t flash: whole C API $fb B; discovery built in, not called $fu B ($((fu - fb)));" \
       "+ usmp_discover_over $fd B (+$((fd - fb)))"
done
disc="$out/discovery/thumbv7em-none-eabihf/release/libusmp.a"
CC=arm-none-eabi-gcc

st="$root/tools/stack"
"$CC" "${M4[@]}" -Os -g -ffreestanding -ffunction-sections -fdata-sections -Wall -Wextra -Werror \
  -I "$root/include" -I "$st" -nostdlib -nostartfiles -Wl,--gc-sections -Wl,-T,"$st/link.ld" \
  -Wl,-z,noexecstack "$st/startup.c" "$here/discovery_fw.c" "$disc" -lgcc -o "$out/discovery-fw.elf"
qemu=${USMP_QEMU:-$HOME/.cache/usmp-qemu/bin/qemu-system-arm}
[ -x "$qemu" ] || qemu=$("$root/scripts/setup-qemu.sh" | tail -1)
timeout 60 "$qemu" -M netduinoplus2 -nographic -monitor none -serial null \
  -semihosting-config enable=on,target=native -kernel "$out/discovery-fw.elf" | tee "$out/stack.txt"
grep -q "done failures=0" "$out/stack.txt"
