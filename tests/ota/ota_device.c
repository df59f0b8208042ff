/*
 * OTA test device: a POSIX application of the library (usmp.h, usmp_ota.h and the
 * component's default hooks, which write the image to a file) that stays connected to
 * its gateway and hands every OTA message to usmp_ota_handle. Written only against the
 * public headers, as an application would be.
 *
 *   ota_device --port N --psk TEXT --key HEX64 --product NAME --version N --capacity N
 *              --out PATH [--host H] [--proto tcp|udp] [--max-chunk N] [--idle-ms N]
 *              [--sessions N] [--deadline-ms N]
 *
 * One line per event on stdout:
 *   EVENT session <n>                      connected (n = 1, 2, ...)
 *   EVENT accepted version=V size=S offset=O
 *   EVENT progress offset=O size=S
 *   EVENT installed version=V size=S
 *   EVENT refused status=NAME code=N
 *   EVENT aborted
 *   EVENT app len=N                        a non-OTA message
 *   EVENT disconnected <reason>
 * Exit status: 0 installed, 3 refused, 4 aborted, 1 no outcome (the sessions or the
 * deadline ran out), 2 bad usage.
 *
 * When a session breaks (or, during a transfer, the gateway is silent for --idle-ms), the
 * device connects again, up to --sessions times. The usmp_ota_t lives on across sessions,
 * so an interrupted transfer resumes from its last written offset.
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
#include "usmp_ota.h"
#include "usmp_transport.h"

#define EXIT_INSTALLED 0
#define EXIT_NO_OUTCOME 1
#define EXIT_USAGE 2
#define EXIT_REFUSED 3
#define EXIT_ABORTED 4

static const char *g_host = "127.0.0.1";
static int g_port = 0;
static const char *g_psk = NULL;
static bool g_udp = false;
static uint32_t g_idle_ms = 3000;
static int g_sessions = 3;
static uint64_t g_deadline_ms = 60000;

static usmp_transport_t g_tr;
static usmp_t g_ctx;
static usmp_ota_t g_ota; /* outlives every session: that is how a transfer resumes */
static uint8_t g_rx[USMP_MAX_MESSAGE_LEN];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int usage(const char *why)
{
    fprintf(stderr, "ota_device: %s\n", why);
    return EXIT_USAGE;
}

