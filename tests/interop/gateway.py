#!/usr/bin/env python3
"""Test gateway for the interop suite: the REAL PyPI `usmp` server on 127.0.0.1,
over TCP (default) or UDP (--proto udp: USMPServer(..., protocol="udp")).

Run it with the interpreter of a virtualenv that has `usmp` installed:
usmp==1.2.2 speaks wire v2 (0x02), usmp==0.5.1 speaks wire v1 (0x01). Both
package APIs are supported; nothing of the protocol is reimplemented here.
Every session gets the same handler: each message is echoed back, except the
commands below (ASCII messages starting with ``cmd:``), which the test client
uses to make the gateway act on its own:

    cmd:ping    the gateway sends a PING (session.ping()), then the message
                "ping-sent". The device must answer the PING with a PONG.
    cmd:stats   reply "msgs=N lens=a,b,... pings=P pongs=Q rekeys=R frames=F"
                for this session: N messages received before this command
                (commands included), the lengths of the non-command ones, and the
                authenticated PING / PONG / REKEY frames the gateway has read.
    cmd:rekey   v2: session.rekey() (gateway-initiated REKEY), then the message
                "rekey-done" under the new keys. v1: reply "rekey-unsupported".
    cmd:bye     session.bye(): BYE, then the gateway closes the connection.

With --ping-every-ms N each session also runs a task that PINGs the device every N ms
(session.ping()), concurrently with the echo handler; "cmd:stats" reports pings_sent.

UDP: cmd:stats also reports "gw_tx=T gw_retx=R", the frames this gateway sent
to the session's address and how many of them were retransmissions (the same
datagram again: the package's stop-and-wait ARQ).

Output:
  * stdout: one line ``READY tcp|udp <port> usmp=<version> wire=0x0N`` once the
    listening socket is bound (also written to --ready-file when given).
  * --log FILE: JSON lines, one per event, flushed at once. Every line has
    "t" (unix time), "ev" and, for session events, "sid" (1, 2, ... in order of
    session start) and "session" (the session id hex). Events: listening,
    session_open, frame (an authenticated frame: "type", "seq", "len"), message
    ("len", "sha256", "cmd" when it is a command), ping_sent, rekey_sent,
    bye_sent, reply, closed ("reason", "exc", "last_frame"), and lib (a record of
    the package's own `usmp.*` loggers: "level", "logger", "msg").
    UDP only: udp_hello ("len": 50 = plain HELLO, 66 = HELLO with the v2 cookie;
    "addr"), hello_retry_sent ("addr", "len": the HELLO_RETRY frame the package
    sent, i.e. the v2 cookie round), and frame_dropped (a frame the session read
    but did not accept: duplicate, outside the window, not authentic).

How frames are observed (the package has no event API for PING/PONG): the
session's frame reader is wrapped (1.2.2: the method ``read_frame`` of this
session's transport object; 0.5.1: the module function ``usmp._session.read_frame``
that the session calls, dispatched by the session's stream reader). The wrapper
only looks at the frames, it never changes them. A frame is logged as "frame"
only once the package's ``recv()`` has accepted it. On TCP that is when
``recv()`` asks for the next frame or returns: the package checks the CRC, the
AEAD tag and the exact sequence number of every session frame before it goes
on, and any failure ends the session, so a logged frame was authentic and in
order. On UDP the session silently drops what fails (duplicates, forgeries), so
instead the transport's ``confirm_authenticated(seq)`` is wrapped (both versions
call it right after a frame passed decryption and the sequence/window check);
a frame read but never confirmed is logged as "frame_dropped". Its "rx_t" is
the time it was read (the line's "t" is the time it was accepted). A frame
that made ``recv()`` raise is reported as "last_frame" of the "closed" event
instead (on UDP, where the BYE is confirmed before it raises, the last accepted
frame). To learn the bound port, ``asyncio.start_server`` (which both versions
call to listen) is wrapped so the server object can be read; on UDP the
package's ``ServerUDPProtocol.connection_made`` is wrapped to get the datagram
transport, whose ``sendto`` is wrapped (read-only) to see HELLO_RETRY and count
retransmissions, and ``datagram_received`` to see the HELLO sizes.

Stop it with SIGTERM/SIGINT (1.2.2 shuts down cleanly; 0.5.1 just exits) or
SIGKILL (the reconnect test simulates a crash that way).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import time
import weakref
from typing import Any

import usmp
import usmp._session as usmp_session_mod
from usmp import types as usmp_types

WIRE = usmp_types.USMP_VERSION
PT = usmp_types.PacketType


class EventLog:
    def __init__(self, path: str | None) -> None:
        self._fh = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def write(self, ev: str, **fields: Any) -> None:
        rec = {"t": round(time.time(), 4), "ev": ev, **fields}
        line = json.dumps(rec, ensure_ascii=False)
        if self._fh is not None:
            self._fh.write(line + "\n")
            self._fh.flush()
        print(line, file=sys.stderr, flush=True)


class LibLogHandler(logging.Handler):
    """Forwards the package's own log records into the event log."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(level=logging.DEBUG)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._log.write("lib", level=record.levelname, logger=record.name, msg=record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never break the gateway
            pass


