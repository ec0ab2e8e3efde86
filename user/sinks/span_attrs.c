#include <stdbool.h>
#include "sinks/span_attrs.h"

static void add(struct sp_span_attr *out, size_t *n, const char *key,
		enum sp_attr_type type, int64_t value)
{
	out[(*n)++] = (struct sp_span_attr){ key, type, value, NULL };
}

static void add_str(struct sp_span_attr *out, size_t *n, const char *key, const char *s)
{
	out[(*n)++] = (struct sp_span_attr){ key, SP_ATTR_STRING, 0, s };
}

/* Captured values: the user chose their names, and nothing is invented
 * for one that was not read. */
static void add_caps(const struct sp_span_caps *c, struct sp_span_attr *out, size_t *n)
{
	bool truncated = false;

	for (uint32_t i = 0; i < c->n && i < SP_SPAN_CAPS_MAX; i++) {
		const struct sp_span_cap *v = &c->v[i];

		if (v->status == SP_SPAN_CAP_MISSING)
			add_str(out, n, v->name, "<not seen>");
		else if (v->status == SP_SPAN_CAP_UNREADABLE)
			add_str(out, n, v->name, "<unreadable>");
		else if (v->type == SP_SPAN_CAP_STR_T)
			add_str(out, n, v->name, v->str);
		else
			add(out, n, v->name, v->type == SP_SPAN_CAP_I64 ? SP_ATTR_INT : SP_ATTR_UINT,
			    (int64_t)v->num);
		truncated |= v->status == SP_SPAN_CAP_TRUNCATED;
	}
	if (truncated)
		add(out, n, "spanprobe.truncated", SP_ATTR_BOOL, true);
}

size_t sp_span_attrs(const struct sp_span *s, struct sp_span_attr out[SP_SPAN_ATTRS_MAX])
{
	size_t n = 0;

	add(out, &n, "thread.id", SP_ATTR_INT, s->tid);
	/* absent is not zero: a native span has no polls to count */
	if (s->poll_count)
		add(out, &n, "spanprobe.poll_count", SP_ATTR_INT, s->poll_count);
	if (s->uncertainty_lo_ns || s->uncertainty_hi_ns) {
		add(out, &n, "spanprobe.uncertainty_lo_ns", SP_ATTR_INT, (int64_t)s->uncertainty_lo_ns);
		add(out, &n, "spanprobe.uncertainty_hi_ns", SP_ATTR_INT, (int64_t)s->uncertainty_hi_ns);
	}
	if (s->flags & SP_SPAN_ABNORMAL)
		add(out, &n, "spanprobe.abnormal", SP_ATTR_BOOL, true);
	if (s->flags & SP_SPAN_INCOMPLETE)
		add(out, &n, "spanprobe.incomplete", SP_ATTR_BOOL, true);
	if (s->flags & SP_SPAN_ERROR)
		add(out, &n, "spanprobe.error", SP_ATTR_BOOL, true);
	if (s->flags & SP_SPAN_MERGED)
		add(out, &n, "spanprobe.merged", SP_ATTR_BOOL, true);
	if (s->caps)
		add_caps(s->caps, out, &n);
	return n;
}
