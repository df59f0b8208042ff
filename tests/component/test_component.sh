#!/usr/bin/env bash
# The packaging of usmp, checked without ESP-IDF:
#
#  1. the ESP-IDF component archive (scripts/pack-component.sh --prebuilt: the real
#     component manager from PyPI) ships what a build needs and nothing else: the vendored
#     crates with the .cargo/config.toml that uses them, prebuilt cores for the three RISC-V
#     targets stamped with their sources, one version in Cargo.toml, Cargo.lock,
#     idf_component.yml and the CMake package, the example's dependency metaloomhq/usmp;
#  2. the unpacked archive builds OFFLINE (in a network namespace without any interface but
#     a down loopback, with an empty CARGO_HOME) as a self-contained CMake library:
#     add_subdirectory() + usmp::usmp builds and runs a program;
#  3. `cmake --install` of it is a CMake package (find_package(usmp CONFIG) + usmp::usmp)
#     and a pkg-config package;
#  4. a cross build for Cortex-M4 (arm-none-eabi toolchain file, hard float) with an EMPTY
#     USMP_RUST_TARGET picks thumbv7em-none-eabihf, installs, and a bare-metal program
#     (tools/size/probe.c, the whole API) links against the installed package, with newlib's
#     memcpy/memset/memcmp ahead of the core's own (USMP_LIBC_MEM; also through pkg-config),
#     with the core's own when USMP_LIBC_MEM=OFF; nothing is added when the toolchain has no
#     C library;
#     a toolchain with no Rust mapping stops with a message naming USMP_RUST_TARGET;
#  5. ESP-IDF's choice per chip (the component's own functions, run in script mode): the
#     RISC-V chips C2, C3, C5, C6, H2, P4 take a prebuilt core, and each prebuilt core links
#     with ESP-IDF's compiler flags for it; the Xtensa chips without Rust stop with the
#     message naming espup, a RISC-V chip without a prebuilt core and without Rust with the
#     one naming its rustup target; in an ESP-IDF-style link (a ROM linker-script assignment,
#     esp_libc's forced definitions) the core's weak mem functions lose without any help.
#
# ESP-IDF itself is not installed in CI: this test is the stand-in for an `idf.py build`.
#
#   tests/component/test_component.sh        (about 2 minutes; work dir: $USMP_COMPONENT_TMP
#                                             or a fresh mktemp -d, removed unless KEEP=1)
# Needs cmake, ninja, gcc, pkg-config, arm-none-eabi-gcc, riscv64-unknown-elf-gcc, cargo with
# the thumbv7em-none-eabihf and riscv32imc/imac/imafc targets, python3, network for
# `cargo vendor` and pip (scripts/setup.sh installs them); unshare(1) for the offline build
# (without it: CARGO_NET_OFFLINE and an empty CARGO_HOME only, said in the output).
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${USMP_COMPONENT_TMP:-$(mktemp -d /tmp/usmp-component.XXXXXX)}
mkdir -p "$work"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# shellcheck source=tests/component/checks.sh
. tests/component/checks.sh

# --- 1. The archive -------------------------------------------------------------------------
step "pack the component archive (compote, prebuilt RISC-V cores)"
archive=$(scripts/pack-component.sh --prebuilt --dest "$work/dist" 2>"$work/pack.log") || {
  cat "$work/pack.log"; bad "scripts/pack-component.sh"; exit 1; }
ok "packed $(basename "$archive")"
[ ! -e lib ] && [ ! -e vendor ] && ok "the source tree has no lib/ or vendor/ (packing works on a staging copy)" \
  || bad "packing left lib/ or vendor/ in the source tree"
tar tzf "$archive" | sed 's|^\./||' | grep -v '/$' | LC_ALL=C sort >"$work/files.txt"
printf '     %s files: %s\n' "$(wc -l <"$work/files.txt")" "$(tr '\n' ' ' <"$work/files.txt" | cut -c1-300)..."

