/*
 * usmp_recv after the vector handshake: vector frames from session.json and negative.json,
 * derived gateway->device frames (gen_vectors_h.py), every malformed frame class, replay,
 * fragmentation, flood guard, BYE, buffer overflow, transport errors, gateway REKEY.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Receives one message and checks its bytes. */
#define EXPECT_MSG(x, max_len, bytes, len)                                                   \
    do {                                                                                     \
        uint8_t got_[2048];                                                                  \
        int n_ = recv_into(&(x)->ctx, got_, sizeof got_, (uint16_t)(max_len));               \
        CHECK_RC(n_, (int)(len));                                                            \
        CHECK_BYTES(got_, (size_t)n_, (bytes), (size_t)(len));                               \
    } while (0)

#define EXPECT_MSG_VEC(x, vec) EXPECT_MSG(x, 2048, (vec).b, (vec).n)

/* "mNN", the plaintext of v->d_s_msg[NN] */
static void expect_m(sess_t *x, const vset_t *v, int seq) {
    char want[4];
    want[0] = 'm';
    want[1] = (char)('0' + seq / 10);
    want[2] = (char)('0' + seq % 10);
    want[3] = 0;
    (void)v;
    EXPECT_MSG(x, 64, (const uint8_t *)want, 3);
}

/* The error ends the session; the context must then be reusable. */
static void expect_fatal(sess_t *x, const vset_t *v, int rc) {
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), rc);
    CHECK_MSG(!usmp_is_connected(&x->ctx), "still connected after %s", rc_name(rc));
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_recv(&x->ctx, out, sizeof out), USMP_ERR_NOT_CONNECTED);
    CHECK_INT(x->s.protocol_errors, 0);
    check_reusable(&x->ctx, v);
    free(x);
}

/* One frame in a fresh session must end it with rc, sending nothing. */
static void fatal_frame(const vset_t *v, vec_t f, int rc) {
    sess_t *x = open_session(v);
    script_vec(&x->s, f);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), rc);
    CHECK_INT(x->s.nsent, 0);
    CHECK_MSG(!usmp_is_connected(&x->ctx), "still connected after %s", rc_name(rc));
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED);
    check_reusable(&x->ctx, v);
    free(x);
}

/* ---- vector frames --------------------------------------------------------------------- */

static void recv_vector_gateway_data(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->s_from_gateway0);
    EXPECT_MSG_VEC(x, v->pt_from_gateway);
    CHECK_INT(x->s.nsent, 0);
    CHECK(usmp_is_connected(&x->ctx));
    script_vec(&x->s, v->d_s_msg[1]);
    expect_m(x, v, 1);
    close_session(x);
}

static void recv_vector_gateway_pong(const vset_t *v) {
    /* the gateway's PONG (vector, seq 0) is consumed silently */
    sess_t *x = open_session(v);
    script_vec(&x->s, v->s_pong0);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK_INT(x->s.nsent, 0);
    CHECK(usmp_is_connected(&x->ctx));
    script_vec(&x->s, v->d_s_msg[1]);
    expect_m(x, v, 1);
    close_session(x);
}

