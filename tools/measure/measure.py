#!/usr/bin/env python3
"""Footprint and speed of the usmp release library: build, link, emulate, compare.

    measure.py size   [BUILD OPTIONS] [--nb|--nb-only] [--libc] [TARGET ...]  flash/.data/.bss after a real link, sizeof(usmp_t)
    measure.py bench  [BUILD OPTIONS]               peak stack + instruction counts (QEMU, Cortex-M4)
    measure.py frames [BUILD OPTIONS]               largest stack frames (-Z emit-stack-sizes)
    measure.py profile [BUILD OPTIONS] [--scenario S] where a scenario's instructions go
    measure.py levers [--targets T,..] [--only N,..] the lever comparison table
    measure.py floor  [--targets T,..] [--only N,..] flash of the crypto alone, per lever
    measure.py check  [--profile size|speed|all] [--enforce] [--json FILE]   the budget gate

BUILD OPTIONS select how the static library is built (default: the `size` profile of
budgets.toml, i.e. Cargo.toml as it is):
    --profile NAME      a [profile.NAME] of budgets.toml
    --rustflags STR     extra RUSTFLAGS (e.g. '--cfg aes_compact')
    --features LIST     Cargo features, dependency features as crate/feature
    --config K=V        a `cargo --config` value (repeatable), e.g. 'profile.release.opt-level="s"'

--patch FILE (repeatable, any command): measure a copy of the working tree with a source
patch applied (a lever for src/, e.g. a `git diff` of a trial change), leaving
the repository untouched.

The library is always built the way it ships: `cargo rustc --release --lib --crate-type
staticlib` (so LTO really applies); RUSTFLAGS from the environment are ignored, so figures
depend only on the sources, the options and the toolchain. Builds that differ from Cargo.toml use their own target
directory under target/measure/ so variants do not rebuild each other; outputs (ELFs, maps,
logs, report.json) go to target/measure/ as well. Needs: cargo with the MCU targets,
arm-none-eabi-gcc, riscv64-unknown-elf-gcc, host gcc (QEMU plugin), and qemu-system-arm with
the netduinoplus2 board ($USMP_QEMU, or scripts/setup-qemu.sh's private copy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "target" / "measure"
BUDGETS = REPO / "budgets.toml"

ARM_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
TARGETS = {
    "thumbv7em-none-eabihf": ("arm-none-eabi-gcc", ARM_M4),
    "thumbv6m-none-eabi": ("arm-none-eabi-gcc", ["-mcpu=cortex-m0plus", "-mthumb"]),
    "riscv32imc-unknown-none-elf": ("riscv64-unknown-elf-gcc",
                                    ["-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32"]),
    "riscv32imac-unknown-none-elf": ("riscv64-unknown-elf-gcc",
                                     ["-march=rv32imac", "-misa-spec=2.2", "-mabi=ilp32"]),
}
SHORT = {"thumbv7em-none-eabihf": "thumbv7em", "thumbv6m-none-eabi": "thumbv6m",
         "riscv32imc-unknown-none-elf": "riscv32imc", "riscv32imac-unknown-none-elf": "riscv32imac"}
DEFAULT_SIZE_TARGETS = ["thumbv7em-none-eabihf", "thumbv6m-none-eabi", "riscv32imc-unknown-none-elf"]
M4 = "thumbv7em-none-eabihf"

# Symbols whose presence means the library uses a heap.
HEAP_SYMBOLS = {"malloc", "calloc", "realloc", "free", "_sbrk", "sbrk", "__rust_alloc",
                "__rust_dealloc", "__rust_realloc", "__rust_alloc_zeroed", "__rg_alloc",
                "__rdl_alloc", "_malloc_r", "_free_r"}

VERBOSE = False


class Failure(Exception):
    """A measurement could not be made (build error, firmware check failed, ...)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd, *, env=None, cwd=REPO, capture=True, timeout=900) -> str:
    if VERBOSE:
        log("+ " + " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, timeout=timeout,
                           stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.STDOUT if capture else None, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure("cannot run %s: %s" % (cmd[0], e)) from e
    if p.returncode != 0:
        raise Failure("command failed (%d): %s\n%s" % (
            p.returncode, " ".join(shlex.quote(str(c)) for c in cmd), (p.stdout or "")[-4000:]))
    return p.stdout or ""


# ----------------------------------------------------------------------------- variants

@dataclass
class Variant:
    """One way to build the release static library."""
    name: str
    rustflags: str = ""
    features: list = field(default_factory=list)
    config: list = field(default_factory=list)
    description: str = ""

    def is_default(self) -> bool:
        return not (self.rustflags.strip() or self.features or self.config)

    def target_dir(self) -> Path:
        # Cargo.toml as it is: share target/ with the rest of the build (test.sh, CMake).
        if self.is_default():
            return REPO / "target"
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)[:60]
        return OUT / "cargo" / slug

    def describe(self) -> str:
        parts = []
        if self.rustflags.strip():
            parts.append("RUSTFLAGS='%s'" % self.rustflags.strip())
        if self.features:
            parts.append("--features " + ",".join(self.features))
        for c in self.config:
            parts.append("--config '%s'" % c)
        return " ".join(parts) or "(Cargo.toml as it is)"


def load_budgets() -> dict:
    if tomllib is None:
        raise Failure("budgets.toml needs Python >= 3.11 (tomllib)")
    with open(BUDGETS, "rb") as f:
        return tomllib.load(f)


def profile_variant(name: str) -> Variant:
    prof = load_budgets().get("profile", {})
    if name not in prof:
        raise Failure("no [profile.%s] in budgets.toml (have: %s)" % (name, ", ".join(prof)))
    p = prof[name]
    return Variant(name=name, rustflags=p.get("rustflags", ""), features=list(p.get("features", [])),
                   config=list(p.get("config", [])), description=p.get("description", ""))


def variant_from_args(a) -> Variant:
    base = profile_variant(a.profile or "size")
    if a.rustflags or a.features or a.config:
        extra_features = [f for f in re.split(r"[,\s]+", a.features or "") if f]
        name = "custom-" + re.sub(r"[^A-Za-z0-9]+", "_",
                                  "%s_%s_%s_%s" % (base.name, a.rustflags, a.features, a.config))
        return Variant(name=name[:80], rustflags=(base.rustflags + " " + (a.rustflags or "")).strip(),
                       features=base.features + extra_features, config=base.config + (a.config or []),
                       description="%s + command-line options" % base.name)
    return base


# ----------------------------------------------------------------------------- building

