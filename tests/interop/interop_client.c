/*
 * Interop client: drives the usmp C API against a real gateway (tests/interop/gateway.py
 * around the PyPI `usmp` package) over TCP or UDP on loopback. Written only against the
 * public headers, like an application.
 *
 *   interop_client --host 127.0.0.1 --port N --psk TEXT --proto-version 1|2 --scenario NAME
 *                  [--proto tcp|udp] [--count N] [--seed S] [--echo-timeout-ms MS]
 *
 * --proto udp dials with usmp_transport_udp_init instead of usmp_transport_tcp_init; the
 * rest of the application code is the same. Every UDP run ends with a line
 * "STATS retransmits=R duplicates=D rejected=X bad_acks=B" (usmp_get_stats).
 *
 * Prints one line per step and exits 0 when the scenario passed, 1 when it failed
 * (naming the step and the usmp_err_name of any unexpected code), 2 on bad usage.
 * Scenarios: echo, too_big, keepalive, gw_ping, rekey_device, rekey_gateway, bye_device,
 * bye_gateway, wrong_psk, version_mismatch (alias v1_vs_v2), reconnect, and two meant for
 * UDP: mixed_echo (--count echoes of mixed sizes up to 1808, each checked to arrive intact,
 * in order and exactly once; used through tests/interop/lossy_proxy.py), bench
 * (--count echoes of 452 bytes, timed: a line "BENCH msgs=N seconds=S rate=R") and soak
 * (--count echoes of sizes 0..1808 drawn from --seed; a session that ends with a named
 * error is reopened and the run goes on; one line per message and per session, see
 * sc_soak; used by tests/interop/test_soak.py).
 *
 * The gateway commands used here ("cmd:ping", "cmd:stats", "cmd:rekey", "cmd:bye") are
 * described in gateway.py. "reconnect" talks to the test runner on stdin/stdout: it prints
 * "SYNC kill-gateway" and waits for a line "killed", later prints "SYNC restart-gateway"
 * and waits for "restarted".
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usmp.h"
#include "usmp_transport.h"

#define RX_CAP (USMP_MAX_MESSAGE_LEN + 64)
#define REPLY_TIMEOUT_MS 5000u

static const char *g_host = "127.0.0.1";
static int g_port = 0;
static const char *g_psk = NULL;
static int g_version = 2;
static const char *g_scenario = NULL;
static uint32_t g_transport_timeout_ms = 100;
static bool g_udp = false;
static int g_count = 50;
static uint32_t g_seed = 1;
static uint32_t g_echo_timeout_ms = 45000; /* soak: silence that counts as a silent loss */

static usmp_transport_t g_tr;
static bool g_tr_ready = false;
static usmp_t g_ctx;

static uint8_t g_tx[USMP_MAX_MESSAGE_LEN + 64];
static uint8_t g_rx[RX_CAP];

/* ------------------------------------------------------------------ output helpers */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void step(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("[%s] ", g_scenario);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

static bool fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("[%s] FAIL: ", g_scenario);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  return false;
}

static bool fail_code(const char *what, int code) {
  return fail("%s returned %d (%s)", what, code, usmp_err_name(code));
}

static const char *name(int code) { return usmp_err_name(code); }

/* ------------------------------------------------------------------ session helpers */

/* Dial, then run the handshake. Returns the usmp_connect result (or TRANSPORT_FAILED
 * when the dial itself failed). keepalive_ms is set before usmp_connect, as the API asks. */
static int open_session(const char *psk, uint32_t keepalive_ms, uint64_t *elapsed_ms) {
  memset(&g_tr, 0, sizeof g_tr);
  /* The only line that differs between TCP and UDP. */
  int dial = g_udp ? usmp_transport_udp_init(&g_tr, g_host, g_port)
                   : usmp_transport_tcp_init(&g_tr, g_host, g_port);
  if (dial != 0) {
    step("usmp_transport_%s_init(%s, %d) failed", g_udp ? "udp" : "tcp", g_host, g_port);
    return USMP_ERR_TRANSPORT_FAILED;
  }
  g_tr_ready = true;
  if (usmp_transport_set_timeout(&g_tr, g_transport_timeout_ms) != 0) {
    step("usmp_transport_set_timeout failed");
    return USMP_ERR_INVALID_ARG;
  }
  memset(&g_ctx, 0, sizeof g_ctx);
  g_ctx.psk = (const uint8_t *)psk;
  g_ctx.psk_len = strlen(psk);
  g_ctx.keepalive_ms = keepalive_ms;
  g_ctx.protocol_version = (uint8_t)g_version;
  uint64_t t0 = now_ms();
  int rc = usmp_connect(&g_ctx, &g_tr);
  if (elapsed_ms) *elapsed_ms = now_ms() - t0;
  return rc;
}

static bool connect_ok(uint32_t keepalive_ms) {
  uint64_t ms = 0;
  int rc = open_session(g_psk, keepalive_ms, &ms);
  if (rc != USMP_OK) return fail_code("usmp_connect", rc);
  if (!usmp_is_connected(&g_ctx)) return fail("usmp_is_connected is false after usmp_connect OK");
  step("connected (wire v%d over %s, %llu ms, library %s)", g_version, g_udp ? "UDP" : "TCP",
       (unsigned long long)ms, usmp_get_version());
  return true;
}

static void teardown(void) {
  usmp_close(&g_ctx);
  if (g_tr_ready && g_tr.destroy) g_tr.destroy(&g_tr);
  g_tr_ready = false;
}

