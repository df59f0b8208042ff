"""STM32 for real: the bare-metal firmware of examples/stm32_uart on an emulated STM32F405
(QEMU's netduinoplus2), its USART1 bridged over TCP to the REAL gateway from PyPI.

    firmware (C + libusmp.a) -> USART1 -> QEMU -serial tcp:127.0.0.1:PORT -> gateway.py

Builds (CMake + arm-none-eabi toolchain file, EMULATOR build, one per wire version):
  v2: -DUSMP_STM32_WIRE=2 against usmp==1.2.2 (venv .venv-interop/v2)
  v1: -DUSMP_STM32_WIRE=1 against usmp==0.5.1 (venv .venv-interop/v1)
into $USMP_STM32_BUILD (default $USMP_BUILD_DIR/stm32, or build/stm32). QEMU comes from
$USMP_QEMU, else scripts/setup-qemu.sh (unpacks Debian's qemu-system-arm privately).

The firmware prints its steps over semihosting and exits QEMU with its status (semihosting
SYS_EXIT_EXTENDED). The tests assert on that status and on the gateway's JSON event log:
the message lengths (1808 in 4 frames), the keepalive PING, the device's BYE. Negative
cases: a wrong PSK and a silent peer (both a handshake timeout: a serial line carries no
hang-up), garbage and a stall in mid-frame (the UART transport's -1 paths). Every subprocess runs under a timeout; gateways and QEMU
are stopped by their own PIDs.

Run:  scripts/setup-python.sh && scripts/setup-qemu.sh && \
      .venv-interop/v2/bin/python -m pytest tests/stm32 -q -rA
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/gateway_harness.py, shared with tests/interop
from gateway_harness import (  # noqa: E402
    VERSIONS, Gateway, ensure_venvs, gateways, new_run_dir, node_dir, print_results, run_build)
from qemu_harness import QemuRun, find_qemu, run_qemu  # noqa: E402

EXAMPLE = REPO / "examples" / "stm32_uart"
BUILD_ROOT = Path(os.environ.get("USMP_STM32_BUILD")
                  or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "stm32"))

PSK = "usmp-stm32-psk-0123456789abcdef"
WRONG_PSK = "usmp-stm32-WRONG-psk-9876543210"

BUILD_TIMEOUT_S = 900.0      # a cold build compiles the Rust core
QEMU_TIMEOUT_S = 40.0        # one firmware run: ~2 s when healthy, ~12 s for the timeout case

# What the firmware sends, in order (main.c): a 35-byte text, then 1, 452, 453, 1000, 1808,
# then 64 after the keepalive.
EXPECTED_LENS = [35, 1, 452, 453, 1000, 1808, 64]
EXPECTED_FRAGS = 0 + 0 + 0 + 1 + 2 + 3 + 0   # DATA_FRAG frames (453 -> 2 frames, 1000 -> 3, 1808 -> 4)

RESULTS: list[str] = []


# --------------------------------------------------------------------------- environment

@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="session")
def qemu() -> Path:
    return find_qemu("netduinoplus2")


class Firmware:
    """Builds the firmware once per (wire version, emulator) with CMake and the example's
    toolchain file. The tests run the EMULATOR build; the hardware build (RNG peripheral,
    real unique id, PLL setup, console on USART2) is built for its size and checked for
    leftovers of the emulator build."""

    def __init__(self) -> None:
        self._built: dict[tuple[int, bool, str], Path] = {}
        self.build_seconds: dict[tuple[int, bool, str], float] = {}

    def elf(self, wire: int, emulator: bool = True, framing: str = "raw") -> Path:
        """The firmware; framing "raw" (frames on USART1 as on TCP: these tests bridge it
        with QEMU's -serial tcp) or "cobs" (tests/stm32/test_stm32_bridge.py)."""
        key = (wire, emulator, framing)
        if key in self._built:
            return self._built[key]
        for tool in ("cmake", "arm-none-eabi-gcc"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} not found (scripts/setup.sh installs it)")
        bdir = BUILD_ROOT / ((f"v{wire}" if emulator else f"hw-v{wire}")
                             + ("" if framing == "raw" else f"-{framing}"))
        bdir.mkdir(parents=True, exist_ok=True)
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        steps = [["cmake", "-S", str(EXAMPLE), "-B", str(bdir), *gen,
                  f"-DCMAKE_TOOLCHAIN_FILE={EXAMPLE / 'cmake' / 'arm-none-eabi.cmake'}",
                  f"-DUSMP_STM32_EMULATOR={'ON' if emulator else 'OFF'}",
                  f"-DUSMP_STM32_WIRE={wire}", f"-DUSMP_STM32_PSK={PSK}",
                  f"-DUSMP_STM32_FRAMING={framing}",
                  "-DUSMP_STM32_KEEPALIVE_MS=1000"],
                 ["cmake", "--build", str(bdir)]]
        t0 = time.monotonic()
        run_build(steps, bdir / "build-output.log", BUILD_TIMEOUT_S)
        elf = bdir / "usmp_stm32_uart.elf"
        if not elf.exists():
            pytest.fail(f"{elf} was not produced")
        self.build_seconds[key] = time.monotonic() - t0
        self._built[key] = elf
        return elf


@pytest.fixture(scope="session")
def firmware() -> Firmware:
    return Firmware()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    yield new_run_dir(BUILD_ROOT / "runs")


# --------------------------------------------------------------------------- gateway

@pytest.fixture
def gateway(venvs: dict[str, Path], workdir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    # one gateway per test: gateway-<ver>.jsonl, no start count in the file names
    with gateways(venvs, node_dir(workdir, request.node.name), PSK, numbered=False) as make:
        yield make


# --------------------------------------------------------------------------- fake peers

class FakePeer:
    """A TCP listener on 127.0.0.1 that plays a broken gateway: `behave(conn)` runs on a thread."""

    def __init__(self, behave: Callable[["FakePeer", socket.socket], None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(QEMU_TIMEOUT_S)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self._behave = behave
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(QEMU_TIMEOUT_S)
            try:
                self._behave(self, conn)
                while True:  # keep reading until QEMU goes away
                    data = conn.recv(4096)
                    if not data:
                        break
                    self.received += data
            except OSError:
                pass

    def read_hello(self, conn: socket.socket) -> None:
        while len(self.received) < 12 + 38:  # HELLO: header + device id (6) + X25519 key (32)
            data = conn.recv(4096)
            if not data:
                return
            self.received += data

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------- QEMU

def run_firmware(qemu: Path, elf: Path, port: int, logdir: Path, name: str) -> QemuRun:
    return run_qemu(qemu, "netduinoplus2", elf, port, logdir, name, QEMU_TIMEOUT_S)


# --------------------------------------------------------------------------- tests

MATRIX = [("v1", 1), ("v2", 2)]


@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_quickstart(qemu: Path, firmware: Firmware, gateway: Callable[..., Gateway], ver: str, wire: int) -> None:
    elf = firmware.elf(wire)
    gw = gateway(ver)
    run = run_firmware(qemu, elf, gw.port, gw.workdir, f"quickstart-wire{wire}")
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}\n--- gateway log:\n{gw.tail(30)}"
    assert run.rc == 0, "firmware failed" + ctx
    assert "RESULT PASS" in run.out, ctx
    for s in ("port ok", "connect ok", "echo 1808 ok", "keepalive ok", "echo 64 ok", "bye ok"):
        assert run.step(s.split()[0]) and s in run.out, f"missing step '{s}'" + ctx

    # The gateway's side of the story: its log is written before the firmware sees a reply,
    # except the close, which may trail QEMU's exit by a little.
    deadline = time.monotonic() + 5
    while not [e for e in gw.events() if e["ev"] == "closed"] and time.monotonic() < deadline:
        time.sleep(0.05)
    evs = gw.events()
    opened = [e for e in evs if e["ev"] == "session_open"]
    assert len(opened) == 1, f"expected one session, got {opened}" + ctx
    sid = opened[0]["sid"]
    dev_id = opened[0]["device"].replace(":", "")
    assert f"device id {dev_id}" in run.out, f"gateway saw device {dev_id}" + ctx
    lens = [e["len"] for e in evs if e["ev"] == "message" and e["sid"] == sid]
    assert lens == EXPECTED_LENS, f"gateway received {lens}" + ctx
    frames = [e for e in evs if e["ev"] == "frame" and e["sid"] == sid]
    types = [f["type"] for f in frames]
    assert types.count("DATA_FRAG") == EXPECTED_FRAGS, types
    assert [f["seq"] for f in frames] == list(range(len(frames))), "gap in the device's sequence numbers"
    # the 1808-byte message: 3 DATA_FRAG + 1 DATA of 480 bytes each on the wire (452 + 28)
    i1808 = next(i for i, f in enumerate(frames) if f["type"] == "DATA_FRAG" and types[i:i + 4] ==
                 ["DATA_FRAG", "DATA_FRAG", "DATA_FRAG", "DATA"])
    assert [f["len"] for f in frames[i1808:i1808 + 4]] == [480] * 4, frames[i1808:i1808 + 4]
    pings = [i for i, t in enumerate(types) if t == "PING"]
    assert len(pings) == 1, f"expected exactly one keepalive PING, got {types}" + ctx
    assert pings[0] > i1808 + 3, "the PING came before the idle period"
    closed = [e for e in evs if e["ev"] == "closed" and e.get("sid") == sid]
    assert closed and closed[0]["reason"] == "Remote sent BYE" and closed[0]["exc"] == "ConnectionClosedError", \
        f"session did not end with the device's BYE: {closed}" + ctx
    assert closed[0]["last_frame"]["type"] == "BYE", closed
    stack = next((ln for ln in run.out.splitlines() if ln.startswith("stack:")), "")
    uart = next((ln for ln in run.out.splitlines() if ln.startswith("uart:")), "")
    RESULTS.append(f"quickstart wire v{wire} vs usmp {VERSIONS[ver]['usmp']}: exit {run.rc}, "
                   f"{run.seconds:.2f} s; gateway: messages {lens}, {len(frames)} frames "
                   f"({types.count('DATA_FRAG')} DATA_FRAG), PING x{len(pings)}, closed "
                   f"'{closed[0]['reason']}'; {stack}; {uart}")


@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_wrong_psk(qemu: Path, firmware: Firmware, gateway: Callable[..., Gateway], ver: str, wire: int) -> None:
    """The gateway refuses the PSK and hangs up. A serial line carries no hang-up: the
    device cannot tell it from silence, so usmp_connect ends with USMP_ERR_TIMEOUT after
    USMP_HANDSHAKE_TIMEOUT_MS (on TCP the same refusal is USMP_ERR_AUTH_FAILED at once)."""
    elf = firmware.elf(wire)
    gw = gateway(ver, psk=WRONG_PSK)
    run = run_firmware(qemu, elf, gw.port, gw.workdir, f"wrong-psk-wire{wire}")
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}\n--- gateway log:\n{gw.tail(30)}"
    assert run.rc == 1, ctx
    assert "STEP connect FAILED: -4 (USMP_ERR_TIMEOUT)" in run.out, ctx
    assert "uart: tx 2 frames" in run.out, "HELLO and HELLO_ACK should have gone out" + ctx
    assert run.seconds >= 9.5, f"gave up after {run.seconds:.2f} s, before USMP_HANDSHAKE_TIMEOUT_MS"
    evs = gw.events()
    assert not [e for e in evs if e["ev"] == "session_open"], ctx
    assert [e for e in evs if e["ev"] == "lib" and "hmac" in e["msg"].lower()], \
        "the gateway did not log the HMAC failure" + ctx
    RESULTS.append(f"wrong PSK wire v{wire}: exit {run.rc}, gateway logged the HMAC failure, "
                   f"{run.step('connect')}, {run.seconds:.2f} s")


def test_silent_peer(qemu: Path, firmware: Firmware, workdir: Path) -> None:
    """Nothing ever comes back: recv returns 0 each receive timeout, usmp_connect gives up."""
    elf = firmware.elf(2)
    peer = FakePeer(lambda peer, conn: None)
    try:
        run = run_firmware(qemu, elf, peer.port, workdir, "silent-peer")
    finally:
        peer.close()
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}"
    assert run.rc == 1, ctx
    assert "STEP connect FAILED: -4 (USMP_ERR_TIMEOUT)" in run.out, ctx
    assert peer.received[:2] == b"\xcd\xab" and peer.received[3] == 0x01, "no HELLO on the wire"
    assert "stalls 0, failures 0" in run.out, ctx
    RESULTS.append(f"silent peer: exit {run.rc}, {run.step('connect')}, {run.seconds:.2f} s")


def _garbage(peer: FakePeer, conn: socket.socket) -> None:
    peer.read_hello(conn)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def _stall(peer: FakePeer, conn: socket.socket) -> None:
    peer.read_hello(conn)
    # A CHALLENGE header (magic CD AB, v2, type 2, seq 0) that promises 64 bytes, then 10.
    hdr = bytes([0xCD, 0xAB, 0x02, 0x02, 0, 0, 0, 0, 64, 0, 0, 0])
    conn.sendall(hdr + bytes(10))


@pytest.mark.parametrize("case", ["garbage", "stall"])
def test_broken_stream(qemu: Path, firmware: Firmware, workdir: Path, case: str) -> None:
    """The UART transport's -1 paths: a header usmp_frame_size refuses, a stall mid-frame."""
    elf = firmware.elf(2)
    peer = FakePeer(_garbage if case == "garbage" else _stall)
    try:
        run = run_firmware(qemu, elf, peer.port, workdir, f"broken-{case}")
    finally:
        peer.close()
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}"
    assert run.rc == 1, ctx
    # The stream broke before CHALLENGE was complete: the library reports the refusal.
    assert "STEP connect FAILED: -17 (USMP_ERR_REJECTED)" in run.out, ctx
    want = "stalls 1, failures 1" if case == "stall" else "stalls 0, failures 1"
    assert want in run.out, ctx
    if case == "stall":
        assert run.seconds >= 1.9, f"gave up after {run.seconds:.2f} s, before USMP_UART_STALL_MS"
    RESULTS.append(f"broken stream ({case}): exit {run.rc}, {run.step('connect')}, {run.seconds:.2f} s")


