/*
 * usmp_connect over the scripted gateway: the golden-vector handshake byte for byte (v1 and
 * v2), transport errors at each step, every malformed handshake frame class, port failures.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <string.h>

#include "harness.h"

#define HS_MAX 600

/* Copies a vector frame into buf for modification. */
static size_t copy_vec(uint8_t *buf, vec_t v) {
    CHECK(v.n <= HS_MAX);
    memcpy(buf, v.b, v.n);
    return v.n;
}

/* Connects over the scripted steps in *s (already queued) and expects rc. Asserts that the
 * device sent `nsent` frames (HELLO and HELLO_ACK as in the vectors when `vector_frames`),
 * that the transport was closed once and that the context is reusable afterwards. */
static void expect_connect(const vset_t *v, script_t *s, int rc, size_t nsent, bool vector_frames) {
    usmp_t ctx;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    transport_init(&t, s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), rc);
    CHECK(!usmp_is_connected(&ctx));
    CHECK_INT(s->nsent, nsent);
    if (nsent >= 1) CHECK_SENT_VEC(s, 0, v->hello);
    if (nsent >= 2 && vector_frames) CHECK_SENT_VEC(s, 1, v->hello_ack0);
    CHECK_MSG(s->close_calls == 1, "transport close called %d times after a failed connect",
              s->close_calls);
    CHECK_INT(s->protocol_errors, 0);
    /* nothing works on the failed context */
    uint8_t b[8];
    CHECK_RC(usmp_send(&ctx, b, 1), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_recv(&ctx, b, sizeof b), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_ping(&ctx), USMP_ERR_NOT_CONNECTED);
    check_reusable(&ctx, v);
}

/* ---- the vector handshake --------------------------------------------------------- */

static void vector_handshake(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_OK);
    CHECK(usmp_is_connected(&ctx));
    CHECK_INT(s.nsent, 2);
    /* HELLO: byte-exact vector frame (seq 0 in both versions) */
    CHECK_SENT_VEC(&s, 0, v->hello);
    CHECK_BYTES(s.sent[0] + 12, s.sent_len[0] - 12, v->hello.b + 12, 38);
    /* HELLO_ACK: the vector's payload (the HMAC) ... */
    CHECK_INT(s.sent_len[1], 44);
    CHECK_BYTES(s.sent[1] + 12, 32, v->hmac_client.b, v->hmac_client.n);
    CHECK_BYTES(s.sent[1] + 12, 32, v->hello_ack_vec.b + 12, 32);
    /* ... in a frame with seq 0, rebuilt here with this file's own CRC */
    uint8_t ack[44];
    build_frame(ack, v->wire, 3, 0, v->hmac_client.b, 32);
    CHECK_BYTES(s.sent[1], s.sent_len[1], ack, sizeof ack);
    if (v->wire == 1) CHECK_SENT_VEC(&s, 1, v->hello_ack_vec); /* v1 vector has seq 0 too */
    CHECK_INT(s.close_calls, 0);
    CHECK_INT(port.devid_calls >= 1, 1);
    CHECK_INT(port.qpos, 1); /* the private key was drawn */
    /* the session works with the vector keys, both directions */
    script_clear_sent(&s);
    CHECK_RC(usmp_send(&ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&s, 0, v->c_hello_world0);
    script_vec(&s, v->s_from_gateway0);
    uint8_t out[64];
    int n = recv_into(&ctx, out, sizeof out, sizeof out);
    CHECK_RC(n, (int)v->pt_from_gateway.n);
    CHECK_BYTES(out, (size_t)n, v->pt_from_gateway.b, v->pt_from_gateway.n);
    /* Buffers are sized to the phase: the handshake's largest frame is CHALLENGE (76 bytes),
     * a session frame gets a whole USMP_MAX_FRAME_SIZE. */
    CHECK(s.min_recv_max_len >= 12 + 64);
    usmp_close(&ctx);
    CHECK_INT(s.close_calls, 1);
    CHECK_INT(s.protocol_errors, 0);
}

static void explicit_protocol_v2(void) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, &VS2);
    ctx.protocol_version = USMP_PROTOCOL_V2;
    connect_ok(&ctx, &t, &s, &VS2);
    usmp_close(&ctx);
}

