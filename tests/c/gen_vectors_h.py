#!/usr/bin/env python3
"""Writes tests/c/vectors.h: the golden-vector bytes the C tests need, as C arrays.

Run once after the vectors change (the output is committed; the C tests need no Python):

    python3 tests/c/gen_vectors_h.py            # writes tests/c/vectors.h
    python3 tests/c/gen_vectors_h.py --check    # fails if vectors.h is out of date

Input: tests/vectors/v1/*.json and tests/vectors/v2/*.json (produced by the real Python
gateway, see tests/vectors/README.md).

Two kinds of arrays are written:

* Vector bytes (names without `_D_`): copied unchanged from the JSON files.
* Derived frames (names with `_D_`): frames the golden vectors do not contain, for example
  gateway-to-device frames under the v2 key k_s2c (the v2 vectors mostly hold device-to-gateway
  frames, which a device cannot decrypt) or the frames the device is expected to send at a given
  seq. They are sealed here with AES-256-GCM from the `cryptography` package, using only the keys,
  session id and nonce/AAD rules of the vectors (PROTOCOL.md section 5). Before anything is
  written, this script re-seals every encrypted frame of session.json and rekey.json and the v2
  REKEY key derivation and requires byte-for-byte equality with the vectors, so a derived frame
  is built exactly as the real gateway would build it.
"""

