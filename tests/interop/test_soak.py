"""Soak under a bad network (issue H item 7): the C device (interop_client.c, scenario
`soak`) against the REAL v2 gateway (usmp 1.2.2) over UDP, through lossy_proxy.py.

Network, each direction: 20 % of the datagrams dropped, 5 % duplicated (a second copy
5-40 ms later), 5 % reordered (held until 30 ms after the next datagram, at most 120 ms),
drawn from one seeded RNG in arrival order. Forgeries toward the device: with 12 % of the
gateway's session frames the proxy also sends the device a bad-tag, bad-CRC, truncated,
wrong-version, random or replayed datagram, and with 12 % of the device's a forged UTACK for
the frame in flight. There is NO per-exchange bound (--max-impair 0): a frame and its
acknowledgement take their chances on every attempt, so the real gateway, which gives up a
frame after 5 attempts (the network alone makes about 1 % of the frames fail 5 times),
does drop sessions, and so does the device (USMP_ERR_TIMEOUT). The one bound left: nothing is impaired before
the first session frame, because failed handshakes lock 127.0.0.1 out of the gateway;
every later handshake (after a reconnect) runs through the same impairment. The effective
rates (the proxy's counters over what it received) are printed and recorded.

USMP_SOAK_COUNT messages (default 1000, the CI run; the long run in SECURITY.md is 10,000
over 8 devices), shared among USMP_SOAK_DEVICES devices (default 8) that run at the same
time, each with a gateway process and a proxy of its own and the seed USMP_SOAK_SEED + k.
A message under 20 % loss takes about a second end to end, almost all of it spent waiting
for retransmission timeouts (the whole CI run uses ~15 s of CPU), so eight devices cut it
from ~19 to ~3 minutes without changing what each device goes through. Sizes 0..1808 come
from the device's seed (every 8th a boundary size: 0, 1, 452, 453, 904, 905, 1356, 1357,
1808); each message has its own content and is echoed by the gateway.

The oracle, per message: delivered exactly once, in order, byte-identical, both ways, OR a
named error (a usmp_err_t) at the device, never anything else.
  * device: each echo is compared byte for byte with what was sent (a duplicate, a reordered
    or a corrupted echo stops the client with FAIL); after an empty message (usmp_recv
    reports it as 0) a 16-byte marker follows and its echo must come back; nothing may
    arrive after the last echo;
  * gateway: the messages it received (its event log: length and SHA-256 of each) must be
    exactly the device's messages, in order, each once; one whose round trip ended with a
    named error may be missing (it is not sent again: the gateway may or may not have it);
  * no silent loss: while it waits for an echo the client probes with a PING after every
    10 s of silence (the gateway drops a session silently when a frame of its own went
    unacknowledged 5 times); the loss counts as a named error only when the PING fails
    (USMP_ERR_TIMEOUT: the session is gone). A PING the gateway still acknowledges after
    45 s without the echo (the gateway's 5 attempts take at most 25 s, the rest of a
    fragmented message must follow within 10 s) means the echo was lost silently, which
    fails the run;
  * no hang: each message ends (ok or a named error) and the client prints a line at least
    every STALL_S seconds.
When a named error ends the session, the client does what an application does: it calls
usmp_reconnect (a new handshake from a new source port, up to 20 times in a row, 1 s
apart) and goes on with the next message. The test reports how many sessions the run
needed and why each ended, at the device and at the gateway, what the network did to the
frame that was given up (lossy_proxy.py's decision log: copies sent and delivered,
acknowledgements sent and delivered) and the cause (see `cause`): the network alone, gateway
frames that came while the device waited for the acknowledgement of its own frame (left to
the gateway's retransmission), the device's 10 s limit for the rest of a fragmented
message, or a late HELLO at the 1.2.2 gateway; anything else is reported as "unexplained".
Everything goes to $USMP_BUILD_DIR/interop/soak-<count>x<devices>-<seed>.json.

Run:  .venv-interop/v2/bin/python -m pytest tests/interop/test_soak.py -q -s
      USMP_SOAK_COUNT=10000 USMP_SOAK_DEVICES=8 USMP_SOAK_SEED=20261207 (the long run)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))
from client_harness import (BUILD_DIR, build_client, client_cmd, describe_exit, device_stats,  # noqa: E402
                            result_line, start_proxy, stop_proxy)
from gateway_harness import Gateway, ensure_venvs, gateways, new_run_dir, node_dir  # noqa: E402

PSK = "usmp-soak-psk-0123456789abcdef01"
COUNT = int(os.environ.get("USMP_SOAK_COUNT", "1000"))
DEVICES = int(os.environ.get("USMP_SOAK_DEVICES", "8"))
SEED = int(os.environ.get("USMP_SOAK_SEED", "20261206"))
RATES = {"drop": 0.20, "dup": 0.05, "reorder": 0.05, "spoof": 0.12}
PROXY_ARGS = [a for k, v in RATES.items() for a in (f"--{k}", str(v))] + ["--max-impair", "0"]
STALL_S = 120.0           # longest stretch without a line from the client
MAX_FAILED_SHARE = 0.10   # at these rates about 4 % of the messages end with a named error
MIN_DROP_SHARE = 0.15     # the proxy's effective drop rate, each way (nominal 0.20)

# interop_client.c's content tags (SOAK_TAG, SOAK_MARKER_TAG, SOAK_MARKER_LEN).
SOAK_TAG = 0x00100000
SOAK_MARKER_TAG = 0x00200000
SOAK_MARKER_LEN = 16
MSG_LINE = re.compile(r"MSG (\d+) (\d+) (\d+) (ok|\w+:USMP_ERR_[A-Z_]+) (\d+)$")


@pytest.fixture(scope="module")
def client_bin() -> Path:
    return build_client(("interop_client",))


@pytest.fixture
def soak_gateway(request: pytest.FixtureRequest) -> Iterator[Callable[[int], Gateway]]:
    """A factory: the v2 UDP gateway of device k, in a directory of its own (device-k) with
    its proxy's and client's files; all are stopped when the test ends."""
    workdir = node_dir(new_run_dir(BUILD_DIR / "runs-soak"), request.node.name)
    venvs = ensure_venvs()
    with ExitStack() as stack:
        def make(k: int) -> Gateway:
            d = workdir / f"device-{k}"
            d.mkdir()
            return stack.enter_context(gateways(venvs, d, PSK))("v2", "udp", lib_log_level="DEBUG")

        yield make


def pattern(length: int, tag: int) -> bytes:
    """interop_client.c's fill_pattern: xorshift32 bytes from (tag, length), first byte >= 0x80."""
    m = 0xFFFFFFFF
    x = 0x9E3779B9 ^ ((tag * 0x85EBCA6B) & m) ^ ((length * 0xC2B2AE35) & m)
    x = x or 1
    out = bytearray(length)
    for i in range(length):
        x ^= (x << 13) & m
        x ^= x >> 17
        x ^= (x << 5) & m
        out[i] = x >> 24
    if length:
        out[0] |= 0x80
    return bytes(out)


