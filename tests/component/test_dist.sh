#!/usr/bin/env bash
# The prebuilt C SDKs of scripts/dist.sh, checked as a C user without Rust would use them:
#
#  1. dist.sh makes one usmp-<version>-<target>.tar.gz per MCU target and a SHA256SUMS file
#     that `sha256sum -c` accepts;
#  2. each archive holds the headers, lib/libusmp_core.a (debug sections stripped), the
#     CMake package, the pkg-config file, the C glue sources, README.md and BUILDINFO;
#  3. with cargo and rustc off the PATH (and no ~/.cargo), for every target: a bare-metal
#     program that calls the whole C API (tools/size/probe.c) links against the unpacked SDK
#     through find_package(usmp CONFIG) with the target's GCC and the flags BUILDINFO names,
#     and again through `pkg-config --cflags --libs usmp`; the ELF has the float ABI of the
#     target (hard-float VFP arguments for the *hf targets, single-float for RV32IMAFC).
#
#   tests/component/test_dist.sh       (about 20 s once the cores are built; work dir:
#                                       $USMP_DIST_TMP or a fresh mktemp -d, removed unless KEEP=1)
# Needs what scripts/dist.sh needs, plus pkg-config. tests/stm32 builds and runs the STM32
# firmware from the thumbv7em archive.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${USMP_DIST_TMP:-$(mktemp -d /tmp/usmp-dist.XXXXXX)}
mkdir -p "$work"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# shellcheck source=tests/component/checks.sh
. tests/component/checks.sh
targets="thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf
         riscv32imc-unknown-none-elf riscv32imac-unknown-none-elf riscv32imafc-unknown-none-elf"

# --- 1. The archives and their sums ---------------------------------------------------------
step "scripts/dist.sh: one archive per MCU target, SHA-256 sums"
t0=$(date +%s)
if scripts/dist.sh --dest "$work/dist" >"$work/dist.out" 2>"$work/dist.log"; then
  ok "scripts/dist.sh ($(( $(date +%s) - t0 )) s)"
else
  bad "scripts/dist.sh"; cat "$work/dist.log"; exit 1
fi
for t in $targets; do
  [ -f "$work/dist/usmp-$version-$t.tar.gz" ] && ok "usmp-$version-$t.tar.gz" || bad "no archive for $t"
done
check "sha256sum -c usmp-$version-SHA256SUMS" \
  bash -c "cd '$work/dist' && sha256sum -c 'usmp-$version-SHA256SUMS'"
[ "$(wc -l <"$work/dist/usmp-$version-SHA256SUMS")" -eq 7 ] && ok "SHA256SUMS lists the 7 archives" \
  || bad "SHA256SUMS: $(cat "$work/dist/usmp-$version-SHA256SUMS")"

# --- 2. What each archive holds -------------------------------------------------------------
step "the contents of each archive"
mkdir -p "$work/sdk"
for t in $targets; do
  tar xzf "$work/dist/usmp-$version-$t.tar.gz" -C "$work/sdk"
  d=$work/sdk/usmp-$version-$t
  missing=""
  for f in include/usmp.h include/usmp_transport.h include/usmp_port.h include/usmp_config.h \
           lib/libusmp_core.a lib/cmake/usmp/usmpConfig.cmake lib/cmake/usmp/usmpConfigVersion.cmake \
           lib/cmake/usmp/usmpTargets.cmake lib/pkgconfig/usmp.pc share/usmp/src/usmp_transport_socket.c \
           share/usmp/src/usmp_port_posix.c README.md LICENSE BUILDINFO; do
    [ -f "$d/$f" ] || missing="$missing $f"
  done
  [ -z "$missing" ] && ok "$t: headers, core, CMake package, pkg-config, glue sources, docs" \
    || bad "$t: missing$missing"
  [ ! -e "$d/lib/libusmp.a" ] || bad "$t: a libusmp.a next to libusmp_core.a"
  grep -q "^usmp $version, Rust target $t " "$d/BUILDINFO" && ok "$t: BUILDINFO names usmp $version for $t" \
    || bad "$t: BUILDINFO: $(head -1 "$d/BUILDINFO")"
  grep -q "set(usmp_RUST_TARGET \"$t\")" "$d/lib/cmake/usmp/usmpConfig.cmake" \
    && ok "$t: usmpConfig.cmake records the Rust target" || bad "$t: usmp_RUST_TARGET not $t"
  case $t in thumb*) readelf=arm-none-eabi-readelf ;; *) readelf=riscv64-unknown-elf-readelf ;; esac
  if "$readelf" -S "$d/lib/libusmp_core.a" 2>/dev/null | grep -q '\.debug_info'; then
    bad "$t: libusmp_core.a still has debug sections"
  else
    ok "$t: libusmp_core.a without debug sections ($(du -k "$d/lib/libusmp_core.a" | cut -f1) KiB)"
  fi