rv_triples="riscv32imc-unknown-none-elf riscv32imac-unknown-none-elf riscv32imafc-unknown-none-elf"
for f in src/lib.rs Cargo.toml Cargo.lock cbindgen.toml CMakeLists.txt cmake/usmp_rust.cmake \
         cmake/usmpConfig.cmake.in cmake/usmp.pc.in idf_component.yml Kconfig README.md \
         include/usmp.h include/usmp_port.h include/usmp_transport.h component/include/usmp_config.h \
         component/usmp_transport_socket.c component/usmp_port_posix.c \
         component/usmp_port_esp32.c examples/esp32_echo/CMakeLists.txt \
         examples/esp32_echo/main/main.c examples/esp32_echo/main/idf_component.yml \
         .cargo/config.toml vendor/aes-gcm/Cargo.toml vendor/x25519-dalek/src/lib.rs \
         $(for t in $rv_triples; do echo "lib/$t/libusmp_core.a lib/$t/usmp-source.sha256"; done); do
  if grep -qx "$f" "$work/files.txt"; then ok "archive has $f"; else bad "archive lacks $f"; fi
done
# Every file the repository's src/ holds is shipped (the crate must build from the archive).
for f in $(cd "$root" && find src -type f | LC_ALL=C sort); do
  grep -qx "$f" "$work/files.txt" || bad "archive lacks $f"
done
unwanted=$(grep -E '^(target|build[^/]*|dist|tests|benches|fuzz|tools|scripts|cli|\.venv[^/]*|\.ci|\.git[^/]*|\.pytest_cache)(/|$)|(^|/)(build|__pycache__|managed_components|\.venv[^/]*)/|(^|/)sdkconfig$' \
             "$work/files.txt" || true)
if [ -z "$unwanted" ]; then
  ok "archive has no build output, venvs, tests, benchmarks, tools, CLI or VCS files"
else
  bad "archive has files it should not: $(echo "$unwanted" | head -5 | tr '\n' ' ')"
fi

