/*
 * What the interop clients written for one purpose each (duplex_client.c, nb_client.c)
 * share: the clock, the content of test message k, and the dial. Header-only.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_INTEROP_CLIENT_UTIL_H
#define USMP_INTEROP_CLIENT_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "usmp.h"
#include "usmp_transport.h"

/* Monotonic microseconds. */
static inline uint64_t cu_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The bytes of test message k (n of them): its index first (so no message of a test's
 * length starts with a gateway command, "cmd:"), then a pattern of it. */
static inline void cu_msg_fill(int k, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(k * 31 + (int)i * 7);
    if (n >= 4) memcpy(out, &k, 4);
}

/* The index of a received copy of a test message (-1 when too short). */
static inline int cu_msg_index(const uint8_t *got, size_t n)
{
    int idx = -1;
    if (n >= 4) memcpy(&idx, got, 4);
    return idx;
}

/* Dials host:port over TCP or UDP and prepares a zeroed ctx with the PSK. 0, or 1 with a
 * FAIL line printed. */
static inline int cu_dial(usmp_transport_t *tr, usmp_t *ctx, const char *host, int port, bool udp,
                          const char *psk)
{
    int rc = udp ? usmp_transport_udp_init(tr, host, port) : usmp_transport_tcp_init(tr, host, port);
    if (rc != 0) {
        printf("FAIL: transport init\n");
        return 1;
    }
    memset(ctx, 0, sizeof *ctx);
    ctx->psk = (const uint8_t *)psk;
    ctx->psk_len = strlen(psk);
    return 0;
}

#endif /* USMP_INTEROP_CLIENT_UTIL_H */
