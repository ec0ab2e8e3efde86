/*
 * Pruning advice: which probed functions earned nothing (no kept span in a
 * slow query) and what the symbol list looks like without them.
 *
 * The rewrite keeps the user's file: its comments, order and untouched
 * lines stay as they are, so the advice reads as a diff of their list. A
 * glob cannot say "all but these", so a glob that loses only some of its
 * functions becomes exact names for the ones it keeps.
 *
 * Matching is decided with sp_pattern_matches on the names the resolver
 * kept (demangled and raw), the same test the resolver applies; the
 * resolver's own verdict (sp_func.pattern) counts too.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "stats/prune_advice.h"
#include "output/span_print.h"
#include "base/errmsg.h"
#include "resolve/resolve.h"

enum verdict {
	V_KEEP,    /* the line stays as it is */
	V_COMMENT, /* every function it matches is pruned: commented out */
	V_EXPAND,  /* a glob that loses some: commented out + exact names */
};

struct plan {
	const struct sp_prune_in *in;
	size_t nf, np;
	bool *match;     /* np * nf: pattern p matches attachable function f */
	bool *pruned;    /* nf */
	enum verdict *v; /* np */
	char **line;     /* nf: the exact pattern listing f, when it needs one */
	size_t *home;    /* nf: the pattern whose expansion lists f, np if none */
};

/* Costs read from a file may be anything: sums saturate. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool attachable(const struct sp_func *f)
{
	return !f->problem;
}

static bool is_glob(const char *g)
{
	return strpbrk(g, "*?[\\") != NULL;
}

static bool matches(const struct plan *pl, size_t p, size_t f)
{
	return pl->match[p * pl->nf + f];
}

/* ---- setup ------------------------------------------------------------- */

/* The text must be what pats was parsed from, or the rewrite would put
 * lines in the wrong places. */
static int check_text(const struct sp_prune_in *in, char *err, size_t errlen)
{
	struct sp_pattern_list again;
	char why[256];
	bool same;

	if (sp_symlist_parse_buf(in->source, in->text, in->len, &again, why, sizeof(why))) {
		sp_set_err(err, errlen, "%s", why);
		return -1;
	}
	same = again.n == in->pats->n;
	for (size_t i = 0; same && i < again.n; i++)
		same = again.v[i].line == in->pats->v[i].line &&
		       again.v[i].role == in->pats->v[i].role &&
		       !strcmp(again.v[i].glob, in->pats->v[i].glob);
	sp_symlist_free(&again);
	if (!same) {
		sp_set_err(err, errlen, "%s changed since it was resolved", in->source);
		return -1;
	}
	return 0;
}

static void plan_free(struct plan *pl)
{
	for (size_t f = 0; pl->line && f < pl->nf; f++)
		free(pl->line[f]);
	free(pl->line);
	free(pl->home);
	free(pl->v);
	free(pl->pruned);
	free(pl->match);
}

static void fill_matches(struct plan *pl)
{
	const struct sp_func_set *fs = pl->in->funcs;

	for (size_t p = 0; p < pl->np; p++) {
		const char *glob = pl->in->pats->v[p].glob;

		for (size_t f = 0; f < pl->nf; f++) {
			const struct sp_func *fn = &fs->v[f];

			pl->match[p * pl->nf + f] = attachable(fn) &&
				(fn->pattern == (int)p ||
				 sp_pattern_matches(glob, fn->raw, fn->demangled));
		}
	}
}

/* A function that failed earns its probe without slow spans: the error
 * flag is what a user looks for, fast or slow. */
static bool failed_only(const struct plan *pl, size_t f)
{
	return pl->in->reports[f].s.errors && pl->in->reports[f].kept_in_slow == 0;
}

/* The candidates before any line is rewritten. A carrier that no pattern
 * names (probed for the async fns inlined into it) is not one: no line
 * of the list brings it in. */
static void initial_pruned(struct plan *pl)
{
	for (size_t f = 0; f < pl->nf; f++) {
		const struct sp_func *fn = &pl->in->funcs->v[f];

		/* an error probe has no spans of its own: it marks others */
		pl->pruned[f] = attachable(fn) && fn->role != SP_ROLE_ROOT && fn->pattern >= 0 &&
				fn->source != SP_SRC_USDT_ERROR &&
				pl->in->reports[f].kept_in_slow == 0 && !failed_only(pl, f);
	}
}

