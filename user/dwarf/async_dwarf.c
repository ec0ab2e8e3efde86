/*
 * Rust async layout from DWARF (see async_dwarf.h).
 *
 * What rustc emits (1.7x-1.9x), and what this file relies on:
 *   - the poll of `async fn f` is a DW_TAG_subprogram named "{async_fn#0}"
 *     inside namespace f (an async block: "{async_block#N}" inside the
 *     enclosing fn's namespace); out-of-line copies have a low_pc;
 *   - its first parameter is Pin<&mut ENV>, ENV a structure named
 *     "{async_fn_env#0}" / "{async_block_env#N}" in the same namespace,
 *     whose DW_TAG_variant_part discriminates on an artificial member
 *     "__state"; the variants' structures are Unresumed (the arguments),
 *     Returned, Panicked and Suspend0.. (the awaited future "__awaitee"
 *     and the locals live across that await, all by value);
 *   - enums are structures with a variant_part too: an explicit tag
 *     member, or a niche (a variant without DW_AT_discr_value is the one
 *     whose fields hold the niche; it is valid unless the tag bytes hold
 *     another variant's value).
 * Everything else (Pin, Box, tuples, ManuallyDrop, MaybeUninit unions) is
 * walked structurally: a future is nested "by value" when it is reachable
 * from a Suspend variant through members, never through a pointer.
 *
 * Big binaries have hundreds of MB of DWARF: each unit is walked once,
 * descending only into namespaces (where rustc puts functions and the
 * coroutine types), and non-Rust units are skipped. The types of a poll
 * are only read when it is one.
 *
 * This file walks the units, makes polls of what it finds and holds the
 * entry points: the top of the analysis, which the other parts never
 * call (async_dwarf_base.h draws the layers): async_dwarf_base.c, the
 * state, checked names and helpers they all share; dwarf_raw.c, the fast
 * pass over the DIEs; async_dwarf_names.c, rustc's names;
 * async_dwarf_types.c, reading the types; async_dwarf_tree.c, the nested
 * futures and task cells; async_dwarf_fallback.c, polls without types;
 * async_dwarf_print.c, the dump.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include "dwarf/async_disasm.h"
#include "dwarf/async_dwarf.h"
#include "dwarf/poll_result.h"
#include "dwarf/async_dwarf_base.h"
#include "dwarf/async_dwarf_fallback.h"
#include "dwarf/async_dwarf_names.h"
#include "dwarf/async_dwarf_tree.h"
#include "dwarf/async_dwarf_types.h"
#include "dwarf/dwarf_raw.h"
#include "symbols/elf_symbols.h"
#include "symbols/symbols.h"
#include "base/errmsg.h"

/* ------------------------------------------------------------------ */
/* One poll function with DWARF types.                                 */

/* Pin<&mut ENV> -> ENV: through single-member wrappers to the pointer. */
static bool pointee_env(Dwarf_Die *t, Dwarf_Die *env, struct env *e)
{
	Dwarf_Die cur = *t, m;

	for (int i = 0; i < 6; i++) {
		if (!sp_adw_peel(&cur))
			return false;
		switch (dwarf_tag(&cur)) {
		case DW_TAG_pointer_type:
		case DW_TAG_reference_type:
			if (!sp_adw_type_of(&cur, env) || !sp_adw_peel(env))
				return false;
			return coroutine_env(env, e);
		case DW_TAG_structure_type:
			if (!sp_adw_child_tag(&cur, DW_TAG_member, &m) || !sp_adw_type_of(&m, &cur))
				return false;
			break;
		default:
			return false;
		}
	}
	return false;
}

/* The first formal parameter (self): on the concrete DIE, which has its
 * location; else on the abstract one it was inlined from, which at least
 * has its type. */
static bool first_param(Dwarf_Die *sub, Dwarf_Die *param)
{
	Dwarf_Attribute a;
	Dwarf_Die origin;

	if (sp_adw_child_tag(sub, DW_TAG_formal_parameter, param))
		return true;
	return dwarf_attr(sub, DW_AT_abstract_origin, &a) &&
	       dwarf_formref_die(&a, &origin) &&
	       sp_adw_child_tag(&origin, DW_TAG_formal_parameter, param);
}

/* Which register holds self on entry: the parameter's location at
 * low_pc when it is a register; otherwise (opt-level 0 describes it on
 * the stack) the ABI rule: a Poll<T> over 16 bytes is returned through a
 * hidden pointer in RDI, which pushes self to RSI. */
