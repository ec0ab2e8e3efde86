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

static char *tree_text(const struct sp_span *s, size_t n, unsigned flags)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(f);
	sp_print_tree(f, s, n, flags);
	assert_int_equal(fclose(f), 0);
	return text;
}

static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The demo's shape: 80 process_block calls of 9..11 ms under
 * execute_query, every 4th with a spill_block child of 2 ms. */
static size_t demo_query(struct sp_span *s)
{
	size_t n = 0;
	uint64_t id = 1, t = 0;

	s[n++] = mk(id++, 0, "handle_query", 0, 1000 * MS, SP_SPAN_ROOT);
	s[n++] = mk(id++, 1, "parse_query", 1, 2 * MS, 0);
	s[n++] = mk(id++, 1, "execute_query", 3 * MS, 900 * MS, 0);
	t = 4 * MS;
	for (int i = 0; i < 80; i++) {
		uint64_t pb = id;

		s[n++] = mk(id++, 3, "process_block", t, (9 + i % 3) * MS, 0);
		if (i % 4 == 0)
			s[n++] = mk(id++, pb, "spill_block", t + 1, 2 * MS, 0);
		t += 11 * MS;
	}
	s[n++] = mk(id++, 3, "merge_results", t, 5 * MS, 0);
	return n;
}

static void test_print_collapsed(void **state)
{
	struct sp_span s[200];
	size_t n = demo_query(s);
	char *text = tree_text(s, n, 0);

	(void)state;
	/* 80 x 9, 10, 11 ms: total 26*30+27*10 + ... = 799 ms; lower median 10 */
	assert_string_equal(text,
		"query 1 pid 7 tid 7  handle_query  1000.0 ms  (1970-01-01T00:00:00.000000Z)\n"
		"├── parse_query  2.0 ms\n"
		"└── execute_query  900.0 ms\n"
		"    ├── process_block ×80  total 799.0 ms, p50 10.0 ms, max 11.0 ms\n"
		"    │   └── spill_block ×20  total 40.0 ms, p50 2.0 ms, max 2.0 ms\n"
		"    └── merge_results  5.0 ms\n");
	free(text);
	text = tree_text(s, n, SP_TREE_EXPAND);
	assert_int_equal(count_lines(text), n);
	assert_non_null(strstr(text, "    ├── process_block  9.0 ms\n"
					"    │   └── spill_block  2.0 ms\n"
					"    ├── process_block  10.0 ms\n"));
	free(text);
}

/* Only consecutive siblings collapse; two in a row stay two lines. */
static void test_print_runs_only(void **state)
{
	struct sp_span s[] = { mk(1, 0, "q", 0, 100 * MS, SP_SPAN_ROOT),
			       mk(2, 1, "a", 1 * MS, 1 * MS, 0), mk(3, 1, "b", 2 * MS, 1 * MS, 0),
			       mk(4, 1, "a", 3 * MS, 1 * MS, 0), mk(5, 1, "b", 4 * MS, 1 * MS, 0),
			       mk(6, 1, "c", 5 * MS, 1 * MS, 0), mk(7, 1, "c", 6 * MS, 1 * MS, 0),
			       mk(8, 1, "d", 7 * MS, 1 * MS, 0), mk(9, 1, "d", 8 * MS, 3 * MS, SP_SPAN_ABNORMAL),
			       mk(10, 1, "d", 12 * MS, 2 * MS, 0) };
	char *text = tree_text(s, 10, 0);

	(void)state;
	assert_string_equal(strchr(text, '\n') + 1,
		"├── a  1.0 ms\n├── b  1.0 ms\n├── a  1.0 ms\n├── b  1.0 ms\n"
		"├── c  1.0 ms\n├── c  1.0 ms\n"
		"└── d ×3  total 6.0 ms, p50 2.0 ms, max 3.0 ms  [abnormal]\n");
	free(text);
}

/* What collapsed siblings called is grouped by name at every level, and
 * a chain deeper than the drawn levels is counted, never lost or printed
 * again as an orphan tree. */
static void test_print_deep_below_collapsed(void **state)
{
	enum { CHAIN = 100 };
	struct sp_span s[5 + CHAIN];
	size_t n = 0;
	char *text;

	(void)state;
	s[n++] = mk(1, 0, "q", 0, 100 * MS, SP_SPAN_ROOT);
	for (int i = 0; i < 3; i++)
		s[n++] = mk(2 + i, 1, "a", (1 + i) * MS, 1 * MS, 0);
	for (int i = 0; i < CHAIN; i++)
		s[n++] = mk(10 + i, i ? 9 + i : 2, "deep", 1 * MS + i, 1000, 0);
	text = tree_text(s, n, 0);
	assert_null(strstr(text, "orphan"));
	assert_non_null(strstr(text, "└── a ×3  total 3.0 ms"));
	assert_non_null(strstr(text, "deeper spans]"));
	/* the root, the run, 24 drawn levels, the count */
	assert_int_equal(count_lines(text), 1 + 1 + 24 + 1);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_print_collapsed),
		cmocka_unit_test(test_print_runs_only),
		cmocka_unit_test(test_print_deep_below_collapsed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
