#include <stdlib.h>
#include <string.h>
#include "base/idmap.h"
#include "base/utf8_clean.h"
#include "spans/span_assembler.h"
#include "spans/sql_redact.h"

/* At shutdown the open frames are closed by the kernel's own stack logic,
 * so a flushed query looks exactly like one the kernel would have sent. */
struct flush_ctx {
	uint32_t pid, tid;
	struct sp_span_rec **out;
	size_t *n;
	int err;
};

static int flush_emit(void *ctx, const struct sp_thread *st, __u32 idx, __u64 end, __u32 flags);

#define SP_EMIT(ctx, st, idx, end, flags) flush_emit(ctx, st, idx, end, flags)
#define SP_ON_CLOSE(ctx, sym, dur, flags) ((void)(ctx), (void)(sym), (void)(dur), (void)(flags))
#define SP_READ_SLOT(ctx, sp) ((void)(ctx), (__u64)(sp) * 0)
#define SP_IS_TRAMPOLINE(ctx, addr) ((void)(ctx), (addr) != (addr))
#define SP_NEW_KEY(ctx) ((void)(ctx), 0)
/* futures are flushed from their own map, except those still in their
 * first poll (SP_FRAME_FRESH): in the frame only */
#define SP_POLL_DONE(ctx, st, idx, end, flags) \
	(((st)->f[(idx) & SP_DEPTH_MASK].flags & SP_FRAME_FRESH) ? \
		 (void)flush_emit(ctx, st, idx, end, flags) : (void)0)
#include "span_stack.h"

/* A query whose root has not arrived yet. */
struct pending {
	uint64_t query_key;
	struct sp_idmap ids; /* kernel key -> span id */
	size_t pos;          /* in sp_assembler.pend */
};

struct sp_assembler {
	const struct sp_asm_sym *syms;
	size_t n_syms;
	uint32_t pid;
	uint64_t next_id;
	sp_span_fn fn;
	sp_query_lost_fn lost;
	void *arg;
	/* One per query in flight, oldest first: up to SP_ASM_MAX_PENDING when
	 * roots are lost, so a query is found through pend_of (query key ->
	 * struct pending *) and a finished one leaves a NULL behind (slots
	 * [pend_head, n_slots) hold every one; compacted when half are NULL),
	 * rather than scanned for and moved up on every record. */
	struct pending **pend;
	size_t n_slots, cap_pend, pend_head;
	size_t n_pend;
	struct sp_idmap pend_of;
	struct sp_asm_stats st;
	/* kernel key -> struct sp_span_caps *, until the span's record */
	struct sp_idmap caps;
	const struct sp_func_set *funcs; /* capture names by sym_id */
	bool redact;
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

static void pending_drop(struct sp_assembler *a, struct pending *p)
{
	a->pend[p->pos] = NULL;
	sp_idmap_del(&a->pend_of, p->query_key);
	sp_idmap_free(&p->ids);
	free(p);
	a->n_pend--;
	while (a->pend_head < a->n_slots && !a->pend[a->pend_head])
		a->pend_head++;
	if (a->pend_head == a->n_slots)
		a->pend_head = a->n_slots = 0;
}

static void give_up_oldest(struct sp_assembler *a)
{
	struct pending *p = a->pend[a->pend_head];
	uint64_t qid;

	if (sp_idmap_get(&p->ids, p->query_key, &qid) && a->lost)
		a->lost(a->arg, qid);
	a->st.lost_queries++;
	pending_drop(a, p);
}

/* Moves the queries to the front of pend, in order. */
static void pending_compact(struct sp_assembler *a)
{
	size_t n = 0;

	for (size_t i = a->pend_head; i < a->n_slots; i++) {
		if (!a->pend[i])
			continue;
		a->pend[n] = a->pend[i];
		a->pend[n]->pos = n;
		n++;
	}
	a->pend_head = 0;
	a->n_slots = n;
}

static int pending_make_room(struct sp_assembler *a)
{
	struct pending **v;
	size_t cap;

	if (a->n_slots < a->cap_pend)
		return 0;
	if (a->n_slots - a->n_pend > a->n_slots / 2)
		pending_compact(a);
	if (a->n_slots < a->cap_pend)
		return 0;
	cap = a->cap_pend ? a->cap_pend * 2 : 16;
	v = realloc(a->pend, cap * sizeof(*v));
	if (!v)
		return -1;
	a->pend = v;
	a->cap_pend = cap;
	return 0;
}

static struct pending *pending_get(struct sp_assembler *a, uint64_t query_key)
{
	struct pending *p;
	uint64_t v;

