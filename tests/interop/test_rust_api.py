"""Interop proof for the Rust API: examples/rust_host_echo (usmp::Client and
usmp::AsyncClient, the latter on the small executor of examples/rust_host_echo/spin.rs)
against the REAL gateways from PyPI on 127.0.0.1.

Matrix: v1 (usmp==0.5.1) and v2 (usmp==1.2.2) x TCP and UDP x blocking and async. Each run
connects, echoes 0, 1, 452, 453, 1000 and 1808 bytes and checks them, sees 1809 refused,
pings, has the gateway ping it (cmd:ping), rotates keys both ways (v2 over TCP: device REKEY,
then cmd:rekey), sends a keepalive PING and says BYE. The gateway's event log is checked too:
the message lengths it received, the PINGs/PONGs/REKEYs it authenticated, and that the
session ended on the device's BYE. Negative runs (own gateway each, because failed
handshakes lock 127.0.0.1 out): a wrong PSK is USMP_ERR_AUTH_FAILED, a v2 device at a v1
gateway USMP_ERR_REJECTED.

Run:  scripts/setup-python.sh && .venv-interop/v2/bin/python -m pytest tests/interop/test_rust_api.py -q
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from gateway_harness import Gateway, ensure_venvs, gateways, new_run_dir, node_dir  # noqa: E402

BUILD_DIR = Path(os.environ.get("USMP_BUILD_DIR") or str(REPO / "build")) / "rust_api"
PSK = "usmp-rust-api-psk-0123456789abcdef"
WRONG_PSK = "usmp-rust-api-WRONG-psk-987654321"
ECHO_LENS = [0, 1, 452, 453, 1000, 1808]
RUN_TIMEOUT_S = 60.0
BUILD_TIMEOUT_S = 900.0


@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="session")
def example() -> Path:
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    log = BUILD_DIR / "build-output.log"
    with open(log, "w") as f:
        proc = subprocess.run([cargo, "build", "--release", "--features", "std", "--example", "rust_host_echo",
                               "--target-dir", str(BUILD_DIR / "target")],
                              cwd=REPO, stdout=f, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"cargo build of the example failed:\n{log.read_text()[-4000:]}")
    exe = BUILD_DIR / "target" / "release" / "examples" / "rust_host_echo"
    assert exe.exists(), exe
    return exe


@pytest.fixture(scope="session")
def workdir() -> Path:
    return new_run_dir(BUILD_DIR / "runs")


@pytest.fixture
def gateway(venvs: dict[str, Path], workdir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    with gateways(venvs, node_dir(workdir, request.node.name), PSK) as make:
        yield make


def run(exe: Path, gw: Gateway, wire: str, *flags: str, psk: str = PSK) -> tuple[int, str, float]:
    cmd = [str(exe), "127.0.0.1", str(gw.port), psk, wire, "1", *flags]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} hung (> {RUN_TIMEOUT_S} s):\n{e.stdout}\n--- gateway:\n{gw.tail()}")
    out = p.stdout + p.stderr
    (gw.workdir / f"rust-{wire}-{gw.proto}{''.join(flags)}.txt").write_text(out)
    return p.returncode, out, time.monotonic() - t0


def wait_closed(gw: Gateway, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        closed = [e for e in gw.events() if e["ev"] == "closed"]
        if closed:
            return closed[-1]
        time.sleep(0.05)
    pytest.fail(f"the session did not close; gateway log:\n{gw.tail()}")


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("ver", ["v1", "v2"])
def test_echo_session(example: Path, gateway: Callable[..., Gateway], ver: str, proto: str, mode: str) -> None:
    gw = gateway(ver, proto)
    flags = (["--udp"] if proto == "udp" else []) + (["--async"] if mode == "async" else [])
    rc, out, dt = run(example, gw, ver, *flags)
    assert rc == 0 and out.rstrip().endswith("OK"), f"exit {rc}:\n{out}\n--- gateway:\n{gw.tail()}"
    for n in ECHO_LENS:
        assert f"echo {n} B ok" in out, out
    evs = gw.events()
    lens = [e["len"] for e in evs if e["ev"] == "message" and not e.get("cmd")]
    rekey = ver == "v2" and proto == "tcp"
    assert lens == ECHO_LENS + ([700] if rekey else []), lens
    frames = [e for e in evs if e["ev"] == "frame"]
    types = [f["type"] for f in frames]
    # The device's own PING (ping()) and keepalive PING, and its PONG to the gateway's PING.
    assert types.count("PING") >= 2 and types.count("PONG") >= 1, types
    if rekey:
        assert "REKEY" in types, types
    closed = wait_closed(gw)
    assert closed["reason"] == "Remote sent BYE", closed
    print(f"rust {mode} {proto} {ver}: {dt:.2f} s, {len(frames)} frames authenticated by the gateway")


@pytest.mark.parametrize("ver", ["v1", "v2"])
def test_wrong_psk(example: Path, gateway: Callable[..., Gateway], ver: str) -> None:
    gw = gateway(ver)
    rc, out, dt = run(example, gw, ver, "--expect-error", "USMP_ERR_AUTH_FAILED", psk=WRONG_PSK)
    assert rc == 0, f"exit {rc}:\n{out}"
    assert dt < 5.0, f"a TCP refusal should be seen at once, took {dt:.1f} s"
    assert not [e for e in gw.events() if e["ev"] == "session_open"]


def test_version_mismatch(example: Path, gateway: Callable[..., Gateway]) -> None:
    gw = gateway("v1")
    rc, out, _ = run(example, gw, "v2", "--expect-error", "USMP_ERR_REJECTED")
    assert rc == 0, f"exit {rc}:\n{out}"