/* Deterministic, size- and tag-dependent content. The first byte is >= 0x80, so a test
 * message never looks like a gateway command ("cmd:"). */
static void fill_pattern(uint8_t *buf, size_t len, uint32_t tag) {
  uint32_t x = 0x9E3779B9u ^ (tag * 0x85EBCA6Bu) ^ ((uint32_t)len * 0xC2B2AE35u);
  if (x == 0) x = 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (uint8_t)(x >> 24);
  }
  if (len > 0) buf[0] |= 0x80;
}

static bool send_msg(const uint8_t *data, size_t len, const char *what) {
  int rc = usmp_send(&g_ctx, data, (uint16_t)len);
  if (rc != USMP_OK) {
    char buf[96];
    snprintf(buf, sizeof buf, "usmp_send(%s, %zu bytes)", what, len);
    return fail_code(buf, rc);
  }
  return true;
}

static bool send_text(const char *text) {
  return send_msg((const uint8_t *)text, strlen(text), text);
}

/* Waits for the next message of length > 0. usmp_recv returning 0 (nothing yet, a control
 * frame handled, or an empty message) is tolerated and counted in *zeros. */
static int recv_nonempty(uint32_t timeout_ms, unsigned *zeros) {
  uint64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
    if (n != 0) return n;
    if (zeros) (*zeros)++;
    if (now_ms() >= deadline) return 0;
  }
}

static bool expect_bytes(const uint8_t *want, size_t len, const char *what) {
  unsigned zeros = 0;
  memset(g_rx, 0xEE, sizeof g_rx);
  int n = recv_nonempty(REPLY_TIMEOUT_MS, &zeros);
  if (n < 0) return fail("usmp_recv waiting for %s returned %d (%s)", what, n, name(n));
  if (n == 0) return fail("no %s within %u ms", what, REPLY_TIMEOUT_MS);
  if ((size_t)n != len) return fail("%s: got %d bytes, expected %zu", what, n, len);
  if (memcmp(g_rx, want, len) != 0) {
    size_t i = 0;
    while (i < len && g_rx[i] == want[i]) i++;
    return fail("%s: %zu bytes with the right length but differing content from byte %zu", what,
                len, i);
  }
  if (len < sizeof g_rx && g_rx[len] != 0xEE)
    return fail("%s: usmp_recv wrote past the returned length", what);
  return true;
}

static bool expect_text(const char *text) {
  return expect_bytes((const uint8_t *)text, strlen(text), text);
}

/* Sends a command and returns the reply text (NUL-terminated, in g_rx). */
static bool command(const char *cmd, char *reply, size_t reply_cap) {
  if (!send_text(cmd)) return false;
  int n = recv_nonempty(REPLY_TIMEOUT_MS, NULL);
  if (n < 0) return fail("usmp_recv waiting for the reply to %s returned %d (%s)", cmd, n, name(n));
  if (n == 0) return fail("no reply to %s within %u ms", cmd, REPLY_TIMEOUT_MS);
  size_t m = (size_t)n < reply_cap - 1 ? (size_t)n : reply_cap - 1;
  memcpy(reply, g_rx, m);
  reply[m] = '\0';
  return true;
}

/* Reads "key=<unsigned>" from a stats reply; -1 when missing. */
static long stat_value(const char *stats, const char *key) {
  size_t kl = strlen(key);
  const char *p = stats;
  while ((p = strstr(p, key)) != NULL) {
    if ((p == stats || p[-1] == ' ') && p[kl] == '=') return strtol(p + kl + 1, NULL, 10);
    p += kl;
  }
  return -1;
}

static bool stats(char *out, size_t cap) {
  if (!command("cmd:stats", out, cap)) return false;
  step("gateway stats: %s", out);
  return true;
}

static bool echo_one(size_t len, uint32_t tag) {
  fill_pattern(g_tx, len, tag);
  char what[48];
  snprintf(what, sizeof what, "echo of %zu bytes", len);
  if (!send_msg(g_tx, len, what)) return false;
  if (len == 0) {
    /* usmp_recv reports an empty message as 0, like "nothing yet". Follow it with a
     * marker: it can only arrive after the empty echo (strict in-order sequence numbers),
     * and a library that choked on the empty DATA frame would return an error first. */
    static const char marker[] = "\x81" "after-empty";
    if (!send_msg((const uint8_t *)marker, sizeof marker - 1, "marker")) return false;
    if (!expect_bytes((const uint8_t *)marker, sizeof marker - 1, "marker after the empty echo"))
      return false;
    step("echo 0 bytes: ok (marker after the empty message arrived in order)");
    return true;
  }
  if (!expect_bytes(g_tx, len, what)) return false;
  step("echo %zu bytes: ok", len);
  return true;
}

static bool echo_list(const size_t *sizes, size_t count, uint32_t tag) {
  for (size_t i = 0; i < count; i++)
    if (!echo_one(sizes[i], tag + (uint32_t)i)) return false;
  return true;
}

static bool expect_connected(bool want, const char *when) {
  bool c = usmp_is_connected(&g_ctx);
  if (c != want) return fail("usmp_is_connected is %s %s", c ? "true" : "false", when);
  step("usmp_is_connected = %s %s", c ? "true" : "false", when);
  return true;
}

