#include <stdbool.h>
#include "sinks/span_attrs.h"

static void add(struct sp_span_attr *out, size_t *n, const char *key,
		enum sp_attr_type type, int64_t value)
{
	out[(*n)++] = (struct sp_span_attr){ key, type, value };
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
	return n;
}
