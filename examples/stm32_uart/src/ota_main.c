/*
 * stm32_ota: the stm32_uart firmware's session (same board code, UART transport and port
 * hooks) running the signed-update receiver of usmp_ota.h. It connects, then hands every
 * OTA message from the gateway to usmp_ota_handle and sends the reply, until the update
 * is installed (into a RAM slot: src/ota_ram_slot.c) or refused.
 *
 * Prints its steps; for the tests also an FNV-1a checksum of the committed image (an
 * independent check that it is byte-identical) and the deepest stack each kind of OTA
 * message took inside usmp_ota_handle (the stack is painted before each call).
 * Exit status: 0 installed, 1 a usmp call failed, 3 a CPU fault, 4 a port check failed,
 * 5 the update was refused, 6 no update arrived in time.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "console.h"
#include "ota_ram_slot.h"
#include "stm32f405_regs.h"
#include "usmp.h"
#include "usmp_ota.h"
#include "usmp_port.h"
#include "usmp_stm32_config.h"
#include "usmp_stm32_ota_config.h"
#include "stm32_usart.h"

#define EXIT_OK 0
#define EXIT_USMP 1
#define EXIT_PORT 4
#define EXIT_REFUSED 5
#define EXIT_NO_UPDATE 6

#define QUIET_LIMIT_MS 30000u /* give up when the gateway sends nothing for this long */

static const uint8_t g_psk[] = USMP_STM32_PSK_BYTES;

static stm32_usart_t g_usart;  /* the USART's RX ring */
static usmp_uart_ctx_t g_uart; /* the library's UART transport (USMP_STM32_FRAMING) */
static usmp_transport_t g_tr;
static usmp_t g_ctx;
static usmp_ota_t g_ota;
static uint8_t g_rx[USMP_MAX_MESSAGE_LEN];

/* Deepest stack (bytes below the caller's SP) per OTA message type 1..7. */
static uint32_t g_stack_peak[8];

void USART1_IRQHandler(void)
{
    stm32_usart_irq(&g_usart);
}

/* ------------------------------------------------------------------ stack painting */

extern uint32_t _sstack; /* linker script: lowest address of the stack */
#define PAINT 0x0DA5C0DEu

__attribute__((noinline)) static uint32_t *current_sp(void)
{
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* Paints from the stack's bottom up to just below this function's own frame. */
__attribute__((noinline)) static void paint_stack(void)
{
    uint32_t *sp = current_sp();
    for (volatile uint32_t *p = &_sstack; p < sp - 16; p++) {
        *p = PAINT;
    }
}

/* Bytes between `top` (an SP before a call) and the deepest word the call overwrote. */
static uint32_t used_below(const uint32_t *top)
{
    const volatile uint32_t *p = &_sstack;
    while (p < top && *p == PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)top - (uintptr_t)p);
}

/* ------------------------------------------------------------------ the update */

static uint32_t fnv1a(const uint8_t *p, uint32_t n)
{
    uint32_t h = 0x811C9DC5u;
    for (uint32_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x01000193u;
    }
    return h;
}

static int fail_usmp(const char *what, int rc)
{
    console_printf("STEP %s FAILED: %d (%s)\n", what, rc, usmp_err_name(rc));
    return EXIT_USMP;
}

static int ota_init(void)
{
    usmp_ota_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    static const uint8_t key[USMP_OTA_PUBLIC_KEY_LEN] = USMP_STM32_OTA_PUBLIC_KEY;
    static const char product[] = USMP_STM32_OTA_PRODUCT;
    _Static_assert(sizeof product - 1u <= USMP_OTA_PRODUCT_ID_LEN, "product id above 16 bytes");
    memcpy(cfg.public_key, key, sizeof key);
    memcpy(cfg.product_id, product, sizeof product - 1u);
    cfg.current_version = USMP_STM32_OTA_VERSION;
    cfg.max_image_size = ota_ram_slot_capacity();
    usmp_ota_status_t st = usmp_ota_init(&g_ota, &cfg);
    if (st != USMP_OTA_OK) {
        console_printf("STEP ota init FAILED: %s\n", usmp_ota_status_name(st));
        return EXIT_PORT;
    }
    console_printf("STEP ota init ok (product %s, running version %lu, slot %lu bytes in RAM)\n",
                   product, (unsigned long)USMP_STM32_OTA_VERSION,
                   (unsigned long)ota_ram_slot_capacity());
    return EXIT_OK;
}

/* One OTA message: handled with the stack painted, reply sent. Returns an exit status
 * once the update has an outcome, -1 while it goes on. */
