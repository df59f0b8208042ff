/*
 * usmp_send / usmp_ping / usmp_keepalive_tick / usmp_rekey / usmp_reconnect / usmp_close and
 * context copies, over the scripted gateway, checking every frame the device sends.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void send_dnn(sess_t *x, int seq) {
    uint8_t m[3] = { 'd', (uint8_t)('0' + seq / 10), (uint8_t)('0' + seq % 10) };
    CHECK_RC(usmp_send(&x->ctx, m, 3), USMP_OK);
}

static uint8_t *heap_copy(const uint8_t *p, size_t n) {
    uint8_t *h = malloc(n ? n : 1);
    CHECK(h != NULL);
    if (n) memcpy(h, p, n);
    return h;
}

/* ---- the device's frames equal the vectors ------------------------------------------ */

static void send_vector_walk_and_close(const vset_t *v) {
    sess_t *x = open_session(v);
    /* the plaintexts on the heap with their exact sizes: ASan checks the reads */
    uint8_t *hw = heap_copy(v->pt_hello_world.b, v->pt_hello_world.n);
    uint8_t *mx = heap_copy(v->pt_max452.b, v->pt_max452.n);
    CHECK_RC(usmp_send(&x->ctx, hw, (uint16_t)v->pt_hello_world.n), USMP_OK);     /* seq 0 */
    CHECK_SENT_VEC(&x->s, 0, v->c_hello_world0);
    CHECK_RC(usmp_send(&x->ctx, mx, (uint16_t)v->pt_max452.n), USMP_OK);          /* seq 1 */
    CHECK_SENT_VEC(&x->s, 1, v->c_max452_1);
    send_dnn(x, 2);                                                               /* seq 2 */
    CHECK_SENT_VEC(&x->s, 2, v->d_t_msg[2]);
    CHECK_RC(usmp_ping(&x->ctx), USMP_OK);                                        /* seq 3 */
    CHECK_SENT_VEC(&x->s, 3, v->c_ping3);
    script_vec(&x->s, v->d_s_ping[0]);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);                 /* PONG seq 4 */
    CHECK_SENT_VEC(&x->s, 4, v->d_t_pong[4]);
    if (v->wire == 1) CHECK_SENT_VEC(&x->s, 4, v->s_pong4); /* one key: the vector's PONG seq 4 */
    CHECK_RC(usmp_send(&x->ctx, NULL, 0), USMP_OK);                               /* seq 5 */
    CHECK_SENT_VEC(&x->s, 5, v->c_empty5);
    usmp_close(&x->ctx);                                                          /* BYE seq 6 */
    CHECK_INT(x->s.nsent, 7);
    CHECK_SENT_VEC(&x->s, 6, v->c_bye6);
    CHECK_INT(x->s.close_calls, 1);
    CHECK(!usmp_is_connected(&x->ctx));
    free(hw);
    free(mx);
    close_session(x);
}

static void send_vector_1000_fragmented(const vset_t *v) {
    sess_t *x = open_session(v);
    for (int i = 0; i < 10; i++) {
        send_dnn(x, i);
        CHECK_SENT_VEC(&x->s, (size_t)i, v->d_t_msg[i]);
    }
    uint8_t *m = heap_copy(v->pt1000.b, v->pt1000.n);
    CHECK_RC(usmp_send(&x->ctx, m, 1000), USMP_OK);
    free(m);
    CHECK_INT(x->s.nsent, 13);
    for (size_t i = 0; i < 3; i++) CHECK_SENT_VEC(&x->s, 10 + i, v->c_frag1000_10[i]);
    close_session(x);
}

/* ---- sizes ------------------------------------------------------------------------------ */

static void send_1808_four_frames(const vset_t *v) {
    sess_t *x = open_session(v);
    uint8_t *m = heap_copy(v->pt1808.b, v->pt1808.n);
    CHECK_RC(usmp_send(&x->ctx, m, 1808), USMP_OK);
    free(m);
    CHECK_INT(x->s.nsent, 4);
    const uint8_t types[4] = { 9, 9, 9, 5 };
    for (size_t i = 0; i < 4; i++) {
        CHECK_SENT_FRAME(&x->s, i, v->wire);
        CHECK_INT(sent_type(&x->s, i), types[i]);
        CHECK_INT(sent_seq(&x->s, i), i);
        CHECK_INT(sent_plen(&x->s, i), 480);
        CHECK_SENT_VEC(&x->s, i, v->d_t_msg1808[i]);
    }
    close_session(x);
}

