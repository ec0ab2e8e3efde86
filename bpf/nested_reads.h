/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Nested (inlined) futures of a carrier poll. A release build inlines the
 * polls of most async fns into the out-of-line poll of their task root:
 * their futures live by value inside the root future, and their progress
 * is only visible as bytes in it (coroutine states, join! tags, pointers to
 * boxed or spawned futures, the arguments of each instance). At each entry
 * and exit of a carrier poll, the carrier's read list (compiled by
 * userspace from the DWARF analysis) is read; a record leaves the kernel
 * only when a value differs from the previous read of the same future, and
 * userspace (user/resolve/async_nested.c) turns the changes into spans.
 *
 * Values that lie close together are copied with one bpf_probe_read_user
 * per range (struct sp_read_ranges) into a per-thread scratch buffer first.
 *
 * Included by spanprobe.bpf.c after its maps; needs `records` and
 * `dropped_records`.
 */
#ifndef SPANPROBE_NESTED_READS_H
#define SPANPROBE_NESTED_READS_H

#include "spanprobe.h"

/* Indexed by sym_id; sized and filled by the loader (n == 0: no list). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_read_list);
} nested_reads SEC(".maps");

/* The same lists as bulk copies (struct sp_read_ranges), by sym_id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_read_ranges);
} nested_ranges SEC(".maps");

/* Where the copies land: twice the largest total, so that a copy at any
 * masked position stays inside (what the verifier checks). Per thread, not
 * per CPU: a uprobe's program runs preemptible (migration disabled only),
 * so another thread's poll on the same CPU could overwrite a per-CPU
 * buffer between the copy and the reads from it. */
struct sp_nested_scratch {
	__u8 b[2 * SP_NESTED_SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sp_nested_scratch);
} nested_scratch SEC(".maps");

static __always_inline struct sp_nested_scratch *nested_scratch_get(__u64 flags)
{
	return bpf_task_storage_get(&nested_scratch, bpf_get_current_task_btf(), 0, flags);
}

/* The previous read of each carrier future. LRU: a cancelled future
 * never returns and would otherwise leave its entry behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sp_future_key);
	__type(value, struct sp_nested_last);
} nested_last SEC(".maps");

static const struct sp_nested_last empty_last;

/* One bpf_probe_read_user per range of sym_id's list into this CPU's
 * scratch buffer; 0 when there are copies to read values from. A range
 * that cannot be read leaves zeros, as a value read alone would. A global
 * function: the verifier checks its loop once, not once per state the
 * caller reaches it in. */
__noinline int sp_nested_copy(__u64 obj, __u32 sym_id)
{
	struct sp_read_ranges *rr = bpf_map_lookup_elem(&nested_ranges, &sym_id);
	struct sp_nested_scratch *sc = nested_scratch_get(BPF_LOCAL_STORAGE_GET_F_CREATE);
	__u32 base = 0, n;

	if (!rr || !sc || !rr->n)
		return -1;
	n = rr->n;
	for (__u32 k = 0; k < SP_NESTED_MAX; k++) {
		__u32 size;

		if (k >= n)
			break;
		size = rr->r[k].size;
		if (size == 0 || size > SP_NESTED_SCRATCH || base >= SP_NESTED_SCRATCH)
			break;
		bpf_probe_read_user(&sc->b[base & (SP_NESTED_SCRATCH - 1)], size,
				    (void *)(obj + rr->r[k].off));
		base += size;
	}
	return 0;
}

/* Reads obj's list into a reserved record; submits it when something
 * changed since the last read of this instance (fut_key), discards it
 * otherwise. exit_ns == 0: a read at poll entry. A lost record leaves the
 * previous values in place, so the next read reports the change again. */
__noinline int sp_nested_snap(__u64 obj, __u32 sym_id, __u64 fut_key, __u64 entry_ns,
			      __u64 exit_ns)
{
	struct sp_future_key fk = { .obj = obj, .sym_id = sym_id,
				    .tgid = (__u32)(bpf_get_current_pid_tgid() >> 32) };
	struct sp_read_list *rl = bpf_map_lookup_elem(&nested_reads, &sym_id);
	struct sp_read_ranges *rr = bpf_map_lookup_elem(&nested_ranges, &sym_id);
	struct sp_nested_scratch *sc = NULL;
	__u64 diff = 0;
	struct sp_nested_last *last;
	struct sp_nested_rec *r;
	int changed;
	__u32 n;

	if (!rl || !rl->n)
		return 0;
	n = rl->n;
	last = bpf_map_lookup_elem(&nested_last, &fk);
	if (!last) {
		bpf_map_update_elem(&nested_last, &fk, &empty_last, BPF_ANY);
		last = bpf_map_lookup_elem(&nested_last, &fk);
		if (!last)
			return 0;
	}
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&dropped_records, 1);
		return 0;
	}
	changed = last->fut_key != fut_key;
	if (rr && sp_nested_copy(obj, sym_id) == 0)
		sc = nested_scratch_get(0);
	/* no branch on the values in these loops: the verifier would follow
	 * every combination */
	if (sc && rr) {
		for (__u32 i = 0; i < SP_NESTED_MAX; i++) {
			__u64 v;

			if (i >= n)
				break;
			v = *(const __u64 *)&sc->b[rr->pos[i] & (SP_NESTED_SCRATCH - 1)];
			/* sizes are 1 to 8: keep the low size bytes */
			v &= ~0ull >> ((64 - rl->r[i].size * 8) & 63);
			r->v[i] = v;
			diff |= v ^ last->v[i];
		}
	} else {
		for (__u32 i = 0; i < SP_NESTED_MAX; i++) {
			__u32 size;
			__u64 v = 0;

			if (i >= n)
				break;
			size = rl->r[i].size;
			if (size > sizeof(v))
				size = sizeof(v);
			bpf_probe_read_user(&v, size, (void *)(obj + rl->r[i].off));
			r->v[i] = v;
			diff |= v ^ last->v[i];
		}
	}
	changed |= diff != 0;
	if (!changed) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return 0;
	}
	for (__u32 i = 0; i < SP_NESTED_MAX; i++) {
		if (i >= n)
			break;
		last->v[i] = r->v[i];
	}
	last->fut_key = fut_key;
	r->kind = SP_RK_NESTED;
	r->sym_id = sym_id;
	r->fut_key = fut_key;
	r->entry_ns = entry_ns;
	r->exit_ns = exit_ns;
	r->n = n > SP_NESTED_MAX ? SP_NESTED_MAX : n;
	r->tid = (__u32)bpf_get_current_pid_tgid();
	r->tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	r->pad = 0;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

/* The carrier future is over: its last read goes with it. */
static __always_inline void sp_nested_forget(const struct sp_future_key *fk)
{
	bpf_map_delete_elem(&nested_last, fk);
}

#endif
