// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Entry and exit probes for every function of the symbol list. The
 * per-thread call stack lives here, so that calls outside any query cost
 * only their entry probe and spans shorter than min_span never leave the
 * kernel: userspace receives one record per kept span.
 *
 * Programs, all keyed by the attach cookie (the function's index in the
 * loader's probe table):
 *   sp_session    uprobe session (6.13+): entry and return in one program;
 *                 the entry skips the return half outside queries
 *   sp_entry      uprobe at the first instruction (older kernels, and
 *                 functions whose exits are probed at their ret sites)
 *   sp_exit_ret   uretprobe (older kernels)
 *   sp_exit_site  uprobe on each ret / tail-jump instruction, where an
 *                 exception or panic may unwind through the frame: a
 *                 hijacked return address makes the unwinder abort the
 *                 target, a uprobe on ret changes nothing it can see.
 *   sp_thread_exit  a traced thread exits: its open calls end (abnormal),
 *                 its stack entry is freed
 *   sp_exec       the target calls exec: userspace ends the session
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "spanprobe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;
const volatile __u64 min_span_ns = 0;

/* The [uprobes] mapping that holds the return trampoline; userspace
 * fills it in once the kernel has created it. */
__u64 tramp_lo = 0, tramp_hi = 0;

/* Reserve failures: the exact number of records lost to a full buffer. */
__u64 dropped_records = 0;
/* Tracked entries that found the thread's stack full. */
__u64 depth_overflows = 0;
/* execs of the target: its code is gone, the session must end */
__u64 exec_count = 0;
/* Threads holding a stack (allocated at their first query, freed when
 * they exit) and, of those, threads inside a query now: what tests and
 * soak runs watch for leaks, since task storage cannot be listed. */
__s64 stacks_alloc = 0;
__s64 stacks_open = 0;

extern bool bpf_session_is_return(void) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} records SEC(".maps");

/* A thread's stack, created at its first query and kept while it lives:
 * task storage hangs off the task itself, so finding it costs a pointer
 * chase instead of a hash lookup on every probe hit (the hot path's
 * largest cost after the clock), and the kernel frees it with the task. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sp_thread);
} threads SEC(".maps");

/* What each probed function is; sized and filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_sym_info);
} sym_info SEC(".maps");

/* Futures whose span is open. One that is dropped before it returns
 * (cancelled) never ends: LRU bounds what those leave behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sp_future_key);
	__type(value, struct sp_future);
} futures SEC(".maps");

/* Span keys: a per-CPU count, the CPU in the top bits, so no two CPUs
 * contend for a counter on the hot path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} key_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_sym_stats);
} sym_stats SEC(".maps");

#include "nested_reads.h"

/* Global functions: the verifier checks each once, not once per frame of
 * the unrolled unwinding loops that call them. */
__noinline int sp_emit(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags);
__noinline int sp_on_close(__u32 sym_id, __u64 dur, __u32 flags);
__noinline int sp_poll_done(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags);
static __always_inline __u64 read_slot(void *ctx, __u64 sp);
static __always_inline __u64 new_key(void);

#define SP_EMIT(ctx, st, idx, end, flags) sp_emit((struct sp_thread *)(st), idx, end, flags)
#define SP_ON_CLOSE(ctx, sym, dur, flags) sp_on_close(sym, dur, flags)
#define SP_READ_SLOT(ctx, sp) read_slot(ctx, sp)
#define SP_IS_TRAMPOLINE(ctx, a) ((a) >= tramp_lo && (a) < tramp_hi)
#define SP_NEW_KEY(ctx) new_key()
#define SP_POLL_DONE(ctx, st, idx, end, flags) \
	sp_poll_done((struct sp_thread *)(st), idx, end, flags)
#include "span_stack.h"

__noinline int sp_emit(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags)
{
	struct sp_span_rec *r;
	__u64 id = bpf_get_current_pid_tgid();

	if (!st)
		return -1;
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		return -1;
	}
	sp_fill_rec(r, st, idx, end_ns, flags);
	r->tgid = id >> 32;
	r->tid = (__u32)id;
	/* drained on a timer: a wakeup per record would cost more than the
	 * probe itself */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

