/*
 * What each pattern of a symbol list will show of Rust async code, told
 * before anything is attached (issue 3): an out-of-line poll gives spans
 * of its own; an async fn inlined into a task root can only be seen by
 * reading the root's future; an inlined one that is not held across an
 * await (or never suspends) leaves no trace at all; and without DWARF
 * types nothing nested can be told.
 */
#ifndef SPANPROBE_ASYNC_VISIBILITY_H
#define SPANPROBE_ASYNC_VISIBILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "dwarf/async_dwarf.h"
#include "symbols/proc_maps.h"
#include "symbols/symbols.h"

/* Best first: a pattern takes the best class among its items. */
enum sp_avis_class {
	SP_AVIS_NONE = 0,    /* names no async fn/block: resolution says all */
	SP_AVIS_OUT_OF_LINE, /* an out-of-line poll: spans of its own */
	SP_AVIS_INLINED,     /* a coroutine node in an out-of-line poll's
	                      * future: seen through that root */
	SP_AVIS_INVISIBLE,   /* named by the DWARF, but inlined and not held
	                      * by value across an await of any root */
	SP_AVIS_UNKNOWN,     /* no DWARF types: nested futures cannot be told */
};

struct sp_avis_item {
	enum sp_avis_class cls;
	char *object;        /* as the process sees it */
	char *name;          /* the async fn / block; NULL for UNKNOWN */
	char *root;          /* INLINED, and INVISIBLE nodes: the root poll */
	char *path;          /* INLINED: member path in the root's future */
	enum sp_async_reg self_reg; /* OUT_OF_LINE, INLINED: the (root) poll's */
	uint32_t state_off;  /* OUT_OF_LINE: in self; INLINED: in the root */
	uint8_t state_size;
	uint32_t n_suspend;  /* await points; INVISIBLE: 0 = never suspends */
	bool from_dwarf;     /* OUT_OF_LINE: layout from DWARF, else code */
	uint8_t hops;        /* INLINED: Box pointers followed from the root
			      * (state_off is then in the last pointee) */
};

/* Per pattern (parallel to the pattern list): its items, all objects. */
struct sp_avis_pattern {
	enum sp_avis_class cls;
	struct sp_avis_item *items;
	size_t n;
};

struct sp_avis_report {
	struct sp_avis_pattern *v;
	size_t n;
};

/* Adds what the patterns name in one analysed object. matched[i]: the
 * pattern matched a function of this object that is not a poll (a sync
 * function, reported by resolution). Without DWARF types, a pattern that
 * matches neither a poll nor such a function is UNKNOWN. rep must have
 * pats->n entries (sp_avis_init). 0, or -1 when out of memory. */
int sp_avis_classify(const struct sp_pattern_list *pats, const bool *matched,
		     const char *object, const struct sp_async_info *info,
		     struct sp_avis_report *rep);

int sp_avis_init(struct sp_avis_report *rep, size_t n_patterns);

/* Analyses every Rust object of objs (those without async code, DWARF
 * or closures add nothing) and classifies pats against it; fs is the
 * resolution of pats against objs. An object that cannot be analysed
 * is a warning on stderr. 0, or -1 with err set (out of memory). */
int sp_avis_build(const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		  const struct sp_mapped_objects *objs, struct sp_avis_report *rep,
		  char *err, size_t errlen);

/* The same for what sp_resolve / sp_resolve_program resolved in: the
 * objects of pid, or binary alone, or binary and its libraries. */
int sp_avis_for_target(pid_t pid, const char *binary, bool with_libs,
		       const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		       struct sp_avis_report *rep, char *err, size_t errlen);

void sp_avis_free(struct sp_avis_report *rep);

/* "out_of_line", "inlined", "invisible", "unknown"; NULL for NONE. */
const char *sp_avis_class_id(enum sp_avis_class c);

/* One line (no newline) describing an item: "out-of-line poll (self in
 * rdi, state at self+0xb0/1)", "inlined, seen through root R (member
 * __awaitee, state at root+0xd1/1)", "invisible: ...", "unknown: ...". */
void sp_avis_item_text(const struct sp_avis_item *it, char *buf, size_t len);

/* One line for the pattern: its best item, named; "" for NONE. What
 * `symbols` and `attach`/`run` append to "matched nothing". */
void sp_avis_pattern_text(const struct sp_avis_pattern *p, char *buf, size_t len);

/* The reason given for UNKNOWN (issue 3: say so clearly), and which
 * build setting gives the types (issue 12: rustc 1.95's "limited" emits
 * no type at all, the same as "line-tables-only"). */
#define SP_AVIS_NEEDS_TYPES \
	"nested decoding needs debug info (DWARF types): debug = true (\"full\"), in " \
	"the binary or in a debug file spanprobe finds (README \"Debug info\"); " \
	"\"limited\" and \"line-tables-only\" have none"
#define SP_AVIS_TYPES_ADVICE \
	"build with debug = true (\"full\"; \"limited\" and \"line-tables-only\" " \
	"have no types), kept in the binary or apart from it (objcopy " \
	"--only-keep-debug + --add-gnu-debuglink, a build-id directory, debuginfod, " \
	"split-debuginfo; README \"Debug info\")"

#endif
