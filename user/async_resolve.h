/* Marks the resolved functions of one object that are out-of-line polls
 * of Rust futures, from the attach-time analysis (async_dwarf.h). */
#ifndef SPANPROBE_ASYNC_RESOLVE_H
#define SPANPROBE_ASYNC_RESOLVE_H

#include <stddef.h>
#include "symbols.h"

/* funcs all come from the object at open_path. Functions found to be
 * polls get is_async, their self register and state; their name becomes
 * the async fn's (DWARF) name. Objects without Rust closures are not
 * analysed at all. */
void sp_async_annotate(struct sp_func *funcs, size_t n, const char *open_path);

#endif
