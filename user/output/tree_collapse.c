/*
 * The arithmetic of collapsed tree lines (tree_collapse.h); drawing them
 * is span_print.c's.
 */
#include <stdlib.h>
#include <string.h>
#include "output/tree_collapse.h"

/* Names come from a block's string table or the symbol table: equal
 * names are usually one pointer, but not always. */
static int same_name(const struct sp_span *a, const struct sp_span *b)
{
	if (a->name == b->name)
		return 1;
	return a->name && b->name && !strcmp(a->name, b->name);
}

size_t sp_collapse_run(const struct sp_span *const *v, size_t n)
{
	size_t i = 1;

	if (!n)
		return 0;
	while (i < n && same_name(v[0], v[i]))
		i++;
	return i;
}

static int cmp_u64p(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int sp_collapse_stats(const struct sp_span *const *v, size_t n,
		      struct sp_collapse_stats *out)
{
	uint64_t *d = malloc((n ? n : 1) * sizeof(*d));

	memset(out, 0, sizeof(*out));
	if (!d)
		return -1;
	for (size_t i = 0; i < n; i++) {
		d[i] = sp_span_duration(v[i]);
		out->total_ns += d[i];
		out->flags |= v[i]->flags;
		if (d[i] > out->max_ns)
			out->max_ns = d[i];
	}
	qsort(d, n, sizeof(*d), cmp_u64p);
	out->count = n;
	out->p50_ns = n ? d[(n - 1) / 2] : 0;
	free(d);
	return 0;
}

/* Quadratic in the number of distinct names, which is small: a caller's
 * callees are a handful of functions however often each is called. */
size_t sp_collapse_group(const struct sp_span **v, size_t n, size_t *sizes)
{
	const struct sp_span **out = malloc((n ? n : 1) * sizeof(*out));
	char *taken = calloc(n ? n : 1, 1);
	size_t groups = 0, k = 0;

	if (!out || !taken) {
		free(out);
		free(taken);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (taken[i])
			continue;
		sizes[groups] = 0;
		for (size_t j = i; j < n; j++) {
			if (!taken[j] && same_name(v[i], v[j])) {
				taken[j] = 1;
				out[k++] = v[j];
				sizes[groups]++;
			}
		}
		groups++;
	}
	memcpy(v, out, n * sizeof(*v));
	free(out);
	free(taken);
	return groups;
}
