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
 *   sp_dl_change  the dynamic linker's rendezvous (_dl_debug_state), hit
 *                 on every dlopen/dlclose: userspace rescans the maps
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/usdt.bpf.h>
#include "spanprobe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The traced process; 0 in follow mode (links without a pid filter: every
 * process mapping the probed files), where each record names its own. */
const volatile __u32 target_tgid = 0;
/* -p PID --follow: only PID and the processes it forks, listed in
 * `followed` by the fork hook. attach --exe: the processes userspace
 * traces, listed by userspace (the rendezvous hook's filter). */
const volatile bool follow_children = false;
const volatile __u64 min_span_ns = 0;
/* Carriers' futures are read at every other probe hit and context switch
 * under their polls (observation points); off only to measure what they
 * cost (SPANPROBE_NO_OBSERVE, docs/performance.md). */
const volatile bool observe_points = true;

/* The [uprobes] mapping that holds the return trampoline; userspace
 * fills it in once the kernel has created it. */
__u64 tramp_lo = 0, tramp_hi = 0;

/* Reserve failures: the exact number of records lost to a full buffer. */
__u64 dropped_records = 0;
/* Tracked entries that found the thread's stack full. */
__u64 depth_overflows = 0;
/* execs of the target: its code is gone, the session must end */
__u64 exec_count = 0;
/* Rendezvous hits whose record was lost: userspace rescans every process. */
__u64 maps_lost = 0;
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

/* -p PID --follow: the processes descending from PID. A forked child is
 * added by its parent's fork and removed when its leader exits, so the
 * map holds the live family only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} followed SEC(".maps");

static __always_inline __u32 current_tgid(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32);
}
/* What each capturing function captures (SP_SYM_CAPS, SP_SYM_RET); sized
 * and filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_cap_cfg);
} cap_cfg SEC(".maps");

/* How each SP_CAP_FIELD capture reads its field; sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_field_cfg);
} field_cfg SEC(".maps");

/* A future's argument values, read at its first poll and sent just
 * before its span record when it ends (a future outlives the poll frame
 * and may end on another thread). Keyed by the span: a new future at the
 * same address must not take them. LRU: a future dropped while pending
 * never ends, and its entry ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct sp_cap_vals);
} future_caps SEC(".maps");

/* Futures whose address a new instance of the same poll function took
 * (its first poll found their entry), keyed by span. Either it was
 * dropped while pending (cancelled: nothing ends it, it ages out as
 * before), or a panic unwound its last poll, whose frame is still on its
 * thread's stack and ends it, abnormal, at that thread's next hit: a
 * tokio task's harness catches the panic, frees the task, and the next
 * task spawned often gets the same memory first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sp_future);
} orphans SEC(".maps");

/* Room to fill a struct sp_cap_vals (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_cap_vals);
} cap_scratch SEC(".maps");

/* What makes a Rust poll's return value an error (SP_SYM_POLL_ERR);
 * sized and filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_poll_err_cfg);
} poll_err_cfg SEC(".maps");

/* Captured values of the open frames of a thread, by stack index: apart
 * from the stacks so that functions without captures never pay for them,
 * created at a thread's first capturing entry. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sp_thread_caps);
} thread_caps SEC(".maps");

#include "nested_reads.h"

/* Global functions: the verifier checks each once, not once per frame of
 * the unrolled unwinding loops that call them. */
__noinline int sp_emit(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags);
__noinline int sp_on_close(__u32 sym_id, __u64 dur, __u32 flags);
__noinline int sp_poll_done(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags);
static __always_inline __u64 read_slot(void *ctx, __u64 sp);
static __always_inline __u64 new_key(void);
static __always_inline bool is_trampoline(__u64 addr);

#define SP_EMIT(ctx, st, idx, end, flags) sp_emit((struct sp_thread *)(st), idx, end, flags)
#define SP_ON_CLOSE(ctx, sym, dur, flags) sp_on_close(sym, dur, flags)
#define SP_READ_SLOT(ctx, sp) read_slot(ctx, sp)
#define SP_IS_TRAMPOLINE(ctx, a) is_trampoline(a)
#define SP_NEW_KEY(ctx) new_key()
#define SP_POLL_DONE(ctx, st, idx, end, flags) \
	sp_poll_done((struct sp_thread *)(st), idx, end, flags)
#include "span_stack.h"

/* The captures of frame idx go out just before its span record, so
 * userspace has them when the span arrives. A slot that another frame
 * took over is not sent: the span then shows no values, never wrong ones. */
static __always_inline void emit_caps(const struct sp_thread *st, __u32 idx)
{
	const struct sp_frame *f = &st->f[idx & SP_DEPTH_MASK];
	struct sp_thread_caps *tc = bpf_task_storage_get(&thread_caps,
							 bpf_get_current_task_btf(), 0, 0);
	struct sp_cap_slot *slot;
	struct sp_cap_rec *r;

	if (!tc)
		return;
	slot = &tc->s[idx & SP_DEPTH_MASK];
	if (slot->key != f->key)
		return;
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		return;
	}
	r->kind = SP_RK_CAPS;
	r->tgid = current_tgid();
	r->pad = 0;
	r->sym_id = f->sym_id;
	r->key = f->key;
	/* a plain copy: both are BPF memory, no kernel read is needed */
	__builtin_memcpy(&r->v, &slot->v, sizeof(r->v));
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

__noinline int sp_emit(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags)
{
	struct sp_span_rec *r;
	__u64 id = bpf_get_current_pid_tgid();

	if (!st)
		return -1;
	if (st->f[idx & SP_DEPTH_MASK].flags & SP_FRAME_CAPS)
		emit_caps(st, idx);
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
	if (flags & SP_REC_ERROR)
		s->errors++;
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

/* The return trampoline lives in the process's XOL area ([uprobes]).
 * One target: userspace publishes its range. Many processes (follow
 * mode): each hit reads its own process's area; this runs only when a
 * frame sits on the very slot of a new call (tail call or lost frame). */
static __always_inline bool is_trampoline(__u64 addr)
{
	struct task_struct *t;
	struct xol_area *x;
	__u64 v;

	if (target_tgid)
		return addr >= tramp_lo && addr < tramp_hi;
	t = bpf_get_current_task_btf();
	x = BPF_CORE_READ(t, mm, uprobes_state.xol_area);
	if (!x)
		return false;
	v = BPF_CORE_READ(x, vaddr);
	return v && addr >= v && addr < v + 4096;
}

/* Uprobe programs run with migration disabled but preemptible (they may
 * sleep): another thread's program can run on this CPU between a plain
 * load and store of the count and take the same key. An atomic fetch-add
 * (BPF v3, uncontended: the count is per CPU) cannot. */
static __always_inline __u64 new_key(void)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&key_seq, &zero);

	if (!seq)
		return 0;
	return ((__u64)bpf_get_smp_processor_id() << 48) | (__sync_fetch_and_add(seq, 1) + 1);
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
	r->tgid = current_tgid();
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

