/* The facts about a span that exporters show as attributes beside its
 * ids and times: one list, so OTLP and the Perfetto args agree. */
#ifndef SPANPROBE_SPAN_ATTRS_H
#define SPANPROBE_SPAN_ATTRS_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span.h"

#define SP_SPAN_ATTRS_MAX 8

enum sp_attr_type { SP_ATTR_INT, SP_ATTR_BOOL };

struct sp_span_attr {
	const char *key;
	enum sp_attr_type type;
	int64_t value;
};

/* thread.id always; spanprobe.poll_count, spanprobe.uncertainty_lo_ns,
 * spanprobe.uncertainty_hi_ns, spanprobe.abnormal and
 * spanprobe.incomplete only when present. Returns how many. */
size_t sp_span_attrs(const struct sp_span *s, struct sp_span_attr out[SP_SPAN_ATTRS_MAX]);

#endif
