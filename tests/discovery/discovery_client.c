/*
 * A device configured with only a PSK: finds its gateway with usmp_discover (DNS-SD over
 * mDNS), dials the address and port it was given over the transport the announcement
 * names (TCP or UDP), runs the handshake and checks one echo. Written only against the
 * public headers, like an application. Used by tests/discovery/test_discovery.py inside a
 * network namespace.
 *
 *   discovery_client --psk TEXT [--name INSTANCE] [--timeout MS] [--services tcp|udp|any]
 *                    [--want-wire 0|1|2] [--discover-only]
 *
 * Prints
 *   DISCOVER rc=<code> err=<usmp_err_name> queries=Q answers=A malformed=M last_error=E ms=T
 *   FOUND instance=<name> host=<a.b.c.d> port=<p> service=tcp|udp wire=<0|1|2>   (when found)
 *   ECHO ok                                                                      (after the echo)
 * and exits 0 when discovery, connect and echo worked (with --discover-only: when the run
 * ended without a crash, whatever usmp_discover returned), 1 when a step failed, 2 on
 * bad usage.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usmp.h"
#include "usmp_discovery.h"
#include "usmp_transport.h"

static int usage(void)
{
    fprintf(stderr, "usage: discovery_client --psk TEXT [--name INSTANCE] [--timeout MS] "
                    "[--services tcp|udp|any] [--want-wire 0|1|2] [--discover-only]\n");
    return 2;
}

static int echo(const usmp_gateway_info_t *gw, const char *psk)
{
    usmp_transport_t tr;
    int rc = (gw->service == USMP_DISCOVER_UDP) ? usmp_transport_udp_init(&tr, gw->host, gw->port)
                                                : usmp_transport_tcp_init(&tr, gw->host, gw->port);
    if (rc != 0) {
        printf("FAIL dial %s:%u\n", gw->host, (unsigned)gw->port);
        return 1;
    }
    usmp_t ctx;
    memset(&ctx, 0, sizeof ctx); /* wire v2 by default: the PSK is all the device knows */
    ctx.psk = (const uint8_t *)psk;
    ctx.psk_len = strlen(psk);
    rc = usmp_connect(&ctx, &tr);
    if (rc != USMP_OK) {
        printf("FAIL connect %s (%d)\n", usmp_err_name(rc), rc);
        tr.destroy(&tr);
        return 1;
    }
    static const char msg[] = "hello from a discovered device";
    uint8_t rx[USMP_MAX_MESSAGE_LEN];
    int n = 0;
    rc = usmp_send(&ctx, (const uint8_t *)msg, (uint16_t)(sizeof msg - 1));
    for (int i = 0; rc == USMP_OK && n == 0 && i < 10; i++) {
        n = usmp_recv(&ctx, rx, (uint16_t)sizeof rx); /* 0 = nothing within the recv timeout */
    }
    int ok = rc == USMP_OK && n == (int)(sizeof msg - 1) && memcmp(rx, msg, sizeof msg - 1) == 0;
    if (ok) {
        printf("ECHO ok\n");
    } else {
        printf("FAIL echo send=%s recv=%d\n", usmp_err_name(rc), n);
    }
    usmp_close(&ctx);
    tr.destroy(&tr);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *psk = NULL;
    bool discover_only = false;
    usmp_discover_opts_t opts;
    memset(&opts, 0, sizeof opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--discover-only") == 0) {
            discover_only = true;
            continue;
        }
        if (v == NULL) {
            return usage();
        }
        i++;
        if (strcmp(a, "--psk") == 0) {
            psk = v;
        } else if (strcmp(a, "--name") == 0) {
            opts.instance = v;
        } else if (strcmp(a, "--timeout") == 0) {
            opts.timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--want-wire") == 0) {
            opts.protocol_version = (uint8_t)atoi(v);
        } else if (strcmp(a, "--services") == 0) {
            opts.services = strcmp(v, "tcp") == 0   ? USMP_DISCOVER_TCP
                            : strcmp(v, "udp") == 0 ? USMP_DISCOVER_UDP
                                                    : 0;
        } else {
            return usage();
        }
    }
    if (psk == NULL) {
        return usage();
    }

    usmp_gateway_info_t gw;
    usmp_discover_stats_t st;
    uint32_t t0 = usmp_port_millis();
    int rc = usmp_discover(&opts, &gw, &st);
    printf("DISCOVER rc=%d err=%s queries=%u answers=%u malformed=%u last_error=%d ms=%u\n", rc,
           usmp_err_name(rc), (unsigned)st.queries, (unsigned)st.answers, (unsigned)st.malformed,
           (int)st.last_error, (unsigned)(usmp_port_millis() - t0));
    if (rc != USMP_OK) {
        return discover_only ? 0 : 1;
    }
    printf("FOUND instance=%s host=%s port=%u service=%s wire=%u\n", gw.instance, gw.host,
           (unsigned)gw.port, gw.service == USMP_DISCOVER_UDP ? "udp" : "tcp",
           (unsigned)gw.protocol_version);
    fflush(stdout);
    return discover_only ? 0 : echo(&gw, psk);
}