static enum sp_async_reg self_register(Dwarf_Die *sub, Dwarf_Die *param,
				       uint64_t low)
{
	Dwarf_Attribute a;
	Dwarf_Op *expr;
	size_t len;
	Dwarf_Die rt;

	if (dwarf_attr(param, DW_AT_location, &a) &&
	    dwarf_getlocation_addr(&a, low, &expr, &len, 1) == 1 && len >= 1) {
		if (expr[0].atom == DW_OP_reg5)
			return SP_AREG_RDI;
		if (expr[0].atom == DW_OP_reg4)
			return SP_AREG_RSI;
	}
	return sp_adw_type_of(sub, &rt) && sp_adw_type_size(&rt) > 16 ? SP_AREG_RSI : SP_AREG_RDI;
}

static void add_bare(struct scan *s, uint64_t low, uint64_t high, const char *dname)
{
	struct bare_poll *b = sp_adw_grow(s->bare, s->n_bare, &s->bare_cap, sizeof(*b));

	if (!b) {
		s->oom = true;
		return;
	}
	s->bare = b;
	b[s->n_bare].low = low;
	b[s->n_bare].high = high;
	b[s->n_bare].dname = sp_adw_xstrdup(s, dname);
	s->n_bare++;
}

static void typed_poll(struct scan *s, Dwarf_Die *sub, const char *ns,
		       const char *dname, uint64_t low, uint64_t high)
{
	Dwarf_Die param, pt, env;
	struct env e;
	struct sp_async_poll *p;
	Dwarf_Attribute a;

	if (!first_param(sub, &param) || !sp_adw_type_of(&param, &pt) ||
	    !pointee_env(&pt, &env, &e)) {
		add_bare(s, low, high, dname); /* let the code tell */
		return;
	}
	if (!(p = sp_adw_new_poll(s)))
		return;
	p->linkage_name = dwarf_attr_integrate(sub, DW_AT_linkage_name, &a) ?
				  sp_adw_xstrdup(s, dwarf_formstring(&a)) : NULL;
	p->name = sp_adw_display_name(p->linkage_name, ns, dname);
	p->low_pc = low;
	p->size = high - low;
	sp_async_code_offset(s->elf, low, 1, &p->file_offset);
	p->self_reg = self_register(sub, &param, low);
	/* the Poll comes back through the hidden pointer exactly when it
	 * pushed self to RSI (the Rust ABI does so for 16 bytes too) */
	if (sp_poll_result_err(sub, &p->result_err))
		p->result_err.via_ptr = p->self_reg == SP_AREG_RSI;
	p->state_off = e.state_off;
	p->state_size = e.state_size;
	p->future_size = (uint32_t)sp_adw_type_size(&env);
	p->is_block = sp_adw_starts_with(dname, "{async_block");
	p->from_dwarf = true;
	if (!env_key(s, &env, &s->poll_env[s->out->n - 1]))
		s->poll_env[s->out->n - 1] = 0;
	if (!p->name)
		s->oom = true;
	env_args(s, &e, 0, &p->args, &p->n_args);
	sp_adw_build_tree(s, p, &e);
}

/* The T of a `poll(self: Pin<&mut T>, ..)` whose T is no coroutine:
 * a hand-written future. */
static bool pointee_struct(Dwarf_Die *t, Dwarf_Die *out)
{
	Dwarf_Die cur = *t, m;
	struct env e;

	for (int i = 0; i < 6; i++) {
		if (!sp_adw_peel(&cur))
			return false;
		switch (dwarf_tag(&cur)) {
		case DW_TAG_pointer_type:
		case DW_TAG_reference_type:
			if (!sp_adw_type_of(&cur, out) || !sp_adw_peel(out))
				return false;
			return dwarf_tag(out) == DW_TAG_structure_type && !coroutine_env(out, &e);
		case DW_TAG_structure_type: /* Pin { pointer } */
			if (!sp_adw_child_tag(&cur, DW_TAG_member, &m) || !sp_adw_type_of(&m, &cur))
				return false;
			break;
		default:
			return false;
		}
	}
	return false;
}

static struct sp_async_poll *new_hand_poll(struct scan *s)
{
	struct sp_async_poll *v = sp_adw_grow(s->out->plain, s->out->n_plain, &s->hand_cap,
					      sizeof(*v));

