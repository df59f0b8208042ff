#!/usr/bin/env bash
# The tools every documented command needs, installed when missing (idempotent): CMake,
# Ninja, a C compiler with the C library headers, Python 3 with venv, and Rust (stable, from
# rustup, when no cargo is found). scripts/demo.sh runs only this (and the gateway's venv);
# scripts/setup.sh runs it first and adds the cross compilers, targets and test tools.
#
#   scripts/setup-base.sh            install what is missing (apt-get on Debian/Ubuntu, with
#                                    sudo when not root; Rust from https://sh.rustup.rs)
#   scripts/setup-base.sh --tools    print the commands it provides, one per line: the demo's
#                                    CI step (tests/demo/test_demo.sh) runs the demo with
#                                    these and a few POSIX basics on PATH, and nothing else
#
# Rust lands in ~/.cargo/bin: put that on PATH (rustup's installer says how) or let the
# scripts do it (they add it when cargo is not on PATH).
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail

# command:Debian package
TOOLS=(cmake:cmake ninja:ninja-build cc:gcc as:binutils ld:binutils ar:binutils ranlib:binutils
       python3:python3 curl:curl)
# From rustup (cargo runs cc to link build scripts, hence the C compiler above).
RUST_TOOLS=(cargo rustc)

if [ "${1:-}" = "--tools" ]; then
  for pair in "${TOOLS[@]}"; do echo "${pair%%:*}"; done
  for t in "${RUST_TOOLS[@]}"; do echo "$t"; done
  exit 0
fi

log() { printf 'setup-base: %s\n' "$*"; }

need_apt=()
for pair in "${TOOLS[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
# What has no command of its own: the C library headers, venv + pip for Python, CA
# certificates for curl.
[ -f /usr/include/stdio.h ] || need_apt+=(libc6-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
[ -e /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)

if [ ${#need_apt[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${need_apt[*]} (Debian package names); install them with your package manager" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  log "installing Rust (stable, minimal profile) with rustup into ~/.cargo and ~/.rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain stable --no-modify-path
fi
