/*
 * Read lists -> bulk copies (see nested_ranges.h).
 */
#include <stdlib.h>
#include <string.h>
#include "attach/nested_ranges.h"

struct by_off {
	const struct sp_read *r;
	size_t i;
};

static int cmp_off(const void *a, const void *b)
{
	const struct by_off *x = a, *y = b;

	if (x->r->off != y->r->off)
		return x->r->off < y->r->off ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* The range being grown: where it starts in the future and in scratch. */
struct cur {
	__u32 off, end, base;
	bool open;
};

static void close_range(struct sp_read_ranges *out, struct cur *c)
{
	if (!c->open)
		return;
	out->r[out->n++] = (struct sp_read){ .off = c->off, .size = (__u16)(c->end - c->off) };
	c->base += c->end - c->off;
	c->open = false;
}

/* Adds one value to the current range or starts a new one; false when
 * the scratch buffer is full. */
static bool place(struct sp_read_ranges *out, struct cur *c, const struct sp_read *r, size_t i,
		  __u32 gap)
{
	__u32 end = r->off + r->size;

	if (c->open && r->off <= c->end + gap) {
		__u32 grown = end > c->end ? end : c->end;

		if (c->base + (grown - c->off) <= SP_NESTED_SCRATCH - 8) {
			c->end = grown;
			out->pos[i] = (__u16)(c->base + (r->off - c->off));
			return true;
		}
	}
	close_range(out, c);
	if (c->base + r->size > SP_NESTED_SCRATCH - 8 || out->n == SP_NESTED_MAX)
		return false;
	*c = (struct cur){ .off = r->off, .end = end, .base = c->base, .open = true };
	out->pos[i] = (__u16)c->base;
	return true;
}

static bool build(const struct by_off *v, size_t n, __u32 gap, struct sp_read_ranges *out)
{
	struct cur c = { 0 };

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < SP_NESTED_MAX; i++)
		out->pos[i] = SP_NESTED_POS_NONE;
	for (size_t k = 0; k < n; k++)
		if (v[k].r->size < 1 || v[k].r->size > 8 || !place(out, &c, v[k].r, v[k].i, gap))
			return false;
	close_range(out, &c);
	return true;
}

/* A read through a pointer another read found (base != 0) is at an
 * address known only while reading: ranges are offsets from self. Such a
 * list is read value by value, hops and all. */
static bool has_hops(const struct sp_read *reads, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (reads[i].base)
			return true;
	return false;
}

void sp_nested_ranges_build(const struct sp_read *reads, size_t n, struct sp_read_ranges *out)
{
	struct by_off v[SP_NESTED_MAX];

	if (n > SP_NESTED_MAX)
		n = SP_NESTED_MAX;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct by_off){ &reads[i], i };
	/* without gaps the copies hold at most the values themselves, 64 x 8
	 * bytes: they always fit */
	if (!has_hops(reads, n)) {
		if (n)
			qsort(v, n, sizeof(v[0]), cmp_off);
		if (build(v, n, SP_NESTED_GAP, out) || build(v, n, 0, out))
			return;
	}
	memset(out, 0, sizeof(*out)); /* n == 0: every value read alone */
	for (size_t i = 0; i < SP_NESTED_MAX; i++)
		out->pos[i] = SP_NESTED_POS_NONE;
}
