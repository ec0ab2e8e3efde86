// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of `make bench`: empty entry and return programs. Whatever a
 * uprobe costs with them attached is the kernel's price of the
 * breakpoint, the trampoline and one BPF program run; spanprobe's own
 * cost is measured against it. tests/bench/floor.c loads them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern bool bpf_session_is_return(void) __ksym __weak;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* uprobe_multi link: the attach kind spanprobe falls back to on 6.6+ */
SEC("uprobe.multi")
int floor_multi_entry(struct pt_regs *ctx)
{
	return 0;
}

SEC("uretprobe.multi")
int floor_multi_exit(struct pt_regs *ctx)
{
	return 0;
}

/* Loaded as a uprobe session (spanprobe's default on 6.13+): 0 asks for
 * the return half too, so one program runs at entry and at return. */
SEC("uprobe.multi")
int floor_session(struct pt_regs *ctx)
{
	return 0;
}

/* The same returning 1: the return half is skipped, as spanprobe's
 * session program does for calls outside any query. */
SEC("uprobe.multi")
int floor_session_skip(struct pt_regs *ctx)
{
	return 1;
}

/* The pair plus one clock read each, what any span tracer needs at
 * least: separates the price of the timestamps (high in a VM) from the
 * rest of spanprobe's work. */
__u64 floor_last_ns;

SEC("uprobe.multi")
int floor_clock_entry(struct pt_regs *ctx)
{
	floor_last_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("uretprobe.multi")
int floor_clock_exit(struct pt_regs *ctx)
{
	floor_last_ns = bpf_ktime_get_ns();
	return 0;
}

/* Classic perf-event uprobes, one link per probe point. */
SEC("uprobe")
int floor_classic_entry(struct pt_regs *ctx)
{
	return 0;
}

SEC("uretprobe")
int floor_classic_exit(struct pt_regs *ctx)
{
	return 0;
}

/* The least any span tracer must do per call inside a query, as a uprobe
 * session: a timestamp at entry kept in per-thread state, a second one at
 * return to learn the duration, which decides whether the span leaves the
 * kernel (here: never). No stack, no keys, no parents, no statistics:
 * spanprobe's logic is measured against this too. */
struct floor_thread {
	__u64 begin_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct floor_thread);
} floor_threads SEC(".maps");

__u64 floor_long_calls;

SEC("uprobe.multi")
int floor_session_minimal(struct pt_regs *ctx)
{
	struct floor_thread *t = bpf_task_storage_get(&floor_threads, bpf_get_current_task_btf(),
						      0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!t)
		return 1;
	if (!bpf_session_is_return()) {
		t->begin_ns = bpf_ktime_get_ns();
		return 0;
	}
	if (bpf_ktime_get_ns() - t->begin_ns >= 5000000)
		floor_long_calls++;
	return 0;
}