def build_lib(v: Variant, target: str, crate_dir: Path = REPO, libname="libusmp.a",
              target_dir: Path | None = None) -> Path:
    """The release static library as shipped (cargo rustc --crate-type staticlib: real LTO)."""
    env = dict(os.environ)
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    env.pop("RUSTFLAGS", None)
    if v.rustflags.strip():
        env["RUSTFLAGS"] = v.rustflags.strip()
    tdir = target_dir or v.target_dir()
    env["CARGO_TARGET_DIR"] = str(tdir)
    cmd = ["cargo", "rustc", "-q", "--release", "--lib", "--crate-type", "staticlib",
           "--target", target]
    # "no-default" stands for --no-default-features (a build with default features left out).
    features = [f for f in v.features if f != "no-default"]
    if len(features) != len(v.features):
        cmd.append("--no-default-features")
    if features:
        cmd += ["--features", ",".join(features)]
    for c in v.config:
        cmd += ["--config", c]
    t0 = time.time()
    run(cmd, env=env, cwd=crate_dir)
    if VERBOSE:
        log("  built %s for %s in %.1f s" % (v.name, target, time.time() - t0))
    lib = tdir / target / "release" / libname
    if not lib.exists():
        raise Failure("no %s after the build" % lib)
    return lib


def cc_for(target: str):
    cc, flags = TARGETS[target]
    if not shutil.which(cc):
        raise Failure("missing %s (apt-get install gcc-arm-none-eabi gcc-riscv64-unknown-elf)" % cc)
    return cc, flags


def outdir(v: Variant) -> Path:
    d = OUT / re.sub(r"[^A-Za-z0-9._-]+", "_", v.name)[:80]
    d.mkdir(parents=True, exist_ok=True)
    return d


# ----------------------------------------------------------------------------- ELF reading

