/*
 * USMP port hooks. The library calls these; the platform defines them. The hooks are
 * declared in usmp.h (generated); this header keeps the original's include name and its
 * USMP_LOGx convenience macros.
 *
 *   int      usmp_port_get_device_id(uint8_t *out, size_t len);  6-byte id, 0 / -1
 *   int      usmp_port_random(uint8_t *out, size_t len);         CSPRNG bytes, 0 / -1
 *   void     usmp_port_delay_ms(uint32_t ms);
 *   uint32_t usmp_port_millis(void);                             monotonic, wraps at 2^32
 *   void     usmp_port_log(char level, const char *tag, const char *msg);  'E','W','I','D'
 *
 * The POSIX and ESP-IDF builds ship default hooks defined weak: define your own to win.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_PORT_H
#define USMP_PORT_H

#include "usmp.h"

#define USMP_LOGE(tag, msg) usmp_port_log('E', (tag), (msg))
#define USMP_LOGW(tag, msg) usmp_port_log('W', (tag), (msg))
#define USMP_LOGI(tag, msg) usmp_port_log('I', (tag), (msg))
#ifdef USMP_DISABLE_DEBUG
#define USMP_LOGD(tag, msg) ((void)0)
#else
#define USMP_LOGD(tag, msg) usmp_port_log('D', (tag), (msg))
#endif

#endif /* USMP_PORT_H */
