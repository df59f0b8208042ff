"""Push signed firmware bundles to USMP devices from a gateway's session handler.

The gateway side of the update protocol of docs/OTA.md, for operators who run the PyPI
``usmp`` gateway (``USMPServer``). It only calls the session's ``send()`` and ``recv()``:
nothing of the gateway is replaced::

    import usmp
    from usmp_ota import Bundle, push_update, UpdateRefused

    bundle = Bundle.from_file("firmware-1.4.0.uota")      # from `usmp ota sign`

    @server.on_session
    async def handle(session: usmp.USMPSession) -> None:
        try:
            result = await push_update(session, bundle,
                                       progress=lambda p: print(f"{p.sent}/{p.size}"))
            print("installed", result.version, "resumed from", result.resumed_from)
        except UpdateRefused as e:
            print("device refused:", e.name)               # e.g. USMP_OTA_DOWNGRADE
        ...  # the session goes on as before

The device checks everything (owner signature, product, version, size, SHA-256); the
gateway cannot make it install anything its owner did not sign. If the session breaks off,
push the same bundle again in the device's next session: it continues from the last
offset the device wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import struct
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Awaitable, Callable, Optional, Union

__all__ = [
    "Bundle", "BundleError", "Manifest", "Message", "OtaError", "OtaProtocolError",
    "OtaTimeout", "Progress", "PushResult", "Status", "UpdateRefused", "decode",
    "encode_abort", "encode_chunk", "encode_done", "encode_offer", "is_ota", "push_update",
    "receive_reply", "status_name",
]

MAGIC = b"OT"
PROTOCOL_VERSION = 1
HEADER_LEN = 4
MAX_MESSAGE = 1808
MAX_CHUNK = MAX_MESSAGE - HEADER_LEN - 4  # 1800

MANIFEST_MAGIC = b"USMP-OTA"
MANIFEST_FORMAT = 1
MANIFEST_LEN = 80
SIGNATURE_LEN = 64
PRODUCT_ID_LEN = 16


class Kind(IntEnum):
    OFFER = 1
    ACCEPT = 2
    CHUNK = 3
    ACK = 4
    DONE = 5
    RESULT = 6
    ABORT = 7


class Status(IntEnum):
    """The device's outcome and refusal codes (the C names drop the USMP_OTA_ prefix)."""

    OK = 0
    BAD_MESSAGE = 1
    UNSUPPORTED_PROTOCOL = 2
    BAD_MANIFEST = 3
    WRONG_KEY = 4
    NONCANONICAL_SIGNATURE = 5
    BAD_SIGNATURE = 6
    WRONG_PRODUCT = 7
    DOWNGRADE = 8
    TOO_LARGE = 9
    NO_TRANSFER = 10
    BAD_OFFSET = 11
    TRUNCATED = 12
    DIGEST_MISMATCH = 13
    STORAGE_FAILED = 14
    COMMIT_FAILED = 15
    ABORTED = 16


def status_name(code: int) -> str:
    """The C name of a status code (``USMP_OTA_BAD_SIGNATURE``), or ``USMP_OTA_UNKNOWN(n)``."""
    try:
        return "USMP_OTA_" + Status(code).name
    except ValueError:
        return f"USMP_OTA_UNKNOWN({code})"


# --------------------------------------------------------------------------- errors

class OtaError(Exception):
    """Base of everything push_update raises for an update that did not install."""


class BundleError(OtaError):
    """The bundle is not well formed (or, with check=True, its image does not match)."""


class UpdateRefused(OtaError):
    """The device refused the update (a RESULT with a nonzero status); nothing was committed."""

    def __init__(self, status: int, offset: int) -> None:
        self.status = status
        self.name = status_name(status)
        self.offset = offset
        super().__init__(f"device refused the update: {self.name} (at offset {offset})")


class OtaProtocolError(OtaError):
    """The device answered something the protocol does not allow at that point."""


class OtaTimeout(OtaError):
    """The device did not answer in time."""


# --------------------------------------------------------------------------- manifest

