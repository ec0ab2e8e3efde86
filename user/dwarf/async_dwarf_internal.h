/*
 * What the parts of the Rust async analysis share (async_dwarf.c and the
 * async_dwarf_*.c, dwarf_raw.c files it is split into): the analysis
 * state, the views of DWARF types they hand each other, and the functions
 * one part calls in another. Not an API: async_dwarf.h is; only those
 * files include this one.
 */
#ifndef SPANPROBE_ASYNC_DWARF_INTERNAL_H
#define SPANPROBE_ASYNC_DWARF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <elfutils/libdw.h>
#include "dwarf/async_dwarf.h"

struct sp_elf; /* elf_symbols.h */

/* Every DWARF name the analysis reads is checked against the bounds of
 * the sections of the file under analysis (see async_dwarf.c). */
const char *sp_adw_checked_diename(Dwarf_Die *d);
const char *sp_adw_checked_formstring(Dwarf_Attribute *a);
#define dwarf_diename(d) sp_adw_checked_diename(d)
#define dwarf_formstring(a) sp_adw_checked_formstring(a)

#define MAX_DEPTH 48      /* type nesting followed below one future */

/* DIE offset -> value, open addressing; offsets are never 0 in a map
 * because no type DIE sits at offset 0 of .debug_info. */
struct offmap {
	uint64_t *key;
	uint32_t *val;
	size_t cap, n;
};

/* A poll function DWARF names but does not type (line tables only). */
struct bare_poll {
	uint64_t low, high;
	char *dname; /* "{async_fn#0}", "{async_block#1}" */
};

/* One analysis (sp_async_analyze): what it found so far, and the
 * per-unit and whole-object indexes it keeps. */
struct scan {
	Dwarf *dw;
	Elf *elf;
	struct sp_async_info *out;
	size_t polls_cap, rejected_cap;
	/* per unit: coroutine type DIE -> index into ns_names */
	struct offmap env_ns;
	char **ns_names;
	size_t n_ns, ns_cap;
	uint64_t *env_die;  /* parallel to ns_names: the coroutine type */
	size_t env_die_cap;
	size_t known_cap;
	/* per unit: fnv1a("ns::{async_fn#N}") -> index into links, the
	 * linkage names of the polls (abstract or concrete) */
	struct offmap link_of;
	const char **links; /* point into .debug_str, live as long as dw */
	size_t n_links, links_cap;
	/* per unit: type DIE -> 1 holds no future by value, 2 holds one,
	 * 3 being computed (a recursive type: counts as "no") */
	struct offmap interest;
	struct bare_poll *bare;
	size_t n_bare, bare_cap;
	uint64_t *plain;   /* low_pc of DWARF {closure#N}: not coroutines */
	size_t n_plain, plain_cap;
	/* per unit: tokio task cells (Cell<F, S>) */
	uint64_t *cells;
	size_t n_cells, cells_cap;
	/* whole object: fnv1a(path of a coroutine type) -> offset of that
	 * future in its task cell; a poll and the cell of its future are
	 * often described in different units */
	struct offmap cell_off;
	uint64_t *poll_env;  /* parallel to out->polls: its type's key */
	size_t poll_env_cap;
	bool unit_typed;
	bool oom;
};

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

/* One unit's walk (async_dwarf.c), fed DIE by DIE by libdw or by the
 * fast pass (dwarf_raw.c); ns: the namespace path it is in. */
struct walk {
	struct scan *s;
	struct pending *v;
	size_t n, cap;
	char ns[4096];
};

/* What the walk needs of one DIE that sits directly in a namespace (or
 * in the unit itself); nothing deeper matters to it. */
struct die_facts {
	Dwarf_Off off;
	int tag;
	const char *name;    /* DW_AT_name of the DIE itself, or NULL */
	const char *linkage; /* DW_AT_linkage_name of the DIE itself */
	bool has_low_pc;
};

/* The sections the fast pass reads, as libdw left them (decompressed). */
struct raw_secs {
	const uint8_t *info, *abbrev, *str, *str_offsets;
	size_t info_len, abbrev_len, str_len, str_offsets_len;
};

/* Where a unit is and how it is encoded. */
struct unit_span {
	Dwarf_Off die, end, abbrev; /* unit DIE, end of the unit */
	uint16_t version;
	uint8_t addr_size, off_size;
};

/* async_dwarf.c */
void *sp_adw_grow(void *v, size_t n, size_t *cap, size_t elem);
bool offmap_get(const struct offmap *m, uint64_t k, uint32_t *v);
int offmap_put(struct offmap *m, uint64_t k, uint32_t v);
char *sp_adw_xstrdup(struct scan *s, const char *str);
struct sp_async_poll *sp_adw_new_poll(struct scan *s);
void sp_adw_note_die(struct walk *w, const struct die_facts *f);
size_t sp_adw_push_ns(struct walk *w, const char *name);

/* async_dwarf_names.c */
bool sp_adw_starts_with(const char *s, const char *p);
const char *sp_adw_die_name(Dwarf_Die *d);
bool is_poll_name(const char *n);
bool is_env_name(const char *n);
char *sp_adw_human_name(const char *ns, const char *last);
char *sp_adw_name_from_symbol(const char *dem, const char *dname);
char *sp_adw_display_name(const char *linkage, const char *ns, const char *dname);
void poll_key(char *buf, size_t len, const char *ns, const char *name);
uint64_t sp_adw_fnv1a(const char *s);

/* async_dwarf_types.c */
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
void for_each_variant(Dwarf_Die *vp, bool (*fn)(void *, struct variant *),
		      void *ctx);
bool sp_adw_interesting(struct scan *s, Dwarf_Die *t, int depth);
void env_args(struct scan *s, struct env *e, uint32_t base,
	      struct sp_async_field **args, size_t *n);

/* async_dwarf_tree.c */
char *env_human_name(struct scan *s, Dwarf_Die *env);
void sp_adw_build_tree(struct scan *s, struct sp_async_poll *p, struct env *e);
bool env_key(struct scan *s, Dwarf_Die *env, uint64_t *key);
void index_cells(struct scan *s);
void resolve_cells(struct scan *s);

/* dwarf_raw.c */
void find_raw_secs(Elf *e, struct raw_secs *r);
bool raw_unit_walk(struct walk *w, const struct raw_secs *r,
		   const struct unit_span *us);

/* async_dwarf_fallback.c */
int sp_adw_cmp_u64(const void *a, const void *b);
void sp_adw_name_symbols(struct scan *s, const struct sp_elf *elf);
void run_fallback(struct scan *s, const struct sp_elf *elf);

#endif