__noinline int sp_on_close(__u32 sym_id, __u64 dur, __u32 flags)
{
	struct sp_sym_stats *s = bpf_map_lookup_elem(&sym_stats, &sym_id);
	/* bucketing shared with userspace's percentiles (spanprobe.h) */
	__u32 b = sp_hist_bucket(dur);

	if (!s)
		return 0;
	s->calls++;
	s->total_ns += dur;
	if (dur > s->max_ns)
		s->max_ns = dur;
	if (dur < min_span_ns)
		s->under_min_span++;
	if (flags & SP_REC_ABNORMAL)
		s->abnormal++;
	if (b < SP_HIST_BUCKETS)
		s->hist[b]++;
	return 0;
}

static __always_inline __u64 read_slot(void *ctx, __u64 sp)
{
	__u64 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)sp);
	return v;
}

static __always_inline __u64 new_key(void)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&key_seq, &zero);

	if (!seq)
		return 0;
	return ((__u64)bpf_get_smp_processor_id() << 48) | ++*seq;
}

/* The future's coroutine state, 1 to 8 bytes little-endian. A carrier
 * that is not a coroutine (a hand-written Future such as hyper's
 * connection task: state_size 0) has none: it reads as suspended, so
 * its span begins when first seen and never ends by state. */
static __always_inline __u64 read_state(__u64 obj, const struct sp_sym_info *info)
{
	__u32 size = info->state_size;
	__u64 v = 0;

	if (!size)
		return 3;
	if (size > sizeof(v))
		size = sizeof(v);
	bpf_probe_read_user(&v, size, (void *)(obj + info->state_off));
	return v;
}

/* Both registers are read before one is chosen: choosing the pt_regs
 * field at run time makes the verifier reject the context access. */
static __always_inline __u64 poll_self(struct pt_regs *ctx, const struct sp_sym_info *info)
{
	__u64 di = PT_REGS_PARM1(ctx), si = PT_REGS_PARM2(ctx);

	barrier_var(di);
	barrier_var(si);
	return (info->flags & SP_SYM_SELF_RSI) ? si : di;
}

static __always_inline void emit_future(const struct sp_future *fu, __u32 sym_id,
					__u64 obj, __u64 end_ns, __u32 flags)
{
	struct sp_span_rec *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);

	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		return;
	}
	sp_fill_future_rec(r, fu, sym_id, end_ns, flags);
	r->obj = obj;
	r->tgid = target_tgid;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

/* A poll ends. The future's span ends with it when the state says
 * Returned (1) or Panicked (2), or when unwinding took the poll away. */
__noinline int sp_poll_done(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags)
{
	struct sp_future_key fk = { 0 };
	struct sp_sym_info *info;
	struct sp_future *fu;
	const struct sp_frame *f;
	__u64 state;

	if (!st)
		return 0;
	f = &st->f[idx & SP_DEPTH_MASK];
	fk.obj = f->obj;
	fk.sym_id = f->sym_id;
	info = bpf_map_lookup_elem(&sym_info, &fk.sym_id);
	fu = bpf_map_lookup_elem(&futures, &fk);
	if (!fu || !info)
		return 0;
	/* a carrier polled under another traced call is a span of that
	 * call's query: userspace rebuilds only the queries it roots */
	if ((info->flags & SP_SYM_NESTED) && (fu->key & SP_KEY_HELD))
		sp_nested_snap(f->obj, fk.sym_id, fu->key, f->begin_ns, end_ns);
	if (!(flags & SP_REC_ABNORMAL)) {
		state = read_state(f->obj, info);
		if (state != 1 && state != 2)
			return 0; /* suspended: the span goes on */
		flags = state == 2 ? SP_REC_ABNORMAL : 0;
	}
	if (fu->key == fu->query_key || end_ns - fu->begin_ns >= min_span_ns)
		emit_future(fu, fk.sym_id, fk.obj, end_ns, flags);
	bpf_map_delete_elem(&futures, &fk);
	if (info->flags & SP_SYM_NESTED)
		sp_nested_forget(&fk);
	return 0;
}

static __always_inline struct sp_thread *thread_of(struct task_struct *task)
{
	return bpf_task_storage_get(&threads, task, 0, 0);
}

