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
	SP_REC_ERROR = 1u << 4,      /* failed: its return value met the
				      * entry's error condition, or a USDT
				      * error probe fired inside it */
	SP_REC_EVENT = 1u << 5,      /* an instant event (a single USDT probe):
				      * begin_ns == end_ns, kept whatever
				      * --min-span says */
	SP_REC_MERGED = 1u << 6,     /* a nested async span that may stand for
				      * several back-to-back instances of its
				      * future that nothing read told apart
				      * (user/resolve/async_nested.c) */
};

/* Frame kinds, in sp_frame.flags beside the record flags. */
#define SP_FRAME_POLL (1u << 8) /* one poll of an async fn's future */
/* ...of a future first seen by this poll (state Unresumed): it is in the
 * futures map only once a poll leaves it pending, so the many futures that
 * are ready at their first poll cost no map update and delete. */
#define SP_FRAME_FRESH (1u << 9)
#define SP_FRAME_CAPS (1u << 10) /* its captures are in thread_caps[idx] */
#define SP_FRAME_USDT (1u << 11) /* a USDT start/done pair */
/* Frame-only kinds (bits 8..15 never reach a record: records keep & 0xff). */
#define SP_FRAME_OBSERVED (1u << 12) /* a carrier read at other hits too
				     * (observation points) */
#define SP_FRAME_CARRIER (1u << 13) /* a poll whose nested futures are read
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
	SP_SYM_CAPS = 1u << 5,     /* captures values (cap_cfg): a slot in
				    * thread_caps is filled at entry */
	SP_SYM_RET = 1u << 6,      /* reads the return value at exit */
	SP_SYM_USDT_DONE = 1u << 7,  /* a USDT pair's done probe */
	SP_SYM_USDT_ERROR = 1u << 8, /* a USDT error probe */
	SP_SYM_USDT = 1u << 9,     /* a USDT pair's start probe */
	SP_SYM_TAILJMP = 1u << 10, /* an exit site that is a tail jump: RAX
				    * is not the return value there */
	SP_SYM_USDT_EVENT = 1u << 11, /* a single USDT probe: an instant event
				       * inside the innermost open span */
	SP_SYM_POLL_ERR = 1u << 14, /* a Rust poll whose Poll::Ready(Err(_))
				     * fails its future (poll_err_cfg) */
	/* Unwind guard hooks (sp_guard; the cookie's low half is an enum
	 * sp_guard_hook, not a sym_id): */
	SP_SYM_GUARD_RESTORE = 1u << 16, /* restores hijacked return slots */
	SP_SYM_GUARD_REARM = 1u << 17,   /* re-arms the slots that survive */
};

/* How a poll's return value says Poll::Ready(Err(_)): every test holds.
 * A test reads size bytes at off in the returned Poll<T> (in RAX:RDX,
 * or through the pointer RAX holds at return when via_ptr: the hidden
 * return pointer, SP_SYM_SELF_RSI) and holds when the value lies in one
 * of its ranges, or, with negate, in none of them (the untagged variant
 * of a niche-encoded enum). */
#define SP_PERR_TESTS 2
#define SP_PERR_RANGES 4
struct sp_discr_test {
	__u32 off;
	__u8 size;   /* 1, 2, 4 or 8 */
	__u8 negate;
	__u8 n;      /* ranges used */
	__u8 pad;
	__u64 lo[SP_PERR_RANGES], hi[SP_PERR_RANGES]; /* inclusive */
};

struct sp_poll_err_cfg {
	__u8 n;       /* tests used */
	__u8 via_ptr;
	__u8 pad[6];
	struct sp_discr_test t[SP_PERR_TESTS];
};

/* The unwinder functions the guard hooks (libgcc's, in libgcc_s or linked
 * statically). */
enum sp_guard_hook {
	SP_GUARD_THROW = 1,  /* _Unwind_RaiseException, _Unwind_Resume_or_Rethrow */
	SP_GUARD_FORCED = 2, /* _Unwind_ForcedUnwind */
	SP_GUARD_RESUME = 3, /* _Unwind_Resume: a cleanup pad is done */
	SP_GUARD_SETIP = 4,  /* _Unwind_SetIP: a landing pad is installed */
	SP_GUARD_LONGJMP = 5, /* libc's longjmp, siglongjmp, __longjmp_chk */
	SP_GUARD_BACKTRACE = 6,     /* _Unwind_Backtrace's entry: whole stacks */
	SP_GUARD_BACKTRACE_RET = 7, /* its ret sites: the slots it had go back */
};
#define SP_GUARD_STALE 16 /* stale instances remembered per thread */

/* Captures: at most SP_CAP_MAX values per span, strings cut at
 * SP_CAP_STR bytes (NUL included). */
