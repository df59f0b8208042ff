/*
 * Gateway discovery, the socket side (built with discovery enabled: CMake USMP_DISCOVERY,
 * menuconfig USMP_DISCOVERY): the mDNS socket transport and usmp_discover(), which runs
 * the Rust core's usmp_discover_over() over it. The DNS-SD logic (queries, parsing the
 * answers) is all in the core; this file only moves datagrams.
 *
 * One socket on an ephemeral port sends one-shot queries to 224.0.0.251:5353; responders
 * answer such "legacy unicast" queries by unicast to the sender (RFC 6762 §6.7), so the
 * socket joins no group and never binds port 5353 (an mDNS responder of the application,
 * ESP-IDF's mdns component say, keeps that port to itself). The same code runs on POSIX
 * hosts, ESP-IDF's linux target and lwIP (ESP32): socket, bind, setsockopt
 * (IP_MULTICAST_TTL/LOOP/IF), sendto, poll (select on lwIP) and recvfrom.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "usmp_socket_internal.h"

#include "usmp_discovery.h"

#define MDNS_PORT 5353u
#define MDNS_GROUP 0xE00000FBu /* 224.0.0.251 */

static usmp_socket_ctx_t *mdns_ctx(const usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = (t != NULL) ? (usmp_socket_ctx_t *)t->ctx : NULL;
    return (c != NULL && c->sock >= 0) ? c : NULL;
}

static int mdns_send(usmp_transport_t *t, const uint8_t *data, size_t len)
{
    usmp_socket_ctx_t *c = mdns_ctx(t);
    if (c == NULL || data == NULL || len == 0) {
        return -1;
    }
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(MDNS_PORT);
    to.sin_addr.s_addr = htonl(MDNS_GROUP);
    ssize_t n = sendto(c->sock, data, len, 0, (const struct sockaddr *)&to, sizeof to);
    return (n >= 0 && (size_t)n == len) ? 0 : -1;
}

/* One datagram from port 5353 within `timeout_ms`: its length, 0 when none came, -1 on a
 * socket error. Datagrams from other ports and datagrams that fill the whole buffer (they
 * may have been cut) are dropped and the wait goes on. */
static int mdns_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max_len,
                             uint32_t timeout_ms)
{
    usmp_socket_ctx_t *c = mdns_ctx(t);
    if (c == NULL || buf == NULL || max_len == 0) {
        return -1;
    }
    uint32_t start = usmp_port_millis();
    for (;;) {
        uint32_t spent = usmp_port_millis() - start;
        uint32_t left = spent < timeout_ms ? timeout_ms - spent : 0;
        int rc = usmp_socket_wait(c->sock, WAIT_READ, left);
        if (rc < 0) {
            return -1;
        }
        if (rc > 0) {
            struct sockaddr_in from;
            socklen_t from_len = sizeof from;
            ssize_t n = recvfrom(c->sock, buf, max_len, 0, (struct sockaddr *)&from, &from_len);
            if (n > 0 && (size_t)n < max_len && from.sin_family == AF_INET &&
                ntohs(from.sin_port) == MDNS_PORT) {
                return (int)n;
            }
            /* n < 0: an ICMP error for an earlier query (nobody on 5353) or EINTR: wait on. */
        }
        if (left == 0) {
            return 0;
        }
    }
}

static int mdns_recv(usmp_transport_t *t, uint8_t *buf, size_t max_len)
{
    usmp_socket_ctx_t *c = mdns_ctx(t);
    return (c == NULL) ? -1 : mdns_recv_timeout(t, buf, max_len, c->recv_timeout_ms);
}

static void mdns_close(usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = mdns_ctx(t);
    if (c != NULL) {
        (void)close(c->sock);
        c->sock = -1;
    }
}

static void mdns_destroy(usmp_transport_t *t)
{
    mdns_close(t);
    if (t != NULL) {
        t->ctx = NULL;
    }
}

int usmp_transport_mdns_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                    const char *interface_addr)
{
    if (t == NULL) {
        return -1;
    }
    memset(t, 0, sizeof *t);
    if (ctx == NULL) {
        return -1;
    }
    memset(ctx, 0, sizeof *ctx);
    ctx->sock = -1;
    struct in_addr iface;
    iface.s_addr = htonl(INADDR_ANY);
    if (interface_addr != NULL && inet_pton(AF_INET, interface_addr, &iface) != 1) {
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) {
        return -1;
    }
    struct sockaddr_in any;
    memset(&any, 0, sizeof any);
    any.sin_family = AF_INET;
    any.sin_port = 0;
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    unsigned char ttl = 255; /* RFC 6762 §11 */
    unsigned char loop = 1;  /* a responder on this host hears the query too */
    if (bind(s, (const struct sockaddr *)&any, sizeof any) != 0 ||
        setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0 ||
        setsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) != 0 ||
        (interface_addr != NULL &&
         setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof iface) != 0)) {
        (void)close(s);
        return -1;
    }
    ctx->sock = s;
    ctx->port = (int)MDNS_PORT;
    ctx->recv_timeout_ms = USMP_TRANSPORT_RECV_TIMEOUT_MS;
    t->send = mdns_send;
    t->recv = mdns_recv;
    t->close = mdns_close;
    t->destroy = mdns_destroy;
    t->ctx = ctx;
    t->flags = USMP_TRANSPORT_DATAGRAM;
    t->recv_timeout = mdns_recv_timeout;
    return 0;
}

int usmp_discover(const usmp_discover_opts_t *opts, usmp_gateway_info_t *out,
                  usmp_discover_stats_t *stats)
{
    if (stats != NULL) {
        memset(stats, 0, sizeof *stats);
    }
    if (out == NULL) {
        return USMP_ERR_INVALID_ARG;
    }
    const char *iface = (opts != NULL) ? opts->interface_addr : NULL;
    struct in_addr check;
    if (iface != NULL && inet_pton(AF_INET, iface, &check) != 1) {
        return USMP_ERR_INVALID_ARG;
    }
    usmp_socket_ctx_t ctx;
    usmp_transport_t t;
    if (usmp_transport_mdns_init_static(&t, &ctx, iface) != 0) {
        return USMP_ERR_TRANSPORT_FAILED;
    }
    int rc = usmp_discover_over(&t, opts, out, stats);
    t.destroy(&t);
    return rc;
}
