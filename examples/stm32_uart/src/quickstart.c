/*
 * The quickstart's shared pieces. See quickstart.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#include "quickstart.h"

#include <stdbool.h>
#include <string.h>

#include "board.h"
#include "console.h"
#include "stm32f405_regs.h"
#include "usmp_port.h"
#include "usmp_stm32_config.h"

static const uint8_t g_psk[] = USMP_STM32_PSK_BYTES;

const qs_message_t qs_messages[] = {
    {1, "smallest"},
    {452, "one full frame"},
    {453, "fragmented"},
    {1000, "fragmented"},
    {USMP_MAX_MESSAGE_LEN, "largest, fragmented"},
};
const size_t qs_message_count = sizeof qs_messages / sizeof qs_messages[0];

void qs_fill_pattern(uint8_t *buf, size_t len, uint32_t tag)
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

unsigned qs_frames(size_t len)
{
    unsigned frames = (unsigned)((len + USMP_MAX_DATA_LEN - 1u) / USMP_MAX_DATA_LEN);
    return frames ? frames : 1u;
}

int qs_fail_usmp(const char *what, int rc)
{
    console_printf("STEP %s FAILED: %d (%s)\n", what, rc, usmp_err_name(rc));
    return EXIT_USMP;
}

void qs_start(const char *variant)
{
    bool clocks = board_init();
    console_printf("usmp %s on STM32F405 (%s build%s), wire v%u, USART1 at %lu baud, HCLK %lu Hz\n",
                   usmp_get_version(), USMP_STM32_EMULATOR ? "EMULATOR" : "hardware", variant,
                   (unsigned)USMP_STM32_WIRE, (unsigned long)USMP_STM32_UART_BAUD,
                   (unsigned long)board_hclk_hz());
    if (!clocks) {
        console_puts("warning: the PLL did not start; running on HSI 16 MHz without the RNG\n");
    }
    usmp_set_log_level(USMP_LOG_LEVEL_INFO);
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

int qs_setup(usmp_t *ctx, usmp_transport_t *tr, usmp_uart_ctx_t *uart, stm32_usart_t *usart)
{
    int rc = port_self_check();
    if (rc != EXIT_OK) {
        return rc;
    }
    if (stm32_usart_transport_init(tr, uart, usart, USART1_BASE, board_pclk2_hz(),
                                   USMP_STM32_UART_BAUD, USMP_STM32_FRAMING) != 0) {
        console_puts("STEP uart FAILED: stm32_usart_transport_init\n");
        return EXIT_PORT;
    }
    ctx->psk = g_psk;
    ctx->psk_len = sizeof g_psk;
    ctx->keepalive_ms = USMP_STM32_KEEPALIVE_MS;
    ctx->protocol_version = USMP_STM32_WIRE;
    return EXIT_OK;
}

int qs_report(int status, usmp_t *ctx, const usmp_uart_ctx_t *uart, const stm32_usart_t *usart)
{
    const usmp_uart_stats_t *us = &uart->stats;
    console_printf("uart: tx %lu frames/%lu bytes, rx %lu frames/%lu bytes, idle timeouts %lu, "
                   "stalls %lu, failures %lu, dropped %lu (%s framing), ring peak %lu of %u, "
                   "line errors %lu\n",
                   (unsigned long)us->frames_tx, (unsigned long)us->bytes_tx,
                   (unsigned long)us->frames_rx, (unsigned long)us->bytes_rx,
                   (unsigned long)us->idle_timeouts, (unsigned long)us->stalls,
                   (unsigned long)us->failures, (unsigned long)us->dropped,
                   USMP_STM32_FRAMING == USMP_UART_FRAMING_RAW ? "raw" : "COBS",
                   (unsigned long)usart->ring_peak, (unsigned)STM32_USART_RING_SIZE,
                   (unsigned long)(usart->overruns + usart->line_errors + usart->ring_full));
    usmp_stats_t ls;
    if (USMP_STM32_FRAMING != USMP_UART_FRAMING_RAW && usmp_get_stats(ctx, &ls) == USMP_OK) {
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