static void settings_survive_connect(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    ctx.keepalive_ms = 12345;
    connect_ok(&ctx, &t, &s, v);
    CHECK(ctx.psk == v->psk.b);
    CHECK_INT(ctx.psk_len, v->psk.n);
    CHECK_INT(ctx.keepalive_ms, 12345);
    CHECK_INT(ctx.protocol_version, v->protocol_version);
    usmp_close(&ctx);
}

static void gateway_handshake_seq_ignored(const vset_t *v) {
    /* receivers never check the handshake seq (PROTOCOL.md section 4) */
    uint8_t ch[HS_MAX], ok[HS_MAX];
    size_t nc = copy_vec(ch, v->challenge), no = copy_vec(ok, v->session_ok);
    ch[4] = 7;
    ok[4] = 2;
    ok[7] = 0x80;
    fix_crc(ch, nc);
    fix_crc(ok, no);
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_frame(&s, ch, nc);
    script_frame(&s, ok, no);
    transport_init(&t, &s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_OK);
    CHECK_SENT_VEC(&s, 1, v->hello_ack0);
    usmp_close(&ctx);
}

static void send_positive_rc_is_success(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_handshake(&s, v);
    s.send_ok_rc = 44; /* ">= 0 = success" */
    transport_init(&t, &s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_OK);
    CHECK_RC(usmp_send(&ctx, v->pt_hello.b, 5), USMP_OK);
    usmp_close(&ctx);
}