@dataclass
class Msg:
    """One MSG line of the client: message `index` of `length` bytes, sent in device session
    `session`; outcome "ok" or "<call>:<usmp_err_t name>"; `ms` its round trip."""

    index: int
    session: int
    length: int
    outcome: str
    ms: int

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def at_gateway(self) -> list[tuple[int, str]]:
        """(length, SHA-256 prefix as gateway.py logs it) of what the gateway must get."""
        items = [(self.length, pattern(self.length, SOAK_TAG + self.index))]
        if self.length == 0:
            items.append((SOAK_MARKER_LEN, pattern(SOAK_MARKER_LEN, SOAK_MARKER_TAG + self.index)))
        return [(n, hashlib.sha256(b).hexdigest()[:16]) for n, b in items]


def parse_msgs(out: str) -> list[Msg]:
    msgs = []
    for ln in out.splitlines():
        if ln.startswith("MSG "):
            m = MSG_LINE.match(ln)
            assert m, f"a MSG line without a named outcome: {ln!r}"
            msgs.append(Msg(int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])))
    return msgs


def check_gateway(msgs: list[Msg], got: list[dict[str, Any]]) -> tuple[list[str], dict[int, int]]:
    """Walks the device's messages and the gateway's received ones side by side. Returns
    the problems (empty when every delivered message arrived once, in order, intact, and
    nothing else arrived) and the device session -> gateway session map."""
    k = 0
    sid_of: dict[int, int] = {}
    for m in msgs:
        for item in m.at_gateway():
            if k < len(got) and (got[k]["len"], got[k]["sha256"]) == item:
                sid = sid_of.setdefault(m.session, got[k]["sid"])
                if sid != got[k]["sid"]:
                    return [f"message #{m.index} of device session {m.session} arrived in gateway session "
                            f"{got[k]['sid']}, the session's earlier ones in {sid}"], sid_of
                k += 1
            elif m.ok:
                nxt = f"{got[k]['len']} B, sha {got[k]['sha256']}" if k < len(got) else "nothing"
                return [f"message #{m.index} ({m.length} B, echoed to the device) is not the next one "
                        f"the gateway received (that is: {nxt})"], sid_of
    if k < len(got):
        return [f"the gateway received {len(got) - k} message(s) beyond the device's, first "
                f"{got[k]['len']} B sha {got[k]['sha256']} in session {got[k]['sid']} (a duplicate?)"], sid_of
    sids = [sid_of[s] for s in sorted(sid_of)]
    if sids != sorted(set(sids)):
        return [f"device sessions map onto gateway sessions out of order: {sid_of}"], sid_of
    return [], sid_of