class Elf:
    """Just enough of a 32-bit little-endian ELF reader: sections and symbols."""

    def __init__(self, path: Path):
        self.data = path.read_bytes()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 1 or d[5] != 1:
            raise Failure("%s: not a 32-bit little-endian ELF" % path)
        shoff, = struct.unpack_from("<I", d, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x2E)
        self.sections = []
        for i in range(shnum):
            f = struct.unpack_from("<10I", d, shoff + i * shentsize)
            self.sections.append(dict(name_off=f[0], type=f[1], flags=f[2], addr=f[3],
                                      offset=f[4], size=f[5], link=f[6], entsize=f[9]))
        strtab = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self._str(strtab, s["name_off"])

    def _str(self, strsec, off):
        start = strsec["offset"] + off
        end = self.data.index(b"\0", start)
        return self.data[start:end].decode("utf-8", "replace")

    def section(self, name):
        for s in self.sections:
            if s["name"] == name:
                return s
        return None

    def symbols(self):
        out = []
        for s in self.sections:
            if s["type"] != 2:  # SHT_SYMTAB
                continue
            strsec = self.sections[s["link"]]
            for i in range(s["size"] // 16):
                name_off, value, size, info, other, shndx = struct.unpack_from(
                    "<IIIBBH", self.data, s["offset"] + i * 16)
                out.append(dict(name=self._str(strsec, name_off), value=value, size=size,
                                type=info & 0xF, bind=info >> 4, shndx=shndx))
        return out

    def berkeley(self):
        """text/data/bss as GNU size (Berkeley format) counts them."""
        text = data = bss = 0
        for s in self.sections:
            if not s["flags"] & 0x2:  # SHF_ALLOC
                continue
            if s["type"] == 8:  # SHT_NOBITS
                bss += s["size"]
            elif s["flags"] & 0x1 and not s["flags"] & 0x4:  # WRITE, not EXECINSTR
                data += s["size"]
            else:
                text += s["size"]
        return text, data, bss


def parse_map(path: Path):
    """Bytes per (output section, origin) from a GNU ld map: origin = usmp / libgcc / app."""
    shares = {}
    lines = path.read_text(errors="replace").splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("Linker script and memory map"))
    except StopIteration:
        return shares
    out_sec = None
    pending = None
    for line in lines[start:]:
        m = re.match(r"^(\.\S+)", line)
        if m:
            out_sec = m.group(1)
            pending = None
            continue
        m = re.match(r"^ (\.\S+|COMMON)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.\S+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m:
            size, origin = int(m.group(3), 16), m.group(4)
        else:
            m = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
            if not (m and pending):
                continue
            size, origin = int(m.group(2), 16), m.group(3)
            pending = None
        if size == 0 or out_sec is None:
            continue
        who = ("usmp" if "libusmp.a(" in origin else "libgcc" if "libgcc" in origin
               else "libc" if re.search(r"/libc(_nano)?\.a\(", origin) else "app")
        shares[(out_sec, who)] = shares.get((out_sec, who), 0) + size
    return shares


# ----------------------------------------------------------------------------- size

def api_functions():
    """usmp_* functions declared in include/usmp.h (the application's port hooks aside)."""
    text = (REPO / "include" / "usmp.h").read_text()
    names = set(re.findall(r"^[A-Za-z_][\w \*]*?\b(usmp_\w+)\s*\(", text, re.M))
    return sorted(n for n in names if not n.startswith("usmp_port_"))


def check_probe_coverage():
    probe = (REPO / "tools" / "size" / "probe.c").read_text()
    missing = [f for f in api_functions() if not re.search(r"\b%s\s*\(" % f, probe)]
    return missing


def sizeof_ctx(target: str) -> dict:
    """sizeof/_Alignof of the public types, read from an object file's symbol sizes."""
    cc, flags = cc_for(target)
    src = REPO / "tools" / "size" / "sizeof.c"
    obj = OUT / ("sizeof-%s.o" % target)
    OUT.mkdir(parents=True, exist_ok=True)
    run([cc] + flags + ["-c", "-Os", "-ffreestanding", "-I", REPO / "include", src, "-o", obj])
    sizes = {}
    for s in Elf(obj).symbols():
        if s["name"].startswith("usmp_sizeof_"):
            sizes[s["name"][len("usmp_sizeof_"):]] = s["size"]
    return sizes


def heap_symbols(lib: Path, elf: Path) -> list:
    """Allocator symbols the library needs or the linked probe contains (expected: none)."""
    found = set()
    nm = "arm-none-eabi-nm" if shutil.which("arm-none-eabi-nm") else "nm"
    for line in run([nm, "-u", lib]).splitlines():
        name = line.split()[-1] if line.split() else ""
        if name in HEAP_SYMBOLS:
            found.add(name)
    for s in Elf(elf).symbols():
        if s["name"] in HEAP_SYMBOLS:
            found.add(s["name"])
    return sorted(found)


# Extra -D flags for the probe (measure.py size --nb: -DUSMP_PROBE_NB, the non-blocking API).
PROBE_DEFINES: list = []


# The C library functions that compiler_builtins also defines (weakly) in the core's archive.
LIBC_MEM = re.compile(r"^(mem(cpy|set|move|cmp)|bcmp|strlen|__aeabi_mem(cpy|move|set|clr)[48]?)$")


def libc_mem_symbols(lib: Path) -> list:
    """The mem functions the core's own object references and compiler_builtins defines: what
    the CMake package forces from the C library with USMP_LIBC_MEM (cmake/usmp_libc_mem.cmake)."""
    undefined, weak, member = set(), set(), ""
    for line in run(["readelf", "-sW", lib]).splitlines():
        m = re.match(r"^File: .*\((.*)\)$", line)
        if m:
            member = m.group(1)
            continue
        f = line.split()
        if len(f) < 8 or not LIBC_MEM.match(f[7]):
            continue
        if f[6] == "UND" and member.startswith("usmp-"):
            undefined.add(f[7])
        elif f[6] != "UND" and f[4] == "WEAK" and member.startswith("compiler_builtins"):
            weak.add(f[7])
    return sorted(undefined & weak)


def libc_archive(target: str) -> Path:
    """The C library the toolchain links for `-lc`: newlib-nano on Arm (--specs=nano.specs, as
    examples/stm32_uart), picolibc on RISC-V where Debian's toolchain has it (its own newlib,
    as ESP-IDF's, otherwise). Found by a link that traces its inputs."""
    cc, flags = cc_for(target)
    if target.startswith("thumb"):
        specs = ["--specs=nano.specs"]
    elif run([cc, "-print-file-name=picolibc.specs"]).strip() != "picolibc.specs":
        specs = ["--specs=picolibc.specs"]
    else:
        specs = []
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / "libc-trace.c"
    src.write_text("int main(void) { return 0; }\n")
    try:
        out = run([cc] + flags + specs + ["-nostdlib", "-nostartfiles", "-Wl,-e,0", "-Wl,-u,memcpy",
                                          "-Wl,-t", src, "-lc", "-o", OUT / "libc-trace.elf"])
    except Failure as e:
        raise Failure("no C library for %s (%s; apt-get install libnewlib-arm-none-eabi "
                      "picolibc-riscv64-unknown-elf): %s" % (target, " ".join(specs), e))
    for line in out.splitlines():
        m = re.search(r"(/\S*/libc(_nano)?\.a)\b", line)
        if m:
            return Path(m.group(1))
    raise Failure("the trace link for %s named no libc archive" % target)


def link_probe(v: Variant, target: str, lib: Path, libc: Path | None = None):
    """The probe linked as the package links firmware: with `libc`, the C library's mem
    functions ahead of the core's (-Wl,-u,<the core's references> <libc> before the objects,
    what USMP_LIBC_MEM adds as `-lc`); without, -nostdlib alone (the budget figures)."""
    cc, flags = cc_for(target)
    d = outdir(v)
    tag = SHORT[target] + ("-libc" if libc else "") + "".join(
        "-" + x.lower().replace("usmp_probe_", "") for x in PROBE_DEFINES)
    elf = d / ("probe-%s.elf" % tag)
    mp = d / ("probe-%s.map" % tag)
    pre = []
    if libc:
        syms = libc_mem_symbols(lib)
        pre = (["-Wl,-u," + ",-u,".join(syms)] if syms else []) + [libc]
    run([cc] + flags + ["-D" + x for x in PROBE_DEFINES] + [
                        "-Os", "-ffreestanding", "-ffunction-sections", "-fdata-sections",
                        "-I", REPO / "include", "-nostdlib", "-nostartfiles",
                        "-Wl,--gc-sections", "-Wl,-e,Reset_Handler", "-Wl,-z,noexecstack",
                        "-Wl,-Map=%s" % mp] + pre + [REPO / "tools" / "size" / "probe.c", lib, "-lgcc",
                        "-o", elf])
    return elf, mp


CRATES = ["usmp", "aes_gcm", "aes", "ghash", "polyval", "ctr", "cipher", "universal_hash",
          "sha2", "hmac", "hkdf", "digest", "curve25519_dalek", "x25519_dalek", "fiat_crypto",
          "subtle", "zeroize", "compiler_builtins", "core"]


def symbol_crate(name: str) -> str:
    """The crate a (mangled) symbol comes from, roughly: its first path component."""
    if name.startswith("usmp_"):
        return "usmp"
    if name.startswith("__aeabi_") or name in ("memcpy", "memset", "memmove", "memcmp", "bcmp"):
        return "compiler_builtins"
    if name.startswith("_ZN"):
        m = re.match(r"_ZN(\d+)", name)
        first = name[m.end():m.end() + int(m.group(1))] if m else ""
        first = re.sub(r"\$[A-Za-z0-9]+\$", " ", first).replace("..", "::")
        m = re.search(r"([a-z_][a-z0-9_]*)(::|$)", first.strip())
        return m.group(1) if m else "other"
    if name.startswith("_R"):
        m = re.search(r"C[a-zA-Z0-9]*_(\d+)", name)
        return name[m.end():m.end() + int(m.group(1))] if m else "other"
    if name.startswith("OUTLINED_FUNCTION_"):
        return "(LLVM outlined)"
    return "(C: probe)"


def crate_breakdown(elf: Path) -> dict:
    out = {}
    e = Elf(elf)
    for s in e.symbols():
        if not (s["type"] in (1, 2) and s["size"] and 0 < s["shndx"] < len(e.sections)):
            continue  # OBJECT and FUNC symbols only
        if e.sections[s["shndx"]]["type"] == 8:  # .bss: RAM, not flash
            continue
        if True:
            c = symbol_crate(s["name"])
            out[c] = out.get(c, 0) + s["size"]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def measure_size(v: Variant, target: str, with_breakdown=False, libc=False) -> dict:
    lib = build_lib(v, target)
    libc_a = libc_archive(target) if libc else None
    elf, mp = link_probe(v, target, lib, libc_a)
    text, data, bss = Elf(elf).berkeley()
    shares = parse_map(mp)
    kind = {}  # allocated output section -> "flash" (text/rodata), "data" or "bss"
    for s in Elf(elf).sections:
        if s["flags"] & 0x2:
            kind[s["name"]] = ("bss" if s["type"] == 8 else
                               "data" if s["flags"] & 0x1 and not s["flags"] & 0x4 else "flash")
    lib_flash = sum(n for (sec, who), n in shares.items()
                    if who != "app" and kind.get(sec) in ("flash", "data"))
    lib_ram = sum(n for (sec, who), n in shares.items()
                  if who != "app" and kind.get(sec) in ("data", "bss"))
    r = dict(target=target, text=text, data=data, bss=bss, flash=text + data,
             lib_flash=lib_flash, lib_ram=lib_ram, heap=heap_symbols(lib, elf),
             sizeof=sizeof_ctx(target), elf=str(elf))
    if libc_a:
        r["libc"] = dict(archive=str(libc_a), symbols=libc_mem_symbols(lib))
    if with_breakdown:
        r["crates"] = crate_breakdown(elf)
        e = Elf(elf)
        syms = [(x["size"], x["name"]) for x in e.symbols()
                if x["type"] in (1, 2) and x["size"] and 0 < x["shndx"] < len(e.sections)
                and e.sections[x["shndx"]]["type"] != 8]
        r["symbols"] = sorted(set(syms), reverse=True)
    return r


# ----------------------------------------------------------------------------- firmware

def qemu_path() -> str:
    q = os.environ.get("USMP_QEMU")
    if q:
        return q
    wrapper = Path(os.environ.get("USMP_QEMU_DIR", Path.home() / ".cache" / "usmp-qemu")) / "bin" / "qemu-system-arm"
    if wrapper.exists():
        return str(wrapper)
    out = run([REPO / "scripts" / "setup-qemu.sh"])
    return out.strip().splitlines()[-1]


def build_plugin() -> Path | None:
    src = REPO / "tools" / "qemu-insn" / "insn.c"
    so = OUT / "qemu-insn.so"
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        log("measure: no host C compiler: instruction counts skipped")
        return None
    OUT.mkdir(parents=True, exist_ok=True)
    if not so.exists() or so.stat().st_mtime < max(src.stat().st_mtime,
                                                  (src.parent / "qemu-plugin-api.h").stat().st_mtime):
        run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o", so, src])
    return so


def build_firmware(v: Variant, lib: Path) -> Path:
    cc, flags = cc_for(M4)
    d = outdir(v)
    elf = d / "bench-fw.elf"
    st = REPO / "tools" / "stack"
    run([cc] + flags + ["-Os", "-g", "-ffreestanding", "-ffunction-sections", "-fdata-sections",
                        "-Wall", "-Wextra", "-Werror", "-I", REPO / "include", "-I", st,
                        "-nostdlib", "-nostartfiles", "-Wl,--gc-sections", "-Wl,-T,%s" % (st / "link.ld"),
                        "-Wl,-z,noexecstack", "-Wl,-Map=%s" % (d / "bench-fw.map"),
                        st / "startup.c", st / "bench.c", lib, "-lgcc", "-o", elf])
    return elf


SCENARIO_RE = re.compile(r"^bench: scenario=(\S+) stack=(\d+) rc=(-?\d+) ok=([01])$")


def run_firmware(v: Variant, elf: Path, count_insns=True, profile_region=None) -> dict:
    syms = {s["name"]: s["value"] for s in Elf(elf).symbols()}
    d = outdir(v)
    cmd = [qemu_path(), "-M", "netduinoplus2", "-nographic", "-monitor", "none", "-serial", "null",
           "-semihosting-config", "enable=on,target=native", "-kernel", elf]
    insn_file = d / "insn.txt"
    plugin = build_plugin() if count_insns else None
    if plugin:
        if insn_file.exists():
            insn_file.unlink()
        cmd += ["-plugin", "%s,begin=0x%x,end=0x%x,out=%s%s" % (
            plugin, syms["bench_mark_begin"], syms["bench_mark_end"], insn_file,
            "" if profile_region is None else ",profile=%d" % profile_region)]
    if VERBOSE:
        log("+ " + " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure("cannot run QEMU (%s): %s (set USMP_QEMU, or run scripts/setup-qemu.sh)" % (
            cmd[0], e)) from e
    (d / "bench-fw.log").write_text(p.stdout)
    scen = []
    sizeof = None
    for line in p.stdout.splitlines():
        m = SCENARIO_RE.match(line.strip())
        if m:
            scen.append(dict(name=m.group(1), stack=int(m.group(2)), rc=int(m.group(3)),
                             ok=m.group(4) == "1"))
        m = re.match(r"^bench: sizeof_usmp_t=(\d+)", line.strip())
        if m:
            sizeof = int(m.group(1))
    bad = [s["name"] for s in scen if not s["ok"]]
    if p.returncode != 0 or bad or not scen or sizeof is None:
        raise Failure("measurement firmware failed (exit %d%s); log: %s\n%s" % (
            p.returncode, ", scenarios " + ", ".join(bad) if bad else "", d / "bench-fw.log",
            p.stdout[-2000:]))
    if plugin:
        regions = [int(m.group(1)) for m in re.finditer(r"^region \d+ insns=(\d+)$",
                                                        insn_file.read_text(), re.M)]
        if len(regions) != len(scen):
            raise Failure("instruction regions (%d) do not match scenarios (%d): %s" % (
                len(regions), len(scen), insn_file))
        for s, n in zip(scen, regions):
            s["insns"] = n
    prof = [(int(m.group(1), 16), int(m.group(2))) for m in
            re.finditer(r"^pc 0x([0-9a-f]+) insns=(\d+)$", insn_file.read_text(), re.M)] if plugin else []
    return dict(scenarios=scen, sizeof_usmp_t=sizeof, profile=prof)