/* One field of the future at self into capture i. */
static __always_inline void read_field(struct sp_cap_vals *v, __u32 i,
				       const struct sp_field_spec *f, __u64 self)
{
	__u32 k = i & (SP_CAP_MAX - 1);
	__u64 val = 0, ptr = 0, len = 0, n;
	__u64 at = self + f->off;

	if (f->kind == SP_FK_INT) {
		if (bpf_probe_read_user(&val, f->size & 15 ? (f->size > 8 ? 8 : f->size) : 1,
					(void *)at))
			goto bad;
		if (f->is_signed && f->size < 8)
			val = (__u64)((__s64)(val << (64 - 8 * f->size)) >> (64 - 8 * f->size));
		v->num[k] = val;
	} else {
		if (bpf_probe_read_user(&len, sizeof(len), (void *)(at + f->len_off)))
			goto bad;
		if (f->kind == SP_FK_LEN) {
			v->num[k] = len;
		} else {
			if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)(at + f->ptr_off)))
				goto bad;
			n = len < SP_CAP_STR - 1 ? len : SP_CAP_STR - 1;
			if (n && bpf_probe_read_user(v->str[k], n & (SP_CAP_STR - 1), (void *)ptr))
				goto bad;
			v->str[k][n & (SP_CAP_STR - 1)] = 0;
			v->len[k] = (__u16)n;
			v->status[k] = len > n ? SP_CAPV_TRUNCATED : SP_CAPV_OK;
			return;
		}
	}
	v->status[k] = SP_CAPV_OK;
	return;
bad:
	v->status[k] = SP_CAPV_UNREADABLE;
}

/* A future's first poll (Unresumed): its argument captures, kept by the
 * future until it ends. */
__noinline int sp_future_caps(__u32 sym, __u64 self, __u64 key)
{
	struct sp_cap_cfg *cfg = bpf_map_lookup_elem(&cap_cfg, &sym);
	struct sp_field_cfg *fc = bpf_map_lookup_elem(&field_cfg, &sym);
	__u32 zero = 0;
	struct sp_cap_vals *v = bpf_map_lookup_elem(&cap_scratch, &zero);

	if (!cfg || !fc || !v)
		return 0;
	for (__u32 i = 0; i < SP_CAP_MAX; i++) {
		v->status[i] = SP_CAPV_NONE;
		v->len[i] = 0;
		if (i < cfg->n && cfg->c[i].src == SP_CAP_FIELD)
			read_field(v, i, &fc->f[i], self);
	}
	bpf_map_update_elem(&future_caps, &key, v, BPF_ANY);
	return 0;
}

/* The values of a future that ends: sent first when its span is, then
 * forgotten either way. */
static __always_inline void future_caps_done(const struct sp_future_key *fk, __u64 key, bool send)
{
	struct sp_cap_vals *v = bpf_map_lookup_elem(&future_caps, &key);
	struct sp_cap_rec *r;

	if (!v)
		return;
	if (send) {
		r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
		if (r) {
			r->kind = SP_RK_CAPS;
			r->tgid = fk->tgid;
			r->pad = 0;
			r->sym_id = fk->sym_id;
			r->key = key;
			__builtin_memcpy(&r->v, v, sizeof(r->v));
			bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
		} else {
			__sync_fetch_and_add(&dropped_records, 1);
		}
	}
	bpf_map_delete_elem(&future_caps, &key);
}

/* A future that ended leaves the map, unless a new one at its address
 * has its entry already (then it was moved to orphans: that copy goes). */
static __always_inline void forget_future(const struct sp_future_key *fk, __u64 key)
{
	struct sp_future *fu = bpf_map_lookup_elem(&futures, fk);

	if (fu && fu->key == key)
		bpf_map_delete_elem(&futures, fk);
	else
		bpf_map_delete_elem(&orphans, &key);
}

/* A poll ends. The future's span ends with it when the state says
 * Returned (1) or Panicked (2), or when unwinding took the poll away. */
__noinline int sp_poll_done(struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags)
{
	struct sp_future_key fk = { 0 };
	struct sp_sym_info *info;
	struct sp_future *fu, cur; /* one buffer: a subprogram's stack counts */
	const struct sp_frame *f;
	bool is_fresh, orphan = false;
	__u64 state;

	if (!st)
		return 0;
	f = &st->f[idx & SP_DEPTH_MASK];
	fk.obj = f->obj;
	fk.sym_id = f->sym_id;
	fk.tgid = current_tgid();
	is_fresh = f->flags & SP_FRAME_FRESH;
	info = bpf_map_lookup_elem(&sym_info, &fk.sym_id);
	if (is_fresh) {
		sp_fresh_future(st, idx, (__u32)bpf_get_current_pid_tgid(), &cur);
		fu = &cur;
	} else {
		/* copies: another thread's first poll of a new future at
		 * this address may move the entry to orphans, and the map
		 * give its memory to the new one's */
		fu = bpf_map_lookup_elem(&futures, &fk);
		if (fu) {
			cur = *fu;
			fu = &cur;
		}
		if (!fu || fu->key != f->key) {
			fu = bpf_map_lookup_elem(&orphans, &f->key);
			if (fu) {
				cur = *fu;
				fu = &cur;
			}
			orphan = true;
		}
	}
	if (!fu || !info)
		return 0;
	/* its memory is another future's now: it was unwound */
	if (orphan)
		flags |= SP_REC_ABNORMAL;
	/* a carrier polled under another traced call is a span of that
	 * call's query: userspace rebuilds only the queries it roots */
	if ((info->flags & SP_SYM_NESTED) && (fu->key & SP_KEY_HELD) && !orphan)
		sp_nested_snap(f->obj, fk.sym_id, fu->key, f->begin_ns, end_ns);
	if (!(flags & SP_REC_ABNORMAL)) {
		state = read_state(f->obj, info);
		if (state != 1 && state != 2) {
			/* suspended: the span goes on */
			if (is_fresh)
				bpf_map_update_elem(&futures, &fk, fu, BPF_ANY);
			return 0;
		}
		/* Returned: an Err the poll returned fails the future */
		flags = state == 2 ? SP_REC_ABNORMAL : (f->flags & SP_REC_ERROR);
	}
	if (info->flags & SP_SYM_CAPS)
		future_caps_done(&fk, fu->key,
				 fu->key == fu->query_key || end_ns - fu->begin_ns >= min_span_ns);
	if (fu->key == fu->query_key || end_ns - fu->begin_ns >= min_span_ns)
		emit_future(fu, fk.sym_id, fk.obj, end_ns, flags);
	if (orphan)
		bpf_map_delete_elem(&orphans, &f->key);
	else if (!is_fresh)
		forget_future(&fk, f->key);
	if ((info->flags & SP_SYM_NESTED) && !orphan)
		sp_nested_forget(&fk);
	return 0;
}

