/*
 * Held queries (user/spans/async_queries.c): a carrier's records and nested
 * reads, a spawned task and a boxed future, rebuilt into the query of the
 * inlined root async fn, as the assembler receives them.
 *
 * Plan (reads): carrier state, eq state, pb state, join handle, dyn box
 *   [0] eq   coroutine, valid while the carrier is in 3     root pattern
 *   [1] pb   coroutine, valid while eq is in 4              span pattern
 *   [2] jh   JoinHandle, valid while eq is in 4 or 5
 *   [3] dyn  Box<dyn Future> data pointer, valid while eq is in 6
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "resolve/async_nested.h"
#include "spans/async_queries.h"
#include "spans/span_assembler.h"

enum { R_ROOT, R_EQ, R_PB, R_JH, R_DYN, N_READS };
enum { F_CARRIER, F_TASK, F_SCAN, S_EQ, S_PB, N_SYMS };
#define CELL_OFF 0x180
#define HANDLE 0x1000
#define BOX 0x2000
#define K_CARRIER (SP_KEY_HELD | 1)
#define K_TASK (SP_KEY_HELD | 2)

static struct sp_async_range g3 = { 3, 3 }, g4 = { 4, 4 }, g45 = { 4, 5 }, g6 = { 6, 6 };

static struct sp_nested_node nodes[] = {
	{ "eq", -1, SP_ANODE_COROUTINE, &g3, 1, false, R_EQ, 0, 0, SP_ROLE_ROOT, S_EQ, 0, 0, 0, 0, false, { { 0 } }, false },
	{ "pb", 0, SP_ANODE_COROUTINE, &g4, 1, false, R_PB, 0, 0, SP_ROLE_SPAN, S_PB, 0, 0, 0, 0, false, { { 0 } }, false },
	{ "jh", 0, SP_ANODE_JOIN_HANDLE, &g45, 1, false, R_JH, 0, 0, -1, 0, 0, 0, 0, 0, false, { { 0 } }, false },
	{ "dyn", 0, SP_ANODE_DYN_BOX, &g6, 1, false, R_DYN, 0, 0, -1, 0, 0, 0, 0, 0, false, { { 0 } }, false },
};
static struct sp_nested_plan plan = { .nodes = nodes, .n = 4, .n_reads = N_READS };

static const struct sp_asm_sym syms[N_SYMS] = {
	{ "carrier", false }, { "task", false }, { "scan", false }, { "eq", true }, { "pb", false },
};

struct world {
	struct sp_func f[3];
	struct sp_func_set fs;
	struct sp_assembler *a;
	struct sp_held *h;
	struct sp_span got[32];
	size_t n;
};

static void collect(void *arg, const struct sp_span *s)
{
	struct world *w = arg;

	if (w->n < 32)
		w->got[w->n++] = *s;
}

static void setup(struct world *w)
{
	memset(w, 0, sizeof(*w));
	w->f[F_CARRIER] = (struct sp_func){ .is_async = true, .pattern = -1, .nested = &plan,
					    .held = true };
	w->f[F_TASK] = (struct sp_func){ .is_async = true, .pattern = 0, .spawned = true,
					 .task_cell_off = CELL_OFF, .held = true };
	w->f[F_SCAN] = (struct sp_func){ .is_async = true, .pattern = 0 };
	w->fs = (struct sp_func_set){ .v = w->f, .n = 3 };
	w->a = sp_asm_new(syms, N_SYMS, 42, collect, NULL, w);
	w->h = sp_held_new(&w->fs, w->a, 1000);
	assert_non_null(w->a);
	assert_non_null(w->h);
}

static void teardown(struct world *w)
{
	sp_held_free(w->h);
	sp_asm_free(w->a);
}

static void read_(struct world *w, uint64_t entry, uint64_t exit, uint64_t root, uint64_t eq,
		  uint64_t pb, uint64_t jh, uint64_t dyn)
{
	struct sp_nested_rec r = { .kind = SP_RK_NESTED, .sym_id = F_CARRIER,
				   .fut_key = K_CARRIER, .entry_ns = entry, .exit_ns = exit,
				   .n = N_READS, .v = { root, eq, pb, jh, dyn } };

	sp_held_nested(w->h, &r);
}

static void span(struct world *w, uint64_t key, uint64_t parent, uint64_t query, uint32_t sym,
		 uint64_t obj, uint64_t b, uint64_t e)
{
	struct sp_span_rec r = { .kind = SP_RK_SPAN, .tgid = 42, .key = key, .parent_key = parent,
				 .query_key = query, .begin_ns = b, .end_ns = e, .obj = obj,
				 .tid = 7, .sym_id = sym, .depth = key == query ? 0 : 1,
				 .flags = key == query ? SP_REC_ROOT : 0 };

	sp_held_span(w->h, &r);
}

static const struct sp_span *named(const struct world *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->got[i].name, name))
			return &w->got[i];
	return NULL;
}

/* The inlined root is the query; the carrier, named by no pattern, is
 * not in it; the spawned task (through its JoinHandle) and the boxed
 * future (through its pointer) are children of eq. */
