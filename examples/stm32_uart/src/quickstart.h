/*
 * What the two quickstart firmwares share: the blocking one (main.c, usmp_connect/send/recv)
 * and the superloop (superloop_main.c, usmp_nb_*). The messages they echo, their test
 * content, the setup before the session (port self-check, USART1 as the library's UART
 * transport, the session's settings) and the closing report (UART and link counters,
 * stack high-water mark, RESULT line). Exit status: 0 all passed, 1 a usmp call failed,
 * 2 an echo came back wrong, 3 a CPU fault, 4 a port self-check failed.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef QUICKSTART_H
#define QUICKSTART_H

#include <stddef.h>
#include <stdint.h>

#include "stm32_usart.h"
#include "usmp.h"

#define EXIT_OK 0
#define EXIT_USMP 1
#define EXIT_MISMATCH 2
#define EXIT_PORT 4

/* The first message: text. */
#define QS_HELLO "hello from an STM32F405 over USART1"

/* Then these, with content from qs_fill_pattern(tag = index), and after the keepalive one
 * more of QS_LAST_LEN bytes (tag QS_LAST_TAG). */
typedef struct {
    uint16_t len;
    const char *label;
} qs_message_t;
extern const qs_message_t qs_messages[];
extern const size_t qs_message_count;
#define QS_LAST_LEN 64u
#define QS_LAST_TAG 99u

/* Deterministic test content; the first byte is >= 0x80 (no message looks like a text
 * command of the test gateway). */
void qs_fill_pattern(uint8_t *buf, size_t len, uint32_t tag);

/* Frames a message of `len` bytes takes on the wire. */
unsigned qs_frames(size_t len);

/* Prints "STEP <what> FAILED: rc (name)"; returns EXIT_USMP. */
int qs_fail_usmp(const char *what, int rc);

/* Board bring-up, the banner line (library version, board, `variant`), the library's log
 * level. */
void qs_start(const char *variant);

/* Before a session: the port hooks' self-check, USART1 as the library's UART transport
 * (USMP_STM32_FRAMING) in `tr`, and `ctx`'s settings (PSK, keepalive_ms, wire version).
 * EXIT_OK or EXIT_PORT (printed). */
int qs_setup(usmp_t *ctx, usmp_transport_t *tr, usmp_uart_ctx_t *uart, stm32_usart_t *usart);

/* The closing report (uart:, link:, stack:, RESULT lines); returns `status`. */
int qs_report(int status, usmp_t *ctx, const usmp_uart_ctx_t *uart, const stm32_usart_t *usart);

#endif /* QUICKSTART_H */
