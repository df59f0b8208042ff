/*
 * What the socket glue (usmp_transport_socket.c, usmp_discovery_socket.c) shares: the
 * platform's socket headers — lwIP on the ESP chips, the host's own sockets everywhere else,
 * ESP-IDF's linux target included (lwIP there would need a tap interface) — and a wait for
 * a socket to become readable or writable. Private to component/; not installed.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_SOCKET_INTERNAL_H
#define USMP_SOCKET_INTERNAL_H

#if defined(ESP_PLATFORM) && defined(__has_include)
#if __has_include("sdkconfig.h")
#include "sdkconfig.h"
#endif
#endif
#if defined(ESP_PLATFORM) && !defined(CONFIG_IDF_TARGET_LINUX)
#define USMP_SOCKETS_LWIP 1
#endif

#if !defined(USMP_SOCKETS_LWIP) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getaddrinfo, poll, inet_pton under -std=c99 */
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE /* SO_NOSIGPIPE */
#endif

#include "usmp_transport.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#ifdef USMP_SOCKETS_LWIP
#include "lwip/inet.h"
#include "lwip/netdb.h"
#include "lwip/sockets.h"
#include <fcntl.h>
#include <unistd.h>
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#endif

typedef enum { WAIT_READ, WAIT_WRITE } usmp_wait_dir_t;

/* Waits until `sock` is readable/writable: 1 = ready, 0 = `timeout_ms` passed, -1 = error.
 * A signal does not restart the full wait: the time already spent is subtracted. poll()
 * has no limit on descriptor numbers (select's FD_SETSIZE is 1024 on Linux); lwIP's
 * sockets are few and small, and its select is the dependable call there. */
static inline int usmp_socket_wait(int sock, usmp_wait_dir_t dir, uint32_t timeout_ms)
{
    if (sock < 0) {
        return -1;
    }
    uint32_t start = usmp_port_millis();
    uint32_t left = timeout_ms;
    for (;;) {
#ifdef USMP_SOCKETS_LWIP
        if (sock >= FD_SETSIZE) {
            return -1;
        }
        fd_set fds;
        struct timeval tv;
        FD_ZERO(&fds);
        FD_SET(sock, &fds);
        tv.tv_sec = (time_t)(left / 1000u);
        tv.tv_usec = (suseconds_t)((left % 1000u) * 1000u);
        int rc = select(sock + 1, dir == WAIT_READ ? &fds : NULL, dir == WAIT_WRITE ? &fds : NULL,
                        NULL, &tv);
#else
        struct pollfd pfd;
        pfd.fd = sock;
        pfd.events = (short)(dir == WAIT_READ ? POLLIN : POLLOUT);
        pfd.revents = 0;
        int ms = left > (uint32_t)INT32_MAX ? INT32_MAX : (int)left;
        int rc = poll(&pfd, 1, ms);
#endif
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

#endif /* USMP_SOCKET_INTERNAL_H */
