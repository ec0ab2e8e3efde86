/*
 * What every part of the Rust async analysis stands on (async_dwarf.c and
 * the async_dwarf_*.c, dwarf_raw.c files it is split into): the analysis
 * state, DWARF names checked against their sections, and the helpers in
 * async_dwarf_base.c. Not an API: async_dwarf.h is; only those files
 * include this one. The parts are layered, none calls one above it:
 *   async_dwarf_base.c, dwarf_raw.c (and async_disasm.c, the code reader)
 *   async_dwarf_names.c
 *   async_dwarf_types.c
 *   async_dwarf_tree.c, async_dwarf_fallback.c
 *   async_dwarf.c (the walk and the entry points), async_dwarf_print.c
 * tools/check-layers.sh (run by `make test`) fails on a call back up.
 */
#ifndef SPANPROBE_ASYNC_DWARF_BASE_H
#define SPANPROBE_ASYNC_DWARF_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <elfutils/libdw.h>
#include "dwarf/async_info.h"

/* Every DWARF name the analysis reads is checked against the bounds of
 * the sections of the file under analysis (see async_dwarf_base.c). */
const char *sp_adw_checked_diename(Dwarf_Die *d);
const char *sp_adw_checked_formstring(Dwarf_Attribute *a);
#define dwarf_diename(d) sp_adw_checked_diename(d)
#define dwarf_formstring(a) sp_adw_checked_formstring(a)

/* The sections of the file under analysis, which names are checked
 * against; forgotten at the end of the analysis. */
void sp_adw_note_sections(Elf *e);
/* Adds the sections of one more file whose DWARF is read (a split
 * DWARF .dwo or .dwp). */
void sp_adw_add_sections(Elf *e);
void sp_adw_forget_sections(void);

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
	Elf *elf;          /* the object: its code and load segments */
	Elf *dwarf_elf;    /* where its DWARF is: itself or its debug file */
	struct sp_async_info *out;
	size_t polls_cap, rejected_cap, hand_cap; /* hand: out->plain */
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

struct die_facts;

/* One unit's walk (async_dwarf.c), fed DIE by DIE by libdw or by the
 * fast pass (dwarf_raw.c); ns: the namespace path it is in. The fast
 * pass hands each DIE to note, the walk's own: it never calls up. */
struct walk {
	struct scan *s;
	struct pending *v;
	size_t n, cap;
	char ns[4096];
	void (*note)(struct walk *w, const struct die_facts *f);
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

void *sp_adw_grow(void *v, size_t n, size_t *cap, size_t elem);
bool offmap_get(const struct offmap *m, uint64_t k, uint32_t *v);
int offmap_put(struct offmap *m, uint64_t k, uint32_t v);
void offmap_clear(struct offmap *m);
char *sp_adw_xstrdup(struct scan *s, const char *str);
struct sp_async_poll *sp_adw_new_poll(struct scan *s);
size_t sp_adw_push_ns(struct walk *w, const char *name);

#endif
