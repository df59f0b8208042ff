"""The `usmp` host tool (cli/) against the REAL gateways from PyPI, on 127.0.0.1:

  usmp connect --echo-test   v1 (usmp 0.5.1) and v2 (usmp 1.2.2), TCP and UDP;
                             a wrong PSK fails with exit status 1 and a named error;
  usmp keygen                its key, given to the gateway (--psk-hex), carries a session;
  usmp bridge --pty          `usmp connect --serial` (usmp::uart::CobsUart over a real pty)
                             through the bridge to the UDP gateway, and raw frames to the
                             TCP gateway; the bridge outlives a gateway restart (UDP and
                             TCP) and a device that stops in mid-frame (COBS and raw);
                             with --noise (>= 1 % of the frames damaged at a fixed seed)
                             every message still arrives exactly once;
  examples/posix_echo        the C UART transport on a POSIX serial port (usmp_uart_posix_open)
                             through the bridge.

Run:  .venv-interop/v2/bin/python -m pytest tests/cli -q -rA     (about 30 s after the build)
"""

from __future__ import annotations

import json
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
from gateway_harness import (Gateway, ensure_venvs, gateways, new_run_dir, node_dir, print_results,  # noqa: E402
                             run_build)
from serial_harness import CLI_BUILD, BridgeProc, cobs_encode, usmp_cli  # noqa: E402

PSK = "usmp-cli-test-psk-0123456789abcdef"
WRONG_PSK = "usmp-cli-test-WRONG-psk-98765432"
RUN_TIMEOUT_S = 90.0
RESULTS: list[str] = []


@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="session")
def cli() -> Path:
    return usmp_cli()


@pytest.fixture(scope="session")
def workdir() -> Path:
    return new_run_dir(CLI_BUILD / "runs")


