/*
 * usmp_transport_t over an STM32F4 USART: a byte stream. RX is interrupt driven into a
 * ring buffer; TX is polled. The frames go over the wire unchanged, so a serial-to-TCP
 * bridge (socat on a PC, QEMU's -serial tcp:HOST:PORT) connects the board to a TCP
 * gateway directly.
 *
 *   static usmp_uart_t uart;                                   // zero-heap: your storage
 *   usmp_uart_init(&tr, &uart, USART1_BASE, board_pclk2_hz(), 115200);
 *   void USART1_IRQHandler(void) { usmp_uart_irq(&uart); }    // + NVIC enable, pins, clock
 *
 * recv: waits up to recv_timeout_ms for a frame to start (0 = nothing arrived), reads the
 * 12-byte header, asks usmp_frame_size() for the length, reads the rest; -1 when bytes
 * stop for stall_ms inside a frame, on a header usmp_frame_size() refuses, a frame larger
 * than the caller's buffer, a receive overrun (hardware or ring) or a line error. After
 * -1 the stream is out of step: the transport is closed (the RX ring is flushed and
 * send/recv return -1) until reconnect() clears it.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_UART_H
#define USMP_UART_H

#include <stdbool.h>
#include <stdint.h>

#include "usmp.h"

/* RX ring size (power of two). 4096 holds two whole 1808-byte messages (4 frames each,
 * 1968 bytes) while the core is busy decrypting. */
#ifndef USMP_UART_RING_SIZE
#define USMP_UART_RING_SIZE 4096u
#endif
/* Default idle receive timeout: an idle usmp_recv() returns 0 after this long (ms). */
#ifndef USMP_UART_RECV_TIMEOUT_MS
#define USMP_UART_RECV_TIMEOUT_MS 50u
#endif
/* Inside a frame (or while sending), give up when no byte moves for this long (ms). */
#ifndef USMP_UART_STALL_MS
#define USMP_UART_STALL_MS 2000u
#endif

#define USMP_UART_ERR_OVERRUN 1u   /* USART ORE: a byte arrived before the last was read */
#define USMP_UART_ERR_LINE 2u      /* framing, noise or parity error */
#define USMP_UART_ERR_RING_FULL 4u /* the ring overflowed: the reader fell behind */

typedef struct usmp_uart_s {
    uintptr_t usart;          /* USART register base, e.g. USART1_BASE */
    uint32_t recv_timeout_ms; /* idle timeout of recv (set by init to the default) */
    uint32_t stall_ms;        /* no-progress limit inside a frame */
    bool open;
    /* ring: written by the interrupt (head), read by the transport (tail) */
    volatile uint32_t head;
    volatile uint32_t tail;
    volatile uint32_t errors; /* USMP_UART_ERR_* seen since the last flush */
    uint8_t ring[USMP_UART_RING_SIZE];
    /* counters, for the curious */
    uint32_t frames_rx, frames_tx, bytes_rx, bytes_tx, idle_timeouts, stalls, failures;
    uint32_t ring_peak; /* most bytes ever waiting in the ring */
} usmp_uart_t;

/* Configures the USART (8N1, `baud` from `pclk_hz`, RX interrupt on) and fills in every
 * member of *t. The caller has enabled the USART's clock, its pins and its NVIC line,
 * and calls usmp_uart_irq() from the USART's interrupt handler. Returns 0, or -1 for
 * bad arguments. */
int usmp_uart_init(usmp_transport_t *t, usmp_uart_t *u, uintptr_t usart, uint32_t pclk_hz,
                   uint32_t baud);

/* The body of the USART's interrupt handler. */
void usmp_uart_irq(usmp_uart_t *u);

#endif /* USMP_UART_H */
