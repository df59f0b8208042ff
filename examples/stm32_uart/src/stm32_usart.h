/*
 * An STM32F4 USART as the two byte hooks of the library's UART transport
 * (usmp_transport_uart_init, usmp.h): RX interrupt driven into a ring, TX polled. The
 * framing (COBS datagrams, or raw frames) is the library's; this file only moves bytes.
 *
 *   static stm32_usart_t usart;        // the ring lives here: no heap
 *   static usmp_uart_ctx_t uart;       // the transport's state
 *   stm32_usart_transport_init(&tr, &uart, &usart, USART1_BASE, board_pclk2_hz(), 115200,
 *                              USMP_UART_FRAMING_COBS);
 *   void USART1_IRQHandler(void) { stm32_usart_irq(&usart); }   // + NVIC, pins, clock
 *
 * Line errors (overrun, framing, noise, parity) and a full ring are counted, not fatal:
 * the bytes (or their loss) go on to the framing, which drops the damaged frame (COBS; the
 * library sends it again) or ends the session (raw).
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef STM32_USART_H
#define STM32_USART_H

#include <stddef.h>
#include <stdint.h>

#include "usmp.h"

/* RX ring size (power of two). 4096 holds two whole 1808-byte messages (4 frames each)
 * while the core is busy decrypting. */
#ifndef STM32_USART_RING_SIZE
#define STM32_USART_RING_SIZE 4096u
#endif

typedef struct stm32_usart_s {
    uintptr_t usart; /* USART register base, e.g. USART1_BASE */
    /* ring: written by the interrupt (head), read by the hooks (tail) */
    volatile uint32_t head;
    volatile uint32_t tail;
    uint8_t ring[STM32_USART_RING_SIZE];
    /* counted by the interrupt */
    volatile uint32_t overruns;    /* USART ORE: a byte arrived before the last was read */
    volatile uint32_t line_errors; /* framing, noise or parity error */
    volatile uint32_t ring_full;   /* bytes lost because the reader fell behind */
    uint32_t ring_peak;            /* most bytes ever waiting in the ring */
    /* counted by the read hook */
    uint32_t reads;                /* calls */
    uint32_t reads_waiting;        /* calls allowed to wait (timeout_ms > 0) */
} stm32_usart_t;

/* Configures the USART (8N1, `baud` from `pclk_hz`, RX interrupt on). The caller has
 * enabled its clock, pins and NVIC line, and calls stm32_usart_irq() from its interrupt
 * handler. Returns 0, or -1 for bad arguments. */
int stm32_usart_init(stm32_usart_t *u, uintptr_t usart, uint32_t pclk_hz, uint32_t baud);

/* The body of the USART's interrupt handler. */
void stm32_usart_irq(stm32_usart_t *u);

/* The hooks (user = the stm32_usart_t). */
int stm32_usart_read(void *user, uint8_t *buf, size_t len, uint32_t timeout_ms);
int stm32_usart_write(void *user, const uint8_t *data, size_t len, uint32_t timeout_ms);
int stm32_usart_available(void *user);

/* stm32_usart_init, then usmp_transport_uart_init over the hooks with `framing`
 * (USMP_UART_FRAMING_COBS or USMP_UART_FRAMING_RAW) and the default timeouts. */
int stm32_usart_transport_init(usmp_transport_t *t, usmp_uart_ctx_t *ctx, stm32_usart_t *u,
                               uintptr_t usart, uint32_t pclk_hz, uint32_t baud,
                               uint8_t framing);

#endif /* STM32_USART_H */