@dataclass
class Run:
    """One device's soak: its gateway, the proxy in front of it, the client."""

    gw: Gateway
    seed: int
    count: int
    proxy: subprocess.Popen
    stats_path: Path
    out_path: Path
    proc: subprocess.Popen | None = None
    wall: float = 0.0


def start_run(gw: Gateway, client: Path, seed: int, count: int) -> Run:
    """A proxy seeded with `seed` in front of `gw`, and the client sending `count` messages
    whose sizes come from the same seed."""
    proxy, pport, stats_path = start_proxy(gw, gw.workdir, seed, PROXY_ARGS, duration_s=7 * 86400)
    run = Run(gw, seed, count, proxy, stats_path, gw.workdir / "client-soak.txt")
    cmd = client_cmd(client, gw, "soak", 2, PSK, port=pport, extra=["--count", str(count), "--seed", str(seed)])
    with open(run.out_path, "w") as fh:
        run.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    return run


def wait_runs(runs: list[Run]) -> None:
    """Waits for every client, noting each one's wall time; kills them all when one prints
    nothing for STALL_S seconds (a hang)."""
    t0 = time.monotonic()
    last = {id(r): (0, t0) for r in runs}
    busy = list(runs)
    try:
        while busy:
            time.sleep(1.0)
            for r in list(busy):
                assert r.proc is not None
                if r.proc.poll() is not None:
                    r.wall = time.monotonic() - t0
                    busy.remove(r)
                    continue
                size, since = last[id(r)]
                now_size = r.out_path.stat().st_size
                if now_size != size:
                    last[id(r)] = (now_size, time.monotonic())
                elif time.monotonic() - since > STALL_S:
                    pytest.fail(f"seed {r.seed}: the client printed nothing for {STALL_S:.0f} s (hang); "
                                f"output tail:\n{r.out_path.read_text()[-3000:]}")
    finally:
        for r in runs:
            if r.proc is not None and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(timeout=10)


DECISION = re.compile(r"\s*([\d.]+) (device->gateway|gateway->device) "
                      r"(fwd|late|DROP|HOLD|DUP|SPOOF \w+|DROP \(targeted\)) "
                      r"len=\d+ (utack )?(?:type=0x([0-9a-f]{2}) seq=(\d+)|other) dev=(\d+)$")
Exchange = tuple[int, str, int, int]  # (device port, sender of the frame, type, seq)
Decisions = dict[Exchange, list[tuple[float, str]]]


def read_decisions(path: Path) -> tuple[dict[int, float], Decisions]:
    """lossy_proxy.py's decision log: the device ports in order of appearance (one per
    connect attempt) with the time each was first seen, and per exchange the decisions in
    time order, on the frame ("frame fwd", "frame DROP", ...) and on its acknowledgements
    ("ack fwd", ...). Forgeries are left out: they are not the peers' datagrams."""
    ports: dict[int, float] = {}  # ordered
    ex: Decisions = {}
    for ln in path.read_text().splitlines():
        m = DECISION.match(ln)
        if not m or m[3].startswith("SPOOF") or m[5] is None:
            continue
        port = int(m[7])
        ports.setdefault(port, float(m[1]))
        ack = m[4] is not None
        sender = "device" if (m[2] == "device->gateway") != ack else "gateway"
        ex.setdefault((port, sender, int(m[5], 16), int(m[6])), []).append(
            (float(m[1]), ("ack " if ack else "frame ") + m[3]))
    return ports, ex


