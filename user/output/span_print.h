/* Human (tree) and machine (JSON lines) renderings of a query's spans. */
#ifndef SPANPROBE_SPAN_PRINT_H
#define SPANPROBE_SPAN_PRINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "spans/span.h"

/* sp_print_tree flags */
enum { SP_TREE_EXPAND = 1u << 0 }; /* every span on a line of its own */

/* Spans of ONE query, any order: the root line, then children indented
 * below their parent, ordered by begin time. A span whose parent is
 * missing is printed as a tree of its own, marked [orphan]. Unless
 * SP_TREE_EXPAND, a run of SP_COLLAPSE_MIN_RUN or more siblings with the
 * same name is one line (count, total, p50, max), with what they called
 * below it grouped by name and summed over the run (tree_collapse.h). */
void sp_print_tree(FILE *out, const struct sp_span *spans, size_t n, unsigned flags);

/* One JSON object per span and line, in the order given. */
void sp_print_json(FILE *out, const struct sp_span *spans, size_t n);

/* Sorts spans by query_id, then begin time, and calls fn once per query. */
void sp_for_each_query(struct sp_span *spans, size_t n,
		       void (*fn)(const struct sp_span *q, size_t n, void *arg),
		       void *arg);

/* Pieces of the above, for other text output. */
void sp_print_time(FILE *out, uint64_t wall_ns);   /* ISO 8601 UTC, µs */
void sp_print_duration(FILE *out, uint64_t ns);    /* "12.3 ms", "4.5 µs" */
void sp_print_text(FILE *out, const char *s);      /* control chars as '?' */
void sp_print_json_string(FILE *out, const char *s); /* quoted, escaped */
/* "(block_id=42, query=\"SELECT …\")", nothing when c is NULL or empty. */
void sp_print_caps(FILE *out, const struct sp_span_caps *c);

#endif
