/*
 * stm32_superloop: the quickstart of main.c as a bare-metal superloop on the non-blocking
 * API (usmp_nb_*, usmp.h). After usmp_nb_connect no usmp call waits: every turn of the
 * loop polls the session (again at once while it reports events), moves the script on
 * when an event says so, and does work of its own: a heartbeat every HEARTBEAT_MS
 * (counted, its lateness measured) and a progress line every PROGRESS_MS. A turn with
 * nothing to do ends in WFI (the next interrupt: the 1 ms tick or a received byte), as a
 * superloop on a battery would; the tick bounds the wait, so timers are served within 1 ms.
 *
 * The script, each reply checked byte for byte: connect; echoes of 35 (text), 1, 452, 453,
 * 1000 and 1808 bytes; idle past keepalive_ms (the library PINGs by itself); usmp_nb_ping;
 * "cmd:ping" (the test gateway PINGs the device, answered with a PONG inside usmp_nb_poll,
 * then replies "ping-sent"); one more echo; usmp_nb_close (BYE).
 *
 * Prints each step with the loop turns it took, then the loop's figures: turns, heartbeats,
 * the longest usmp_nb_poll and the longest gap between two turns (board_cycles: HCLK
 * cycles; emulated time under QEMU), sizeof(usmp_nb_t), and the closing report of
 * quickstart.c. Exit status as main.c's.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "console.h"
#include "quickstart.h"
#include "stm32_usart.h"
#include "stm32f405_regs.h"
#include "usmp.h"
#include "usmp_port.h"
#include "usmp_stm32_config.h"

#define STEP_WAIT_MS 5000u    /* each step must be done within this */
#define HEARTBEAT_MS 10u      /* the loop's own periodic task */
#define PROGRESS_MS 500u      /* a progress line this often */
#define EVENTS_PER_TURN 8     /* polls in one turn while events keep coming */

static stm32_usart_t g_usart;  /* the USART's RX ring: no heap anywhere */
static usmp_uart_ctx_t g_uart; /* the library's UART transport (COBS or raw framing) */
static usmp_transport_t g_tr;
static usmp_t g_ctx;
static usmp_nb_t g_nb;                     /* the session between polls */
static uint8_t g_tx[USMP_MAX_MESSAGE_LEN]; /* the message going out: unchanged until SENT */
static uint8_t g_rx[USMP_MAX_MESSAGE_LEN]; /* a message that came (until the next poll) */

void USART1_IRQHandler(void)
{
    stm32_usart_irq(&g_usart);
}

/* Around usmp_nb_connect and every usmp_nb_poll: markers for an instruction count with
 * QEMU's TCG plugin (tools/qemu-insn: begin=superloop_poll_begin, end=superloop_poll_end;
 * region 0 is usmp_nb_connect, region i + 1 is poll i). */
__attribute__((noipa, used)) void superloop_poll_begin(void) { __asm__ volatile("nop"); }
__attribute__((noipa, used)) void superloop_poll_end(void) { __asm__ volatile("nop"); }

/* ---------------------------------------------------------------------- the script */

typedef enum {
    OP_CONNECT,  /* wait for USMP_EVENT_CONNECTED */
    OP_EXCHANGE, /* send g_tx, expect the reply g_want */
    OP_IDLE,     /* nothing but polls past keepalive_ms: the library PINGs */
    OP_PING,     /* usmp_nb_ping, until the PING is on the line */
    OP_DONE,
} op_t;

typedef struct {
    op_t op;
    int index; /* OP_EXCHANGE: -1 text, 0.. qs_messages[], QS_LAST_TAG the last, -2 cmd:ping */
} step_t;

#define IX_TEXT (-1)
#define IX_CMD_PING (-2)

static const char g_cmd_ping[] = "cmd:ping";
static const char g_ping_sent[] = "ping-sent";

static step_t g_script[16];
static size_t g_steps;

