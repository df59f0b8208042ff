#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs (.ci/run).
# Sets up its tools first (scripts/setup.sh), then: format, lints, header freshness, Rust
# unit/vector/session tests, cross builds for the four MCU targets, C tests under
# ASan/UBSan and TSan (ctest), interop against the real PyPI gateways (TCP, UDP, lossy
# proxy, a 1000-message soak at 20 % loss: tests/interop/test_soak.py, ~3.5 min), signed
# firmware updates (CLI, push helper, C device vs the real gateway), gateway discovery, the
# STM32 firmware in QEMU (also through usmp bridge), the usmp host tool, packaging,
# fuzzing, Miri, and the footprint/speed budget gate.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${USMP_BUILD_DIR:-$root/build}
mkdir -p "$build"

passed=0
current=""
step() {
  [ -z "$current" ] || passed=$((passed + 1))
  current="$*"
  printf '\n=== %s\n' "$*"
}
# A closing line any reader understands: how many steps passed, and whether one failed.
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "step failed: $current"; echo "steps: $passed passed, 1 failed"; fi' EXIT

[ "${USMP_SKIP_SETUP:-0}" = 1 ] || scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings (host with tests, and the no_std library for a Cortex-M target)"
cargo clippy --all-targets --features std,ota,discovery -- -D warnings
cargo clippy --lib --target thumbv7em-none-eabihf -- -D warnings
cargo clippy --lib --target thumbv7em-none-eabihf --features ota,discovery -- -D warnings
# The Rust API alone, as Rust firmware uses it (no C API, no panic handler); and with the
# UART transport (usmp::uart::CobsUart), as serial-line firmware uses it.
cargo clippy --lib --no-default-features --features ota --target thumbv7em-none-eabihf -- -D warnings
cargo clippy --lib --no-default-features --features uart --target thumbv7em-none-eabihf -- -D warnings
# The smallest C build (no datagram, no v1, no error names, no UART) and the host tests without them.
cargo clippy --lib --no-default-features --features capi,panic-handler --target thumbv7em-none-eabihf -- -D warnings
cargo clippy --all-targets --no-default-features --features std,capi -- -D warnings

step "generated header is up to date (cbindgen)"
cbindgen --quiet --config cbindgen.toml --output "$build/usmp.h.regen"
if ! cmp -s "$build/usmp.h.regen" include/usmp.h; then
  diff -u include/usmp.h "$build/usmp.h.regen" | head -40
  echo "include/usmp.h is stale: run cbindgen --config cbindgen.toml --output include/usmp.h" >&2
  exit 1
fi
# The OTA receiver's C API has a header of its own (feature ota; nothing of it in usmp.h).
cbindgen --quiet --config cbindgen-ota.toml --output "$build/usmp_ota.h.regen" src/ota/capi.rs
if ! cmp -s "$build/usmp_ota.h.regen" include/usmp_ota.h; then
  diff -u include/usmp_ota.h "$build/usmp_ota.h.regen" | head -40
  echo "include/usmp_ota.h is stale: run cbindgen --config cbindgen-ota.toml --output include/usmp_ota.h src/ota/capi.rs" >&2
  exit 1
fi
if grep -E '^#define ' include/usmp_ota.h | grep -v -E '^#define USMP_OTA_'; then
  echo "include/usmp_ota.h defines names outside the USMP_OTA_ namespace" >&2
  exit 1
fi
# Discovery's own header, from src/discovery/capi.rs alone.
cbindgen --quiet --config cbindgen-discovery.toml --output "$build/usmp_discovery.h.regen" src/discovery/capi.rs
if ! cmp -s "$build/usmp_discovery.h.regen" include/usmp_discovery.h; then
  diff -u include/usmp_discovery.h "$build/usmp_discovery.h.regen" | head -40
  echo "include/usmp_discovery.h is stale: run cbindgen --config cbindgen-discovery.toml --output include/usmp_discovery.h src/discovery/capi.rs" >&2
  exit 1
fi
# Only the C API belongs in the header: constants of the Rust core must not leak into it.
if grep -E '^#define ' include/usmp.h | grep -v -E '^#define USMP_'; then
  echo "include/usmp.h defines names outside the USMP_ namespace (add them to cbindgen.toml's exclude)" >&2
  exit 1
fi

step "Rust tests (vectors, device<->responder sessions, the Rust API blocking and async, C and Rust faces on the wire, discovery, doctests)"
cargo test --features std,ota,discovery

step "Rust API docs and crate package: rustdoc -D warnings, cargo publish --dry-run, the library on the MSRV"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps --features std,ota,discovery
cargo publish --dry-run --allow-dirty 2>&1 | grep -v '^warning: ignoring .* not included in the published package' | tail -n 3
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
cargo "+$msrv" check -q --lib --features std,ota,discovery
echo "ok: the library builds with Rust $msrv (rust-version)"

