/*
 * The payload of one micromegas block: the spans of a query as
 * Begin/EndAsyncSpanEvent pairs (wire note §3), with the SpanRecord and
 * StaticString dependencies they reference, both buffers LZ4-framed.
 *
 * Ticks are Unix nanoseconds (the process is declared with
 * tsc_frequency 1e9 and start_ticks = its start time in Unix ns), so
 * micromegas' tick conversion gives back the span times exactly.
 */
#ifndef SPANPROBE_MICROMEGAS_BLOCK_H
#define SPANPROBE_MICROMEGAS_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span.h"

/* Target of names without a module path ("handle_query"). */
#define SP_MM_DEFAULT_TARGET "spanprobe"

struct sp_mm_payload {
	void *deps_lz4, *objs_lz4;
	size_t deps_len, objs_len;
	int32_t nb_objects;
	uint64_t begin_ns, end_ns; /* first and last event */
};

/* spans: wall-clock times, depths and parents consistent (as the query
 * filter hands them out). 0, or -1 when out of memory or too large. */
int sp_mm_encode_spans(const struct sp_span *spans, size_t n, struct sp_mm_payload *out);
void sp_mm_payload_free(struct sp_mm_payload *p);

/* What goes in SpanRecord.target and .module_path for a span name: the
 * part before the last "::" that is not inside <>, () or [] (Rust's
 * module_path!() for a #[span_fn] name), else SP_MM_DEFAULT_TARGET.
 * Returns its length in *len; points into name or at the default. */
const char *sp_mm_target(const char *name, size_t *len);

/* The name a span is shown under in async_events when it captured values
 * or failed: "NAME(k=v, ...)" as the tree prints the values, then
 * " [error]" for a failed span. micromegas' async_events has no column
 * for either (name, target, filename, line only), so such a span goes
 * out as a Begin/EndAsyncNamedSpanEvent (a run-time name, wire note
 * §3.1) whose location keeps the plain name's target. NULL when the
 * span has neither; malloc'd. */
char *sp_mm_span_label(const struct sp_span *s);

/* Uncompressed buffers, for tests: deps and objs are malloc'd. */
int sp_mm_encode_transit(const struct sp_span *spans, size_t n,
			 char **deps, size_t *deps_len, char **objs, size_t *objs_len);

#endif
