/*
 * Unit tests for user/nested_ranges.c: a carrier's read list as bulk
 * copies. Every value must be found at its position in the concatenated
 * copies of a fake future, exactly as a read of its own would give it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "attach/nested_ranges.h"

/* What BPF does with the ranges (bpf/nested_reads.h), on a byte array. */
static uint64_t value_via_ranges(const uint8_t *fut, const struct sp_read_ranges *rr,
				 const struct sp_read *r, size_t i, uint8_t *scratch)
{
	uint32_t base = 0;
	uint64_t v = 0;

	for (uint32_t k = 0; k < rr->n; k++) {
		memcpy(scratch + base, fut + rr->r[k].off, rr->r[k].size);
		base += rr->r[k].size;
	}
	if (rr->pos[i] == SP_NESTED_POS_NONE)
		memcpy(&v, fut + r[i].off, r[i].size);
	else
		memcpy(&v, scratch + rr->pos[i], r[i].size);
	return v;
}

static void check_all(const struct sp_read *r, size_t n, const struct sp_read_ranges *rr)
{
	static uint8_t fut[8192], scratch[2 * SP_NESTED_SCRATCH];

	for (size_t i = 0; i < sizeof(fut); i++)
		fut[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < n; i++) {
		uint64_t want = 0;

		memcpy(&want, fut + r[i].off, r[i].size);
		assert_true(value_via_ranges(fut, rr, r, i, scratch) == want);
		if (rr->pos[i] != SP_NESTED_POS_NONE)
			assert_true(rr->pos[i] + 8u <= SP_NESTED_SCRATCH);
	}
}

/* Unsorted, overlapping, adjacent and distant values. */
static void test_merges_close_values(void **state)
{
	static const struct sp_read r[] = {
		{ 0x430, 1, 0 }, { 0xd1, 1, 0 }, { 0xd8, 8, 0 }, { 0x5a4, 1, 0 }, { 0xe0, 8, 0 },
		{ 0xd1, 1, 0 }, { 0x1000, 4, 0 }, { 0x110, 2, 0 },
	};
	struct sp_read_ranges rr;

	(void)state;
	sp_nested_ranges_build(r, 8, &rr);
	/* 0xd1..0x112 together; 0x430, 0x5a4 and 0x1000 apart */
	assert_int_equal(rr.n, 4);
	assert_int_equal(rr.r[0].off, 0xd1);
	assert_int_equal(rr.r[0].size, 0x112 - 0xd1);
	check_all(r, 8, &rr);
}

/* Merged across gaps, the copies would not fit the scratch buffer: they
 * merge only where values touch, and every value still has a place. */
static void test_scratch_full(void **state)
{
	struct sp_read r[SP_NESTED_MAX];
	struct sp_read_ranges rr;

	(void)state;
	for (size_t i = 0; i < SP_NESTED_MAX; i++)
		r[i] = (struct sp_read){ (uint32_t)(i * 40), 8, 0 }; /* 2.5 KiB, gaps of 32 */
	r[1].off = 8; /* touches r[0] */
	sp_nested_ranges_build(r, SP_NESTED_MAX, &rr);
	assert_int_equal(rr.n, SP_NESTED_MAX - 1);
	for (size_t i = 0; i < SP_NESTED_MAX; i++)
		assert_int_not_equal(rr.pos[i], SP_NESTED_POS_NONE);
	check_all(r, SP_NESTED_MAX, &rr);
}

/* A size BPF cannot load as one word: every value is read alone. */
static void test_odd_size(void **state)
{
	static const struct sp_read r[] = { { 0x10, 1, 0 }, { 0x20, 9, 0 } };
	struct sp_read_ranges rr;

	(void)state;
	sp_nested_ranges_build(r, 2, &rr);
	assert_int_equal(rr.n, 0);
}

/* A read through a pointer (hyper's Box hops): its address is known only
 * while reading, so the whole list is read value by value, even the
 * values next to each other at self. */
static void test_hops_read_alone(void **state)
{
	static const struct sp_read r[] = {
		{ 0x10, 8, 0 }, { 0x18, 1, 0 }, { 0x0, 1, 1 }, { 0x8, 8, 1 },
	};
	struct sp_read_ranges rr;

	(void)state;
	sp_nested_ranges_build(r, 4, &rr);
	assert_int_equal(rr.n, 0);
	for (size_t i = 0; i < SP_NESTED_MAX; i++)
		assert_int_equal(rr.pos[i], SP_NESTED_POS_NONE);
	/* the same values without the hops merge into one range */
	sp_nested_ranges_build(r, 2, &rr);
	assert_int_equal(rr.n, 1);
}

static void test_empty(void **state)
{
	struct sp_read_ranges rr;

	(void)state;
	sp_nested_ranges_build(NULL, 0, &rr);
	assert_int_equal(rr.n, 0);
	assert_int_equal(rr.pos[0], SP_NESTED_POS_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merges_close_values),
		cmocka_unit_test(test_scratch_full),
		cmocka_unit_test(test_odd_size),
		cmocka_unit_test(test_hops_read_alone),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
