/* Span assembly and the slow-query filter, fed with synthetic events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "query_filter.h"
#include "span_assembler.h"

#define MS 1000000ull
#define SEC 1000000000ull

enum { ROOT, A, B, C, OUTSIDE, NSYMS };
static const struct sp_asm_sym syms[NSYMS] = {
	[ROOT] = { "root_fn", true }, [A] = { "a", false }, [B] = { "b", false },
	[C] = { "c", false }, [OUTSIDE] = { "outside", false },
};

/* Kept queries, copied out of the filter callback. */
struct capture {
	struct sp_span spans[64];
	size_t n;
	size_t queries;
};

static void on_query(void *arg, struct sp_span *spans, size_t n)
{
	struct capture *c = arg;

	for (size_t i = 0; i < n && c->n < 64; i++)
		c->spans[c->n++] = spans[i];
	c->queries++;
}

struct rig {
	struct capture cap;
	struct sp_filter *f;
	struct sp_assembler *a;
};

static struct rig *rig_new(uint64_t min_span, uint64_t min_query)
{
	struct rig *r = calloc(1, sizeof(*r));

	r->f = sp_filter_new(min_span, min_query, on_query, &r->cap);
	r->a = sp_asm_new(syms, NSYMS, 42, sp_filter_span, r->f);
	return r;
}

static void rig_free(struct rig *r)
{
	sp_asm_free(r->a);
	sp_filter_free(r->f);
	free(r);
}

static void ev(struct rig *r, uint32_t tid, uint32_t kind, uint32_t sym,
	       uint64_t sp, uint64_t ts)
{
	struct sp_event e = { .ts_ns = ts, .frame_sp = sp, .tgid = 42, .tid = tid,
			      .sym_id = sym, .kind = kind };

	sp_asm_event(r->a, &e);
}

#define BEGIN(r, tid, sym, sp, ts) ev(r, tid, SP_EV_BEGIN, sym, sp, ts)
#define END(r, tid, sym, sp, ts) ev(r, tid, SP_EV_END, sym, sp, ts)

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
	BEGIN(r, 7, ROOT, 1000, 0);
	BEGIN(r, 7, A, 900, 10 * MS);
	BEGIN(r, 7, B, 800, 20 * MS);
	END(r, 7, B, 800, 30 * MS);
	END(r, 7, A, 900, 40 * MS);
	END(r, 7, ROOT, 1000, 2 * SEC);
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
	assert_int_equal(b->tid, 7);
	assert_int_equal(b->pid, 42);
	assert_false(b->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(sp_asm_open_threads(r->a), 0);
	rig_free(r);
}

static void test_thresholds_at_edges(void **state)
{
	struct rig *r = rig_new(5 * MS, 1 * SEC);

	(void)state;
	/* root exactly min_query: kept; a exactly min_span: kept;
	 * b one ns short: dropped */
	BEGIN(r, 1, ROOT, 1000, 0);
	BEGIN(r, 1, A, 900, 100);
	END(r, 1, A, 900, 100 + 5 * MS);
	BEGIN(r, 1, B, 900, 10 * MS);
	END(r, 1, B, 900, 15 * MS - 1);
	END(r, 1, ROOT, 1000, 1 * SEC);
	/* one ns short of min_query: the whole query goes */
	BEGIN(r, 1, ROOT, 1000, 2 * SEC);
	BEGIN(r, 1, A, 900, 2 * SEC + 1);
	END(r, 1, A, 900, 2 * SEC + 500 * MS);
	END(r, 1, ROOT, 1000, 3 * SEC - 1);
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
	BEGIN(r, 1, ROOT, 1000, 0);
	BEGIN(r, 1, A, 900, 1);
	END(r, 1, A, 900, 1);
	END(r, 1, ROOT, 1000, 2);
	assert_int_equal(r->cap.n, 2);
	rig_free(r);
}