static void connect_while_connected(const vset_t *v) {
    usmp_t ctx;
    script_t s1, s2;
    usmp_transport_t t1, t2;
    ctx_init(&ctx, v);
    connect_ok(&ctx, &t1, &s1, v);
    CHECK_RC(usmp_send(&ctx, v->pt_hello.b, 5), USMP_OK);
    CHECK_RC(usmp_send(&ctx, v->pt_hello.b, 5), USMP_OK);
    connect_ok(&ctx, &t2, &s2, v); /* a new session: counters restart */
    CHECK_RC(usmp_send(&ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_INT(s2.nsent, 1);
    CHECK_SENT_VEC(&s2, 0, v->c_hello_world0);
    CHECK_INT(s1.nsent, 2); /* nothing more went to the old transport */
    usmp_close(&ctx);
}

/* ---- transport errors at each step ------------------------------------------------- */

static void hello_send_fails(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_handshake(&s, v);
    s.send_fail_at = 1;
    expect_connect(v, &s, USMP_ERR_TRANSPORT_FAILED, 0, true);
    CHECK_INT(s.send_calls >= 1, 1);
}

static void eof_before_challenge(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_rc(&s, -1);
    expect_connect(v, &s, USMP_ERR_REJECTED, 1, true);
}

static void recv_error_before_challenge(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_rc(&s, -104); /* ECONNRESET-style */
    expect_connect(v, &s, USMP_ERR_REJECTED, 1, true);
}

static void hello_ack_send_fails(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_handshake(&s, v);
    s.send_fail_at = 2;
    expect_connect(v, &s, USMP_ERR_TRANSPORT_FAILED, 1, true);
    CHECK_INT(s.send_calls, 2);
}

static void eof_after_hello_ack(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_vec(&s, v->challenge);
    script_rc(&s, -1);
    expect_connect(v, &s, USMP_ERR_AUTH_FAILED, 2, true);
}

static void idle_forever_before_challenge(const vset_t *v) {
    script_t s;
    script_init(&s);
    s.tail_rc = 0;
    expect_connect(v, &s, USMP_ERR_TIMEOUT, 1, true);
    CHECK_MSG(s.recv_calls > 1, "recv called %d times", s.recv_calls);
}

static void idle_forever_after_hello_ack(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_vec(&s, v->challenge);
    s.tail_rc = 0;
    expect_connect(v, &s, USMP_ERR_TIMEOUT, 2, true);
}

static void timeout_measures_the_fake_clock(const vset_t *v) {
    /* the timeout is 10 s of the port clock, not a count of recv calls */
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    s.tail_rc = 0;
    transport_init(&t, &s, 0);
    port.step = 1;
    port_queue_random(v->client_priv.b, v->client_priv.n);
    uint32_t before = port.now;
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_TIMEOUT);
    uint32_t waited = port.now - before;
    CHECK_MSG(waited >= USMP_HANDSHAKE_TIMEOUT_MS, "gave up after %u ms", waited);
    CHECK_MSG(waited < USMP_HANDSHAKE_TIMEOUT_MS + 1000, "waited %u ms", waited);
    CHECK_MSG(s.recv_calls > 100, "only %d recv calls", s.recv_calls);
    CHECK_INT(s.close_calls, 1);
}

static void timeout_across_clock_wrap(const vset_t *v) {
    port.now = 0xFFFFF000u; /* wraps 4 s into the wait */
    port.step = 3;
    script_t s;
    script_init(&s);
    s.tail_rc = 0;
    expect_connect(v, &s, USMP_ERR_TIMEOUT, 1, true);
    CHECK(port.now < 0x10000000u); /* it did wrap */
}

/* Connects through a gateway that leaves `idle` empty receives (the transport's own
 * timeout, port.step ms each) before CHALLENGE and again before SESSION_OK. Returns the
 * usmp_connect result and the clock time it took. */
static int connect_slowly(const vset_t *v, usmp_t *ctx, script_t *s, int idle, uint32_t *took) {
    usmp_transport_t t;
    ctx_init(ctx, v);
    script_init(s);
    for (int i = 0; i < idle; i++) script_rc(s, 0);
    script_vec(s, v->challenge);
    for (int i = 0; i < idle; i++) script_rc(s, 0);
    script_vec(s, v->session_ok);
    transport_init(&t, s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    uint32_t before = port.now;
    int rc = usmp_connect(ctx, &t);
    *took = port.now - before;
    return rc;
}

static void handshake_across_clock_wrap(const vset_t *v) {
    port.now = 0xFFFFFFF0u;
    port.step = 5;
    usmp_t ctx;
    script_t s;
    uint32_t took;
    CHECK_RC(connect_slowly(v, &ctx, &s, 20, &took), USMP_OK);
    usmp_close(&ctx);
}

static void slow_gateway_within_timeout(const vset_t *v) {
    /* idle answers, ~4 s before CHALLENGE and ~4 s before SESSION_OK: well inside 10 s */
    port.step = 100;
    usmp_t ctx;
    script_t s;
    uint32_t took;
    CHECK_RC(connect_slowly(v, &ctx, &s, 40, &took), USMP_OK);
    usmp_close(&ctx);
}

static void handshake_timeout_is_total(const vset_t *v) {
    /* usmp.h: usmp_connect blocks "at most USMP_HANDSHAKE_TIMEOUT_MS" (like the gateway's own
     * 10 s handshake timeout): 6 s before CHALLENGE plus 6 s before SESSION_OK is too long. */
    port.step = 100;
    usmp_t ctx;
    script_t s;
    uint32_t took;
    CHECK_RC(connect_slowly(v, &ctx, &s, 60, &took), USMP_ERR_TIMEOUT);
    CHECK_MSG(took < 11000, "gave up only after %u ms", took);
    CHECK_INT(s.close_calls, 1);
    CHECK(!usmp_is_connected(&ctx));
}

static void recv_more_than_max_len_before_challenge(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_rc(&s, USMP_MAX_FRAME_SIZE + 1); /* claims more than the buffer it was given */
    expect_connect(v, &s, USMP_ERR_TRANSPORT_FAILED, 1, true);
}

static void recv_more_than_max_len_after_hello_ack(const vset_t *v) {
    script_t s;
    script_init(&s);
    script_vec(&s, v->challenge);
    script_rc(&s, 100000);
    expect_connect(v, &s, USMP_ERR_TRANSPORT_FAILED, 2, true);
}

/* ---- port failures ------------------------------------------------------------------ */

static void device_id_fails(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    port.devid_fail = 1;
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_PORT_FAILED);
    CHECK_INT(s.send_calls, 0);
    CHECK(!usmp_is_connected(&ctx));
    CHECK_INT(s.close_calls, 1);
    port.devid_fail = 0;
    check_reusable(&ctx, v);
}

static void random_fails(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    port.random_fail_at = 1;
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_PORT_FAILED);
    CHECK_INT(s.send_calls, 0);
    CHECK(!usmp_is_connected(&ctx));
    CHECK_INT(s.close_calls, 1);
    port.random_fail_at = 0;
    check_reusable(&ctx, v);
}

