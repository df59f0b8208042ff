/*
 * Arm semihosting calls. SPDX-License-Identifier: Apache-2.0
 */
#include "semihosting.h"

#include <string.h>

int32_t sh_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

void sh_write0(const char *s)
{
    (void)sh_call(SH_SYS_WRITE0, s);
}

void sh_exit(int status)
{
    /* SYS_EXIT_EXTENDED carries an exit code; plain SYS_EXIT on AArch32 only tells
     * "application exit" (0) from anything else (1). QEMU and OpenOCD know both. */
    const uint32_t block[2] = {SH_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    (void)sh_call(SH_SYS_EXIT_EXTENDED, block);
    const uint32_t reason =
        status == 0 ? SH_ADP_STOPPED_APPLICATION_EXIT : SH_ADP_STOPPED_RUNTIME_ERROR_UNKNOWN;
    (void)sh_call(SH_SYS_EXIT, (const void *)(uintptr_t)reason); /* host without _EXTENDED */
    for (;;) {
        __asm__ volatile("wfi");
    }
}

int sh_read_file(const char *path, uint8_t *out, size_t len)
{
    /* SYS_OPEN: {name, mode, strlen(name)}; mode 1 = "rb". Returns a handle or -1. */
    const uint32_t open_block[3] = {(uint32_t)(uintptr_t)path, 1u, (uint32_t)strlen(path)};
    int32_t handle = sh_call(SH_SYS_OPEN, open_block);
    if (handle < 0) {
        return -1;
    }
    int rc = 0;
    size_t done = 0;
    while (done < len) {
        /* SYS_READ: {handle, buffer, count}; returns the number of bytes NOT read. */
        const uint32_t read_block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)(out + done),
                                        (uint32_t)(len - done)};
        int32_t left = sh_call(SH_SYS_READ, read_block);
        if (left < 0 || (size_t)left >= len - done) { /* error or end of file */
            rc = -1;
            break;
        }
        done += (len - done) - (size_t)left;
    }
    const uint32_t close_block[1] = {(uint32_t)handle};
    if (sh_call(SH_SYS_CLOSE, close_block) != 0) {
        rc = -1;
    }
    return rc;
}