step "cross builds of the release static library (LTO) for the MCU targets"
for t in thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf riscv32imac-unknown-none-elf; do
  cargo rustc -q --release --lib --crate-type staticlib --target "$t"
  echo "ok $t"
done
# Cargo silently drops `lto = true` when crate types are mixed; the shipped archive is built
# with `cargo rustc --crate-type staticlib`, which must really pass -C lto to rustc.
touch src/lib.rs
if ! cargo rustc -v --release --lib --crate-type staticlib --target thumbv7em-none-eabihf 2>&1 \
    | grep -q -- '--crate-name usmp .*-C lto'; then
  echo "the release staticlib was not built with -C lto" >&2
  exit 1
fi
echo "ok: release staticlib built with -C lto"

step "generated C test data is up to date"
python3 tests/c/gen_vectors_h.py --check
python3 tests/c/gen_secrets_h.py --check

step "C API tests under AddressSanitizer + UndefinedBehaviorSanitizer (ctest)"
cmake -S . -B "$build/ctest" -G Ninja -DUSMP_BUILD_TESTS=ON -DUSMP_SANITIZE=ON -DUSMP_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build/ctest"
ctest --test-dir "$build/ctest" --output-on-failure

step "two tasks on one context under ThreadSanitizer (ctest c_threads: an RX task, a TX task and a closer racing on one usmp_t)"
cmake -S . -B "$build/ctest-tsan" -G Ninja -DUSMP_BUILD_TESTS=ON -DUSMP_SANITIZE=ON -DUSMP_SANITIZER=thread >/dev/null
cmake --build "$build/ctest-tsan"
ctest --test-dir "$build/ctest-tsan" --output-on-failure

step "interop with the real gateways from PyPI (usmp 0.5.1 = wire v1, usmp 1.2.2 = wire v2): the C API and the Rust API"
USMP_BUILD_DIR="$build" .venv-interop/v2/bin/python -m pytest tests/interop -q -rA

step "the README's demo commands (scripts/demo.sh, --rust) with only the tools their own set-up installs on PATH"
USMP_BUILD_DIR="$build" tests/demo/test_demo.sh

step "signed firmware updates (feature ota): the Python push helper, the C device against the real gateway (TCP/UDP: install, named refusals, resume); usmp ota is tested with the host tool below"
.venv-interop/v2/bin/python -m pytest python/tests -q
USMP_BUILD_DIR="$build" .venv-interop/v2/bin/python -m pytest tests/ota -q -rA

step "gateway discovery (mDNS / DNS-SD) in a network namespace of its own: the C device finds the real gateway announced by python-zeroconf and by usmp announce, then echoes; timeout, name filter, hostile answers"
USMP_BUILD_DIR="$build" .venv-interop/v2/bin/python -m pytest tests/discovery -q -rA

step "STM32F405 firmware (examples/stm32_uart) in QEMU netduinoplus2, USART1 bridged to the real gateways (QEMU's TCP socket; usmp bridge on a pty: COBS/UDP, raw/TCP, line noise); also built from a prebuilt SDK archive without cargo, and the signed-update demo"
USMP_BUILD_DIR="$build" .venv-interop/v2/bin/python -m pytest tests/stm32 -q -rA

step "Rust no_std firmware (examples/rust_firmware_mps2: usmp::Client over the UART, no C) in QEMU mps2-an386, bridged to the real gateways"
(cd examples/rust_firmware_mps2 \
  && cargo fmt -- --check \
  && cargo clippy -q --release --locked --target-dir "$build/rust_firmware/target" -- -D warnings)
USMP_BUILD_DIR="$build" .venv-interop/v2/bin/python -m pytest tests/rust_firmware -q -rA

step "the usmp host tool (cli/): fmt, clippy, unit tests; connect --echo-test, keygen and bridge (ptys, restarts, resets, noise) against the real gateways"
(cd cli \
  && cargo fmt -- --check \
  && cargo clippy -q --locked --all-targets --target-dir "$build/cli" -- -D warnings \
  && cargo test -q --locked --target-dir "$build/cli")
USMP_BUILD_DIR="$build" .venv-interop/v2/bin/python -m pytest tests/cli -q -rA

step "packaging: ESP-IDF component archive (compote, vendored crates built offline, prebuilt RISC-V cores; the CI stand-in for idf.py build), add_subdirectory/find_package/pkg-config consumers, Cortex-M4 cross defaults, the prebuilt SDK archives (scripts/dist.sh)"
tests/component/test_component.sh
tests/component/test_dist.sh

step "fuzzing (cargo-fuzz/libFuzzer + ASan): the regressions, then each of the 11 targets for 20 s"
scripts/fuzz.sh ci

step "Miri (undefined behaviour): the core's unit tests and the fuzz replay through the C API"
scripts/miri.sh

step "footprint and speed budgets (budgets.toml): flash after a real link, stack painted in QEMU, sizeof(usmp_t), heap, instruction counts"
scripts/check-budgets.sh --profile all
passed=$((passed + 1))
echo
echo "steps: $passed passed, 0 failed"
