/*
 * Text console of the example: semihosting SYS_WRITE0 (USMP_STM32_SEMIHOSTING=ON, the
 * emulator default) or USART2 TX on PA2 at USMP_STM32_CONSOLE_BAUD (a board on its own).
 * A small printf of its own: %d %i %u %x %X %c %s %p %%, widths, 0 and - flags, l and z.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef CONSOLE_H
#define CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

void console_init(void);
void console_puts(const char *s);
__attribute__((format(printf, 1, 2))) void console_printf(const char *fmt, ...);
int fmt_vsnprintf(char *out, size_t cap, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) int fmt_snprintf(char *out, size_t cap, const char *fmt, ...);

#endif /* CONSOLE_H */