static void recv_v1_vector_walk(void) {
    /* v1 uses one key both ways, so the device accepts every session.json frame (client- and
     * server-sent) at the right seq: the real gateway bytes, end to end. */
    const vset_t *v = &VS1;
    sess_t *x = open_session(v);
    script_vec(&x->s, v->c_hello_world0);              /* seq 0 */
    script_vec(&x->s, v->c_max452_1);                  /* seq 1 */
    script_vec(&x->s, v->d_s_msg[2]);                  /* seq 2 */
    script_vec(&x->s, v->c_ping3);                     /* seq 3 */
    script_rc(&x->s, 0);
    script_vec(&x->s, v->s_pong4);                     /* seq 4 */
    script_rc(&x->s, 0);
    script_vec(&x->s, v->c_empty5);                    /* seq 5 */
    script_vecs(&x->s, &v->d_s_msg[6], 4);             /* seq 6..9 */
    script_vecs(&x->s, v->c_frag1000_10, 3);           /* seq 10..12 */
    EXPECT_MSG_VEC(x, v->pt_hello_world);
    EXPECT_MSG(x, 452, v->pt_max452.b, v->pt_max452.n);
    expect_m(x, v, 2);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);  /* PING answered */
    CHECK_INT(x->s.nsent, 1);
    CHECK_SENT_VEC(&x->s, 0, v->s_pong0); /* == the gateway's own PONG seq 0 in the vector */
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);  /* idle */
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);  /* PONG consumed */
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);  /* idle */
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);  /* empty message */
    CHECK_INT(script_pending(&x->s), 7);
    for (int i = 6; i <= 9; i++) expect_m(x, v, i);
    EXPECT_MSG(x, 1000, v->pt1000.b, v->pt1000.n);
    CHECK_INT(script_pending(&x->s), 0);
    CHECK_INT(x->s.nsent, 1);
    CHECK(usmp_is_connected(&x->ctx));
    close_session(x);
}

static void recv_v1_vector_bye(void) {
    const vset_t *v = &VS1;
    sess_t *x = open_session(v);
    script_vecs(&x->s, &v->d_s_msg[0], 6);             /* seq 0..5 */
    for (int i = 0; i <= 5; i++) expect_m(x, v, i);
    script_vec(&x->s, v->c_bye6);                      /* seq 6 */
    expect_fatal(x, v, USMP_ERR_CLOSED_BY_PEER);
}

static void recv_seq_gap_vector_pong4(const vset_t *v) {
    /* an authentic frame (the gateway's PONG, seq 4) while seq 0 is due */
    fatal_frame(v, v->s_pong4, USMP_ERR_REPLAY_DETECTED);
}

static void recv_replay_vector(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->s_from_gateway0);
    script_vec(&x->s, v->s_from_gateway0);
    EXPECT_MSG_VEC(x, v->pt_from_gateway);
    expect_fatal(x, v, USMP_ERR_REPLAY_DETECTED);
}

/* ---- negative.json, v1: the device receives like the vectors' receiver ------------------- */

static void v1_negative_flipped_tag(void) { fatal_frame(&VS1, VS1.n_flip_tag, USMP_ERR_CRYPTO_FAILED); }
static void v1_negative_flipped_ciphertext(void) { fatal_frame(&VS1, VS1.n_flip_ct, USMP_ERR_CRYPTO_FAILED); }
static void v1_negative_wrong_nonce(void) { fatal_frame(&VS1, VS1.n_bad_nonce, USMP_ERR_CRYPTO_FAILED); }
static void v1_negative_short_payload(void) { fatal_frame(&VS1, VS1.n_short, USMP_ERR_CRYPTO_FAILED); }
static void v1_negative_seq_gap(void) { fatal_frame(&VS1, VS1.n_seq_gap, USMP_ERR_REPLAY_DETECTED); }

static void v1_negative_replay(void) {
    sess_t *x = open_session(&VS1);
    script_vec(&x->s, VS1.n_replay);
    script_vec(&x->s, VS1.n_replay);
    EXPECT_MSG_VEC(x, VS1.pt_hello);
    expect_fatal(x, &VS1, USMP_ERR_REPLAY_DETECTED);
}

static void v1_negative_own_frame_accepted(void) {
    /* "client->server frame fed to client session": accepted on v1 (one key) */
    sess_t *x = open_session(&VS1);
    script_vec(&x->s, VS1.n_wrong_key);
    EXPECT_MSG_VEC(x, VS1.pt_hello);
    CHECK(usmp_is_connected(&x->ctx));
    close_session(x);
}

static void v1_negative_ping_between_fragments(void) {
    sess_t *x = open_session(&VS1);
    script_vecs(&x->s, VS1.n_ping_between, VS1.n_ping_between_count);
    uint8_t out[600];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FRAGMENTATION);
    CHECK_INT(x->s.nsent, 0); /* the PING is not answered */
    expect_fatal(x, &VS1, USMP_ERR_NOT_CONNECTED);
}

