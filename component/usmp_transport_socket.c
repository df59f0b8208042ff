/*
 * USMP socket transports over BSD sockets: TCP (a byte stream) and UDP (datagrams).
 *
 * One file for POSIX hosts and for lwIP (ESP-IDF): socket, connect, send, recv, poll (select
 * on lwIP), fcntl, getaddrinfo, setsockopt, shutdown and close, all of which lwIP provides.
 * Sockets are blocking but for the connect (bounded by USMP_TRANSPORT_CONNECT_TIMEOUT_MS);
 * every wait has a deadline. Safe for one task receiving while another sends: a failure
 * shuts the socket down (both tasks see it fail); only close/reconnect/destroy close it.
 *
 * Framing: the Rust core owns the wire format. The TCP transport returns the bytes that are
 * there (flags = USMP_TRANSPORT_BYTES: the library finds the frames and bounds each one by
 * USMP_FRAME_TIMEOUT_MS), so it also serves the non-blocking API. The UDP transport moves
 * whole datagrams and parses nothing: acknowledgements, retransmission, the replay window
 * and the v2 cookie round are the library's (flags = USMP_TRANSPORT_DATAGRAM).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "usmp_socket_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* A closed peer must give an error, not SIGPIPE. */
#ifdef MSG_NOSIGNAL
#define USMP_SEND_FLAGS MSG_NOSIGNAL
#else
#define USMP_SEND_FLAGS 0
#endif

/* Sockets are not inherited by programs the application starts (exec). */
#ifdef SOCK_CLOEXEC
#define USMP_SOCK_CLOEXEC SOCK_CLOEXEC
#else
#define USMP_SOCK_CLOEXEC 0
#endif


static usmp_socket_ctx_t *ctx_of(const usmp_transport_t *t)
{
    return (t != NULL) ? (usmp_socket_ctx_t *)t->ctx : NULL;
}

/* Closes the socket. Only close, reconnect and destroy call it: the library calls those
 * when no other call of the session is inside the transport, so the descriptor number is
 * never reused under another task's send or recv. */
static void close_sock(usmp_socket_ctx_t *c)
{
    if (c != NULL && c->sock >= 0) {
        (void)close(c->sock);
        c->sock = -1;
    }
}

/* A failure that leaves the byte stream out of step (or the socket broken): every later
 * send and recv fails at once, for this task and any other, until the socket is closed. */
static void fail_sock(usmp_socket_ctx_t *c)
{
    if (c != NULL && c->sock >= 0) {
        (void)shutdown(c->sock, SHUT_RDWR);
    }
}

/* ----------------------------------------------------------------------------------- */
/* usmp_transport_t callbacks                                                          */

static int tcp_send(usmp_transport_t *t, const uint8_t *data, size_t len)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0 || (data == NULL && len > 0)) {
        return -1;
    }
    size_t sent = 0;
    while (sent < len) {
        /* A peer that stops reading must not block the device forever. */
        int w = usmp_socket_wait(c->sock, WAIT_WRITE, (uint32_t)USMP_TRANSPORT_STALL_MS);
        if (w <= 0) {
            fail_sock(c);
            return -1;
        }
        ssize_t n = send(c->sock, data + sent, len - sent, USMP_SEND_FLAGS);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        } else {
            fail_sock(c);
            return -1;
        }
    }
    return 0;
}

/* The bytes that are there (USMP_TRANSPORT_BYTES: the library finds the frames): at most
 * `max_len`, waiting up to `wait_ms` for the first. 0 = nothing within the wait, -1 = EOF
 * or a socket error (the socket is shut down: both tasks see it fail). */
static int tcp_read_some(usmp_transport_t *t, uint8_t *buf, size_t max_len, uint32_t wait_ms)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0 || buf == NULL || max_len == 0) {
        return -1;
    }
    for (;;) {
        int w = usmp_socket_wait(c->sock, WAIT_READ, wait_ms);
        if (w == 0) {
            return 0;
        }
        if (w < 0) {
            fail_sock(c);
            return -1;
        }
        if (max_len > (size_t)INT32_MAX) {
            max_len = (size_t)INT32_MAX;
        }
        ssize_t n = recv(c->sock, buf, max_len, 0);
        if (n > 0) {
            return (int)n;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_ms == 0) {
                return 0;
            }
            continue; /* readable but nothing after all: wait again (rare) */
        }
        fail_sock(c); /* n == 0: the peer closed; or an error */
        return -1;
    }
}

