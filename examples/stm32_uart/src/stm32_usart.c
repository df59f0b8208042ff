/*
 * An STM32F4 USART (register level, RM0090 section 30) as byte hooks for the library's
 * UART transport. See stm32_usart.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#include "stm32_usart.h"

#include <string.h>

#include "stm32f405_regs.h"
#include "usmp_port.h"

#define RING_MASK (STM32_USART_RING_SIZE - 1u)
_Static_assert((STM32_USART_RING_SIZE & RING_MASK) == 0u, "STM32_USART_RING_SIZE: a power of two");

/* ---- interrupt side ------------------------------------------------------------------- */

void stm32_usart_irq(stm32_usart_t *u)
{
    for (;;) {
        uint32_t sr = USART_SR(u->usart);
        if ((sr & (USART_SR_RXNE | USART_SR_ORE)) == 0u) {
            break;
        }
        /* Reading SR, then DR, clears RXNE and the error flags (ORE, NF, FE, PE). */
        uint8_t b = (uint8_t)USART_DR(u->usart);
        if (sr & USART_SR_ORE) {
            u->overruns++;
        }
        if (sr & (USART_SR_FE | USART_SR_NF | USART_SR_PE)) {
            u->line_errors++;
        }
        uint32_t head = u->head;
        if ((uint32_t)(head - u->tail) >= STM32_USART_RING_SIZE) {
            u->ring_full++;
            continue;
        }
        u->ring[head & RING_MASK] = b;
        compiler_barrier(); /* the byte is stored before the reader can see the new head */
        u->head = head + 1u;
    }
}

/* ---- thread side ---------------------------------------------------------------------- */

static uint32_t ring_count(const stm32_usart_t *u)
{
    return (uint32_t)(u->head - u->tail);
}

int stm32_usart_available(void *user)
{
    return ring_count((const stm32_usart_t *)user) > 0u ? 1 : 0;
}

int stm32_usart_read(void *user, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    stm32_usart_t *u = (stm32_usart_t *)user;
    if (u == NULL || buf == NULL || len == 0u) {
        return -1;
    }
    u->reads++;
    if (timeout_ms > 0u) {
        u->reads_waiting++;
    }
    uint32_t start = usmp_port_millis();
    for (;;) {
        /* Sleep until an interrupt (a received byte or the 1 ms tick) unless data is
         * already there: with interrupts masked, WFI still wakes on a pending one, so no
         * byte is missed between the check and the sleep. */
        cpu_irq_disable();
        uint32_t avail = ring_count(u);
        if (avail == 0u && (uint32_t)(usmp_port_millis() - start) < timeout_ms) {
            cpu_wfi();
        }
        cpu_irq_enable();
        if (avail > 0u) {
            break;
        }
        if ((uint32_t)(usmp_port_millis() - start) >= timeout_ms) {
            return 0;
        }
    }
    uint32_t tail = u->tail;
    uint32_t avail = (uint32_t)(u->head - tail);
    if (avail > u->ring_peak) {
        u->ring_peak = avail;
    }
    compiler_barrier();
    size_t take = (len < avail) ? len : avail;
    for (size_t i = 0; i < take; i++) {
        buf[i] = u->ring[(tail + (uint32_t)i) & RING_MASK];
    }
    compiler_barrier(); /* bytes copied out before the slots are handed back */
    u->tail = tail + (uint32_t)take;
    return (int)take;
}

int stm32_usart_write(void *user, const uint8_t *data, size_t len, uint32_t timeout_ms)
{
    stm32_usart_t *u = (stm32_usart_t *)user;
    if (u == NULL || (data == NULL && len > 0u)) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        uint32_t start = usmp_port_millis();
        while ((USART_SR(u->usart) & USART_SR_TXE) == 0u) {
            if ((uint32_t)(usmp_port_millis() - start) >= timeout_ms) {
                return -1;
            }
        }
        USART_DR(u->usart) = data[i];
    }
    return 0;
}

int stm32_usart_init(stm32_usart_t *u, uintptr_t usart, uint32_t pclk_hz, uint32_t baud)
{
    if (u == NULL || usart == 0u || baud == 0u || pclk_hz < 16u * baud) {
        return -1;
    }
    USART_CR1(usart) = 0; /* disabled while configuring */
    memset(u, 0, sizeof *u);
    u->usart = usart;
    /* Oversampling by 16: BRR = USARTDIV * 16 = pclk / baud (mantissa[15:4], fraction[3:0]),
     * rounded to nearest. 84 MHz / 115200 -> 729 = 0x2D9 (45 + 9/16). */
    USART_BRR(usart) = (pclk_hz + baud / 2u) / baud;
    USART_CR2(usart) = 0; /* 1 stop bit */
    USART_CR3(usart) = 0; /* no flow control, no DMA */
    (void)USART_SR(usart);
    (void)USART_DR(usart); /* drop anything stale */
    USART_CR1(usart) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    return 0;
}

int stm32_usart_transport_init(usmp_transport_t *t, usmp_uart_ctx_t *ctx, stm32_usart_t *u,
                               uintptr_t usart, uint32_t pclk_hz, uint32_t baud,
                               uint8_t framing)
{
    if (stm32_usart_init(u, usart, pclk_hz, baud) != 0) {
        return -1;
    }
    usmp_uart_io_t io = {
        .read = stm32_usart_read,
        .write = stm32_usart_write,
        .available = stm32_usart_available,
        .user = u,
        .framing = framing,
    };
    return usmp_transport_uart_init(t, ctx, &io) == USMP_OK ? 0 : -1;
}
