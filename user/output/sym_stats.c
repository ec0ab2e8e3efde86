/*
 * Per-symbol statistics: percentiles from BPF's log-linear histogram, the
 * estimated probe cost, and the table / JSON renderings.
 *
 * Counters may come from a block file (hostile) or from per-CPU reads that
 * tear, so nothing here assumes they agree with each other: sums saturate
 * and the percentile is capped by the recorded maximum.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "symbols/probe_cost.h"
#include "output/span_print.h"
#include "output/sym_stats.h"
#include "symbols/symbols.h"

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

void sp_cost_model_default(struct sp_cost_model *m)
{
	unsigned step = sp_probe_hit_ns(SP_EXEC_SINGLESTEP);
	unsigned emulated = sp_probe_hit_ns(SP_EXEC_EMULATED);

	m->pair_ns = SP_COST_PAIR_NS;
	m->entry_ns = SP_COST_ENTRY_NS;
	/* the pair and entry figures assume emulated instructions */
	m->single_step_ns = step > emulated ? step - emulated : 0;
}

uint64_t sp_est_probe_cost(const struct sp_sym_stats *s, const struct sp_cost_model *m,
			   unsigned single_steps)
{
	struct sp_cost_model def;
	uint64_t cost, hits;

	if (!m) {
		sp_cost_model_default(&def);
		m = &def;
	}
	cost = sat_add(sat_mul(s->calls, m->pair_ns), sat_mul(s->outside_calls, m->entry_ns));
	/* a single-stepped probe costs its step on every hit, in a query or not */
	hits = sat_add(s->calls, s->outside_calls);
	return sat_add(cost, sat_mul(sat_mul(hits, single_steps), m->single_step_ns));
}

/* Inverse of sp_hist_bucket (bpf/spanprobe.h): bucket 4*lg + sub holds
 * 2^lg + sub * 2^(lg-2) and the 2^(lg-2) values after it; below 4 ns the
 * value is sub itself (buckets 2..5 cannot occur). */
void sp_hist_bucket_range(unsigned b, uint64_t *lo, uint64_t *hi)
{
	unsigned lg = b / SP_HIST_SUB, sub = b % SP_HIST_SUB;

	if (lg < 2) {
		*lo = sub;
		*hi = sub + 1;
	} else {
		*lo = (1ull << lg) + ((uint64_t)sub << (lg - 2));
		*hi = *lo + (1ull << (lg - 2));
	}
	if (b >= SP_HIST_BUCKETS - 1)
		*hi = UINT64_MAX;
}

static uint64_t hist_total(const struct sp_sym_stats *s)
{
	uint64_t n = 0;

	for (size_t b = 0; b < SP_HIST_BUCKETS; b++)
		n = sat_add(n, s->hist[b]);
	return n;
}

/* The k-th (1-based, fractional) of c values spread evenly over
 * [lo, hi): the middle of its slice. */
static uint64_t interpolate(uint64_t lo, uint64_t hi, double k, uint64_t c)
{
	double x = (double)lo + (double)(hi - lo) * ((k - 0.5) / (double)c);

	if (x >= (double)hi)
		return hi - 1;
	return x <= (double)lo ? lo : (uint64_t)x;
}

uint64_t sp_hist_quantile(const struct sp_sym_stats *s, double q)
{
	uint64_t n = hist_total(s), before = 0, lo, hi;
	double rank;

	if (!n)
		return 0;
	rank = ceil((q > 1 ? 1 : q) * (double)n);
	if (rank < 1)
		rank = 1;
	/* the last value is the maximum, which BPF records exactly */
	if (rank >= (double)n)
		return s->max_ns;
	for (unsigned b = 0; b < SP_HIST_BUCKETS; b++) {
		uint64_t c = s->hist[b], v;

		if (!c)
			continue;
		if ((double)before + (double)c < rank) {
			before = sat_add(before, c);
			continue;
		}
		sp_hist_bucket_range(b, &lo, &hi);
		/* the maximum is exact: the bucket cannot reach past it */
		if (s->max_ns >= lo && s->max_ns < hi)
			hi = s->max_ns + 1;
		v = interpolate(lo, hi, rank - (double)before, c);
		return v < s->max_ns ? v : s->max_ns;
	}
	return s->max_ns; /* only when the doubles rounded the last step away */
}

void sp_sym_stats_add(struct sp_sym_stats *a, const struct sp_sym_stats *b)
{
	a->calls = sat_add(a->calls, b->calls);
	a->total_ns = sat_add(a->total_ns, b->total_ns);
	a->max_ns = b->max_ns > a->max_ns ? b->max_ns : a->max_ns;
	a->under_min_span = sat_add(a->under_min_span, b->under_min_span);
	a->outside_calls = sat_add(a->outside_calls, b->outside_calls);
	a->abnormal = sat_add(a->abnormal, b->abnormal);
	a->errors = sat_add(a->errors, b->errors);
	for (size_t i = 0; i < SP_HIST_BUCKETS; i++)
		a->hist[i] = sat_add(a->hist[i], b->hist[i]);
}

/* ---- ordering ----------------------------------------------------------- */