mkdir -p "$work/unpacked"
tar xzf "$archive" -C "$work/unpacked"
up=$work/unpacked
manifest_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$up/idf_component.yml" | head -n 1)
up_cargo_version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$up/Cargo.toml" | head -n 1)
lock_version() { awk '/^name = "usmp"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$1"; }
for v in "idf_component.yml:$manifest_version" "archive Cargo.toml:$up_cargo_version" \
         "Cargo.lock:$(lock_version Cargo.lock)" "archive Cargo.lock:$(lock_version "$up/Cargo.lock")"; do
  [ "${v#*:}" = "$version" ] && ok "version in ${v%%:*} is $version (Cargo.toml's)" \
    || bad "version in ${v%%:*} is '${v#*:}', Cargo.toml says '$version'"
done
# The packed crate builds the library from vendor/ only: no dev-dependencies to resolve.
grep -q '^\[dev-dependencies\]' "$up/Cargo.toml" && bad "archive Cargo.toml still has [dev-dependencies]" \
  || ok "archive Cargo.toml has no [dev-dependencies]"
grep -q '^replace-with = "vendored-sources"' "$up/.cargo/config.toml" \
  && grep -q '^directory = "vendor"' "$up/.cargo/config.toml" \
  && grep -q 'aes_compact' "$up/.cargo/config.toml" \
  && ok ".cargo/config.toml: crates.io replaced by vendor/, rustflags kept" \
  || bad ".cargo/config.toml lacks the source replacement or the rustflags"
grep -q '^ *- linux$' "$up/idf_component.yml" && grep -q '^ *- esp32c3$' "$up/idf_component.yml" \
  && ok "manifest targets list esp32c3 and linux" || bad "manifest targets"
grep -q '^  metaloomhq/usmp:$' "$up/examples/esp32_echo/main/idf_component.yml" \
  && ok "esp32_echo depends on metaloomhq/usmp (not the default namespace's usmp)" \
  || bad "esp32_echo's dependency is not metaloomhq/usmp"
grep -q '^idf_build_set_property(MINIMAL_BUILD ON)$' "$up/examples/esp32_echo/CMakeLists.txt" \
  && ok "esp32_echo builds minimally (ESP-IDF v6.0 linux target)" || bad "esp32_echo lacks MINIMAL_BUILD"
for yml in $(cd "$up" && find examples -name idf_component.yml); do
  p=$(sed -n 's/^ *override_path: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$up/$yml")
  [ -z "$p" ] && continue
  if [ -f "$up/$(dirname "$yml")/$p/idf_component.yml" ]; then
    ok "$yml: override_path $p reaches the component"
  else
    bad "$yml: override_path $p does not reach the component root"
  fi
done
for t in $rv_triples; do
  want=$(cmake -DUSMP_SOURCE_HASH_OF="$up" -P "$up/cmake/usmp_rust.cmake")
  have=$(cat "$up/lib/$t/usmp-source.sha256" 2>/dev/null || true)
  [ "$want" = "$have" ] && ok "lib/$t stamped with the archive's source hash" \
    || bad "lib/$t stamp '$have' != source hash '$want'"
done

# --- 2. add_subdirectory() of the unpacked archive, offline ---------------------------------
step "the unpacked archive as a CMake subdirectory (usmp::usmp), built offline"
# offline CMD...: no network (a network namespace of our own, when unshare works here), no
# registry cache (an empty CARGO_HOME), and cargo told so.
mkdir -p "$work/cargo-home-empty"
if unshare -n true 2>/dev/null; then
  offline() { unshare -n -- env CARGO_HOME="$work/cargo-home-empty" CARGO_NET_OFFLINE=true "$@"; }
  offline_how="network namespace without network, empty CARGO_HOME"
else
  offline() { env CARGO_HOME="$work/cargo-home-empty" CARGO_NET_OFFLINE=true "$@"; }
  offline_how="CARGO_NET_OFFLINE and an empty CARGO_HOME (unshare -n is not permitted here)"
fi
echo "     offline = $offline_how"
mkdir -p "$work/app"
cat >"$work/app/main.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include "usmp.h"
#include "usmp_config.h"
int main(int argc, char **argv)
{
    usmp_t ctx = {0};
    usmp_config_defaults(&ctx); /* -DUSMP_DEFAULT_KEEPALIVE_MS=1234 below */
    uint8_t id[USMP_DEVICE_ID_LEN];
    int rc = usmp_connect(&ctx, NULL);  /* a code, not a crash; links the whole core */
    int id_rc = usmp_port_get_device_id(id, sizeof id); /* the shipped POSIX hooks */
    printf("usmp %s keepalive=%u connect(NULL)=%s id_rc=%d\n", usmp_get_version(),
           (unsigned)ctx.keepalive_ms, usmp_err_name(rc), id_rc);
    return (argc > 1 && strcmp(usmp_get_version(), argv[1]) == 0 && ctx.keepalive_ms == 1234 &&
            rc == USMP_ERR_INVALID_ARG && id_rc == 0) ? 0 : 1;
}
EOF
cat >"$work/app/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(usmp_component_app C)
if(USMP_APP_SUBDIR)
  add_subdirectory("\${USMP_APP_SUBDIR}" usmp)
else()
  find_package(usmp CONFIG REQUIRED)
  message(STATUS "found usmp \${usmp_VERSION} (Rust target '\${usmp_RUST_TARGET}', sockets \${usmp_HAS_SOCKETS})")
endif()
add_executable(app main.c)
target_compile_definitions(app PRIVATE USMP_DEFAULT_KEEPALIVE_MS=1234)
target_link_libraries(app PRIVATE usmp::usmp)
EOF
check "configure a consumer with add_subdirectory(unpacked archive), offline" \
  offline cmake -S "$work/app" -B "$work/b-sub" "${gen[@]}" -DUSMP_APP_SUBDIR="$up"
check "build it offline (cargo runs inside the consumer's build tree, crates from vendor/)" \
  offline cmake --build "$work/b-sub"
[ -f "$work/b-sub/usmp/cargo/release/libusmp_core.a" ] && ok "Rust core libusmp_core.a built in the build tree" \
  || bad "no libusmp_core.a in $work/b-sub/usmp/cargo/release"
[ ! -e "$work/cargo-home-empty/registry" ] && ok "cargo used no registry (CARGO_HOME stayed empty)" \
  || bad "cargo used a registry: $(ls "$work/cargo-home-empty/registry")"
check "run it: version $version, usmp_config.h defaults, POSIX hooks" "$work/b-sub/app" "$version"
sed 's/^/     /' "$work/last.log"
# Hosted, the core has no mem functions of its own (glibc's serve it): USMP_LIBC_MEM adds nothing.
if readelf -sW "$work/b-sub/usmp/cargo/release/libusmp_core.a" 2>/dev/null \
     | awk '$7 != "UND" && $8 ~ /^(memcpy|memset|memmove|memcmp)$/' | grep -q . \
   || grep -q -- '-u,memc' "$work/b-sub/build.ninja" "$work/b-sub/Makefile" 2>/dev/null; then
  bad "hosted build: the core defines mem functions, or USMP_LIBC_MEM added link options"
else
  ok "hosted build: the core defines no mem functions and USMP_LIBC_MEM adds no link option"
fi

# --- 3. cmake --install + find_package ------------------------------------------------------
step "cmake --install of the unpacked archive, then find_package(usmp CONFIG) and pkg-config"
check "configure the archive as a top-level project (offline)" \
  offline cmake -S "$up" -B "$work/b-top" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release
check "build it (offline)" offline cmake --build "$work/b-top"
check "install it to a prefix" cmake --install "$work/b-top" --prefix "$work/prefix"
for f in include/usmp.h include/usmp_config.h lib/libusmp_core.a lib/libusmp_glue.a \
         lib/cmake/usmp/usmpConfig.cmake lib/cmake/usmp/usmpConfigVersion.cmake \
         lib/cmake/usmp/usmpTargets.cmake lib/pkgconfig/usmp.pc share/usmp/src/usmp_transport_socket.c \
         share/usmp/src/usmp_port_posix.c share/usmp/src/usmp_host_id.h; do
  [ -f "$work/prefix/$f" ] && ok "installed $f" || bad "not installed: $f"
done
[ ! -e "$work/prefix/lib/libusmp.a" ] && ok "no libusmp.a installed (the core is libusmp_core.a)" \
  || bad "a libusmp.a was installed next to libusmp_core.a"
# pkg-config, from a copy of the prefix elsewhere (the .pc file finds its prefix itself).
cp -a "$work/prefix" "$work/prefix-moved"
pc_flags=$(PKG_CONFIG_PATH="$work/prefix-moved/lib/pkgconfig" pkg-config --cflags --libs usmp 2>&1) || true
pc_version=$(PKG_CONFIG_PATH="$work/prefix-moved/lib/pkgconfig" pkg-config --modversion usmp 2>&1) || true
[ "$pc_version" = "$version" ] && ok "pkg-config --modversion usmp: $pc_version" \
  || bad "pkg-config --modversion usmp: '$pc_version', want $version"
# shellcheck disable=SC2086
check "cc main.c \$(pkg-config --cflags --libs usmp) from the moved prefix: $pc_flags" \
  cc -DUSMP_DEFAULT_KEEPALIVE_MS=1234 "$work/app/main.c" $pc_flags -o "$work/app-pc"
check "run the pkg-config build" "$work/app-pc" "$version"
check "configure a consumer with find_package(usmp CONFIG REQUIRED)" \
  cmake -S "$work/app" -B "$work/b-pkg" "${gen[@]}" -DCMAKE_PREFIX_PATH="$work/prefix"
grep -q "found usmp $version" "$work/last.log" && ok "find_package reports usmp $version" \
  || bad "find_package did not report usmp $version"
check "build it against the installed package" cmake --build "$work/b-pkg"
check "run it" "$work/b-pkg/app" "$version"
# SameMinorVersion: 0.6.x satisfies find_package(usmp 0.6), not 0.7 or 1.0.
cat >"$work/version-check.cmake" <<'EOF'
foreach(want IN ITEMS "${SAME}" 999.0)
  string(REPLACE "." ";" parts "${want}")
  list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
  list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
  set(PACKAGE_FIND_VERSION "${want}")
  set(PACKAGE_FIND_VERSION_RANGE FALSE)
  set(CMAKE_SIZEOF_VOID_P 8)
  unset(PACKAGE_VERSION_COMPATIBLE)
  include("${FILE}")
  message("${want}=${PACKAGE_VERSION_COMPATIBLE}")
endforeach()
EOF
same=$(echo "$version" | cut -d. -f1,2)
vc=$(cmake -DSAME="$same" -DFILE="$work/prefix/lib/cmake/usmp/usmpConfigVersion.cmake" \
       -P "$work/version-check.cmake" 2>&1 | tr '\n' ' ')
case "$vc" in
  "$same=TRUE 999.0=FALSE "*) ok "usmpConfigVersion.cmake: $vc" ;;
  *) bad "usmpConfigVersion.cmake: $vc (want $same=TRUE 999.0=FALSE)" ;;
