/*
 * Test harness for the C API tests: a fork-per-case runner with assertions, a scripted
 * in-memory transport that plays the gateway, deterministic port hooks (strong definitions
 * that replace the library's weak defaults), frame helpers and the per-wire-version vector set.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_TEST_HARNESS_H
#define USMP_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usmp.h"
#include "vectors.h"

/* ------------------------------------------------------------------------------------ */
/* Vector set: everything a test needs for one wire version.                             */

typedef struct vset_t {
    const char *name;          /* "v1" / "v2" */
    uint8_t wire;              /* version byte on the wire: 1 or 2 */
    uint8_t protocol_version;  /* usmp_t.protocol_version used for it */
    int flood_limit;           /* the control frame (PING/PONG/REKEY) in one call that trips */

    vec_t client_priv, psk, device_id, session_id, pub_c, pub_s, nonce;
    vec_t hello, challenge, hello_ack_vec, hello_ack0, session_ok, hmac_client, hmac_server;

    /* session.json (real vector frames; _c_ device->gateway, _s_ gateway->device) */
    vec_t c_hello_world0, pt_hello_world, s_from_gateway0, pt_from_gateway;
    vec_t c_max452_1, pt_max452, c_empty5, c_ping3, s_pong0, s_pong4, c_bye6, pt1000;
    const vec_t *c_frag1000_10; /* 3 frames, seq 10..12 */

    /* negative.json (real vector frames, device->gateway direction) */
    vec_t n_bad_crc, n_payload_flip, n_bad_magic, n_bad_magic_order, n_wrong_version;
    vec_t n_trunc11, n_trunc_payload, n_len481, n_unknown_type, n_trailing;
    vec_t n_flip_tag, n_flip_ct, n_bad_nonce, n_seq_gap, n_wrong_key, n_short, n_bye;
    vec_t n_replay, pt_hello;
    const vec_t *n_ping_between; size_t n_ping_between_count;
    const vec_t *n_five_frags;   size_t n_five_frags_count;
    const vec_t *n_ping_flood;   size_t n_ping_flood_count;

    /* derived frames (see gen_vectors_h.py): d_s_* gateway->device, d_t_* device output */
    const vec_t *d_s_ping, *d_s_pong, *d_s_msg, *d_s_frag1000, *d_s_msg1808, *d_s_five_frags;
    const vec_t *d_s_ping_between, *d_s_bye_between, *d_s_frag_gap, *d_s_frag_then_msg;
    const vec_t *d_t_pong, *d_t_ping, *d_t_bye, *d_t_msg1808, *d_t_msg;
    vec_t d_s_bye0, d_s_empty0, d_s_error0, d_s_hello0, d_s_flip_tag, d_s_flip_ct;
    vec_t d_s_bad_nonce, d_s_type_swapped, d_s_short27, d_t_empty0, pt1808;
} vset_t;

extern const vset_t VS1; /* wire v1, protocol_version = USMP_PROTOCOL_V1 */
extern const vset_t VS2; /* wire v2, protocol_version = 0 (the default) */

/* ------------------------------------------------------------------------------------ */
/* Runner and assertions.                                                                 */

typedef struct test_case_t {
    const char *name;
    void (*fn)(void);
    void (*fnv)(const vset_t *v);
    const vset_t *v;
} test_case_t;

#define CASE(fn) { #fn, fn, NULL, NULL }
#define CASE_V(fn) { #fn "_v1", NULL, fn, &VS1 }, { #fn "_v2", NULL, fn, &VS2 }
#define CASE_V1(fn) { #fn "_v1", NULL, fn, &VS1 }
#define CASE_V2(fn) { #fn "_v2", NULL, fn, &VS2 }

/* Runs every case in its own child process (a crash or sanitizer abort fails only that case).
 * argv[1], when given, is a substring filter on case names. Returns the process exit code. */
int run_tests(const char *suite, const test_case_t *cases, size_t n, int argc, char **argv);

void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void test_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);                             \
    } while (0)

