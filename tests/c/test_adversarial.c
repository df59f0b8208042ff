/*
 * Hostile gateways, broken networks and careless callers, under ASan/UBSan. What the other
 * suites test one case at a time is done here as tables: every fault at every step of the
 * handshake and of a session, each ending in a named code with the same usmp_t connecting
 * again afterwards; plus misuse of the usmp_t (after close, copies, garbage, settings changed
 * under a live session) and a seeded random transport soak against the shipped library.
 *
 * Cases named xfail_* are known gaps (see test_secrets.c for the mechanism): they pass in
 * ctest only while they fail at their XFAIL-CHECK assertion.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define XCASE_V(fn) { "xfail_" #fn "_v1", NULL, fn, &VS1 }, { "xfail_" #fn "_v2", NULL, fn, &VS2 }
#define XCASE(fn) { "xfail_" #fn, fn, NULL, NULL }

/* ---- faults --------------------------------------------------------------------------- */

typedef enum fault_t {
    F_EOF,             /* recv: -1 (the peer closed) */
    F_ERRNO,           /* recv: -104 (ECONNRESET-like) */
    F_INT_MIN,         /* recv: INT_MIN */
    F_OVERSIZE,        /* recv: claims max_len + 1 bytes */
    F_HUGE,            /* recv: claims INT_MAX bytes */
    F_GARBAGE,         /* recv: 40 bytes that are no frame */
    F_FULL_GARBAGE,    /* recv: a whole 492-byte buffer of 0xFF */
    F_TRUNC_HEADER,    /* recv: the first 7 bytes of the frame */
    F_TRUNC_PAYLOAD,   /* recv: the frame minus its last byte (a short read) */
    F_PARTIAL_THEN_EOF,/* recv: half the frame, then -1 (the gateway vanished mid-frame) */
    F_HEADER_ONLY,     /* recv: the 12-byte header alone */
    F_BAD_CRC,         /* the frame with one CRC bit flipped */
    F_VERSION,         /* the frame with the other version byte (CRC repaired) */
    F_BIT_FLIP,        /* the frame with its last payload bit flipped (CRC repaired) */
    F_TRAILING,        /* the frame followed by 5 extra bytes in the same read: accepted */
    F_IDLE_ONCE,       /* recv: 0 once, then the frame: a pause, not an error */
    F_IDLE_FOREVER,    /* recv: 0 from here on */
    F_REPEAT_PREV,     /* the previous frame again instead of this one */
    F_COUNT
} fault_t;

static const char *const FAULT_NAME[F_COUNT] = {
    "eof", "errno", "int_min", "oversize", "huge", "garbage", "full_garbage", "trunc_header",
    "trunc_payload", "partial_then_eof", "header_only", "bad_crc", "version", "bit_flip",
    "trailing", "idle_once", "idle_forever", "repeat_prev",
};

/* Frame buffers that must outlive the script (the script keeps pointers). */
static uint8_t fbuf[8][USMP_MAX_FRAME_SIZE + 16];

