#!/usr/bin/env python3
"""Throughput over loopback UDP against the real usmp 1.2.2 gateway: 452-byte echoes per
second with our C client (interop_client --scenario bench) and with the gateway package's
own Python client (usmp.USMPClient, protocol="udp"), in the same run, against the same
gateway process. A measurement, not a test: it prints both rates and their ratio.

    .venv-interop/v2/bin/python tests/interop/bench_udp.py [--count 500] [--rounds 2]

Run it with the v2 venv's interpreter (it imports usmp 1.2.2 for the Python client and starts
tests/interop/gateway.py with the same interpreter). The C client is built first when
missing (cmake -S tests/interop -B build/interop, or --client PATH). Each round runs the C
client, then the Python client; the best rate of each is reported. 452 bytes is one frame
each way (USMP_MAX_DATA_LEN), so one echo is: DATA -> UTACK, then the echo DATA -> UTACK.
Both clients do a few untimed warm-up echoes after the handshake. The Python gateway is in
the loop for both, so the ratio shows what the device side costs, not raw C speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PSK = "usmp-interop-psk-0123456789abcdef"
MSG_LEN = 452
WARMUP = 5


def build_client(build_dir: Path) -> Path:
    exe = build_dir / "interop_client"
    gen = ["-G", "Ninja"] if subprocess.run(["sh", "-c", "command -v ninja"], capture_output=True).returncode == 0 else []
    for cmd in (["cmake", "-S", str(HERE), "-B", str(build_dir), *gen, "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", str(build_dir), "--target", "interop_client"]):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1200)
    return exe


def start_gateway(workdir: Path) -> tuple[subprocess.Popen, int]:
    ready = workdir / "ready"
    proc = subprocess.Popen([sys.executable, str(HERE / "gateway.py"), "--proto", "udp", "--port", "0",
                             "--psk", PSK, "--ready-file", str(ready), "--lib-log-level", "WARNING"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "gateway.stderr", "w"))
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"bench: gateway did not start:\n{(workdir / 'gateway.stderr').read_text()[-2000:]}")
        time.sleep(0.02)
    words = ready.read_text().split()
    assert words[:2] == ["READY", "udp"] and "usmp=1.2.2" in words, words
    return proc, int(words[2])


def run_c(exe: Path, port: int, count: int) -> float:
    out = subprocess.run([str(exe), "--host", "127.0.0.1", "--port", str(port), "--psk", PSK,
                          "--proto-version", "2", "--proto", "udp", "--scenario", "bench",
                          "--count", str(count)], capture_output=True, text=True, timeout=300)
    m = re.search(r"^BENCH msgs=(\d+) bytes=(\d+) seconds=([\d.]+) rate=([\d.]+)", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise SystemExit(f"bench: C client failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-1000:]}")
    return int(m.group(1)) / float(m.group(3))


async def run_py(port: int, count: int) -> float:
    import usmp

    client = usmp.USMPClient("127.0.0.1", port, PSK.encode(), device_id=bytes.fromhex("02000000be0c"),
                             protocol="udp")
    await client.connect()
    try:
        for i in range(WARMUP):
            msg = bytes([0x80 | i]) * MSG_LEN
            await client.send(msg)
            if await client.recv() != msg:
                raise SystemExit("bench: Python client warm-up echo differs")
        msgs = [os.urandom(MSG_LEN) for _ in range(count)]
        t0 = time.perf_counter()
        for msg in msgs:
            await client.send(msg)
            if await client.recv() != msg:
                raise SystemExit("bench: Python client echo differs")
        dt = time.perf_counter() - t0
    finally:
        await client.disconnect()
    return count / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=500, help="timed echoes per client and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--client", type=Path, help="interop_client binary (default: build it)")
    args = ap.parse_args()

    import usmp
    if usmp.__version__ != "1.2.2":
        raise SystemExit(f"bench: run with the v2 venv (usmp 1.2.2), this one has usmp {usmp.__version__}")
    exe = args.client
    if exe is None:
        build = Path(os.environ.get("USMP_INTEROP_BUILD")
                     or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "interop"))
        exe = build / "interop_client"
        if not exe.exists():
            exe = build_client(build)
    with tempfile.TemporaryDirectory(prefix="usmp-bench-") as tmp:
        gw, port = start_gateway(Path(tmp))
        try:
            c_rates, py_rates = [], []
            for r in range(args.rounds):
                c_rates.append(run_c(exe, port, args.count))
                py_rates.append(asyncio.run(run_py(port, args.count)))
                print(f"round {r + 1}: C client {c_rates[-1]:.0f} msg/s, Python client {py_rates[-1]:.0f} msg/s",
                      flush=True)
        finally:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(timeout=5)
            except subprocess.TimeoutExpired:
                gw.kill()
    c, py = max(c_rates), max(py_rates)
    print(f"BENCH_UDP gateway=usmp-1.2.2 msg_len={MSG_LEN} count={args.count} rounds={args.rounds} "
          f"c_client={c:.0f}msg/s python_client={py:.0f}msg/s ratio={c / py:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