/* ---- malformed handshake frames ------------------------------------------------------ */

/* The CHALLENGE step gets `f`; the device must fail with rc after sending only HELLO. */
static void bad_challenge(const vset_t *v, const uint8_t *f, size_t n, int rc) {
    script_t s;
    script_init(&s);
    script_frame(&s, f, n);
    script_vec(&s, v->session_ok);
    expect_connect(v, &s, rc, 1, true);
}

/* The SESSION_OK step gets `f` after the vector CHALLENGE. */
static void bad_session_ok(const vset_t *v, const uint8_t *f, size_t n, int rc) {
    script_t s;
    script_init(&s);
    script_vec(&s, v->challenge);
    script_frame(&s, f, n);
    expect_connect(v, &s, rc, 2, true);
}

static void challenge_bad_crc(const vset_t *v) {
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->challenge);
    f[10] ^= 0x01;
    bad_challenge(v, f, n, USMP_ERR_BAD_CRC);
    n = copy_vec(f, v->challenge);
    f[n - 1] ^= 0x80; /* payload bit, CRC left alone */
    bad_challenge(v, f, n, USMP_ERR_BAD_CRC);
    n = copy_vec(f, v->challenge);
    f[5] ^= 0x01; /* header seq bit: the CRC covers the header too */
    bad_challenge(v, f, n, USMP_ERR_BAD_CRC);
}

static void session_ok_bad_crc(const vset_t *v) {
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->session_ok);
    f[11] ^= 0x40;
    bad_session_ok(v, f, n, USMP_ERR_BAD_CRC);
}

static void challenge_bad_magic(const vset_t *v) {
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->challenge);
    f[0] = 0xCE; /* 0xABCE */
    fix_crc(f, n);
    bad_challenge(v, f, n, USMP_ERR_BAD_FRAME);
    n = copy_vec(f, v->challenge);
    f[0] = 0xAB; /* big-endian magic */
    f[1] = 0xCD;
    fix_crc(f, n);
    bad_challenge(v, f, n, USMP_ERR_BAD_FRAME);
    bad_challenge(v, v->n_bad_magic.b, v->n_bad_magic.n, USMP_ERR_BAD_FRAME);
}

static void challenge_truncated(const vset_t *v) {
    bad_challenge(v, v->challenge.b, v->challenge.n - 1, USMP_ERR_BAD_FRAME);
    bad_challenge(v, v->challenge.b, 12, USMP_ERR_BAD_FRAME);
    bad_challenge(v, v->challenge.b, 11, USMP_ERR_BAD_FRAME);
    bad_challenge(v, v->challenge.b, 1, USMP_ERR_BAD_FRAME);
    bad_challenge(v, v->n_trunc11.b, v->n_trunc11.n, USMP_ERR_BAD_FRAME);
    bad_challenge(v, v->n_trunc_payload.b, v->n_trunc_payload.n, USMP_ERR_BAD_FRAME);
}

static void session_ok_truncated(const vset_t *v) {
    bad_session_ok(v, v->session_ok.b, v->session_ok.n - 1, USMP_ERR_BAD_FRAME);
    bad_session_ok(v, v->session_ok.b, 5, USMP_ERR_BAD_FRAME);
}

static void challenge_length_over_480(const vset_t *v) {
    /* the vector frame has 493 bytes; the transport delivers the 492 that fit */
    bad_challenge(v, v->n_len481.b, v->n_len481.n, USMP_ERR_BAD_FRAME);
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->challenge);
    f[8] = 0xFF; /* length 0xFFFF */
    f[9] = 0xFF;
    bad_challenge(v, f, n, USMP_ERR_BAD_FRAME);
    n = copy_vec(f, v->challenge);
    f[8] = 0xE1; /* 481, header only */
    f[9] = 0x01;
    bad_challenge(v, f, 12, USMP_ERR_BAD_FRAME);
}

