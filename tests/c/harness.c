/*
 * Test harness: runner, scripted transport, port hooks, vector sets. See harness.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ==================================================================================== */
/* Vector sets                                                                           */

#define VV(name) { (name), name##_LEN }

const vset_t VS1 = {
    .name = "v1", .wire = 1, .protocol_version = USMP_PROTOCOL_V1, .flood_limit = 8,
    .client_priv = VV(V1_CLIENT_PRIV), .psk = VV(V1_PSK), .device_id = VV(V1_DEVICE_ID),
    .session_id = VV(V1_SESSION_ID), .pub_c = VV(V1_PUB_C), .pub_s = VV(V1_PUB_S),
    .nonce = VV(V1_NONCE),
    .hello = VV(V1_HS_HELLO), .challenge = VV(V1_HS_CHALLENGE), .hello_ack_vec = VV(V1_HS_HELLO_ACK),
    .hello_ack0 = VV(V1_D_HS_HELLO_ACK_SEQ0), .session_ok = VV(V1_HS_SESSION_OK),
    .hmac_client = VV(V1_HMAC_CLIENT), .hmac_server = VV(V1_HMAC_SERVER),
    .c_hello_world0 = VV(V1_S_C_HELLO_WORLD_SEQ0), .pt_hello_world = VV(V1_PT_HELLO_WORLD),
    .s_from_gateway0 = VV(V1_S_S_FROM_GATEWAY_SEQ0), .pt_from_gateway = VV(V1_PT_FROM_GATEWAY),
    .c_max452_1 = VV(V1_S_C_MAX452_SEQ1), .pt_max452 = VV(V1_PT_MAX452),
    .c_empty5 = VV(V1_S_C_EMPTY_SEQ5), .c_ping3 = VV(V1_S_C_PING_SEQ3),
    .s_pong0 = VV(V1_S_S_PONG_SEQ0), .s_pong4 = VV(V1_S_S_PONG_SEQ4), .c_bye6 = VV(V1_S_C_BYE_SEQ6),
    .pt1000 = VV(V1_PT_1000), .c_frag1000_10 = V1_S_C_FRAG1000_SEQ10,
    .n_bad_crc = VV(V1_N_BAD_CRC), .n_payload_flip = VV(V1_N_PAYLOAD_FLIP),
    .n_bad_magic = VV(V1_N_BAD_MAGIC), .n_bad_magic_order = VV(V1_N_BAD_MAGIC_ORDER),
    .n_wrong_version = VV(V1_N_WRONG_VERSION), .n_trunc11 = VV(V1_N_TRUNC11),
    .n_trunc_payload = VV(V1_N_TRUNC_PAYLOAD), .n_len481 = VV(V1_N_LEN481),
    .n_unknown_type = VV(V1_N_UNKNOWN_TYPE), .n_trailing = VV(V1_N_TRAILING),
    .n_flip_tag = VV(V1_N_FLIP_TAG), .n_flip_ct = VV(V1_N_FLIP_CT), .n_bad_nonce = VV(V1_N_BAD_NONCE),
    .n_seq_gap = VV(V1_N_SEQ_GAP), .n_wrong_key = VV(V1_N_WRONG_KEY), .n_short = VV(V1_N_SHORT),
    .n_bye = VV(V1_N_BYE), .n_replay = VV(V1_N_REPLAY), .pt_hello = VV(V1_PT_HELLO),
    .n_ping_between = V1_N_PING_BETWEEN_FRAGS, .n_ping_between_count = V1_N_PING_BETWEEN_FRAGS_COUNT,
    .n_five_frags = V1_N_FIVE_FRAGS, .n_five_frags_count = V1_N_FIVE_FRAGS_COUNT,
    .n_ping_flood = V1_N_PING_FLOOD, .n_ping_flood_count = V1_N_PING_FLOOD_COUNT,
    .d_s_ping = V1_D_S_PING, .d_s_pong = V1_D_S_PONG, .d_s_msg = V1_D_S_MSG,
    .d_s_frag1000 = V1_D_S_FRAG1000, .d_s_msg1808 = V1_D_S_MSG1808,
    .d_s_five_frags = V1_D_S_FIVE_FRAGS, .d_s_ping_between = V1_D_S_PING_BETWEEN_FRAGS,
    .d_s_bye_between = V1_D_S_BYE_BETWEEN_FRAGS, .d_s_frag_gap = V1_D_S_FRAG_GAP,
    .d_s_frag_then_msg = V1_D_S_FRAG_THEN_MSG, .d_t_pong = V1_D_T_PONG, .d_t_ping = V1_D_T_PING,
    .d_t_bye = V1_D_T_BYE, .d_t_msg1808 = V1_D_T_MSG1808, .d_t_msg = V1_D_T_MSG,
    .d_s_bye0 = VV(V1_D_S_BYE_SEQ0), .d_s_empty0 = VV(V1_D_S_EMPTY_SEQ0),
    .d_s_error0 = VV(V1_D_S_ERROR_SEQ0), .d_s_hello0 = VV(V1_D_S_HELLO_SEQ0),
    .d_s_flip_tag = VV(V1_D_S_FLIP_TAG), .d_s_flip_ct = VV(V1_D_S_FLIP_CT),
    .d_s_bad_nonce = VV(V1_D_S_BAD_NONCE), .d_s_type_swapped = VV(V1_D_S_TYPE_SWAPPED),
    .d_s_short27 = VV(V1_D_S_SHORT27), .d_t_empty0 = VV(V1_D_T_EMPTY_SEQ0), .pt1808 = VV(V1_PT_1808),
};