def summarize_bench(b: dict) -> dict:
    sc = {s["name"]: s for s in b["scenarios"]}

    def peak(pred):
        hits = [s for s in b["scenarios"] if pred(s["name"])]
        top = max(hits, key=lambda s: s["stack"])
        return top["stack"], top["name"]

    conn = peak(lambda n: n.endswith(".connect"))
    sr = peak(lambda n: re.search(r"\.(send|recv)", n) is not None)
    other = peak(lambda n: not re.search(r"\.(send|recv|connect)", n))
    r = dict(stack_connect=conn[0], stack_connect_at=conn[1], stack_send_recv=sr[0],
             stack_send_recv_at=sr[1], stack_other=other[0], stack_other_at=other[1],
             sizeof_fw=b["sizeof_usmp_t"])
    if "insns" in b["scenarios"][0]:
        for key, name in (("insn_handshake", "v2.stream.connect"), ("insn_seal452", "v2.stream.send452"),
                          ("insn_open452", "v2.stream.recv452"), ("insn_send1808", "v2.stream.send1808"),
                          ("insn_recv1808", "v2.stream.recv1808")):
            r[key] = sc[name]["insns"]
    return r


def measure_bench(v: Variant, count_insns=True) -> dict:
    lib = build_lib(v, M4)
    elf = build_firmware(v, lib)
    b = run_firmware(v, elf, count_insns)
    b.update(summarize_bench(b))
    return b


# ----------------------------------------------------------------------------- frames

def measure_frames(v: Variant, top: int) -> list:
    """Per-function stack frames from rustc's .stack_sizes (-Z emit-stack-sizes)."""
    fv = Variant(name=v.name + "-stacksizes", rustflags=(v.rustflags + " -Z emit-stack-sizes").strip(),
                 features=v.features, config=v.config)
    os.environ["RUSTC_BOOTSTRAP"] = "1"
    try:
        lib = build_lib(fv, M4)
    finally:
        os.environ.pop("RUSTC_BOOTSTRAP", None)
    d = outdir(fv)
    elf = d / "probe-stacksizes.elf"
    cc, flags = cc_for(M4)
    # Keep .stack_sizes (it is not allocated; the linker still relocates it).
    run([cc] + flags + ["-Os", "-ffreestanding", "-I", REPO / "include", "-nostdlib", "-nostartfiles",
                        "-Wl,--gc-sections", "-Wl,-e,Reset_Handler", "-Wl,-z,noexecstack",
                        REPO / "tools" / "size" / "probe.c", lib, "-lgcc", "-o", elf])
    return stack_frames(elf), elf


