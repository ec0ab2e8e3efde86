/*
 * Per-symbol statistics: histogram bucketing shared with BPF, percentiles,
 * probe cost estimate, table and JSON output, kept-span counting, pruning
 * advice, the stats command and the end-of-session report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "cmd_capture.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output/block_format.h"
#include "cli/cli.h"
#include "stats/kept_count.h"
#include "symbols/probe_cost.h"
#include "stats/prune_advice.h"
#include "stats/stats_session.h"
#include "output/sym_stats.h"
#include "resolve/resolve.h"

#define MS 1000000ull
#define US 1000ull

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A histogram exactly as BPF's on_close builds it. */
static void record(struct sp_sym_stats *s, uint64_t ns)
{
	s->calls++;
	s->total_ns += ns;
	if (ns > s->max_ns)
		s->max_ns = ns;
	s->hist[sp_hist_bucket(ns)]++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static char *capture(int (*fn)(FILE *, const struct sp_sym_report *, size_t),
		     const struct sp_sym_report *r, size_t n)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(f);
	assert_int_equal(fn(f, r, n), 0);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* ---- bucketing and percentiles ----------------------------------------- */

static void test_bucket_ranges(void **state)
{
	uint64_t lo, hi, prev_hi = 0;

	(void)state;
	/* every value falls in the range its bucket claims */
	for (uint64_t v = 0; v < 100000; v++) {
		sp_hist_bucket_range(sp_hist_bucket(v), &lo, &hi);
		if (v < lo || v >= hi)
			fail_msg("%llu in bucket [%llu, %llu)", (unsigned long long)v,
				 (unsigned long long)lo, (unsigned long long)hi);
	}
	for (int i = 0; i < 200000; i++) {
		uint64_t v = rnd64() >> (rnd64() % 64);

		sp_hist_bucket_range(sp_hist_bucket(v), &lo, &hi);
		assert_true(v >= lo && v < hi);
	}
	/* the possible buckets tile [0, inf) in order; 2..5 cannot occur */
	for (unsigned b = 0; b < SP_HIST_BUCKETS; b++) {
		if (b >= 2 && b <= 5)
			continue;
		sp_hist_bucket_range(b, &lo, &hi);
		assert_int_equal(lo, prev_hi);
		assert_int_equal(sp_hist_bucket(lo), b);
		if (b < SP_HIST_BUCKETS - 1)
			assert_int_equal(sp_hist_bucket(hi - 1), b);
		prev_hi = hi;
	}
	assert_int_equal(prev_hi, UINT64_MAX);
	/* 4 buckets per power of two: [1024, 1280) [1280, 1536) ... */
	assert_int_equal(sp_hist_bucket(1024), 40);
	assert_int_equal(sp_hist_bucket(1279), 40);
	assert_int_equal(sp_hist_bucket(1280), 41);
	assert_int_equal(sp_hist_bucket(2047), 43);
	assert_int_equal(sp_hist_bucket(UINT64_MAX), SP_HIST_BUCKETS - 1);
	assert_int_equal(sp_log2_u64(0), 0);
	assert_int_equal(sp_log2_u64(1ull << 63), 63);
}

static void test_quantile_exact_cases(void **state)
{
	struct sp_sym_stats s;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(sp_hist_quantile(&s, 0.5), 0);
	/* 100 calls of 1000 ns: bucket [896, 1024), capped by max + 1 = 1001;
	 * rank 50 sits at 896 + 105 * 49.5 / 100 */
	for (int i = 0; i < 100; i++)
		record(&s, 1000);
	assert_int_equal(sp_hist_quantile(&s, 0.5), 947);
	assert_int_equal(sp_hist_quantile(&s, 0.99), 999);
	assert_int_equal(sp_hist_quantile(&s, 1.0), 1000);
	/* below 4 ns every value has its bucket: exact */
	memset(&s, 0, sizeof(s));
	for (uint64_t v = 0; v < 4; v++)
		for (int i = 0; i < 25; i++)
			record(&s, v);
	assert_int_equal(sp_hist_quantile(&s, 0.25), 0);
	assert_int_equal(sp_hist_quantile(&s, 0.5), 1);
	assert_int_equal(sp_hist_quantile(&s, 0.51), 2);
	assert_int_equal(sp_hist_quantile(&s, 0.99), 3);
	/* one call: the maximum is exact, so the answer is too */
	memset(&s, 0, sizeof(s));
	record(&s, 5 * MS + 17);
	assert_int_equal(sp_hist_quantile(&s, 0.5), 5 * MS + 17);
	/* the last bucket has no upper edge: the maximum bounds it */
	memset(&s, 0, sizeof(s));
	record(&s, 1ull << 50);
	record(&s, 1ull << 45);
	assert_int_equal(sp_hist_quantile(&s, 0.99), 1ull << 50);
	assert_true(sp_hist_quantile(&s, 0.5) >= 3848290697216ull); /* 2^41 * 1.75 */
	/* inconsistent counters (torn per-CPU reads, a hostile file) */
	memset(&s, 0, sizeof(s));
	s.hist[100] = UINT64_MAX;
	s.hist[120] = UINT64_MAX;
	s.max_ns = 10;
	assert_int_equal(sp_hist_quantile(&s, 0.99), 10);
}

/* The documented bound on random data: same bucket, error under 25%. */
static void check_quantiles(uint64_t *v, size_t n)
{
	static const double qs[] = { 0.5, 0.9, 0.99 };
	struct sp_sym_stats s;

	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < n; i++)
		record(&s, v[i]);
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t k = 0; k < 3; k++) {
		size_t rank = (size_t)(qs[k] * (double)n + 0.999999);
		uint64_t truth = v[rank - 1], est = sp_hist_quantile(&s, qs[k]);
		uint64_t err = est > truth ? est - truth : truth - est;

		if (sp_hist_bucket(est) != sp_hist_bucket(truth) || 4 * err > truth)
			fail_msg("q%.2f: estimate %llu, true %llu", qs[k],
				 (unsigned long long)est, (unsigned long long)truth);
	}
}

