/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The per-thread call stack that turns entry and exit hits into spans.
 * Compiled into the BPF programs and, unchanged, into the unit tests, so
 * the tests exercise the logic the kernel runs.
 *
 * The includer defines, before including:
 *   int  SP_EMIT(ctx, const struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags)
 *        send frame idx as a record; non-zero if it was lost
 *   void SP_ON_CLOSE(ctx, __u32 sym_id, __u64 dur_ns, __u32 flags)
 *        per-symbol accounting
 *   __u64 SP_READ_SLOT(ctx, __u64 sp)      the return address stored at sp
 *   int  SP_IS_TRAMPOLINE(ctx, __u64 addr) addr is the uretprobe trampoline
 *   __u64 SP_NEW_KEY(ctx)                  a span key never used before
 *   void SP_POLL_DONE(ctx, const struct sp_thread *st, __u32 idx, __u64 end_ns, __u32 flags)
 *        a poll of a future ends (flags: abnormal when it was unwound)
 */
#ifndef SPANPROBE_SPAN_STACK_H
#define SPANPROBE_SPAN_STACK_H

#include "spanprobe.h"

enum sp_entry_verdict {
	SP_TRACE_RETURN = 0, /* a session program's 0: run the return half */
	SP_SKIP_RETURN = 1,
};

/* Spans under min_span never leave the kernel; a root always does, so
 * userspace learns the query's length even when nothing in it was long. */
static __always_inline void sp_close_top(void *ctx, struct sp_thread *st, __u64 end_ns,
					 __u32 flags, __u64 min_span)
{
	__u32 idx = (st->n - 1) & SP_DEPTH_MASK;
	const struct sp_frame *f = &st->f[idx];
	__u64 dur = end_ns > f->begin_ns ? end_ns - f->begin_ns : 0;

	SP_ON_CLOSE(ctx, f->sym_id, dur, flags | (f->flags & SP_REC_ERROR));
	if (f->flags & SP_FRAME_POLL)
		SP_POLL_DONE(ctx, st, idx, end_ns, flags);
	else if ((f->key == f->query_key || dur >= min_span) &&
		 SP_EMIT(ctx, st, idx, end_ns, flags))
		st->flags |= SP_REC_INCOMPLETE;
	st->n--;
}

/* Frames whose slot lies below live_sp were destroyed without their exit
 * probe (longjmp, exception, unwinding): stacks grow down, so every live
 * caller's slot is above the current stack pointer. */
static __always_inline void sp_pop_dead(void *ctx, struct sp_thread *st, __u64 live_sp,
					__u64 now, __u64 min_span)
{
	for (int k = 0; k < SP_MAX_DEPTH; k++) {
		if (!st->n || st->f[(st->n - 1) & SP_DEPTH_MASK].sp >= live_sp)
			break;
		sp_close_top(ctx, st, now, SP_REC_ABNORMAL, min_span);
	}
}

/*
 * A call or a poll begins at slot sp: frames below it are dead, and a frame
 * on the same slot is over too: entered by a tail jump when the slot holds
 * the uretprobe trampoline (with exit probes on jmp sites its end came
 * first), lost to a longjmp otherwise.
 */
static __always_inline void sp_stack_unwind(void *ctx, struct sp_thread *st, __u64 sp,
					    __u64 now, __u64 min_span)
{
	sp_pop_dead(ctx, st, sp, now, min_span);
	if (st->n && st->f[(st->n - 1) & SP_DEPTH_MASK].sp == sp)
		sp_close_top(ctx, st, now,
			     SP_IS_TRAMPOLINE(ctx, SP_READ_SLOT(ctx, sp)) ? 0 : SP_REC_ABNORMAL,
			     min_span);
}

/* Pushes a frame; the caller has checked that there is room. */
static __always_inline void sp_push_frame(struct sp_thread *st, __u64 sp, __u64 now,
					  __u32 sym_id, __u32 flags, __u64 obj, __u64 key,
					  __u64 query_key, __u32 depth)
{
	struct sp_frame *f = &st->f[st->n & SP_DEPTH_MASK];

	if (!st->n)
		st->flags = 0; /* a new query: the stack outlives queries, its losses do not */
	f->sp = sp;
	f->begin_ns = now;
	f->sym_id = sym_id;
	f->flags = flags;
	f->obj = obj;
	f->key = key;
	f->query_key = query_key;
	f->depth = depth;
	st->n++;
}

/* A call begins. Outside any query it is not tracked and needs no return
 * probe. */
