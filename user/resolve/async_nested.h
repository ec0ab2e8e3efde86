/*
 * Spans of the async fns a release build inlines into a carrier poll (a
 * task root), from the values BPF reads in the carrier future at each of
 * its polls (bpf/nested_reads.h).
 *
 * A plan, compiled once per carrier from the DWARF analysis, says what to
 * read: the carrier's own state, then for every node that matters (the
 * inlined futures that a pattern names, the JoinHandles and Box<dyn
 * Future> pointers, and every ancestor their validity depends on) its
 * state, tag or pointer, then a fingerprint of each named future's
 * arguments (its Unresumed fields), which tells one instance from the next
 * when a loop reuses the slot.
 *
 * A run replays one carrier future's reads in order. An instance of a
 * named node begins in the poll window where it is first seen live (valid
 * under its parent's guards, not Returned or Panicked) and ends in the
 * window where it is no longer live or its fingerprint changed. begin_ns
 * is the earliest and end_ns the latest time the true begin and end can
 * have, and the widths of the two windows are kept: the true span lies
 * within [begin, begin + unc_lo] .. [end - unc_hi, end]. A future that
 * completes inside one poll is never seen; one already live at the first
 * read (attach mid-flight) is PARTIAL and its begin is the first read.
 */
#ifndef SPANPROBE_ASYNC_NESTED_H
#define SPANPROBE_ASYNC_NESTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "dwarf/async_dwarf.h"
#include "spanprobe.h"
#include "symbols/symbols.h"

/* A nested async fn's string argument: this many 8-byte reads of its
 * text (through its pointer) when `args` asks for it. */
#define SP_NESTED_STR_READS 4
#define SP_NESTED_NO_READ UINT32_MAX

struct sp_nested_node {
	char *name;
	int parent;          /* index into plan nodes; -1: the carrier */
	enum sp_async_node_kind kind;
	struct sp_async_range *guard;
	size_t n_guard;
	bool guard_negate;
	uint32_t val;        /* read index of its state, tag or pointer */
	uint32_t arg0, n_args; /* read indices of its argument fingerprint */
	int role;            /* -1: no pattern names it; else enum sp_role */
	uint32_t name_sym;   /* the assembler's symbol for its spans (the
			      * session sets it) */
	uint32_t box;        /* 1 + the plan index of the SP_ANODE_BOX node
			      * whose pointee holds it; 0: the carrier's
			      * future */
	uint32_t base;       /* its object's offset there */
	uint32_t held0, n_held; /* read indices of the locals its parent
				 * holds across its await (part of the
				 * fingerprint) */
	bool weak_id;        /* nothing read tells one instance from the
			      * next (no argument, held local or pointer,
			      * or the read list had no room for them):
			      * back-to-back instances in one poll would
			      * be one span, so its spans are flagged
			      * SP_REC_MERGED */
	/* the first of those arguments, for `args` (want_args): integers
	 * read whole; the length of a slice, Vec, &str or String (len_read);
	 * the first SP_NESTED_STR_READS * 8 bytes of a &str's or String's
	 * text (str0: reads through its pointer). Reads the list had no
	 * room for are SP_NESTED_NO_READ: shown unreadable. */
	struct sp_nested_arg {
		char *name;
		bool is_int, is_signed;
		uint8_t size;
		uint8_t show;        /* SP_AFIELD_* */
		uint32_t off, ptr_off, len_off; /* the field, in its space */
		uint32_t len_read, str0;
	} argd[4];
	bool want_args;
};

struct sp_nested_plan {
	struct sp_nested_node *nodes; /* parents before children */
	size_t n;
	struct sp_read reads[SP_NESTED_MAX]; /* [0]: the carrier's state */
	uint32_t n_reads;
	bool truncated;      /* nodes or fingerprints left out: the read
			      * list is full */
	bool plain;          /* the carrier is a hand-written future: no
			      * state of its own (reads[0] reads nothing) */
};

/* The plan of poll p of info: NULL when nothing in it is worth reading
 * (no nested coroutine a pattern names, and no JoinHandle or only
 * want_handles == false). The patterns that name a node count it in
 * their matches; not a future that never suspends (info->known): it runs
 * to completion inside one poll and is never seen. */
struct sp_nested_plan *sp_nested_plan_new(const struct sp_async_info *info,
					  const struct sp_async_poll *p,
					  struct sp_pattern_list *pats,
					  bool want_handles);
