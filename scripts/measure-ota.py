#!/usr/bin/env python3
"""Flash and stack cost of the OTA receiver (Cargo feature `ota`), measured the way
BENCHMARKS.md measures the library (tools/measure/measure.py's build and ELF reading):

  flash  the release static library built as it ships (`cargo rustc --release --crate-type
         staticlib`, LTO), linked with arm-none-eabi-gcc -Os --gc-sections into a probe:
           base = tools/size/probe.c (the whole usmp.h API), library without `ota`
           +ota = tests/ota/size_probe.c (probe.c + every usmp_ota.h function), library
                  with `ota`
         The difference is what an application pays for the update receiver. Also: probe.c
         against the `ota` library (feature on, receiver unused: should cost nothing), and
         the difference per crate (symbol sizes).
  stack  the largest frames of the OTA code (-Z emit-stack-sizes, as `measure.py frames`);
         the painted figure comes from the STM32 demo in QEMU (tests/stm32/test_stm32_ota.py).

    python3 scripts/measure-ota.py [--targets thumbv7em-none-eabihf,riscv32imc-unknown-none-elf]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "measure"))
import measure as M  # noqa: E402

PROBE = REPO / "tests" / "ota" / "size_probe.c"
OTA_SYMBOL_HINTS = ("ota", "ed25519", "curve25519", "sha2", "Sha512", "sha512", "compress512")


def link(target: str, lib: Path, probe: Path, entry: str, name: str) -> Path:
    cc, flags = M.cc_for(target)
    d = M.OUT / "ota"
    d.mkdir(parents=True, exist_ok=True)
    elf = d / f"{name}-{M.SHORT[target]}.elf"
    M.run([cc] + flags + ["-Os", "-ffreestanding", "-ffunction-sections", "-fdata-sections",
                          "-I", REPO / "include", "-nostdlib", "-nostartfiles", "-Wl,--gc-sections",
                          f"-Wl,-e,{entry}", "-Wl,-z,noexecstack", probe, lib, "-lgcc", "-o", elf])
    return elf


def flash(elf: Path) -> int:
    text, data, _ = M.Elf(elf).berkeley()
    return text + data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="thumbv7em-none-eabihf")
    ap.add_argument("--frames", type=int, default=12, help="largest OTA stack frames to list (thumbv7em)")
    a = ap.parse_args()
    base_v = M.profile_variant("size")
    ota_v = M.Variant(name="size-ota", features=["ota"], description="size profile + feature ota")
    for t in a.targets.split(","):
        base_lib = M.build_lib(base_v, t)
        base = link(t, base_lib, REPO / "tools" / "size" / "probe.c", "Reset_Handler", "base")
        ota_lib = M.build_lib(ota_v, t)
        unused = link(t, ota_lib, REPO / "tools" / "size" / "probe.c", "Reset_Handler", "ota-unused")
        used = link(t, ota_lib, PROBE, "ota_probe_reset", "ota")
        fb, fu, fo = flash(base), flash(unused), flash(used)
        print(f"{t}: flash base {fb:,} B; feature ota on but unused {fu:,} B ({fu - fb:+,}); "
              f"with the receiver {fo:,} B ({fo - fb:+,})")
        cb, co = M.crate_breakdown(base), M.crate_breakdown(used)
        diff = {c: co.get(c, 0) - cb.get(c, 0) for c in set(cb) | set(co)}
        print("  by crate (symbol sizes, +ota): " + ", ".join(
            f"{c} {d:+,}" for c, d in sorted(diff.items(), key=lambda kv: -abs(kv[1])) if d))
    if a.frames:
        os.environ["RUSTC_BOOTSTRAP"] = "1"
        fv = M.Variant(name="size-ota-stacksizes", rustflags="-Z emit-stack-sizes", features=["ota"])
        try:
            lib = M.build_lib(fv, M.M4)
        finally:
            os.environ.pop("RUSTC_BOOTSTRAP", None)
        elf = link(M.M4, lib, PROBE, "ota_probe_reset", "ota-stacksizes")
        frames = M.stack_frames(elf)
        names = M.demangle([n for _, n in frames])
        shown = [(s, n) for (s, _), n in zip(frames, names) if any(h in n for h in OTA_SYMBOL_HINTS)]
        print(f"largest frames of the OTA code (thumbv7em, bytes; -Z emit-stack-sizes):")
        for s, n in shown[:a.frames]:
            print(f"  {s:6d}  {M.short_name(n)[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