esac

# --- 4. Cross: Cortex-M4 with an empty USMP_RUST_TARGET -------------------------------------
step "cross build for Cortex-M4 (hard float) with an empty USMP_RUST_TARGET"
mkdir -p "$work/tc"
cat >"$work/tc/cortex-m4.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
EOF
cat >"$work/tc/cortex-a9.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-a9")
EOF
check "configure the unpacked archive with the arm-none-eabi toolchain file" \
  cmake -S "$up" -B "$work/b-m4" "${gen[@]}" -DCMAKE_TOOLCHAIN_FILE="$work/tc/cortex-m4.cmake" \
        -DUSMP_RUST_TARGET=
grep -q "usmp: Rust target thumbv7em-none-eabihf" "$work/last.log" \
  && ok "picked thumbv7em-none-eabihf: $(grep -o 'usmp: Rust target.*' "$work/last.log" | cut -c1-110)" \
  || bad "did not pick thumbv7em-none-eabihf"
check "build it (the core alone: bare metal has no socket glue)" cmake --build "$work/b-m4"
check "install it" cmake --install "$work/b-m4" --prefix "$work/prefix-m4"
[ -f "$work/prefix-m4/lib/libusmp_core.a" ] && ok "installed the thumbv7em core" || bad "no core installed"
check "configure the bare-metal probe (find_package, Cortex-M4)" \
  cmake -S "$root/tests/component/probe" -B "$work/b-probe" "${gen[@]}" \
        -DCMAKE_TOOLCHAIN_FILE="$work/tc/cortex-m4.cmake" -DCMAKE_PREFIX_PATH="$work/prefix-m4"