def device_waits(ex: Decisions, port: int) -> list[tuple[float, float]]:
    """When the device on `port` waited for the acknowledgement of a session frame of its
    own: from its first copy to the first acknowledgement that reached it (to the end of
    the session when none did)."""
    waits = []
    for (p, sender, ty, _), ds in ex.items():
        if p == port and sender == "device" and ty >= 5:
            acked = [t for t, d in ds if d in ("ack fwd", "ack late")]
            waits.append((min(t for t, d in ds if d.startswith("frame")), min(acked, default=float("inf"))))
    return waits


def fate(ex: Decisions, key: Exchange) -> dict[str, Any]:
    """What the network did to one frame: copies sent, copies that reached the peer (with
    the times), acknowledgements sent and those that came back (with the times)."""
    ds = ex.get(key, [])
    c = Counter(d for _, d in ds)
    return {"frame": f"{key[1]} type 0x{key[2]:02x} seq {key[3]}",
            "copies_sent": c["frame fwd"] + c["frame DROP"] + c["frame HOLD"],
            "reached_at": [t for t, d in ds if d in ("frame fwd", "frame late")],
            "last_sent_at": max((t for t, d in ds if d.startswith("frame")), default=0.0),
            "acks_sent": c["ack fwd"] + c["ack DROP"] + c["ack HOLD"],
            "acks_back_at": [t for t, d in ds if d in ("ack fwd", "ack late")]}


SESSION_OK_LOST = ("gateway: no acknowledgement of its SESSION_OK reached it (every copy or acknowledgement lost), "
                   "so it dropped the handshake (5 attempts or its 10 s limit) after its transport had "
                   "acknowledged the device's first frames (usmp 1.2.2)")
HELLO_SHADOW = ("gateway: a late copy of the device's HELLO (duplicated or delayed by the network) opened a second "
                "handshake for the address, which took the session's datagrams (usmp 1.2.2)")


def cause(ex: Decisions, port: int, device_end: float, device_error: str, gateway_gave_up: Exchange | None) -> str:
    """Why one session ended, from the proxy's decisions: the side that gave up first, and
    whether the network alone explains it (every copy of the frame or its acknowledgement
    lost). Three more causes are recognised: gateway frames left unacknowledged because
    they came while the device waited for the acknowledgement of its own frame; a SESSION_OK
    of which no acknowledgement reached the gateway (usmp 1.2.2 has the session keys before
    it sends SESSION_OK, so its transport acknowledges the device's first frames, and then
    drops the handshake after 5 attempts or its 10 s limit); and a late HELLO that reached
    the gateway during the session: usmp 1.2.2 then starts a handshake for the address and,
    until it fails (at the latest after its 10 s), routes the address's datagrams to it; the
    session's frames are acknowledged without a MAC (the device refuses that) and dropped,
    and the device's acknowledgements do not reach the session."""
    mine = [k for k in ex if k[0] == port and k[1] == "device" and k[2] >= 5]
    device_first = gateway_gave_up is None or device_end < fate(ex, gateway_gave_up)["last_sent_at"]
    end = device_end if device_first or gateway_gave_up is None else fate(ex, gateway_gave_up)["last_sent_at"]
    opened = min((t for k in mine for t, _ in ex[k]), default=float("inf"))
    session_ok = fate(ex, (port, "gateway", 4, 0))
    if session_ok["copies_sent"] and not session_ok["acks_back_at"]:
        return SESSION_OK_LOST
    if any(opened < t <= end and end - t < 11.0 for t in fate(ex, (port, "device", 1, 0))["reached_at"]):
        return HELLO_SHADOW
    if device_first:
        if device_error.startswith("echo:"):
            return "device: the rest of a fragmented echo took longer than 10 s (the gateway still retransmitted)"
        f = fate(ex, max(mine, key=lambda k: k[3])) if mine else fate(ex, (port, "device", 0, 0))
        if all(t >= device_end for t in f["acks_back_at"]) and f["acks_sent"] >= len(f["reached_at"]):
            return "device gave its frame up: network (every copy or its acknowledgement was lost or too late)"
        return "device gave its frame up: unexplained (the gateway left a copy unacknowledged, or an ack came back)"
    f = fate(ex, gateway_gave_up)
    if not f["acks_back_at"] and f["acks_sent"] >= len(f["reached_at"]):
        return "gateway gave its frame up: network (every copy or its acknowledgement was lost)"
    waits = device_waits(ex, port)
    outside = [t for t in f["reached_at"] if not any(a <= t < b for a, b in waits)]
    if not f["acks_back_at"] and f["acks_sent"] >= len(outside):
        return ("gateway gave its frame up: copies reached the device while it waited for the acknowledgement "
                "of its own frame (left to the gateway's retransmission)")
    return "gateway gave its frame up: unexplained (an acknowledgement came back, or a copy was not acknowledged)"


