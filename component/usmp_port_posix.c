/*
 * Default USMP port hooks for POSIX hosts (Linux, macOS, the BSDs).
 *
 * Every hook is a weak definition: an application that defines its own usmp_port_*
 * function in one of its object files gets that one instead, without a link error.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, gethostname, O_CLOEXEC */
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* glibc: getrandom */
#endif

#include "usmp_port.h"
#include "usmp_host_id.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__) && defined(__has_include)
#if __has_include(<sys/random.h>)
#include <sys/random.h>
#define USMP_HAVE_GETRANDOM 1
#endif
#endif

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#define USMP_WEAK __attribute__((weak))

/* ----------------------------------------------------------------------------------- */
/* Randomness                                                                          */

static int read_urandom(uint8_t *out, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, out + got, len - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            (void)close(fd);
            return -1;
        }
    }
    (void)close(fd);
    return 0;
}

USMP_WEAK int usmp_port_random(uint8_t *out, size_t len)
{
    if (out == NULL && len > 0) {
        return -1;
    }
#ifdef USMP_HAVE_GETRANDOM
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == ENOSYS || errno == EPERM) && got == 0) {
            /* Old kernel or a seccomp filter: the kernel pool through the device file. */
            return read_urandom(out, len);
        } else {
            return -1;
        }
    }
    return 0;
#else
    return read_urandom(out, len);
#endif
}

/* ----------------------------------------------------------------------------------- */
/* Time                                                                                */

USMP_WEAK uint32_t usmp_port_millis(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    return (uint32_t)ms; /* wraps at 2^32 by contract */
}

USMP_WEAK void usmp_port_delay_ms(uint32_t ms)
{
    struct timespec req;
    struct timespec rem;
    req.tv_sec = (time_t)(ms / 1000u);
    req.tv_nsec = (long)((ms % 1000u) * 1000000u);
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        req = rem;
    }
}

/* ----------------------------------------------------------------------------------- */
/* Logging                                                                             */

USMP_WEAK void usmp_port_log(char level, const char *tag, const char *msg)
{
    (void)fprintf(stderr, "[usmp] %c %s: %s\n", level, tag != NULL ? tag : "-",
                  msg != NULL ? msg : "");
}

/* ----------------------------------------------------------------------------------- */
/* Device id                                                                           */

USMP_WEAK int usmp_port_get_device_id(uint8_t *out, size_t len)
{
    if (out == NULL || len < USMP_DEVICE_ID_LEN) {
        return -1;
    }
    return usmp_host_device_id(out);
}