check "link tools/size/probe.c (the whole C API) with --gc-sections" cmake --build "$work/b-probe"
if arm-none-eabi-nm "$work/b-probe/probe.elf" 2>/dev/null | grep -q ' T usmp_connect$'; then
  ok "probe.elf: $(arm-none-eabi-size "$work/b-probe/probe.elf" | tail -1 | awk '{print "text " $1 ", data " $2 ", bss " $3}')"
else
  bad "probe.elf lacks usmp_connect"
fi

step "USMP_LIBC_MEM: newlib's memcpy/memset/memcmp ahead of the core's own copies"
# The core's copies (compiler_builtins) are weak, nm's W; newlib's are not, T.
mem_from_libc() { # mem_from_libc ELF: the core's mem references resolved by the C library
  local syms
  syms=$(arm-none-eabi-nm "$1" 2>/dev/null) || return 1
  grep -q ' T __aeabi_memcpy$' <<<"$syms" && grep -q ' T memcmp$' <<<"$syms" \
    && ! grep -q 'compiler_builtins3mem' <<<"$syms"
}
mem_from_core() { arm-none-eabi-nm "$1" 2>/dev/null | grep -q ' W __aeabi_memcpy$'; }
text_of() { arm-none-eabi-size "$1" | tail -1 | awk '{print $1}'; }
if mem_from_libc "$work/b-probe/probe.elf"; then
  ok "probe.elf (-nostdlib, USMP_LIBC_MEM on by default) takes __aeabi_memcpy, memcmp, ... from newlib"
else
  bad "probe.elf does not take its mem functions from newlib: $(arm-none-eabi-nm "$work/b-probe/probe.elf" | grep -E 'aeabi_memcpy$| memcmp$' | tr '\n' ' ')"
fi
# What the package forces with -u is what the core references: no more (flash), no less.
want=$(sed -n 's/^set(usmp_LIBC_MEM_SYMBOLS "\(.*\)")$/\1/p' "$work/prefix-m4/lib/cmake/usmp/usmpConfig.cmake" \
         | tr ';' '\n' | LC_ALL=C sort | tr '\n' ' ')
