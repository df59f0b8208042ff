/*
 * C API argument handling: NULL pointers, bad settings, calls before connect, result-code
 * names, version, frame-size helper, log level.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Every code of usmp_err_t with its name; the numbers never change. */
static const struct {
    int code;
    const char *name;
} CODES[] = {
    { USMP_OK, "USMP_OK" },
    { USMP_ERR_INVALID_ARG, "USMP_ERR_INVALID_ARG" },
    { USMP_ERR_TRANSPORT_FAILED, "USMP_ERR_TRANSPORT_FAILED" },
    { USMP_ERR_AUTH_FAILED, "USMP_ERR_AUTH_FAILED" },
    { USMP_ERR_TIMEOUT, "USMP_ERR_TIMEOUT" },
    { USMP_ERR_REPLAY_DETECTED, "USMP_ERR_REPLAY_DETECTED" },
    { USMP_ERR_BUFFER_OVERFLOW, "USMP_ERR_BUFFER_OVERFLOW" },
    { USMP_ERR_SEQ_EXHAUSTED, "USMP_ERR_SEQ_EXHAUSTED" },
    { USMP_ERR_CRYPTO_FAILED, "USMP_ERR_CRYPTO_FAILED" },
    { USMP_ERR_NOT_CONNECTED, "USMP_ERR_NOT_CONNECTED" },
    { USMP_ERR_BAD_FRAME, "USMP_ERR_BAD_FRAME" },
    { USMP_ERR_BAD_CRC, "USMP_ERR_BAD_CRC" },
    { USMP_ERR_VERSION_MISMATCH, "USMP_ERR_VERSION_MISMATCH" },
    { USMP_ERR_UNEXPECTED_FRAME, "USMP_ERR_UNEXPECTED_FRAME" },
    { USMP_ERR_CLOSED_BY_PEER, "USMP_ERR_CLOSED_BY_PEER" },
    { USMP_ERR_FLOOD, "USMP_ERR_FLOOD" },
    { USMP_ERR_PSK_TOO_SHORT, "USMP_ERR_PSK_TOO_SHORT" },
    { USMP_ERR_REJECTED, "USMP_ERR_REJECTED" },
    { USMP_ERR_PORT_FAILED, "USMP_ERR_PORT_FAILED" },
    { USMP_ERR_UNSUPPORTED, "USMP_ERR_UNSUPPORTED" },
    { USMP_ERR_CONTEXT_MOVED, "USMP_ERR_CONTEXT_MOVED" },
    { USMP_ERR_FRAGMENTATION, "USMP_ERR_FRAGMENTATION" },
    { USMP_ERR_BUSY, "USMP_ERR_BUSY" },
};

static void err_codes_are_stable(void) {
    /* The numbers are ABI: -1..-9 as in the original 1.2 usmp_err_t, then -10..-21. */
    for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++) CHECK_INT(CODES[i].code, -(int)i);
}

static void err_name_every_code(void) {
    for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++) {
        const char *n = usmp_err_name(CODES[i].code);
        CHECK(n != NULL);
        CHECK_MSG(strcmp(n, CODES[i].name) == 0, "usmp_err_name(%d) = \"%s\", expected \"%s\"",
                  CODES[i].code, n, CODES[i].name);
    }
}

static void err_name_unknown(void) {
    const int unknown[] = { 1, 2, 42, -23, -24, -100, -255, 1000, INT_MAX, INT_MIN, INT_MIN + 1 };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *n = usmp_err_name(unknown[i]);
        CHECK(n != NULL);
        CHECK_MSG(strcmp(n, "USMP_ERR_UNKNOWN") == 0, "usmp_err_name(%d) = \"%s\"", unknown[i], n);
    }
}

static void version_string(void) {
    const char *v = usmp_get_version();
    CHECK(v != NULL);
    CHECK(strlen(v) > 0);
    CHECK(strlen(v) < 64);
    /* "MAJOR.MINOR.PATCH" */
    int dots = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '.') dots++;
        else CHECK_MSG((*p >= '0' && *p <= '9') || *p == '-' || (*p >= 'a' && *p <= 'z'),
                       "odd version string \"%s\"", v);
    }
    CHECK_MSG(dots >= 2, "version \"%s\" is not MAJOR.MINOR.PATCH", v);
    CHECK(usmp_get_version() == v || strcmp(usmp_get_version(), v) == 0);
}

