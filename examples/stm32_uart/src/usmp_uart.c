/*
 * usmp_transport_t over an STM32F4 USART (register level, RM0090 section 30).
 * The library owns the wire format: this file only moves bytes and asks
 * usmp_frame_size() where a frame ends.
 * SPDX-License-Identifier: Apache-2.0
 */
#include "usmp_uart.h"

#include <string.h>

#include "stm32f405_regs.h"

#define RING_MASK (USMP_UART_RING_SIZE - 1u)
_Static_assert((USMP_UART_RING_SIZE & RING_MASK) == 0u, "USMP_UART_RING_SIZE: a power of two");
_Static_assert(USMP_UART_RING_SIZE >= USMP_MAX_FRAME_SIZE, "the ring must hold a whole frame");

static usmp_uart_t *uart_of(usmp_transport_t *t)
{
    return (t != NULL) ? (usmp_uart_t *)t->ctx : NULL;
}

/* ---- interrupt side ------------------------------------------------------------------- */

void usmp_uart_irq(usmp_uart_t *u)
{
    for (;;) {
        uint32_t sr = USART_SR(u->usart);
        if ((sr & (USART_SR_RXNE | USART_SR_ORE)) == 0u) {
            break;
        }
        /* Reading SR, then DR, clears RXNE and the error flags (ORE, NF, FE, PE). */
        uint8_t b = (uint8_t)USART_DR(u->usart);
        if (!u->open) {
            continue; /* closed: drain and drop */
        }
        if (sr & USART_SR_ORE) {
            u->errors |= USMP_UART_ERR_OVERRUN;
        }
        if (sr & (USART_SR_FE | USART_SR_NF | USART_SR_PE)) {
            u->errors |= USMP_UART_ERR_LINE;
        }
        uint32_t head = u->head;
        if ((uint32_t)(head - u->tail) >= USMP_UART_RING_SIZE) {
            u->errors |= USMP_UART_ERR_RING_FULL;
            continue;
        }
        u->ring[head & RING_MASK] = b;
        compiler_barrier(); /* the byte is stored before the reader can see the new head */
        u->head = head + 1u;
    }
}

/* ---- thread side ---------------------------------------------------------------------- */

static uint32_t ring_count(const usmp_uart_t *u)
{
    return (uint32_t)(u->head - u->tail);
}

static size_t ring_read(usmp_uart_t *u, uint8_t *dst, size_t n)
{
    uint32_t tail = u->tail;
    uint32_t avail = (uint32_t)(u->head - tail);
    if (avail > u->ring_peak) {
        u->ring_peak = avail;
    }
    compiler_barrier();
    size_t take = (n < avail) ? n : avail;
    for (size_t i = 0; i < take; i++) {
        dst[i] = u->ring[(tail + (uint32_t)i) & RING_MASK];
    }
    compiler_barrier(); /* bytes copied out before the slot is handed back */
    u->tail = tail + (uint32_t)take;
    return take;
}

static void flush(usmp_uart_t *u)
{
    cpu_irq_disable();
    u->tail = u->head;
    u->errors = 0;
    cpu_irq_enable();
}

/* Sleeps until an interrupt (a received byte or the 1 ms tick) unless data is already
 * there: with interrupts masked, WFI still wakes on a pending one, so no byte is missed. */
static void wait_for_byte(usmp_uart_t *u)
{
    cpu_irq_disable();
    if (ring_count(u) == 0u && u->errors == 0u) {
        cpu_wfi();
    }
    cpu_irq_enable();
}

static int fail(usmp_uart_t *u)
{
    u->failures++;
    u->open = false;
    flush(u);
    return -1;
}

/* Reads exactly n bytes; each byte must come within stall_ms of the previous one. */
static int read_exact(usmp_uart_t *u, uint8_t *dst, size_t n)
{
    uint32_t last = usmp_port_millis();
    size_t done = 0;
    while (done < n) {
        if (u->errors != 0u) {
            return -1;
        }
        size_t got = ring_read(u, dst + done, n - done);
        if (got > 0u) {
            done += got;
            last = usmp_port_millis();
            continue;
        }
        if ((uint32_t)(usmp_port_millis() - last) >= u->stall_ms) {
            u->stalls++;
            return -1;
        }
        wait_for_byte(u);
    }
    return 0;
}

