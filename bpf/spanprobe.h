/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Layouts shared by the BPF programs and the userspace loader. */
#ifndef SPANPROBE_SHARED_H
#define SPANPROBE_SHARED_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Frames tracked per thread inside a query; deeper calls are not traced
 * and make the query incomplete. The kernel itself stops hijacking
 * returns at 64 nested uretprobes. */
#define SP_MAX_DEPTH 32

/* Per-symbol duration histogram: 4 buckets per power of two of ns. */
#define SP_HIST_SUB 4
#define SP_HIST_BUCKETS (42 * SP_HIST_SUB)

enum sp_rec_flags {
	SP_REC_ROOT = 1u << 0,
	SP_REC_ABNORMAL = 1u << 1,   /* left without its exit probe, or a
				      * future that panicked */
	SP_REC_INCOMPLETE = 1u << 2, /* the query lost records or depth */
	SP_REC_PARTIAL = 1u << 3,    /* a future already running at attach:
				      * begin_ns is its first poll seen */
};

/* Frame kinds, in sp_frame.flags beside the record flags. */
#define SP_FRAME_POLL (1u << 8) /* one poll of an async fn's future */
#define SP_FRAME_OBSERVED (1u << 10) /* a carrier read at other hits too
				     * (for now hand-written futures' polls
				     * only: see docs/hyper-async.md) */
#define SP_FRAME_CARRIER (1u << 9) /* a poll whose nested futures are read
				   * (a held carrier): hits above it on
				   * its thread read them too */

enum sp_sym_flags {
	SP_SYM_ROOT = 1u << 0,
	SP_SYM_ASYNC = 1u << 1,    /* an out-of-line poll of a Rust future */
	SP_SYM_SELF_RSI = 1u << 2, /* its `self` is in RSI (Poll<T> > 16 bytes
				    * comes back through a hidden pointer) */
	SP_SYM_NESTED = 1u << 3,   /* a carrier: futures inlined into it are
				    * read at each poll's entry and exit
				    * (its read list, bpf/nested_reads.h) */
	SP_SYM_HELD = 1u << 4,     /* a query it roots is rebuilt by userspace
				    * (nested spans, spawned-task links): its
				    * keys carry SP_KEY_HELD */
};

/* Marks the keys of queries rooted in a SP_SYM_HELD future; key bits:
 * CPU << 48 | this bit | per-CPU count. */
#define SP_KEY_HELD (1ull << 47)

/* What the ring buffer carries: every record starts with its kind. */
enum sp_rec_kind {
	SP_RK_SPAN = 1,   /* struct sp_span_rec */
	SP_RK_NESTED = 2, /* struct sp_nested_rec */
};

/* What BPF knows of a probed function. A future's coroutine state (0 not
 * started, 1 returned, 2 panicked, 3+ suspended) is at self + state_off. */
struct sp_sym_info {
	__u32 flags;     /* enum sp_sym_flags */
	__u32 state_off;
	__u32 state_size;
	__u32 pad;
};

/* Each probe's attach cookie: the function's index in the loader's probe
 * table, and its flags, so that the hot path needs no map lookup to know
 * whether the function is a root (sym_info is read for futures only). */
static __always_inline __u64 sp_probe_cookie(__u32 sym_id, __u32 flags)
{
	return (__u64)flags << 32 | sym_id;
}


/*
 * One span that left the kernel: a root, or a span of at least min_span
 * inside a query. Keys are unique per session (the CPU in the top 16 bits,
 * a per-CPU count below). A native call's records arrive children first,
 * the root last; so do a future's, whose span runs from its first poll to
 * the poll that returns, on whatever threads polled it.
 */