void sp_nested_plan_free(struct sp_nested_plan *pl);
/* Nodes a pattern names: they get spans. */
size_t sp_nested_plan_named(const struct sp_nested_plan *pl);

/* A derived span; parent is an index into the run's spans, -1 for the
 * carrier. */
struct sp_nested_span {
	uint32_t node;
	uint64_t argv[4];    /* the node's first argument reads when it began */
	uint64_t lenv[4];    /* their lengths then (argd len_read) */
	uint64_t strv[4][SP_NESTED_STR_READS]; /* their text's first bytes */
	int parent;
	uint64_t begin_ns, end_ns;
	uint64_t unc_lo_ns, unc_hi_ns;
	uint32_t flags;      /* SP_REC_PARTIAL, SP_REC_ABNORMAL, SP_REC_MERGED */
	bool open;
	uint64_t addr;       /* the future's address (its `self`, would its
			      * poll run out of line); 0 if unknown */
	uint32_t tid;        /* the thread of the read that saw it begin */
	/* first seen by a read inside a poll (a probe hit or a context
	 * switch), where a parent's state may lag its code: real if the
	 * next read at a poll's entry or exit finds the node valid (its
	 * parent still at that await), else it was other bytes read as
	 * this node and is gone (never emitted) */
	bool tentative;
	bool gone;
};

/* A pointer held by the carrier (JoinHandle raw task, Box<dyn Future>
 * data) over [first_ns, last_ns]; owner is the span of its nearest named
 * ancestor (-1: the carrier). */
struct sp_nested_ptr {
	uint32_t node;
	enum sp_async_node_kind kind;
	uint64_t value;
	uint64_t first_ns, last_ns;
	int owner;
	bool mid_owner;      /* owner found at a read inside a poll, where the
			      * instance that holds it may not be open yet:
			      * the next read at a poll's entry or exit
			      * settles it */
};

struct sp_nested_run {
	const struct sp_nested_plan *plan;
	struct sp_nested_span *spans;
	size_t n_spans, cap_spans;
	struct sp_nested_ptr *ptrs;
	size_t n_ptrs, cap_ptrs;
	int *cur;            /* per node: its open span, -1 */
	uint64_t *fp;        /* per node: the open span's fingerprint */
	int *last_ptr;       /* per node: its latest pointer observation */
	uint64_t *value;     /* scratch: per node, its value in this read */
	bool *active;        /* scratch: per node, valid in this read */
	uint64_t last_ns;    /* time of the latest read */
	size_t reads;
	bool ended;
	uint64_t obj;        /* the carrier future's self, 0 if unknown:
			      * the caller sets it (spans' addresses) */
	uint32_t tid;        /* the thread of the read being fed, 0 if
			      * unknown: the caller sets it */
	/* the entry of the carrier poll the read being fed was made in, 0
	 * if unknown (the caller sets it): a future first seen live in
	 * that read began after it and after it was last seen live */
	uint64_t poll_ns;
	bool mid;            /* the read being fed was made inside the poll
			      * (the caller sets it): parents' states may lag */
	uint64_t *live_ns;   /* per node: the last read that saw it live */
	bool *ran;           /* per node: its open instance was seen past
			      * Unresumed (a later 0 is a new future) */
	uint64_t *seen_ns;   /* per node: the last read that saw it live, */
	uint64_t *seen_fp;   /* and with which fingerprint: another
			      * instance began after that */
	size_t n_tentative;  /* tentative spans not yet decided */
};

int sp_nested_run_init(struct sp_nested_run *r, const struct sp_nested_plan *pl);
/* One read of the list: exit_ns == 0 for a read at poll entry. */
int sp_nested_run_feed(struct sp_nested_run *r, uint64_t entry_ns, uint64_t exit_ns,
		       const uint64_t *v, uint32_t n);
/* The carrier future is over (abnormal: it did not return): spans still
 * open end at end_ns. */
void sp_nested_run_end(struct sp_nested_run *r, uint64_t end_ns, bool abnormal);
void sp_nested_run_free(struct sp_nested_run *r);
/* Forgets the spans and pointers seen so far (none may be open): the
 * carrier goes on, its next spans start a new list. */
void sp_nested_run_reset(struct sp_nested_run *r);

/* The span (index, or -1 for the carrier) that held pointer value over a
 * time overlapping [begin_ns, end_ns], for a node of kind; -2 if none. */
int sp_nested_run_holder(const struct sp_nested_run *r, enum sp_async_node_kind kind,
			 uint64_t value, uint64_t begin_ns, uint64_t end_ns);

#endif
