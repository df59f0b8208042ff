/*
 * Superloop interop client: the non-blocking C API (usmp_nb_*) against a real gateway
 * (tests/interop/gateway.py), as a bare-metal main loop uses it: one thread, one loop, one
 * usmp_nb_poll per turn, never a blocking call after the dial. The next message goes out
 * as soon as the last one is SENT, while echoes come back in between; every echo must
 * arrive intact, in order, exactly once.
 *
 *   nb_client --port N --psk TEXT [--host H] [--proto tcp|udp] [--proto-version 1|2]
 *             [--count N] [--rekey-every K] [--ping-every K] [--keepalive-ms MS]
 *             [--timeout-s S]
 *
 * --rekey-every K: usmp_nb_rekey after every K-th message (wire v2), once every echo so far
 * has come back (on a byte stream a gateway message that crosses the key switch ends the
 * session: usmp.h, usmp_rekey); --ping-every K: usmp_nb_ping after every K-th message. Prints "NB sent=S echoed=E intact=I polls=P max_poll_us=U
 * seconds=T retransmits=R duplicates=D rejected=X bad_acks=B" and exits 0 when every echo
 * was intact, 1 when not (naming the first difference or the unexpected event), 2 on bad
 * usage.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

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
static int g_version = 2;
static int g_count = 50;
static int g_rekey_every = 0;
static int g_ping_every = 0;
static uint32_t g_keepalive_ms = 0;
static int g_timeout_s = 120;

static usmp_t g_ctx;
static usmp_nb_t g_nb; /* the session's state between polls: static, as on a device */
static uint8_t g_rx[USMP_MAX_MESSAGE_LEN];
static uint8_t g_tx[USMP_MAX_MESSAGE_LEN];

static size_t msg_len(int k)
{
    static const size_t sizes[] = { 0, 1, 100, 452, 453, 904, 1000, 1356, 1807, 1808, 5 };
    return sizes[k % (int)(sizeof sizes / sizeof sizes[0])];
}