static void test_quantile_error_bound(void **state)
{
	enum { N = 5000 };
	uint64_t *v = malloc(N * sizeof(*v));

	(void)state;
	assert_non_null(v);
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + rnd64() % N;
		int shape = round % 3;

		for (size_t i = 0; i < n; i++) {
			if (shape == 0) /* uniform over a decade */
				v[i] = 1 * MS + rnd64() % (9 * MS);
			else if (shape == 1) /* log-uniform, ns to seconds */
				v[i] = (rnd64() >> (34 + rnd64() % 30)) + 4;
			else /* bimodal: fast calls and a slow tail */
				v[i] = rnd64() % 100 ? 2 * US + rnd64() % 500 : 40 * MS + rnd64() % MS;
		}
		check_quantiles(v, n);
	}
	free(v);
}

/* ---- cost ---------------------------------------------------------------- */

static void test_probe_cost(void **state)
{
	struct sp_sym_stats s = { .calls = 1000, .outside_calls = 500 };
	struct sp_cost_model m = { .pair_ns = 10, .entry_ns = 1, .single_step_ns = 100 }, def;

	(void)state;
	/* the provisional constants: 1.2 µs per pair, 0.7 µs per entry */
	assert_int_equal(sp_est_probe_cost(&s, NULL, 0), 1000 * 1200 + 500 * 700);
	/* every hit of a single-stepped probe pays the step, priced by
	 * probe_cost's measurements */
	sp_cost_model_default(&def);
	assert_int_equal(def.pair_ns, 1200);
	assert_int_equal(def.entry_ns, 700);
	assert_int_equal(def.single_step_ns, sp_probe_hit_ns(SP_EXEC_SINGLESTEP) -
					     sp_probe_hit_ns(SP_EXEC_EMULATED));
	assert_int_equal(sp_est_probe_cost(&s, NULL, 1),
			 1000 * 1200 + 500 * 700 + 1500 * def.single_step_ns);
	assert_int_equal(sp_est_probe_cost(&s, &m, 2), 10000 + 500 + 2 * 1500 * 100);
	s.calls = UINT64_MAX / 2;
	assert_int_equal(sp_est_probe_cost(&s, NULL, 0), UINT64_MAX);
	s.calls = 0;
	s.outside_calls = 0;
	assert_int_equal(sp_est_probe_cost(&s, NULL, 255), 0);
}

/* The hook that prices single-stepping reads the function's first bytes. */
static void test_single_steps(void **state)
{
	static const uint8_t code[] = {
		0x55, 0x48, 0x89, 0xe5, 0xc3,       /* push %rbp: emulated */
		0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0xc3, /* endbr64: single-stepped */
	};
	char path[] = "/tmp/spanprobe-code-XXXXXX";
	int fd = mkstemp(path);
	struct sp_func f;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, code, sizeof(code)), (ssize_t)sizeof(code));
	close(fd);
	memset(&f, 0, sizeof(f));
	f.open_path = path;
	f.offset = 0;
	assert_int_equal(sp_probe_single_steps(&f), 0);
	f.offset = 5;
	assert_int_equal(sp_probe_single_steps(&f), 1);
	f.exit_mode = SP_EXIT_RETSITES; /* and every ret is stepped */
	assert_int_equal(sp_probe_single_steps(&f), 2);
	f.offset = 0;
	assert_int_equal(sp_probe_single_steps(&f), 1);
	f.open_path = "/nonexistent/x";
	assert_int_equal(sp_probe_single_steps(&f), 1);
	unlink(path);
}

/* ---- table and JSON ----------------------------------------------------- */

