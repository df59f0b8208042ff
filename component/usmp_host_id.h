/*
 * A device id for a host (Linux, macOS, ESP-IDF's linux target): private to the port hooks.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_HOST_ID_H
#define USMP_HOST_ID_H

#include <stdint.h>

/* USMP_DEVICE_ID (12 hex digits) when set and valid; otherwise a keyed hash of
 * /etc/machine-id, else of the host name, so the id is stable per host and reveals nothing
 * of either. Writes 6 bytes; 0 / -1. */
int usmp_host_device_id(uint8_t out[6]);

#endif /* USMP_HOST_ID_H */
