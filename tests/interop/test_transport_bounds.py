"""Bounded calls against peers that misbehave on purpose (issue H item 3 and the socket
glue of item 5). No real gateway can play these parts, so the peers are small Python
servers on loopback; the device side is the C socket transport and usmp_connect
(tcp_transport_check.c).

- A peer that sends a CHALLENGE header and then one byte every 1.5 s: usmp_connect must
  return within USMP_HANDSHAKE_TIMEOUT_MS (10 s) plus one transport poll (1 s), not after
  the 96 s the trickle would take.
- A listener that never completes the TCP handshake: dialling gives up after
  USMP_TRANSPORT_CONNECT_TIMEOUT_MS (1.5 s in this build) instead of the OS's SYN timeout.
- A socket at a descriptor above 1024 (where select() cannot wait) still receives frames,
  and every socket is close-on-exec.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from gateway_harness import run_build  # noqa: E402
from usmp_wire import frame  # noqa: E402

BUILD_DIR = Path(os.environ.get("USMP_INTEROP_BUILD")
                 or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "interop"))


@pytest.fixture(scope="module")
def check_bin() -> Path:
    if shutil.which("cmake") is None:
        pytest.fail("cmake not found")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    run_build([["cmake", "-S", str(HERE), "-B", str(BUILD_DIR), *gen, "-DCMAKE_BUILD_TYPE=Release"],
               ["cmake", "--build", str(BUILD_DIR), "--target", "tcp_transport_check"]],
              BUILD_DIR / "build-bounds.log", 1200.0)
    return BUILD_DIR / "tcp_transport_check"


class Peer:
    """A one-connection TCP server on 127.0.0.1 running `serve(conn)` in a thread."""

    def __init__(self, serve) -> None:  # type: ignore[no-untyped-def]
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
        self.thread.start()

    def _run(self, serve) -> None:  # type: ignore[no-untyped-def]
        self.sock.settimeout(30)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            serve(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for p in made:
        p.close()


def run(exe: Path, *args: str, timeout: float = 60) -> str:
    p = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def field(out: str, key: str) -> str:
    for tok in out.split():
        if tok.startswith(key + "="):
            return tok.split("=", 1)[1]
    raise AssertionError(f"{key}= not in {out!r}")


def test_trickling_challenge_cannot_stretch_usmp_connect(check_bin: Path, peers: list[Peer]) -> None:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(100)  # the HELLO
        challenge = frame(2, 0x02, 0, os.urandom(64))
        conn.sendall(challenge[:12])
        for b in challenge[12:]:
            if stop.wait(1.5):
                return
            try:
                conn.sendall(bytes([b]))
            except OSError:
                return

    peers.append(Peer(serve))
    out = run(check_bin, "trickle", str(peers[0].port), timeout=60)
    ms = int(field(out, "ms"))
    assert field(out, "rc") != "USMP_OK"
    # USMP_HANDSHAKE_TIMEOUT_MS plus one transport poll interval (the 1 s receive timeout).
    assert ms <= 10_000 + 1_000, f"usmp_connect took {ms} ms"


def test_dial_gives_up_on_a_listener_that_never_answers(check_bin: Path) -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so a plain
    # blocking connect() would wait for the OS's SYN timeout (two minutes on Linux).
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(s)
        time.sleep(0.2)
        out = run(check_bin, "blackhole", str(port), timeout=60)
    finally:
        for s in fillers:
            s.close()
        lst.close()
    assert field(out, "rc") == "-1"
    assert int(field(out, "ms")) <= 1500 + 1000, out


def test_socket_above_descriptor_1024_and_close_on_exec(check_bin: Path, peers: list[Peer]) -> None:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(frame(2, 0x05, 0, b"\x00" * 40))
        stop.wait(10)

    peers.append(Peer(serve))
    out = run(check_bin, "highfd", str(peers[0].port))
    assert int(field(out, "fd")) >= 1024
    assert int(field(out, "frame")) == 12 + 40
    assert field(out, "cloexec") == "1"
