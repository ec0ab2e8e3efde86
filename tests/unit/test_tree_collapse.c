/*
 * Collapsed tree lines (output/tree_collapse.c): runs of same-name
 * siblings, their count/total/p50/max, grouping of what they called; and
 * the trees sp_print_tree draws with and without --expand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/span_print.h"
#include "output/tree_collapse.h"

#define MS 1000000ull

static struct sp_span mk(uint64_t id, uint64_t parent, const char *name,
			 uint64_t begin, uint64_t dur, uint32_t flags)
{
	return (struct sp_span){ .query_id = 1, .span_id = id, .parent_span_id = parent,
				 .name = name, .begin_ns = begin, .end_ns = begin + dur,
				 .pid = 7, .tid = 7, .flags = flags };
}

static void test_run(void **state)
{
	/* equal names need not share a pointer (block string tables) */
	char a2[] = "a";
	struct sp_span s[] = { mk(1, 0, "a", 0, 1, 0), mk(2, 0, a2, 1, 1, 0),
			       mk(3, 0, "a", 2, 1, 0), mk(4, 0, "b", 3, 1, 0),
			       mk(5, 0, "a", 4, 1, 0) };
	const struct sp_span *v[] = { &s[0], &s[1], &s[2], &s[3], &s[4] };

	(void)state;
	assert_int_equal(sp_collapse_run(v, 5), 3);
	assert_int_equal(sp_collapse_run(v + 3, 2), 1);
	assert_int_equal(sp_collapse_run(v + 4, 1), 1);
	assert_int_equal(sp_collapse_run(v, 0), 0);
}

static void test_stats(void **state)
{
	struct sp_span s[] = { mk(1, 0, "a", 0, 5 * MS, 0), mk(2, 0, "a", 10, 1 * MS, 0),
			       mk(3, 0, "a", 20, 3 * MS, SP_SPAN_ABNORMAL),
			       mk(4, 0, "a", 30, 2 * MS, 0) };
	const struct sp_span *v[] = { &s[0], &s[1], &s[2], &s[3] };
	struct sp_collapse_stats st;

	(void)state;
	assert_int_equal(sp_collapse_stats(v, 4, &st), 0);
	assert_int_equal(st.count, 4);
	assert_int_equal(st.total_ns, 11 * MS);
	assert_int_equal(st.p50_ns, 2 * MS); /* lower middle of 1 2 3 5 */
	assert_int_equal(st.max_ns, 5 * MS);
	assert_int_equal(st.flags, SP_SPAN_ABNORMAL);
	assert_int_equal(sp_collapse_stats(v, 3, &st), 0);
	assert_int_equal(st.p50_ns, 3 * MS); /* middle of 1 3 5 */
	/* an end before the begin (a damaged block) counts as 0 */
	s[0].end_ns = 0;
	assert_int_equal(sp_collapse_stats(v, 1, &st), 0);
	assert_int_equal(st.total_ns, 0);
}

static void test_group(void **state)
{
	struct sp_span s[] = { mk(1, 0, "a", 0, 1, 0), mk(2, 0, "b", 1, 1, 0),
			       mk(3, 0, "a", 2, 1, 0), mk(4, 0, "c", 3, 1, 0),
			       mk(5, 0, "b", 4, 1, 0) };
	const struct sp_span *v[] = { &s[0], &s[1], &s[2], &s[3], &s[4] };
	size_t sizes[5];

	(void)state;
	assert_int_equal(sp_collapse_group(v, 5, sizes), 3);
	assert_int_equal(sizes[0], 2);
	assert_int_equal(sizes[1], 2);
	assert_int_equal(sizes[2], 1);
	assert_ptr_equal(v[0], &s[0]);
	assert_ptr_equal(v[1], &s[2]);
	assert_ptr_equal(v[2], &s[1]);
	assert_ptr_equal(v[3], &s[4]);
	assert_ptr_equal(v[4], &s[3]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_group),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
