/*
 * Arm semihosting, just what the measurement firmware needs (QEMU serves it with
 * -semihosting-config enable=on,target=native): console text and the exit status.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_BENCH_SEMIHOST_H
#define USMP_BENCH_SEMIHOST_H

#include <stdint.h>

static inline int32_t sh_op(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

/* SYS_WRITE0: a NUL-terminated string to the host's stdout. */
static inline void sh_puts(const char *s) { (void)sh_op(0x04u, s); }

/* SYS_EXIT_EXTENDED (ADP_Stopped_ApplicationExit, status); SYS_EXIT as a fallback. */
__attribute__((noreturn)) static inline void sh_exit(int status)
{
    const uint32_t block[2] = {0x20026u, (uint32_t)status};
    (void)sh_op(0x20u, block);
    (void)sh_op(0x18u, (const void *)(uintptr_t)(status == 0 ? 0x20026u : 0x20023u));
    for (;;) __asm__ volatile("wfi");
}

#endif