static void script_init(void)
{
    size_t n = 0;
    g_script[n++] = (step_t){OP_CONNECT, 0};
    g_script[n++] = (step_t){OP_EXCHANGE, IX_TEXT};
    for (size_t i = 0; i < qs_message_count; i++) {
        g_script[n++] = (step_t){OP_EXCHANGE, (int)i};
    }
    g_script[n++] = (step_t){OP_IDLE, 0};
    g_script[n++] = (step_t){OP_PING, 0};
    g_script[n++] = (step_t){OP_EXCHANGE, IX_CMD_PING};
    g_script[n++] = (step_t){OP_EXCHANGE, (int)QS_LAST_TAG};
    g_script[n++] = (step_t){OP_DONE, 0};
    g_steps = n;
}

/* The step under way and what it has seen. */
static struct {
    size_t at;             /* index into g_script */
    bool started;          /* its action is done (message handed to usmp_nb_send, ...) */
    bool sent, replied;    /* OP_EXCHANGE: SENT came, the reply came */
    size_t len;            /* OP_EXCHANGE: bytes in g_tx */
    const uint8_t *want;   /* OP_EXCHANGE: the reply expected */
    size_t want_len;
    uint32_t t0;           /* when it started (ms) */
    uint32_t frames_tx0;   /* UART frames out when it started */
    uint32_t turns;        /* loop turns since it started */
} g_step;

/* The loop's own figures. */
static struct {
    uint32_t turns;          /* loop turns */
    uint32_t polls;          /* usmp_nb_poll calls */
    uint32_t events;         /* events other than NONE */
    uint32_t poll_max;       /* longest usmp_nb_poll, cycles */
    uint32_t poll_max_at;    /* ... its number (0-based: the plugin's region) */
    size_t poll_max_step;    /* ... the step it was in */
    uint32_t gap_max;        /* longest time between the starts of two turns, cycles */
    uint32_t beats;          /* heartbeats */
    uint32_t beat_late_max;  /* most ms a heartbeat came after its time */
    uint32_t step_turns_min; /* fewest turns a message exchange took */
    uint32_t sleeps;         /* turns that ended in WFI */
} g_loop = {.step_turns_min = UINT32_MAX};

static const char *step_name(size_t at)
{
    static char name[24];
    const step_t *s = &g_script[at];
    switch (s->op) {
    case OP_CONNECT:
        return "connect";
    case OP_IDLE:
        return "keepalive";
    case OP_PING:
        return "ping";
    case OP_DONE:
        return "bye";
    case OP_EXCHANGE:
        break;
    }
    if (s->index == IX_CMD_PING) {
        return "gateway-ping";
    }
    size_t len = s->index == IX_TEXT ? sizeof QS_HELLO - 1u
                 : s->index == (int)QS_LAST_TAG ? QS_LAST_LEN
                                                 : qs_messages[s->index].len;
    fmt_snprintf(name, sizeof name, "echo %u", (unsigned)len);
    return name;
}

/* Starts the step at g_step.at: EXIT_OK, or a failure (printed). */
static int step_start(void)
{
    const step_t *s = &g_script[g_step.at];
    g_step.started = false;
    g_step.sent = g_step.replied = false;
    g_step.t0 = usmp_port_millis();
    g_step.frames_tx0 = g_uart.stats.frames_tx;
    g_step.turns = 0;
    if (s->op != OP_EXCHANGE) {
        return EXIT_OK;
    }
    if (s->index == IX_TEXT) {
        g_step.len = sizeof QS_HELLO - 1u;
        memcpy(g_tx, QS_HELLO, g_step.len);
    } else if (s->index == IX_CMD_PING) {
        g_step.len = sizeof g_cmd_ping - 1u;
        memcpy(g_tx, g_cmd_ping, g_step.len);
    } else if (s->index == (int)QS_LAST_TAG) {
        g_step.len = QS_LAST_LEN;
        qs_fill_pattern(g_tx, g_step.len, QS_LAST_TAG);
    } else {
        g_step.len = qs_messages[s->index].len;
        qs_fill_pattern(g_tx, g_step.len, (uint32_t)s->index);
    }
    if (s->index == IX_CMD_PING) {
        g_step.want = (const uint8_t *)g_ping_sent;
        g_step.want_len = sizeof g_ping_sent - 1u;
    } else {
        g_step.want = g_tx; /* an echo */
        g_step.want_len = g_step.len;
    }
    int rc = usmp_nb_send(&g_ctx, &g_nb, g_tx, (uint16_t)g_step.len);
    if (rc != USMP_OK) {
        return qs_fail_usmp("usmp_nb_send", rc);
    }
    g_step.started = true;
    return EXIT_OK;
}

