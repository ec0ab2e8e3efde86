/*
 * Span assembly end to end in userspace: the kernel's per-thread stack
 * logic (bpf/span_stack.h, compiled here unchanged) fed with synthetic
 * entry/exit hits, its records turned into spans by the assembler, and
 * the slow-query filter on top.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "spans/query_filter.h"
#include "spans/span_assembler.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define TRAMPOLINE 0xbeefull

enum { ROOT, A, B, C, OUTSIDE, NSYMS };
static const struct sp_asm_sym syms[NSYMS] = {
	[ROOT] = { "root_fn", true }, [A] = { "a", false }, [B] = { "b", false },
	[C] = { "c", false }, [OUTSIDE] = { "outside", false },
};

struct capture {
	struct sp_span spans[128];
	size_t n;
	size_t queries;
};

struct rig {
	struct capture cap;
	struct sp_filter *f;
	struct sp_assembler *a;
	struct sp_thread st[4]; /* by tid */
	uint64_t min_span;
	uint64_t slot_value;    /* what SP_READ_SLOT returns */
	size_t records;
	uint64_t next_key;
};

static void on_query(void *arg, struct sp_span *spans, size_t n)
{
	struct capture *c = arg;

	for (size_t i = 0; i < n && c->n < 128; i++)
		c->spans[c->n++] = spans[i];
	c->queries++;
}

struct hit_ctx {
	struct rig *r;
	uint32_t tid;
};

static int test_emit(void *ctx, const struct sp_thread *st, __u32 idx, __u64 end, __u32 flags)
{
	struct hit_ctx *h = ctx;
	struct sp_span_rec rec = { .tgid = 42, .tid = h->tid };

	sp_fill_rec(&rec, st, idx, end, flags);
	h->r->records++;
	sp_asm_record(h->r->a, &rec);
	return 0;
}

#define SP_EMIT(ctx, st, idx, end, flags) test_emit(ctx, st, idx, end, flags)
#define SP_ON_CLOSE(ctx, sym, dur, flags) ((void)(ctx), (void)(sym), (void)(dur), (void)(flags))
#define SP_READ_SLOT(ctx, sp) ((void)(sp), ((struct hit_ctx *)(ctx))->r->slot_value)
#define SP_IS_TRAMPOLINE(ctx, addr) ((void)(ctx), (addr) == TRAMPOLINE)
#define SP_NEW_KEY(ctx) (++((struct hit_ctx *)(ctx))->r->next_key)
#define SP_POLL_DONE(ctx, st, idx, end, flags) \
	((void)(ctx), (void)(st), (void)(idx), (void)(end), (void)(flags))
#include "span_stack.h"

static struct rig *rig_new(uint64_t min_span, uint64_t min_query)
{
	struct rig *r = calloc(1, sizeof(*r));

	r->min_span = min_span;
	r->f = sp_filter_new(min_span, min_query, on_query, &r->cap);
	r->a = sp_asm_new(syms, NSYMS, 42, sp_filter_span, sp_filter_discard, r->f);
	return r;
}

static void rig_free(struct rig *r)
{
	sp_asm_free(r->a);
	sp_filter_free(r->f);
	free(r);
}

static int begin(struct rig *r, uint32_t tid, uint32_t sym, uint64_t sp, uint64_t ts)
{
	struct hit_ctx h = { r, tid };

	return sp_stack_entry(&h, &r->st[tid], sym, syms[sym].root, sp, ts, r->min_span);
}

static void end(struct rig *r, uint32_t tid, uint32_t sym, uint64_t sp, uint64_t ts)
{
	struct hit_ctx h = { r, tid };

	sp_stack_exit(&h, &r->st[tid], sym, sp, ts, r->min_span);
}

static const struct sp_span *find(const struct capture *c, const char *name, size_t nth)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->spans[i].name, name) && nth-- == 0)
			return &c->spans[i];
	return NULL;
}

