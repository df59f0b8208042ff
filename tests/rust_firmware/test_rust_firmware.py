"""The Rust API as firmware: examples/rust_firmware_mps2 (usmp::Client, no_std, no C) on an
emulated Cortex-M4F (QEMU's mps2-an386), its UART0 bridged over TCP to the REAL gateway
from PyPI.

    firmware (usmp::Client over Stream<Uart0>) -> UART0 -> QEMU -serial tcp:127.0.0.1:PORT -> gateway.py

Builds (cargo, thumbv7em-none-eabihf, release), one per wire version, in one target directory
$USMP_BUILD_DIR/rust_firmware/target (default build/rust_firmware/target): the settings are
compile-time environment variables (USMP_FW_WIRE, USMP_FW_PSK, USMP_FW_KEEPALIVE_MS) and the
example's build.rs makes cargo rebuild the firmware crate alone when they change. Each ELF is
copied to build/rust_firmware/usmp-rust-firmware-mps2-v<wire>.elf.
  v2: USMP_FW_WIRE=2 against usmp==1.2.2 (venv .venv-interop/v2)
  v1: USMP_FW_WIRE=1 against usmp==0.5.1 (venv .venv-interop/v1)
QEMU comes from $USMP_QEMU, else scripts/setup-qemu.sh (its Debian qemu-system-arm has the
mps2-an386 machine too).

The firmware prints its steps over semihosting and exits QEMU with its status (semihosting
SYS_EXIT_EXTENDED). The tests assert on that status and on the gateway's JSON event log: the
message lengths in order (1808 in 4 frames), the commands, the PINGs (ping() and the
keepalive), the PONG, the device's REKEY (v2), the BYE. The negative case is a wrong PSK:
over a serial line that is USMP_ERR_TIMEOUT after USMP_HANDSHAKE_TIMEOUT_MS (see
test_wrong_psk). Every subprocess runs under a timeout; gateways and QEMU are stopped by
their own PIDs.

Run:  scripts/setup-python.sh && scripts/setup-qemu.sh && \
      .venv-interop/v2/bin/python -m pytest tests/rust_firmware -q -rA
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
sys.path.insert(0, str(REPO / "tests"))  # tests/gateway_harness.py, shared with tests/interop
from gateway_harness import (  # noqa: E402
    VERSIONS, Gateway, ensure_venvs, gateways, new_run_dir, node_dir, run_build)
from qemu_harness import QemuRun, find_qemu, run_qemu  # noqa: E402

EXAMPLE = REPO / "examples" / "rust_firmware_mps2"
BIN = "usmp-rust-firmware-mps2"
TARGET = "thumbv7em-none-eabihf"
BUILD_ROOT = (Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "rust_firmware").resolve()

PSK = "usmp-rust-fw-psk-0123456789abcdef"
WRONG_PSK = "usmp-rust-fw-WRONG-psk-98765432"
KEEPALIVE_MS = 300
DEVICE_ID = "02:4d:50:53:32:01"  # the firmware's default (src/config.rs)

BUILD_TIMEOUT_S = 900.0      # a cold build compiles the crate and its dependencies
QEMU_TIMEOUT_S = 40.0        # one run: ~1 s when healthy, ~10 s for the handshake timeout
HANDSHAKE_TIMEOUT_S = 10.0   # usmp::HANDSHAKE_TIMEOUT_MS

# What the firmware sends (src/main.rs), commands aside: 1, 452, 453, 1000, 1808, then 700
# after the REKEYs.
EXPECTED_LENS = [1, 452, 453, 1000, 1808, 700]
EXPECTED_CMDS = ["cmd:rekey", "cmd:ping", "cmd:stats"]
EXPECTED_FRAGS = 0 + 0 + 1 + 2 + 3 + 1   # DATA_FRAG frames (453 -> 2 frames, ..., 700 -> 2)
STEPS = ["entropy ok", "connect ok", "echo 1 ok", "echo 452 ok", "echo 453 ok", "echo 1000 ok",
         "echo 1808 ok", "rekey ok", "echo 700 ok", "ping ok", "keepalive ok", "stats ok", "bye ok"]

RESULTS: list[str] = []


# --------------------------------------------------------------------------- environment

@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="session")
def qemu() -> Path:
    return find_qemu("mps2-an386")


class Firmware:
    """Builds the firmware once per wire version with cargo, in the example's directory (its
    .cargo/config.toml sets the target and the linker script)."""

    def __init__(self) -> None:
        self._built: dict[int, Path] = {}
        self.build_seconds: dict[int, float] = {}

    def elf(self, wire: int) -> Path:
        if wire in self._built:
            return self._built[wire]
        if shutil.which("cargo") is None:
            pytest.fail("cargo not found (scripts/setup.sh installs the Rust toolchain)")
        BUILD_ROOT.mkdir(parents=True, exist_ok=True)
        target_dir = BUILD_ROOT / "target"
        # run_build runs from the repository root; `env -C` runs cargo in the example, whose
        # .cargo/config.toml must apply, with the compile-time settings in its environment.
        cmd = ["env", "-C", str(EXAMPLE), f"USMP_FW_WIRE={wire}", f"USMP_FW_PSK={PSK}",
               f"USMP_FW_KEEPALIVE_MS={KEEPALIVE_MS}", "USMP_FW_DEVICE_ID=",
               "cargo", "build", "--release", "--locked", "--target-dir", str(target_dir)]
        t0 = time.monotonic()
        run_build([cmd], BUILD_ROOT / f"build-output-v{wire}.log", BUILD_TIMEOUT_S)
        built = target_dir / TARGET / "release" / BIN
        if not built.exists():
            pytest.fail(f"{built} was not produced")
        # The next build (other wire version) overwrites `built`: keep a copy per version.
        elf = BUILD_ROOT / f"{BIN}-v{wire}.elf"
        shutil.copyfile(built, elf)
        self.build_seconds[wire] = time.monotonic() - t0
        self._built[wire] = elf
        return elf


@pytest.fixture(scope="session")
def firmware() -> Firmware:
    return Firmware()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    yield new_run_dir(BUILD_ROOT / "runs")


@pytest.fixture
def gateway(venvs: dict[str, Path], workdir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    with gateways(venvs, node_dir(workdir, request.node.name), PSK, numbered=False) as make:
        yield make


# --------------------------------------------------------------------------- QEMU

def run_firmware(qemu: Path, elf: Path, port: int, logdir: Path, name: str) -> QemuRun:
    return run_qemu(qemu, "mps2-an386", elf, port, logdir, name, QEMU_TIMEOUT_S)


def wait_closed(gw: Gateway) -> None:
    """The gateway logs the close a little after QEMU exits (it reads BYE, then EOF)."""
    deadline = time.monotonic() + 5
    while not [e for e in gw.events() if e["ev"] == "closed"] and time.monotonic() < deadline:
        time.sleep(0.05)


def elf_size(elf: Path) -> tuple[int, int, int] | None:
    """(text, data, bss) of the ELF (Berkeley format), or None when no size tool is found."""
    for tool in ("arm-none-eabi-size", "llvm-size", "size"):
        if shutil.which(tool) is None:
            continue
        try:
            proc = subprocess.run([tool, str(elf)], capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            continue
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and len(lines) >= 2:
            text, data, bss = (int(x) for x in lines[1].split()[:3])
            return text, data, bss
    return None


# --------------------------------------------------------------------------- tests

MATRIX = [("v1", 1), ("v2", 2)]


@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_echo_session(qemu: Path, firmware: Firmware, gateway: Callable[..., Gateway], ver: str, wire: int) -> None:
    elf = firmware.elf(wire)
    gw = gateway(ver)
    run = run_firmware(qemu, elf, gw.port, gw.workdir, f"session-wire{wire}")
    wait_closed(gw)
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}\n--- gateway log:\n{gw.tail(30)}"
    assert run.rc == 0, "firmware failed" + ctx
    assert "RESULT PASS (exit 0" in run.out, ctx
    assert f"wire v{wire}," in run.line("usmp-rust-firmware-mps2"), ctx
    for s in STEPS:
        assert f"STEP {s}" in run.out, f"missing step '{s}'" + ctx

    evs = gw.events()
    opened = [e for e in evs if e["ev"] == "session_open"]
    assert len(opened) == 1, f"expected one session, got {opened}" + ctx
    sid = opened[0]["sid"]
    assert opened[0]["device"] == DEVICE_ID, opened[0]
    msgs = [e for e in evs if e["ev"] == "message" and e["sid"] == sid]
    lens = [e["len"] for e in msgs if not e.get("cmd")]
    cmds = [e["cmd"] for e in msgs if e.get("cmd")]
    assert lens == EXPECTED_LENS, f"gateway received {lens}" + ctx
    assert cmds == EXPECTED_CMDS, f"gateway received the commands {cmds}" + ctx

    frames = [e for e in evs if e["ev"] == "frame" and e["sid"] == sid]
    types = [f["type"] for f in frames]
    assert types.count("DATA_FRAG") == EXPECTED_FRAGS, types
    # the 1808-byte message: 3 DATA_FRAG + 1 DATA of 480 bytes each on the wire (452 + 28)
    i1808 = next((i for i in range(len(types)) if types[i:i + 4] ==
                  ["DATA_FRAG", "DATA_FRAG", "DATA_FRAG", "DATA"] and frames[i]["len"] == 480), None)
    assert i1808 is not None, types
    assert [f["len"] for f in frames[i1808:i1808 + 4]] == [480] * 4, frames[i1808:i1808 + 4]
    # ping() and the keepalive: two PINGs, the keepalive one after the gateway's PING was
    # answered (the PONG) and before cmd:stats (the last DATA frame before BYE).
    assert types.count("PING") == 2, f"expected 2 PINGs (ping, keepalive), got {types}" + ctx
    assert types.count("PONG") == 1, f"expected 1 PONG (to the gateway's PING), got {types}" + ctx
    last_ping = len(types) - 1 - types[::-1].index("PING")
    assert types.index("PONG") < last_ping < len(types) - 1, types
    stats = run.line("gateway: ")
    assert "pings=2 pongs=1" in stats, stats
    if wire == 2:
        # the device's REKEY, then the gateway's (cmd:rekey), then the 700-byte echo
        assert types.count("REKEY") == 1, f"expected the device's REKEY, got {types}" + ctx
        assert [e for e in evs if e["ev"] == "rekey_sent" and e["sid"] == sid], "no gateway REKEY" + ctx
        assert "rekeys=1" in stats, stats
        i_rekey = types.index("REKEY")
        assert i_rekey > i1808 + 3, "REKEY came before the echoes"
        assert frames[i_rekey + 1]["type"] == "DATA", frames[i_rekey:i_rekey + 2]  # cmd:rekey
        rekey_what = "device REKEY + gateway REKEY"
    else:
        assert "REKEY" not in types, types
        assert "USMP_ERR_UNSUPPORTED" in run.line("STEP rekey ok"), ctx
        assert [e for e in evs if e["ev"] == "reply" and e["text"] == "rekey-unsupported"], ctx
        rekey_what = "REKEY refused on both sides (v1)"

    closed = [e for e in evs if e["ev"] == "closed" and e.get("sid") == sid]
    assert closed and closed[0]["reason"] == "Remote sent BYE" and closed[0]["exc"] == "ConnectionClosedError", \
        f"session did not end with the device's BYE: {closed}" + ctx
    assert closed[0]["last_frame"]["type"] == "BYE", closed

    RESULTS.append(f"session wire v{wire} vs usmp {VERSIONS[ver]['usmp']}: exit {run.rc}, "
                   f"{run.seconds:.2f} s in QEMU; gateway: messages {lens}, commands {len(cmds)}, "
                   f"{len(frames)} frames ({types.count('DATA_FRAG')} DATA_FRAG), PING x2, PONG x1, "
                   f"{rekey_what}, closed '{closed[0]['reason']}'; {run.line('stack:')}; "
                   f"{run.line('uart:')}")


@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_wrong_psk(qemu: Path, firmware: Firmware, gateway: Callable[..., Gateway], ver: str, wire: int) -> None:
    """The gateway refuses the PSK (the HMAC of HELLO_ACK) and hangs up, without a word. Over
    TCP the client sees the hang-up and connect() returns USMP_ERR_AUTH_FAILED at once. A
    serial line carries no hang-up: QEMU's end of the TCP connection closes, the UART just
    stays silent, and the device cannot tell that from a slow gateway; so connect() keeps
    waiting for SESSION_OK and returns USMP_ERR_TIMEOUT after HANDSHAKE_TIMEOUT_MS (10 s).
    What must hold: a clean failure exit (1) naming the error, in bounded time, no hang."""
    elf = firmware.elf(wire)
    gw = gateway(ver, psk=WRONG_PSK)
    run = run_firmware(qemu, elf, gw.port, gw.workdir, f"wrong-psk-wire{wire}")
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}\n--- gateway log:\n{gw.tail(30)}"
    assert run.rc == 1, ctx
    failed = run.line("STEP connect FAILED")
    assert failed.startswith("STEP connect FAILED: -4 (USMP_ERR_TIMEOUT)"), ctx
    assert "RESULT FAIL (exit 1" in run.out, ctx
    assert HANDSHAKE_TIMEOUT_S - 0.5 <= run.seconds < HANDSHAKE_TIMEOUT_S + 10, \
        f"gave up after {run.seconds:.2f} s, expected about {HANDSHAKE_TIMEOUT_S:.0f} s" + ctx
    evs = gw.events()
    assert not [e for e in evs if e["ev"] == "session_open"], ctx
    assert [e for e in evs if e["ev"] == "lib" and "hmac" in e["msg"].lower()], \
        "the gateway did not log the HMAC failure" + ctx
    RESULTS.append(f"wrong PSK wire v{wire}: exit {run.rc}, gateway logged the HMAC failure, "
                   f"{failed}, {run.seconds:.2f} s")


# Budgets for the whole firmware (library, board support, console formatting), release:
# measured 48.7 KB flash and 7,756 B static RAM on 2026-11-27 (rustc 1.95); the budgets leave
# about 15 % for toolchain drift, so a real regression (a feature pulling in core::fmt floats,
# an accidental debug profile) fails here.
FLASH_BUDGET = 56 * 1024
RAM_BUDGET = 8 * 1024


def test_size_report(firmware: Firmware, capsys: pytest.CaptureFixture[str]) -> None:
    lines = []
    for wire in (1, 2):
        elf = firmware.elf(wire)
        size = elf_size(elf)
        assert size is not None, "no size tool found (arm-none-eabi-size, llvm-size, size): scripts/setup.sh installs one"
        text, data, bss = size
        assert text > 0, size
        assert text + data <= FLASH_BUDGET, f"wire v{wire}: flash {text + data} B over the {FLASH_BUDGET} B budget"
        assert data + bss <= RAM_BUDGET, f"wire v{wire}: static RAM {data + bss} B over the {RAM_BUDGET} B budget"
        lines.append(f"wire v{wire}: flash {text + data} B (text+rodata {text}, data {data}), "
                     f"static RAM {data + bss} B (data {data}, bss {bss}: 4096 B UART ring, "
                     f"2 x 1808 B message buffers)  [{elf}]")
    report = "\n".join(lines)
    (BUILD_ROOT / "size-report.txt").write_text(report + "\n")
    RESULTS.append("size: " + report.replace("\n", "\n      "))
    with capsys.disabled():
        print("\nRust firmware (mps2-an386) size:\n" + report)


@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest, firmware: Firmware) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    builds = ", ".join(f"v{w} {s:.1f} s" for w, s in sorted(firmware.build_seconds.items()))
    text = "\n".join(RESULTS + [f"builds: {builds}"])
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    (BUILD_ROOT / "rust-firmware-results.txt").write_text(text + "\n")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print("\nrust firmware results (also in " + str(BUILD_ROOT / "rust-firmware-results.txt") + "):\n" + text)