static bool parse_hex(const char *hex, uint8_t *out, size_t len)
{
    if (strlen(hex) != 2 * len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return false;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

/* Dial and handshake; false when either failed (the transport is then torn down). */
static bool open_session(void)
{
    memset(&g_tr, 0, sizeof g_tr);
    int dial = g_udp ? usmp_transport_udp_init(&g_tr, g_host, g_port)
                     : usmp_transport_tcp_init(&g_tr, g_host, g_port);
    if (dial != 0) {
        return false;
    }
    (void)usmp_transport_set_timeout(&g_tr, 100);
    memset(&g_ctx, 0, sizeof g_ctx);
    g_ctx.psk = (const uint8_t *)g_psk;
    g_ctx.psk_len = strlen(g_psk);
    g_ctx.keepalive_ms = 1000;
    int rc = usmp_connect(&g_ctx, &g_tr);
    if (rc != USMP_OK) {
        say("EVENT connect-failed %s", usmp_err_name(rc));
        if (g_tr.destroy) {
            g_tr.destroy(&g_tr);
        }
        return false;
    }
    return true;
}

static void close_session(void)
{
    usmp_close(&g_ctx);
    if (g_tr.destroy) {
        g_tr.destroy(&g_tr);
    }
}

/* Handles one OTA message: the reply goes back at once. Returns an exit status when the
 * update reached an outcome, -1 otherwise. */
static int on_ota(const uint8_t *msg, size_t len)
{
    uint8_t reply[USMP_OTA_MAX_REPLY];
    size_t reply_len = 0;
    usmp_ota_event_t ev;
    usmp_ota_status_t st = usmp_ota_handle(&g_ota, msg, len, reply, sizeof reply, &reply_len, &ev);
    if (st == USMP_OTA_INVALID_ARGUMENT) {
        say("EVENT internal usmp_ota_handle: %s", usmp_ota_status_name(st));
        return EXIT_NO_OUTCOME;
    }
    int rc = usmp_send(&g_ctx, reply, (uint16_t)reply_len);
    if (rc != USMP_OK) {
        say("EVENT reply-failed %s", usmp_err_name(rc));
    }
    switch (ev.kind) {
    case USMP_OTA_EVENT_ACCEPTED:
        say("EVENT accepted version=%llu size=%lu offset=%lu", (unsigned long long)ev.version,
            (unsigned long)ev.size, (unsigned long)ev.offset);
        return -1;
    case USMP_OTA_EVENT_PROGRESS:
        say("EVENT progress offset=%lu size=%lu", (unsigned long)ev.offset,
            (unsigned long)ev.size);
        return -1;
    case USMP_OTA_EVENT_INSTALLED:
        say("EVENT installed version=%llu size=%lu", (unsigned long long)ev.version,
            (unsigned long)ev.size);
        return EXIT_INSTALLED;
    case USMP_OTA_EVENT_REFUSED:
        say("EVENT refused status=%s code=%u", usmp_ota_status_name(ev.status),
            (unsigned)ev.status);
        return EXIT_REFUSED;
    case USMP_OTA_EVENT_ABORTED:
        say("EVENT aborted");
        return EXIT_ABORTED;
    default:
        say("EVENT internal kind=%u", (unsigned)ev.kind);
        return EXIT_NO_OUTCOME;
    }
}

/* One session: until an outcome (its exit status) or the session ends (-1). */
static int serve(uint64_t deadline)
{
    uint64_t last = now_ms();
    for (;;) {
        if (now_ms() >= deadline) {
            say("EVENT disconnected deadline");
            return -1;
        }
        int n = usmp_recv(&g_ctx, g_rx, sizeof g_rx);
        if (n < 0) {
            say("EVENT disconnected %s", usmp_err_name(n));
            return -1;
        }
        if (n == 0) {
            int rc = usmp_keepalive_tick(&g_ctx);
            if (rc != USMP_OK) {
                say("EVENT disconnected keepalive %s", usmp_err_name(rc));
                return -1;
            }
            /* A datagram gateway that died shows only as silence. */
            if (usmp_ota_progress(&g_ota, NULL, NULL) && now_ms() - last > g_idle_ms) {
                say("EVENT disconnected idle during a transfer");
                return -1;
            }
            continue;
        }
        last = now_ms();
        if (!usmp_ota_is_message(g_rx, (size_t)n)) {
            say("EVENT app len=%d", n);
            continue;
        }
        int outcome = on_ota(g_rx, (size_t)n);
        if (outcome >= 0) {
            return outcome;
        }
    }
}

int main(int argc, char **argv)
{
    usmp_ota_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *out = NULL;
    bool have_key = false, have_product = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) {
            g_host = v;
        } else if (!strcmp(k, "--port")) {
            g_port = atoi(v);
        } else if (!strcmp(k, "--psk")) {
            g_psk = v;
        } else if (!strcmp(k, "--proto")) {
            g_udp = !strcmp(v, "udp");
        } else if (!strcmp(k, "--key")) {
            have_key = parse_hex(v, cfg.public_key, sizeof cfg.public_key);
        } else if (!strcmp(k, "--product")) {
            size_t len = strlen(v);
            have_product = len <= sizeof cfg.product_id;
            if (have_product) {
                memcpy(cfg.product_id, v, len);
            }
        } else if (!strcmp(k, "--version")) {
            cfg.current_version = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "--capacity")) {
            cfg.max_image_size = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(k, "--max-chunk")) {
            cfg.max_chunk = (uint16_t)strtoul(v, NULL, 10);
        } else if (!strcmp(k, "--out")) {
            out = v;
        } else if (!strcmp(k, "--idle-ms")) {
            g_idle_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(k, "--sessions")) {
            g_sessions = atoi(v);
        } else if (!strcmp(k, "--deadline-ms")) {
            g_deadline_ms = strtoull(v, NULL, 10);
        } else {
            return usage("unknown option");
        }
    }
    if (g_port <= 0 || g_psk == NULL || out == NULL || !have_key || !have_product) {
        return usage("need --port, --psk, --key (64 hex digits), --product (<= 16 bytes), --out");
    }
    if (usmp_ota_posix_set_path(out) != 0) {
        return usage("--out: path too long");
    }
    usmp_ota_status_t st = usmp_ota_init(&g_ota, &cfg);
    if (st != USMP_OTA_OK) {
        say("EVENT init-failed %s", usmp_ota_status_name(st));
        return EXIT_USAGE;
    }

    uint64_t deadline = now_ms() + g_deadline_ms;
    for (int session = 1; session <= g_sessions; session++) {
        /* The gateway may be restarting: keep dialling until it answers. */
        while (!open_session()) {
            if (now_ms() >= deadline) {
                say("EVENT no-gateway");
                return EXIT_NO_OUTCOME;
            }
            sleep_ms(200);
        }
        say("EVENT session %d", session);
        int outcome = serve(deadline);
        close_session();
        if (outcome >= 0) {
            if (outcome == EXIT_INSTALLED) {
                /* A real device restarts into the new image here, and calls
                 * usmp_port_ota_confirm() once it has connected again. */
                (void)usmp_port_ota_confirm();
            }
            return outcome;
        }
    }
    say("EVENT sessions-exhausted");
    return EXIT_NO_OUTCOME;
}
