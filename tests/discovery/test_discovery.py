"""Gateway discovery end to end: a device configured with only a PSK (discovery_client.c,
the C API under ASan/UBSan) finds the REAL gateway (tests/interop/gateway.py around PyPI
`usmp` 1.2.2) by DNS-SD over mDNS, dials the address it was given and echoes.

Every test runs in a network namespace of its own, made by the test: the pytest process
unshares its network namespace (CLONE_NEWNET, needs root), brings up `lo` with multicast
and a route for 224.0.0.0/4, starts the gateway, the responders and the device (they
inherit the namespace), and returns to the original namespace at the end (the new one
dies with its last process). Nothing reaches a real network.

Responders: python-zeroconf (PyPI `zeroconf`, an independent implementation, in the v2
venv: tests/discovery/zc_peer.py), `usmp announce` (the CLI, cli/), and a hostile one
(hostile_responder.py: malformed answers written byte by byte).

Run:  scripts/setup-python.sh v2 && sudo .venv-interop/v2/bin/python -m pytest tests/discovery -q
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from gateway_harness import Gateway, ensure_venvs, new_run_dir, node_dir, run_build, venv_python  # noqa: E402
from serial_harness import usmp_cli  # noqa: E402

BUILD = Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build")
PSK = "usmp-discovery-psk-0123456789abcdef"
ROGUE_PSK = "a-rogue-gateway-without-the-psk!!"
CLONE_NEWNET = 0x40000000
ERR = {"OK": 0, "AUTH_FAILED": -3, "TIMEOUT": -4, "BAD_FRAME": -10}
RUN_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- builds

@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    v = ensure_venvs()
    py = venv_python("v2")
    if subprocess.run([str(py), "-c", "import zeroconf"], capture_output=True).returncode != 0:
        proc = subprocess.run(["bash", str(REPO / "scripts" / "setup-python.sh"), "v2"], cwd=REPO,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return v


@pytest.fixture(scope="session")
def client_bin() -> Path:
    out = BUILD / "discovery"
    out.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run_build([["cmake", "-S", str(HERE), "-B", str(out), *gen, "-DCMAKE_BUILD_TYPE=Release"],
               ["cmake", "--build", str(out), "--target", "discovery_client"]],
              out / "build-output.log", 1200)
    return out / "discovery_client"


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return usmp_cli()  # one build of cli/ for every test that runs it


@pytest.fixture(scope="session")
def workdir() -> Path:
    return new_run_dir(BUILD / "discovery" / "runs")


# --------------------------------------------------------------------------- the namespace

LIBC = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def netns(venvs: dict[str, Path], client_bin: Path, cli_bin: Path) -> Iterator[list[subprocess.Popen]]:
    """A fresh network namespace for this test; yields the list where the test puts the
    processes it starts (all killed at the end)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    procs: list[subprocess.Popen] = []
    try:
        if LIBC.unshare(CLONE_NEWNET) != 0:
            pytest.fail(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())} "
                        "(the discovery tests make their own network namespace: run them as root)")
        for cmd in (["ip", "link", "set", "lo", "up", "multicast", "on"],
                    ["ip", "route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if LIBC.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
        os.close(home)


def start(procs: list[subprocess.Popen], cmd: list[str], ready: str, log: Path) -> subprocess.Popen:
    """Starts a helper in the test's namespace and waits for its `ready` line."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                         stdin=subprocess.DEVNULL)
    procs.append(p)
    assert p.stdout is not None
    line = p.stdout.readline() if select.select([p.stdout], [], [], 20)[0] else ""
    if ready not in line:
        p.kill()
        pytest.fail(f"{cmd[:3]} did not get ready: {line!r}\n{log.read_text()[-2000:]}")
    return p


def gateway(venvs: dict[str, Path], wd: Path, proto: str = "tcp", psk: str = PSK) -> Gateway:
    return Gateway("v2", venvs["v2"], wd, psk, proto=proto, numbered=True).start()


def zeroconf(procs, venvs, wd: Path, *specs: str) -> None:
    start(procs, [str(venv_python("v2")), str(HERE / "zc_peer.py"), "register", *specs],
          "REGISTERED", wd / "zeroconf.log")


def announce(procs, cli: Path, wd: Path, port: int, name: str, udp: bool = False) -> None:
    cmd = [str(cli), "announce", "--port", str(port), "--name", name] + (["--udp"] if udp else [])
    start(procs, cmd, "announcing", wd / f"announce-{name}.log")


def device(client: Path, wd: Path, *args: str, timeout: str = "3000") -> dict[str, dict[str, str]]:
    """Runs the device; returns its result lines as {KEY: {field: value}} (ECHO/FAIL as text)."""
    cmd = [str(client), "--psk", PSK, "--timeout", timeout, *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    out = proc.stdout + proc.stderr
    (wd / "device.txt").open("a").write(f"$ {' '.join(cmd)}\n{out}\n")
    assert proc.returncode in (0, 1), f"device crashed ({proc.returncode}):\n{out}"
    assert "Sanitizer" not in out and "runtime error" not in out, out
    lines: dict[str, dict[str, str]] = {"_": {"rc": str(proc.returncode), "s": f"{time.monotonic() - t0:.2f}"}}
    for ln in proc.stdout.splitlines():
        key, _, rest = ln.partition(" ")
        lines[key] = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv) or {"text": rest}
    assert "DISCOVER" in lines, out
    return lines


def sessions(gw: Gateway) -> int:
    return sum(1 for e in gw.events() if e["ev"] == "session_open")


@pytest.fixture
def wd(workdir: Path, request: pytest.FixtureRequest) -> Path:
    return node_dir(workdir, request.node.name)


# --------------------------------------------------------------------------- tests

def test_found_through_python_zeroconf_then_echo_over_tcp(netns, venvs, client_bin, wd):
    gw = gateway(venvs, wd)
    zeroconf(netns, venvs, wd, f"zc-gateway:tcp:{gw.port}:2")
    r = device(client_bin, wd)
    assert r["DISCOVER"]["rc"] == "0", r
    assert r["FOUND"] == {"instance": "zc-gateway", "host": "127.0.0.1", "port": str(gw.port),
                          "service": "tcp", "wire": "2"}, r
    assert "ECHO" in r and r["_"]["rc"] == "0", r
    assert sessions(gw) == 1


def test_found_through_usmp_announce_then_echo_over_udp(netns, venvs, client_bin, cli_bin, wd):
    gw = gateway(venvs, wd, proto="udp")
    announce(netns, cli_bin, wd, gw.port, "cli-gateway", udp=True)
    r = device(client_bin, wd)
    assert r["FOUND"] == {"instance": "cli-gateway", "host": "127.0.0.1", "port": str(gw.port),
                          "service": "udp", "wire": "2"}, r
    assert "ECHO" in r and r["_"]["rc"] == "0", r
    assert sessions(gw) == 1
    # The announcement is read alike by an independent resolver (python-zeroconf) ...
    zc = subprocess.run([str(venv_python("v2")), str(HERE / "zc_peer.py"), "resolve", "cli-gateway", "udp"],
                        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    got = json.loads(zc.stdout.strip().splitlines()[-1])
    assert got["found"] and got["addresses"] == ["127.0.0.1"] and got["port"] == gw.port, got
    assert got["txt"].get("v") == "2", got
    # ... and `usmp discover` lists it.
    ls = subprocess.run([str(cli_bin), "discover", "--json", "--timeout", "1200"], capture_output=True,
                        text=True, timeout=RUN_TIMEOUT_S)
    listed = [json.loads(ln) for ln in ls.stdout.splitlines()]
    assert listed == [{"instance": "cli-gateway", "service": "udp", "address": "127.0.0.1",
                       "port": gw.port, "wire": 2}], ls.stdout + ls.stderr


def test_no_responder_is_a_clean_timeout(netns, client_bin, wd):
    r = device(client_bin, wd, "--discover-only", timeout="1500")
    d = r["DISCOVER"]
    assert (d["rc"], d["err"]) == (str(ERR["TIMEOUT"]), "USMP_ERR_TIMEOUT"), r
    assert (d["queries"], d["answers"], d["malformed"]) == ("2", "0", "0"), r  # at 0 and 1 s
    assert 1500 <= int(d["ms"]) < 2500, r


def test_several_responders_the_name_picks_one(netns, venvs, client_bin, cli_bin, wd):
    gw = gateway(venvs, wd)
    # Decoys on ports where nothing listens, from both kinds of responder.
    zeroconf(netns, venvs, wd, "decoy-zc:tcp:1:2", f"target:tcp:{gw.port}:2", "decoy-udp:udp:2:2")
    announce(netns, cli_bin, wd, 3, "decoy-cli")
    ls = subprocess.run([str(cli_bin), "discover", "--json", "--timeout", "1200"], capture_output=True,
                        text=True, timeout=RUN_TIMEOUT_S)
    names = sorted(json.loads(ln)["instance"] for ln in ls.stdout.splitlines())
    assert names == ["decoy-cli", "decoy-udp", "decoy-zc", "target"], ls.stdout + ls.stderr
    r = device(client_bin, wd, "--name", "TARGET")  # instance names compare case-insensitively
    assert r["FOUND"]["instance"] == "target" and r["FOUND"]["port"] == str(gw.port), r
    assert "ECHO" in r, r
    r = device(client_bin, wd, "--name", "decoy-udp", "--services", "tcp", "--discover-only", timeout="800")
    assert r["DISCOVER"]["rc"] == str(ERR["TIMEOUT"]), r
    assert int(r["DISCOVER"]["answers"]) >= 1, r  # answers came; none matched


HOSTILE = {  # mode -> usmp_dns_error_t
    "pointer_loop": 4, "forward_pointer": 4, "header_pointer": 4, "long_name": 3,
    "bad_label": 2, "truncated": 1, "short_a": 5, "txt_overrun": 5,
}


def test_hostile_answers_are_named_errors(netns, client_bin, wd):
    for mode, code in HOSTILE.items():
        p = start(netns, [sys.executable, str(HERE / "hostile_responder.py"), mode], "READY",
                  wd / f"hostile-{mode}.log")
        r = device(client_bin, wd, "--discover-only", timeout="700")
        p.kill()
        p.wait(timeout=10)
        d = r["DISCOVER"]
        assert (d["rc"], d["err"]) == (str(ERR["BAD_FRAME"]), "USMP_ERR_BAD_FRAME"), (mode, r)
        assert int(d["malformed"]) >= 1 and d["last_error"] == str(code), (mode, r)


def test_garbage_before_the_real_answer_is_dropped(netns, venvs, client_bin, wd):
    gw = gateway(venvs, wd)
    start(netns, [sys.executable, str(HERE / "hostile_responder.py"), "pointer_loop", "--then-valid",
                  str(gw.port)], "READY", wd / "hostile.log")
    r = device(client_bin, wd)
    assert r["FOUND"]["instance"] == "after-garbage" and "ECHO" in r, r
    assert int(r["DISCOVER"]["malformed"]) >= 1, r


def test_a_spoofed_announcement_costs_a_failed_handshake(netns, venvs, client_bin, cli_bin, wd):
    rogue = gateway(venvs, wd, psk=ROGUE_PSK)  # a real gateway, but without the device's PSK
    announce(netns, cli_bin, wd, rogue.port, "rogue")
    r = device(client_bin, wd)
    assert r["FOUND"]["instance"] == "rogue", r
    assert "ECHO" not in r and r["_"]["rc"] == "1", r
    assert r["FAIL"] == {"text": "connect USMP_ERR_AUTH_FAILED (-3)"}, r
    assert sessions(rogue) == 0