static bool expect_not_connected_send(void) {
  int rc = usmp_send(&g_ctx, (const uint8_t *)"x", 1);
  if (rc != USMP_ERR_NOT_CONNECTED)
    return fail("usmp_send on a closed session returned %d (%s), expected USMP_ERR_NOT_CONNECTED",
                rc, name(rc));
  step("usmp_send after close -> USMP_ERR_NOT_CONNECTED");
  return true;
}

/* ------------------------------------------------------------------ scenarios */

static bool sc_echo(void) {
  static const size_t sizes[] = {0, 1, 452, 453, 1000, 1808};
  if (!connect_ok(0)) return false;
  if (!echo_list(sizes, sizeof sizes / sizeof sizes[0], 1)) return false;
  /* Back to back, then read: replies must come back whole and in order. */
  static const size_t burst[] = {1808, 7, 904};
  for (size_t i = 0; i < 3; i++) {
    fill_pattern(g_tx, burst[i], 100 + (uint32_t)i);
    if (!send_msg(g_tx, burst[i], "burst")) return false;
  }
  for (size_t i = 0; i < 3; i++) {
    fill_pattern(g_tx, burst[i], 100 + (uint32_t)i);
    if (!expect_bytes(g_tx, burst[i], "burst echo")) return false;
  }
  step("burst of 3 messages (1808, 7, 904) echoed in order: ok");
  char st[256];
  if (!stats(st, sizeof st)) return false;
  /* The gateway must have seen the empty message exactly where it was sent. */
  const char *want = "lens=0,12,1,452,453,1000,1808,1808,7,904 ";
  if (!strstr(st, want)) return fail("gateway message lengths differ: want '%s' in '%s'", want, st);
  step("gateway received an empty message first, then the rest in order");
  return true;
}

static bool sc_too_big(void) {
  if (!connect_ok(0)) return false;
  fill_pattern(g_tx, USMP_MAX_MESSAGE_LEN + 1, 7);
  int rc = usmp_send(&g_ctx, g_tx, USMP_MAX_MESSAGE_LEN + 1);
  if (rc != USMP_ERR_BUFFER_OVERFLOW)
    return fail("usmp_send(1809 bytes) returned %d (%s), expected USMP_ERR_BUFFER_OVERFLOW", rc,
                name(rc));
  step("usmp_send(1809 bytes) -> USMP_ERR_BUFFER_OVERFLOW");
  rc = usmp_send(&g_ctx, g_tx, 0xFFFF);
  if (rc != USMP_ERR_BUFFER_OVERFLOW)
    return fail("usmp_send(65535 bytes) returned %d (%s), expected USMP_ERR_BUFFER_OVERFLOW", rc,
                name(rc));
  step("usmp_send(65535 bytes) -> USMP_ERR_BUFFER_OVERFLOW");
  if (!expect_connected(true, "after the refused sends")) return false;
  char st[256];
  if (!stats(st, sizeof st)) return false;
  if (stat_value(st, "msgs") != 0 || stat_value(st, "frames") != 1)
    return fail("the gateway received something before cmd:stats: %s", st);
  step("gateway received nothing from the refused sends");
  static const size_t sizes[] = {1808, 1};
  return echo_list(sizes, 2, 20);
}

static bool sc_keepalive(void) {
  const uint32_t period = 200, run_ms = 1100;
  if (!connect_ok(period)) return false;
  if (usmp_transport_set_timeout(&g_tr, 20) != 0) step("note: usmp_transport_set_timeout(20) failed");
  /* usmp_connect copied the transport; its ctx pointer is shared, so the timeout applies. */
  uint64_t t0 = now_ms();
  unsigned ticks = 0, recvs = 0;
  while (now_ms() - t0 < run_ms) {
    int rc = usmp_keepalive_tick(&g_ctx);
    ticks++;
    if (rc != USMP_OK) return fail_code("usmp_keepalive_tick", rc);
    int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
    recvs++;
    if (n < 0) return fail_code("usmp_recv during keepalive", n);
    if (n > 0) return fail("unexpected %d-byte message during keepalive", n);
  }
  step("%u keepalive ticks and %u usmp_recv calls in %u ms (keepalive_ms=%u)", ticks, recvs,
       run_ms, period);
  char st[256];
  if (!stats(st, sizeof st)) return false;
  long pings = stat_value(st, "pings");
  /* ~5 expected. Too many would mean a PING per tick; the v1 gateway closes on the 8th
   * control frame inside one recv() anyway. */
  if (pings < 3 || pings > 7)
    return fail("gateway saw %ld PINGs in %u ms with keepalive_ms=%u, expected 3..7", pings, run_ms,
                period);
  step("gateway saw %ld keepalive PINGs", pings);
  if (!expect_connected(true, "after keepalive")) return false;
  static const size_t sizes[] = {33, 1000};
  return echo_list(sizes, 2, 30);
}

static bool sc_gw_ping(void) {
  if (!connect_ok(0)) return false;
  char st[256];
  for (int round = 1; round <= 2; round++) {
    if (!send_text("cmd:ping")) return false;
    /* usmp_recv must answer the PING by itself, then deliver "ping-sent". */
    if (!expect_text("ping-sent")) return false;
    step("round %d: gateway PING handled inside usmp_recv, \"ping-sent\" received", round);
    if (!stats(st, sizeof st)) return false;
    if (stat_value(st, "pongs") != round || stat_value(st, "pings") != 0)
      return fail("round %d: gateway expected pongs=%d pings=0, got: %s", round, round, st);
    step("round %d: gateway received the device's PONG", round);
  }
  static const size_t sizes[] = {5, 900};
  return echo_list(sizes, 2, 40);
}

