/*
 * --perfetto FILE and `dump --perfetto`: kept queries as a Chrome/Perfetto
 * trace-event JSON file (the JSON array form), one track per query, so
 * ui.perfetto.dev, chrome://tracing or the DevTools Performance panel
 * show each slow query as its own timeline of nested slices.
 *
 * The track is a synthetic thread (tid = the query's number in the file)
 * of the traced pid, named "query N: ROOT (tid T, DURATION)". Times are
 * microseconds since the traced process started (or since the first
 * query when that is unknown), in exact binary steps of 1/1024 µs so
 * that round(ts * 1000) is the span's ns; the origin is in the
 * process_name metadata as time_origin_unix_ns. Each query is flushed as it is
 * written; the closing ']' comes at close, and the format lets readers
 * do without it should spanprobe die first.
 */
#ifndef SPANPROBE_SINK_PERFETTO_H
#define SPANPROBE_SINK_PERFETTO_H

#include <stdint.h>
#include "output/block_format.h"
#include "spans/span.h"

struct sp_perfetto;

/* Creates path 0600 refusing a symlink, like the block file; "-" is
 * stdout. */
struct sp_perfetto *sp_perfetto_open(const char *path, char *err, size_t errlen);
/* One query (wall-clock times) of the process h describes. */
void sp_perfetto_query(struct sp_perfetto *p, const struct sp_block_header *h,
		       const struct sp_span *spans, size_t n);
uint64_t sp_perfetto_queries(const struct sp_perfetto *p);
/* Ends the JSON and closes. -1 (errno set) if anything failed to write. */
int sp_perfetto_close(struct sp_perfetto *p);

#endif
