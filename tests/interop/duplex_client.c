/*
 * Full-duplex interop client: the usmp C API against a real gateway (tests/interop/gateway.py)
 * that PINGs the device every few milliseconds (--ping-every-ms), as an application with two
 * tasks uses it: one thread sends --count messages with usmp_send, another sits in usmp_recv
 * and checks that every echo comes back intact, in order, exactly once (the PINGs are
 * answered with PONGs inside usmp_recv, on the same context, while the sender seals DATA).
 * With --threads 0 one thread does both in turn: send, then receive the echo (the sender's
 * wait for each fragment's acknowledgement then meets the gateway's PINGs).
 *
 *   duplex_client --port N --psk TEXT [--host H] [--proto tcp|udp] [--count N]
 *                 [--sizes mixed|large] [--threads 0|1] [--pace-ms MS]
 *
 * --pace-ms: the sender waits this long between messages (so that a gateway busy echoing
 * a flood of messages still finds time to PING).
 *
 * Prints "DUPLEX sent=S echoed=E intact=I" and exits 0 when every echo was intact, 1 when
 * not (with the first difference), 2 on bad usage.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_util.h"

static const char *g_host = "127.0.0.1";
static int g_port = 0;
static const char *g_psk = NULL;
static bool g_udp = false;
static int g_count = 200;
static bool g_large = false;
static bool g_threads = true;
static int g_pace_ms = 0;

static usmp_t g_ctx;
static atomic_int g_sent;
static atomic_int g_failed;

static uint64_t now_ms(void)
{
    return cu_now_us() / 1000u;
}

/* Message k: its length, and its bytes (the index, then a pattern of it). */
static size_t msg_len(int k)
{
    static const size_t mixed[] = { 1, 100, 452, 453, 904, 1000, 1356, 1807, 1808, 5 };
    if (g_large) return k % 2 ? 1807 : 1808;
    return mixed[k % (int)(sizeof mixed / sizeof mixed[0])];
}

static int send_one(int k)
{
    uint8_t m[USMP_MAX_MESSAGE_LEN];
    size_t n = msg_len(k);
    cu_msg_fill(k, m, n);
    return usmp_send(&g_ctx, m, (uint16_t)n);
}

/* Receives the echo of message k: 0 = intact, -1 = wrong or none within 30 s. */
static int recv_one(int k)
{
    uint8_t got[USMP_MAX_MESSAGE_LEN], want[USMP_MAX_MESSAGE_LEN];
    size_t n = msg_len(k);
    cu_msg_fill(k, want, n);
    uint64_t deadline = now_ms() + 30000u;
    while (now_ms() < deadline) {
        int r = usmp_recv(&g_ctx, got, sizeof got);
        if (r == 0) continue;
        if (r < 0) {
            printf("FAIL: usmp_recv for echo %d: %s\n", k, usmp_err_name(r));
            return -1;
        }
        if ((size_t)r != n || memcmp(got, want, n) != 0) {
            printf("FAIL: echo %d: got %d bytes (index %d), expected %zu\n", k, r,
                   cu_msg_index(got, (size_t)r), n);
            return -1;
        }
        return 0;
    }
    printf("FAIL: no echo for message %d within 30 s\n", k);
    return -1;
}

static void *tx_thread(void *arg)
{
    (void)arg;
    for (int k = 0; k < g_count && !atomic_load(&g_failed); k++) {
        int rc = send_one(k);
        if (rc != USMP_OK) {
            printf("FAIL: usmp_send %d: %s\n", k, usmp_err_name(rc));
            atomic_store(&g_failed, 1);
            break;
        }
        atomic_fetch_add(&g_sent, 1);
        if (g_pace_ms > 0) usmp_port_delay_ms((uint32_t)g_pace_ms);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) g_host = v;
        else if (!strcmp(k, "--port")) g_port = atoi(v);
        else if (!strcmp(k, "--psk")) g_psk = v;
        else if (!strcmp(k, "--proto")) g_udp = !strcmp(v, "udp");
        else if (!strcmp(k, "--count")) g_count = atoi(v);
        else if (!strcmp(k, "--sizes")) g_large = !strcmp(v, "large");
        else if (!strcmp(k, "--threads")) g_threads = atoi(v) != 0;
        else if (!strcmp(k, "--pace-ms")) g_pace_ms = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (g_port <= 0 || g_psk == NULL || g_count <= 0) {
        fprintf(stderr, "usage: duplex_client --port N --psk TEXT [--proto tcp|udp] ...\n");
        return 2;
    }
    usmp_transport_t tr;
    if (cu_dial(&tr, &g_ctx, g_host, g_port, g_udp, g_psk) != 0) {
        return 1;
    }
    int rc = usmp_connect(&g_ctx, &tr);
    if (rc != USMP_OK) {
        printf("FAIL: usmp_connect: %s\n", usmp_err_name(rc));
        return 1;
    }
    uint64_t t0 = now_ms();
    int intact = 0;
    if (g_threads) {
        pthread_t tx;
        if (pthread_create(&tx, NULL, tx_thread, NULL) != 0) return 1;
        for (int k = 0; k < g_count && !atomic_load(&g_failed); k++) {
            if (recv_one(k) != 0) {
                atomic_store(&g_failed, 1);
                break;
            }
            intact++;
        }
        pthread_join(tx, NULL);
    } else {
        for (int k = 0; k < g_count; k++) {
            rc = send_one(k);
            if (rc != USMP_OK) {
                printf("FAIL: usmp_send %d: %s\n", k, usmp_err_name(rc));
                break;
            }
            atomic_fetch_add(&g_sent, 1);
            if (recv_one(k) != 0) break;
            intact++;
        }
    }
    usmp_stats_t st;
    usmp_get_stats(&g_ctx, &st);
    printf("DUPLEX sent=%d echoed=%d intact=%d seconds=%.1f retransmits=%u duplicates=%u "
           "rejected=%u\n",
           atomic_load(&g_sent), intact, intact, (double)(now_ms() - t0) / 1000.0,
           st.retransmits, st.duplicates, st.rejected);
    fflush(stdout);
    usmp_close(&g_ctx);
    tr.destroy(&tr);
    return intact == g_count ? 0 : 1;
}
