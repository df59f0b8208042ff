"""What the two QEMU suites share (tests/stm32: the C firmware on netduinoplus2;
tests/rust_firmware: the Rust firmware on mps2-an386):

  find_qemu: the qemu-system-arm to use ($USMP_QEMU, else scripts/setup-qemu.sh), checked
      to know the machine;
  run_qemu: one firmware run, its first UART bridged as a TCP client to 127.0.0.1:PORT,
      semihosting on (the console and the exit status), under a timeout, logged;
  QemuRun: what a run printed and how it exited;
  insn_plugin: the instruction-counting TCG plugin (tools/qemu-insn), built for this host.

Each suite imports it after putting tests/ on sys.path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway_harness import REPO, SETUP_TIMEOUT_S


def find_qemu(machine: str) -> Path:
    """$USMP_QEMU, else the private copy scripts/setup-qemu.sh provides; fails the test
    session when it cannot be run or lacks `machine`."""
    env = os.environ.get("USMP_QEMU")
    if env:
        path = Path(env)
    else:
        script = REPO / "scripts" / "setup-qemu.sh"
        try:
            proc = subprocess.run(["bash", str(script)], cwd=REPO, capture_output=True, text=True,
                                  timeout=SETUP_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{script} did not finish within {SETUP_TIMEOUT_S:.0f} s")
        if proc.returncode != 0 or not proc.stdout.strip():
            pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        path = Path(proc.stdout.strip().splitlines()[-1])
    try:
        out = subprocess.run([str(path), "-M", "help"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"cannot run {path}: {e}")
    if machine not in out.stdout:
        pytest.fail(f"{path} has no {machine} machine:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return path


@dataclass
class QemuRun:
    rc: int
    out: str
    seconds: float

    def line(self, prefix: str) -> str:
        """The first line of the output that starts with `prefix`, or ""."""
        return next((ln for ln in self.out.splitlines() if ln.startswith(prefix)), "")

    def step(self, name: str) -> str:
        """The firmware's `STEP <name> ...` line, or ""."""
        return self.line(f"STEP {name} ")


def qemu_cmd(qemu: Path, machine: str, elf: Path, port: int, extra: tuple[str, ...] = ()) -> list[str]:
    # Both machines wire serial_hd(0), the first -serial, to the firmware's UART; QEMU
    # connects to the gateway as a TCP client before the firmware starts.
    return [str(qemu), "-M", machine, "-nographic", "-monitor", "none",
            "-semihosting-config", "enable=on,target=native",
            "-kernel", str(elf), "-serial", f"tcp:127.0.0.1:{port},nodelay=on", *extra]


def insn_plugin(outdir: Path) -> Path:
    """tools/qemu-insn/insn.c built with the host's C compiler into outdir (once): QEMU's
    `-plugin <so>,begin=ADDR,end=ADDR,out=FILE` then writes "region <i> insns=<n>" for the
    guest instructions between each pass through two marker functions."""
    src = REPO / "tools" / "qemu-insn" / "insn.c"
    so = outdir / "qemu-insn.so"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.fail("no host C compiler for the QEMU plugin tools/qemu-insn")
    deps = (src, src.parent / "qemu-plugin-api.h")
    if not so.exists() or so.stat().st_mtime < max(d.stat().st_mtime for d in deps):
        outdir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(src)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"building {src} failed:\n{proc.stderr[-3000:]}")
    return so


def run_qemu(qemu: Path, machine: str, elf: Path, port: int, logdir: Path, name: str,
             timeout_s: float, extra: tuple[str, ...] = ()) -> QemuRun:
    """Runs the firmware until it exits (semihosting) or `timeout_s` passes (a test
    failure: QEMU, its own PID, is killed); the output goes to logdir/<name>.qemu.txt.
    `extra`: more QEMU arguments (e.g. a -plugin)."""
    cmd = qemu_cmd(qemu, machine, elf, port, extra)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:  # run() has killed QEMU by now
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        (logdir / f"{name}.qemu.txt").write_text(out + err)
        pytest.fail(f"firmware hung (> {timeout_s} s): {' '.join(cmd)}\n{out}{err}")
    dt = time.monotonic() - t0
    # The semihosting console goes to QEMU's stderr, with QEMU's own messages.
    out = proc.stdout + proc.stderr
    (logdir / f"{name}.qemu.txt").write_text(f"$ {' '.join(cmd)}\nexit {proc.returncode}\n{out}")
    return QemuRun(proc.returncode, out, dt)