struct sp_span_rec {
	__u32 kind;            /* SP_RK_SPAN */
	__u32 tgid;
	__u64 key;
	__u64 parent_key;      /* 0 for a root */
	__u64 query_key;       /* the root's key; == key for a root */
	__u64 begin_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 end_ns;
	__u64 obj;             /* futures: self (links a Box<dyn Future> or a
				* spawned task to its holder); 0 for calls */
	__u32 tid;             /* the thread of the span's first event */
	__u32 sym_id;          /* attach cookie: index into the probe table */
	__u32 polls;           /* futures: polls seen; 0 for native calls */
	__u16 depth;           /* 0 for a root */
	__u16 flags;           /* enum sp_rec_flags */
};

/* At most this many values are read per carrier poll (state bytes of the
 * inlined futures, join! tags, pointers, argument fingerprints). */
#define SP_NESTED_MAX 64
#define SP_NESTED_MASK (SP_NESTED_MAX - 1)

/* One read: size (1..8) bytes, little-endian, at off from a base: the
 * carrier's self (base == 0), or the pointer that read base - 1 of the
 * same list found (an earlier read): futures behind a Box, several hops
 * deep. A null base reads 0. */
struct sp_read {
	__u32 off;
	__u16 size;
	__u16 base;
};

/* A carrier's read list, compiled by userspace
 * (user/resolve/async_nested.c). */
struct sp_read_list {
	__u32 n;
	__u32 pad;
	struct sp_read r[SP_NESTED_MAX];
};

/*
 * A carrier future's read list, sent when any value differs from the
 * previous read of the same future. A read happens at each entry and exit
 * of the carrier's poll, and while that poll is open, at every other
 * probe hit on its thread (entries and exits of probed calls and polls
 * under it). The change happened between entry_ns and exit_ns: the
 * previous read of this future (sent or not) and this one. The first read
 * of an instance has exit_ns == 0 when made at a poll's entry.
 */
struct sp_nested_rec {
	__u32 kind;      /* SP_RK_NESTED */
	__u32 sym_id;    /* the carrier's poll function */
	__u64 fut_key;   /* the carrier future's span key */
	__u64 entry_ns;  /* the poll's entry */
	__u64 exit_ns;   /* its exit; 0 for a read at entry */
	__u32 n;         /* values in v */
	__u32 tid;
	__u64 obj;       /* the carrier future's self */
	__u64 poll_ns;   /* entry of the carrier's poll this read is in: a
			  * future inlined into it that is first seen here
			  * began after that (its parent's state shows it
			  * only once the parent suspends on it) */
	__u32 mid;       /* 1: made inside the poll (another probe hit, a
			  * context switch), where a parent's state may lag
			  * behind its code; 0: at the poll's entry or exit */
	__u32 pad;
	__u64 v[SP_NESTED_MAX];
};

/* The previous values read from a carrier future. */
struct sp_nested_last {
	__u64 fut_key;   /* the instance they belong to */
	__u64 read_ns;   /* when it was read last, sent or not */
	__u64 sent_mid;  /* the last record sent was a mid read: the next
			  * read at a poll's entry or exit is sent even if
			  * nothing changed (it confirms what the mid read
			  * showed: async_nested.c, tentative instances) */
	__u64 v[SP_NESTED_MAX];
};

/* An open call, or a poll in progress. sp is the address of its
 * return-address slot: the same at entry and at every kind of exit. */
struct sp_frame {
	__u64 sp;
	__u64 begin_ns;  /* entry of this call or of this poll */
	__u64 key;       /* the span: the call's, or the polled future's */
	__u64 query_key;
	__u64 obj;       /* polls: the future (self) */
	__u32 sym_id;
	__u16 depth;
	__u16 flags;     /* SP_FRAME_POLL, enum sp_rec_flags */
};

/* The open calls and polls of one thread inside a query. */
struct sp_thread {
	__u32 n;
	__u32 flags; /* SP_REC_INCOMPLETE once the query lost something */
	struct sp_frame f[SP_MAX_DEPTH];
};

/* A future being traced, keyed by (poll function, self): the address
 * alone is shared by loop iterations, reused slots and a child at offset
 * 0 of its parent. */
