/*
 * Two tasks on one usmp_t, as an ESP-IDF application has them: one thread sits in usmp_recv
 * (and answers the gateway's PINGs with PONGs), another calls usmp_send, for a fixed time
 * (USMP_RACE_SECONDS, default 10). An in-memory gateway feeds an endless stream of PING and
 * DATA frames, sealed with the session's real keys (OpenSSL's AES-256-GCM, an independent
 * implementation), and logs every frame the device writes with its type and sequence number.
 * Passing means: no sequence number (the AES-GCM nonce) was ever used twice, and both
 * threads ran all the time without an error.
 *
 * Also: usmp_close from another thread while usmp_recv waits, a second receiver at once
 * (USMP_ERR_BUSY), and usmp_reconnect while another thread sends.
 *
 * Real port hooks (clock, sleep) and the library's default locks (pthread); built under
 * AddressSanitizer and under ThreadSanitizer (tests/c/CMakeLists.txt).
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "usmp.h"
#include "secrets_vectors.h"
#include "vectors.h"

#define FAIL(...)                                                                            \
    do {                                                                                     \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                 \
        fprintf(stderr, __VA_ARGS__);                                                        \
        fprintf(stderr, "\n");                                                               \
        exit(1);                                                                             \
    } while (0)
#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) FAIL("CHECK(%s)", #c);                                                     \
    } while (0)

/* ---- port hooks: the vector key for the handshake, the real clock -------------------- */

static atomic_int random_calls;
static const uint8_t *client_priv;

int usmp_port_random(uint8_t *out, size_t len)
{
    /* The first draw is the X25519 secret of the vector handshake; later ones (salts) are
     * not secret here. */
    if (atomic_fetch_add(&random_calls, 1) == 0 && len == 32) {
        memcpy(out, client_priv, 32);
    } else {
        for (size_t i = 0; i < len; i++) out[i] = (uint8_t)(i * 7 + 3);
    }
    return 0;
}

static const uint8_t *device_id;

int usmp_port_get_device_id(uint8_t *out, size_t len)
{
    if (len < 6) return -1;
    memcpy(out, device_id, 6);
    return 0;
}

