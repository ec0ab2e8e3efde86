/*
 * spanprobe stats FILE [--json] [--prune-advice -s SYMBOLS]: the
 * per-symbol statistics a session stored in its block file, as a table,
 * JSON lines, or pruning advice for the symbol list.
 *
 * Block files concatenate, so a file may hold several sessions, one
 * statistics block each; their figures are summed per function (name, raw
 * name, object). Damaged blocks are reported and skipped, as dump does.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "output/block_format.h"
#include "cli/cli.h"
#include "stats/prune_advice.h"
#include "output/sym_stats.h"
#include "resolve/resolve.h"

struct stats_opts {
	const char *path;
	const char *symbols; /* -s, for --prune-advice */
	bool json;
	bool prune;
};

/* Reports of every statistics block, strings owned, then merged. */
struct collected {
	struct sp_sym_report *v;
	size_t n, cap;
	size_t blocks;
	bool mixed_min_span;
};

static void usage(FILE *f)
{
	fputs("usage: spanprobe stats FILE [--json] [--prune-advice -s SYMBOLS]\n"
	      "  Per-symbol statistics stored in a block file by attach/run -o:\n"
	      "  calls, total/p50/p99/max duration, spans under the session's\n"
	      "  minimum span, spans kept in slow queries, estimated probe cost;\n"
	      "  costliest first. Several statistics blocks (concatenated files,\n"
	      "  one per session) are summed.\n"
	      "  --json               one JSON object per symbol and line\n"
	      "  --prune-advice       print SYMBOLS rewritten without the functions\n"
	      "                       that never reached the minimum span in a slow query\n"
	      "  -s, --symbols FILE   the symbol list --prune-advice rewrites\n"
	      "  -h, --help           this text\n", f);
}

static int need_value(int i, int argc, const char *opt)
{
	if (i + 1 < argc)
		return 0;
	fprintf(stderr, "spanprobe stats: %s needs a value\n", opt);
	return -1;
}

/* 0: run, 1: help was printed, -1: usage error (already reported). */
static int parse_args(int argc, char **argv, struct stats_opts *o)
{
	bool opts_done = false;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_done && !strcmp(a, "--")) {
			opts_done = true;
		} else if (!opts_done && !strcmp(a, "--json")) {
			o->json = true;
		} else if (!opts_done && !strcmp(a, "--prune-advice")) {
			o->prune = true;
		} else if (!opts_done && (!strcmp(a, "-s") || !strcmp(a, "--symbols"))) {
			if (need_value(i, argc, a))
				return -1;
			o->symbols = argv[++i];
		} else if (!opts_done && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			usage(stdout);
			return 1;
		} else if (!opts_done && a[0] == '-' && a[1]) {
			fprintf(stderr, "spanprobe stats: unknown option %s\n", a);
			return -1;
		} else if (o->path) {
			fprintf(stderr, "spanprobe stats: more than one FILE (%s, %s)\n", o->path, a);
			return -1;
		} else {
			o->path = a;
		}
	}
	if (!o->path) {
		fputs("spanprobe stats: missing FILE\n", stderr);
		return -1;
	}
	if (o->prune != (o->symbols != NULL)) {
		fputs("spanprobe stats: --prune-advice and -s SYMBOLS go together\n", stderr);
		return -1;
	}
	if (o->prune && o->json) {
		fputs("spanprobe stats: --prune-advice prints a symbol list, not JSON\n", stderr);
		return -1;
	}
	return 0;
}

/* ---- collecting and summing -------------------------------------------- */

static void collected_free(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free((char *)c->v[i].name);
		free((char *)c->v[i].raw);
		free((char *)c->v[i].object);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* A copy of r whose strings outlive the block. */
static int push(struct collected *c, const struct sp_sym_report *r)
{
	struct sp_sym_report *e;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct sp_sym_report *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return -1;
		c->v = v;
		c->cap = cap;
	}
	e = &c->v[c->n];
	*e = *r;
	e->name = strdup(r->name);
	e->raw = strdup(r->raw);
	e->object = strdup(r->object);
	c->n++;
	return e->name && e->raw && e->object ? 0 : -1;
}

