/*
 * usmp_port_ota_* for the stm32_ota demo: the image goes into a static SRAM buffer.
 * "Committed" means the hooks saw finish after the library verified size, SHA-256 and the
 * owner's signature; a product would mark the new image bootable here instead.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <string.h>

#include "ota_ram_slot.h"
#include "usmp_ota.h"
#include "usmp_stm32_ota_config.h"

static uint8_t g_slot[USMP_STM32_OTA_SLOT_SIZE] __attribute__((aligned(8)));
static uint32_t g_size;      /* size of the image being received or committed */
static uint64_t g_version;
static bool g_receiving;
static bool g_committed;
static unsigned g_counts[4];

int usmp_port_ota_begin(uint32_t image_size, uint64_t version)
{
    g_counts[0]++;
    if (image_size > sizeof g_slot) {
        return -1;
    }
    g_size = image_size;
    g_version = version;
    g_receiving = true;
    g_committed = false;
    return 0;
}

int usmp_port_ota_write(uint32_t offset, const uint8_t *data, size_t len)
{
    g_counts[1]++;
    if (!g_receiving || data == NULL || offset > g_size || len > (size_t)(g_size - offset)) {
        return -1;
    }
    memcpy(g_slot + offset, data, len);
    return 0;
}

int usmp_port_ota_finish(uint32_t image_size, uint64_t version)
{
    g_counts[2]++;
    if (!g_receiving || image_size != g_size || version != g_version) {
        return -1;
    }
    g_receiving = false;
    g_committed = true;
    return 0;
}

void usmp_port_ota_abort(void)
{
    g_counts[3]++;
    g_receiving = false;
    g_committed = false;
    memset(g_slot, 0, sizeof g_slot);
}

int usmp_port_ota_confirm(void)
{
    return 0; /* no bootloader to tell in this demo */
}

const uint8_t *ota_ram_slot_committed(uint32_t *size, uint64_t *version)
{
    if (!g_committed) {
        return NULL;
    }
    *size = g_size;
    *version = g_version;
    return g_slot;
}

uint32_t ota_ram_slot_capacity(void)
{
    return (uint32_t)sizeof g_slot;
}

void ota_ram_slot_counts(unsigned counts[4])
{
    memcpy(counts, g_counts, sizeof g_counts);
}
