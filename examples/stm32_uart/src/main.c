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
#include "stm32f405_regs.h"
#include "usmp.h"
#include "usmp_port.h"
#include "stm32_usart.h"
#include "usmp_stm32_config.h"

#define EXIT_OK 0
#define EXIT_USMP 1
#define EXIT_MISMATCH 2
#define EXIT_PORT 4

#define ECHO_WAIT_MS 5000u

static const uint8_t g_psk[] = USMP_STM32_PSK_BYTES;

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

/* Deterministic test content (not random: it only has to differ per message). The first
 * byte is >= 0x80, so no message looks like a text command. */
static void fill_pattern(uint8_t *buf, size_t len, uint32_t tag)
{
    uint32_t x = 0x9E3779B9u ^ (tag * 0x85EBCA6Bu) ^ ((uint32_t)len * 0xC2B2AE35u);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)(x >> 24);
    }
    if (len > 0u) {
        buf[0] |= 0x80u;
    }
}

static int fail_usmp(const char *what, int rc)
{
    console_printf("STEP %s FAILED: %d (%s)\n", what, rc, usmp_err_name(rc));
    return EXIT_USMP;
}

/* Sends g_tx[0..len) and waits for the same bytes to come back. */
static int echo(size_t len, const char *label)
{
    uint32_t t0 = usmp_port_millis();
    int rc = usmp_send(&g_ctx, g_tx, (uint16_t)len);
    if (rc != USMP_OK) {
        return fail_usmp("usmp_send", rc);
    }
    for (;;) {
        int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
        if (n < 0) {
            return fail_usmp("usmp_recv", n);
        }
        if (n > 0) {
            if ((size_t)n != len || memcmp(g_rx, g_tx, len) != 0) {
                console_printf("STEP echo %u FAILED: got %d bytes back, content %s\n",
                               (unsigned)len, n,
                               (size_t)n == len ? "differs" : "-");
                return EXIT_MISMATCH;
            }
            unsigned frames = (unsigned)((len + USMP_MAX_DATA_LEN - 1u) / USMP_MAX_DATA_LEN);
            console_printf("STEP echo %u ok (%s, %u frame%s, %lu ms)\n", (unsigned)len, label,
                           frames ? frames : 1u, frames > 1u ? "s" : "",
                           (unsigned long)(usmp_port_millis() - t0));
            return EXIT_OK;
        }
        rc = usmp_keepalive_tick(&g_ctx);
        if (rc != USMP_OK) {
            return fail_usmp("usmp_keepalive_tick", rc);
        }
        if ((uint32_t)(usmp_port_millis() - t0) >= ECHO_WAIT_MS) {
            console_printf("STEP echo %u FAILED: no echo within %u ms\n", (unsigned)len,
                           ECHO_WAIT_MS);
            return EXIT_USMP;
        }
    }
}

/* Two draws must differ and not be all zero: catches a dead entropy source early. */
static int port_self_check(void)
{
    uint8_t a[32], b[32], zero[32] = {0};
    uint8_t id[USMP_DEVICE_ID_LEN];
    if (usmp_port_get_device_id(id, sizeof id) != 0) {
        console_puts("STEP port FAILED: usmp_port_get_device_id\n");
        return EXIT_PORT;
    }
    console_printf("device id %02x%02x%02x%02x%02x%02x (unique id folded to 6 bytes%s)\n",
                   id[0], id[1], id[2], id[3], id[4], id[5],
                   USMP_STM32_EMULATOR ? ", emulator stand-in" : "");
    if (usmp_port_random(a, sizeof a) != 0 || usmp_port_random(b, sizeof b) != 0) {
        console_puts("STEP port FAILED: usmp_port_random\n");
        return EXIT_PORT;
    }
    if (memcmp(a, b, sizeof a) == 0 || memcmp(a, zero, sizeof a) == 0) {
        console_puts("STEP port FAILED: usmp_port_random returned repeated or zero bytes\n");
        return EXIT_PORT;
    }
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    console_printf("STEP port ok (random: %s)\n",
                   USMP_STM32_EMULATOR ? "host /dev/urandom over semihosting, emulator only"
                                       : "RNG peripheral");
    return EXIT_OK;
}

static int session(void);

