"""The STM32 firmware as a bare-metal superloop (examples/stm32_uart/src/superloop_main.c,
usmp_stm32_superloop.elf: the non-blocking API usmp_nb_*) in QEMU against the REAL gateway
usmp 1.2.2, over the library's UART transport both ways:

  raw framing (a byte stream, USMP_TRANSPORT_BYTES) on QEMU's -serial tcp to the TCP port,
      with the instruction-counting TCG plugin (tools/qemu-insn) around every usmp_nb_poll;
  COBS framing (datagrams) on a pty, through `usmp bridge` to the UDP port.

Asserted: RESULT PASS (every echo byte for byte, the keepalive PING, usmp_nb_ping, the
gateway's PING answered, BYE); the gateway received each message exactly once and in order,
read the device's PINGs and its PONG, and closed on the device's BYE; the loop kept running
while the session worked (every message exchange took several loop turns, the heartbeat
kept its beat); no poll let the UART read hook wait. Printed: the longest usmp_nb_poll in
emulated time and (raw run) in instructions, loop turns, usmp_nb_t, stack; and the flash
and RAM of the superloop firmware next to the blocking one (size_report.py, map file).

Both firmwares come from the builds tests/stm32/test_stm32.py and test_stm32_bridge.py
make anyway (the superloop is a second executable of the same CMake project).

Run:  .venv-interop/v2/bin/python -m pytest tests/stm32/test_stm32_superloop.py -q -rA
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the shared harnesses
sys.path.insert(0, str(HERE))
from gateway_harness import Gateway  # noqa: E402
from qemu_harness import QemuRun, insn_plugin, run_qemu  # noqa: E402
from serial_harness import usmp_cli  # noqa: E402
from test_stm32 import BUILD_ROOT, EXAMPLE, EXPECTED_LENS, PSK, QEMU_TIMEOUT_S, Firmware  # noqa: E402
# The bridge test's fixtures (a gateway per test, QEMU, the firmware builds) serve here too.
from test_stm32_bridge import fw, gateway, qemu, rundir, venvs  # noqa: E402,F401
from test_stm32_bridge import run_through_bridge, wait_closed  # noqa: E402

STEPS = ["connect", "echo 35", "echo 1", "echo 452", "echo 453", "echo 1000", "echo 1808",
         "keepalive", "ping", "gateway-ping", "echo 64", "bye"]
EXCHANGES = [s for s in STEPS if s.startswith("echo") or s == "gateway-ping"]
# Each message exchange waits for bytes from the gateway: a loop that kept turning while
# it did so shows it by the turns. Seen: 40 to 2,000 per exchange (a received byte or the
# 1 ms tick wakes the loop from WFI); a loop stuck inside a call would count 1.
MIN_TURNS_PER_EXCHANGE = 10
# A poll that waited for the line would take the UART transport's receive timeout (50 ms)
# or its stall limit (2 s); the handshake's X25519 takes a few ms in QEMU. Emulated time
# follows the host's clock, so the bound is loose; the exact check is the read hook's count.
MAX_POLL_MS = 1000

RESULTS: list[str] = []


def superloop_elf(fw: Firmware, framing: str) -> Path:
    return superloop_elf_of(fw.elf(2, framing=framing))


def superloop_elf_of(blocking: Path) -> Path:
    """The superloop firmware of the build that made `blocking` (usmp_stm32_uart.elf)."""
    elf = blocking.with_name("usmp_stm32_superloop.elf")
    if not elf.exists():
        pytest.fail(f"{elf} was not built (USMP_STM32_SUPERLOOP is ON by default)")
    return elf


def symbol(elf: Path, name: str) -> int:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    pytest.fail(f"no symbol {name} in {elf}")


def number(text: str, pattern: str) -> int:
    m = re.search(pattern, text)
    assert m, f"'{pattern}' not in the firmware's output"
    return int(m.group(1))


def check_run(run: QemuRun, gw: Gateway, tcp: bool, extra: str = "") -> tuple[str, dict[str, int]]:
    """The superloop passed, the gateway saw the same session, the loop kept turning.
    Returns the context for messages and the loop's figures."""
    ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}{extra}\n--- gateway:\n{gw.tail(30)}"
    assert run.rc == 0 and "RESULT PASS" in run.out, "firmware failed" + ctx
    for s in STEPS:
        assert run.step(s).startswith(f"STEP {s} ok"), f"missing step '{s}'" + ctx

    evs = wait_closed(gw)
    opened = [e for e in evs if e["ev"] == "session_open"]
    assert len(opened) == 1, f"expected one session, got {opened}" + ctx
    sid = opened[0]["sid"]
    msgs = [e for e in evs if e["ev"] == "message" and e["sid"] == sid]
    lens = [e["len"] for e in msgs if not e.get("cmd")]
    assert lens == EXPECTED_LENS, f"gateway received {lens}, not each message exactly once" + ctx
    assert [e["cmd"] for e in msgs if e.get("cmd")] == ["cmd:ping"], ctx
    assert len([e for e in evs if e["ev"] == "ping_sent" and e["sid"] == sid]) == 1, ctx
    frames = [e for e in evs if e["ev"] == "frame" and e["sid"] == sid]
    types = [f["type"] for f in frames]
    # The keepalive's PING and usmp_nb_ping's (one more keepalive may fall in between), and
    # the PONG to the gateway's PING.
    assert types.count("PING") >= 2 and types.count("PONG") == 1, types
    if tcp:
        assert [f["seq"] for f in frames] == list(range(len(frames))), "gap in the device's sequence numbers"
    closed = [e for e in evs if e["ev"] == "closed" and e.get("sid") == sid]
    assert closed and closed[0]["reason"] == "Remote sent BYE", f"no BYE: {closed}" + ctx

    turns = {s: number(run.out, rf"STEP {s} ok \(.*?(\d+) loop turns\)") for s in EXCHANGES}
    few = {s: n for s, n in turns.items() if n < MIN_TURNS_PER_EXCHANGE}
    assert not few, f"the loop stood still during {few}" + ctx
    fig = {
        "turns": number(run.out, r"superloop: (\d+) turns"),
        "ms": number(run.out, r"superloop: \d+ turns in (\d+) ms"),
        "beats": number(run.out, r"heartbeat every 10 ms: (\d+) beats"),
        "late_ms": number(run.out, r"beats, at most (\d+) ms late"),
        "poll_cycles": number(run.out, r"longest usmp_nb_poll (\d+) cycles"),
        "poll_us": number(run.out, r"longest usmp_nb_poll \d+ cycles = (\d+) us"),
        "poll_at": number(run.out, r"\(poll #(\d+),"),
        "polls": number(run.out, r"(\d+) polls"),
        "reads": number(run.out, r"read hook was called (\d+) times"),
        "waits": number(run.out, r"(\d+) of them allowed to wait"),
        "nb_size": number(run.out, r"sizeof usmp_nb_t (\d+)"),
        "stack": number(run.out, r"stack: (\d+) of"),
    }
    # The heartbeat kept its beat: missed beats are not made up, so a stalled loop loses them.
    assert fig["beats"] >= fig["ms"] // 10 * 0.9, f"heartbeats lost: {fig}" + ctx
    assert fig["reads"] > fig["polls"] and fig["waits"] == 0, \
        f"a poll let the UART read hook wait: {fig}" + ctx
    assert fig["poll_us"] < MAX_POLL_MS * 1000, f"a poll took {fig['poll_us']} us" + ctx
    return ctx, fig