static void test_rebuilt_query(void **state)
{
	struct world w;
	const struct sp_span *eq, *pb, *task, *scan;

	(void)state;
	setup(&w);
	read_(&w, 10, 0, 0, 0, 0, 0, 0);
	read_(&w, 10, 20, 3, 4, 3, HANDLE, 0);
	/* the task ends (its root record) before its spawner */
	span(&w, K_TASK, 0, K_TASK, F_TASK, HANDLE + CELL_OFF, 15, 35);
	read_(&w, 30, 40, 3, 5, 3, HANDLE, 0);
	span(&w, 3, K_CARRIER, K_CARRIER, F_SCAN, BOX, 45, 55);
	read_(&w, 44, 50, 3, 6, 3, 0, BOX);
	assert_int_equal(w.n, 0);
	/* the read that finds no named future live completes the query,
	 * before the carrier's own record */
	read_(&w, 56, 60, 1, 1, 0, 0, 0);
	assert_int_equal(w.n, 4);
	span(&w, K_CARRIER, 0, K_CARRIER, F_CARRIER, 0, 10, 60);
	assert_int_equal(w.n, 4);
	eq = named(&w, "eq");
	pb = named(&w, "pb");
	task = named(&w, "task");
	scan = named(&w, "scan");
	assert_non_null(eq);
	assert_non_null(pb);
	assert_non_null(task);
	assert_non_null(scan);
	assert_null(named(&w, "carrier"));
	assert_true(eq->flags & SP_SPAN_ROOT);
	assert_int_equal(eq->depth, 0);
	assert_int_equal(eq->begin_ns, 10);
	assert_int_equal(eq->end_ns, 60);
	assert_int_equal(eq->uncertainty_lo_ns, 10);
	assert_int_equal(eq->uncertainty_hi_ns, 4);
	assert_ptr_equal(&w.got[w.n - 1], eq); /* the root comes last */
	assert_int_equal(pb->parent_span_id, eq->span_id);
	assert_int_equal(pb->end_ns, 40);
	assert_int_equal(task->parent_span_id, eq->span_id);
	assert_int_equal(task->depth, 1);
	assert_false(task->flags & SP_SPAN_ROOT);
	assert_int_equal(scan->parent_span_id, eq->span_id);
	for (size_t i = 0; i < w.n; i++)
		assert_int_equal(w.got[i].query_id, eq->span_id);
	assert_int_equal(sp_held_stats(w.h)->linked_tasks, 1);
	teardown(&w);
}

/* A long-lived carrier runs one root instance after another: each is
 * a query as soon as it ends, with the records of its own time. */
static void test_long_lived_carrier(void **state)
{
	struct world w;

	(void)state;
	setup(&w);
	read_(&w, 10, 0, 0, 0, 0, 0, 0);
	read_(&w, 10, 20, 3, 4, 3, 0, 0);     /* request 1: eq awaits pb */
	span(&w, 3, K_CARRIER, K_CARRIER, F_SCAN, 0, 22, 28);
	read_(&w, 30, 40, 3, 1, 0, 0, 0);     /* eq returned, carrier goes on */
	assert_int_equal(w.n, 3);
	assert_string_equal(w.got[2].name, "eq");
	assert_int_equal(w.got[2].end_ns, 40);
	assert_int_equal(w.got[0].query_id, w.got[2].span_id);
	assert_int_equal(w.got[1].query_id, w.got[2].span_id);
	read_(&w, 50, 60, 3, 4, 3, 0, 0);     /* request 2 */
	span(&w, 4, K_CARRIER, K_CARRIER, F_SCAN, 0, 62, 68);
	read_(&w, 70, 80, 3, 1, 0, 0, 0);
	assert_int_equal(w.n, 6);
	assert_string_equal(w.got[5].name, "eq");
	assert_int_equal(w.got[5].begin_ns, 50);
	assert_int_equal(w.got[3].query_id, w.got[5].span_id);
	assert_int_equal(w.got[4].query_id, w.got[5].span_id);
	assert_int_not_equal(w.got[5].span_id, w.got[2].span_id);
	read_(&w, 90, 95, 1, 1, 0, 0, 0);
	span(&w, K_CARRIER, 0, K_CARRIER, F_CARRIER, 0, 10, 95);
	assert_int_equal(w.n, 6);
	teardown(&w);
}

/* A spawned task no carrier claims is a query of its own, once held
 * long enough; one whose JoinHandle an open carrier holds waits. */
static void test_unlinked_task(void **state)
{
	struct world w;

	(void)state;
	setup(&w);
	span(&w, K_TASK, 0, K_TASK, F_TASK, 0x9000 + CELL_OFF, 15, 35);
	sp_held_tick(w.h, 500);
	assert_int_equal(w.n, 0);
	sp_held_tick(w.h, 35 + 1001);
	assert_int_equal(w.n, 1);
	assert_string_equal(w.got[0].name, "task");
	assert_true(w.got[0].flags & SP_SPAN_ROOT);
	assert_int_equal(sp_held_stats(w.h)->own_root_tasks, 1);

	w.n = 0;
	read_(&w, 10, 20, 3, 4, 3, HANDLE, 0);
	span(&w, K_TASK + 1, 0, K_TASK + 1, F_TASK, HANDLE + CELL_OFF, 15, 35);
	sp_held_tick(w.h, 35 + 1001);
	assert_int_equal(w.n, 0); /* the carrier still runs and holds it */
	sp_held_flush(w.h, NULL, 0);
	assert_int_equal(w.n, 1);
	teardown(&w);
}

/* Records of queries that are not held pass straight through. */
static void test_not_held(void **state)
{
	struct world w;

	(void)state;
	setup(&w);
	span(&w, 5, 0, 5, F_SCAN, BOX, 1, 9);
	assert_int_equal(w.n, 1);
	assert_string_equal(w.got[0].name, "scan");
	teardown(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rebuilt_query),
		cmocka_unit_test(test_long_lived_carrier),
		cmocka_unit_test(test_unlinked_task),
		cmocka_unit_test(test_not_held),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
