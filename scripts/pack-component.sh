#!/usr/bin/env bash
# Packs the ESP-IDF component archive (what the component registry serves) with the
# Espressif component manager from PyPI:
#
#   scripts/pack-component.sh [--prebuilt] [--dest DIR]
#
#   --prebuilt   also ship prebuilt Rust cores, lib/<triple>/libusmp.a, for every chip
#                target whose Rust toolchain is installed here (riscv32imc: ESP32-C2/C3,
#                riscv32imac: C5/C6/H2, riscv32imafc: P4; the Xtensa chips with the `esp`
#                toolchain from espup). Each carries lib/<triple>/usmp-source.sha256, and
#                the component uses it only while the sources still match.
#   --dest DIR   where usmp_<version>.tgz goes (default: target/component)
#
# The version is Cargo.toml's (idf_component.yml must say the same). The manager runs from
# a venv, ${USMP_COMPOTE_VENV:-.venv-compote}, created on first use. Prints the archive's
# path on the last line.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

COMPOTE_VERSION=3.1.2
venv=${USMP_COMPOTE_VENV:-$root/.venv-compote}
dest=$root/target/component
prebuilt=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prebuilt) prebuilt=1 ;;
    --dest) dest=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "pack-component: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

log() { printf 'pack-component: %s\n' "$*" >&2; }

# --- Version --------------------------------------------------------------------------------
version=$(sed -n 's/^version *= *"\([0-9][0-9.]*[^"]*\)".*/\1/p' Cargo.toml | head -n 1)
manifest_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' idf_component.yml | head -n 1)
if [ -z "$version" ] || [ "$version" != "$manifest_version" ]; then
  log "version mismatch: Cargo.toml '$version', idf_component.yml '$manifest_version'"
  exit 1
fi

# --- The component manager ------------------------------------------------------------------
if ! "$venv/bin/compote" --help >/dev/null 2>&1; then
  log "installing idf-component-manager==$COMPOTE_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "idf-component-manager==$COMPOTE_VERSION"
fi

# --- Prebuilt cores ------------------------------------------------------------------------
# Written into lib/ of the source tree only for the time of the packing (the manager packs
# the project directory), and removed again on exit.
if [ "$prebuilt" = 1 ]; then
  if [ -e lib ]; then
    log "lib/ already exists; move it away first (it would be packed and then deleted)"
    exit 1
  fi
  trap 'rm -rf "$root/lib"' EXIT
  work=$root/target/component-cargo
  stamp=$(cmake -DUSMP_SOURCE_HASH_OF="$root" -P cmake/usmp_rust.cmake)
  # triple toolchain strip-tool
  candidates=(
    "riscv32imc-unknown-none-elf - riscv64-unknown-elf-strip"
    "riscv32imac-unknown-none-elf - riscv64-unknown-elf-strip"
    "riscv32imafc-unknown-none-elf - riscv64-unknown-elf-strip"
    "xtensa-esp32-none-elf esp xtensa-esp32-elf-strip"
    "xtensa-esp32s2-none-elf esp xtensa-esp32s2-elf-strip"
    "xtensa-esp32s3-none-elf esp xtensa-esp32s3-elf-strip"
  )
  for entry in "${candidates[@]}"; do
    read -r triple tc strip <<<"$entry"
    plus=()
    [ "$tc" = "-" ] || plus=("+$tc")
    sysroot=$(rustc "${plus[@]}" --print sysroot 2>/dev/null) || { log "skip $triple (no '$tc' toolchain)"; continue; }
    # The same build as cmake/usmp_rust.cmake's (`cargo rustc --crate-type staticlib`: LTO).
    extra=()
    if [ ! -d "$sysroot/lib/rustlib/$triple/lib" ]; then
      if [ "$tc" = esp ] && [ -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
        extra=(-Zbuild-std=core)
      else
        log "skip $triple (rustup target add $triple)"
        continue
      fi
    fi
    log "building the core for $triple"
    cargo "${plus[@]}" rustc -q --release --lib --crate-type staticlib \
      --manifest-path "$root/Cargo.toml" --target-dir "$work" --target "$triple" "${extra[@]}"
    mkdir -p "lib/$triple"
    cp "$work/$triple/release/libusmp.a" "lib/$triple/libusmp.a"
    # Debug sections are most of the archive; the code is the same without them.
    if command -v "$strip" >/dev/null 2>&1; then
      "$strip" --strip-debug "lib/$triple/libusmp.a"
    fi
    printf '%s\n' "$stamp" >"lib/$triple/usmp-source.sha256"
  done
elif [ -d lib ]; then
  log "note: packing the existing lib/ ($(find lib -name libusmp.a | tr '\n' ' '))"
fi

# --- Pack -----------------------------------------------------------------------------------
"$venv/bin/compote" component pack --project-dir "$root" --name usmp --version "$version" \
  --dest-dir "$dest" >&2
rm -rf "$dest/usmp_$version" # the manager's unpacked staging copy
archive=$dest/usmp_$version.tgz
log "$(tar tzf "$archive" | grep -vc '/$') files, $(du -k "$archive" | cut -f1) KiB"
echo "$archive"
