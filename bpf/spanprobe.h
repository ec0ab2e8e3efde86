/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Layouts shared by the BPF programs and the userspace loader. */
#ifndef SPANPROBE_SHARED_H
#define SPANPROBE_SHARED_H

/* Frames tracked per thread inside a query; deeper calls are not traced
 * and make the query incomplete. The kernel itself stops hijacking
 * returns at 64 nested uretprobes. */
#define SP_MAX_DEPTH 32

/* Per-symbol duration histogram: 4 buckets per power of two of ns. */
#define SP_HIST_SUB 4
#define SP_HIST_BUCKETS (42 * SP_HIST_SUB)

enum sp_rec_flags {
	SP_REC_ROOT = 1u << 0,
	SP_REC_ABNORMAL = 1u << 1,   /* left without its exit probe */
	SP_REC_INCOMPLETE = 1u << 2, /* the query lost records or depth */
};

enum sp_sym_flags {
	SP_SYM_ROOT = 1u << 0,
};

/*
 * One span that left the kernel: a root, or a call of at least min_span
 * inside a query. Spans are identified by (tid, begin_ns); a query by
 * (tid, root_begin_ns). Records of a query arrive children first and the
 * root last.
 */
struct sp_span_rec {
	__u64 begin_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 end_ns;
	__u64 parent_begin_ns; /* 0 for a root */
	__u64 root_begin_ns;
	__u32 tgid;
	__u32 tid;
	__u32 sym_id;          /* attach cookie: index into the probe table */
	__u16 depth;           /* 0 for a root */
	__u16 flags;           /* enum sp_rec_flags */
};

/* An open call. sp is the address of its return-address slot: the same at
 * entry and at every kind of exit probe. */
struct sp_frame {
	__u64 sp;
	__u64 begin_ns;
	__u32 sym_id;
	__u32 flags;
};

/* The open calls of one thread inside a query; f[0] is the query root. */
struct sp_thread {
	__u32 n;
	__u32 flags; /* SP_REC_INCOMPLETE once the query lost something */
	struct sp_frame f[SP_MAX_DEPTH];
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

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define SP_DEPTH_MASK (SP_MAX_DEPTH - 1)

/* The record of frame idx of a thread's stack, for BPF and for userspace's
 * flush of calls still open at exit. */
/* idx is masked so the verifier can bound the array access. */
static __always_inline void sp_fill_rec(struct sp_span_rec *r, const struct sp_thread *st,
					__u32 idx, __u64 end_ns, __u32 flags)
{
	const struct sp_frame *f = &st->f[idx & SP_DEPTH_MASK];

	r->begin_ns = f->begin_ns;
	r->end_ns = end_ns;
	r->parent_begin_ns = idx ? st->f[(idx - 1) & SP_DEPTH_MASK].begin_ns : 0;
	r->root_begin_ns = st->f[0].begin_ns;
	r->sym_id = f->sym_id;
	r->depth = (__u16)idx;
	r->flags = (__u16)(f->flags | flags);
	if (!idx)
		r->flags |= SP_REC_ROOT | st->flags;
}

#endif