static bool sc_rekey_device(void) {
  if (!connect_ok(0)) return false;
  static const size_t before[] = {10, 1000};
  if (!echo_list(before, 2, 50)) return false;
  int rc = usmp_rekey(&g_ctx);
  if (g_version == 1) {
    if (rc != USMP_ERR_UNSUPPORTED)
      return fail("usmp_rekey on wire v1 returned %d (%s), expected USMP_ERR_UNSUPPORTED", rc,
                  name(rc));
    step("usmp_rekey on wire v1 -> USMP_ERR_UNSUPPORTED");
    if (!expect_connected(true, "after the refused rekey")) return false;
    static const size_t after[] = {1, 1808};
    if (!echo_list(after, 2, 60)) return false;
    char st[256];
    if (!stats(st, sizeof st)) return false;
    if (stat_value(st, "rekeys") != 0) return fail("the v1 gateway saw a REKEY: %s", st);
    return true;
  }
  if (rc != USMP_OK) return fail_code("usmp_rekey", rc);
  step("usmp_rekey: ok");
  static const size_t after[] = {1, 452, 1808};
  if (!echo_list(after, 3, 60)) return false;
  rc = usmp_rekey(&g_ctx);
  if (rc != USMP_OK) return fail_code("second usmp_rekey", rc);
  step("second usmp_rekey: ok");
  if (!echo_list(after, 3, 70)) return false;
  char st[256];
  if (!stats(st, sizeof st)) return false;
  if (stat_value(st, "rekeys") != 2) return fail("gateway expected rekeys=2, got: %s", st);
  step("gateway accepted 2 device REKEYs");
  return true;
}

static bool sc_rekey_gateway(void) {
  if (!connect_ok(0)) return false;
  if (g_version == 1) return fail("rekey_gateway needs wire v2");
  static const size_t sizes[] = {3, 1808};
  if (!echo_list(sizes, 2, 80)) return false;
  for (int round = 1; round <= 2; round++) {
    if (!send_text("cmd:rekey")) return false;
    /* REKEY (old keys) is handled inside usmp_recv; "rekey-done" comes under the new keys. */
    if (!expect_text("rekey-done")) return false;
    step("round %d: gateway REKEY handled, \"rekey-done\" decrypted under the new keys", round);
    if (!echo_list(sizes, 2, 90 + (uint32_t)round * 2)) return false;
  }
  char st[256];
  if (!stats(st, sizeof st)) return false;
  if (stat_value(st, "rekeys_sent") != 2) return fail("gateway expected rekeys_sent=2: %s", st);
  return true;
}

static bool sc_bye_device(void) {
  if (!connect_ok(0)) return false;
  static const size_t sizes[] = {16};
  if (!echo_list(sizes, 1, 110)) return false;
  usmp_close(&g_ctx);
  step("usmp_close done (BYE sent)");
  if (!expect_connected(false, "after usmp_close")) return false;
  if (!expect_not_connected_send()) return false;
  usmp_close(&g_ctx);
  step("second usmp_close: ok");
  return true;
}

static bool sc_bye_gateway(void) {
  if (!connect_ok(0)) return false;
  static const size_t sizes[] = {16};
  if (!echo_list(sizes, 1, 120)) return false;
  if (!send_text("cmd:bye")) return false;
  uint64_t t0 = now_ms();
  int n;
  do {
    n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
  } while (n == 0 && now_ms() - t0 < REPLY_TIMEOUT_MS);
  printf("BYE_RESULT %s\n", name(n));
  if (n != USMP_ERR_CLOSED_BY_PEER)
    return fail("usmp_recv after the gateway's BYE returned %d (%s), expected "
                "USMP_ERR_CLOSED_BY_PEER (the BYE frame precedes the FIN on the stream)",
                n, name(n));
  step("usmp_recv -> USMP_ERR_CLOSED_BY_PEER after %llu ms", (unsigned long long)(now_ms() - t0));
  if (!expect_connected(false, "after the gateway's BYE")) return false;
  if (!expect_not_connected_send()) return false;
  int rc = usmp_reconnect(&g_ctx);
  if (rc != USMP_OK) return fail_code("usmp_reconnect after the gateway's BYE", rc);
  step("usmp_reconnect after BYE: ok");
  static const size_t again[] = {1808, 2};
  return echo_list(again, 2, 130);
}

static bool sc_expect_connect_failure(int expected, const char *label, uint64_t limit_ms) {
  uint64_t ms = 0;
  int rc = open_session(g_psk, 0, &ms);
  printf("CONNECT_RESULT %s %llu ms\n", name(rc), (unsigned long long)ms);
  if (rc != expected)
    return fail("%s: usmp_connect returned %d (%s) after %llu ms, expected %s", label, rc,
                name(rc), (unsigned long long)ms, name(expected));
  if (ms >= limit_ms) return fail("%s: usmp_connect took %llu ms (limit %llu)", label,
                                  (unsigned long long)ms, (unsigned long long)limit_ms);
  step("%s: usmp_connect -> %s in %llu ms", label, name(rc), (unsigned long long)ms);
  if (!expect_connected(false, "after the failed connect")) return false;
  return expect_not_connected_send();
}