static void test_nesting(void **state)
{
	struct rig *r = rig_new(5 * MS, 1 * SEC);
	const struct sp_span *root, *a, *b;

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 10 * MS);
	begin(r, 1, B, 800, 20 * MS);
	end(r, 1, B, 800, 30 * MS);
	end(r, 1, A, 900, 40 * MS);
	end(r, 1, ROOT, 1000, 2 * SEC);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.n, 3);
	root = &r->cap.spans[0];
	a = find(&r->cap, "a", 0);
	b = find(&r->cap, "b", 0);
	assert_string_equal(root->name, "root_fn");
	assert_true(root->flags & SP_SPAN_ROOT);
	assert_int_equal(root->parent_span_id, 0);
	assert_int_equal(root->query_id, root->span_id);
	assert_int_equal(a->parent_span_id, root->span_id);
	assert_int_equal(b->parent_span_id, a->span_id);
	assert_int_equal(a->depth, 1);
	assert_int_equal(b->depth, 2);
	assert_int_equal(b->end_ns - b->begin_ns, 10 * MS);
	assert_int_equal(b->query_id, root->span_id);
	assert_int_equal(b->tid, 1);
	assert_int_equal(b->pid, 42);
	assert_false(b->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(r->st[1].n, 0);
	assert_int_equal(sp_asm_pending_queries(r->a), 0);
	rig_free(r);
}

/* min_span is decided at exit in the kernel: an exact min_span leaves it,
 * one ns less never does. The root always does. */
static void test_thresholds_at_edges(void **state)
{
	struct rig *r = rig_new(5 * MS, 1 * SEC);

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 100);
	end(r, 1, A, 900, 100 + 5 * MS);
	begin(r, 1, B, 900, 10 * MS);
	end(r, 1, B, 900, 15 * MS - 1);
	end(r, 1, ROOT, 1000, 1 + 1 * SEC);
	assert_int_equal(r->records, 2);
	/* one ns short of min_query: the whole query goes */
	begin(r, 1, ROOT, 1000, 2 * SEC);
	begin(r, 1, A, 900, 2 * SEC + 1);
	end(r, 1, A, 900, 2 * SEC + 500 * MS);
	end(r, 1, ROOT, 1000, 3 * SEC - 1);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.n, 2);
	assert_non_null(find(&r->cap, "a", 0));
	assert_null(find(&r->cap, "b", 0));
	assert_int_equal(sp_filter_stats(r->f)->queries_seen, 2);
	rig_free(r);
}

static void test_zero_thresholds_keep_everything(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 2);
	end(r, 1, A, 900, 2);
	end(r, 1, ROOT, 1000, 3);
	assert_int_equal(r->cap.n, 2);
	rig_free(r);
}

/* Outside queries nothing is tracked and no return probe is needed. */
static void test_outside_queries_cost_nothing(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	assert_int_equal(begin(r, 1, OUTSIDE, 1000, 1), SP_SKIP_RETURN);
	assert_int_equal(begin(r, 1, A, 900, 2), SP_SKIP_RETURN);
	end(r, 1, A, 900, 50 * MS);
	end(r, 1, OUTSIDE, 1000, 60 * MS);
	assert_int_equal(r->records, 0);
	assert_int_equal(r->st[1].n, 0);
	/* a root called under an untracked span opens a query */
	assert_int_equal(begin(r, 1, ROOT, 900, 100 * MS), SP_TRACE_RETURN);
	assert_int_equal(begin(r, 1, A, 800, 101 * MS), SP_TRACE_RETURN);
	end(r, 1, A, 800, 110 * MS);
	end(r, 1, ROOT, 900, 120 * MS);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.spans[0].depth, 0);
	assert_int_equal(r->cap.spans[0].parent_span_id, 0);
	rig_free(r);
}

