/*
 * OTLP/JSON encoding of one query as an ExportTraceServiceRequest: one
 * resource (the traced process), one scope ("spanprobe"), one trace.
 * Follows the OTLP/HTTP JSON rules: ids are lowercase hex, 64-bit
 * integers are strings, enums are numbers, field names lowerCamelCase.
 */
#ifndef SPANPROBE_OTLP_JSON_H
#define SPANPROBE_OTLP_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "spans/span.h"

struct sp_otlp_resource {
	const char *service_name;  /* the exe's base name */
	const char *host_name;
	const char *exe;           /* process.executable.path */
	uint32_t pid;
	uint64_t proc_start_ns;    /* process.creation.time; 0: unknown */
};

/* trace_id: 16 bytes, not all zero. Span ids are the spans' own (unique
 * per traced process, never 0); a root has no parentSpanId. */
void sp_otlp_write_json(FILE *f, const struct sp_otlp_resource *res,
			const uint8_t trace_id[16], const struct sp_span *spans, size_t n);

/* A query's trace id: the session's 8 random bytes, then query_id
 * big-endian, so it is unique across sessions and never zero. */
void sp_otlp_trace_id(uint8_t out[16], const uint8_t session[8], uint64_t query_id);

#endif