static void send_1809_overflows(const vset_t *v) {
    sess_t *x = open_session(v);
    uint8_t *m = calloc(1, 65535);
    CHECK(m != NULL);
    CHECK_RC(usmp_send(&x->ctx, m, 1809), USMP_ERR_BUFFER_OVERFLOW);
    CHECK_RC(usmp_send(&x->ctx, m, 4000), USMP_ERR_BUFFER_OVERFLOW);
    CHECK_RC(usmp_send(&x->ctx, m, 65535), USMP_ERR_BUFFER_OVERFLOW);
    free(m);
    CHECK_INT(x->s.send_calls, 0); /* nothing sent */
    CHECK(usmp_is_connected(&x->ctx));
    /* no seq was burned */
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 0, v->c_hello_world0);
    close_session(x);
}

static void send_empty_message(const vset_t *v) {
    sess_t *x = open_session(v);
    uint8_t dummy = 0;
    CHECK_RC(usmp_send(&x->ctx, &dummy, 0), USMP_OK);
    CHECK_INT(x->s.nsent, 1);
    CHECK_INT(sent_type(&x->s, 0), 5);
    CHECK_INT(sent_seq(&x->s, 0), 0);
    CHECK_INT(sent_plen(&x->s, 0), 28);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_empty0);
    close_session(x);
}

static void send_fragment_boundaries(const vset_t *v) {
    static const struct {
        uint16_t len;
        int frames;
        uint16_t last_plen;
    } cases[] = {
        { 1, 1, 29 },     { 451, 1, 479 },  { 452, 1, 480 },  { 453, 2, 29 },
        { 904, 2, 480 },  { 905, 3, 29 },   { 1356, 3, 480 }, { 1357, 4, 29 },
        { 1807, 4, 479 }, { 1808, 4, 480 },
    };
    sess_t *x = open_session(v);
    uint32_t seq = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t *m = heap_copy(v->pt1808.b, cases[c].len);
        script_clear_sent(&x->s);
        CHECK_RC(usmp_send(&x->ctx, m, cases[c].len), USMP_OK);
        free(m);
        CHECK_INT(x->s.nsent, cases[c].frames);
        for (int i = 0; i < cases[c].frames; i++) {
            bool last = i + 1 == cases[c].frames;
            CHECK_SENT_FRAME(&x->s, (size_t)i, v->wire);
            CHECK_INT(sent_type(&x->s, (size_t)i), last ? 5 : 9);
            CHECK_INT(sent_seq(&x->s, (size_t)i), seq++);
            CHECK_INT(sent_plen(&x->s, (size_t)i), last ? cases[c].last_plen : 480);
            /* embedded nonce = seq LE || session_id[0..8] */
            const uint8_t *p = x->s.sent[i] + 12;
            CHECK_BYTES(p, 4, x->s.sent[i] + 4, 4);
            CHECK_BYTES(p + 4, 8, v->session_id.b, 8);
        }
    }
    close_session(x);
}

/* ---- send failures ------------------------------------------------------------------ */

static void send_transport_fails(const vset_t *v) {
    sess_t *x = open_session(v);
    x->s.send_fail_at = 1;
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello.b, 5), USMP_ERR_TRANSPORT_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_ping(&x->ctx), USMP_ERR_NOT_CONNECTED);
    uint8_t out[8];
    CHECK_RC(usmp_recv(&x->ctx, out, sizeof out), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_keepalive_tick(&x->ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_RC(usmp_rekey(&x->ctx), USMP_ERR_NOT_CONNECTED);
    CHECK_INT(x->s.send_calls, 1);
    check_reusable(&x->ctx, v);
    free(x);
}

static void send_fails_mid_message(const vset_t *v) {
    sess_t *x = open_session(v);
    x->s.send_fail_at = 2;
    uint8_t *m = heap_copy(v->pt1000.b, 1000);
    CHECK_RC(usmp_send(&x->ctx, m, 1000), USMP_ERR_TRANSPORT_FAILED);
    free(m);
    CHECK_INT(x->s.send_calls, 2); /* stopped at the failure */
    CHECK_INT(x->s.nsent, 1);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED);
    check_reusable(&x->ctx, v);
    free(x);
}

static void ping_transport_fails(const vset_t *v) {
    sess_t *x = open_session(v);
    x->s.send_fail_at = 1;
    CHECK_RC(usmp_ping(&x->ctx), USMP_ERR_TRANSPORT_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_ping(&x->ctx), USMP_ERR_NOT_CONNECTED);
    check_reusable(&x->ctx, v);
    free(x);
}

