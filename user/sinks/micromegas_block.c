#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sinks/micromegas_block.h"
#include "sinks/transit_writer.h"
#include "output/span_print.h"

/* SpanRecord ids start here, as in micromegas' canonical vectors, unless
 * there are more strings than that (ids must be unique in a block). */
#define RECORD_ID_BASE 100

/* One distinct span name: its strings and record ids (location_id only
 * when a span of that name is labelled). */
struct desc {
	const char *name;
	uint64_t name_id, target_id, record_id, location_id;
	bool labelled;
};

/* A span whose captured values or error flag micromegas must show: its
 * run-time name (a named span event) and that string's id. */
struct label {
	char *text;
	uint64_t id;
};

struct event {
	const struct sp_span *span;
	uint64_t time;
	bool begin;
	uint64_t record_id;     /* SpanRecord, or SpanLocationRecord if labelled */
	const struct label *label;
};

const char *sp_mm_target(const char *name, size_t *len)
{
	const char *cut = NULL;
	int nest = 0;

	for (const char *p = name ? name : ""; *p; p++) {
		if (*p == '<' || *p == '(' || *p == '[')
			nest++;
		else if ((*p == '>' || *p == ')' || *p == ']') && nest > 0)
			nest--;
		else if (!nest && p[0] == ':' && p[1] == ':')
			cut = p;
	}
	if (!cut || cut == name) {
		*len = strlen(SP_MM_DEFAULT_TARGET);
		return SP_MM_DEFAULT_TARGET;
	}
	*len = (size_t)(cut - name);
	return name;
}

static const char *span_name(const struct sp_span *s)
{
	return s->name ? s->name : "";
}

/* The distinct names, in order of first appearance. */
static struct desc *collect_descs(const struct sp_span *spans, size_t n, size_t *count)
{
	struct desc *d = calloc(n ? n : 1, sizeof(*d));
	size_t k = 0;

	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;

		/* linear: a kept query has few distinct functions */
		while (j < k && strcmp(d[j].name, span_name(&spans[i])))
			j++;
		if (j == k)
			d[k++].name = span_name(&spans[i]);
	}
	*count = k;
	return d;
}

static struct desc *desc_of(struct desc *d, size_t k, const char *name)
{
	for (size_t j = 0; j < k; j++)
		if (!strcmp(d[j].name, name))
			return &d[j];
	return NULL;
}

/* async_events has no attribute or status column (wire note §3.4): what
 * a span captured, and its failure, go into its name the way the tree
 * prints them, "open_part(part=\"a\", fd=-1) [error]". NULL when the span
 * has neither (it keeps its static SpanRecord), or out of memory. */
char *sp_mm_span_label(const struct sp_span *s)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!(s->caps && s->caps->n) && !(s->flags & SP_SPAN_ERROR))
		return NULL;
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fputs(span_name(s), f);
	sp_print_caps(f, s->caps);
	if (s->flags & SP_SPAN_ERROR)
		fputs(" [error]", f);
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}

/* Labels of the spans that need one (text NULL for the others); the
 * names they belong to are marked labelled. */
static struct label *make_labels(const struct sp_span *spans, size_t n, struct desc *d, size_t k)
{
	struct label *l = calloc(n ? n : 1, sizeof(*l));

	for (size_t i = 0; l && i < n; i++) {
		l[i].text = sp_mm_span_label(&spans[i]);
		if (l[i].text)
			desc_of(d, k, span_name(&spans[i]))->labelled = true;
	}
	return l;
}

static void free_labels(struct label *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i].text);
	free(l);
}

/* Strings first (a reference must follow what it points to), numbered
 * from 1 in order of use: name, then target (= module_path), then the
 * one empty file name shared by all records, then the labels. Records
 * follow: a SpanRecord per name, then a SpanLocationRecord per labelled
 * name. Without labels the bytes are those of the golden vectors. */
static void write_deps(FILE *f, struct desc *d, size_t k, struct label *l, size_t n)
{
	uint64_t next = 1, file_id, base;

	for (size_t j = 0; j < k; j++) {
		size_t tlen;
		const char *t = sp_mm_target(d[j].name, &tlen);
		char *target = strndup(t, tlen);

		d[j].name_id = next++;
		sp_transit_static_string(f, d[j].name_id, d[j].name);
		d[j].target_id = next++;
		sp_transit_static_string(f, d[j].target_id, target ? target : "");
		free(target);
	}
	file_id = next++;
	sp_transit_static_string(f, file_id, "");
	for (size_t i = 0; i < n; i++) {
		if (!l[i].text)
			continue;
		l[i].id = next++;
		sp_transit_static_string(f, l[i].id, l[i].text);
	}
	base = next > RECORD_ID_BASE ? next : RECORD_ID_BASE;
	for (size_t j = 0; j < k; j++) {
		struct sp_transit_span_desc r = {
			.id = base + j, .name = d[j].name_id, .target = d[j].target_id,
			.module_path = d[j].target_id, .file = file_id, .line = 0,
			.lod = SP_TRANSIT_LOD_MAX,
		};

		d[j].record_id = r.id;
		sp_transit_span_record(f, &r);
	}
	for (size_t j = 0; j < k; j++) {
		struct sp_transit_span_location r = {
			.id = base + k + j, .target = d[j].target_id,
			.module_path = d[j].target_id, .file = file_id, .line = 0,
			.lod = SP_TRANSIT_LOD_MAX,
		};

		if (!d[j].labelled)
			continue;
		d[j].location_id = r.id;
		sp_transit_span_location_record(f, &r);
	}
}