	if (sp_idmap_get(&a->pend_of, query_key, &v))
		return (struct pending *)(uintptr_t)v;
	if (a->n_pend == SP_ASM_MAX_PENDING)
		give_up_oldest(a);
	if (pending_make_room(a))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (sp_idmap_put(&a->pend_of, query_key, (uintptr_t)p)) {
		free(p);
		return NULL;
	}
	p->query_key = query_key;
	p->pos = a->n_slots;
	a->pend[a->n_slots++] = p;
	a->n_pend++;
	return p;
}

static uint64_t id_for(struct sp_assembler *a, struct pending *p, uint64_t key)
{
	uint64_t id;

	if (sp_idmap_get(&p->ids, key, &id))
		return id;
	id = ++a->next_id;
	sp_idmap_put(&p->ids, key, id);
	return id;
}

static uint32_t span_flags(uint16_t rf)
{
	return ((rf & SP_REC_ROOT) ? SP_SPAN_ROOT : 0) |
	       ((rf & SP_REC_ABNORMAL) ? SP_SPAN_ABNORMAL : 0) |
	       ((rf & SP_REC_INCOMPLETE) ? SP_SPAN_INCOMPLETE : 0) |
	       ((rf & SP_REC_PARTIAL) ? SP_SPAN_PARTIAL : 0) |
	       ((rf & SP_REC_ERROR) ? SP_SPAN_ERROR : 0) |
	       ((rf & SP_REC_EVENT) ? SP_SPAN_EVENT : 0) |
	       ((rf & SP_REC_MERGED) ? SP_SPAN_MERGED : 0);
}

static bool record_ok(const struct sp_assembler *a, const struct sp_span_rec *r)
{
	bool root = r->flags & SP_REC_ROOT;

	return r->sym_id < a->n_syms && r->key && r->query_key &&
	       root == (r->key == r->query_key) && root == (r->depth == 0) &&
	       (root || r->parent_key);
}

/* A span of a capturing function whose values never came: a call still
 * open when tracing stopped (its values wait in the kernel for an exit
 * that was not seen), or a record lost on the way. Its values are named
 * and marked never read, not left out as if none were asked for. */
static struct sp_span_caps *unread_caps(const struct sp_assembler *a, uint32_t sym_id)
{
	const struct sp_func *fn;
	struct sp_span_caps *c;