import argparse
import json
import os
import sys

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:  # pragma: no cover
    sys.exit("gen_vectors_h.py needs the Python package 'cryptography' (pip install cryptography)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from usmp_wire import crc16, frame, refix_crc, seal  # noqa: E402
VEC_DIR = os.path.join(ROOT, "tests", "vectors")
OUT = os.path.join(HERE, "vectors.h")

# Frame types (PROTOCOL.md section 3).
HELLO, CHALLENGE, HELLO_ACK, SESSION_OK = 1, 2, 3, 4
DATA, PING, PONG, BYE, DATA_FRAG, HELLO_RETRY, REKEY, ERROR = 5, 6, 7, 8, 9, 10, 11, 0xFF


def load(ver, name):
    with open(os.path.join(VEC_DIR, "v%d" % ver, name), encoding="utf-8") as f:
        return json.load(f)


def unhex(s):
    return bytes.fromhex(s)


def open_frame(key, f):
    """Decrypts an encrypted frame (for the self-check)."""
    payload = f[12:]
    return AESGCM(key).decrypt(payload[:12], payload[12:], f[:10])


def hkdf(salt, ikm, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def fail(msg):
    sys.exit("gen_vectors_h.py: self-check failed: " + msg)


def check(cond, msg):
    if not cond:
        fail(msg)


class Out:
    def __init__(self):
        self.lines = []
        self.names = set()

    def raw(self, text=""):
        self.lines.append(text)

    def bytes_(self, name, data, comment=None):
        check(name not in self.names, "duplicate name " + name)
        self.names.add(name)
        if comment:
            self.raw("/* %s */" % comment)
        if not data:
            # C99 forbids empty initialisers; keep one byte and publish length 0.
            self.raw("static const uint8_t %s[1] = {0};" % name)
            self.raw("#define %s_LEN 0u" % name)
            return
        body = []
        for i in range(0, len(data), 16):
            body.append("    " + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",")
        self.raw("static const uint8_t %s[%d] = {" % (name, len(data)))
        self.lines.extend(body)
        self.raw("};")
        self.raw("#define %s_LEN %du" % (name, len(data)))

    def list_(self, name, frames, comment=None):
        """An array of vec_t over per-element arrays NAME_0, NAME_1, ..."""
        for i, f in enumerate(frames):
            self.bytes_("%s_%d" % (name, i), f)
        if comment:
            self.raw("/* %s */" % comment)
        self.raw("static const vec_t %s[%d] = {" % (name, len(frames)))
        for i, f in enumerate(frames):
            self.raw("    { %s_%d, %d },  /* %s */" % (name, i, len(f), describe(f)))
        self.raw("};")
        self.raw("#define %s_COUNT %du" % (name, len(frames)))


TYPE_NAMES = {1: "HELLO", 2: "CHALLENGE", 3: "HELLO_ACK", 4: "SESSION_OK", 5: "DATA", 6: "PING",
              7: "PONG", 8: "BYE", 9: "DATA_FRAG", 10: "HELLO_RETRY", 11: "REKEY", 0xFF: "ERROR"}


def describe(f):
    if len(f) < 12:
        return "%d bytes" % len(f)
    ty = f[3]
    return "%s seq=%d len=%d" % (TYPE_NAMES.get(ty, "type 0x%02x" % ty),
                                 int.from_bytes(f[4:8], "little"), int.from_bytes(f[8:10], "little"))


def by_label(cases, prefix):
    found = [c for c in cases if c["label"] == prefix]
    if not found:
        found = [c for c in cases if c["label"].startswith(prefix)]
    check(len(found) == 1, "expected one case labelled %r, found %d" % (prefix, len(found)))
    return found[0]


def pattern(n, mul, add):
    return bytes((i * mul + add) & 0xFF for i in range(n))


PT_1808 = pattern(1808, 31, 7)


def gen_version(out, ver):
    p = "V%d" % ver
    hs = load(ver, "handshake.json")
    ses = load(ver, "session.json")
    neg = load(ver, "negative.json")
    inp = hs["inputs"]
    sid = unhex(inp["session_id"])
    if ver == 1:
        dev_tx = dev_rx = unhex(hs["session_key"])
    else:
        dev_tx = unhex(hs["client_session_info"]["tx_key"])
        dev_rx = unhex(hs["client_session_info"]["rx_key"])
        check(dev_tx == unhex(hs["k_c2s"]) and dev_rx == unhex(hs["k_s2c"]), "v2 key roles")
    # Gateway keys: v1 one key; v2 tx = k_s2c (= device rx).
    gw_tx = dev_rx

    # ---- self-checks ------------------------------------------------------------------
    for c in load(ver, "crc16.json")["cases"]:
        check(crc16(unhex(c["input"])) == int(c["crc16"], 16), "crc16 " + c["label"])
    for f in hs["frames"]:
        b = unhex(f["hex"])
        check(frame(ver, f["type"], f["seq"], unhex(f["payload"])) == b, "handshake frame encode")
    resealed = 0
    for c in ses["cases"]:
        key = dev_tx if c["sender"] == "client" else gw_tx
        for f in c["frames"]:
            b = unhex(f["hex"])
            pt = open_frame(key, b)
            check(seal(ver, key, sid, f["type"], f["seq"], pt) == b, "reseal " + c["label"])
            resealed += 1
        for f in c.get("peer_auto_replies", []):
            b = unhex(f["hex"])
            key2 = gw_tx if c["sender"] == "client" else dev_tx
            pt = open_frame(key2, b)
            check(seal(ver, key2, sid, f["type"], f["seq"], pt) == b, "reseal reply " + c["label"])
            resealed += 1
    check(resealed >= 10, "too few frames re-sealed")

    # ---- handshake --------------------------------------------------------------------
    out.raw("/* ======== wire v%d: handshake.json ======== */" % ver)
    out.bytes_(p + "_CLIENT_PRIV", unhex(inp["client_x25519_private"]), "client X25519 private key")
    out.bytes_(p + "_PUB_C", unhex(inp["client_x25519_public (pub_C)"]))
    out.bytes_(p + "_PUB_S", unhex(inp["server_x25519_public (pub_S)"]))
    out.bytes_(p + "_NONCE", unhex(inp["nonce"]))
    out.bytes_(p + "_SESSION_ID", sid)
    out.bytes_(p + "_PSK", unhex(inp["psk"]))
    out.bytes_(p + "_DEVICE_ID", unhex(inp["device_id"]))
    names = {HELLO: "HELLO", CHALLENGE: "CHALLENGE", HELLO_ACK: "HELLO_ACK", SESSION_OK: "SESSION_OK"}
    frames = {}
    for f in hs["frames"]:
        frames[f["type"]] = unhex(f["hex"])
        out.bytes_("%s_HS_%s" % (p, names[f["type"]]), unhex(f["hex"]),
                   "%s (%s), seq %d" % (f["type_name"], f["direction"], f["seq"]))
    out.bytes_(p + "_HMAC_CLIENT", unhex(hs["hmac_client"]), "HELLO_ACK payload")
    out.bytes_(p + "_HMAC_SERVER", unhex(hs["hmac_server"]))
    ack0 = frame(ver, HELLO_ACK, 0, unhex(hs["hmac_client"]))
    if ver == 1:
        check(ack0 == frames[HELLO_ACK], "v1 HELLO_ACK has seq 0")
    out.bytes_(p + "_D_HS_HELLO_ACK_SEQ0", ack0,
               "derived: the vector HELLO_ACK re-framed with seq 0 (what a C device sends)")

    # ---- session.json -----------------------------------------------------------------
    out.raw()
    out.raw("/* ======== wire v%d: session.json ======== */" % ver)
    c = by_label(ses["cases"], "DATA 'hello world' seq=0")
    out.bytes_(p + "_S_C_HELLO_WORLD_SEQ0", unhex(c["frames"][0]["hex"]), c["label"])
    out.bytes_(p + "_PT_HELLO_WORLD", unhex(c["peer_recv_results"][0]["returned"]))
    c = by_label(ses["cases"], "DATA empty message seq=5")
    out.bytes_(p + "_S_C_EMPTY_SEQ5", unhex(c["frames"][0]["hex"]), c["label"])
    c = by_label(ses["cases"], "DATA 'hello from gateway' seq=0")
    check(c["sender"] == "server", "server->client case")
    out.bytes_(p + "_S_S_FROM_GATEWAY_SEQ0", unhex(c["frames"][0]["hex"]), c["label"])
    out.bytes_(p + "_PT_FROM_GATEWAY", unhex(c["peer_recv_results"][0]["returned"]))
    c = by_label(ses["cases"], "DATA 452 bytes")
    out.bytes_(p + "_S_C_MAX452_SEQ1", unhex(c["frames"][0]["hex"]), c["label"])
    out.bytes_(p + "_PT_MAX452", unhex(c["peer_recv_results"][0]["returned"]))
    c = by_label(ses["cases"], "1000-byte message")
    out.list_(p + "_S_C_FRAG1000_SEQ10", [unhex(f["hex"]) for f in c["frames"]], c["label"])
    pt1000 = unhex(c["peer_recv_results"][0]["returned"])
    out.bytes_(p + "_PT_1000", pt1000)
    c = by_label(ses["cases"], "PING seq=3")
    out.bytes_(p + "_S_C_PING_SEQ3", unhex(c["frames"][0]["hex"]), c["label"])
    out.bytes_(p + "_S_S_PONG_SEQ0", unhex(c["peer_auto_replies"][0]["hex"]),
               "the gateway's automatic PONG (seq 0) to that PING: gateway->device")
    c = by_label(ses["cases"], "PONG seq=4")
    check(c["sender"] == "server", "server PONG")
    out.bytes_(p + "_S_S_PONG_SEQ4", unhex(c["frames"][0]["hex"]), c["label"])
    c = by_label(ses["cases"], "BYE seq=6")
    out.bytes_(p + "_S_C_BYE_SEQ6", unhex(c["frames"][0]["hex"]), c["label"])

    # ---- negative.json ----------------------------------------------------------------
    out.raw()
    out.raw("/* ======== wire v%d: negative.json (device->gateway frames unless noted) ======== */" % ver)
    simple = [
        ("bad CRC", "N_BAD_CRC"),
        ("payload bit flip", "N_PAYLOAD_FLIP"),
        ("bad magic (0xABCE)", "N_BAD_MAGIC"),
        ("bad magic byte order", "N_BAD_MAGIC_ORDER"),
        ("wrong version byte", "N_WRONG_VERSION"),
        ("truncated: 11 bytes", "N_TRUNC11"),
        ("truncated: header ok", "N_TRUNC_PAYLOAD"),
        ("length field 481", "N_LEN481"),
        ("unknown type 0x0C", "N_UNKNOWN_TYPE"),
        ("trailing garbage", "N_TRAILING"),
    ]
    for label, name in simple:
        cc = by_label(neg["cases"], label)
        out.bytes_("%s_%s" % (p, name), unhex(cc["input"]), cc["label"])
    one = [
        ("session: flipped tag", "N_FLIP_TAG"),
        ("session: flipped ciphertext", "N_FLIP_CT"),
        ("session: embedded AEAD nonce", "N_BAD_NONCE"),
        ("session: seq gap", "N_SEQ_GAP"),
        ("session: client->server frame fed to client", "N_WRONG_KEY"),
        ("session: encrypted payload shorter", "N_SHORT"),
        ("session: BYE", "N_BYE"),
    ]
    for label, name in one:
        cc = by_label(neg["cases"], label)
        check(len(cc["frames"]) == 1, label)
        out.bytes_("%s_%s" % (p, name), unhex(cc["frames"][0]), cc["label"])
    cc = by_label(neg["cases"], "session: replay")
    check(cc["frames"][0] == cc["frames"][1], "replay frames")
    out.bytes_(p + "_N_REPLAY", unhex(cc["frames"][0]), cc["label"] + " (fed twice)")
    out.bytes_(p + "_PT_HELLO", unhex(cc["results"][0]["returned"]), "plaintext of N_REPLAY etc.")
    cc = by_label(neg["cases"], "session: PING between DATA_FRAG")
    out.list_(p + "_N_PING_BETWEEN_FRAGS", [unhex(x) for x in cc["frames"]], cc["label"])
    cc = by_label(neg["cases"], "session: 5 consecutive DATA_FRAG")
    out.list_(p + "_N_FIVE_FRAGS", [unhex(x) for x in cc["frames"]], cc["label"])
    cc = by_label(neg["cases"], "session: 9 consecutive PINGs")
    out.list_(p + "_N_PING_FLOOD", [unhex(x) for x in cc["frames"]], cc["label"])
    cc = by_label(neg["cases"], "handshake: server PSK differs")
    check(unhex(cc["server_frames"][0]) == frames[CHALLENGE], "wrong-PSK CHALLENGE")

    # ---- derived frames -----------------------------------------------------------------
    out.raw()
    out.raw("/* ======== wire v%d: derived frames (sealed by gen_vectors_h.py) ======== */" % ver)
    out.raw("/* _D_S_: gateway->device (device rx key); _D_T_: what the device must send (device tx key). */")

    def s(ty, seq, pt=b""):
        return seal(ver, gw_tx, sid, ty, seq, pt)

    def t(ty, seq, pt=b""):
        return seal(ver, dev_tx, sid, ty, seq, pt)

    # Cross-checks of the derived builders against vector frames.
    check(s(DATA, 0, unhex(by_label(ses["cases"], "DATA 'hello from gateway'")["peer_recv_results"][0]["returned"]))
          == unhex(by_label(ses["cases"], "DATA 'hello from gateway'")["frames"][0]["hex"]), "derived S")
    check(t(DATA, 0, b"hello world") == unhex(by_label(ses["cases"], "DATA 'hello world'")["frames"][0]["hex"]),
          "derived T")

    out.list_(p + "_D_S_PING", [s(PING, i) for i in range(16)], "gateway PINGs, seq 0..15")
    out.list_(p + "_D_S_PONG", [s(PONG, i) for i in range(16)], "gateway PONGs, seq 0..15")
    out.list_(p + "_D_S_MSG", [s(DATA, i, b"m%02d" % i) for i in range(16)],
              "gateway DATA 'mNN' at seq NN, 0..15")
    out.bytes_(p + "_D_S_BYE_SEQ0", s(BYE, 0))
    out.bytes_(p + "_D_S_EMPTY_SEQ0", s(DATA, 0), "gateway empty DATA message")
    out.bytes_(p + "_D_S_ERROR_SEQ0", s(ERROR, 0), "type 0xFF sealed like a session frame")
    out.list_(p + "_D_S_FRAG1000", [s(DATA_FRAG, 0, pt1000[:452]), s(DATA_FRAG, 1, pt1000[452:904]),
                                    s(DATA, 2, pt1000[904:])], "gateway 1000-byte message, seq 0..2")
    out.bytes_(p + "_PT_1808", PT_1808, "pattern (i*31+7) & 0xff")
    out.list_(p + "_D_S_MSG1808", [s(DATA_FRAG, 0, PT_1808[:452]), s(DATA_FRAG, 1, PT_1808[452:904]),
                                   s(DATA_FRAG, 2, PT_1808[904:1356]), s(DATA, 3, PT_1808[1356:])],
              "gateway 1808-byte message, seq 0..3")
    out.list_(p + "_D_S_FIVE_FRAGS", [s(DATA_FRAG, i, b"f%d" % i) for i in range(5)])
    out.list_(p + "_D_S_PING_BETWEEN_FRAGS", [s(DATA_FRAG, 0, b"part"), s(PING, 1)])
    out.list_(p + "_D_S_BYE_BETWEEN_FRAGS", [s(DATA_FRAG, 0, b"part"), s(BYE, 1)])
    out.list_(p + "_D_S_FRAG_GAP", [s(DATA_FRAG, 0, b"part"), s(DATA, 2, b"end")],
              "DATA_FRAG seq 0 then DATA seq 2 (seq 1 missing)")
    out.list_(p + "_D_S_FRAG_THEN_MSG", [s(DATA_FRAG, 0, b"abc"), s(DATA, 1, b"def")])
    hello = s(DATA, 0, b"hello")
    out.bytes_(p + "_D_S_HELLO_SEQ0", hello)
    # Flip the last tag bit / first ciphertext bit / first nonce byte; CRC recomputed.
    ft = bytearray(hello); ft[-1] ^= 0x01
    fc = bytearray(hello); fc[24] ^= 0x01
    fn = bytearray(hello); fn[12] ^= 0x01
    out.bytes_(p + "_D_S_FLIP_TAG", refix_crc(bytes(ft)))
    out.bytes_(p + "_D_S_FLIP_CT", refix_crc(bytes(fc)))
    out.bytes_(p + "_D_S_BAD_NONCE", refix_crc(bytes(fn)))
    # Header type changed after sealing (AAD mismatch): PING header over a DATA seal.
    tt = bytearray(hello); tt[3] = PING
    out.bytes_(p + "_D_S_TYPE_SWAPPED", refix_crc(bytes(tt)), "DATA sealed, header says PING")
    out.bytes_(p + "_D_S_SHORT27", frame(ver, DATA, 0, bytes(4) + sid[:8] + bytes(15)),
               "27-byte payload")
    out.list_(p + "_D_T_PONG", [t(PONG, i) for i in range(16)], "device PONG at seq 0..15")
    out.list_(p + "_D_T_PING", [t(PING, i) for i in range(16)], "device PING at seq 0..15")
    out.list_(p + "_D_T_BYE", [t(BYE, i) for i in range(16)], "device BYE at seq 0..15")
    out.bytes_(p + "_D_T_EMPTY_SEQ0", t(DATA, 0))
    out.list_(p + "_D_T_MSG1808", [t(DATA_FRAG, 0, PT_1808[:452]), t(DATA_FRAG, 1, PT_1808[452:904]),
                                   t(DATA_FRAG, 2, PT_1808[904:1356]), t(DATA, 3, PT_1808[1356:])],
              "device 1808-byte message, seq 0..3")
    out.list_(p + "_D_T_MSG", [t(DATA, i, b"d%02d" % i) for i in range(16)],
              "device DATA 'dNN' at seq NN")
    if ver == 1:
        out.bytes_(p + "_D_S_TYPE0B", s(REKEY, 0, bytes(range(0xC0, 0xE0))),
                   "type 0x0B sealed under the v1 key (REKEY does not exist in v1)")
    return sid


def gen_v2_extra(out):
    hs = load(2, "handshake.json")
    rk = load(2, "rekey.json")
    cookie = load(2, "udp_cookie.json")
    sid = unhex(hs["inputs"]["session_id"])
    k_c2s, k_s2c = unhex(hs["k_c2s"]), unhex(hs["k_s2c"])
    salt = unhex(rk["salt"])
    info = unhex(rk["hkdf_info"])
    check(info == b"usmp-rekey" + sid, "rekey info")
    # Device-initiated REKEY (the vector): initiator = device.
    okm = hkdf(salt, k_c2s + k_s2c, info, 64)
    check(okm[:32] == unhex(rk["initiator_new_tx"]) and okm[32:] == unhex(rk["initiator_new_rx"]),
          "rekey HKDF")
    f0, f1 = (unhex(f["hex"]) for f in rk["frames"])
    check(seal(2, k_c2s, sid, REKEY, 5, salt) == f0, "rekey frame reseal")
    after = unhex(rk["server_recv_results"][0]["returned"])
    check(seal(2, okm[:32], sid, DATA, 0, after) == f1, "post-rekey frame reseal")

    out.raw()
    out.raw("/* ======== wire v2: rekey.json, udp_cookie.json ======== */")
    out.bytes_("V2_REKEY_SALT", salt)
    out.bytes_("V2_REKEY_FRAME_SEQ5", f0, "device REKEY at seq 5 under k_c2s")
    out.bytes_("V2_REKEY_AFTER_SEQ0", f1, "device DATA 'after rekey' at seq 0 under the new tx key")
    out.bytes_("V2_PT_AFTER_REKEY", after)
    out.bytes_("V2_D_S_AFTER_CREKEY_SEQ0", seal(2, okm[32:], sid, DATA, 0, after),
               "derived: gateway DATA 'after rekey' seq 0 under its new tx key (device rekeyed)")
    # Gateway-initiated REKEY with the same salt, at gateway seq 0.
    okm_s = hkdf(salt, k_s2c + k_c2s, info, 64)
    out.bytes_("V2_D_S_REKEY_SEQ0", seal(2, k_s2c, sid, REKEY, 0, salt),
               "derived: gateway-initiated REKEY at seq 0")
    out.bytes_("V2_D_S_AFTER_SREKEY_SEQ0", seal(2, okm_s[:32], sid, DATA, 0, after),
               "derived: gateway DATA 'after rekey' seq 0 after its REKEY")
    out.bytes_("V2_D_T_AFTER_SREKEY_SEQ0", seal(2, okm_s[32:], sid, DATA, 0, after),
               "derived: device DATA 'after rekey' seq 0 after the gateway's REKEY")
    out.bytes_("V2_D_S_REKEY_SHORT_SALT", seal(2, k_s2c, sid, REKEY, 0, salt[:31]),
               "derived: REKEY with a 31-byte salt")
    out.list_("V2_D_S_FRAG_REKEY", [seal(2, k_s2c, sid, DATA_FRAG, 0, b"abc"), seal(2, k_s2c, sid, REKEY, 1, salt)],
              "derived: DATA_FRAG seq 0, then a gateway REKEY at seq 1")
    retry = unhex(cookie["server_replies"][1])
    ck = unhex(cookie["cookie"])
    check(retry[3] == HELLO_RETRY and retry[12:] == ck, "HELLO_RETRY vector")
    out.bytes_("V2_HELLO_RETRY", retry, "HELLO_RETRY with the cookie (gateway->device)")
    out.bytes_("V2_COOKIE", ck)
    py_hello = unhex(cookie["client_hello_with_cookie_datagram (Python client, seq=1)"])
    out.bytes_("V2_HELLO_COOKIE_PY_SEQ1", py_hello, "HELLO with cookie as the Python client sends it (seq 1)")
    d = frame(2, HELLO, 0, py_hello[12:])
    check(d[12:] == py_hello[12:] and len(d) == 66, "cookie HELLO")
    out.bytes_("V2_D_HELLO_COOKIE_SEQ0", d, "derived: the same HELLO with seq 0 (C device)")


def render():
    out = Out()
    out.raw("/* Generated by tests/c/gen_vectors_h.py from tests/vectors/v1 and tests/vectors/v2:")
    out.raw(" * do not edit; rerun the script. Names with _D_ are derived frames (see the script). */")
    out.raw("#ifndef USMP_TEST_VECTORS_H")
    out.raw("#define USMP_TEST_VECTORS_H")
    out.raw()
    out.raw("#include <stddef.h>")
    out.raw("#include <stdint.h>")
    out.raw()
    out.raw("typedef struct vec_t {")
    out.raw("    const uint8_t *b;")
    out.raw("    size_t n;")
    out.raw("} vec_t;")
    out.raw()
    out.raw("#define VEC(name) ((vec_t){ (name), name##_LEN })")
    out.raw()
    gen_version(out, 1)
    out.raw()
    gen_version(out, 2)
    gen_v2_extra(out)
    out.raw()
    out.raw("#endif /* USMP_TEST_VECTORS_H */")
    return "\n".join(out.lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if vectors.h is not up to date")
    args = ap.parse_args()
    text = render()
    if args.check:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("tests/c/vectors.h is out of date: run python3 tests/c/gen_vectors_h.py")
        print("tests/c/vectors.h is up to date")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote", os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    main()
