/*
 * Default USMP port hooks for ESP-IDF (the chips, and IDF_TARGET=linux).
 *
 *   random      esp_fill_random (the hardware RNG; on linux, getentropy)
 *   millis      esp_timer_get_time() / 1000, wrapping at 2^32 (linux: CLOCK_MONOTONIC)
 *   delay_ms    vTaskDelay, rounded up to whole ticks (linux: nanosleep)
 *   log         ESP_LOGE/W/I/D with the library's tag
 *   device id   the Wi-Fi station MAC (esp_read_mac), else the factory MAC; on linux
 *               USMP_DEVICE_ID=12 hex digits, else a keyed hash of /etc/machine-id or
 *               of the host name (usmp_device_id_from_seed)
 *
 * Every hook is a weak definition: an application that defines its own usmp_port_* function
 * gets that one instead, without a link error.
 *
 * Randomness: the hardware RNG is a true random source only while a radio (Wi-Fi, Bluetooth,
 * 802.15.4) is running, or while the SAR ADC entropy source is on. With no radio running,
 * the hook turns that source on for the draw and off again (menuconfig USMP > Entropy:
 * "SAR ADC when no radio runs", the default), refuses with a log line (USMP_ERR_PORT_FAILED:
 * "refuse when no radio runs"), or trusts esp_fill_random ("the application keeps a source
 * on"). Chips without a radio (ESP32-P4) keep the SAR ADC source on by themselves.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "sdkconfig.h"

#include "usmp_config.h"
#include "usmp_port.h"
#ifdef CONFIG_IDF_TARGET_LINUX
#include "usmp_host_id.h"
#endif

#include <stdint.h>
#include <string.h>

#include "esp_log.h"
#include "esp_random.h"

#ifdef CONFIG_IDF_TARGET_LINUX
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#else
#include "bootloader_random.h"
#include "esp_mac.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "soc/soc_caps.h"
#include <stdbool.h>
#endif

#define USMP_WEAK __attribute__((weak))

/* ----------------------------------------------------------------------------------- */
/* Randomness                                                                          */

#if !defined(CONFIG_IDF_TARGET_LINUX) &&                                                      \
    (SOC_WIFI_SUPPORTED || SOC_BT_SUPPORTED || SOC_IEEE802154_SUPPORTED)
/* A chip with a radio: its RNG is a true RNG only while the radio runs, or while the SAR
 * ADC entropy source is enabled (ESP-IDF Programming Guide, "Random Number Generation").
 * Chips without a radio (ESP32-P4) keep the SAR ADC source on from startup. */
#define USMP_CHIP_HAS_RF 1

/* esp_phy's count of the modems (Wi-Fi, Bluetooth, 802.15.4) that have the RF on; weak, so
 * that an application without any radio stack links without esp_phy. */
extern int phy_get_modem_flag(void) __attribute__((weak));

static bool rf_running(void)
{
    return phy_get_modem_flag != NULL && phy_get_modem_flag() != 0;
}

static const char *ENTROPY_TAG = "usmp";
#endif

USMP_WEAK int usmp_port_random(uint8_t *out, size_t len)
{
    if (out == NULL) {
        return (len == 0) ? 0 : -1;
    }
#if defined(USMP_CHIP_HAS_RF) && !defined(CONFIG_USMP_ENTROPY_APP)
    if (!rf_running()) {
#ifdef CONFIG_USMP_ENTROPY_RF_ONLY
        ESP_LOGE(ENTROPY_TAG,
                 "no radio is running, so the hardware RNG is not a true RNG: key material "
                 "refused (start Wi-Fi/Bluetooth first, or choose another USMP entropy "
                 "setting in menuconfig)");
        return -1;
#else
        /* No radio: the SAR ADC entropy source, on only for this draw (it must be off when
         * the ADC, I2S on the ESP32, or a radio is used; the draw is short and serialised). */
        static portMUX_TYPE mux = portMUX_INITIALIZER_UNLOCKED;
        static StaticSemaphore_t mem;
        static SemaphoreHandle_t lock;
        if (lock == NULL) {
            taskENTER_CRITICAL(&mux);
            if (lock == NULL) {
                lock = xSemaphoreCreateMutexStatic(&mem);
            }
            taskEXIT_CRITICAL(&mux);
        }
        (void)xSemaphoreTake(lock, portMAX_DELAY);
        bootloader_random_enable();
        esp_fill_random(out, len);
        bootloader_random_disable();
        (void)xSemaphoreGive(lock);
        ESP_LOGD(ENTROPY_TAG, "random bytes drawn with the SAR ADC entropy source (no radio on)");
        return 0;
#endif
    }
#endif
    esp_fill_random(out, len);
    return 0;
}