static __always_inline struct sp_thread *thread_create(void)
{
	struct sp_thread *st = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0,
						    BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (st)
		__sync_fetch_and_add(&stacks_alloc, 1);
	return st;
}

/* Brackets a hit that may open or close the thread's query. */
static __always_inline void count_open(__u32 n_before, const struct sp_thread *st)
{
	if (!n_before && st->n)
		__sync_fetch_and_add(&stacks_open, 1);
	else if (n_before && !st->n)
		__sync_fetch_and_add(&stacks_open, -1);
}

/* A future's span: from the first poll that finds it Unresumed (0) to the
 * poll after which it is Returned, keyed by (function, self). Its parent
 * is the probed call or poll under it on this thread at that first poll;
 * later polls may run on any worker. A future first seen already running
 * (attach mid-flight) is PARTIAL: its begin is not invented. */
static __always_inline int on_poll(struct pt_regs *ctx, struct sp_thread *st, __u32 tid,
				   __u32 sym, const struct sp_sym_info *info, __u64 sp)
{
	__u64 now = bpf_ktime_get_ns(), self = poll_self(ctx, info);
	struct sp_future_key fk = { .obj = self, .sym_id = sym };
	__u64 state = read_state(self, info);
	const struct sp_frame *top = NULL;
	struct sp_future *fu, nf = {};
	__u32 n_before = st ? st->n : 0;
	int verdict;

	if (st) {
		sp_stack_unwind(ctx, st, sp, now, min_span_ns);
		if (st->n)
			top = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	}
	fu = bpf_map_lookup_elem(&futures, &fk);
	/* state 0 is a new instance, even where a cancelled one left an entry */
	if (!fu || state == 0) {
		if (!top && !(info->flags & SP_SYM_ROOT))
			goto skip;
		nf.key = new_key();
		/* a query rooted here is rebuilt by userspace */
		if (!top && (info->flags & SP_SYM_HELD))
			nf.key |= SP_KEY_HELD;
		nf.begin_ns = now;
		nf.tid = tid;
		nf.parent_key = top ? top->key : 0;
		nf.query_key = top ? top->query_key : nf.key;
		nf.depth = top ? top->depth + 1 : 0;
		nf.flags = state ? SP_REC_PARTIAL : 0;
		bpf_map_update_elem(&futures, &fk, &nf, BPF_ANY);
		fu = bpf_map_lookup_elem(&futures, &fk);
		if (!fu)
			goto skip;
	}
	fu->polls++;
	if (!st)
		st = thread_create();
	if (!st)
		return SP_SKIP_RETURN;
	sp_nested_observe(st, now, 0);
	verdict = sp_stack_poll(st, sym, sp, now, fu, self);
	if (verdict == SP_SKIP_RETURN) {
		__sync_fetch_and_add(&depth_overflows, 1);
	} else if ((info->flags & SP_SYM_NESTED) && (fu->key & SP_KEY_HELD)) {
		st->f[(st->n - 1) & SP_DEPTH_MASK].flags |= SP_FRAME_CARRIER |
			(info->state_size ? 0 : SP_FRAME_OBSERVED);
		sp_nested_snap(self, sym, fu->key, now, now);
	}
	count_open(n_before, st);
	return verdict;
skip:
	if (st)
		count_open(n_before, st);
	return SP_SKIP_RETURN;
}

static __always_inline int on_call(struct pt_regs *ctx, struct sp_thread *st, __u32 sym,
				   __u32 flags, __u64 sp)
{
	int is_root = flags & SP_SYM_ROOT, verdict;
	__u32 n_before;
	__u64 now;

	if (!st || !st->n) {
		if (!is_root) {
			struct sp_sym_stats *s = bpf_map_lookup_elem(&sym_stats, &sym);

			if (s)
				s->outside_calls++;
			return SP_SKIP_RETURN;
		}
		if (!st)
			st = thread_create();
		if (!st)
			return SP_SKIP_RETURN;
	}
	n_before = st->n;
	now = bpf_ktime_get_ns();
	verdict = sp_stack_entry(ctx, st, sym, is_root, sp, now, min_span_ns);
	if (st->n == SP_MAX_DEPTH && verdict == SP_SKIP_RETURN)
		__sync_fetch_and_add(&depth_overflows, 1);
	if (verdict == SP_TRACE_RETURN)
		sp_nested_observe(st, now, 0);
	count_open(n_before, st);
	return verdict;
}

