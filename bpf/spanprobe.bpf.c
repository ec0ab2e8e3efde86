// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Entry and exit probes for every function of the symbol list. Each hit
 * becomes one fixed-size event; spans are assembled in userspace.
 *
 * Three programs, all keyed by the attach cookie (the function's index in
 * the loader's probe table):
 *   sp_entry      uprobe at the function's first instruction
 *   sp_exit_ret   uretprobe (the kernel hijacks the return address)
 *   sp_exit_site  uprobe on each ret / tail-jump instruction, used where an
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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Reserve failures: the exact number of events lost to a full buffer. */
__u64 dropped_events = 0;
/* Every event produced, lost or not, so userspace can report a rate. */
__u64 total_events = 0;

static __always_inline int emit(struct pt_regs *ctx, __u32 kind, __u64 frame_sp,
				bool read_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sp_event *e;

	if ((__u32)(id >> 32) != target_tgid)
		return 0;
	__sync_fetch_and_add(&total_events, 1);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped_events, 1);
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->frame_sp = frame_sp;
	e->ret_addr = 0;
	if (read_ret)
		bpf_probe_read_user(&e->ret_addr, sizeof(e->ret_addr), (void *)frame_sp);
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->sym_id = (__u32)bpf_get_attach_cookie(ctx);
	e->kind = kind;
	/* The loader drains on a timer: a wakeup per event would cost more
	 * than the probe itself. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* At entry SP points at the return address pushed by the call. */
SEC("uprobe")
int sp_entry(struct pt_regs *ctx)
{
	return emit(ctx, SP_EV_BEGIN, PT_REGS_SP(ctx), true);
}

/* After the return the slot has been popped: SP is one word above it. */
SEC("uretprobe")
int sp_exit_ret(struct pt_regs *ctx)
{
	return emit(ctx, SP_EV_END, PT_REGS_SP(ctx) - 8, false);
}

/* On a ret or a tail jump the frame is torn down: SP is back on the slot. */
SEC("uprobe")
int sp_exit_site(struct pt_regs *ctx)
{
	return emit(ctx, SP_EV_END, PT_REGS_SP(ctx), false);
}
