#!/usr/bin/env bash
# Creates the Python environments of the interop tests, idempotently (a venv that already
# has the right usmp version is left alone):
#
#   v2: ${USMP_VENV_V2:-.venv-interop/v2}  Python 3.11+  usmp==1.2.2 (wire 0x02) + pytest
#       + zeroconf (python-zeroconf: the independent mDNS responder of tests/discovery)
#       (this venv also runs the test runner: .venv-interop/v2/bin/python -m pytest tests/interop)
#   v1: ${USMP_VENV_V1:-.venv-interop/v1}  Python 3.12   usmp==0.5.1 (wire 0x01)
#
# Interpreters: $PYTHON_V2 / $PYTHON_V1 when set, else the first suitable one found
# (python3.11, python3 for v2; pyenv's 3.12.x, python3.12 for v1). 0.5.1 runs TCP on 3.11
# too, but only >= 3.12 has working UDP, so v1 uses 3.12 everywhere.
#
#   scripts/setup-python.sh          both venvs
#   scripts/setup-python.sh v2       only the v2 venv (scripts/demo.sh)
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

V2_DIR=${USMP_VENV_V2:-$repo/.venv-interop/v2}
V1_DIR=${USMP_VENV_V1:-$repo/.venv-interop/v1}
ZEROCONF=zeroconf==0.154.0
V2_PKGS=(usmp==1.2.2 pytest "$ZEROCONF")
V1_PKGS=(usmp==0.5.1)

log() { printf 'setup-python: %s\n' "$*"; }

# Prints "major.minor" of an interpreter, or nothing when it does not run.
py_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

# find_python WANT_MIN WANT_MAX candidates...: the first candidate that runs, has venv and
# a version in [WANT_MIN, WANT_MAX] (minor versions of 3.x).
find_python() {
  local min=$1 max=$2
  shift 2
  local c v minor
  for c in "$@"; do
    [ -n "$c" ] || continue
    if [ "${c#*/}" = "$c" ]; then
      c=$(command -v "$c" 2>/dev/null) || continue
    fi
    [ -x "$c" ] || continue
    v=$(py_version "$c")
    [ -n "$v" ] || continue
    minor=${v#3.}
    [ "${v%%.*}" = 3 ] && [ "$minor" -ge "$min" ] && [ "$minor" -le "$max" ] || continue
    "$c" -c 'import venv, ensurepip' 2>/dev/null || continue
    printf '%s\n' "$c"
    return 0
  done
  return 1
}

# pyenv's installed 3.12.x interpreters, newest first (the shims only work for versions
# that pyenv has activated, so the version directories are searched directly).
pyenv_312() {
  local root=${PYENV_ROOT:-$HOME/.pyenv}
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root 2>/dev/null || printf '%s' "$root")
  fi
  [ -d "$root/versions" ] || return 0
  ls -d "$root"/versions/3.12.* 2>/dev/null | sort -rV | while read -r d; do
    printf '%s\n' "$d/bin/python3.12"
  done
}

# venv_ok DIR VERSION [extra module]: the venv exists, imports usmp at VERSION (and the module).
venv_ok() {
  local dir=$1 want=$2 extra=${3:-}
  [ -x "$dir/bin/python" ] || return 1
  local got
  got=$("$dir/bin/python" -c 'import usmp; print(usmp.__version__)' 2>/dev/null) || return 1
  [ "$got" = "$want" ] || return 1
  if [ -n "$extra" ]; then
    "$dir/bin/python" -c "import $extra" 2>/dev/null || return 1
  fi
  return 0
}

make_venv() {
  local dir=$1 py=$2
  shift 2
  log "creating $dir with $py ($(py_version "$py")): $*"
  mkdir -p "$(dirname "$dir")"
  "$py" -m venv --clear "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

setup_v2() {
  if venv_ok "$V2_DIR" 1.2.2 pytest && ! "$V2_DIR/bin/python" -c 'import zeroconf' 2>/dev/null; then
    log "v2: adding $ZEROCONF to $V2_DIR"
    "$V2_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "$ZEROCONF"
  fi
  if venv_ok "$V2_DIR" 1.2.2 "pytest, zeroconf"; then
    log "v2 ok: $V2_DIR (usmp 1.2.2, $("$V2_DIR/bin/python" -V 2>&1))"
    return 0
  fi
  local py
  py=$(find_python 11 13 "${PYTHON_V2:-}" python3.11 python3 python3.12 python3.13 \
       /usr/bin/python3.11 /usr/bin/python3) || {
    echo "setup-python: no Python 3.11-3.13 with venv found for usmp 1.2.2 (set PYTHON_V2)" >&2
    exit 1
  }
  make_venv "$V2_DIR" "$py" "${V2_PKGS[@]}"
  venv_ok "$V2_DIR" 1.2.2 "pytest, zeroconf" || { echo "setup-python: $V2_DIR is not usable" >&2; exit 1; }
  log "v2 ready: $V2_DIR"
}

setup_v1() {
  if venv_ok "$V1_DIR" 0.5.1; then
    log "v1 ok: $V1_DIR (usmp 0.5.1, $("$V1_DIR/bin/python" -V 2>&1))"
    return 0
  fi
  local py
  # shellcheck disable=SC2046
  py=$(find_python 12 12 "${PYTHON_V1:-}" $(pyenv_312) python3.12 /usr/bin/python3.12 \
       /usr/local/bin/python3.12) || {
    echo "setup-python: no Python 3.12 with venv found for usmp 0.5.1 (set PYTHON_V1," \
         "or install one: pyenv install 3.12 / apt-get install python3.12-venv)" >&2
    exit 1
  }
  make_venv "$V1_DIR" "$py" "${V1_PKGS[@]}"
  venv_ok "$V1_DIR" 0.5.1 || { echo "setup-python: $V1_DIR is not usable" >&2; exit 1; }
  log "v1 ready: $V1_DIR"
}

case "${1:-all}" in
  all) setup_v2; setup_v1 ;;
  v2) setup_v2 ;;
  v1) setup_v1 ;;
  *) echo "usage: $0 [all|v1|v2]" >&2; exit 2 ;;
esac