static void v1_negative_five_fragments(void) {
    sess_t *x = open_session(&VS1);
    script_vecs(&x->s, VS1.n_five_frags, VS1.n_five_frags_count);
    uint8_t out[2048];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FRAGMENTATION);
    CHECK_INT(script_pending(&x->s), 1); /* refused at the 4th DATA_FRAG */
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, &VS1);
    free(x);
}

static void v1_negative_ping_flood(void) {
    /* 9 PINGs (vector): the 8th control frame in one call trips; the 7 before are answered */
    sess_t *x = open_session(&VS1);
    script_vecs(&x->s, VS1.n_ping_flood, VS1.n_ping_flood_count);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FLOOD);
    CHECK_INT(script_pending(&x->s), 1);
    CHECK_INT(x->s.nsent, 7);
    for (size_t i = 0; i < 7; i++) {
        CHECK_SENT_FRAME(&x->s, i, 1);
        CHECK_SENT_VEC(&x->s, i, VS1.d_t_pong[i]);
    }
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, &VS1);
    free(x);
}

static void v1_negative_bye(void) { fatal_frame(&VS1, VS1.n_bye, USMP_ERR_CLOSED_BY_PEER); }

static void v1_rekey_type_unknown(void) {
    fatal_frame(&VS1, (vec_t){ V1_D_S_TYPE0B, V1_D_S_TYPE0B_LEN }, USMP_ERR_UNEXPECTED_FRAME);
}

/* ---- negative.json, v2: device->gateway frames under k_c2s; the device (rx = k_s2c) must
 *      refuse every one of them as unauthentic, including the "wrong key" case ------------ */

static void v2_negative_frames_are_unauthentic(void) {
    const vec_t frames[] = { VS2.n_flip_tag, VS2.n_flip_ct, VS2.n_bad_nonce, VS2.n_seq_gap,
                             VS2.n_wrong_key, VS2.n_short, VS2.n_bye, VS2.n_replay,
                             VS2.n_ping_between[0], VS2.n_five_frags[0], VS2.n_ping_flood[0],
                             VS2.c_hello_world0, VS2.c_ping3 };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++)
        fatal_frame(&VS2, frames[i], USMP_ERR_CRYPTO_FAILED);
}

/* ---- derived gateway->device frames (both versions) ---------------------------------- */

static void crypto_failures(const vset_t *v) {
    fatal_frame(v, v->d_s_flip_tag, USMP_ERR_CRYPTO_FAILED);
    fatal_frame(v, v->d_s_flip_ct, USMP_ERR_CRYPTO_FAILED);
    fatal_frame(v, v->d_s_bad_nonce, USMP_ERR_CRYPTO_FAILED);
    fatal_frame(v, v->d_s_type_swapped, USMP_ERR_CRYPTO_FAILED);
    fatal_frame(v, v->d_s_short27, USMP_ERR_CRYPTO_FAILED);
}

static void crypto_short_payloads(const vset_t *v) {
    /* payload lengths 0..27 of an encrypted type, valid CRC */
    static uint8_t frames[28][40];
    for (size_t len = 0; len < 28; len++) {
        uint8_t payload[28];
        memcpy(payload, v->d_s_hello0.b + 12, 28);
        size_t n = build_frame(frames[len], v->wire, (uint8_t)(len % 2 ? 5 : 6), 0, payload, len);
        fatal_frame(v, (vec_t){ frames[len], n }, USMP_ERR_CRYPTO_FAILED);
    }
}

static void derived_hello_accepted(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_hello0);
    EXPECT_MSG_VEC(x, v->pt_hello);
    close_session(x);
}