@dataclass(frozen=True)
class Manifest:
    image_size: int
    version: int
    product_id: bytes
    digest: bytes
    key_id: bytes

    @classmethod
    def parse(cls, raw: bytes) -> "Manifest":
        if len(raw) != MANIFEST_LEN:
            raise BundleError(f"a manifest is {MANIFEST_LEN} bytes, not {len(raw)}")
        if raw[:8] != MANIFEST_MAGIC or raw[8] != MANIFEST_FORMAT or raw[9:12] != b"\0\0\0":
            raise BundleError("not a format-1 USMP-OTA manifest")
        size, version = struct.unpack_from("<IQ", raw, 12)
        return cls(size, version, bytes(raw[24:40]), bytes(raw[40:72]), bytes(raw[72:80]))

    def encode(self) -> bytes:
        return (MANIFEST_MAGIC + bytes([MANIFEST_FORMAT, 0, 0, 0])
                + struct.pack("<IQ", self.image_size, self.version)
                + self.product_id + self.digest + self.key_id)

    @property
    def product(self) -> str:
        """The product id as text (zero padding removed)."""
        return self.product_id.rstrip(b"\0").decode("ascii", errors="replace")


@dataclass(frozen=True)
class Bundle:
    """A signed bundle as `usmp ota sign` writes it: manifest (80) || signature (64) || image."""

    manifest_bytes: bytes
    signature: bytes
    image: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> "Bundle":
        if len(data) < MANIFEST_LEN + SIGNATURE_LEN:
            raise BundleError(f"a bundle is at least {MANIFEST_LEN + SIGNATURE_LEN} bytes")
        b = cls(bytes(data[:MANIFEST_LEN]), bytes(data[MANIFEST_LEN:MANIFEST_LEN + SIGNATURE_LEN]),
                bytes(data[MANIFEST_LEN + SIGNATURE_LEN:]))
        b.manifest  # noqa: B018 - parses, raises BundleError
        return b

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "Bundle":
        with open(path, "rb") as fh:
            return cls.from_bytes(fh.read())

    @property
    def manifest(self) -> Manifest:
        return Manifest.parse(self.manifest_bytes)

    def to_bytes(self) -> bytes:
        return self.manifest_bytes + self.signature + self.image

    def check(self) -> None:
        """The image matches the manifest (size and SHA-256). The signature is the device's
        to judge: the gateway need not hold the owner's key."""
        m = self.manifest
        if len(self.signature) != SIGNATURE_LEN:
            raise BundleError("the signature is not 64 bytes")
        if len(self.image) != m.image_size:
            raise BundleError(f"the image is {len(self.image)} bytes, the manifest says {m.image_size}")
        if hashlib.sha256(self.image).digest() != m.digest:
            raise BundleError("the image's SHA-256 is not the manifest's")


# --------------------------------------------------------------------------- messages

def _header(kind: Kind) -> bytes:
    return MAGIC + bytes([PROTOCOL_VERSION, kind])


def encode_offer(manifest: bytes, signature: bytes) -> bytes:
    if len(manifest) != MANIFEST_LEN or len(signature) != SIGNATURE_LEN:
        raise ValueError("OFFER carries an 80-byte manifest and a 64-byte signature")
    return _header(Kind.OFFER) + manifest + signature


def encode_chunk(offset: int, data: bytes) -> bytes:
    if not 1 <= len(data) <= MAX_CHUNK:
        raise ValueError(f"a chunk holds 1..{MAX_CHUNK} bytes")
    return _header(Kind.CHUNK) + struct.pack("<I", offset) + data


def encode_done() -> bytes:
    return _header(Kind.DONE)


def encode_abort() -> bytes:
    return _header(Kind.ABORT)


def is_ota(msg: bytes) -> bool:
    """Whether an application message carries the OTA header."""
    return len(msg) >= HEADER_LEN and msg[:2] == MAGIC


@dataclass(frozen=True)
class Message:
    """A device's reply: ACCEPT (offset, max_chunk), ACK (offset) or RESULT (status, offset)."""

    kind: Kind
    offset: int = 0
    max_chunk: int = 0
    status: int = 0


def decode(msg: bytes) -> Message:
    """Reads a device reply; raises OtaProtocolError for anything else."""
    if not is_ota(msg):
        raise OtaProtocolError("not an OTA message")
    if msg[2] != PROTOCOL_VERSION:
        raise OtaProtocolError(f"OTA protocol version {msg[2]} (this module speaks {PROTOCOL_VERSION})")
    kind, body = msg[3], msg[HEADER_LEN:]
    if kind == Kind.ACCEPT and len(body) == 6:
        off, mc = struct.unpack("<IH", body)
        return Message(Kind.ACCEPT, offset=off, max_chunk=mc)
    if kind == Kind.ACK and len(body) == 4:
        return Message(Kind.ACK, offset=struct.unpack("<I", body)[0])
    if kind == Kind.RESULT and len(body) == 5:
        return Message(Kind.RESULT, status=body[0], offset=struct.unpack_from("<I", body, 1)[0])
    raise OtaProtocolError(f"unexpected OTA message type {kind} of {len(msg)} bytes")


