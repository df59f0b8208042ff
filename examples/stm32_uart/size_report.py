#!/usr/bin/env python3
"""Size report of the stm32_uart firmware: totals from arm-none-eabi-size, and who takes
what, from the GNU ld map file (each input section that the --gc-sections link kept, summed
by the object or archive it came from).

    python3 examples/stm32_uart/size_report.py build/stm32/v2/usmp_stm32_uart.elf

Flash = .isr_vector + .text (+ .rodata, in .text here) + .ARM.ex* + the .data image;
RAM = .data + .bss, shown without and with the stack the linker script reserves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

FLASH_ONLY = {".isr_vector", ".text", ".ARM.extab", ".ARM.exidx", ".rodata"}
FLASH_AND_RAM = {".data"}
RAM_ONLY = {".bss"}
STACK = {".stack"}

_OUT = re.compile(r"^(\.[A-Za-z0-9_.]+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+))?")
_IN_FULL = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_IN_CONT = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def component(origin: str) -> str:
    """Groups an input file of the link into a component of the firmware."""
    if "libusmp_core.a(" in origin and "compiler_builtins" in origin:
        # The archive's copy of Rust's runtime helpers (integer division, ...). Its weak
        # memcpy/memset/memcmp lose to newlib's (USMP_LIBC_MEM); the C code's own memset and
        # strlen, which the core does not use, still resolve here (the archive precedes libc).
        return "compiler_builtins (in libusmp_core.a)"
    if "libusmp_core.a(" in origin:
        return "usmp core (Rust, libusmp_core.a)"
    if "libc_nano.a(" in origin or "libc.a(" in origin:
        return "newlib-nano (memcpy, memset, ...)"
    if "libgcc.a(" in origin:
        return "libgcc"
    name = Path(origin.split("(")[0]).name
    for key, label in (("stm32_usart.c", "USART hooks and RX ring (stm32_usart.c)"),
                       ("usmp_port_stm32.c", "port hooks + RNG (usmp_port_stm32.c)"),
                       ("main.c", "quickstart application (main.c)"),
                       ("superloop_main.c", "superloop application (superloop_main.c)"),
                       ("quickstart.c", "quickstart's shared code (quickstart.c)")):
        if name.startswith(key):
            return label
    if name.startswith(("startup.c", "board.c", "console.c", "semihosting.c")):
        return "startup, board, console, semihosting"
    return name


def parse_map(map_path: Path) -> dict[str, dict[str, int]]:
    """{component: {"flash": bytes, "ram": bytes, "stack": bytes}} from a GNU ld map."""
    sizes: dict[str, dict[str, int]] = defaultdict(lambda: {"flash": 0, "ram": 0, "stack": 0})
    in_memory_map = False
    out_sec = ""
    pending = ""
    for line in map_path.read_text(errors="replace").splitlines():
        if not in_memory_map:
            in_memory_map = line.startswith("Linker script and memory map")
            continue
        m = _OUT.match(line)
        if m:
            out_sec = m.group(1)
            pending = ""
            continue
        m = _IN_FULL.match(line)
        if m:
            size, origin = int(m.group(3), 16), m.group(4).strip()
        else:
            m = _IN_CONT.match(line)
            if m and pending:
                size, origin = int(m.group(2), 16), m.group(3).strip()
            else:
                # an input section name alone on its line: its numbers follow on the next
                pending = line.strip() if re.match(r"^ \.\S+$", line) else ""
                continue
        pending = ""
        if size == 0 or origin.startswith("load address"):
            continue
        comp = component(origin)
        if out_sec in FLASH_ONLY:
            sizes[comp]["flash"] += size
        elif out_sec in FLASH_AND_RAM:
            sizes[comp]["flash"] += size
            sizes[comp]["ram"] += size
        elif out_sec in RAM_ONLY:
            sizes[comp]["ram"] += size
    return dict(sizes)


def size_totals(elf: Path) -> tuple[int, int, int]:
    """(text, data, bss) of arm-none-eabi-size (Berkeley format)."""
    tool = shutil.which("arm-none-eabi-size") or "size"
    out = subprocess.run([tool, str(elf)], capture_output=True, text=True, timeout=60, check=True).stdout
    text, data, bss = out.strip().splitlines()[-1].split()[:3]
    return int(text), int(data), int(bss)


def section_size(elf: Path, name: str) -> int:
    tool = shutil.which("arm-none-eabi-size") or "size"
    out = subprocess.run([tool, "-A", str(elf)], capture_output=True, text=True, timeout=60, check=True).stdout
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) >= 2 and parts[0] == name:
            return int(parts[1])
    return 0


def report(elf: Path) -> tuple[str, dict[str, object]]:
    """The report as text, and its figures."""
    map_path = elf.with_suffix(".map")
    text, data, bss = size_totals(elf)
    stack = section_size(elf, ".stack")
    comps = parse_map(map_path)
    flash_total = text + data
    ram_static = data + bss - stack
    lines = [f"firmware {elf.name}: arm-none-eabi-size text={text} data={data} bss={bss} "
             f"(bss includes the {stack}-byte stack reservation)",
             f"  flash {flash_total} B ({flash_total / 1024:.1f} KiB), RAM {ram_static} B static "
             f"+ {stack} B stack = {data + bss} B",
             f"  {'component':<40} {'flash':>8} {'RAM':>8}"]
    for name, v in sorted(comps.items(), key=lambda kv: -kv[1]["flash"]):
        lines.append(f"  {name:<40} {v['flash']:>8} {v['ram']:>8}")
    core = comps.get("usmp core (Rust, libusmp_core.a)", {"flash": 0, "ram": 0})
    rt = comps.get("compiler_builtins (in libusmp_core.a)", {"flash": 0, "ram": 0})
    lib = {"flash": core["flash"] + rt["flash"], "ram": core["ram"] + rt["ram"]}
    mapped_flash = sum(v["flash"] for v in comps.values())
    lines.append(f"  {'(sum of the map; size counts padding too)':<40} {mapped_flash:>8} "
                 f"{sum(v['ram'] for v in comps.values()):>8}")
    share = 100.0 * lib["flash"] / flash_total if flash_total else 0.0
    lines.append(f"  library share (libusmp_core.a, core + compiler_builtins): {lib['flash']} B flash "
                 f"({share:.0f}% of the firmware), {lib['ram']} B static RAM")
    figures = {"text": text, "data": data, "bss": bss, "stack_reserved": stack, "flash": flash_total,
               "ram_static": ram_static, "lib_flash": lib["flash"], "lib_ram": lib["ram"],
               "core_flash": core["flash"], "builtins_flash": rt["flash"],
               "components": comps}
    return "\n".join(lines), figures


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    text, _ = report(Path(argv[1]))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