/* A first poll found an entry for its (function, self): the future that
 * had it is gone (see orphans). */
static __always_inline void orphan_future(const struct sp_future_key *fk)
{
	struct sp_future *old = bpf_map_lookup_elem(&futures, fk);

	if (!old)
		return;
	bpf_map_update_elem(&orphans, &old->key, old, BPF_ANY);
	bpf_map_delete_elem(&futures, fk);
}

static __always_inline struct sp_thread *thread_of(struct task_struct *task)
{
	return bpf_task_storage_get(&threads, task, 0, 0);
}

/* Follow mode: which process (pid and start time) this new stack is in,
 * before any of its records. */
static __always_inline void emit_proc(struct task_struct *task)
{
	struct sp_proc_rec *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);

	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		return;
	}
	r->kind = SP_RK_PROC;
	r->tgid = current_tgid();
	r->start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	bpf_ringbuf_submit(r, 0);
}

static __always_inline struct sp_thread *thread_create(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct sp_thread *st = bpf_task_storage_get(&threads, task, 0,
						    BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (st) {
		__sync_fetch_and_add(&stacks_alloc, 1);
		if (!target_tgid)
			emit_proc(task);
	}
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
	struct sp_future_key fk = { .obj = self, .sym_id = sym, .tgid = current_tgid() };
	__u64 state = read_state(self, info);
	const struct sp_frame *top = NULL;
	struct sp_future *fu, nf = {};
	__u32 n_before = st ? st->n : 0;
	bool fresh = state == 0;
	int verdict;

	if (st) {
		sp_stack_unwind(ctx, st, sp, now, min_span_ns);
		if (st->n)
			top = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	}
	/* state 0 is a new instance, even where a cancelled or unwound one
	 * left an entry; it stays in its frame unless this poll leaves it
	 * pending */
	if (fresh)
		orphan_future(&fk);
	fu = fresh ? NULL : bpf_map_lookup_elem(&futures, &fk);
	if (!fu) {
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
		nf.polls = 1;
		fu = &nf;
		if (!fresh) {
			bpf_map_update_elem(&futures, &fk, &nf, BPF_ANY);
			fu = bpf_map_lookup_elem(&futures, &fk);
			if (!fu)
				goto skip;
		}
	} else {
		fu->polls++;
	}
	if (!st)
		st = thread_create();
	if (!st) {
		if (fresh) /* later polls must still find it */
			bpf_map_update_elem(&futures, &fk, &nf, BPF_ANY);
		return SP_SKIP_RETURN;
	}
	sp_nested_observe(st, now, 0);
	verdict = sp_stack_poll(st, sym, sp, now, fu, self);
	if (fresh && (info->flags & SP_SYM_CAPS))
		sp_future_caps(sym, self, fu->key);
	if (verdict == SP_SKIP_RETURN && fresh)
		bpf_map_update_elem(&futures, &fk, &nf, BPF_ANY);
	else if (fresh)
		st->f[(st->n - 1) & SP_DEPTH_MASK].flags |= SP_FRAME_FRESH;
	if (verdict == SP_SKIP_RETURN) {
		__sync_fetch_and_add(&depth_overflows, 1);
	} else if ((info->flags & SP_SYM_NESTED) && (fu->key & SP_KEY_HELD)) {
		st->f[(st->n - 1) & SP_DEPTH_MASK].flags |= SP_FRAME_CARRIER |
			(observe_points ? SP_FRAME_OBSERVED : 0);
		sp_nested_snap(self, sym, fu->key, now, now);
	}
	count_open(n_before, st);
	return verdict;
skip:
	if (st)
		count_open(n_before, st);
	return SP_SKIP_RETURN;
}

/* One string into the slot: its length, or truncated / unreadable. */
static __always_inline void cap_str(struct sp_cap_vals *v, __u32 i, __u64 ptr)
{
	char *dst = v->str[i & (SP_CAP_MAX - 1)];
	long n = bpf_probe_read_user_str(dst, SP_CAP_STR, (void *)ptr);
	char more = 0;

	if (n <= 0) {
		v->status[i & (SP_CAP_MAX - 1)] = SP_CAPV_UNREADABLE;
		return;
	}
	v->len[i & (SP_CAP_MAX - 1)] = (__u16)(n - 1);
	v->status[i & (SP_CAP_MAX - 1)] = SP_CAPV_OK;
	/* a full buffer may hold the whole string or its first 127 bytes */
	if (n == SP_CAP_STR && !bpf_probe_read_user(&more, 1, (void *)(ptr + SP_CAP_STR - 1)) &&
	    more)
		v->status[i & (SP_CAP_MAX - 1)] = SP_CAPV_TRUNCATED;
}

static __always_inline void cap_value(struct sp_cap_vals *v, __u32 i, __u8 type, __u64 val)
{
	if (type == SP_CAP_STR_T) {
		cap_str(v, i, val);
		return;
	}
	if (type == SP_CAP_I32)
		val = (__u64)(__s64)(__s32)val;
	else if (type == SP_CAP_U32)
		val = (__u32)val;
	v->num[i & (SP_CAP_MAX - 1)] = val;
	v->status[i & (SP_CAP_MAX - 1)] = SP_CAPV_OK;
}

/* The SysV argument registers; every one is read first because choosing
 * a pt_regs field at run time makes the verifier reject the access. */
static __always_inline __u64 reg_arg(struct pt_regs *ctx, __u32 index)
{
	__u64 a0 = PT_REGS_PARM1(ctx), a1 = PT_REGS_PARM2(ctx), a2 = PT_REGS_PARM3(ctx);
	__u64 a3 = PT_REGS_PARM4(ctx), a4 = PT_REGS_PARM5(ctx), a5 = PT_REGS_PARM6(ctx);

	barrier_var(a0); barrier_var(a1); barrier_var(a2);
	barrier_var(a3); barrier_var(a4); barrier_var(a5);
	switch (index) {
	case 0: return a0;
	case 1: return a1;
	case 2: return a2;
	case 3: return a3;
	case 4: return a4;
	default: return a5;
	}
}

/* Entry of a capturing function or USDT start: its arguments into the
 * slot of stack index idx. Only entries that asked for captures get
 * here; the rest never touch thread_caps. */
__noinline int sp_capture_entry(struct pt_regs *ctx, __u32 sym, __u32 idx, __u64 key, __u32 usdt)
{
	struct sp_cap_cfg *cfg = bpf_map_lookup_elem(&cap_cfg, &sym);
	struct sp_thread_caps *tc;
	struct sp_cap_slot *slot;

	if (!cfg || !ctx)
		return 0;
	tc = bpf_task_storage_get(&thread_caps, bpf_get_current_task_btf(), 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc)
		return 0;
	slot = &tc->s[idx & SP_DEPTH_MASK];
	slot->key = key;
	for (__u32 i = 0; i < SP_CAP_MAX; i++) {
		struct sp_cap_spec c = cfg->c[i];
		long val = 0;

		slot->v.status[i] = SP_CAPV_NONE;
		slot->v.len[i] = 0;
		if (i >= cfg->n || c.src != SP_CAP_ARG)
			continue;
		if (usdt) {
			if (bpf_usdt_arg(ctx, c.index, &val)) {
				slot->v.status[i] = SP_CAPV_UNREADABLE;
				continue;
			}
		} else {
			val = (long)reg_arg(ctx, c.index);
		}
		cap_value(&slot->v, i, c.type, (__u64)val);
	}
	return 1;
}

static __always_inline bool err_match(const struct sp_cap_cfg *cfg, __s64 rc)
{
	if (cfg->err_i32)
		rc = (__s32)rc;
	switch (cfg->err_cond) {
	case SP_ERR_NEG: return rc < 0;
	case SP_ERR_NULL: return rc == 0;
	case SP_ERR_EQ: return rc == cfg->err_value;
	default: return false;
	}
}

/* A capturing function returns: its return-value captures, and whether
 * the value meets its error condition (1). At a tail jump RAX is not the
 * return value: the captures say unreadable and no error is decided. */
#define SP_RET_UNREADABLE (1u << 31)
__noinline int sp_capture_ret(__u32 sym, __u32 idx, __u64 key, __u64 rc, __u32 frame_flags)
{
	struct sp_cap_cfg *cfg = bpf_map_lookup_elem(&cap_cfg, &sym);
	bool readable = !(frame_flags & SP_RET_UNREADABLE);
	struct sp_thread_caps *tc;
	struct sp_cap_slot *slot;

	if (!cfg)
		return 0;
	if (!(frame_flags & SP_FRAME_CAPS))
		return readable && err_match(cfg, (__s64)rc);
	tc = bpf_task_storage_get(&thread_caps, bpf_get_current_task_btf(), 0, 0);
	if (!tc)
		return 0;
	slot = &tc->s[idx & SP_DEPTH_MASK];
	if (slot->key != key)
		return 0;
	for (__u32 i = 0; i < SP_CAP_MAX; i++) {
		struct sp_cap_spec c = cfg->c[i];

		if (i >= cfg->n || c.src != SP_CAP_RET)
			continue;
		if (!readable)
			slot->v.status[i] = SP_CAPV_UNREADABLE;
		else
			cap_value(&slot->v, i, c.type, rc);
	}
	return readable && err_match(cfg, (__s64)rc);
}

static __always_inline bool discr_holds(const struct sp_discr_test *t, const __u8 *val,
					__u32 len, __u64 ptr)
{
	__u64 v = 0;
	bool in = false;
	__u32 size = t->size, off = t->off;

	if (size > sizeof(v))
		size = sizeof(v);
	if (ptr) {
		if (bpf_probe_read_user(&v, size & 15, (void *)(ptr + off)))
			return false;
	} else {
		if (off >= len)
			return false; /* val has 8 bytes of room past len */
		__builtin_memcpy(&v, val + (off & 15), sizeof(v));
		if (size < sizeof(v))
			v &= (1ull << (size * 8)) - 1;
	}
	for (__u32 i = 0; i < SP_PERR_RANGES; i++)
		if (i < t->n && v >= t->lo[i] && v <= t->hi[i])
			in = true;
	return in != (t->negate != 0);
}

/* A poll returns: whether its value is Poll::Ready(Err(_)). In RAX:RDX
 * when it fits in 16 bytes, else RAX holds the hidden return pointer. */
__noinline int sp_poll_err(__u32 sym, __u64 rax, __u64 rdx)
{
	struct sp_poll_err_cfg *cfg = bpf_map_lookup_elem(&poll_err_cfg, &sym);
	__u8 val[24] = { 0 };
	__u64 ptr;

	if (!cfg || !cfg->n)
		return 0;
	ptr = cfg->via_ptr ? rax : 0;
	if (cfg->via_ptr && !rax)
		return 0;
	__builtin_memcpy(val, &rax, 8);
	__builtin_memcpy(val + 8, &rdx, 8);
	for (__u32 i = 0; i < SP_PERR_TESTS; i++)
		if (i < cfg->n && !discr_holds(&cfg->t[i], val, 16, ptr))
			return 0;
	return 1;
}

static __always_inline void poll_err_exit(struct pt_regs *ctx, struct sp_thread *st, __u32 sym,
					  __u32 flags, __u64 sp, __u64 now)
{
	struct sp_frame *f;
	__u64 rax = PT_REGS_RC(ctx), rdx = ctx->dx;

	if (flags & SP_SYM_TAILJMP)
		return; /* RAX is not the return value there: nothing decided */
	sp_pop_dead(ctx, st, sp, now, min_span_ns);
	if (!st->n)
		return;
	f = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	if (f->sp != sp || f->sym_id != sym)
		return;
	if (sp_poll_err(sym, rax, rdx))
		f->flags |= SP_REC_ERROR;
}

/* After a capturing entry pushed its frame: fill the frame's slot. */
static __always_inline void capture_entry(struct pt_regs *ctx, struct sp_thread *st, __u32 sym,
					  __u32 usdt)
{
	struct sp_frame *f = &st->f[(st->n - 1) & SP_DEPTH_MASK];

	if (st->n && f->sym_id == sym &&
	    sp_capture_entry(ctx, sym, st->n - 1, f->key, usdt))
		f->flags |= SP_FRAME_CAPS;
}

/* Before the exit of a function that reads its return value closes its
 * frame: captures, and the error flag. */
static __always_inline void capture_exit(struct pt_regs *ctx, struct sp_thread *st, __u32 sym,
					 __u32 flags, __u64 sp, __u64 now)
{
	struct sp_frame *f;

	sp_pop_dead(ctx, st, sp, now, min_span_ns);
	if (!st->n)
		return;
	f = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	if (f->sp != sp || f->sym_id != sym)
		return;
	if (sp_capture_ret(sym, st->n - 1, f->key, PT_REGS_RC(ctx),
			   f->flags | ((flags & SP_SYM_TAILJMP) ? SP_RET_UNREADABLE : 0)))
		f->flags |= SP_REC_ERROR;
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
	if (verdict == SP_TRACE_RETURN && (flags & (SP_SYM_CAPS | SP_SYM_USDT))) {
		if (flags & SP_SYM_USDT)
			st->f[(st->n - 1) & SP_DEPTH_MASK].flags |= SP_FRAME_USDT;
		if (flags & SP_SYM_CAPS)
			capture_entry(ctx, st, sym, flags & SP_SYM_USDT);
	}
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

	/* a probe moved into the function: back up to the slot */
	sp += flags >> SP_COOKIE_SP_SHIFT;
	flags &= SP_COOKIE_FLAGS_MASK;

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
	__u32 tgid = current_tgid();

	if (follow_children)
		return !bpf_map_lookup_elem(&followed, &tgid);
	return target_tgid && tgid != target_tgid;
}

static __always_inline int on_exit(struct pt_regs *ctx, __u64 sp)
{
	struct sp_thread *st = thread_of(bpf_get_current_task_btf());
	__u64 cookie, now;

	if (!st || !st->n)
		return 0;
	cookie = bpf_get_attach_cookie(ctx);
	now = bpf_ktime_get_ns();
	if ((cookie >> 32) & SP_SYM_RET)
		capture_exit(ctx, st, (__u32)cookie, (__u32)(cookie >> 32), sp, now);
	if ((cookie >> 32) & SP_SYM_POLL_ERR)
		poll_err_exit(ctx, st, (__u32)cookie, (__u32)(cookie >> 32), sp, now);
	sp_nested_observe(st, now,
			  (st->f[(st->n - 1) & SP_DEPTH_MASK].flags & SP_FRAME_CARRIER) != 0);
	sp_stack_exit(ctx, st, (__u32)cookie, sp, now, min_span_ns);
	if (!st->n)
		__sync_fetch_and_add(&stacks_open, -1);
	return 0;
}

static __always_inline void guard_forget(__u64 slot);

/* At entry SP points at the return-address slot. After a return the slot
 * has been popped, so SP is one word above it. */
SEC("uprobe.multi") /* loaded as a session: libbpf 1.4 has no section for it */
int sp_session(struct pt_regs *ctx)
{
	int rc;

	/* a link made for one pid filters in the kernel; follow mode's
	 * links have none: the family check is ours (nonzero: no return) */
	if (follow_children && other_process())
		return 1;
	if (bpf_session_is_return()) {
		guard_forget(PT_REGS_SP(ctx) - 8);
		return on_exit(ctx, PT_REGS_SP(ctx) - 8);
	}
	rc = on_entry(ctx, PT_REGS_SP(ctx));
	if (!rc) /* the kernel hijacks the return */
		guard_forget(PT_REGS_SP(ctx));
	return rc;
}

SEC("uprobe")
int sp_entry(struct pt_regs *ctx)
{
	if (!other_process())
		on_entry(ctx, PT_REGS_SP(ctx));
	guard_forget(PT_REGS_SP(ctx));
	return 0;
}

SEC("uretprobe")
int sp_exit_ret(struct pt_regs *ctx)
{
	guard_forget(PT_REGS_SP(ctx) - 8);
	return other_process() ? 0 : on_exit(ctx, PT_REGS_SP(ctx) - 8);
}

/* On a ret or a tail jump the frame is torn down: SP is back on the slot. */
SEC("uprobe")
int sp_exit_site(struct pt_regs *ctx)
{
	return other_process() ? 0 : on_exit(ctx, PT_REGS_SP(ctx));
}

/* A single USDT probe fired inside a span: an instant event, its child.
 * Its captures use the slot of the next stack index, free until a call
 * pushes a frame there, which is after they have been sent. */
static __always_inline void usdt_event(struct pt_regs *ctx, struct sp_thread *st, __u32 sym,
				       __u32 flags, __u64 sp)
{
	__u64 now = bpf_ktime_get_ns(), key;
	const struct sp_frame *top;
	struct sp_span_rec *r;
	__u32 n_before = st->n;

	sp_pop_dead(ctx, st, sp, now, min_span_ns);
	count_open(n_before, st);
	if (!st->n)
		return;
	top = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	key = new_key();
	if ((flags & SP_SYM_CAPS) && st->n < SP_MAX_DEPTH &&
	    sp_capture_entry(ctx, sym, st->n, key, 1)) {
		struct sp_thread_caps *tc = bpf_task_storage_get(&thread_caps,
								 bpf_get_current_task_btf(), 0, 0);
		struct sp_cap_rec *cr;

		if (tc && (cr = bpf_ringbuf_reserve(&records, sizeof(*cr), 0))) {
			cr->kind = SP_RK_CAPS;
			cr->tgid = current_tgid();
			cr->pad = 0;
			cr->sym_id = sym;
			cr->key = key;
			__builtin_memcpy(&cr->v, &tc->s[st->n & SP_DEPTH_MASK].v, sizeof(cr->v));
			bpf_ringbuf_submit(cr, BPF_RB_NO_WAKEUP);
		} else if (tc) {
			__sync_fetch_and_add(&dropped_records, 1);
		}
	}
	sp_on_close(sym, 0, 0);
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		st->flags |= SP_REC_INCOMPLETE;
		return;
	}
	r->kind = SP_RK_SPAN;
	r->tgid = target_tgid;
	r->key = key;
	r->parent_key = top->key;
	r->query_key = top->query_key;
	r->begin_ns = now;
	r->end_ns = now;
	r->obj = 0;
	r->tid = (__u32)bpf_get_current_pid_tgid();
	r->sym_id = sym;
	r->polls = 0;
	r->depth = top->depth + 1;
	r->flags = SP_REC_EVENT;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

/*
 * USDT probes, attached by libbpf (bpf_program__attach_usdt, which also
 * raises the probe's semaphore while attached); the cookie is ours,
 * through bpf_usdt_cookie. A pair's start opens a frame at the probe's
 * stack pointer, like a call; its done closes it; an error probe fails
 * the innermost open pair.
 */
SEC("usdt")
int sp_usdt(struct pt_regs *ctx)
{
	__u64 cookie = bpf_usdt_cookie(ctx), sp = PT_REGS_SP(ctx);
	__u32 sym = (__u32)cookie, flags = (__u32)(cookie >> 32);
	struct sp_thread *st;

	if (other_process())
		return 0;
	st = thread_of(bpf_get_current_task_btf());
	if (flags & SP_SYM_USDT_EVENT) {
		if (st && st->n)
			usdt_event(ctx, st, sym, flags, sp);
		return 0;
	}
	if (flags & (SP_SYM_USDT_DONE | SP_SYM_USDT_ERROR)) {
		__u32 n_before;

		if (!st || !st->n)
			return 0;
		n_before = st->n;
		if (flags & SP_SYM_USDT_DONE)
			sp_stack_usdt_done(ctx, st, sym, sp, bpf_ktime_get_ns(), min_span_ns);
		else
			sp_stack_usdt_error(ctx, st, sp, bpf_ktime_get_ns(), min_span_ns);
		count_open(n_before, st);
		return 0;
	}
	on_call(ctx, st, sym, flags, sp);
	return 0;
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

	if (target_tgid && current_tgid() != target_tgid)
		return 0;
	if (follow_children && cur->pid == cur->tgid) {
		__u32 tgid = current_tgid();

		bpf_map_delete_elem(&followed, &tgid);
	}
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

	/* current is still prev here; every traced process (--follow, --exe) */
	if (other_process())
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
	struct task_struct *cur = bpf_get_current_task_btf();
	struct sp_exec_rec *r;
	struct sp_thread *st;

	if (target_tgid) {
		if (current_tgid() == target_tgid)
			__sync_fetch_and_add(&exec_count, 1);
		return 0;
	}
	/* follow mode: the old program's calls on this thread end here (exec
	 * killed the other threads, whose exit hooks end theirs) */
	st = thread_of(cur);
	if (!st)
		return 0;
	if (st->n) {
		sp_stack_thread_exit(ctx, st, bpf_ktime_get_ns(), min_span_ns);
		__sync_fetch_and_add(&stacks_open, -1);
	}
	if (!bpf_task_storage_delete(&threads, cur))
		__sync_fetch_and_add(&stacks_alloc, -1);
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		return 0;
	}
	r->kind = SP_RK_EXEC;
	r->tgid = current_tgid();
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/* -p PID --follow: a child of a followed process is followed. Threads
 * share their process's entry. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sp_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u8 one = 1;

	if (!follow_children || ptgid == ctgid || !bpf_map_lookup_elem(&followed, &ptgid))
		return 0;
	bpf_map_update_elem(&followed, &ctgid, &one, BPF_ANY);
	return 0;
}

/* dlopen and dlclose call the rendezvous before and after changing the
 * link map. The record wakes the loader at once (the one record submitted
 * with a wakeup): the sooner it rescans, the fewer calls into a new
 * library go untraced. */
SEC("uprobe")
int sp_dl_change(struct pt_regs *ctx)
{
	__u32 tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	struct sp_maps_rec *r;

	/* attach --exe hooks every process's dynamic linker: only those
	 * userspace traces (listed in `followed`) are worth a record */
	if (!target_tgid && !follow_children) {
		if (!bpf_map_lookup_elem(&followed, &tgid))
			return 0;
	} else if (other_process()) {
		return 0;
	}
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&maps_lost, 1);
		return 0;
	}
	r->kind = SP_RK_MAPS;
	r->tgid = tgid;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/*
 * The unwind guard (issue 11): uretprobes where exceptions and panics
 * unwind. A hijacked return slot holds the kernel's trampoline, for which
 * the unwinder finds no unwind table: it aborts the target. Hooks on the
 * unwinder's entries (_Unwind_RaiseException, _Unwind_Resume_or_Rethrow,
 * _Unwind_ForcedUnwind) queue the real return addresses of the thread's
 * live hijacked slots and stop the thread with guard_sig; the guardian
 * process (user/attach/unwind_guard.c), its tracer, writes them and lets
 * it run on before the unwinder reads a word. At the handler's landing
 * pad (_Unwind_SetIP) the frames that survive get the trampoline back.
 * Unwound frames end as abnormal at the thread's next probe hit, as with
 * ret-site exits. The slots come from the kernel's own list
 * (utask->return_instances): nothing is paid on the hot path.
 */