def explain_session_ends(out: str, msgs: list[Msg], evs: list[dict[str, Any]], sid_of: dict[int, int],
                         decisions: Path) -> list[dict[str, Any]]:
    """For each device session that ended with an error: the device's error, the gateway's
    reason for ending its side, the fate of the frame that was given up (the gateway's
    when it gave one up, else the device's last) and the cause."""
    ports, ex = read_decisions(decisions)
    attempts = re.findall(r"^(SESSION|RECONNECT_FAIL) (\d+)", out, re.M)
    if len(attempts) != len(ports):
        return [{"cause": f"unknown: {len(attempts)} connect attempts but {len(ports)} device ports in the proxy log"}]
    starts = list(ports.values()) + [float("inf")]
    port_of = {int(n): (p, starts[i + 1])
               for i, ((kind, n), p) in enumerate(zip(attempts, ports, strict=True)) if kind == "SESSION"}
    closed = {e["sid"]: e["reason"] for e in evs if e["ev"] == "closed"}
    last_error = {m.session: (m.index, m.outcome) for m in msgs if not m.ok}
    ends = []
    for n in map(int, re.findall(r"^SESSION_END (\d+) next=\d+ reason=USMP_ERR_\w+$", out, re.M)):
        (port, device_end), sid = port_of[n], sid_of.get(n)
        index, error = last_error.get(n, (-1, "?"))
        reason = closed.get(sid, "still open") if sid is not None else "no message reached it"
        gave_up = re.search(r"did not ACK seq=(\d+) type=(\d+)", reason)
        key: Exchange | None = (port, "gateway", int(gave_up[2]), int(gave_up[1])) if gave_up else None
        mine = [k for k in ex if k[0] == port and k[1] == "device" and k[2] >= 5]
        shown = key or (max(mine, key=lambda k: k[3]) if mine else (port, "device", 0, 0))
        f = fate(ex, shown)
        ends.append({"session": n, "message": index, "device": error, "gateway": reason,
                     "cause": cause(ex, port, device_end, error, key), "frame": f["frame"],
                     "copies_sent": f["copies_sent"], "copies_reached": len(f["reached_at"]),
                     "acks_sent": f["acks_sent"], "acks_back": len(f["acks_back_at"])})
    return ends