/* Without one kept span, every function "never reached the threshold":
 * advice would prune everything but the roots. */
static bool have_basis(const struct plan *pl)
{
	for (size_t f = 0; f < pl->nf; f++)
		if (attachable(&pl->in->funcs->v[f]) && pl->in->reports[f].kept_in_slow)
			return true;
	return false;
}

static int plan_init(struct plan *pl, const struct sp_prune_in *in, char *err, size_t errlen)
{
	size_t nf = in->funcs->n, np = in->pats->n;

	memset(pl, 0, sizeof(*pl));
	pl->in = in;
	pl->nf = nf;
	pl->np = np;
	pl->match = calloc(np && nf ? np * nf : 1, sizeof(*pl->match));
	pl->pruned = calloc(nf ? nf : 1, sizeof(*pl->pruned));
	pl->v = calloc(np ? np : 1, sizeof(*pl->v));
	pl->line = calloc(nf ? nf : 1, sizeof(*pl->line));
	pl->home = calloc(nf ? nf : 1, sizeof(*pl->home));
	if (!pl->match || !pl->pruned || !pl->v || !pl->line || !pl->home) {
		sp_set_err(err, errlen, "out of memory");
		plan_free(pl);
		return -1;
	}
	fill_matches(pl);
	if (!have_basis(pl)) {
		sp_set_err(err, errlen, "no span was kept inside a slow query: no basis for "
			"pruning advice (trace longer, or lower --min-query)");
		plan_free(pl);
		return -1;
	}
	initial_pruned(pl);
	return 0;
}

/* ---- exact names for the functions a glob keeps ------------------------ */

/* A name the symbol list can spell: the parser cuts at '#', trims blanks
 * and splits lines. */
static bool spellable(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '#')
			return false;
	return true;
}

