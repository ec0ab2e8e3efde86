/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Event layouts shared by the BPF programs and the userspace loader. */
#ifndef SPANPROBE_SHARED_H
#define SPANPROBE_SHARED_H

enum sp_event_kind {
	SP_EV_BEGIN = 1,
	SP_EV_END = 2,
};

/*
 * One function entry or exit. frame_sp is the address of the call's
 * return-address slot, the same value at entry and at every kind of exit
 * probe, so userspace can pair them and can tell from any later event on
 * the thread which frames a longjmp or an unwind has already destroyed.
 */
struct sp_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 frame_sp;
	/* begin only: the return address in the slot. A call entered by a tail
	 * jump from a uretprobe'd function finds the kernel's return
	 * trampoline there instead of a real return address. */
	__u64 ret_addr;
	__u32 tgid;
	__u32 tid;
	__u32 sym_id;    /* attach cookie: index into the loader's probe table */
	__u32 kind;      /* enum sp_event_kind */
};

#endif