static void frame_level_errors(const vset_t *v) {
    fatal_frame(v, v->n_bad_crc, USMP_ERR_BAD_CRC);
    fatal_frame(v, v->n_payload_flip, USMP_ERR_BAD_CRC);
    fatal_frame(v, v->n_bad_magic, USMP_ERR_BAD_FRAME);
    fatal_frame(v, v->n_bad_magic_order, USMP_ERR_BAD_FRAME);
    fatal_frame(v, v->n_trunc11, USMP_ERR_BAD_FRAME);
    fatal_frame(v, v->n_trunc_payload, USMP_ERR_BAD_FRAME);
    fatal_frame(v, v->n_len481, USMP_ERR_BAD_FRAME);
    fatal_frame(v, v->n_wrong_version, USMP_ERR_VERSION_MISMATCH);
    fatal_frame(v, v->n_unknown_type, USMP_ERR_UNEXPECTED_FRAME);
}

static void bad_crc_on_valid_session_frame(const vset_t *v) {
    static uint8_t f[64];
    memcpy(f, v->s_from_gateway0.b, v->s_from_gateway0.n);
    f[10] ^= 0xFF;
    fatal_frame(v, (vec_t){ f, v->s_from_gateway0.n }, USMP_ERR_BAD_CRC);
}

static void wrong_version_on_valid_session_frame(const vset_t *v) {
    const vset_t *other = v->wire == 1 ? &VS2 : &VS1;
    fatal_frame(v, other->s_from_gateway0, USMP_ERR_VERSION_MISMATCH);
}

static void handshake_frames_in_session(const vset_t *v) {
    fatal_frame(v, v->challenge, USMP_ERR_UNEXPECTED_FRAME);
    fatal_frame(v, v->session_ok, USMP_ERR_UNEXPECTED_FRAME);
    fatal_frame(v, v->hello, USMP_ERR_UNEXPECTED_FRAME);
}

static void error_type_in_session(const vset_t *v) {
    fatal_frame(v, v->d_s_error0, USMP_ERR_UNEXPECTED_FRAME);
}

static void hello_retry_in_session(void) {
    fatal_frame(&VS2, (vec_t){ V2_HELLO_RETRY, V2_HELLO_RETRY_LEN }, USMP_ERR_UNEXPECTED_FRAME);
}

static void ping_answered(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_ping[0]);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK_INT(x->s.nsent, 1);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_pong[0]);
    CHECK_INT(x->s.recv_calls, 1); /* available() said nothing more: no blocking read */
    script_vec(&x->s, v->d_s_msg[1]);
    expect_m(x, v, 1);
    close_session(x);
}

static void ping_then_data_in_one_call(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_ping[0]);
    script_vec(&x->s, v->d_s_ping[1]);
    script_vec(&x->s, v->d_s_msg[2]);
    expect_m(x, v, 2);
    CHECK_INT(x->s.nsent, 2);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_pong[0]);
    CHECK_SENT_VEC(&x->s, 1, v->d_t_pong[1]);
    /* the device's own next frame continues its tx seq */
    CHECK_RC(usmp_ping(&x->ctx), USMP_OK);
    CHECK_SENT_VEC(&x->s, 2, v->d_t_ping[2]);
    close_session(x);
}

static void ping_without_available(const vset_t *v) {
    sess_t *x = calloc(1, sizeof *x);
    CHECK(x != NULL);
    ctx_init(&x->ctx, v);
    script_init(&x->s);
    script_handshake(&x->s, v);
    transport_init(&x->t, &x->s, TR_NO_AVAILABLE);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(&x->ctx, &x->t), USMP_OK);
    script_clear_sent(&x->s);
    script_vec(&x->s, v->d_s_ping[0]);
    script_rc(&x->s, 0);
    script_vec(&x->s, v->d_s_msg[1]);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_pong[0]);
    expect_m(x, v, 1);
    close_session(x);
}

static void idle_returns_zero(const vset_t *v) {
    sess_t *x = open_session(v);
    uint8_t out[16];
    for (int i = 0; i < 5; i++) CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.nsent, 0);
    script_vec(&x->s, v->d_s_msg[0]);
    expect_m(x, v, 0);
    close_session(x);
}

static void empty_message(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_empty0);
    script_vec(&x->s, v->d_s_msg[1]);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK_INT(script_pending(&x->s), 1);
    CHECK(usmp_is_connected(&x->ctx));
    expect_m(x, v, 1);
    close_session(x);
}

