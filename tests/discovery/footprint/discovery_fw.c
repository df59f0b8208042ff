/*
 * Discovery footprint firmware (Cortex-M4, QEMU netduinoplus2): runs usmp_discover_over
 * of the release library (feature `discovery`) against an in-memory transport that plays
 * the mDNS responders, and reports the peak stack of each call (painted below the
 * caller's frame, as tools/stack/bench.c does; the transport callbacks and port hooks of
 * this file included). Every call's result is checked, so a figure always comes from a
 * call that did its job. Built and run by tests/discovery/footprint/measure.sh with
 * tools/stack/startup.c and tools/stack/link.ld.
 *
 * Output (semihosting): "discovery: scenario=<name> stack=<bytes> rc=<rc> ok=<0|1>", then
 * "discovery: done failures=<n>"; exit status = failures.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stddef.h>
#include <stdint.h>

#include "semihost.h"
#include "usmp_discovery.h"

#define PAINT 0xC5A5E11Fu

extern uint32_t bench_stack_bottom;

static void put_int(long v)
{
    char b[16];
    int i = 15;
    int neg = v < 0;
    unsigned long u = neg ? (unsigned long)(-v) : (unsigned long)v;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) b[--i] = '-';
    sh_puts(&b[i]);
}

/* ---------------------------------------------------------------------------------- */
/* Port hooks: a virtual clock that only moves when the transport waits.                */

static uint32_t g_now = 5000;

int usmp_port_get_device_id(uint8_t *out, size_t len) { (void)out; return len < 6 ? -1 : 0; }
int usmp_port_random(uint8_t *out, size_t len) { for (size_t i = 0; i < len; i++) out[i] = (uint8_t)i; return 0; }
void usmp_port_delay_ms(uint32_t ms) { g_now += ms; }
uint32_t usmp_port_millis(void) { return g_now; }
void usmp_port_log(char level, const char *tag, const char *msg) { (void)level; (void)tag; (void)msg; }

/* ---------------------------------------------------------------------------------- */
/* Answers, written byte by byte: _usmp._tcp.local PTR -> gw._usmp._tcp.local, its SRV  */
/* (port 9000, host gw-host.local), TXT v=2, and gw-host.local A 10.0.0.7.               */

static uint8_t g_ans[512];
static size_t g_len;

static void put(const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n--) g_ans[g_len++] = *s++;
}

static void put16(unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(b, 2);
}

static const uint8_t SVC[] = "\x05_usmp\x04_tcp\x05local";          /* + NUL = 18 bytes */
static const uint8_t INST[] = "\x02gw\x05_usmp\x04_tcp\x05local";   /* + NUL */
static const uint8_t HOST[] = "\x07gw-host\x05local";               /* + NUL */

static void header(unsigned answers)
{
    g_len = 0;
    put16(0);
    put16(0x8400);
    put16(0);
    put16(answers);
    put16(0);
    put16(0);
}

static void rr(const uint8_t *name, size_t name_len, unsigned type, size_t rdlen)
{
    put(name, name_len);
    put16(type);
    put16(1);
    put16(0);
    put16(120);
    put16((unsigned)rdlen);
}

static void ptr_rr(void) { rr(SVC, sizeof SVC, 12, sizeof INST); put(INST, sizeof INST); }
static void srv_rr(void) { rr(INST, sizeof INST, 33, 6 + sizeof HOST); put16(0); put16(0); put16(9000); put(HOST, sizeof HOST); }
static void txt_rr(void) { rr(INST, sizeof INST, 16, 4); put("\x03v=2", 4); }
static void a_rr(void) { rr(HOST, sizeof HOST, 1, 4); put("\x0a\x00\x00\x07", 4); }

/* ---------------------------------------------------------------------------------- */
/* The transport: after each query, the scenario's next answer (if any) arrives.         */

typedef enum { S_FULL, S_SPLIT, S_SILENT, S_HOSTILE } scenario_t;
static scenario_t g_scn;
static unsigned g_queries;
static int g_pending;

static int t_send(usmp_transport_t *t, const uint8_t *d, size_t n)
{
    (void)t;
    if (d == NULL || n < 12 || (d[2] & 0x80)) return -1; /* must be a query */
    g_queries++;
    g_pending = 1;
    return 0;
}

static int t_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max, uint32_t ms)
{
    (void)t;
    if (!g_pending) {
        g_now += ms;
        return 0;
    }
    g_pending = 0;
    switch (g_scn) {
    case S_FULL:
        header(4);
        ptr_rr(), srv_rr(), txt_rr(), a_rr();
        break;
    case S_SPLIT: /* one record per query: PTR, then SRV + TXT, then A */
        header(g_queries == 2 ? 2 : 1);
        if (g_queries == 1) ptr_rr();
        else if (g_queries == 2) srv_rr(), txt_rr();
        else a_rr();
        break;
    case S_HOSTILE: /* a name whose compression pointer points at itself */
        header(1);
        put("\xc0\x0c", 2);
        put16(1), put16(1), put16(0), put16(120), put16(4), put("\1\2\3\4", 4);
        break;
    case S_SILENT:
        g_now += ms;
        return 0;
    }
    if (g_len > max) return -1;
    for (size_t i = 0; i < g_len; i++) buf[i] = g_ans[i];
    return (int)g_len;
}

static usmp_transport_t g_tr = {.send = t_send, .flags = USMP_TRANSPORT_DATAGRAM,
                                .recv_timeout = t_recv_timeout};
static usmp_gateway_info_t g_gw;
static usmp_discover_stats_t g_st;

static int discover(void)
{
    usmp_discover_opts_t opts = {.timeout_ms = 3000};
    return usmp_discover_over(&g_tr, &opts, &g_gw, &g_st);
}

__attribute__((noinline)) static uint32_t measure(int *rc)
{
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &bench_stack_bottom; (uint32_t)(uintptr_t)p < sp - 64u; p++) *p = PAINT;
    *rc = discover();
    const uint32_t *p = &bench_stack_bottom;
    while (*p == PAINT) p++;
    return sp - (uint32_t)(uintptr_t)p;
}

static int failures;

static void run(const char *name, scenario_t s, int expect)
{
    int rc = 0;
    g_scn = s;
    g_queries = 0;
    g_pending = 0;
    uint32_t used = measure(&rc);
    int ok = rc == expect;
    if (ok && rc == USMP_OK)
        ok = g_gw.port == 9000 && g_gw.addr[0] == 10 && g_gw.addr[3] == 7 && g_gw.instance[0] == 'g' &&
             g_gw.host[0] == '1' && g_gw.protocol_version == 2;
    if (!ok) failures++;
    sh_puts("discovery: scenario=");
    sh_puts(name);
    sh_puts(" stack=");
    put_int((long)used);
    sh_puts(" rc=");
    put_int(rc);
    sh_puts(ok ? " ok=1\n" : " ok=0\n");
}

int bench_main(void)
{
    run("answer", S_FULL, USMP_OK);
    run("follow_ups", S_SPLIT, USMP_OK);
    run("timeout", S_SILENT, USMP_ERR_TIMEOUT);
    run("malformed", S_HOSTILE, USMP_ERR_BAD_FRAME);
    sh_puts("discovery: done failures=");
    put_int(failures);
    sh_puts("\n");
    return failures;
}