#define SP_CAP_MAX 4
#define SP_CAP_STR 128

enum sp_cap_src { SP_CAP_ARG = 0, SP_CAP_RET = 1,
		  SP_CAP_FIELD = 2 /* a field of a Rust future's Unresumed
				    * variant (an async fn's argument), read at
				    * its first poll: field_cfg */ };

/* How a SP_CAP_FIELD capture reads its field at self + off: an integer of
 * size bytes; a string whose pointer and length are at ptr_off and
 * len_off in the field (&str, String), at most SP_CAP_STR - 1 bytes; or
 * only the length at len_off (slices, Vec). */
enum sp_field_kind { SP_FK_INT = 0, SP_FK_STR = 1, SP_FK_LEN = 2 };
struct sp_field_spec {
	__u32 off, ptr_off, len_off;
	__u8 kind;      /* enum sp_field_kind */
	__u8 size;      /* SP_FK_INT: 1, 2, 4 or 8 */
	__u8 is_signed;
	__u8 pad;
};
struct sp_field_cfg {
	struct sp_field_spec f[4]; /* SP_CAP_MAX, by capture index */
};
/* i32/u32: the low half of the register, extended (the upper half of a
 * register holding an int is undefined in the SysV ABI). */
enum sp_cap_type { SP_CAP_I64 = 0, SP_CAP_U64 = 1, SP_CAP_STR_T = 2, SP_CAP_I32 = 3,
		   SP_CAP_U32 = 4 };
enum sp_err_cond { SP_ERR_NONE = 0, SP_ERR_NEG = 1, SP_ERR_NULL = 2, SP_ERR_EQ = 3 };

/* What one probed function captures, by sym_id (map cap_cfg). */
struct sp_cap_spec {
	__u8 src;   /* enum sp_cap_src */
	__u8 type;  /* enum sp_cap_type */
	__u8 index; /* argN: a SysV register (0..5) or a USDT argument */
	__u8 pad;
};

struct sp_cap_cfg {
	__u8 n;
	__u8 err_cond; /* enum sp_err_cond, on the return value */
	__u8 err_i32;  /* the return value is a 32-bit int */
	__u8 pad[5];
	__s64 err_value;
	struct sp_cap_spec c[SP_CAP_MAX];
};

enum sp_cap_status {
	SP_CAPV_NONE = 0,       /* never read (the exit was not seen) */
	SP_CAPV_OK = 1,
	SP_CAPV_UNREADABLE = 2, /* the memory or register could not be read */
	SP_CAPV_TRUNCATED = 3,  /* a string longer than SP_CAP_STR - 1 */
};

struct sp_cap_vals {
	__u8 status[SP_CAP_MAX];
	__u16 len[SP_CAP_MAX];  /* string bytes, NUL excluded */
	__u64 num[SP_CAP_MAX];
	char str[SP_CAP_MAX][SP_CAP_STR];
};

/* One frame's captures; key tells whose they are. */
struct sp_cap_slot {
	__u64 key;
	struct sp_cap_vals v;
};

/* A thread's capture slots, one per stack index: only threads that enter
 * a capturing function have one. */
struct sp_thread_caps {
	struct sp_cap_slot s[32];
};

/* Sent just before the span record of a frame that captured values. */
struct sp_cap_rec {
	__u32 kind;   /* SP_RK_CAPS */
	__u32 tgid;   /* like every record but nested ones: right after kind */
	__u64 key;    /* the span's key */
	__u32 sym_id;
	__u32 pad;
	struct sp_cap_vals v;
};

/* Marks the keys of queries rooted in a SP_SYM_HELD future; key bits:
 * CPU << 48 | this bit | per-CPU count. */
#define SP_KEY_HELD (1ull << 47)

/* What the ring buffer carries: every record starts with its kind. */
enum sp_rec_kind {
	SP_RK_SPAN = 1,   /* struct sp_span_rec */
	SP_RK_NESTED = 2, /* struct sp_nested_rec */
	SP_RK_MAPS = 3,   /* struct sp_maps_rec */
	SP_RK_EXEC = 4,   /* struct sp_exec_rec */
	SP_RK_CAPS = 5,   /* struct sp_cap_rec */
	SP_RK_GUARD = 8,  /* struct sp_guard_rec (hash map guard_recs) */
	SP_RK_PROC = 9,   /* struct sp_proc_rec */
};

/*
 * The unwind guard: words of one thread's stack to rewrite before it runs
 * on (user/attach/unwind_guard.c writes them while the thread is held in a
 * signal-delivery stop). Restore: slot[i] gets val[i] (the real return
 * address) if it still holds the trampoline. Re-arm: slot[i] gets the
 * trampoline back if it still holds val[i]. Any other content means the
 * word is no longer the frame's (it returned, or another writer came
 * first) and it is left alone.
 */
