/*
 * A stable device id for a host: shared by the POSIX port hooks and ESP-IDF's linux target.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* gethostname */
#endif

#include "usmp_host_id.h"
#include "usmp_port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Decodes the first 12 characters of `s` as 6 bytes. 0 / -1 (not 12 hex digits). */
static int parse_id(const char *s, uint8_t out[USMP_DEVICE_ID_LEN])
{
    for (size_t i = 0; i < USMP_DEVICE_ID_LEN; i++) {
        int hi = hex_digit(s[2 * i]);
        int lo = (hi < 0) ? -1 : hex_digit(s[2 * i + 1]);
        if (lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    return 0;
}

/*
 * The device id travels in clear in every HELLO, and systemd asks that /etc/machine-id not
 * be shown to the network as it is. The library derives the id from it with a keyed hash
 * (usmp_device_id_from_seed), so the id is stable per host and reveals nothing of it.
 */
static int id_from_machine_id(uint8_t out[USMP_DEVICE_ID_LEN])
{
    char line[64];
    FILE *f = fopen("/etc/machine-id", "r");
    if (f == NULL) {
        return -1;
    }
    char *ok = fgets(line, (int)sizeof line, f);
    (void)fclose(f);
    if (ok == NULL) {
        return -1;
    }
    size_t n = strcspn(line, "\r\n");
    if (n < 16) {
        return -1;
    }
    return usmp_device_id_from_seed((const uint8_t *)line, n, out) == 0 ? 0 : -1;
}

static int id_from_hostname(uint8_t out[USMP_DEVICE_ID_LEN])
{
    char name[256];
    if (gethostname(name, sizeof name) != 0) {
        return -1;
    }
    name[sizeof name - 1] = '\0';
    return usmp_device_id_from_seed((const uint8_t *)name, strlen(name), out) == 0 ? 0 : -1;
}

int usmp_host_device_id(uint8_t out[USMP_DEVICE_ID_LEN])
{
    uint8_t id[USMP_DEVICE_ID_LEN];
    const char *env = getenv("USMP_DEVICE_ID");
    if (env != NULL && strlen(env) == 2 * USMP_DEVICE_ID_LEN && parse_id(env, id) == 0) {
        memcpy(out, id, sizeof id);
        return 0;
    }
    if (env != NULL && env[0] != '\0') {
        usmp_port_log('W', "usmp_port", "USMP_DEVICE_ID is not 12 hex digits; ignored");
    }
    if (id_from_machine_id(id) == 0 || id_from_hostname(id) == 0) {
        memcpy(out, id, sizeof id);
        return 0;
    }
    return -1;
}