static void constants_match_protocol(void) {
    CHECK_INT(USMP_HEADER_SIZE, 12);
    CHECK_INT(USMP_MAX_PAYLOAD, 480);
    CHECK_INT(USMP_MAX_FRAME_SIZE, 492);
    CHECK_INT(USMP_MAX_DATA_LEN, 452);
    CHECK_INT(USMP_MAX_FRAMES, 4);
    CHECK_INT(USMP_MAX_MESSAGE_LEN, 1808);
    CHECK_INT(USMP_DEVICE_ID_LEN, 6);
    CHECK_INT(USMP_SESSION_ID_LEN, 16);
    CHECK_INT(USMP_SESSION_KEY_LEN, 32);
    CHECK_INT(USMP_DEFAULT_PORT, 9000);
    CHECK_INT(USMP_PROTOCOL_V1, 1);
    CHECK_INT(USMP_PROTOCOL_V2, 2);
    /* The first seven transport members are the original's, in order. */
    CHECK_INT(offsetof(usmp_transport_t, send), 0);
    CHECK(offsetof(usmp_transport_t, recv) > offsetof(usmp_transport_t, send));
    CHECK(offsetof(usmp_transport_t, close) > offsetof(usmp_transport_t, recv));
    CHECK(offsetof(usmp_transport_t, reconnect) > offsetof(usmp_transport_t, close));
    CHECK(offsetof(usmp_transport_t, available) > offsetof(usmp_transport_t, reconnect));
    CHECK(offsetof(usmp_transport_t, destroy) > offsetof(usmp_transport_t, available));
    CHECK(offsetof(usmp_transport_t, ctx) > offsetof(usmp_transport_t, destroy));
}

/* ---- usmp_connect arguments ---------------------------------------------------------- */

static void connect_null_ctx(void) {
    script_t s;
    usmp_transport_t t;
    script_init(&s);
    script_handshake(&s, &VS2);
    transport_init(&t, &s, 0);
    CHECK_RC(usmp_connect(NULL, &t), USMP_ERR_INVALID_ARG);
    CHECK_INT(s.send_calls, 0);
    CHECK_INT(s.recv_calls, 0);
    CHECK_INT(port.random_calls, 0);
}

static void connect_null_transport(const vset_t *v) {
    usmp_t ctx;
    ctx_init(&ctx, v);
    CHECK_RC(usmp_connect(&ctx, NULL), USMP_ERR_INVALID_ARG);
    CHECK(!usmp_is_connected(&ctx));
    CHECK_RC(usmp_connect(NULL, NULL), USMP_ERR_INVALID_ARG);
    check_reusable(&ctx, v);
}

static void connect_transport_without_send_or_recv(const vset_t *v) {
    const int omit[] = { TR_NO_SEND, TR_NO_RECV, TR_NO_SEND | TR_NO_RECV };
    for (size_t i = 0; i < 3; i++) {
        usmp_t ctx;
        script_t s;
        usmp_transport_t t;
        ctx_init(&ctx, v);
        script_init(&s);
        script_handshake(&s, v);
        transport_init(&t, &s, omit[i]);
        CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_INVALID_ARG);
        CHECK_INT(s.send_calls, 0);
        CHECK_INT(s.recv_calls, 0);
        CHECK(!usmp_is_connected(&ctx));
        check_reusable(&ctx, v);
    }
}

static void connect_with_only_send_and_recv(const vset_t *v) {
    /* close, reconnect, available and destroy may all be NULL */
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, TR_NO_CLOSE | TR_NO_RECONNECT | TR_NO_AVAILABLE);
    t.destroy = NULL;
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_OK);
    CHECK_SENT_VEC(&s, 0, v->hello);
    CHECK_SENT_VEC(&s, 1, v->hello_ack0);
    script_vec(&s, v->d_s_ping[0]);
    uint8_t buf[16];
    CHECK_RC(usmp_recv(&ctx, buf, sizeof buf), 0); /* PING answered; then idle */
    CHECK_SENT_VEC(&s, 2, v->d_t_pong[0]);
    CHECK_RC(usmp_reconnect(&ctx), USMP_ERR_UNSUPPORTED);
    usmp_close(&ctx);
    usmp_close(&ctx);
    /* the failure path without close: EOF before CHALLENGE */
    script_init(&s);
    script_rc(&s, -1);
    transport_init(&t, &s, TR_NO_CLOSE | TR_NO_RECONNECT | TR_NO_AVAILABLE);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_REJECTED);
    check_reusable(&ctx, v);
}

