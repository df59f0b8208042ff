/*
 * posix_echo: connect to a USMP gateway over TCP, send messages, check that each one
 * comes back unchanged.
 *
 *   posix_echo [host] [port] [psk] [v1|v2] [count]
 *   defaults:  127.0.0.1 9000 usmp-dev-psk-change-me-before-prod v2 3
 *
 * A host that starts with '/' is a serial device instead, and the port its baud rate: the
 * UART transport with COBS framing (usmp_uart_posix_open), to `usmp bridge` on the line's
 * other end, e.g.  posix_echo /dev/ttyUSB0 115200 <psk>
 *
 * Exit status 0 only when every echo matched.
 * SPDX-License-Identifier: Apache-2.0
 */
#include "usmp.h"
#ifdef USMP_FEATURE_UART
#include "usmp_uart.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_WAIT_MS 10000u      /* how long to wait for one echo */
#define SEND_ATTEMPTS 3          /* per message, with a reconnect in between */
#define RECONNECT_TRIES 5
#define RECONNECT_DELAY_MS 2000u

static uint8_t rx_buf[USMP_MAX_MESSAGE_LEN];
#ifdef USMP_FEATURE_UART
static usmp_uart_ctx_t uart_ctx; /* the UART transport's state, for a serial device */
#endif
static uint8_t tx_buf[USMP_MAX_MESSAGE_LEN];

/* Message i: a short text, then one that needs 2 frames, then the largest (4 frames). */
static size_t make_message(unsigned i)
{
    if (i % 3u == 0u) {
        int n = snprintf((char *)tx_buf, sizeof tx_buf, "hello from usmp #%u", i);
        return (n > 0) ? (size_t)n : 0u;
    }
    size_t len = (i % 3u == 1u) ? 600u : (size_t)USMP_MAX_MESSAGE_LEN;
    for (size_t k = 0; k < len; k++) {
        tx_buf[k] = (uint8_t)((k * 7u + i) & 0xFFu);
    }
    return len;
}

/* Sends tx_buf[0..len) and waits for its echo.
 * 1 = echo matched, 0 = echo differed, < 0 = usmp error (the session needs a reconnect). */
static int echo_once(usmp_t *ctx, size_t len)
{
    int rc = usmp_send(ctx, tx_buf, (uint16_t)len);
    if (rc != USMP_OK) {
        return rc;
    }
    uint32_t start = usmp_port_millis();
    for (;;) {
        int n = usmp_recv(ctx, rx_buf, (uint16_t)sizeof rx_buf);
        if (n > 0) {
            if ((size_t)n == len && memcmp(rx_buf, tx_buf, len) == 0) {
                printf("echo ok: %d bytes\n", n);
                return 1;
            }
            fprintf(stderr, "echo MISMATCH: sent %zu bytes, got %d\n", len, n);
            return 0;
        }
        if (n < 0) {
            return n;
        }
        /* 0: nothing yet. Keep the session alive while waiting. */
        rc = usmp_keepalive_tick(ctx);
        if (rc != USMP_OK) {
            return rc;
        }
        if ((uint32_t)(usmp_port_millis() - start) >= ECHO_WAIT_MS) {
            return USMP_ERR_TIMEOUT;
        }
    }
}

static int reconnect_with_retries(usmp_t *ctx)
{
    for (int attempt = 1; attempt <= RECONNECT_TRIES; attempt++) {
        int rc = usmp_reconnect(ctx);
        if (rc == USMP_OK) {
            printf("reconnected\n");
            return 0;
        }
        fprintf(stderr, "reconnect %d/%d failed: %s\n", attempt, RECONNECT_TRIES,
                usmp_err_name(rc));
        if (attempt < RECONNECT_TRIES) {
            usmp_port_delay_ms(RECONNECT_DELAY_MS);
        }
    }
    return -1;
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || end == NULL || *end != '\0' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = (argc > 1) ? argv[1] : "127.0.0.1";
    const char *port_s = (argc > 2) ? argv[2] : "9000";
    const char *psk = (argc > 3) ? argv[3] : "usmp-dev-psk-change-me-before-prod";
    const char *ver_s = (argc > 4) ? argv[4] : "v2";
    const char *count_s = (argc > 5) ? argv[5] : "3";
    unsigned long port = 0;
    unsigned long count = 0;
    uint8_t version;

    if (strcmp(ver_s, "v1") == 0) {
        version = USMP_PROTOCOL_V1;
    } else if (strcmp(ver_s, "v2") == 0) {
        version = USMP_PROTOCOL_V2;
    } else {
        version = 0;
    }
    int serial = (host[0] == '/');
    if (argc > 6 || version == 0 ||
        parse_ulong(port_s, serial ? 4000000ul : 65535ul, &port) != 0 || port == 0 ||
        parse_ulong(count_s, 1000000ul, &count) != 0) {
        fprintf(stderr, "usage: %s [host|/dev/tty...] [port|baud] [psk] [v1|v2] [count]\n",
                argv[0]);
        return 2;
    }

    usmp_transport_t tr;
    if (serial) {
#ifdef USMP_FEATURE_UART
        usmp_uart_io_t io = {0}; /* COBS framing, default timeouts */
        if (usmp_uart_posix_open(&io, host, (uint32_t)port) != 0) {
            perror(host);
            return 1;
        }
        if (usmp_transport_uart_init(&tr, &uart_ctx, &io) != USMP_OK) {
            io.close(io.user);
            return 1;
        }
#else
        fprintf(stderr, "%s: this build has no UART transport (USMP_UART=OFF)\n", host);
        return 1;
#endif
    } else if (usmp_transport_tcp_init(&tr, host, (int)port) != 0) {
        fprintf(stderr, "cannot reach %s:%lu\n", host, port);
        return 1;
    }

    usmp_t ctx = {0};
    ctx.psk = (const uint8_t *)psk;
    ctx.psk_len = strlen(psk);
    ctx.keepalive_ms = 15000;
    ctx.protocol_version = version;

    int rc = usmp_connect(&ctx, &tr);
    if (rc != USMP_OK) {
        fprintf(stderr, "usmp_connect: %s (%d)\n", usmp_err_name(rc), rc);
        tr.destroy(&tr);
        return 1;
    }
    printf("connected to %s:%lu (usmp %s, wire %s)\n", host, port, usmp_get_version(), ver_s);

    unsigned long matched = 0;
    int failed = 0;
    for (unsigned long i = 0; i < count && !failed; i++) {
        size_t len = make_message((unsigned)i);
        for (int attempt = 1;; attempt++) {
            rc = echo_once(&ctx, len);
            if (rc == 1) {
                matched++;
                break;
            }
            if (rc == 0) {
                failed = 1;
                break;
            }
            fprintf(stderr, "message %lu: %s (%d)\n", i, usmp_err_name(rc), rc);
            if (attempt >= SEND_ATTEMPTS || reconnect_with_retries(&ctx) != 0) {
                failed = 1;
                break;
            }
        }
    }

    usmp_close(&ctx);
    tr.destroy(&tr);
#ifdef USMP_FEATURE_UART
    if (serial) {
        const usmp_uart_stats_t *st = &uart_ctx.stats;
        printf("uart: tx %lu frames, rx %lu frames, dropped %lu\n", (unsigned long)st->frames_tx,
               (unsigned long)st->frames_rx, (unsigned long)st->dropped);
    }
#endif
    printf("%lu/%lu echoes matched\n", matched, count);
    return (matched == count) ? 0 : 1;
}