/* Queues frame `f` (the k-th expected read; `prev` the one before it) with fault `fl`. */
static void script_fault(script_t *s, vec_t f, vec_t prev, fault_t fl, int slot) {
    uint8_t *b = fbuf[slot];
    memcpy(b, f.b, f.n);
    switch (fl) {
    case F_EOF: script_rc(s, -1); break;
    case F_ERRNO: script_rc(s, -104); break;
    case F_INT_MIN: script_rc(s, INT_MIN); break;
    case F_OVERSIZE: script_rc(s, USMP_MAX_FRAME_SIZE + 1); break;
    case F_HUGE: script_rc(s, INT_MAX); break;
    case F_GARBAGE:
        for (size_t i = 0; i < 40; i++) b[i] = (uint8_t)(i * 37 + 11);
        script_frame(s, b, 40);
        break;
    case F_FULL_GARBAGE:
        memset(b, 0xFF, USMP_MAX_FRAME_SIZE);
        script_frame(s, b, USMP_MAX_FRAME_SIZE);
        break;
    case F_TRUNC_HEADER: script_frame(s, b, 7); break;
    case F_TRUNC_PAYLOAD: script_frame(s, b, f.n - 1); break;
    case F_PARTIAL_THEN_EOF:
        script_frame(s, b, f.n / 2);
        script_rc(s, -1);
        break;
    case F_HEADER_ONLY: script_frame(s, b, 12); break;
    case F_BAD_CRC:
        b[10] ^= 0x10;
        script_frame(s, b, f.n);
        break;
    case F_VERSION:
        b[2] ^= 3;
        fix_crc(b, f.n);
        script_frame(s, b, f.n);
        break;
    case F_BIT_FLIP:
        b[f.n - 1] ^= 0x80;
        fix_crc(b, f.n);
        script_frame(s, b, f.n);
        break;
    case F_TRAILING:
        memcpy(b + f.n, "\x01\x02\x03\x04\x05", 5);
        script_frame(s, b, f.n + 5);
        break;
    case F_IDLE_ONCE:
        script_rc(s, 0);
        script_frame(s, f.b, f.n);
        break;
    case F_IDLE_FOREVER: s->tail_rc = 0; break;
    case F_REPEAT_PREV: script_frame(s, prev.b, prev.n); break;
    default: test_fail(__FILE__, __LINE__, "fault %d", (int)fl);
    }
}

/* ---- the handshake: every fault at every step ------------------------------------------- */

/*
 * The transport sees four events: send HELLO (1), recv CHALLENGE (2), send HELLO_ACK (3),
 * recv SESSION_OK (4). For each receive event every fault is tried, for each send event a
 * failing and a positive return; all on ONE usmp_t, which must connect again after each.
 */
static int handshake_expect(int step, fault_t fl) {
    bool after_ack = step == 4;
    switch (fl) {
    case F_EOF:
    case F_ERRNO:
    case F_INT_MIN: return after_ack ? USMP_ERR_AUTH_FAILED : USMP_ERR_REJECTED;
    case F_OVERSIZE:
    case F_HUGE: return USMP_ERR_TRANSPORT_FAILED;
    case F_GARBAGE:
    case F_FULL_GARBAGE:
    case F_TRUNC_HEADER:
    case F_TRUNC_PAYLOAD:
    case F_PARTIAL_THEN_EOF:
    case F_HEADER_ONLY: return USMP_ERR_BAD_FRAME;
    case F_BAD_CRC: return USMP_ERR_BAD_CRC;
    case F_VERSION: return USMP_ERR_VERSION_MISMATCH;
    /* CHALLENGE: another X25519 key, so another HMAC; SESSION_OK: the MAC itself */
    case F_BIT_FLIP: return after_ack ? USMP_ERR_AUTH_FAILED : -1000;
    case F_TRAILING:
    case F_IDLE_ONCE: return USMP_OK;
    case F_IDLE_FOREVER: return USMP_ERR_TIMEOUT;
    case F_REPEAT_PREV: return USMP_ERR_UNEXPECTED_FRAME; /* CHALLENGE again at step 4 */
    default: return -2000;
    }
}

