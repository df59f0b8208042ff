/*
 * The few declarations of QEMU's TCG plugin API that tools/qemu-insn/insn.c uses, written
 * from the documented interface (https://www.qemu.org/docs/master/devel/tcg-plugins.html)
 * because Debian ships no development package with QEMU's own header. Plugin API version 1
 * is what Debian 12's QEMU 7.2 implements (its binary still exports qemu_plugin_n_vcpus,
 * which API 2 removed). Only registration calls that kept these signatures in later API
 * versions are used (no inline operations, which API 2 renamed), so a newer QEMU should
 * need only a newer USMP_QEMU_PLUGIN_API_VERSION; QEMU refuses, with a message, a plugin
 * whose `qemu_plugin_version` it does not support.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_QEMU_PLUGIN_API_H
#define USMP_QEMU_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#define USMP_QEMU_PLUGIN_API_VERSION 1

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

/* Register access a callback declares; 0 = none. */
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

#endif
