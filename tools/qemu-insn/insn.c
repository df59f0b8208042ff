/*
 * QEMU TCG plugin: guest instructions executed between two marker addresses.
 *
 *   qemu-system-arm ... -plugin insn.so,begin=0x0800041c,end=0x08000420[,out=FILE][,profile=I]
 *
 * Every executed translation block adds its instruction count to a running total. When the
 * instruction at `begin` executes, the total is remembered; when the one at `end` executes,
 * the difference is reported as the next region ("region <i> insns=<n>"), to FILE (appended,
 * flushed per region) or to QEMU's log (-d plugin) without `out`. The markers are the first
 * instructions of two tiny functions the firmware calls around each measured call, so each
 * marker starts its own block and the count is exact up to the marker functions' own few
 * instructions. The firmware has no interrupts; a block that an exception cuts short would
 * be counted whole.
 *
 * profile=I: for region I (0-based), also reports where its instructions went, as lines
 * "pc 0x<block start> insns=<n>" (tools/measure/measure.py maps them to functions).
 *
 * Build (host compiler, no QEMU sources needed):
 *   gcc -shared -fPIC -O2 -o insn.so tools/qemu-insn/insn.c
 * SPDX-License-Identifier: Apache-2.0
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin-api.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT int qemu_plugin_version = USMP_QEMU_PLUGIN_API_VERSION;

static uint64_t total;       /* instructions of all executed blocks */
static uint64_t start;       /* total at the last `begin` */
static int open_region;      /* a `begin` without its `end` yet */
static unsigned regions;
static uint64_t begin_addr, end_addr;
static FILE *out;
static long profile_region = -1; /* region whose blocks are profiled, -1 = none */

/* One translated block: its start and length (a block may be translated more than once). */
struct block {
    uint64_t vaddr;
    uint64_t n;
};

/* Instructions per block start address inside the profiled region (open addressing). */
#define PROFILE_SLOTS 65536u
static struct {
    uint64_t vaddr, insns;
} *profile;

static void report(const char *line)
{
    if (out) {
        fputs(line, out);
        fflush(out);
    } else {
        qemu_plugin_outs(line);
    }
}

static void on_block(unsigned int vcpu, void *u)
{
    (void)vcpu;
    const struct block *b = u;
    total += b->n;
    if (profile && open_region && (long)regions == profile_region) {
        uint32_t h = (uint32_t)(b->vaddr * 2654435761u) & (PROFILE_SLOTS - 1);
        while (profile[h].insns && profile[h].vaddr != b->vaddr) h = (h + 1) & (PROFILE_SLOTS - 1);
        profile[h].vaddr = b->vaddr;
        profile[h].insns += b->n;
    }
}

static void on_begin(unsigned int vcpu, void *u)
{
    (void)vcpu;
    (void)u;
    start = total;
    open_region = 1;
}

static void on_end(unsigned int vcpu, void *u)
{
    (void)vcpu;
    (void)u;
    char line[96];
    if (!open_region) {
        report("insn: end marker without begin\n");
        return;
    }
    open_region = 0;
    if (profile && (long)regions == profile_region) {
        for (uint32_t i = 0; i < PROFILE_SLOTS; i++) {
            if (!profile[i].insns) continue;
            snprintf(line, sizeof line, "pc 0x%" PRIx64 " insns=%" PRIu64 "\n", profile[i].vaddr,
                     profile[i].insns);
            report(line);
        }
    }
    snprintf(line, sizeof line, "region %u insns=%" PRIu64 "\n", regions++, total - start);
    report(line);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct block *b = malloc(sizeof *b); /* kept: the block may run until the end */
    if (!b) abort();
    b->n = n;
    b->vaddr = n ? qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, 0)) : 0;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, b);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        if (va == begin_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        else if (va == end_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *u)
{
    (void)id;
    (void)u;
    char line[96];
    snprintf(line, sizeof line, "total insns=%" PRIu64 " regions=%u\n", total, regions);
    report(line);
    if (out) fclose(out);
    out = NULL;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "begin=", 6) == 0) {
            begin_addr = strtoull(a + 6, NULL, 0);
        } else if (strncmp(a, "end=", 4) == 0) {
            end_addr = strtoull(a + 4, NULL, 0);
        } else if (strncmp(a, "profile=", 8) == 0) {
            profile_region = strtol(a + 8, NULL, 0);
            profile = calloc(PROFILE_SLOTS, sizeof *profile);
            if (!profile) return -1;
        } else if (strncmp(a, "out=", 4) == 0) {
            out = fopen(a + 4, "a");
            if (!out) {
                fprintf(stderr, "insn plugin: cannot open %s\n", a + 4);
                return -1;
            }
        } else {
            fprintf(stderr, "insn plugin: unknown argument '%s' (begin=, end=, out=, profile=)\n", a);
            return -1;
        }
    }
    if (!begin_addr || !end_addr) {
        fprintf(stderr, "insn plugin: needs begin=ADDR,end=ADDR\n");
        return -1;
    }
    /* Thumb: the marker's address as the plugin sees it has bit 0 clear. */
    begin_addr &= ~(uint64_t)1;
    end_addr &= ~(uint64_t)1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
