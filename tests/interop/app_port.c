/*
 * The interop client's own port hooks, written the way an application writes them from the
 * original quickstart (strong definitions; the library's weak POSIX defaults then stay out).
 * The device id comes from USMP_TEST_DEVICE_ID (12 hex digits) or is 02:00:00:00:00:01.
 * SPDX-License-Identifier: Apache-2.0
 */
#define _GNU_SOURCE
#include "usmp_port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int app_port_hooks_used = 0; /* set by the hooks, checked by the client at exit */

int usmp_port_get_device_id(uint8_t *out, size_t len) {
  static const uint8_t fallback[6] = {0x02, 0, 0, 0, 0, 0x01};
  if (out == NULL || len < 6) return -1;
  memcpy(out, fallback, 6);
  const char *hex = getenv("USMP_TEST_DEVICE_ID");
  if (hex != NULL && strlen(hex) == 12) {
    for (int i = 0; i < 6; i++) {
      unsigned v;
      if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
      out[i] = (uint8_t)v;
    }
  }
  app_port_hooks_used = 1;
  return 0;
}

int usmp_port_random(uint8_t *out, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(out + got, len - got, 0);
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

void usmp_port_delay_ms(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
  nanosleep(&ts, NULL);
}

uint32_t usmp_port_millis(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void usmp_port_log(char level, const char *tag, const char *msg) {
  fprintf(stderr, "[app-port] %c %s: %s\n", level, tag, msg);
}
