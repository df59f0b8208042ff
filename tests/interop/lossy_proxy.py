#!/usr/bin/env python3
"""A lossy UDP proxy for the interop tests: device <-> proxy <-> real gateway, on 127.0.0.1.

    lossy_proxy.py --upstream-port GW_PORT [--port 0] [--seed 1] [--drop 0.08] [--dup 0.05]
                   [--reorder 0.05] [--spoof 0.10] [--max-impair 1] [--v1-safe]
                   [--duration 60] [--ready-file F] [--stats-file F] [--log F]

The device sends to the proxy's port (printed as ``READY udp <port>`` and written to
--ready-file); the proxy relays each datagram to the gateway from one upstream socket per
device address, and the gateway's datagrams back. Both sockets are bound to 127.0.0.1.
Nothing is parsed beyond the frame header and the UTACK marker; the proxy never holds a
key, so everything it injects is a forgery the device must refuse.

What it does to the traffic, decided by one ``random.Random(--seed)`` in arrival order
(so a run is reproducible up to the timing of the peers' retransmissions):

* drop (--drop, both directions): the datagram is not forwarded;
* reorder (--reorder, both directions): the datagram is held back and released 30 ms after
  the next datagram of the same direction (at the latest after 120 ms), so it arrives
  after a later one;
* duplicate (--dup, both directions): an extra copy follows 5-40 ms later;
* spoof (--spoof, gateway->device only, leave 0 for a v1 gateway): together with a session
  frame the proxy also sends the device one forgery, chosen among: a copy with a flipped
  ciphertext byte and a recomputed CRC (AEAD tag fails), a copy with a bad CRC, a truncated
  copy, a copy with the wrong version byte, random bytes (1..600, so some are larger than
  any frame), and a replay of an older authentic frame (a duplicate). With a device frame it
  may instead send the device a forged UTACK for that frame (right type and seq, random MAC
  or none), which the device must not take as the acknowledgement.

Bounds that keep the real gateway's session alive (it gives up a frame after 5 attempts):
nothing is impaired before the first session frame (the first handshake runs clean:
failed handshakes lock 127.0.0.1 out of the gateway; later handshakes, e.g. after a
reconnect, are impaired like everything else), and each exchange (one frame of one device
address, its retransmissions and the UTACKs for them) is dropped or held at most
--max-impair times in all (default 1; 0 = no bound, every datagram takes its chances). The
budget is per exchange, not per datagram, because losses compound: while the device waits
for the UTACK of its own frame it does not acknowledge the gateway's frames (the library
leaves them to the gateway's retransmission), so every attempt the device spends waiting
can also cost the gateway an attempt of its frame. With a per-datagram budget of 2 (a
device frame and its UTACK each lost twice, plus the gateway's frame dropped twice) a
50-echo run at 8 % loss killed the 1.2.2 session in 1 of 10 seeds.

--v1-safe (for the usmp 0.5.1 gateway) never lets a second copy of a device frame reach
the gateway while the gateway waits for an acknowledgement: that
gateway buffers datagrams as a byte stream and deduplicates only frames it has already
processed, so a duplicate that arrives while its handler is blocked in a send is processed
twice and ends the session with SequenceError (PROTOCOL.md section 12). In that mode device
frames are not duplicated or reordered, and the gateway's UTACKs are not dropped or held
while the gateway itself waits for one.

A targeted fault, for reproducing one case: --drop-utack TYPE:N drops the first N UTACKs
the gateway sends for device frames of TYPE (e.g. 3:3 = the acknowledgement of HELLO_ACK,
three times), whatever the rates and even during the handshake.

At exit (--duration, SIGTERM/SIGINT) the counters are written as JSON to --stats-file and
printed as one ``PROXY {...}`` line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import struct
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from usmp_wire import HEADER_LEN as HEADER, MAGIC as FRAME_MAGIC, refix_crc  # noqa: E402

UTACK_MAGIC = b"\xac\xac"
SESSION_TYPES = {0x05, 0x06, 0x07, 0x08, 0x09, 0x0B}
C2G, G2C = "device->gateway", "gateway->device"
SPOOF_KINDS = ("bad_tag", "bad_crc", "truncated", "bad_version", "garbage", "replay")


def is_frame(d: bytes) -> bool:
    return len(d) >= HEADER and d[:2] == FRAME_MAGIC


def frame_type(d: bytes) -> int:
    return d[3] if is_frame(d) else -1


def is_utack(d: bytes) -> bool:
    return len(d) >= 7 and d[:2] == UTACK_MAGIC


class Direction:
    def __init__(self, name: str) -> None:
        self.name = name
        self.n = 0
        self.counts = {"in": 0, "forwarded": 0, "dropped": 0, "duplicated": 0, "reordered": 0}
        self.held: list[tuple[bytes, Any, asyncio.TimerHandle]] = []


class Proxy:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.dirs = {C2G: Direction(C2G), G2C: Direction(G2C)}
        self.impaired: dict[tuple[Any, str, int, int], int] = {}
        self.spoofs = {k: 0 for k in SPOOF_KINDS + ("forged_utack",)}
        self.session_started = False
        self.down: asyncio.DatagramTransport | None = None
        self.ups: dict[Any, asyncio.DatagramTransport] = {}
        self.history: list[bytes] = []       # authentic gateway session frames, for replays
        self.gw_waiting: bytes | None = None  # header key of the gateway frame awaiting an ACK
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.utack_drops: dict[int, int] = {}
        for spec in args.drop_utack or []:
            ty, n = spec.split(":")
            self.utack_drops[int(ty, 0)] = int(n)
        self.targeted = 0
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------ plumbing

    def note(self, what: str, d: bytes, addr: Any) -> None:
        """One line per decision: time, direction and decision, length, frame or UTACK
        type and seq, and the device's port (one per session of a reconnecting device)."""
        if self.log is not None:
            kind = (f"type=0x{frame_type(d):02x} seq={struct.unpack_from('<I', d, 4)[0]}" if is_frame(d)
                    else f"utack type=0x{d[2]:02x} seq={struct.unpack_from('<I', d, 3)[0]}" if is_utack(d)
                    else "other")
            self.log.write(f"{time.monotonic() - self.t0:8.3f} {what} len={len(d)} {kind} dev={addr[1]}\n")

    def emit(self, direction: str, d: bytes, addr: Any) -> None:
        if direction == C2G and is_utack(d) and self.gw_waiting is not None and d[2:7] == self.gw_waiting:
            self.gw_waiting = None  # the gateway gets its acknowledgement now
        if direction == C2G:
            up = self.ups.get(addr)
            if up is not None and not up.is_closing():
                up.sendto(d)
        elif self.down is not None:
            self.down.sendto(d, addr)

    def forward(self, direction: str, d: bytes, addr: Any) -> None:
        dr = self.dirs[direction]
        dr.counts["forwarded"] += 1
        self.note(f"{direction} fwd", d, addr)
        self.emit(direction, d, addr)
        # Held datagrams of this direction now follow this one (reordering).
        loop = asyncio.get_running_loop()
        for item in list(dr.held):
            dr.held.remove(item)
            item[2].cancel()
            loop.call_later(0.030, self.release, direction, item[0], item[1])

    def release(self, direction: str, d: bytes, addr: Any) -> None:
        self.note(f"{direction} late", d, addr)
        self.emit(direction, d, addr)

    def release_held(self, direction: str, d: bytes, addr: Any) -> None:
        dr = self.dirs[direction]
        dr.held = [h for h in dr.held if h[0] is not d]
        self.release(direction, d, addr)

    # ------------------------------------------------------------------ impairment

    @staticmethod
    def exchange(direction: str, d: bytes, addr: Any) -> tuple[Any, str, int, int] | None:
        """The exchange a datagram belongs to: (device address, sender of the frame, type,
        seq). The address keeps the sessions of a reconnecting device apart (each dials
        from a new port and numbers its frames from 0 again)."""
        if is_frame(d):
            return (addr, "device" if direction == C2G else "gateway", d[3], struct.unpack_from("<I", d, 4)[0])
        if is_utack(d):
            return (addr, "gateway" if direction == C2G else "device", d[2], struct.unpack_from("<I", d, 3)[0])
        return None

    def may_impair(self, direction: str, d: bytes, addr: Any) -> bool:
        if not self.session_started:
            return False
        key = self.exchange(direction, d, addr)
        bound = self.args.max_impair
        if key is None or (bound > 0 and self.impaired.get(key, 0) >= bound):
            return False
        if self.args.v1_safe:
            if direction == G2C and is_utack(d) and self.gw_waiting is not None:
                return False  # a retransmitted device frame would reach a blocked gateway
        return True

    def may_copy(self, direction: str, d: bytes) -> bool:
        """Duplicates and reordering are allowed for this datagram."""
        if not self.session_started:
            return False
        if self.args.v1_safe and direction == C2G and is_frame(d):
            return False
        return True

    def on_datagram(self, direction: str, d: bytes, addr: Any) -> None:
        dr = self.dirs[direction]
        dr.n += 1
        dr.counts["in"] += 1
        if is_frame(d) and frame_type(d) in SESSION_TYPES:
            self.session_started = True
            if direction == G2C:
                self.gw_waiting = d[3:8]  # the gateway now blocks until this frame is acknowledged
        rng = self.rng
        r_drop, r_reorder, r_dup, r_spoof = rng.random(), rng.random(), rng.random(), rng.random()
        kind_pick, extra = rng.random(), rng.random()
        loop = asyncio.get_running_loop()

        if direction == G2C and is_utack(d) and self.utack_drops.get(d[2], 0) > 0:
            self.utack_drops[d[2]] -= 1
            self.targeted += 1
            dr.counts["dropped"] += 1
            self.note(f"{direction} DROP (targeted)", d, addr)
            return

        if self.args.spoof > 0 and self.session_started and r_spoof < self.args.spoof:
            self.spoof(direction, d, addr, kind_pick, extra)

        impair = self.may_impair(direction, d, addr)
        key = self.exchange(direction, d, addr)
        if impair and key is not None and r_drop < self.args.drop:
            self.impaired[key] = self.impaired.get(key, 0) + 1
            dr.counts["dropped"] += 1
            self.note(f"{direction} DROP", d, addr)
        elif impair and key is not None and self.may_copy(direction, d) and r_reorder < self.args.reorder:
            self.impaired[key] = self.impaired.get(key, 0) + 1
            dr.counts["reordered"] += 1
            self.note(f"{direction} HOLD", d, addr)
            h = loop.call_later(0.120, self.release_held, direction, d, addr)
            dr.held.append((d, addr, h))
        else:
            self.forward(direction, d, addr)

        if self.may_copy(direction, d) and r_dup < self.args.dup:
            dr.counts["duplicated"] += 1
            self.note(f"{direction} DUP", d, addr)
            loop.call_later(0.005 + 0.035 * extra, self.release, direction, d, addr)

        if direction == G2C and is_frame(d) and frame_type(d) in SESSION_TYPES:
            self.history.append(d)
            del self.history[:-16]

    def spoof(self, direction: str, d: bytes, addr: Any, pick: float, extra: float) -> None:
        rng = self.rng
        if direction == C2G:
            # A forged acknowledgement of the device frame now in flight.
            if not (is_frame(d) and frame_type(d) in SESSION_TYPES):
                return
            head = UTACK_MAGIC + d[3:8]
            forged = head + (bytes(rng.getrandbits(8) for _ in range(8)) if extra < 0.8 else b"")
            self.spoofs["forged_utack"] += 1
            self.note(f"{G2C} SPOOF forged_utack", forged, addr)
            self.emit(G2C, forged, addr)
            return
        if not (is_frame(d) and frame_type(d) in SESSION_TYPES):
            return
        kind = SPOOF_KINDS[int(pick * len(SPOOF_KINDS)) % len(SPOOF_KINDS)]
        b = bytearray(d)
        if kind == "bad_tag":
            i = HEADER + 12 + int(extra * (len(b) - HEADER - 12))  # ciphertext or tag
            b[min(i, len(b) - 1)] ^= 0x01 << int(extra * 8) % 8
            out = refix_crc(b)
        elif kind == "bad_crc":
            b[len(b) - 1] ^= 0x80
            out = bytes(b)
        elif kind == "truncated":
            out = bytes(b[: max(1, int(len(b) * extra))])
        elif kind == "bad_version":
            b[2] ^= 0x03
            out = refix_crc(b)
        elif kind == "garbage":
            out = bytes(rng.getrandbits(8) for _ in range(1 + int(extra * 599)))
        else:  # replay of an older authentic frame
            if len(self.history) < 3:
                return
            out = self.history[int(extra * (len(self.history) - 2))]
        self.spoofs[kind] += 1
        self.note(f"{G2C} SPOOF {kind}", out, addr)
        self.emit(G2C, out, addr)

    def stats(self) -> dict[str, Any]:
        return {
            "seed": self.args.seed,
            "rates": {"drop": self.args.drop, "dup": self.args.dup, "reorder": self.args.reorder,
                      "spoof": self.args.spoof, "max_impair": self.args.max_impair,
                      "v1_safe": self.args.v1_safe},
            C2G: self.dirs[C2G].counts,
            G2C: self.dirs[G2C].counts,
            "spoofs_to_device": self.spoofs,
            "targeted_utack_drops": self.targeted,
            "device_addresses": len(self.ups),
        }


class Downstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: Proxy) -> None:
        self.p = proxy

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if addr not in self.p.ups:
            asyncio.ensure_future(self.p_open(addr, data))
            return
        self.p.on_datagram(C2G, data, addr)

    async def p_open(self, addr: Any, first: bytes) -> None:
        p = self.p
        if addr in p.ups:
            p.on_datagram(C2G, first, addr)
            return
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(lambda: Upstream(p, addr), local_addr=("127.0.0.1", 0),
                                                   remote_addr=("127.0.0.1", p.args.upstream_port))
        p.ups[addr] = t
        p.on_datagram(C2G, first, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: Proxy, device: Any) -> None:
        self.p = proxy
        self.device = device

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.p.on_datagram(G2C, data, self.device)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP from a gateway that is gone: the device's retransmission handles it


async def main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    proxy = Proxy(args)
    proxy.down, _ = await loop.create_datagram_endpoint(lambda: Downstream(proxy),
                                                        local_addr=("127.0.0.1", args.port))
    port = proxy.down.get_extra_info("sockname")[1]
    line = f"READY udp {port} upstream={args.upstream_port} seed={args.seed}"
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(line + "\n")
        os.replace(tmp, args.ready_file)
    print(line, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.duration)
    except asyncio.TimeoutError:
        pass
    st = proxy.stats()
    if args.stats_file:
        tmp = args.stats_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(st, fh, indent=1)
        os.replace(tmp, args.stats_file)
    print("PROXY " + json.dumps(st), flush=True)
    proxy.down.close()
    for t in proxy.ups.values():
        t.close()
    return 0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="device-side port on 127.0.0.1 (0 = any)")
    ap.add_argument("--upstream-port", type=int, required=True, help="the gateway's UDP port on 127.0.0.1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--drop", type=float, default=0.08)
    ap.add_argument("--dup", type=float, default=0.05)
    ap.add_argument("--reorder", type=float, default=0.05)
    ap.add_argument("--spoof", type=float, default=0.0, help="forgeries toward the device (v2 only)")
    ap.add_argument("--max-impair", type=int, default=1,
                    help="drops + holds per exchange (a frame, its retransmissions, their UTACKs); 0 = no bound")
    ap.add_argument("--v1-safe", action="store_true", help="for the usmp 0.5.1 gateway (see above)")
    ap.add_argument("--drop-utack", action="append", metavar="TYPE:N",
                    help="drop the first N gateway UTACKs for device frames of TYPE (repeatable)")
    ap.add_argument("--duration", type=float, default=60.0, help="exit after this many seconds")
    ap.add_argument("--ready-file")
    ap.add_argument("--stats-file")
    ap.add_argument("--log", help="one line per datagram decision")
    return ap.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
