#!/usr/bin/env bash
# Prebuilt C SDKs, one per MCU target, for C projects outside ESP-IDF (Makefiles, CMake,
# STM32CubeIDE, Zephyr, Keil...): nothing in them needs Rust.
#
#   scripts/dist.sh [--target TRIPLE]... [--dest DIR]
#
# For each target (default: all of them)
#   thumbv6m-none-eabi          Cortex-M0/M0+
#   thumbv7m-none-eabi          Cortex-M3
#   thumbv7em-none-eabihf       Cortex-M4F/M7 (hard float)
#   thumbv8m.main-none-eabihf   Cortex-M33/M35P/M55 (hard float)
#   riscv32imc-unknown-none-elf, riscv32imac-unknown-none-elf, riscv32imafc-unknown-none-elf
# it writes DIR/usmp-<version>-<target>.tar.gz (default DIR: target/dist), holding
# usmp-<version>-<target>/ with
#   include/                   usmp.h, usmp_transport.h, usmp_port.h, usmp_config.h
#   lib/libusmp_core.a         the Rust core, release (LTO, opt-level z), debug info stripped
#   lib/cmake/usmp/            the CMake package: find_package(usmp CONFIG) -> usmp::usmp
#   lib/pkgconfig/usmp.pc      pkg-config (relocatable)
#   share/usmp/src/            the C glue as sources (BSD-socket transports, port hooks)
#   README.md, LICENSE, BUILDINFO
# and DIR/usmp-<version>-SHA256SUMS over the archives (`sha256sum -c` checks them).
#
# The installation is the root CMakeLists.txt's own (`cmake --install`, cross-configured with
# USMP_RUST_TARGET; no C is compiled for a bare-metal target), so the SDK's package is the
# one tests/component checks. Needs cargo with the targets (`rustup target add`), cmake and
# the targets' GCC (arm-none-eabi-gcc, riscv64-unknown-elf-gcc: scripts/setup.sh). tests/component/test_dist.sh checks the archives; tests/stm32 builds the
# STM32 firmware from one with cargo off the PATH.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ALL_TARGETS=(thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf
             thumbv8m.main-none-eabihf riscv32imc-unknown-none-elf
             riscv32imac-unknown-none-elf riscv32imafc-unknown-none-elf)
targets=()
dest=$root/target/dist
while [ $# -gt 0 ]; do
  case "$1" in
    --target) targets+=("$2"); shift ;;
    --dest) dest=$2; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "dist: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

log() { printf 'dist: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

version=$(sed -n 's/^version *= *"\([0-9][0-9.]*[^"]*\)".*/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Archive timestamps: the commit's time, so the same sources give the same archive.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
installed=$(rustup target list --installed 2>/dev/null || true)

# triple -> "<cpu>|<GCC prefix>|<GCC flags>|<note>" (the flags configure the package and go
# into README.md and BUILDINFO)
describe() {
  case "$1" in
    thumbv6m-none-eabi) echo "Cortex-M0/M0+/M1|arm-none-eabi-|-mcpu=cortex-m0plus -mthumb -mfloat-abi=soft|" ;;
    thumbv7m-none-eabi) echo "Cortex-M3|arm-none-eabi-|-mcpu=cortex-m3 -mthumb -mfloat-abi=soft|" ;;
    thumbv7em-none-eabihf) echo "Cortex-M4F/M7 (hard float)|arm-none-eabi-|-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16| (Cortex-M7: -mcpu=cortex-m7 -mfpu=fpv5-d16)" ;;
    thumbv8m.main-none-eabihf) echo "Cortex-M33/M35P/M55 (hard float)|arm-none-eabi-|-mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16|" ;;
    riscv32imc-unknown-none-elf) echo "RV32IMC (ESP32-C2/C3)|riscv64-unknown-elf-|-march=rv32imc_zicsr_zifencei -mabi=ilp32|" ;;
    riscv32imac-unknown-none-elf) echo "RV32IMAC (ESP32-C6/H2, GD32VF103, FE310)|riscv64-unknown-elf-|-march=rv32imac_zicsr_zifencei -mabi=ilp32|" ;;
    riscv32imafc-unknown-none-elf) echo "RV32IMAFC, single-float ABI (ESP32-P4)|riscv64-unknown-elf-|-march=rv32imafc_zicsr_zifencei -mabi=ilp32f|" ;;
    *) return 1 ;;
  esac
}

made=()
for t in "${targets[@]}"; do
  info=$(describe "$t") || die "unknown target $t (one of: ${ALL_TARGETS[*]})"
  IFS='|' read -r cpu prefix flags note <<<"$info"
  command -v "${prefix}gcc" >/dev/null 2>&1 || die "$t: ${prefix}gcc not found (scripts/setup.sh installs it)"
  strip=${prefix}strip
  grep -qx "$t" <<<"$installed" || die "the Rust target $t is not installed: rustup target add $t"
  name=usmp-$version-$t
  bdir=$root/target/dist-build/$t
  stage=$root/target/dist-stage/$name
  rm -rf "$bdir" "$stage"
  mkdir -p "$bdir"
  # A bare-metal configuration with the target's GCC (the package records its pointer size):
  # nothing in C is compiled (no socket glue), only the core is built (cargo, in the shared
  # target/ directory) and installed with the package files.
  cat >"$bdir/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR ${t%%-*})
