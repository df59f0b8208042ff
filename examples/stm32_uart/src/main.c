/*
 * stm32_uart: the usmp quickstart on a bare-metal STM32F405, with the gateway at the far
 * end of USART1 (a serial-to-TCP bridge in between: socat for a board, QEMU's
 * -serial tcp:HOST:PORT for the emulator).
 *
 * Handshake, echoes of several sizes (up to a 4-fragment 1808-byte message), an idle
 * period in which usmp_keepalive_tick() sends a PING, one more echo, BYE (usmp_close).
 * Prints each step; main's return value is the exit status (semihosting: the host's exit
 * code): 0 all passed, 1 a usmp call failed, 2 an echo came back wrong, 3 a CPU fault,
 * 4 a port self-check failed.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdbool.h>
#include <string.h>

#include "board.h"
#include "console.h"
#include "quickstart.h"
#include "usmp.h"
#include "usmp_port.h"
#include "stm32_usart.h"
#include "usmp_stm32_config.h"

#define ECHO_WAIT_MS 5000u

static stm32_usart_t g_usart;    /* the USART's RX ring: no heap anywhere */
static usmp_uart_ctx_t g_uart;   /* the library's UART transport (COBS or raw framing) */
static usmp_transport_t g_tr;
static usmp_t g_ctx;
static uint8_t g_tx[USMP_MAX_MESSAGE_LEN];
static uint8_t g_rx[USMP_MAX_MESSAGE_LEN];

void USART1_IRQHandler(void)
{
    stm32_usart_irq(&g_usart);
}

/* Sends g_tx[0..len) and waits for the same bytes to come back. */
static int echo(size_t len, const char *label)
{
    uint32_t t0 = usmp_port_millis();
    int rc = usmp_send(&g_ctx, g_tx, (uint16_t)len);
    if (rc != USMP_OK) {
        return qs_fail_usmp("usmp_send", rc);
    }
    for (;;) {
        int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
        if (n < 0) {
            return qs_fail_usmp("usmp_recv", n);
        }
        if (n > 0) {
            if ((size_t)n != len || memcmp(g_rx, g_tx, len) != 0) {
                console_printf("STEP echo %u FAILED: got %d bytes back, content %s\n",
                               (unsigned)len, n,
                               (size_t)n == len ? "differs" : "-");
                return EXIT_MISMATCH;
            }
            unsigned frames = qs_frames(len);
            console_printf("STEP echo %u ok (%s, %u frame%s, %lu ms)\n", (unsigned)len, label,
                           frames, frames > 1u ? "s" : "",
                           (unsigned long)(usmp_port_millis() - t0));
            return EXIT_OK;
        }
        rc = usmp_keepalive_tick(&g_ctx);
        if (rc != USMP_OK) {
            return qs_fail_usmp("usmp_keepalive_tick", rc);
        }
        if ((uint32_t)(usmp_port_millis() - t0) >= ECHO_WAIT_MS) {
            console_printf("STEP echo %u FAILED: no echo within %u ms\n", (unsigned)len,
                           ECHO_WAIT_MS);
            return EXIT_USMP;
        }
    }
}

static int session(void);

static int run(void)
{
    int rc = qs_setup(&g_ctx, &g_tr, &g_uart, &g_usart);
    if (rc != EXIT_OK) {
        return rc;
    }

    uint32_t t0 = usmp_port_millis();
    rc = usmp_connect(&g_ctx, &g_tr);
    if (rc != USMP_OK) {
        return qs_fail_usmp("connect", rc);
    }
    console_printf("STEP connect ok (wire v%u, %lu ms)\n", (unsigned)USMP_STM32_WIRE,
                   (unsigned long)(usmp_port_millis() - t0));

    rc = session();
    usmp_close(&g_ctx); /* best-effort BYE, keys zeroized, transport closed */
    if (rc == EXIT_OK) {
        console_printf("STEP bye ok (usmp_close, connected=%d)\n",
                       usmp_is_connected(&g_ctx) ? 1 : 0);
    }
    g_tr.destroy(&g_tr);
    return rc;
}

/* What the application does with its session: echoes, a keepalive, one more echo. */
static int session(void)
{
    int rc;

    static const char hello[] = QS_HELLO;
    memcpy(g_tx, hello, sizeof hello - 1u);
    if ((rc = echo(sizeof hello - 1u, "text")) != EXIT_OK) {
        return rc;
    }
    for (size_t i = 0; i < qs_message_count; i++) {
        qs_fill_pattern(g_tx, qs_messages[i].len, (uint32_t)i);
        if ((rc = echo(qs_messages[i].len, qs_messages[i].label)) != EXIT_OK) {
            return rc;
        }
    }

    /* Stay idle past keepalive_ms: usmp_keepalive_tick() sends a PING, the gateway's PONG
     * is consumed inside usmp_recv() (which returns 0: no message). */
    uint32_t idle = USMP_STM32_KEEPALIVE_MS + USMP_STM32_KEEPALIVE_MS / 4u + 100u;
    uint32_t t1 = usmp_port_millis();
    unsigned polls = 0;
    while ((uint32_t)(usmp_port_millis() - t1) < idle) {
        rc = usmp_keepalive_tick(&g_ctx);
        if (rc != USMP_OK) {
            return qs_fail_usmp("usmp_keepalive_tick", rc);
        }
        int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
        polls++;
        if (n < 0) {
            return qs_fail_usmp("usmp_recv while idle", n);
        }
        if (n > 0) {
            console_printf("STEP keepalive FAILED: unexpected %d-byte message\n", n);
            return EXIT_MISMATCH;
        }
    }
    console_printf("STEP keepalive ok (idle %lu ms > keepalive_ms=%u: usmp_keepalive_tick sent "
                   "a PING; %u usmp_recv polls)\n",
                   (unsigned long)idle, (unsigned)USMP_STM32_KEEPALIVE_MS, polls);

    qs_fill_pattern(g_tx, QS_LAST_LEN, QS_LAST_TAG);
    if ((rc = echo(QS_LAST_LEN, "after the keepalive")) != EXIT_OK) {
        return rc;
    }

    return EXIT_OK;
}

int main(void)
{
    qs_start("");
    return qs_report(run(), &g_ctx, &g_uart, &g_usart);
}