const volatile int guard_sig = 0;
/* Restores or re-arms that could not be queued (no room for the thread's
 * record: more than SP_GUARD_THREADS threads unwinding at once, or no
 * memory for it). */
__u64 guard_lost = 0;
/* Words queued for the guardian, and hooks that found nothing to do. */
__u64 guard_words = 0;
__u64 guard_idle = 0;
/* Kernel return instances skipped as not live (below the stack pointer,
 * or out of the kernel's order: a frame left by longjmp). */
__u64 guard_stale = 0;

/* One record per thread, keyed by tid, written in place by the hook and
 * taken (lookup and delete) by the guardian at the thread's stop. A ring
 * buffer lost records: a hook with nothing to write discarded its
 * reservation, which frees nothing until the consumer passes it, and the
 * guardian consumes only at stops, so a few hundred idle throws (after
 * spanprobe died, say) filled it and the next restore was dropped: an
 * abort. Here a thread has at most one record outstanding (its signal
 * stops it before it runs on), so nothing is lost while there is room. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* allocated as threads unwind: a session without the guard pays
	 * nothing for it (preallocated, it would hold 4.4 MiB) */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SP_GUARD_THREADS);
	__type(key, __u32);
	__type(value, struct sp_guard_rec);
} guard_recs SEC(".maps");

