#!/usr/bin/env python3
"""OTA test gateway: the REAL PyPI usmp server, set up and observed exactly as
tests/interop/gateway.py does (same options, READY line, JSON event log), whose session
handler pushes a signed bundle with python/usmp_ota.py's push_update — what an operator's
gateway does. Options beyond gateway.py's:

  --bundle PATH      the bundle pushed to every session (from `usmp ota sign`)
  --no-check         push without first checking the image against the manifest (a
                     careless or hostile gateway: the device has to catch it)
  --pause-at N       first session only: stop sending once N bytes are acknowledged and log
                     "paused" (the test then kills this process mid-transfer)
  --max-chunk N      largest chunk to send
  --behave NAME      instead of push_update, a hostile sequence built from the module's
                     encoders: truncate (DONE after half the image), overlap (the second
                     chunk starts inside the first), out-of-order (the second chunk first),
                     extra-bytes (one chunk past the manifest's size)

Events (besides gateway.py's): push_start (session), progress (sent, size), pushed
(version, size, resumed_from, chunks), refused (status, name, offset), push_error (exc,
msg), paused (sent), reply (hostile modes: each device answer).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "interop"))
sys.path.insert(0, str(REPO / "python"))
import gateway  # noqa: E402  tests/interop/gateway.py: setup, observers, READY
import usmp_ota as ota  # noqa: E402


async def hostile(session: Any, b: ota.Bundle, how: str, log: gateway.EventLog, sid: int) -> None:
    """Offers a valid bundle, then breaks the transfer the way `how` says; logs each answer."""
    async def ask(msg: bytes) -> ota.Message:
        await session.send(msg)
        r = await ota.receive_reply(session, 10.0)
        log.write("reply", sid=sid, kind=r.kind.name, offset=r.offset, status=r.status,
                  name=ota.status_name(r.status) if r.kind == ota.Kind.RESULT else None)
        return r

    r = await ask(ota.encode_offer(b.manifest_bytes, b.signature))
    if r.kind != ota.Kind.ACCEPT:
        return
    img, c = b.image, r.max_chunk
    steps: list[bytes] = []
    if how == "truncate":
        half = len(img) // 2
        steps = [ota.encode_chunk(o, img[o:min(o + c, half)]) for o in range(0, half, c)]
        steps.append(ota.encode_done())
    elif how == "overlap":
        steps = [ota.encode_chunk(0, img[:c]), ota.encode_chunk(c // 2, img[c // 2:c // 2 + c])]
    elif how == "out-of-order":
        steps = [ota.encode_chunk(c, img[c:2 * c]), ota.encode_chunk(0, img[:c])]
    elif how == "extra-bytes":
        steps = [ota.encode_chunk(o, img[o:o + c]) for o in range(0, len(img), c)]
        steps.append(ota.encode_chunk(len(img), b"\x00" * 16))
        steps.append(ota.encode_done())
    for msg in steps:
        r = await ask(msg)
        if r.kind == ota.Kind.RESULT:
            if r.status != ota.Status.OK:
                log.write("refused", sid=sid, status=r.status, name=ota.status_name(r.status),
                          offset=r.offset)
            return


async def run(args: argparse.Namespace, log: gateway.EventLog, watch: Any) -> int:
    bundle = ota.Bundle.from_file(args.bundle)
    server = gateway.new_server(args)
    counter = {"n": 0}

    @server.on_session
    async def handler(session: Any) -> None:
        counter["n"] += 1
        sid = counter["n"]
        log.write("session_open", sid=sid, session=session.session_id, device=session.device_id)
        log.write("push_start", sid=sid)

        async def progress(p: ota.Progress) -> None:
            log.write("progress", sid=sid, sent=p.sent, size=p.size, resumed_from=p.resumed_from)
            if sid == 1 and args.pause_at is not None and p.sent >= args.pause_at:
                log.write("paused", sid=sid, sent=p.sent)
                await asyncio.Event().wait()  # until the test kills this process

        try:
            if args.behave:
                await hostile(session, bundle, args.behave, log, sid)
            else:
                res = await ota.push_update(session, bundle, progress=progress, check=not args.no_check,
                                            max_chunk=args.max_chunk, timeout=10.0)
                log.write("pushed", sid=sid, version=res.version, size=res.size,
                          resumed_from=res.resumed_from, chunks=res.chunks, seconds=round(res.seconds, 3))
        except ota.UpdateRefused as e:
            log.write("refused", sid=sid, status=e.status, name=e.name, offset=e.offset)
        except Exception as e:  # noqa: BLE001 - recorded for the test, then the session ends
            log.write("push_error", sid=sid, exc=type(e).__name__, msg=str(e))
            return
        # The device closes the session when it has its outcome; wait for that.
        try:
            while True:
                await asyncio.wait_for(session.recv(), 15.0)
        except Exception as e:  # noqa: BLE001
            log.write("closed", sid=sid, reason=str(e) or type(e).__name__, exc=type(e).__name__)

    return await gateway.serve_ready(server, args, log, watch)


def main() -> int:
    ap = gateway.build_parser(__doc__)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--pause-at", type=int)
    ap.add_argument("--max-chunk", type=int, default=ota.MAX_CHUNK)
    ap.add_argument("--behave", choices=("truncate", "overlap", "out-of-order", "extra-bytes"))
    return gateway.main(run, ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
