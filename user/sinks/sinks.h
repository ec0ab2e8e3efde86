/*
 * Where kept queries go: the block file and/or trees on stdout, and the
 * exports beside them (micromegas, OTLP, a Perfetto file), all fed the
 * same spans. The block file is always written first and never waits on
 * an export; remote exports only queue work for their sender threads.
 */
#ifndef SPANPROBE_SINKS_H
#define SPANPROBE_SINKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "output/block_format.h"
#include "sinks/send_queue.h"

/* How long the exit waits for queued requests before dropping them. */
#define SP_SINKS_DRAIN_MS 5000

struct sp_export_opts {
	const char *micromegas_url; /* --micromegas URL */
	const char *otlp_url;       /* --otlp URL */
	bool otlp_gzip;             /* --otlp-gzip */
	const char *perfetto_path;  /* --perfetto FILE */
};

struct sp_mm_sink;
struct sp_otlp_sink;
struct sp_perfetto;

struct sp_sinks {
	FILE *blocks;           /* NULL: no block file */
	const char *blocks_path;
	bool print_trees;
	unsigned tree_flags;    /* SP_TREE_* for the printed trees */
	int64_t wall_offset;    /* added to monotonic times */
	struct sp_block_header meta;
	const uint64_t *dropped; /* live count of lost events */
	uint64_t blocks_written;
	uint64_t write_errors;
	/* exports; NULL when not asked for */
	struct sp_mm_sink *micromegas;
	struct sp_otlp_sink *otlp;
	struct sp_perfetto *perfetto;
	const char *perfetto_path;
	uint64_t perfetto_queries;
	int perfetto_error;     /* errno of a failed write, 0 if none */
	/* counters of the remote exports, final once they are closed */
	bool has_micromegas, has_otlp;
	struct sp_send_stats micromegas_stats, otlp_stats;
};

/* Creates the block file 0600, refusing to follow a symlink. */
int sp_sinks_open_blocks(struct sp_sinks *s, const char *path,
			 char *err, size_t errlen);
/* Opens the exports o asks for. Call once s->meta is filled in: the
 * remote ones describe the traced process from it. */
int sp_sinks_open_exports(struct sp_sinks *s, const struct sp_export_opts *o,
			  char *err, size_t errlen);
/* An sp_query_fn: converts times to wall clock and writes one block. */
void sp_sinks_query(void *sinks, struct sp_span *spans, size_t n);
/* " | micromegas 3 sent 0 retried 0 dropped ..." for the status line. */
void sp_sinks_status(FILE *f, struct sp_sinks *s);
/* "; micromegas: ..." clauses for the exit summary. */
void sp_sinks_summary(FILE *f, struct sp_sinks *s);
/* Gives queued requests up to drain_ms, then closes the exports. -1 if
 * the Perfetto file could not be written (the summary says so). */
int sp_sinks_finish_exports(struct sp_sinks *s, unsigned drain_ms);
/* Closes everything still open (the exports without waiting). */
int sp_sinks_close(struct sp_sinks *s);

#endif