static void empty_message_zero_max_len(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_empty0);
    CHECK_RC(recv_into(&x->ctx, NULL, 0, 0), 0);
    CHECK_INT(script_pending(&x->s), 0);
    CHECK(usmp_is_connected(&x->ctx));
    script_vec(&x->s, v->d_s_msg[1]);
    expect_m(x, v, 1);
    close_session(x);
}

/* ---- flood guard --------------------------------------------------------------------- */

static void ping_flood(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_ping, 16);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FLOOD);
    int answered = v->flood_limit - 1;
    CHECK_INT(script_pending(&x->s), 16 - v->flood_limit);
    CHECK_INT(x->s.nsent, answered);
    for (int i = 0; i < answered; i++) {
        CHECK_SENT_FRAME(&x->s, (size_t)i, v->wire);
        CHECK_INT(sent_type(&x->s, (size_t)i), 7);
        CHECK_INT(sent_seq(&x->s, (size_t)i), i);
        CHECK_SENT_VEC(&x->s, (size_t)i, v->d_t_pong[i]);
    }
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, v);
    free(x);
}

static void pong_flood(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_pong, 16);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FLOOD);
    CHECK_INT(script_pending(&x->s), 16 - v->flood_limit);
    CHECK_INT(x->s.nsent, 0);
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, v);
    free(x);
}

static void mixed_control_flood(const vset_t *v) {
    sess_t *x = open_session(v);
    for (int i = 0; i < 16; i++) script_vec(&x->s, i % 2 ? v->d_s_pong[i] : v->d_s_ping[i]);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FLOOD);
    CHECK_INT(script_pending(&x->s), 16 - v->flood_limit);
    CHECK_INT(x->s.nsent, (v->flood_limit) / 2); /* PONGs for the PINGs before the limit */
    free(x);
}

static void below_flood_limit_each_second(const vset_t *v) {
    /* limit-1 control frames within a second, twice, a second apart: the count is per
     * second (as the gateway's), so neither batch trips the guard */
    sess_t *x = open_session(v);
    int k = v->flood_limit - 1, seq = 0;
    for (int i = 0; i < k; i++) script_vec(&x->s, v->d_s_ping[seq++]);
    script_rc(&x->s, 0);
    for (int i = 0; i < k; i++) script_vec(&x->s, v->d_s_ping[seq++]);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0); /* the idle step */
    port.now += 1000;
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.nsent, 2 * k);
    for (int i = 0; i < 2 * k; i++) CHECK_SENT_VEC(&x->s, (size_t)i, v->d_t_pong[i]);
    close_session(x);
}

/* ---- fragmentation ------------------------------------------------------------------- */

static void fragmented_1000(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_frag1000, 3);
    EXPECT_MSG(x, 1000, v->pt1000.b, v->pt1000.n);
    CHECK_INT(script_pending(&x->s), 0);
    script_vec(&x->s, v->d_s_msg[3]);
    expect_m(x, v, 3);
    close_session(x);
}

static void fragmented_1808(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_msg1808, 4);
    EXPECT_MSG(x, 1808, v->pt1808.b, v->pt1808.n);
    script_vec(&x->s, v->d_s_msg[4]);
    expect_m(x, v, 4);
    close_session(x);
}

static void fragments_then_data(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_frag_then_msg, 2);
    EXPECT_MSG(x, 6, (const uint8_t *)"abcdef", 6);
    close_session(x);
}

static void fragment_gap(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_frag_gap, 2);
    expect_fatal(x, v, USMP_ERR_REPLAY_DETECTED);
}

static void five_fragments(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_five_frags, 5);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FRAGMENTATION);
    CHECK_INT(script_pending(&x->s), 1);
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, v);
    free(x);
}

static void ping_between_fragments(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_ping_between, 2);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_FRAGMENTATION);
    CHECK_INT(x->s.nsent, 0);
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, v);
    free(x);
}