def test_size_report(firmware: Firmware, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("stm32_size_report", EXAMPLE / "size_report.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lines = []
    for wire, emulator in ((2, False), (2, True), (1, True)):
        elf = firmware.elf(wire, emulator)
        text, fig = mod.report(elf)
        kind = "EMULATOR" if emulator else "hardware"
        lines.append(f"[{kind} build, wire v{wire}: {elf}]\n{text}")
        assert 0 < fig["lib_flash"] < fig["flash"], fig
        assert fig["flash"] < 64 * 1024, f"firmware grew past 64 KiB of flash: {fig['flash']}"
        assert fig["ram_static"] < 16 * 1024, f"static RAM above 16 KiB: {fig['ram_static']}"
        # USMP_LIBC_MEM (on by default, newlib-nano here): the core's memcpy/memclr/memset/
        # memcmp are newlib's (strong, nm T), not compiler_builtins' weak copies (W).
        syms = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,
                              timeout=60, check=True).stdout
        for name in ("__aeabi_memcpy", "__aeabi_memclr", "__aeabi_memset", "memcmp"):
            assert f" T {name}\n" in syms, f"{name} is not newlib's (USMP_LIBC_MEM)"
        assert "compiler_builtins3mem6memcpy" not in syms, "compiler_builtins' memcpy linked"
        if not emulator:
            # Semihosting (BKPT 0xAB) faults on a board without a debugger: none of it may
            # be left in the hardware build, nor the emulator's stand-ins.
            dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True,
                                 text=True, timeout=120, check=True).stdout
            assert "bkpt" not in dis, "semihosting left in the hardware build"
            assert " usmp_port_random" in syms and "sh_call" not in syms, \
                "the hardware build must take its entropy from the RNG, not over semihosting"
    report = "\n".join(lines)
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    (BUILD_ROOT / "size-report.txt").write_text(report + "\n")
    with capsys.disabled():
        print("\nSTM32F405 firmware size (also in " + str(BUILD_ROOT / "size-report.txt") + "):\n" + report)


@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    print_results(request, RESULTS, BUILD_ROOT / "stm32-results.txt", "stm32 results")
