/* A QEMU TCG plugin that counts the guest instructions executed and prints "insns N" at exit (to QEMU's log:
 * run with -plugin libqemu_insn.so -d plugin). With the argument tb=on (-plugin libqemu_insn.so,tb=on) it also
 * prints "tb ADDRESS INSTRUCTIONS" for every translated block that ran: a profile by address. Debian 12's QEMU 7.2 loads plugins but ships neither the
 * example ones nor qemu-plugin.h, so the few entry points used here are declared by hand, as QEMU's plugin
 * API version 1 defines them. Built for this machine by acom.firmware_host.cbuild.insn_plugin. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed;  /* one vCPU (the Cortex-M images have one): plain counters are exact */

typedef struct block {  /* tb=on: one per translation (a block translated again gets another; summed later) */
    uint64_t vaddr, insns;
    struct block *next;
} block;
static block *blocks;
static int per_block;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;  /* each time the block runs, add its instruction count */
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
    if (per_block) {
        block *b = calloc(1, sizeof *b);
        if (!b) return;
        b->vaddr = qemu_plugin_tb_vaddr(tb);
        b->next = blocks;
        blocks = b;
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->insns, n);
    }
}

static void report(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    char line[64];
    for (block *b = blocks; b; b = b->next) {
        if (!b->insns) continue;
        snprintf(line, sizeof line, "tb %llx %llu\n", (unsigned long long)b->vaddr, (unsigned long long)b->insns);
        qemu_plugin_outs(line);
    }
    snprintf(line, sizeof line, "insns %llu\n", (unsigned long long)executed);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) per_block |= strcmp(argv[i], "tb=on") == 0;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