static void ping_sends_ping(const vset_t *v) {
    sess_t *x = open_session(v);
    CHECK_RC(usmp_ping(&x->ctx), USMP_OK);
    CHECK_RC(usmp_ping(&x->ctx), USMP_OK);
    CHECK_INT(x->s.nsent, 2);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_ping[0]);
    CHECK_SENT_VEC(&x->s, 1, v->d_t_ping[1]);
    CHECK_INT(x->s.recv_calls, 0); /* does not wait for the PONG */
    script_vec(&x->s, v->d_s_pong[0]);
    script_vec(&x->s, v->d_s_pong[1]);
    uint8_t out[8];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 0);
    CHECK_INT(script_pending(&x->s), 0);
    close_session(x);
}

/* ---- keepalive ------------------------------------------------------------------------ */

static void keepalive_off(const vset_t *v) {
    sess_t *x = open_session_opts(v, 0, 0);
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    port.now += 100000000u;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.send_calls, 0);
    close_session(x);
}

static void keepalive_period(const vset_t *v) {
    port.step = 0; /* the test moves the clock */
    sess_t *x = open_session_opts(v, 0, 5000);
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 0);
    port.now += 4999;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 0);
    port.now += 1;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 1);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_ping[0]);
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0); /* just sent */
    CHECK_INT(x->s.nsent, 1);
    /* any transmission restarts the period */
    port.now += 4000;
    send_dnn(x, 1);
    port.now += 4000;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 2);
    port.now += 1000;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 3);
    CHECK_SENT_VEC(&x->s, 2, v->d_t_ping[2]);
    /* the app may change the period at any time */
    x->ctx.keepalive_ms = 10;
    port.now += 10;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 4);
    close_session(x);
}

static void keepalive_across_clock_wrap(const vset_t *v) {
    port.step = 0;
    port.now = 0xFFFFFF00u;
    sess_t *x = open_session_opts(v, 0, 1000);
    port.now += 0x200; /* wrapped, 512 ms later */
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 0);
    port.now += 488;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), 0);
    CHECK_INT(x->s.nsent, 1);
    close_session(x);
}

static void keepalive_send_fails(const vset_t *v) {
    port.step = 0;
    sess_t *x = open_session_opts(v, 0, 100);
    port.now += 100;
    x->s.send_fail_at = 1;
    CHECK_RC(usmp_keepalive_tick(&x->ctx), USMP_ERR_TRANSPORT_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_keepalive_tick(&x->ctx), USMP_ERR_NOT_CONNECTED);
    check_reusable(&x->ctx, v);
    free(x);
}

/* ---- rekey ---------------------------------------------------------------------------- */

static void rekey_v1_unsupported(void) {
    sess_t *x = open_session(&VS1);
    CHECK_RC(usmp_rekey(&x->ctx), USMP_ERR_UNSUPPORTED);
    CHECK_INT(x->s.send_calls, 0);
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_send(&x->ctx, VS1.pt_hello_world.b, (uint16_t)VS1.pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 0, VS1.c_hello_world0); /* no seq burned */
    close_session(x);
}

static void rekey_v2_frame(void) {
    sess_t *x = open_session(&VS2);
    CHECK_RC(usmp_rekey(&x->ctx), USMP_OK);
    CHECK_INT(x->s.nsent, 1);
    CHECK_SENT_FRAME(&x->s, 0, 2);
    CHECK_INT(sent_type(&x->s, 0), 0x0B);
    CHECK_INT(sent_seq(&x->s, 0), 0);
    CHECK_INT(sent_plen(&x->s, 0), 60);
    CHECK_INT(port.random_last_len, 32);
    CHECK(usmp_is_connected(&x->ctx));
    /* new keys, seq restarts at 0 */
    CHECK_RC(usmp_send(&x->ctx, VS2.pt_hello.b, 5), USMP_OK);
    CHECK_INT(sent_seq(&x->s, 1), 0);
    close_session(x);
}

