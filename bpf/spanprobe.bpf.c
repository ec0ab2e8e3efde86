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

extern bool bpf_session_is_return(void) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} records SEC(".maps");

/* Only threads inside a query have an entry; it goes when the query ends.
 * LRU bounds what threads that die mid-query can leave behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sp_thread);
} threads SEC(".maps");

/* enum sp_sym_flags per probed function; sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sym_flags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_sym_stats);
} sym_stats SEC(".maps");

static const struct sp_thread empty_thread;

static __always_inline int emit(void *ctx, const struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags);
static __always_inline void on_close(void *ctx, __u32 sym_id, __u64 dur, __u32 flags);
static __always_inline __u64 read_slot(void *ctx, __u64 sp);

#define SP_EMIT(ctx, st, idx, end, flags) emit(ctx, st, idx, end, flags)
#define SP_ON_CLOSE(ctx, sym, dur, flags) on_close(ctx, sym, dur, flags)
#define SP_READ_SLOT(ctx, sp) read_slot(ctx, sp)
#define SP_IS_TRAMPOLINE(ctx, a) ((a) >= tramp_lo && (a) < tramp_hi)
#include "span_stack.h"

static __always_inline int emit(void *ctx, const struct sp_thread *st, __u32 idx,
				__u64 end_ns, __u32 flags)
{
	struct sp_span_rec *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	__u64 id = bpf_get_current_pid_tgid();

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

/* 4 log-linear buckets per power of two, for p50/p99 within ~19%. */
/* clang 14's BPF backend cannot lower __builtin_clzll. */
static __always_inline __u32 log2_u64(__u64 v)
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

static __always_inline __u32 hist_bucket(__u64 ns)
{
	__u32 lg = log2_u64(ns), sub;

	sub = lg >= 2 ? (ns >> (lg - 2)) & 3 : (__u32)ns & 3;
	lg = lg * SP_HIST_SUB + sub;
	return lg < SP_HIST_BUCKETS ? lg : SP_HIST_BUCKETS - 1;
}

static __always_inline void on_close(void *ctx, __u32 sym_id, __u64 dur, __u32 flags)
{
	struct sp_sym_stats *s = bpf_map_lookup_elem(&sym_stats, &sym_id);
	__u32 b = hist_bucket(dur);

	if (!s)
		return;
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
}

static __always_inline __u64 read_slot(void *ctx, __u64 sp)
{
	__u64 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)sp);
	return v;
}

static __always_inline int on_entry(struct pt_regs *ctx, __u64 sp)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, sym = (__u32)bpf_get_attach_cookie(ctx);
	__u32 *fl = bpf_map_lookup_elem(&sym_flags, &sym);
	int is_root = fl && (*fl & SP_SYM_ROOT), verdict;
	struct sp_thread *st;

	if ((__u32)(id >> 32) != target_tgid)
		return SP_SKIP_RETURN;
	st = bpf_map_lookup_elem(&threads, &tid);
	if (!st) {
		if (!is_root) {
			struct sp_sym_stats *s = bpf_map_lookup_elem(&sym_stats, &sym);

			if (s)
				s->outside_calls++;
			return SP_SKIP_RETURN;
		}
		bpf_map_update_elem(&threads, &tid, &empty_thread, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&threads, &tid);
		if (!st)
			return SP_SKIP_RETURN;
	}
	verdict = sp_stack_entry(ctx, st, sym, is_root, sp, bpf_ktime_get_ns(), min_span_ns);
	if (st->n == SP_MAX_DEPTH && verdict == SP_SKIP_RETURN)
		__sync_fetch_and_add(&depth_overflows, 1);
	if (!st->n)
		bpf_map_delete_elem(&threads, &tid);
	return verdict;
}

static __always_inline int on_exit(struct pt_regs *ctx, __u64 sp)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct sp_thread *st;

	if ((__u32)(id >> 32) != target_tgid)
		return 0;
	st = bpf_map_lookup_elem(&threads, &tid);
	if (!st)
		return 0;
	sp_stack_exit(ctx, st, (__u32)bpf_get_attach_cookie(ctx), sp, bpf_ktime_get_ns(),
		      min_span_ns);
	if (!st->n)
		bpf_map_delete_elem(&threads, &tid);
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
	on_entry(ctx, PT_REGS_SP(ctx));
	return 0;
}

SEC("uretprobe")
int sp_exit_ret(struct pt_regs *ctx)
{
	return on_exit(ctx, PT_REGS_SP(ctx) - 8);
}

/* On a ret or a tail jump the frame is torn down: SP is back on the slot. */
SEC("uprobe")
int sp_exit_site(struct pt_regs *ctx)
{
	return on_exit(ctx, PT_REGS_SP(ctx));
}