def type_name(t: int) -> str:
    try:
        return PT(t).name
    except ValueError:
        return f"0x{t:02X}"


class FrameObserver:
    """Per-session bookkeeping of the frames the package's recv() accepted."""

    def __init__(self, log: EventLog, sid: int, session_hex: str, udp: bool = False) -> None:
        self.log = log
        self.sid = sid
        self.session_hex = session_hex
        self.udp = udp
        self.pending: Any = None
        self.pending_t = 0.0
        self.counts: dict[str, int] = {}
        self.frames = 0
        self.dropped = 0
        self.last_committed: dict[str, Any] | None = None

    def on_read(self, frame: Any) -> None:
        if self.udp:
            # UDP: a frame is accepted only through confirm_authenticated(); one that is
            # still pending when the next is read was dropped by the session.
            if self.pending is not None:
                f = self.pending
                self.dropped += 1
                self.log.write("frame_dropped", sid=self.sid, type=type_name(int(f.type)),
                               seq=int(f.seq), len=int(f.length))
        else:
            # TCP: recv() asked for another frame, so the previous one passed every check.
            self.commit()
        self.pending = frame
        self.pending_t = time.time()

    def on_confirm(self, seq: int) -> None:
        if self.pending is not None and int(self.pending.seq) == int(seq):
            self.commit()

    def commit(self) -> None:
        f = self.pending
        if f is None:
            return
        self.pending = None
        self.pending_t_committed = self.pending_t
        name = type_name(int(f.type))
        self.counts[name] = self.counts.get(name, 0) + 1
        self.frames += 1
        self.last_committed = {"type": name, "seq": int(f.seq), "len": int(f.length)}
        self.log.write("frame", sid=self.sid, session=self.session_hex, type=name, seq=int(f.seq),
                       len=int(f.length), rx_t=round(self.pending_t_committed, 4))

    def last_frame(self) -> dict[str, Any] | None:
        f = self.pending
        if f is None:
            return self.last_committed if self.udp else None
        return {"type": type_name(int(f.type)), "seq": int(f.seq), "len": int(f.length)}


# 0.5.1: USMPSession.recv() calls the module-level read_frame(reader).
_observers_by_reader: "weakref.WeakKeyDictionary[Any, FrameObserver]" = weakref.WeakKeyDictionary()


def _install_v1_reader_hook() -> None:
    orig = usmp_session_mod.read_frame

    async def observed_read_frame(reader: Any, *args: Any, **kwargs: Any) -> Any:
        frame = await orig(reader, *args, **kwargs)
        obs = _observers_by_reader.get(reader)
        if obs is not None:
            obs.on_read(frame)
        return frame

    usmp_session_mod.read_frame = observed_read_frame


def _hook_confirm(stream: Any, obs: FrameObserver) -> None:
    orig = getattr(stream, "confirm_authenticated", None)
    if orig is None:
        return

    def observed_confirm(seq: int) -> None:
        orig(seq)
        obs.on_confirm(seq)

    stream.confirm_authenticated = observed_confirm  # instance attribute: this session only


def attach_observer(session: Any, obs: FrameObserver) -> None:
    if obs.udp:
        _hook_confirm(getattr(session, "_transport", None) or session._reader, obs)
    transport = getattr(session, "_transport", None)
    if transport is not None and hasattr(transport, "read_frame"):
        orig = transport.read_frame

        async def observed(*args: Any, **kwargs: Any) -> Any:
            frame = await orig(*args, **kwargs)
            obs.on_read(frame)
            return frame

        transport.read_frame = observed  # instance attribute: this session only
    else:
        _observers_by_reader[session._reader] = obs


_bound_servers: list[Any] = []


def _install_start_server_hook() -> None:
    orig = asyncio.start_server

    async def recording_start_server(*args: Any, **kwargs: Any) -> Any:
        srv = await orig(*args, **kwargs)
        _bound_servers.append(srv)
        return srv

    asyncio.start_server = recording_start_server  # type: ignore[assignment]


