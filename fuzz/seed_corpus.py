#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ from the golden
vectors in tests/vectors/ (frames of the real gateways), in each target's input format (see
fuzz/src/lib.rs: fixed fields, then chunks = u16 LE length + bytes). Idempotent: files are
named by content hash, so rerunning adds nothing and leaves what libFuzzer added alone.

    python3 fuzz/seed_corpus.py            # all targets
    python3 fuzz/seed_corpus.py --list     # how many seeds per target
"""
import glob
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import usmp_wire  # noqa: E402
VEC = os.path.join(ROOT, "tests", "vectors")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def load(v, name):
    with open(os.path.join(VEC, v, name)) as f:
        return json.load(f)


def hexes(obj):
    """Every frame-looking hex string anywhere in a vector file."""
    found = []
    if isinstance(obj, dict):
        for k, x in obj.items():
            if isinstance(x, str) and (k in ("hex", "input", "fed_frame", "frame") or "datagram" in k):
                try:
                    b = bytes.fromhex(x)
                except ValueError:
                    continue
                if len(b) >= 2:
                    found.append(b)
            else:
                found.extend(hexes(x))
    elif isinstance(obj, list):
        for x in obj:
            if isinstance(x, str):
                try:
                    b = bytes.fromhex(x)
                except ValueError:
                    continue
                if len(b) >= 7 and b[:2] in (b"\xcd\xab", b"\xac\xac"):
                    found.append(b)
            else:
                found.extend(hexes(x))
    return found


def chunk(b):
    return struct.pack("<H", len(b)) + b


def session_frames(v, sender):
    out = []
    for c in load(v, "session.json")["cases"]:
        if c.get("sender") == sender:
            out.extend(bytes.fromhex(f["hex"]) for f in c["frames"])
    return out


seeds = {t: set() for t in ("frame", "handshake", "responder", "session_raw", "session_keyed", "datagram", "capi", "ota",
                             "discovery", "cobs", "interleave")}

all_frames = []
for path in sorted(glob.glob(os.path.join(VEC, "v*", "*.json"))):
    with open(path) as f:
        all_frames.extend(hexes(json.load(f)))
seeds["frame"].update(all_frames)

for vi, v in ((0, "v2"), (1, "v1")):
    hs = [bytes.fromhex(f["hex"]) for f in load(v, "handshake.json")["frames"]]
    hello, challenge, hello_ack, session_ok = hs
    s2c = session_frames(v, "server")
    c2s = session_frames(v, "client")
    for cfg in (vi, vi | 2):
        seeds["handshake"].add(bytes([cfg]) + chunk(challenge) + chunk(session_ok) + b"".join(map(chunk, s2c)))
        seeds["handshake"].add(bytes([cfg]) + chunk(challenge) + chunk(session_ok))
        seeds["responder"].add(bytes([cfg]) + chunk(hello) + chunk(hello_ack) + b"".join(map(chunk, c2s)))
        seeds["responder"].add(bytes([cfg]) + chunk(hello) + chunk(hello_ack))
    psk = bytes.fromhex(load(v, "handshake.json")["inputs"]["psk"])
    seeds["handshake"].add(bytes([vi | 4, len(psk)]) + psk + chunk(challenge) + chunk(session_ok))
    if v == "v2":
        cookie = load(v, "udp_cookie.json")
        retry = bytes.fromhex(cookie["server_replies"][1])
        seeds["handshake"].add(bytes([0]) + chunk(retry) + chunk(challenge) + chunk(session_ok))
        hello_cookie = bytes.fromhex(cookie["client_hello_with_cookie_datagram (Python client, seq=1)"])
        seeds["responder"].add(bytes([0]) + chunk(hello_cookie) + chunk(hello_ack))

    # session_raw: zero keys (frames from the vectors must not verify), every vector frame
    neg = [bytes.fromhex(c["input"]) for c in load(v, "negative.json")["cases"] if "input" in c]
    for cfg in (vi, vi | 2, vi | 4, vi | 6):
        body = b"".join(b"\x00" + chunk(f) + struct.pack("<H", 1808) for f in s2c + neg[:12])
        seeds["session_raw"].add(bytes([cfg]) + bytes(80) + body + b"\x05\x06\x00\x05\x00h\x07" + bytes(32))

# session_keyed / datagram sessions: op sequences (see fuzz/src/keyed.rs)
MSG = lambda n: b"\x00" + struct.pack("<H", n) + bytes([n & 0xFF])  # length, pattern byte
DELIVER = b"\x07\x01"            # deliver, capacity 1808
DELIVER_SMALL = b"\x07\x00\x10\x00"  # deliver into a 16-byte buffer
PING = b"\x02\x00"
PONG = b"\x02\x01"
BYE = b"\x02\x02"
GW_REKEY = b"\x02\x05" + bytes(range(0xC0, 0xE0))
LONE_FRAG = b"\x02\x04\x05\x00a"
DEV_MSG = b"\x0c\x01\x20\x00\x11"
DEV_REKEY = b"\x0c\x00" + bytes(range(32))
REPLAY0 = b"\x04\x00"
FLIP = b"\x03\x00\x07\x20\x00\x01"
JUMP = b"\x0d\x05\x00\x00\x00"
BEGIN = b"\x0a"
programs = [
    MSG(11) + DELIVER,
    MSG(1000) + DELIVER * 3,
    MSG(1808) + DELIVER * 4,
    MSG(0) + DELIVER,
    MSG(500) + DELIVER_SMALL + DELIVER + MSG(5) + DELIVER,
    MSG(1000) + DELIVER + PING + DELIVER + DELIVER + DELIVER,
    MSG(1000) + DELIVER + BYE + DELIVER + DELIVER,
    PING * 10 + DELIVER * 10 + BEGIN + PING + DELIVER,
    PONG + DELIVER + MSG(3) + DELIVER,
    GW_REKEY + DELIVER + MSG(11) + DELIVER + REPLAY0 + DELIVER,
    DEV_REKEY + MSG(11) + DELIVER + DEV_MSG,
    LONE_FRAG + MSG(20) + DELIVER + DELIVER,
    MSG(11) + FLIP + DELIVER + MSG(11) + DELIVER,
    MSG(11) + DELIVER + REPLAY0 + DELIVER,
    JUMP + MSG(11) + DELIVER + MSG(1000) + DELIVER * 3 + BYE + DELIVER,
    MSG(1000) + b"\x06\x00\x01" + DELIVER * 3,
    MSG(1000) + b"\x05\x00" + DELIVER * 2 + MSG(3) + DELIVER,
]
for vi in (0, 1):
    for p in programs:
        seeds["session_keyed"].add(bytes([vi]) + p)
        seeds["session_keyed"].add(bytes([vi | 2]) + p)
        seeds["datagram"].add(bytes([4 | (vi << 1)]) + p)

for c in load("v2", "utack.json")["cases"] + load("v1", "utack.json")["cases"]:
    fed = bytes.fromhex(c["fed_frame"])
    ack = bytes.fromhex(c["utack"][0])
    keyed = 1 if len(ack) == 15 else 0
    key = bytes.fromhex(load("v2", "handshake.json")["k_c2s"]) if keyed else bytes(32)
    seeds["datagram"].add(b"\x00" + bytes([fed[3]]) + fed[4:8] + bytes([keyed]) + key + bytes([len(ack)]) + ack)
w = load("v2", "udp_window.json")
seqs = w["arrival_order_seqs"]
seeds["datagram"].add(b"\x01" + b"".join(b"\x80" + struct.pack("<I", s) for s in seqs))

# capi: cfg, fail_send_at, then API ops and transport answers (fuzz_targets/capi.rs).
HS = b"\x0a\x0a"                      # the responder's CHALLENGE, then its SESSION_OK
RECV = lambda cap_idx: b"\x01" + bytes([cap_idx])
GW_MSG = lambda n: b"\x06" + struct.pack("<H", n) + b"\x33\x01"  # length, pattern, no mutation
GW_NEXT = b"\x07\x01"
GW_CTRL = lambda k: b"\x08" + bytes([k]) + b"\x00\x00\x01"  # type, empty, pattern, no mutation
SEND = lambda n: b"\x04" + struct.pack("<H", n)
capi = [
    HS + RECV(9) + GW_MSG(11) + SEND(5) + b"\x09",
    HS + RECV(9) + GW_MSG(1000) + GW_NEXT + GW_NEXT,
    HS + RECV(9) + GW_MSG(1000) + GW_CTRL(0) + GW_NEXT + GW_NEXT,
    HS + RECV(9) + GW_MSG(1000) + GW_CTRL(2),
    HS + RECV(9) + GW_CTRL(0) + b"\x0b" + RECV(9) + b"\x0c",
    HS + b"\x07" + RECV(9) + GW_MSG(3) + b"\x08" + HS + b"\x09",
    HS + RECV(2) + GW_MSG(500) + GW_NEXT + RECV(9) + GW_MSG(3),
    HS + RECV(9) + b"\x05" + GW_MSG(1000) + b"\x0c",
    HS + b"\x0a\x04" + SEND(5) + b"\x05",
    b"\x0c",
    b"\x0a\x0c",
]
for vi in (0, 1):
    for p in capi:
        for cfg in (vi, vi | 0x20, vi | 0x12, vi | 0x52, vi | 0x08):
            seeds["capi"].add(bytes([cfg, 0]) + p)
        seeds["capi"].add(bytes([vi, 3]) + p)


# interleave: cfg0, cfg1, then operations (fuzz/src/targets/interleave.rs, `run`). cfg0: bit 0
# v1, bit 1 datagram, bit 2 ack before auth, bit 3 echo, bit 4 cookie; cfg1: bits 0-1 attempts
# (30), bits 3-4 keepalive.
P1, P8 = b"\x00", b"\xe0"             # 1 poll, 8 polls
LEN = lambda n: b"\x06" + struct.pack("<H", n)  # an exact message length (0..1808)
NB_SEND = lambda n: b"\x06" + LEN(n)
NB_PING, NB_REKEY = b"\x08", b"\x09"
GW_SEND = lambda n: b"\x0a" + LEN(n)
GW_PING, GW_PONG, GW_BYE = b"\x0c\x00", b"\x0c\x01", b"\x0c\x03"
GW_REKEY = b"\x0c\x02" + bytes(range(0x40, 0x60))
FAULT = lambda up, kind: b"\x0d" + bytes([(kind << 1) | (0 if up else 1)])  # 0 drop 1 dup 2 hold 3 fail
FORGE = lambda kind, pick: b"\x0e" + bytes([kind, pick])
RELEASE_UP, RELEASE_DOWN = b"\x0f\x00\x00\x00", b"\x0f\x01\x00\x00"
DELIVER = lambda k: b"\x0f\x00" + struct.pack("<H", k)  # stream: stall, then k more bytes
UNSTALL = b"\x0f\x01\x00\x00"
CLOCK = lambda i: b"\x10" + bytes([i])  # STEPS_MS[i]: 1 5 20 50 100 250 500 1000 2000 5000 ...
NB_CLOSE, CLOSE, RECONNECT = b"\x12\x00", b"\x12\x01", b"\x12\x03"
UP = P8 * 3                            # enough polls for the handshake
interleave = [
    UP + NB_SEND(11) + P8 + GW_SEND(5) + P8,
    UP + NB_SEND(1000) + P1 + GW_PING + P8 * 2 + GW_SEND(1808) + P8 * 2,
    UP + GW_SEND(1000) + P1 + NB_SEND(1808) + NB_PING + P8 * 3,
    UP + NB_SEND(453) + GW_REKEY + P8 + NB_REKEY + P8 * 2 + NB_SEND(3) + P8,
    UP + NB_REKEY + GW_REKEY + P8 * 3 + NB_SEND(0) + P8,
    UP + NB_SEND(1808) + FAULT(True, 0) + FAULT(False, 1) + P8 + CLOCK(6) + P8 * 2 + CLOCK(7) + P8,
    UP + FAULT(False, 2) + GW_SEND(900) + P8 + RELEASE_DOWN + P8 + FORGE(1, 0) + FORGE(2, 1) + b"\x07\x10\x00\x01" + P8,
    UP + FORGE(3, 3) + FORGE(4, 2) + NB_SEND(20) + P8 * 2,
    UP + GW_SEND(1808) + DELIVER(100) + P8 + DELIVER(5) + P8 + UNSTALL + P8,
    UP + NB_SEND(600) + P1 + CLOSE + P8 + RECONNECT + UP + NB_SEND(5) + P8,
    UP + NB_SEND(1000) + P1 + NB_CLOSE + P8 + RECONNECT + UP + GW_BYE + P8,
    UP + CLOCK(9) + P8 + CLOCK(12) + P8 + NB_PING + P8,
    b"\x12\x01" + UP,                   # usmp_close during the handshake
    P1 * 2 + GW_SEND(3) + UP,
]
for vi in (0, 1):
    for p in interleave:
        for cfg0 in (vi, vi | 0x08, vi | 0x02, vi | 0x0A, vi | 0x06, vi | 0x12 | 0x20):
            seeds["interleave"].add(bytes([cfg0, 0x03]) + p)
        seeds["interleave"].add(bytes([vi | 0x02, 0x01 | 0x08]) + p)  # 2 attempts, keepalive
        seeds["interleave"].add(bytes([vi, 0xA3]) + p)                 # stream in 7-byte pieces

# ota: the signed bundle of tests/ota/vectors.json as messages (offer, chunks, done), whole,
# resumed in a second offer, cut short, and through the C API (cfg bit 0), with a failing
# write (bit 2) and a smaller chunk size (bits 3..); plus every vector message alone.
with open(os.path.join(ROOT, "tests", "ota", "vectors.json")) as f:
    ota_vec = json.load(f)
ota_msgs = {k: bytes.fromhex(v) for k, v in ota_vec["messages"].items()}
ota_img = bytes.fromhex(ota_vec["image"])


def ota_chunk(off, data):
    return b"OT\x01\x03" + struct.pack("<I", off) + data


offer, done = ota_msgs["offer"], ota_msgs["done"]
ota_runs = [
    [offer, ota_chunk(0, ota_img), done],
    [offer, ota_chunk(0, ota_img[:600]), offer, ota_chunk(600, ota_img[600:]), done],
    [offer, ota_chunk(0, ota_img[:512]), ota_chunk(512, ota_img[512:]), done],
    [offer, ota_chunk(0, ota_img[:300]), done],
    [offer, ota_chunk(0, ota_img[:300]), ota_msgs["abort"], offer],
    list(ota_msgs.values()),
]
for run in ota_runs:
    body = b"".join(chunk(m) for m in run)
    for cfg in (0, 1, 3, 4, 5, 8 | 1):
        seeds["ota"].add(bytes([cfg]) + body)

# cobs: selector (bit 0: the C transport too, bit 1: raw framing), piece size, then the line:
# vector frames COBS-framed back to back (with a stub and garbage between some), and raw.
framed = [usmp_wire.cobs_encode(f) for f in all_frames[:24]]
for piece in (0, 7, 63):
    seeds["cobs"].add(bytes([1, piece]) + b"".join(framed))
    seeds["cobs"].add(bytes([1, piece]) + framed[0][:20] + b"\x13\x37" + b"".join(framed[1:6]))
    seeds["cobs"].add(bytes([3, piece]) + b"".join(all_frames[:12]))
seeds["cobs"].add(bytes([0, 0]) + b"\xff" * 600 + usmp_wire.cobs_encode(b"tail"))


# Regression inputs: findings, kept as files under fuzz/regressions/<target>/ (scripts/fuzz.sh
# replays them; those still open are listed in fuzz/regressions/EXPECTED_FAILURES).
def frame(ver, ty, payload, seq=0):
    return usmp_wire.frame(ver, ty, seq, payload)


regressions = {}
for vi, v, ver in ((0, "v2", 2), (1, "v1", 1)):
    hs = [bytes.fromhex(f["hex"]) for f in load(v, "handshake.json")["frames"]]
    hello, challenge, hello_ack, session_ok = hs
    nonce = challenge[12:44]
    # F-1: a CHALLENGE with a small-order X25519 key (all zero) fails, but wipes the device's
    # secret while the handshake stays in AwaitChallenge; the real CHALLENGE that follows is
    # then answered with keys derived from the all-zero scalar (known to anyone).
    evil = frame(ver, 2, nonce + bytes(32))
    regressions[("handshake", f"small-order-challenge-then-real-{v}")] = (
        bytes([vi]) + chunk(evil) + chunk(challenge) + chunk(session_ok))
    # Same in the responder: a HELLO with a small-order key, then the real HELLO.
    evil_hello = frame(ver, 1, hello[12:18] + bytes(32))
    regressions[("responder", f"small-order-hello-then-real-{v}")] = (
        bytes([vi]) + chunk(evil_hello) + chunk(hello) + chunk(hello_ack))
# discovery: mDNS messages written here byte by byte (not with the library's encoder): a
# complete answer for one instance (PTR, SRV, TXT, A), the same with compressed names, an
# answer without additionals, and a query for both service types.
def dns_name(*labels):
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\0"


def dns_rr(rtype, rdata, cls=1, ttl=120):
    return struct.pack(">HHIH", rtype, cls, ttl, len(rdata)) + rdata


def dns_header(flags, qd, an, ar):
    return struct.pack(">HHHHHH", 0, flags, qd, an, 0, ar)


svc = dns_name(b"_usmp", b"_tcp", b"local")
inst = dns_name(b"gw", b"_usmp", b"_tcp", b"local")
host = dns_name(b"gw-host", b"local")
seeds["discovery"].add(dns_header(0x8400, 0, 1, 3) + svc + dns_rr(12, inst)
                       + inst + dns_rr(33, struct.pack(">HHH", 0, 0, 9000) + host, 0x8001)
                       + inst + dns_rr(16, b"\x09txtvers=1\x03v=2", 0x8001)
                       + host + dns_rr(1, bytes([10, 0, 0, 7]), 0x8001))
# compressed: the instance points at the service name (offset 12), the host at "local"
ptr_inst = b"\x02gw\xc0\x0c"
at_inst = 12 + len(svc) + 10
c = dns_header(0x8400, 0, 1, 2) + svc + dns_rr(12, ptr_inst)
at_host = len(c) + 2 + 10 + 6
c += struct.pack(">H", 0xC000 | at_inst) + dns_rr(33, struct.pack(">HHH", 0, 0, 9000) + b"\x07gw-host\xc0\x17")
c += struct.pack(">H", 0xC000 | at_host) + dns_rr(1, bytes([10, 0, 0, 8]))
seeds["discovery"].add(c)
seeds["discovery"].add(dns_header(0x8400, 0, 1, 0) + svc + dns_rr(12, inst))
seeds["discovery"].add(dns_header(0, 2, 0, 0) + svc + b"\x00\x0c\x00\x01"
                       + dns_name(b"_usmp", b"_udp", b"local") + b"\x00\x0c\x00\x01")


# Found by the fuzzer (session_keyed, stream mode, v1): a lone DATA_FRAG, an ERROR frame
# (refused: UNEXPECTED_FRAME, which ends a stream session in the C driver), then DATA: the
# core, if fed on, delivers a message spanning the refused frame. Kept as a regression of the
# harness (the oracle only applies until a stream error).
regressions[("session_keyed", "frag-error-data-v1")] = bytes.fromhex(
    "010204050061bebebebebe6364650014bebebebebebebebebebebebebebebebebebebebebebe"
    "626364650014000007777e8507010701")


# Found by the fuzzer (discovery): an A record for 0.x.x.x was taken as the gateway's
# address; addresses in 0.0.0.0/8 are now refused like 0.0.0.0.
regressions[("discovery", "address-in-0-8")] = bytes.fromhex(
    "000084000000000100000003055f75736d70045f746370056c6f63616c00000c0001000000780015026777055f75736d"
    "70045f746370056c6f63616c00026777055f75736d70045f746370056c6f63616c000021800100000078001500000000"
    "23280767772d686f7374056c6f63616c00026777055f75736d70045f746370056c6f63616c000010800100000078000e"
    "0974787476657273463103763d320767772d686f7374056c6f63616c0000018001000000780004000a0007")


# Found by the interleave target (open: fuzz/regressions/EXPECTED_FAILURES; the harness steps
# around them unless USMP_FUZZ_OPEN_FINDINGS is set, as `scripts/fuzz.sh regress` does for them).
# I-1: usmp_nb_close, then usmp_nb_connect on the same context: the receive of the first
# session kept the reader role, so every receive of the second fails with BUSY (an ERROR
# event at each poll) and no message ever arrives.
regressions[("interleave", "nb-connect-again-receive-busy")] = (
    bytes([0x00, 0x03]) + P8 + NB_CLOSE + RECONNECT + P8 + GW_SEND(5) + P8)
# I-2: usmp_close (another caller) while the non-blocking handshake runs: the next poll goes
# on with the handshake over the closed transport.
regressions[("interleave", "usmp-close-during-handshake")] = bytes([0x00, 0x03]) + CLOSE + P8
# I-3: datagram v2: the device's DATA is in flight (its UTACK lost) when it takes the
# gateway's REKEY; the gateway acknowledges the retransmission under the key the frame came
# with (PROTOCOL.md 12, as the device itself does) and the device refuses it: retransmitted
# until the attempts run out (30 here: still pending after the drain; 5 by default: SENT with
# TIMEOUT and the session ends), though the gateway has the message.
regressions[("interleave", "old-key-ack-after-gateway-rekey")] = (
    bytes([0x02, 0x03]) + UP + FAULT(False, 0) + NB_SEND(5) + P1 + GW_REKEY + P1 + CLOCK(6) + P8)
# I-4: datagram v2, a gateway that acknowledges before it authenticates (as usmp 1.2.2): the
# first fragment of a 905-byte message is lost; the device takes the gateway's REKEY, sends
# the fragment again (old key; acknowledged under the new one) and the rest under the new key
# from seq 0: the gateway drops the first 452 bytes and receives a 453-byte message, and the
# device reports the send as done.
# I-5: datagram v2: the device's PING is in flight (its UTACK lost) when it takes the
# gateway's REKEY; its retransmission cannot be sealed again (the seq is not used under the
# new key): INVALID_ARG, the PING stays in flight for good, every later send and receive fails
# with INVALID_ARG (SENT and ERROR events) and the session never ends by itself.
regressions[("interleave", "control-in-flight-across-gateway-rekey")] = (
    bytes([0x02, 0x03]) + UP + FAULT(False, 0) + NB_PING + P1 + P1 + GW_REKEY + P1 + CLOCK(6)
    + P1 + NB_SEND(5) + P8)
regressions[("interleave", "message-split-by-gateway-rekey")] = (
    bytes([0x06, 0x03]) + UP + FAULT(True, 0) + NB_SEND(905) + P1 + GW_REKEY + P1 + CLOCK(6) + P8)

def main():
    if "--list" in sys.argv:
        for t, s in seeds.items():
            print(f"{t}: {len(s)} seeds")
        return
    for (t, name), b in regressions.items():
        d = os.path.join(ROOT, "fuzz", "regressions", t)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)
    for t, s in seeds.items():
        d = os.path.join(OUT, t)
        os.makedirs(d, exist_ok=True)
        for b in s:
            name = "seed-" + hashlib.sha1(b).hexdigest()
            p = os.path.join(d, name)
            if not os.path.exists(p):
                with open(p, "wb") as f:
                    f.write(b)


if __name__ == "__main__":
    main()
