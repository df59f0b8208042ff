/*
 * Measurement firmware (Cortex-M4, QEMU netduinoplus2): runs the C API of the release
 * library against an in-memory transport that plays the gateway from pre-computed frames
 * (frames.h), and for every call reports
 *   - its peak stack: the stack is painted below the caller's frame, the call runs, and the
 *     deepest overwritten word gives the high-water mark (transport callbacks and port hooks
 *     of this file included, as an application would see it);
 *   - an instruction-count region: bench_mark_begin()/bench_mark_end() bracket the call, and
 *     the QEMU plugin tools/qemu-insn/insn.c counts the guest instructions between them.
 * Every call's result is checked (return code, and the received bytes against the pattern
 * the frames were sealed from), so a figure always comes from a call that did its job.
 *
 * Output (semihosting stdout), one line per scenario, in region order:
 *   bench: scenario=<name> stack=<bytes> rc=<rc> ok=<0|1>
 * then "bench: sizeof_usmp_t=<n>" and "bench: done failures=<n>"; exit status = failures.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stddef.h>
#include <stdint.h>

#include "frames.h"
#include "semihost.h"
#include "usmp.h"

#define PAINT 0xC5A5E11Fu

extern uint32_t bench_stack_bottom;

/* ---------------------------------------------------------------------------------- */
/* Small helpers (no libc).                                                             */

static void copy(uint8_t *d, const uint8_t *s, size_t n)
{
    while (n--) *d++ = *s++;
}

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

/* Region markers for the instruction-count plugin: their addresses are passed to it. */
__attribute__((noinline, used)) void bench_mark_begin(void) { __asm__ volatile("nop"); }
__attribute__((noinline, used)) void bench_mark_end(void) { __asm__ volatile("nop"); }

/* ---------------------------------------------------------------------------------- */
/* Port hooks: deterministic.                                                            */

static const uint8_t *g_priv;  /* the next 32-byte random request gets these bytes */
static const uint8_t *g_devid;
static uint32_t g_now = 1000, g_counter;

int usmp_port_get_device_id(uint8_t *out, size_t len)
{
    if (len < 6) return -1;
    copy(out, g_devid, 6);
    return 0;
}

int usmp_port_random(uint8_t *out, size_t len)
{
    if (len == 32 && g_priv) {
        copy(out, g_priv, 32);
        g_priv = NULL;
        return 0;
    }
    for (size_t i = 0; i < len; i++) out[i] = (uint8_t)(0x5A ^ (g_counter++ * 13u));
    return 0;
}

void usmp_port_delay_ms(uint32_t ms) { g_now += ms; }
uint32_t usmp_port_millis(void) { return g_now++; }
/* One thread of execution: the bare-metal default (component/usmp_port_lock.c) does nothing. */
void usmp_port_lock(const void *ctx)
{
    (void)ctx;
}

void usmp_port_unlock(const void *ctx)
{
    (void)ctx;
}

void usmp_port_log(char level, const char *tag, const char *msg)
{
    (void)level;
    (void)tag;
    (void)msg;
}

/* ---------------------------------------------------------------------------------- */
/* The gateway: a queue of frames to hand out, and (datagram) the UTACK it owes.         */

typedef struct {
    const uint8_t *p;
    size_t n;
} frame_t;

static struct {
    frame_t q[8];
    unsigned head, tail;
    uint8_t ack[15];
    size_t ack_len;
    frame_t arm, pre; /* datagram: `arm` is delivered before the UTACK of the next device frame */
    int datagram, version;
    unsigned sent, bad_sends;
} gw;

static void gw_reset(int version, int datagram)
{
    gw.head = gw.tail = 0;
    gw.ack_len = 0;
    gw.arm = gw.pre = (frame_t){0};
    gw.version = version;
    gw.datagram = datagram;
}

static void gw_push(const uint8_t *p, size_t n) { gw.q[gw.tail++ & 7u] = (frame_t){p, n}; }

static int utack_index(uint8_t ty)
{
    static const uint8_t order[] = {5, 6, 7, 8, 9, 11}; /* as in gen_frames.py */
    for (int i = 0; i < 6; i++)
        if (order[i] == ty) return i;
    return -1;
}

