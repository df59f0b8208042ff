#!/usr/bin/env python3
"""A hostile mDNS responder for tests/discovery (standard library only): it answers every
one-shot query (from a port other than 5353) for _usmp._tcp.local by unicast with one
malformed DNS message of the kind MODE, written byte by byte here (independently of the
library's encoder), then — with --then-valid PORT — with a well-formed answer for the
instance "after-garbage" at 127.0.0.1:PORT.

  hostile_responder.py MODE [--then-valid PORT]

Prints "READY" once it listens. Modes and the error the device must name
(usmp_dns_error_t):
"""

from __future__ import annotations

import socket
import struct
import sys

TCP = b"\x05_usmp\x04_tcp\x05local\x00"  # 18 bytes, at offset 12 in every answer below


def header(msg_id: int, answers: int, additional: int = 0) -> bytes:
    return struct.pack(">HHHHHH", msg_id, 0x8400, 0, answers, 0, additional)


def rr(rtype: int, rdata: bytes) -> bytes:
    return struct.pack(">HHIH", rtype, 1, 120, len(rdata)) + rdata


def ptr_answer(msg_id: int, target: bytes) -> bytes:
    """PTR _usmp._tcp.local -> `target` (raw name bytes)."""
    return header(msg_id, 1) + TCP + rr(12, target)


OWNER_END = 12 + len(TCP) + 10  # where the PTR rdata starts

MODES: dict[str, tuple[int, object]] = {
    # name: (usmp_dns_error_t, builder(msg_id) -> bytes)
    "pointer_loop": (4, lambda i: ptr_answer(i, b"\x02gw" + struct.pack(">H", 0xC000 | OWNER_END))),
    "forward_pointer": (4, lambda i: ptr_answer(i, b"\x02gw" + struct.pack(">H", 0xC000 | (OWNER_END + 10)) + b"\x00" * 8)),
    "header_pointer": (4, lambda i: ptr_answer(i, b"\xc0\x04")),
    "long_name": (3, lambda i: ptr_answer(i, (b"\x3f" + b"n" * 63) * 4 + b"\x05_usmp\x04_tcp\x05local\x00")),
    "bad_label": (2, lambda i: ptr_answer(i, b"\x42gw\x00")),
    "truncated": (1, lambda i: header(i, 3) + TCP + rr(12, b"\x02gw\xc0\x0c")),
    "short_a": (5, lambda i: header(i, 1) + TCP + rr(1, b"\x7f\x00\x01")),
    "txt_overrun": (5, lambda i: header(i, 1) + TCP + rr(16, b"\x09v=2")),
}
__doc__ += "".join(f"  {m:16s} {code}\n" for m, (code, _) in MODES.items())


def valid_answer(msg_id: int, port: int) -> bytes:
    inst = b"\x0dafter-garbage" + TCP
    host = b"\x04host\x05local\x00"
    return (header(msg_id, 1, 3) + TCP + rr(12, inst)
            + inst + rr(33, struct.pack(">HHH", 0, 0, port) + host)
            + inst + rr(16, b"\x03v=2")
            + host + rr(1, socket.inet_aton("127.0.0.1")))


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    mode = MODES[sys.argv[1]][1]
    then_valid = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--then-valid" else None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", 5353))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1"))
    print("READY", flush=True)
    while True:
        data, (addr, port) = s.recvfrom(9000)
        if port == 5353 or len(data) < 12 or data[2] & 0x80:
            continue  # multicast traffic and answers: not a one-shot query
        msg_id = struct.unpack(">H", data[:2])[0]
        s.sendto(mode(msg_id), (addr, port))
        if then_valid is not None:
            s.sendto(valid_answer(msg_id, then_valid), (addr, port))


if __name__ == "__main__":
    main()
