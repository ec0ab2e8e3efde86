#include <errno.h>
#include <stdlib.h>
#include "base/idmap.h"

static size_t slot_of(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return key & (cap - 1);
}

static size_t find(const struct sp_idmap *m, uint64_t key)
{
	size_t i = slot_of(key, m->cap);

	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int grow(struct sp_idmap *m)
{
	struct sp_idmap bigger = { 0 };

	bigger.cap = m->cap ? m->cap * 2 : 16;
	bigger.keys = calloc(bigger.cap, sizeof(uint64_t));
	bigger.vals = calloc(bigger.cap, sizeof(uint64_t));
	if (!bigger.keys || !bigger.vals) {
		sp_idmap_free(&bigger);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (m->keys[i]) {
			size_t j = find(&bigger, m->keys[i]);

			bigger.keys[j] = m->keys[i];
			bigger.vals[j] = m->vals[i];
			bigger.n++;
		}
	}
	sp_idmap_free(m);
	*m = bigger;
	return 0;
}

int sp_idmap_put(struct sp_idmap *m, uint64_t key, uint64_t val)
{
	size_t i;

	if (!key)
		return -EINVAL;
	if ((m->n + 1) * 4 > m->cap * 3 && grow(m))
		return -ENOMEM;
	i = find(m, key);
	if (!m->keys[i]) {
		m->keys[i] = key;
		m->n++;
	}
	m->vals[i] = val;
	return 0;
}

bool sp_idmap_get(const struct sp_idmap *m, uint64_t key, uint64_t *val)
{
	size_t i;

	if (!m->cap || !key)
		return false;
	i = find(m, key);
	if (!m->keys[i])
		return false;
	if (val)
		*val = m->vals[i];
	return true;
}

/* Backward-shift deletion keeps probe chains intact without tombstones, so
 * long-lived maps (one entry per live thread) never degrade. */
bool sp_idmap_del(struct sp_idmap *m, uint64_t key)
{
	size_t mask = m->cap - 1, i, j;

	if (!m->cap || !key)
		return false;
	i = find(m, key);
	if (!m->keys[i])
		return false;
	for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
		size_t home = slot_of(m->keys[j], m->cap);

		/* move j back into the hole at i unless its home lies in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = 0;
	m->n--;
	return true;
}

void sp_idmap_clear(struct sp_idmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		m->keys[i] = 0;
	m->n = 0;
}

void sp_idmap_free(struct sp_idmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = m->vals = NULL;
	m->cap = m->n = 0;
}