	if (!v) {
		s->oom = true;
		return NULL;
	}
	s->out->plain = v;
	memset(&v[s->out->n_plain], 0, sizeof(*v));
	v[s->out->n_plain].task_cell_off = UINT32_MAX;
	return &v[s->out->n_plain++];
}

/* `<T as Future>::poll` out of line, T holding futures (by value or
 * behind Boxes): hyper's connection task keeps the handler's future in
 * a Pin<Box<Option<F>>> and polls it inline. A carrier candidate
 * (sp_async_poll.plain); most such polls hold nothing named and are
 * dropped when plans are made. */
static void hand_poll(struct scan *s, Dwarf_Die *sub, uint64_t low, uint64_t high)
{
	Dwarf_Die param, pt, self;
	struct sp_async_poll *p;
	Dwarf_Attribute a;
	const char *ln;
	uint64_t off;

	if (!first_param(sub, &param) || !sp_adw_type_of(&param, &pt) ||
	    !pointee_struct(&pt, &self) || !sp_adw_interesting(s, &self, 0) ||
	    !dwarf_attr_integrate(sub, DW_AT_linkage_name, &a) || !(ln = dwarf_formstring(&a)) ||
	    !sp_async_code_offset(s->elf, low, 1, &off) || !(p = new_hand_poll(s)))
		return;
	p->linkage_name = sp_adw_xstrdup(s, ln);
	p->name = sp_demangle(ln);
	p->low_pc = low;
	p->size = high - low;
	p->file_offset = off;
	p->self_reg = self_register(sub, &param, low);
	p->future_size = (uint32_t)sp_adw_type_size(&self);
	p->from_dwarf = true;
	p->plain = true;
	if (!p->name)
		s->oom = true;
	sp_adw_build_plain_tree(s, p, &self);
}

/* ------------------------------------------------------------------ */
/* The walk over units.                                                */

static void push_u64(struct scan *s, uint64_t **v, size_t *n, size_t *cap,
		     uint64_t x)
{
	uint64_t *nv = sp_adw_grow(*v, *n, cap, sizeof(*nv));

	if (!nv) {
		s->oom = true;
		return;
	}
	nv[(*n)++] = x;
	*v = nv;
}

static void consider_subprogram(struct scan *s, Dwarf_Die *d, const char *ns)
{
	Dwarf_Addr low, high;
	const char *n;

	if (!dwarf_hasattr(d, DW_AT_low_pc) || dwarf_lowpc(d, &low) != 0 ||
	    dwarf_highpc(d, &high) != 0 || high <= low || !(n = sp_adw_die_name(d)))
		return;
	if (sp_adw_starts_with(n, "{closure#")) {
		push_u64(s, &s->plain, &s->n_plain, &s->plain_cap, low);
		return;
	}
	if (s->unit_typed && (strcmp(n, "poll") == 0 || sp_adw_starts_with(n, "poll<"))) {
		hand_poll(s, d, low, high);
		return;
	}
	if (!is_poll_name(n))
		return;
	if (s->unit_typed)
		typed_poll(s, d, ns, n, low, high);
	else
		add_bare(s, low, high, n);
}

static void remember_env(struct scan *s, Dwarf_Off off, const char *name,
			 const char *ns)
{
	char **v;
	uint64_t *d;

	if (!is_env_name(name))
		return;
	if (!(v = sp_adw_grow(s->ns_names, s->n_ns, &s->ns_cap, sizeof(*v)))) {
		s->oom = true;
		return;
	}
	s->ns_names = v;
	v[s->n_ns] = sp_adw_xstrdup(s, ns);
	if (!(d = sp_adw_grow(s->env_die, s->n_ns, &s->env_die_cap, sizeof(*d)))) {
		s->oom = true;
		return;
	}
	s->env_die = d;
	d[s->n_ns] = off;
	if (offmap_put(&s->env_ns, off, (uint32_t)s->n_ns))
		s->oom = true;
	s->n_ns++;
}

/* tokio::runtime::task::core::Cell<F, S>: a spawned task's allocation,
 * whose address JoinHandle.raw holds; F sits at a fixed offset in it. */
