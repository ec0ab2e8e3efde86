/* The facts about a span that exporters show as attributes beside its
 * ids and times: one list, so OTLP and the Perfetto args agree. */
#ifndef SPANPROBE_SPAN_ATTRS_H
#define SPANPROBE_SPAN_ATTRS_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span.h"

#define SP_SPAN_ATTRS_MAX (9 + SP_SPAN_CAPS_MAX)

enum sp_attr_type { SP_ATTR_INT, SP_ATTR_BOOL, SP_ATTR_STRING, SP_ATTR_UINT };

struct sp_span_attr {
	const char *key;
	enum sp_attr_type type;
	int64_t value;   /* INT, BOOL; UINT as its bits */
	const char *str; /* STRING */
};

/* thread.id always; spanprobe.poll_count, spanprobe.uncertainty_lo_ns,
 * spanprobe.uncertainty_hi_ns, spanprobe.abnormal, spanprobe.incomplete
 * and spanprobe.error only when present; then the captured values under
 * their own names. A value that could not be read is the string
 * "<unreadable>", one never read (its exit was not seen) "<not seen>";
 * spanprobe.truncated is true when a captured string was cut. Returns
 * how many; strings point into s. */
size_t sp_span_attrs(const struct sp_span *s, struct sp_span_attr out[SP_SPAN_ATTRS_MAX]);

#endif