/* The step is done: prints it and starts the next. */
static int step_done(const char *detail)
{
    uint32_t ms = usmp_port_millis() - g_step.t0;
    console_printf("STEP %s ok (%s%s%lu ms, %lu loop turns)\n", step_name(g_step.at), detail,
                   detail[0] ? ", " : "", (unsigned long)ms, (unsigned long)g_step.turns);
    if (g_script[g_step.at].op == OP_EXCHANGE && g_step.turns < g_loop.step_turns_min) {
        g_loop.step_turns_min = g_step.turns;
    }
    g_step.at++;
    return step_start();
}

static int step_exchange_check(void)
{
    if (!(g_step.sent && g_step.replied)) {
        return EXIT_OK;
    }
    const step_t *s = &g_script[g_step.at];
    char detail[48];
    if (s->index == IX_CMD_PING) {
        fmt_snprintf(detail, sizeof detail, "the gateway's PING answered, \"%s\"", g_ping_sent);
    } else {
        const char *label = s->index == IX_TEXT ? "text"
                            : s->index == (int)QS_LAST_TAG ? "after the keepalive"
                                                           : qs_messages[s->index].label;
        unsigned frames = qs_frames(g_step.len);
        fmt_snprintf(detail, sizeof detail, "%s, %u frame%s", label, frames,
                     frames > 1u ? "s" : "");
    }
    return step_done(detail);
}

/* One event of usmp_nb_poll: EXIT_OK, or a failure (printed). */
static int on_event(const usmp_event_t *ev)
{
    const step_t *s = &g_script[g_step.at];
    switch (ev->kind) {
    case USMP_EVENT_NONE:
        return EXIT_OK;
    case USMP_EVENT_CONNECTED:
        if (s->op != OP_CONNECT) {
            console_puts("STEP connect FAILED: a second CONNECTED event\n");
            return EXIT_USMP;
        }
        return step_done(USMP_STM32_WIRE == 1 ? "wire v1" : "wire v2");
    case USMP_EVENT_SENT:
        if (ev->error != USMP_OK) {
            return qs_fail_usmp(step_name(g_step.at), ev->error);
        }
        if (s->op != OP_EXCHANGE || !g_step.started || g_step.sent) {
            console_printf("STEP %s FAILED: a SENT event for no message\n", step_name(g_step.at));
            return EXIT_USMP;
        }
        g_step.sent = true;
        return step_exchange_check();
    case USMP_EVENT_MESSAGE:
        if (s->op != OP_EXCHANGE || g_step.replied) {
            console_printf("STEP %s FAILED: unexpected %u-byte message\n", step_name(g_step.at),
                           (unsigned)ev->len);
            return EXIT_MISMATCH;
        }
        if (ev->len != g_step.want_len || memcmp(g_rx, g_step.want, g_step.want_len) != 0) {
            console_printf("STEP %s FAILED: got %u bytes back, content %s\n",
                           step_name(g_step.at), (unsigned)ev->len,
                           ev->len == g_step.want_len ? "differs" : "-");
            return EXIT_MISMATCH;
        }
        g_step.replied = true;
        return step_exchange_check();
    case USMP_EVENT_ERROR:
        return qs_fail_usmp(step_name(g_step.at), ev->error);
    case USMP_EVENT_CLOSED:
        console_printf("STEP %s FAILED: session closed: %d (%s)\n", step_name(g_step.at),
                       ev->error, usmp_err_name(ev->error));
        return EXIT_USMP;
    }
    return EXIT_OK;
}