static void remember_cell(struct scan *s, Dwarf_Off off, const char *name,
			  const char *ns)
{
	uint64_t *v;

	if (strcmp(ns, "tokio::runtime::task::core") != 0 ||
	    !sp_adw_starts_with(name, "Cell<"))
		return;
	if (!(v = sp_adw_grow(s->cells, s->n_cells, &s->cells_cap, sizeof(*v)))) {
		s->oom = true;
		return;
	}
	s->cells = v;
	v[s->n_cells++] = off;
}

/* Polls come after the coroutine types in a namespace in rustc's
 * output, but not necessarily: typed polls are analysed after the walk
 * of their unit, so this walk only collects. */
struct pending {
	Dwarf_Off die;
	char *ns;
};

static void note_subprogram(struct walk *w, Dwarf_Off off)
{
	struct pending *v = sp_adw_grow(w->v, w->n, &w->cap, sizeof(*v));

	if (!v) {
		w->s->oom = true;
		return;
	}
	w->v = v;
	v[w->n].die = off;
	v[w->n].ns = sp_adw_xstrdup(w->s, w->ns);
	w->n++;
}

/* Every poll DIE of the namespace, inlined or not, for naming the
 * coroutine types that sit beside it. */
static void remember_linkage(struct walk *w, const char *name, const char *ln)
{
	struct scan *s = w->s;
	const char **v;
	char key[4352];

	if (!(v = sp_adw_grow(s->links, s->n_links, &s->links_cap, sizeof(*v)))) {
		s->oom = true;
		return;
	}
	s->links = v;
	v[s->n_links] = ln;
	poll_key(key, sizeof(key), w->ns, name);
	if (offmap_put(&s->link_of, sp_adw_fnv1a(key), (uint32_t)s->n_links))
		s->oom = true;
	s->n_links++;
}

static void note_die(struct walk *w, const struct die_facts *f)
{
	switch (f->tag) {
	case DW_TAG_subprogram:
		if (f->has_low_pc)
			note_subprogram(w, f->off);
		if (is_poll_name(f->name) && f->linkage)
			remember_linkage(w, f->name, f->linkage);
		break;
	case DW_TAG_structure_type:
		w->s->unit_typed = true;
		remember_env(w->s, f->off, f->name, w->ns);
		remember_cell(w->s, f->off, f->name, w->ns);
		break;
	case DW_TAG_base_type:
		w->s->unit_typed = true;
		break;
	default:
		break;
	}
}

/* The libdw walk: the fallback for units the fast pass cannot decode. */
static void walk_scope(struct walk *w, Dwarf_Die *parent, int depth)
{
	Dwarf_Die c;

	if (depth > 64 || dwarf_child(parent, &c) != 0)
		return;
	do {
		struct die_facts f = { .off = dwarf_dieoffset(&c), .tag = dwarf_tag(&c),
				       .name = dwarf_diename(&c) };
		Dwarf_Attribute a;

		if (f.tag == DW_TAG_namespace) {
			size_t len = sp_adw_push_ns(w, f.name);

			walk_scope(w, &c, depth + 1);
			w->ns[len] = '\0';
			continue;
		}
		if (f.tag == DW_TAG_subprogram) {
			f.has_low_pc = dwarf_hasattr(&c, DW_AT_low_pc);
			f.linkage = dwarf_attr(&c, DW_AT_linkage_name, &a) ?
					    dwarf_formstring(&a) : NULL;
		}
		note_die(w, &f);
	} while (dwarf_siblingof(&c, &c) == 0);
}

static void reset_unit(struct scan *s)
{
	for (size_t i = 0; i < s->n_ns; i++)
		free(s->ns_names[i]);
	s->n_ns = 0;
	offmap_clear(&s->env_ns);
	s->n_links = 0;
	offmap_clear(&s->link_of);
	s->n_cells = 0;
	offmap_clear(&s->interest);
	s->unit_typed = false;
}

static void drop_pending(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].ns);
	w->n = 0;
	w->ns[0] = '\0';
}

static bool count_suspend(void *p, struct variant *v)
{
	uint32_t *n = p;

	*n += !v->is_default && sp_adw_starts_with(dwarf_diename(&v->type), "Suspend");
	return true;
}

/* Every coroutine type of the unit goes to out->known, inlined or not:
 * a pattern naming an async fn with no out-of-line poll and no place in
 * a root's future still names something, which the user must be told
 * cannot be seen. */