/* zeroes for a new record (a global: too big for the BPF stack) */
const struct sp_guard_rec guard_empty = {};

/* An exception in flight on a thread: its object (phase 1 stores the
 * handler frame's identity in private_2), and whether the slots above it
 * still wait to be re-armed. */
struct sp_guard_state {
	__u64 exc;
	__u16 rearm;  /* 1: restored by a throw, the first pad not reached */
	__u16 forced; /* _Unwind_ForcedUnwind: every frame goes */
	__u32 n_stale; /* stale instances noted so far (a ring of SP_GUARD_STALE) */
	/* Kernel return instances a longjmp left behind: their frames are
	 * gone, but the kernel drops them only at a later hijack above
	 * them, and their slots may lie inside live frames again */
	__u64 stale_ri[SP_GUARD_STALE];
	__u64 stale_stack[SP_GUARD_STALE];
	/* The slots _Unwind_Backtrace's entry restored, re-armed at its
	 * return: exactly these, never one an exception in flight restored
	 * (a backtrace taken in a cleanup pad) */
	__u32 bt_n;
	__u32 bt_pad;
	__u64 bt_slot[SP_GUARD_MAX];
	__u64 bt_val[SP_GUARD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sp_guard_state);
} guard_state SEC(".maps");

/*
 * The kernel frees the return instances at or below a slot when it
 * hijacks that slot (an entry) or returns through it (the trampoline),
 * and gives the same objects out again, LIFO: a loop that longjmps, then
 * calls the same probed functions from the same place, gets the very
 * (instance, slot) pairs it left stale. A note outliving its instance
 * would hide a live frame from the restore: the unwinder would reach the
 * trampoline. So the notes go with their instances. Only a uretprobe
 * consumer's hit frees anything, and every such hit of this thread's
 * probed functions passes here (other tools' uretprobes do not: a note
 * of theirs can outlive its instance).
 */
