#include <stdlib.h>
#include <string.h>
#include "idmap.h"
#include "span_assembler.h"

struct frame {
	uint64_t frame_sp;
	uint64_t begin_ns;
	uint64_t span_id;
	uint64_t query_id;
	uint32_t sym_id;
	uint32_t depth;
	uint32_t flags;
};

struct thread_stack {
	uint32_t tid;
	struct frame *v;
	size_t n, cap;
};

struct sp_assembler {
	const struct sp_asm_sym *syms;
	size_t n_syms;
	uint32_t pid;
	uint64_t next_span_id;
	sp_span_fn fn;
	void *arg;
	struct sp_idmap threads; /* tid -> struct thread_stack * */
	sp_trampoline_fn is_trampoline;
	void *trampoline_arg;
	struct sp_asm_stats st;
};

struct sp_assembler *sp_asm_new(const struct sp_asm_sym *syms, size_t n_syms,
				uint32_t pid, sp_span_fn fn, void *arg)
{
	struct sp_assembler *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->syms = syms;
	a->n_syms = n_syms;
	a->pid = pid;
	a->fn = fn;
	a->arg = arg;
	return a;
}

static struct thread_stack *thread_get(struct sp_assembler *a, uint32_t tid, bool create)
{
	uint64_t p;
	struct thread_stack *t;

	if (sp_idmap_get(&a->threads, tid, &p))
		return (struct thread_stack *)(uintptr_t)p;
	if (!create)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->tid = tid;
	if (sp_idmap_put(&a->threads, tid, (uintptr_t)t)) {
		free(t);
		return NULL;
	}
	return t;
}

/* Threads with nothing open hold no state, so thread churn costs nothing. */
static void thread_release_if_idle(struct sp_assembler *a, struct thread_stack *t)
{
	if (t->n)
		return;
	sp_idmap_del(&a->threads, t->tid);
	free(t->v);
	free(t);
}

static void close_top(struct sp_assembler *a, struct thread_stack *t,
		      uint64_t end_ns, uint32_t extra_flags)
{
	struct frame *f = &t->v[--t->n];
	struct sp_span s = {
		.query_id = f->query_id,
		.span_id = f->span_id,
		.parent_span_id = t->n ? t->v[t->n - 1].span_id : 0,
		.begin_ns = f->begin_ns,
		.end_ns = end_ns,
		.name = a->syms[f->sym_id].name,
		.pid = a->pid,
		.tid = t->tid,
		.depth = f->depth,
		.flags = f->flags | extra_flags,
	};

	if (s.flags & SP_SPAN_ROOT)
		s.parent_span_id = 0;
	if (extra_flags & SP_SPAN_ABNORMAL)
		a->st.abnormal++;
	/* an incomplete child makes its query incomplete */
	if ((s.flags & SP_SPAN_INCOMPLETE) && t->n)
		t->v[t->n - 1].flags |= SP_SPAN_INCOMPLETE;
	a->st.spans++;
	a->fn(a->arg, &s);
}

/* Frames whose return-address slot lies below `live_sp` were destroyed
 * without their exit probe (longjmp, exception, unwinding): stacks grow
 * down, so a live frame's slot is always above the current one. */
static void discard_dead(struct sp_assembler *a, struct thread_stack *t,
			 uint64_t live_sp, uint64_t now_ns)
{
	while (t->n && t->v[t->n - 1].frame_sp < live_sp)
		close_top(a, t, now_ns, SP_SPAN_ABNORMAL);
}

void sp_asm_set_trampoline_check(struct sp_assembler *a, sp_trampoline_fn fn, void *arg)
{
	a->is_trampoline = fn;
	a->trampoline_arg = arg;
}

/* A call entered by a tail jump reuses its caller's slot, so the caller is
 * over. With exit probes on jmp sites its end event came first; with a
 * uretprobe the slot holds the return trampoline, which no longjmp-then-
 * call could leave there. */
