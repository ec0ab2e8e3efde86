/* The span record that flows from assembly through filtering to the sinks. */
#ifndef SPANPROBE_SPAN_H
#define SPANPROBE_SPAN_H

#include <stdint.h>

enum sp_span_flags {
	SP_SPAN_ROOT = 1u << 0,     /* span of a `root` function: a query */
	SP_SPAN_ABNORMAL = 1u << 1, /* left without its exit probe (longjmp,
				     * exception, unwinding); end_ns is the
				     * time the loss was noticed, an upper bound */
	SP_SPAN_INCOMPLETE = 1u << 2, /* query lost events (ring buffer full) */
	SP_SPAN_PARTIAL = 1u << 3,  /* a future already running at attach:
				     * begin_ns is the first poll seen */
	SP_SPAN_ERROR = 1u << 4,    /* failed: its return value met the entry's
				     * error condition, or a USDT error probe
				     * fired inside it */
	SP_SPAN_EVENT = 1u << 5,    /* an instant event: begin_ns == end_ns */
	SP_SPAN_MERGED = 1u << 6,   /* a nested async span that may stand for
				     * several back-to-back instances of its
				     * future, which nothing read told apart:
				     * begin of the first, end of the last */
};

/* Values a span captured (opt-in per symbol-list entry): at most
 * SP_SPAN_CAPS_MAX, strings at most SP_SPAN_CAP_STR bytes. */
#define SP_SPAN_CAPS_MAX 4
#define SP_SPAN_CAP_STR 127

enum sp_span_cap_type { SP_SPAN_CAP_I64 = 0, SP_SPAN_CAP_U64 = 1, SP_SPAN_CAP_STR_T = 2 };

enum sp_span_cap_status {
	SP_SPAN_CAP_MISSING = 0,    /* never read: the call left without its exit */
	SP_SPAN_CAP_OK = 1,
	SP_SPAN_CAP_UNREADABLE = 2, /* the memory or register could not be read */
	SP_SPAN_CAP_TRUNCATED = 3,  /* a string cut at SP_SPAN_CAP_STR bytes */
};

struct sp_span_cap {
	const char *name;
	uint8_t type;   /* enum sp_span_cap_type */
	uint8_t status; /* enum sp_span_cap_status */
	uint64_t num;   /* integers (i64 as two's complement) */
	char str[SP_SPAN_CAP_STR + 1]; /* strings, NUL-terminated, valid UTF-8 */
};

struct sp_span_caps {
	uint32_t n;
	struct sp_span_cap v[SP_SPAN_CAPS_MAX];
};

struct sp_span {
	uint64_t query_id;       /* span_id of the query's root */
	uint64_t span_id;        /* unique per traced process, never 0 */
	uint64_t parent_span_id; /* 0 for a root */
	uint64_t begin_ns;       /* monotonic while assembling, wall-clock
				  * Unix ns once handed to sinks */
	uint64_t end_ns;
	const char *name;        /* owned by the symbol table or the block */
	uint32_t pid;
	uint32_t tid;
	uint32_t depth;          /* 0 for a root */
	uint32_t flags;          /* enum sp_span_flags */
	/* Facts only async (Rust) spans have; 0 means absent. Durations, not
	 * times, so the wall-clock conversion leaves them alone. */
	uint32_t poll_count;        /* times the future was polled */
	uint64_t uncertainty_lo_ns; /* width of the window the true begin */
	uint64_t uncertainty_hi_ns; /* and the true end lie in */
	/* Captured values, NULL when none. Heap-allocated by the assembler;
	 * the query filter owns them from the moment a span is fed to it
	 * (and frees them after its callback); a block reader's belong to
	 * the block. Consumers never free them. */
	struct sp_span_caps *caps;
};

static inline uint64_t sp_span_duration(const struct sp_span *s)
{
	return s->end_ns >= s->begin_ns ? s->end_ns - s->begin_ns : 0;
}

#endif