static __always_inline void guard_forget(__u64 slot)
{
	struct sp_guard_state *gs;

	if (!guard_sig)
		return;
	gs = bpf_task_storage_get(&guard_state, bpf_get_current_task_btf(), 0, 0);
	if (!gs || !gs->n_stale)
		return;
	for (int i = 0; i < SP_GUARD_STALE; i++)
		if (gs->stale_ri[i] && gs->stale_stack[i] <= slot)
			gs->stale_ri[i] = gs->stale_stack[i] = 0;
}

static __always_inline bool is_stale(const struct sp_guard_state *gs, __u64 ri, __u64 stack)
{
	if (!gs)
		return false;
	for (int i = 0; i < SP_GUARD_STALE; i++)
		if (gs->stale_ri[i] == ri && gs->stale_stack[i] == stack && ri)
			return true;
	return false;
}

/* struct _Unwind_Exception: class, cleanup, private_1, private_2 */
#define SP_UNW_PRIVATE_2 24

static __always_inline bool in_area(__u64 v, __u64 lo)
{
	return lo && v >= lo && v < lo + 4096;
}

/*
 * Fills r with the live hijacked slots at or above `floor`: the kernel's
 * list runs from the newest instance to the oldest, so live slots rise
 * strictly along it. An instance below the floor, or not above the last
 * one taken, belongs to a frame that is gone (longjmp, an earlier
 * unwind): it is never written, whatever its word now holds. Restore
 * takes slots that hold the trampoline; re-arm, slots holding their real
 * return address.
 */
