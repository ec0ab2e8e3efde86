/*
 * Tail filter: buffers the spans of each open query and, when its root
 * closes, keeps the root and every span of at least min_span if the root
 * lasted at least min_query. Kept spans whose parent was dropped are
 * re-parented to their nearest kept ancestor.
 */
#ifndef SPANPROBE_QUERY_FILTER_H
#define SPANPROBE_QUERY_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span.h"

/* One kept query: root first, then the rest by begin time; depths and
 * parents consistent with the kept set. Times are as assembled. */
typedef void (*sp_query_fn)(void *arg, struct sp_span *spans, size_t n);

struct sp_filter_stats {
	uint64_t queries_seen;
	uint64_t queries_kept;
	uint64_t spans_kept;
	uint64_t spans_dropped;
};

struct sp_filter;

struct sp_filter *sp_filter_new(uint64_t min_span_ns, uint64_t min_query_ns,
				sp_query_fn fn, void *arg);
/* Feeds one closed span (an sp_span_fn for the assembler). */
void sp_filter_span(void *filter, const struct sp_span *s);
/* Forgets an open query whose root will never arrive (an sp_query_lost_fn). */
void sp_filter_discard(void *filter, uint64_t query_id);
const struct sp_filter_stats *sp_filter_stats(const struct sp_filter *f);
void sp_filter_free(struct sp_filter *f);

#endif