/* longjmp from b back into root, then a new call: a and b are gone. */
static void test_longjmp_discards_dead_frames(void **state)
{
	struct rig *r = rig_new(5 * MS, 1 * SEC);
	const struct sp_span *a, *b, *c, *root;

	(void)state;
	begin(r, 3, ROOT, 1000, 1);
	begin(r, 3, A, 900, 10 * MS);
	begin(r, 3, B, 800, 20 * MS);
	/* no exit for b and a: c is called from root at a's depth, and the
	 * slot holds a real return address */
	r->slot_value = 0x401234;
	begin(r, 3, C, 900, 300 * MS);
	end(r, 3, C, 900, 400 * MS);
	end(r, 3, ROOT, 1000, 2 * SEC);
	root = &r->cap.spans[0];
	a = find(&r->cap, "a", 0);
	b = find(&r->cap, "b", 0);
	c = find(&r->cap, "c", 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a->flags & SP_SPAN_ABNORMAL);
	assert_true(b->flags & SP_SPAN_ABNORMAL);
	assert_false(c->flags & SP_SPAN_ABNORMAL);
	assert_false(root->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(a->end_ns, 300 * MS);
	assert_int_equal(b->parent_span_id, a->span_id);
	assert_int_equal(c->parent_span_id, root->span_id);
	assert_int_equal(c->depth, 1);
	assert_int_equal(c->end_ns - c->begin_ns, 100 * MS);
	assert_int_equal(sp_asm_stats(r->a)->abnormal, 2);
	rig_free(r);
}

/* An exception from b caught in root: root's own exit reveals the loss,
 * and the next query on the thread is clean. */
static void test_exit_reveals_unwound_frames(void **state)
{
	struct rig *r = rig_new(0, 0);
	const struct sp_span *a, *b;

	(void)state;
	begin(r, 3, ROOT, 1000, 1);
	begin(r, 3, A, 900, 2);
	begin(r, 3, B, 800, 3);
	end(r, 3, ROOT, 1000, 10);
	a = find(&r->cap, "a", 0);
	b = find(&r->cap, "b", 0);
	assert_true(a->flags & SP_SPAN_ABNORMAL);
	assert_true(b->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(r->cap.queries, 1);
	begin(r, 3, ROOT, 1000, 20);
	begin(r, 3, A, 900, 21);
	end(r, 3, A, 900, 22);
	end(r, 3, ROOT, 1000, 30);
	assert_int_equal(r->cap.queries, 2);
	a = find(&r->cap, "a", 1);
	assert_false(a->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(a->depth, 1);
	rig_free(r);
}

/* a ends by jumping into b: b's slot is a's slot. */
static void test_tail_call_through_uretprobe_is_normal(void **state)
{
	struct rig *r = rig_new(0, 0);
	const struct sp_span *a, *b;

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 10);
	r->slot_value = TRAMPOLINE;
	begin(r, 1, B, 900, 20);
	end(r, 1, B, 900, 30);
	/* the chained uretprobe of a fires after b's and matches nothing */
	end(r, 1, A, 900, 30);
	end(r, 1, ROOT, 1000, 40);
	a = find(&r->cap, "a", 0);
	b = find(&r->cap, "b", 0);
	assert_false(a->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(a->end_ns, 20);
	assert_int_equal(b->parent_span_id, r->cap.spans[0].span_id);
	assert_int_equal(b->depth, 1);
	assert_int_equal(b->end_ns - b->begin_ns, 10);
	/* without the trampoline in the slot the same shape is a longjmp */
	r->slot_value = 0x1234;
	begin(r, 1, ROOT, 1000, 100);
	begin(r, 1, A, 900, 110);
	begin(r, 1, B, 900, 120);
	end(r, 1, B, 900, 130);
	end(r, 1, ROOT, 1000, 140);
	assert_true(find(&r->cap, "a", 1)->flags & SP_SPAN_ABNORMAL);
	rig_free(r);
}

static void test_recursion_and_threads(void **state)
{
	struct rig *r = rig_new(0, 0);
	const struct sp_span *outer, *inner;

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 2, ROOT, 5000, 1);
	begin(r, 1, A, 900, 2);
	begin(r, 1, A, 800, 3);
	begin(r, 2, B, 4900, 4);
	end(r, 1, A, 800, 5);
	end(r, 2, B, 4900, 6);
	end(r, 1, A, 900, 7);
	end(r, 2, ROOT, 5000, 8);
	end(r, 1, ROOT, 1000, 9);
	assert_int_equal(r->cap.queries, 2);
	assert_int_equal(r->cap.spans[0].tid, 2);
	outer = find(&r->cap, "a", 0);
	inner = find(&r->cap, "a", 1);
	assert_int_equal(inner->parent_span_id, outer->span_id);
	assert_int_equal(inner->depth, 2);
	assert_int_equal(find(&r->cap, "b", 0)->query_id, r->cap.spans[0].span_id);
	/* span ids are unique across threads even with equal begin times */
	assert_int_not_equal(r->cap.spans[0].span_id, find(&r->cap, "root_fn", 1)->span_id);
	rig_free(r);
}

static void test_unmatched_exit_ignored(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	end(r, 1, A, 900, 5); /* a call that began before attach */
	begin(r, 1, ROOT, 1000, 10);
	end(r, 1, B, 1000, 11); /* same slot, other function */
	end(r, 1, ROOT, 1000, 12);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.n, 1);
	rig_free(r);
}

static void test_depth_overflow_marks_incomplete(void **state)
{
	struct rig *r = rig_new(0, 0);
	int v = SP_TRACE_RETURN;

	(void)state;
	begin(r, 1, ROOT, 100000, 1);
	for (uint64_t i = 1; i < SP_MAX_DEPTH; i++)
		begin(r, 1, A, 100000 - 16 * i, 1 + i);
	v = begin(r, 1, B, 1000, 100);
	assert_int_equal(v, SP_SKIP_RETURN);
	for (uint64_t i = SP_MAX_DEPTH - 1; i >= 1; i--)
		end(r, 1, A, 100000 - 16 * i, 200 + i);
	end(r, 1, ROOT, 100000, 300);
	assert_int_equal(r->cap.queries, 1);
	assert_true(r->cap.spans[0].flags & SP_SPAN_INCOMPLETE);
	assert_int_equal(r->cap.n, SP_MAX_DEPTH);
	/* the thread's stack outlives the query; its losses must not */
	begin(r, 1, ROOT, 100000, 400);
	end(r, 1, ROOT, 100000, 500);
	assert_int_equal(r->cap.queries, 2);
	assert_false(r->cap.spans[r->cap.n - 1].flags & SP_SPAN_INCOMPLETE);
	rig_free(r);
}

/* Queries whose root record never comes (lost to a full buffer, or a
 * future dropped before it returned) are given up, oldest first, not kept
 * forever. */
static void test_lost_root_record(void **state)
{
	struct rig *r = rig_new(0, 0);
	struct sp_span_rec child = { .key = 2, .parent_key = 1, .query_key = 1,
				     .begin_ns = 20, .end_ns = 30, .tgid = 42, .tid = 1,
				     .sym_id = A, .depth = 1 };
	struct sp_span_rec root = { .key = 1, .query_key = 1, .begin_ns = 10,
				    .end_ns = 200, .tgid = 42, .tid = 1, .sym_id = ROOT,
				    .flags = SP_REC_ROOT };

	(void)state;
	for (uint64_t q = 0; q <= SP_ASM_MAX_PENDING; q++) {
		child.key = 1000000 + q;
		child.query_key = child.parent_key = 10 + q;
		sp_asm_record(r->a, &child);
	}
	assert_int_equal(sp_asm_pending_queries(r->a), SP_ASM_MAX_PENDING);
	assert_int_equal(sp_asm_stats(r->a)->lost_queries, 1);
	/* a root closes its own query only */
	root.key = root.query_key = 11;
	sp_asm_record(r->a, &root);
	assert_int_equal(sp_asm_pending_queries(r->a), SP_ASM_MAX_PENDING - 1);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.n, 2);
	/* malformed records are counted, not trusted */
	child.sym_id = 99;
	sp_asm_record(r->a, &child);
	root.depth = 3;
	sp_asm_record(r->a, &root);
	child.sym_id = A;
	child.key = child.query_key;
	sp_asm_record(r->a, &child);
	assert_int_equal(sp_asm_stats(r->a)->bad_records, 3);
	rig_free(r);
}

