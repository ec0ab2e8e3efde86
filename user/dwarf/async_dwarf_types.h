/*
 * Reading rustc's DWARF types for the async analysis (async_dwarf_types.c).
 */
#ifndef SPANPROBE_ASYNC_DWARF_TYPES_H
#define SPANPROBE_ASYNC_DWARF_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dwarf/async_dwarf_base.h"

#define MAX_DEPTH 48      /* type nesting followed below one future */

/* A coroutine type (coroutine_env): its variant part and its __state. */
struct env {
	Dwarf_Die vp;
	uint32_t state_off;
	uint8_t state_size;
};

/* One variant of a variant part: its discriminant values (none: the
 * default, untagged variant) and the structure holding its fields. */
struct variant {
	struct sp_async_range v[8];
	size_t n;
	bool is_default;
	uint64_t off;      /* of the variant's member in the enum */
	Dwarf_Die type;    /* the variant's structure */
	const char *name;  /* the member's name: "Future", "3" */
};

bool sp_adw_type_of(Dwarf_Die *d, Dwarf_Die *out);
bool sp_adw_peel(Dwarf_Die *t);
uint64_t sp_adw_type_size(Dwarf_Die *t);
bool sp_adw_member_offset(Dwarf_Die *m, uint64_t *off);
bool sp_adw_child_tag(Dwarf_Die *parent, int tag, Dwarf_Die *out);
bool sp_adw_variant_part(Dwarf_Die *st, Dwarf_Die *vp, Dwarf_Die *discr,
			 bool *has_discr);
bool coroutine_env(Dwarf_Die *t, struct env *e);
bool dyn_future_ptr(Dwarf_Die *t, uint32_t *ptr_off, const char **name);
bool join_handle(Dwarf_Die *t, uint32_t *raw_off);
bool owning_box(Dwarf_Die *t, Dwarf_Die *pointee);
void for_each_variant(Dwarf_Die *vp, bool (*fn)(void *, struct variant *),
		      void *ctx);
bool sp_adw_interesting(struct scan *s, Dwarf_Die *t, int depth);
void env_args(struct scan *s, struct env *e, uint32_t base,
	      struct sp_async_field **args, size_t *n);

#endif