static int tr_send(usmp_transport_t *t, const uint8_t *d, size_t n)
{
    (void)t;
    gw.sent++;
    if (n < 7 || n > USMP_MAX_FRAME_SIZE) {
        gw.bad_sends++;
        return -1;
    }
    if (!gw.datagram || d[0] != 0xCD) return 0; /* stream, or the device's own UTACK */
    /* Acknowledge the device's frame as the gateway would. */
    uint8_t ty = d[3];
    uint32_t seq = (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24;
    const uint8_t head[7] = {0xAC, 0xAC, ty, d[4], d[5], d[6], d[7]};
    copy(gw.ack, head, 7);
    gw.ack_len = 7;
    if (gw.arm.p) { /* a gateway frame that crosses the device's frame on the wire */
        gw.pre = gw.arm;
        gw.arm = (frame_t){0};
    }
    int ti = utack_index(ty);
    if (gw.version == 2 && ti >= 0) {
        if (seq >= BENCH_UTACK_SEQS) {
            gw.bad_sends++;
            return 0;
        }
        copy(gw.ack + 7, &V2_UTACK_MAC[((unsigned)ti * BENCH_UTACK_SEQS + seq) * 8u], 8);
        gw.ack_len = 15;
    }
    return 0;
}

static int tr_recv(usmp_transport_t *t, uint8_t *buf, size_t max)
{
    (void)t;
    const uint8_t *p;
    size_t n;
    if (gw.pre.p) {
        p = gw.pre.p;
        n = gw.pre.n;
        gw.pre = (frame_t){0};
    } else if (gw.ack_len) {
        p = gw.ack;
        n = gw.ack_len;
        gw.ack_len = 0;
    } else if (gw.head != gw.tail) {
        frame_t f = gw.q[gw.head++ & 7u];
        p = f.p;
        n = f.n;
    } else {
        return 0; /* nothing within the receive timeout */
    }
    if (n > max) return -1;
    copy(buf, p, n);
    return (int)n;
}

static int tr_recv_timeout(usmp_transport_t *t, uint8_t *buf, size_t max, uint32_t ms)
{
    (void)ms;
    return tr_recv(t, buf, max);
}

static int tr_available(usmp_transport_t *t)
{
    (void)t;
    return gw.pre.p || gw.ack_len != 0 || gw.head != gw.tail;
}

static void tr_close(usmp_transport_t *t) { (void)t; }
static int tr_reconnect(usmp_transport_t *t)
{
    (void)t;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Scenarios.                                                                            */

static usmp_t ctx;
static usmp_transport_t tr;
static uint8_t msg[USMP_MAX_MESSAGE_LEN];
static uint8_t out[USMP_MAX_MESSAGE_LEN];
static unsigned failures;

static void setup(int version, int datagram)
{
    gw_reset(version, datagram);
    tr = (usmp_transport_t){0};
    tr.send = tr_send;
    tr.recv = tr_recv;
    tr.close = tr_close;
    tr.reconnect = tr_reconnect;
    tr.available = tr_available;
    if (datagram) {
        tr.flags = USMP_TRANSPORT_DATAGRAM;
        tr.recv_timeout = tr_recv_timeout;
    }
    usmp_close(&ctx); /* ends the previous session, if any */
    ctx = (usmp_t){0};
    ctx.protocol_version = (uint8_t)version;
    ctx.psk = version == 1 ? V1_PSK : V2_PSK;
    ctx.psk_len = version == 1 ? sizeof V1_PSK : sizeof V2_PSK;
    g_priv = version == 1 ? V1_CLIENT_PRIV : V2_CLIENT_PRIV;
    g_devid = version == 1 ? V1_DEVICE_ID : V2_DEVICE_ID;
    if (version == 1) {
        gw_push(V1_CHALLENGE, sizeof V1_CHALLENGE);
        gw_push(V1_SESSION_OK, sizeof V1_SESSION_OK);
    } else {
        gw_push(V2_CHALLENGE, sizeof V2_CHALLENGE);
        gw_push(V2_SESSION_OK, sizeof V2_SESSION_OK);
    }
}

#define PUSH(f) gw_push((f), sizeof(f))
#define ARM(f) (gw.arm = (frame_t){(f), sizeof(f)})

static int f_connect(void) { return usmp_connect(&ctx, &tr); }
static int f_send452(void) { return usmp_send(&ctx, msg, 452); }
static int f_send1808(void) { return usmp_send(&ctx, msg, 1808); }
static int f_recv(void) { return usmp_recv(&ctx, out, sizeof out); }
static int f_ping(void) { return usmp_ping(&ctx); }
static int f_keepalive(void) { return usmp_keepalive_tick(&ctx); }
static int f_rekey(void) { return usmp_rekey(&ctx); }
static int f_close(void)
{
    usmp_close(&ctx);
    return usmp_is_connected(&ctx) ? -100 : 0;
}

/* Paints the stack below the caller's frame, runs fn between the region markers and
 * returns the depth reached below the stack pointer at the call. */
__attribute__((noinline)) static uint32_t measure(int (*fn)(void), int *rc)
{
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &bench_stack_bottom; (uint32_t)(uintptr_t)p < sp - 64u; p++) *p = PAINT;
    bench_mark_begin();
    *rc = fn();
    bench_mark_end();
    const uint32_t *p = &bench_stack_bottom;
    while (*p == PAINT) p++;
    return sp - (uint32_t)(uintptr_t)p;
}

static int pattern_ok(const uint8_t *b, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (uint8_t)(i * 7u + salt)) return 0;
    return 1;
}

