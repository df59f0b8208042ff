/*
 * The stm32_ota demo's update slot: a buffer in SRAM behind the usmp_port_ota_* hooks.
 * It shows the hook contract on a bare-metal target and lets the emulator run the whole
 * update; a product's slot is the second half of flash (erase the sectors in begin,
 * program in write, flip a boot flag in finish) or an external flash.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef OTA_RAM_SLOT_H
#define OTA_RAM_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The committed image (after usmp_port_ota_finish), or NULL; *size and *version set. */
const uint8_t *ota_ram_slot_committed(uint32_t *size, uint64_t *version);
/* Capacity in bytes (usmp_ota_config_t.max_image_size). */
uint32_t ota_ram_slot_capacity(void);
/* Hook calls so far: begin, write, finish, abort. */
void ota_ram_slot_counts(unsigned counts[4]);

#endif /* OTA_RAM_SLOT_H */
