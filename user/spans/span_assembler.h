/*
 * Turns the kernel's span records into spans with ids: the kernel names
 * spans and queries by session-unique keys; this gives them small
 * process-unique ids and hands them on, children first and the root last,
 * as the query filter expects.
 */
#ifndef SPANPROBE_SPAN_ASSEMBLER_H
#define SPANPROBE_SPAN_ASSEMBLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "spanprobe.h"
#include "spans/span.h"
#include "symbols/symbols.h"

struct sp_asm_sym {
	const char *name;
	bool root;
};

typedef void (*sp_span_fn)(void *arg, const struct sp_span *s);
/* A query whose root record was lost: its spans must be forgotten. */
typedef void (*sp_query_lost_fn)(void *arg, uint64_t query_id);

struct sp_asm_stats {
	uint64_t records;
	uint64_t spans;
	uint64_t abnormal;
	uint64_t lost_queries; /* given up waiting for their root record */
	uint64_t bad_records;  /* unknown cookie or inconsistent fields */
};

struct sp_assembler;

/* At most this many queries wait for their root at once; beyond, the
 * oldest is given up (its root record was lost, or it never ends). */
#define SP_ASM_MAX_PENDING 65536

struct sp_assembler *sp_asm_new(const struct sp_asm_sym *syms, size_t n_syms,
				uint32_t pid, sp_span_fn fn, sp_query_lost_fn lost,
				void *arg);
void sp_asm_record(struct sp_assembler *a, const struct sp_span_rec *r);
/* The same, for a span whose begin and end are known within windows of
 * these widths (nested async spans). */
void sp_asm_record_unc(struct sp_assembler *a, const struct sp_span_rec *r,
		       uint64_t unc_lo_ns, uint64_t unc_hi_ns);
/* The captures of a span whose record follows (SP_RK_CAPS): held until
 * that record arrives, then handed on with the span. */
void sp_asm_caps(struct sp_assembler *a, const struct sp_cap_rec *r);
/* What the captures of the first funcs->n symbols (the probed
 * functions, by sym_id) are called; funcs must outlive the assembler. */
void sp_asm_set_caps(struct sp_assembler *a, const struct sp_func_set *funcs);
/* --redact: literal values in captured strings become '?' (sql_redact.h). */
void sp_asm_set_redact(struct sp_assembler *a, bool redact);
/* Captured values for the span of key that is fed later (userspace
 * rebuilt spans: nested futures' arguments); c is the assembler's from
 * now on, freed if it cannot be kept. */
void sp_asm_put_caps(struct sp_assembler *a, uint64_t key, struct sp_span_caps *c);

/* At shutdown: the calls still open on a thread, closed as abnormal at
 * now_ns, their query marked incomplete, appended to *out (grown). */
int sp_asm_flush_thread(struct sp_assembler *a, uint32_t tid, const struct sp_thread *st,
			uint64_t now_ns, struct sp_span_rec **out, size_t *n);
/* Feeds records gathered at shutdown, deepest first so every query's
 * root comes after its spans. */
void sp_asm_flush_records(struct sp_assembler *a, struct sp_span_rec *recs, size_t n);
/* The order sp_asm_flush_records feeds them in. */
void sp_asm_sort_flush(struct sp_span_rec *recs, size_t n);
const struct sp_asm_stats *sp_asm_stats(const struct sp_assembler *a);
size_t sp_asm_pending_queries(const struct sp_assembler *a);
void sp_asm_free(struct sp_assembler *a);

#endif
