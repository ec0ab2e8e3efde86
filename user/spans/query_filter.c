#include <stdlib.h>
#include <string.h>
#include "base/grow.h"
#include "base/idmap.h"
#include "spans/query_filter.h"

/* The spans of one open query gathered so far. */
struct query_buf {
	uint64_t query_id;
	struct sp_span *kept;
	size_t n, cap;
	/* dropped span id -> its parent, only for dropped spans with kept
	 * descendants, so re-parenting can climb past them */
	struct sp_idmap skip;
	/* open span ids that have a kept descendant: children close first,
	 * so this is known by the time the parent closes */
	struct sp_idmap has_kept;
};

struct sp_filter {
	uint64_t min_span, min_query;
	sp_query_fn fn;
	void *arg;
	struct sp_idmap open; /* query_id -> struct query_buf * */
	struct sp_filter_stats st;
};

struct sp_filter *sp_filter_new(uint64_t min_span_ns, uint64_t min_query_ns,
				sp_query_fn fn, void *arg)
{
	struct sp_filter *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->min_span = min_span_ns;
	f->min_query = min_query_ns;
	f->fn = fn;
	f->arg = arg;
	return f;
}

static struct query_buf *query_get(struct sp_filter *f, uint64_t qid)
{
	uint64_t p;
	struct query_buf *q;

	if (sp_idmap_get(&f->open, qid, &p))
		return (struct query_buf *)(uintptr_t)p;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->query_id = qid;
	if (sp_idmap_put(&f->open, qid, (uintptr_t)q)) {
		free(q);
		return NULL;
	}
	return q;
}

static void query_free(struct query_buf *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->kept[i].caps);
	sp_idmap_free(&q->skip);
	sp_idmap_free(&q->has_kept);
	free(q->kept);
	free(q);
}

static int keep(struct query_buf *q, const struct sp_span *s)
{
	if (sp_grow((void **)&q->kept, &q->cap, q->n, sizeof(*q->kept)))
		return -1;
	q->kept[q->n++] = *s;
	return 0;
}

static uint64_t kept_ancestor(const struct query_buf *q, uint64_t parent)
{
	uint64_t up;

	while (parent && sp_idmap_get(&q->skip, parent, &up))
		parent = up;
	return parent;
}

static int by_begin(const void *x, const void *y)
{
	const struct sp_span *a = x, *b = y;

	if ((a->flags & SP_SPAN_ROOT) != (b->flags & SP_SPAN_ROOT))
		return (a->flags & SP_SPAN_ROOT) ? -1 : 1;
	if (a->begin_ns != b->begin_ns)
		return a->begin_ns < b->begin_ns ? -1 : 1;
	return a->span_id < b->span_id ? -1 : a->span_id > b->span_id;
}

/* Parents begin before their children, so after sorting by begin time
 * each parent's depth is known when its children are reached. */
static void resolve_tree(struct query_buf *q)
{
	struct sp_idmap depth = { 0 };

	qsort(q->kept, q->n, sizeof(*q->kept), by_begin);
	for (size_t i = 0; i < q->n; i++) {
		struct sp_span *s = &q->kept[i];
		uint64_t d = 0;

		if (!(s->flags & SP_SPAN_ROOT)) {
			s->parent_span_id = kept_ancestor(q, s->parent_span_id);
			if (!sp_idmap_get(&depth, s->parent_span_id, &d))
				s->parent_span_id = q->query_id;
			s->depth = (uint32_t)d + 1;
		} else {
			s->depth = 0;
		}
		sp_idmap_put(&depth, s->span_id, s->depth);
	}
	sp_idmap_free(&depth);
}

static void close_query(struct sp_filter *f, struct query_buf *q,
			const struct sp_span *root)
{
	sp_idmap_del(&f->open, q->query_id);
	f->st.queries_seen++;
	if (sp_span_duration(root) >= f->min_query && keep(q, root) == 0) {
		resolve_tree(q);
		f->st.queries_kept++;
		f->st.spans_kept += q->n;
		f->fn(f->arg, q->kept, q->n);
	} else {
		f->st.spans_dropped += q->n + 1;
		free(root->caps);
	}
	query_free(q);
}

void sp_filter_span(void *filter, const struct sp_span *s)
{
	struct sp_filter *f = filter;
	struct query_buf *q;
	uint64_t parent = s->parent_span_id;

	if (!s->query_id) {
		f->st.spans_dropped++;
		free(s->caps);
		return;
	}
	q = query_get(f, s->query_id);
	if (!q) {
		free(s->caps);
		return;
	}
	if (s->flags & SP_SPAN_ROOT) {
		close_query(f, q, s);
		return;
	}
	/* an event has no duration to compare: it is kept with its query */
	if ((sp_span_duration(s) >= f->min_span || (s->flags & SP_SPAN_EVENT)) &&
	    keep(q, s) == 0) {
		sp_idmap_put(&q->has_kept, parent, 1);
	} else {
		f->st.spans_dropped++;
		free(s->caps);
		if (sp_idmap_del(&q->has_kept, s->span_id)) {
			sp_idmap_put(&q->skip, s->span_id, parent);
			sp_idmap_put(&q->has_kept, parent, 1);
		}
	}
}

void sp_filter_discard(void *filter, uint64_t query_id)
{
	struct sp_filter *f = filter;
	uint64_t p;

	if (!sp_idmap_get(&f->open, query_id, &p))
		return;
	sp_idmap_del(&f->open, query_id);
	query_free((struct query_buf *)(uintptr_t)p);
}

const struct sp_filter_stats *sp_filter_stats(const struct sp_filter *f)
{
	return &f->st;
}

void sp_filter_free(struct sp_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->open.cap; i++)
		if (f->open.keys[i])
			query_free((struct query_buf *)(uintptr_t)f->open.vals[i]);
	sp_idmap_free(&f->open);
	free(f);
}