have=$(arm-none-eabi-readelf -sW "$work/prefix-m4/lib/libusmp_core.a" 2>/dev/null \
         | awk '/^File: /{f=$2} $7 == "UND" && f ~ /\(usmp-/ && $8 ~ /^(mem(cpy|set|move|cmp)|bcmp|strlen|__aeabi_mem[a-z]*[48]?)$/ {print $8}' \
         | LC_ALL=C sort -u | tr '\n' ' ')
if [ -n "$want" ] && [ "$want" = "$have" ]; then
  ok "usmp_LIBC_MEM_SYMBOLS = the core's mem references: $want"
else
  bad "usmp_LIBC_MEM_SYMBOLS '$want' != the core's mem references '$have' (cmake/usmp_libc_mem.cmake)"
fi
probe_variant() { # probe_variant DIR TOOLCHAIN [cmake args...]: configure and build the probe
  local dir=$1 tc=$2
  shift 2
  cmake -S "$root/tests/component/probe" -B "$dir" "${gen[@]}" -DCMAKE_TOOLCHAIN_FILE="$tc" \
        -DCMAKE_PREFIX_PATH="$work/prefix-m4" "$@" && cmake --build "$dir"
}
check "USMP_LIBC_MEM=OFF: configure and link the probe" \
  probe_variant "$work/b-probe-off" "$work/tc/cortex-m4.cmake" -DUSMP_LIBC_MEM=OFF
if mem_from_core "$work/b-probe-off/probe.elf"; then
  ok "USMP_LIBC_MEM=OFF keeps the core's copies; on, the probe is $(( $(text_of "$work/b-probe-off/probe.elf") - $(text_of "$work/b-probe/probe.elf") )) B smaller"
else
  bad "USMP_LIBC_MEM=OFF: __aeabi_memcpy is not the core's weak copy"
fi
# A toolchain without a C library: Debian's riscv64-unknown-elf-gcc has none of its own.
# Configuring is enough: with nothing added, the link is the USMP_LIBC_MEM=OFF one above.
cat >"$work/tc/rv32-nolibc.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv32)
set(CMAKE_C_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "-march=rv32imc_zicsr_zifencei -mabi=ilp32")
EOF
if [ "$(riscv64-unknown-elf-gcc -march=rv32imc_zicsr_zifencei -mabi=ilp32 -print-file-name=libc.a)" != libc.a ]; then
  echo "     (riscv64-unknown-elf-gcc has a C library here: the no-libc case is not tested)"
elif cmake -S "$root/tests/component/probe" -B "$work/b-probe-nolibc" "${gen[@]}" \
       -DCMAKE_TOOLCHAIN_FILE="$work/tc/rv32-nolibc.cmake" -DCMAKE_PREFIX_PATH="$work/prefix-m4" \
       >"$work/last.log" 2>&1 \
     && grep -q "usmp: no C library links with this toolchain" "$work/last.log" \
     && ! grep -q -- '-u,__aeabi' "$work/b-probe-nolibc/build.ninja" "$work/b-probe-nolibc/Makefile" 2>/dev/null; then
  ok "a toolchain without a C library (riscv64-unknown-elf-gcc): USMP_LIBC_MEM adds nothing"
else
  bad "no C library: $(grep 'usmp' "$work/last.log" | tail -3)"
fi
# pkg-config users put the same options ahead of their objects.
pc_libc=$(PKG_CONFIG_PATH="$work/prefix-m4/lib/pkgconfig" pkg-config --variable=libc_mem_ldflags usmp)
pc_libs=$(PKG_CONFIG_PATH="$work/prefix-m4/lib/pkgconfig" pkg-config --libs usmp)
# shellcheck disable=SC2086
check "pkg-config: \$(pkg-config --variable=libc_mem_ldflags usmp) = '$pc_libc' ahead of probe.c" \
  arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -ffreestanding \
    -ffunction-sections -fdata-sections -I"$work/prefix-m4/include" -nostdlib -nostartfiles \
    -Wl,--gc-sections -Wl,-e,Reset_Handler $pc_libc "$root/tools/size/probe.c" $pc_libs -lgcc \
    -o "$work/probe-pc-libc.elf"