done

# --- 3. A C program per target, without Rust ------------------------------------------------
step "link the whole C API per target, cargo and rustc off the PATH"
no_rust_path=""
IFS=: read -r -a path_dirs <<<"$PATH"
for p in "${path_dirs[@]}"; do
  [ -n "$p" ] && [ ! -e "$p/cargo" ] && [ ! -e "$p/rustc" ] && no_rust_path=${no_rust_path:+$no_rust_path:}$p
done
mkdir -p "$work/nohome"
no_rust=(env PATH="$no_rust_path" HOME="$work/nohome" CARGO_HOME="$work/nohome" RUSTUP_HOME="$work/nohome")
if "${no_rust[@]}" bash -c 'command -v cargo || command -v rustc' >/dev/null; then
  bad "cargo or rustc is still reachable: cannot test without Rust"
fi
for t in $targets; do
  d=$work/sdk/usmp-$version-$t
  case $t in thumb*) prefix=arm-none-eabi- ;; *) prefix=riscv64-unknown-elf- ;; esac
  # The flags the archive documents (BUILDINFO), without the note in parentheses.
  flags=$(sed -n 's/^matching GCC flags: \([^(]*\).*/\1/p' "$d/BUILDINFO" | sed 's/ *$//')
  cat >"$work/tc-$t.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR ${t%%-*})
set(CMAKE_C_COMPILER ${prefix}gcc)
set(CMAKE_C_FLAGS_INIT "$flags")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
EOF
  b=$work/b-$t
  if "${no_rust[@]}" cmake -S "$root/tests/component/probe" -B "$b" "${gen[@]}" \
       -DCMAKE_TOOLCHAIN_FILE="$work/tc-$t.cmake" -DCMAKE_PREFIX_PATH="$d" >"$work/last.log" 2>&1 \
     && "${no_rust[@]}" cmake --build "$b" >>"$work/last.log" 2>&1 \
     && "${prefix}nm" "$b/probe.elf" | grep -q ' T usmp_connect$'; then
    ok "$t: find_package(usmp CONFIG) + probe.c ($flags): $("${prefix}size" "$b/probe.elf" | tail -1 | awk '{print "text " $1 ", bss " $3}')"
  else
    bad "$t: find_package build"; tail -20 "$work/last.log"
  fi
  # shellcheck disable=SC2086
  pc=$(PKG_CONFIG_PATH="$d/lib/pkgconfig" pkg-config --cflags --libs usmp)
  # shellcheck disable=SC2086
  check "$t: \$(pkg-config --cflags --libs usmp) + probe.c" \
    "${no_rust[@]}" "${prefix}gcc" $flags -Os -ffreestanding -ffunction-sections -fdata-sections \
      -nostdlib -nostartfiles -Wl,--gc-sections -Wl,-e,Reset_Handler \
      "$root/tools/size/probe.c" $pc -lgcc -o "$work/pc-$t.elf"
  case $t in
    *eabihf) "${prefix}readelf" -A "$b/probe.elf" | grep -q 'Tag_ABI_VFP_args: VFP registers' \
               && ok "$t: hard-float calling convention (VFP register arguments)" \
               || bad "$t: probe.elf is not hard float" ;;
    thumb*) "${prefix}readelf" -A "$b/probe.elf" | grep -q 'Tag_ABI_VFP_args' \
              && bad "$t: probe.elf uses VFP arguments" || ok "$t: soft-float calling convention" ;;
    riscv32imafc*) "${prefix}readelf" -h "$b/probe.elf" | grep -q 'single-float ABI' \
                     && ok "$t: single-float ABI (ilp32f)" || bad "$t: not ilp32f" ;;
    *) "${prefix}readelf" -h "$b/probe.elf" | grep -q 'soft-float ABI' \
         && ok "$t: soft-float ABI (ilp32)" || bad "$t: not ilp32" ;;
  esac
done

printf '\ndist: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