def summary(name: str, run: QemuRun, fig: dict[str, int]) -> str:
    turns_1808 = number(run.out, r"STEP echo 1808 ok \(.*?(\d+) loop turns\)")
    return (f"{name}: exit {run.rc}, {run.seconds:.2f} s; {fig['turns']} loop turns in "
            f"{fig['ms']} ms, {fig['polls']} polls, {fig['beats']} heartbeats (at most "
            f"{fig['late_ms']} ms late), echo 1808 during {turns_1808} turns; longest "
            f"usmp_nb_poll {fig['poll_cycles']} cycles = {fig['poll_us']} us emulated time "
            f"(poll #{fig['poll_at']}); read hook {fig['reads']} calls, {fig['waits']} waiting; "
            f"usmp_nb_t {fig['nb_size']} B; {run.line('stack:')}")


def test_raw_tcp_superloop(qemu: Path, fw: Firmware, gateway: Callable[..., Gateway]) -> None:
    elf = superloop_elf(fw, "raw")
    gw = gateway("v2", "tcp")
    plugin = insn_plugin(BUILD_ROOT / "plugin")
    insn_file = gw.workdir / "superloop-polls.insn.txt"
    begin, end = symbol(elf, "superloop_poll_begin"), symbol(elf, "superloop_poll_end")
    extra = ("-plugin", f"{plugin},begin={begin:#x},end={end:#x},out={insn_file}")
    run = run_qemu(qemu, "netduinoplus2", elf, gw.port, gw.workdir, "superloop-raw-tcp",
                   QEMU_TIMEOUT_S, extra)
    ctx, fig = check_run(run, gw, tcp=True)
    assert "(raw framing)" in run.out and "stalls 0, failures 0" in run.out, ctx
    # Instructions (the plugin: region 0 = usmp_nb_connect, region i + 1 = poll i; interrupts
    # taken meanwhile count with it).
    regions = [int(m.group(1)) for m in re.finditer(r"^region \d+ insns=(\d+)$", insn_file.read_text(), re.M)]
    connect, insns = regions[0], regions[1:]
    assert len(insns) == fig["polls"], f"{len(insns)} regions for {fig['polls']} polls"
    top = max(range(len(insns)), key=lambda i: insns[i])
    idle = sorted(insns)[len(insns) // 2]
    RESULTS.append(summary("raw/TCP vs usmp 1.2.2", run, fig)
                   + f"; instructions: usmp_nb_connect {connect:,}, usmp_nb_poll longest "
                   f"{insns[top]:,} (poll #{top}), median {idle:,}, all polls {sum(insns):,}")


def test_cobs_udp_superloop(qemu: Path, fw: Firmware, gateway: Callable[..., Gateway]) -> None:
    usmp_cli()  # the bridge
    elf = superloop_elf(fw, "cobs")
    gw = gateway("v2", "udp")
    run, c = run_through_bridge(qemu, elf, gw, [], "superloop-cobs-udp")
    ctx, fig = check_run(run, gw, tcp=False, extra=f"\n--- bridge: {c}")
    assert "(COBS framing)" in run.out and c.get("event") == "exit", ctx
    assert c["dropped"] == 0 and c["gateway_errors"] == 0, ctx
    # Every frame the firmware sent reached the gateway, and it read all but perhaps the
    # gateway's acknowledgement of the BYE (usmp_nb_close does not wait for it).
    uart = run.line("uart:")
    rx = number(uart, r"rx (\d+) frames")
    assert f"tx {c['frames_up']} frames" in uart and c["frames_down"] - rx in (0, 1), ctx
    RESULTS.append(summary("COBS/UDP (usmp bridge) vs usmp 1.2.2", run, fig)
                   + f"; {run.line('link:')}")


def test_superloop_size(fw: Firmware) -> None:
    """Flash and RAM of the superloop firmware against the blocking one (same build, same
    framing), from arm-none-eabi-size and the map (examples/stm32_uart/size_report.py)."""
    spec = importlib.util.spec_from_file_location("stm32_size_report", EXAMPLE / "size_report.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for emulator in (False, True):
        blocking = fw.elf(2, emulator=emulator)
        _, b = mod.report(blocking)
        text, sl = mod.report(superloop_elf_of(blocking))
        assert 0 < sl["lib_flash"] < sl["flash"] < 64 * 1024, sl
        assert sl["ram_static"] < 16 * 1024, sl
        kind = "EMULATOR" if emulator else "hardware"
        RESULTS.append(f"size ({kind} build, wire v2, raw framing): superloop flash {sl['flash']} B "
                       f"(library {sl['lib_flash']} B), static RAM {sl['ram_static']} B; blocking "
                       f"firmware flash {b['flash']} B (library {b['lib_flash']} B), static RAM "
                       f"{b['ram_static']} B; difference flash {sl['flash'] - b['flash']:+} B "
                       f"(library {sl['lib_flash'] - b['lib_flash']:+} B), RAM "
                       f"{sl['ram_static'] - b['ram_static']:+} B\n{text}")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    if not RESULTS:
        return
    text = "\n".join(RESULTS) + f"\n(module run time {time.monotonic() - t0:.1f} s)"
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    (BUILD_ROOT / "stm32-superloop-results.txt").write_text(text + "\n")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print("\nstm32 superloop results (also in " + str(BUILD_ROOT / "stm32-superloop-results.txt")
                  + "):\n" + text)