static __always_inline int sp_stack_entry(void *ctx, struct sp_thread *st, __u32 sym_id,
					  int is_root, __u64 sp, __u64 now, __u64 min_span)
{
	const struct sp_frame *parent;
	__u64 key;

	sp_stack_unwind(ctx, st, sp, now, min_span);
	if (!st->n && !is_root)
		return SP_SKIP_RETURN;
	if (st->n >= SP_MAX_DEPTH) {
		st->flags |= SP_REC_INCOMPLETE;
		return SP_SKIP_RETURN;
	}
	key = SP_NEW_KEY(ctx);
	if (!st->n) {
		sp_push_frame(st, sp, now, sym_id, 0, 0, key, key, 0);
		return SP_TRACE_RETURN;
	}
	parent = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	sp_push_frame(st, sp, now, sym_id, 0, 0, key, parent->query_key, parent->depth + 1);
	return SP_TRACE_RETURN;
}

/* A poll of a traced future begins: the frame carries the future's span,
 * so calls and polls made inside it become its children. */
static __always_inline int sp_stack_poll(struct sp_thread *st, __u32 sym_id, __u64 sp,
					 __u64 now, const struct sp_future *fu, __u64 obj)
{
	if (st->n >= SP_MAX_DEPTH) {
		st->flags |= SP_REC_INCOMPLETE;
		return SP_SKIP_RETURN;
	}
	sp_push_frame(st, sp, now, sym_id, SP_FRAME_POLL, obj, fu->key, fu->query_key,
		      fu->depth);
	return SP_TRACE_RETURN;
}

/* The thread is exiting (pthread_exit, exit, a fatal signal): every call
 * still open ends now, without its exit probe, the root included. */
static __always_inline void sp_stack_thread_exit(void *ctx, struct sp_thread *st, __u64 now,
						 __u64 min_span)
{
	sp_pop_dead(ctx, st, ~0ull, now, min_span);
}

/* A call returns; sp is its slot. An exit that matches no frame belongs to
 * a call that began before attach or was not tracked. */
static __always_inline void sp_stack_exit(void *ctx, struct sp_thread *st, __u32 sym_id,
					  __u64 sp, __u64 now, __u64 min_span)
{
	const struct sp_frame *top;

	sp_pop_dead(ctx, st, sp, now, min_span);
	if (!st->n)
		return;
	top = &st->f[(st->n - 1) & SP_DEPTH_MASK];
	if (top->sp == sp && top->sym_id == sym_id)
		sp_close_top(ctx, st, now, 0, min_span);
}

/*
 * A USDT pair's done probe fires at stack pointer sp. Its start pushed a
 * frame at the start probe's stack pointer; both usually lie in one
 * function, so sp is the same or, if the function moved its stack
 * pointer, close to it. Frames above the pair's own are calls that left
 * without their exit probe (abnormal); a done with no matching frame
 * (a start before attach) is ignored.
 */
static __always_inline void sp_stack_usdt_done(void *ctx, struct sp_thread *st, __u32 sym_id,
					       __u64 sp, __u64 now, __u64 min_span)
{
	for (int k = 0; k < SP_MAX_DEPTH; k++) {
		const struct sp_frame *top;

		if (!st->n)
			return;
		top = &st->f[(st->n - 1) & SP_DEPTH_MASK];
		if (top->sym_id == sym_id && (top->flags & SP_FRAME_USDT)) {
			sp_close_top(ctx, st, now, 0, min_span);
			return;
		}
		if (top->sp >= sp)
			return; /* a live caller's frame: not ours to close */
		sp_close_top(ctx, st, now, SP_REC_ABNORMAL, min_span);
	}
}

/*
 * A USDT error probe fires: the innermost open USDT span failed. It ends
 * here, flagged error and abnormal (its done probe never came: PostgreSQL
 * raises an ERROR with siglongjmp), with the calls still open above it.
 */
static __always_inline void sp_stack_usdt_error(void *ctx, struct sp_thread *st, __u64 sp,
						__u64 now, __u64 min_span)
{
	int at = -1;

	/* looked for before the dead frames go: the error path may run at a
	 * stack pointer above the failed span's own */
	for (int k = 0; k < SP_MAX_DEPTH; k++) {
		if ((__u32)k >= st->n)
			break;
		if (st->f[(st->n - 1 - k) & SP_DEPTH_MASK].flags & SP_FRAME_USDT) {
			at = (int)(st->n - 1 - k);
			break;
		}
	}
	if (at < 0) {
		sp_pop_dead(ctx, st, sp, now, min_span);
		return;
	}
	st->f[at & SP_DEPTH_MASK].flags |= SP_REC_ERROR;
	for (int k = 0; k < SP_MAX_DEPTH; k++) {
		if (st->n <= (__u32)at)
			break;
		sp_close_top(ctx, st, now, SP_REC_ABNORMAL, min_span);
	}
}

#endif
