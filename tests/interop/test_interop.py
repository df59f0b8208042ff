"""Interop proof: the usmp C API against the REAL Python gateway (PyPI `usmp`) on 127.0.0.1,
over TCP and UDP.

Matrix:
  v1 = usmp==0.5.1 (wire 0x01) in the venv $USMP_VENV_V1 (default .venv-interop/v1, Python 3.12)
  v2 = usmp==1.2.2 (wire 0x02) in the venv $USMP_VENV_V2 (default .venv-interop/v2, Python 3.11)
  x tcp (usmp_transport_tcp_init) and udp (usmp_transport_udp_init; gateway protocol="udp")
Missing venvs are created by scripts/setup-python.sh. The C client (interop_client.c) is
built once with CMake + Ninja into $USMP_INTEROP_BUILD (default $USMP_BUILD_DIR/interop,
or build/interop).

Every subprocess is bounded by a timeout; gateways and proxies are stopped by their own PID.
Positive scenarios share one gateway process per version and transport; the negative ones
(wrong PSK, version mismatch), reconnect (which kills its gateway) and the lossy-proxy runs
get their own, because failed handshakes lock 127.0.0.1 out of a gateway process
(PROTOCOL.md section 13). UDP only: the lossy proxy (lossy_proxy.py) and one throughput
measurement (bench_udp.py, printed, no threshold). REKEY is not run over UDP: the 1.2.2
gateway does not reset its UDP dedupe state on REKEY (PROTOCOL.md section 11).

Run:  scripts/setup-python.sh && .venv-interop/v2/bin/python -m pytest tests/interop -q
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/gateway_harness.py, shared with tests/stm32
sys.path.insert(0, str(HERE))  # client_harness.py, shared with test_soak.py
from client_harness import (BUILD_DIR, build_client, client_cmd, describe_exit, device_stats,  # noqa: E402
                            result_line, start_proxy, stop_proxy)
from gateway_harness import VERSIONS, Gateway, ensure_venvs, gateways, new_run_dir, node_dir  # noqa: E402

BENCH = HERE / "bench_udp.py"
PSK = "usmp-interop-psk-0123456789abcdef"
WRONG_PSK = "usmp-interop-WRONG-psk-987654321"

CLIENT_TIMEOUT_S = 40.0      # one scenario run (each is ~1-3 s when healthy; lossy UDP ~15 s)

RESULTS: list[dict[str, Any]] = []


# --------------------------------------------------------------------------- environment

@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="session")
def client_bin() -> Path:
    return build_client()


# --------------------------------------------------------------------------- gateway

def wait_for(pred: Callable[[], Any], timeout: float, what: str, gw: Gateway) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; gateway log tail:\n{gw.tail()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    yield new_run_dir(BUILD_DIR / "runs")


@pytest.fixture(scope="module")
def shared_gateways(venvs: dict[str, Path], workdir: Path) -> Iterator[dict[tuple[str, str], Gateway]]:
    gws: dict[tuple[str, str], Gateway] = {}
    try:
        for v in VERSIONS:
            for proto in PROTOS:
                wd = workdir / f"shared-{v}-{proto}"
                wd.mkdir(exist_ok=True)
                gws[v, proto] = Gateway(v, venvs[v], wd, PSK, proto=proto).start()
        yield gws
    finally:
        for gw in gws.values():
            gw.stop()


@pytest.fixture
def own_gateway(venvs: dict[str, Path], workdir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    with gateways(venvs, node_dir(workdir, request.node.name), PSK) as make:
        yield make


# --------------------------------------------------------------------------- client

def label(scenario: str, gw: Gateway) -> str:
    return scenario if gw.proto == "tcp" else f"{scenario}/udp"


def record(name: str, ver: str, outcome: str, seconds: float, detail: str = "") -> None:
    RESULTS.append({"scenario": name, "version": ver, "outcome": outcome, "seconds": round(seconds, 2),
                    "detail": detail})


def run_client(exe: Path, gw: Gateway, scenario: str, version: int, psk: str = PSK,
               port: int | None = None, extra: list[str] | None = None) -> tuple[str, float]:
    cmd = client_cmd(exe, gw, scenario, version, psk, port, extra)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        record(label(scenario, gw), gw.ver, "HANG", time.monotonic() - t0)
        pytest.fail(f"client hung (> {CLIENT_TIMEOUT_S} s) in {scenario}:\n{out}\n--- gateway log:\n{gw.tail()}")
    dt = time.monotonic() - t0
    out = proc.stdout + ("\n[stderr]\n" + proc.stderr if proc.stderr.strip() else "")
    (gw.workdir / f"client-{scenario}-{gw.proto}-wire{version}.txt").write_text(out)
    if proc.returncode != 0:
        record(label(scenario, gw), gw.ver, "FAIL", dt, describe_exit(proc.returncode))
        pytest.fail(f"{scenario} over {gw.proto} (device wire v{version} vs gateway usmp {VERSIONS[gw.ver]['usmp']}) "
                    f"failed: {describe_exit(proc.returncode)}\n--- client:\n{out}\n--- gateway log:\n{gw.tail()}")
    return out, dt


def sessions_since(gw: Gateway, mark: int) -> list[int]:
    return [e["sid"] for e in gw.events()[mark:] if e["ev"] == "session_open"]


def closed_event(gw: Gateway, sid: int, mark: int) -> dict[str, Any] | None:
    for e in gw.events()[mark:]:
        if e["ev"] == "closed" and e.get("sid") == sid:
            return e
    return None


def assert_closed_by_device_bye(gw: Gateway, sid: int, mark: int) -> dict[str, Any]:
    ev = wait_for(lambda: closed_event(gw, sid, mark), 5.0, f"session {sid} to close", gw)
    assert ev["exc"] == "ConnectionClosedError" and ev["reason"] == "Remote sent BYE", (
        f"session {sid} ended with {ev}, expected the device's BYE\n{gw.tail()}")
    assert ev["last_frame"] and ev["last_frame"]["type"] == "BYE", ev
    return ev


# --------------------------------------------------------------------------- tests

MATRIX = [("v1", 1), ("v2", 2)]
PROTOS = ("tcp", "udp")
# (version, wire, transport): every positive scenario runs in all four combinations.
MATRIX_P = [(v, w, p) for p in PROTOS for v, w in MATRIX]
IDS_P = [f"{v}-{p}" for v, _, p in MATRIX_P]


def _positive(client_bin: Path, gw: Gateway, scenario: str, version: int) -> tuple[str, list[int], int]:
    mark = len(gw.events())
    out, dt = run_client(client_bin, gw, scenario, version)
    sids = sessions_since(gw, mark)
    assert sids, f"no session was opened at the gateway\n{gw.tail()}"
    # Every scenario ends with usmp_close: the gateway must see a proper BYE on the last session.
    assert_closed_by_device_bye(gw, sids[-1], mark)
    detail = ""
    if gw.proto == "udp":
        st = device_stats(out)
        # A clean loopback link: nothing malformed or forged can have arrived.
        assert st["rejected"] == 0, f"device rejected datagrams on a clean link: {st}\n{out}"
        detail = "device " + " ".join(f"{k}={v}" for k, v in st.items())
    record(label(scenario, gw), gw.ver, "PASS", dt, detail)
    return out, sids, mark


def udp_hellos_before(gw: Gateway, sid: int, mark: int) -> list[dict[str, Any]]:
    """The udp_hello / hello_retry_sent events after `mark` (and after any earlier session
    opened) up to session `sid` opening."""
    out: list[dict[str, Any]] = []
    for e in gw.events()[mark:]:
        if e["ev"] == "session_open":
            if e["sid"] == sid:
                return out
            out = []
        elif e["ev"] in ("udp_hello", "hello_retry_sent"):
            out.append(e)
    return out


def assert_cookie_round(gw: Gateway, wire: int, sid: int, mark: int) -> str:
    """v2: HELLO (50 B) -> HELLO_RETRY -> HELLO with the cookie (66 B), all from the same
    address, then the session. v1: one plain HELLO, no HELLO_RETRY."""
    evs = udp_hellos_before(gw, sid, mark)
    seq = [(e["ev"], e.get("len")) for e in evs]
    addrs = {e["addr"] for e in evs}
    assert len(addrs) == 1, f"handshake datagrams from several addresses: {evs}"
    if wire == 2:
        assert seq == [("udp_hello", 50), ("hello_retry_sent", 28), ("udp_hello", 66)], (
            f"no v2 cookie round before session {sid}: {seq}\n{gw.tail()}")
        return "cookie round: HELLO 50 B -> HELLO_RETRY -> HELLO+cookie 66 B"
    assert seq == [("udp_hello", 50)], f"v1 handshake datagrams: {seq}"
    return "v1: plain HELLO, no cookie"


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_echo(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int,
              proto: str) -> None:
    gw = shared_gateways[ver, proto]
    out, sids, mark = _positive(client_bin, gw, "echo", wire)
    lens = [e["len"] for e in gw.events()[mark:] if e["ev"] == "message" and e["sid"] == sids[0] and not e["cmd"]]
    assert lens[:2] == [0, 12], f"the gateway did not log the empty message first: {lens}"
    assert lens == [0, 12, 1, 452, 453, 1000, 1808, 1808, 7, 904], lens
    frames = [e for e in gw.events()[mark:] if e["ev"] == "frame" and e["sid"] == sids[0]]
    frag = [f["type"] for f in frames if f["type"] in ("DATA", "DATA_FRAG")]
    # 0,12,1,452 -> 1 frame each; 453 -> 2; 1000 -> 3; 1808 -> 4 (x2); 7 -> 1; 904 -> 2
    assert frag.count("DATA_FRAG") == 1 + 2 + 3 + 3 + 1, frag
    assert [f["seq"] for f in frames] == list(range(len(frames))), "gateway saw a gap in device seqs"
    if proto == "udp":
        RESULTS[-1]["detail"] = assert_cookie_round(gw, wire, sids[0], mark) + "; " + RESULTS[-1]["detail"]


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_too_big(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int,
                 proto: str) -> None:
    gw = shared_gateways[ver, proto]
    out, sids, mark = _positive(client_bin, gw, "too_big", wire)
    msgs = [e for e in gw.events()[mark:] if e["ev"] == "message" and e["sid"] == sids[0]]
    assert msgs[0]["cmd"] == "cmd:stats", f"the gateway received something before cmd:stats: {msgs[0]}"
    assert 1809 not in [m["len"] for m in msgs]


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_keepalive(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int,
                   proto: str) -> None:
    gw = shared_gateways[ver, proto]
    out, sids, mark = _positive(client_bin, gw, "keepalive", wire)
    pings = [e for e in gw.events()[mark:] if e["ev"] == "frame" and e["sid"] == sids[0] and e["type"] == "PING"]
    assert len(pings) >= 2, f"gateway logged {len(pings)} PINGs\n{gw.tail()}"
    gaps = [round(b["rx_t"] - a["rx_t"], 3) for a, b in zip(pings, pings[1:])]
    assert all(g >= 0.15 for g in gaps), f"PINGs closer than keepalive_ms=200: {gaps}"
    RESULTS[-1]["detail"] = f"{len(pings)} PINGs, gaps {gaps}" + (
        "; " + RESULTS[-1]["detail"] if RESULTS[-1]["detail"] else "")


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_gw_ping(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int,
                 proto: str) -> None:
    gw = shared_gateways[ver, proto]
    out, sids, mark = _positive(client_bin, gw, "gw_ping", wire)
    evs = [e for e in gw.events()[mark:] if e.get("sid") == sids[0]]
    sent = [i for i, e in enumerate(evs) if e["ev"] == "ping_sent"]
    pongs = [i for i, e in enumerate(evs) if e["ev"] == "frame" and e["type"] == "PONG"]
    assert len(sent) == 2 and len(pongs) == 2 and all(p > s for s, p in zip(sent, pongs)), evs


# REKEY stays on TCP: over UDP the 1.2.2 gateway keeps its transport-level dedupe state
# across a REKEY (PROTOCOL.md section 11), so REKEY over UDP is not reliable with it.
@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_rekey_device(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int) -> None:
    gw = shared_gateways[ver, "tcp"]
    out, sids, mark = _positive(client_bin, gw, "rekey_device", wire)
    rekeys = [e for e in gw.events()[mark:] if e["ev"] == "frame" and e["sid"] == sids[0] and e["type"] == "REKEY"]
    assert len(rekeys) == (2 if wire == 2 else 0), rekeys
    if wire == 2:
        # After a REKEY both directions restart at seq 0.
        frames = [e for e in gw.events()[mark:] if e["ev"] == "frame" and e["sid"] == sids[0]]
        idx = [i for i, f in enumerate(frames) if f["type"] == "REKEY"]
        assert all(frames[i + 1]["seq"] == 0 for i in idx), frames
        RESULTS[-1]["detail"] = "2 device REKEYs accepted"
    else:
        RESULTS[-1]["detail"] = "USMP_ERR_UNSUPPORTED, nothing sent"


def test_rekey_gateway(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway]) -> None:
    gw = shared_gateways["v2", "tcp"]
    out, sids, mark = _positive(client_bin, gw, "rekey_gateway", 2)
    sent = [e for e in gw.events()[mark:] if e["ev"] == "rekey_sent" and e["sid"] == sids[0]]
    assert len(sent) == 2


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_bye_device(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int,
                    proto: str) -> None:
    gw = shared_gateways[ver, proto]
    out, sids, mark = _positive(client_bin, gw, "bye_device", wire)
    assert len(sids) == 1


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_bye_gateway(client_bin: Path, shared_gateways: dict[tuple[str, str], Gateway], ver: str, wire: int,
                     proto: str) -> None:
    gw = shared_gateways[ver, proto]
    out, sids, mark = _positive(client_bin, gw, "bye_gateway", wire)
    assert len(sids) == 2, f"expected the BYE'd session and the reconnected one: {sids}"
    ev = closed_event(gw, sids[0], mark)
    assert ev and ev["reason"] == "gateway sent BYE", ev
    detail = "usmp_recv -> " + result_line(out, "BYE_RESULT")
    if proto == "udp":
        # usmp_reconnect opened a new socket: a new address, so a new cookie round (v2).
        detail += "; reconnect " + assert_cookie_round(gw, wire, sids[1], mark)
    RESULTS[-1]["detail"] = detail + ("; " + RESULTS[-1]["detail"] if RESULTS[-1]["detail"] else "")


@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_wrong_psk(client_bin: Path, own_gateway: Callable[..., Gateway], ver: str, wire: int) -> None:
    gw = own_gateway(ver)
    out, dt = run_client(client_bin, gw, "wrong_psk", wire, psk=WRONG_PSK)
    res = result_line(out, "CONNECT_RESULT")
    assert res.startswith("USMP_ERR_AUTH_FAILED"), out
    evs = gw.events()
    assert not [e for e in evs if e["ev"] == "session_open"], "a session was opened with the wrong PSK"
    wait_for(lambda: [e for e in gw.events() if e["ev"] == "lib" and "hmac" in e["msg"].lower()], 5.0,
             "the gateway to log the HMAC failure", gw)
    record("wrong_psk", ver, "PASS", dt, res)


@pytest.mark.parametrize("dev_wire,gw_ver", [(1, "v2"), (2, "v1")], ids=["v1dev-v2gw", "v2dev-v1gw"])
def test_version_mismatch(client_bin: Path, own_gateway: Callable[..., Gateway], dev_wire: int, gw_ver: str) -> None:
    gw = own_gateway(gw_ver)
    out, dt = run_client(client_bin, gw, "version_mismatch", dev_wire)
    res = result_line(out, "CONNECT_RESULT")
    assert res.startswith("USMP_ERR_REJECTED"), out
    assert not [e for e in gw.events() if e["ev"] == "session_open"]
    wait_for(lambda: [e for e in gw.events() if e["ev"] == "lib" and "version" in e["msg"].lower()], 5.0,
             "the gateway to log the version error", gw)
    record(f"v{dev_wire}_device_vs_{gw_ver}_gateway", gw_ver, "PASS", dt, res)


def test_udp_negative(client_bin: Path, own_gateway: Callable[..., Gateway]) -> None:
    """Wrong PSK (v1, v2) and wire-version mismatch (both ways) over UDP, the four at once,
    each against its own gateway process. Over UDP the gateway refuses silently: a wrong PSK
    shows as silence after the gateway acknowledged HELLO_ACK, which the library reports as
    USMP_ERR_AUTH_FAILED once USMP_HANDSHAKE_TIMEOUT_MS (10 s) has passed; a version
    mismatch gets no answer at all: USMP_ERR_TIMEOUT. (Over TCP the hang-up is visible:
    AUTH_FAILED / REJECTED, tested above.)"""
    cases = [("wrong_psk", "v1", 1, WRONG_PSK), ("wrong_psk", "v2", 2, WRONG_PSK),
             ("version_mismatch", "v2", 1, PSK), ("version_mismatch", "v1", 2, PSK)]
    runs = []
    for scenario, gw_ver, dev_wire, psk in cases:
        gw = own_gateway(gw_ver, "udp")
        cmd = client_cmd(client_bin, gw, scenario, dev_wire, psk)
        runs.append((scenario, gw, dev_wire, time.monotonic(),
                     subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)))
    failures = []
    for scenario, gw, dev_wire, t0, proc in runs:
        try:
            out, _ = proc.communicate(timeout=CLIENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
            failures.append(f"{scenario} v{dev_wire} device vs {gw.ver} gateway: client hung\n{out}")
            continue
        dt = time.monotonic() - t0
        name = "wrong_psk/udp" if scenario == "wrong_psk" else f"v{dev_wire}_device_vs_{gw.ver}_gateway/udp"
        (gw.workdir / f"client-{scenario}-udp-wire{dev_wire}.txt").write_text(out)
        res = result_line(out, "CONNECT_RESULT")
        evs = gw.events()
        problems = []
        want = "USMP_ERR_AUTH_FAILED" if scenario == "wrong_psk" else "USMP_ERR_TIMEOUT"
        if proc.returncode != 0 or not res.startswith(want):
            problems.append(f"exit {proc.returncode}, CONNECT_RESULT {res!r} (expected {want})")
        if [e for e in evs if e["ev"] == "session_open"]:
            problems.append("the gateway opened a session")
        if scenario == "wrong_psk":
            if not [e for e in evs if e["ev"] == "lib" and "hmac" in e["msg"].lower()]:
                problems.append("the gateway did not log the HMAC failure")
            if dev_wire == 2 and not [e for e in evs if e["ev"] == "hello_retry_sent"]:
                problems.append("no cookie round before the refusal")
        if problems:
            record(name, gw.ver, "FAIL", dt, "; ".join(problems))
            failures.append(f"{name} ({gw.ver} gateway): {'; '.join(problems)}\n--- client:\n{out}\n"
                            f"--- gateway log:\n{gw.tail()}")
        else:
            record(name, gw.ver, "PASS", dt, res)
    if failures:
        pytest.fail("\n\n".join(failures))


class LineReader:
    """Reads a child's stdout on a thread so every wait can have a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._q: "queue.Queue[str | None]" = queue.Queue()
        self._t = threading.Thread(target=self._run, args=(proc,), daemon=True)
        self._t.start()

    def _run(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for ln in proc.stdout:
            self._q.put(ln.rstrip("\n"))
        self._q.put(None)

    def wait_line(self, want: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                ln = self._q.get(timeout=left)
            except queue.Empty:
                return False
            if ln is None:
                return False
            self.lines.append(ln)
            if ln == want:
                return True

    def drain(self, timeout: float) -> None:
        self._t.join(timeout)
        while True:
            try:
                ln = self._q.get_nowait()
            except queue.Empty:
                return
            if ln is not None:
                self.lines.append(ln)


@pytest.mark.parametrize("ver,wire,proto", MATRIX_P, ids=IDS_P)
def test_reconnect(client_bin: Path, own_gateway: Callable[..., Gateway], ver: str, wire: int, proto: str) -> None:
    gw = own_gateway(ver, proto)
    name = label("reconnect", gw)
    t0 = time.monotonic()
    proc = subprocess.Popen(client_cmd(client_bin, gw, "reconnect", wire, PSK), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    reader = LineReader(proc)
    assert proc.stdin is not None

    def abort(msg: str) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        reader.drain(5)
        record(name, ver, "FAIL", time.monotonic() - t0, msg)
        pytest.fail(f"{msg} ({describe_exit(proc.returncode)})\n--- client:\n" + "\n".join(reader.lines)
                    + f"\n--- gateway log:\n{gw.tail()}")

    try:
        if not reader.wait_line("SYNC kill-gateway", 20):
            abort("client never asked to kill the gateway")
        first_gen_sessions = sessions_since(gw, 0)
        gw.kill()
        proc.stdin.write("killed\n")
        proc.stdin.flush()
        if not reader.wait_line("SYNC restart-gateway", 30):
            abort("client did not detect the dead gateway / failed reconnect in time")
        port = gw.port
        gw.start(port=port)
        assert gw.port == port
        mark = len(gw.events())
        proc.stdin.write("restarted\n")
        proc.stdin.flush()
        try:
            proc.wait(timeout=CLIENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            abort(f"client hung after the restart (> {CLIENT_TIMEOUT_S} s)")
        reader.drain(5)
        if proc.returncode != 0:
            abort("reconnect scenario failed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    out = "\n".join(reader.lines)
    (gw.workdir / f"client-reconnect-{proto}-wire{wire}.txt").write_text(out + "\n")
    assert first_gen_sessions, "no session before the kill"
    sids = sessions_since(gw, mark)
    assert len(sids) == 1, sids
    assert_closed_by_device_bye(gw, sids[0], mark)
    dead = result_line(out, "DEAD_RESULT")
    detail = "dead link -> " + dead
    if proto == "udp":
        # No connection to lose: the device learns of the dead gateway when its next frame is
        # not acknowledged after every attempt (ICMP port-unreachable is not an error).
        assert dead == "usmp_send USMP_ERR_TIMEOUT", out
        detail += "; " + " ".join(f"{k}={v}" for k, v in device_stats(out).items())
    record(name, ver, "PASS", time.monotonic() - t0, detail)


# --------------------------------------------------------------------------- lossy UDP

LOSSY_COUNT = 50
LOSSY_SEED = 20240611


@pytest.mark.parametrize("ver,wire", MATRIX, ids=["v1", "v2"])
def test_udp_lossy(client_bin: Path, own_gateway: Callable[..., Gateway], ver: str, wire: int) -> None:
    """50 echoes of mixed sizes (up to 1808) through lossy_proxy.py: every echo must arrive
    intact, in order and exactly once at both ends. v2 also gets forgeries toward the device;
    v1 does not (the 0.5.1 gateway's UDP session dies on a bad CRC) and runs the proxy in
    --v1-safe mode (see lossy_proxy.py)."""
    gw = own_gateway(ver, "udp", lib_log_level="DEBUG")
    args = ["--drop", "0.08", "--dup", "0.05", "--reorder", "0.05"]
    args += ["--spoof", "0.12"] if wire == 2 else ["--v1-safe"]
    proxy, pport, stats_path = start_proxy(gw, gw.workdir, LOSSY_SEED, args)
    mark = len(gw.events())
    try:
        out, dt = run_client(client_bin, gw, "mixed_echo", wire, port=pport, extra=["--count", str(LOSSY_COUNT)])
    finally:
        px = stop_proxy(proxy, stats_path)
    dev = device_stats(out)
    c2g, g2c, spoofs = px["device->gateway"], px["gateway->device"], px["spoofs_to_device"]
    sids = sessions_since(gw, mark)
    assert len(sids) == 1, f"expected one session through the proxy: {sids}"
    lens = [e["len"] for e in gw.events()[mark:] if e["ev"] == "message" and e["sid"] == sids[0] and not e["cmd"]]
    assert len(lens) == LOSSY_COUNT, f"the gateway received {len(lens)} messages, expected {LOSSY_COUNT}"
    gw_retx = [e for e in gw.events()[mark:] if e["ev"] == "lib" and "UDP Timeout on seq" in e["msg"]]
    # The proxy really impaired the link, and the device really had to work for it.
    assert c2g["dropped"] > 0 and g2c["dropped"] > 0, px
    assert g2c["duplicated"] > 0 and g2c["reordered"] > 0, px
    assert dev["retransmits"] > 0 and dev["duplicates"] > 0, dev
    if wire == 2:
        assert sum(spoofs.values()) > 0, px
        assert dev["rejected"] > 0 and dev["bad_acks"] >= 1, dev
    summary = (f"{LOSSY_COUNT} msgs ok; proxy d->g drop={c2g['dropped']} dup={c2g['duplicated']} "
               f"reorder={c2g['reordered']}, g->d drop={g2c['dropped']} dup={g2c['duplicated']} "
               f"reorder={g2c['reordered']}, spoofs->d {sum(spoofs.values())} "
               f"({', '.join(f'{k}={v}' for k, v in spoofs.items() if v)}); device "
               + " ".join(f"{k}={v}" for k, v in dev.items()) + f"; gateway retransmits={len(gw_retx)}")
    print(f"\nlossy UDP {ver} (usmp {VERSIONS[ver]['usmp']}), seed {LOSSY_SEED}, {dt:.1f} s: {summary}")
    record("lossy_proxy/udp", ver, "PASS", dt, summary)


def test_udp_transport_socket(client_bin: Path) -> None:
    """The UDP socket transport alone (udp_transport_check.c): one datagram per send/recv,
    timeouts, oversize/empty datagrams dropped, ICMP port-unreachable not fatal, reconnect on a
    new source port, close/destroy, the static variant, argument checks."""
    exe = client_bin.parent / "udp_transport_check"
    t0 = time.monotonic()
    try:
        proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("udp_transport_check hung")
    (BUILD_DIR / "udp_transport_check.txt").write_text(proc.stdout + proc.stderr)
    checks = [ln for ln in proc.stdout.splitlines() if ln.startswith(("ok ", "FAIL "))]
    failed = [ln for ln in checks if ln.startswith("FAIL")]
    assert proc.returncode == 0 and not failed and checks, proc.stdout + proc.stderr
    record("udp_transport_socket", "-", "PASS", time.monotonic() - t0, f"{len(checks)} checks")


def test_udp_bench(client_bin: Path, venvs: dict[str, Path]) -> None:
    """Throughput, printed only: 452-byte echoes/s over loopback UDP against the 1.2.2 gateway,
    our C client vs the package's Python client (bench_udp.py)."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run([str(venvs["v2"]), str(BENCH), "--count", "300", "--rounds", "1",
                               "--client", str(client_bin)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("bench_udp.py took more than 120 s")
    line = result_line(proc.stdout, "BENCH_UDP")
    assert proc.returncode == 0 and line, f"bench_udp.py failed:\n{proc.stdout}\n{proc.stderr}"
    print(f"\nUDP throughput: {line}")
    record("bench/udp", "v2", "INFO", time.monotonic() - t0, line)


def pytest_sessionfinish_summary() -> str:
    rows = [f"{r['scenario']:<28} {r['version']:<3} {r['outcome']:<5} {r['seconds']:>6.2f}s  {r['detail']}"
            for r in RESULTS]
    return "\n".join(rows)


@pytest.fixture(scope="session", autouse=True)
def _summary() -> Iterator[None]:
    yield
    if RESULTS:
        text = pytest_sessionfinish_summary()
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        (BUILD_DIR / "interop-results.txt").write_text(text + "\n")
        (BUILD_DIR / "interop-results.json").write_text(json.dumps(RESULTS, indent=1) + "\n")
        sys.stderr.write("\ninterop results (also in " + str(BUILD_DIR / "interop-results.txt") + "):\n"
                         + text + "\n")
