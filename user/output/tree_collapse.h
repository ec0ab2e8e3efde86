/*
 * Collapsing repeated siblings in a printed span tree: a run of siblings
 * with the same name becomes one line with the count, total, p50 and max
 * of their durations; what they called is shown once under that line,
 * grouped by name and summed over the whole run. Text output only: blocks,
 * JSON and the sinks keep every span.
 */
#ifndef SPANPROBE_TREE_COLLAPSE_H
#define SPANPROBE_TREE_COLLAPSE_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span.h"

/* A run shorter than this is printed span by span. */
#define SP_COLLAPSE_MIN_RUN 3

struct sp_collapse_stats {
	size_t count;
	uint64_t total_ns;
	uint64_t p50_ns;  /* the median; the lower middle one for an even count */
	uint64_t max_ns;
	uint32_t flags;   /* every flag any of them carries */
};

/* How many of v[0..n) from v[0] on carry v[0]'s name (v in print order). */
size_t sp_collapse_run(const struct sp_span *const *v, size_t n);

/* The figures of v[0..n); 0, or -1 when out of memory (median sort). */
int sp_collapse_stats(const struct sp_span *const *v, size_t n,
		      struct sp_collapse_stats *out);

/* Groups v[0..n) by name, groups in the order of their first member:
 * rewrites v so that each group's members are adjacent (in their former
 * order), and returns the number of groups; sizes[g] gets the size of
 * group g (sizes has room for n). 0 with nothing done when out of memory
 * (then v is printed as it is). */
size_t sp_collapse_group(const struct sp_span **v, size_t n, size_t *sizes);

#endif