static void rekey_v2_vector(void) {
    /* rekey.json: REKEY at seq 5 with salt c0..df, then DATA 'after rekey' at seq 0 */
    const vset_t *v = &VS2;
    sess_t *x = open_session(v);
    for (int i = 0; i < 5; i++) send_dnn(x, i);
    port_queue_random(V2_REKEY_SALT, V2_REKEY_SALT_LEN);
    CHECK_RC(usmp_rekey(&x->ctx), USMP_OK);
    CHECK_INT(x->s.nsent, 6);
    CHECK_BYTES(x->s.sent[5], x->s.sent_len[5], V2_REKEY_FRAME_SEQ5, V2_REKEY_FRAME_SEQ5_LEN);
    CHECK_RC(usmp_send(&x->ctx, V2_PT_AFTER_REKEY, V2_PT_AFTER_REKEY_LEN), USMP_OK);
    CHECK_BYTES(x->s.sent[6], x->s.sent_len[6], V2_REKEY_AFTER_SEQ0, V2_REKEY_AFTER_SEQ0_LEN);
    /* the gateway's next frame: seq 0 under its new tx key */
    script_vec(&x->s, (vec_t){ V2_D_S_AFTER_CREKEY_SEQ0, V2_D_S_AFTER_CREKEY_SEQ0_LEN });
    uint8_t out[64];
    int n = recv_into(&x->ctx, out, sizeof out, sizeof out);
    CHECK_RC(n, (int)V2_PT_AFTER_REKEY_LEN);
    CHECK_BYTES(out, (size_t)n, V2_PT_AFTER_REKEY, V2_PT_AFTER_REKEY_LEN);
    /* and the old key is gone */
    script_vec(&x->s, v->d_s_msg[1]);
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_CRYPTO_FAILED);
    free(x);
}

static void rekey_random_fails(void) {
    sess_t *x = open_session(&VS2);
    port.random_fail_at = port.random_calls + 1;
    CHECK_RC(usmp_rekey(&x->ctx), USMP_ERR_PORT_FAILED);
    CHECK_INT(x->s.send_calls, 0);
    close_session(x);
}

static void rekey_send_fails(void) {
    sess_t *x = open_session(&VS2);
    x->s.send_fail_at = 1;
    CHECK_RC(usmp_rekey(&x->ctx), USMP_ERR_TRANSPORT_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, &VS2);
    free(x);
}

/* ---- close -------------------------------------------------------------------------- */

static void close_sends_one_bye(const vset_t *v) {
    sess_t *x = open_session(v);
    usmp_close(&x->ctx);
    CHECK_INT(x->s.nsent, 1);
    CHECK_SENT_FRAME(&x->s, 0, v->wire);
    CHECK_INT(sent_type(&x->s, 0), 8);
    CHECK_INT(sent_seq(&x->s, 0), 0);
    CHECK_INT(sent_plen(&x->s, 0), 28);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_bye[0]);
    CHECK_INT(x->s.close_calls, 1);
    CHECK(!usmp_is_connected(&x->ctx));
    usmp_close(&x->ctx); /* again: no second BYE (closing the transport again is allowed) */
    CHECK_INT(x->s.nsent, 1);
    CHECK_INT(x->s.protocol_errors, 0); /* the BYE went out before close */
    free(x);
}

static void close_bye_send_fails(const vset_t *v) {
    sess_t *x = open_session(v);
    x->s.send_fail_at = 1;
    usmp_close(&x->ctx);
    CHECK_INT(x->s.send_calls, 1);
    CHECK_INT(x->s.close_calls, 1);
    CHECK(!usmp_is_connected(&x->ctx));
    check_reusable(&x->ctx, v);
    free(x);
}

static void close_without_close_callback(const vset_t *v) {
    sess_t *x = open_session_opts(v, TR_NO_CLOSE, 0);
    usmp_close(&x->ctx);
    CHECK_INT(x->s.nsent, 1);
    CHECK_SENT_VEC(&x->s, 0, v->d_t_bye[0]);
    free(x);
}

/* ---- reconnect ------------------------------------------------------------------------ */

static void reconnect_unsupported(const vset_t *v) {
    sess_t *x = open_session_opts(v, TR_NO_RECONNECT, 0);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_ERR_UNSUPPORTED);
    CHECK_INT(x->s.send_calls, 0);
    CHECK_INT(x->s.recv_calls, 0);
    if (usmp_is_connected(&x->ctx)) test_note("the session survives an unsupported reconnect");
    else test_note("an unsupported reconnect ends the session");
    usmp_close(&x->ctx);
    free(x);
}