/* What the step does without an event (timers, the PING): EXIT_OK, or a failure. */
static int step_tick(void)
{
    const step_t *s = &g_script[g_step.at];
    uint32_t ms = usmp_port_millis() - g_step.t0;
    uint32_t out = g_uart.stats.frames_tx - g_step.frames_tx0;
    char detail[96];
    if (s->op == OP_IDLE) {
        uint32_t idle = USMP_STM32_KEEPALIVE_MS + USMP_STM32_KEEPALIVE_MS / 4u + 100u;
        if (ms < idle) {
            return EXIT_OK;
        }
        if (out == 0u) {
            console_printf("STEP keepalive FAILED: no PING in %lu ms idle\n", (unsigned long)ms);
            return EXIT_USMP;
        }
        fmt_snprintf(detail, sizeof detail,
                     "idle > keepalive_ms=%u: the library sent a PING by itself, %lu frame%s out",
                     (unsigned)USMP_STM32_KEEPALIVE_MS, (unsigned long)out, out > 1u ? "s" : "");
        return step_done(detail);
    }
    if (s->op == OP_PING) {
        if (!g_step.started) {
            int rc = usmp_nb_ping(&g_ctx, &g_nb);
            if (rc == USMP_ERR_BUSY) {
                return EXIT_OK; /* a keepalive PING under way: ask again next turn */
            }
            if (rc != USMP_OK) {
                return qs_fail_usmp("usmp_nb_ping", rc);
            }
            g_step.started = true;
            g_step.frames_tx0 = g_uart.stats.frames_tx;
            return EXIT_OK;
        }
        if (out == 0u) {
            return EXIT_OK; /* goes out at the next poll */
        }
        return step_done("usmp_nb_ping: PING on the line");
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ the loop */

/* The loop's own periodic work: a heartbeat (on a board, toggle an LED here). */
static void heartbeat(uint32_t now_ms, uint32_t *due)
{
    if ((int32_t)(now_ms - *due) < 0) {
        return;
    }
    uint32_t late = now_ms - *due;
    if (late > g_loop.beat_late_max) {
        g_loop.beat_late_max = late;
    }
    g_loop.beats++;
    *due += HEARTBEAT_MS * (late / HEARTBEAT_MS + 1u); /* beats missed are not made up */
}

static int superloop(void)
{
    uint32_t t_start = usmp_port_millis();
    uint32_t beat_due = t_start + HEARTBEAT_MS;
    uint32_t progress_due = t_start + PROGRESS_MS;
    uint32_t last_turn = board_cycles();
    int rc = step_start();
    while (rc == EXIT_OK && g_script[g_step.at].op != OP_DONE) {
        uint32_t c = board_cycles();
        if (g_loop.turns > 0u && c - last_turn > g_loop.gap_max) {
            g_loop.gap_max = c - last_turn;
        }
        last_turn = c;
        g_loop.turns++;
        g_step.turns++;

        /* The session: poll, and again while it has something to report. */
        bool busy = false;
        for (int i = 0; i < EVENTS_PER_TURN && rc == EXIT_OK; i++) {
            usmp_event_t ev;
            superloop_poll_begin();
            uint32_t p0 = board_cycles();
            int kind = usmp_nb_poll(&g_ctx, &g_nb, &ev);
            uint32_t dt = board_cycles() - p0;
            superloop_poll_end();
            if (dt > g_loop.poll_max) {
                g_loop.poll_max = dt;
                g_loop.poll_max_at = g_loop.polls;
                g_loop.poll_max_step = g_step.at;
            }
            g_loop.polls++;
            if (kind < 0) {
                rc = qs_fail_usmp("usmp_nb_poll", kind);
                break;
            }
            if (ev.kind == USMP_EVENT_NONE) {
                break;
            }
            g_loop.events++;
            busy = true;
            rc = on_event(&ev);
        }
        if (rc == EXIT_OK) {
            rc = step_tick();
        }
        if (rc == EXIT_OK && usmp_port_millis() - g_step.t0 >= STEP_WAIT_MS) {
            console_printf("STEP %s FAILED: not done within %u ms\n", step_name(g_step.at),
                           STEP_WAIT_MS);
            rc = EXIT_USMP;
        }

        /* The loop's own work. */
        uint32_t now = usmp_port_millis();
        heartbeat(now, &beat_due);
        if ((int32_t)(now - progress_due) >= 0) {
            progress_due += PROGRESS_MS;
            console_printf("loop: %lu ms, %lu turns, %lu heartbeats, step '%s'\n",
                           (unsigned long)(now - t_start), (unsigned long)g_loop.turns,
                           (unsigned long)g_loop.beats, step_name(g_step.at));
        }

        /* Nothing happened: sleep until the next interrupt, unless a byte already waits. */
        if (!busy) {
            cpu_irq_disable();
            if (!stm32_usart_available(&g_usart)) {
                g_loop.sleeps++;
                cpu_wfi();
            }
            cpu_irq_enable();
        }
    }
    return rc;
}

static int run(void)
{
    int rc = qs_setup(&g_ctx, &g_tr, &g_uart, &g_usart);
    if (rc != EXIT_OK) {
        return rc;
    }
    script_init();
    /* Not a blocking call: it makes the key pair and the HELLO; usmp_nb_poll does the rest. */
    superloop_poll_begin();
    uint32_t c0 = board_cycles();
    rc = usmp_nb_connect(&g_ctx, &g_nb, &g_tr, g_rx, (uint16_t)sizeof g_rx);
    uint32_t connect_cycles = board_cycles() - c0;
    superloop_poll_end();
    if (rc != USMP_OK) {
        return qs_fail_usmp("usmp_nb_connect", rc);
    }
    uint32_t t0 = usmp_port_millis();
    uint32_t reads0 = g_usart.reads, waits0 = g_usart.reads_waiting;
    rc = superloop();
    uint32_t reads = g_usart.reads - reads0, waits = g_usart.reads_waiting - waits0;
    uint32_t ms = usmp_port_millis() - t0;
    usmp_nb_close(&g_ctx, &g_nb); /* BYE (not waited for), keys zeroized, transport closed */
    if (rc == EXIT_OK) {
        console_printf("STEP bye ok (usmp_nb_close, connected=%d)\n",
                       usmp_is_connected(&g_ctx) ? 1 : 0);
    }
    g_tr.destroy(&g_tr);

    uint32_t per_us = board_hclk_hz() / 1000000u;
    console_printf("superloop: %lu turns in %lu ms (%lu slept in WFI), %lu polls, %lu events, "
                   "fewest turns in an exchange %lu\n",
                   (unsigned long)g_loop.turns, (unsigned long)ms, (unsigned long)g_loop.sleeps,
                   (unsigned long)g_loop.polls, (unsigned long)g_loop.events,
                   (unsigned long)(g_loop.step_turns_min == UINT32_MAX ? 0u
                                                                       : g_loop.step_turns_min));
    console_printf("superloop: heartbeat every %u ms: %lu beats, at most %lu ms late\n",
                   HEARTBEAT_MS, (unsigned long)g_loop.beats,
                   (unsigned long)g_loop.beat_late_max);
    console_printf("superloop: longest usmp_nb_poll %lu cycles = %lu us (poll #%lu, step '%s'); "
                   "longest gap between turns %lu us; usmp_nb_connect %lu cycles\n",
                   (unsigned long)g_loop.poll_max, (unsigned long)(g_loop.poll_max / per_us),
                   (unsigned long)g_loop.poll_max_at, step_name(g_loop.poll_max_step),
                   (unsigned long)(g_loop.gap_max / per_us), (unsigned long)connect_cycles);
    console_printf("superloop: the UART read hook was called %lu times, %lu of them allowed "
                   "to wait\n",
                   (unsigned long)reads, (unsigned long)waits);
    console_printf("superloop: sizeof usmp_nb_t %u, usmp_t %u, usmp_uart_ctx_t %u, "
                   "stm32_usart_t %u bytes (all static)\n",
                   (unsigned)sizeof(usmp_nb_t), (unsigned)sizeof(usmp_t),
                   (unsigned)sizeof(usmp_uart_ctx_t), (unsigned)sizeof(stm32_usart_t));
    return rc;
}

int main(void)
{
    qs_start(", superloop: usmp_nb_*");
    return qs_report(run(), &g_ctx, &g_uart, &g_usart);
}