set(CMAKE_C_COMPILER "${prefix}gcc")
set(CMAKE_C_FLAGS_INIT "$flags")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
EOF
  log "$t: building the core and the package"
  cmake -S "$root" -B "$bdir" "${gen[@]}" -DCMAKE_TOOLCHAIN_FILE="$bdir/toolchain.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DUSMP_RUST_TARGET="$t" -DUSMP_BUILD_SOCKETS=OFF \
    -DUSMP_CARGO_TARGET_DIR="$root/target" >"$bdir/configure.log" 2>&1 \
    || { cat "$bdir/configure.log" >&2; die "$t: cmake configuration failed"; }
  cmake --build "$bdir" >"$bdir/build.log" 2>&1 || { tail -30 "$bdir/build.log" >&2; die "$t: build failed"; }
  cmake --install "$bdir" --prefix "$stage" >/dev/null
  [ -f "$stage/lib/libusmp_core.a" ] || die "$t: no lib/libusmp_core.a in the installation"
  # Debug sections are most of the archive (the precompiled core library's); code unchanged.
  "$strip" --strip-debug "$stage/lib/libusmp_core.a"
  cp LICENSE "$stage/LICENSE"
  cat >"$stage/BUILDINFO" <<EOF
usmp $version, Rust target $t ($cpu)
commit: $commit
rustc: $(rustc --version)
source hash: $(cmake -DUSMP_SOURCE_HASH_OF="$root" -P cmake/usmp_rust.cmake)
profile: release (opt-level z, LTO, panic=abort, compact AES and SHA-256), debug sections stripped
matching GCC flags: $flags$note
EOF
  cat >"$stage/README.md" <<EOF
# usmp $version SDK for $t ($cpu)

The USMP device client as a prebuilt library: the C API (\`include/usmp.h\`) over a Rust
core compiled for \`$t\`. Building with it needs a C toolchain only, no Rust.
Compile your code for the same core and float ABI, e.g. with GCC: \`$flags\`$note.

## CMake

    cmake -S app -B build -DCMAKE_PREFIX_PATH=/path/to/$name ...
    # or -Dusmp_DIR=/path/to/$name/lib/cmake/usmp (toolchain files that restrict find_package)

    find_package(usmp $version CONFIG REQUIRED)
    target_link_libraries(app PRIVATE usmp::usmp)     # headers + lib/libusmp_core.a

## pkg-config, Makefiles, IDEs

    PKG_CONFIG_PATH=/path/to/$name/lib/pkgconfig pkg-config --cflags --libs usmp
    # = -I<sdk>/include -L<sdk>/lib -lusmp_core

In an IDE (STM32CubeIDE, Keil, IAR, SEGGER): add \`include/\` to the include paths and
\`lib/libusmp_core.a\` to the libraries (it contains its own memcpy/memset/memcmp helpers).
With newlib or picolibc, the C library's are smaller: the CMake package links them when the
toolchain has them (USMP_LIBC_MEM, OFF to keep the core's); elsewhere put
\`\$(pkg-config --variable=libc_mem_ldflags usmp)\` (\`-Wl,-u,... -lc\`) ahead of your objects.

## What the application provides

On bare metal the application brings the transport (\`usmp_transport_t\`, see
\`include/usmp_transport.h\`) and the port hooks (\`include/usmp_port.h\`:
\`usmp_port_get_device_id\`, \`usmp_port_random\` from a true RNG, \`usmp_port_millis\`,
\`usmp_port_delay_ms\`, \`usmp_port_log\`). An RTOS with BSD sockets (lwIP, Zephyr, FreeRTOS+TCP
with the sockets layer) can compile the shipped TCP/UDP transport and POSIX hooks instead:
\`share/usmp/src/\` (CMake: \`\${usmp_GLUE_SOURCE_DIR}\`).

BUILDINFO says how this archive was built; the project's README has the API and the
wire versions.
EOF
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
      -C "$(dirname "$stage")" -cf - "$name" | gzip -n -9 >"$dest/$name.tar.gz"
  made+=("$name.tar.gz")
  log "$t: $dest/$name.tar.gz ($(du -k "$dest/$name.tar.gz" | cut -f1) KiB)"
done

(cd "$dest" && sha256sum "${made[@]}" >"usmp-$version-SHA256SUMS")
log "$dest/usmp-$version-SHA256SUMS: ${#made[@]} archives"
for a in "${made[@]}"; do echo "$dest/$a"; done
