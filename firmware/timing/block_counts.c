/*
 * nlpool's QEMU TCG plugin: how many times each translated block ran, split at marker functions.
 *
 * QEMU 7.2 (Debian 12) loads plugins but ships no header, so the few entry points of plugin API
 * version 1 used here are declared by hand below (their C signatures in QEMU 7.2's qemu-plugin.h).
 * Every translated block gets an inline 64-bit counter (one add per block executed: cheap enough
 * for tens of millions of instructions). Blocks that start at a marker address also get a callback:
 * `begin=ADDR` opens a segment (an op starts), `end=ADDR` closes it (the op ended). At each marker
 * the counters' growth since the previous marker is written out as one segment, so the caller can
 * cost each op's instructions separately. Output (`out=FILE`), one record per line:
 *   T <block id> <instruction addresses in hex...>   a translated block (written when translated)
 *   S <kind> <block id>:<executions> ...              a segment: kind O (inside an op: begin..end)
 *                                                     or G (between ops, and before/after them)
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, void (*cb)(unsigned int, void *),
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *), void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

typedef struct {
    uint64_t count; /* incremented by the translated code itself */
    uint64_t seen;  /* count at the previous marker */
} block_t;

/* Blocks are allocated in chunks that never move (the inline adds hold their addresses). */
#define CHUNK 4096
static block_t **chunks;
static size_t n_blocks, n_chunks;
static FILE *out;
static uint64_t begin_addr = UINT64_MAX, end_addr = UINT64_MAX;
static const int KIND_BEGIN = 'G', KIND_END = 'O';

static block_t *block_at(size_t id) { return &chunks[id / CHUNK][id % CHUNK]; }

static block_t *new_block(void)
{
    if (n_blocks == n_chunks * CHUNK) {
        block_t **grown = realloc(chunks, (n_chunks + 1) * sizeof *chunks);
        block_t *chunk = calloc(CHUNK, sizeof(block_t));
        if (grown == NULL || chunk == NULL) {
            fprintf(stderr, "nlpool block_counts: out of memory\n");
            exit(1);
        }
        chunks = grown;
        chunks[n_chunks++] = chunk;
    }
    return block_at(n_blocks++);
}

/* The segment that ends now: every block's executions since the previous marker. */
static void write_segment(int kind)
{
    fprintf(out, "S %c", kind);
    for (size_t id = 0; id < n_blocks; id++) {
        block_t *b = block_at(id);
        if (b->count != b->seen) {
            fprintf(out, " %zu:%" PRIu64, id, b->count - b->seen);
            b->seen = b->count;
        }
    }
    fputc('\n', out);
}

static void at_marker(unsigned int vcpu, void *kind)
{
    (void)vcpu;
    write_segment((int)(intptr_t)kind);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    const size_t n = qemu_plugin_tb_n_insns(tb);
    const uint64_t start = qemu_plugin_tb_vaddr(tb);
    const size_t index = n_blocks;
    block_t *b = new_block();
    fprintf(out, "T %zu", index);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, " %" PRIx64, qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, i)));
    }
    fputc('\n', out);
    /* The marker callback runs before the block's own count is added, so the marker block's
     * instructions land in the segment it opens. */
    if (start == begin_addr || start == end_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, at_marker, QEMU_PLUGIN_CB_NO_REGS,
                                             (void *)(intptr_t)(start == begin_addr ? KIND_BEGIN : KIND_END));
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    write_segment(KIND_BEGIN);
    fclose(out);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv)
{
    (void)info;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "begin=", 6) == 0) {
            begin_addr = strtoull(argv[i] + 6, NULL, 0);
        } else if (strncmp(argv[i], "end=", 4) == 0) {
            end_addr = strtoull(argv[i] + 4, NULL, 0);
        }
    }
    if (path == NULL || (out = fopen(path, "w")) == NULL) {
        fprintf(stderr, "nlpool block_counts: pass out=FILE (a writable path)\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