static void pong_between_fragments(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_frag_then_msg[0]);
    script_vec(&x->s, v->d_s_pong[1]);
    expect_fatal(x, v, USMP_ERR_FRAGMENTATION);
}

static void bye_between_fragments(const vset_t *v) {
    /* Either code is defensible (the gateway said BYE; a control frame broke the message);
     * the session must end either way. */
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_bye_between, 2);
    uint8_t out[64];
    int rc = recv_into(&x->ctx, out, sizeof out, sizeof out);
    CHECK_MSG(rc == USMP_ERR_CLOSED_BY_PEER || rc == USMP_ERR_FRAGMENTATION, "got %s", rc_name(rc));
    if (rc != USMP_ERR_CLOSED_BY_PEER) test_note("BYE between fragments gives %s", rc_name(rc));
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.nsent, 0);
    check_reusable(&x->ctx, v);
    free(x);
}

static void fragment_then_silence_times_out(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_frag_then_msg[0]);
    x->s.tail_rc = 0;
    uint32_t before = port.now;
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_TIMEOUT);
    CHECK_MSG(port.now - before >= USMP_REASSEMBLY_TIMEOUT_MS, "gave up after %u ms",
              port.now - before);
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, v);
    free(x);
}

static void fragment_then_short_silence(const vset_t *v) {
    sess_t *x = open_session(v);
    port.step = 100;
    script_vec(&x->s, v->d_s_frag_then_msg[0]);
    for (int i = 0; i < 50; i++) script_rc(&x->s, 0); /* ~5 s */
    script_vec(&x->s, v->d_s_frag_then_msg[1]);
    EXPECT_MSG(x, 16, (const uint8_t *)"abcdef", 6);
    close_session(x);
}

/* ---- buffer overflow ------------------------------------------------------------------ */

static void overflow_single_frame(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->s_from_gateway0);
    uint16_t small = (uint16_t)(v->pt_from_gateway.n - 1);
    CHECK_RC(recv_into(&x->ctx, NULL, 0, small), USMP_ERR_BUFFER_OVERFLOW);
    CHECK(usmp_is_connected(&x->ctx)); /* the session stays up */
    script_vec(&x->s, v->d_s_msg[1]);
    CHECK_RC(recv_into(&x->ctx, NULL, 0, 2), USMP_ERR_BUFFER_OVERFLOW);
    CHECK(usmp_is_connected(&x->ctx));
    script_vec(&x->s, v->d_s_msg[2]);
    CHECK_RC(recv_into(&x->ctx, NULL, 0, 0), USMP_ERR_BUFFER_OVERFLOW);
    script_vec(&x->s, v->d_s_msg[3]);
    EXPECT_MSG(x, 3, (const uint8_t *)"m03", 3); /* exactly fits */
    CHECK_INT(x->s.nsent, 0);
    close_session(x);
}

static void overflow_fragmented(const vset_t *v) {
    const uint16_t sizes[] = { 999, 904, 453, 452, 100, 1 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sess_t *x = open_session(v);
        script_vecs(&x->s, v->d_s_frag1000, 3);
        CHECK_RC(recv_into(&x->ctx, NULL, 0, sizes[i]), USMP_ERR_BUFFER_OVERFLOW);
        CHECK_INT(script_pending(&x->s), 0); /* the whole message was consumed */
        CHECK(usmp_is_connected(&x->ctx));
        script_vec(&x->s, v->d_s_msg[3]);
        expect_m(x, v, 3);
        close_session(x);
    }
}

static void overflow_1808_into_1807(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_msg1808, 4);
    CHECK_RC(recv_into(&x->ctx, NULL, 0, 1807), USMP_ERR_BUFFER_OVERFLOW);
    CHECK(usmp_is_connected(&x->ctx));
    script_vecs(&x->s, v->d_s_msg + 4, 2);
    expect_m(x, v, 4);
    expect_m(x, v, 5);
    close_session(x);
}

