#!/usr/bin/env bash
# Provides qemu-system-arm (with the netduinoplus2 board, an STM32F405) for the STM32 tests,
# idempotently, on a Debian machine, without installing it system-wide.
#
# Why not `apt-get install qemu-system-arm`: it conflicts with a newer qemu-utils that may
# already be installed (qemu-system-common Breaks it). So the Debian packages are only
# downloaded (apt-get download) and unpacked (dpkg -x) into a private folder, together with
# the shared libraries the binary needs and the machine lacks (found with ldd). A wrapper
# script sets LD_LIBRARY_PATH and the firmware path (-L):
#
#   ${USMP_QEMU_DIR:-$HOME/.cache/usmp-qemu}/bin/qemu-system-arm
#
# Nothing is done when that wrapper (or a qemu-system-arm on PATH) already knows
# netduinoplus2. Needs root (or sudo) only for `apt-get update` when the package lists are
# missing. Prints the path of the qemu-system-arm to use on its last line.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail

dir=${USMP_QEMU_DIR:-$HOME/.cache/usmp-qemu}
wrapper=$dir/bin/qemu-system-arm
root=$dir/root
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

log() { printf 'setup-qemu: %s\n' "$*" >&2; }

has_board() { # has_board QEMU: it runs and lists netduinoplus2
  "$1" -M help 2>/dev/null | grep -q '^netduinoplus2 '
}

if [ -x "$wrapper" ] && has_board "$wrapper"; then
  log "ok: $wrapper ($("$wrapper" --version | head -1))"
  echo "$wrapper"
  exit 0
fi
if command -v qemu-system-arm >/dev/null 2>&1 && has_board "$(command -v qemu-system-arm)"; then
  log "ok: $(command -v qemu-system-arm) on PATH ($(qemu-system-arm --version | head -1))"
  command -v qemu-system-arm
  exit 0
fi

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  echo "setup-qemu: no apt-get/dpkg here: install qemu-system-arm (QEMU >= 5.2, board" \
       "netduinoplus2) yourself and set USMP_QEMU=/path/to/qemu-system-arm" >&2
  exit 1
}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo # only `apt-get update` needs it; downloads do not

dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT
chmod 755 "$dl"
updated=0

# Downloads the named packages into $dl (apt-get update once when the lists lack them).
download() {
  if ! (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "$@" >/dev/null 2>"$dl/err"); then
    if [ "$updated" = 0 ]; then
      log "apt-get update"
      if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
        echo "setup-qemu: the package lists need 'apt-get update', which needs root or sudo" >&2
        return 1
      fi
      $SUDO apt-get update -q >/dev/null
      updated=1
      (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "$@" >/dev/null 2>"$dl/err") && return 0
    fi
    cat "$dl/err" >&2
    return 1
  fi
}

unpack_all() {
  for deb in "$dl"/*.deb; do
    [ -e "$deb" ] || continue
    dpkg -x "$deb" "$root"
    basename "$deb" >>"$dir/PACKAGES"
    rm -f "$deb"
  done
}

rm -rf "$root" "$dir/bin"
mkdir -p "$root" "$dir/bin"
: >"$dir/PACKAGES"
log "downloading qemu-system-arm, qemu-system-common, qemu-system-data"
download qemu-system-arm qemu-system-common qemu-system-data
unpack_all

bin=$root/usr/bin/qemu-system-arm
[ -x "$bin" ] || { echo "setup-qemu: $bin missing after unpacking" >&2; exit 1; }
libpath="$root/usr/lib/$multiarch:$root/lib/$multiarch"

# Libraries the binary cannot find: fetch their Debian packages, named by the shared
# library policy (libfoo.so.N -> libfooN, libfoo-1.so.N / libfoo.so.N with a digit at the
# end of the name -> libfoo-N), until ldd is satisfied.
for round in 1 2 3 4 5 6; do
  missing=$(LD_LIBRARY_PATH=$libpath ldd "$bin" | awk '/not found/ {print $1}' | sort -u)
  [ -n "$missing" ] || break
  pkgs=()
  for so in $missing; do
    name=${so%%.so*}
    ver=${so##*.so.}
    ver=${ver%%.*}
    case "$name" in
      *[0-9]) pkgs+=("$name-$ver") ;;
      *) pkgs+=("$name$ver") ;;
    esac
  done
  pkgs=("${pkgs[@],,}")
  log "round $round: $(echo $missing) -> ${pkgs[*]}"
  download "${pkgs[@]}" || { echo "setup-qemu: could not fetch ${pkgs[*]}" >&2; exit 1; }
  unpack_all
done
missing=$(LD_LIBRARY_PATH=$libpath ldd "$bin" | awk '/not found/ {print $1}' | sort -u)
[ -z "$missing" ] || { echo "setup-qemu: still missing: $missing" >&2; exit 1; }

cat >"$wrapper" <<EOF
#!/bin/sh
# qemu-system-arm unpacked by scripts/setup-qemu.sh (packages: $dir/PACKAGES)
LD_LIBRARY_PATH="$libpath\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$bin" -L "$root/usr/share/qemu" "\$@"
EOF
chmod 755 "$wrapper"
has_board "$wrapper" || { echo "setup-qemu: $wrapper does not list netduinoplus2" >&2; exit 1; }
log "ready: $wrapper ($("$wrapper" --version | head -1), $(wc -l <"$dir/PACKAGES") packages, $arch)"
echo "$wrapper"
