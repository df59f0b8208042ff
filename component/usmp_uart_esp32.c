/*
 * The UART transport over ESP-IDF's uart_driver: usmp_transport_uart_esp32_init and its
 * weak default hooks. Port, pins, baud rate and framing come from menuconfig
 * ("Component config -> USMP -> UART transport"). See include/usmp_uart.h.
 * SPDX-License-Identifier: Apache-2.0
 */
#include "sdkconfig.h"

#include "usmp_uart.h"

#include <stdint.h>

#include "driver/uart.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"

#define USMP_WEAK __attribute__((weak))

static const char *TAG = "usmp_uart";

/* The driver's RX ring: two largest COBS messages (4 frames of 496 bytes each). */
#define USMP_UART_ESP32_RX_BUF 4096
#define USMP_UART_ESP32_TX_BUF 1024

static TickType_t ticks_of(uint32_t ms)
{
    /* Round up, so a short wait is never zero ticks unless it was zero. */
    return (TickType_t)((ms + portTICK_PERIOD_MS - 1u) / portTICK_PERIOD_MS);
}

static uart_port_t port_of(void *user)
{
    return (uart_port_t)(intptr_t)user;
}

USMP_WEAK int usmp_uart_esp32_read(void *user, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    if (buf == NULL || len == 0u) {
        return -1;
    }
    uart_port_t port = port_of(user);
    /* uart_read_bytes waits for all `len` bytes: ask for what is there, or for one byte. */
    size_t have = 0;
    if (uart_get_buffered_data_len(port, &have) != ESP_OK) {
        return -1;
    }
    uint32_t want = (uint32_t)((have == 0u) ? 1u : (have < len ? have : len));
    int n = uart_read_bytes(port, buf, want, have == 0u ? ticks_of(timeout_ms) : 0);
    return (n < 0) ? -1 : n;
}

USMP_WEAK int usmp_uart_esp32_write(void *user, const uint8_t *data, size_t len,
                                    uint32_t timeout_ms)
{
    uart_port_t port = port_of(user);
    if (uart_write_bytes(port, (const char *)data, len) != (int)len) {
        return -1;
    }
    return uart_wait_tx_done(port, ticks_of(timeout_ms)) == ESP_OK ? 0 : -1;
}

static int esp32_available(void *user)
{
    size_t have = 0;
    return (uart_get_buffered_data_len(port_of(user), &have) == ESP_OK && have > 0u) ? 1 : 0;
}

static void esp32_close(void *user)
{
    uart_driver_delete(port_of(user));
}

int usmp_transport_uart_esp32_init(usmp_transport_t *t, usmp_uart_ctx_t *ctx)
{
    const uart_port_t port = (uart_port_t)CONFIG_USMP_UART_PORT_NUM;
    const uart_config_t cfg = {
        .baud_rate = CONFIG_USMP_UART_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    esp_err_t err = uart_driver_install(port, USMP_UART_ESP32_RX_BUF, USMP_UART_ESP32_TX_BUF, 0,
                                        NULL, 0);
    if (err == ESP_OK) {
        err = uart_param_config(port, &cfg);
    }
    if (err == ESP_OK) {
        err = uart_set_pin(port, CONFIG_USMP_UART_TX_PIN, CONFIG_USMP_UART_RX_PIN,
                           UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "UART%d: %s", (int)port, esp_err_to_name(err));
        uart_driver_delete(port);
        return -1;
    }
    usmp_uart_io_t io = {
        .read = usmp_uart_esp32_read,
        .write = usmp_uart_esp32_write,
        .available = esp32_available,
        .close = esp32_close,
        .user = (void *)(intptr_t)port,
#ifdef CONFIG_USMP_UART_FRAMING_RAW
        .framing = USMP_UART_FRAMING_RAW,
#else
        .framing = USMP_UART_FRAMING_COBS,
#endif
    };
    if (usmp_transport_uart_init(t, ctx, &io) != USMP_OK) {
        uart_driver_delete(port);
        return -1;
    }
    ESP_LOGI(TAG, "UART%d at %d baud (TX %d, RX %d), %s framing", (int)port,
             CONFIG_USMP_UART_BAUD, CONFIG_USMP_UART_TX_PIN, CONFIG_USMP_UART_RX_PIN,
             io.framing == USMP_UART_FRAMING_RAW ? "raw" : "COBS");
    return 0;
}