static void reconnect_new_handshake(const vset_t *v) {
    sess_t *x = open_session(v);
    send_dnn(x, 0);
    send_dnn(x, 1);
    script_vec(&x->s, v->d_s_msg[0]);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), 3);
    script_on_reconnect_vec(&x->s, v->challenge);
    script_on_reconnect_vec(&x->s, v->session_ok);
    script_clear_sent(&x->s);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_OK);
    CHECK_INT(x->s.reconnect_calls, 1);
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.nsent, 2);
    CHECK_SENT_VEC(&x->s, 0, v->hello);
    CHECK_SENT_VEC(&x->s, 1, v->hello_ack0);
    /* both counters restart */
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 2, v->c_hello_world0);
    script_vec(&x->s, v->s_from_gateway0);
    int n = recv_into(&x->ctx, out, sizeof out, sizeof out);
    CHECK_RC(n, (int)v->pt_from_gateway.n);
    close_session(x);
}

static void reconnect_after_error(const vset_t *v) {
    sess_t *x = open_session(v);
    script_vec(&x->s, v->d_s_flip_tag);
    uint8_t out[16];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), USMP_ERR_CRYPTO_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    script_on_reconnect_vec(&x->s, v->challenge);
    script_on_reconnect_vec(&x->s, v->session_ok);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_OK);
    CHECK(usmp_is_connected(&x->ctx));
    send_dnn(x, 0);
    CHECK_SENT_VEC(&x->s, x->s.nsent - 1, v->d_t_msg[0]);
    close_session(x);
}

static void reconnect_after_close(const vset_t *v) {
    sess_t *x = open_session(v);
    usmp_close(&x->ctx);
    script_on_reconnect_vec(&x->s, v->challenge);
    script_on_reconnect_vec(&x->s, v->session_ok);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_OK);
    CHECK(usmp_is_connected(&x->ctx));
    close_session(x);
}

static void reconnect_dial_fails(const vset_t *v) {
    sess_t *x = open_session(v);
    x->s.reconnect_rc = -1;
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_ERR_TRANSPORT_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.send_calls, 0);
    /* the next attempt works */
    x->s.reconnect_rc = 0;
    script_on_reconnect_vec(&x->s, v->challenge);
    script_on_reconnect_vec(&x->s, v->session_ok);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_OK);
    CHECK_INT(x->s.reconnect_calls, 2);
    close_session(x);
}

static void reconnect_handshake_fails(const vset_t *v) {
    sess_t *x = open_session(v);
    script_on_reconnect_vec(&x->s, v->challenge); /* then EOF */
    x->s.tail_rc = -1;
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_ERR_AUTH_FAILED);
    CHECK(!usmp_is_connected(&x->ctx));
    CHECK_INT(x->s.close_calls, 1);
    /* and again, successfully */
    x->s.tail_rc = 0;
    x->s.n_reconnect_steps = 0;
    script_on_reconnect_vec(&x->s, v->challenge);
    script_on_reconnect_vec(&x->s, v->session_ok);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_reconnect(&x->ctx), USMP_OK);
    CHECK(usmp_is_connected(&x->ctx));
    close_session(x);
}

/* ---- the transport is copied by value --------------------------------------------------- */

static void transport_copied_by_value(const vset_t *v) {
    sess_t *x = open_session(v);
    /* ctx->transport holds the caller's members (read-only for the application) */
    CHECK(x->ctx.transport.ctx == &x->s);
    CHECK(x->ctx.transport.send == x->t.send);
    CHECK(x->ctx.transport.recv == x->t.recv);
    CHECK(x->ctx.transport.close == x->t.close);
    CHECK_INT(x->ctx.transport.flags, 0);
    /* changing or dropping the caller's struct afterwards changes nothing */
    memset(&x->t, 0, sizeof x->t);
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 0, v->c_hello_world0);
    script_vec(&x->s, v->s_from_gateway0);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), (int)v->pt_from_gateway.n);
    usmp_close(&x->ctx);
    CHECK_INT(x->s.close_calls, 1);
    CHECK_SENT_VEC(&x->s, 1, v->d_t_bye[1]);
    free(x);
}

/* ---- copied / moved contexts ----------------------------------------------------------- */

static void copy_is_refused_original_works(const vset_t *v) {
    sess_t *x = open_session(v);
    usmp_t copy;
    memcpy(&copy, &x->ctx, sizeof copy);
    CHECK(!usmp_is_connected(&copy));
    CHECK_RC(usmp_send(&copy, v->pt_hello.b, 5), USMP_ERR_CONTEXT_MOVED);
    CHECK_INT(x->s.send_calls, 0);
    CHECK(!usmp_is_connected(&copy));
    CHECK_RC(usmp_send(&copy, v->pt_hello.b, 5), USMP_ERR_NOT_CONNECTED); /* wiped */
    /* the original is untouched: seq 0 is still unused */
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 0, v->c_hello_world0);
    script_vec(&x->s, v->s_from_gateway0);
    uint8_t out[64];
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), (int)v->pt_from_gateway.n);
    close_session(x);
}

