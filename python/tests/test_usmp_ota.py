"""Tests of usmp_ota, the gateway-side push helper.

1. Bytes: the bundle and every message against tests/ota/vectors.json (written by the
   Rust encoder, tests/ota.rs), so gateway and device agree byte for byte.
2. push_update's conduct inside a REAL gateway: the PyPI usmp 1.2.2 USMPServer runs the
   handler that calls push_update; the peer is the package's own USMPClient playing a
   device by a script (answers chosen per test: resume offset, a refusal, a wrong ACK, an
   application message in between, silence). The C device and the firmware are tested
   against the same helper end to end in tests/ota/test_ota.py and tests/stm32.

Run: .venv-interop/v2/bin/python -m pytest python/tests -q
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
import usmp_ota as ota  # noqa: E402

VECTORS = json.loads((REPO / "tests" / "ota" / "vectors.json").read_text())
PSK = b"usmp-ota-python-test-psk-0123456"


def vector_bundle() -> ota.Bundle:
    return ota.Bundle(bytes.fromhex(VECTORS["manifest"]), bytes.fromhex(VECTORS["signature"]),
                      bytes.fromhex(VECTORS["image"]))


# --------------------------------------------------------------------------- bytes

def test_bundle_and_manifest_match_the_vectors() -> None:
    b = vector_bundle()
    raw = b.to_bytes()
    assert hashlib.sha256(raw).hexdigest() == VECTORS["bundle_sha256"]
    again = ota.Bundle.from_bytes(raw)
    assert again == b
    again.check()
    m = again.manifest
    assert (m.image_size, m.version, m.product) == (1000, VECTORS["version"], VECTORS["product"])
    assert m.key_id.hex() == VECTORS["key_id"]
    assert m.encode() == b.manifest_bytes


def test_messages_match_the_vectors() -> None:
    msgs = {k: bytes.fromhex(v) for k, v in VECTORS["messages"].items()}
    b = vector_bundle()
    assert ota.encode_offer(b.manifest_bytes, b.signature) == msgs["offer"]
    assert ota.encode_chunk(600, b.image[600:616]) == msgs["chunk"]
    assert ota.encode_done() == msgs["done"]
    assert ota.encode_abort() == msgs["abort"]
    assert ota.decode(msgs["accept"]) == ota.Message(ota.Kind.ACCEPT, offset=600, max_chunk=1800)
    assert ota.decode(msgs["ack"]) == ota.Message(ota.Kind.ACK, offset=616)
    assert ota.decode(msgs["result_installed"]) == ota.Message(ota.Kind.RESULT, status=0)
    r = ota.decode(msgs["result_digest_mismatch"])
    assert (r.status, r.offset) == (ota.Status.DIGEST_MISMATCH, 1000)
    assert ota.status_name(r.status) == "USMP_OTA_DIGEST_MISMATCH"
    assert ota.status_name(99) == "USMP_OTA_UNKNOWN(99)"


@pytest.mark.parametrize("bad", [b"", b"OT\x01", b"hello", b"OT\x02\x04\0\0\0\0",
                                 b"OT\x01\x04\0\0\0", b"OT\x01\x01" + bytes(144)])
def test_bad_replies_are_protocol_errors(bad: bytes) -> None:
    with pytest.raises(ota.OtaProtocolError):
        ota.decode(bad)


def test_bundle_checks() -> None:
    b = vector_bundle()
    with pytest.raises(ota.BundleError, match="SHA-256"):
        ota.Bundle(b.manifest_bytes, b.signature, bytes([b.image[0] ^ 1]) + b.image[1:]).check()
    with pytest.raises(ota.BundleError, match="999 bytes"):
        ota.Bundle(b.manifest_bytes, b.signature, b.image[:999]).check()
    with pytest.raises(ota.BundleError):
        ota.Bundle.from_bytes(b.to_bytes()[:100])
    with pytest.raises(ota.BundleError, match="manifest"):
        ota.Bundle.from_bytes(b"X" + b.to_bytes()[1:])
    with pytest.raises(ValueError):
        ota.encode_chunk(0, b"")
    with pytest.raises(ValueError):
        ota.encode_chunk(0, bytes(ota.MAX_CHUNK + 1))


# --------------------------------------------------------------------------- a real gateway

Script = Callable[[Any], Awaitable[Any]]


def run_pair(script: Script, push: Callable[[Any], Awaitable[Any]], timeout: float = 20.0) -> tuple[Any, Any]:
    """A real USMPServer on 127.0.0.1 whose handler runs `push(session)`, and the package's
    USMPClient running `script(client)` as the device. Returns both outcomes (a value or
    the exception raised)."""
    import usmp

    async def main() -> tuple[Any, Any]:
        server = usmp.USMPServer(host="127.0.0.1", port=0, psk=PSK, session_timeout=30.0)
        gw_done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        @server.on_session
        async def handler(session: Any) -> None:
            try:
                gw_done.set_result(await push(session))
            except Exception as e:  # noqa: BLE001 - the outcome under test
                gw_done.set_result(e)

        serve = asyncio.ensure_future(server.serve())
        for _ in range(500):
            lst = getattr(server, "_listener", None)
            if lst is not None and getattr(lst, "_srv", None) is not None:
                break
            await asyncio.sleep(0.01)
        port = server._listener._srv.sockets[0].getsockname()[1]
        client = usmp.USMPClient("127.0.0.1", port, PSK)
        await client.connect()
        try:
            dev = await script(client)
        except Exception as e:  # noqa: BLE001
            dev = e
        gw = await asyncio.wait_for(gw_done, timeout)
        await client.disconnect()
        server.stop()
        await asyncio.wait_for(serve, 10)
        return gw, dev

    return asyncio.run(asyncio.wait_for(main(), timeout + 10))


def accept(offset: int, max_chunk: int = 1800) -> bytes:
    return b"OT\x01\x02" + struct.pack("<IH", offset, max_chunk)


def ack(offset: int) -> bytes:
    return b"OT\x01\x04" + struct.pack("<I", offset)


def result(status: int, offset: int = 0) -> bytes:
    return b"OT\x01\x06" + struct.pack("<BI", status, offset)


async def take_image(client: Any, offer: bytes, first: int, size: int, max_chunk: int,
                     image: bytearray) -> None:
    """Device side of a well-behaved transfer from `first` (after the offer)."""
    assert offer[:4] == b"OT\x01\x01" and len(offer) == 148
    await client.send(accept(first, max_chunk))
    at = first
    while at < size:
        msg = await client.recv()
        assert msg[:4] == b"OT\x01\x03", msg[:4]
        off = struct.unpack_from("<I", msg, 4)[0]
        data = msg[8:]
        assert off == at and 1 <= len(data) <= max_chunk
        image[off:off + len(data)] = data
        at += len(data)
        await client.send(ack(at))
    assert await client.recv() == b"OT\x01\x05"
    await client.send(result(0))


def test_push_sends_the_image_and_reports_progress() -> None:
    b = vector_bundle()
    got = bytearray(len(b.image))
    seen: list[ota.Progress] = []

    async def device(client: Any) -> None:
        await take_image(client, await client.recv(), 0, len(b.image), 300, got)

    async def gateway(session: Any) -> ota.PushResult:
        return await ota.push_update(session, b, progress=seen.append, timeout=5)

    gw, dev = run_pair(device, gateway)
    assert dev is None, dev
    assert isinstance(gw, ota.PushResult), gw
    assert (gw.version, gw.size, gw.resumed_from, gw.chunks) == (5, 1000, 0, 4)
    assert bytes(got) == b.image
    assert [p.sent for p in seen] == [0, 300, 600, 900, 1000]


def test_push_resumes_where_the_device_says() -> None:
    b = vector_bundle()
    got = bytearray(len(b.image))

    async def device(client: Any) -> None:
        await take_image(client, await client.recv(), 640, len(b.image), 1800, got)

    async def gateway(session: Any) -> ota.PushResult:
        return await ota.push_update(session, b.to_bytes(), timeout=5)

    gw, dev = run_pair(device, gateway)
    assert dev is None, dev
    assert (gw.resumed_from, gw.chunks) == (640, 1)
    assert bytes(got[640:]) == b.image[640:] and bytes(got[:640]) == bytes(640)


@pytest.mark.parametrize("when", ["offer", "chunk", "done"])
def test_refusals_reach_the_gateway_by_name(when: str) -> None:
    b = vector_bundle()
    code = {"offer": ota.Status.WRONG_KEY, "chunk": ota.Status.STORAGE_FAILED,
            "done": ota.Status.DIGEST_MISMATCH}[when]

    async def device(client: Any) -> None:
        await client.recv()
        if when == "offer":
            await client.send(result(code))
            return
        await client.send(accept(0))
        msg = await client.recv()
        if when == "chunk":
            await client.send(result(code))
            return
        await client.send(ack(1000))
        assert await client.recv() == b"OT\x01\x05"
        await client.send(result(code, 1000))

    async def gateway(session: Any) -> Any:
        return await ota.push_update(session, b, timeout=5)

    gw, dev = run_pair(device, gateway)
    assert dev is None, dev
    assert isinstance(gw, ota.UpdateRefused), gw
    assert gw.status == code and gw.name == "USMP_OTA_" + code.name


def test_application_messages_in_between_go_to_on_message() -> None:
    b = vector_bundle()
    got = bytearray(len(b.image))
    other: list[bytes] = []

    async def device(client: Any) -> None:
        offer = await client.recv()
        await client.send(b"temperature=21.5")  # the application keeps talking
        await take_image(client, offer, 0, len(b.image), 1800, got)

    async def gateway(session: Any) -> Any:
        return await ota.push_update(session, b, timeout=5, on_message=other.append)

    gw, dev = run_pair(device, gateway)
    assert dev is None and isinstance(gw, ota.PushResult), (gw, dev)
    assert other == [b"temperature=21.5"]


def test_a_wrong_ack_is_a_protocol_error() -> None:
    b = vector_bundle()

    async def device(client: Any) -> None:
        await client.recv()
        await client.send(accept(0))
        await client.recv()
        await client.send(ack(999))  # the gateway sent 1000 bytes

    async def gateway(session: Any) -> Any:
        return await ota.push_update(session, b, timeout=5)

    gw, _ = run_pair(device, gateway)
    assert isinstance(gw, ota.OtaProtocolError), gw


def test_a_silent_device_times_out() -> None:
    b = vector_bundle()

    async def device(client: Any) -> None:
        await client.recv()  # the offer; no answer
        await asyncio.sleep(1.5)

    async def gateway(session: Any) -> Any:
        t0 = asyncio.get_running_loop().time()
        try:
            await ota.push_update(session, b, accept_timeout=0.5)
        except ota.OtaTimeout as e:
            return (e, asyncio.get_running_loop().time() - t0)
        return None

    gw, _ = run_pair(device, gateway)
    assert isinstance(gw, tuple) and isinstance(gw[0], ota.OtaTimeout), gw
    assert 0.4 < gw[1] < 1.4


def test_a_corrupt_bundle_is_not_sent() -> None:
    b = vector_bundle()
    bad = ota.Bundle(b.manifest_bytes, b.signature, b.image[:-1] + b"\0")

    async def device(client: Any) -> str:
        try:
            msg = await asyncio.wait_for(client.recv(), 0.5)
        except asyncio.TimeoutError:
            return "nothing came"
        return f"got {msg[:8]!r}"

    async def gateway(session: Any) -> Any:
        try:
            await ota.push_update(session, bad)
        except ota.BundleError as e:
            await asyncio.sleep(1.0)  # keep the session open: the device hears nothing
            return e
        return None

    gw, dev = run_pair(device, gateway)
    assert isinstance(gw, ota.BundleError), gw
    assert dev == "nothing came"
