/*
 * End of a tracing session: per-symbol statistics read from BPF, stored
 * in the block file, printed (--stats), and turned into pruning advice
 * (--prune-advice).
 */
#ifndef SPANPROBE_STATS_SESSION_H
#define SPANPROBE_STATS_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "attach/attach.h"
#include "output/block_format.h"
#include "output/sym_stats.h"
#include "symbols/symbols.h"

struct sp_stats_session {
	const struct sp_attach *att;        /* still open: its maps are read */
	const struct sp_func_set *funcs;    /* sym_id = index in funcs->v */
	const struct sp_pattern_list *pats; /* parsed from symbols_path */
	const char *symbols_path;           /* -s: re-read for the rewrite */
	const uint64_t *kept_in_slow;       /* per sym_id (sp_kept_count_get) */
	const unsigned char *single_steps;  /* per sym_id; NULL: classified
					     * with sp_probe_single_steps */
	const struct sp_cost_model *costs;  /* NULL: sp_cost_model_default */
	uint64_t min_span_ns;
	FILE *blocks;                       /* block file, NULL without -o */
	const struct sp_block_header *meta; /* pid, exe, start, dropped events */
	uint64_t begin_ns, end_ns;          /* wall clock the figures cover */
	bool print_stats;                   /* --stats */
	bool json;                          /* the statistics as JSON lines */
	bool prune_advice;                  /* --prune-advice */
	FILE *stats_out;                    /* the table (stderr suits) */
	FILE *advice_out;                   /* the rewritten list (stdout suits) */
};

/*
 * Reads every function's counters, writes one statistics block to
 * s->blocks (when set: always, so `spanprobe stats FILE` works on any
 * file), then prints what was asked. Only attachable functions are
 * reported. Problems are printed to stderr as "spanprobe: ..."; returns
 * -1 only when data was lost (the counters could not be read or the
 * block not written), not when the table or the advice could not be
 * printed (e.g. no slow query: no basis for advice).
 *
 * Wiring (trace_session.c): count kept spans with a sp_kept_count fed by
 * the query filter's callback before sp_sinks_query, then call this in
 * sp_session_finish once every query is decided, while the attach is
 * still open (after sp_attach_detach is fine) and before the block file
 * is closed.
 */
int sp_stats_session_report(const struct sp_stats_session *s);

/* The same from counters already read, raw[i] for funcs->v[i] (tests). */
int sp_stats_session_report_raw(const struct sp_stats_session *s,
				const struct sp_sym_stats *raw);

/* How many single-stepped probe hits one call of f makes: its entry
 * instruction if the kernel cannot emulate it (user/symbols/probe_cost.h), plus
 * its ret with ret-site exit probes (ret is always single-stepped).
 * 0 for the entry when its code cannot be read. */
unsigned sp_probe_single_steps(const struct sp_func *f);

/* reports[i] for funcs->v[i] from raw[i]: names, role, kept count, cost. */
void sp_stats_build_reports(const struct sp_stats_session *s,
			    const struct sp_sym_stats *raw, struct sp_sym_report *out);

#endif
