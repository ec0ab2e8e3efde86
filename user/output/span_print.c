/*
 * Rendering spans as text trees and JSON lines.
 *
 * Input may come from a damaged or hostile block file, so nothing here
 * trusts the parent links: duplicate ids and cycles must neither loop nor
 * hide spans, deep nesting must not exhaust the C stack, and names must
 * not smuggle terminal escapes or break the JSON.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "output/span_print.h"
#include "output/tree_collapse.h"
#include "base/utf8_clean.h"

/* Deeper levels are drawn at this indent with a [+N] marker, so that a
 * deep recursion does not produce quadratic output. */
#define MAX_INDENT 32
/* Levels of what collapsed siblings called that are drawn; deeper ones
 * are counted on one line (a hostile file may nest without end). */
#define MAX_AGG_LEVELS 24

void sp_print_time(FILE *out, uint64_t wall_ns)
{
	time_t sec = (time_t)(wall_ns / 1000000000u);
	struct tm tm;
	char buf[64];

	if (!gmtime_r(&sec, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) {
		fprintf(out, "%" PRIu64 " ns", wall_ns);
		return;
	}
	fprintf(out, "%s.%06uZ", buf, (unsigned)(wall_ns % 1000000000u / 1000));
}

void sp_print_duration(FILE *out, uint64_t ns)
{
	uint64_t tenths;

	/* below 999.95 µs the rounded value still reads as µs */
	if (ns < 999950) {
		tenths = (ns + 50) / 100;
		fprintf(out, "%" PRIu64 ".%" PRIu64 " µs", tenths / 10, tenths % 10);
		return;
	}
	tenths = ns / 100000 + (ns % 100000 >= 50000);
	fprintf(out, "%" PRIu64 ".%" PRIu64 " ms", tenths / 10, tenths % 10);
}

void sp_print_text(FILE *out, const char *s)
{
	if (!s)
		s = "?";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		putc(c < 0x20 || c == 0x7f ? '?' : c, out);
	}
}

static void json_char(FILE *out, unsigned char c)
{
	switch (c) {
	case '"': fputs("\\\"", out); break;
	case '\\': fputs("\\\\", out); break;
	case '\n': fputs("\\n", out); break;
	case '\r': fputs("\\r", out); break;
	case '\t': fputs("\\t", out); break;
	case '\b': fputs("\\b", out); break;
	case '\f': fputs("\\f", out); break;
	default:
		if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			putc(c, out);
	}
}

/* JSON text must be valid Unicode: bytes that are not UTF-8 become
 * U+FFFD rather than producing a line parsers reject. */
void sp_print_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	putc('"', out);
	while (*p) {
		size_t n = sp_utf8_seq_len(p);

		if (n == 0) {
			fputs("\\ufffd", out);
			p++;
		} else if (n == 1) {
			json_char(out, *p++);
		} else {
			fwrite(p, 1, n, out);
			p += n;
		}
	}
	putc('"', out);
}

static void json_flags(FILE *out, uint32_t flags)
{
	static const struct { uint32_t bit; const char *name; } known[] = {
		{ SP_SPAN_ROOT, "root" },
		{ SP_SPAN_ABNORMAL, "abnormal" },
		{ SP_SPAN_INCOMPLETE, "incomplete" },
		{ SP_SPAN_PARTIAL, "partial" },
		{ SP_SPAN_ERROR, "error" },
		{ SP_SPAN_EVENT, "event" },
		{ SP_SPAN_MERGED, "merged" },
	};
	const char *sep = "";

	putc('[', out);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (flags & known[i].bit) {
			fprintf(out, "%s\"%s\"", sep, known[i].name);
			sep = ",";
			flags &= ~known[i].bit;
		}
	}
	/* bits from a newer writer stay visible instead of vanishing */
	for (uint32_t bit = 1; flags; bit <<= 1) {
		if (flags & bit) {
			fprintf(out, "%s\"0x%" PRIx32 "\"", sep, bit);
			sep = ",";
			flags &= ~bit;
		}
	}
	putc(']', out);
}