static __always_inline void guard_collect(struct sp_guard_rec *r, struct return_instance *ri,
					  const struct sp_guard_state *gs, __u64 floor, __u64 ceil,
					  __u64 tramp, __u32 op)
{
	__u64 prev = 0;

	r->n = 0;
	for (int i = 0; i < SP_GUARD_MAX; i++) {
		__u64 stack, orig, cur = 0, at = (__u64)ri;
		__u32 k;

		if (!ri)
			break;
		stack = BPF_CORE_READ(ri, stack);
		orig = BPF_CORE_READ(ri, orig_ret_vaddr);
		ri = BPF_CORE_READ(ri, next);
		if (is_stale(gs, at, stack)) {
			__sync_fetch_and_add(&guard_stale, 1);
			continue;
		}
		if (op == SP_GUARD_SWEEP) {
			/* every instance, in the kernel's order: the guardian
			 * knows the thread's stack pointer */
			k = r->n & (SP_GUARD_MAX - 1);
			r->slot[k] = stack;
			r->val[k] = orig;
			r->n++;
			continue;
		}
		if (stack < floor || stack <= prev) {
			/* below a handler being re-armed: unwound, not stale */
			if (op != SP_GUARD_REARM)
				__sync_fetch_and_add(&guard_stale, 1);
			continue;
		}
		prev = stack;
		if (stack >= ceil)
			break;
		if (bpf_probe_read_user(&cur, sizeof(cur), (void *)stack))
			continue;
		if (op == SP_GUARD_RESTORE ? !in_area(cur, tramp) : cur != orig)
			continue;
		k = r->n & (SP_GUARD_MAX - 1);
		r->slot[k] = stack;
		r->val[k] = orig;
		r->n++;
	}
}

/* glibc's jmp_buf keeps the stack pointer mangled: rotated left by 17
 * bits after a xor with the thread's pointer guard (tcbhead_t at %fs:0,
 * pointer_guard at 0x30). */
#define SP_JB_RSP 48
#define SP_TCB_POINTER_GUARD 0x30

static __always_inline __u64 jmp_target_sp(struct pt_regs *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u64 fs = BPF_CORE_READ(t, thread.fsbase), guard = 0, v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (void *)(PT_REGS_PARM1(ctx) + SP_JB_RSP)) ||
	    bpf_probe_read_user(&guard, sizeof(guard), (void *)(fs + SP_TCB_POINTER_GUARD)))
		return 0;
	return ((v >> 17) | (v << 47)) ^ guard;
}

/* A longjmp (siglongjmp, __longjmp_chk) leaves: every hijacked frame
 * below its target is gone. */
static __always_inline void note_stale(struct pt_regs *ctx, struct sp_guard_state *gs)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct return_instance *ri = BPF_CORE_READ(t, utask, return_instances);
	__u64 target = jmp_target_sp(ctx);

	if (!target)
		return;
	for (int i = 0; i < SP_GUARD_MAX; i++) {
		__u64 stack, at = (__u64)ri;
		__u32 k;

		if (!ri)
			break;
		stack = BPF_CORE_READ(ri, stack);
		ri = BPF_CORE_READ(ri, next);
		if (stack >= target)
			break; /* the kernel's order: the rest is live */
		if (is_stale(gs, at, stack))
			continue;
		k = gs->n_stale++ & (SP_GUARD_STALE - 1);
		gs->stale_ri[k] = at;
		gs->stale_stack[k] = stack;
	}
}