	if (!a->funcs || sym_id >= a->funcs->n)
		return NULL;
	fn = &a->funcs->v[sym_id];
	if (!fn->n_caps || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->n = fn->n_caps < SP_SPAN_CAPS_MAX ? fn->n_caps : SP_SPAN_CAPS_MAX;
	for (unsigned i = 0; i < c->n; i++) {
		c->v[i].name = fn->caps[i].name;
		c->v[i].type = fn->caps[i].type == SP_CAP_I32 ? SP_SPAN_CAP_I64 :
			       fn->caps[i].type == SP_CAP_U32 ? SP_SPAN_CAP_U64 : fn->caps[i].type;
		c->v[i].status = SP_SPAN_CAP_MISSING;
	}
	return c;
}

void sp_asm_record(struct sp_assembler *a, const struct sp_span_rec *r)
{
	sp_asm_record_unc(a, r, 0, 0);
}

void sp_asm_record_unc(struct sp_assembler *a, const struct sp_span_rec *r,
		       uint64_t unc_lo_ns, uint64_t unc_hi_ns)
{
	struct sp_span s = { 0 };
	struct pending *p;

	a->st.records++;
	if (!record_ok(a, r)) {
		a->st.bad_records++;
		return;
	}
	p = pending_get(a, r->query_key);
	if (!p)
		return;
	s.query_id = id_for(a, p, r->query_key);
	s.span_id = id_for(a, p, r->key);
	s.parent_span_id = r->depth ? id_for(a, p, r->parent_key) : 0;
	s.begin_ns = r->begin_ns;
	s.end_ns = r->end_ns;
	s.name = a->syms[r->sym_id].name;
	s.pid = a->pid;
	s.tid = r->tid;
	s.depth = r->depth;
	s.flags = span_flags(r->flags);
	s.poll_count = r->polls;
	s.uncertainty_lo_ns = unc_lo_ns;
	s.uncertainty_hi_ns = unc_hi_ns;
	{
		uint64_t c;

		if (sp_idmap_get(&a->caps, r->key, &c)) {
			s.caps = (struct sp_span_caps *)(uintptr_t)c;
			sp_idmap_del(&a->caps, r->key);
		} else {
			s.caps = unread_caps(a, r->sym_id);
		}
	}
	a->st.spans++;
	a->st.abnormal += !!(r->flags & SP_REC_ABNORMAL);
	if (r->flags & SP_REC_ROOT)
		pending_drop(a, p);
	a->fn(a->arg, &s);
}

/* Bytes that are not well-formed UTF-8 become '?': the value keeps its
 * length, and every sink can carry it. */
static void clean_text(char *dst, const char *src, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t k = sp_utf8_seq_len((const unsigned char *)src + i);

		if (k == 0 || i + k > len) {
			dst[i++] = '?';
			continue;
		}
		memcpy(dst + i, src + i, k);
		i += k;
	}
	dst[len] = '\0';
}

static void convert_cap(struct sp_span_cap *c, const struct sp_cap_decl *d,
			const struct sp_cap_vals *v, unsigned i, bool redact)
{
	size_t len = v->len[i];

	c->name = d->name;
	/* 32-bit values arrive extended to 64 bits */
	c->type = d->type == SP_CAP_I32 ? SP_SPAN_CAP_I64 :
		  d->type == SP_CAP_U32 ? SP_SPAN_CAP_U64 : d->type;
	c->status = v->status[i];
	if (c->status > SP_SPAN_CAP_TRUNCATED)
		c->status = SP_SPAN_CAP_UNREADABLE;
	if (c->status == SP_SPAN_CAP_OK || c->status == SP_SPAN_CAP_TRUNCATED) {
		if (d->type == SP_CAP_STR_T) {
			if (len > SP_SPAN_CAP_STR)
				len = SP_SPAN_CAP_STR;
			clean_text(c->str, v->str[i], len);
			if (redact)
				sp_sql_redact(c->str);
		} else {
			c->num = v->num[i];
		}
	}
}

void sp_asm_caps(struct sp_assembler *a, const struct sp_cap_rec *r)
{
	const struct sp_func *fn;
	struct sp_span_caps *c;
	uint64_t old;

	if (!a->funcs || r->sym_id >= a->funcs->n || !r->key)
		return;
	fn = &a->funcs->v[r->sym_id];
	if (!fn->n_caps || !(c = calloc(1, sizeof(*c))))
		return;
	c->n = fn->n_caps < SP_SPAN_CAPS_MAX ? fn->n_caps : SP_SPAN_CAPS_MAX;
	for (unsigned i = 0; i < c->n; i++)
		convert_cap(&c->v[i], &fn->caps[i], &r->v, i, a->redact);
	if (sp_idmap_get(&a->caps, r->key, &old))
		free((void *)(uintptr_t)old);
	if (sp_idmap_put(&a->caps, r->key, (uintptr_t)c))
		free(c);
}

void sp_asm_put_caps(struct sp_assembler *a, uint64_t key, struct sp_span_caps *c)
{
	uint64_t old;

	/* text read from the target: as sp_asm_caps makes it */
	for (uint32_t i = 0; i < c->n && i < SP_SPAN_CAPS_MAX; i++) {
		struct sp_span_cap *v = &c->v[i];
		char raw[SP_SPAN_CAP_STR + 1];

		if (v->type != SP_SPAN_CAP_STR_T ||
		    (v->status != SP_SPAN_CAP_OK && v->status != SP_SPAN_CAP_TRUNCATED))
			continue;
		v->str[SP_SPAN_CAP_STR] = '\0';
		memcpy(raw, v->str, sizeof(raw));
		clean_text(v->str, raw, strlen(raw));
		if (a->redact)
			sp_sql_redact(v->str);
	}

	if (sp_idmap_get(&a->caps, key, &old))
		free((void *)(uintptr_t)old);
	if (sp_idmap_put(&a->caps, key, (uintptr_t)c))
		free(c);
}

void sp_asm_set_caps(struct sp_assembler *a, const struct sp_func_set *funcs)
{
	a->funcs = funcs;
}

void sp_asm_set_redact(struct sp_assembler *a, bool redact)
{
	a->redact = redact;
}

static int flush_emit(void *ctx, const struct sp_thread *st, __u32 idx, __u64 end, __u32 flags)
{
	struct flush_ctx *fc = ctx;
	struct sp_span_rec *v = realloc(*fc->out, (*fc->n + 1) * sizeof(*v));

	if (!v) {
		fc->err = -1;
		return -1;
	}
	*fc->out = v;
	memset(&v[*fc->n], 0, sizeof(*v));
	sp_fill_rec(&v[*fc->n], st, idx, end, flags);
	if (st->f[idx & SP_DEPTH_MASK].flags & SP_FRAME_FRESH)
		v[*fc->n].polls = 1; /* a future in its first poll */
	v[*fc->n].tgid = fc->pid;
	v[*fc->n].tid = fc->tid;
	(*fc->n)++;
	return 0;
}

int sp_asm_flush_thread(struct sp_assembler *a, uint32_t tid, const struct sp_thread *st,
			uint64_t now_ns, struct sp_span_rec **out, size_t *n)
{
	struct sp_thread copy = *st;
	struct flush_ctx fc = { a->pid, tid, out, n, 0 };

	if (copy.n > SP_MAX_DEPTH)
		copy.n = SP_MAX_DEPTH;
	copy.flags |= SP_REC_INCOMPLETE;
	while (copy.n)
		sp_close_top(&fc, &copy, now_ns, SP_REC_ABNORMAL, 0);
	return fc.err;
}

static int deepest_first(const void *x, const void *y)
{
	const struct sp_span_rec *a = x, *b = y;

	return (a->depth < b->depth) - (a->depth > b->depth);
}

void sp_asm_sort_flush(struct sp_span_rec *recs, size_t n)
{
	if (n) /* recs may be NULL: not even qsort(NULL, 0) (UBSan) */
		qsort(recs, n, sizeof(*recs), deepest_first);
}

void sp_asm_flush_records(struct sp_assembler *a, struct sp_span_rec *recs, size_t n)
{
	sp_asm_sort_flush(recs, n);
	for (size_t i = 0; i < n; i++)
		sp_asm_record(a, &recs[i]);
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
		pending_drop(a, a->pend[a->pend_head]);
	sp_idmap_free(&a->pend_of);
	for (size_t i = 0; i < a->caps.cap; i++)
		if (a->caps.keys[i])
			free((void *)(uintptr_t)a->caps.vals[i]);
	sp_idmap_free(&a->caps);
	free(a->pend);
	free(a);
}