def effective_rates(px: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {d: {k: round(px[d][k] / max(1, px[d]["in"]), 4) for k in ("dropped", "duplicated", "reordered")}
            for d in ("device->gateway", "gateway->device")}


def gateway_close_reason(ev: dict[str, Any]) -> str:
    r = ev["reason"]
    if "did not ACK" in r:
        return "gateway gave up a frame after 5 attempts (type " + r.rsplit("type=", 1)[-1] + ")"
    if ev["exc"] == "IncompleteReadError":
        return "gateway's 60 s idle timeout (the device had given this session up)"
    return r


def check_run(r: Run) -> dict[str, Any]:
    """The oracle for one device's run (see the module docstring); returns its summary."""
    assert r.proc is not None
    out = r.out_path.read_text()
    assert r.proc.returncode == 0, (f"seed {r.seed}: soak client failed ({describe_exit(r.proc.returncode)}): "
                                    + "\n".join(ln for ln in out.splitlines() if "FAIL" in ln)
                                    + f"\n--- tail:\n{out[-3000:]}")
    msgs = parse_msgs(out)
    assert [m.index for m in msgs] == list(range(r.count)), "a message without its MSG line, or one twice"
    sizes = [m.length for m in msgs]
    assert min(sizes) == 0 and max(sizes) == 1808, (min(sizes), max(sizes))

    evs = r.gw.events()
    got = [e for e in evs if e["ev"] == "message" and not e["cmd"]]
    problems, sid_of = check_gateway(msgs, got)
    assert not problems, f"seed {r.seed}: " + "\n".join(problems)

    failed = [m for m in msgs if not m.ok]
    sessions = [ln for ln in out.splitlines() if ln.startswith("SESSION ")]
    ends = re.findall(r"^SESSION_END \d+ next=\d+ reason=(\S+)$", out, re.M)
    assert len(sessions) == len(ends) == max(m.session for m in msgs), (sessions, ends)

    px = stop_proxy(r.proxy, r.stats_path)
    dev = device_stats(out)
    rates = effective_rates(px)
    spoofs = px["spoofs_to_device"]
    assert all(x["dropped"] >= MIN_DROP_SHARE for x in rates.values()), rates
    assert all(px[d]["duplicated"] > 0 and px[d]["reordered"] > 0 for d in rates), px
    assert sum(spoofs.values()) > 0 and spoofs["forged_utack"] > 0, spoofs
    assert dev["retransmits"] > 0 and dev["duplicates"] > 0 and dev["rejected"] > 0 and dev["bad_acks"] > 0, dev

    closed = {e["sid"]: gateway_close_reason(e) for e in evs if e["ev"] == "closed"}
    why = explain_session_ends(out, msgs, evs, sid_of, r.gw.workdir / "proxy-decisions.txt")
    ms = sorted(m.ms for m in msgs)
    return {
        "seed": r.seed, "count": r.count, "wall_s": round(r.wall, 1),
        "delivered": r.count - len(failed), "named_errors": dict(Counter(m.outcome for m in failed)),
        "device_sessions": len(sessions), "device_session_ends": dict(Counter(ends)),
        "reconnect_failures": dict(Counter(re.findall(r"^RECONNECT_FAIL \d+ \d+ (\S+)$", out, re.M))),
        "echo_lost_then_probe": len(re.findall(r"^ECHO_LOST ", out, re.M)),
        "gateway_sessions": len([e for e in evs if e["ev"] == "session_open"]),
        "gateway_session_ends": dict(Counter(closed.values())),
        "gateway_retransmits": len([e for e in evs if e["ev"] == "lib" and "UDP Timeout on seq" in e["msg"]]),
        "gateway_frames_dropped": len([e for e in evs if e["ev"] == "frame_dropped"]),
        "device_stats": dev, "proxy": {d: px[d] for d in rates}, "effective_rates": rates,
        "spoofs_to_device": spoofs, "bytes_echoed": int(result_line(out, "SOAK").split("bytes=")[1].split()[0]),
        "round_trip_ms": {"median": ms[len(ms) // 2], "p99": ms[len(ms) * 99 // 100], "max": ms[-1]},
        "device_to_gateway_sessions": sid_of,
        "session_end_causes": dict(Counter(w["cause"] for w in why)),
        "session_ends": why,
    }


def test_soak_udp_v2(client_bin: Path, soak_gateway: Callable[[int], Gateway]) -> None:
    if COUNT < 16 * DEVICES:
        pytest.fail(f"USMP_SOAK_COUNT={COUNT} is below 16 per device: not every boundary size would be sent")
    shares = [COUNT // DEVICES + (1 if k < COUNT % DEVICES else 0) for k in range(DEVICES)]
    runs: list[Run] = []
    try:
        for k, n in enumerate(shares):
            runs.append(start_run(soak_gateway(k), client_bin, SEED + k, n))
        wait_runs(runs)
        summaries = [check_run(r) for r in runs]
    finally:
        for r in runs:
            stop_proxy(r.proxy, r.stats_path)
    total = {"messages": COUNT, "devices": DEVICES, "seed": SEED, "rates": RATES, "max_impair": "none",
             "wall_s": round(max(s["wall_s"] for s in summaries), 1),
             "delivered": sum(s["delivered"] for s in summaries),
             "named_errors": dict(sum((Counter(s["named_errors"]) for s in summaries), Counter())),
             "device_sessions": sum(s["device_sessions"] for s in summaries),
             "session_end_causes": dict(sum((Counter(s["session_end_causes"]) for s in summaries), Counter()))}
    text = json.dumps({"total": total, "runs": summaries}, indent=1)
    (BUILD_DIR / f"soak-{COUNT}x{DEVICES}-{SEED}.json").write_text(text + "\n")
    print(f"\nsoak: {json.dumps(total)}\n(details in {BUILD_DIR / f'soak-{COUNT}x{DEVICES}-{SEED}.json'})")
    assert total["delivered"] >= (1 - MAX_FAILED_SHARE) * COUNT, f"more than {MAX_FAILED_SHARE:.0%} failed: {total}"
