#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently: first the base tools of
# every documented command (scripts/setup-base.sh: CMake, Ninja, a C compiler, Python venv,
# Rust), then the Debian packages of the tests (the ARM and RISC-V GCC toolchains with
# newlib, g++, pkg-config, OpenSSL headers), the Rust targets and components, cbindgen (pinned), the Python
# venvs with the real gateways from PyPI (scripts/setup-python.sh) and QEMU for the firmware
# tests (scripts/setup-qemu.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-base.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

CBINDGEN_VERSION=0.29.2
# The MCU targets of the cross builds, the prebuilt component cores (riscv32*) and the SDK
# archives of scripts/dist.sh (all of them).
RUST_TARGETS=(thumbv7em-none-eabihf thumbv6m-none-eabi thumbv7m-none-eabi thumbv8m.main-none-eabihf
              riscv32imc-unknown-none-elf riscv32imac-unknown-none-elf riscv32imafc-unknown-none-elf)

need_apt=()
for pair in arm-none-eabi-gcc:gcc-arm-none-eabi riscv64-unknown-elf-gcc:gcc-riscv64-unknown-elf \
            g++:g++ pkg-config:pkg-config; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
[ -f /usr/lib/arm-none-eabi/include/string.h ] || need_apt+=(libnewlib-arm-none-eabi)
# OpenSSL's libcrypto: the in-memory gateway of the two-task C test (tests/c/test_threads.c).
[ -f /usr/include/openssl/evp.h ] || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

installed=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
# The crate's rust-version (Cargo.toml), to check the library still builds with it.
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
rustup run "$MSRV" rustc --version >/dev/null 2>&1 || rustup toolchain install "$MSRV" --profile minimal

if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  cargo install --locked --version "$CBINDGEN_VERSION" cbindgen
fi

scripts/setup-python.sh
# qemu-system-arm (netduinoplus2) for the STM32 firmware tests, unpacked privately.
scripts/setup-qemu.sh >/dev/null