@pytest.fixture
def gateway(venvs: dict[str, Path], workdir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    with gateways(venvs, node_dir(workdir, request.node.name), PSK) as make:
        yield make


def usmp(cli: Path, *args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def echo_test(cli: Path, target: list[str], n: int, *extra: str, psk: list[str] | None = None) -> dict:
    """`usmp --json connect <target> --echo-test n`: its final JSON line (asserts exit 0)."""
    r = usmp(cli, "--json", "-v", "connect", *target, *(psk or ["--psk", PSK]), "--echo-test", str(n), *extra)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["event"] == "echo_test" and last["sent"] == n and last["matched"] == n, last
    return last


def messages(gw: Gateway, timeout: float = 5.0) -> list[int]:
    """Lengths of the messages the gateway received, once its sessions have closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evs = gw.events()
        opened = {e["sid"] for e in evs if e["ev"] == "session_open"}
        closed = {e.get("sid") for e in evs if e["ev"] == "closed"}
        if opened and opened <= closed:
            break
        time.sleep(0.05)
    return [e["len"] for e in gw.events() if e["ev"] == "message"]


# --------------------------------------------------------------------------- connect

@pytest.mark.parametrize("ver,proto", [("v1", "tcp"), ("v1", "udp"), ("v2", "tcp"), ("v2", "udp")])
def test_echo_test(cli: Path, gateway: Callable[..., Gateway], ver: str, proto: str) -> None:
    gw = gateway(ver, proto)
    n = 40
    flags = (["--udp"] if proto == "udp" else []) + (["--v1"] if ver == "v1" else [])
    res = echo_test(cli, [f"127.0.0.1:{gw.port}", *flags], n)
    lens = messages(gw)
    assert len(lens) == n and 0 in lens and 1808 in lens, lens
    RESULTS.append(f"connect --echo-test {n} vs {ver}/{proto}: {res['matched']}/{n} in {res['seconds']} s, "
                   f"{res['bytes']} bytes; gateway got {len(lens)} messages (0..1808 B)")


def test_echo_test_wrong_psk(cli: Path, gateway: Callable[..., Gateway]) -> None:
    gw = gateway("v2", psk=WRONG_PSK)
    r = usmp(cli, "connect", f"127.0.0.1:{gw.port}", "--psk", PSK, "--echo-test", "3")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "connect: USMP_ERR_AUTH_FAILED (-3)" in r.stderr, r.stderr


def test_usage_errors(cli: Path) -> None:
    r = usmp(cli, "connect", "127.0.0.1:1", "--psk", "short", "--echo-test", "1")
    assert r.returncode == 2 and "at least 16" in r.stderr, r.stderr
    r = usmp(cli, "bridge", "--gateway", "127.0.0.1:9")
    assert r.returncode == 2 and "--serial" in r.stderr, r.stderr
    r = usmp(cli, "bridge", "--serial", "/dev/nonexistent-usmp-tty", "--gateway", "127.0.0.1:9")
    assert r.returncode == 3 and "nonexistent" in r.stderr, r.stderr


# --------------------------------------------------------------------------- keygen

def test_keygen_key_accepted(cli: Path, gateway: Callable[..., Gateway]) -> None:
    r = usmp(cli, "--json", "keygen")
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)["psk_hex"]
    assert len(key) == 64 and int(key, 16) >= 0
    again = json.loads(usmp(cli, "--json", "keygen").stdout)["psk_hex"]
    assert again != key, "two keys alike: not random"
    text = usmp(cli, "keygen").stdout
    c_bytes = [int(x, 16) for x in text.split("{", 1)[1].split("}", 1)[0].replace(",", " ").split()]
    assert len(c_bytes) == 32 and "cmake:     -DUSMP_STM32_PSK_HEX=" in text, text

    gw = gateway("v2", psk=key, psk_hex=True)
    res = echo_test(cli, [f"127.0.0.1:{gw.port}"], 5, psk=["--psk-hex", key])
    assert [e for e in gw.events() if e["ev"] == "session_open"], gw.tail()
    RESULTS.append(f"keygen key accepted by usmp 1.2.2: {res['matched']}/5 echoes")


# --------------------------------------------------------------------------- bridge

def test_serial_through_bridge(cli: Path, gateway: Callable[..., Gateway], workdir: Path) -> None:
    """COBS over a real pty: usmp::uart::CobsUart <-> bridge <-> UDP gateway."""
    gw = gateway("v2", "udp")
    br = BridgeProc(["--pty", "--gateway", f"127.0.0.1:{gw.port}"], workdir, "cobs")
    try:
        res = echo_test(cli, ["--serial", br.pty or ""], 40)
    finally:
        c = br.stop()
    assert c["dropped"] == 0 and c["frames_up"] > 0 and c["frames_up"] == c["frames_down"], c
    assert len(messages(gw)) == 40
    RESULTS.append(f"connect --serial (COBS) via bridge --pty to v2/udp: 40/40 in {res['seconds']} s; "
                   f"bridge: {c['frames_up']} frames up, {c['frames_down']} down")


def test_raw_serial_through_bridge(cli: Path, gateway: Callable[..., Gateway], workdir: Path) -> None:
    gw = gateway("v2", "tcp")
    br = BridgeProc(["--pty", "--raw", "--gateway", f"127.0.0.1:{gw.port}"], workdir, "raw")
    try:
        echo_test(cli, ["--serial", br.pty or "", "--raw"], 20)
    finally:
        c = br.stop()
    assert c["dropped"] == 0 and c["gateway_connects"] == 1, c
    assert len(messages(gw)) == 20


@pytest.mark.parametrize("raw", [False, True], ids=["cobs-udp", "raw-tcp"])
def test_bridge_survives_gateway_restart(cli: Path, gateway: Callable[..., Gateway], workdir: Path, raw: bool) -> None:
    gw = gateway("v2", "tcp" if raw else "udp")
    mode = ["--raw"] if raw else []
    br = BridgeProc(["--pty", *mode, "--gateway", f"127.0.0.1:{gw.port}"], workdir, f"restart-{raw}")
    try:
        echo_test(cli, ["--serial", br.pty or "", *mode], 5)
        gw.kill()  # a crash
        # A device that tries while nobody is there: its handshake goes nowhere (stopped
        # after 1.5 s, long before its own 10 s handshake timeout).
        with pytest.raises(subprocess.TimeoutExpired):
            usmp(cli, "connect", "--serial", br.pty or "", *mode, "--psk", PSK, "--echo-test", "1",
                 timeout=1.5)
        gw.start(port=gw.port)
        echo_test(cli, ["--serial", br.pty or "", *mode], 5)
    finally:
        c = br.stop()
    assert br.proc.returncode == 0, br.log()
    if raw:
        assert c["gateway_connects"] >= 2, c
    else:
        assert c["gateway_errors"] >= 1, c  # the datagrams of the attempt while it was down
    RESULTS.append(f"bridge ({'raw/tcp' if raw else 'cobs/udp'}) across a gateway restart: {c}")


@pytest.mark.parametrize("raw", [False, True], ids=["cobs", "raw"])
def test_bridge_survives_reset_mid_frame(cli: Path, gateway: Callable[..., Gateway], workdir: Path, raw: bool) -> None:
    """A device that stops in the middle of a frame (a reset), then starts afresh."""
    gw = gateway("v2", "tcp" if raw else "udp")
    mode = ["--raw", "--frame-gap-ms", "300"] if raw else []
    br = BridgeProc(["--pty", *mode, "--gateway", f"127.0.0.1:{gw.port}"], workdir, f"reset-{raw}")
    try:
        fd = os.open(br.pty or "", os.O_RDWR | os.O_NOCTTY)
        if raw:
            # A DATA header that promises 200 bytes, and 40 of them.
            os.write(fd, bytes([0xCD, 0xAB, 2, 5, 0, 0, 0, 0, 200, 0, 0x12, 0x34]) + bytes(range(1, 41)))
        else:
            os.write(fd, cobs_encode(bytes(range(1, 201)))[:60])  # no closing delimiter
        os.close(fd)
        time.sleep(0.6)
        echo_test(cli, ["--serial", br.pty or "", *(["--raw"] if raw else [])], 5)
    finally:
        c = br.stop()
    assert c["dropped"] >= 1, c
    assert len(messages(gw)) == 5


def posix_echo() -> Path:
    """examples/posix_echo: the one the C test step built (scripts/test.sh), else built here."""
    built = Path(os.environ.get("USMP_BUILD_DIR") or str(REPO / "build")) / "ctest" / "examples" / "posix_echo" / "posix_echo"
    if built.exists():
        return built
    bdir = CLI_BUILD / "posix_echo"
    bdir.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run_build([["cmake", "-S", str(REPO / "examples" / "posix_echo"), "-B", str(bdir), *gen],
               ["cmake", "--build", str(bdir), "--target", "posix_echo"]], bdir / "build-output.log", 900.0)
    return bdir / "posix_echo"


def test_posix_c_device_through_bridge(cli: Path, gateway: Callable[..., Gateway], workdir: Path) -> None:
    """The C side on a POSIX serial port: posix_echo over usmp_uart_posix_open and
    usmp_transport_uart_init (COBS), through the bridge, to the UDP gateway."""
    exe = posix_echo()
    gw = gateway("v2", "udp")
    br = BridgeProc(["--pty", "--gateway", f"127.0.0.1:{gw.port}"], workdir, "posix")
    try:
        r = subprocess.run([str(exe), br.pty or "", "115200", PSK, "v2", "6"], capture_output=True,
                           text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    finally:
        c = br.stop()
    assert r.returncode == 0 and "6/6 echoes matched" in r.stdout, f"{r.stdout}\n{r.stderr}"
    uart = next(ln for ln in r.stdout.splitlines() if ln.startswith("uart:"))
    assert f"tx {c['frames_up']} frames" in uart and "dropped 0" in uart, (uart, c)
    assert len(messages(gw)) == 6
    RESULTS.append(f"posix_echo (C, usmp_uart_posix_open, COBS) via bridge --pty to v2/udp: 6/6; {uart}")


def test_noise(cli: Path, gateway: Callable[..., Gateway], workdir: Path) -> None:
    """Damaged, lost and extra bytes on the line (both ways): the session completes and
    the gateway gets every message exactly once."""
    gw = gateway("v2", "udp")
    n = 60
    br = BridgeProc(["--pty", "--gateway", f"127.0.0.1:{gw.port}", "--noise", "0.0003",
                     "--noise-seed", "11"], workdir, "noise")
    try:
        res = echo_test(cli, ["--serial", br.pty or ""], n)
    finally:
        c = br.stop()
    lens = messages(gw)
    assert len(lens) == n, f"the gateway got {len(lens)} messages for {n} sent"
    share = c["noise_frames"] / max(1, c["line_frames"])
    assert share >= 0.01 and c["dropped"] >= 1, c
    RESULTS.append(f"noise 0.0003/byte: {c['noise_frames']} of {c['line_frames']} line frames damaged "
                   f"({share:.1%}), {c['dropped']} dropped; {n}/{n} echoes in {res['seconds']} s, "
                   f"device retransmits {res['retransmits']}; gateway got each message once")


@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    print_results(request, RESULTS, CLI_BUILD / "cli-results.txt", "cli results")
