/*
 * Arm semihosting (BKPT 0xAB on M-profile): a debugger or an emulator serves these calls
 * on the host. Without one attached, BKPT faults: build with USMP_STM32_SEMIHOSTING=OFF
 * for a board that runs on its own.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

#include <stddef.h>
#include <stdint.h>

/* Operation numbers of the semihosting specification. */
#define SH_SYS_OPEN 0x01u
#define SH_SYS_CLOSE 0x02u
#define SH_SYS_WRITE0 0x04u
#define SH_SYS_READ 0x06u
#define SH_SYS_EXIT 0x18u
#define SH_SYS_EXIT_EXTENDED 0x20u

/* Reason code of SYS_EXIT / SYS_EXIT_EXTENDED for a normal application exit. */
#define SH_ADP_STOPPED_APPLICATION_EXIT 0x20026u
/* ... and for an abnormal end (plain SYS_EXIT cannot carry a status). */
#define SH_ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023u

/* One call: op in r0, the argument (usually a pointer to a parameter block) in r1. */
int32_t sh_call(uint32_t op, const void *arg);

/* Writes a NUL-terminated string to the host console. */
void sh_write0(const char *s);

/* Ends the program with `status` as the host's exit code (SYS_EXIT_EXTENDED). */
__attribute__((noreturn)) void sh_exit(int status);

/* Reads `len` bytes of the host file `path` ("/dev/urandom") into `out`: 0 or -1.
 * Opens, reads (as often as the host returns short reads) and closes. */
int sh_read_file(const char *path, uint8_t *out, size_t len);

#endif /* SEMIHOSTING_H */