/* By time; at equal times begins before ends, outer begins first and
 * inner ends first, so the order still nests. */
static int cmp_event(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->begin != y->begin)
		return x->begin ? -1 : 1;
	if (x->span->depth != y->span->depth)
		return (x->span->depth < y->span->depth) == x->begin ? -1 : 1;
	return x->span->span_id < y->span->span_id ? -1 : x->span->span_id > y->span->span_id;
}

static struct event *sorted_events(const struct sp_span *spans, size_t n,
				   struct desc *d, size_t k, const struct label *l)
{
	struct event *ev = malloc(2 * (n ? n : 1) * sizeof(*ev));

	if (!ev)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct desc *de = desc_of(d, k, span_name(&spans[i]));
		const struct label *lab = l[i].text ? &l[i] : NULL;
		uint64_t rec = lab ? de->location_id : de->record_id;

		ev[2 * i] = (struct event){ &spans[i], spans[i].begin_ns, true, rec, lab };
		ev[2 * i + 1] = (struct event){ &spans[i], spans[i].end_ns, false, rec, lab };
	}
	qsort(ev, 2 * n, sizeof(*ev), cmp_event);
	return ev;
}

static void write_objects(FILE *f, const struct event *ev, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct sp_transit_async_event e = {
			.span_desc = ev[i].record_id, .span_id = ev[i].span->span_id,
			.parent_span_id = ev[i].span->parent_span_id,
			.time = (int64_t)ev[i].time, .depth = ev[i].span->depth,
		};

		if (ev[i].label)
			sp_transit_async_named_event(f, ev[i].begin, &e, ev[i].label->id,
						     strlen(ev[i].label->text));
		else
			sp_transit_async_event(f, ev[i].begin, &e);
	}
}

static int encode(const struct sp_span *spans, size_t n, char **deps, size_t *deps_len,
		  char **objs, size_t *objs_len, uint64_t *first, uint64_t *last)
{
	size_t k = 0;
	struct desc *d = collect_descs(spans, n, &k);
	struct label *l = d ? make_labels(spans, n, d, k) : NULL;
	struct event *ev = NULL;
	FILE *df = open_memstream(deps, deps_len), *of = open_memstream(objs, objs_len);
	int rc = -1;

	if (!d || !l || !df || !of)
		goto out;
	write_deps(df, d, k, l, n);
	ev = sorted_events(spans, n, d, k, l);
	if (!ev)
		goto out;
	write_objects(of, ev, 2 * n);
	*first = n ? ev[0].time : 0;
	*last = n ? ev[2 * n - 1].time : 0;
	rc = ferror(df) || ferror(of) ? -1 : 0;
out:
	/* closing publishes the buffers; the caller frees them either way */
	if (df && fclose(df))
		rc = -1;
	if (of && fclose(of))
		rc = -1;
	free(ev);
	free_labels(l, n);
	free(d);
	return rc;
}

int sp_mm_encode_transit(const struct sp_span *spans, size_t n,
			 char **deps, size_t *deps_len, char **objs, size_t *objs_len)
{
	uint64_t first, last;

	*deps = *objs = NULL;
	return encode(spans, n, deps, deps_len, objs, objs_len, &first, &last);
}

int sp_mm_encode_spans(const struct sp_span *spans, size_t n, struct sp_mm_payload *out)
{
	char *deps = NULL, *objs = NULL;
	size_t deps_len = 0, objs_len = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (n > INT32_MAX / 2) /* nb_objects is an i32 */
		return -1;
	if (encode(spans, n, &deps, &deps_len, &objs, &objs_len, &out->begin_ns, &out->end_ns))
		goto out;
	if (sp_transit_lz4(deps, deps_len, &out->deps_lz4, &out->deps_len) ||
	    sp_transit_lz4(objs, objs_len, &out->objs_lz4, &out->objs_len))
		goto out;
	out->nb_objects = (int32_t)(2 * n);
	rc = 0;
out:
	free(deps);
	free(objs);
	if (rc)
		sp_mm_payload_free(out);
	return rc;
}

void sp_mm_payload_free(struct sp_mm_payload *p)
{
	free(p->deps_lz4);
	free(p->objs_lz4);
	p->deps_lz4 = p->objs_lz4 = NULL;
}
