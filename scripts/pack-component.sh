#!/usr/bin/env bash
# Packs the ESP-IDF component archive (what the component registry serves) with the
# Espressif component manager from PyPI:
#
#   scripts/pack-component.sh [--prebuilt] [--dest DIR]
#
#   --prebuilt   also ship prebuilt Rust cores, lib/<triple>/libusmp_core.a, for every chip
#                target whose Rust toolchain is installed here (riscv32imc: ESP32-C2/C3,
#                riscv32imac: C5/C6/C61/H2, riscv32imafc: P4; the Xtensa chips with the
#                `esp` toolchain from espup). Each carries lib/<triple>/usmp-source.sha256,
#                and the component uses it only while the sources still match.
#   --dest DIR   where usmp_<version>.tgz goes (default: target/component)
#
# The archive builds without network: the crates the core needs are vendored into it
# (vendor/, `cargo vendor`) and its .cargo/config.toml replaces crates.io with them. The
# packed Cargo.toml has no [dev-dependencies] and no [[bench]] (a component builds the
# library only), so the vendored set is the library's. The packing happens in a staging
# copy (target/component-stage/usmp): the source tree is never written to.
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
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "pack-component: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

log() { printf 'pack-component: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- Version --------------------------------------------------------------------------------
version=$(sed -n 's/^version *= *"\([0-9][0-9.]*[^"]*\)".*/\1/p' Cargo.toml | head -n 1)
manifest_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' idf_component.yml | head -n 1)
if [ -z "$version" ] || [ "$version" != "$manifest_version" ]; then
  die "version mismatch: Cargo.toml '$version', idf_component.yml '$manifest_version'"
fi

# --- The component manager ------------------------------------------------------------------
if ! "$venv/bin/compote" --help >/dev/null 2>&1; then
  log "installing idf-component-manager==$COMPOTE_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "idf-component-manager==$COMPOTE_VERSION"
fi
compote_pack() { # compote_pack PROJECT_DIR DEST_DIR: the archive, and its unpacked staging copy
  "$venv/bin/compote" component pack --project-dir "$1" --name usmp --version "$version" \
    --dest-dir "$2" >&2
}

# --- 1. What the manifest ships, into the staging copy ---------------------------------------
stage_root=$root/target/component-stage
stage=$stage_root/usmp
rm -rf "$stage_root"
mkdir -p "$stage_root"
compote_pack "$root" "$stage_root/pass1"
mv "$stage_root/pass1/usmp_$version" "$stage"
rm -rf "$stage_root/pass1"

# --- 2. The library's crates, vendored -------------------------------------------------------
# Drop the tables the library build does not need, with the header saying so.
awk 'NR == 1 { print "# Packed by scripts/pack-component.sh: without [dev-dependencies] and [[bench]]"
               print "# (the component builds the library only, from the crates in vendor/)." }
     /^\[/ { skip = ($0 ~ /^\[dev-dependencies\]/ || $0 ~ /^\[\[bench\]\]/) }
     !skip' Cargo.toml >"$stage/Cargo.toml"
log "vendoring the library's crates (cargo vendor)"
(cd "$stage" && cargo vendor -q vendor >/dev/null)
# Tests, benchmarks and examples of the dependencies are not built: leave them out, and out
# of each crate's .cargo-checksum.json (cargo checks every file listed there). So are the
# files the component manager never packs (its default exclusions and the manifest's).
python3 - "$stage/vendor" <<'EOF'
import json, os, shutil, sys
vendor = sys.argv[1]
drop_dirs = {"tests", "benches", "examples", ".github", "build", "dist", "target"}
for crate in sorted(os.listdir(vendor)):
    top = os.path.join(vendor, crate)
    for d in drop_dirs:
        if os.path.isdir(os.path.join(top, d)):
            shutil.rmtree(os.path.join(top, d))
    for f in ("Cargo.toml.orig", ".cargo_vcs_info.json", ".gitignore", ".gitattributes"):
        if os.path.exists(os.path.join(top, f)):
            os.remove(os.path.join(top, f))
    ck_path = os.path.join(top, ".cargo-checksum.json")
    with open(ck_path) as f:
        ck = json.load(f)
    ck["files"] = {p: h for p, h in ck["files"].items() if os.path.exists(os.path.join(top, p))}
    with open(ck_path, "w") as f:
        json.dump(ck, f, sort_keys=True)
EOF
mkdir -p "$stage/.cargo"
cat >>"$stage/.cargo/config.toml" <<'EOF'

# Added by scripts/pack-component.sh: every crate comes from vendor/ (`cargo vendor`), so the
# build needs no network and no crates.io index.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
EOF
# The vendored copy builds offline (and so checks itself): `cargo metadata` resolves it all.
(cd "$stage" && cargo metadata -q --offline --locked --format-version 1 >/dev/null) \
  || die "the vendored crates do not resolve offline"

# --- 3. Prebuilt cores ------------------------------------------------------------------------
if [ "$prebuilt" = 1 ]; then
  work=$root/target/component-cargo
  stamp=$(cmake -DUSMP_SOURCE_HASH_OF="$stage" -P cmake/usmp_rust.cmake)
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
    # The same build as cmake/usmp_rust.cmake's (`cargo rustc --crate-type staticlib`: LTO),
    # from the staging copy with its vendored crates.
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
    # build-std takes the standard library's own crates from crates.io: not from vendor/.
    offline=(--offline)
    [ ${#extra[@]} -eq 0 ] || offline=()
    (cd "$stage" && cargo "${plus[@]}" rustc -q --release --lib --crate-type staticlib \
      "${offline[@]}" --manifest-path "$stage/Cargo.toml" --target-dir "$work" \
      --target "$triple" "${extra[@]}")
    mkdir -p "$stage/lib/$triple"
    cp "$work/$triple/release/libusmp.a" "$stage/lib/$triple/libusmp_core.a"
    # Debug sections are most of the archive; the code is the same without them.
    if command -v "$strip" >/dev/null 2>&1; then
      "$strip" --strip-debug "$stage/lib/$triple/libusmp_core.a"
    fi
    printf '%s\n' "$stamp" >"$stage/lib/$triple/usmp-source.sha256"
  done
fi

# --- 4. Pack the staging copy -----------------------------------------------------------------
compote_pack "$stage" "$dest"
rm -rf "$dest/usmp_$version" # the manager's unpacked staging copy
archive=$dest/usmp_$version.tgz
# Everything staged must be in the archive (a vendored file the manager left out would break
# the offline build): compare the two lists.
missing=$(comm -23 <(cd "$stage" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) \
                   <(tar tzf "$archive" | sed 's|^\./||' | grep -v '/$' | LC_ALL=C sort) | head -5)
[ -z "$missing" ] || die "the component manager left staged files out of the archive: $missing"
log "$(tar tzf "$archive" | grep -vc '/$') files, $(du -k "$archive" | cut -f1) KiB"
echo "$archive"
