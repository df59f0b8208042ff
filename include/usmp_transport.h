/*
 * USMP transports shipped with the library (C glue in component/, BSD sockets: POSIX hosts
 * and lwIP on ESP-IDF): TCP and UDP. The transport type itself, usmp_transport_t, is in usmp.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_TRANSPORT_H
#define USMP_TRANSPORT_H

#include "usmp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default receive timeout of the socket transports (ms): an idle usmp_recv returns 0
 *  after this long. Change it at run time with usmp_transport_set_timeout. (This and
 *  USMP_TRANSPORT_STALL_MS take effect where the transport is compiled: define them for
 *  the library build, not only in application code.) */
#ifndef USMP_TRANSPORT_RECV_TIMEOUT_MS
#define USMP_TRANSPORT_RECV_TIMEOUT_MS 1000
#endif

/** TCP: a send gives up with -1 when no byte moves for this long (ms). (How long a frame
 *  that has started may take to arrive is the library's USMP_FRAME_TIMEOUT_MS.) */
#ifndef USMP_TRANSPORT_STALL_MS
#define USMP_TRANSPORT_STALL_MS 2000
#endif

/** How long dialling (TCP connect) may take before the transport gives up (ms): init and
 *  reconnect return -1 then, instead of waiting for the OS's own SYN timeout. */
#ifndef USMP_TRANSPORT_CONNECT_TIMEOUT_MS
#define USMP_TRANSPORT_CONNECT_TIMEOUT_MS 10000
#endif

/** Longest host name or address literal the socket transports keep (bytes, with NUL). */
#define USMP_TRANSPORT_HOST_MAX 64

/** Caller-provided storage for the socket transports (the zero-heap *_static variants),
 *  TCP and UDP alike. */
typedef struct usmp_socket_ctx_t {
  int sock;                                /**< socket descriptor, -1 when closed */
  char host[USMP_TRANSPORT_HOST_MAX];      /**< host name or IPv4/IPv6 literal */
  int port;                                /**< gateway port */
  uint32_t recv_timeout_ms;                /**< idle receive timeout */
  bool heap;                               /**< allocated by *_init (freed by destroy) */
} usmp_socket_ctx_t;

/**
 * TCP transport to host:port (IPv4/IPv6 literal or host name, at most 63 characters).
 * Allocates its context, dials at once (a blocking connect, tried on each resolved address
 * in turn), sets TCP_NODELAY and fills in every member of *t. Returns 0, or -1 with nothing
 * allocated and *t zeroed.
 *
 * Dialling gives up after USMP_TRANSPORT_CONNECT_TIMEOUT_MS; the socket is close-on-exec.
 *
 * The callbacks (flags = USMP_TRANSPORT_BYTES: the library finds the frames in the stream,
 * so the non-blocking API works over it too): recv returns the bytes that are there (at
 * most max_len), 0 after the receive timeout with nothing received, -1 on EOF or a socket
 * error; recv_timeout the same with a wait of timeout_ms (0: just look); send
 * writes all bytes or returns -1 (never SIGPIPE); available is a zero-timeout poll; close
 * keeps the context; reconnect closes and dials again; destroy closes and frees a context
 * that *_init allocated, then sets t->ctx = NULL. After a -1 from send or recv the socket
 * is shut down (the stream is out of step) and closed by the next close or reconnect.
 * Every callback returns -1 (or does nothing) for a NULL t, a NULL ctx or a closed socket.
 */
int usmp_transport_tcp_init(usmp_transport_t *t, const char *host, int port);

/** As usmp_transport_tcp_init, with caller storage for the context (no heap): *ctx must
 *  outlive the transport; destroy closes the socket but does not free it. */
int usmp_transport_tcp_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                   const char *host, int port);

/**
 * UDP transport to host:port (IPv4/IPv6 literal or host name, at most 63 characters): a
 * connect()ed datagram socket, one frame per datagram. Same signature as the original.
 * Allocates its context, creates and connects the socket at once (nothing is sent: the
 * first resolved address is used, so pass a literal when a name has several families),
 * and fills in every member of *t, including flags = USMP_TRANSPORT_DATAGRAM and
 * recv_timeout. Returns 0, or -1 with nothing allocated and *t zeroed.
 *
 * The transport moves datagrams and nothing else; acknowledgements (UTACK),
 * retransmission, the replay window and the v2 cookie round are done by the library
 * (ctx.retransmit_attempts, ctx.retransmit_timeout_ms, usmp_get_stats). The callbacks:
 * send sends exactly one datagram (0, or -1 when the socket failed); recv waits up to the
 * receive timeout (USMP_TRANSPORT_RECV_TIMEOUT_MS, or usmp_transport_set_timeout) for one
 * datagram and returns its length, 0 when none came; recv_timeout does the same with an
 * explicit wait in ms (0 = poll); available is a zero-timeout poll; close keeps the
 * context; reconnect opens a new socket (a new source port) to the same address; destroy
 * closes and frees a context that *_init allocated, then sets t->ctx = NULL.
 *
 * Not fatal, by design: an ICMP error for an earlier datagram (ECONNREFUSED when the
 * gateway is down or restarting, host/net unreachable) and local congestion (ENOBUFS,
 * EAGAIN) count as a lost datagram: recv keeps waiting, send retries once and otherwise
 * reports success (UDP may lose datagrams; the library retransmits). A dead gateway thus
 * shows up as USMP_ERR_TIMEOUT from usmp_send/usmp_connect, not as a transport error.
 * Datagrams larger than max_len (not frames: those are at most 492 bytes) and empty
 * datagrams are read, dropped, and the wait goes on (on stacks without recv(MSG_TRUNC),
 * e.g. lwIP, an oversize datagram arrives truncated and the library rejects it).
 * -1 only for a NULL t/ctx/buffer, a send of 0 or more than 492 bytes, a closed socket, or
 * a socket error (the socket is then closed).
 */
int usmp_transport_udp_init(usmp_transport_t *t, const char *host, int port);

/** As usmp_transport_udp_init, with caller storage for the context (no heap): *ctx must
 *  outlive the transport; destroy closes the socket but does not free it. */
int usmp_transport_udp_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                   const char *host, int port);

/** Sets the idle receive timeout (ms, > 0) of a socket transport (TCP or UDP). Returns 0
 *  or -1. */
int usmp_transport_set_timeout(usmp_transport_t *t, uint32_t ms);

#ifdef __cplusplus
}
#endif

#endif /* USMP_TRANSPORT_H */