static struct sp_sym_report mkreport(const char *name, const char *object, uint32_t role,
				     uint64_t calls, uint64_t ns_each, uint64_t kept)
{
	struct sp_sym_report r;

	memset(&r, 0, sizeof(r));
	r.name = name;
	r.raw = name;
	r.object = object;
	r.role = role;
	for (uint64_t i = 0; i < calls; i++)
		record(&r.s, ns_each);
	r.kept_in_slow = kept;
	r.min_span_ns = 5 * MS;
	r.est_cost_ns = sp_est_probe_cost(&r.s, NULL, 0);
	return r;
}

static void test_table_output(void **state)
{
	struct sp_sym_report r[4];
	char *text;

	(void)state;
	r[0] = mkreport("execute_query", "/bin/srv", 1, 3, 1200 * MS, 3);
	r[1] = mkreport("plan_step", "/bin/srv", 0, 2000, 20 * US, 0);
	r[1].s.outside_calls = 100;
	r[1].s.under_min_span = 2000;
	r[1].est_cost_ns = sp_est_probe_cost(&r[1].s, NULL, 0);
	r[2] = mkreport("dup", "/bin/srv", 0, 0, 0, 0);
	r[3] = mkreport("dup", "/lib/libx.so", 0, 10, 6 * MS, 10);
	text = capture(sp_sym_stats_print_table, r, 4);
	assert_string_equal(text,
		"per-symbol statistics, highest estimated probe cost first\n"
		"     calls    outside       total       p50       p99       max      < 5ms     kept  probe cost  symbol\n"
		"      2000        100     40.0 ms   18.2 µs   20.0 µs   20.0 µs       2000        0      2.5 ms  plan_step\n"
		"        10          0     60.0 ms    5.6 ms    6.0 ms    6.0 ms          0       10     12.0 µs  dup (/lib/libx.so)\n"
		"         3          0   3600.0 ms 1136.9 ms 1200.0 ms 1200.0 ms          0        3      3.6 µs  execute_query  [root]\n"
		"         0          0           -         -         -         -          0        0      0.0 µs  dup (/bin/srv)\n"
		"4 symbols, 2013 calls in queries, 100 outside; estimated probe cost 2.5 ms (docs/performance.md)\n");
	free(text);
}

static void test_json_output(void **state)
{
	struct sp_sym_report r[2];
	char *text;

	(void)state;
	r[0] = mkreport("a\"b", "/bin/srv", 0, 4, 1000, 0);
	r[1] = mkreport("root_fn", "/bin/srv", 1, 100, 1000, 1);
	r[1].raw = "_Z7root_fnv";
	r[1].s.abnormal = 2;
	text = capture(sp_sym_stats_print_json, r, 2);
	assert_string_equal(text,
		"{\"name\":\"root_fn\",\"raw\":\"_Z7root_fnv\",\"object\":\"/bin/srv\",\"role\":\"root\","
		"\"calls\":100,\"outside_calls\":0,\"total_ns\":100000,\"p50_ns\":947,\"p99_ns\":999,"
		"\"max_ns\":1000,\"under_min_span\":0,\"min_span_ns\":5000000,\"abnormal\":2,"
		"\"kept_in_slow\":1,\"est_probe_cost_ns\":120000,\"errors\":0}\n"
		"{\"name\":\"a\\\"b\",\"raw\":\"a\\\"b\",\"object\":\"/bin/srv\",\"role\":\"span\","
		"\"calls\":4,\"outside_calls\":0,\"total_ns\":4000,\"p50_ns\":935,\"p99_ns\":1000,"
		"\"max_ns\":1000,\"under_min_span\":0,\"min_span_ns\":5000000,\"abnormal\":0,"
		"\"kept_in_slow\":0,\"est_probe_cost_ns\":4800,\"errors\":0}\n");
	free(text);
	text = capture(sp_sym_stats_print_json, r, 0);
	assert_string_equal(text, "");
	free(text);
}

static void test_formatting(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(sp_fmt_duration(b, sizeof(b), 0), "0.0 µs");
	assert_string_equal(sp_fmt_duration(b, sizeof(b), 999949), "999.9 µs");
	assert_string_equal(sp_fmt_duration(b, sizeof(b), 999950), "1.0 ms");
	assert_string_equal(sp_fmt_duration(b, sizeof(b), 9999949999ull), "9999.9 ms");
	assert_string_equal(sp_fmt_duration(b, sizeof(b), 9999950000ull), "10.0 s");
	assert_string_equal(sp_fmt_duration(b, sizeof(b), UINT64_MAX), "18446744073.7 s");
	assert_string_equal(sp_fmt_threshold(b, sizeof(b), 5 * MS), "5ms");
	assert_string_equal(sp_fmt_threshold(b, sizeof(b), 1000 * MS), "1s");
	assert_string_equal(sp_fmt_threshold(b, sizeof(b), 250 * US), "250us");
	assert_string_equal(sp_fmt_threshold(b, sizeof(b), 1500 * US), "1500us");
	assert_string_equal(sp_fmt_threshold(b, sizeof(b), 1500), "1500ns");
	assert_string_equal(sp_fmt_threshold(b, sizeof(b), 0), "0ns");
}