static int run(void)
{
    int rc = port_self_check();
    if (rc != EXIT_OK) {
        return rc;
    }
    if (stm32_usart_transport_init(&g_tr, &g_uart, &g_usart, USART1_BASE, board_pclk2_hz(),
                                   USMP_STM32_UART_BAUD, USMP_STM32_FRAMING) != 0) {
        console_puts("STEP uart FAILED: stm32_usart_transport_init\n");
        return EXIT_PORT;
    }

    g_ctx.psk = g_psk;
    g_ctx.psk_len = sizeof g_psk;
    g_ctx.keepalive_ms = USMP_STM32_KEEPALIVE_MS;
    g_ctx.protocol_version = USMP_STM32_WIRE;

    uint32_t t0 = usmp_port_millis();
    rc = usmp_connect(&g_ctx, &g_tr);
    if (rc != USMP_OK) {
        return fail_usmp("connect", rc);
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

    static const char hello[] = "hello from an STM32F405 over USART1";
    memcpy(g_tx, hello, sizeof hello - 1u);
    if ((rc = echo(sizeof hello - 1u, "text")) != EXIT_OK) {
        return rc;
    }
    static const struct {
        uint16_t len;
        const char *label;
    } sizes[] = {
        {1, "smallest"},
        {452, "one full frame"},
        {453, "fragmented"},
        {1000, "fragmented"},
        {USMP_MAX_MESSAGE_LEN, "largest, fragmented"},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fill_pattern(g_tx, sizes[i].len, (uint32_t)i);
        if ((rc = echo(sizes[i].len, sizes[i].label)) != EXIT_OK) {
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
            return fail_usmp("usmp_keepalive_tick", rc);
        }
        int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
        polls++;
        if (n < 0) {
            return fail_usmp("usmp_recv while idle", n);
        }
        if (n > 0) {
            console_printf("STEP keepalive FAILED: unexpected %d-byte message\n", n);
            return EXIT_MISMATCH;
        }
    }
    console_printf("STEP keepalive ok (idle %lu ms > keepalive_ms=%u: usmp_keepalive_tick sent "
                   "a PING; %u usmp_recv polls)\n",
                   (unsigned long)idle, (unsigned)USMP_STM32_KEEPALIVE_MS, polls);

    fill_pattern(g_tx, 64, 99);
    if ((rc = echo(64, "after the keepalive")) != EXIT_OK) {
        return rc;
    }

    return EXIT_OK;
}

int main(void)
{
    bool clocks = board_init();
    console_printf("usmp %s on STM32F405 (%s build), wire v%u, USART1 at %lu baud, HCLK %lu Hz\n",
                   usmp_get_version(), USMP_STM32_EMULATOR ? "EMULATOR" : "hardware",
                   (unsigned)USMP_STM32_WIRE, (unsigned long)USMP_STM32_UART_BAUD,
                   (unsigned long)board_hclk_hz());
    if (!clocks) {
        console_puts("warning: the PLL did not start; running on HSI 16 MHz without the RNG\n");
    }
    usmp_set_log_level(USMP_LOG_LEVEL_INFO);

    int status = run();

    const usmp_uart_stats_t *us = &g_uart.stats;
    console_printf("uart: tx %lu frames/%lu bytes, rx %lu frames/%lu bytes, idle timeouts %lu, "
                   "stalls %lu, failures %lu, dropped %lu (%s framing), ring peak %lu of %u, "
                   "line errors %lu\n",
                   (unsigned long)us->frames_tx, (unsigned long)us->bytes_tx,
                   (unsigned long)us->frames_rx, (unsigned long)us->bytes_rx,
                   (unsigned long)us->idle_timeouts, (unsigned long)us->stalls,
                   (unsigned long)us->failures, (unsigned long)us->dropped,
                   USMP_STM32_FRAMING == USMP_UART_FRAMING_RAW ? "raw" : "COBS",
                   (unsigned long)g_usart.ring_peak, (unsigned)STM32_USART_RING_SIZE,
                   (unsigned long)(g_usart.overruns + g_usart.line_errors + g_usart.ring_full));
    usmp_stats_t ls;
    if (USMP_STM32_FRAMING != USMP_UART_FRAMING_RAW && usmp_get_stats(&g_ctx, &ls) == USMP_OK) {
        console_printf("link: retransmits %lu, duplicates %lu, rejected %lu, bad acks %lu\n",
                       (unsigned long)ls.retransmits, (unsigned long)ls.duplicates,
                       (unsigned long)ls.rejected, (unsigned long)ls.bad_acks);
    }
    console_printf("stack: %u of %u bytes used (high-water mark)\n",
                   (unsigned)board_stack_used(), (unsigned)board_stack_size());
    console_printf("RESULT %s (exit %d, %lu ms)\n", status == EXIT_OK ? "PASS" : "FAIL", status,
                   (unsigned long)usmp_port_millis());
    return status;
}
