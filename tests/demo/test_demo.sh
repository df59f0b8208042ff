#!/usr/bin/env bash
# The README's demo commands as CI step: scripts/demo.sh and scripts/demo.sh --rust, each
# with a PATH that holds ONLY
#   - the commands scripts/setup-base.sh provides (`scripts/setup-base.sh --tools`: what the
#     demo installs on a fresh machine), and
#   - the POSIX basics every Linux has (bash, coreutils, grep, sed; listed below),
# so a tool the demo calls without installing it fails here, as it would on a fresh machine.
# Both runs talk to the real gateway (usmp 1.2.2 from PyPI) and must exit 0 with the
# gateway's count of messages.
#
#   tests/demo/test_demo.sh      (a minute or less when cargo's target directory is warm)
# Runs after scripts/setup.sh (CI) or scripts/setup-base.sh: the tools must be installed.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=$(mktemp -d /tmp/usmp-demo-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

failed=0
# The POSIX basics: Debian's essential packages (bash, coreutils, grep, sed, findutils).
BASICS=(bash sh env cat cut tr head tail sort uniq wc tee seq sleep timeout mktemp rm mkdir rmdir
        cp mv ln ls chmod touch dirname basename readlink realpath id uname date printf test
        true false grep sed find xargs)

bin=$work/bin
mkdir -p "$bin"
link() { # link NAME PATH
  ln -sf "$2" "$bin/$1"
}
for t in "${BASICS[@]}"; do
  p=$(PATH=/usr/bin:/bin command -v "$t" 2>/dev/null) || { echo "FAIL no $t in /usr/bin:/bin"; exit 1; }
  link "$t" "$p"
done
search_path="$PATH:$HOME/.cargo/bin"
for t in $(scripts/setup-base.sh --tools); do
  p=$(PATH=$search_path command -v "$t" 2>/dev/null) \
    || { echo "FAIL $t is not installed (run scripts/setup-base.sh)"; exit 1; }
  if [ "$t" = python3 ]; then
    # A shim (pyenv) needs its manager on PATH; the interpreter itself does not.
    p=$(PATH=$search_path python3 -c 'import sys; print(sys.executable)')
  fi
  link "$t" "$p"
done
echo "PATH for the demo: $bin ($(ls "$bin" | wc -l) commands: $(ls "$bin" | tr '\n' ' '))"

run_demo() { # run_demo NAME ARGS...: one demo run with the sandbox PATH; checks its output
  local name=$1
  shift
  local t0=$SECONDS
  if env -i PATH="$bin" HOME="$HOME" USMP_BUILD_DIR="${USMP_BUILD_DIR:-$root/build}" \
       ${USMP_VENV_V2:+USMP_VENV_V2="$USMP_VENV_V2"} bash scripts/demo.sh "$@" >"$work/$name.log" 2>&1 \
     && grep -q 'exited with 0$' "$work/$name.log" \
     && grep -Eq 'gateway saw: [1-9][0-9]* messages' "$work/$name.log"; then
    echo "ok   scripts/demo.sh $* ($((SECONDS - t0)) s): $(grep -o 'gateway saw: .*' "$work/$name.log")"
  else
    failed=$((failed + 1))
    echo "FAIL scripts/demo.sh $* with only the installed tools on PATH:"
    tail -30 "$work/$name.log" | sed 's/^/     /'
  fi
}
run_demo c
run_demo rust --rust
[ "$failed" -eq 0 ]
