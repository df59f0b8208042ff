"""What the two suites that run the REAL gateway from PyPI (tests/interop/gateway.py around
the `usmp` package) share: tests/interop/test_interop.py and tests/stm32/test_stm32.py.

  VERSIONS, venv_path, venv_python, venv_usmp_version, ensure_venvs: the two venvs
      ($USMP_VENV_V1 / $USMP_VENV_V2, default .venv-interop/v1 and v2), created by
      scripts/setup-python.sh when they are missing or hold the wrong usmp version;
  run_build: CMake steps into one log, under one deadline;
  new_run_dir, node_dir: a fresh run directory per session (the last few kept), one
      directory per test in it;
  Gateway: one gateway.py process, started on a free port (or a given one) and waited for
      through its ready file, its JSON event log read back, stopped by its own PID;
  gateways: a per-test factory of Gateways, all stopped when the test ends.

Each suite imports it after putting tests/ on sys.path; the suites keep their own
constants (PSK, build directories, timeouts of their own) and fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
GATEWAY = REPO / "tests" / "interop" / "gateway.py"

SETUP_TIMEOUT_S = 900.0
GATEWAY_READY_TIMEOUT_S = 20.0

VERSIONS: dict[str, dict[str, Any]] = {
    "v1": {"env": "USMP_VENV_V1", "default": REPO / ".venv-interop" / "v1", "usmp": "0.5.1", "wire": 1},
    "v2": {"env": "USMP_VENV_V2", "default": REPO / ".venv-interop" / "v2", "usmp": "1.2.2", "wire": 2},
}


# --------------------------------------------------------------------------- environment

def venv_path(ver: str) -> Path:
    spec = VERSIONS[ver]
    return Path(os.environ.get(spec["env"], str(spec["default"])))


def venv_python(ver: str) -> Path:
    return venv_path(ver) / "bin" / "python"


def venv_usmp_version(ver: str) -> str | None:
    py = venv_python(ver)
    if not py.exists():
        return None
    try:
        out = subprocess.run([str(py), "-c", "import usmp; print(usmp.__version__)"],
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_venvs() -> dict[str, Path]:
    """The body of each suite's session fixture `venvs`: the Python of each version's venv,
    after running scripts/setup-python.sh if one is missing or has the wrong usmp."""
    wrong = [v for v in VERSIONS if venv_usmp_version(v) != VERSIONS[v]["usmp"]]
    if wrong:
        script = REPO / "scripts" / "setup-python.sh"
        env = dict(os.environ)
        env.setdefault("USMP_VENV_V1", str(venv_path("v1")))
        env.setdefault("USMP_VENV_V2", str(venv_path("v2")))
        try:
            proc = subprocess.run(["bash", str(script)], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=SETUP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{script} did not finish within {SETUP_TIMEOUT_S:.0f} s")
        if proc.returncode != 0:
            pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    for v in VERSIONS:
        got = venv_usmp_version(v)
        if got != VERSIONS[v]["usmp"]:
            pytest.fail(f"venv {venv_path(v)} has usmp {got!r}, expected {VERSIONS[v]['usmp']}")
    return {v: venv_python(v) for v in VERSIONS}


def run_build(steps: list[list[str]], log: Path, timeout_s: float) -> None:
    """Runs the build commands from the repository root, their output into `log`, all of
    them within `timeout_s`; fails the test on a timeout or an error."""
    deadline = time.monotonic() + timeout_s
    with open(log, "w") as fh:
        for cmd in steps:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            try:
                proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL,
                                      timeout=max(10.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"build step timed out: {' '.join(cmd)} (log: {log})")
            if proc.returncode != 0:
                pytest.fail(f"build step failed: {' '.join(cmd)}\n{log.read_text()[-6000:]}")


def print_results(request: pytest.FixtureRequest, results: list[str], path: Path, title: str) -> None:
    """A suite's result lines, written to `path` and printed past pytest's capture (the
    summary a session-scoped fixture gives at the end)."""
    if not results:
        return
    text = "\n".join(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print(f"\n{title} (also in {path}):\n{text}")


def new_run_dir(base: Path) -> Path:
    """A new base/run-XXXX directory; older runs beyond the last few are deleted."""
    base.mkdir(parents=True, exist_ok=True)
    for stale in sorted(base.glob("run-*"), key=lambda p: p.stat().st_mtime)[:-4]:
        shutil.rmtree(stale, ignore_errors=True)  # keep the logs of the last few runs
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


def node_dir(workdir: Path, node_name: str) -> Path:
    """The directory of one test (by its pytest node name) in the run directory."""
    wd = workdir / node_name.replace("/", "_").replace("[", "-").replace("]", "")
    wd.mkdir(exist_ok=True)
    return wd


# --------------------------------------------------------------------------- gateway

@dataclass
class Gateway:
    """One gateway.py process. Its files in `workdir`: gateway-<ver>-<n>.jsonl (event log),
    gateway-<ver>-<n>.stderr and ready-<ver>-<n>, n counting the starts (restarts get new
    files, events() reads them all), or without the -<n> when numbered is False."""

    ver: str
    python: Path
    workdir: Path
    psk: str
    proto: str = "tcp"
    psk_hex: bool = False  # `psk` is hex digits (--psk-hex), not text
    lib_log_level: str = "INFO"
    numbered: bool = True
    port: int = 0
    # Another gateway script taking gateway.py's options (tests/ota/ota_gateway.py), and
    # options of its own.
    script: Path = GATEWAY
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    generation: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def _stem(self) -> str:
        return f"{self.ver}-{self.generation}" if self.numbered else self.ver

    @property
    def log_path(self) -> Path:
        return self.workdir / f"gateway-{self._stem}.jsonl"

    def start(self, port: int | None = None) -> "Gateway":
        """Starts the gateway (on `port`, or a free port chosen by the OS), waits for READY."""
        self.generation += 1
        ready = self.workdir / f"ready-{self._stem}"
        stderr_path = self.workdir / f"gateway-{self._stem}.stderr"
        if self.log_path not in self.logs:
            self.logs.append(self.log_path)
        want_port = self.port if port is None else port
        deadline = time.monotonic() + GATEWAY_READY_TIMEOUT_S
        with open(stderr_path, "w") as stderr:
            while True:  # a restart on the same port may briefly find it busy
                self.proc = subprocess.Popen(
                    [str(self.python), str(self.script), "--proto", self.proto, "--port", str(want_port),
                     "--psk-hex" if self.psk_hex else "--psk", self.psk,
                     "--log", str(self.log_path), "--ready-file", str(ready),
                     "--lib-log-level", self.lib_log_level, *self.extra_args],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=self.workdir)
                while not ready.exists():
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                if ready.exists():
                    break
                rc = self.proc.poll()
                self.kill()
                if rc is None or time.monotonic() > deadline or want_port == 0:
                    pytest.fail(f"gateway {self.ver} did not become ready (exit {rc}):\n"
                                f"{stderr_path.read_text()[-3000:]}")
                time.sleep(0.2)
        line = ready.read_text().split()
        assert line[0] == "READY" and line[1] == self.proto, line
        self.port = int(line[2])
        assert f"wire=0x0{VERSIONS[self.ver]['wire']}" in line, line
        return self

    def kill(self) -> None:
        """SIGKILL (a crash, as far as the device can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p in self.logs:
            if p.exists():
                for ln in p.read_text().splitlines():
                    try:
                        out.append(json.loads(ln))
                    except json.JSONDecodeError:
                        pass
        return out

    def tail(self, n: int = 40) -> str:
        """The last n lines of the event log(s)."""
        lines: list[str] = []
        found = False
        for p in self.logs:
            if p.exists():
                found = True
                lines += p.read_text().splitlines()
        return "\n".join(lines[-n:]) if found else "(no gateway log)"


@contextmanager
def gateways(venvs: dict[str, Path], workdir: Path, psk: str, **defaults: Any) -> Iterator[Callable[..., Gateway]]:
    """A factory of gateways for one test: make(ver, proto=None, psk=..., ...) starts one
    (arguments override `defaults`, then go to Gateway); all are stopped at the end."""
    started: list[Gateway] = []

    def make(ver: str, proto: str | None = None, **kw: Any) -> Gateway:
        opts = {**defaults, **kw}
        if proto is not None:
            opts["proto"] = proto
        gw = Gateway(ver, venvs[ver], workdir, opts.pop("psk", psk), **opts).start()
        started.append(gw)
        return gw

    try:
        yield make
    finally:
        for gw in started:
            gw.stop()