const vset_t VS2 = {
    .name = "v2", .wire = 2, .protocol_version = 0, .flood_limit = 9,
    .client_priv = VV(V2_CLIENT_PRIV), .psk = VV(V2_PSK), .device_id = VV(V2_DEVICE_ID),
    .session_id = VV(V2_SESSION_ID), .pub_c = VV(V2_PUB_C), .pub_s = VV(V2_PUB_S),
    .nonce = VV(V2_NONCE),
    .hello = VV(V2_HS_HELLO), .challenge = VV(V2_HS_CHALLENGE), .hello_ack_vec = VV(V2_HS_HELLO_ACK),
    .hello_ack0 = VV(V2_D_HS_HELLO_ACK_SEQ0), .session_ok = VV(V2_HS_SESSION_OK),
    .hmac_client = VV(V2_HMAC_CLIENT), .hmac_server = VV(V2_HMAC_SERVER),
    .c_hello_world0 = VV(V2_S_C_HELLO_WORLD_SEQ0), .pt_hello_world = VV(V2_PT_HELLO_WORLD),
    .s_from_gateway0 = VV(V2_S_S_FROM_GATEWAY_SEQ0), .pt_from_gateway = VV(V2_PT_FROM_GATEWAY),
    .c_max452_1 = VV(V2_S_C_MAX452_SEQ1), .pt_max452 = VV(V2_PT_MAX452),
    .c_empty5 = VV(V2_S_C_EMPTY_SEQ5), .c_ping3 = VV(V2_S_C_PING_SEQ3),
    .s_pong0 = VV(V2_S_S_PONG_SEQ0), .s_pong4 = VV(V2_S_S_PONG_SEQ4), .c_bye6 = VV(V2_S_C_BYE_SEQ6),
    .pt1000 = VV(V2_PT_1000), .c_frag1000_10 = V2_S_C_FRAG1000_SEQ10,
    .n_bad_crc = VV(V2_N_BAD_CRC), .n_payload_flip = VV(V2_N_PAYLOAD_FLIP),
    .n_bad_magic = VV(V2_N_BAD_MAGIC), .n_bad_magic_order = VV(V2_N_BAD_MAGIC_ORDER),
    .n_wrong_version = VV(V2_N_WRONG_VERSION), .n_trunc11 = VV(V2_N_TRUNC11),
    .n_trunc_payload = VV(V2_N_TRUNC_PAYLOAD), .n_len481 = VV(V2_N_LEN481),
    .n_unknown_type = VV(V2_N_UNKNOWN_TYPE), .n_trailing = VV(V2_N_TRAILING),
    .n_flip_tag = VV(V2_N_FLIP_TAG), .n_flip_ct = VV(V2_N_FLIP_CT), .n_bad_nonce = VV(V2_N_BAD_NONCE),
    .n_seq_gap = VV(V2_N_SEQ_GAP), .n_wrong_key = VV(V2_N_WRONG_KEY), .n_short = VV(V2_N_SHORT),
    .n_bye = VV(V2_N_BYE), .n_replay = VV(V2_N_REPLAY), .pt_hello = VV(V2_PT_HELLO),
    .n_ping_between = V2_N_PING_BETWEEN_FRAGS, .n_ping_between_count = V2_N_PING_BETWEEN_FRAGS_COUNT,
    .n_five_frags = V2_N_FIVE_FRAGS, .n_five_frags_count = V2_N_FIVE_FRAGS_COUNT,
    .n_ping_flood = V2_N_PING_FLOOD, .n_ping_flood_count = V2_N_PING_FLOOD_COUNT,
    .d_s_ping = V2_D_S_PING, .d_s_pong = V2_D_S_PONG, .d_s_msg = V2_D_S_MSG,
    .d_s_frag1000 = V2_D_S_FRAG1000, .d_s_msg1808 = V2_D_S_MSG1808,
    .d_s_five_frags = V2_D_S_FIVE_FRAGS, .d_s_ping_between = V2_D_S_PING_BETWEEN_FRAGS,
    .d_s_bye_between = V2_D_S_BYE_BETWEEN_FRAGS, .d_s_frag_gap = V2_D_S_FRAG_GAP,
    .d_s_frag_then_msg = V2_D_S_FRAG_THEN_MSG, .d_t_pong = V2_D_T_PONG, .d_t_ping = V2_D_T_PING,
    .d_t_bye = V2_D_T_BYE, .d_t_msg1808 = V2_D_T_MSG1808, .d_t_msg = V2_D_T_MSG,
    .d_s_bye0 = VV(V2_D_S_BYE_SEQ0), .d_s_empty0 = VV(V2_D_S_EMPTY_SEQ0),
    .d_s_error0 = VV(V2_D_S_ERROR_SEQ0), .d_s_hello0 = VV(V2_D_S_HELLO_SEQ0),
    .d_s_flip_tag = VV(V2_D_S_FLIP_TAG), .d_s_flip_ct = VV(V2_D_S_FLIP_CT),
    .d_s_bad_nonce = VV(V2_D_S_BAD_NONCE), .d_s_type_swapped = VV(V2_D_S_TYPE_SWAPPED),
    .d_s_short27 = VV(V2_D_S_SHORT27), .d_t_empty0 = VV(V2_D_T_EMPTY_SEQ0), .pt1808 = VV(V2_PT_1808),
};