/* "attrs":{NAME:value}: integers as numbers (i64 signed, u64 unsigned),
 * strings as strings; a value that could not be read is null and named
 * in "attrs_unreadable", one never read (the exit was not seen) is left
 * out and named in "attrs_missing", a cut string is named in
 * "attrs_truncated". */
static void json_cap_names(FILE *out, const struct sp_span_caps *c, const char *key,
			   uint8_t status)
{
	const char *sep = "";

	for (uint32_t i = 0; i < c->n; i++) {
		if (c->v[i].status != status)
			continue;
		if (!*sep)
			fprintf(out, ",\"%s\":[", key);
		fputs(sep, out);
		sp_print_json_string(out, c->v[i].name);
		sep = ",";
	}
	if (*sep)
		putc(']', out);
}

static void json_caps(FILE *out, const struct sp_span_caps *c)
{
	const char *sep = "";

	fputs(",\"attrs\":{", out);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct sp_span_cap *v = &c->v[i];

		if (v->status == SP_SPAN_CAP_MISSING)
			continue;
		fputs(sep, out);
		sep = ",";
		sp_print_json_string(out, v->name);
		putc(':', out);
		if (v->status == SP_SPAN_CAP_UNREADABLE)
			fputs("null", out);
		else if (v->type == SP_SPAN_CAP_STR_T)
			sp_print_json_string(out, v->str);
		else if (v->type == SP_SPAN_CAP_I64)
			fprintf(out, "%" PRId64, (int64_t)v->num);
		else
			fprintf(out, "%" PRIu64, v->num);
	}
	putc('}', out);
	json_cap_names(out, c, "attrs_unreadable", SP_SPAN_CAP_UNREADABLE);
	json_cap_names(out, c, "attrs_missing", SP_SPAN_CAP_MISSING);
	json_cap_names(out, c, "attrs_truncated", SP_SPAN_CAP_TRUNCATED);
}

void sp_print_caps(FILE *out, const struct sp_span_caps *c)
{
	if (!c || !c->n)
		return;
	putc('(', out);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct sp_span_cap *v = &c->v[i];

		if (i)
			fputs(", ", out);
		sp_print_text(out, v->name);
		putc('=', out);
		if (v->status == SP_SPAN_CAP_MISSING) {
			fputs("<not seen>", out);
		} else if (v->status == SP_SPAN_CAP_UNREADABLE) {
			fputs("<unreadable>", out);
		} else if (v->type == SP_SPAN_CAP_STR_T) {
			putc('"', out);
			sp_print_text(out, v->str);
			fputs(v->status == SP_SPAN_CAP_TRUNCATED ? "\"…" : "\"", out);
		} else if (v->type == SP_SPAN_CAP_I64) {
			fprintf(out, "%" PRId64, (int64_t)v->num);
		} else {
			fprintf(out, "%" PRIu64, v->num);
		}
	}
	putc(')', out);
}

void sp_print_json(FILE *out, const struct sp_span *spans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct sp_span *s = &spans[i];

		fprintf(out, "{\"query_id\":%" PRIu64 ",\"span_id\":%" PRIu64
			",\"parent_span_id\":%" PRIu64 ",\"depth\":%" PRIu32 ",\"name\":",
			s->query_id, s->span_id, s->parent_span_id, s->depth);
		sp_print_json_string(out, s->name);
		fprintf(out, ",\"begin_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64
			",\"duration_ns\":%" PRIu64 ",\"tid\":%" PRIu32 ",\"pid\":%" PRIu32
			",\"flags\":", s->begin_ns, s->end_ns, sp_span_duration(s),
			s->tid, s->pid);
		json_flags(out, s->flags);
		/* futures only: how often they were polled, and the window their
		 * true begin and end lie in when they were seen through a root */
		if (s->poll_count)
			fprintf(out, ",\"poll_count\":%" PRIu32, s->poll_count);
		if (s->uncertainty_lo_ns || s->uncertainty_hi_ns)
			fprintf(out, ",\"uncertainty_lo_ns\":%" PRIu64 ",\"uncertainty_hi_ns\":%" PRIu64,
				s->uncertainty_lo_ns, s->uncertainty_hi_ns);
		if (s->caps && s->caps->n)
			json_caps(out, s->caps);
		/* "error" only on failed spans: absent is not false for a span
		 * whose entry set no error condition */
		fprintf(out, ",\"abnormal\":%s%s}\n",
			s->flags & SP_SPAN_ABNORMAL ? "true" : "false",
			s->flags & SP_SPAN_ERROR ? ",\"error\":true" : "");
	}
}