static void wrong_version_byte(const vset_t *v) {
    const vset_t *other = v->wire == 1 ? &VS2 : &VS1;
    bad_challenge(v, other->challenge.b, other->challenge.n, USMP_ERR_VERSION_MISMATCH);
    bad_session_ok(v, other->session_ok.b, other->session_ok.n, USMP_ERR_VERSION_MISMATCH);
    const uint8_t versions[] = { 0, 3, 0xFF };
    for (size_t i = 0; i < sizeof versions; i++) {
        uint8_t f[HS_MAX];
        size_t n = copy_vec(f, v->challenge);
        f[2] = versions[i];
        fix_crc(f, n);
        bad_challenge(v, f, n, USMP_ERR_VERSION_MISMATCH);
    }
    bad_challenge(v, v->n_wrong_version.b, v->n_wrong_version.n, USMP_ERR_VERSION_MISMATCH);
}

static void wrong_type_at_challenge_step(const vset_t *v) {
    bad_challenge(v, v->session_ok.b, v->session_ok.n, USMP_ERR_UNEXPECTED_FRAME);
    bad_challenge(v, v->hello.b, v->hello.n, USMP_ERR_UNEXPECTED_FRAME);        /* echo */
    bad_challenge(v, v->hello_ack0.b, v->hello_ack0.n, USMP_ERR_UNEXPECTED_FRAME);
    bad_challenge(v, v->s_from_gateway0.b, v->s_from_gateway0.n, USMP_ERR_UNEXPECTED_FRAME);
    bad_challenge(v, v->d_s_ping[0].b, v->d_s_ping[0].n, USMP_ERR_UNEXPECTED_FRAME);
    bad_challenge(v, v->n_unknown_type.b, v->n_unknown_type.n, USMP_ERR_UNEXPECTED_FRAME);
    const uint8_t types[] = { 0x00, 0x0C, 0x7F, 0xFF };
    for (size_t i = 0; i < sizeof types; i++) {
        uint8_t f[HS_MAX];
        size_t n = copy_vec(f, v->challenge);
        f[3] = types[i];
        fix_crc(f, n);
        bad_challenge(v, f, n, USMP_ERR_UNEXPECTED_FRAME);
    }
}

static void wrong_type_at_session_ok_step(const vset_t *v) {
    bad_session_ok(v, v->challenge.b, v->challenge.n, USMP_ERR_UNEXPECTED_FRAME); /* again */
    bad_session_ok(v, v->s_from_gateway0.b, v->s_from_gateway0.n, USMP_ERR_UNEXPECTED_FRAME);
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->session_ok);
    f[3] = 0x0C;
    fix_crc(f, n);
    bad_session_ok(v, f, n, USMP_ERR_UNEXPECTED_FRAME);
    n = copy_vec(f, v->session_ok);
    f[3] = 0x03; /* HELLO_ACK */
    fix_crc(f, n);
    bad_session_ok(v, f, n, USMP_ERR_UNEXPECTED_FRAME);
}

static void hello_retry_type_on_v1(void) {
    /* 0x0A does not exist in v1: an unknown type */
    uint8_t f[64];
    size_t n = build_frame(f, 1, 0x0A, 0, V2_COOKIE, V2_COOKIE_LEN);
    bad_challenge(&VS1, f, n, USMP_ERR_UNEXPECTED_FRAME);
}

static void hello_retry_at_session_ok_step(void) {
    bad_session_ok(&VS2, V2_HELLO_RETRY, V2_HELLO_RETRY_LEN, USMP_ERR_UNEXPECTED_FRAME);
}

static void challenge_wrong_payload_length(const vset_t *v) {
    const size_t lens[] = { 0, 32, 63, 65, 96, 480 };
    uint8_t payload[480];
    memset(payload, 0x11, sizeof payload);
    memcpy(payload, v->challenge.b + 12, 64);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t f[HS_MAX];
        size_t n = build_frame(f, v->wire, 2, 0, payload, lens[i]);
        bad_challenge(v, f, n, USMP_ERR_BAD_FRAME);
    }
}

static void session_ok_wrong_payload_length(const vset_t *v) {
    const size_t lens[] = { 0, 16, 47, 49, 64 };
    uint8_t payload[64];
    memset(payload, 0x22, sizeof payload);
    memcpy(payload, v->session_ok.b + 12, 48);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t f[HS_MAX];
        size_t n = build_frame(f, v->wire, 4, 0, payload, lens[i]);
        bad_session_ok(v, f, n, USMP_ERR_BAD_FRAME);
    }
}