static void overflow_does_not_write_past_max_len(const vset_t *v) {
    /* canaries around a caller buffer of 10 bytes */
    sess_t *x = open_session(v);
    script_vecs(&x->s, v->d_s_frag1000, 3);
    uint8_t buf[32];
    memset(buf, 0xEE, sizeof buf);
    CHECK_RC(usmp_recv(&x->ctx, buf + 8, 10), USMP_ERR_BUFFER_OVERFLOW);
    for (size_t i = 0; i < 8; i++) CHECK(buf[i] == 0xEE);
    for (size_t i = 18; i < sizeof buf; i++) CHECK(buf[i] == 0xEE);
    close_session(x);
}

/* ---- BYE ------------------------------------------------------------------------------ */

static void gateway_bye(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_bye0);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_CLOSED_BY_PEER);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.nsent, 0); /* no answer to BYE */
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_ping(&x->ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_keepalive_tick(&x->ctx), USMP_ERR_NOT_CONNECTED);
    usmp_close(&x->ctx);
    CHECK_INT(x->s.nsent, 0); /* no BYE after the gateway's BYE */
    check_reusable(&x->ctx, v);
    free(x);
}

static void close_after_gateway_bye_closes_transport(const vset_t *v) {
    /* usmp.h: usmp_close "... transport closed (not destroyed)". */
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_bye0);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_CLOSED_BY_PEER);
    usmp_close(&x->ctx);
    CHECK_MSG(x->s.close_calls == 1, "transport close called %d times by usmp_close after BYE",
              x->s.close_calls);
    free(x);
}

/* ---- transport errors in the session ---------------------------------------------------- */

static void recv_eof(const vset_t *v) {
    sess_t *x = open_session(v);
    script_rc(&x->s, -1);
    expect_fatal(x, v, USMP_ERR_TRANSPORT_FAILED);
}

static void recv_error_code(const vset_t *v) {
    sess_t *x = open_session(v);
    script_rc(&x->s, -110);
    expect_fatal(x, v, USMP_ERR_TRANSPORT_FAILED);
}

static void recv_more_than_max_len(const vset_t *v) {
    sess_t *x = open_session(v);
    script_rc(&x->s, USMP_MAX_FRAME_SIZE + 1);
    expect_fatal(x, v, USMP_ERR_TRANSPORT_FAILED);
}

static void recv_eof_mid_message(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_frag1000[0]);
    script_rc(&x->s, -1);
    expect_fatal(x, v, USMP_ERR_TRANSPORT_FAILED);
}

static void pong_send_fails(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_ping[0]);
    x->s.send_fail_at = 1;
    expect_fatal(x, v, USMP_ERR_TRANSPORT_FAILED);
}

/* ---- gateway REKEY (v2) ---------------------------------------------------------------- */

static void gateway_rekey(void) {
    const vset_t *v = &VS2;
    sess_t *x = open_session(v);
    script_vec(&x->s, (vec_t){ V2_D_S_REKEY_SEQ0, V2_D_S_REKEY_SEQ0_LEN });
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0); /* handled */
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.nsent, 0);
    /* both directions restart at seq 0 under the new keys */
    script_vec(&x->s, (vec_t){ V2_D_S_AFTER_SREKEY_SEQ0, V2_D_S_AFTER_SREKEY_SEQ0_LEN });
    EXPECT_MSG(x, 64, V2_PT_AFTER_REKEY, V2_PT_AFTER_REKEY_LEN);
    CHECK_RC(usmp_send(&x->ctx, V2_PT_AFTER_REKEY, V2_PT_AFTER_REKEY_LEN), USMP_OK);
    CHECK_BYTES(x->s.sent[0], x->s.sent_len[0], V2_D_T_AFTER_SREKEY_SEQ0, V2_D_T_AFTER_SREKEY_SEQ0_LEN);
    close_session(x);
}

static void gateway_rekey_then_old_key(void) {
    const vset_t *v = &VS2;
    sess_t *x = open_session(v);
    script_vec(&x->s, (vec_t){ V2_D_S_REKEY_SEQ0, V2_D_S_REKEY_SEQ0_LEN });
    /* seq 0, but under the old key: the gateway's REKEY was its last frame under that key,
     * so on a stream this is a replay (the previous key only opens frames that were in
     * flight when our own REKEY went out) */
    script_vec(&x->s, v->d_s_msg[0]);
    expect_fatal(x, v, USMP_ERR_REPLAY_DETECTED);
}

