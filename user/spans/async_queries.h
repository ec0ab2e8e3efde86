/*
 * Queries that userspace rebuilds before span assembly: those rooted in a
 * held future (SP_KEY_HELD in their keys): a carrier, whose inlined async
 * fns become spans from its nested reads (async_nested.h), or a spawned
 * tokio task, which joins the query of the span that holds its
 * JoinHandle.
 *
 * All other records pass straight to the assembler. A held query's
 * records are kept until its root record arrives (children first, root
 * last, as the kernel sends them). Then, for a carrier:
 *   - its named inlined futures become spans (keys of their own, high
 *     bit set), children of their nearest named ancestor, else of the
 *     carrier;
 *   - an out-of-line poll or call under the carrier goes under the named
 *     span holding its Box<dyn Future> pointer, else under the deepest
 *     named span whose life encloses it, else under the carrier;
 *   - a spawned task whose JoinHandle a span held during the task's life
 *     goes under that span (its nearest named ancestor);
 *   - the query is the outermost span of a `root` pattern: the carrier if
 *     one names it, else each outermost inlined root instance (query
 *     duration = its duration). Spans outside every query are dropped.
 * A spawned task that no carrier claims within hold_ns of its end (its
 * spawner outlived it without awaiting it, or is not traced) stays a
 * query of its own.
 */
#ifndef SPANPROBE_ASYNC_QUERIES_H
#define SPANPROBE_ASYNC_QUERIES_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span_assembler.h"
#include "symbols/symbols.h"

/* At most this many held queries and carrier futures at once; beyond,
 * the oldest is dropped (its root never came: a cancelled future). */
#define SP_HELD_MAX 4096

struct sp_held_stats {
	uint64_t nested_records;  /* reads from the kernel */
	uint64_t nested_spans;    /* spans derived from them */
	uint64_t linked_tasks;    /* spawned tasks put under their spawner */
	uint64_t own_root_tasks;  /* spawned tasks left as their own query */
	uint64_t outside;         /* spans outside every query, dropped */
	uint64_t lost;            /* held queries given up (no root) */
};

struct sp_held;

/* funcs: the probe table (sym_id = index), whose carriers' plan nodes
 * have their name_sym set. */
struct sp_held *sp_held_new(const struct sp_func_set *funcs, struct sp_assembler *a,
			    uint64_t hold_ns);
void sp_held_span(struct sp_held *h, const struct sp_span_rec *r);
void sp_held_nested(struct sp_held *h, const struct sp_nested_rec *r);
/* Spawned tasks unclaimed hold_ns after their end become queries. */
void sp_held_tick(struct sp_held *h, uint64_t now_ns);
/* At shutdown: records of the calls still open (sorted like
 * sp_asm_flush_records), then everything held is released. */
void sp_held_flush(struct sp_held *h, struct sp_span_rec *recs, size_t n);
const struct sp_held_stats *sp_held_stats(const struct sp_held *h);
void sp_held_free(struct sp_held *h);

#endif
