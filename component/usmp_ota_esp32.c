/*
 * Default OTA port hooks for ESP-IDF (menuconfig: Component config -> USMP -> Signed
 * firmware updates): the image goes to the next OTA app partition with esp_ota_begin /
 * esp_ota_write, and on commit esp_ota_end (ESP-IDF's own image check) and
 * esp_ota_set_boot_partition; the application restarts (esp_restart) when it suits it.
 *
 * Rollback: with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE the new firmware boots "pending
 * verify". Once it has connected to its gateway the application calls
 * usmp_port_ota_confirm(), which marks it valid (esp_ota_mark_app_valid_cancel_rollback);
 * a firmware that never gets that far is rolled back by the bootloader on the next reset.
 * Until then ESP-IDF refuses a new esp_ota_begin, so the hook confirms first.
 *
 * Every function is a weak definition: define your own to replace it.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "sdkconfig.h"

#if CONFIG_USMP_OTA

#include <stdbool.h>
#include <stdint.h>

#include "esp_log.h"
#include "esp_ota_ops.h"
#include "usmp_ota.h"

#define USMP_WEAK __attribute__((weak))

static const char *TAG = "usmp_ota";

static const esp_partition_t *s_part;
static esp_ota_handle_t s_handle;
static bool s_open;
static uint32_t s_written;

static void drop_update(void)
{
    if (s_open) {
        (void)esp_ota_abort(s_handle);
        s_open = false;
    }
    s_written = 0;
}

USMP_WEAK void usmp_port_ota_abort(void)
{
    drop_update();
}

USMP_WEAK int usmp_port_ota_confirm(void)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    esp_ota_img_states_t state;
    if (running == NULL || esp_ota_get_state_partition(running, &state) != ESP_OK) {
        return 0; /* no otadata record: nothing to confirm (factory app, no rollback) */
    }
    if (state != ESP_OTA_IMG_PENDING_VERIFY) {
        return 0;
    }
    esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "marking the running firmware valid failed: %s", esp_err_to_name(err));
        return -1;
    }
    ESP_LOGI(TAG, "running firmware confirmed (rollback cancelled)");
    return 0;
}

USMP_WEAK int usmp_port_ota_begin(uint32_t image_size, uint64_t version)
{
    drop_update();
    s_part = esp_ota_get_next_update_partition(NULL);
    if (s_part == NULL) {
        ESP_LOGE(TAG, "no OTA app partition to update (partition table)");
        return -1;
    }
    if ((uint64_t)image_size > (uint64_t)s_part->size) {
        ESP_LOGE(TAG, "image of %lu bytes does not fit partition %s (%lu bytes)",
                 (unsigned long)image_size, s_part->label, (unsigned long)s_part->size);
        return -1;
    }
    (void)usmp_port_ota_confirm(); /* a pending-verify firmware may not start an update */
    /* Erases only what the image needs. */
    esp_err_t err = esp_ota_begin(s_part, image_size, &s_handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_begin: %s", esp_err_to_name(err));
        return -1;
    }
    s_open = true;
    s_written = 0;
    ESP_LOGI(TAG, "receiving version %llu (%lu bytes) into %s", (unsigned long long)version,
             (unsigned long)image_size, s_part->label);
    return 0;
}

USMP_WEAK int usmp_port_ota_write(uint32_t offset, const uint8_t *data, size_t len)
{
    /* The receiver writes strictly in sequence; esp_ota_write appends. */
    if (!s_open || offset != s_written) {
        return -1;
    }
    esp_err_t err = esp_ota_write(s_handle, data, len);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_write at %lu: %s", (unsigned long)offset, esp_err_to_name(err));
        return -1;
    }
    s_written += (uint32_t)len;
    return 0;
}

USMP_WEAK int usmp_port_ota_finish(uint32_t image_size, uint64_t version)
{
    if (!s_open || s_written != image_size) {
        return -1;
    }
    s_open = false; /* esp_ota_end frees the handle whatever it returns */
    esp_err_t err = esp_ota_end(s_handle);
    if (err == ESP_OK) {
        err = esp_ota_set_boot_partition(s_part);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "committing version %llu failed: %s", (unsigned long long)version,
                 esp_err_to_name(err));
        return -1;
    }
    ESP_LOGI(TAG, "version %llu verified and set to boot from %s", (unsigned long long)version,
             s_part->label);
    return 0;
}

#else
/* CONFIG_USMP_OTA is off: nothing here (ISO C wants at least one declaration). */
typedef int usmp_ota_esp32_disabled_t;
#endif