def stack_frames(elf):
    """(frame size, symbol) from an ELF's .stack_sizes (-Z emit-stack-sizes), largest first."""
    e = Elf(elf)
    sec = e.section(".stack_sizes")
    if not sec:
        raise Failure("no .stack_sizes in %s" % elf)
    names = {}
    for s in e.symbols():
        if s["type"] == 2 and s["value"]:
            names.setdefault(s["value"] & ~1, s["name"])
    frames = []
    data = e.data[sec["offset"]:sec["offset"] + sec["size"]]
    i = 0
    while i + 4 <= len(data):
        addr, = struct.unpack_from("<I", data, i)
        i += 4
        size = shift = 0
        while True:
            b = data[i]
            i += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if addr:
            frames.append((size, names.get(addr & ~1, "0x%08x" % addr)))
    frames.sort(reverse=True)
    return frames


def static_paths(elf: Path, frames, roots):
    """Worst call path below each root from the disassembly (direct calls and tail calls;
    indirect calls, i.e. the transport callbacks and port hooks, count as 0). A cross-check
    of the painted figures, not a bound: frames the compiler did not report count as 0."""
    frame = {name: size for size, name in frames}
    calls = {}
    cur = None
    objdump = "arm-none-eabi-objdump"
    for line in run([objdump, "-d", "--no-show-raw-insn", elf]).splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            cur = m.group(1)
            calls.setdefault(cur, set())
            continue
        m = re.search(r"\t(bl|b|b\.w|b\.n)\s+[0-9a-f]+ <([^>+]+)>$", line)
        if m and cur and m.group(2) != cur:
            calls[cur].add(m.group(2))
    memo = {}

    def worst(f, seen=()):
        if f in memo:
            return memo[f]
        if f in seen:
            return 0, [f + " (recursion)"]
        best = (0, [])
        for c in calls.get(f, ()):
            d, path = worst(c, seen + (f,))
            if d > best[0]:
                best = (d, path)
        r = (frame.get(f, 0) + best[0], [f] + best[1])
        memo[f] = r
        return r

    return {r: worst(r) for r in roots}


def demangle(names):
    tool = shutil.which("rustfilt") or shutil.which("c++filt")
    if not tool:
        return names
    p = subprocess.run([tool], input="\n".join(names), stdout=subprocess.PIPE, text=True)
    out = p.stdout.splitlines()
    return [re.sub(r"::h[0-9a-f]{16}$", "", n) for n in out] if len(out) == len(names) else names


# ----------------------------------------------------------------------------- levers

def lever_list():
    compact_rf = "--cfg aes_compact"
    sha = ["sha2/force-soft-compact"]
    fiat = '--cfg curve25519_dalek_backend="fiat"'
    opt_s = ['profile.release.opt-level="s"']

    def dalek(n):
        return ['profile.release.package.curve25519-dalek.opt-level=%d' % n]

    def aead(n):
        return ['profile.release.package.%s.opt-level=%d' % (c, n)
                for c in ("aes", "aes-gcm", "ctr", "cipher", "ghash", "polyval", "universal-hash")]

    return [
        Variant("baseline", description="Cargo.toml as it is (opt-level z)"),
        Variant("aes_compact", compact_rf, description="+ --cfg aes_compact"),
        Variant("sha2_compact", "", sha, description="+ sha2 force-soft-compact"),
        Variant("compact", compact_rf, sha, description="aes_compact + sha2 compact"),
        Variant("opt_s", "", [], opt_s, description="opt-level s"),
        Variant("fiat", fiat, description="+ fiat backend"),
        Variant("compact_fiat", compact_rf + " " + fiat, sha, description="compact + fiat"),
        Variant("compact_opt_s", compact_rf, sha, opt_s, description="compact + opt-level s"),
        Variant("compact_fiat_opt_s", compact_rf + " " + fiat, sha, opt_s,
                description="compact + fiat + opt-level s"),
        Variant("compact_dalek_o1", compact_rf, sha, dalek(1), description="compact + curve25519-dalek opt 1"),
        Variant("compact_dalek_o2", compact_rf, sha, dalek(2), description="compact + curve25519-dalek opt 2"),
        Variant("compact_dalek_o3", compact_rf, sha, dalek(3), description="compact + curve25519-dalek opt 3"),
        Variant("compact_opt_s_dalek_o3", compact_rf, sha, opt_s + dalek(3),
                description="compact + opt-level s + curve25519-dalek opt 3"),
        Variant("compact_fiat_opt_s_fiat_o3", compact_rf + " " + fiat, sha,
                opt_s + ['profile.release.package.fiat-crypto.opt-level=3'],
                description="compact + fiat + opt-level s + fiat-crypto opt 3"),
        Variant("compact_opt_s_dalek_o1", compact_rf, sha, opt_s + dalek(1),
                description="compact + opt-level s + curve25519-dalek opt 1"),
        Variant("compact_fiat_dalek_o1", compact_rf + " " + fiat, sha, dalek(1),
                description="compact + fiat + curve25519-dalek opt 1"),
        Variant("sha_fiat_opt_s", fiat, sha, opt_s,
                description="sha2 compact + fiat + opt-level s (full-speed AES)"),
        Variant("compact_opt_s_aead_o2", compact_rf, sha, opt_s + aead(2),
                description="compact + opt-level s + AES-GCM crates opt 2"),
        Variant("sha_opt_s_aead_o2_dalek_o1", "", sha, opt_s + aead(2) + dalek(1),
                description="sha2 compact + opt-level s + AES-GCM crates opt 2 + curve25519-dalek opt 1"),
        Variant("compact_aead_o2", compact_rf, sha, aead(2),
                description="compact + AES-GCM crates opt 2 (rest at opt-level z)"),
        Variant("compact_aead_o2_dalek_o1", compact_rf, sha, aead(2) + dalek(1),
                description="compact + AES-GCM crates opt 2 + curve25519-dalek opt 1 (rest at z)"),
        Variant("compact_aead_o3_dalek_o1", compact_rf, sha, aead(3) + dalek(1),
                description="compact + AES-GCM crates opt 3 + curve25519-dalek opt 1 (rest at z)"),
        Variant("sha_aead_o2_dalek_o1", "", sha, aead(2) + dalek(1),
                description="sha2 compact + AES-GCM crates opt 2 + curve25519-dalek opt 1 (rest at z)"),
        Variant("compact_fiat_opt_s_aead_o2", compact_rf + " " + fiat, sha, opt_s + aead(2),
                description="compact + fiat + opt-level s + AES-GCM crates opt 2"),
        Variant("compact_opt_s_aead_o2_dalek_o1", compact_rf, sha, opt_s + aead(2) + dalek(1),
                description="compact + opt-level s + AES-GCM crates opt 2 + curve25519-dalek opt 1"),
    ]


