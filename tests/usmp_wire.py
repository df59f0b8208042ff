"""The USMP frame layout (PROTOCOL.md sections 2-3) for the Python test tools, in one place:
the generators of C test data (tests/c/gen_vectors_h.py), the stack-measurement frames
(tools/stack/gen_frames.py), the fuzz seed corpus (fuzz/seed_corpus.py), the lossy UDP
proxy (tests/interop/lossy_proxy.py) and the serial test harness (COBS framing). Facts of the wire format only; the protocol itself is
the Rust core's, and the peer in the interop tests is the real gateway from PyPI.

Each tool puts tests/ on sys.path and imports it.
"""

from __future__ import annotations

MAGIC = b"\xcd\xab"
HEADER_LEN = 12
AEAD_OVERHEAD = 12 + 16  # the embedded nonce and the GCM tag


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, init 0xFFFF, no final XOR."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def header10(ver: int, ty: int, seq: int, length: int) -> bytes:
    """The first 10 header bytes: magic, version, type, seq, payload length (the AAD)."""
    return MAGIC + bytes([ver, ty]) + seq.to_bytes(4, "little") + length.to_bytes(2, "little")


def frame(ver: int, ty: int, seq: int, payload: bytes) -> bytes:
    """A whole frame: header with its CRC over the header and the payload, then the payload."""
    h = header10(ver, ty, seq, len(payload))
    return h + crc16(h + payload).to_bytes(2, "little") + payload


def refix_crc(f: bytes | bytearray) -> bytes:
    """The frame with its CRC recomputed (after a test changed some bytes of it)."""
    f = bytes(f)
    return f[:10] + crc16(f[:10] + f[HEADER_LEN:]).to_bytes(2, "little") + f[HEADER_LEN:]


def seal(ver: int, key: bytes, sid: bytes, ty: int, seq: int, pt: bytes) -> bytes:
    """An encrypted frame as a device or gateway seals it: nonce = seq LE || sid[0:8],
    AES-256-GCM over `pt` with the 10-byte header as AAD. Needs `cryptography`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = seq.to_bytes(4, "little") + sid[:8]
    aad = header10(ver, ty, seq, len(pt) + AEAD_OVERHEAD)
    return frame(ver, ty, seq, nonce + AESGCM(key).encrypt(nonce, pt, aad))


def cobs_encode(data: bytes) -> bytes:
    """00 || COBS(data) || 00, as the UART transport frames a datagram: runs of up to 254
    non-zero bytes behind a length byte."""
    out = bytearray([0])
    i = 0
    while True:
        run = data[i:i + 254]
        z = run.find(0)
        if z >= 0:
            out.append(z + 1)
            out += run[:z]
            i += z + 1
            continue
        out.append(len(run) + 1)
        out += run
        i += len(run)
        if len(run) < 254 or i >= len(data):
            break
    out.append(0)
    return bytes(out)