# --------------------------------------------------------------------------- pushing

@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after every acknowledged chunk (and once at the start)."""

    sent: int
    size: int
    resumed_from: int


@dataclass(frozen=True)
class PushResult:
    version: int
    size: int
    resumed_from: int
    chunks: int
    seconds: float


Callback = Callable[[Any], Optional[Awaitable[None]]]


async def _call(cb: Optional[Callback], arg: Any) -> None:
    if cb is not None:
        r = cb(arg)
        if inspect.isawaitable(r):
            await r


async def receive_reply(session: Any, timeout: float, on_message: Optional[Callback] = None) -> Message:
    """The device's next OTA message; its other messages go to on_message (or are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise OtaTimeout(f"no answer from the device within {timeout:.1f} s")
        try:
            msg = await asyncio.wait_for(session.recv(), timeout=left)
        except asyncio.TimeoutError as e:
            raise OtaTimeout(f"no answer from the device within {timeout:.1f} s") from e
        if is_ota(msg):
            return decode(msg)
        await _call(on_message, msg)


def _refused(m: Message) -> UpdateRefused:
    return UpdateRefused(m.status, m.offset)


async def push_update(session: Any, bundle: Union[Bundle, bytes, str, "os.PathLike[str]"], *,
                      progress: Optional[Callback] = None, timeout: float = 10.0,
                      accept_timeout: float = 60.0, max_chunk: int = MAX_CHUNK,
                      check: bool = True, on_message: Optional[Callback] = None) -> PushResult:
    """Offers `bundle` to the device on `session` and sends the image; returns when the
    device reports it installed.

    session        a usmp session (``USMPSession``) or anything with async send(bytes)/recv().
    bundle         a Bundle, the bundle's bytes, or a path to the bundle file.
    progress       called (sync or async) with a Progress after each acknowledged chunk.
    timeout        seconds to wait for each acknowledgement and for the result.
    accept_timeout seconds to wait for the answer to the offer (the device checks the
                   signature and may erase flash before it answers).
    max_chunk      largest chunk to send (the device's own limit applies as well).
    check          first check that the image matches the manifest (size, SHA-256).
    on_message     called with the device's non-OTA messages that arrive meanwhile.

    Raises UpdateRefused (the device's named refusal), OtaTimeout, OtaProtocolError or
    BundleError; the session's own errors (a closed connection) pass through.
    """
    if not isinstance(bundle, Bundle):
        bundle = Bundle.from_bytes(bundle) if isinstance(bundle, (bytes, bytearray)) \
            else Bundle.from_file(bundle)
    if check:
        bundle.check()
    m = bundle.manifest
    t0 = time.monotonic()

    await session.send(encode_offer(bundle.manifest_bytes, bundle.signature))
    r = await receive_reply(session, accept_timeout, on_message)
    if r.kind == Kind.RESULT:
        raise _refused(r)
    if r.kind != Kind.ACCEPT:
        raise OtaProtocolError(f"expected ACCEPT or RESULT, got {r.kind.name}")
    if r.offset > len(bundle.image) or r.max_chunk == 0:
        raise OtaProtocolError(f"ACCEPT with offset {r.offset}, max_chunk {r.max_chunk}")
    resumed_from = offset = r.offset
    chunk = max(1, min(max_chunk, r.max_chunk, MAX_CHUNK))
    await _call(progress, Progress(offset, m.image_size, resumed_from))

    chunks = 0
    while offset < len(bundle.image):
        data = bundle.image[offset:offset + chunk]
        await session.send(encode_chunk(offset, data))
        r = await receive_reply(session, timeout, on_message)
        if r.kind == Kind.RESULT:
            raise _refused(r)
        if r.kind != Kind.ACK or r.offset != offset + len(data):
            raise OtaProtocolError(f"expected ACK {offset + len(data)}, got {r}")
        offset = r.offset
        chunks += 1
        await _call(progress, Progress(offset, m.image_size, resumed_from))

    await session.send(encode_done())
    r = await receive_reply(session, timeout, on_message)
    if r.kind != Kind.RESULT:
        raise OtaProtocolError(f"expected RESULT, got {r.kind.name}")
    if r.status != Status.OK:
        raise _refused(r)
    return PushResult(m.version, m.image_size, resumed_from, chunks, time.monotonic() - t0)
