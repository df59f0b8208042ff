"""What the serial-line suites share (tests/cli: the `usmp` host tool against the real
gateways; tests/stm32/test_stm32_bridge.py: the STM32 firmware through `usmp bridge`):

  usmp_cli: the host tool, built once per session with cargo (target dir
      $USMP_BUILD_DIR/cli, default build/cli);
  BridgeProc: one `usmp --json bridge ...` process: the pty it made (--pty), its final
      counters (the "exit" line it prints on SIGTERM), its stderr log;
  QemuPty: firmware in QEMU with its first UART on a pseudo-terminal (`-serial pty`),
      held at the first instruction (-S) until resume(), so that nothing it writes is lost
      before the bridge has the pty open;
  cobs_encode: COBS framing as the library does it (00, runs, 00), for tests that write
      to a line themselves.

Each suite imports it after putting tests/ on sys.path.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway_harness import REPO, run_build
from usmp_wire import cobs_encode  # noqa: F401 (the suites import it from here)
from qemu_harness import QemuRun

CLI_BUILD = Path(os.environ.get("USMP_BUILD_DIR") or str(REPO / "build")) / "cli"
CLI_BUILD_TIMEOUT_S = 900.0

_cli: Path | None = None


def usmp_cli() -> Path:
    """The `usmp` binary (cargo build of cli/, debug profile: quick to build, fast enough)."""
    global _cli
    if _cli is None:
        CLI_BUILD.mkdir(parents=True, exist_ok=True)
        run_build([["cargo", "build", "--locked", "--manifest-path", str(REPO / "cli" / "Cargo.toml"),
                    "--target-dir", str(CLI_BUILD)]], CLI_BUILD / "build-output.log", CLI_BUILD_TIMEOUT_S)
        exe = CLI_BUILD / "debug" / "usmp"
        if not exe.exists():
            pytest.fail(f"{exe} was not built")
        _cli = exe
    return _cli


def read_until(fd: int, marker: str, timeout_s: float) -> str:
    """Reads `fd` (unbuffered) until `marker` has come, the end, or `timeout_s`."""
    text = b""
    deadline = time.monotonic() + timeout_s
    while marker.encode() not in text:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        text += chunk
    return text.decode(errors="replace")


class BridgeProc:
    """`usmp --json bridge <args>`; stop() sends SIGTERM and returns the final counters."""

    def __init__(self, args: list[str], logdir: Path, name: str) -> None:
        self.cmd = [str(usmp_cli()), "--json", "-v", "bridge", *args]
        self.err_path = logdir / f"{name}.bridge.txt"
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True)
        self.lines: list[dict] = []
        self.pty: str | None = None
        self._rest = ""
        if "--pty" in args:
            first = self._line(10.0)
            assert first.get("event") == "pty", first
            self.pty = first["path"]

    def _line(self, timeout_s: float) -> dict:
        """The first line on stdout (read from the descriptor, unbuffered, so that select
        sees everything; what follows it is kept for stop())."""
        assert self.proc.stdout is not None
        text = read_until(self.proc.stdout.fileno(), "\n", timeout_s)
        if "\n" not in text:
            self.stop()
            pytest.fail(f"bridge printed no line within {timeout_s} s: {text!r} {self.log()}")
        first, self._rest = text.split("\n", 1)
        return json.loads(first)

    def stop(self) -> dict:
        """The counters of the "exit" line (empty when the bridge printed none)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self._err.close()
        for ln in (self._rest + (out or "")).splitlines():
            if ln.strip():
                self.lines.append(json.loads(ln))
        exits = [ln for ln in self.lines if ln.get("event") == "exit"]
        return exits[-1] if exits else {}

    def log(self) -> str:
        return self.err_path.read_text()[-3000:] if self.err_path.exists() else ""


class QemuPty:
    """Firmware in QEMU, first UART on a pty, paused until resume()."""

    def __init__(self, qemu: Path, machine: str, elf: Path, logdir: Path, name: str) -> None:
        self.cmd = [str(qemu), "-M", machine, "-nographic", "-monitor", "stdio", "-S",
                    "-semihosting-config", "enable=on,target=native",
                    "-kernel", str(elf), "-serial", "pty"]
        self.log_path = logdir / f"{name}.qemu.txt"
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self._monitor = read_until(self.proc.stdout.fileno(), "(label serial0)", 20.0)
        m = re.search(r"redirected to (/dev/pts/\d+)", self._monitor)
        if not m:
            self.proc.kill()
            pytest.fail(f"QEMU named no pty: {' '.join(self.cmd)}\n{self._monitor}\n"
                        f"{self.proc.communicate()[1][-2000:]}")
        self.pty = m.group(1)
        self.t0 = 0.0

    def resume(self) -> None:
        # QEMU notices a reader on its pty once a second (before that, what the guest writes
        # is dropped): give it that second, then let the firmware run.
        time.sleep(1.2)
        assert self.proc.stdin is not None
        self.t0 = time.monotonic()
        self.proc.stdin.write("cont\n")
        self.proc.stdin.flush()

    def wait(self, timeout_s: float) -> QemuRun:
        """Waits for the firmware's exit (semihosting); a timeout fails the test."""
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            self.log_path.write_text(f"$ {' '.join(self.cmd)}\n{self._monitor}{out}{err}")
            pytest.fail(f"firmware hung (> {timeout_s} s):\n{err[-3000:]}")
        dt = time.monotonic() - self.t0
        # The semihosting console is on stderr; stdout is the monitor.
        self.log_path.write_text(f"$ {' '.join(self.cmd)}\nexit {self.proc.returncode}\n{err}")
        return QemuRun(self.proc.returncode, err, dt)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