uint32_t usmp_port_millis(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void usmp_port_delay_ms(uint32_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void usmp_port_log(char level, const char *tag, const char *msg)
{
    (void)level;
    (void)tag;
    (void)msg;
}

/* ---- the in-memory gateway ------------------------------------------------------------ */

static uint16_t crc16(const uint8_t *p, size_t n, uint16_t crc)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

/* Seals one session frame the way the gateway does (PROTOCOL.md §5). */
static size_t seal(uint8_t *out, uint8_t wire, uint8_t type, uint32_t seq, const uint8_t *key,
                   const uint8_t *sid, const uint8_t *pt, size_t n)
{
    size_t len = 12 + n + 16;
    uint8_t *h = out;
    h[0] = 0xCD, h[1] = 0xAB, h[2] = wire, h[3] = type;
    for (int i = 0; i < 4; i++) h[4 + i] = (uint8_t)(seq >> (8 * i));
    h[8] = (uint8_t)len, h[9] = (uint8_t)(len >> 8);
    uint8_t *nonce = out + 12;
    memcpy(nonce, h + 4, 4);
    memcpy(nonce + 4, sid, 8);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;
    CHECK(c != NULL);
    CHECK(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1);
    CHECK(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1);
    CHECK(EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1);
    CHECK(EVP_EncryptUpdate(c, NULL, &outl, h, 10) == 1);
    if (n > 0) CHECK(EVP_EncryptUpdate(c, out + 24, &outl, pt, (int)n) == 1);
    CHECK(EVP_EncryptFinal_ex(c, out + 24 + n, &outl) == 1);
    CHECK(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 24 + n) == 1);
    EVP_CIPHER_CTX_free(c);
    uint16_t crc = crc16(out + 12, len, crc16(h, 10, 0xFFFF));
    h[10] = (uint8_t)crc, h[11] = (uint8_t)(crc >> 8);
    return 12 + len;
}

#define SEEN_BITS (1u << 24)

typedef struct peer_t {
    pthread_mutex_t mu;
    uint8_t wire;
    const uint8_t *rx_key, *sid; /* what the gateway seals with */
    const uint8_t *challenge, *session_ok;
    size_t challenge_n, session_ok_n;
    int hs_step;
    uint32_t gw_seq;       /* the gateway's next seq (RX thread only) */
    atomic_int recv_sleep_ms; /* each recv waits this long first (close-under-recv test) */
    atomic_int recv_idle;     /* recv returns 0 (nothing) instead of a frame */
    /* what the device wrote */
    uint8_t *seen;
    uint64_t frames, reused, pongs, datas, pings;
    uint32_t first_reuse_seq;
    uint8_t first_reuse_type;
    uint8_t last_type[1u << 16]; /* type of the frame with seq & 0xFFFF (for the report) */
} peer_t;

static peer_t *peer_of(usmp_transport_t *t) { return (peer_t *)t->ctx; }

static int t_send(usmp_transport_t *t, const uint8_t *d, size_t n)
{
    peer_t *p = peer_of(t);
    if (n < 12) return -1;
    uint8_t type = d[3];
    uint32_t seq = (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24;
    pthread_mutex_lock(&p->mu);
    if (type >= 5) { /* a session frame: its seq is an AES-GCM nonce */
        if (seq >= SEEN_BITS) FAIL("seq %u beyond the test's log", seq);
        if (p->seen[seq / 8] & (1u << (seq % 8))) {
            if (p->reused == 0) {
                p->first_reuse_seq = seq;
                p->first_reuse_type = type;
            }
            p->reused++;
        }
        p->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
        p->frames++;
        if (type == 7) p->pongs++;
        if (type == 5) p->datas++;
        if (type == 6) p->pings++;
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int next_frame(peer_t *p, uint8_t *buf, size_t max)
{
    const uint8_t *f = NULL;
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    int step = p->hs_step++;
    pthread_mutex_unlock(&p->mu);
    if (step == 0) f = p->challenge, n = p->challenge_n;
    if (step == 1) f = p->session_ok, n = p->session_ok_n;
    if (f != NULL) {
        if (n > max) return -1;
        memcpy(buf, f, n);
        return (int)n;
    }
    int ms = atomic_load(&p->recv_sleep_ms);
    if (ms > 0) usmp_port_delay_ms((uint32_t)ms);
    if (atomic_load(&p->recv_idle)) return 0;
    if (max < 12 + 28 + 2) return -1;
    /* PING, DATA("hi"), PING, DATA, ...: the DATA restarts the flood guard's count */
    uint32_t seq = p->gw_seq++;
    if (seq % 2 == 0) return (int)seal(buf, p->wire, 6, seq, p->rx_key, p->sid, NULL, 0);
    return (int)seal(buf, p->wire, 5, seq, p->rx_key, p->sid, (const uint8_t *)"hi", 2);
}

static int t_recv(usmp_transport_t *t, uint8_t *buf, size_t max)
{
    return next_frame(peer_of(t), buf, max);
}

static int t_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max, uint32_t ms)
{
    (void)ms;
    return next_frame(peer_of(t), buf, max);
}

static int t_available(usmp_transport_t *t)
{
    return atomic_load(&peer_of(t)->recv_idle) ? 0 : 1;
}

static void t_close(usmp_transport_t *t) { (void)t; }

static int t_reconnect(usmp_transport_t *t)
{
    peer_t *p = peer_of(t);
    pthread_mutex_lock(&p->mu);
    p->hs_step = 0;
    p->gw_seq = 0;
    memset(p->seen, 0, SEEN_BITS / 8);
    pthread_mutex_unlock(&p->mu);
    atomic_store(&random_calls, 0);
    return 0;
}

static peer_t *peer_new(int wire)
{
    peer_t *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    p->seen = calloc(1, SEEN_BITS / 8);
    CHECK(p->seen != NULL);
    pthread_mutex_init(&p->mu, NULL);
    p->wire = (uint8_t)wire;
    if (wire == 1) {
        p->rx_key = S_V1_SESSION_KEY, p->sid = V1_SESSION_ID;
        p->challenge = V1_HS_CHALLENGE, p->challenge_n = sizeof V1_HS_CHALLENGE;
        p->session_ok = V1_HS_SESSION_OK, p->session_ok_n = sizeof V1_HS_SESSION_OK;
        client_priv = V1_CLIENT_PRIV, device_id = V1_DEVICE_ID;
    } else {
        p->rx_key = S_V2_K_S2C, p->sid = V2_SESSION_ID;
        p->challenge = V2_HS_CHALLENGE, p->challenge_n = sizeof V2_HS_CHALLENGE;
        p->session_ok = V2_HS_SESSION_OK, p->session_ok_n = sizeof V2_HS_SESSION_OK;
        client_priv = V2_CLIENT_PRIV, device_id = V2_DEVICE_ID;
    }
    return p;
}

static void peer_free(peer_t *p)
{
    pthread_mutex_destroy(&p->mu);
    free(p->seen);
    free(p);
}

static usmp_t *connect_to(peer_t *p, usmp_transport_t *t)
{
    memset(t, 0, sizeof *t);
    t->send = t_send, t->recv = t_recv, t->recv_timeout = t_recv_timeout;
    t->available = t_available, t->close = t_close, t->reconnect = t_reconnect;
    t->ctx = p;
    usmp_t *ctx = calloc(1, sizeof *ctx);
    CHECK(ctx != NULL);
    if (p->wire == 1) {
        ctx->psk = V1_PSK, ctx->psk_len = sizeof V1_PSK, ctx->protocol_version = USMP_PROTOCOL_V1;
    } else {
        ctx->psk = V2_PSK, ctx->psk_len = sizeof V2_PSK;
    }
    atomic_store(&random_calls, 0);
    int rc = usmp_connect(ctx, t);
    if (rc != USMP_OK) FAIL("usmp_connect: %s", usmp_err_name(rc));
    return ctx;
}

/* ---- the race -------------------------------------------------------------------------- */

typedef struct job_t {
    usmp_t *ctx;
    atomic_bool *stop;
    uint64_t calls, messages;
    int error;
} job_t;

static void *rx_thread(void *arg)
{
    job_t *j = arg;
    uint8_t buf[64];
    while (!atomic_load(j->stop)) {
        int n = usmp_recv(j->ctx, buf, sizeof buf);
        j->calls++;
        if (n < 0) {
            j->error = n;
            break;
        }
        if (n > 0) {
            if (n != 2 || memcmp(buf, "hi", 2) != 0) FAIL("received %d wrong bytes", n);
            j->messages++;
        }
    }
    return NULL;
}

static void *tx_thread(void *arg)
{
    job_t *j = arg;
    while (!atomic_load(j->stop)) {
        int rc = usmp_send(j->ctx, (const uint8_t *)"hello", 5);
        j->calls++;
        if (rc != USMP_OK) {
            j->error = rc;
            break;
        }
    }
    return NULL;
}

static void race(int wire, int seconds)
{
    peer_t *p = peer_new(wire);
    usmp_transport_t t;
    usmp_t *ctx = connect_to(p, &t);
    atomic_bool stop = false;
    job_t rx = { ctx, &stop, 0, 0, 0 }, tx = { ctx, &stop, 0, 0, 0 };
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, rx_thread, &rx) == 0);
    CHECK(pthread_create(&b, NULL, tx_thread, &tx) == 0);
    usmp_port_delay_ms((uint32_t)seconds * 1000u);
    atomic_store(&stop, true);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("v%d: %d s, device frames %llu (PONG %llu, DATA %llu), messages received %llu, "
           "sequence numbers used twice: %llu\n",
           wire, seconds, (unsigned long long)p->frames, (unsigned long long)p->pongs,
           (unsigned long long)p->datas, (unsigned long long)rx.messages,
           (unsigned long long)p->reused);
    if (p->reused != 0)
        FAIL("v%d: %llu sequence numbers used twice (first: seq %u, type %u)", wire,
             (unsigned long long)p->reused, p->first_reuse_seq, p->first_reuse_type);
    if (rx.error != 0) FAIL("v%d: usmp_recv failed: %s", wire, usmp_err_name(rx.error));
    if (tx.error != 0) FAIL("v%d: usmp_send failed: %s", wire, usmp_err_name(tx.error));
    /* both threads really ran, interleaved: PONGs and DATA from both, in numbers */
    CHECK(p->pongs > 100 && p->datas > 100);
    CHECK(rx.messages > 100);
    CHECK(usmp_is_connected(ctx));
    usmp_close(ctx);
    free(ctx);
    peer_free(p);
}

/* usmp_close from another thread while usmp_recv waits in the transport: close waits for
 * the receive to return, the receive ends without touching the wiped state. */
static void close_under_recv(int wire)
{
    peer_t *p = peer_new(wire);
    usmp_transport_t t;
    usmp_t *ctx = connect_to(p, &t);
    atomic_store(&p->recv_idle, 1);
    atomic_store(&p->recv_sleep_ms, 50);
    atomic_bool stop = false;
    job_t rx = { ctx, &stop, 0, 0, 0 };
    pthread_t a;
    CHECK(pthread_create(&a, NULL, rx_thread, &rx) == 0);
    usmp_port_delay_ms(120);
    usmp_close(ctx);
    CHECK(!usmp_is_connected(ctx));
    atomic_store(&stop, true);
    pthread_join(a, NULL);
    /* the receive loop saw the session end (or was refused while closing) */
    CHECK(rx.error == USMP_ERR_NOT_CONNECTED || rx.error == USMP_ERR_BUSY);
    free(ctx);
    peer_free(p);
}

/* One receiver at a time: a second concurrent usmp_recv is refused with USMP_ERR_BUSY. */
static void second_receiver_is_busy(int wire)
{
    peer_t *p = peer_new(wire);
    usmp_transport_t t;
    usmp_t *ctx = connect_to(p, &t);
    atomic_store(&p->recv_idle, 1);
    atomic_store(&p->recv_sleep_ms, 300);
    atomic_bool stop = false;
    job_t rx = { ctx, &stop, 0, 0, 0 };
    pthread_t a;
    CHECK(pthread_create(&a, NULL, rx_thread, &rx) == 0);
    usmp_port_delay_ms(100);
    uint8_t buf[8];
    int rc = usmp_recv(ctx, buf, sizeof buf);
    if (rc != USMP_ERR_BUSY) FAIL("second receiver: %s", usmp_err_name(rc));
    atomic_store(&stop, true);
    pthread_join(a, NULL);
    CHECK(rx.error == 0);
    CHECK(usmp_is_connected(ctx));
    usmp_close(ctx);
    free(ctx);
    peer_free(p);
}

/* usmp_reconnect while another thread sends: the sender's calls end or are refused, the
 * reconnect completes, and sending works again. */
static void reconnect_under_send(int wire)
{
    peer_t *p = peer_new(wire);
    usmp_transport_t t;
    usmp_t *ctx = connect_to(p, &t);
    atomic_store(&p->recv_idle, 1);
    atomic_bool stop = false;
    job_t tx = { ctx, &stop, 0, 0, 0 };
    pthread_t b;
    CHECK(pthread_create(&b, NULL, tx_thread, &tx) == 0);
    usmp_port_delay_ms(50);
    int rc = usmp_reconnect(ctx);
    if (rc != USMP_OK) FAIL("usmp_reconnect: %s", usmp_err_name(rc));
    atomic_store(&stop, true);
    pthread_join(b, NULL);
    CHECK(tx.error == 0 || tx.error == USMP_ERR_BUSY || tx.error == USMP_ERR_NOT_CONNECTED);
    CHECK(usmp_is_connected(ctx));
    CHECK(usmp_send(ctx, (const uint8_t *)"x", 1) == USMP_OK);
    usmp_close(ctx);
    free(ctx);
    peer_free(p);
}

int main(int argc, char **argv)
{
    const char *env = getenv("USMP_RACE_SECONDS");
    int seconds = env != NULL ? atoi(env) : 10;
    const char *only = argc > 1 ? argv[1] : "";
    if (seconds < 1) seconds = 1;
    if (strstr("race", only) != NULL || only[0] == 0) {
        race(2, seconds);
        race(1, seconds);
    }
    for (int wire = 1; wire <= 2; wire++) {
        close_under_recv(wire);
        second_receiver_is_busy(wire);
        reconnect_under_send(wire);
    }
    printf("threads: 4 checks per wire version passed\n");
    return 0;
}
