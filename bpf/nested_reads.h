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

/* One bpf_probe_read_user per range of sym_id's list into this thread's
 * scratch buffer; 0 when there are copies to read values from. A range
 * that cannot be read leaves zeros, as a value read alone would. A global
 * function: the verifier checks its loop once, not once per state the
 * caller reaches it in. Lists with hops (reads through a pointer another
 * read found) have no ranges (nested_ranges.c): ranges are offsets from
 * self only. */
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

/* Each value of the list read alone, hops included: at self + off, or at
 * off from the pointer an earlier read of this list found. last->v takes
 * the new values as they are read (a hop reads through one of them).
 * Returns the bits that differ from the previous read. */
static __always_inline __u64 sp_nested_read_each(__u64 obj, const struct sp_read_list *rl,
						 struct sp_nested_last *last,
						 struct sp_nested_rec *r, __u32 n)
{
	__u64 diff = 0;

	for (__u32 i = 0; i < SP_NESTED_MAX; i++) {
		__u32 size, base;
		__u64 v = 0, from = obj;

		if (i >= n)
			break;
		size = rl->r[i].size;
		base = rl->r[i].base;
		if (size > sizeof(v))
			size = sizeof(v);
		if (base)
			from = last->v[(base - 1) & SP_NESTED_MASK];
		/* a null base reads at a small address: that fails, v is 0 */
		bpf_probe_read_user(&v, size, (void *)(from + rl->r[i].off));
		r->v[i] = v;
		diff |= v ^ last->v[i];
		last->v[i] = v;
	}
	return diff;
}

/* Reads obj's list into a reserved record at now, during the carrier
 * poll that began at poll_ns (now == poll_ns: at its entry; mid: inside
 * it, at another probe hit or a context switch); submits it
 * when something changed since the last read of this instance (fut_key),
 * discards it otherwise. The record's window starts at the previous read
 * of the instance, sent or not, when there was one. A lost record leaves
 * the previous values in place, so the next read reports the change
 * again. */
__noinline int sp_nested_snap(__u64 obj, __u64 sym_mid, __u64 fut_key, __u64 poll_ns,
			      __u64 now)
{
	/* five arguments at most: the carrier's sym_id | mid << 32 */
	__u32 sym_id = (__u32)sym_mid, mid = (__u32)(sym_mid >> 32);
	struct sp_future_key fk = { .obj = obj, .sym_id = sym_id,
				    .tgid = (__u32)(bpf_get_current_pid_tgid() >> 32) };
	struct sp_read_list *rl = bpf_map_lookup_elem(&nested_reads, &sym_id);
	struct sp_read_ranges *rr = bpf_map_lookup_elem(&nested_ranges, &sym_id);
	struct sp_nested_scratch *sc = NULL;
	__u64 diff = 0, prev;
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
			last->v[i] = v;
		}
	} else {
		diff = sp_nested_read_each(obj, rl, last, r, n);
	}
	changed |= diff != 0;
	prev = last->fut_key == fut_key ? last->read_ns : 0;
	last->read_ns = now;
	if (!mid && last->sent_mid)
		changed = 1;
	if (!changed) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return 0;
	}
	last->fut_key = fut_key;
	last->sent_mid = mid;
	r->kind = SP_RK_NESTED;
	r->sym_id = sym_id;
	r->fut_key = fut_key;
	r->entry_ns = prev && prev <= now ? prev : poll_ns;
	r->exit_ns = prev && prev <= now ? now : (now == poll_ns ? 0 : now);
	r->poll_ns = poll_ns;
	r->mid = mid;
	r->n = n > SP_NESTED_MAX ? SP_NESTED_MAX : n;
	r->tid = (__u32)bpf_get_current_pid_tgid();
	r->tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	r->obj = obj;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

/* A probe hit on a thread where a carrier's poll is open (the innermost
 * one): the carrier's futures are read now, so that what changed since
 * its last read is placed before this hit (an await that ended before a
 * sync call, the call's parent) rather than somewhere in the whole poll.
 * skip_top: the top frame is the carrier being left, which reads itself.
 * A global function: the verifier checks it once, not at every caller. */
__noinline int sp_nested_observe(struct sp_thread *st, __u64 now, __u32 skip_top)
{
	__u32 n;

	if (!st)
		return 0;
	n = st->n;

	for (int k = 0; k < SP_MAX_DEPTH; k++) {
		const struct sp_frame *f;

		if ((__u32)k >= n)
			break;
		f = &st->f[(n - 1 - k) & SP_DEPTH_MASK];
		if (!(f->flags & SP_FRAME_CARRIER))
			continue;
		if (!(skip_top && k == 0) && (f->flags & SP_FRAME_OBSERVED))
			sp_nested_snap(f->obj, f->sym_id | 1ull << 32, f->key, f->begin_ns, now);
		break;
	}
	return 0;
}

/* The carrier future is over: its last read goes with it. */
static __always_inline void sp_nested_forget(const struct sp_future_key *fk)
{
	bpf_map_delete_elem(&nested_last, fk);
}

#endif
