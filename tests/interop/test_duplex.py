"""Two tasks on one usmp_t against the REAL v2 gateway (usmp 1.2.2) while it PINGs the
device every few milliseconds (gateway.py --ping-every-ms): duplex_client.c runs an RX
thread in usmp_recv (answering each PING with a PONG) and a TX thread in usmp_send on the
same context; every echo must come back intact, in order, exactly once. Over TCP and UDP.

Also issue H item 2: over UDP, a PING that arrives while the device waits for a fragment's
acknowledgement must not put the owed PONG between two DATA_FRAG frames (the gateway would
drop the partial message and deliver the rest as a complete, shorter message): 300 messages
of 1807/1808 bytes under a PING every millisecond, every echo intact.

Each test has its own gateway process (their PING tasks are per session anyway).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from gateway_harness import Gateway, ensure_venvs, gateways, new_run_dir, node_dir, run_build  # noqa: E402

BUILD_DIR = Path(os.environ.get("USMP_INTEROP_BUILD")
                 or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "interop"))
PSK = "usmp-duplex-psk-0123456789abcdef"


@pytest.fixture(scope="module")
def duplex_bin() -> Path:
    if shutil.which("cmake") is None:
        pytest.fail("cmake not found")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    run_build([["cmake", "-S", str(HERE), "-B", str(BUILD_DIR), *gen, "-DCMAKE_BUILD_TYPE=Release"],
               ["cmake", "--build", str(BUILD_DIR), "--target", "duplex_client"]],
              BUILD_DIR / "build-duplex.log", 1200.0)
    return BUILD_DIR / "duplex_client"


@pytest.fixture
def own_gateway(request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    workdir = new_run_dir(BUILD_DIR / "runs-duplex")
    with gateways(ensure_venvs(), node_dir(workdir, request.node.name), PSK) as make:
        yield make


def run_client(exe: Path, gw: Gateway, *args: str, timeout: float) -> str:
    cmd = [str(exe), "--port", str(gw.port), "--psk", PSK, "--proto", gw.proto, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"duplex_client timed out after {timeout} s\n{e.stdout}\ngateway:\n{gw.tail()}")
    print(p.stdout)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}\ngateway log tail:\n{gw.tail()}"
    return p.stdout


def gateway_frames(gw: Gateway, ftype: str) -> int:
    return sum(1 for e in gw.events() if e.get("ev") == "frame" and e.get("type") == ftype)


def pings_sent(gw: Gateway) -> int:
    return sum(e.get("pings_sent", 0) for e in gw.events() if e.get("ev") == "pinger")


@pytest.mark.parametrize("proto,count", [("tcp", 300), ("udp", 150)])
def test_rx_and_tx_threads_under_gateway_pings(duplex_bin: Path, own_gateway: Callable[..., Gateway],
                                               proto: str, count: int) -> None:
    gw = own_gateway("v2", proto, extra_args=["--ping-every-ms", "3"])
    out = run_client(duplex_bin, gw, "--threads", "1", "--count", str(count), "--sizes", "mixed",
                     "--pace-ms", "2", timeout=240)
    assert f"intact={count}" in out
    gw.stop()
    pongs, pings = gateway_frames(gw, "PONG"), pings_sent(gw)
    print(f"gateway: {pings} PINGs sent, {pongs} PONGs accepted")
    # The PINGs really crossed the traffic, and the device answered them on the same context.
    assert pings >= 20 and pongs >= 20, (pings, pongs)


def test_pong_never_splits_a_fragmented_message_udp(duplex_bin: Path,
                                                     own_gateway: Callable[..., Gateway]) -> None:
    gw = own_gateway("v2", "udp", extra_args=["--ping-every-ms", "1"])
    out = run_client(duplex_bin, gw, "--threads", "0", "--count", "300", "--sizes", "large",
                     timeout=600)
    assert "intact=300" in out
    gw.stop()
    # Every message the gateway received had the full length (none cut by a PONG).
    lens = [e["len"] for e in gw.events() if e.get("ev") == "message"]
    assert lens and all(n in (1807, 1808) for n in lens), sorted(set(lens))
    assert pings_sent(gw) >= 100