static int tcp_recv(usmp_transport_t *t, uint8_t *buf, size_t max_len)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL) {
        return -1;
    }
    return tcp_read_some(t, buf, max_len, c->recv_timeout_ms);
}

static int tcp_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max_len, uint32_t timeout_ms)
{
    return tcp_read_some(t, buf, max_len, timeout_ms);
}

static int sock_available(usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0) {
        return -1;
    }
    return usmp_socket_wait(c->sock, WAIT_READ, 0);
}

static void sock_close(usmp_transport_t *t)
{
    close_sock(ctx_of(t));
}

/* connect() that gives up after USMP_TRANSPORT_CONNECT_TIMEOUT_MS (a gateway that does not
 * answer the SYN would otherwise hold usmp_reconnect for the OS's own timeout, minutes):
 * the socket is made non-blocking for the connect, then blocking again. 0 / -1. */
static int connect_bounded(int s, const struct sockaddr *addr, socklen_t len)
{
    int fl = fcntl(s, F_GETFL, 0);
    if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) < 0) {
        return connect(s, addr, len); /* cannot bound it: the plain call */
    }
    int rc = connect(s, addr, len);
    if (rc != 0 && (errno == EINPROGRESS || errno == EINTR)) {
        rc = -1;
        if (usmp_socket_wait(s, WAIT_WRITE, (uint32_t)USMP_TRANSPORT_CONNECT_TIMEOUT_MS) == 1) {
            int err = 0;
            socklen_t n = (socklen_t)sizeof err;
            if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &n) == 0 && err == 0) {
                rc = 0;
            }
        }
    }
    if (fcntl(s, F_SETFL, fl) < 0) {
        return -1;
    }
    return rc;
}

/* Resolves c->host and connects a socket of `socktype` (SOCK_STREAM or SOCK_DGRAM) to the
 * first address that accepts it. 0 / -1. A datagram connect() only fixes the peer address
 * (nothing is sent), so UDP takes the first resolved address that has a route; pass an
 * address literal when a name resolves to several families. */
static int dial(usmp_socket_ctx_t *c, int socktype)
{
    char service[12];
    struct addrinfo hints;
    struct addrinfo *res = NULL;

    close_sock(c);
    (void)snprintf(service, sizeof service, "%d", c->port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_protocol = (socktype == SOCK_STREAM) ? IPPROTO_TCP : IPPROTO_UDP;
#ifdef AI_NUMERICSERV
    hints.ai_flags = AI_NUMERICSERV;
#endif
    if (getaddrinfo(c->host, service, &hints, &res) != 0 || res == NULL) {
        return -1;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype | USMP_SOCK_CLOEXEC, ai->ai_protocol);
        if (s < 0) {
            continue;
        }
#if !defined(USMP_SOCKETS_LWIP) && defined(FD_CLOEXEC)
        if (USMP_SOCK_CLOEXEC == 0) {
            (void)fcntl(s, F_SETFD, FD_CLOEXEC);
        }
#endif
        if (connect_bounded(s, ai->ai_addr, ai->ai_addrlen) != 0) {
            (void)close(s);
            continue;
        }
        int one = 1;
        if (socktype == SOCK_STREAM) {
            /* Frames are small and latency-bound: no Nagle delay. A failure only costs speed. */
            (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, (socklen_t)sizeof one);
        }
#ifdef SO_NOSIGPIPE
        (void)setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &one, (socklen_t)sizeof one);
#endif
        c->sock = s;
        break;
    }
    freeaddrinfo(res);
    return (c->sock >= 0) ? 0 : -1;
}

static int tcp_reconnect(usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL) {
        return -1;
    }
    return dial(c, SOCK_STREAM);
}

static void sock_destroy(usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL) {
        return;
    }
    close_sock(c);
    if (c->heap) {
        free(c);
    }
    t->ctx = NULL;
}