if [ -n "$pc_libc" ] && mem_from_libc "$work/probe-pc-libc.elf"; then
  ok "pkg-config link: mem functions from newlib"
else
  bad "pkg-config link: mem functions not from newlib"
fi
if cmake -S "$up" -B "$work/b-a9" "${gen[@]}" -DCMAKE_TOOLCHAIN_FILE="$work/tc/cortex-a9.cmake" \
     >"$work/last.log" 2>&1; then
  bad "a Cortex-A9 bare-metal toolchain configured without USMP_RUST_TARGET"
elif grep -q "Set USMP_RUST_TARGET" "$work/last.log"; then
  ok "no Rust mapping (Cortex-A9, bare metal): configuration stops naming USMP_RUST_TARGET"
else
  bad "Cortex-A9: failed, but without the USMP_RUST_TARGET message"; tail -20 "$work/last.log"
fi

# --- 5. ESP-IDF's choice per chip, and the messages when Rust is missing -------------------
step "ESP-IDF: which core each chip gets (the component's own functions, script mode)"
select_core() { # select_core COMPONENT_DIR IDF_TARGET [env...]: the decision, or the message
  local dir=$1 target=$2
  shift 2
  env "$@" cmake -DCOMPONENT_DIR="$dir" -DIDF_TARGET="$target" \
    -P "$root/tests/component/idf_select.cmake" >"$work/select.log" 2>&1
}
# No cargo anywhere: PATH without it, a HOME and CARGO_HOME without .cargo/bin.
mkdir -p "$work/nohome"
no_rust=(PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/nohome" CARGO_HOME="$work/nohome")
if PATH=/usr/local/bin:/usr/bin:/bin command -v cargo >/dev/null; then
  bad "cargo is in /usr/bin or /usr/local/bin: cannot test the component without Rust"
fi
for pair in esp32c2:riscv32imc esp32c3:riscv32imc esp32c5:riscv32imac esp32c6:riscv32imac \
            esp32h2:riscv32imac esp32p4:riscv32imafc; do
  chip=${pair%%:*}
  want="$up/lib/${pair#*:}-unknown-none-elf/libusmp_core.a"
  if select_core "$up" "$chip" "${no_rust[@]}" && grep -q "prebuilt=$want\$" "$work/select.log"; then
    ok "$chip: prebuilt ${pair#*:} core, no Rust on the machine"
  else
    bad "$chip: $(tail -5 "$work/select.log")"
  fi
done
# The messages the README quotes.
if select_core "$up" esp32s3 "${no_rust[@]}"; then
  bad "esp32s3 without Rust did not stop"
elif tr -s ' \n' ' ' <"$work/select.log" | grep -q "usmp: cargo not found. IDF_TARGET esp32s3 needs the Rust core built from source .*(Xtensa) need Espressif's Rust toolchain: \`cargo install espup --locked && espup install\`"; then
  ok "esp32s3 without Rust: stops naming espup"
else
  bad "esp32s3 without Rust: $(cat "$work/select.log")"
fi
if select_core "$root" esp32c3 "${no_rust[@]}"; then
  bad "esp32c3 without a prebuilt core and without Rust did not stop"
elif tr -s ' \n' ' ' <"$work/select.log" | grep -q "usmp: cargo not found.* install Rust (https://rustup.rs) and \`rustup target add riscv32imc-unknown-none-elf\`"; then
  ok "esp32c3 from the repository (no prebuilt core) without Rust: stops naming the rustup target"
else
  bad "esp32c3 without Rust: $(cat "$work/select.log")"
fi
if rustc +esp --version >/dev/null 2>&1; then
  echo "     (the esp toolchain is installed here: its absence is not tested)"
elif select_core "$up" esp32; then
  bad "esp32 with Rust but without the esp toolchain did not stop"
elif tr -s ' \n' ' ' <"$work/select.log" | grep -q "usmp: the Rust toolchain 'esp' is missing.*espup install"; then
  ok "esp32 with stable Rust only: stops naming the esp toolchain and espup"
else
  bad "esp32 without the esp toolchain: $(cat "$work/select.log")"
fi

step "each shipped RISC-V core links with ESP-IDF's compiler flags for its chips"
if command -v riscv64-unknown-elf-gcc >/dev/null; then
  for spec in "riscv32imc-unknown-none-elf rv32imc_zicsr_zifencei ilp32 C2/C3" \
              "riscv32imac-unknown-none-elf rv32imac_zicsr_zifencei ilp32 C5/C6/H2" \
              "riscv32imafc-unknown-none-elf rv32imafc_zicsr_zifencei ilp32f P4"; do
    read -r t march mabi chips <<<"$spec"
    check "link probe.c with lib/$t/libusmp_core.a ($chips: -march=$march -mabi=$mabi)" \
      riscv64-unknown-elf-gcc -march="$march" -mabi="$mabi" -Os -ffreestanding \
        -ffunction-sections -fdata-sections -I"$up/include" -nostdlib -nostartfiles \
        -Wl,--gc-sections -Wl,-e,Reset_Handler "$root/tools/size/probe.c" \
        "$up/lib/$t/libusmp_core.a" -lgcc -o "$work/probe-$t.elf"
  done
else
  bad "riscv64-unknown-elf-gcc missing (apt-get install gcc-riscv64-unknown-elf)"
fi

step "ESP-IDF: the ROM's and esp_libc's mem functions win over the core's weak copies"
# Why the component adds no USMP_LIBC_MEM (CMakeLists.txt): ESP-IDF assigns memset to the ROM
# in a linker script (esp32c3.rom.libc.ld: memset = 0x40000354) and, by default, compiles its
# own memcpy/memcmp (esp_libc) and forces them in with -u. Both come here after the shipped
# ESP32-C3 core, the order in which the linker sees the core's weak copies first.
if command -v riscv64-unknown-elf-gcc >/dev/null; then
  idf=$work/idf-mem
  mkdir -p "$idf"
  echo 'memset = 0x40000354;' >"$idf/rom.ld"
  cat >"$idf/esp_libc_mem.c" <<'EOF'
typedef __SIZE_TYPE__ size_t;
int esp_libc_include_memcpy_impl;
void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *o = d;
    const unsigned char *i = s;
    while (n--) { *o++ = *i++; }
    return d;
}
int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) { if (*x != *y) { return *x - *y; } }
    return 0;
}
EOF
  rv=(-march=rv32imc_zicsr_zifencei -mabi=ilp32)
  if riscv64-unknown-elf-gcc "${rv[@]}" -Os -ffreestanding -fno-builtin -ffunction-sections \
       -c "$idf/esp_libc_mem.c" -o "$idf/esp_libc_mem.o" >"$work/last.log" 2>&1 \
     && ar rcs "$idf/libesp_libc.a" "$idf/esp_libc_mem.o" >>"$work/last.log" 2>&1 \
     && riscv64-unknown-elf-gcc "${rv[@]}" -Os -ffreestanding -ffunction-sections -fdata-sections \
          -I"$up/include" -nostdlib -nostartfiles -Wl,--gc-sections -Wl,-e,Reset_Handler \
          -Wl,-u,esp_libc_include_memcpy_impl "$root/tools/size/probe.c" \
          "$up/lib/riscv32imc-unknown-none-elf/libusmp_core.a" "$idf/libesp_libc.a" \
          "$idf/rom.ld" -lgcc -o "$idf/probe.elf" >>"$work/last.log" 2>&1; then
    syms=$(riscv64-unknown-elf-nm "$idf/probe.elf")
    if grep -q '^40000354 A memset$' <<<"$syms" && grep -q ' T memcpy$' <<<"$syms" \
       && grep -q ' T memcmp$' <<<"$syms" && ! grep -q 'compiler_builtins3mem' <<<"$syms"; then
      ok "ESP32-C3 core: memset is the ROM's, memcpy/memcmp esp_libc's, none of the core's copies left"
    else
      bad "ESP-IDF-style link: $(grep -E ' (memset|memcpy|memcmp)$' <<<"$syms" | tr '\n' ' ')"
    fi
  else
    bad "ESP-IDF-style link of the ESP32-C3 core"; tail -20 "$work/last.log"
  fi
fi

printf '\ncomponent: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