static void connect_psk_null_with_len(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    ctx.psk = NULL;
    ctx.psk_len = 16;
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_INVALID_ARG);
    CHECK_INT(s.send_calls, 0);
    CHECK(!usmp_is_connected(&ctx));
    ctx.psk = v->psk.b;
    ctx.psk_len = v->psk.n;
    check_reusable(&ctx, v);
}

static void connect_psk_null_zero(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    ctx.psk = NULL;
    ctx.psk_len = 0;
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_PSK_TOO_SHORT);
    CHECK_INT(s.send_calls, 0);
    CHECK_INT(s.recv_calls, 0);
    ctx.psk = v->psk.b;
    ctx.psk_len = v->psk.n;
    check_reusable(&ctx, v);
}

static void connect_psk_empty_nonnull(const vset_t *v) {
    /* A zero-length PSK authenticates nobody: refused before anything is sent. */
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    ctx.psk_len = 0;
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_PSK_TOO_SHORT);
    CHECK_INT(s.send_calls, 0);
    ctx.psk_len = v->psk.n;
    check_reusable(&ctx, v);
}

static void connect_v2_psk_15_bytes(void) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    const vset_t *v = &VS2;
    for (int pv = 0; pv <= 2; pv += 2) { /* default (0) and explicit USMP_PROTOCOL_V2 */
        ctx_init(&ctx, v);
        ctx.protocol_version = (uint8_t)pv;
        ctx.psk_len = 15;
        script_init(&s);
        script_handshake(&s, v);
        transport_init(&t, &s, 0);
        CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_PSK_TOO_SHORT);
        CHECK_INT(s.send_calls, 0); /* NOTHING sent */
        CHECK_INT(s.nsent, 0);
        CHECK_INT(s.recv_calls, 0);
        CHECK(!usmp_is_connected(&ctx));
    }
    ctx.psk_len = v->psk.n;
    check_reusable(&ctx, v);
}

static void connect_v2_psk_16_bytes_is_enough(void) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, &VS2);
    ctx.psk_len = 16;
    script_init(&s);
    script_rc(&s, -1); /* the gateway hangs up after HELLO */
    transport_init(&t, &s, 0);
    port_queue_random(VS2.client_priv.b, VS2.client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_REJECTED);
    CHECK_INT(s.nsent, 1);
    CHECK_SENT_VEC(&s, 0, VS2.hello);
}

static void connect_v1_short_psk_allowed(void) {
    /* v1 has no 16-byte minimum (the 0.5 gateway accepts any PSK): a 1-byte PSK gets as far
     * as HELLO_ACK; its MAC then differs from the vector's. */
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    static const uint8_t one = 'x';
    ctx_init(&ctx, &VS1);
    ctx.psk = &one;
    ctx.psk_len = 1;
    script_init(&s);
    script_vec(&s, VS1.challenge);
    script_rc(&s, -1);
    transport_init(&t, &s, 0);
    port_queue_random(VS1.client_priv.b, VS1.client_priv.n);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_AUTH_FAILED);
    CHECK_INT(s.nsent, 2);
    CHECK_SENT_VEC(&s, 0, VS1.hello);
    CHECK_INT(sent_type(&s, 1), 3);
    CHECK_INT(sent_plen(&s, 1), 32);
    CHECK(memcmp(s.sent[1] + 12, VS1.hmac_client.b, 32) != 0);
}

static void connect_huge_psk_len(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    ctx.psk_len = (size_t)-1; /* cannot be a real buffer */
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_INVALID_ARG);
    CHECK_INT(s.send_calls, 0);
    ctx.psk_len = v->psk.n;
    check_reusable(&ctx, v);
}

static void connect_bad_protocol_version(void) {
    const uint8_t bad[] = { 3, 7, 0x10, 0xFF };
    for (size_t i = 0; i < sizeof bad; i++) {
        usmp_t ctx;
        script_t s;
        usmp_transport_t t;
        ctx_init(&ctx, &VS2);
        ctx.protocol_version = bad[i];
        script_init(&s);
        script_handshake(&s, &VS2);
        transport_init(&t, &s, 0);
        CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_INVALID_ARG);
        CHECK_INT(s.send_calls, 0);
        CHECK(!usmp_is_connected(&ctx));
        ctx.protocol_version = 0;
        check_reusable(&ctx, &VS2);
    }
}