static int by_key(const void *pa, const void *pb)
{
	const struct sp_sym_report *a = pa, *b = pb;
	int c = strcmp(a->name, b->name);

	if (!c)
		c = strcmp(a->raw, b->raw);
	return c ? c : strcmp(a->object, b->object);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* b's figures into a (same function); b's strings are freed. */
static void merge_into(struct collected *c, struct sp_sym_report *a, struct sp_sym_report *b)
{
	sp_sym_stats_add(&a->s, &b->s);
	a->kept_in_slow = sat_add(a->kept_in_slow, b->kept_in_slow);
	a->est_cost_ns = sat_add(a->est_cost_ns, b->est_cost_ns);
	if (b->role == SP_ROLE_ROOT)
		a->role = SP_ROLE_ROOT;
	if (a->min_span_ns != b->min_span_ns)
		c->mixed_min_span = true;
	free((char *)b->name);
	free((char *)b->raw);
	free((char *)b->object);
}

/* Sums the entries of the same function, one per session. */
static void merge(struct collected *c)
{
	size_t out = 0;

	if (!c->n)
		return;
	qsort(c->v, c->n, sizeof(*c->v), by_key);
	for (size_t i = 1; i < c->n; i++) {
		if (!by_key(&c->v[out], &c->v[i]))
			merge_into(c, &c->v[out], &c->v[i]);
		else
			c->v[++out] = c->v[i];
	}
	c->n = out + 1;
	for (size_t i = 1; i < c->n; i++)
		if (c->v[i].min_span_ns != c->v[0].min_span_ns)
			c->mixed_min_span = true;
}

/* 0 if the file was read to the end, 1 if damaged blocks were skipped,
 * -1 on an error that stops everything (already reported). */
static int collect(const char *path, struct collected *c)
{
	struct sp_block_reader *r;
	struct sp_block b;
	char err[512];
	int rc, status = 0;

	r = sp_block_reader_open(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "spanprobe stats: %s\n", err);
		return -1;
	}
	while ((rc = sp_block_reader_next(r, &b, err, sizeof(err))) != 0) {
		if (rc < 0) {
			fprintf(stderr, "spanprobe stats: %s\n", err);
			status = 1;
			continue;
		}
		c->blocks += b.n_stats != 0;
		for (size_t i = 0; i < b.n_stats; i++) {
			if (push(c, &b.stats[i])) {
				fputs("spanprobe stats: out of memory\n", stderr);
				sp_block_reader_close(r);
				return -1;
			}
		}
	}
	sp_block_reader_close(r);
	merge(c);
	return status;
}

/* ---- output ------------------------------------------------------------ */

static int advise(const struct stats_opts *o, const struct collected *c)
{
	struct sp_prune_in in = { .source = o->symbols, .reports = c->v };
	struct sp_pattern_list pats = { 0 };
	struct sp_func_set funcs = { 0 };
	char err[512];
	size_t unmatched = 0;
	int rc = -1;

	in.text = sp_prune_read_list(o->symbols, &in.len, err, sizeof(err));
	if (!in.text || sp_symlist_parse_buf(o->symbols, in.text, in.len, &pats, err, sizeof(err)))
		goto out;
	if (sp_prune_funcs_from_reports(&pats, c->v, c->n, &funcs)) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	/* functions no pattern names any more are left out of the advice */
	for (size_t i = 0; i < funcs.n; i++)
		if (funcs.v[i].pattern < 0 && (funcs.v[i].problem = strdup("matches no pattern")))
			unmatched++;
	if (unmatched)
		fprintf(stderr, "spanprobe stats: %zu function%s of %s match%s no pattern of %s; "
			"left out of the advice\n", unmatched, unmatched == 1 ? "" : "s", o->path,
			unmatched == 1 ? "es" : "", o->symbols);
	in.pats = &pats;
	in.funcs = &funcs;
	rc = sp_prune_advice(stdout, &in, err, sizeof(err));
out:
	if (rc)
		fprintf(stderr, "spanprobe stats: %s\n", err);
	sp_func_set_free(&funcs);
	sp_symlist_free(&pats);
	free((char *)in.text);
	return rc;
}

static int report(const struct stats_opts *o, const struct collected *c)
{
	if (c->mixed_min_span)
		fprintf(stderr, "spanprobe stats: note: %s holds sessions with different "
			"--min-span values; their counts under it are added up\n", o->path);
	if (o->prune)
		return advise(o, c);
	if (o->json)
		return sp_sym_stats_print_json(stdout, c->v, c->n);
	if (c->blocks > 1)
		printf("%s: the sum of %zu statistics blocks\n", o->path, c->blocks);
	return sp_sym_stats_print_table(stdout, c->v, c->n);
}

int sp_cmd_stats(int argc, char **argv)
{
	struct stats_opts o;
	struct collected c = { 0 };
	int rc, status;

	rc = parse_args(argc, argv, &o);
	if (rc) {
		if (rc < 0)
			usage(stderr);
		return rc < 0 ? 2 : 0;
	}
	status = collect(o.path, &c);
	if (status < 0)
		return 2;
	if (!c.n) {
		fflush(stdout);
		fprintf(stderr, "spanprobe stats: %s holds no per-symbol statistics (they are "
			"written when an attach/run session with -o ends)\n", o.path);
		collected_free(&c);
		return 1;
	}
	if (report(&o, &c))
		status = 2;
	collected_free(&c);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "spanprobe stats: writing output: %s\n", strerror(errno));
		return 1;
	}
	return status;
}