/* ----------------------------------------------------------------------------------- */
/* Time                                                                                */

#ifdef CONFIG_IDF_TARGET_LINUX

USMP_WEAK uint32_t usmp_port_millis(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

USMP_WEAK void usmp_port_delay_ms(uint32_t ms)
{
    struct timespec req = {.tv_sec = (time_t)(ms / 1000u),
                           .tv_nsec = (long)((ms % 1000u) * 1000000u)};
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        req = rem;
    }
}

#else

USMP_WEAK uint32_t usmp_port_millis(void)
{
    return (uint32_t)((uint64_t)esp_timer_get_time() / 1000u); /* wraps at 2^32 by contract */
}

USMP_WEAK void usmp_port_delay_ms(uint32_t ms)
{
    /* pdMS_TO_TICKS rounds down: 5 ms at a 100 Hz tick would not sleep at all. Round up so
     * the task sleeps at least `ms` (and always yields for ms > 0). */
    uint64_t ticks = ((uint64_t)ms * configTICK_RATE_HZ + 999u) / 1000u;
    if (ticks > (uint64_t)(portMAX_DELAY - 1)) {
        ticks = (uint64_t)(portMAX_DELAY - 1);
    }
    vTaskDelay((TickType_t)ticks);
}

#endif

/* ----------------------------------------------------------------------------------- */
/* Logging                                                                             */

USMP_WEAK void usmp_port_log(char level, const char *tag, const char *msg)
{
    const char *t = (tag != NULL) ? tag : "usmp";
    const char *m = (msg != NULL) ? msg : "";
    switch (level) {
    case 'E':
        ESP_LOGE(t, "%s", m);
        break;
    case 'W':
        ESP_LOGW(t, "%s", m);
        break;
    case 'D':
        ESP_LOGD(t, "%s", m);
        break;
    default:
        ESP_LOGI(t, "%s", m);
        break;
    }
}

/* ----------------------------------------------------------------------------------- */
/* Device id                                                                           */

#ifdef CONFIG_IDF_TARGET_LINUX

/* The host's id, as the POSIX hooks make it (component/usmp_host_id.c). */
USMP_WEAK int usmp_port_get_device_id(uint8_t *out, size_t len)
{
    if (out == NULL || len < USMP_DEVICE_ID_LEN) {
        return -1;
    }
    return usmp_host_device_id(out);
}

#else

USMP_WEAK int usmp_port_get_device_id(uint8_t *out, size_t len)
{
    uint8_t mac[8] = {0}; /* esp_efuse_mac_get_default writes 6 bytes; room to spare */
    if (out == NULL || len < USMP_DEVICE_ID_LEN) {
        return -1;
    }
    /* The station MAC, as the original component; chips without Wi-Fi (H2, P4) fall back
     * to the factory MAC in eFuse. */
    if (esp_read_mac(mac, ESP_MAC_WIFI_STA) != ESP_OK && esp_efuse_mac_get_default(mac) != ESP_OK) {
        return -1;
    }
    memcpy(out, mac, USMP_DEVICE_ID_LEN);
    return 0;
}

#endif

/* ----------------------------------------------------------------------------------- */
/* Kconfig                                                                             */

/* Referenced with `-u` by the component's CMakeLists.txt, so this file (and with it the
 * constructor below) is always linked in. */
void usmp_esp_kconfig_include(void);
void usmp_esp_kconfig_include(void)
{
}

/* menuconfig's log level and session defaults ("Component config -> USMP") before app_main
 * runs. An application may still change them (usmp_set_log_level, usmp_set_defaults, or
 * the usmp_t fields). */
__attribute__((constructor)) static void usmp_esp_apply_kconfig(void)
{
    usmp_config_apply_log_level();
    /* menuconfig's session defaults, for every usmp_t whose fields the app leaves at 0
     * (an application written for the original component included). */
    const usmp_defaults_t d = {
        .protocol_version = (uint8_t)(USMP_DEFAULT_PROTOCOL_VERSION),
        .retransmit_attempts = (uint8_t)(USMP_DEFAULT_RETRANSMIT_ATTEMPTS),
        .keepalive_ms = (uint32_t)(USMP_DEFAULT_KEEPALIVE_MS),
        .retransmit_timeout_ms = (uint32_t)(USMP_DEFAULT_RETRANSMIT_TIMEOUT_MS),
    };
    (void)usmp_set_defaults(&d);
}