/* ----------------------------------------------------------------------------------- */
/* UDP: one frame per datagram on a connect()ed socket                                 */
/*
 * The transport only moves datagrams. The library acknowledges, retransmits, filters
 * duplicates and forgeries and runs the v2 cookie round itself (flags =
 * USMP_TRANSPORT_DATAGRAM), so nothing here looks inside a datagram.
 *
 * Errors that are not the socket's fault are not fatal. On a connect()ed UDP socket an ICMP
 * "port unreachable" (the gateway is down or restarting) or "host/net unreachable" for an
 * EARLIER datagram is reported once, by the next send() or recv() (ECONNREFUSED,
 * EHOSTUNREACH, ...). Reporting it as -1 would end the session at once and, during
 * usmp_connect, turn "gateway restarting" into a misleading USMP_ERR_REJECTED; the ICMP
 * message is also unauthenticated, and lwIP does not report it at all. So recv treats it
 * as "nothing arrived" and keeps waiting, and send retries once (the error was consumed by
 * the failed call; that datagram never left) and otherwise counts the datagram as lost.
 * Whether the gateway is alive is decided in one place, by the library's retransmission:
 * a dead gateway surfaces as USMP_ERR_TIMEOUT from usmp_send/usmp_connect.
 *
 * A datagram larger than max_len is not a frame of ours (frames are at most 492 bytes): it
 * is read, dropped, and the wait goes on. Linux reports its real length with MSG_TRUNC;
 * where recv() has no such flag (lwIP, BSDs) the stack truncates it to max_len and the
 * library rejects it as malformed (counted in usmp_stats_t.rejected). Empty datagrams are
 * dropped too.
 */

#if defined(__linux__) && defined(MSG_TRUNC)
#define USMP_UDP_RECV_FLAGS MSG_TRUNC /* recv returns the datagram's full length */
#else
#define USMP_UDP_RECV_FLAGS 0
#endif

/* Errors of a datagram socket that mean "this datagram was lost", not "the socket is
 * broken": pending ICMP errors of an earlier datagram, and local congestion. */
static bool udp_transient(int e)
{
    switch (e) {
    case EINTR:
    case EAGAIN:
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
#ifdef EHOSTDOWN
    case EHOSTDOWN:
#endif
#ifdef ENETDOWN
    case ENETDOWN:
#endif
    case ENOBUFS:
        return true;
    default:
        return false;
    }
}

static int udp_send(usmp_transport_t *t, const uint8_t *data, size_t len)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0 || data == NULL || len == 0 || len > USMP_MAX_FRAME_SIZE) {
        return -1;
    }
    /* A failed send() consumes a pending ICMP error without sending: one retry sends it. */
    for (int attempt = 0; attempt < 2; attempt++) {
        ssize_t n = send(c->sock, data, len, USMP_SEND_FLAGS);
        if (n == (ssize_t)len) {
            return 0;
        }
        if (n >= 0) {
            fail_sock(c); /* a datagram socket never sends part of a datagram */
            return -1;
        }
        if (!udp_transient(errno)) {
            fail_sock(c);
            return -1;
        }
    }
    return 0; /* counted as lost on the way: the library retransmits or times out */
}

/* Waits up to `timeout_ms` (0 = poll) for one datagram of at most `max_len` bytes.
 * Its length, 0 when none arrived in time, -1 when the socket failed (then closed). */
static int udp_recv_wait(usmp_transport_t *t, uint8_t *buf, size_t max_len, uint32_t timeout_ms)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0 || buf == NULL || max_len == 0) {
        return -1;
    }
    if (max_len > (size_t)INT32_MAX) {
        max_len = (size_t)INT32_MAX;
    }
    uint32_t start = usmp_port_millis();
    for (;;) {
        uint32_t spent = usmp_port_millis() - start;
        uint32_t left = (spent >= timeout_ms) ? 0u : timeout_ms - spent;
        int w = usmp_socket_wait(c->sock, WAIT_READ, left);
        if (w == 0) {
            return 0;
        }
        if (w < 0) {
            fail_sock(c);
            return -1;
        }
        ssize_t n = recv(c->sock, buf, max_len, USMP_UDP_RECV_FLAGS);
        if (n > 0 && (size_t)n <= max_len) {
            return (int)n;
        }
        /* n > max_len: oversize (MSG_TRUNC), dropped. n == 0: an empty datagram, dropped.
         * n < 0: a pending ICMP error or a spurious wake-up means nothing arrived. */
        if (n < 0 && !udp_transient(errno)) {
            fail_sock(c);
            return -1;
        }
        if (usmp_port_millis() - start >= timeout_ms) {
            return 0; /* deadline passed (or a poll): let the caller come back */
        }
    }
}