def measure_floor(v: Variant, target: str) -> int:
    """Flash of the crypto alone (tools/measure/cryptofloor) built like the library."""
    src = REPO / "tools" / "measure" / "cryptofloor"
    work = OUT / "floor" / re.sub(r"[^A-Za-z0-9._-]+", "_", v.name)[:80]
    (work / "src").mkdir(parents=True, exist_ok=True)
    for rel in ("Cargo.toml", "src/lib.rs", "probe.c"):
        data = (src / rel).read_bytes()
        dst = work / rel
        if not dst.exists() or dst.read_bytes() != data:
            dst.write_bytes(data)
    # The library's lock file, so every shared dependency has the library's version.
    lock = (REPO / "Cargo.lock").read_bytes()
    if not (work / "Cargo.lock.src").exists() or (work / "Cargo.lock.src").read_bytes() != lock:
        (work / "Cargo.lock.src").write_bytes(lock)
        (work / "Cargo.lock").write_bytes(lock)
    lib = build_lib(v, target, crate_dir=work, libname="libusmp_cryptofloor.a",
                    target_dir=work / "target")
    cc, flags = cc_for(target)
    elf = work / ("floor-%s.elf" % SHORT[target])
    run([cc] + flags + ["-Os", "-ffreestanding", "-ffunction-sections", "-fdata-sections",
                        "-nostdlib", "-nostartfiles", "-Wl,--gc-sections", "-Wl,-e,Reset_Handler",
                        "-Wl,-z,noexecstack", work / "probe.c", lib, "-lgcc", "-o", elf])
    text, data, _ = Elf(elf).berkeley()
    return text + data


def cmd_floor(a):
    targets = a.targets.split(",") if a.targets else [M4, "riscv32imc-unknown-none-elf"]
    levers = lever_list() + [profile_variant("speed")]
    if a.only:
        want = set(a.only.split(","))
        levers = [lv for lv in levers if lv.name in want]
    budgets = load_budgets().get("budget", {})
    print("| build | " + " | ".join("library %s | crypto floor | rest" % SHORT[t] for t in targets) + " |")
    print("|---|" + "---:|---:|---:|" * len(targets))
    for lv in levers:
        name = lv.name
        lv.name = ("lever-" + name) if name != "speed" else name
        cells = []
        for t in targets:
            lib = measure_size(lv, t)["flash"]
            floor = measure_floor(lv, t)
            cells += [fmt(lib), fmt(floor), fmt(lib - floor)]
        print("| %s | %s |" % (lv.description or name, " | ".join(cells)))
    for prof, b in budgets.items():
        for t in targets:
            k = "flash_" + SHORT[t]
            if k in b:
                print("budget %s %s: %s" % (prof, SHORT[t], fmt(b[k])))
    print("rest = library - crypto floor: frames, handshake and session logic, datagram mode, "
          "the C API (and any crypto glue LTO could not share).")
    return 0


def fmt(n):
    return "—" if n is None else "{:,}".format(n)