static void connect_reserved_and_garbage_opaque(const vset_t *v) {
    /* usmp_connect resets the private state: garbage in opaque must not matter. */
    usmp_t ctx;
    memset(&ctx, 0xA5, sizeof ctx);
    ctx.psk = v->psk.b;
    ctx.psk_len = v->psk.n;
    ctx.keepalive_ms = 0;
    ctx.protocol_version = v->protocol_version;
    ctx.retransmit_attempts = 0;
    ctx.retransmit_timeout_ms = 0;
    ctx.recv_timeout_ms = 0;
    CHECK(!usmp_is_connected(&ctx));
    check_reusable(&ctx, v);
}

/* Documented: "On failure the transport is closed". Checked separately for the failures that
 * happen before any I/O (PSK / settings). */
static void connect_config_failure_closes_transport(const vset_t *v) {
    struct {
        const char *what;
        const uint8_t *psk;
        size_t len;
        uint8_t pv;
        int rc;
    } cases[] = {
        { "psk NULL, len 0", NULL, 0, v->protocol_version, USMP_ERR_PSK_TOO_SHORT },
        { "psk NULL, len 16", NULL, 16, v->protocol_version, USMP_ERR_INVALID_ARG },
        { "psk len 0", v->psk.b, 0, v->protocol_version, USMP_ERR_PSK_TOO_SHORT },
        { "protocol_version 7", v->psk.b, v->psk.n, 7, USMP_ERR_INVALID_ARG },
        { "v2 psk of 15 bytes", v->psk.b, 15, 0, USMP_ERR_PSK_TOO_SHORT },
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        usmp_t ctx;
        script_t s;
        usmp_transport_t t;
        ctx_init(&ctx, v);
        ctx.psk = cases[i].psk;
        ctx.psk_len = cases[i].len;
        ctx.protocol_version = cases[i].pv;
        script_init(&s);
        transport_init(&t, &s, 0);
        CHECK_RC(usmp_connect(&ctx, &t), cases[i].rc);
        CHECK_INT(s.send_calls, 0);
        if (s.close_calls != 1) {
            test_note("%s -> %s: transport close called %d times, expected 1", cases[i].what,
                      rc_name(cases[i].rc), s.close_calls);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d failed connects left the transport open", bad);
}

static void connect_datagram_without_recv_timeout(const vset_t *v) {
    /* USMP_TRANSPORT_DATAGRAM requires recv_timeout */
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    script_init(&s);
    script_handshake(&s, v);
    transport_init(&t, &s, 0);
    t.flags = USMP_TRANSPORT_DATAGRAM;
    t.recv_timeout = NULL;
    CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_INVALID_ARG);
    CHECK_INT(s.send_calls, 0);
    CHECK_INT(s.recv_calls, 0);
    CHECK(!usmp_is_connected(&ctx));
    check_reusable(&ctx, v);
}

static void stats_arguments_and_stream_counters(const vset_t *v) {
    usmp_stats_t st;
    memset(&st, 0x5A, sizeof st);
    usmp_t ctx;
    ctx_init(&ctx, v);
    CHECK_RC(usmp_get_stats(NULL, &st), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_get_stats(&ctx, NULL), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_get_stats(NULL, NULL), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_get_stats(&ctx, &st), USMP_OK); /* never connected: zero */
    CHECK_INT(st.retransmits, 0);
    CHECK_INT(st.duplicates, 0);
    CHECK_INT(st.rejected, 0);
    CHECK_INT(st.bad_acks, 0);
    /* a byte-stream session with traffic and an error: counters stay zero */
    script_t s;
    usmp_transport_t t;
    connect_ok(&ctx, &t, &s, v);
    CHECK_RC(usmp_send(&ctx, v->pt_hello.b, 5), USMP_OK);
    script_vec(&s, v->d_s_ping[0]);
    script_vec(&s, v->d_s_flip_tag); /* seq 1, bad tag */
    uint8_t out[16];
    CHECK_RC(usmp_recv(&ctx, out, sizeof out), USMP_ERR_CRYPTO_FAILED);
    memset(&st, 0x5A, sizeof st);
    CHECK_RC(usmp_get_stats(&ctx, &st), USMP_OK);
    CHECK_INT(st.retransmits, 0);
    CHECK_INT(st.duplicates, 0);
    CHECK_INT(st.rejected, 0);
    CHECK_INT(st.bad_acks, 0);
    usmp_close(&ctx);
}

/* ---- calls before connect --------------------------------------------------------- */

static void calls_before_connect(const vset_t *v) {
    usmp_t ctx;
    ctx_init(&ctx, v);
    uint8_t buf[32] = { 0 };
    CHECK(!usmp_is_connected(&ctx));
    CHECK_RC(usmp_send(&ctx, buf, 4), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_send(&ctx, NULL, 0), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_recv(&ctx, buf, sizeof buf), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_ping(&ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_keepalive_tick(&ctx), USMP_ERR_NOT_CONNECTED);
    ctx.keepalive_ms = 1;
    CHECK_RC(usmp_keepalive_tick(&ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_rekey(&ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_reconnect(&ctx), USMP_ERR_NOT_CONNECTED);
    usmp_close(&ctx);
    usmp_close(&ctx);
    CHECK(!usmp_is_connected(&ctx));
    CHECK_INT(port.random_calls, 0);
    check_reusable(&ctx, v);
}

static void calls_with_null_ctx(void) {
    uint8_t buf[8] = { 0 };
    CHECK_RC(usmp_send(NULL, buf, 1), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_recv(NULL, buf, sizeof buf), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_ping(NULL), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_keepalive_tick(NULL), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_rekey(NULL), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_reconnect(NULL), USMP_ERR_INVALID_ARG);
    CHECK(!usmp_is_connected(NULL));
    usmp_close(NULL);
}

static void send_null_data_with_len(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    connect_ok(&ctx, &t, &s, v);
    CHECK_RC(usmp_send(&ctx, NULL, 1), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_send(&ctx, NULL, 1808), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_send(&ctx, NULL, 65535), USMP_ERR_INVALID_ARG);
    CHECK_INT(s.send_calls, 0);
    /* an argument error does not end the session, and burns no seq */
    CHECK(usmp_is_connected(&ctx));
    CHECK_RC(usmp_send(&ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&s, 0, v->c_hello_world0);
    /* NULL with length 0 is an empty message */
    CHECK_RC(usmp_send(&ctx, NULL, 0), USMP_OK);
    CHECK_INT(s.nsent, 2);
    CHECK_INT(sent_type(&s, 1), 5);
    CHECK_INT(sent_seq(&s, 1), 1);
    CHECK_INT(sent_plen(&s, 1), 28);
    usmp_close(&ctx);
}

static void recv_null_out(const vset_t *v) {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
    ctx_init(&ctx, v);
    CHECK_RC(usmp_recv(&ctx, NULL, 16), USMP_ERR_INVALID_ARG); /* not connected, still the arg */
    connect_ok(&ctx, &t, &s, v);
    script_vec(&s, v->s_from_gateway0);
    CHECK_RC(usmp_recv(&ctx, NULL, 64), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_recv(&ctx, NULL, 0), USMP_ERR_INVALID_ARG);
    CHECK_INT(s.recv_calls, 0); /* nothing consumed */
    CHECK(usmp_is_connected(&ctx));
    uint8_t out[64];
    int n = recv_into(&ctx, out, sizeof out, 64);
    CHECK_RC(n, (int)v->pt_from_gateway.n);
    CHECK_BYTES(out, (size_t)n, v->pt_from_gateway.b, v->pt_from_gateway.n);
    usmp_close(&ctx);
}

static void close_twice_and_before_connect(const vset_t *v) {
    usmp_t ctx;
    ctx_init(&ctx, v);
    usmp_close(&ctx); /* never connected */
    usmp_close(&ctx);
    usmp_t zero;
    memset(&zero, 0, sizeof zero);
    usmp_close(&zero); /* not even configured */
    script_t s;
    usmp_transport_t t;
    connect_ok(&ctx, &t, &s, v);
    usmp_close(&ctx);
    CHECK_INT(s.close_calls, 1);
    CHECK_INT(s.nsent, 1);
    usmp_close(&ctx); /* again: no second BYE */
    CHECK_INT(s.nsent, 1);
    CHECK(!usmp_is_connected(&ctx));
    CHECK_RC(usmp_send(&ctx, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED);
    CHECK_INT(s.protocol_errors, 0);
    check_reusable(&ctx, v);
}

/* ---- usmp_frame_size ---------------------------------------------------------------- */

static void frame_size_helper(const vset_t *v) {
    CHECK_RC(usmp_frame_size(NULL, 12), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_frame_size(v->hello.b, 11), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_frame_size(v->hello.b, 0), USMP_ERR_INVALID_ARG);
    CHECK_RC(usmp_frame_size(v->hello.b, 12), (int)v->hello.n);
    CHECK_RC(usmp_frame_size(v->challenge.b, v->challenge.n), (int)v->challenge.n);
    CHECK_RC(usmp_frame_size(v->c_max452_1.b, 12), 492);
    CHECK_RC(usmp_frame_size(v->n_bad_magic.b, v->n_bad_magic.n), USMP_ERR_BAD_FRAME);
    CHECK_RC(usmp_frame_size(v->n_bad_magic_order.b, v->n_bad_magic_order.n), USMP_ERR_BAD_FRAME);
    CHECK_RC(usmp_frame_size(v->n_len481.b, 12), USMP_ERR_BAD_FRAME);
    /* exactly 12 readable bytes on the heap: ASan checks it reads no further */
    uint8_t *h = malloc(12);
    CHECK(h != NULL);
    memcpy(h, v->d_t_empty0.b, 12);
    CHECK_RC(usmp_frame_size(h, 12), 40);
    free(h);
}

/* ---- log level ---------------------------------------------------------------------- */

static void log_level_default_and_clamp(void) {
    CHECK_INT(usmp_get_log_level(), USMP_LOG_LEVEL_ERROR);
    usmp_set_log_level(USMP_LOG_LEVEL_DEBUG);
    CHECK_INT(usmp_get_log_level(), USMP_LOG_LEVEL_DEBUG);
    usmp_set_log_level(99);
    CHECK_INT(usmp_get_log_level(), USMP_LOG_LEVEL_DEBUG);
    usmp_set_log_level(-5);
    CHECK_INT(usmp_get_log_level(), USMP_LOG_LEVEL_NONE);
    usmp_set_log_level(INT_MIN);
    CHECK_INT(usmp_get_log_level(), USMP_LOG_LEVEL_NONE);
    usmp_set_log_level(USMP_LOG_LEVEL_WARN);
    CHECK_INT(usmp_get_log_level(), USMP_LOG_LEVEL_WARN);
}

static void log_level_filters_port_log(const vset_t *v) {
    static const char *ranks = "EWID";
    for (int level = USMP_LOG_LEVEL_NONE; level <= USMP_LOG_LEVEL_DEBUG; level++) {
        usmp_set_log_level(level);
        port.log_calls = 0;
        port.log_bad = 0;
        /* a failing and a succeeding connect, a session, a close */
        usmp_t ctx;
        script_t s;
        usmp_transport_t t;
        ctx_init(&ctx, v);
        script_init(&s);
        script_rc(&s, -1);
        transport_init(&t, &s, 0);
        port_queue_random(v->client_priv.b, v->client_priv.n);
        CHECK_RC(usmp_connect(&ctx, &t), USMP_ERR_REJECTED);
        check_reusable(&ctx, v);
        CHECK_INT(port.log_bad, 0);
        if (level == USMP_LOG_LEVEL_NONE) {
            CHECK_MSG(port.log_calls == 0, "level NONE but %d log lines", port.log_calls);
        } else if (port.log_calls) {
            const char *pos = strchr(ranks, port.last_log_level);
            CHECK(pos != NULL);
            CHECK_MSG((int)(pos - ranks) + 1 <= level, "level %d but a '%c' line was logged",
                      level, port.last_log_level);
        }
    }
}

static const test_case_t CASES[] = {
    CASE(err_codes_are_stable),
    CASE(err_name_every_code),
    CASE(err_name_unknown),
    CASE(version_string),
    CASE(constants_match_protocol),
    CASE(connect_null_ctx),
    CASE_V(connect_null_transport),
    CASE_V(connect_transport_without_send_or_recv),
    CASE_V(connect_with_only_send_and_recv),
    CASE_V(connect_psk_null_with_len),
    CASE_V(connect_psk_null_zero),
    CASE_V(connect_psk_empty_nonnull),
    CASE(connect_v2_psk_15_bytes),
    CASE(connect_v2_psk_16_bytes_is_enough),
    CASE(connect_v1_short_psk_allowed),
    CASE_V(connect_huge_psk_len),
    CASE(connect_bad_protocol_version),
    CASE_V(connect_reserved_and_garbage_opaque),
    CASE_V(connect_config_failure_closes_transport),
    CASE_V(connect_datagram_without_recv_timeout),
    CASE_V(stats_arguments_and_stream_counters),
    CASE_V(calls_before_connect),
    CASE(calls_with_null_ctx),
    CASE_V(send_null_data_with_len),
    CASE_V(recv_null_out),
    CASE_V(close_twice_and_before_connect),
    CASE_V(frame_size_helper),
    CASE(log_level_default_and_clamp),
    CASE_V(log_level_filters_port_log),
};

int main(int argc, char **argv) {
    return run_tests("api", CASES, sizeof CASES / sizeof CASES[0], argc, argv);
}
