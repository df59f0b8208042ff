"""What the interop test modules share about the C client (interop_client.c) and the lossy
UDP proxy (lossy_proxy.py): tests/interop/test_interop.py and tests/interop/test_soak.py.

  BUILD_DIR: where the client is built ($USMP_INTEROP_BUILD, or $USMP_BUILD_DIR/interop,
      or build/interop);
  build_client: the CMake configure + build of the client's targets, once per session;
  client_cmd, describe_exit, result_line, device_stats: the client's command line and
      what it prints;
  start_proxy, stop_proxy: one lossy_proxy.py in front of a gateway, its counters back.

Each module imports it after putting tests/ (for gateway_harness) on sys.path; the
modules keep their own constants (PSKs, seeds, timeouts) and fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/gateway_harness.py
from gateway_harness import Gateway, run_build  # noqa: E402

PROXY = HERE / "lossy_proxy.py"
BUILD_DIR = Path(os.environ.get("USMP_INTEROP_BUILD")
                 or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "interop"))
BUILD_TIMEOUT_S = 1200.0     # first build compiles the Rust core
PROXY_READY_TIMEOUT_S = 15.0


def build_client(targets: tuple[str, ...] = ("interop_client", "udp_transport_check")) -> Path:
    """Configures tests/interop (CMake, Ninja when present) into BUILD_DIR, builds `targets`
    and returns the interop_client executable."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake not found")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    run_build([["cmake", "-S", str(HERE), "-B", str(BUILD_DIR), *gen, "-DCMAKE_BUILD_TYPE=Release"],
               ["cmake", "--build", str(BUILD_DIR), "--target", *targets]],
              BUILD_DIR / "build-output.log", BUILD_TIMEOUT_S)
    exe = BUILD_DIR / "interop_client"
    if not exe.exists():
        pytest.fail(f"{exe} was not produced")
    return exe


def client_cmd(exe: Path, gw: Gateway, scenario: str, version: int, psk: str,
               port: int | None = None, extra: list[str] | None = None) -> list[str]:
    """The client's command line against `gw` (or a proxy in front of it on `port`)."""
    return [str(exe), "--host", "127.0.0.1", "--port", str(gw.port if port is None else port), "--psk", psk,
            "--proto-version", str(version), "--proto", gw.proto, "--scenario", scenario, *(extra or [])]


def describe_exit(rc: int) -> str:
    if rc < 0:
        sig = signal.Signals(-rc).name
        hint = " (SIGPIPE: a write to a closed socket killed the process)" if sig == "SIGPIPE" else ""
        return f"killed by {sig}{hint}"
    return f"exit {rc}"


def result_line(out: str, key: str) -> str:
    """The rest of the first line of `out` that starts with `key` and a space ("" if none)."""
    for ln in out.splitlines():
        if ln.startswith(key + " "):
            return ln[len(key) + 1:]
    return ""


def device_stats(out: str) -> dict[str, int]:
    """The client's usmp_get_stats line: STATS retransmits=R duplicates=D rejected=X bad_acks=B."""
    line = result_line(out, "STATS")
    assert line and "unavailable" not in line, f"no STATS line in the client output:\n{out}"
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split())}


def start_proxy(gw: Gateway, workdir: Path, seed: int, args: list[str],
                duration_s: float = 120.0) -> tuple[subprocess.Popen, int, Path]:
    """Starts lossy_proxy.py in front of `gw` (decisions logged to workdir); returns the
    process, the port the device dials and the path its counters are written to at exit."""
    ready, stats = workdir / "proxy-ready", workdir / "proxy-stats.json"
    for p in (ready, stats):
        p.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(PROXY), "--upstream-port", str(gw.port), "--seed", str(seed),
                             "--ready-file", str(ready), "--stats-file", str(stats),
                             "--log", str(workdir / "proxy-decisions.txt"), "--duration", str(duration_s), *args],
                            stdin=subprocess.DEVNULL, stdout=open(workdir / "proxy-stdout.txt", "w"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + PROXY_READY_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"lossy proxy did not start:\n{(workdir / 'proxy-stdout.txt').read_text()[-2000:]}")
        time.sleep(0.02)
    return proc, int(ready.read_text().split()[2]), stats


def stop_proxy(proc: subprocess.Popen, stats: Path) -> dict[str, Any]:
    """SIGTERM (the proxy then writes its counters), SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return json.loads(stats.read_text()) if stats.exists() else {}