static __always_inline int on_entry(struct pt_regs *ctx, __u64 sp)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 sym = (__u32)cookie, flags = (__u32)(cookie >> 32);
	struct sp_thread *st = thread_of(bpf_get_current_task_btf());

	if (flags & SP_SYM_ASYNC) {
		struct sp_sym_info *info = bpf_map_lookup_elem(&sym_info, &sym);

		if (!info)
			return SP_SKIP_RETURN;
		return on_poll(ctx, st, (__u32)bpf_get_current_pid_tgid(), sym, info, sp);
	}
	return on_call(ctx, st, sym, flags, sp);
}

/* Links made for a pid run their programs for that process only (the
 * kernel checks the thread group for uprobe_multi and session links since
 * 6.10, which every session-capable kernel is): the check is for the
 * fallbacks on older kernels. */
static __always_inline bool other_process(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid;
}

static __always_inline int on_exit(struct pt_regs *ctx, __u64 sp)
{
	struct sp_thread *st = thread_of(bpf_get_current_task_btf());
	__u64 now = bpf_ktime_get_ns();

	if (!st || !st->n)
		return 0;
	sp_nested_observe(st, now,
			  (st->f[(st->n - 1) & SP_DEPTH_MASK].flags & SP_FRAME_CARRIER) != 0);
	sp_stack_exit(ctx, st, (__u32)bpf_get_attach_cookie(ctx), sp, now, min_span_ns);
	if (!st->n)
		__sync_fetch_and_add(&stacks_open, -1);
	return 0;
}

/* At entry SP points at the return-address slot. After a return the slot
 * has been popped, so SP is one word above it. */
SEC("uprobe.multi") /* loaded as a session: libbpf 1.4 has no section for it */
int sp_session(struct pt_regs *ctx)
{
	if (bpf_session_is_return())
		return on_exit(ctx, PT_REGS_SP(ctx) - 8);
	return on_entry(ctx, PT_REGS_SP(ctx));
}

SEC("uprobe")
int sp_entry(struct pt_regs *ctx)
{
	if (!other_process())
		on_entry(ctx, PT_REGS_SP(ctx));
	return 0;
}

SEC("uretprobe")
int sp_exit_ret(struct pt_regs *ctx)
{
	return other_process() ? 0 : on_exit(ctx, PT_REGS_SP(ctx) - 8);
}

/* On a ret or a tail jump the frame is torn down: SP is back on the slot. */
SEC("uprobe")
int sp_exit_site(struct pt_regs *ctx)
{
	return other_process() ? 0 : on_exit(ctx, PT_REGS_SP(ctx));
}

/* A thread that exits inside a query never returns from its open calls:
 * they end here, flagged abnormal. Its stack is freed at once (the kernel
 * would free it with the task anyway) so that the counters stay exact.
 * current is the exiting thread. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(sp_thread_exit, struct task_struct *task)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct sp_thread *st;

	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	st = thread_of(cur);
	if (!st)
		return 0;
	if (st->n) {
		sp_stack_thread_exit(ctx, st, bpf_ktime_get_ns(), min_span_ns);
		__sync_fetch_and_add(&stacks_open, -1);
	}
	if (!bpf_task_storage_delete(&threads, cur))
		__sync_fetch_and_add(&stacks_alloc, -1);
	return 0;
}

/* A thread of the target leaves the CPU while a carrier's poll is open
 * on it: the carrier's nested futures are read now, so that a wait for
 * the CPU does not widen the window of what changed before it (a
 * handler's end seen only at the poll's exit, 15 ms later). Loaded only
 * when there are carriers; current is prev. */
SEC("tp_btf/sched_switch")
int BPF_PROG(sp_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct sp_thread *st;

	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	st = thread_of(prev);
	if (st && st->n)
		sp_nested_observe(st, bpf_ktime_get_ns(), 0);
	return 0;
}

/* After exec the probed code is gone from the process; userspace sees the
 * count change and ends the session. current has the target's tgid even
 * when a non-leader thread called exec. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(sp_exec, struct task_struct *p)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&exec_count, 1);
	return 0;
}
