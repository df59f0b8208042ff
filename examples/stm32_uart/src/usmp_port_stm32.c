/*
 * The usmp port hooks for an STM32F405, as an application writes them (usmp_port.h):
 *
 *   usmp_port_millis         SysTick, 1 ms
 *   usmp_port_delay_ms       SysTick + WFI
 *   usmp_port_log            the console (semihosting or USART2)
 *   usmp_port_get_device_id  the 96-bit unique id folded to 6 bytes
 *   usmp_port_random         the RNG peripheral (RM0090 section 24), with its seed and
 *                            clock error recovery and the continuous test; the EMULATOR
 *                            build reads host entropy over semihosting instead
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdbool.h>
#include <string.h>

#include "board.h"
#include "console.h"
#include "usmp_port.h"
#include "usmp_stm32_config.h"

#if USMP_STM32_EMULATOR
#include "semihosting.h"
#else
#include "stm32f405_regs.h"
#endif

uint32_t usmp_port_millis(void)
{
    return board_millis();
}

void usmp_port_delay_ms(uint32_t ms)
{
    board_delay_ms(ms);
}

void usmp_port_log(char level, const char *tag, const char *msg)
{
    uint32_t ms = board_millis();
    console_printf("[%5lu.%03lu] %c %s: %s\n", (unsigned long)(ms / 1000u),
                   (unsigned long)(ms % 1000u), level, tag != NULL ? tag : "", msg != NULL ? msg : "");
}

int usmp_port_get_device_id(uint8_t *out, size_t len)
{
    if (out == NULL || len < USMP_DEVICE_ID_LEN) {
        return -1;
    }
    uint8_t uid[12];
    board_unique_id(uid);
    /* Fold 12 bytes to 6: byte i XOR byte i+6. Bytes 0-3 hold the die's X/Y position on
     * its wafer, so two chips of one wafer and lot always differ; across lots a collision
     * is possible but unlikely. Provision ids yourself if you need a guarantee. */
    for (size_t i = 0; i < USMP_DEVICE_ID_LEN; i++) {
        out[i] = (uint8_t)(uid[i] ^ uid[i + 6u]);
    }
    return 0;
}

#if !USMP_STM32_EMULATOR

/* ---- the RNG peripheral ----------------------------------------------------------------
 * RM0090 section 24: a 32-bit word every 40 periods of PLL48CLK once RNGEN is set (the
 * PLL must run, and PLL48CLK must be above HCLK/16, or the clock check fails). Errors:
 *  - seed error (SECS/SEIS: the analog noise source misbehaved): clear SEIS, then clear
 *    and set RNGEN to restart the generator; words read meanwhile are discarded;
 *  - clock error (CECS/CEIS: the RNG clock is too slow): clear CEIS; generation resumes
 *    by itself once the clock is right, a lasting CECS means a misconfigured clock tree.
 * Continuous test (FIPS 140-2, as the manual recommends): the first word after enabling
 * is only kept for comparison, and a word equal to the previous one is a failure. */

#define RNG_SPINS 100000u       /* DRDY comes after ~40 RNG clocks: far more than enough */
#define RNG_MAX_RECOVERIES 4u   /* seed-error restarts or repeated words per call */

static bool g_rng_on;
static bool g_rng_primed;
static uint32_t g_rng_prev;

static void rng_restart(void)
{
    RNG_CR &= ~RNG_CR_RNGEN;
    RNG_CR |= RNG_CR_RNGEN;
    g_rng_primed = false; /* the next word is a new reference, not output */
}

/* One raw word, or -1 on a lasting clock error or when DRDY never comes.
 * *restarted is set when a seed error made us restart the generator. */
static int rng_raw(uint32_t *word, bool *restarted)
{
    *restarted = false;
    for (uint32_t spin = 0; spin < RNG_SPINS; spin++) {
        uint32_t sr = RNG_SR;
        if (sr & (RNG_SR_SECS | RNG_SR_SEIS)) {
            RNG_SR = ~RNG_SR_SEIS; /* rc_w0: 0 clears SEIS, 1 leaves CEIS */
            rng_restart();
            *restarted = true;
            return -1;
        }
        if (sr & RNG_SR_CEIS) {
            RNG_SR = ~RNG_SR_CEIS; /* rc_w0: 0 clears CEIS, 1 leaves SEIS */
        }
        if (sr & RNG_SR_CECS) {
            continue; /* clock error still present: wait (bounded) for it to clear */
        }
        if (sr & RNG_SR_DRDY) {
            *word = RNG_DR;
            return 0;
        }
    }
    return -1; /* no data: clock error that never cleared, or the RNG is not clocked */
}

static int rng_word(uint32_t *out)
{
    unsigned recoveries = 0;
    while (recoveries <= RNG_MAX_RECOVERIES) {
        uint32_t w;
        bool restarted;
        if (rng_raw(&w, &restarted) != 0) {
            if (!restarted) {
                return -1;
            }
            recoveries++;
            continue;
        }
        if (!g_rng_primed) {
            g_rng_prev = w;
            g_rng_primed = true;
            continue;
        }
        if (w == g_rng_prev) {
            recoveries++; /* continuous test failed: never output it, start over */
            rng_restart();
            continue;
        }
        g_rng_prev = w;
        *out = w;
        return 0;
    }
    return -1;
}

int usmp_port_random(uint8_t *out, size_t len)
{
    if (out == NULL) {
        return -1;
    }
    if (!g_rng_on) { /* first use: clock the RNG (AHB2), then start it */
        RCC_AHB2ENR |= RCC_AHB2ENR_RNGEN;
        (void)RCC_AHB2ENR;
        RNG_CR |= RNG_CR_RNGEN;
        g_rng_primed = false;
        g_rng_on = true;
    }
    size_t done = 0;
    while (done < len) {
        uint32_t w;
        if (rng_word(&w) != 0) {
            memset(out, 0, len); /* never hand out a partial buffer */
            return -1;
        }
        size_t n = (len - done < 4u) ? len - done : 4u;
        memcpy(out + done, &w, n);
        done += n;
    }
    return 0;
}

#else /* USMP_STM32_EMULATOR */

/* EMULATOR ONLY. QEMU's netduinoplus2 does not model the RNG (its registers read as
 * zero and DRDY never sets), so the emulator build asks the host for entropy through
 * semihosting: SYS_OPEN "/dev/urandom", SYS_READ, SYS_CLOSE. A real board never takes
 * this path: semihosting needs a debugger, and a debugger's host is no entropy source
 * to ship. */
int usmp_port_random(uint8_t *out, size_t len)
{
    if (out == NULL) {
        return -1;
    }
    if (len == 0u) {
        return 0;
    }
    if (sh_read_file("/dev/urandom", out, len) != 0) {
        memset(out, 0, len);
        return -1;
    }
    return 0;
}

#endif