/* ---- functions, as resolution would give them --------------------------- */

struct world {
	struct sp_pattern_list pats;
	struct sp_func_set funcs;
	struct sp_sym_report r[16];
	const char *text;
};

static void add_func(struct world *w, const char *raw, const char *dem, const char *obj,
		     enum sp_role role, int pattern, uint64_t calls, uint64_t kept)
{
	struct sp_func *f = &w->funcs.v[w->funcs.n];
	struct sp_sym_report *r = &w->r[w->funcs.n++];

	memset(f, 0, sizeof(*f));
	f->raw = strdup(raw);
	f->demangled = strdup(dem);
	f->object = strdup(obj);
	f->role = role;
	f->pattern = pattern;
	*r = mkreport(f->demangled, f->object, role, 0, 0, kept);
	r->raw = f->raw;
	r->s.calls = calls;
	r->s.total_ns = calls * 1000;
	r->s.hist[sp_hist_bucket(1000)] = calls;
	r->s.max_ns = calls ? 1000 : 0;
	r->est_cost_ns = sp_est_probe_cost(&r->s, NULL, 0);
}

static void world_init(struct world *w, const char *text)
{
	char err[256];

	memset(w, 0, sizeof(*w));
	w->text = text;
	assert_int_equal(sp_symlist_parse_buf("my.syms", text, strlen(text), &w->pats,
					      err, sizeof(err)), 0);
	w->funcs.v = calloc(16, sizeof(*w->funcs.v));
	assert_non_null(w->funcs.v);
}

static void world_free(struct world *w)
{
	sp_func_set_free(&w->funcs);
	sp_symlist_free(&w->pats);
}

static struct sp_prune_in world_in(const struct world *w)
{
	struct sp_prune_in in = {
		.source = "my.syms", .text = w->text, .len = strlen(w->text),
		.pats = &w->pats, .funcs = &w->funcs, .reports = w->r,
	};
	return in;
}

