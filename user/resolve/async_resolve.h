/* Marks the resolved functions of one object that are out-of-line polls
 * of Rust futures, from the attach-time analysis (async_dwarf.h). */
#ifndef SPANPROBE_ASYNC_RESOLVE_H
#define SPANPROBE_ASYNC_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include "dwarf/async_dwarf.h"
#include "symbols/symbols.h"

/* funcs all come from the object at open_path. Functions found to be
 * polls get is_async, their self register and state; their name becomes
 * the async fn's (DWARF) name. Objects without Rust closures are not
 * analysed at all. */
void sp_async_annotate(struct sp_func *funcs, size_t n, const char *open_path);
/* The same with an analysis already made. */
void sp_async_annotate_info(struct sp_func *funcs, size_t n, const struct sp_async_info *info);
/* f is poll p (a coroutine's, or a hand-written future's that is a
 * carrier: no state, so it never begins or ends a span by state). */
void sp_async_mark_poll(struct sp_func *f, const struct sp_async_poll *p);

/* Whether a symbol-list glob names an async fn or block known by its
 * analysis name (struct sp_async_poll / sp_async_node .name, e.g.
 * "app::handler", "app::main::{async_block#0}"). Users write the patterns
 * for the poll symbol, which demangles as NAME::{{closure}} (legacy) or
 * NAME::{closure#0} (v0), so those spellings match too; "app::handler::{*}"
 * matches in either mangling. */
bool sp_async_name_matches(const char *glob, const char *name);

#endif
