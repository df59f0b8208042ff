/*
 * USMP transports shipped with the library (C glue in component/, BSD sockets: POSIX hosts
 * and lwIP on ESP-IDF). The transport type itself, usmp_transport_t, is in usmp.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_TRANSPORT_H
#define USMP_TRANSPORT_H

#include "usmp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default receive timeout of the socket transports (ms): an idle usmp_recv returns 0
 *  after this long. Override with usmp_transport_set_timeout. */
#ifndef USMP_TRANSPORT_RECV_TIMEOUT_MS
#define USMP_TRANSPORT_RECV_TIMEOUT_MS 1000
#endif

/** Longest host name or address literal the socket transports keep (bytes, with NUL). */
#define USMP_TRANSPORT_HOST_MAX 64

/** Caller-provided storage for the socket transports (the zero-heap *_static variants). */
typedef struct usmp_socket_ctx_t {
  int sock;                                /**< socket descriptor, -1 when closed */
  char host[USMP_TRANSPORT_HOST_MAX];      /**< host name or IPv4/IPv6 literal */
  int port;                                /**< gateway port */
  uint32_t recv_timeout_ms;                /**< idle receive timeout */
  bool heap;                               /**< allocated by *_init (freed by destroy) */
} usmp_socket_ctx_t;

/**
 * TCP transport to host:port (IPv4/IPv6 literal or host name). Allocates its context,
 * dials at once, and fills in every member of *t. Returns 0, or -1 with nothing allocated.
 */
int usmp_transport_tcp_init(usmp_transport_t *t, const char *host, int port);

/** As usmp_transport_tcp_init, with caller storage for the context (no heap). */
int usmp_transport_tcp_init_static(usmp_transport_t *t, usmp_socket_ctx_t *ctx,
                                   const char *host, int port);

/** Sets the idle receive timeout (ms, > 0) of a socket transport. Returns 0 or -1. */
int usmp_transport_set_timeout(usmp_transport_t *t, uint32_t ms);

#ifdef __cplusplus
}
#endif

#endif /* USMP_TRANSPORT_H */