/* What a hook does, by the kind in its cookie's low half. */
static __always_inline int guard_bounds(struct pt_regs *ctx, __u32 kind,
					struct sp_guard_state *gs, __u64 *floor,
					__u64 *ceil, __u32 *op)
{
	__u64 p2 = 0;

	*floor = PT_REGS_SP(ctx);
	*ceil = ~0ull;
	*op = SP_GUARD_RESTORE;
	switch (kind) {
	case SP_GUARD_THROW:
	case SP_GUARD_FORCED:
		if (gs) {
			gs->exc = PT_REGS_PARM1(ctx);
			/* a forced unwind (pthread_exit, cancel) leaves no
			 * frame behind: nothing to re-arm */
			gs->forced = kind == SP_GUARD_FORCED;
			gs->rearm = !gs->forced;
		}
		return 0;
	case SP_GUARD_RESUME:
		/* a cleanup pad ends: unwinding goes on up to the handler.
		 * Slots below it that a nested exception's handler re-armed
		 * (one thrown and caught in a destructor) are restored
		 * again; the handler's and above stay armed */
		if (!gs || gs->forced)
			return 0;
		if (bpf_probe_read_user(&p2, sizeof(p2),
					(void *)(PT_REGS_PARM1(ctx) + SP_UNW_PRIVATE_2)) || !p2)
			return -1;
		*ceil = p2;
		return 0;
	case SP_GUARD_LONGJMP:
		if (gs)
			note_stale(ctx, gs);
		return -1;
	case SP_GUARD_BACKTRACE:
		if (gs)
			gs->bt_n = 0;
		return 0;
	case SP_GUARD_BACKTRACE_RET:
		*op = SP_GUARD_REARM;
		return 0;
	case SP_GUARD_SETIP:
		/* the first landing pad of phase 2 is the handler's or a
		 * cleanup's below it: frames at or above the handler's
		 * call site (private_2) survive either way */
		if (!gs || !gs->rearm || !gs->exc)
			return -1;
		gs->rearm = 0;
		if (bpf_probe_read_user(&p2, sizeof(p2),
					(void *)(gs->exc + SP_UNW_PRIVATE_2)) || !p2)
			return -1;
		*floor = p2;
		*op = SP_GUARD_REARM;
		return 0;
	}
	return -1;
}

/* Remembers what a backtrace's entry restored (the guardian writes it). */
static __always_inline void bt_remember(struct sp_guard_state *gs, const struct sp_guard_rec *r)
{
	__u32 n = r->n < SP_GUARD_MAX ? r->n : SP_GUARD_MAX;

	for (__u32 i = 0; i < SP_GUARD_MAX && i < n; i++) {
		gs->bt_slot[i] = r->slot[i];
		gs->bt_val[i] = r->val[i];
	}
	gs->bt_n = n;
}

/* At a backtrace's return: the remembered slots that still hold their
 * real return address get the trampoline back. */
static __always_inline void bt_collect(struct sp_guard_state *gs, struct sp_guard_rec *r)
{
	__u32 n = gs->bt_n;

	r->n = 0;
	for (__u32 i = 0; i < SP_GUARD_MAX && i < n; i++) {
		__u64 cur = 0;
		__u32 k;

		if (bpf_probe_read_user(&cur, sizeof(cur), (void *)gs->bt_slot[i]) ||
		    cur != gs->bt_val[i])
			continue;
		k = r->n & (SP_GUARD_MAX - 1);
		r->slot[k] = gs->bt_slot[i];
		r->val[k] = gs->bt_val[i];
		r->n++;
	}
	gs->bt_n = 0;
}

/* The thread's record, created empty if it has none. One left by an
 * earlier hook is still there only if that hook's signal did not stop
 * the thread (it blocks the signal): nothing could write it anyway, the
 * new one takes its place. */
static __always_inline struct sp_guard_rec *guard_rec_of(__u32 tid)
{
	struct sp_guard_rec *r = bpf_map_lookup_elem(&guard_recs, &tid);

	if (r)
		return r;
	if (bpf_map_update_elem(&guard_recs, &tid, &guard_empty, BPF_NOEXIST) &&
	    bpf_map_update_elem(&guard_recs, &tid, &guard_empty, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&guard_recs, &tid);
}

SEC("uprobe")
int sp_guard(struct pt_regs *ctx)
{
	__u32 kind = (__u32)bpf_get_attach_cookie(ctx);
	struct task_struct *t = bpf_get_current_task_btf();
	struct sp_guard_state *gs;
	struct return_instance *ri;
	struct sp_guard_rec *r;
	__u64 tramp, floor, ceil;
	__u32 op, tid;

	if (other_process())
		return 0;
	ri = BPF_CORE_READ(t, utask, return_instances);
	gs = bpf_task_storage_get(&guard_state, t, 0,
				  ri && (kind == SP_GUARD_THROW || kind == SP_GUARD_FORCED ||
					 kind == SP_GUARD_LONGJMP || kind == SP_GUARD_BACKTRACE) ?
				  BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (guard_bounds(ctx, kind, gs, &floor, &ceil, &op) || !ri)
		return 0;
	tramp = BPF_CORE_READ(t, mm, uprobes_state.xol_area, vaddr);
	if (!tramp)
		return 0;
	if (kind == SP_GUARD_BACKTRACE_RET && (!gs || !gs->bt_n))
		return 0;
	tid = (__u32)bpf_get_current_pid_tgid();
	r = guard_rec_of(tid);
	if (!r) {
		__sync_fetch_and_add(&guard_lost, 1);
		return 0;
	}
	if (kind == SP_GUARD_BACKTRACE_RET) {
		bt_collect(gs, r);
	} else {
		guard_collect(r, ri, gs, floor, ceil, tramp, op);
		if (kind == SP_GUARD_BACKTRACE && gs)
			bt_remember(gs, r);
	}
	if (!r->n) {
		bpf_map_delete_elem(&guard_recs, &tid);
		__sync_fetch_and_add(&guard_idle, 1);
		return 0;
	}
	r->kind = SP_RK_GUARD;
	r->tgid = current_tgid();
	r->tid = tid;
	r->op = op;
	r->tramp = tramp;
	r->pad = 0;
	__sync_fetch_and_add(&guard_words, r->n);
	/* delivered on the way back to user mode, before the next
	 * instruction of the unwinder runs */
	bpf_send_signal_thread(guard_sig);
	return 0;
}

/* A record per thread of the target with hijacked returns: the guardian
 * restores every live one before it lets spanprobe's probes go (a frame
 * still hijacked then would abort the next exception through it, with no
 * guard left). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_guard_rec);
} guard_scratch SEC(".maps");

SEC("iter/task")
int sp_guard_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	struct sp_guard_state *gs;
	struct return_instance *ri;
	struct sp_guard_rec *r;
	__u32 zero = 0;

	if (!t || t->tgid != target_tgid)
		return 0;
	ri = BPF_CORE_READ(t, utask, return_instances);
	r = bpf_map_lookup_elem(&guard_scratch, &zero);
	if (!ri || !r)
		return 0;
	gs = bpf_task_storage_get(&guard_state, t, 0, 0);
	guard_collect(r, ri, gs, 0, ~0ull, 0, SP_GUARD_SWEEP);
	r->kind = SP_RK_GUARD;
	r->tgid = t->tgid;
	r->tid = t->pid;
	r->op = SP_GUARD_SWEEP;
	r->tramp = BPF_CORE_READ(t, mm, uprobes_state.xol_area, vaddr);
	bpf_seq_write(ctx->meta->seq, r, sizeof(*r));
	return 0;
}