/* ---- tree -------------------------------------------------------------- */

struct level {
	const struct sp_span *owner;
	const struct sp_span **kid; /* owner's children, by begin time */
	size_t n, next;
};

struct tree {
	const struct sp_span *base;
	const struct sp_span **by_parent; /* (parent, begin, id) order */
	const struct sp_span **by_id;
	const struct sp_span **by_begin;
	bool *seen;
	struct level *stack;
	size_t n;
	unsigned flags;   /* SP_TREE_* */
};

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_by_parent(const void *a, const void *b)
{
	const struct sp_span *x = *(const struct sp_span *const *)a;
	const struct sp_span *y = *(const struct sp_span *const *)b;
	int c = cmp_u64(x->parent_span_id, y->parent_span_id);

	if (!c)
		c = cmp_u64(x->begin_ns, y->begin_ns);
	return c ? c : cmp_u64(x->span_id, y->span_id);
}

static int cmp_by_id(const void *a, const void *b)
{
	const struct sp_span *x = *(const struct sp_span *const *)a;
	const struct sp_span *y = *(const struct sp_span *const *)b;

	return cmp_u64(x->span_id, y->span_id);
}

static int cmp_by_begin(const void *a, const void *b)
{
	const struct sp_span *x = *(const struct sp_span *const *)a;
	const struct sp_span *y = *(const struct sp_span *const *)b;
	int c = cmp_u64(x->begin_ns, y->begin_ns);

	return c ? c : cmp_u64(x->span_id, y->span_id);
}

static const struct sp_span **sorted_ptrs(const struct sp_span *spans, size_t n,
					  int (*cmp)(const void *, const void *))
{
	const struct sp_span **v = malloc(n * sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = &spans[i];
	qsort(v, n, sizeof(*v), cmp);
	return v;
}

static void tree_free(struct tree *t)
{
	free(t->by_parent);
	free(t->by_id);
	free(t->by_begin);
	free(t->seen);
	free(t->stack);
}

static int tree_init(struct tree *t, const struct sp_span *spans, size_t n)
{
	memset(t, 0, sizeof(*t));
	t->base = spans;
	t->n = n;
	t->by_parent = sorted_ptrs(spans, n, cmp_by_parent);
	t->by_id = sorted_ptrs(spans, n, cmp_by_id);
	t->by_begin = sorted_ptrs(spans, n, cmp_by_begin);
	t->seen = calloc(n, sizeof(*t->seen));
	t->stack = malloc(n * sizeof(*t->stack));
	if (!t->by_parent || !t->by_id || !t->by_begin || !t->seen || !t->stack) {
		tree_free(t);
		return -1;
	}
	return 0;
}

static bool has_span(const struct tree *t, uint64_t id)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->by_id[mid]->span_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->n && t->by_id[lo]->span_id == id;
}

/* The children of id form one run in by_parent. */
static const struct sp_span **children(const struct tree *t, uint64_t id, size_t *count)
{
	size_t lo = 0, hi = t->n, end;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->by_parent[mid]->parent_span_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < t->n && t->by_parent[end]->parent_span_id == id; end++)
		;
	*count = end - lo;
	return t->by_parent + lo;
}