/* expect: the return code the call must give; salt >= 0: out[0..expect] must hold the
 * pattern sealed by gen_frames.py with that salt. */
static void run(const char *name, int (*fn)(void), int expect, int salt)
{
    int rc = 0;
    unsigned bad0 = gw.bad_sends;
    uint32_t used = measure(fn, &rc);
    int ok = rc == expect && gw.bad_sends == bad0;
    if (ok && salt >= 0) ok = pattern_ok(out, (size_t)expect, (unsigned)salt);
    if (!ok) failures++;
    sh_puts("bench: scenario=");
    sh_puts(name);
    sh_puts(" stack=");
    put_int((long)used);
    sh_puts(" rc=");
    put_int(rc);
    sh_puts(ok ? " ok=1\n" : " ok=0\n");
}

int bench_main(void)
{
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 5u + 1u);

    /* Wire v2 over a byte stream: the default configuration. */
    setup(2, 0);
    run("v2.stream.connect", f_connect, 0, -1);
    run("v2.stream.send452", f_send452, 0, -1);
    PUSH(V2_G_DATA452);
    run("v2.stream.recv452", f_recv, 452, 3);
    run("v2.stream.send1808", f_send1808, 0, -1);
    PUSH(V2_G_MSG1808_0);
    PUSH(V2_G_MSG1808_1);
    PUSH(V2_G_MSG1808_2);
    PUSH(V2_G_MSG1808_3);
    run("v2.stream.recv1808", f_recv, 1808, 11);
    PUSH(V2_G_PING5); /* answered with a PONG inside usmp_recv */
    run("v2.stream.recv_ping", f_recv, 0, -1);
    PUSH(V2_G_REKEY6); /* the gateway rotates the keys */
    run("v2.stream.recv_rekey", f_recv, 0, -1);
    PUSH(V2_G_DATA452_REKEYED);
    run("v2.stream.recv_rekeyed", f_recv, 452, 5);
    run("v2.stream.ping", f_ping, 0, -1);
    ctx.keepalive_ms = 1;
    run("v2.stream.keepalive", f_keepalive, 0, -1);
    run("v2.stream.rekey", f_rekey, 0, -1);
    run("v2.stream.close", f_close, 0, -1);

    /* Wire v2 over datagrams: UTACKs (MAC'd), frames crossing on the wire. */
    setup(2, 1);
    run("v2.datagram.connect", f_connect, 0, -1);
    run("v2.datagram.send452", f_send452, 0, -1);
    PUSH(V2_G_DATA452);
    run("v2.datagram.recv452", f_recv, 452, 3);
    run("v2.datagram.send1808", f_send1808, 0, -1);
    PUSH(V2_G_MSG1808_0);
    PUSH(V2_G_MSG1808_1);
    PUSH(V2_G_MSG1808_2);
    PUSH(V2_G_MSG1808_3);
    run("v2.datagram.recv1808", f_recv, 1808, 11);
    ARM(V2_G_PING5); /* a PING arrives while the DATA waits for its UTACK */
    run("v2.datagram.send452_ping", f_send452, 0, -1);
    PUSH(V2_G_PING6);
    ARM(V2_G_PING7); /* ... and while the PONG to a PING waits for its UTACK */
    run("v2.datagram.recv_ping_ping", f_recv, 0, -1);
    PUSH(V2_G_REKEY8);
    run("v2.datagram.recv_rekey", f_recv, 0, -1);
    PUSH(V2_G_DATA452_REKEYED);
    run("v2.datagram.recv_rekeyed", f_recv, 452, 5);
    /* The gateway model has no MACs under the new keys: the BYE's UTACK does not verify,
     * so close waits out one retransmission timeout (best effort, as designed). */
    run("v2.datagram.close", f_close, 0, -1);

    /* Wire v1 over a byte stream (legacy gateways). */
    setup(1, 0);
    run("v1.stream.connect", f_connect, 0, -1);
    run("v1.stream.send452", f_send452, 0, -1);
    PUSH(V1_G_DATA452);
    run("v1.stream.recv452", f_recv, 452, 3);
    run("v1.stream.close", f_close, 0, -1);

    sh_puts("bench: sizeof_usmp_t=");
    put_int((long)sizeof(usmp_t));
    sh_puts("\nbench: done failures=");
    put_int((long)failures);
    sh_puts("\n");
    return (int)failures;
}