static bool sc_wrong_psk(void) {
  /* TCP: the gateway hangs up after HELLO_ACK, which the library reads as a refused PSK.
   * UDP: the gateway acknowledges HELLO_ACK (so it has it) and then says nothing; the
   * library reports that silence, once USMP_HANDSHAKE_TIMEOUT_MS has passed, as the
   * refusal it is (a link that died after that acknowledgement would look the same). */
  if (g_udp)
    return sc_expect_connect_failure(USMP_ERR_AUTH_FAILED, "wrong PSK",
                                     USMP_HANDSHAKE_TIMEOUT_MS + 2000u);
  return sc_expect_connect_failure(USMP_ERR_AUTH_FAILED, "wrong PSK", 5000);
}

static bool sc_version_mismatch(void) {
  if (g_udp)
    return sc_expect_connect_failure(USMP_ERR_TIMEOUT, "wire version mismatch",
                                     USMP_HANDSHAKE_TIMEOUT_MS + 2000u);
  return sc_expect_connect_failure(USMP_ERR_REJECTED, "wire version mismatch", 5000);
}

/* The size of message i of mixed_echo: every 4th one a boundary size, the rest spread over
 * 1..1808 by a fixed xorshift sequence (the same in every run). */
static size_t mixed_size(int i) {
  static const size_t edges[] = {452, 453, 1808, 904, 1, 1357, 905, 1356};
  if (i % 4 == 3) return edges[(i / 4) % (sizeof edges / sizeof edges[0])];
  uint32_t x = 0x2545F491u ^ ((uint32_t)i * 0x9E3779B9u);
  for (int k = 0; k < 4; k++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
  }
  return 1 + (size_t)(x % USMP_MAX_MESSAGE_LEN);
}

static bool sc_mixed_echo(void) {
  if (!connect_ok(0)) return false;
  uint64_t t0 = now_ms();
  size_t bytes = 0;
  char want[4096];
  size_t wl = (size_t)snprintf(want, sizeof want, "lens=");
  for (int i = 0; i < g_count; i++) {
    size_t len = mixed_size(i);
    fill_pattern(g_tx, len, 1000u + (uint32_t)i); /* unique content per message */
    char what[64];
    snprintf(what, sizeof what, "echo #%d (%zu bytes)", i, len);
    if (!send_msg(g_tx, len, what)) return false;
    /* A duplicate or reordered delivery would show up here as a wrong length or content. */
    if (!expect_bytes(g_tx, len, what)) return false;
    bytes += len;
    if (wl < sizeof want)
      wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%zu", i ? "," : "", len);
  }
  step("%d echoes (%zu bytes each way) intact and in order in %llu ms", g_count, bytes,
       (unsigned long long)(now_ms() - t0));
  /* Exactly once: nothing more may arrive. */
  uint64_t d0 = now_ms();
  while (now_ms() - d0 < 500) {
    int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
    if (n < 0) return fail_code("usmp_recv while draining", n);
    if (n > 0) return fail("an extra %d-byte message arrived after the last echo", n);
  }
  step("no extra message within 500 ms after the last echo");
  if (wl < sizeof want) wl += (size_t)snprintf(want + wl, sizeof want - wl, " ");
  static char st[USMP_MAX_MESSAGE_LEN + 1];
  if (!command("cmd:stats", st, sizeof st)) return false;
  step("gateway stats: %s", st);
  if (!strstr(st, want)) return fail("the gateway's message lengths differ from those sent");
  step("the gateway received each of the %d messages exactly once, in order", g_count);
  return true;
}

static bool sc_bench(void) {
  if (!connect_ok(0)) return false;
  const size_t len = USMP_MAX_DATA_LEN; /* 452: one frame each way */
  /* Warm-up (RTO estimate, caches), not timed. */
  for (int i = 0; i < 5; i++) {
    fill_pattern(g_tx, len, 5000u + (uint32_t)i);
    if (!send_msg(g_tx, len, "warm-up") || !expect_bytes(g_tx, len, "warm-up echo")) return false;
  }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < g_count; i++) {
    fill_pattern(g_tx, len, 6000u + (uint32_t)i);
    if (!send_msg(g_tx, len, "bench")) return false;
    if (!expect_bytes(g_tx, len, "bench echo")) return false;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  printf("BENCH msgs=%d bytes=%zu seconds=%.3f rate=%.1f\n", g_count, len, secs,
         secs > 0 ? (double)g_count / secs : 0.0);
  fflush(stdout);
  return true;
}

/* ------------------------------------------------------------------ soak */

/* Content tags of the soak: message i is fill_pattern(len, SOAK_TAG + i); after an empty
 * message the marker fill_pattern(SOAK_MARKER_LEN, SOAK_MARKER_TAG + i) follows (usmp_recv
 * reports an empty message as 0, so the marker's echo is what proves the round trip).
 * tests/interop/test_soak.py rebuilds both to check the gateway's SHA-256 of each. */
#define SOAK_TAG 0x00100000u
#define SOAK_MARKER_TAG 0x00200000u
#define SOAK_MARKER_LEN 16u
#define SOAK_MAX_RECONNECTS 20   /* consecutive failed usmp_reconnect calls before giving up */
#define SOAK_RECONNECT_PAUSE_MS 1000u
#define SOAK_PROBE_MS 10000u     /* silence before a probing PING while waiting for an echo */

/* The size of soak message i: every 8th one a boundary size (0 and 1808 among them), the
 * rest uniform over 0..1808 from an xorshift32 stream seeded with --seed. */