/* A thread that exits inside a query (pthread_exit, exit, a crash): the
 * kernel's exit hook closes every open call, the root included, as
 * abnormal at that moment, and the thread's stack is empty (its map entry
 * can go). The query is complete, not incomplete: nothing was lost. */
static void test_thread_exit_closes_everything(void **state)
{
	struct rig *r = rig_new(0, 0);
	struct hit_ctx h = { r, 1 };

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 5);
	begin(r, 1, B, 800, 7);
	sp_stack_thread_exit(&h, &r->st[1], 50, r->min_span);
	assert_int_equal(r->st[1].n, 0);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.n, 3);
	for (size_t i = 0; i < r->cap.n; i++) {
		assert_true(r->cap.spans[i].flags & SP_SPAN_ABNORMAL);
		assert_false(r->cap.spans[i].flags & SP_SPAN_INCOMPLETE);
		assert_int_equal(r->cap.spans[i].end_ns, 50);
	}
	assert_true(r->cap.spans[0].flags & SP_SPAN_ROOT);
	assert_int_equal(find(&r->cap, "b", 0)->depth, 2);
	rig_free(r);
}

static void test_flush_closes_open_calls(void **state)
{
	struct rig *r = rig_new(0, 0);
	struct sp_span_rec *recs = NULL;
	size_t n = 0;

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 5);
	assert_int_equal(sp_asm_flush_thread(r->a, 1, &r->st[1], 100, &recs, &n), 0);
	assert_int_equal(n, 2);
	sp_asm_flush_records(r->a, recs, n);
	free(recs);
	assert_int_equal(r->cap.queries, 1);
	assert_true(r->cap.spans[0].flags & SP_SPAN_INCOMPLETE);
	assert_true(r->cap.spans[0].flags & SP_SPAN_ABNORMAL);
	assert_true(find(&r->cap, "a", 0)->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(find(&r->cap, "a", 0)->end_ns, 100);
	rig_free(r);
}

/* A future still in its first poll (SP_FRAME_FRESH) is in no map but its
 * frame: the flush at stop emits it from there, as a future (polls 1,
 * its self), cut off at now. A poll of a future already in the map is
 * left to the map's own flush. */