class UdpWatch:
    """Read-only view of the UDP gateway's datagrams: HELLO sizes in, HELLO_RETRY and
    retransmissions out. Installed on the package's ServerUDPProtocol (both versions)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.transports: list[Any] = []
        self.last_tx: dict[tuple[str, int], bytes] = {}
        self.tx: dict[tuple[str, int], int] = {}
        self.retx: dict[tuple[str, int], int] = {}

    def on_datagram(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and data[:2] == b"\xcd\xab" and data[3] == 0x01:
            self.log.write("udp_hello", addr=f"{addr[0]}:{addr[1]}", len=len(data))

    def on_sendto(self, data: bytes, addr: Any) -> None:
        if addr is None or len(data) < 12 or data[:2] != b"\xcd\xab":
            return  # UTACKs and anything else: not counted
        key = (addr[0], addr[1])
        self.tx[key] = self.tx.get(key, 0) + 1
        if self.last_tx.get(key) == bytes(data):
            self.retx[key] = self.retx.get(key, 0) + 1
        self.last_tx[key] = bytes(data)
        if data[3] == 0x0A:
            self.log.write("hello_retry_sent", addr=f"{addr[0]}:{addr[1]}", len=len(data))

    def install(self) -> None:
        from usmp.transport import udp as udp_mod

        cls = udp_mod.ServerUDPProtocol
        orig_made = cls.connection_made
        orig_rx = cls.datagram_received
        watch = self

        def connection_made(proto: Any, transport: Any) -> None:
            orig_made(proto, transport)
            watch.transports.append(transport)
            orig_sendto = transport.sendto

            def sendto(data: Any, addr: Any = None) -> None:
                try:
                    watch.on_sendto(bytes(data), addr)
                except Exception:  # noqa: BLE001 - observing must never break the gateway
                    pass
                orig_sendto(data, addr)

            transport.sendto = sendto  # instance attribute of this endpoint only

        def datagram_received(proto: Any, data: bytes, addr: Any) -> None:
            try:
                watch.on_datagram(data, addr)
            except Exception:  # noqa: BLE001
                pass
            orig_rx(proto, data, addr)

        cls.connection_made = connection_made
        cls.datagram_received = datagram_received


def session_addr(session: Any) -> tuple[str, int] | None:
    stream = getattr(session, "_transport", None) or getattr(session, "_reader", None)
    addr = getattr(stream, "_remote_addr", None)
    return (addr[0], addr[1]) if addr else None


def build_parser(description: str | None = __doc__) -> argparse.ArgumentParser:
    """The options every gateway script of the tests takes (tests/ota/ota_gateway.py adds its own)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--proto", choices=("tcp", "udp"), default="tcp", help="transport (default tcp)")
    k = ap.add_mutually_exclusive_group()
    k.add_argument("--psk", help="PSK as text (UTF-8)")
    k.add_argument("--psk-hex", help="PSK as hex")
    ap.add_argument("--session-timeout", type=float, default=60.0)
    ap.add_argument("--handshake-timeout", type=float, default=10.0)
    ap.add_argument("--ready-file")
    ap.add_argument("--log", help="JSON-lines event log")
    ap.add_argument("--lib-log-level", default="INFO", help="level of usmp.* records copied to the log")
    ap.add_argument("--ping-every-ms", type=float, default=0.0,
                    help="each session also PINGs the device on its own this often (ms), "
                         "concurrently with the echo handler (0 = never)")
    return ap


def parse_args() -> argparse.Namespace:
    return build_parser().parse_args()


def psk_of(args: argparse.Namespace) -> bytes:
    return bytes.fromhex(args.psk_hex) if args.psk_hex else (args.psk or "usmp-dev-psk-change-me-before-prod").encode()


def new_server(args: argparse.Namespace) -> Any:
    """The package's USMPServer on 127.0.0.1 with the options above."""
    return usmp.USMPServer(host="127.0.0.1", port=args.port, psk=psk_of(args),
                           handshake_timeout=args.handshake_timeout,
                           session_timeout=args.session_timeout, protocol=args.proto)