static void handshake_fault_at_every_step(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    CHECK(ctx && s);
    ctx_init(ctx, v);
    usmp_transport_t t;
    int runs = 0;
    for (int step = 1; step <= 4; step++) {
        for (int fl = 0; fl < F_COUNT; fl++) {
            bool send_step = step == 1 || step == 3;
            if (send_step && fl > 1) continue; /* sends: 0 = fails, 1 = positive count */
            if (step == 2 && fl == F_REPEAT_PREV) continue;
            script_init(s);
            int want;
            if (send_step) {
                script_handshake(s, v);
                if (fl == 0) {
                    s->send_fail_at = step == 1 ? 1 : 2;
                    want = USMP_ERR_TRANSPORT_FAILED;
                } else {
                    s->send_ok_rc = 9999; /* more than was asked: still success */
                    want = USMP_OK;
                }
            } else if (step == 2) {
                script_fault(s, v->challenge, v->challenge, (fault_t)fl, 0);
                if (fl != F_IDLE_FOREVER) script_vec(s, v->session_ok);
                want = handshake_expect(2, (fault_t)fl);
                if (fl == F_BIT_FLIP) {
                    /* the last byte of pub_S changes: a different (valid or refused) key;
                     * either the MAC or the key check refuses it */
                    want = -1000;
                }
            } else {
                script_vec(s, v->challenge);
                script_fault(s, v->session_ok, v->challenge, (fault_t)fl, 0);
                want = handshake_expect(4, (fault_t)fl);
            }
            transport_init(&t, s, 0);
            port_queue_random(v->client_priv.b, v->client_priv.n);
            int rc = usmp_connect(ctx, &t);
            const char *what = send_step ? (fl ? "positive send count" : "send fails") : FAULT_NAME[fl];
            if (want == -1000)
                CHECK_MSG(rc == USMP_ERR_AUTH_FAILED || rc == USMP_ERR_CRYPTO_FAILED,
                          "step %d %s: %s", step, what, rc_name(rc));
            else
                CHECK_MSG(rc == want, "step %d %s: %s, expected %s", step, what, rc_name(rc),
                          rc_name(want));
            CHECK_INT(s->protocol_errors, 0);
            if (rc == USMP_OK) {
                CHECK(usmp_is_connected(ctx));
                usmp_close(ctx);
            } else {
                CHECK_MSG(!usmp_is_connected(ctx), "step %d %s: still connected", step, what);
                CHECK_MSG(s->close_calls == 1, "step %d %s: transport closed %d times", step,
                          what, s->close_calls);
                uint8_t b[8];
                CHECK_RC(usmp_send(ctx, b, 1), USMP_ERR_NOT_CONNECTED);
            }
            runs++;
        }
    }
    test_note("%d handshake faults; the same usmp_t connected again after each", runs);
    check_reusable(ctx, v);
    free(s);
    free(ctx);
}

/* ---- a session: every fault at every step --------------------------------------------- */

/* Brings ctx back up after an error: every other time through usmp_reconnect over the stored
 * transport (the same script, reloaded), else through a fresh usmp_connect. */
static void reestablish(usmp_t *ctx, usmp_transport_t *t, script_t *s, const vset_t *v, int run) {
    if (run % 2 == 0 || !t->send) {
        connect_ok(ctx, t, s, v);
        return;
    }
    int closes = s->close_calls;
    script_init(s);
    script_handshake(s, v);
    s->close_calls = closes;
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(ctx), USMP_OK);
    CHECK(usmp_is_connected(ctx));
    CHECK_INT(s->reconnect_calls, 1);
    CHECK_SENT_VEC(s, 0, v->hello);
    CHECK_SENT_VEC(s, 1, v->hello_ack0);
    script_clear_sent(s);
}


/*
 * The gateway sends a 1000-byte message in three fragments (seq 0..2), a PING (seq 3), then
 * "m04" (seq 4): five reads; the PING is answered with a PONG (one send). A fault replaces
 * read k. The caller loops on usmp_recv as an application does (0 = nothing yet).
 */
typedef struct outcome_t {
    int msgs[4];
    int nmsgs;
    int err;
} outcome_t;

static outcome_t drive(usmp_t *ctx, int max_calls) {
    outcome_t o = { { 0 }, 0, 0 };
    uint8_t *buf = malloc(USMP_MAX_MESSAGE_LEN);
    CHECK(buf != NULL);
    for (int i = 0; i < max_calls && o.nmsgs < 2; i++) {
        int n = usmp_recv(ctx, buf, USMP_MAX_MESSAGE_LEN);
        if (n > 0 && o.nmsgs < 4) o.msgs[o.nmsgs++] = n;
        if (n < 0) {
            o.err = n;
            break;
        }
    }
    free(buf);
    return o;
}