static int uart_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max_len,
                             uint32_t timeout_ms)
{
    usmp_uart_t *u = uart_of(t);
    if (u == NULL || !u->open || buf == NULL) {
        return -1;
    }
    uint32_t start = usmp_port_millis();
    while (ring_count(u) == 0u) {
        if (u->errors != 0u) {
            return fail(u);
        }
        if ((uint32_t)(usmp_port_millis() - start) >= timeout_ms) {
            u->idle_timeouts++;
            return 0; /* nothing arrived: the library's "no frame yet" */
        }
        wait_for_byte(u);
    }
    uint8_t hdr[USMP_HEADER_SIZE];
    if (read_exact(u, hdr, sizeof hdr) != 0) {
        return fail(u);
    }
    int total = usmp_frame_size(hdr, sizeof hdr);
    if (total < (int)USMP_HEADER_SIZE || (size_t)total > max_len) {
        return fail(u); /* not a frame start, or too big: the stream is out of step */
    }
    memcpy(buf, hdr, sizeof hdr);
    if (read_exact(u, buf + sizeof hdr, (size_t)total - sizeof hdr) != 0) {
        return fail(u);
    }
    u->frames_rx++;
    u->bytes_rx += (uint32_t)total;
    return total;
}

static int uart_recv(usmp_transport_t *t, uint8_t *buf, size_t max_len)
{
    usmp_uart_t *u = uart_of(t);
    return uart_recv_timeout(t, buf, max_len, (u != NULL) ? u->recv_timeout_ms : 0u);
}

static int uart_send(usmp_transport_t *t, const uint8_t *data, size_t len)
{
    usmp_uart_t *u = uart_of(t);
    if (u == NULL || !u->open || (data == NULL && len > 0u)) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        uint32_t start = usmp_port_millis();
        while ((USART_SR(u->usart) & USART_SR_TXE) == 0u) {
            if ((uint32_t)(usmp_port_millis() - start) >= u->stall_ms) {
                u->stalls++;
                return fail(u);
            }
        }
        USART_DR(u->usart) = data[i];
    }
    u->frames_tx++;
    u->bytes_tx += (uint32_t)len;
    return 0;
}

static int uart_available(usmp_transport_t *t)
{
    usmp_uart_t *u = uart_of(t);
    if (u == NULL || !u->open) {
        return 0;
    }
    /* Pending errors count as "something to read": recv then reports them. */
    return (ring_count(u) > 0u || u->errors != 0u) ? 1 : 0;
}

static void uart_close(usmp_transport_t *t)
{
    usmp_uart_t *u = uart_of(t);
    if (u != NULL) {
        u->open = false; /* the interrupt now drains and drops */
        flush(u);
    }
}

/* A serial line has nothing to dial: start over with an empty ring. The TCP side of a
 * bridge is the bridge's business (QEMU: -serial tcp:...,reconnect=1; socat: a loop). */
static int uart_reconnect(usmp_transport_t *t)
{
    usmp_uart_t *u = uart_of(t);
    if (u == NULL) {
        return -1;
    }
    flush(u);
    u->open = true;
    return 0;
}

static void uart_destroy(usmp_transport_t *t)
{
    usmp_uart_t *u = uart_of(t);
    if (u != NULL) {
        u->open = false;
        USART_CR1(u->usart) &= ~USART_CR1_RXNEIE;
        flush(u);
    }
    if (t != NULL) {
        t->ctx = NULL;
    }
}

int usmp_uart_init(usmp_transport_t *t, usmp_uart_t *u, uintptr_t usart, uint32_t pclk_hz,
                   uint32_t baud)
{
    if (t == NULL || u == NULL || usart == 0u || baud == 0u || pclk_hz < 16u * baud) {
        return -1;
    }
    USART_CR1(usart) = 0; /* disabled while configuring */
    memset(u, 0, sizeof *u);
    u->usart = usart;
    u->recv_timeout_ms = USMP_UART_RECV_TIMEOUT_MS;
    u->stall_ms = USMP_UART_STALL_MS;

    /* Oversampling by 16: BRR = USARTDIV * 16 = pclk / baud (mantissa[15:4], fraction[3:0]),
     * rounded to nearest. 84 MHz / 115200 -> 729 = 0x2D9 (45 + 9/16). */
    USART_BRR(usart) = (pclk_hz + baud / 2u) / baud;
    USART_CR2(usart) = 0; /* 1 stop bit */
    USART_CR3(usart) = 0; /* no flow control, no DMA */
    (void)USART_SR(usart);
    (void)USART_DR(usart); /* drop anything stale */
    u->open = true;
    USART_CR1(usart) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;

    memset(t, 0, sizeof *t);
    t->send = uart_send;
    t->recv = uart_recv;
    t->close = uart_close;
    t->reconnect = uart_reconnect;
    t->available = uart_available;
    t->destroy = uart_destroy;
    t->ctx = u;
    t->flags = 0; /* a byte stream */
    t->recv_timeout = uart_recv_timeout;
    return 0;
}
