"""The STM32 firmware (examples/stm32_uart) on the library's UART transport, through the
host tool's serial bridge — what a board on /dev/ttyUSB0 does, with a pty for the cable:

    firmware (C + libusmp.a: usmp_transport_uart_init) -> USART1 -> QEMU -serial pty
        -> usmp bridge --serial /dev/pts/N -> gateway (the REAL usmp from PyPI)

  COBS framing (the default build) to usmp 1.2.2 over UDP: the whole quickstart, the
      gateway's log agrees message by message;
  raw framing (USMP_STM32_FRAMING=raw) with `usmp bridge --raw` to usmp 1.2.2 over TCP;
  noise: the bridge damages, drops and inserts bytes on the serial side at a fixed seed
      (--noise), at least 1 % of the frames on the line are hit, and the quickstart still
      completes with every message delivered exactly once.

Also the flash the UART framing costs: the COBS and raw builds side by side.

Run:  .venv-interop/v2/bin/python -m pytest tests/stm32/test_stm32_bridge.py -q -rA
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the shared harnesses
sys.path.insert(0, str(HERE))
from gateway_harness import Gateway, ensure_venvs, gateways, node_dir, print_results  # noqa: E402
from qemu_harness import QemuRun, find_qemu  # noqa: E402
from serial_harness import BridgeProc, QemuPty, usmp_cli  # noqa: E402
from test_stm32 import BUILD_ROOT, EXPECTED_LENS, PSK, QEMU_TIMEOUT_S, Firmware  # noqa: E402

RESULTS: list[str] = []


@pytest.fixture(scope="module")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="module")
def qemu() -> Path:
    return find_qemu("netduinoplus2")


@pytest.fixture(scope="module")
def fw() -> Firmware:
    return Firmware()


@pytest.fixture(scope="module")
def cli() -> Path:
    return usmp_cli()


@pytest.fixture(scope="module")
def rundir() -> Path:
    from gateway_harness import new_run_dir
    return new_run_dir(BUILD_ROOT / "bridge-runs")


@pytest.fixture
def gateway(venvs: dict[str, Path], rundir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    with gateways(venvs, node_dir(rundir, request.node.name), PSK, numbered=False) as make:
        yield make


def run_through_bridge(qemu: Path, elf: Path, gw: Gateway, bridge_args: list[str], name: str) -> tuple[QemuRun, dict]:
    """The firmware on a pty, the bridge between that pty and the gateway; the firmware's
    run and the bridge's final counters."""
    vm = QemuPty(qemu, "netduinoplus2", elf, gw.workdir, name)
    try:
        br = BridgeProc(["--serial", vm.pty, "--gateway", f"127.0.0.1:{gw.port}", *bridge_args],
                        gw.workdir, name)
        try:
            vm.resume()
            run = vm.wait(QEMU_TIMEOUT_S)
        finally:
            counters = br.stop()
    finally:
        vm.kill()
    return run, counters


def wait_closed(gw: Gateway) -> list[dict]:
    deadline = time.monotonic() + 5
    while not [e for e in gw.events() if e["ev"] == "closed"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return gw.events()


def check_session(run: QemuRun, gw: Gateway, counters: dict) -> str:
    """The quickstart passed, and the gateway saw it the same way: one session, each
    message once and in order, the device's BYE. Returns the context for messages."""
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}\n--- bridge: {counters}\n--- gateway:\n{gw.tail(30)}"
    assert run.rc == 0 and "RESULT PASS" in run.out, "firmware failed" + ctx
    for s in ("connect ok", "echo 1808 ok", "keepalive ok", "echo 64 ok", "bye ok"):
        assert s in run.out, f"missing step '{s}'" + ctx
    evs = wait_closed(gw)
    opened = [e for e in evs if e["ev"] == "session_open"]
    assert len(opened) == 1, f"expected one session, got {opened}" + ctx
    sid = opened[0]["sid"]
    lens = [e["len"] for e in evs if e["ev"] == "message" and e["sid"] == sid]
    assert lens == EXPECTED_LENS, f"gateway received {lens}, not each message exactly once" + ctx
    closed = [e for e in evs if e["ev"] == "closed" and e.get("sid") == sid]
    assert closed and closed[0]["reason"] == "Remote sent BYE", ctx
    assert counters.get("event") == "exit" and counters["frames_up"] > 0, ctx
    return ctx


