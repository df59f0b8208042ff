/*
 * USMP TCP transport over BSD sockets.
 *
 * One file for POSIX hosts and for lwIP (ESP-IDF): it uses only socket, connect, send,
 * recv, select, getaddrinfo, setsockopt and close, all of which lwIP provides. Sockets
 * stay blocking (no fcntl); every wait goes through select() with a deadline.
 *
 * Framing: the Rust core owns the wire format. This file reads the 12-byte header, asks
 * usmp_frame_size() how long the frame is, and reads the rest. Nothing else is parsed.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#if !defined(ESP_PLATFORM) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getaddrinfo, select, struct addrinfo under -std=c99 */
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE /* SO_NOSIGPIPE */
#endif

#include "usmp_transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ESP_PLATFORM
#include "lwip/netdb.h"
#include "lwip/sockets.h"
#include <unistd.h>
#else
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>
#endif

/* A closed peer must give an error, not SIGPIPE. */
#ifdef MSG_NOSIGNAL
#define USMP_SEND_FLAGS MSG_NOSIGNAL
#else
#define USMP_SEND_FLAGS 0
#endif

typedef enum { WAIT_READ, WAIT_WRITE } wait_dir_t;

static usmp_socket_ctx_t *ctx_of(const usmp_transport_t *t)
{
    return (t != NULL) ? (usmp_socket_ctx_t *)t->ctx : NULL;
}

static void close_sock(usmp_socket_ctx_t *c)
{
    if (c != NULL && c->sock >= 0) {
        (void)close(c->sock);
        c->sock = -1;
    }
}

/* Waits until `sock` is readable/writable: 1 = ready, 0 = `timeout_ms` passed, -1 = error.
 * A signal does not restart the full wait: the time already spent is subtracted. */
static int wait_fd(int sock, wait_dir_t dir, uint32_t timeout_ms)
{
    if (sock < 0 || sock >= FD_SETSIZE) {
        return -1; /* FD_SET would write outside the fd_set */
    }
    uint32_t start = usmp_port_millis();
    uint32_t left = timeout_ms;
    for (;;) {
        fd_set fds;
        struct timeval tv;
        FD_ZERO(&fds);
        FD_SET(sock, &fds);
        tv.tv_sec = (time_t)(left / 1000u);
        tv.tv_usec = (suseconds_t)((left % 1000u) * 1000u);
        int rc = select(sock + 1, dir == WAIT_READ ? &fds : NULL, dir == WAIT_WRITE ? &fds : NULL,
                        NULL, &tv);
        if (rc > 0) {
            return 1;
        }
        if (rc == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
        uint32_t spent = usmp_port_millis() - start;
        if (spent >= timeout_ms) {
            return 0;
        }
        left = timeout_ms - spent;
    }
}

/* Reads exactly `len` bytes; each wait for more may last USMP_TRANSPORT_STALL_MS.
 * 0 = done, -1 = EOF, error or stall. */
static int read_exact(int sock, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        int w = wait_fd(sock, WAIT_READ, (uint32_t)USMP_TRANSPORT_STALL_MS);
        if (w <= 0) {
            return -1;
        }
        ssize_t n = recv(sock, buf + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0) {
            return -1; /* orderly shutdown by the peer */
        } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            return -1;
        }
    }
    return 0;
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
        int w = wait_fd(c->sock, WAIT_WRITE, (uint32_t)USMP_TRANSPORT_STALL_MS);
        if (w <= 0) {
            close_sock(c);
            return -1;
        }
        ssize_t n = send(c->sock, data + sent, len - sent, USMP_SEND_FLAGS);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        } else {
            close_sock(c);
            return -1;
        }
    }
    return 0;
}

static int tcp_recv(usmp_transport_t *t, uint8_t *buf, size_t max_len)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0 || buf == NULL) {
        return -1;
    }
    /* Idle wait: nothing at all within the receive timeout is not an error. */
    int w = wait_fd(c->sock, WAIT_READ, c->recv_timeout_ms);
    if (w == 0) {
        return 0;
    }
    if (w < 0) {
        close_sock(c);
        return -1;
    }
    /* A frame has started: from here on, only a whole frame or -1. Any failure leaves the
     * byte stream out of step, so the socket is closed. */
    uint8_t hdr[USMP_HEADER_SIZE];
    if (read_exact(c->sock, hdr, sizeof hdr) != 0) {
        close_sock(c);
        return -1;
    }
    int total = usmp_frame_size(hdr, sizeof hdr);
    if (total < (int)USMP_HEADER_SIZE || (size_t)total > max_len) {
        close_sock(c);
        return -1;
    }
    memcpy(buf, hdr, sizeof hdr);
    size_t rest = (size_t)total - sizeof hdr;
    if (rest > 0 && read_exact(c->sock, buf + sizeof hdr, rest) != 0) {
        close_sock(c);
        return -1;
    }
    return total;
}

static int tcp_available(usmp_transport_t *t)
{
    usmp_socket_ctx_t *c = ctx_of(t);
    if (c == NULL || c->sock < 0) {
        return -1;
    }
    return wait_fd(c->sock, WAIT_READ, 0);
}

static void tcp_close(usmp_transport_t *t)
{
    close_sock(ctx_of(t));
}

/* Resolves c->host and connects to the first address that answers. 0 / -1. */
static int dial(usmp_socket_ctx_t *c)
{
    char service[12];
    struct addrinfo hints;
    struct addrinfo *res = NULL;

    close_sock(c);
    (void)snprintf(service, sizeof service, "%d", c->port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
#ifdef AI_NUMERICSERV
    hints.ai_flags = AI_NUMERICSERV;
#endif
    if (getaddrinfo(c->host, service, &hints, &res) != 0 || res == NULL) {
        return -1;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (s < 0) {
            continue;
        }
        if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
            (void)close(s);
            continue;
        }
        int one = 1;
        /* Frames are small and latency-bound: no Nagle delay. A failure only costs speed. */
        (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, (socklen_t)sizeof one);
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
    return dial(c);
}

static void tcp_destroy(usmp_transport_t *t)
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
/* Public functions                                                                    */

/* Fills `c` from the arguments (checked) and dials. 0 / -1 (the socket is then closed). */
static int setup(usmp_socket_ctx_t *c, const char *host, int port, bool heap)
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
    return dial(c);
}

static void fill(usmp_transport_t *t, usmp_socket_ctx_t *c)
{
    memset(t, 0, sizeof *t);
    t->send = tcp_send;
    t->recv = tcp_recv;
    t->close = tcp_close;
    t->reconnect = tcp_reconnect;
    t->available = tcp_available;
    t->destroy = tcp_destroy;
    t->ctx = c;
}

int usmp_transport_tcp_init(usmp_transport_t *t, const char *host, int port)
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
    if (setup(c, host, port, true) != 0) {
        free(c);
        return -1;
    }
    fill(t, c);
    return 0;
}

int usmp_transport_tcp_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                   const char *host, int port)
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
    if (setup(ctx, host, port, false) != 0) {
        return -1;
    }
    fill(t, ctx);
    return 0;
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