static size_t soak_size(uint32_t *rng, int i) {
  static const size_t edges[] = {0, 1808, 452, 453, 904, 905, 1356, 1357, 1};
  uint32_t x = *rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *rng = x;
  if (i % 8 == 7) return edges[(i / 8) % (sizeof edges / sizeof edges[0])];
  return (size_t)(x % (USMP_MAX_MESSAGE_LEN + 1u));
}

typedef struct {
  int session;      /* current session number, from 1 */
  int ok, failed;   /* messages echoed intact / ended by a named error */
} soak_t;

/* Opens the next session, whose first message is `next`, the way an
 * application would: usmp_reconnect (a new handshake from a new source port), up to
 * SOAK_MAX_RECONNECTS times in a row, pausing between attempts. Every failed attempt is
 * a line "RECONNECT_FAIL <session> <attempt> <error>". */
static bool soak_reopen(soak_t *k, int next) {
  for (int attempt = 1; attempt <= SOAK_MAX_RECONNECTS; attempt++) {
    uint64_t t0 = now_ms();
    int rc = usmp_reconnect(&g_ctx);
    if (rc == USMP_OK) {
      k->session++;
      printf("SESSION %d first=%d attempts=%d connect_ms=%llu\n", k->session, next, attempt,
             (unsigned long long)(now_ms() - t0));
      return true;
    }
    printf("RECONNECT_FAIL %d %d %s\n", k->session + 1, attempt, name(rc));
    fflush(stdout);
    struct timespec ts = {SOAK_RECONNECT_PAUSE_MS / 1000u, 0};
    nanosleep(&ts, NULL);
  }
  return fail("no session after %d usmp_reconnect attempts", SOAK_MAX_RECONNECTS);
}

/* Waits for the echo of `want` (len bytes). Returns 1 when it arrived intact, 0 when the
 * session ended with a named error (written to *err; *where = "probe" when it was a
 * probing PING), -1 on a defect (a wrong message: a duplicate, a reordered or corrupted
 * one, or an echo that never came while the gateway still acknowledged us). `prev` and
 * `prev_len`: the previous message, to name a duplicate.
 *
 * Silence is what a lost session looks like: the gateway drops a session whose frame went
 * unacknowledged 5 times (after 31 x its RTO, at most 25 s) and says nothing. So, like an
 * application with a keepalive, the client probes with a PING after every SOAK_PROBE_MS
 * of silence: a PING the gateway does not acknowledge names the loss (USMP_ERR_TIMEOUT).
 * A PING it acknowledges after --echo-timeout-ms (45 s: longer than the gateway's 25 s
 * for the first frame of the echo plus the device's 10 s for the rest of a fragmented
 * one) means the echo was lost silently. */
static int soak_echo(const uint8_t *want, size_t len, const uint8_t *prev, size_t prev_len,
                     const char *what, int *err, const char **where) {
  uint64_t start = now_ms(), probe_at = start + SOAK_PROBE_MS;
  memset(g_rx, 0xEE, sizeof g_rx);
  for (;;) {
    int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
    if (n > 0) {
      if ((size_t)n == len && memcmp(g_rx, want, len) == 0) return 1;
      bool dup = prev && (size_t)n == prev_len && memcmp(g_rx, prev, prev_len) == 0;
      fail("%s: received %d bytes that are %s", what, n,
           dup ? "the previous echo again (duplicate)"
               : (size_t)n == len ? "corrupted (right length, wrong content)"
                                  : "not the expected echo (wrong length)");
      return -1;
    }
    if (n < 0) {
      if (!usmp_is_connected(&g_ctx)) {
        *err = n;
        return 0;
      }
      /* Errors that keep the session (none are expected here): reported, then wait on. */
      printf("RECV_ERROR %s session kept\n", name(n));
    }
    if (now_ms() < probe_at) continue;
    int rc = usmp_ping(&g_ctx);
    if (rc < 0 && !usmp_is_connected(&g_ctx)) {
      printf("ECHO_LOST %s after %llu ms, probe=%s\n", what,
             (unsigned long long)(now_ms() - start), name(rc));
      *err = rc;
      *where = "probe";
      return 0;
    }
    if (rc < 0) printf("PROBE_ERROR %s session kept\n", name(rc));
    if (now_ms() - start >= g_echo_timeout_ms) {
      fail("%s: no echo within %u ms, yet the gateway acknowledged a PING (silent loss)", what,
           g_echo_timeout_ms);
      return -1;
    }
    probe_at = now_ms() + SOAK_PROBE_MS;
  }
}

/* One soak message: send it (and the marker after an empty one), wait for the echo.
 * Returns as soak_echo; *err names the error and *where the call that returned it. */
static int soak_one(int i, size_t len, const uint8_t *prev, size_t prev_len, int *err,
                    const char **where) {
  char what[64];
  snprintf(what, sizeof what, "message #%d (%zu bytes)", i, len);
  fill_pattern(g_tx, len, SOAK_TAG + (uint32_t)i);
  int rc = usmp_send(&g_ctx, g_tx, (uint16_t)len);
  if (rc < 0) {
    *err = rc;
    *where = "send";
    return 0;
  }
  if (len == 0) {
    fill_pattern(g_tx, SOAK_MARKER_LEN, SOAK_MARKER_TAG + (uint32_t)i);
    rc = usmp_send(&g_ctx, g_tx, (uint16_t)SOAK_MARKER_LEN);
    if (rc < 0) {
      *err = rc;
      *where = "send_marker";
      return 0;
    }
    len = SOAK_MARKER_LEN;
  }
  *where = "echo";
  return soak_echo(g_tx, len, prev, prev_len, what, err, where);
}