static void note_known(struct scan *s)
{
	for (size_t i = 0; i < s->n_ns && !s->oom; i++) {
		struct sp_async_known *k;
		Dwarf_Die d;
		struct env e;

		if (!dwarf_offdie(s->dw, s->env_die[i], &d) || !coroutine_env(&d, &e))
			continue;
		if (!(k = sp_adw_grow(s->out->known, s->out->n_known, &s->known_cap, sizeof(*k)))) {
			s->oom = true;
			return;
		}
		s->out->known = k;
		k = &k[s->out->n_known];
		k->n_suspend = 0;
		for_each_variant(&e.vp, count_suspend, &k->n_suspend);
		if (!(k->name = env_human_name(s, &d))) {
			s->oom = true;
		} else if (strstr(k->name, "{impl#")) {
			/* a trait method's type in a unit without its poll: the
			 * unit that has it names it "<T as Trait>::f", as users
			 * write it; this spelling would only be a duplicate */
			free(k->name);
		} else {
			s->out->n_known++;
		}
	}
}

/* r, us: NULL for a split unit, which the fast pass cannot read (its
 * strings and abbreviations sit in another file's sections). */
static void scan_unit(struct scan *s, Dwarf_Die *cu, const struct raw_secs *r,
		      const struct unit_span *us)
{
	struct walk w = { .s = s, .note = note_die };

	if (!r || !raw_unit_walk(&w, r, us)) {
		/* start over with libdw: forget what the fast pass noted */
		drop_pending(&w);
		reset_unit(s);
		walk_scope(&w, cu, 0);
	}
	index_cells(s);
	for (size_t i = 0; i < w.n; i++) {
		Dwarf_Die d;

		if (dwarf_offdie(s->dw, w.v[i].die, &d))
			consider_subprogram(s, &d, w.v[i].ns);
	}
	drop_pending(&w);
	free(w.v);
	if (s->unit_typed)
		note_known(s);
	if (s->unit_typed)
		s->out->has_types = true;
	reset_unit(s);
}

/* split-debuginfo: the unit in the object is a skeleton; libdw finds its
 * split unit in a .dwo file (the skeleton names it) or, from elfutils
 * 0.191 on, in the .dwp beside the object. Its DIE offsets belong to
 * that file's Dwarf, which the walk uses for the time of the unit. */
static void scan_split(struct scan *s, Dwarf_Die *skeleton)
{
	Dwarf_Die sub;
	uint8_t type;
	Dwarf *mine = s->dw;

	if (dwarf_cu_info(skeleton->cu, NULL, &type, NULL, &sub, NULL, NULL, NULL) ||
	    type != DW_UT_skeleton)
		return;
	if (dwarf_tag(&sub) != DW_TAG_compile_unit) {
		s->out->split_missing++;
		return;
	}
	if (dwarf_srclang(&sub) != DW_LANG_Rust)
		return;
	s->out->has_dwarf = true;
	s->out->split_units++;
	s->dw = dwarf_cu_getdwarf(sub.cu);
	if (dwarf_getelf(s->dw))
		sp_adw_add_sections(dwarf_getelf(s->dw));
	scan_unit(s, &sub, NULL, NULL);
	s->dw = mine;
}

static bool is_skeleton(Dwarf_Die *cu)
{
	uint8_t type;

	return dwarf_cu_info(cu->cu, NULL, &type, NULL, NULL, NULL, NULL, NULL) == 0 &&
	       type == DW_UT_skeleton;
}

static void scan_dwarf(struct scan *s)
{
	Dwarf_Off off = 0, next;
	struct raw_secs r;
	struct unit_span us;
	size_t hsize;

	find_raw_secs(s->dwarf_elf, &r);
	while (!s->oom &&
	       dwarf_next_unit(s->dw, off, &next, &hsize, &us.version, &us.abbrev,
			       &us.addr_size, &us.off_size, NULL, NULL) == 0) {
		Dwarf_Die cu;

		us.die = off + hsize;
		us.end = next;
		off = next;
		if (!dwarf_offdie(s->dw, us.die, &cu))
			continue;
		if (is_skeleton(&cu)) {
			scan_split(s, &cu);
			continue;
		}
		if (dwarf_tag(&cu) != DW_TAG_compile_unit ||
		    dwarf_srclang(&cu) != DW_LANG_Rust)
			continue;
		s->out->has_dwarf = true;
		scan_unit(s, &cu, &r, &us);
	}
	resolve_cells(s);
}