def cmd_levers(a):
    targets = a.targets.split(",") if a.targets else [M4, "riscv32imc-unknown-none-elf"]
    levers = lever_list()
    if a.only:
        want = set(a.only.split(","))
        levers = [lv for lv in levers if lv.name in want]
    rows = []
    for lv in levers:
        row = dict(name=lv.name, description=lv.description, build=lv.describe())
        lv.name = "lever-" + lv.name  # its own target directory and output folder
        try:
            for t in targets:
                row["flash_" + SHORT[t]] = measure_size(lv, t)["flash"]
            if not a.no_run:
                row.update(summarize_bench(measure_bench(lv)))
        except Failure as e:
            row["error"] = str(e).splitlines()[0]
        rows.append(row)
        log("lever %-28s %s" % (row["name"], json.dumps({k: v for k, v in row.items()
                                                          if k.startswith(("flash", "insn", "stack_c", "stack_s"))})))
    cols = ["flash_" + SHORT[t] for t in targets]
    if not a.no_run:
        cols += ["insn_handshake", "insn_seal452", "insn_open452", "insn_send1808",
                 "stack_connect", "stack_send_recv"]
    heads = {"insn_handshake": "handshake insns", "insn_seal452": "seal 452 insns",
             "insn_open452": "open 452 insns", "insn_send1808": "send 1808 insns",
             "stack_connect": "stack connect", "stack_send_recv": "stack send/recv"}
    print("| lever | " + " | ".join(heads.get(c, c.replace("flash_", "flash ")) for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    base = rows[0] if rows and rows[0]["name"] == "baseline" else None
    for r in rows:
        cells = []
        for c in cols:
            val = r.get(c)
            cell = fmt(val)
            if base and r is not base and val is not None and base.get(c) and c.startswith("flash"):
                cell += " (%+d)" % (val - base[c])
            cells.append(cell)
        print("| %s | %s |%s" % (r["description"], " | ".join(cells),
                                  " error: " + r["error"] if "error" in r else ""))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    print("\nbuilds:")
    for lv, r in zip(levers, rows):
        print("  %-28s %s" % (r["name"], lv.describe()))
    return 0


# ----------------------------------------------------------------------------- commands

def cmd_size(a):
    if a.nb:
        PROBE_DEFINES.append("USMP_PROBE_NB")
    if a.nb_only:
        PROBE_DEFINES.append("USMP_PROBE_NB_ONLY")
    v = variant_from_args(a)
    targets = a.targets or DEFAULT_SIZE_TARGETS
    missing = check_probe_coverage()
    print("profile %s: %s" % (v.name, v.describe()))
    print("%-30s %8s %6s %6s %8s %9s %8s %9s" % ("target", "text", "data", "bss", "flash",
                                                  "lib flash", "lib RAM", "usmp_t"))
    for t in targets:
        r = measure_size(v, t, with_breakdown=a.breakdown, libc=a.libc)
        print("%-30s %8d %6d %6d %8d %9d %8d %9s" % (t, r["text"], r["data"], r["bss"], r["flash"],
                                                      r["lib_flash"], r["lib_ram"],
                                                      r["sizeof"].get("usmp_t", "?")))
        if "libc" in r:
            print("  from %s: %s" % (r["libc"]["archive"], " ".join(r["libc"]["symbols"])))
        if r["heap"]:
            print("  heap symbols: " + ", ".join(r["heap"]))
        if a.breakdown:
            print("  by crate (symbol sizes): " + ", ".join("%s %d" % kv for kv in r["crates"].items()))
            top = r["symbols"][:a.symbols]
            for (size, _), name in zip(top, demangle([n for _, n in top])):
                print("    %6d  %s" % (size, short_name(name)[:110]))
    print("flash = text + data of the probe (tools/size/probe.c: every C API function) after a "
          "--gc-sections link; lib = the part from libusmp.a and libgcc (map file).")
    if a.libc:
        print("--libc: the C library's mem functions ahead of the core's (USMP_LIBC_MEM); "
              "lib includes them.")
    if missing:
        print("WARNING: tools/size/probe.c does not call: " + ", ".join(missing))
        return 1
    return 0


def cmd_bench(a):
    v = variant_from_args(a)
    b = measure_bench(v, count_insns=not a.no_insns)
    print("profile %s: %s" % (v.name, v.describe()))
    print("%-26s %8s %12s %6s" % ("scenario (Cortex-M4)", "stack", "instructions", "rc"))
    for s in b["scenarios"]:
        print("%-26s %8d %12s %6d" % (s["name"], s["stack"], fmt(s.get("insns")), s["rc"]))
    print("sizeof(usmp_t) = %d" % b["sizeof_usmp_t"])
    print("peak stack: usmp_connect %d (%s), usmp_send/usmp_recv %d (%s), other calls %d (%s)" % (
        b["stack_connect"], b["stack_connect_at"], b["stack_send_recv"], b["stack_send_recv_at"],
        b["stack_other"], b["stack_other_at"]))
    if a.json:
        Path(a.json).write_text(json.dumps(b, indent=1))
    return 0


def cmd_frames(a):
    v = variant_from_args(a)
    frames, elf = measure_frames(v, a.top)
    top = frames[:a.top]
    names = demangle([n for _, n in top])
    print("largest stack frames (thumbv7em, %s; -Z emit-stack-sizes after LTO):" % v.describe())
    for (size, _), n in zip(top, names):
        print("%6d  %s" % (size, short_name(n)))
    print("\nworst direct call path (static; callbacks and frames without .stack_sizes count 0):")
    for root, (depth, path) in static_paths(elf, frames, ["usmp_connect", "usmp_send", "usmp_recv"]).items():
        shown = demangle(path)
        print("%6d  %s" % (depth, root))
        for name, dn in zip(path, shown):
            f = next((sz for sz, n in frames if n == name), None)
            print("          %6s  %s" % ("?" if f is None else f, short_name(dn)[:110]))
    return 0


def function_table(elf: Path):
    """Sorted (start, end, name) of the functions of an ELF."""
    funcs = sorted({(s["value"] & ~1, s["size"], s["name"]) for s in Elf(elf).symbols()
                    if s["type"] == 2 and s["size"]})
    return [(a, a + n, name) for a, n, name in funcs]


def cmd_profile(a):
    v = variant_from_args(a)
    lib = build_lib(v, M4)
    elf = build_firmware(v, lib)
    first = run_firmware(v, elf)
    names = [s["name"] for s in first["scenarios"]]
    if a.scenario not in names:
        raise Failure("no scenario %s (have: %s)" % (a.scenario, ", ".join(names)))
    idx = names.index(a.scenario)
    b = run_firmware(v, elf, profile_region=idx)
    total = b["scenarios"][idx]["insns"]
    funcs = function_table(elf)
    import bisect
    starts = [f[0] for f in funcs]
    per = {}
    for pc, n in b["profile"]:
        i = bisect.bisect_right(starts, pc) - 1
        name = funcs[i][2] if i >= 0 and pc < funcs[i][1] else "0x%08x" % pc
        per[name] = per.get(name, 0) + n
    rows = sorted(per.items(), key=lambda kv: -kv[1])[:a.top]
    shown = demangle([r[0] for r in rows])
    print("%s (%s): %s instructions" % (a.scenario, v.describe(), fmt(total)))
    for (name, n), dn in zip(rows, shown):
        print("%12s %5.1f%%  %s" % (fmt(n), 100.0 * n / total if total else 0, short_name(dn)))
    return 0


def short_name(n: str) -> str:
    n = re.sub(r"\[[0-9a-f]{6,16}\]", "", n)
    n = re.sub(r"typenum::uint::UInt<.*?>(?=[,>])", "U", n)
    return n[:140]


FIGURES = [
    # key, label, unit kind
    ("flash_thumbv7em", "flash, thumbv7em-none-eabihf (B)"),
    ("flash_riscv32imc", "flash, riscv32imc-unknown-none-elf (B)"),
    ("flash_thumbv6m", "flash, thumbv6m-none-eabi (B)"),
    ("stack_connect", "peak stack, usmp_connect (B)"),
    ("stack_send_recv", "peak stack, usmp_send/usmp_recv (B)"),
    ("sizeof_usmp_t", "sizeof(usmp_t), 32-bit targets (B)"),
    ("heap", "heap (allocator symbols)"),
    ("insn_handshake", "instructions, handshake (device)"),
    ("insn_seal452", "instructions, seal 452-byte frame"),
    ("insn_open452", "instructions, open 452-byte frame"),
    ("insn_send1808", "instructions, send 1808 (4 frames)"),
]


def cmd_check(a):
    t0 = time.time()
    cfg = load_budgets()
    always = set(cfg.get("gate", {}).get("enforce", []))
    profiles = ["size", "speed"] if a.profile == "all" else [a.profile]
    report = {"profiles": {}, "problems": []}
    missing = check_probe_coverage()
    if missing:
        report["problems"].append("tools/size/probe.c does not call: " + ", ".join(missing))
    failed_enforced = []
    over_soft = []
    for pname in profiles:
        v = profile_variant(pname)
        budget = cfg.get("budget", {}).get(pname, {})
        ceiling = cfg.get("ceiling", {}).get(pname, {})
        m = {}
        targets = [M4, "riscv32imc-unknown-none-elf", "thumbv6m-none-eabi"]
        if pname != "size":
            targets = [t for t in targets if "flash_" + SHORT[t] in budget] or [M4]
        sizes = {}
        for t in targets:
            r = measure_size(v, t)
            sizes[t] = r
            m["flash_" + SHORT[t]] = r["flash"]
        m["heap"] = len(sizes[M4]["heap"])
        b = measure_bench(v, count_insns=not a.no_insns)
        for k in ("stack_connect", "stack_send_recv", "insn_handshake", "insn_seal452",
                  "insn_open452", "insn_send1808"):
            if k in b:
                m[k] = b[k]
        sz = {sizes[t]["sizeof"].get("usmp_t") for t in sizes}
        if b["sizeof_usmp_t"] not in sz or len(sz) != 1:
            report["problems"].append("sizeof(usmp_t) differs between targets/firmware: %s / %d" % (
                sorted(sz), b["sizeof_usmp_t"]))
        m["sizeof_usmp_t"] = max(sz | {b["sizeof_usmp_t"]})
        report["profiles"][pname] = dict(build=v.describe(), description=v.description,
                                         measured=m, budget=budget,
                                         heap_symbols=sizes[M4]["heap"],
                                         stack_at=dict(connect=b["stack_connect_at"],
                                                       send_recv=b["stack_send_recv_at"]),
                                         scenarios=b["scenarios"])
        print("\n== profile %s: %s\n   build: %s" % (pname, v.description, v.describe()))
        print("   %-40s %12s %12s  %s" % ("figure", "measured", "budget", "status"))
        for key, label in FIGURES:
            if key not in m:
                continue
            val, lim = m[key], budget.get(key)
            if lim is None:
                status = "(no budget)"
            elif val <= lim:
                status = "ok" + (" (%d%%)" % round(100 * val / lim) if lim else "")
            else:
                enforced = a.enforce or key in always or "%s.%s" % (pname, key) in always
                status = "OVER by %s%s" % (fmt(val - lim), "" if enforced else "  [not enforced]")
                (failed_enforced if enforced else over_soft).append("%s %s" % (pname, key))
            cap = ceiling.get(key)
            if cap is not None and val > cap:
                status += "; ABOVE ITS CEILING %s" % fmt(cap)
                failed_enforced.append("%s %s (ceiling)" % (pname, key))
            print("   %-40s %12s %12s  %s" % (label, fmt(val), fmt(lim), status))
        print("   worst stack: connect in %s, send/recv in %s" % (b["stack_connect_at"],
                                                                   b["stack_send_recv_at"]))
    for p in report["problems"]:
        print("PROBLEM: " + p)
    elapsed = time.time() - t0
    report["elapsed_s"] = round(elapsed, 1)
    report["over_enforced"] = failed_enforced
    report["over_not_enforced"] = over_soft
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    print("\nbudget gate: %s; %d figure(s) over budget and enforced, %d over but not enforced "
          "(%s); %.0f s; report: %s" % (
              "FAIL" if failed_enforced or report["problems"] else "pass", len(failed_enforced),
              len(over_soft), "--enforce: all" if a.enforce else "enforced: " + (", ".join(sorted(always)) or "none"),
              elapsed, OUT / "report.json"))
    return 1 if failed_enforced or report["problems"] else 0


def with_patches(patches, argv) -> int:
    """Runs this command on a copy of the working tree with source patches applied: levers
    for src/ measured without touching the repository."""
    import hashlib
    import tempfile
    key = hashlib.sha256()
    for p in patches:
        key.update(Path(p).read_bytes())
    work = OUT / "whatif" / key.hexdigest()[:12]
    copy = work / "repo"
    files = run(["git", "ls-files", "-co", "--exclude-standard", "-z"]).split("\0")
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    with tempfile.NamedTemporaryFile("w", delete=False) as lst:
        lst.write("\n".join(f for f in files if f and (REPO / f).is_file()))
    try:
        run(["tar", "-cf", work / "src.tar", "-T", lst.name])
    finally:
        os.unlink(lst.name)
    run(["tar", "-xf", work / "src.tar", "-C", copy])
    for p in patches:
        log("measure: applying %s" % p)
        run(["patch", "-p1", "--forward", "-i", Path(p).resolve()], cwd=copy)
    env = dict(os.environ)
    # Cargo caches of the copy stay in the copy's target/ (reused across runs of the same patches).
    return subprocess.call([sys.executable, copy / "tools" / "measure" / "measure.py"] + argv, cwd=copy, env=env)


def main(argv=None):
    global VERBOSE
    argv = list(sys.argv[1:] if argv is None else argv)
    patches = []
    while "--patch" in argv:
        i = argv.index("--patch")
        if i + 1 >= len(argv):
            log("measure: --patch needs a file")
            return 2
        patches.append(argv[i + 1])
        del argv[i:i + 2]
    if patches:
        try:
            return with_patches(patches, argv)
        except Failure as e:
            log("measure: " + str(e))
            return 2
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def build_opts(p):
        p.add_argument("--profile", help="a [profile.NAME] of budgets.toml (default: size)")
        p.add_argument("--rustflags", help="extra RUSTFLAGS")
        p.add_argument("--features", help="extra Cargo features (crate/feature for dependencies)")
        p.add_argument("--config", action="append", help="a cargo --config value (repeatable)")

    p = sub.add_parser("size", help="flash/RAM after a real link, sizeof(usmp_t)")
    build_opts(p)
    p.add_argument("--breakdown", action="store_true", help="bytes per crate and the largest symbols")
    p.add_argument("--symbols", type=int, default=25, help="largest symbols shown with --breakdown")
    p.add_argument("--nb", action="store_true",
                   help="the probe also calls the non-blocking API (usmp_nb_*)")
    p.add_argument("--nb-only", action="store_true",
                   help="the probe calls the non-blocking API instead of the blocking session calls")
    p.add_argument("--libc", action="store_true",
                   help="link the probe with the C library's memcpy/memset/memcmp ahead of the "
                        "core's, as the CMake package does (USMP_LIBC_MEM): newlib-nano on Arm, "
                        "picolibc on RISC-V")
    p.add_argument("targets", nargs="*")
    p.set_defaults(fn=cmd_size)

    p = sub.add_parser("bench", help="peak stack and instruction counts in QEMU (Cortex-M4)")
    build_opts(p)
    p.add_argument("--no-insns", action="store_true", help="skip the QEMU plugin")
    p.add_argument("--json")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("frames", help="largest stack frames (-Z emit-stack-sizes, RUSTC_BOOTSTRAP=1)")
    build_opts(p)
    p.add_argument("--top", type=int, default=15)
    p.set_defaults(fn=cmd_frames)

    p = sub.add_parser("profile", help="where a scenario's instructions go (per function)")
    build_opts(p)
    p.add_argument("--scenario", default="v2.stream.send452")
    p.add_argument("--top", type=int, default=20)
    p.set_defaults(fn=cmd_profile)

    p = sub.add_parser("floor", help="crypto-only flash per lever (tools/measure/cryptofloor)")
    p.add_argument("--targets", help="comma-separated (default: thumbv7em and riscv32imc)")
    p.add_argument("--only", help="comma-separated lever names (speed = the profile)")
    p.set_defaults(fn=cmd_floor)

    p = sub.add_parser("levers", help="flash / speed / stack of each size-speed lever")
    p.add_argument("--targets", help="comma-separated (default: thumbv7em and riscv32imc)")
    p.add_argument("--only", help="comma-separated lever names")
    p.add_argument("--no-run", action="store_true", help="flash only, no QEMU runs")
    p.add_argument("--json")
    p.set_defaults(fn=cmd_levers)

    p = sub.add_parser("check", help="the budget gate (budgets.toml)")
    p.add_argument("--profile", default="all", choices=["size", "speed", "all"])
    p.add_argument("--enforce", action="store_true", help="fail on every figure over its budget")
    p.add_argument("--no-insns", action="store_true")
    p.add_argument("--json")
    p.set_defaults(fn=cmd_check)

    a = ap.parse_args(argv)
    VERBOSE = a.verbose
    try:
        return a.fn(a)
    except Failure as e:
        log("measure: " + str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