/* ==================================================================================== */
/* Runner                                                                                */

static const char *current_case = "?";

const char *rc_name(int rc) {
    static char buf[4][32];
    static int slot;
    if (rc > 0) {
        char *b = buf[slot++ & 3];
        snprintf(b, sizeof buf[0], "length %d", rc);
        return b;
    }
    return usmp_err_name(rc);
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    FAIL %s (%s:%d): ", current_case, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

void test_note(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    note %s: ", current_case);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void hexdump(const char *label, const uint8_t *p, size_t n, size_t mark) {
    fprintf(stderr, "      %s (%zu bytes):", label, n);
    for (size_t i = 0; i < n; i++) {
        if (i % 32 == 0) fprintf(stderr, "\n        %04zx:", i);
        fprintf(stderr, i == mark ? "[%02x]" : " %02x", p[i]);
    }
    fputc('\n', stderr);
}

void check_bytes(const char *file, int line, const char *what, const uint8_t *a, size_t an,
                 const uint8_t *e, size_t en) {
    size_t i = 0;
    while (i < an && i < en && a[i] == e[i]) i++;
    if (an == en && i == an) return;
    fprintf(stderr, "    FAIL %s (%s:%d): %s differs from the expected bytes at offset %zu\n",
            current_case, file, line, what, i);
    hexdump("actual", a, an, i);
    hexdump("expected", e, en, i);
    fflush(stderr);
    exit(1);
}

int run_tests(const char *suite, const test_case_t *cases, size_t n, int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    size_t run = 0, failed = 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < n; i++) {
        if (filter && !strstr(cases[i].name, filter)) continue;
        run++;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            current_case = cases[i].name;
            alarm(60);
            port_reset();
            if (cases[i].fn) cases[i].fn();
            else cases[i].fnv(cases[i].v);
            fflush(stderr);
            exit(0); /* normal exit: LeakSanitizer checks this case */
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("PASS  %s.%s\n", suite, cases[i].name);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("FAIL  %s.%s (killed by signal %d%s)\n", suite, cases[i].name,
                       WTERMSIG(status), WTERMSIG(status) == 14 ? ": timeout" : "");
            else
                printf("FAIL  %s.%s (exit %d)\n", suite, cases[i].name, WEXITSTATUS(status));
        }
    }
    printf("%s: %zu cases, %zu passed, %zu failed\n", suite, run, run - failed, failed);
    if (run == 0) return 1;
    return failed ? 1 : 0;
}