#define CHECK_INT(actual, expected)                                                          \
    do {                                                                                     \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                      \
        if (a_ != e_)                                                                        \
            test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #actual, a_,    \
                      #expected, e_);                                                        \
    } while (0)

/* A usmp_* return code: prints names. */
#define CHECK_RC(actual, expected)                                                           \
    do {                                                                                     \
        int a_ = (int)(actual), e_ = (int)(expected);                                        \
        if (a_ != e_)                                                                        \
            test_fail(__FILE__, __LINE__, "%s returned %d (%s), expected %d (%s)", #actual,  \
                      a_, rc_name(a_), e_, rc_name(e_));                                     \
    } while (0)

#define CHECK_BYTES(actual, actual_len, expected, expected_len)                              \
    check_bytes(__FILE__, __LINE__, #actual, (actual), (actual_len), (expected), (expected_len))

#define CHECK_VEC(actual, actual_len, vec) CHECK_BYTES(actual, actual_len, (vec).b, (vec).n)

const char *rc_name(int rc); /* usmp_err_name, or the number for positive values */
void check_bytes(const char *file, int line, const char *what, const uint8_t *a, size_t an,
                 const uint8_t *e, size_t en);

/* ------------------------------------------------------------------------------------ */
/* Scripted transport.                                                                    */

#define SCRIPT_MAX_STEPS 160
#define SCRIPT_MAX_SENT 64

enum { STEP_FRAME = 1, STEP_RC = 2 };

typedef struct step_t {
    int kind;
    const uint8_t *data; /* STEP_FRAME: bytes (copied, at most max_len of them) */
    size_t len;
    int rc;              /* STEP_RC: returned as is (0 idle, < 0 error/EOF, or a bogus count) */
} step_t;

typedef struct script_t {
    step_t steps[SCRIPT_MAX_STEPS];
    size_t nsteps, pos;
    int tail_rc;             /* recv result once the steps are used up (default 0 = idle) */

    /* what the device sent */
    uint8_t sent[SCRIPT_MAX_SENT][USMP_MAX_FRAME_SIZE];
    size_t sent_len[SCRIPT_MAX_SENT];
    size_t nsent;            /* frames recorded (successful and failed sends) */
    int send_calls, recv_calls, close_calls, reconnect_calls, available_calls;

    int send_fail_at;        /* 1-based send call that fails (0 = none) */
    int send_fail_rc;        /* what it returns (default -1) */
    bool send_fail_sticky;   /* every later send fails as well */
    int send_ok_rc;          /* what a good send returns (default 0) */

    int reconnect_rc;        /* 0 = ok */
    step_t reconnect_steps[SCRIPT_MAX_STEPS]; /* loaded into steps by a successful reconnect */
    size_t n_reconnect_steps;
    bool reconnect_loads;

    size_t min_recv_max_len; /* smallest max_len the library offered */
    int protocol_errors;     /* transport misuse seen (bad t->ctx, send > 492, ...) */
    bool closed;             /* close called and no reconnect since */
} script_t;

void script_init(script_t *s);
void script_frame(script_t *s, const uint8_t *p, size_t n);
void script_vec(script_t *s, vec_t v);
void script_vecs(script_t *s, const vec_t *v, size_t n);
void script_rc(script_t *s, int rc);
/* Queues CHALLENGE and SESSION_OK of the vector handshake. */
void script_handshake(script_t *s, const vset_t *v);
/* What a successful reconnect loads as the new script. */
void script_on_reconnect_vec(script_t *s, vec_t v);
size_t script_pending(const script_t *s); /* steps not yet consumed */
void script_clear_sent(script_t *s); /* forgets sent frames and the send/recv/available counts */

enum { TR_NO_CLOSE = 1, TR_NO_RECONNECT = 2, TR_NO_AVAILABLE = 4, TR_NO_SEND = 8, TR_NO_RECV = 16 };
/* Fills every callback (minus those in `omit`) and sets t->ctx = s. */
void transport_init(usmp_transport_t *t, script_t *s, int omit);

/* Frame fields of a recorded send. */
uint8_t sent_type(const script_t *s, size_t i);
uint32_t sent_seq(const script_t *s, size_t i);
uint16_t sent_plen(const script_t *s, size_t i);
/* Asserts magic, version, length field == size - 12, and the CRC. */
#define CHECK_SENT_FRAME(s, i, wire) check_sent_frame(__FILE__, __LINE__, (s), (i), (wire))
void check_sent_frame(const char *file, int line, const script_t *s, size_t i, uint8_t wire);
#define CHECK_SENT_VEC(s, i, vec)                                                            \
    do {                                                                                     \
        CHECK_MSG((i) < (s)->nsent, "frame %zu was not sent (%zu sent)", (size_t)(i),        \
                  (s)->nsent);                                                               \
        CHECK_BYTES((s)->sent[i], (s)->sent_len[i], (vec).b, (vec).n);                      \
    } while (0)

/* ------------------------------------------------------------------------------------ */
/* Frames built in the test.                                                              */

uint16_t crc16_modbus(const uint8_t *p, size_t n);
/* Writes header + payload into out (at least 12 + n bytes), returns the frame length. */
size_t build_frame(uint8_t *out, uint8_t wire, uint8_t type, uint32_t seq, const uint8_t *payload,
                   size_t n);
/* Recomputes the CRC of a frame in place (after modifying it). */
void fix_crc(uint8_t *frame, size_t n);

/* ------------------------------------------------------------------------------------ */
/* Port hooks (fake clock, scripted randomness, recorded logs).                           */

typedef struct port_state_t {
    uint32_t now;            /* usmp_port_millis() result; advances by `step` per call */
    uint32_t step;
    int millis_calls;
    int random_calls, devid_calls, delay_calls;
    int random_fail_at;      /* 1-based random call that fails (0 = none) */
    int devid_fail;          /* usmp_port_get_device_id fails */
    size_t random_last_len;
    uint32_t counter;        /* pattern for unqueued random requests */
    const uint8_t *queue[8]; /* bytes handed out, in order, before the pattern */
    size_t queue_len[8];
    size_t nqueue, qpos;
    int log_calls, log_bad;  /* log_bad: a log line broke the hook's contract */
    char last_log_level;
    bool log_to_stderr;
} port_state_t;

extern port_state_t port;
void port_reset(void);
/* The next usmp_port_random call must ask for exactly n bytes and gets p[0..n]. */
void port_queue_random(const uint8_t *p, size_t n);

/* ------------------------------------------------------------------------------------ */
/* Session helpers.                                                                       */

void ctx_init(usmp_t *ctx, const vset_t *v);
/* Resets s, scripts the vector handshake, connects ctx and asserts HELLO and HELLO_ACK are the
 * vector bytes; then forgets the recorded handshake frames (s->nsent = 0). */
void connect_ok(usmp_t *ctx, usmp_transport_t *t, script_t *s, const vset_t *v);
/* The same over a transport without the callbacks in `omit` (TR_NO_...). */
void connect_ok_omit(usmp_t *ctx, usmp_transport_t *t, script_t *s, const vset_t *v, int omit);

/* A connected session on the heap (its script and transport with it), for the tests that
 * run traffic: open_session = open_session_opts(v, 0, 0); close_session closes, checks the
 * scripted gateway saw no protocol error, frees. */
typedef struct sess_t {
    usmp_t ctx;
    script_t s;
    usmp_transport_t t;
} sess_t;
sess_t *open_session_opts(const vset_t *v, int omit, uint32_t keepalive_ms);
sess_t *open_session(const vset_t *v);
void close_session(sess_t *x);
/* After an error: a fresh connect over a new script must succeed, a send must produce the
 * vector frame at seq 0 and a receive must decrypt the gateway's vector frame. Closes ctx. */
void check_reusable(usmp_t *ctx, const vset_t *v);
/* One usmp_recv into a buffer of exactly max_len heap bytes (ASan checks the bounds). */
int recv_into(usmp_t *ctx, uint8_t *copy_out, size_t copy_cap, uint16_t max_len);

#endif /* USMP_TEST_HARNESS_H */