static bool echo_ok(int k, const uint8_t *got, size_t n)
{
    uint8_t want[USMP_MAX_MESSAGE_LEN];
    size_t len = msg_len(k);
    cu_msg_fill(k, want, len);
    if (n != len || memcmp(got, want, len) != 0) {
        printf("FAIL: echo %d: got %zu bytes (index %d), expected %zu\n", k, n, cu_msg_index(got, n),
               len);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) g_host = v;
        else if (!strcmp(k, "--port")) g_port = atoi(v);
        else if (!strcmp(k, "--psk")) g_psk = v;
        else if (!strcmp(k, "--proto")) g_udp = !strcmp(v, "udp");
        else if (!strcmp(k, "--proto-version")) g_version = atoi(v);
        else if (!strcmp(k, "--count")) g_count = atoi(v);
        else if (!strcmp(k, "--rekey-every")) g_rekey_every = atoi(v);
        else if (!strcmp(k, "--ping-every")) g_ping_every = atoi(v);
        else if (!strcmp(k, "--keepalive-ms")) g_keepalive_ms = (uint32_t)atoi(v);
        else if (!strcmp(k, "--timeout-s")) g_timeout_s = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (g_port <= 0 || g_psk == NULL || g_count <= 0) {
        fprintf(stderr, "usage: nb_client --port N --psk TEXT [--proto tcp|udp] ...\n");
        return 2;
    }
    usmp_transport_t tr;
    if (cu_dial(&tr, &g_ctx, g_host, g_port, g_udp, g_psk) != 0) {
        return 1;
    }
    g_ctx.protocol_version = (uint8_t)g_version;
    g_ctx.keepalive_ms = g_keepalive_ms;
    int rc = usmp_nb_connect(&g_ctx, &g_nb, &tr, g_rx, sizeof g_rx);
    if (rc != USMP_OK) {
        printf("FAIL: usmp_nb_connect: %s\n", usmp_err_name(rc));
        return 1;
    }

    /* The superloop. */
    uint64_t t0 = cu_now_us(), deadline = t0 + (uint64_t)g_timeout_s * 1000000u;
    uint64_t polls = 0, max_poll_us = 0;
    bool connected = false, sending = false, failed = false, rekey_due = false;
    int sent = 0, echoed = 0;
    while (!failed && echoed < g_count) {
        if (cu_now_us() > deadline) {
            printf("FAIL: timeout after %d s: sent=%d echoed=%d connected=%d\n", g_timeout_s,
                   sent, echoed, connected);
            failed = true;
            break;
        }
        if (rekey_due && echoed == sent) {
            rekey_due = false;
            rc = usmp_nb_rekey(&g_ctx, &g_nb);
            if (rc != USMP_OK && rc != USMP_ERR_BUSY) {
                printf("FAIL: usmp_nb_rekey: %s\n", usmp_err_name(rc));
                failed = true;
                break;
            }
        }
        if (connected && !sending && !rekey_due && sent < g_count) {
            size_t n = msg_len(sent);
            cu_msg_fill(sent, g_tx, n);
            rc = usmp_nb_send(&g_ctx, &g_nb, g_tx, (uint16_t)n);
            if (rc != USMP_OK) {
                printf("FAIL: usmp_nb_send %d: %s\n", sent, usmp_err_name(rc));
                failed = true;
                break;
            }
            sending = true;
        }
        usmp_event_t ev;
        uint64_t p0 = cu_now_us();
        int kind = usmp_nb_poll(&g_ctx, &g_nb, &ev);
        uint64_t dt = cu_now_us() - p0;
        polls++;
        if (dt > max_poll_us) max_poll_us = dt;
        if (kind < 0) {
            printf("FAIL: usmp_nb_poll: %s\n", usmp_err_name(kind));
            failed = true;
            break;
        }
        switch (ev.kind) {
        case USMP_EVENT_NONE:
            break;
        case USMP_EVENT_CONNECTED:
            printf("connected (wire v%d over %s, %.0f ms)\n", g_version, g_udp ? "UDP" : "TCP",
                   (double)(cu_now_us() - t0) / 1000.0);
            connected = true;
            break;
        case USMP_EVENT_SENT:
            if (ev.error != USMP_OK) {
                printf("FAIL: message %d not sent: %s\n", sent, usmp_err_name(ev.error));
                failed = true;
                break;
            }
            sending = false;
            sent++;
            if (g_rekey_every > 0 && sent % g_rekey_every == 0) {
                rekey_due = true;
            } else if (g_ping_every > 0 && sent % g_ping_every == 0) {
                rc = usmp_nb_ping(&g_ctx, &g_nb);
                if (rc != USMP_OK && rc != USMP_ERR_BUSY) {
                    printf("FAIL: usmp_nb_ping: %s\n", usmp_err_name(rc));
                    failed = true;
                }
            }
            break;
        case USMP_EVENT_MESSAGE:
            if (echoed >= sent + (sending ? 1 : 0)) {
                printf("FAIL: a message nobody asked for (%u bytes)\n", (unsigned)ev.len);
                failed = true;
            } else if (!echo_ok(echoed, g_rx, ev.len)) {
                failed = true;
            } else {
                echoed++;
            }
            break;
        case USMP_EVENT_ERROR:
            printf("FAIL: error event: %s\n", usmp_err_name(ev.error));
            failed = true;
            break;
        case USMP_EVENT_CLOSED:
            printf("FAIL: session closed: %s\n", usmp_err_name(ev.error));
            failed = true;
            break;
        }
    }
    usmp_stats_t st;
    usmp_get_stats(&g_ctx, &st);
    printf("NB sent=%d echoed=%d intact=%d polls=%llu max_poll_us=%llu seconds=%.1f "
           "retransmits=%u duplicates=%u rejected=%u bad_acks=%u\n",
           sent, echoed, echoed, (unsigned long long)polls, (unsigned long long)max_poll_us,
           (double)(cu_now_us() - t0) / 1e6, st.retransmits, st.duplicates, st.rejected,
           st.bad_acks);
    fflush(stdout);
    usmp_nb_close(&g_ctx, &g_nb);
    tr.destroy(&tr);
    return !failed && echoed == g_count ? 0 : 1;
}