static void test_outside_queries_dropped(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	BEGIN(r, 1, OUTSIDE, 1000, 0);
	BEGIN(r, 1, A, 900, 1 * MS);
	END(r, 1, A, 900, 50 * MS);
	END(r, 1, OUTSIDE, 1000, 60 * MS);
	assert_int_equal(r->cap.queries, 0);
	assert_int_equal(r->cap.n, 0);
	/* a root called under a non-root span still opens a query */
	BEGIN(r, 1, OUTSIDE, 1000, 100 * MS);
	BEGIN(r, 1, ROOT, 900, 110 * MS);
	END(r, 1, ROOT, 900, 120 * MS);
	END(r, 1, OUTSIDE, 1000, 130 * MS);
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
	BEGIN(r, 3, ROOT, 1000, 0);
	BEGIN(r, 3, A, 900, 10 * MS);
	BEGIN(r, 3, B, 800, 20 * MS);
	/* no END for b and a: c is called from root at a's depth */
	BEGIN(r, 3, C, 900, 300 * MS);
	END(r, 3, C, 900, 400 * MS);
	END(r, 3, ROOT, 1000, 2 * SEC);
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
	assert_int_equal(sp_asm_open_threads(r->a), 0);
	rig_free(r);
}

/* An exception from b caught in root: root's own exit reveals the loss. */
static void test_exit_reveals_unwound_frames(void **state)
{
	struct rig *r = rig_new(0, 0);
	const struct sp_span *a, *b;

	(void)state;
	BEGIN(r, 3, ROOT, 1000, 0);
	BEGIN(r, 3, A, 900, 1);
	BEGIN(r, 3, B, 800, 2);
	END(r, 3, ROOT, 1000, 10);
	a = find(&r->cap, "a", 0);
	b = find(&r->cap, "b", 0);
	assert_true(a->flags & SP_SPAN_ABNORMAL);
	assert_true(b->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(r->cap.queries, 1);
	/* the next query on the thread is clean */
	BEGIN(r, 3, ROOT, 1000, 20);
	BEGIN(r, 3, A, 900, 21);
	END(r, 3, A, 900, 22);
	END(r, 3, ROOT, 1000, 30);
	assert_int_equal(r->cap.queries, 2);
	a = find(&r->cap, "a", 1);
	assert_false(a->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(a->depth, 1);
	rig_free(r);
}

static bool trampoline_at_0xbeef(void *arg, uint64_t addr)
{
	(void)arg;
	return addr == 0xbeef;
}

/* a ends by jumping into b: b's slot is a's slot. */
static void test_tail_call_through_uretprobe_is_normal(void **state)
{
	struct rig *r = rig_new(0, 0);
	struct sp_event e = { .ts_ns = 20, .frame_sp = 900, .ret_addr = 0xbeef,
			      .tid = 1, .sym_id = B, .kind = SP_EV_BEGIN };
	const struct sp_span *a, *b;

	(void)state;
	sp_asm_set_trampoline_check(r->a, trampoline_at_0xbeef, NULL);
	BEGIN(r, 1, ROOT, 1000, 0);
	BEGIN(r, 1, A, 900, 10);
	sp_asm_event(r->a, &e);
	END(r, 1, B, 900, 30);
	/* the chained uretprobe of a fires after b's */
	END(r, 1, A, 900, 30);
	END(r, 1, ROOT, 1000, 40);
	a = find(&r->cap, "a", 0);
	b = find(&r->cap, "b", 0);
	assert_false(a->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(a->end_ns, 20);
	assert_int_equal(b->parent_span_id, r->cap.spans[0].span_id);
	assert_int_equal(b->depth, 1);
	assert_int_equal(b->end_ns - b->begin_ns, 10);
	/* without the trampoline in the slot the same shape is a longjmp */
	e.ret_addr = 0x1234;
	e.ts_ns = 120;
	BEGIN(r, 1, ROOT, 1000, 100);
	BEGIN(r, 1, A, 900, 110);
	sp_asm_event(r->a, &e);
	END(r, 1, B, 900, 130);
	END(r, 1, ROOT, 1000, 140);
	assert_true(find(&r->cap, "a", 1)->flags & SP_SPAN_ABNORMAL);
	rig_free(r);
}

static void test_recursion_and_threads(void **state)
{
	struct rig *r = rig_new(0, 0);
	const struct sp_span *outer, *inner;

	(void)state;
	BEGIN(r, 1, ROOT, 1000, 0);
	BEGIN(r, 2, ROOT, 5000, 1);
	BEGIN(r, 1, A, 900, 2);
	BEGIN(r, 1, A, 800, 3);
	BEGIN(r, 2, B, 4900, 4);
	END(r, 1, A, 800, 5);
	END(r, 2, B, 4900, 6);
	END(r, 1, A, 900, 7);
	END(r, 2, ROOT, 5000, 8);
	END(r, 1, ROOT, 1000, 9);
	assert_int_equal(r->cap.queries, 2);
	/* thread 2's query closed first */
	assert_int_equal(r->cap.spans[0].tid, 2);
	outer = find(&r->cap, "a", 0);
	inner = find(&r->cap, "a", 1);
	assert_int_equal(inner->parent_span_id, outer->span_id);
	assert_int_equal(inner->depth, 2);
	assert_int_equal(find(&r->cap, "b", 0)->query_id, r->cap.spans[0].span_id);
	rig_free(r);
}

static void test_unmatched_end_ignored(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	/* a call that began before attach */
	END(r, 1, A, 900, 5);
	/* an end whose slot matches no open frame */
	BEGIN(r, 1, ROOT, 1000, 10);
	END(r, 1, B, 1000, 11);
	END(r, 1, ROOT, 1000, 12);
	assert_int_equal(sp_asm_stats(r->a)->unmatched_end, 2);
	assert_int_equal(r->cap.queries, 1);
	assert_int_equal(r->cap.n, 1);
	rig_free(r);
}

static void test_loss_marks_open_queries_incomplete(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	BEGIN(r, 1, ROOT, 1000, 0);
	sp_asm_mark_loss(r->a);
	END(r, 1, ROOT, 1000, 10);
	BEGIN(r, 1, ROOT, 1000, 20);
	END(r, 1, ROOT, 1000, 30);
	assert_int_equal(r->cap.queries, 2);
	assert_true(r->cap.spans[0].flags & SP_SPAN_INCOMPLETE);
	assert_false(r->cap.spans[1].flags & SP_SPAN_INCOMPLETE);
	rig_free(r);
}

static void test_flush_closes_open_queries(void **state)
{
	struct rig *r = rig_new(0, 0);

	(void)state;
	BEGIN(r, 1, ROOT, 1000, 0);
	BEGIN(r, 1, A, 900, 5);
	sp_asm_flush(r->a, 100);
	assert_int_equal(r->cap.queries, 1);
	assert_true(r->cap.spans[0].flags & SP_SPAN_INCOMPLETE);
	assert_true(find(&r->cap, "a", 0)->flags & SP_SPAN_ABNORMAL);
	assert_int_equal(sp_asm_open_threads(r->a), 0);
	rig_free(r);
}

/* Re-parenting is driven through the filter directly: with real nesting
 * a child never outlasts its parent, but an abnormal parent's end is only
 * an upper bound and async spans break the rule. */
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
	feed(f, 1, 0, 2 * SEC, 0, SP_SPAN_ROOT);
	assert_int_equal(cap.n, 4);
	for (size_t i = 0; i < cap.n; i++) {
		const struct sp_span *s = &cap.spans[i];

		switch (s->span_id) {
		case 1: assert_int_equal(s->depth, 0); break;
		case 2: assert_int_equal(s->parent_span_id, 1); assert_int_equal(s->depth, 1); break;
		case 5: assert_int_equal(s->parent_span_id, 2); assert_int_equal(s->depth, 2); break;
		case 6: assert_int_equal(s->parent_span_id, 5); assert_int_equal(s->depth, 3); break;
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
		cmocka_unit_test(test_outside_queries_dropped),
		cmocka_unit_test(test_longjmp_discards_dead_frames),
		cmocka_unit_test(test_exit_reveals_unwound_frames),
		cmocka_unit_test(test_tail_call_through_uretprobe_is_normal),
		cmocka_unit_test(test_recursion_and_threads),
		cmocka_unit_test(test_unmatched_end_ignored),
		cmocka_unit_test(test_loss_marks_open_queries_incomplete),
		cmocka_unit_test(test_flush_closes_open_queries),
		cmocka_unit_test(test_reparent_to_nearest_kept_ancestor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