static void session_fault_at_every_step(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    CHECK(ctx && s);
    ctx_init(ctx, v);
    usmp_transport_t t;
    memset(&t, 0, sizeof t);
    vec_t reads[5] = { v->d_s_frag1000[0], v->d_s_frag1000[1], v->d_s_frag1000[2], v->d_s_ping[3],
                       v->d_s_msg[4] };
    int runs = 0;
    for (int k = 0; k <= 5; k++) {
        for (int fl = 0; fl < F_COUNT; fl++) {
            if (k == 5 && fl > 0) break; /* k == 5: the PONG send fails (once) */
            if (k == 0 && fl == F_REPEAT_PREV) continue;
            reestablish(ctx, &t, s, v, runs);
            for (int i = 0; i < 5; i++) {
                if (i == k && k < 5) {
                    script_fault(s, reads[i], reads[i ? i - 1 : 0], (fault_t)fl, 0);
                    if (fl == F_IDLE_FOREVER) break; /* nothing more arrives */
                } else {
                    script_vec(s, reads[i]);
                }
            }
            if (k == 5) s->send_fail_at = 1;
            outcome_t o = drive(ctx, 12);
            const char *what = k == 5 ? "PONG send fails" : FAULT_NAME[fl];
            int pre = k >= 3 ? 1 : 0; /* messages complete before read k */
            int want_err;
            switch (k == 5 ? F_EOF : (fault_t)fl) {
            case F_EOF:
            case F_ERRNO:
            case F_INT_MIN:
            case F_OVERSIZE:
            case F_HUGE: want_err = USMP_ERR_TRANSPORT_FAILED; break;
            case F_GARBAGE:
            case F_FULL_GARBAGE:
            case F_TRUNC_HEADER:
            case F_TRUNC_PAYLOAD:
            case F_PARTIAL_THEN_EOF:
            case F_HEADER_ONLY: want_err = USMP_ERR_BAD_FRAME; break;
            case F_BAD_CRC: want_err = USMP_ERR_BAD_CRC; break;
            case F_VERSION: want_err = USMP_ERR_VERSION_MISMATCH; break;
            case F_BIT_FLIP: want_err = USMP_ERR_CRYPTO_FAILED; break;
            case F_REPEAT_PREV: want_err = USMP_ERR_REPLAY_DETECTED; break;
            case F_IDLE_FOREVER: want_err = (k == 1 || k == 2) ? USMP_ERR_TIMEOUT : 0; break;
            default: want_err = 0; break; /* TRAILING, IDLE_ONCE: no harm */
            }
            if (k == 5) want_err = USMP_ERR_TRANSPORT_FAILED;
            if (want_err == 0 && fl == F_IDLE_FOREVER) {
                /* silence between messages is no error: the session waits */
                CHECK_MSG(o.err == 0 && o.nmsgs == pre, "k %d %s: err %s, %d messages", k, what,
                          rc_name(o.err), o.nmsgs);
                CHECK(usmp_is_connected(ctx));
                usmp_close(ctx);
            } else if (want_err == 0) {
                CHECK_MSG(o.err == 0 && o.nmsgs == 2 && o.msgs[0] == 1000 && o.msgs[1] == 3,
                          "k %d %s: err %s, %d messages (%d, %d)", k, what, rc_name(o.err),
                          o.nmsgs, o.msgs[0], o.msgs[1]);
                CHECK_INT(s->nsent, 1); /* the PONG */
                usmp_close(ctx);
            } else {
                CHECK_MSG(o.err == want_err, "read %d %s: %s, expected %s", k + 1, what,
                          rc_name(o.err), rc_name(want_err));
                CHECK_MSG(o.nmsgs == pre, "read %d %s: %d messages before the error", k + 1,
                          what, o.nmsgs);
                CHECK_MSG(!usmp_is_connected(ctx), "read %d %s: still connected", k + 1, what);
                uint8_t b[8];
                CHECK_RC(usmp_recv(ctx, b, sizeof b), USMP_ERR_NOT_CONNECTED);
                CHECK_RC(usmp_send(ctx, b, 1), USMP_ERR_NOT_CONNECTED);
                usmp_close(ctx);
            }
            CHECK_INT(s->protocol_errors, 0);
            runs++;
        }
    }
    test_note("%d session faults; the same usmp_t reconnected after each (usmp_reconnect and "
              "usmp_connect in turn)", runs);
    check_reusable(ctx, v);
    free(s);
    free(ctx);
}