static void print_flags(FILE *out, uint32_t flags, bool orphan)
{
	static const struct {
		uint32_t bit;
		const char *tag;
	} tags[] = {
		{ SP_SPAN_ABNORMAL, "abnormal" }, { SP_SPAN_INCOMPLETE, "incomplete" },
		{ SP_SPAN_PARTIAL, "partial" },   { SP_SPAN_ERROR, "error" },
		{ SP_SPAN_EVENT, "event" },       { SP_SPAN_MERGED, "merged" },
	};
	const char *sep = "  ";

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		if (flags & tags[i].bit) {
			fprintf(out, "%s[%s]", sep, tags[i].tag);
			sep = " ";
		}
	}
	if (orphan)
		fprintf(out, "%s[orphan]", sep);
}

/* A nested async span is known within windows (README, "Rust async"):
 * the true begin lies up to uncertainty_lo after begin_ns, the true end
 * up to uncertainty_hi before end_ns. Windows over 1 ms are shown, so
 * that the printed duration is not taken as exact. */
#define SHOWN_WINDOW_NS 1000000ull

static void print_windows(FILE *out, const struct sp_span *s)
{
	if (s->uncertainty_lo_ns > SHOWN_WINDOW_NS) {
		fputs("  [begin ≤ +", out);
		sp_print_duration(out, s->uncertainty_lo_ns);
		putc(']', out);
	}
	if (s->uncertainty_hi_ns > SHOWN_WINDOW_NS) {
		fputs("  [end ≤ -", out);
		sp_print_duration(out, s->uncertainty_hi_ns);
		putc(']', out);
	}
}

static void print_top_line(FILE *out, const struct sp_span *s)
{
	fprintf(out, "query %" PRIu64 " pid %" PRIu32 " tid %" PRIu32 "  ",
		s->query_id, s->pid, s->tid);
	sp_print_text(out, s->name);
	sp_print_caps(out, s->caps);
	fputs("  ", out);
	sp_print_duration(out, sp_span_duration(s));
	print_windows(out, s);
	fputs("  (", out);
	sp_print_time(out, s->begin_ns);
	putc(')', out);
	print_flags(out, s->flags, s->parent_span_id != 0);
	putc('\n', out);
}

/* The indent of a line below the top of the stack (depth levels deep):
 * the rails of the open levels and the branch of the line itself. */
static void print_prefix(FILE *out, const struct tree *t, size_t depth)
{
	const struct level *lv = &t->stack[depth - 1];
	size_t first = depth > MAX_INDENT ? depth - MAX_INDENT : 0;

	if (first)
		fprintf(out, "[+%zu]", first);
	for (size_t i = first; i + 1 < depth; i++)
		fputs(t->stack[i].next < t->stack[i].n ? "│   " : "    ", out);
	fputs(lv->next < lv->n ? "├── " : "└── ", out);
}

/* depth counts the levels on the stack; the child belongs to the top. */
static void print_child_line(FILE *out, const struct tree *t, size_t depth,
			     const struct sp_span *s)
{
	const struct level *lv = &t->stack[depth - 1];

	print_prefix(out, t, depth);
	sp_print_text(out, s->name);
	sp_print_caps(out, s->caps);
	fputs("  ", out);
	sp_print_duration(out, sp_span_duration(s));
	print_windows(out, s);
	if (s->tid != lv->owner->tid)
		fprintf(out, "  tid %" PRIu32, s->tid);
	print_flags(out, s->flags, false);
	putc('\n', out);
}

/* ---- collapsed siblings ------------------------------------------------ */

/* "name ×N  total T, p50 P, max M", or a plain line for a single span. */
static void print_group_label(FILE *out, const struct sp_span *const *v, size_t n)
{
	struct sp_collapse_stats st;

	sp_print_text(out, v[0]->name);
	if (n == 1 || sp_collapse_stats(v, n, &st)) {
		fputs("  ", out);
		sp_print_duration(out, sp_span_duration(v[0]));
		print_flags(out, v[0]->flags, false);
		putc('\n', out);
		return;
	}
	fprintf(out, " ×%zu  total ", st.count);
	sp_print_duration(out, st.total_ns);
	fputs(", p50 ", out);
	sp_print_duration(out, st.p50_ns);
	fputs(", max ", out);
	sp_print_duration(out, st.max_ns);
	print_flags(out, st.flags, false);
	putc('\n', out);
}

