/*
 * Per-symbol statistics: what BPF counted for every probed function,
 * turned into percentiles, an estimated probe cost, and a table or JSON.
 * The same record is stored in block files (docs/block-format.md, v2).
 */
#ifndef SPANPROBE_SYM_STATS_H
#define SPANPROBE_SYM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/types.h>
#include "spanprobe.h"

/*
 * Probe costs behind every estimate: the only place these numbers live.
 * Where they come from and how to measure them on a given machine:
 * docs/performance.md. Provisional until measured values replace them.
 */
/* One call inside a query: entry probe + exit probe. */
#define SP_COST_PAIR_NS 1200
/* One call outside any query: only the entry probe runs. */
#define SP_COST_ENTRY_NS 700

struct sp_cost_model {
	uint64_t pair_ns;        /* SP_COST_PAIR_NS */
	uint64_t entry_ns;       /* SP_COST_ENTRY_NS */
	/* extra per hit of a probe whose instruction the kernel single-steps
	 * instead of emulating: user/symbols/probe_cost.h's measured figures */
	uint64_t single_step_ns;
};

/* The model every estimate uses unless told otherwise. */
void sp_cost_model_default(struct sp_cost_model *m);

/* One function's figures, as reported and as stored in a block file. */
struct sp_sym_report {
	const char *name;      /* demangled: the name its spans carry */
	const char *raw;       /* symbol as in the ELF */
	const char *object;    /* path as the process sees it */
	uint32_t role;         /* enum sp_role */
	struct sp_sym_stats s; /* BPF's counters, summed over CPUs */
	uint64_t kept_in_slow; /* spans kept inside kept (slow) queries */
	uint64_t est_cost_ns;  /* estimated probe time it cost the target */
	uint64_t min_span_ns;  /* the session's --min-span (under_min_span) */
};

/*
 * Estimated probe time: calls × pair + outside_calls × entry, plus
 * single_steps × single_step for every call, in or outside a query.
 * single_steps is how many single-stepped probe hits one call of this
 * function makes (0 when unknown; sp_probe_single_steps in
 * stats_session.h counts them). m NULL: sp_cost_model_default. Saturates
 * instead of wrapping.
 */
uint64_t sp_est_probe_cost(const struct sp_sym_stats *s, const struct sp_cost_model *m,
			   unsigned single_steps);

/* Durations bucket b covers: [*lo, *hi). The last bucket's *hi is
 * UINT64_MAX (it collects everything longer). */
void sp_hist_bucket_range(unsigned b, uint64_t *lo, uint64_t *hi);

/*
 * The q-quantile (0 < q <= 1) of the durations in s->hist: the rank-th
 * smallest (rank = ceil(q * calls)), placed linearly inside its bucket as
 * if the bucket's values were evenly spread, capped at s->max_ns; the top
 * rank is s->max_ns itself (BPF records it exactly); 0 with no calls.
 * Error bound: the estimate lies in the same bucket as the true value, so
 * it is off by less than one bucket width, which is at most 1/4 of the
 * bucket's lower edge: under 25% of the true value (exact below 4 ns).
 * The last bucket (from 2^41 * 1.75 ns, ~64 min) is bounded by max only.
 */
uint64_t sp_hist_quantile(const struct sp_sym_stats *s, double q);

/* Adds b's counters into a (max of the maxima); saturates. */
void sp_sym_stats_add(struct sp_sym_stats *a, const struct sp_sym_stats *b);

/* The table's order: est_cost_ns descending, then calls descending, then
 * name and object; <0, 0, >0 like strcmp. */
int sp_sym_report_cmp(const struct sp_sym_report *a, const struct sp_sym_report *b);
/* Indices of r in that order; malloc'd, NULL when out of memory or n == 0. */
size_t *sp_sym_report_order(const struct sp_sym_report *r, size_t n);

/* Table (text) or JSON lines, costliest first. */
int sp_sym_stats_print_table(FILE *out, const struct sp_sym_report *r, size_t n);
int sp_sym_stats_print_json(FILE *out, const struct sp_sym_report *r, size_t n);

/* "1.5 µs", "12.3 ms", "4.2 s" (µs below 1 ms, s from 10 s); returns buf. */
char *sp_fmt_duration(char *buf, size_t len, uint64_t ns);
/* A threshold as the CLI spells it: "5ms", "250us", "1s", "1500ns". */
char *sp_fmt_threshold(char *buf, size_t len, uint64_t ns);

#endif