#define SP_GUARD_MAX 64 /* the kernel's MAX_URETPROBE_DEPTH */
#define SP_GUARD_THREADS 4096 /* threads with a record outstanding at once */
enum sp_guard_op {
	SP_GUARD_RESTORE = 1,
	SP_GUARD_REARM = 2,
	SP_GUARD_SWEEP = 3, /* every instance of the thread, in the kernel's
			     * order (newest first), unchecked: the guardian
			     * restores those at or above the thread's SP */
};

struct sp_guard_rec {
	__u32 kind;      /* SP_RK_GUARD */
	__u32 tgid;
	__u32 tid;
	__u32 op;        /* enum sp_guard_op */
	__u64 tramp;     /* the trampoline's address in this process */
	__u32 n;
	__u32 pad;
	__u64 slot[SP_GUARD_MAX];
	__u64 val[SP_GUARD_MAX];
};

/* A traced process called exec (follow mode): what it runs now is another
 * program, or a new life of the same one. */
struct sp_exec_rec {
	__u32 kind;      /* SP_RK_EXEC */
	__u32 tgid;
};

/* Follow mode: a thread of a process took its first stack (its first
 * root call, after attach or after an exec). The process's start time
 * tells a pid reused by a new process from the old one, and names a
 * process that is gone before userspace read its first record. */
struct sp_proc_rec {
	__u32 kind;      /* SP_RK_PROC */
	__u32 tgid;
	__u64 start_boottime_ns; /* the thread-group leader's */
};

/* A process's dynamic linker reached its debugger rendezvous
 * (_dl_debug_state): a dlopen or dlclose is mapping or unmapping
 * objects, so the loader rescans what the process has mapped. */
struct sp_maps_rec {
	__u32 kind;      /* SP_RK_MAPS */
	__u32 tgid;
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

/* An entry probe moved past instructions the kernel would single-step
 * (`sub $N,%rsp`, `push $imm`, ...) sees the stack pointer that many bytes
 * below the return-address slot; the cookie's flags carry the distance in
 * their top 16 bits. Only entry-only probes move that way: a uretprobe or
 * session hijacks the word at the stack pointer of its hit. */
#define SP_COOKIE_SP_SHIFT 16
#define SP_COOKIE_FLAGS_MASK 0xffffu
#define SP_MAX_SP_DELTA 0xffffu

static __always_inline __u64 sp_entry_cookie(__u32 sym_id, __u32 flags, __u32 sp_delta)
{
	return sp_probe_cookie(sym_id, (flags & SP_COOKIE_FLAGS_MASK) |
				       sp_delta << SP_COOKIE_SP_SHIFT);
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

/* The same list as a few bulk copies (user/nested_ranges.c): range k
 * copies r[k].size bytes at self + r[k].off to the next free byte of a
 * scratch buffer; value i of the list is then the 8 bytes at scratch +
 * pos[i], cut to its size. One bpf_probe_read_user per range instead of
 * one per value. Either every value has a position or n == 0 (each value
 * is read alone). */
#define SP_NESTED_SCRATCH 2048 /* bytes copied at most per poll; a power of 2 */
#define SP_NESTED_POS_NONE 0xffff

struct sp_read_ranges {
	__u32 n;
	__u32 pad;
	struct sp_read r[SP_NESTED_MAX];
	__u16 pos[SP_NESTED_MAX];
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
	__u32 tgid;
	__u32 mid;       /* 1: made inside the poll (another probe hit, a
			  * context switch), where a parent's state may lag
			  * behind its code; 0: at the poll's entry or exit */
	__u64 obj;       /* the carrier future's self */
	__u64 poll_ns;   /* entry of the carrier's poll this read is in: a
			  * future inlined into it that is first seen here
			  * began after that (its parent's state shows it
			  * only once the parent suspends on it) */
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
	__u32 tgid;      /* processes of one binary share addresses */
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
	__u64 errors;         /* calls flagged error (SP_REC_ERROR) */
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
/* The future of a SP_FRAME_FRESH frame idx, rebuilt from the frame: its
 * first poll is this one, on this thread, under the frame below. */
static __always_inline void sp_fresh_future(const struct sp_thread *st, __u32 idx, __u32 tid,
					    struct sp_future *fu)
{
	const struct sp_frame *f = &st->f[idx & SP_DEPTH_MASK];

	fu->key = f->key;
	fu->parent_key = idx ? st->f[(idx - 1) & SP_DEPTH_MASK].key : 0;
	fu->query_key = f->query_key;
	fu->begin_ns = f->begin_ns;
	fu->tid = tid;
	fu->polls = 1;
	fu->depth = f->depth;
	fu->flags = 0;
	fu->pad = 0;
}

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
