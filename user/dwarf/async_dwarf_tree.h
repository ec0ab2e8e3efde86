/*
 * Nested futures of a root future, and task cells (async_dwarf_tree.c).
 */
#ifndef SPANPROBE_ASYNC_DWARF_TREE_H
#define SPANPROBE_ASYNC_DWARF_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include "dwarf/async_dwarf_types.h"

char *env_human_name(struct scan *s, Dwarf_Die *env);
void sp_adw_build_tree(struct scan *s, struct sp_async_poll *p, struct env *e);
void sp_adw_build_plain_tree(struct scan *s, struct sp_async_poll *p, Dwarf_Die *type);
bool env_key(struct scan *s, Dwarf_Die *env, uint64_t *key);
void index_cells(struct scan *s);
void resolve_cells(struct scan *s);

#endif