/* ------------------------------------------------------------------ */
/* Entry points.                                                       */

static int cmp_poll(const void *a, const void *b)
{
	const struct sp_async_poll *x = a, *y = b;

	return x->low_pc < y->low_pc ? -1 : x->low_pc > y->low_pc;
}

static void free_fields(struct sp_async_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

static void free_poll(struct sp_async_poll *p)
{
	free(p->name);
	free(p->linkage_name);
	free(p->symbol);
	free_fields(p->args, p->n_args);
	for (size_t k = 0; k < p->n_nodes; k++) {
		free(p->nodes[k].name);
		free(p->nodes[k].path);
		free(p->nodes[k].guard);
		free_fields(p->nodes[k].args, p->nodes[k].n_args);
		free_fields(p->nodes[k].held, p->nodes[k].n_held);
	}
	free(p->nodes);
}

static int cmp_known(const void *a, const void *b)
{
	return strcmp(((const struct sp_async_known *)a)->name,
		      ((const struct sp_async_known *)b)->name);
}

/* Generic async fns have one coroutine type per instance, and units
 * repeat types: one entry per name, with the most await points. */
static void sort_dedup_known(struct sp_async_info *out)
{
	size_t k = 0;

	if (!out->n_known)
		return;
	qsort(out->known, out->n_known, sizeof(*out->known), cmp_known);
	for (size_t i = 1; i < out->n_known; i++) {
		struct sp_async_known *a = &out->known[k], *b = &out->known[i];

		if (strcmp(a->name, b->name) != 0) {
			out->known[++k] = *b;
			continue;
		}
		if (b->n_suspend > a->n_suspend)
			a->n_suspend = b->n_suspend;
		free(b->name);
	}
	out->n_known = k + 1;
}

const struct sp_async_known *sp_async_find_known(const struct sp_async_info *info,
						  const char *name)
{
	struct sp_async_known key = { .name = (char *)name };

	if (!info->n_known || !name)
		return NULL;
	return bsearch(&key, info->known, info->n_known, sizeof(key), cmp_known);
}

/* The same function described twice (by two units): keep one. */
static void sort_dedup(struct sp_async_info *out)
{
	size_t k = 0;

	if (!out->n)
		return;
	qsort(out->polls, out->n, sizeof(*out->polls), cmp_poll);
	for (size_t i = 1; i < out->n; i++) {
		if (out->polls[i].low_pc == out->polls[k].low_pc)
			free_poll(&out->polls[i]);
		else
			out->polls[++k] = out->polls[i];
	}
	out->n = k + 1;
}

static void free_scan(struct scan *s)
{
	reset_unit(s);
	free(s->ns_names);
	free(s->env_die);
	free(s->links);
	free(s->cells);
	free(s->poll_env);
	offmap_clear(&s->cell_off);
	for (size_t i = 0; i < s->n_bare; i++)
		free(s->bare[i].dname);
	free(s->bare);
	free(s->plain);
}

/* Code is disassembled from it: mapped shared, never with uprobes' int3s. */
static int open_elf(const char *path, int *fd, Elf **elf, void **map, size_t *map_size,
		    char *err, size_t errlen)
{
	GElf_Ehdr eh;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		sp_set_err(err, errlen, "libelf: %s", elf_errmsg(-1));
		return -1;
	}
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		sp_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	*elf = sp_elf_begin_shared(*fd, map, map_size);
	if (!*elf || elf_kind(*elf) != ELF_K_ELF || !gelf_getehdr(*elf, &eh)) {
		sp_set_err(err, errlen, "%s: not an ELF file", path);
		return -1;
	}
	if (eh.e_machine != EM_X86_64) {
		sp_set_err(err, errlen, "%s: not an x86-64 object", path);
		return -1;
	}
	return 0;
}

/* The debug file's ELF, for its DWARF; the object's own without one,
 * opened again from its file: libdw finds split DWARF (.dwo, the .dwp
 * beside it) through the file, which the shared mapping the code is read
 * from does not name. */
static int open_dwarf_elf(struct scan *s, const char *path, const char *debug_path, int *fd,
			  char *err, size_t errlen)
{
	if (!debug_path)
		debug_path = path;
	*fd = open(debug_path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		sp_set_err(err, errlen, "%s: %s", debug_path, strerror(errno));
		return -1;
	}
	s->dwarf_elf = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (!s->dwarf_elf || elf_kind(s->dwarf_elf) != ELF_K_ELF) {
		sp_set_err(err, errlen, "%s: not an ELF file", debug_path);
		return -1;
	}
	return 0;
}