/* ==================================================================================== */
/* Frames                                                                                */

uint16_t crc16_modbus(const uint8_t *p, size_t n) {
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

static uint16_t frame_crc(const uint8_t *f, size_t n) {
    /* header bytes 0..9, then the payload */
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        if (i == 10 || i == 11) continue;
        crc ^= f[i];
        for (int b = 0; b < 8; b++) crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

void fix_crc(uint8_t *f, size_t n) {
    uint16_t crc = frame_crc(f, n);
    f[10] = (uint8_t)(crc & 0xFF);
    f[11] = (uint8_t)(crc >> 8);
}

size_t build_frame(uint8_t *out, uint8_t wire, uint8_t type, uint32_t seq, const uint8_t *payload,
                   size_t n) {
    out[0] = 0xCD;
    out[1] = 0xAB;
    out[2] = wire;
    out[3] = type;
    out[4] = (uint8_t)seq;
    out[5] = (uint8_t)(seq >> 8);
    out[6] = (uint8_t)(seq >> 16);
    out[7] = (uint8_t)(seq >> 24);
    out[8] = (uint8_t)n;
    out[9] = (uint8_t)(n >> 8);
    if (n) memcpy(out + 12, payload, n);
    fix_crc(out, 12 + n);
    return 12 + n;
}

uint8_t sent_type(const script_t *s, size_t i) {
    CHECK_MSG(i < s->nsent && s->sent_len[i] >= 12, "no frame %zu sent", i);
    return s->sent[i][3];
}

uint32_t sent_seq(const script_t *s, size_t i) {
    CHECK_MSG(i < s->nsent && s->sent_len[i] >= 12, "no frame %zu sent", i);
    const uint8_t *f = s->sent[i];
    return (uint32_t)f[4] | (uint32_t)f[5] << 8 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 24;
}

uint16_t sent_plen(const script_t *s, size_t i) {
    CHECK_MSG(i < s->nsent && s->sent_len[i] >= 12, "no frame %zu sent", i);
    return (uint16_t)(s->sent[i][8] | s->sent[i][9] << 8);
}

void check_sent_frame(const char *file, int line, const script_t *s, size_t i, uint8_t wire) {
    if (i >= s->nsent) test_fail(file, line, "frame %zu was not sent (%zu sent)", i, s->nsent);
    const uint8_t *f = s->sent[i];
    size_t n = s->sent_len[i];
    if (n < 12 || n > USMP_MAX_FRAME_SIZE) test_fail(file, line, "sent frame %zu has %zu bytes", i, n);
    if (f[0] != 0xCD || f[1] != 0xAB) test_fail(file, line, "sent frame %zu: bad magic", i);
    if (f[2] != wire) test_fail(file, line, "sent frame %zu: version %u, expected %u", i, f[2], wire);
    size_t plen = (size_t)(f[8] | f[9] << 8);
    if (plen + 12 != n) test_fail(file, line, "sent frame %zu: length field %zu, size %zu", i, plen, n);
    uint16_t crc = (uint16_t)(f[10] | f[11] << 8);
    if (crc != frame_crc(f, n)) test_fail(file, line, "sent frame %zu: bad CRC", i);
}

/* ==================================================================================== */
/* Scripted transport                                                                    */

void script_init(script_t *s) {
    memset(s, 0, sizeof *s);
    s->send_fail_rc = -1;
    s->min_recv_max_len = (size_t)-1;
}

static void push(script_t *s, step_t st) {
    CHECK_MSG(s->nsteps < SCRIPT_MAX_STEPS, "script too long");
    s->steps[s->nsteps++] = st;
}

void script_frame(script_t *s, const uint8_t *p, size_t n) {
    step_t st = { STEP_FRAME, p, n, 0 };
    push(s, st);
}

void script_vec(script_t *s, vec_t v) { script_frame(s, v.b, v.n); }

void script_vecs(script_t *s, const vec_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) script_vec(s, v[i]);
}

void script_rc(script_t *s, int rc) {
    step_t st = { STEP_RC, NULL, 0, rc };
    push(s, st);
}

void script_handshake(script_t *s, const vset_t *v) {
    script_vec(s, v->challenge);
    script_vec(s, v->session_ok);
}

void script_on_reconnect_vec(script_t *s, vec_t v) {
    CHECK(s->n_reconnect_steps < SCRIPT_MAX_STEPS);
    step_t st = { STEP_FRAME, v.b, v.n, 0 };
    s->reconnect_steps[s->n_reconnect_steps++] = st;
    s->reconnect_loads = true;
}

size_t script_pending(const script_t *s) { return s->nsteps - s->pos; }

void script_clear_sent(script_t *s) {
    s->nsent = 0;
    s->send_calls = 0;
    s->recv_calls = 0;
    s->available_calls = 0;
}

static script_t *script_of(usmp_transport_t *t) {
    if (!t || !t->ctx) {
        fprintf(stderr, "    FAIL %s: transport callback with a bad transport pointer\n", current_case);
        exit(1);
    }
    return (script_t *)t->ctx;
}

static int tr_send(usmp_transport_t *t, const uint8_t *data, size_t len) {
    script_t *s = script_of(t);
    s->send_calls++;
    if (!data || len < 12 || len > USMP_MAX_FRAME_SIZE) {
        s->protocol_errors++;
        test_fail(__FILE__, __LINE__, "library sent %zu bytes (data %p)", len, (const void *)data);
    }
    if (s->nsent < SCRIPT_MAX_SENT) {
        memcpy(s->sent[s->nsent], data, len);
        s->sent_len[s->nsent] = len;
        s->nsent++;
    }
    if (s->closed) s->protocol_errors++; /* sending on a closed transport */
    if (s->send_fail_at && (s->send_calls == s->send_fail_at ||
                            (s->send_fail_sticky && s->send_calls > s->send_fail_at))) {
        s->nsent--; /* not delivered */
        return s->send_fail_rc;
    }
    return s->send_ok_rc;
}

static int tr_recv(usmp_transport_t *t, uint8_t *buf, size_t max_len) {
    script_t *s = script_of(t);
    s->recv_calls++;
    if (!buf) test_fail(__FILE__, __LINE__, "recv with a NULL buffer");
    if (max_len < s->min_recv_max_len) s->min_recv_max_len = max_len;
    if (s->pos >= s->nsteps) return s->tail_rc;
    step_t st = s->steps[s->pos++];
    if (st.kind == STEP_RC) return st.rc;
    size_t n = st.len < max_len ? st.len : max_len;
    memcpy(buf, st.data, n);
    return (int)n;
}

static void tr_close(usmp_transport_t *t) {
    script_t *s = script_of(t);
    s->close_calls++;
    s->closed = true;
}

static int tr_reconnect(usmp_transport_t *t) {
    script_t *s = script_of(t);
    s->reconnect_calls++;
    if (s->reconnect_rc < 0) return s->reconnect_rc;
    s->closed = false;
    if (s->reconnect_loads) {
        memcpy(s->steps, s->reconnect_steps, sizeof s->steps);
        s->nsteps = s->n_reconnect_steps;
        s->pos = 0;
    }
    return 0;
}

static int tr_available(usmp_transport_t *t) {
    script_t *s = script_of(t);
    s->available_calls++;
    if (s->pos >= s->nsteps) return s->tail_rc != 0;
    const step_t *st = &s->steps[s->pos];
    return !(st->kind == STEP_RC && st->rc == 0);
}

static void tr_destroy(usmp_transport_t *t) {
    (void)t;
    fprintf(stderr, "    FAIL %s: the library called destroy\n", current_case);
    exit(1);
}

void transport_init(usmp_transport_t *t, script_t *s, int omit) {
    memset(t, 0, sizeof *t);
    t->send = (omit & TR_NO_SEND) ? NULL : tr_send;
    t->recv = (omit & TR_NO_RECV) ? NULL : tr_recv;
    t->close = (omit & TR_NO_CLOSE) ? NULL : tr_close;
    t->reconnect = (omit & TR_NO_RECONNECT) ? NULL : tr_reconnect;
    t->available = (omit & TR_NO_AVAILABLE) ? NULL : tr_available;
    t->destroy = tr_destroy;
    t->ctx = s;
}

/* ==================================================================================== */
/* Port hooks: strong definitions, replacing the library's weak POSIX defaults.           */

port_state_t port;

void port_reset(void) {
    memset(&port, 0, sizeof port);
    port.now = 1000;
    port.step = 1;
    port.log_to_stderr = getenv("USMP_TEST_LOG") != NULL;
}

void port_queue_random(const uint8_t *p, size_t n) {
    if (port.qpos == port.nqueue) port.qpos = port.nqueue = 0; /* all served: start over */
    CHECK(port.nqueue < 8);
    port.queue[port.nqueue] = p;
    port.queue_len[port.nqueue] = n;
    port.nqueue++;
}

int usmp_port_get_device_id(uint8_t *out, size_t len) {
    port.devid_calls++;
    if (port.devid_fail) return -1;
    if (!out || len < 6) test_fail(__FILE__, __LINE__, "get_device_id(out=%p, len=%zu)", (void *)out, len);
    memcpy(out, V1_DEVICE_ID, 6);
    return 0;
}

int usmp_port_random(uint8_t *out, size_t len) {
    port.random_calls++;
    port.random_last_len = len;
    if (port.random_fail_at && port.random_calls == port.random_fail_at) return -1;
    if (!out && len) test_fail(__FILE__, __LINE__, "random(NULL, %zu)", len);
    if (port.qpos < port.nqueue) {
        size_t i = port.qpos++;
        if (port.queue_len[i] != len)
            test_fail(__FILE__, __LINE__, "usmp_port_random asked for %zu bytes, the test queued %zu",
                      len, port.queue_len[i]);
        memcpy(out, port.queue[i], len);
        return 0;
    }
    for (size_t i = 0; i < len; i++) out[i] = (uint8_t)(0x5A ^ (port.counter++ * 13u));
    return 0;
}

void usmp_port_delay_ms(uint32_t ms) {
    port.delay_calls++;
    port.now += ms;
}

uint32_t usmp_port_millis(void) {
    port.millis_calls++;
    port.now += port.step;
    return port.now;
}

void usmp_port_log(char level, const char *tag, const char *msg) {
    port.log_calls++;
    port.last_log_level = level;
    if (!tag || !msg || !strchr("EWID", level) || level == 0) port.log_bad++;
    if (port.log_to_stderr)
        fprintf(stderr, "      [log %c %s] %s\n", level ? level : '?', tag ? tag : "(null)",
                msg ? msg : "(null)");
}

/* ==================================================================================== */
/* Session helpers                                                                       */

void ctx_init(usmp_t *ctx, const vset_t *v) {
    memset(ctx, 0, sizeof *ctx);
    ctx->psk = v->psk.b;
    ctx->psk_len = v->psk.n;
    ctx->protocol_version = v->protocol_version;
}

void connect_ok(usmp_t *ctx, usmp_transport_t *t, script_t *s, const vset_t *v) {
    connect_ok_omit(ctx, t, s, v, 0);
}

void connect_ok_omit(usmp_t *ctx, usmp_transport_t *t, script_t *s, const vset_t *v, int omit) {
    script_init(s);
    script_handshake(s, v);
    transport_init(t, s, omit);
    port_queue_random(v->client_priv.b, v->client_priv.n);
    CHECK_RC(usmp_connect(ctx, t), USMP_OK);
    CHECK(usmp_is_connected(ctx));
    CHECK_INT(s->nsent, 2);
    CHECK_SENT_VEC(s, 0, v->hello);
    CHECK_SENT_VEC(s, 1, v->hello_ack0);
    CHECK_INT(s->close_calls, 0);
    CHECK_INT(script_pending(s), 0);
    script_clear_sent(s);
}

sess_t *open_session_opts(const vset_t *v, int omit, uint32_t keepalive_ms) {
    sess_t *x = calloc(1, sizeof *x);
    CHECK(x != NULL);
    ctx_init(&x->ctx, v);
    x->ctx.keepalive_ms = keepalive_ms;
    connect_ok_omit(&x->ctx, &x->t, &x->s, v, omit);
    return x;
}

sess_t *open_session(const vset_t *v) { return open_session_opts(v, 0, 0); }

void close_session(sess_t *x) {
    usmp_close(&x->ctx);
    CHECK_INT(x->s.protocol_errors, 0);
    free(x);
}

void check_reusable(usmp_t *ctx, const vset_t *v) {
    script_t *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    usmp_transport_t t;
    connect_ok(ctx, &t, s, v);
    CHECK_RC(usmp_send(ctx, v->pt_hello_world.b, (uint16_t)v->pt_hello_world.n), USMP_OK);
    CHECK_INT(s->nsent, 1);
    CHECK_SENT_VEC(s, 0, v->c_hello_world0);
    script_vec(s, v->s_from_gateway0);
    uint8_t out[64];
    int n = recv_into(ctx, out, sizeof out, 64);
    CHECK_RC(n, (int)v->pt_from_gateway.n);
    CHECK_BYTES(out, (size_t)n, v->pt_from_gateway.b, v->pt_from_gateway.n);
    usmp_close(ctx);
    CHECK(!usmp_is_connected(ctx));
    CHECK_INT(s->close_calls, 1);
    CHECK_INT(s->nsent, 2);
    CHECK_SENT_VEC(s, 1, v->d_t_bye[1]);
    CHECK_INT(s->protocol_errors, 0);
    free(s);
}

int recv_into(usmp_t *ctx, uint8_t *copy_out, size_t copy_cap, uint16_t max_len) {
    uint8_t *buf = malloc(max_len ? max_len : 1);
    CHECK(buf != NULL);
    int n = usmp_recv(ctx, buf, max_len);
    if (n > 0) {
        CHECK_MSG(n <= max_len, "usmp_recv returned %d > max_len %u", n, max_len);
        if (copy_out) {
            CHECK_MSG((size_t)n <= copy_cap, "message of %d bytes, test buffer %zu", n, copy_cap);
            memcpy(copy_out, buf, (size_t)n);
        }
    }
    free(buf);
    return n;
}