struct sp_future_key {
	__u64 obj;
	__u32 sym_id;
	__u32 pad;
};

struct sp_future {
	__u64 key;
	__u64 parent_key;
	__u64 query_key;
	__u64 begin_ns;
	__u32 tid;       /* the thread of its first poll */
	__u32 polls;
	__u16 depth;
	__u16 flags;     /* SP_REC_PARTIAL, SP_REC_INCOMPLETE */
	__u32 pad;
};

/* Per-symbol figures, summed over CPUs by userspace. */
struct sp_sym_stats {
	__u64 calls;          /* completed calls inside queries */
	__u64 total_ns;
	__u64 max_ns;
	__u64 under_min_span; /* calls that stayed in the kernel */
	__u64 outside_calls;  /* entries outside any query */
	__u64 abnormal;
	__u64 hist[SP_HIST_BUCKETS];
};

#define SP_DEPTH_MASK (SP_MAX_DEPTH - 1)

/* floor(log2(v)), 0 for v == 0. Shifts rather than __builtin_clzll:
 * clang 14's BPF backend cannot lower the builtin. */
static __always_inline __u32 sp_log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1)
		r += 1;
	return r;
}

/* Histogram bucket of a duration: SP_HIST_SUB (4) log-linear buckets per
 * power of two, i.e. 4 * floor(log2 ns) + the two bits after the leading
 * one; ns < 4 have a bucket each (0, 1, 6, 7). Shared by BPF and by the
 * userspace percentile code (user/output/sym_stats.c), which inverts it.
 * The last bucket also collects everything longer (2^42 ns, ~73 min, and
 * more). */
static __always_inline __u32 sp_hist_bucket(__u64 ns)
{
	__u32 lg = sp_log2_u64(ns), sub;

	sub = lg >= 2 ? (ns >> (lg - 2)) & 3 : (__u32)ns & 3;
	lg = lg * SP_HIST_SUB + sub;
	return lg < SP_HIST_BUCKETS ? lg : SP_HIST_BUCKETS - 1;
}

/* The record of frame idx of a thread's stack, for BPF and for userspace's
 * flush of calls still open at exit. idx is masked so the verifier can
 * bound the array access. */
static __always_inline void sp_fill_rec(struct sp_span_rec *r, const struct sp_thread *st,
					__u32 idx, __u64 end_ns, __u32 flags)
{
	const struct sp_frame *f = &st->f[idx & SP_DEPTH_MASK];

	r->kind = SP_RK_SPAN;
	r->key = f->key;
	r->parent_key = idx ? st->f[(idx - 1) & SP_DEPTH_MASK].key : 0;
	r->query_key = f->query_key;
	r->begin_ns = f->begin_ns;
	r->end_ns = end_ns;
	r->obj = f->obj;
	r->sym_id = f->sym_id;
	r->polls = 0;
	r->depth = f->depth;
	r->flags = (__u16)((f->flags | flags) & 0xff);
	if (f->key == f->query_key)
		r->flags |= SP_REC_ROOT | st->flags;
}

/* The record of a future whose span ends (the caller sets obj). */
static __always_inline void sp_fill_future_rec(struct sp_span_rec *r, const struct sp_future *fu,
					       __u32 sym_id, __u64 end_ns, __u32 flags)
{
	r->kind = SP_RK_SPAN;
	r->key = fu->key;
	r->parent_key = fu->parent_key;
	r->query_key = fu->query_key;
	r->begin_ns = fu->begin_ns;
	r->end_ns = end_ns;
	r->tid = fu->tid;
	r->sym_id = sym_id;
	r->polls = fu->polls;
	r->depth = fu->depth;
	r->flags = (__u16)((fu->flags | flags) & 0xff);
	if (fu->key == fu->query_key)
		r->flags |= SP_REC_ROOT;
}

#endif
