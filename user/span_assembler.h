/*
 * Turns the begin/end event stream into closed spans: a call stack per
 * thread, paired by the return-address slot, so that frames destroyed by
 * longjmp, exceptions or unwinding are noticed and closed as abnormal at
 * the next event of their thread.
 */
#ifndef SPANPROBE_SPAN_ASSEMBLER_H
#define SPANPROBE_SPAN_ASSEMBLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "spanprobe.h"
#include "span.h"

struct sp_asm_sym {
	const char *name;
	bool root;
};

/* Called for every closed span, children before their parents. Spans
 * outside any query have query_id 0. */
typedef void (*sp_span_fn)(void *arg, const struct sp_span *s);

struct sp_asm_stats {
	uint64_t events;
	uint64_t spans;         /* closed, normally or not */
	uint64_t abnormal;      /* frames left without an exit probe */
	uint64_t unmatched_end; /* ends without a begin (call began before attach) */
	uint64_t bad_sym;       /* events with an unknown cookie */
};

struct sp_assembler;

/* Tells whether addr is the kernel's uretprobe trampoline in the target. */
typedef bool (*sp_trampoline_fn)(void *arg, uint64_t addr);

struct sp_assembler *sp_asm_new(const struct sp_asm_sym *syms, size_t n_syms,
				uint32_t pid, sp_span_fn fn, void *arg);
void sp_asm_event(struct sp_assembler *a, const struct sp_event *e);
/* Without it a tail call between uretprobe'd functions is taken for a
 * frame lost to longjmp (same slot, no exit seen) and flagged abnormal. */
void sp_asm_set_trampoline_check(struct sp_assembler *a, sp_trampoline_fn fn, void *arg);
/* Events were lost: every query open now is marked incomplete. */
void sp_asm_mark_loss(struct sp_assembler *a);
/* Shutdown: closes every open frame as abnormal at now_ns and marks the
 * queries they belong to incomplete. */
void sp_asm_flush(struct sp_assembler *a, uint64_t now_ns);
const struct sp_asm_stats *sp_asm_stats(const struct sp_assembler *a);
size_t sp_asm_open_threads(const struct sp_assembler *a);
void sp_asm_free(struct sp_assembler *a);

#endif
