/* Open-addressing u64 -> u64 map (linear probing, backward-shift delete).
 * Key 0 is reserved as "empty": span ids and tids are never 0. */
#ifndef SPANPROBE_IDMAP_H
#define SPANPROBE_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_idmap {
	uint64_t *keys;
	uint64_t *vals;
	size_t cap; /* power of two */
	size_t n;
};

int sp_idmap_put(struct sp_idmap *m, uint64_t key, uint64_t val);
bool sp_idmap_get(const struct sp_idmap *m, uint64_t key, uint64_t *val);
bool sp_idmap_del(struct sp_idmap *m, uint64_t key);
void sp_idmap_clear(struct sp_idmap *m);
void sp_idmap_free(struct sp_idmap *m);

#endif