static int on_ota(const uint8_t *msg, size_t len)
{
    uint8_t reply[USMP_OTA_MAX_REPLY];
    size_t reply_len = 0;
    usmp_ota_event_t ev;
    uint32_t *top = current_sp();
    paint_stack();
    (void)usmp_ota_handle(&g_ota, msg, len, reply, sizeof reply, &reply_len, &ev);
    uint32_t used = used_below(top);
    uint8_t type = msg[3] & 7u;
    if (used > g_stack_peak[type]) {
        g_stack_peak[type] = used;
    }
    int rc = usmp_send(&g_ctx, reply, (uint16_t)reply_len);
    if (rc != USMP_OK) {
        return fail_usmp("usmp_send (OTA reply)", rc);
    }
    switch (ev.kind) {
    case USMP_OTA_EVENT_ACCEPTED:
        console_printf("STEP ota accepted version=%lu size=%lu offset=%lu\n",
                       (unsigned long)ev.version, (unsigned long)ev.size, (unsigned long)ev.offset);
        return -1;
    case USMP_OTA_EVENT_PROGRESS:
        return -1;
    case USMP_OTA_EVENT_INSTALLED: {
        uint32_t size = 0;
        uint64_t version = 0;
        const uint8_t *img = ota_ram_slot_committed(&size, &version);
        if (img == NULL) {
            console_puts("STEP ota installed FAILED: the slot holds no committed image\n");
            return EXIT_USMP;
        }
        console_printf("STEP ota installed version=%lu size=%lu fnv1a=%08lx\n",
                       (unsigned long)version, (unsigned long)size,
                       (unsigned long)fnv1a(img, size));
        return EXIT_OK;
    }
    case USMP_OTA_EVENT_REFUSED:
        console_printf("STEP ota refused status=%s\n", usmp_ota_status_name(ev.status));
        return EXIT_REFUSED;
    default:
        console_printf("STEP ota ended: event %u\n", (unsigned)ev.kind);
        return EXIT_REFUSED;
    }
}

static int session(void)
{
    uint32_t last = usmp_port_millis();
    for (;;) {
        int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
        if (n < 0) {
            return fail_usmp("usmp_recv", n);
        }
        if (n == 0) {
            int rc = usmp_keepalive_tick(&g_ctx);
            if (rc != USMP_OK) {
                return fail_usmp("usmp_keepalive_tick", rc);
            }
            if ((uint32_t)(usmp_port_millis() - last) > QUIET_LIMIT_MS) {
                console_puts("STEP ota FAILED: no update arrived\n");
                return EXIT_NO_UPDATE;
            }
            continue;
        }
        last = usmp_port_millis();
        if (!usmp_ota_is_message(g_rx, (size_t)n)) {
            console_printf("STEP app message of %d bytes (ignored)\n", n);
            continue;
        }
        int outcome = on_ota(g_rx, (size_t)n);
        if (outcome >= 0) {
            return outcome;
        }
    }
}

static int run(void)
{
    int rc = ota_init();
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
    rc = usmp_connect(&g_ctx, &g_tr);
    if (rc != USMP_OK) {
        return fail_usmp("connect", rc);
    }
    console_printf("STEP connect ok (wire v%u)\n", (unsigned)USMP_STM32_WIRE);
    /* A firmware that was just updated would check in here, now that it has reached its
     * gateway: usmp_port_ota_confirm() (rollback check-in). */
    (void)usmp_port_ota_confirm();

    rc = session();
    usmp_close(&g_ctx);
    g_tr.destroy(&g_tr);
    return rc;
}

int main(void)
{
    (void)board_init();
    console_printf("usmp %s OTA demo on STM32F405 (%s build), firmware version %lu\n",
                   usmp_get_version(), USMP_STM32_EMULATOR ? "EMULATOR" : "hardware",
                   (unsigned long)USMP_STM32_OTA_VERSION);
    int status = run();
    unsigned c[4];
    ota_ram_slot_counts(c);
    console_printf("slot hooks: begin %u, write %u, finish %u, abort %u\n", c[0], c[1], c[2], c[3]);
    console_printf("STACK usmp_ota_handle offer=%lu chunk=%lu done=%lu (bytes, painted)\n",
                   (unsigned long)g_stack_peak[1], (unsigned long)g_stack_peak[3],
                   (unsigned long)g_stack_peak[5]);
    console_printf("RESULT %s (exit %d, %lu ms)\n", status == EXIT_OK ? "PASS" : "FAIL", status,
                   (unsigned long)usmp_port_millis());
    return status;
}