static void analyze(struct scan *s, const char *path, const char *debug_path)
{
	struct sp_elf syms;
	/* no symbols is fine: DWARF alone still gives typed polls */
	bool have_syms = sp_elf_open_debug(&syms, path, debug_path, path, NULL, 0) == 0;

	sp_adw_note_sections(s->dwarf_elf);
	s->dw = dwarf_begin_elf(s->dwarf_elf, DWARF_C_READ, NULL);
	if (s->dw)
		scan_dwarf(s);
	if (s->n_plain) /* s->plain is NULL when empty: not even qsort(NULL, 0) */
		qsort(s->plain, s->n_plain, sizeof(uint64_t), sp_adw_cmp_u64);
	if (!s->oom)
		run_fallback(s, have_syms ? &syms : NULL);
	if (have_syms) {
		sp_adw_name_symbols(s, &syms);
		sp_elf_close(&syms);
	}
	if (s->dw)
		dwarf_end(s->dw);
}

int sp_async_analyze(const char *path, struct sp_async_info *out, char *err,
		     size_t errlen)
{
	return sp_async_analyze_debug(path, NULL, out, err, errlen);
}

int sp_async_analyze_debug(const char *path, const char *debug_path,
			   struct sp_async_info *out, char *err, size_t errlen)
{
	struct scan s = { .out = out };
	int fd = -1, dfd = -1, rc = -1;
	void *map = NULL;
	size_t map_size = 0;

	memset(out, 0, sizeof(*out));
	if (open_elf(path, &fd, &s.elf, &map, &map_size, err, errlen) ||
	    open_dwarf_elf(&s, path, debug_path, &dfd, err, errlen))
		goto done;
	analyze(&s, path, debug_path);
	free_scan(&s);
	sort_dedup(out);
	sort_dedup_known(out);
	rc = 0;
	if (s.oom) {
		sp_set_err(err, errlen, "%s: out of memory", path);
		sp_async_info_free(out);
		rc = -1;
	}
done:
	sp_adw_forget_sections();
	if (s.dwarf_elf && s.dwarf_elf != s.elf)
		elf_end(s.dwarf_elf);
	if (s.elf)
		elf_end(s.elf);
	if (map)
		munmap(map, map_size);
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0)
		close(fd);
	return rc;
}

void sp_async_info_free(struct sp_async_info *info)
{
	for (size_t i = 0; i < info->n; i++)
		free_poll(&info->polls[i]);
	free(info->polls);
	for (size_t i = 0; i < info->n_plain; i++)
		free_poll(&info->plain[i]);
	free(info->plain);
	for (size_t i = 0; i < info->n_rejected; i++) {
		free(info->rejected[i].name);
		free(info->rejected[i].why);
	}
	free(info->rejected);
	for (size_t i = 0; i < info->n_known; i++)
		free(info->known[i].name);
	free(info->known);
	memset(info, 0, sizeof(*info));
}

bool sp_async_guard_holds(const struct sp_async_node *n, uint64_t v)
{
	bool in = false;

	for (size_t i = 0; i < n->n_guard && !in; i++)
		in = v >= n->guard[i].lo && v <= n->guard[i].hi;
	return in != n->guard_negate;
}

uint64_t sp_async_read(const uint8_t *mem, size_t len, uint32_t off,
		       uint32_t size)
{
	uint64_t v = 0;

	if (!size || size > 8 || off > len || size > len - off)
		return 0;
	for (uint32_t i = 0; i < size; i++)
		v |= (uint64_t)mem[off + i] << (8 * i);
	return v;
}

void sp_async_eval(const struct sp_async_poll *p, const uint8_t *mem,
		   size_t len, uint64_t *value, bool *active)
{
	uint64_t root = sp_async_read(mem, len, p->state_off, p->state_size);

	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct sp_async_node *n = &p->nodes[i];
		bool up = n->parent < 0 || active[n->parent];
		uint64_t pv = n->parent < 0 ? root : value[n->parent];
		bool fits = n->off <= len && n->size <= len - n->off;

		value[i] = fits ? sp_async_read(mem, len, n->off, n->size) : 0;
		active[i] = up && fits && sp_async_guard_holds(n, pv);
	}
}
