/*
 * Default OTA port hooks for POSIX hosts (library feature `ota`, CMake -DUSMP_OTA=ON):
 * the image is written to "<path>.part" and renamed to <path> on commit, so <path> only
 * ever holds a whole, verified image. <path> is "usmp-ota.bin" unless the application
 * calls usmp_ota_posix_set_path().
 *
 * Every hook is a weak definition: an application that defines its own usmp_port_ota_*
 * function gets that one instead. One receiver per process (the state is static).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* pwrite, fsync, O_CLOEXEC */
#endif

#include "usmp_ota.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#define USMP_WEAK __attribute__((weak))

#define PATH_CAP 512

static char g_path[PATH_CAP] = "usmp-ota.bin";
static int g_fd = -1;

/* "<path>.part" into out (PATH_CAP + 8 bytes). */
static void part_path(char *out, size_t cap)
{
    (void)snprintf(out, cap, "%s.part", g_path);
}

USMP_WEAK int usmp_ota_posix_set_path(const char *path)
{
    if (path == NULL) {
        return -1;
    }
    size_t len = strlen(path);
    if (len == 0 || len >= PATH_CAP) {
        return -1;
    }
    memcpy(g_path, path, len + 1);
    return 0;
}

static void close_fd(void)
{
    if (g_fd >= 0) {
        (void)close(g_fd);
        g_fd = -1;
    }
}

static void drop_part(void)
{
    char part[PATH_CAP + 8];
    close_fd();
    part_path(part, sizeof part);
    (void)unlink(part);
}

USMP_WEAK void usmp_port_ota_abort(void)
{
    drop_part();
}

USMP_WEAK int usmp_port_ota_begin(uint32_t image_size, uint64_t version)
{
    (void)image_size;
    (void)version;
    char part[PATH_CAP + 8];
    drop_part(); /* a begin without finish/abort before: start over */
    part_path(part, sizeof part);
    g_fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return g_fd >= 0 ? 0 : -1;
}

USMP_WEAK int usmp_port_ota_write(uint32_t offset, const uint8_t *data, size_t len)
{
    if (g_fd < 0 || data == NULL) {
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(g_fd, data + done, len - done, (off_t)offset + (off_t)done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

USMP_WEAK int usmp_port_ota_finish(uint32_t image_size, uint64_t version)
{
    (void)version;
    char part[PATH_CAP + 8];
    if (g_fd < 0) {
        return -1;
    }
    /* The file must hold exactly the verified image, on disk, before it takes <path>. */
    off_t end = lseek(g_fd, 0, SEEK_END);
    int rc = (end == (off_t)image_size && fsync(g_fd) == 0) ? 0 : -1;
    rc |= close(g_fd);
    g_fd = -1;
    if (rc != 0) {
        return -1;
    }
    part_path(part, sizeof part);
    return rename(part, g_path) == 0 ? 0 : -1;
}

USMP_WEAK int usmp_port_ota_confirm(void)
{
    return 0; /* a host has no bootloader to tell */
}