static char *advise(const struct world *w)
{
	struct sp_prune_in in = world_in(w);
	char *text = NULL, err[256] = "";
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(f);
	if (sp_prune_advice(f, &in, err, sizeof(err)))
		fail_msg("advice failed: %s", err);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* The advice parses, and resolving it again (with the same matching the
 * resolver uses) traces exactly the functions that were not pruned, each
 * with its role. */
static void check_reresolves(const struct world *w, const char *advice)
{
	struct sp_pattern_list again;
	struct sp_prune_in in = world_in(w);
	bool pruned[16];
	char err[256];

	assert_true(sp_prune_select(&in, pruned, err, sizeof(err)) >= 0);
	if (sp_symlist_parse_buf("advice", advice, strlen(advice), &again, err, sizeof(err)))
		fail_msg("advice does not parse: %s\n%s", err, advice);
	for (size_t f = 0; f < w->funcs.n; f++) {
		const struct sp_func *fn = &w->funcs.v[f];
		bool traced = false, root = false;

		if (fn->problem)
			continue;
		for (size_t p = 0; p < again.n; p++) {
			if (sp_pattern_matches(again.v[p].glob, fn->raw, fn->demangled)) {
				traced = true;
				root |= again.v[p].role == SP_ROLE_ROOT;
			}
		}
		if (traced == pruned[f])
			fail_msg("%s: traced %d, pruned %d\n%s", fn->demangled, traced,
				 pruned[f], advice);
		if (traced && root != (fn->role == SP_ROLE_ROOT))
			fail_msg("%s changed role\n%s", fn->demangled, advice);
	}
	sp_symlist_free(&again);
}

static const char *list1 =
	"# my list\n"
	"root handle_query            # queries\n"
	"span plan_*                  # planners\n"
	"span exec_scan\n"
	"span helper_only_fast\n"
	"\n"
	"span util::*\n";

static void world1(struct world *w)
{
	world_init(w, list1);
	add_func(w, "handle_query", "handle_query", "/bin/srv", SP_ROLE_ROOT, 0, 10, 10);
	add_func(w, "plan_a", "plan_a", "/bin/srv", SP_ROLE_SPAN, 1, 300, 3);
	add_func(w, "plan_b", "plan_b", "/bin/srv", SP_ROLE_SPAN, 1, 5000, 0);
	add_func(w, "plan_c", "plan_c", "/bin/srv", SP_ROLE_SPAN, 1, 20, 0);
	add_func(w, "exec_scan", "exec_scan", "/bin/srv", SP_ROLE_SPAN, 2, 50, 5);
	add_func(w, "helper_only_fast", "helper_only_fast", "/bin/srv", SP_ROLE_SPAN, 3, 100000, 0);
	add_func(w, "_ZN4util1xEv", "util::x()", "/bin/srv", SP_ROLE_SPAN, 4, 7, 0);
	add_func(w, "_ZN4util1yEv", "util::y()", "/bin/srv", SP_ROLE_SPAN, 4, 9, 0);
}

static void test_prune_rewrite(void **state)
{
	struct world w;
	char *text;

	(void)state;
	world1(&w);
	text = advise(&w);
	assert_string_equal(text,
		"# spanprobe prune advice for my.syms\n"
		"# 5 of 8 probed functions never reached 5ms inside a slow query;\n"
		"# dropping them saves ~126.0 ms of the ~126.5 ms estimated probe cost.\n"
		"# Pruned, costliest first:\n"
		"#   ~120.0 ms  100000 calls, 0 outside queries  helper_only_fast (/bin/srv)\n"
		"#   ~6.0 ms  5000 calls, 0 outside queries  plan_b (/bin/srv)\n"
		"#   ~24.0 µs  20 calls, 0 outside queries  plan_c (/bin/srv)\n"
		"#   ~10.8 µs  9 calls, 0 outside queries  util::y() (/bin/srv)\n"
		"#   ~8.4 µs  7 calls, 0 outside queries  util::x() (/bin/srv)\n"
		"# Roots are never pruned. The list follows, rewritten.\n"
		"# my list\n"
		"root handle_query            # queries\n"
		"# partly pruned: plan_* matched 3 functions; never reached 5ms in slow queries: "
		"plan_b, plan_c (2, ~6.0 ms probe cost).\n"
		"# The ones it keeps are listed by exact name below: the glob would bring the "
		"pruned ones back.\n"
		"# span plan_*                  # planners\n"
		"span plan_a\n"
		"span exec_scan\n"
		"# pruned: helper_only_fast never reached 5ms in slow queries, ~120.0 ms probe cost\n"
		"# span helper_only_fast\n"
		"\n"
		"# pruned: util::* (2 functions) never reached 5ms in slow queries, ~19.2 µs probe cost\n"
		"# span util::*\n");
	check_reresolves(&w, text);
	free(text);
	world_free(&w);
}

static void test_prune_nothing(void **state)
{
	struct world w;
	char *text;

	(void)state;
	/* CRLF and a last line without its newline are kept */
	world_init(&w, "root q\r\nspan f # x\r\nspan g");
	add_func(&w, "q", "q", "/bin/srv", SP_ROLE_ROOT, 0, 1, 1);
	add_func(&w, "f", "f", "/bin/srv", SP_ROLE_SPAN, 1, 10, 1);
	add_func(&w, "g", "g", "/bin/srv", SP_ROLE_SPAN, 2, 10, 2);
	text = advise(&w);
	assert_string_equal(text,
		"# spanprobe prune advice for my.syms\n"
		"# Every probed function reached 5ms inside a slow query at least once: "
		"nothing to prune.\n"
		"root q\r\nspan f # x\r\nspan g\n");
	check_reresolves(&w, text);
	free(text);
	world_free(&w);
}

/* A carrier (the task root probed for the async fns inlined into it)
 * that no pattern names is not pruned: no line of the list brings it in,
 * it goes when the patterns naming its inlined fns go. */
static void test_prune_skips_carriers(void **state)
{
	struct world w;
	char *text;

	(void)state;
	world_init(&w, "root q\nspan f\n");
	add_func(&w, "q", "q", "/bin/srv", SP_ROLE_ROOT, 0, 1, 1);
	add_func(&w, "f", "f", "/bin/srv", SP_ROLE_SPAN, 1, 10, 1);
	add_func(&w, "task_root", "task_root", "/bin/srv", SP_ROLE_SPAN, -1, 1000, 0);
	text = advise(&w);
	assert_non_null(strstr(text, "nothing to prune"));
	assert_null(strstr(text, "task_root"));
	free(text);
	world_free(&w);
}

/* An exact name matching a kept and a pruned function stays; so does the
 * pruned one, which the header then does not list. */
static void test_prune_exact_shared(void **state)
{
	struct world w;
	bool pruned[16];
	char err[256], *text;
	struct sp_prune_in in;

	(void)state;
	world_init(&w, "root q\nspan dup\nspan *_impl\n");
	add_func(&w, "q", "q", "/bin/srv", SP_ROLE_ROOT, 0, 1, 1);
	add_func(&w, "dup", "dup", "/bin/srv", SP_ROLE_SPAN, 1, 10, 1);
	add_func(&w, "dup", "dup", "/lib/libx.so", SP_ROLE_SPAN, 1, 99, 0);
	/* also matched by the glob, which loses it: the glob's other
	 * function then needs its exact name */
	add_func(&w, "a_impl", "a_impl", "/bin/srv", SP_ROLE_SPAN, 2, 10, 0);
	add_func(&w, "b_impl", "b_impl", "/bin/srv", SP_ROLE_SPAN, 2, 10, 4);
	in = world_in(&w);
	assert_int_equal(sp_prune_select(&in, pruned, err, sizeof(err)), 1);
	assert_false(pruned[2]);
	assert_true(pruned[3]);
	text = advise(&w);
	assert_non_null(strstr(text, "\nspan dup\n"));
	assert_null(strstr(text, "libx.so"));
	assert_non_null(strstr(text, "# span *_impl\nspan b_impl\n"));
	check_reresolves(&w, text);
	free(text);
	world_free(&w);
}

/* Names with glob metacharacters are escaped; a name the list cannot
 * spell ('#') falls back to the raw symbol; two functions with one
 * demangled name (Rust generics) are told apart by their raw names. */
static void test_prune_exact_names(void **state)
{
	struct world w;
	char *text;

	(void)state;
	world_init(&w, "root q\nspan ops::*\nspan gen::*\n");
	add_func(&w, "q", "q", "/bin/srv", SP_ROLE_ROOT, 0, 1, 1);
	add_func(&w, "_ZN3opsixEi", "ops::operator[](int)", "/bin/srv", SP_ROLE_SPAN, 1, 5, 2);
	add_func(&w, "_ZN3opsmlEi", "ops::operator*(int)", "/bin/srv", SP_ROLE_SPAN, 1, 50, 0);
	add_func(&w, "_ZN3ops1fEv", "ops::f#1", "/bin/srv", SP_ROLE_SPAN, 1, 5, 1);
	add_func(&w, "_ZN3gen3mapE17h1111111111111111E", "gen::map", "/bin/srv", SP_ROLE_SPAN, 2, 5, 1);
	add_func(&w, "_ZN3gen3mapE17h2222222222222222E", "gen::map", "/bin/srv", SP_ROLE_SPAN, 2, 500, 0);
	text = advise(&w);
	assert_non_null(strstr(text, "# span ops::*\nspan ops::operator\\[](int)\nspan _ZN3ops1fEv\n"));
	assert_non_null(strstr(text, "# span gen::*\nspan _ZN3gen3mapE17h1111111111111111E\n"));
	check_reresolves(&w, text);
	free(text);
	world_free(&w);
}

/* A glob whose kept functions an earlier line already traces needs no
 * names; functions that could not be attached are left alone; a root
 * without kept spans stays; a function matched by two globs is listed
 * once. */
static void test_prune_overlaps(void **state)
{
	struct world w;
	char *text;

	(void)state;
	world_init(&w, "root q*\nspan keep_me\nspan *\nspan k*\n");
	add_func(&w, "q1", "q1", "/bin/srv", SP_ROLE_ROOT, 0, 1, 1);
	add_func(&w, "q2", "q2", "/bin/srv", SP_ROLE_ROOT, 0, 1, 0);
	add_func(&w, "keep_me", "keep_me", "/bin/srv", SP_ROLE_SPAN, 1, 1, 1);
	add_func(&w, "drop_me", "drop_me", "/bin/srv", SP_ROLE_SPAN, 2, 1, 0);
	add_func(&w, "kx", "kx", "/bin/srv", SP_ROLE_SPAN, 2, 1, 1);
	add_func(&w, "ifunc", "ifunc", "/bin/srv", SP_ROLE_SPAN, 2, 0, 0);
	w.funcs.v[5].problem = strdup("ifunc");
	text = advise(&w);
	assert_non_null(strstr(text, "# 1 of 5 probed functions never reached"));
	assert_non_null(strstr(text, "\nroot q*\nspan keep_me\n"));
	/* "*" keeps q1, q2 (roots, traced by line 1), keep_me (line 2), kx */
	assert_non_null(strstr(text, "# partly pruned: * matched 5 functions; never reached "
				     "5ms in slow queries: drop_me (1, ~1.2 µs probe cost).\n"));
	assert_non_null(strstr(text, "# span *\nspan kx\nspan k*\n"));
	check_reresolves(&w, text);
	free(text);
	world_free(&w);

	world_init(&w, "root q\nspan f\nspan *\n");
	add_func(&w, "q", "q", "/bin/srv", SP_ROLE_ROOT, 0, 1, 1);
	add_func(&w, "f", "f", "/bin/srv", SP_ROLE_SPAN, 1, 1, 1);
	add_func(&w, "g", "g", "/bin/srv", SP_ROLE_SPAN, 2, 1, 0);
	text = advise(&w);
	assert_non_null(strstr(text, "\n# The ones it keeps are matched by other lines of this "
				     "list.\n# span *\n"));
	check_reresolves(&w, text);
	free(text);
	world_free(&w);
}

static void test_prune_refusals(void **state)
{
	struct world w;
	struct sp_prune_in in;
	bool pruned[16];
	char err[256];
	FILE *null = fopen("/dev/null", "w");

	(void)state;
	assert_non_null(null);
	world1(&w);
	for (size_t f = 0; f < w.funcs.n; f++)
		w.r[f].kept_in_slow = 0;
	in = world_in(&w);
	assert_int_equal(sp_prune_advice(null, &in, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no span was kept inside a slow query"));
	assert_int_equal(sp_prune_select(&in, pruned, err, sizeof(err)), -1);
	world_free(&w);

	world1(&w);
	in = world_in(&w);
	in.text = "root handle_query\nspan plan_*\n";
	in.len = strlen(in.text);
	assert_int_equal(sp_prune_advice(null, &in, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "my.syms changed since it was resolved"));
	world_free(&w);
	fclose(null);
}

/* From a block file only reports remain: functions are rebuilt from them. */
static void test_funcs_from_reports(void **state)
{
	struct sp_pattern_list pats;
	struct sp_func_set fs;
	struct sp_sym_report r[3];
	const char *text = "span plan_*\nroot _Z7handlerv\n";
	char err[256];

	(void)state;
	assert_int_equal(sp_symlist_parse_buf("x", text, strlen(text), &pats, err, sizeof(err)), 0);
	r[0] = mkreport("plan_a", "/bin/srv", 0, 1, 1, 0);
	r[1] = mkreport("handler()", "/bin/srv", 0, 1, 1, 0);
	r[1].raw = "_Z7handlerv";
	r[2] = mkreport("other", "/bin/srv", 1, 1, 1, 0);
	assert_int_equal(sp_prune_funcs_from_reports(&pats, r, 3, &fs), 0);
	assert_int_equal(fs.n, 3);
	assert_int_equal(fs.v[0].pattern, 0);
	assert_int_equal(fs.v[0].role, SP_ROLE_SPAN);
	assert_int_equal(fs.v[1].pattern, 1);
	assert_int_equal(fs.v[1].role, SP_ROLE_ROOT); /* by its raw name's pattern */
	assert_string_equal(fs.v[1].demangled, "handler()");
	assert_int_equal(fs.v[2].pattern, -1);
	assert_int_equal(fs.v[2].role, SP_ROLE_ROOT);  /* its report says so */
	assert_null(fs.v[2].problem);
	sp_func_set_free(&fs);
	sp_symlist_free(&pats);
}

/* ---- kept-span counting -------------------------------------------------- */

static void test_kept_count(void **state)
{
	struct world w;
	struct sp_kept_count *c;
	struct sp_span s[5];
	const uint64_t *k;

	(void)state;
	world_init(&w, "span *\n");
	add_func(&w, "dup", "dup", "/bin/srv", SP_ROLE_SPAN, 0, 0, 0);
	add_func(&w, "dup", "dup", "/lib/x.so", SP_ROLE_SPAN, 0, 0, 0);
	add_func(&w, "f", "f", "/bin/srv", SP_ROLE_SPAN, 0, 0, 0);
	c = sp_kept_count_new(&w.funcs);
	assert_non_null(c);
	memset(s, 0, sizeof(s));
	s[0].name = w.funcs.v[1].demangled; /* by pointer: the second "dup" */
	s[1].name = w.funcs.v[1].demangled;
	s[2].name = "f";                    /* a copy: by name */
	s[3].name = "nobody";
	s[4].name = NULL;
	sp_kept_count_add(c, s, 5);
	k = sp_kept_count_get(c);
	assert_int_equal(k[0], 0);
	assert_int_equal(k[1], 2);
	assert_int_equal(k[2], 1);
	assert_int_equal(sp_kept_count_unknown(c), 2);
	sp_kept_count_add(NULL, s, 5);
	sp_kept_count_free(c);
	world_free(&w);
}

/* ---- stats command and session report ----------------------------------- */

static struct run run_stats(int argc, const char **argv)
{
	return run_cmd(sp_cmd_stats, argc, argv);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A session report written twice to one file (two sessions concatenated),
 * then read back by the stats command: summed. */
static void test_session_report_and_stats_command(void **state)
{
	char dir[] = "/tmp/spanprobe-stats-XXXXXX", blk[64], syms[64];
	struct sp_block_header meta = { .pid = 77, .exe = "/bin/srv" };
	struct sp_sym_stats raw[16];
	uint64_t kept[16];
	struct world w;
	struct sp_stats_session s;
	char *table = NULL, *advice = NULL;
	size_t tlen = 0, alen = 0;
	FILE *blocks, *tout, *aout;
	struct run r;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(blk, sizeof(blk), "%s/out.blk", dir);
	snprintf(syms, sizeof(syms), "%s/my.syms", dir);
	write_text(syms, list1);
	world1(&w);
	sp_symlist_free(&w.pats);
	{
		char err[256];

		assert_int_equal(sp_symlist_parse_file(syms, &w.pats, err, sizeof(err)), 0);
	}
	add_func(&w, "broken", "broken", "/bin/srv", SP_ROLE_SPAN, 1, 0, 0);
	w.funcs.v[8].problem = strdup("not attachable");
	for (size_t i = 0; i < w.funcs.n; i++) {
		raw[i] = w.r[i].s;
		kept[i] = w.r[i].kept_in_slow;
	}
	blocks = fopen(blk, "wb");
	tout = open_memstream(&table, &tlen);
	aout = open_memstream(&advice, &alen);
	assert_true(blocks && tout && aout);
	memset(&s, 0, sizeof(s));
	s.funcs = &w.funcs;
	s.pats = &w.pats;
	s.symbols_path = syms;
	s.kept_in_slow = kept;
	s.min_span_ns = 5 * MS;
	s.blocks = blocks;
	s.meta = &meta;
	s.begin_ns = 1000;
	s.end_ns = 2000;
	s.print_stats = true;
	s.prune_advice = true;
	s.stats_out = tout;
	s.advice_out = aout;
	assert_int_equal(sp_stats_session_report_raw(&s, raw), 0);
	s.print_stats = s.prune_advice = false;
	assert_int_equal(sp_stats_session_report_raw(&s, raw), 0);
	assert_int_equal(fclose(blocks), 0);
	assert_int_equal(fclose(tout), 0);
	assert_int_equal(fclose(aout), 0);
	/* the unattached function is not reported */
	assert_non_null(strstr(table, "8 symbols, 105396 calls in queries"));
	assert_null(strstr(table, "broken"));
	assert_non_null(strstr(advice, "# spanprobe prune advice for "));
	assert_non_null(strstr(advice, "# 5 of 8 probed functions"));
	assert_non_null(strstr(advice, "\nspan plan_a\n"));

	{
		const char *argv[] = { "stats", blk };
		const char *json[] = { "stats", "--json", blk };
		const char *prune[] = { "stats", blk, "--prune-advice", "-s", syms };
		const char *bad[] = { "stats", blk, "--prune-advice" };

		r = run_stats(2, argv);
		assert_int_equal(r.rc, 0);
		assert_non_null(strstr(r.out, ": the sum of 2 statistics blocks\n"));
		/* twice the session's figures */
		assert_non_null(strstr(r.out, "8 symbols, 210792 calls in queries, 0 outside; "
					      "estimated probe cost 253.0 ms"));
		assert_non_null(strstr(r.out, "    200000          0    200.0 ms"));
		run_free(&r);
		r = run_stats(3, json);
		assert_int_equal(r.rc, 0);
		assert_non_null(strstr(r.out, "{\"name\":\"helper_only_fast\",\"raw\":"
					      "\"helper_only_fast\",\"object\":\"/bin/srv\","
					      "\"role\":\"span\",\"calls\":200000,"));
		run_free(&r);
		r = run_stats(5, prune);
		assert_int_equal(r.rc, 0);
		assert_string_equal(r.err, "");
		assert_non_null(strstr(r.out, "# 5 of 8 probed functions never reached 5ms"));
		assert_non_null(strstr(r.out, "# span plan_*                  # planners\n"
					      "span plan_a\n"));
		run_free(&r);
		r = run_stats(3, bad);
		assert_int_equal(r.rc, 2);
		assert_non_null(strstr(r.err, "go together"));
		run_free(&r);
	}
	{
		/* a file of span blocks only */
		const char *argv[] = { "stats", blk };
		struct sp_span sp = { .query_id = 1, .span_id = 1, .name = "q" };

		blocks = fopen(blk, "wb");
		assert_int_equal(sp_block_write(blocks, &meta, &sp, 1), 0);
		fclose(blocks);
		r = run_stats(2, argv);
		assert_int_equal(r.rc, 1);
		assert_non_null(strstr(r.err, "holds no per-symbol statistics"));
		run_free(&r);
	}
	free(advice);
	{
		/* no kept span at all: no advice, said on stderr, no failure */
		FILE *null = fopen("/dev/null", "w");

		advice = NULL;
		alen = 0;
		aout = open_memstream(&advice, &alen);
		assert_non_null(aout);
		s.blocks = NULL;
		s.kept_in_slow = NULL;
		s.prune_advice = true;
		s.advice_out = aout;
		fflush(stderr);
		{
			int se = dup(2);

			dup2(fileno(null), 2);
			assert_int_equal(sp_stats_session_report_raw(&s, raw), 0);
			dup2(se, 2);
			close(se);
		}
		assert_int_equal(fclose(aout), 0);
		assert_string_equal(advice, "");
		fclose(null);
	}
	free(table);
	free(advice);
	unlink(blk);
	unlink(syms);
	rmdir(dir);
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_ranges),
		cmocka_unit_test(test_quantile_exact_cases),
		cmocka_unit_test(test_quantile_error_bound),
		cmocka_unit_test(test_probe_cost),
		cmocka_unit_test(test_single_steps),
		cmocka_unit_test(test_table_output),
		cmocka_unit_test(test_json_output),
		cmocka_unit_test(test_formatting),
		cmocka_unit_test(test_prune_rewrite),
		cmocka_unit_test(test_prune_nothing),
		cmocka_unit_test(test_prune_skips_carriers),
		cmocka_unit_test(test_prune_exact_shared),
		cmocka_unit_test(test_prune_exact_names),
		cmocka_unit_test(test_prune_overlaps),
		cmocka_unit_test(test_prune_refusals),
		cmocka_unit_test(test_funcs_from_reports),
		cmocka_unit_test(test_kept_count),
		cmocka_unit_test(test_session_report_and_stats_command),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
