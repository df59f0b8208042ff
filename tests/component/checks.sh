# What the packaging tests (test_component.sh, test_dist.sh) share, sourced after `set -euo
# pipefail` with $work set: pass/fail counters and check/step helpers, the CMake generator,
# the crate's version.
# SPDX-License-Identifier: Apache-2.0
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check "description" command...
  local what=$1
  shift
  if "$@" >"$work/last.log" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/     /' "$work/last.log" | tail -30; fi
}
step() { printf '\n--- %s\n' "$*"; }
gen=(-G Ninja)
command -v ninja >/dev/null || gen=()
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