/* Every unseen child of v[0..n), by begin time; NULL when there are none
 * or memory is short (the children are then printed as orphan trees). */
static const struct sp_span **group_children(struct tree *t, const struct sp_span *const *v,
					     size_t n, size_t *count)
{
	const struct sp_span **kids = NULL;
	size_t total = 0, k = 0;

	for (size_t i = 0; i < n; i++) {
		size_t c;

		children(t, v[i]->span_id, &c);
		total += c;
	}
	*count = 0;
	if (!total || !(kids = malloc(total * sizeof(*kids))))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t c;
		const struct sp_span **ch = children(t, v[i]->span_id, &c);

		for (size_t j = 0; j < c; j++)
			if (!t->seen[ch[j] - t->base]) {
				t->seen[ch[j] - t->base] = true;
				kids[k++] = ch[j];
			}
	}
	qsort(kids, k, sizeof(*kids), cmp_by_begin);
	*count = k;
	return kids;
}

/* Marks everything below v[0..n) seen, without recursion; returns how
 * many spans that was. */
static size_t hide_below(struct tree *t, const struct sp_span *const *v, size_t n)
{
	size_t count = 0, hidden = 0;
	const struct sp_span **todo = malloc(t->n * sizeof(*todo));

	if (!todo)
		return 0;
	for (size_t i = 0; i < n; i++)
		todo[count++] = v[i];
	while (count) {
		size_t c;
		const struct sp_span **ch = children(t, todo[--count]->span_id, &c);

		for (size_t j = 0; j < c; j++)
			if (!t->seen[ch[j] - t->base]) {
				t->seen[ch[j] - t->base] = true;
				todo[count++] = ch[j];
				hidden++;
			}
	}
	free(todo);
	return hidden;
}

/* What the spans v[0..n) called, grouped by name, under the indent
 * `rails` (the text before the branch of each line). */
static void print_groups(FILE *out, struct tree *t, const struct sp_span *const *v,
			 size_t n, char *rails, size_t rails_len, unsigned level)
{
	size_t count, groups, *sizes;
	const struct sp_span **kids;

	if (level >= MAX_AGG_LEVELS) {
		size_t hidden = hide_below(t, v, n);

		if (hidden)
			fprintf(out, "%s└── [%zu deeper spans]\n", rails, hidden);
		return;
	}
	kids = group_children(t, v, n, &count);
	if (!kids)
		return;
	sizes = malloc(count * sizeof(*sizes));
	groups = sizes ? sp_collapse_group(kids, count, sizes) : 0;
	if (!groups) {
		/* out of memory: one group per span, in begin order */
		free(sizes);
		sizes = NULL;
		groups = count;
	}
	for (size_t g = 0, at = 0; g < groups; g++) {
		size_t gn = sizes ? sizes[g] : 1;
		bool last = g + 1 == groups;

		fprintf(out, "%s%s", rails, last ? "└── " : "├── ");
		print_group_label(out, kids + at, gn);
		strcpy(rails + rails_len, last ? "    " : "│   ");
		print_groups(out, t, kids + at, gn, rails, strlen(rails), level + 1);
		rails[rails_len] = 0;
		at += gn;
	}
	free(sizes);
	free(kids);
}

/* A run of same-name siblings at the top of the stack: one line, then
 * what they called. */
