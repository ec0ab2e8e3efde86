/* The span record that flows from assembly through filtering to the sinks. */
#ifndef SPANPROBE_SPAN_H
#define SPANPROBE_SPAN_H

#include <stdint.h>

enum sp_span_flags {
	SP_SPAN_ROOT = 1u << 0,     /* span of a `root` function: a query */
	SP_SPAN_ABNORMAL = 1u << 1, /* left without its exit probe (longjmp,
				     * exception, unwinding); end_ns is the
				     * time the loss was noticed, an upper bound */
	SP_SPAN_INCOMPLETE = 1u << 2, /* query lost events (ring buffer full) */
	SP_SPAN_PARTIAL = 1u << 3,  /* a future already running at attach:
				     * begin_ns is the first poll seen */
};

struct sp_span {
	uint64_t query_id;       /* span_id of the query's root */
	uint64_t span_id;        /* unique per traced process, never 0 */
	uint64_t parent_span_id; /* 0 for a root */
	uint64_t begin_ns;       /* monotonic while assembling, wall-clock
				  * Unix ns once handed to sinks */
	uint64_t end_ns;
	const char *name;        /* owned by the symbol table or the block */
	uint32_t pid;
	uint32_t tid;
	uint32_t depth;          /* 0 for a root */
	uint32_t flags;          /* enum sp_span_flags */
	/* Facts only async (Rust) spans have; 0 means absent. Durations, not
	 * times, so the wall-clock conversion leaves them alone. */
	uint32_t poll_count;        /* times the future was polled */
	uint64_t uncertainty_lo_ns; /* width of the window the true begin */
	uint64_t uncertainty_hi_ns; /* and the true end lie in */
};

static inline uint64_t sp_span_duration(const struct sp_span *s)
{
	return s->end_ns >= s->begin_ns ? s->end_ns - s->begin_ns : 0;
}

#endif