def test_cobs_udp_quickstart(qemu: Path, fw: Firmware, cli: Path, gateway: Callable[..., Gateway]) -> None:
    elf = fw.elf(2, framing="cobs")
    gw = gateway("v2", "udp")
    run, c = run_through_bridge(qemu, elf, gw, [], "cobs-udp")
    ctx = check_session(run, gw, c)
    assert "(COBS framing)" in run.out and "dropped 0" in run.out, ctx
    assert c["dropped"] == 0 and c["gateway_errors"] == 0, ctx
    # Every frame the firmware sent reached the gateway, and the other way round.
    uart = run.line("uart:")
    assert f"tx {c['frames_up']} frames" in uart and f"rx {c['frames_down']} frames" in uart, ctx
    RESULTS.append(f"COBS/UDP vs usmp 1.2.2: exit {run.rc}, {run.seconds:.2f} s; {uart}; {run.line('link:')}; "
                   f"{run.line('stack:')}; bridge {c['frames_up']} up / {c['frames_down']} down")


def test_raw_tcp_quickstart(qemu: Path, fw: Firmware, cli: Path, gateway: Callable[..., Gateway]) -> None:
    elf = fw.elf(2, framing="raw")
    gw = gateway("v2", "tcp")
    run, c = run_through_bridge(qemu, elf, gw, ["--raw"], "raw-tcp")
    ctx = check_session(run, gw, c)
    assert "(raw framing)" in run.out and c["dropped"] == 0 and c["gateway_connects"] == 1, ctx
    RESULTS.append(f"raw/TCP vs usmp 1.2.2: exit {run.rc}, {run.seconds:.2f} s; {run.line('uart:')}; "
                   f"{run.line('stack:')}; bridge {c['frames_up']} up / {c['frames_down']} down")


def test_noise(qemu: Path, fw: Firmware, cli: Path, gateway: Callable[..., Gateway]) -> None:
    """Line noise at a fixed seed: damaged, lost and extra bytes both ways."""
    elf = fw.elf(2, framing="cobs")
    gw = gateway("v2", "udp")
    run, c = run_through_bridge(qemu, elf, gw, ["--noise", "0.0005", "--noise-seed", "3"], "noise")
    ctx = check_session(run, gw, c)
    share = c["noise_frames"] / max(1, c["line_frames"])
    assert share >= 0.01, f"only {share:.1%} of the frames were damaged" + ctx
    link = run.line("link:")
    assert link and "retransmits 0," not in link, "nothing was retransmitted: the noise missed" + ctx
    RESULTS.append(f"noise 0.0005/byte (seed 3): {c['noise_frames']} of {c['line_frames']} frames on the line "
                   f"damaged ({share:.1%}), bridge dropped {c['dropped']}; firmware {run.line('uart:')}; "
                   f"{link}; quickstart passed in {run.seconds:.2f} s, gateway got each message once")


def test_framing_flash(fw: Firmware) -> None:
    """What the framing costs in the linked firmware (arm-none-eabi-size after
    --gc-sections): COBS (the transport plus the library's datagram mode) against raw."""
    sizes = {}
    for framing in ("raw", "cobs"):
        elf = fw.elf(2, framing=framing)
        out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True,
                             timeout=60, check=True).stdout.splitlines()[-1].split()
        sizes[framing] = int(out[0]) + int(out[1])
        nm = subprocess.run(["arm-none-eabi-nm", "-S", "-C", str(elf)], capture_output=True,
                            text=True, timeout=60, check=True).stdout
        uart = sum(int(ln.split()[1], 16) for ln in nm.splitlines()
                   if len(ln.split()) >= 4 and ln.split()[2] in "tT"
                   and ("usmp::uart::" in ln or "usmp::cobs::" in ln or "usmp_transport_uart" in ln))
        sizes[framing + "_uart_symbols"] = uart
        assert uart > 0, f"no UART transport in the {framing} build"
    RESULTS.append(f"flash (emulator build, wire v2): raw framing {sizes['raw']} B, COBS {sizes['cobs']} B "
                   f"(+{sizes['cobs'] - sizes['raw']} B); the UART transport's own functions "
                   f"{sizes['cobs_uart_symbols']} B")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    print_results(request, RESULTS, BUILD_ROOT / "stm32-bridge-results.txt", "stm32 bridge results")