static void copy_every_call_refused(const vset_t *v) {
    sess_t *x = open_session(v);
    uint8_t out[64];
    int (*const calls[])(usmp_t *) = { usmp_ping, usmp_keepalive_tick, usmp_rekey, usmp_reconnect };
    for (size_t i = 0; i < 4; i++) {
        usmp_t copy;
        memcpy(&copy, &x->ctx, sizeof copy);
        CHECK_RC(calls[i](&copy), USMP_ERR_CONTEXT_MOVED);
    }
    usmp_t copy;
    memcpy(&copy, &x->ctx, sizeof copy);
    script_vec(&x->s, v->s_from_gateway0);
    CHECK_RC(usmp_recv(&copy, out, sizeof out), USMP_ERR_CONTEXT_MOVED);
    CHECK_INT(script_pending(&x->s), 1); /* the copy read nothing */
    memcpy(&copy, &x->ctx, sizeof copy);
    usmp_close(&copy); /* must not send BYE or close the original's transport */
    CHECK_INT(x->s.send_calls, 0);
    CHECK_INT(x->s.recv_calls, 0);
    CHECK_INT(x->s.close_calls, 0);
    CHECK_INT(x->s.reconnect_calls, 0);
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_RC(recv_into(&x->ctx, out, sizeof out, sizeof out), (int)v->pt_from_gateway.n);
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 0, v->c_hello_world0);
    close_session(x);
}

static void moved_context_refused(const vset_t *v) {
    sess_t *x = open_session(v);
    usmp_t *moved = malloc(sizeof *moved);
    CHECK(moved != NULL);
    memcpy(moved, &x->ctx, sizeof *moved);
    memset(&x->ctx, 0, sizeof x->ctx); /* the old place is gone */
    CHECK(!usmp_is_connected(moved));
    CHECK_RC(usmp_send(moved, v->pt_hello.b, 5), USMP_ERR_CONTEXT_MOVED);
    CHECK_INT(x->s.send_calls, 0);
    /* a moved context can be connected afresh */
    ctx_init(moved, v);
    check_reusable(moved, v);
    free(moved);
    free(x);
}

static void copy_can_connect_afresh(const vset_t *v) {
    sess_t *x = open_session(v);
    usmp_t copy;
    memcpy(&copy, &x->ctx, sizeof copy);
    check_reusable(&copy, v); /* its own transport and session */
    CHECK(usmp_is_connected(&x->ctx));
    CHECK_RC(usmp_send(&x->ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_SENT_VEC(&x->s, 0, v->c_hello_world0);
    close_session(x);
}

static const test_case_t CASES[] = {
    CASE_V(send_vector_walk_and_close),
    CASE_V(send_vector_1000_fragmented),
    CASE_V(send_1808_four_frames),
    CASE_V(send_1809_overflows),
    CASE_V(send_empty_message),
    CASE_V(send_fragment_boundaries),
    CASE_V(send_transport_fails),
    CASE_V(send_fails_mid_message),
    CASE_V(ping_transport_fails),
    CASE_V(ping_sends_ping),
    CASE_V(keepalive_off),
    CASE_V(keepalive_period),
    CASE_V(keepalive_across_clock_wrap),
    CASE_V(keepalive_send_fails),
    CASE(rekey_v1_unsupported),
    CASE(rekey_v2_frame),
    CASE(rekey_v2_vector),
    CASE(rekey_random_fails),
    CASE(rekey_send_fails),
    CASE_V(close_sends_one_bye),
    CASE_V(close_bye_send_fails),
    CASE_V(close_without_close_callback),
    CASE_V(reconnect_unsupported),
    CASE_V(reconnect_new_handshake),
    CASE_V(reconnect_after_error),
    CASE_V(reconnect_after_close),
    CASE_V(reconnect_dial_fails),
    CASE_V(reconnect_handshake_fails),
    CASE_V(transport_copied_by_value),
    CASE_V(copy_is_refused_original_works),
    CASE_V(copy_every_call_refused),
    CASE_V(moved_context_refused),
    CASE_V(copy_can_connect_afresh),
};

int main(int argc, char **argv) {
    return run_tests("lifecycle", CASES, sizeof CASES / sizeof CASES[0], argc, argv);
}
