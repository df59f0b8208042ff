#!/usr/bin/env bash
# Demo: the C example examples/posix_echo against the REAL Python gateway (PyPI usmp 1.2.2,
# wire v2) on 127.0.0.1. Installs what it needs (scripts/setup-base.sh: CMake, Ninja, a C
# compiler, Python venv, Rust; scripts/setup-python.sh v2: the gateway's venv), builds the
# example, starts tests/interop/gateway.py on a free port, runs the example, stops the
# gateway, and exits with the example's status. tests/demo/test_demo.sh (CI) runs it with
# only the tools setup-base.sh provides on PATH.
#
#   scripts/demo.sh [count]        (default 6 messages)
#   scripts/demo.sh --rust [--udp] [--async]
#                                  the Rust API instead: examples/rust_host_echo (cargo)
#
# Environment: USMP_VENV_V2 (default .venv-interop/v2), USMP_BUILD_DIR (default build),
# USMP_DEMO_PSK (default usmp-dev-psk-change-me-before-prod).
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
rust=0
rust_flags=()
args=()
for a in "$@"; do
  case "$a" in
    --rust) rust=1 ;;
    --udp|--async) rust_flags+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
count=${args[0]:-6}
proto=tcp
for f in "${rust_flags[@]}"; do [ "$f" = --udp ] && proto=udp; done
if [ "$rust" = 0 ] && [ ${#rust_flags[@]} -gt 0 ]; then
  echo "demo: --udp and --async go with --rust" >&2
  exit 2
fi
venv=${USMP_VENV_V2:-$repo/.venv-interop/v2}
build_root=${USMP_BUILD_DIR:-$repo/build}
build=$build_root/demo-posix-echo
# One cargo target directory for both demos (and tests/interop's build of rust_host_echo).
cargo_target=$build_root/target
psk=${USMP_DEMO_PSK:-usmp-dev-psk-change-me-before-prod}

echo "demo: tools (scripts/setup-base.sh)"
scripts/setup-base.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
echo "demo: python environment"
USMP_VENV_V2=$venv scripts/setup-python.sh v2

if [ "$rust" = 1 ]; then
  echo "demo: building examples/rust_host_echo (cargo, release)"
  cargo build -q --release --features std --example rust_host_echo --target-dir "$cargo_target"
  exe=$cargo_target/release/examples/rust_host_echo
else
  echo "demo: building examples/posix_echo in $build"
  gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  cmake -S examples/posix_echo -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DUSMP_CARGO_TARGET_DIR="$cargo_target" >/dev/null
  cmake --build "$build" --target posix_echo
  exe="$build/posix_echo"
fi
[ -x "$exe" ] || { echo "demo: $exe was not built" >&2; exit 1; }

run=$(mktemp -d "${TMPDIR:-/tmp}/usmp-demo.XXXXXX")
gw_pid=""
cleanup() {
  if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
    kill -TERM "$gw_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  fi
  rm -rf "$run"
}
trap cleanup EXIT

"$venv/bin/python" tests/interop/gateway.py --proto "$proto" --port 0 --psk "$psk" \
  --ready-file "$run/ready" --log "$run/gateway.jsonl" 2>"$run/gateway.stderr" >/dev/null &
gw_pid=$!
for _ in $(seq 200); do
  [ -s "$run/ready" ] && break
  kill -0 "$gw_pid" 2>/dev/null || break
  sleep 0.05
done
if [ ! -s "$run/ready" ]; then
  echo "demo: the gateway did not start:" >&2
  tail -20 "$run/gateway.stderr" >&2 || true
  exit 1
fi
read -r _ _ port rest <"$run/ready"
echo "demo: gateway up: $(cat "$run/ready")"

status=0
if [ "$rust" = 1 ]; then
  timeout 120 "$exe" 127.0.0.1 "$port" "$psk" v2 1 "${rust_flags[@]}" || status=$?
else
  timeout 120 "$exe" 127.0.0.1 "$port" "$psk" v2 "$count" || status=$?
fi
echo "demo: gateway saw: $(grep -c '"ev": "message"' "$run/gateway.jsonl" || true) messages," \
     "close: $(grep -o '"reason": "[^"]*"' "$run/gateway.jsonl" | tail -1 || true)"
echo "demo: $(basename "$exe") exited with $status"
exit "$status"