/* soak: --count echoes of sizes 0..1808 (soak_size, --seed). Each echo is compared byte
 * for byte with what was sent. A named error ends the message's round trip and, when it
 * ends the session, the next message goes out on a new session (soak_reopen); the failed
 * message is not sent again (the gateway may or may not have it: the runner checks that
 * it got it at most once). Anything else is a defect and stops the run with FAIL. Output,
 * for the runner: "SESSION n first=i ...", "MSG i session len ok|<where>:<error> ms",
 * "SESSION_END n next=i reason=<error>", "RECONNECT_FAIL ...", then "SOAK ..." and
 * main's "STATS ..." (usmp_reconnect keeps the counters: they cover every session). */
static bool sc_soak(void) {
  static uint8_t prev[USMP_MAX_MESSAGE_LEN];
  size_t prev_len = 0;
  bool have_prev = false;
  soak_t k = {.session = 1};
  uint32_t rng = g_seed * 0x9E3779B9u ^ 0x5A17C0DEu;
  if (rng == 0) rng = 1;
  if (!connect_ok(0)) return false;
  printf("SESSION 1 first=0 attempts=1\n");
  uint64_t t0 = now_ms();
  size_t bytes = 0;
  for (int i = 0; i < g_count; i++) {
    size_t len = soak_size(&rng, i);
    uint64_t m0 = now_ms();
    int err = 0;
    const char *where = "";
    int r = soak_one(i, len, have_prev ? prev : NULL, prev_len, &err, &where);
    if (r < 0) return false;
    if (r > 0) {
      k.ok++;
      bytes += len;
      printf("MSG %d %d %zu ok %llu\n", i, k.session, len, (unsigned long long)(now_ms() - m0));
      fflush(stdout);
      /* What the next echo must not repeat (the marker, after an empty message). */
      prev_len = len ? len : SOAK_MARKER_LEN;
      memcpy(prev, g_tx, prev_len);
      have_prev = true;
      continue;
    }
    k.failed++;
    printf("MSG %d %d %zu %s:%s %llu\n", i, k.session, len, where, name(err),
           (unsigned long long)(now_ms() - m0));
    fflush(stdout);
    have_prev = false;
    if (usmp_is_connected(&g_ctx)) continue; /* the session survived the error */
    printf("SESSION_END %d next=%d reason=%s\n", k.session, i + 1, name(err));
    if (i + 1 < g_count && !soak_reopen(&k, i + 1)) return false;
  }
  if (usmp_is_connected(&g_ctx)) {
    /* Exactly once: nothing more may arrive after the last echo. */
    uint64_t d0 = now_ms();
    while (now_ms() - d0 < 500) {
      int n = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
      if (n > 0) return fail("an extra %d-byte message arrived after the last echo", n);
      if (n < 0) {
        printf("DRAIN_ERROR %s\n", name(n));
        break;
      }
    }
    printf("SESSION_END %d next=%d reason=close\n", k.session, g_count);
  }
  usmp_close(&g_ctx);
  printf("SOAK count=%d ok=%d failed=%d sessions=%d bytes=%zu ms=%llu\n", g_count, k.ok,
         k.failed, k.session, bytes, (unsigned long long)(now_ms() - t0));
  fflush(stdout);
  return true;
}

static bool wait_runner(const char *want) {
  char line[128];
  if (!fgets(line, sizeof line, stdin)) return fail("stdin closed while waiting for '%s'", want);
  line[strcspn(line, "\r\n")] = '\0';
  if (strcmp(line, want) != 0) return fail("runner said '%s', expected '%s'", line, want);
  return true;
}

