#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently: Debian packages (CMake,
# Ninja, the ARM and RISC-V GCC toolchains), the Rust targets and components, cbindgen (pinned),
# the Python venvs with the real gateways from PyPI (scripts/setup-python.sh) and QEMU for
# the STM32 firmware (scripts/setup-qemu.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.2
RUST_TARGETS=(thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf riscv32imac-unknown-none-elf)

need_apt=()
for pair in cmake:cmake ninja:ninja-build arm-none-eabi-gcc:gcc-arm-none-eabi \
            riscv64-unknown-elf-gcc:gcc-riscv64-unknown-elf g++:g++; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
[ -f /usr/lib/arm-none-eabi/include/string.h ] || need_apt+=(libnewlib-arm-none-eabi)
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