static int udp_recv(usmp_transport_t *t, uint8_t *buf, size_t max_len)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL) {
        return -1;
    }
    return udp_recv_wait(t, buf, max_len, c->recv_timeout_ms);
}

static int udp_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max_len,
                            uint32_t timeout_ms)
{
    return udp_recv_wait(t, buf, max_len, timeout_ms);
}

static int udp_reconnect(usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL) {
        return -1;
    }
    /* A new socket, hence a new source port: the gateway (which demultiplexes by address)
     * sees a new peer, and no datagram of the old session can reach the new one. */
    return dial(c, SOCK_DGRAM);
}

/* ----------------------------------------------------------------------------------- */
/* Public functions                                                                    */

/* Fills `c` from the arguments (checked) and dials. 0 / -1 (the socket is then closed). */
static int setup(usmp_socket_ctx_t *c, const char *host, int port, bool heap, int socktype)
{
    size_t n = strlen(host);
    memset(c, 0, sizeof *c);
    c->sock = -1;
    c->heap = heap;
    if (n == 0 || n >= sizeof c->host || port <= 0 || port > 65535) {
        return -1;
    }
    memcpy(c->host, host, n + 1);
    c->port = port;
    c->recv_timeout_ms = USMP_TRANSPORT_RECV_TIMEOUT_MS;
    return dial(c, socktype);
}

static void fill(usmp_transport_t *t, usmp_socket_ctx_t *c, int socktype)
{
    memset(t, 0, sizeof *t);
    if (socktype == SOCK_STREAM) {
        t->send = tcp_send;
        t->recv = tcp_recv;
        t->recv_timeout = tcp_recv_timeout;
        t->reconnect = tcp_reconnect;
        t->flags = USMP_TRANSPORT_BYTES; /* the library finds the frames in the stream */
    } else {
        t->send = udp_send;
        t->recv = udp_recv;
        t->reconnect = udp_reconnect;
        t->recv_timeout = udp_recv_timeout;
        t->flags = USMP_TRANSPORT_DATAGRAM;
    }
    /* available (a zero-timeout select), close and destroy serve both socket types. */
    t->close = sock_close;
    t->available = sock_available;
    t->destroy = sock_destroy;
    t->ctx = c;
}

static int init_heap(usmp_transport_t *t, const char *host, int port, int socktype)
{
    if (t == NULL) {
        return -1;
    }
    memset(t, 0, sizeof *t);
    if (host == NULL) {
        return -1;
    }
    usmp_socket_ctx_t *c = (usmp_socket_ctx_t *)malloc(sizeof *c);
    if (c == NULL) {
        return -1;
    }
    if (setup(c, host, port, true, socktype) != 0) {
        free(c);
        return -1;
    }
    fill(t, c, socktype);
    return 0;
}

static int init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx, const char *host, int port,
                       int socktype)
{
    if (t == NULL) {
        return -1;
    }
    memset(t, 0, sizeof *t);
    if (ctx == NULL) {
        return -1;
    }
    if (host == NULL) {
        memset(ctx, 0, sizeof *ctx);
        ctx->sock = -1;
        return -1;
    }
    if (setup(ctx, host, port, false, socktype) != 0) {
        return -1;
    }
    fill(t, ctx, socktype);
    return 0;
}

int usmp_transport_tcp_init(usmp_transport_t *t, const char *host, int port)
{
    return init_heap(t, host, port, SOCK_STREAM);
}

int usmp_transport_tcp_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                   const char *host, int port)
{
    return init_static(t, ctx, host, port, SOCK_STREAM);
}

int usmp_transport_udp_init(usmp_transport_t *t, const char *host, int port)
{
    return init_heap(t, host, port, SOCK_DGRAM);
}

int usmp_transport_udp_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                   const char *host, int port)
{
    return init_static(t, ctx, host, port, SOCK_DGRAM);
}

int usmp_transport_set_timeout(usmp_transport_t *t, uint32_t ms)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || ms == 0) {
        return -1;
    }
    c->recv_timeout_ms = ms;
    return 0;
}