static bool sc_reconnect(void) {
  /* keepalive on (long period), so usmp_keepalive_tick's NOT_CONNECTED check is meaningful. */
  if (!connect_ok(60000)) return false;
  static const size_t sizes[] = {100, 1000};
  if (!echo_list(sizes, 2, 140)) return false;
  printf("SYNC kill-gateway\n");
  fflush(stdout);
  if (!wait_runner("killed")) return false;
  step("runner killed the gateway");

  /* The dead connection must surface as an error within a bounded time. */
  uint64_t t0 = now_ms();
  int rc = 0;
  const char *where = "";
  while (now_ms() - t0 < REPLY_TIMEOUT_MS) {
    rc = usmp_recv(&g_ctx, g_rx, (uint16_t)sizeof g_rx);
    if (rc < 0) { where = "usmp_recv"; break; }
    if (rc > 0) return fail("usmp_recv returned a %d-byte message from a dead gateway", rc);
    fill_pattern(g_tx, 20, 150);
    rc = usmp_send(&g_ctx, g_tx, 20);
    if (rc < 0) { where = "usmp_send"; break; }
  }
  if (rc >= 0) return fail("no error from usmp_recv/usmp_send within %u ms of the gateway's death",
                           REPLY_TIMEOUT_MS);
  printf("DEAD_RESULT %s %s\n", where, name(rc));
  step("%s -> %s after %llu ms", where, name(rc), (unsigned long long)(now_ms() - t0));
  if (!expect_connected(false, "after the connection died")) return false;
  rc = usmp_keepalive_tick(&g_ctx);
  if (rc != USMP_ERR_NOT_CONNECTED)
    return fail("usmp_keepalive_tick on a dead session returned %d (%s), expected "
                "USMP_ERR_NOT_CONNECTED", rc, name(rc));
  step("usmp_keepalive_tick -> USMP_ERR_NOT_CONNECTED");

  /* Gateway down: reconnect must fail cleanly and quickly. */
  t0 = now_ms();
  rc = usmp_reconnect(&g_ctx);
  if (rc >= 0) return fail("usmp_reconnect succeeded with no gateway listening");
  step("usmp_reconnect with the gateway down -> %s in %llu ms", name(rc),
       (unsigned long long)(now_ms() - t0));
  if (!expect_connected(false, "after the failed reconnect")) return false;

  printf("SYNC restart-gateway\n");
  fflush(stdout);
  if (!wait_runner("restarted")) return false;
  step("runner restarted the gateway");
  const int max_attempts = 20;
  int attempt;
  for (attempt = 1; attempt <= max_attempts; attempt++) {
    rc = usmp_reconnect(&g_ctx);
    if (rc == USMP_OK) break;
    step("usmp_reconnect attempt %d -> %s", attempt, name(rc));
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (rc != USMP_OK) return fail("usmp_reconnect failed %d times, last %s", max_attempts, name(rc));
  step("usmp_reconnect succeeded on attempt %d", attempt);
  if (!expect_connected(true, "after usmp_reconnect")) return false;
  static const size_t after[] = {0, 1808, 3};
  return echo_list(after, 3, 160);
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
  fprintf(stderr,
          "usage: interop_client --port N --psk TEXT --scenario NAME [--host H] "
          "[--proto-version 1|2] [--proto tcp|udp] [--count N] [--transport-timeout-ms MS] "
          "[--log-level 0..4] [--seed S] [--echo-timeout-ms MS]\n"
          "scenarios: echo too_big keepalive gw_ping rekey_device rekey_gateway bye_device "
          "bye_gateway wrong_psk version_mismatch (v1_vs_v2) reconnect mixed_echo bench soak\n");
}

int main(int argc, char **argv) {
  int log_level = USMP_LOG_LEVEL_WARN;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { usage(); return 2; }
    if (!strcmp(a, "--host")) g_host = v;
    else if (!strcmp(a, "--port")) g_port = atoi(v);
    else if (!strcmp(a, "--psk")) g_psk = v;
    else if (!strcmp(a, "--proto-version")) g_version = atoi(v);
    else if (!strcmp(a, "--scenario")) g_scenario = v;
    else if (!strcmp(a, "--transport-timeout-ms")) g_transport_timeout_ms = (uint32_t)atoi(v);
    else if (!strcmp(a, "--log-level")) log_level = atoi(v);
    else if (!strcmp(a, "--count")) g_count = atoi(v);
    else if (!strcmp(a, "--seed")) g_seed = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--echo-timeout-ms")) g_echo_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--proto")) {
      if (!strcmp(v, "udp")) g_udp = true;
      else if (!strcmp(v, "tcp")) g_udp = false;
      else { usage(); return 2; }
    }
    else { usage(); return 2; }
    i++;
  }
  if (!g_port || !g_psk || !g_scenario || (g_version != 1 && g_version != 2) || g_count < 1 ||
      g_count > 10000) {
    usage();
    return 2;
  }
  usmp_set_log_level(log_level);

  static const struct { const char *name; bool (*fn)(void); } table[] = {
      {"echo", sc_echo},
      {"too_big", sc_too_big},
      {"keepalive", sc_keepalive},
      {"gw_ping", sc_gw_ping},
      {"rekey_device", sc_rekey_device},
      {"rekey_gateway", sc_rekey_gateway},
      {"bye_device", sc_bye_device},
      {"bye_gateway", sc_bye_gateway},
      {"wrong_psk", sc_wrong_psk},
      {"version_mismatch", sc_version_mismatch},
      {"v1_vs_v2", sc_version_mismatch},
      {"reconnect", sc_reconnect},
      {"mixed_echo", sc_mixed_echo},
      {"bench", sc_bench},
      {"soak", sc_soak},
  };
  bool (*fn)(void) = NULL;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (!strcmp(table[i].name, g_scenario)) fn = table[i].fn;
  if (!fn) {
    fprintf(stderr, "unknown scenario '%s'\n", g_scenario);
    usage();
    return 2;
  }
  step("start: %s:%d %s wire v%d, usmp %s", g_host, g_port, g_udp ? "udp" : "tcp", g_version,
       usmp_get_version());
  uint64_t t0 = now_ms();
  bool ok = fn();
  if (g_udp) {
    /* What the datagram link went through (counters survive the end of a session and
     * usmp_reconnect; only usmp_connect resets them). */
    usmp_stats_t st;
    if (usmp_get_stats(&g_ctx, &st) == USMP_OK)
      printf("STATS retransmits=%u duplicates=%u rejected=%u bad_acks=%u\n",
             (unsigned)st.retransmits, (unsigned)st.duplicates, (unsigned)st.rejected,
             (unsigned)st.bad_acks);
    else
      printf("STATS unavailable\n");
    fflush(stdout);
  }
  teardown();
  printf("%s %s (%llu ms)\n", ok ? "PASS" : "FAIL", g_scenario,
         (unsigned long long)(now_ms() - t0));
  return ok ? 0 : 1;
}