static void print_collapsed(FILE *out, struct tree *t, size_t depth,
			    const struct sp_span *const *v, size_t n)
{
	const struct level *lv = &t->stack[depth - 1];
	size_t first = depth > MAX_INDENT ? depth - MAX_INDENT : 0;
	/* room for the rails of the stack and of every drawn group level */
	char *rails = malloc(32 + (MAX_INDENT + MAX_AGG_LEVELS + 2) * sizeof("│   "));
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		t->seen[v[i] - t->base] = true;
	print_prefix(out, t, depth);
	print_group_label(out, v, n);
	if (!rails)
		return;
	if (first)
		len += (size_t)sprintf(rails, "[+%zu]", first);
	for (size_t i = first; i < depth; i++) {
		const struct level *l = i + 1 < depth ? &t->stack[i] : lv;

		len += (size_t)sprintf(rails + len, "%s", l->next < l->n ? "│   " : "    ");
	}
	print_groups(out, t, v, n, rails, len, 0);
	free(rails);
}

/* How many siblings from lv->kid[i] on share its name: a run to
 * collapse, or 1. */
static size_t run_at(const struct tree *t, const struct level *lv, size_t i)
{
	size_t run;

	if (t->flags & SP_TREE_EXPAND)
		return 1;
	run = sp_collapse_run(lv->kid + i, lv->n - i);
	return run >= SP_COLLAPSE_MIN_RUN ? run : 1;
}

static void push(struct tree *t, size_t *depth, const struct sp_span *s)
{
	struct level *lv = &t->stack[(*depth)++];

	t->seen[s - t->base] = true;
	lv->owner = s;
	lv->kid = children(t, s->span_id, &lv->n);
	lv->next = 0;
}

/* Iterative so that deep call chains cannot overflow the C stack; seen
 * keeps a span printed once even if duplicate ids make a cycle. */
static void print_subtree(FILE *out, struct tree *t, const struct sp_span *top)
{
	size_t depth = 0;

	print_top_line(out, top);
	push(t, &depth, top);
	while (depth) {
		struct level *lv = &t->stack[depth - 1];
		const struct sp_span *s;
		size_t run;

		if (lv->next == lv->n) {
			depth--;
			continue;
		}
		run = run_at(t, lv, lv->next);
		s = lv->kid[lv->next];
		lv->next += run;
		if (t->seen[s - t->base])
			continue;
		if (run > 1) {
			print_collapsed(out, t, depth, lv->kid + lv->next - run, run);
			continue;
		}
		print_child_line(out, t, depth, s);
		push(t, &depth, s);
	}
}

void sp_print_tree(FILE *out, const struct sp_span *spans, size_t n, unsigned flags)
{
	struct tree t;

	if (!n)
		return;
	if (tree_init(&t, spans, n)) {
		fprintf(out, "query %" PRIu64 ": out of memory printing %zu spans\n",
			spans[0].query_id, n);
		return;
	}
	t.flags = flags;
	for (size_t i = 0; i < n; i++) {
		const struct sp_span *s = t.by_begin[i];

		if (!t.seen[s - spans] && !has_span(&t, s->parent_span_id))
			print_subtree(out, &t, s);
	}
	/* whatever is left sits on a parent cycle: show it anyway */
	for (size_t i = 0; i < n; i++)
		if (!t.seen[t.by_begin[i] - spans])
			print_subtree(out, &t, t.by_begin[i]);
	tree_free(&t);
}

static int cmp_query_begin(const void *a, const void *b)
{
	const struct sp_span *x = a, *y = b;
	int c = cmp_u64(x->query_id, y->query_id);

	if (!c)
		c = cmp_u64(x->begin_ns, y->begin_ns);
	return c ? c : cmp_u64(x->span_id, y->span_id);
}

void sp_for_each_query(struct sp_span *spans, size_t n,
		       void (*fn)(const struct sp_span *q, size_t n, void *arg),
		       void *arg)
{
	size_t start = 0;

	if (!n)
		return;
	qsort(spans, n, sizeof(*spans), cmp_query_begin);
	for (size_t i = 1; i <= n; i++) {
		if (i == n || spans[i].query_id != spans[start].query_id) {
			fn(spans + start, i - start, arg);
			start = i;
		}
	}
}
