/* OTA size probe (scripts/measure-ota.py): tools/size/probe.c — every function of usmp.h —
 * plus every function of usmp_ota.h, so a --gc-sections link keeps what an application
 * using the whole C API and the update receiver keeps. The entry point is
 * ota_probe_reset; the hooks below are empty (an application's write to flash is its own).
 * SPDX-License-Identifier: Apache-2.0 */
#define main usmp_probe_main
#include "../../tools/size/probe.c"
#undef main
#include "usmp_ota.h"

int usmp_port_ota_begin(uint32_t image_size, uint64_t version) { (void)image_size; (void)version; return 0; }
int usmp_port_ota_write(uint32_t offset, const uint8_t *data, size_t len) { (void)offset; (void)data; (void)len; return 0; }
int usmp_port_ota_finish(uint32_t image_size, uint64_t version) { (void)image_size; (void)version; return 0; }
void usmp_port_ota_abort(void) {}

static usmp_ota_t ota;
static usmp_ota_config_t ota_cfg;
static usmp_ota_event_t ota_ev;
static uint8_t ota_reply[USMP_OTA_MAX_REPLY];
static size_t ota_reply_len;
static uint32_t ota_written, ota_size;

void ota_probe_reset(void) {
  usmp_probe_main();
  sink = usmp_ota_init(&ota, &ota_cfg);
  sink = usmp_ota_is_message(buf, sizeof buf);
  sink = usmp_ota_handle(&ota, buf, sizeof buf, ota_reply, sizeof ota_reply, &ota_reply_len, &ota_ev);
  sink = usmp_ota_progress(&ota, &ota_written, &ota_size);
  usmp_ota_cancel(&ota);
  sink = (int)(uintptr_t)usmp_ota_status_name(sink);
  for (;;) {}
}