/* A PING or PONG in place of the 2nd or 3rd fragment (same seq): the message is broken. */
static void control_frame_in_place_of_each_fragment(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    CHECK(ctx && s);
    ctx_init(ctx, v);
    usmp_transport_t t;
    for (int k = 1; k <= 2; k++) {
        for (int c = 0; c < 2; c++) {
            connect_ok(ctx, &t, s, v);
            for (int i = 0; i < 3; i++)
                script_vec(s, i == k ? (c ? v->d_s_pong[i] : v->d_s_ping[i]) : v->d_s_frag1000[i]);
            outcome_t o = drive(ctx, 6);
            CHECK_MSG(o.err == USMP_ERR_FRAGMENTATION, "%s as fragment %d: %s", c ? "PONG" : "PING",
                      k + 1, rc_name(o.err));
            CHECK_INT(o.nmsgs, 0);
            CHECK_INT(s->nsent, 0); /* no PONG for a PING that broke a message */
            CHECK(!usmp_is_connected(ctx));
            usmp_close(ctx);
        }
    }
    check_reusable(ctx, v);
    free(s);
    free(ctx);
}

/* ---- sends: a failure at every frame of a fragmented message ----------------------------- */

static void send_fails_at_every_fragment(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    uint8_t *msg = malloc(USMP_MAX_MESSAGE_LEN);
    CHECK(ctx && s && msg);
    for (size_t i = 0; i < USMP_MAX_MESSAGE_LEN; i++) msg[i] = (uint8_t)i;
    ctx_init(ctx, v);
    usmp_transport_t t;
    for (int k = 1; k <= 4; k++) {
        connect_ok(ctx, &t, s, v);
        s->send_fail_at = k;
        CHECK_RC(usmp_send(ctx, msg, USMP_MAX_MESSAGE_LEN), USMP_ERR_TRANSPORT_FAILED);
        CHECK_INT(s->send_calls, k); /* nothing after the failure */
        for (int i = 0; i + 1 < k; i++) CHECK_INT(sent_seq(s, (size_t)i), i);
        CHECK(!usmp_is_connected(ctx));
        CHECK_RC(usmp_send(ctx, msg, 1), USMP_ERR_NOT_CONNECTED);
        usmp_close(ctx);
        CHECK_INT(s->send_calls, k); /* no BYE on a dead session */
    }
    check_reusable(ctx, v);
    free(msg);
    free(s);
    free(ctx);
}

/* ---- careless callers ------------------------------------------------------------------ */

