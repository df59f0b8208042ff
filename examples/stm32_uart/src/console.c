/*
 * Console output and a small formatter (no newlib stdio: it would pull in malloc).
 * SPDX-License-Identifier: Apache-2.0
 */
#include "console.h"

#include <stdbool.h>
#include <stdint.h>

#include "board.h"
#include "semihosting.h"
#include "stm32f405_regs.h"
#include "usmp_stm32_config.h"

void console_init(void)
{
#if !USMP_STM32_SEMIHOSTING
    /* USART2 TX on PA2 (AF7), 8N1, TX only. PA2 = MODER bits [5:4]. */
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART2EN;
    (void)RCC_APB1ENR; /* the enable takes effect before the first access */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~(3u << 4)) | (2u << 4);
    GPIO_OSPEEDR(GPIOA_BASE) |= (2u << 4);
    GPIO_AFRL(GPIOA_BASE) = (GPIO_AFRL(GPIOA_BASE) & ~(0xFu << 8)) | (7u << 8);
    USART_CR1(USART2_BASE) = 0;
    USART_BRR(USART2_BASE) = (board_pclk1_hz() + USMP_STM32_CONSOLE_BAUD / 2u) / USMP_STM32_CONSOLE_BAUD;
    USART_CR1(USART2_BASE) = USART_CR1_UE | USART_CR1_TE;
#endif
}

#if !USMP_STM32_SEMIHOSTING
static void uart2_putc(char c)
{
    /* Bounded wait: a console must never hang the firmware. */
    for (uint32_t spin = 0; spin < 1000000u; spin++) {
        if (USART_SR(USART2_BASE) & USART_SR_TXE) {
            USART_DR(USART2_BASE) = (uint8_t)c;
            return;
        }
    }
}
#endif

void console_puts(const char *s)
{
#if USMP_STM32_SEMIHOSTING
    sh_write0(s);
#else
    for (; *s != '\0'; s++) {
        if (*s == '\n') {
            uart2_putc('\r');
        }
        uart2_putc(*s);
    }
#endif
}

void console_printf(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    (void)fmt_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    console_puts(line);
}

/* ---- formatter ------------------------------------------------------------------------ */

typedef struct {
    char *out;
    size_t cap;
    size_t len;
} sink_t;

static void put(sink_t *s, char c)
{
    if (s->len + 1 < s->cap) {
        s->out[s->len] = c;
    }
    s->len++;
}

static void put_padded(sink_t *s, const char *str, size_t n, unsigned width, bool left, char pad)
{
    size_t fill = width > n ? width - n : 0;
    if (!left) {
        while (fill-- > 0) {
            put(s, pad);
        }
    }
    for (size_t i = 0; i < n; i++) {
        put(s, str[i]);
    }
    if (left) {
        while (fill-- > 0) {
            put(s, ' ');
        }
    }
}

int fmt_snprintf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = fmt_vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n;
}

int fmt_vsnprintf(char *out, size_t cap, const char *fmt, va_list ap)
{
    sink_t s = {out, cap, 0};
    for (const char *p = fmt; *p != '\0'; p++) {
        if (*p != '%') {
            put(&s, *p);
            continue;
        }
        p++;
        bool left = false;
        char pad = ' ';
        for (; *p == '-' || *p == '0'; p++) {
            if (*p == '-') {
                left = true;
            } else {
                pad = '0';
            }
        }
        unsigned width = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            width = width * 10u + (unsigned)(*p - '0');
        }
        bool is_long = false;
        bool is_size = false;
        for (; *p == 'l' || *p == 'z'; p++) {
            if (*p == 'l') {
                is_long = true;
            } else {
                is_size = true;
            }
        }
        char buf[12];
        size_t n = 0;
        switch (*p) {
        case '\0':
            p--;
            break;
        case 'c': {
            char c = (char)va_arg(ap, int);
            put_padded(&s, &c, 1, width, left, ' ');
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (str == NULL) {
                str = "(null)";
            }
            size_t len = 0;
            while (str[len] != '\0') {
                len++;
            }
            put_padded(&s, str, len, width, left, ' ');
            break;
        }
        case 'd':
        case 'i': {
            long v = is_long ? va_arg(ap, long) : is_size ? (long)va_arg(ap, size_t) : va_arg(ap, int);
            bool neg = v < 0;
            unsigned long u = neg ? 0ul - (unsigned long)v : (unsigned long)v;
            do {
                buf[sizeof buf - 1 - n++] = (char)('0' + u % 10u);
                u /= 10u;
            } while (u != 0);
            if (neg) {
                if (pad == '0' && width > 0) {
                    put(&s, '-');
                    width--;
                } else {
                    buf[sizeof buf - 1 - n++] = '-';
                }
            }
            put_padded(&s, buf + sizeof buf - n, n, width, left, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'p': {
            unsigned long u;
            unsigned base = (*p == 'u') ? 10u : 16u;
            const char *digits = (*p == 'X') ? "0123456789ABCDEF" : "0123456789abcdef";
            if (*p == 'p') {
                u = (unsigned long)(uintptr_t)va_arg(ap, void *);
                put(&s, '0');
                put(&s, 'x');
                width = 8;
                pad = '0';
            } else if (is_long) {
                u = va_arg(ap, unsigned long);
            } else if (is_size) {
                u = (unsigned long)va_arg(ap, size_t);
            } else {
                u = va_arg(ap, unsigned);
            }
            do {
                buf[sizeof buf - 1 - n++] = digits[u % base];
                u /= base;
            } while (u != 0);
            put_padded(&s, buf + sizeof buf - n, n, width, left, pad);
            break;
        }
        default:
            put(&s, '%');
            put(&s, *p);
            break;
        }
    }
    if (cap > 0) {
        out[s.len < cap ? s.len : cap - 1] = '\0';
    }
    return (int)s.len;
}
