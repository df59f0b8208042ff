/*
 * Byte hooks of the UART transport over a POSIX serial port (termios, poll). See
 * include/usmp_uart.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#if !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* cfmakeraw, B230400 and up */
#endif

#include "usmp_uart.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int fd_of(void *user)
{
    return (int)(intptr_t)user;
}

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* Waits until fd is ready for `events` or `ms` pass: 1 ready, 0 not, -1 error (or hang-up
 * with nothing to read). EINTR restarts the wait with what is left of it. */
static int wait_fd(int fd, short events, uint32_t ms)
{
    uint32_t start = now_ms();
    for (;;) {
        uint32_t spent = now_ms() - start;
        int left = (spent >= ms) ? 0 : (int)(ms - spent > 0x7FFFFFFFu ? 0x7FFFFFFF : ms - spent);
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int rc = poll(&p, 1, left);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc <= 0) {
            return rc;
        }
        if ((p.revents & events) != 0) {
            return 1;
        }
        /* POLLHUP without data: a pty whose other side is closed (yet), a USB adapter
         * unplugged. Not an error for the session: nothing arrives, like a silent line;
         * sleep out the wait instead of spinning. */
        if ((p.revents & (POLLERR | POLLNVAL)) != 0) {
            return -1;
        }
        spent = now_ms() - start;
        if (spent >= ms) {
            return 0;
        }
        struct timespec nap = {0, 1000000L};
        nanosleep(&nap, NULL);
    }
}

static int posix_read(void *user, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    int fd = fd_of(user);
    if (buf == NULL || len == 0u) {
        return -1;
    }
    int w = wait_fd(fd, POLLIN, timeout_ms);
    if (w <= 0) {
        return w;
    }
    for (;;) {
        ssize_t n = read(fd, buf, len > 0x7FFFu ? 0x7FFFu : len);
        if (n > 0) {
            return (int)n;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EIO)) {
            return 0; /* EIO: a pty with no other side yet */
        }
        return (n == 0) ? 0 : -1;
    }
}

static int posix_write(void *user, const uint8_t *data, size_t len, uint32_t timeout_ms)
{
    int fd = fd_of(user);
    size_t done = 0;
    uint32_t last = now_ms();
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            last = now_ms();
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return -1;
        }
        uint32_t spent = now_ms() - last;
        if (spent >= timeout_ms || wait_fd(fd, POLLOUT, timeout_ms - spent) < 0) {
            return -1; /* no progress within the stall limit */
        }
    }
    return 0;
}

static int posix_available(void *user)
{
    return wait_fd(fd_of(user), POLLIN, 0) > 0 ? 1 : 0;
}

static void posix_close(void *user)
{
    close(fd_of(user));
}

static speed_t speed_of(uint32_t baud, int *ok)
{
    static const struct {
        uint32_t baud;
        speed_t speed;
    } table[] = {
        {9600, B9600},     {19200, B19200},     {38400, B38400},     {57600, B57600},
        {115200, B115200}, {230400, B230400},
#ifdef B460800
        {460800, B460800},
#endif
#ifdef B921600
        {921600, B921600},
#endif
#ifdef B1000000
        {1000000, B1000000},
#endif
#ifdef B2000000
        {2000000, B2000000},
#endif
#ifdef B4000000
        {4000000, B4000000},
#endif
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].baud == baud) {
            *ok = 1;
            return table[i].speed;
        }
    }
    *ok = 0;
    return B0;
}

static void fill(usmp_uart_io_t *io, int fd)
{
    io->read = posix_read;
    io->write = posix_write;
    io->available = posix_available;
    io->close = posix_close;
    io->user = (void *)(intptr_t)fd;
}

int usmp_uart_posix_from_fd(usmp_uart_io_t *io, int fd)
{
    if (io == NULL || fd < 0) {
        errno = EINVAL;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    fill(io, fd);
    return 0;
}

int usmp_uart_posix_open(usmp_uart_io_t *io, const char *path, uint32_t baud)
{
    if (io == NULL || path == NULL) {
        errno = EINVAL;
        return -1;
    }
    int ok = 1;
    speed_t speed = (baud == 0u) ? B0 : speed_of(baud, &ok);
    if (!ok) {
        errno = EINVAL;
        return -1;
    }
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    cfmakeraw(&tio);
    tio.c_cflag |= (tcflag_t)(CLOCAL | CREAD);
    tio.c_cflag &= (tcflag_t) ~(CSTOPB | CRTSCTS);
    tio.c_iflag &= (tcflag_t) ~(IXON | IXOFF | IXANY);
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    if (baud != 0u && (cfsetispeed(&tio, speed) != 0 || cfsetospeed(&tio, speed) != 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (tcsetattr(fd, TCSANOW, &tio) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    tcflush(fd, TCIOFLUSH);
    fill(io, fd);
    return 0;
}