static void every_call_after_close(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    CHECK(ctx && s);
    ctx_init(ctx, v);
    usmp_transport_t t;
    connect_ok(ctx, &t, s, v);
    usmp_close(ctx);
    int calls = s->send_calls;
    uint8_t b[16];
    ctx->keepalive_ms = 1;
    CHECK_RC(usmp_send(ctx, b, 1), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_send(ctx, NULL, 0), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_recv(ctx, b, sizeof b), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_ping(ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_keepalive_tick(ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_rekey(ctx), USMP_ERR_NOT_CONNECTED);
    usmp_stats_t st;
    CHECK_RC(usmp_get_stats(ctx, &st), USMP_OK);
    usmp_close(ctx);
    usmp_close(ctx);
    CHECK_INT(s->send_calls, calls);
    CHECK_INT(s->recv_calls, 0);
    CHECK(!usmp_is_connected(ctx));
    /* closed, then connected again (not reconnect: a fresh usmp_connect) */
    ctx->keepalive_ms = 0;
    check_reusable(ctx, v);
    free(s);
    free(ctx);
}

static void many_connect_close_cycles(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    CHECK(ctx != NULL);
    ctx_init(ctx, v);
    for (int i = 0; i < 25; i++) check_reusable(ctx, v);
    free(ctx);
}

/* A copy taken BEFORE connect is just a second configured context: both work on their own. */
static void copy_before_connect_is_independent(const vset_t *v) {
    usmp_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    script_t *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    CHECK(a && b && sa && sb);
    ctx_init(a, v);
    memcpy(b, a, sizeof *b);
    usmp_transport_t ta, tb;
    connect_ok(a, &ta, sa, v);
    connect_ok(b, &tb, sb, v);
    CHECK_RC(usmp_send(a, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_RC(usmp_send(b, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(sa, 0, v->c_hello_world0);
    CHECK_SENT_VEC(sb, 0, v->c_hello_world0);
    usmp_close(a);
    CHECK(usmp_is_connected(b));
    usmp_close(b);
    free(sa);
    free(sb);
    free(a);
    free(b);
}

/* A copy of a closed context is not connected either. */
static void copy_of_closed_context(const vset_t *v) {
    usmp_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    script_t *s = calloc(1, sizeof *s);
    CHECK(a && b && s);
    ctx_init(a, v);
    usmp_transport_t t;
    connect_ok(a, &t, s, v);
    usmp_close(a);
    memcpy(b, a, sizeof *b);
    uint8_t buf[8];
    CHECK(!usmp_is_connected(b));
    CHECK_RC(usmp_send(b, buf, 1), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_recv(b, buf, sizeof buf), USMP_ERR_NOT_CONNECTED);
    int closes = s->close_calls;
    usmp_close(b); /* may close the (shared) transport again: allowed */
    CHECK(s->close_calls >= closes);
    check_reusable(b, v);
    free(s);
    free(a);
    free(b);
}

/* Every call on a usmp_t that was never zeroed (here: filled with a pattern, settings valid)
 * returns a named code; connect then works. */
static void garbage_context_every_call(const vset_t *v) {
    static const uint8_t patterns[] = { 0xA5, 0xFF, 0x01, 0x5A };
    for (size_t p = 0; p < sizeof patterns; p++) {
        usmp_t *ctx = malloc(sizeof *ctx);
        CHECK(ctx != NULL);
        memset(ctx, patterns[p], sizeof *ctx);
        ctx->psk = v->psk.b;
        ctx->psk_len = v->psk.n;
        ctx->protocol_version = v->protocol_version;
        ctx->retransmit_attempts = 0;
        ctx->retransmit_timeout_ms = 0;
        uint8_t b[16];
        int rc = usmp_send(ctx, b, 1);
        CHECK_MSG(rc == USMP_ERR_CONTEXT_MOVED || rc == USMP_ERR_NOT_CONNECTED, "send: %s", rc_name(rc));
        CHECK_RC(usmp_recv(ctx, b, sizeof b), USMP_ERR_NOT_CONNECTED);
        CHECK_RC(usmp_ping(ctx), USMP_ERR_NOT_CONNECTED);
        CHECK_RC(usmp_keepalive_tick(ctx), USMP_ERR_NOT_CONNECTED);
        CHECK_RC(usmp_rekey(ctx), USMP_ERR_NOT_CONNECTED);
        CHECK_RC(usmp_reconnect(ctx), USMP_ERR_NOT_CONNECTED);
        usmp_close(ctx);
        CHECK(!usmp_is_connected(ctx));
        check_reusable(ctx, v);
        free(ctx);
    }
}

/* The application changes its settings under a live session, then reconnects. */
static void settings_broken_before_reconnect(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    CHECK(ctx && s);
    ctx_init(ctx, v);
    usmp_transport_t t;
    struct {
        const uint8_t *psk;
        size_t len;
        uint8_t version;
        int want;
    } bad[] = {
        { NULL, 32, v->protocol_version, USMP_ERR_INVALID_ARG },     /* NULL with a length */
        { NULL, 0, v->protocol_version, USMP_ERR_PSK_TOO_SHORT },
        { v->psk.b, 0, v->protocol_version, USMP_ERR_PSK_TOO_SHORT },
        { v->psk.b, v->psk.n, 7, USMP_ERR_INVALID_ARG },             /* unknown version */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        connect_ok(ctx, &t, s, v);
        s->reconnect_loads = true; /* a successful dial serves an empty script */
        s->n_reconnect_steps = 0;
        ctx->psk = bad[i].psk;
        ctx->psk_len = bad[i].len;
        ctx->protocol_version = bad[i].version;
        CHECK_RC(usmp_reconnect(ctx), bad[i].want);
        CHECK(!usmp_is_connected(ctx));
        CHECK_INT(s->send_calls, 0); /* refused before anything was sent */
        CHECK_INT(s->protocol_errors, 0);
        uint8_t b[8];
        CHECK_RC(usmp_send(ctx, b, 1), USMP_ERR_NOT_CONNECTED);
        usmp_close(ctx);
        ctx_init(ctx, v);
    }
    check_reusable(ctx, v);
    free(s);
    free(ctx);
}

/*
 * Known gap: a byte snapshot of a live usmp_t, restored at the SAME address, brings the TX
 * counter back, and the next frame reuses a (key, nonce) pair. The copy detection compares
 * addresses only, so it cannot see this; documented in SECURITY.md.
 */
static void snapshot_restore_reuses_nonce(const vset_t *v) {
    usmp_t *ctx = calloc(1, sizeof *ctx), *snap = malloc(sizeof *snap);
    script_t *s = calloc(1, sizeof *s);
    CHECK(ctx && snap && s);
    ctx_init(ctx, v);
    usmp_transport_t t;
    connect_ok(ctx, &t, s, v);
    memcpy(snap, ctx, sizeof *snap);
    CHECK_RC(usmp_send(ctx, (const uint8_t *)"a", 1), USMP_OK);
    memcpy(ctx, snap, sizeof *ctx); /* "restore" */
    int rc = usmp_send(ctx, (const uint8_t *)"b", 1);
    if (rc == USMP_OK)
        CHECK_MSG(sent_seq(s, 0) != sent_seq(s, 1),
                  "a restored snapshot sent seq %u twice under one key (XFAIL-CHECK)", sent_seq(s, 1));
    usmp_close(ctx);
    free(s);
    free(snap);
    free(ctx);
}

/* ---- a seeded random transport against the shipped library ------------------------------ */

static uint32_t rng;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static bool named(int rc) {
    if (rc >= 0) return true;
    return strcmp(usmp_err_name(rc), "USMP_ERR_UNKNOWN") != 0;
}

/*
 * 300 random scripts per version: each read is a vector frame (handshake or session), a
 * mangled one, garbage, a bogus count, idle or EOF; sends fail at random; API calls in random
 * order. Every result must be a named code or a length within the buffer; no sanitizer report.
 */
static void random_transport_soak(const vset_t *v) {
    const vec_t pool[] = {
        v->challenge, v->session_ok, v->s_from_gateway0, v->d_s_msg[0], v->d_s_msg[1], v->d_s_msg[2],
        v->d_s_ping[0], v->d_s_ping[1], v->d_s_pong[0], v->d_s_frag1000[0], v->d_s_frag1000[1],
        v->d_s_frag1000[2], v->d_s_bye0, v->d_s_error0, v->d_s_flip_tag, v->d_s_hello0,
        v->n_bad_crc, v->n_len481, v->n_trunc11, v->n_unknown_type,
    };
    const size_t npool = sizeof pool / sizeof pool[0];
    static uint8_t bufs[SCRIPT_MAX_STEPS][USMP_MAX_FRAME_SIZE];
    usmp_t *ctx = calloc(1, sizeof *ctx);
    script_t *s = calloc(1, sizeof *s);
    uint8_t *out = malloc(USMP_MAX_MESSAGE_LEN);
    CHECK(ctx && s && out);
    memset(out, 0x42, USMP_MAX_MESSAGE_LEN);
    ctx_init(ctx, v);
    usmp_transport_t t_soak;
    rng = 0x9E3779B9u ^ v->wire;
    int calls = 0, connected = 0, messages = 0, codes[32] = { 0 };
    for (int it = 0; it < 300; it++) {
        script_init(s);
        /* mostly the real handshake first, so the session paths are reached */
        if (rnd() % 4) script_handshake(s, v);
        int nsteps = (int)(rnd() % 24);
        for (int i = 0; i < nsteps; i++) {
            uint32_t r = rnd() % 16;
            vec_t f = pool[rnd() % npool];
            uint8_t *b = bufs[i];
            if (r < 8) {
                script_vec(s, f);
            } else if (r < 11) {
                memcpy(b, f.b, f.n);
                size_t n = f.n;
                switch (rnd() % 4) {
                case 0: b[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;
                case 1: n = rnd() % (n + 1); break;
                case 2: b[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); fix_crc(b, n); break;
                default: b[3] = (uint8_t)rnd(); fix_crc(b, n); break;
                }
                script_frame(s, b, n);
            } else if (r < 12) {
                size_t n = rnd() % USMP_MAX_FRAME_SIZE;
                for (size_t j = 0; j < n; j++) b[j] = (uint8_t)rnd();
                if (n >= 2 && rnd() % 2) {
                    b[0] = 0xCD;
                    b[1] = 0xAB;
                }
                script_frame(s, b, n);
            } else if (r < 14) {
                script_rc(s, 0);
            } else if (r < 15) {
                script_rc(s, -(int)(rnd() % 200) - 1);
            } else {
                script_rc(s, (int)(USMP_MAX_FRAME_SIZE + 1 + rnd() % 100000));
            }
        }
        s->tail_rc = rnd() % 2 ? 0 : -1;
        if (rnd() % 5 == 0) {
            s->send_fail_at = (int)(rnd() % 4) + 1;
            s->send_fail_sticky = rnd() % 2;
        }
        transport_init(&t_soak, s, (int)(rnd() % 2 ? 0 : TR_NO_AVAILABLE));
        port_queue_random(v->client_priv.b, v->client_priv.n);
        int rc = usmp_connect(ctx, &t_soak);
        CHECK_MSG(named(rc), "connect: %d", rc);
        connected += rc == USMP_OK;
        for (int j = 0; j < 8; j++) {
            calls++;
            uint16_t cap = (uint16_t)(rnd() % (USMP_MAX_MESSAGE_LEN + 1));
            switch (rnd() % 6) {
            case 0:
            case 1:
            case 2: {
                uint8_t *cb = malloc(cap ? cap : 1);
                CHECK(cb != NULL);
                rc = usmp_recv(ctx, cb, cap);
                CHECK_MSG(named(rc) && rc <= (int)cap, "recv(%u): %d", cap, rc);
                messages += rc > 0;
                free(cb);
                break;
            }
            case 3: rc = usmp_send(ctx, out, cap); CHECK_MSG(named(rc), "send: %d", rc); break;
            case 4: rc = usmp_ping(ctx); CHECK_MSG(named(rc), "ping: %d", rc); break;
            default: rc = usmp_rekey(ctx); CHECK_MSG(named(rc), "rekey: %d", rc); break;
            }
            if (rc < 0 && rc > -32) codes[-rc] = 1;
        }
        CHECK_INT(s->protocol_errors, 0);
        usmp_close(ctx);
    }
    int distinct = 0;
    for (int i = 0; i < 32; i++) distinct += codes[i];
    test_note("300 random scripts: %d connected, %d API calls, %d messages, %d distinct error codes",
              connected, calls, messages, distinct);
    CHECK(connected > 100 && messages > 10 && distinct >= 8);
    check_reusable(ctx, v);
    free(out);
    free(s);
    free(ctx);
}

static const test_case_t CASES[] = {
    CASE_V(handshake_fault_at_every_step),
    CASE_V(session_fault_at_every_step),
    CASE_V(control_frame_in_place_of_each_fragment),
    CASE_V(send_fails_at_every_fragment),
    CASE_V(every_call_after_close),
    CASE_V(many_connect_close_cycles),
    CASE_V(copy_before_connect_is_independent),
    CASE_V(copy_of_closed_context),
    CASE_V(garbage_context_every_call),
    CASE_V(settings_broken_before_reconnect),
    CASE_V(random_transport_soak),
    XCASE_V(snapshot_restore_reuses_nonce),
};

int main(int argc, char **argv) {
    static test_case_t run[sizeof CASES / sizeof CASES[0]];
    size_t n = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (argc > 1 || strncmp(CASES[i].name, "xfail_", 6) != 0) run[n++] = CASES[i];
    return run_tests("adversarial", run, n, argc, argv);
}
