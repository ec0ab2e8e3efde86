/*
 * Kept spans per function. Names are looked up by pointer first: spans
 * carry the very string of their function, and two functions may share a
 * demangled name (the same static name in two objects, Rust generics), so
 * only the pointer tells them apart. The name is the fallback.
 */
#include <stdlib.h>
#include <string.h>
#include "stats/kept_count.h"

struct entry {
	const char *name;
	size_t id;
};

struct sp_kept_count {
	struct entry *by_ptr;  /* sorted by pointer value */
	struct entry *by_name; /* sorted by string */
	size_t n;
	uint64_t *count;
	uint64_t unknown;
};

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct entry *)a)->name;
	uintptr_t y = (uintptr_t)((const struct entry *)b)->name;

	return x < y ? -1 : x > y;
}

/* Ties in name go to the lower id, so the fallback is deterministic. */
static int cmp_name(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->id < y->id ? -1 : x->id > y->id);
}

struct sp_kept_count *sp_kept_count_new(const struct sp_func_set *funcs)
{
	struct sp_kept_count *c = calloc(1, sizeof(*c));
	size_t n = funcs->n;

	if (!c)
		return NULL;
	c->n = n;
	c->by_ptr = malloc((n ? n : 1) * sizeof(*c->by_ptr));
	c->by_name = malloc((n ? n : 1) * sizeof(*c->by_name));
	c->count = calloc(n ? n : 1, sizeof(*c->count));
	if (!c->by_ptr || !c->by_name || !c->count) {
		sp_kept_count_free(c);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = funcs->v[i].demangled ? funcs->v[i].demangled : "";

		c->by_ptr[i] = (struct entry){ name, i };
		c->by_name[i] = (struct entry){ name, i };
	}
	qsort(c->by_ptr, n, sizeof(*c->by_ptr), cmp_ptr);
	qsort(c->by_name, n, sizeof(*c->by_name), cmp_name);
	return c;
}

/* The first entry (lowest id) named `name`, or NULL. */
static const struct entry *find_name(const struct sp_kept_count *c, const char *name)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(c->by_name[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n && !strcmp(c->by_name[lo].name, name) ? &c->by_name[lo] : NULL;
}

static const struct entry *find(const struct sp_kept_count *c, const char *name)
{
	struct entry key = { name, 0 };
	const struct entry *e;

	if (!name)
		return NULL;
	e = bsearch(&key, c->by_ptr, c->n, sizeof(key), cmp_ptr);
	return e ? e : find_name(c, name);
}

void sp_kept_count_add(struct sp_kept_count *c, const struct sp_span *spans, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = find(c, spans[i].name);

		if (e)
			c->count[e->id]++;
		else
			c->unknown++;
	}
}

struct sp_kept_count *sp_kept_count_renew(struct sp_kept_count *old,
					  const struct sp_func_set *funcs)
{
	struct sp_kept_count *c = sp_kept_count_new(funcs);

	if (!c)
		return NULL;
	/* ids are indexes into funcs, which only grows */
	for (size_t i = 0; old && i < old->n && i < c->n; i++)
		c->count[i] = old->count[i];
	c->unknown = old ? old->unknown : 0;
	sp_kept_count_free(old);
	return c;
}

const uint64_t *sp_kept_count_get(const struct sp_kept_count *c)
{
	return c ? c->count : NULL;
}

uint64_t sp_kept_count_unknown(const struct sp_kept_count *c)
{
	return c ? c->unknown : 0;
}

void sp_kept_count_free(struct sp_kept_count *c)
{
	if (!c)
		return;
	free(c->by_ptr);
	free(c->by_name);
	free(c->count);
	free(c);
}
