/*
 * --otlp URL: each kept query goes out as one OTLP/HTTP JSON trace
 * (optionally gzip-compressed) through a send queue. URL is the traces
 * endpoint; "/v1/traces" is appended unless it already ends so, as
 * OTEL_EXPORTER_OTLP_ENDPOINT does. Headers (e.g. an Authorization
 * token) come from OTEL_EXPORTER_OTLP_TRACES_HEADERS or
 * OTEL_EXPORTER_OTLP_HEADERS ("k=v,k2=v2", values percent-encoded).
 */
#ifndef SPANPROBE_SINK_OTLP_H
#define SPANPROBE_SINK_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include "output/block_format.h"
#include "sinks/send_queue.h"
#include "spans/span.h"

struct sp_otlp_sink;

/* meta: the traced process (pid, exe, start time); copied. */
struct sp_otlp_sink *sp_otlp_open(const char *url, bool gzip, const struct sp_block_header *meta,
				  char *err, size_t errlen);
/* spans: one query, wall-clock times. Never blocks. */
/* One kept query, of the process meta names (its pid and start go into
 * the resource: process.pid). */
void sp_otlp_query(struct sp_otlp_sink *s, const struct sp_block_header *meta,
		   const struct sp_span *spans, size_t n);
void sp_otlp_stats(struct sp_otlp_sink *s, struct sp_send_stats *st);
/* Starts the exit deadline without waiting (see sp_send_queue_drain). */
void sp_otlp_drain(struct sp_otlp_sink *s, unsigned drain_ms);
/* Waits up to drain_ms for the queue, stores the final counters in
 * *final (if not NULL), then frees everything. */
void sp_otlp_close(struct sp_otlp_sink *s, unsigned drain_ms, struct sp_send_stats *final);

/* Header lines from an OTEL_EXPORTER_OTLP_HEADERS value: "k: v" strings
 * in *lines (free each, then the array). -1 with err on a bad entry. */
int sp_otlp_parse_headers(const char *env, char ***lines, size_t *n, char *err, size_t errlen);

#endif