static int str_cmp(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

int sp_sym_report_cmp(const struct sp_sym_report *a, const struct sp_sym_report *b)
{
	int c;

	if (a->est_cost_ns != b->est_cost_ns)
		return a->est_cost_ns > b->est_cost_ns ? -1 : 1;
	if (a->s.calls != b->s.calls)
		return a->s.calls > b->s.calls ? -1 : 1;
	c = str_cmp(a->name, b->name);
	return c ? c : str_cmp(a->object, b->object);
}

static int by_cost(const void *pa, const void *pb)
{
	const struct sp_sym_report *a = *(const struct sp_sym_report *const *)pa;
	const struct sp_sym_report *b = *(const struct sp_sym_report *const *)pb;
	int c = sp_sym_report_cmp(a, b);

	/* the array position makes the order total, hence reproducible */
	return c ? c : (a < b ? -1 : a > b);
}

size_t *sp_sym_report_order(const struct sp_sym_report *r, size_t n)
{
	const struct sp_sym_report **p;
	size_t *idx;

	if (!n)
		return NULL;
	p = malloc(n * sizeof(*p));
	idx = malloc(n * sizeof(*idx));
	if (!p || !idx) {
		free(p);
		free(idx);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = &r[i];
	qsort(p, n, sizeof(*p), by_cost);
	for (size_t i = 0; i < n; i++)
		idx[i] = (size_t)(p[i] - r);
	free(p);
	return idx;
}

/* ---- formatting --------------------------------------------------------- */

char *sp_fmt_duration(char *buf, size_t len, uint64_t ns)
{
	uint64_t tenths;

	/* same rounding as sp_print_duration: 999.95 µs reads as 1.0 ms */
	if (ns < 999950) {
		tenths = (ns + 50) / 100;
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " µs", tenths / 10, tenths % 10);
	} else if (ns < 9999950000ull) {
		tenths = ns / 100000 + (ns % 100000 >= 50000);
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " ms", tenths / 10, tenths % 10);
	} else {
		tenths = ns / 100000000 + (ns % 100000000 >= 50000000);
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " s", tenths / 10, tenths % 10);
	}
	return buf;
}

char *sp_fmt_threshold(char *buf, size_t len, uint64_t ns)
{
	static const struct { uint64_t unit; const char *name; } units[] = {
		{ 1000000000ull, "s" }, { 1000000, "ms" }, { 1000, "us" },
	};

	for (size_t i = 0; ns && i < sizeof(units) / sizeof(units[0]); i++) {
		if (ns % units[i].unit == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", ns / units[i].unit, units[i].name);
			return buf;
		}
	}
	snprintf(buf, len, "%" PRIu64 "ns", ns);
	return buf;
}

/* Right-aligns s in width columns; "µ" is two bytes but one column. */
static void pad_left(FILE *out, const char *s, int width)
{
	int cols = 0;

	for (const char *p = s; *p; p++)
		cols += ((unsigned char)*p & 0xc0) != 0x80;
	for (; cols < width; cols++)
		putc(' ', out);
	fputs(s, out);
}

static void put_dur(FILE *out, uint64_t ns, bool have, int width)
{
	char buf[32];

	pad_left(out, have ? sp_fmt_duration(buf, sizeof(buf), ns) : "-", width);
}

static void put_num(FILE *out, uint64_t v, int width)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	pad_left(out, buf, width);
}

/* The --min-span the rows share, or false when they differ. */
static bool common_min_span(const struct sp_sym_report *r, size_t n, uint64_t *ns)
{
	*ns = n ? r[0].min_span_ns : 0;
	for (size_t i = 1; i < n; i++)
		if (r[i].min_span_ns != *ns)
			return false;
	return true;
}

static int by_name(const void *pa, const void *pb)
{
	const struct sp_sym_report *a = *(const struct sp_sym_report *const *)pa;
	const struct sp_sym_report *b = *(const struct sp_sym_report *const *)pb;

	return str_cmp(a->name, b->name);
}

/* Per row, whether another row has the same name (then the table adds the
 * object to tell them apart). NULL when out of memory. */
