/* Room for one more element in a growable array. */
#ifndef SPANPROBE_GROW_H
#define SPANPROBE_GROW_H

#include <stddef.h>

/* Makes *v (of *cap elements of elem bytes, n in use) hold at least n + 1,
 * doubling. 0, or -1 with *v and *cap untouched (out of memory). */
int sp_grow(void **v, size_t *cap, size_t n, size_t elem);

#endif