/* s as a glob that matches s only: fnmatch's metacharacters escaped. */
static char *escape_glob(const char *s)
{
	char *out = malloc(2 * strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (strchr("*?[\\", *s))
			*o++ = '\\';
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* Whether a pruned function has this name (demangled or raw): the exact
 * pattern spelling it would bring that function back. */
static bool names_pruned(const struct plan *pl, const char *name)
{
	for (size_t g = 0; g < pl->nf; g++) {
		const struct sp_func *fn = &pl->in->funcs->v[g];

		if (pl->pruned[g] && ((fn->raw && !strcmp(name, fn->raw)) ||
				      (fn->demangled && !strcmp(name, fn->demangled))))
			return true;
	}
	return false;
}

/* An exact pattern for function f that matches it and no pruned function:
 * the demangled name if possible (people read it), else the raw symbol.
 * An escaped name matches exactly the strings equal to it, so comparing
 * names is the same test as fnmatch, and much cheaper. NULL when neither
 * name works (or out of memory). */
static char *exact_pattern(const struct plan *pl, size_t f)
{
	const struct sp_func *fn = &pl->in->funcs->v[f];
	const char *names[2] = { fn->demangled, fn->raw };

	for (int i = 0; i < 2; i++)
		if (spellable(names[i]) && !names_pruned(pl, names[i]))
			return escape_glob(names[i]);
	return NULL;
}

/* ---- decisions --------------------------------------------------------- */

/* The first pattern, in file order, that matches f and stays (in some
 * form); only patterns before `upto` are looked at. */
static size_t first_live(const struct plan *pl, size_t f, size_t upto)
{
	for (size_t q = 0; q < upto; q++)
		if (matches(pl, q, f) && pl->v[q] != V_COMMENT)
			return q;
	return pl->np;
}

/* Can glob p be replaced by exact names for what it keeps? Only the kept
 * functions not already listed by an earlier line need one. */
static bool can_expand(struct plan *pl, size_t p)
{
	for (size_t f = 0; f < pl->nf; f++) {
		if (!matches(pl, p, f) || pl->pruned[f] || first_live(pl, f, p) < p)
			continue;
		free(pl->line[f]);
		pl->line[f] = exact_pattern(pl, f);
		if (!pl->line[f])
			return false;
	}
	return true;
}

static enum verdict decide(struct plan *pl, size_t p)
{
	size_t m = 0, pr = 0;

	for (size_t f = 0; f < pl->nf; f++) {
		if (!matches(pl, p, f))
			continue;
		m++;
		pr += pl->pruned[f];
	}
	if (!pr)
		return V_KEEP;
	if (pr == m)
		return V_COMMENT;
	/* an exact name that loses some of its functions is kept as the user
	 * wrote it; what it matches stays (plan_settle) */
	if (!is_glob(pl->in->pats->v[p].glob) || !can_expand(pl, p))
		return V_KEEP;
	return V_EXPAND;
}

static void decide_all(struct plan *pl)
{
	for (size_t f = 0; f < pl->nf; f++) {
		free(pl->line[f]);
		pl->line[f] = NULL;
	}
	for (size_t p = 0; p < pl->np; p++)
		pl->v[p] = decide(pl, p);
	for (size_t f = 0; f < pl->nf; f++) {
		pl->home[f] = pl->pruned[f] ? pl->np : first_live(pl, f, pl->np);
		if (pl->home[f] < pl->np && pl->v[pl->home[f]] != V_EXPAND) {
			free(pl->line[f]);
			pl->line[f] = NULL;
		}
	}
}

/* A line kept as written still matches the pruned functions it matched:
 * they are not pruned after all. Exact names never match a pruned one. */
static bool demote(struct plan *pl)
{
	bool changed = false;

	for (size_t p = 0; p < pl->np; p++) {
		if (pl->v[p] != V_KEEP)
			continue;
		for (size_t f = 0; f < pl->nf; f++) {
			if (pl->pruned[f] && matches(pl, p, f)) {
				pl->pruned[f] = false;
				changed = true;
			}
		}
	}
	return changed;
}

/* Decides until what is pruned is exactly what the new list no longer
 * matches. The pruned set only shrinks, so this ends. */
static int plan_settle(struct plan *pl, char *err, size_t errlen)
{
	do
		decide_all(pl);
	while (demote(pl));
	for (size_t f = 0; f < pl->nf; f++) {
		if (pl->home[f] < pl->np && pl->v[pl->home[f]] == V_EXPAND && !pl->line[f]) {
			sp_set_err(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

long sp_prune_select(const struct sp_prune_in *in, bool *pruned, char *err, size_t errlen)
{
	struct plan pl;
	long n = 0;

	if (plan_init(&pl, in, err, errlen))
		return -1;
	if (plan_settle(&pl, err, errlen)) {
		plan_free(&pl);
		return -1;
	}
	for (size_t f = 0; f < pl.nf; f++) {
		pruned[f] = pl.pruned[f];
		n += pruned[f];
	}
	plan_free(&pl);
	return n;
}

/* ---- output ------------------------------------------------------------ */

/* The --min-span the pruned functions were judged by, as the CLI spells
 * it; reports from sessions with different values say so. */
static const char *threshold(const struct plan *pl, char *buf, size_t len)
{
	bool first = true;
	uint64_t ns = 0;

	for (size_t f = 0; f < pl->nf; f++) {
		uint64_t m = pl->in->reports[f].min_span_ns;

		if (!attachable(&pl->in->funcs->v[f]))
			continue;
		if (!first && m != ns)
			return "the --min-span";
		ns = m;
		first = false;
	}
	return sp_fmt_threshold(buf, len, ns);
}

static int by_report_cost(const void *a, const void *b)
{
	return sp_sym_report_cmp(*(const struct sp_sym_report *const *)a,
				 *(const struct sp_sym_report *const *)b);
}

static void header_list(FILE *out, const struct sp_sym_report **r, size_t n)
{
	char buf[32];

	qsort(r, n, sizeof(*r), by_report_cost);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "#   ~%s  %" PRIu64 " calls, %" PRIu64 " outside queries  ",
			sp_fmt_duration(buf, sizeof(buf), r[i]->est_cost_ns),
			(uint64_t)r[i]->s.calls, (uint64_t)r[i]->s.outside_calls);
		sp_print_text(out, r[i]->name);
		fputs(" (", out);
		sp_print_text(out, r[i]->object);
		fputs(")\n", out);
	}
}

/* The functions kept only because they failed, with their error counts. */
static void header_failed(FILE *out, const struct plan *pl, const char *thr)
{
	bool first = true;

	for (size_t f = 0; f < pl->nf; f++) {
		const struct sp_sym_report *r = &pl->in->reports[f];

		if (!attachable(&pl->in->funcs->v[f]) || !failed_only(pl, f))
			continue;
		if (first)
			fprintf(out, "# Kept though they never reached %s inside a slow query, "
				"because they failed:\n", thr);
		first = false;
		fprintf(out, "#   %" PRIu64 " error%s in %" PRIu64 " calls  ", (uint64_t)r->s.errors,
			r->s.errors == 1 ? "" : "s", (uint64_t)r->s.calls);
		sp_print_text(out, r->name);
		fputs(" (", out);
		sp_print_text(out, r->object);
		fputs(")\n", out);
	}
}

static int header(FILE *out, const struct plan *pl, const char *thr)
{
	const struct sp_sym_report **r = malloc((pl->nf ? pl->nf : 1) * sizeof(*r));
	uint64_t saved = 0, total = 0;
	size_t n = 0, probed = 0;
	char a[32], b[32];

	if (!r)
		return -1;
	for (size_t f = 0; f < pl->nf; f++) {
		if (!attachable(&pl->in->funcs->v[f]))
			continue;
		probed++;
		total = sat_add(total, pl->in->reports[f].est_cost_ns);
		if (pl->pruned[f]) {
			r[n++] = &pl->in->reports[f];
			saved = sat_add(saved, pl->in->reports[f].est_cost_ns);
		}
	}
	fputs("# spanprobe prune advice for ", out);
	sp_print_text(out, pl->in->source);
	putc('\n', out);
	if (!n) {
		fprintf(out, "# Every probed function reached %s inside a slow query at least "
			"once: nothing to prune.\n", thr);
	} else {
		fprintf(out, "# %zu of %zu probed functions never reached %s inside a slow "
			"query;\n# dropping them saves ~%s of the ~%s estimated probe cost.\n"
			"# Pruned, costliest first:\n", n, probed, thr,
			sp_fmt_duration(a, sizeof(a), saved), sp_fmt_duration(b, sizeof(b), total));
		header_list(out, r, n);
		fputs("# Roots are never pruned. The list follows, rewritten.\n", out);
	}
	header_failed(out, pl, thr);
	free(r);
	return 0;
}

/* The function names of pattern p that are pruned (at most a few) and
 * their total cost. */
static uint64_t pruned_names(FILE *out, const struct plan *pl, size_t p, size_t *count)
{
	enum { SHOW = 5 };
	uint64_t cost = 0;
	size_t n = 0;

	for (size_t f = 0; f < pl->nf; f++) {
		if (!matches(pl, p, f) || !pl->pruned[f])
			continue;
		cost = sat_add(cost, pl->in->reports[f].est_cost_ns);
		if (out && n < SHOW) {
			fputs(n ? ", " : "", out);
			sp_print_text(out, pl->in->funcs->v[f].demangled);
		}
		n++;
	}
	if (out && n > SHOW)
		fprintf(out, ", and %zu more", n - SHOW);
	*count = n;
	return cost;
}

static void put_commented(FILE *out, const char *line, size_t len)
{
	fputs("# ", out);
	fwrite(line, 1, len, out);
	putc('\n', out);
}

static void emit_comment(FILE *out, const struct plan *pl, size_t p, const char *thr,
			 const char *line, size_t len)
{
	size_t n, only = pl->nf;
	uint64_t cost = pruned_names(NULL, pl, p, &n);
	char buf[32];

	for (size_t f = 0; n == 1 && f < pl->nf; f++)
		if (matches(pl, p, f))
			only = f;
	fputs("# pruned: ", out);
	if (only < pl->nf)
		sp_print_text(out, pl->in->funcs->v[only].demangled);
	else
		fprintf(out, "%s (%zu functions)", pl->in->pats->v[p].glob, n);
	fprintf(out, " never reached %s in slow queries, ~%s probe cost\n", thr,
		sp_fmt_duration(buf, sizeof(buf), cost));
	put_commented(out, line, len);
}

static void emit_expand(FILE *out, const struct plan *pl, size_t p, const char *thr,
			const char *line, size_t len)
{
	const struct sp_pattern *pat = &pl->in->pats->v[p];
	size_t n, m = 0, listed = 0;
	uint64_t cost;
	char buf[32];

	for (size_t f = 0; f < pl->nf; f++) {
		m += matches(pl, p, f);
		listed += pl->home[f] == p;
	}
	fprintf(out, "# partly pruned: %s matched %zu functions; never reached %s in slow "
		"queries: ", pat->glob, m, thr);
	cost = pruned_names(out, pl, p, &n);
	fprintf(out, " (%zu, ~%s probe cost).\n", n, sp_fmt_duration(buf, sizeof(buf), cost));
	if (listed)
		fputs("# The ones it keeps are listed by exact name below: the glob "
		      "would bring the pruned ones back.\n", out);
	else
		fputs("# The ones it keeps are matched by other lines of this list.\n", out);
	put_commented(out, line, len);
	for (size_t f = 0; f < pl->nf; f++)
		if (pl->home[f] == p)
			fprintf(out, "%s %s\n", pat->role == SP_ROLE_ROOT ? "root" : "span",
				pl->line[f]);
}

/* Pattern on line number lineno, or np. */
static size_t pattern_at(const struct plan *pl, int lineno)
{
	for (size_t p = 0; p < pl->np; p++)
		if (pl->in->pats->v[p].line == lineno)
			return p;
	return pl->np;
}

static void emit_text(FILE *out, const struct plan *pl, const char *thr)
{
	const char *p = pl->in->text, *end = p + pl->in->len;
	int lineno = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p), pat;

		pat = pattern_at(pl, ++lineno);
		if (pat < pl->np && pl->v[pat] == V_COMMENT) {
			emit_comment(out, pl, pat, thr, p, len);
		} else if (pat < pl->np && pl->v[pat] == V_EXPAND) {
			emit_expand(out, pl, pat, thr, p, len);
		} else {
			fwrite(p, 1, len, out);
			putc('\n', out);
		}
		p = nl ? nl + 1 : end;
	}
}

int sp_prune_advice(FILE *out, const struct sp_prune_in *in, char *err, size_t errlen)
{
	struct plan pl;
	char buf[32];
	const char *thr;
	int rc = 0;

	if (check_text(in, err, errlen) || plan_init(&pl, in, err, errlen))
		return -1;
	if (plan_settle(&pl, err, errlen)) {
		plan_free(&pl);
		return -1;
	}
	thr = threshold(&pl, buf, sizeof(buf));
	if (header(out, &pl, thr)) {
		sp_set_err(err, errlen, "out of memory");
		rc = -1;
	} else {
		emit_text(out, &pl, thr);
		if (fflush(out) || ferror(out)) {
			sp_set_err(err, errlen, "writing the advice failed");
			rc = -1;
		}
	}
	plan_free(&pl);
	return rc;
}

/* ---- inputs from files ------------------------------------------------- */

#define MAX_LIST_BYTES (64u << 20)

char *sp_prune_read_list(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	char *buf = NULL;

	if (!f) {
		sp_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		char *nb = cap > MAX_LIST_BYTES ? NULL : realloc(buf, cap);

		if (!nb) {
			sp_set_err(err, errlen, "%s: %s", path,
				strerror(cap > MAX_LIST_BYTES ? EFBIG : ENOMEM));
			break;
		}
		buf = nb;
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap) {
			if (!ferror(f)) {
				fclose(f);
				*len = n;
				return buf;
			}
			/* a directory fails here with EISDIR */
			sp_set_err(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
			break;
		}
		cap *= 2;
	}
	free(buf);
	fclose(f);
	return NULL;
}

static int first_pattern(const struct sp_pattern_list *pats, const struct sp_sym_report *r,
			 enum sp_role *role)
{
	int first = -1;

	*role = r->role == SP_ROLE_ROOT ? SP_ROLE_ROOT : SP_ROLE_SPAN;
	for (size_t p = 0; p < pats->n; p++) {
		if (!sp_pattern_matches(pats->v[p].glob, r->raw, r->name))
			continue;
		if (first < 0)
			first = (int)p;
		if (pats->v[p].role == SP_ROLE_ROOT)
			*role = SP_ROLE_ROOT;
	}
	return first;
}

int sp_prune_funcs_from_reports(const struct sp_pattern_list *pats,
				const struct sp_sym_report *reports, size_t n,
				struct sp_func_set *out)
{
	*out = (struct sp_func_set){ 0 };
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (!out->v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct sp_sym_report *r = &reports[i];
		struct sp_func *f = &out->v[i];

		out->n++;
		f->raw = strdup(r->raw ? r->raw : "");
		f->demangled = strdup(r->name ? r->name : "");
		f->object = strdup(r->object ? r->object : "");
		f->pattern = first_pattern(pats, r, &f->role);
		/* an error probe has no spans: without its source it would
		 * look like a function that never earned anything */
		if (f->pattern >= 0)
			f->source = pats->v[f->pattern].source;
		if (!f->raw || !f->demangled || !f->object) {
			sp_func_set_free(out);
			return -1;
		}
	}
	return 0;
}