async def run(args: argparse.Namespace, log: EventLog, watch: UdpWatch | None) -> int:
    server = new_server(args)
    counter = {"n": 0}

    @server.on_session
    async def handler(session: Any) -> None:
        counter["n"] += 1
        sid = counter["n"]
        shex = session.session_id
        obs = FrameObserver(log, sid, shex, udp=args.proto == "udp")
        attach_observer(session, obs)
        log.write("session_open", sid=sid, session=shex, device=session.device_id)
        msgs = 0
        lens: list[int] = []
        rekeys_sent = 0

        async def reply(data: bytes) -> None:
            await session.send(data)
            log.write("reply", sid=sid, len=len(data), text=data[:64].decode("latin-1"))

        pings = {"sent": 0}

        async def pinger() -> None:
            # The package serialises its own frames (one send lock per session), so these
            # PINGs never split a message the echo handler is sending.
            while True:
                await asyncio.sleep(args.ping_every_ms / 1000.0)
                await session.ping()
                pings["sent"] += 1

        ping_task = asyncio.ensure_future(pinger()) if args.ping_every_ms > 0 else None

        try:
            while True:
                data = await session.recv()
                obs.commit()
                msgs += 1
                is_cmd = data.startswith(b"cmd:")
                log.write("message", sid=sid, len=len(data), sha256=hashlib.sha256(data).hexdigest()[:16],
                          cmd=data.decode("latin-1") if is_cmd else None)
                if not is_cmd:
                    lens.append(len(data))
                    await session.send(data)
                    continue
                cmd = data[4:].decode("latin-1")
                if cmd == "ping":
                    await session.ping()
                    log.write("ping_sent", sid=sid)
                    await reply(b"ping-sent")
                elif cmd == "stats":
                    text = (f"msgs={msgs - 1} lens={','.join(map(str, lens))} "
                            f"pings={obs.counts.get('PING', 0)} pongs={obs.counts.get('PONG', 0)} "
                            f"rekeys={obs.counts.get('REKEY', 0)} rekeys_sent={rekeys_sent} frames={obs.frames}"
                            f" pings_sent={pings['sent']}")
                    if watch is not None:
                        addr = session_addr(session)
                        text += (f" dropped={obs.dropped} gw_tx={watch.tx.get(addr, 0)}"
                                 f" gw_retx={watch.retx.get(addr, 0)}")
                    await reply(text.encode())
                elif cmd == "rekey":
                    if hasattr(session, "rekey"):
                        await session.rekey()
                        rekeys_sent += 1
                        log.write("rekey_sent", sid=sid)
                        await reply(b"rekey-done")
                    else:
                        await reply(b"rekey-unsupported")
                elif cmd == "bye":
                    log.write("bye_sent", sid=sid)
                    await session.bye()
                    log.write("closed", sid=sid, reason="gateway sent BYE", exc=None, last_frame=None)
                    return
                else:
                    await reply(b"unknown-command")
        except asyncio.CancelledError:
            log.write("closed", sid=sid, reason="gateway shutting down", exc="CancelledError",
                      last_frame=obs.last_frame())
            raise
        except BaseException as e:  # noqa: BLE001 - record why the session ended, then let the server log it
            log.write("closed", sid=sid, reason=str(e) or type(e).__name__, exc=type(e).__name__,
                      last_frame=obs.last_frame())
            raise
        finally:
            if ping_task is not None:
                ping_task.cancel()
                log.write("pinger", sid=sid, pings_sent=pings["sent"])

    return await serve_ready(server, args, log, watch)


async def serve_ready(server: Any, args: argparse.Namespace, log: EventLog, watch: UdpWatch | None) -> int:
    """Serves until stopped, after announcing the bound port (stdout and --ready-file)."""
    serve_task = asyncio.ensure_future(server.serve())
    deadline = time.monotonic() + 10.0
    while not (watch.transports if watch is not None else _bound_servers):
        if serve_task.done():
            serve_task.result()  # raises, e.g. address in use
            return 2
        if time.monotonic() > deadline:
            print("gateway: listener did not start", file=sys.stderr)
            return 2
        await asyncio.sleep(0.01)
    if watch is not None:
        port = watch.transports[0].get_extra_info("sockname")[1]
    else:
        port = _bound_servers[0].sockets[0].getsockname()[1]
    line = f"READY {args.proto} {port} usmp={usmp.__version__} wire=0x{WIRE:02X}"
    log.write("listening", proto=args.proto, port=port, usmp=usmp.__version__, wire=WIRE, pid=os.getpid())
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(line + "\n")
        os.replace(tmp, args.ready_file)
    print(line, flush=True)
    try:
        await serve_task
    except asyncio.CancelledError:
        pass
    log.write("stopped")
    return 0


def main(run_fn: Any = None, args: argparse.Namespace | None = None) -> int:
    """Sets up logging and the observers, then runs `run_fn(args, log, watch)` (default: the
    echo gateway above)."""
    args = args if args is not None else parse_args()
    run_fn = run_fn or run
    log = EventLog(args.log)
    lib_logger = logging.getLogger("usmp")
    lib_logger.setLevel(getattr(logging, args.lib_log_level.upper(), logging.INFO))
    lib_logger.addHandler(LibLogHandler(log))
    if hasattr(usmp_session_mod, "read_frame") and not hasattr(usmp_session_mod.USMPSession, "_send_encrypted_locked"):
        _install_v1_reader_hook()
    _install_start_server_hook()
    watch = None
    if args.proto == "udp":
        watch = UdpWatch(log)
        watch.install()
    try:
        return asyncio.run(run_fn(args, log, watch))
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"gateway: {e}", file=sys.stderr, flush=True)
        log.write("error", msg=str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
