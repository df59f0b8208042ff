/*
 * The TCP socket transport and usmp_connect against hostile or broken peers (the peers are
 * Python helpers in test_transport_bounds.py, on loopback). The socket transport is
 * compiled into this program with a short dial timeout (USMP_TRANSPORT_CONNECT_TIMEOUT_MS
 * below), so that the connect-timeout check takes seconds, not ten.
 *
 *   tcp_transport_check trickle PORT      usmp_connect to a peer that sends a CHALLENGE header
 *                                         and then one byte every 1.5 s: prints "CONNECT rc=NAME
 *                                         ms=T" (bounded by USMP_HANDSHAKE_TIMEOUT_MS)
 *   tcp_transport_check blackhole PORT    usmp_transport_tcp_init to a listener that never
 *                                         completes the handshake: prints "DIAL rc=R ms=T"
 *   tcp_transport_check highfd PORT       the transport with its socket at descriptor >= 1024
 *                                         (select() could not wait on it): reads one frame from
 *                                         the peer, checks close-on-exec: "HIGHFD fd=F frame=N
 *                                         cloexec=C"
 * Exit 0 when the step ran (the test judges the figures), 1 on a failure of the check
 * itself, 2 on bad usage.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "usmp.h"
#include "usmp_transport.h"

static uint32_t ms_now(void)
{
    return usmp_port_millis();
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tcp_transport_check trickle|blackhole|highfd PORT\n");
        return 2;
    }
    const char *what = argv[1];
    int port = atoi(argv[2]);
    usmp_transport_t t;
    if (!strcmp(what, "trickle")) {
        if (usmp_transport_tcp_init(&t, "127.0.0.1", port) != 0) {
            printf("FAIL: dial\n");
            return 1;
        }
        static const char psk[] = "usmp-bounds-psk-0123456789abcdef";
        usmp_t ctx;
        memset(&ctx, 0, sizeof ctx);
        ctx.psk = (const uint8_t *)psk;
        ctx.psk_len = sizeof psk - 1;
        uint32_t t0 = ms_now();
        int rc = usmp_connect(&ctx, &t);
        printf("CONNECT rc=%s ms=%u\n", usmp_err_name(rc), ms_now() - t0);
        t.destroy(&t);
        return 0;
    }
    if (!strcmp(what, "blackhole")) {
        uint32_t t0 = ms_now();
        int rc = usmp_transport_tcp_init(&t, "127.0.0.1", port);
        printf("DIAL rc=%d ms=%u\n", rc, ms_now() - t0);
        if (rc == 0) t.destroy(&t);
        return 0;
    }
    if (!strcmp(what, "highfd")) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
        if (rl.rlim_cur < 2048) {
            rl.rlim_cur = rl.rlim_max < 2048 ? rl.rlim_max : 2048;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
        }
        /* Occupy descriptors up to 1100, so the transport's socket lands above 1024. */
        for (int fd = 3; fd < 1100; fd++) {
            if (fcntl(fd, F_GETFD) == -1 && dup2(0, fd) < 0) {
                printf("FAIL: cannot take descriptor %d\n", fd);
                return 1;
            }
        }
        if (usmp_transport_tcp_init(&t, "127.0.0.1", port) != 0) {
            printf("FAIL: dial\n");
            return 1;
        }
        int fd = ((usmp_socket_ctx_t *)t.ctx)->sock;
        int cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
        uint8_t buf[USMP_MAX_FRAME_SIZE];
        /* A byte stream (USMP_TRANSPORT_BYTES): the frame may come in pieces. */
        int n = 0;
        while (n < (int)USMP_HEADER_SIZE + 40) {
            int r = t.recv(&t, buf + n, sizeof buf - (size_t)n);
            if (r <= 0) {
                break;
            }
            n += r;
        }
        printf("HIGHFD fd=%d frame=%d cloexec=%d\n", fd, n, cloexec);
        t.destroy(&t);
        return 0;
    }
    fprintf(stderr, "unknown check %s\n", what);
    return 2;
}