static bool slot_holds_trampoline(const struct sp_assembler *a, uint64_t ret_addr)
{
	return a->is_trampoline && a->is_trampoline(a->trampoline_arg, ret_addr);
}

static void on_begin(struct sp_assembler *a, const struct sp_event *e)
{
	struct thread_stack *t = thread_get(a, e->tid, true);
	const struct frame *parent;
	struct frame *f;

	if (!t)
		return;
	discard_dead(a, t, e->frame_sp, e->ts_ns);
	if (t->n && t->v[t->n - 1].frame_sp == e->frame_sp)
		close_top(a, t, e->ts_ns, slot_holds_trampoline(a, e->ret_addr) ? 0 : SP_SPAN_ABNORMAL);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct frame *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return;
		t->v = v;
		t->cap = cap;
	}
	parent = t->n ? &t->v[t->n - 1] : NULL;
	f = &t->v[t->n++];
	memset(f, 0, sizeof(*f));
	f->frame_sp = e->frame_sp;
	f->begin_ns = e->ts_ns;
	f->sym_id = e->sym_id;
	f->span_id = ++a->next_span_id;
	f->query_id = parent ? parent->query_id : 0;
	f->depth = parent ? parent->depth + 1 : 0;
	if (!f->query_id && a->syms[e->sym_id].root) {
		f->query_id = f->span_id;
		f->flags = SP_SPAN_ROOT;
		f->depth = 0;
	}
}

static void on_end(struct sp_assembler *a, const struct sp_event *e)
{
	struct thread_stack *t = thread_get(a, e->tid, false);

	if (!t) {
		a->st.unmatched_end++;
		return;
	}
	discard_dead(a, t, e->frame_sp, e->ts_ns);
	if (t->n && t->v[t->n - 1].frame_sp == e->frame_sp &&
	    t->v[t->n - 1].sym_id == e->sym_id)
		close_top(a, t, e->ts_ns, 0);
	else
		a->st.unmatched_end++;
	thread_release_if_idle(a, t);
}

void sp_asm_event(struct sp_assembler *a, const struct sp_event *e)
{
	a->st.events++;
	if (e->sym_id >= a->n_syms) {
		a->st.bad_sym++;
		return;
	}
	if (e->kind == SP_EV_BEGIN)
		on_begin(a, e);
	else if (e->kind == SP_EV_END)
		on_end(a, e);
}

void sp_asm_mark_loss(struct sp_assembler *a)
{
	for (size_t i = 0; i < a->threads.cap; i++) {
		struct thread_stack *t;

		if (!a->threads.keys[i])
			continue;
		t = (struct thread_stack *)(uintptr_t)a->threads.vals[i];
		for (size_t k = 0; k < t->n; k++)
			t->v[k].flags |= SP_SPAN_INCOMPLETE;
	}
}

static void drop_threads(struct sp_assembler *a, bool emit, uint64_t now_ns)
{
	for (size_t i = 0; i < a->threads.cap; i++) {
		struct thread_stack *t;

		if (!a->threads.keys[i])
			continue;
		t = (struct thread_stack *)(uintptr_t)a->threads.vals[i];
		while (emit && t->n)
			close_top(a, t, now_ns, SP_SPAN_ABNORMAL);
		free(t->v);
		free(t);
	}
	sp_idmap_clear(&a->threads);
}

void sp_asm_flush(struct sp_assembler *a, uint64_t now_ns)
{
	sp_asm_mark_loss(a);
	drop_threads(a, true, now_ns);
}

const struct sp_asm_stats *sp_asm_stats(const struct sp_assembler *a)
{
	return &a->st;
}

size_t sp_asm_open_threads(const struct sp_assembler *a)
{
	return a->threads.n;
}

void sp_asm_free(struct sp_assembler *a)
{
	if (!a)
		return;
	drop_threads(a, false, 0);
	sp_idmap_free(&a->threads);
	free(a);
}
