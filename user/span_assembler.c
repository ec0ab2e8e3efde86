#include <stdlib.h>
#include <string.h>
#include "idmap.h"
#include "span_assembler.h"

/* At shutdown the open frames are closed by the kernel's own stack logic,
 * so a flushed query looks exactly like one the kernel would have sent. */
static int flush_emit(void *ctx, const struct sp_thread *st, __u32 idx, __u64 end, __u32 flags);
#define SP_EMIT(ctx, st, idx, end, flags) flush_emit(ctx, st, idx, end, flags)
#define SP_ON_CLOSE(ctx, sym, dur, flags) ((void)(ctx), (void)(sym), (void)(dur), (void)(flags))
#define SP_READ_SLOT(ctx, sp) ((void)(ctx), (__u64)(sp) * 0)
#define SP_IS_TRAMPOLINE(ctx, addr) ((void)(ctx), (addr) != (addr))
#include "span_stack.h"

/* A query whose root has not arrived yet. */
struct pending {
	uint32_t tid;
	uint64_t root_begin;
	struct sp_idmap ids; /* begin_ns -> span id */
};

struct sp_assembler {
	const struct sp_asm_sym *syms;
	size_t n_syms;
	uint32_t pid;
	uint64_t next_id;
	sp_span_fn fn;
	sp_query_lost_fn lost;
	void *arg;
	/* few: at most one per thread inside a query */
	struct pending *pend;
	size_t n_pend, cap_pend;
	struct sp_asm_stats st;
};

struct sp_assembler *sp_asm_new(const struct sp_asm_sym *syms, size_t n_syms,
				uint32_t pid, sp_span_fn fn, sp_query_lost_fn lost,
				void *arg)
{
	struct sp_assembler *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->syms = syms;
	a->n_syms = n_syms;
	a->pid = pid;
	a->fn = fn;
	a->lost = lost;
	a->arg = arg;
	return a;
}

static struct pending *pending_get(struct sp_assembler *a, uint32_t tid, uint64_t root_begin)
{
	struct pending *p;

	for (size_t i = 0; i < a->n_pend; i++)
		if (a->pend[i].tid == tid && a->pend[i].root_begin == root_begin)
			return &a->pend[i];
	if (a->n_pend == a->cap_pend) {
		size_t cap = a->cap_pend ? a->cap_pend * 2 : 16;
		struct pending *v = realloc(a->pend, cap * sizeof(*v));

		if (!v)
			return NULL;
		a->pend = v;
		a->cap_pend = cap;
	}
	p = &a->pend[a->n_pend++];
	memset(p, 0, sizeof(*p));
	p->tid = tid;
	p->root_begin = root_begin;
	return p;
}

static void pending_drop(struct sp_assembler *a, struct pending *p)
{
	sp_idmap_free(&p->ids);
	*p = a->pend[--a->n_pend];
}

static uint64_t id_for(struct sp_assembler *a, struct pending *p, uint64_t begin)
{
	uint64_t id;

	if (sp_idmap_get(&p->ids, begin, &id))
		return id;
	id = ++a->next_id;
	sp_idmap_put(&p->ids, begin, id);
	return id;
}

/* A thread runs one query at a time: a root record for a later query
 * proves the earlier ones lost their root record. */
static void drop_stale(struct sp_assembler *a, uint32_t tid, uint64_t root_begin)
{
	for (size_t i = 0; i < a->n_pend;) {
		struct pending *p = &a->pend[i];
		uint64_t qid;

		if (p->tid != tid || p->root_begin >= root_begin) {
			i++;
			continue;
		}
		if (sp_idmap_get(&p->ids, p->root_begin, &qid) && a->lost)
			a->lost(a->arg, qid);
		a->st.lost_queries++;
		pending_drop(a, p);
	}
}

static uint32_t span_flags(uint16_t rf)
{
	return ((rf & SP_REC_ROOT) ? SP_SPAN_ROOT : 0) |
	       ((rf & SP_REC_ABNORMAL) ? SP_SPAN_ABNORMAL : 0) |
	       ((rf & SP_REC_INCOMPLETE) ? SP_SPAN_INCOMPLETE : 0);
}

static bool record_ok(const struct sp_assembler *a, const struct sp_span_rec *r)
{
	bool root = r->flags & SP_REC_ROOT;

	return r->sym_id < a->n_syms && r->begin_ns && r->root_begin_ns &&
	       root == (r->depth == 0) && (root || r->parent_begin_ns);
}

void sp_asm_record(struct sp_assembler *a, const struct sp_span_rec *r)
{
	struct sp_span s = { 0 };
	struct pending *p;

	a->st.records++;
	if (!record_ok(a, r)) {
		a->st.bad_records++;
		return;
	}
	if (r->flags & SP_REC_ROOT)
		drop_stale(a, r->tid, r->root_begin_ns);
	p = pending_get(a, r->tid, r->root_begin_ns);
	if (!p)
		return;
	s.query_id = id_for(a, p, r->root_begin_ns);
	s.span_id = id_for(a, p, r->begin_ns);
	s.parent_span_id = r->depth ? id_for(a, p, r->parent_begin_ns) : 0;
	s.begin_ns = r->begin_ns;
	s.end_ns = r->end_ns;
	s.name = a->syms[r->sym_id].name;
	s.pid = a->pid;
	s.tid = r->tid;
	s.depth = r->depth;
	s.flags = span_flags(r->flags);
	a->st.spans++;
	a->st.abnormal += !!(r->flags & SP_REC_ABNORMAL);
	if (r->flags & SP_REC_ROOT)
		pending_drop(a, p);
	a->fn(a->arg, &s);
}

struct flush_ctx {
	struct sp_assembler *a;
	uint32_t tid;
};

static int flush_emit(void *ctx, const struct sp_thread *st, __u32 idx, __u64 end, __u32 flags)
{
	struct flush_ctx *fc = ctx;
	struct sp_span_rec r = { .tgid = fc->a->pid, .tid = fc->tid };

	sp_fill_rec(&r, st, idx, end, flags);
	sp_asm_record(fc->a, &r);
	return 0;
}


void sp_asm_flush_thread(struct sp_assembler *a, uint32_t tid,
			 const struct sp_thread *st, uint64_t now_ns)
{
	struct sp_thread copy = *st;
	struct flush_ctx fc = { a, tid };

	if (copy.n > SP_MAX_DEPTH)
		copy.n = SP_MAX_DEPTH;
	copy.flags |= SP_REC_INCOMPLETE;
	while (copy.n)
		sp_close_top(&fc, &copy, now_ns, SP_REC_ABNORMAL, 0);
}

const struct sp_asm_stats *sp_asm_stats(const struct sp_assembler *a)
{
	return &a->st;
}

size_t sp_asm_pending_queries(const struct sp_assembler *a)
{
	return a->n_pend;
}

void sp_asm_free(struct sp_assembler *a)
{
	if (!a)
		return;
	while (a->n_pend)
		pending_drop(a, &a->pend[a->n_pend - 1]);
	free(a->pend);
	free(a);
}
