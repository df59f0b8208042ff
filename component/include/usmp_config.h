/*
 * Build-time defaults for a session context: ESP-IDF's menuconfig ("Component config ->
 * USMP") or -D definitions elsewhere.
 *
 *   usmp_t ctx = {0};
 *   usmp_config_defaults(&ctx);      protocol_version, keepalive_ms, retransmit_* from here
 *   ctx.psk = key; ctx.psk_len = key_len;
 *   usmp_connect(&ctx, &tr);
 *
 * The ESP-IDF component also hands these values to usmp_set_defaults() at startup, so any
 * usmp_t whose fields stay 0 gets them at usmp_connect, with no call at all.
 *
 * usmp_config_defaults() overwrites those four fields, so call it first and set your own
 * values after it. A context that never calls it keeps the library's defaults (every
 * field 0: wire v2, no keepalive, 5 attempts, adaptive retransmission timeout).
 *
 * The log level (USMP_DEFAULT_LOG_LEVEL) is global, not per context: the ESP-IDF component
 * applies it at startup; elsewhere call usmp_config_apply_log_level() (or
 * usmp_set_log_level()) yourself.
 *
 * Outside ESP-IDF every default is the library's own unless defined on the command line,
 * e.g. -DUSMP_DEFAULT_KEEPALIVE_MS=15000 -DUSMP_DEFAULT_PROTOCOL_VERSION=USMP_PROTOCOL_V1.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_CONFIG_H
#define USMP_CONFIG_H

#include "usmp.h"

#if defined(ESP_PLATFORM) && defined(__has_include)
#if __has_include("sdkconfig.h")
#include "sdkconfig.h"
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Wire version: USMP_PROTOCOL_V2, USMP_PROTOCOL_V1, or 0 (the library default, v2). */
#ifndef USMP_DEFAULT_PROTOCOL_VERSION
#if defined(CONFIG_USMP_PROTOCOL_V1)
#define USMP_DEFAULT_PROTOCOL_VERSION USMP_PROTOCOL_V1
#elif defined(CONFIG_USMP_PROTOCOL_V2)
#define USMP_DEFAULT_PROTOCOL_VERSION USMP_PROTOCOL_V2
#else
#define USMP_DEFAULT_PROTOCOL_VERSION 0
#endif
#endif

/* Keepalive period in ms for usmp_keepalive_tick (0 = off). */
#ifndef USMP_DEFAULT_KEEPALIVE_MS
#ifdef CONFIG_USMP_DEFAULT_KEEPALIVE_MS
#define USMP_DEFAULT_KEEPALIVE_MS CONFIG_USMP_DEFAULT_KEEPALIVE_MS
#else
#define USMP_DEFAULT_KEEPALIVE_MS 0
#endif
#endif

/* Datagram transports: attempts per frame (0 = USMP_RETRANSMIT_ATTEMPTS). */
#ifndef USMP_DEFAULT_RETRANSMIT_ATTEMPTS
#ifdef CONFIG_USMP_UDP_RETRANSMIT_ATTEMPTS
#define USMP_DEFAULT_RETRANSMIT_ATTEMPTS CONFIG_USMP_UDP_RETRANSMIT_ATTEMPTS
#else
#define USMP_DEFAULT_RETRANSMIT_ATTEMPTS 0
#endif
#endif

/* Datagram transports: fixed wait per attempt in ms (0 = adaptive, starting at
 * USMP_RETRANSMIT_TIMEOUT_MS). */
#ifndef USMP_DEFAULT_RETRANSMIT_TIMEOUT_MS
#ifdef CONFIG_USMP_UDP_RETRANSMIT_TIMEOUT_MS
#define USMP_DEFAULT_RETRANSMIT_TIMEOUT_MS CONFIG_USMP_UDP_RETRANSMIT_TIMEOUT_MS
#else
#define USMP_DEFAULT_RETRANSMIT_TIMEOUT_MS 0
#endif
#endif

/* Log level, a usmp_log_level_t value (the library starts at USMP_LOG_LEVEL_ERROR). */
#ifndef USMP_DEFAULT_LOG_LEVEL
#ifdef CONFIG_USMP_LOG_LEVEL
#define USMP_DEFAULT_LOG_LEVEL CONFIG_USMP_LOG_LEVEL
#else
#define USMP_DEFAULT_LOG_LEVEL USMP_LOG_LEVEL_ERROR
#endif
#endif

/** Sets protocol_version, keepalive_ms, retransmit_attempts and retransmit_timeout_ms of
 *  *ctx to the configured defaults. Does nothing for NULL. Call it before usmp_connect. */
static inline void usmp_config_defaults(usmp_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    ctx->protocol_version = (uint8_t)(USMP_DEFAULT_PROTOCOL_VERSION);
    ctx->keepalive_ms = (uint32_t)(USMP_DEFAULT_KEEPALIVE_MS);
    ctx->retransmit_attempts = (uint8_t)(USMP_DEFAULT_RETRANSMIT_ATTEMPTS);
    ctx->retransmit_timeout_ms = (uint32_t)(USMP_DEFAULT_RETRANSMIT_TIMEOUT_MS);
}

/** Sets the library's log level to USMP_DEFAULT_LOG_LEVEL. */
static inline void usmp_config_apply_log_level(void)
{
    usmp_set_log_level((int)(USMP_DEFAULT_LOG_LEVEL));
}

#ifdef __cplusplus
}
#endif

#endif /* USMP_CONFIG_H */