static bool *shared_names(const struct sp_sym_report *r, size_t n)
{
	const struct sp_sym_report **p = malloc((n ? n : 1) * sizeof(*p));
	bool *dup = calloc(n ? n : 1, sizeof(*dup));

	if (!p || !dup) {
		free(p);
		free(dup);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = &r[i];
	qsort(p, n, sizeof(*p), by_name);
	for (size_t i = 1; i < n; i++)
		if (!str_cmp(p[i - 1]->name, p[i]->name))
			dup[p[i - 1] - r] = dup[p[i] - r] = true;
	free(p);
	return dup;
}

enum { W_CALLS = 10, W_OUTSIDE = 10, W_TOTAL = 11, W_PCT = 9, W_KEPT = 8, W_COST = 11 };

static void table_header(FILE *out, const char *under, int w_under)
{
	pad_left(out, "calls", W_CALLS);
	pad_left(out, "outside", W_OUTSIDE + 1);
	pad_left(out, "total", W_TOTAL + 1);
	pad_left(out, "p50", W_PCT + 1);
	pad_left(out, "p99", W_PCT + 1);
	pad_left(out, "max", W_PCT + 1);
	pad_left(out, under, w_under + 1);
	pad_left(out, "kept", W_KEPT + 1);
	pad_left(out, "probe cost", W_COST + 1);
	fputs("  symbol\n", out);
}

static void table_row(FILE *out, const struct sp_sym_report *r, int w_under, bool show_object)
{
	bool have = r->s.calls != 0;

	put_num(out, r->s.calls, W_CALLS);
	put_num(out, r->s.outside_calls, W_OUTSIDE + 1);
	put_dur(out, r->s.total_ns, have, W_TOTAL + 1);
	put_dur(out, sp_hist_quantile(&r->s, 0.50), have, W_PCT + 1);
	put_dur(out, sp_hist_quantile(&r->s, 0.99), have, W_PCT + 1);
	put_dur(out, r->s.max_ns, have, W_PCT + 1);
	put_num(out, r->s.under_min_span, w_under + 1);
	put_num(out, r->kept_in_slow, W_KEPT + 1);
	put_dur(out, r->est_cost_ns, true, W_COST + 1);
	fputs("  ", out);
	sp_print_text(out, r->name);
	if (show_object) {
		fputs(" (", out);
		sp_print_text(out, r->object);
		putc(')', out);
	}
	if (r->role == SP_ROLE_ROOT)
		fputs("  [root]", out);
	if (r->s.errors)
		fprintf(out, "  [%" PRIu64 " error%s]", (uint64_t)r->s.errors,
			r->s.errors == 1 ? "" : "s");
	putc('\n', out);
}

static void table_footer(FILE *out, const struct sp_sym_report *r, size_t n)
{
	uint64_t calls = 0, outside = 0, cost = 0;
	char buf[32];

	for (size_t i = 0; i < n; i++) {
		calls = sat_add(calls, r[i].s.calls);
		outside = sat_add(outside, r[i].s.outside_calls);
		cost = sat_add(cost, r[i].est_cost_ns);
	}
	fprintf(out, "%zu symbol%s, %" PRIu64 " calls in queries, %" PRIu64
		" outside; estimated probe cost %s (docs/performance.md)\n",
		n, n == 1 ? "" : "s", calls, outside, sp_fmt_duration(buf, sizeof(buf), cost));
}

int sp_sym_stats_print_table(FILE *out, const struct sp_sym_report *r, size_t n)
{
	size_t *order = sp_sym_report_order(r, n);
	bool *dup = shared_names(r, n);
	char under[48], thr[24];
	uint64_t min_span;
	int w_under;

	if ((n && !order) || !dup) {
		free(order);
		free(dup);
		return -1;
	}
	if (common_min_span(r, n, &min_span))
		snprintf(under, sizeof(under), "< %s", sp_fmt_threshold(thr, sizeof(thr), min_span));
	else
		snprintf(under, sizeof(under), "< min-span");
	w_under = (int)strlen(under) > 10 ? (int)strlen(under) : 10;
	fputs("per-symbol statistics, highest estimated probe cost first\n", out);
	table_header(out, under, w_under);
	for (size_t i = 0; i < n; i++)
		table_row(out, &r[order[i]], w_under, dup[order[i]]);
	table_footer(out, r, n);
	free(order);
	free(dup);
	return ferror(out) ? -1 : 0;
}

static void json_row(FILE *out, const struct sp_sym_report *r)
{
	fputs("{\"name\":", out);
	sp_print_json_string(out, r->name);
	fputs(",\"raw\":", out);
	sp_print_json_string(out, r->raw);
	fputs(",\"object\":", out);
	sp_print_json_string(out, r->object);
	fprintf(out, ",\"role\":\"%s\",\"calls\":%" PRIu64 ",\"outside_calls\":%" PRIu64
		",\"total_ns\":%" PRIu64 ",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
		",\"max_ns\":%" PRIu64 ",\"under_min_span\":%" PRIu64 ",\"min_span_ns\":%" PRIu64
		",\"abnormal\":%" PRIu64 ",\"kept_in_slow\":%" PRIu64
		",\"est_probe_cost_ns\":%" PRIu64 ",\"errors\":%" PRIu64 "}\n",
		r->role == SP_ROLE_ROOT ? "root" : "span", (uint64_t)r->s.calls,
		(uint64_t)r->s.outside_calls, (uint64_t)r->s.total_ns,
		sp_hist_quantile(&r->s, 0.50), sp_hist_quantile(&r->s, 0.99),
		(uint64_t)r->s.max_ns, (uint64_t)r->s.under_min_span, r->min_span_ns,
		(uint64_t)r->s.abnormal, r->kept_in_slow, r->est_cost_ns, (uint64_t)r->s.errors);
}

int sp_sym_stats_print_json(FILE *out, const struct sp_sym_report *r, size_t n)
{
	size_t *order = sp_sym_report_order(r, n);

	if (n && !order)
		return -1;
	for (size_t i = 0; i < n; i++)
		json_row(out, &r[order[i]]);
	free(order);
	return ferror(out) ? -1 : 0;
}