static void test_flush_emits_fresh_futures(void **state)
{
	struct rig *r = rig_new(0, 0);
	struct sp_span_rec *recs = NULL;
	size_t n = 0;
	struct sp_thread *st = &r->st[1];

	(void)state;
	begin(r, 1, ROOT, 1000, 1);
	begin(r, 1, A, 900, 5);
	begin(r, 1, B, 800, 7);
	st->f[1].flags |= SP_FRAME_POLL | SP_FRAME_FRESH;
	st->f[1].obj = 0x5000;
	st->f[2].flags |= SP_FRAME_POLL; /* in the futures map */
	assert_int_equal(sp_asm_flush_thread(r->a, 1, st, 100, &recs, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		if (recs[i].key != st->f[1].key)
			continue;
		assert_int_equal(recs[i].polls, 1);
		assert_int_equal(recs[i].obj, 0x5000);
		assert_int_equal(recs[i].parent_key, st->f[0].key);
		assert_int_equal(recs[i].end_ns, 100);
		assert_true(recs[i].flags & SP_REC_ABNORMAL);
	}
	assert_true(recs[0].key == st->f[1].key || recs[1].key == st->f[1].key);
	free(recs);
	rig_free(r);
}

/* Re-parenting through the filter directly: in the kernel a child never
 * outlasts its parent, but a parent's record can be lost, an abnormal
 * parent's end is only an upper bound, and async spans break the rule. */
static void feed(struct sp_filter *f, uint64_t id, uint64_t parent,
		 uint64_t dur, uint32_t depth, uint32_t flags)
{
	struct sp_span s = { .query_id = 1, .span_id = id, .parent_span_id = parent,
			     .begin_ns = id * 10, .end_ns = id * 10 + dur,
			     .name = "x", .depth = depth, .flags = flags };

	sp_filter_span(f, &s);
}

static void test_reparent_to_nearest_kept_ancestor(void **state)
{
	struct capture cap = { 0 };
	struct sp_filter *f = sp_filter_new(5 * MS, 0, on_query, &cap);

	(void)state;
	/* 1 root > 2 (kept) > 3 (dropped) > 4 (dropped) > 5 (kept) > 6 (kept) */
	feed(f, 6, 5, 6 * MS, 5, 0);
	feed(f, 5, 4, 7 * MS, 4, 0);
	feed(f, 4, 3, 1 * MS, 3, 0);
	feed(f, 3, 2, 1 * MS, 2, 0);
	feed(f, 2, 1, 9 * MS, 1, 0);
	/* 7's parent never arrived at all: it hangs from the root */
	feed(f, 7, 70, 8 * MS, 2, 0);
	feed(f, 1, 0, 2 * SEC, 0, SP_SPAN_ROOT);
	assert_int_equal(cap.n, 5);
	for (size_t i = 0; i < cap.n; i++) {
		const struct sp_span *s = &cap.spans[i];

		switch (s->span_id) {
		case 1: assert_int_equal(s->depth, 0); break;
		case 2: assert_int_equal(s->parent_span_id, 1); assert_int_equal(s->depth, 1); break;
		case 5: assert_int_equal(s->parent_span_id, 2); assert_int_equal(s->depth, 2); break;
		case 6: assert_int_equal(s->parent_span_id, 5); assert_int_equal(s->depth, 3); break;
		case 7: assert_int_equal(s->parent_span_id, 1); assert_int_equal(s->depth, 1); break;
		default: fail_msg("span %llu should have been dropped", (unsigned long long)s->span_id);
		}
	}
	sp_filter_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_thresholds_at_edges),
		cmocka_unit_test(test_zero_thresholds_keep_everything),
		cmocka_unit_test(test_outside_queries_cost_nothing),
		cmocka_unit_test(test_longjmp_discards_dead_frames),
		cmocka_unit_test(test_exit_reveals_unwound_frames),
		cmocka_unit_test(test_tail_call_through_uretprobe_is_normal),
		cmocka_unit_test(test_recursion_and_threads),
		cmocka_unit_test(test_unmatched_exit_ignored),
		cmocka_unit_test(test_depth_overflow_marks_incomplete),
		cmocka_unit_test(test_lost_root_record),
		cmocka_unit_test(test_thread_exit_closes_everything),
		cmocka_unit_test(test_flush_closes_open_calls),
		cmocka_unit_test(test_flush_emits_fresh_futures),
		cmocka_unit_test(test_reparent_to_nearest_kept_ancestor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