static void gateway_rekey_short_salt(void) {
    fatal_frame(&VS2, (vec_t){ V2_D_S_REKEY_SHORT_SALT, V2_D_S_REKEY_SHORT_SALT_LEN },
                USMP_ERR_UNEXPECTED_FRAME);
}

static void gateway_rekey_between_fragments(void) {
    /* a REKEY is a control frame: not allowed inside a fragmented message */
    const vset_t *v = &VS2;
    sess_t *x = open_session(v);
    script_vecs(&x->s, V2_D_S_FRAG_REKEY, V2_D_S_FRAG_REKEY_COUNT);
    expect_fatal(x, v, USMP_ERR_FRAGMENTATION);
}

static const test_case_t CASES[] = {
    CASE_V(recv_vector_gateway_data),
    CASE_V(recv_vector_gateway_pong),
    CASE(recv_v1_vector_walk),
    CASE(recv_v1_vector_bye),
    CASE_V(recv_seq_gap_vector_pong4),
    CASE_V(recv_replay_vector),
    CASE(v1_negative_flipped_tag),
    CASE(v1_negative_flipped_ciphertext),
    CASE(v1_negative_wrong_nonce),
    CASE(v1_negative_short_payload),
    CASE(v1_negative_seq_gap),
    CASE(v1_negative_replay),
    CASE(v1_negative_own_frame_accepted),
    CASE(v1_negative_ping_between_fragments),
    CASE(v1_negative_five_fragments),
    CASE(v1_negative_ping_flood),
    CASE(v1_negative_bye),
    CASE(v1_rekey_type_unknown),
    CASE(v2_negative_frames_are_unauthentic),
    CASE_V(crypto_failures),
    CASE_V(crypto_short_payloads),
    CASE_V(derived_hello_accepted),
    CASE_V(frame_level_errors),
    CASE_V(bad_crc_on_valid_session_frame),
    CASE_V(wrong_version_on_valid_session_frame),
    CASE_V(handshake_frames_in_session),
    CASE_V(error_type_in_session),
    CASE(hello_retry_in_session),
    CASE_V(ping_answered),
    CASE_V(ping_then_data_in_one_call),
    CASE_V(ping_without_available),
    CASE_V(idle_returns_zero),
    CASE_V(empty_message),
    CASE_V(empty_message_zero_max_len),
    CASE_V(ping_flood),
    CASE_V(pong_flood),
    CASE_V(mixed_control_flood),
    CASE_V(below_flood_limit_each_second),
    CASE_V(fragmented_1000),
    CASE_V(fragmented_1808),
    CASE_V(fragments_then_data),
    CASE_V(fragment_gap),
    CASE_V(five_fragments),
    CASE_V(ping_between_fragments),
    CASE_V(pong_between_fragments),
    CASE_V(bye_between_fragments),
    CASE_V(fragment_then_silence_times_out),
    CASE_V(fragment_then_short_silence),
    CASE_V(overflow_single_frame),
    CASE_V(overflow_fragmented),
    CASE_V(overflow_1808_into_1807),
    CASE_V(overflow_does_not_write_past_max_len),
    CASE_V(gateway_bye),
    CASE_V(close_after_gateway_bye_closes_transport),
    CASE_V(recv_eof),
    CASE_V(recv_error_code),
    CASE_V(recv_more_than_max_len),
    CASE_V(recv_eof_mid_message),
    CASE_V(pong_send_fails),
    CASE(gateway_rekey),
    CASE(gateway_rekey_then_old_key),
    CASE(gateway_rekey_short_salt),
    CASE(gateway_rekey_between_fragments),
};

int main(int argc, char **argv) {
    return run_tests("session", CASES, sizeof CASES / sizeof CASES[0], argc, argv);
}