static void hello_retry_wrong_length(void) {
    uint8_t payload[32] = { 0 };
    const size_t lens[] = { 0, 15, 17, 32 };
    for (size_t i = 0; i < 4; i++) {
        uint8_t f[64];
        size_t n = build_frame(f, 2, 0x0A, 0, payload, lens[i]);
        bad_challenge(&VS2, f, n, USMP_ERR_BAD_FRAME);
    }
}

static void session_ok_flipped_mac(const vset_t *v) {
    const size_t at[] = { 12 + 16, 12 + 16 + 15, 12 + 47 }; /* first, middle, last MAC byte */
    for (size_t i = 0; i < 3; i++) {
        uint8_t f[HS_MAX];
        size_t n = copy_vec(f, v->session_ok);
        f[at[i]] ^= 0x01;
        fix_crc(f, n); /* a well-formed frame with a wrong MAC */
        bad_session_ok(v, f, n, USMP_ERR_AUTH_FAILED);
    }
}

static void session_ok_flipped_session_id(const vset_t *v) {
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->session_ok);
    f[12] ^= 0x01;
    fix_crc(f, n);
    bad_session_ok(v, f, n, USMP_ERR_AUTH_FAILED);
}

static void session_ok_of_other_version(const vset_t *v) {
    /* the other version's SESSION_OK payload (other transcript), framed for this version */
    const vset_t *other = v->wire == 1 ? &VS2 : &VS1;
    uint8_t f[HS_MAX];
    size_t n = build_frame(f, v->wire, 4, 0, other->session_ok.b + 12, 48);
    bad_session_ok(v, f, n, USMP_ERR_AUTH_FAILED);
}

static void wrong_psk(const vset_t *v) {
    static const uint8_t other_psk[] = "a-different-psk-of-enough-bytes!";
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    ctx.psk = other_psk;
    ctx.psk_len = 32;
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_AUTH_FAILED);
    CHECK_INT(s.nsent, 2);
    CHECK_SENT_VEC(&s, 0, v->hello);
    CHECK_INT(sent_type(&s, 1), 3);
    CHECK(memcmp(s.sent[1] + 12, v->hmac_client.b, 32) != 0);
    CHECK_INT(s.close_calls, 1);
    ctx.psk = v->psk.b;
    ctx.psk_len = v->psk.n;
    check_reusable(&ctx, v);
}

static void challenge_with_other_nonce(const vset_t *v) {
    /* a valid CHALLENGE with another nonce: the device answers, the vector SESSION_OK (made
     * for the real nonce) must then fail */
    uint8_t f[HS_MAX];
    size_t n = copy_vec(f, v->challenge);
    f[12] ^= 0xFF;
    fix_crc(f, n);
    script_t s;
    script_init(&s);
    script_frame(&s, f, n);
    script_vec(&s, v->session_ok);
    expect_connect(v, &s, USMP_ERR_AUTH_FAILED, 2, false);
    CHECK(memcmp(s.sent[1] + 12, v->hmac_client.b, 32) != 0);
}

static void challenge_small_order_public_key(const vset_t *v) {
    /* X25519 with these points gives the all-zero secret: refused, nothing more sent */
    static const uint8_t points[][32] = {
        { 0 },                                                    /* 0 */
        { 1 },                                                    /* 1 */
        { 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
          0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
          0xb8, 0x00 },                                           /* order 8 */
        { 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0xff, 0x7f },                                           /* p - 1 */
    };
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        uint8_t payload[64];
        memcpy(payload, v->challenge.b + 12, 32);
        memcpy(payload + 32, points[i], 32);
        uint8_t f[HS_MAX];
        size_t n = build_frame(f, v->wire, 2, 0, payload, 64);
        bad_challenge(v, f, n, USMP_ERR_CRYPTO_FAILED);
    }
}

/* ---- v2 HELLO_RETRY (UDP cookie) --------------------------------------------------- */

