/*
 * --micromegas URL: kept queries go to a micromegas ingestion server in
 * its native format, so they appear in view_instance('async_events',
 * process_id) like the spans of an instrumented Rust program.
 *
 * One micromegas process stands for the traced process (its exe, and
 * properties "pid" and "collector": "spanprobe"); one stream tagged
 * "cpu" per traced thread; one block per query and thread. URL is the
 * server's base URL (the /ingestion/... routes are appended). The token,
 * if any, comes from MICROMEGAS_INGESTION_API_KEY.
 */
#ifndef SPANPROBE_SINK_MICROMEGAS_H
#define SPANPROBE_SINK_MICROMEGAS_H

#include <stddef.h>
#include "output/block_format.h"
#include "sinks/send_queue.h"
#include "spans/span.h"

struct sp_mm_sink;

/* meta: the traced process (pid, exe, start time). Queues the process
 * record at once; nothing here waits for the server. */
struct sp_mm_sink *sp_mm_open(const char *url, const struct sp_block_header *meta,
			      char *err, size_t errlen);
/* spans: one query, wall-clock times. Never blocks. */
/* One kept query of the process meta names (pid, exe, start): the first
 * query of a process registers it. */
void sp_mm_query(struct sp_mm_sink *s, const struct sp_block_header *meta,
		 const struct sp_span *spans, size_t n);
void sp_mm_stats(struct sp_mm_sink *s, struct sp_send_stats *st);
/* Starts the exit deadline without waiting (see sp_send_queue_drain). */
void sp_mm_drain(struct sp_mm_sink *s, unsigned drain_ms);
/* Waits up to drain_ms for the queue, stores the final counters in
 * *final (if not NULL), then frees everything. */
void sp_mm_close(struct sp_mm_sink *s, unsigned drain_ms, struct sp_send_stats *final);

#endif