static void hello_retry_cookie(void) {
    const vset_t *v = &VS2;
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_frame(&s, V2_HELLO_RETRY, V2_HELLO_RETRY_LEN);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_OK);
    CHECK_INT(s.nsent, 3);
    CHECK_SENT_VEC(&s, 0, v->hello);
    /* HELLO again, same key, cookie appended, seq 0 */
    CHECK_BYTES(s.sent[1], s.sent_len[1], V2_D_HELLO_COOKIE_SEQ0, V2_D_HELLO_COOKIE_SEQ0_LEN);
    CHECK_BYTES(s.sent[1] + 12, s.sent_len[1] - 12, V2_HELLO_COOKIE_PY_SEQ1 + 12,
                V2_HELLO_COOKIE_PY_SEQ1_LEN - 12);
    CHECK_SENT_VEC(&s, 2, v->hello_ack0);
    CHECK_INT(port.random_calls, 1); /* one key pair for the whole handshake */
    script_clear_sent(&s);
    CHECK_RC(usmp_send(&ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&s, 0, v->c_hello_world0);
    usmp_close(&ctx);
}

static void hello_retry_then_eof(void) {
    script_t s;
    script_init(&s);
    script_frame(&s, V2_HELLO_RETRY, V2_HELLO_RETRY_LEN);
    script_rc(&s, -1);
    usmp_t ctx;
    usmp_transport_t t;
    ctx_init(&ctx, &VS2);
    transport_init(&t, &s, 0);
    port_queue_random(VS2.client_priv.b, VS2.client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_REJECTED);
    CHECK_INT(s.nsent, 2);
    CHECK_INT(s.close_calls, 1);
    check_reusable(&ctx, &VS2);
}

static void hello_retry_resend_fails(void) {
    script_t s;
    script_init(&s);
    script_frame(&s, V2_HELLO_RETRY, V2_HELLO_RETRY_LEN);
    script_handshake(&s, &VS2);
    s.send_fail_at = 2;
    usmp_t ctx;
    usmp_transport_t t;
    ctx_init(&ctx, &VS2);
    transport_init(&t, &s, 0);
    port_queue_random(VS2.client_priv.b, VS2.client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_TRANSPORT_FAILED);
    CHECK_INT(s.close_calls, 1);
    check_reusable(&ctx, &VS2);
}

static const test_case_t CASES[] = {
    CASE_V(vector_handshake),
    CASE(explicit_protocol_v2),
    CASE_V(settings_survive_connect),
    CASE_V(gateway_handshake_seq_ignored),
    CASE_V(send_positive_rc_is_success),
    CASE_V(connect_while_connected),
    CASE_V(hello_send_fails),
    CASE_V(eof_before_challenge),
    CASE_V(recv_error_before_challenge),
    CASE_V(hello_ack_send_fails),
    CASE_V(eof_after_hello_ack),
    CASE_V(idle_forever_before_challenge),
    CASE_V(idle_forever_after_hello_ack),
    CASE_V(timeout_measures_the_fake_clock),
    CASE_V(timeout_across_clock_wrap),
    CASE_V(handshake_across_clock_wrap),
    CASE_V(slow_gateway_within_timeout),
    CASE_V(handshake_timeout_is_total),
    CASE_V(recv_more_than_max_len_before_challenge),
    CASE_V(recv_more_than_max_len_after_hello_ack),
    CASE_V(device_id_fails),
    CASE_V(random_fails),
    CASE_V(challenge_bad_crc),
    CASE_V(session_ok_bad_crc),
    CASE_V(challenge_bad_magic),
    CASE_V(challenge_truncated),
    CASE_V(session_ok_truncated),
    CASE_V(challenge_length_over_480),
    CASE_V(wrong_version_byte),
    CASE_V(wrong_type_at_challenge_step),
    CASE_V(wrong_type_at_session_ok_step),
    CASE(hello_retry_type_on_v1),
    CASE(hello_retry_at_session_ok_step),
    CASE_V(challenge_wrong_payload_length),
    CASE_V(session_ok_wrong_payload_length),
    CASE(hello_retry_wrong_length),
    CASE_V(session_ok_flipped_mac),
    CASE_V(session_ok_flipped_session_id),
    CASE_V(session_ok_of_other_version),
    CASE_V(wrong_psk),
    CASE_V(challenge_with_other_nonce),
    CASE_V(challenge_small_order_public_key),
    CASE(hello_retry_cookie),
    CASE(hello_retry_then_eof),
    CASE(hello_retry_resend_fails),
};

int main(int argc, char **argv) {
    return run_tests("handshake", CASES, sizeof CASES / sizeof CASES[0], argc, argv);
}
