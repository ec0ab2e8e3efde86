/*
 * Patterns -> functions: which code in which object a symbol list means,
 * and how the end of each call will be observed.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "base/grow.h"
#include "dwarf/async_disasm.h"
#include "dwarf/func_params.h"
#include <linux/types.h>
#include "spanprobe.h"
#include "resolve/async_nested.h"
#include "resolve/async_resolve.h"
#include "symbols/debuginfo.h"
#include "symbols/elf_symbols.h"
#include "symbols/exit_sites.h"
#include "symbols/proc_maps.h"
#include "symbols/probe_cost.h"
#include "symbols/program_libs.h"
#include "symbols/symbols.h"
#include "symbols/entry_place.h"
#include "symbols/unwind_facts.h"
#include "symbols/usdt_notes.h"
#include "resolve/resolve.h"
#include "base/errmsg.h"

/* A glob split at its first metacharacter: the literal head rejects most
 * of a 100k-symbol object with one strncmp before fnmatch runs. */
struct prepped {
	const char *glob;
	size_t lit;   /* bytes before the first * ? [ or backslash */
	bool literal; /* no metacharacter at all: plain equality */
};

/* Cold parts indexed by the name of the function they were split from. */
struct cold_ref {
	char *base;
	size_t func; /* index into sp_elf.funcs */
};

/* One object being resolved; names are demangled once, here. */
struct obj {
	struct sp_elf elf;
	const char *path;      /* as the process sees it */
	const char *open_path;
	const struct sp_debuginfo *dbg; /* its separate debug file, or NULL */
	size_t src;            /* its entry in sp_func_set.objects */
	char **dem;            /* parallel to elf.name_pool */
	bool rust;
	bool x86_64;
	struct sp_unwind_table *unwind; /* built on first need */
	struct cold_ref *cold; /* built on first need */
	size_t n_cold;
	bool cold_built;
};

/* Where unwinding may start in the process: nowhere (raiser NULL), or in
 * this object through this unwinder entry. Exceptions and panics can only
 * cross a probed frame when something in the process raises them. */
struct raise_scope {
	char *raiser; /* the object, as the process sees it */
	const char *sym;
	char *unwinder; /* the object the unwind guard hooks (open path); NULL: none */
};

struct builder {
	struct sp_func_set *set;
	size_t cap, objects_cap;
	bool no_exe; /* the objects are libraries mapped later: none is the exe */
	struct raise_scope scope;
};

static void prep_patterns(const struct sp_pattern_list *pats, struct prepped *pp)
{
	for (size_t i = 0; i < pats->n; i++) {
		pp[i].glob = pats->v[i].glob;
		pp[i].lit = strcspn(pats->v[i].glob, "*?[\\");
		pp[i].literal = pats->v[i].glob[pp[i].lit] == '\0';
	}
}

static bool match_one(const struct prepped *p, const char *s)
{
	if (p->literal)
		return strcmp(s, p->glob) == 0;
	return strncmp(s, p->glob, p->lit) == 0 && fnmatch(p->glob, s, 0) == 0;
}

/* Same answer as sp_pattern_matches, faster. */
static bool match(const struct prepped *p, const char *raw, const char *dem)
{
	return (dem && match_one(p, dem)) || match_one(p, raw);
}

/* An async fn named without "::{*}": the pattern matches its poll's name
 * without the suffix (sp_async_name_matches reads names the same way).
 * Whether the closure really is an async fn's poll is for the analysis
 * to say (by_fn_name). */
static bool match_fn_name(const struct prepped *p, const char *dem)
{
	static const char *const suffix[] = { "::{{closure}}", "::{closure#0}" };
	char buf[4096];
	size_t n = dem ? strlen(dem) : 0;

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		size_t k = strlen(suffix[i]);

		if (n > k && n - k < sizeof(buf) && strcmp(dem + n - k, suffix[i]) == 0) {
			memcpy(buf, dem, n - k);
			buf[n - k] = '\0';
			return match_one(p, buf);
		}
	}
	return false;
}

static size_t name_index(const struct obj *o, const char *const *slot)
{
	return (size_t)(slot - o->elf.name_pool);
}

/* Slots of name_pool in use: groups are laid out in address order. */
static size_t pool_used(const struct obj *o)
{
	const struct sp_elf_func *last;

	if (!o->elf.n)
		return 0;
	last = &o->elf.funcs[o->elf.n - 1];
	return name_index(o, last->names) + last->n_names;
}

static int demangle_all(struct obj *o)
{
	size_t total = pool_used(o);

	o->dem = calloc(total ? total : 1, sizeof(*o->dem));
	if (!o->dem)
		return -1;
	for (size_t i = 0; i < o->elf.n; i++) {
		const struct sp_elf_func *f = &o->elf.funcs[i];

		for (size_t k = 0; k < f->n_names; k++) {
			size_t j = name_index(o, &f->names[k]);

			o->dem[j] = sp_demangle(f->names[k]);
			if (!o->dem[j])
				return -1;
		}
	}
	return 0;
}

static const char *debug_path(const struct obj *o)
{
	return o->dbg ? o->dbg->path : NULL;
}

/* exe: the executable, whose debug file is looked for everywhere (a
 * library's in the --debuginfo paths only: symbols/debuginfo.h). */
static int open_obj(struct obj *o, const char *path, const char *open_path, bool exe,
		    char *err, size_t errlen)
{
	GElf_Ehdr eh;

	int rc;

	memset(o, 0, sizeof(*o));
	o->path = path;
	o->open_path = open_path;
	o->dbg = sp_debuginfo_for(path, open_path, exe);
	rc = sp_elf_open_debug(&o->elf, open_path, debug_path(o), path, err, errlen);
	if (rc)
		return rc;
	o->rust = sp_object_is_rust(o->elf.elf);
	o->x86_64 = gelf_getehdr(o->elf.elf, &eh) && eh.e_machine == EM_X86_64;
	if (demangle_all(o)) {
		sp_set_err(err, errlen, "%s: out of memory", path);
		return -1;
	}
	return 0;
}

static void close_obj(struct obj *o)
{
	size_t total = pool_used(o);

	for (size_t i = 0; o->dem && i < total; i++)
		free(o->dem[i]);
	free(o->dem);
	for (size_t i = 0; i < o->n_cold; i++)
		free(o->cold[i].base);
	free(o->cold);
	sp_unwind_table_free(o->unwind);
	sp_elf_close(&o->elf);
}

/* A .cold part is reached by jumps from its parent, never called: it is
 * not a function of its own to match. */
static bool is_cold_part(const struct sp_elf_func *f)
{
	bool cold = false;

	sp_clone_stripped_len(f->names[0], &cold);
	return cold;
}

static int cmp_cold(const void *a, const void *b)
{
	return strcmp(((const struct cold_ref *)a)->base,
		      ((const struct cold_ref *)b)->base);
}

/* "foo.isra.0.cold.3" -> "foo.isra.0": only the last .cold[.N] goes,
 * since GCC names the cold part after the (maybe cloned) parent. */
static char *cold_base(const char *raw)
{
	const char *c = NULL, *p = raw;

	while ((p = strstr(p, ".cold"))) {
		const char *t = p + 5;

		if (*t == '.')
			t += 1 + strspn(t + 1, "0123456789");
		if (*t == '\0' && (t == p + 5 || t[-1] != '.'))
			c = p;
		p += 5;
	}
	return c ? strndup(raw, (size_t)(c - raw)) : NULL;
}

static int build_cold_index(struct obj *o)
{
	o->cold_built = true;
	for (size_t i = 0; i < o->elf.n; i++) {
		const struct sp_elf_func *f = &o->elf.funcs[i];
		char *base;

		if (!f->in_exec || !(base = cold_base(f->names[0])))
			continue;
		struct cold_ref *v = realloc(o->cold, (o->n_cold + 1) * sizeof(*v));

		if (!v) {
			free(base);
			return -1;
		}
		o->cold = v;
		v[o->n_cold++] = (struct cold_ref){ .base = base, .func = i };
	}
	if (o->n_cold)
		qsort(o->cold, o->n_cold, sizeof(*o->cold), cmp_cold);
	return 0;
}

/* Adds the cold parts named after any of f's names to ranges (at most
 * max entries); returns the new count. */
static size_t find_colds(const struct obj *o, const struct sp_elf_func *f,
			 struct sp_code_range *r, size_t n, size_t max,
			 size_t *idx)
{
	for (size_t k = 0; o->n_cold && k < f->n_names; k++) {
		struct cold_ref key = { .base = (char *)f->names[k] };
		struct cold_ref *hit = bsearch(&key, o->cold, o->n_cold,
					       sizeof(key), cmp_cold);

		if (!hit)
			continue;
		/* bsearch lands anywhere in a run of equal bases */
		while (hit > o->cold && strcmp(hit[-1].base, key.base) == 0)
			hit--;
		for (; hit < o->cold + o->n_cold &&
		       strcmp(hit->base, key.base) == 0 && n < max; hit++) {
			const struct sp_elf_func *c = &o->elf.funcs[hit->func];

			idx[n] = hit->func;
			r[n++] = (struct sp_code_range){ c->addr, c->size };
		}
	}
	return n;
}

#define MAX_PARTS 8

static int scan_parts(const struct obj *o, const struct sp_code_range *r,
		      const size_t *idx, size_t n, struct sp_exit_sites *sites,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct sp_elf_func *p = &o->elf.funcs[idx[i]];
		const uint8_t *code = sp_elf_bytes(&o->elf, p->offset, p->size);

		if (!code) {
			sp_set_err(err, errlen, "code outside the file");
			return -1;
		}
		if (sp_exit_sites_scan(code, p->size, p->addr, p->offset, r, n,
				       sites, err, errlen))
			return -1;
	}
	return 0;
}

/* Fills exit_offsets, or returns -1 with the reason in err. */
static int fill_exit_sites(struct obj *o, size_t fi, struct sp_func *out,
			   char *err, size_t errlen)
{
	const struct sp_elf_func *f = &o->elf.funcs[fi];
	struct sp_code_range r[MAX_PARTS];
	size_t idx[MAX_PARTS], n;
	struct sp_exit_sites sites = { 0 };

	if (!o->x86_64) {
		sp_set_err(err, errlen, "not x86-64 code");
		return -1;
	}
	if (!o->cold_built && build_cold_index(o)) {
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	r[0] = (struct sp_code_range){ f->addr, f->size };
	idx[0] = fi;
	n = find_colds(o, f, r, 1, MAX_PARTS, idx);
	if (scan_parts(o, r, idx, n, &sites, err, errlen)) {
		sp_exit_sites_free(&sites);
		return -1;
	}
	out->exit_offsets = sites.v;
	out->n_exit = sites.n;
	return 0;
}

static void set_problem(struct sp_func *f, const char *fmt, const char *arg)
{
	if (asprintf(&f->problem, fmt, arg) < 0)
		f->problem = NULL;
}

/* The function and its cold parts (at most MAX_PARTS); 0 when out of memory. */
static size_t func_parts(struct obj *o, size_t fi, struct sp_code_range *r, size_t *idx)
{
	const struct sp_elf_func *f = &o->elf.funcs[fi];

	if (!o->cold_built && build_cold_index(o))
		return 0;
	r[0] = (struct sp_code_range){ f->addr, f->size };
	idx[0] = fi;
	return find_colds(o, f, r, 1, MAX_PARTS, idx);
}

/* No unwind table entry covers the function: the unwinder stops at its
 * frame whatever its return address holds. */
static bool without_cfi(struct obj *o, size_t fi)
{
	struct sp_code_range r[MAX_PARTS];
	size_t idx[MAX_PARTS], n = func_parts(o, fi, r, idx);

	if (!o->unwind)
		o->unwind = sp_unwind_table_open(o->elf.elf);
	return n && o->unwind && sp_code_has_cfi(o->unwind, r, n) == 0;
}

static enum sp_exit_mode auto_exit(struct obj *o, size_t fi, const struct raise_scope *sc,
				   bool guard, char **why)
{
	int rc;

	if (!sc->raiser) {
		rc = asprintf(why, o->rust ?
			      "Rust built with panic = \"abort\" and nothing else in the process "
			      "raises exceptions: nothing can unwind through it" :
			      "nothing in the process raises exceptions or panics (no object "
			      "imports _Unwind_RaiseException or __cxa_throw)");
		goto uret;
	}
	if (without_cfi(o, fi)) {
		rc = asprintf(why, "no unwind table covers it: nothing can unwind through it "
			      "(though %s raises exceptions: %s)", sc->raiser, sc->sym);
		goto uret;
	}
	/* ret sites cost ~19 µs a call (single-stepped); a guarded
	 * uretprobe ~1 µs, and 0.3 ms per exception through it */
	if (guard && sc->unwinder) {
		rc = asprintf(why, "an exception or panic may unwind through it (%s raises them: "
			      "%s): a uretprobe under the unwind guard", sc->raiser, sc->sym);
		if (rc < 0)
			*why = NULL;
		return SP_EXIT_GUARD;
	}
	rc = asprintf(why, "an exception or panic may unwind through it (%s raises them: "
		      "%s), which a uretprobe would turn into an abort (%s)", sc->raiser, sc->sym,
		      !sc->unwinder ? "no object of the process defines the unwinder the "
		      "unwind guard hooks: _Unwind_RaiseException..." :
		      "the unwind guard cannot work on this attach");
	if (rc < 0)
		*why = NULL;
	return SP_EXIT_RETSITES;
uret:
	if (rc < 0)
		*why = NULL;
	return SP_EXIT_URETPROBE;
}

static enum sp_exit_mode forced_guard(const struct raise_scope *sc, char **why)
{
	if (sc->unwinder) {
		*why = strdup("forced by --exit-probe guard");
		return SP_EXIT_GUARD;
	}
	if (!sc->raiser) {
		*why = strdup("--exit-probe guard, but nothing in the process raises exceptions: "
			      "a plain uretprobe");
		return SP_EXIT_URETPROBE;
	}
	*why = strdup("--exit-probe guard, but no object defines the unwinder it hooks "
		      "(_Unwind_RaiseException...): ret sites");
	return SP_EXIT_RETSITES;
}

static void choose_exit(struct obj *o, size_t fi, enum sp_exit_policy policy,
			const struct raise_scope *sc, struct sp_func *out)
{
	char why[256];

	if (policy == SP_EXIT_AUTO || policy == SP_EXIT_AUTO_NO_GUARD) {
		out->exit_mode = auto_exit(o, fi, sc, policy == SP_EXIT_AUTO, &out->exit_why);
	} else if (policy == SP_EXIT_FORCE_GUARD) {
		out->exit_mode = forced_guard(sc, &out->exit_why);
	} else {
		out->exit_mode = policy == SP_EXIT_FORCE_RETSITES ? SP_EXIT_RETSITES :
				 SP_EXIT_URETPROBE;
		out->exit_why = strdup(policy == SP_EXIT_FORCE_RETSITES ?
				       "forced by --exit-probe retsites" :
				       "forced by --exit-probe uretprobe");
	}
	if (out->problem || out->exit_mode != SP_EXIT_RETSITES)
		return;
	if (fill_exit_sites(o, fi, out, why, sizeof(why)))
		set_problem(out, "cannot decode for exit sites: %s", why);
}

static bool captures_args(const struct sp_func *f)
{
	for (unsigned i = 0; i < f->n_caps; i++)
		if (f->caps[i].src == SP_CAP_ARG)
			return true;
	return false;
}

/* Past single-stepped first instructions (endbr64, `sub $N,%rsp`, mov,
 * lea...) to the first emulated one, when no branch of the function, its
 * cold parts included, comes back between the start and there. A
 * uretprobe or session must see the stack pointer on the slot; a poll's
 * `self` must not have been touched. */
static void choose_entry(struct obj *o, size_t fi, struct sp_func *out)
{
	const struct sp_elf_func *f = &o->elf.funcs[fi];
	const uint8_t *code = sp_elf_bytes(&o->elf, f->offset, f->size);
	struct sp_code_range r[MAX_PARTS];
	size_t idx[MAX_PARTS], n;
	struct sp_entry_place pl;
	unsigned limits = (sp_exit_hijacks(out->exit_mode) ? SP_ENTRY_KEEP_SP : 0) |
			  (out->is_async ? SP_ENTRY_KEEP_ARGS : 0) |
			  (captures_args(out) ? SP_ENTRY_KEEP_ALL_ARGS : 0);

	out->entry_shift = 0;
	out->entry_sp_delta = 0;
	if (out->problem || !o->x86_64 || !code)
		return;
	sp_entry_place_find(code, f->size, f->addr, limits, &pl);
	if (!pl.shift || !(n = func_parts(o, fi, r, idx)))
		return;
	for (size_t i = 0; i < n; i++) {
		const struct sp_elf_func *p = &o->elf.funcs[idx[i]];
		const uint8_t *pc = sp_elf_bytes(&o->elf, p->offset, p->size);

		if (!pc || sp_code_branches_into(pc, p->size, p->addr, f->addr + 1,
						 f->addr + pl.shift) != 0)
			return;
	}
	out->entry_shift = (uint8_t)pl.shift;
	out->entry_sp_delta = (uint16_t)pl.sp_delta;
}

static int elf_func_at(const struct obj *o, uint64_t offset);

/* Polls are known only after the async analysis: their entries are
 * placed again, keeping `self` intact. */
static void replace_poll_entries(struct builder *b, struct obj *o, size_t first)
{
	for (size_t i = first; i < b->set->n; i++) {
		struct sp_func *f = &b->set->v[i];
		int fi;

		if (f->is_async && f->entry_shift && (fi = elf_func_at(o, f->offset)) >= 0)
			choose_entry(o, (size_t)fi, f);
	}
}

static struct sp_func *new_func(struct builder *b)
{
	struct sp_func_set *s = b->set;

	if (sp_grow((void **)&s->v, &b->cap, s->n, sizeof(*s->v)))
		return NULL;
	memset(&s->v[s->n], 0, sizeof(s->v[0]));
	return &s->v[s->n++];
}

static int add_func(struct builder *b, struct obj *o, size_t fi, size_t name,
		    int pattern, enum sp_role role, enum sp_exit_policy policy)
{
	const struct sp_elf_func *f = &o->elf.funcs[fi];
	struct sp_func *out = new_func(b);

	if (!out)
		return -1;
	out->raw = strdup(f->names[name]);
	out->demangled = strdup(o->dem[name_index(o, &f->names[name])]);
	out->object = strdup(o->path);
	out->open_path = strdup(o->open_path);
	out->addr = f->addr;
	out->size = f->size;
	out->offset = f->offset;
	out->role = role;
	out->pattern = pattern;
	if (f->ifunc)
		set_problem(out, "%s", "ifunc: resolver, not the implementation");
	else if (!f->in_exec)
		set_problem(out, "%s", "not inside an executable PT_LOAD segment");
	choose_exit(o, fi, policy, &b->scope, out);
	choose_entry(o, fi, out);
	return out->raw && out->demangled && out->object && out->open_path && out->exit_why ?
		       0 : -1;
}

static bool has_cap(const struct sp_func *f, const char *name)
{
	for (unsigned i = 0; i < f->n_caps; i++)
		if (!strcmp(f->caps[i].name, name))
			return true;
	return false;
}

/* `args`: the parameters DWARF names, after the entry's own captures, as
 * many as fit. The DWARF is the separate debug file's when the object
 * has one (a stripped binary; its addresses are the object's). No DWARF
 * is a warning: the function is traced all the same, without them. */
static void take_dwarf_args(const struct obj *o, struct sp_func *f, const struct sp_pattern *p)
{
	const char *dwarf = o->dbg && o->dbg->path ? o->dbg->path : f->open_path;
	struct sp_func_params fp;
	char why[256];

	if (sp_func_params(dwarf, f->addr, &fp, why, sizeof(why))) {
		fprintf(stderr, "spanprobe: warning: %s:%d: args of %s: %s\n", p->file, p->line,
			f->demangled, why);
		return;
	}
	for (size_t i = 0; i < fp.n && f->n_caps < 4; i++) {
		unsigned k = f->n_caps;

		if (has_cap(f, fp.v[i].name))
			continue;
		f->owned_names[k] = fp.v[i].name;
		fp.v[i].name = NULL;
		f->caps[k] = (struct sp_cap_decl){ .name = f->owned_names[k], .src = SP_CAP_ARG,
						   .type = fp.v[i].type, .index = fp.v[i].index };
		f->n_caps++;
	}
	sp_func_params_free(&fp);
}

static void take_caps(struct obj *o, size_t fi, struct sp_func *f, const struct sp_pattern *p)
{
	memcpy(f->caps, p->caps, sizeof(f->caps));
	f->n_caps = p->n_caps;
	f->err_cond = p->err_cond;
	f->err_value = p->err_value;
	f->err_result = p->err_result;
	f->want_args = p->want_args;
	if (p->err_result && !sp_async_is_closure_name(f->demangled))
		fprintf(stderr, "spanprobe: warning: %s:%d: error=err on %s: not an out-of-line "
			"poll of a Rust async fn; its spans are never flagged error\n", p->file,
			p->line, f->demangled);
	/* a Rust poll's arguments are its future's fields, taken once the
	 * async analysis has found them (sp_async_mark_poll) */
	if (p->want_args && f->source == SP_SRC_FUNC && !f->problem &&
	    !sp_async_is_closure_name(f->demangled))
		take_dwarf_args(o, f, p);
	/* the entry probe was placed before the captures were known */
	if (f->entry_shift && captures_args(f))
		choose_entry(o, fi, f);
}

/* Every pattern against every name of one function; the function is
 * added once, under the first pattern that matched it. */
static int match_func(struct builder *b, struct obj *o, size_t fi,
		      struct sp_pattern_list *pats, const struct prepped *pp,
		      enum sp_exit_policy policy)
{
	const struct sp_elf_func *f = &o->elf.funcs[fi];
	const char *const *dem = (const char *const *)o->dem + name_index(o, f->names);
	int first = -1;
	size_t first_name = 0;
	enum sp_role role = SP_ROLE_SPAN;
	bool by_fn_name = true;

	for (size_t p = 0; p < pats->n; p++) {
		if (pats->v[p].source != SP_SRC_FUNC)
			continue;
		for (size_t k = 0; k < f->n_names; k++) {
			bool exact = match(&pp[p], f->names[k], dem[k]);

			if (!exact && !match_fn_name(&pp[p], dem[k]))
				continue;
			if (first < 0) {
				first = (int)p;
				first_name = k;
			}
			if (pats->v[p].role == SP_ROLE_ROOT)
				role = SP_ROLE_ROOT;
			/* counted once the analysis confirms an async poll */
			if (exact)
				pats->v[p].matches++;
			by_fn_name &= !exact;
			break;
		}
	}
	if (first < 0)
		return 0;
	if (add_func(b, o, fi, first_name, first, role, policy))
		return -1;
	take_caps(o, fi, &b->set->v[b->set->n - 1], &pats->v[first]);
	b->set->v[b->set->n - 1].by_fn_name = by_fn_name;
	return 0;
}

static void func_free(struct sp_func *f)
{
	free(f->raw);
	free(f->demangled);
	free(f->object);
	free(f->open_path);
	free(f->exit_offsets);
	free(f->problem);
	free(f->exit_why);
	free(f->usdt_provider);
	free(f->usdt_start);
	free(f->usdt_done);
	for (int k = 0; k < 4; k++)
		free(f->owned_names[k]);
	sp_nested_plan_free(f->nested);
}

/* Functions matched only by an async fn's name: kept, and counted for
 * the patterns that named them, when they are that fn's out-of-line
 * poll; dropped otherwise (a plain closure of a fn the pattern names). */
static void confirm_fn_names(struct builder *b, size_t first, struct sp_pattern_list *pats)
{
	size_t w = first;

	for (size_t i = first; i < b->set->n; i++) {
		struct sp_func *f = &b->set->v[i];
		unsigned named = 0;

		/* no pattern matched its own names: each that matches the
		 * fn's name (demangled is now that name) matched it so; an
		 * async block's poll is named after the block, not its fn */
		for (size_t p = 0; f->by_fn_name && f->is_async && p < pats->n; p++)
			named += pats->v[p].source == SP_SRC_FUNC &&
				 sp_async_name_matches(pats->v[p].glob, f->demangled);
		if (f->by_fn_name && !named) {
			func_free(f);
			continue;
		}
		for (size_t p = 0; f->by_fn_name && p < pats->n; p++)
			pats->v[p].matches += pats->v[p].source == SP_SRC_FUNC &&
					      sp_async_name_matches(pats->v[p].glob, f->demangled);
		b->set->v[w++] = *f;
	}
	b->set->n = w;
}

/* Poll functions of async code demangle as closures: an object without
 * any needs no DWARF walk, which is costly on a large Rust server. */
static bool has_closure(const struct obj *o)
{
	size_t total = pool_used(o);

	for (size_t i = 0; i < total; i++)
		if (o->dem[i] && sp_async_is_closure_name(o->dem[i]))
			return true;
	return false;
}

static bool spawned_named(const struct sp_func *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].spawned && v[i].pattern >= 0)
			return true;
	return false;
}

static int elf_func_at(const struct obj *o, uint64_t offset)
{
	for (size_t i = 0; i < o->elf.n; i++)
		if (o->elf.funcs[i].offset == offset && o->elf.funcs[i].n_names)
			return (int)i;
	return -1;
}

static struct sp_func *set_func_at(struct builder *b, size_t first, uint64_t offset)
{
	for (size_t i = first; i < b->set->n; i++)
		if (b->set->v[i].offset == offset)
			return &b->set->v[i];
	return NULL;
}

/* A poll holding named async fns inlined: probed as a carrier, even when
 * no pattern names it. */
static int add_carrier(struct builder *b, struct obj *o, size_t first,
		       const struct sp_async_info *info, const struct sp_async_poll *p,
		       struct sp_nested_plan *plan, enum sp_exit_policy policy)
{
	struct sp_func *f = set_func_at(b, first, p->file_offset);
	int fi;

	if (!f) {
		if ((fi = elf_func_at(o, p->file_offset)) < 0) {
			sp_nested_plan_free(plan);
			return 0;
		}
		if (add_func(b, o, (size_t)fi, 0, -1, SP_ROLE_SPAN, policy))
			return -1;
		f = &b->set->v[b->set->n - 1];
		if (p->plain)
			sp_async_mark_poll(f, p);
		else
			sp_async_annotate_info(f, 1, info);
	} else if (p->plain && !f->is_async) {
		sp_async_mark_poll(f, p);
	}
	f->nested = plan;
	f->held = true;
	return 0;
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d = s && *s ? strdup(s) : NULL;

	*oom |= s && *s && !d;
	return d;
}

/* Where the object's symbols and DWARF come from, for `symbols`. */
static int add_object(struct builder *b, struct obj *o)
{
	struct sp_func_set *set = b->set;
	struct sp_object_src *r;
	bool oom = false;

	if (sp_grow((void **)&set->objects, &b->objects_cap, set->n_objects,
		    sizeof(*set->objects)))
		return -1;
	o->src = set->n_objects++;
	r = &set->objects[o->src];
	memset(r, 0, sizeof(*r));
	r->path = dup_opt(o->path, &oom);
	r->build_id = malloc(SP_BUILD_ID_HEX);
	if (r->build_id)
		sp_build_id_hex(o->elf.elf, r->build_id, SP_BUILD_ID_HEX);
	r->debug_file = dup_opt(debug_path(o), &oom);
	r->debug_source = o->dbg ? sp_debuginfo_source_name(o->dbg->source) : NULL;
	r->debug_why = o->dbg ? dup_opt(o->dbg->why, &oom) : NULL;
	r->syms = o->elf.own_symtab ? SP_SYMS_SYMTAB :
		  o->elf.symtab_from_debug ? SP_SYMS_DEBUG_SYMTAB : SP_SYMS_DYNSYM;
	return oom || !r->build_id ? -1 : 0;
}

static void note_types(struct builder *b, const struct obj *o,
		       const struct sp_async_info *info)
{
	struct sp_object_src *r = &b->set->objects[o->src];

	r->types = info->has_types ? SP_TYPES_FULL :
		   info->has_dwarf ? SP_TYPES_LINES : SP_TYPES_NONE;
	r->split_units = info->split_units;
	r->split_missing = info->split_missing;
}

/* ------------------------------------------------------- plain carriers */

static bool has_name(char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

/* Depth of plan node i (0: at the top of the carrier's future). */
static int plan_depth(const struct sp_nested_plan *pl, size_t i)
{
	int d = 0;

	for (int k = pl->nodes[i].parent; k >= 0 && d < SP_ASYNC_MAX_NODES; k = pl->nodes[k].parent)
		d++;
	return d;
}

/* Named async fns that no coroutine can show: no out-of-line poll of
 * theirs, no coroutine carrier's plan names them. Only these need a
 * hand-written future's poll as carrier. */
static size_t orphans(const struct sp_async_info *info, struct sp_nested_plan *const *plans,
		      struct sp_nested_plan *const *hand, char **out)
{
	size_t n = 0;

	for (size_t c = 0; c < info->n_plain; c++) {
		const struct sp_nested_plan *pl = hand[c];
		bool covered;

		for (size_t k = 0; pl && k < pl->n; k++) {
			const char *name = pl->nodes[k].name;

			/* "{impl#N}::f": a spelling of a trait method's async fn
			 * in a unit that lacks its poll; named properly where
			 * its coroutine carrier is (a known limit: issue 10) */
			if (pl->nodes[k].role < 0 || has_name(out, n, name) || strstr(name, "{impl#"))
				continue;
			covered = false;
			for (size_t i = 0; i < info->n && !covered; i++) {
				covered = info->polls[i].name && strcmp(info->polls[i].name, name) == 0;
				for (size_t j = 0; plans[i] && j < plans[i]->n && !covered; j++)
					covered = plans[i]->nodes[j].role >= 0 &&
						  strcmp(plans[i]->nodes[j].name, name) == 0;
			}
			if (!covered && n < SP_ASYNC_MAX_NODES)
				out[n++] = pl->nodes[k].name;
		}
	}
	return n;
}

/* The closest the hand-written poll c holds name (its node's depth), or
 * INT_MAX. */
static int depth_of(const struct sp_nested_plan *pl, const char *name)
{
	int best = INT_MAX;

	for (size_t k = 0; pl && k < pl->n; k++)
		if (pl->nodes[k].role >= 0 && strcmp(pl->nodes[k].name, name) == 0 &&
		    plan_depth(pl, k) < best)
			best = plan_depth(pl, k);
	return best;
}

/*
 * Of the hand-written futures' polls that hold a named async fn no
 * coroutine shows, only the innermost are carriers: hyper's handler
 * future is held by tokio's task harness, hyper's NewSvcTask and its
 * UpgradeableConnection, each polled inside the previous one; reading it
 * from the innermost gives the narrowest windows and one span, not
 * three. The others' plans are dropped (hand[c] = NULL).
 */
static void keep_innermost(const struct sp_async_info *info, struct sp_nested_plan *const *plans,
			   struct sp_nested_plan **hand)
{
	char *need[SP_ASYNC_MAX_NODES]; /* names in hand[]'s plans */
	size_t n_need = orphans(info, plans, hand, need);
	bool *keep = calloc(info->n_plain ? info->n_plain : 1, sizeof(*keep));

	for (size_t c = 0; keep && c < info->n_plain; c++) {
		for (size_t k = 0; hand[c] && k < n_need && !keep[c]; k++) {
			int d = depth_of(hand[c], need[k]), best = d;

			for (size_t o = 0; o < info->n_plain; o++) {
				int od = depth_of(hand[o], need[k]);

				best = od < best ? od : best;
			}
			keep[c] = d != INT_MAX && d == best;
		}
	}
	for (size_t c = 0; c < info->n_plain; c++) {
		if (keep && keep[c])
			continue;
		sp_nested_plan_free(hand[c]);
		hand[c] = NULL;
	}
	free(keep);
}

/* The polls whose futures hold named async fns become carriers:
 * coroutines' polls, then the innermost hand-written futures' polls for
 * what no coroutine shows. */
static int add_carriers(struct builder *b, struct obj *o, size_t first,
			const struct sp_async_info *info, struct sp_pattern_list *pats,
			bool handles, enum sp_exit_policy policy)
{
	size_t np = info->n ? info->n : 1, nh = info->n_plain ? info->n_plain : 1;
	struct sp_nested_plan **plans = calloc(np, sizeof(*plans));
	struct sp_nested_plan **hand = calloc(nh, sizeof(*hand));
	int rc = 0;

	if (!plans || !hand) {
		free(plans);
		free(hand);
		return -1;
	}
	for (size_t i = 0; i < info->n; i++)
		plans[i] = sp_nested_plan_new(info, &info->polls[i], pats, handles);
	for (size_t i = 0; i < info->n_plain; i++)
		hand[i] = sp_nested_plan_new(info, &info->plain[i], pats, handles);
	keep_innermost(info, plans, hand);
	/* add_carrier owns the plan it is given */
	for (size_t i = 0; i < info->n; i++) {
		if (plans[i] && rc == 0)
			rc = add_carrier(b, o, first, info, &info->polls[i], plans[i], policy);
		else
			sp_nested_plan_free(plans[i]);
	}
	for (size_t i = 0; i < info->n_plain; i++) {
		if (hand[i] && rc == 0)
			rc = add_carrier(b, o, first, info, &info->plain[i], hand[i], policy);
		else
			sp_nested_plan_free(hand[i]);
	}
	free(plans);
	free(hand);
	return rc;
}

/* error=err is decided from the poll's return value: without a
 * Poll<Result<..>> in the DWARF of an out-of-line poll, nothing is. */
static void warn_err_result(const struct sp_func *f, const struct sp_pattern_list *pats)
{
	const struct sp_pattern *p;

	if (!f->err_result || (f->is_async && f->result_err.n) || f->pattern < 0)
		return;
	p = &pats->v[f->pattern];
	fprintf(stderr, "spanprobe: warning: %s:%d: error=err on %s: %s; its spans are never "
		"flagged error\n", p->file, p->line, f->demangled,
		f->is_async ? "its poll returns no Poll<Result<..>> the DWARF describes"
			    : "not an out-of-line poll of a Rust async fn");
}

/* Rust async code: the out-of-line polls matched get their future's
 * layout; polls whose future holds named async fns inlined become
 * carriers; spawned tasks that a pattern names are held for linking to
 * their spawner. */
static int resolve_async(struct builder *b, struct obj *o, size_t first,
			 struct sp_pattern_list *pats, enum sp_exit_policy policy)
{
	struct sp_async_info info;
	char err[256];
	bool handles;
	int rc = 0;

	if (!has_closure(o))
		return 0;
	if (sp_async_analyze_debug(o->open_path, debug_path(o), &info, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: warning: %s: async analysis: %s\n", o->path, err);
		return 0;
	}
	note_types(b, o, &info);
	/* (v is still NULL when nothing matched yet: no pointer arithmetic on it) */
	if (b->set->n > first)
		sp_async_annotate_info(b->set->v + first, b->set->n - first, &info);
	handles = b->set->n > first && spawned_named(b->set->v + first, b->set->n - first);
	for (size_t i = 0; i < b->set->n - first; i++) {
		struct sp_func *f = &b->set->v[first + i];

		f->held |= f->spawned && f->pattern >= 0;
		warn_err_result(f, pats);
	}
	rc = add_carriers(b, o, first, &info, pats, handles, policy);
	sp_async_info_free(&info);
	return rc;
}

/* "P:START" and "P:DONE" -> "P:NAME" when both end in __start/__done (or
 * _start/_done) after a common NAME, else "P:START..DONE". */
static char *pair_name(const char *start, const char *done)
{
	const char *s = strchr(start, ':') + 1, *d = strchr(done, ':') + 1;
	size_t sl = strlen(s), dl = strlen(d), pl = (size_t)(s - start);
	char *out = NULL;

	if (sl > 6 && dl > 5 && !strcmp(s + sl - 5, "start") && !strcmp(d + dl - 4, "done") &&
	    sl - 5 == dl - 4 && !strncmp(s, d, sl - 5)) {
		size_t n = sl - 5;

		while (n && s[n - 1] == '_')
			n--;
		if (n && asprintf(&out, "%.*s%.*s", (int)pl, start, (int)n, s) < 0)
			out = NULL;
		if (n)
			return out;
	}
	if (asprintf(&out, "%s..%s", start, d) < 0)
		out = NULL;
	return out;
}

static const struct sp_usdt_probe *find_probe(const struct sp_usdt_list *l, const char *spec)
{
	for (size_t i = 0; i < l->n; i++)
		if (sp_usdt_matches(&l->v[i], spec))
			return &l->v[i];
	return NULL;
}

/* Why the captures of p cannot be read from every site of its start
 * probe, or NULL. */
static char *usdt_args_problem(const struct sp_usdt_list *l, const struct sp_pattern *p)
{
	char *why = NULL;

	for (size_t i = 0; i < l->n && !why; i++) {
		const struct sp_usdt_probe *pr = &l->v[i];

		if (!sp_usdt_matches(pr, p->glob))
			continue;
		if (pr->n_args < 0 && p->n_caps) {
			if (asprintf(&why, "argument specs '%s' of %s:%s at 0x%llx not understood",
				     pr->args_text, pr->provider, pr->name,
				     (unsigned long long)pr->pc) < 0)
				why = NULL;
			break;
		}
		for (unsigned k = 0; k < p->n_caps && !why; k++)
			if (p->caps[k].index >= pr->n_args &&
			    asprintf(&why, "capture '%s' reads arg%u, but %s:%s has %d argument%s",
				     p->caps[k].name, p->caps[k].index, pr->provider, pr->name,
				     pr->n_args, pr->n_args == 1 ? "" : "s") < 0)
				why = NULL;
	}
	return why;
}

static int add_usdt(struct builder *b, struct obj *o, const struct sp_usdt_list *l,
		    struct sp_pattern *p, int pi)
{
	const struct sp_usdt_probe *start = find_probe(l, p->glob);
	struct sp_func *f;

	if (!start)
		return 0;
	p->matches++;
	if (!(f = new_func(b)))
		return -1;
	f->source = p->source;
	f->role = p->role;
	f->pattern = pi;
	f->raw = strdup(p->glob);
	f->demangled = p->usdt_done ? pair_name(p->glob, p->usdt_done) : strdup(p->glob);
	f->object = strdup(o->path);
	f->open_path = strdup(o->open_path);
	f->addr = start->pc;
	f->offset = start->pc_offset;
	f->usdt_provider = strdup(start->provider);
	f->usdt_start = strdup(start->name);
	if (p->usdt_done) {
		const struct sp_usdt_probe *done = find_probe(l, p->usdt_done);

		if (!done)
			set_problem(f, "done probe %s not in this object", p->usdt_done);
		else if (strcmp(done->provider, start->provider))
			set_problem(f, "done probe %s: another provider than the start's",
				    p->usdt_done);
		else
			f->usdt_done = strdup(done->name);
	}
	if (!f->problem)
		f->problem = usdt_args_problem(l, p);
	take_caps(o, 0, f, p); /* no entry shift: a USDT site stays put */
	return f->raw && f->demangled && f->object && f->open_path && f->usdt_provider &&
	       f->usdt_start ? 0 : -1;
}

/* USDT entries against the object's .note.stapsdt. */
static int resolve_usdt(struct builder *b, struct obj *o, struct sp_pattern_list *pats)
{
	struct sp_usdt_list l;
	char err[256];
	bool any = false;
	int rc = 0;

	for (size_t i = 0; i < pats->n; i++)
		any |= pats->v[i].source != SP_SRC_FUNC;
	if (!any)
		return 0;
	if (sp_usdt_read_elf(o->elf.elf, &l, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: warning: %s: %s\n", o->path, err);
		return 0;
	}
	for (size_t i = 0; i < pats->n && !rc; i++)
		if (pats->v[i].source != SP_SRC_FUNC)
			rc = add_usdt(b, o, &l, &pats->v[i], (int)i);
	sp_usdt_list_free(&l);
	return rc;
}

static int resolve_obj(struct builder *b, const char *path, const char *open_path,
		       bool exe, struct sp_pattern_list *pats, const struct prepped *pp,
		       enum sp_exit_policy policy, char *err, size_t errlen)
{
	/* 1: the object cannot be used (err says why); 2: it defines no
	 * function; -1: out of memory */
	size_t first = b->set->n;
	struct obj o;
	int rc = 0;

	rc = open_obj(&o, path, open_path, exe, err, errlen);
	if (rc) {
		close_obj(&o);
		return rc == SP_ELF_NO_FUNCS ? 2 : 1;
	}
	rc = add_object(b, &o);
	for (size_t i = 0; rc == 0 && i < o.elf.n; i++)
		if (!is_cold_part(&o.elf.funcs[i]))
			rc = match_func(b, &o, i, pats, pp, policy);
	if (!rc)
		rc = resolve_async(b, &o, first, pats, policy);
	if (!rc)
		replace_poll_entries(b, &o, first);
	if (!rc)
		confirm_fn_names(b, first, pats);
	if (!rc)
		rc = resolve_usdt(b, &o, pats);
	close_obj(&o);
	if (rc)
		sp_set_err(err, errlen, "%s: out of memory", path);
	return rc ? -1 : 0;
}

/* Which of the process's objects, if any, raises exceptions or panics;
 * -1 when out of memory. Objects mapped later (dlopen) are not known. */
static int set_scope(struct builder *b, const struct sp_mapped_objects *m)
{
	const char **paths = calloc(m->n ? m->n : 1, sizeof(*paths));
	int i;

	if (!paths)
		return -1;
	for (size_t k = 0; k < m->n; k++)
		paths[k] = m->v[k].open_path;
	i = sp_objects_raiser(paths, m->n, &b->scope.sym);
	if (i >= 0 && !(b->scope.raiser = strdup(m->v[i].path))) {
		free(paths);
		return -1;
	}
	i = sp_objects_unwinder(paths, m->n);
	free(paths);
	if (i >= 0 && !(b->scope.unwinder = strdup(m->v[i].open_path)))
		return -1;
	return 0;
}

/* One binary alone (`symbols BINARY`): its exits are chosen as `run`
 * would choose them, with the libraries its loader lists. */
static int scope_of_binary(struct builder *b, const char *binary, char *err, size_t errlen)
{
	struct sp_mapped_objects m;
	int rc;

	if (sp_program_objects(binary, &m, err, errlen))
		return -1;
	rc = set_scope(b, &m);
	sp_proc_objects_free(&m);
	if (rc)
		sp_set_err(err, errlen, "out of memory");
	return rc;
}

/* A library without any function (data-only) has nothing to trace: it
 * is listed in the set, not warned about. */
static int note_no_funcs(struct builder *b, const char *path)
{
	struct sp_func_set *s = b->set;
	char **v = realloc(s->no_funcs, (s->n_no_funcs + 1) * sizeof(*v));

	if (!v)
		return -1;
	s->no_funcs = v;
	if (!(v[s->n_no_funcs] = strdup(path)))
		return -1;
	s->n_no_funcs++;
	return 0;
}

/* A process maps many objects; one that cannot be read (not ELF, or an
 * executable without symbols) costs its own functions only, so it is a
 * warning. Counts the objects read into *ok; -1 only when out of memory. */
static int resolve_objects(struct builder *b, const struct sp_mapped_objects *m,
			   size_t from, const char *who, struct sp_pattern_list *pats,
			   const struct prepped *pp, enum sp_exit_policy policy,
			   size_t *ok, char *err, size_t errlen)
{
	char why[512] = "";

	*ok = 0;
	for (size_t i = from; i < m->n; i++) {
		bool exe = i == 0 && !b->no_exe;
		int rc = resolve_obj(b, m->v[i].path, m->v[i].open_path, exe, pats, pp,
				     policy, why, sizeof(why));

		if (rc == 2 && !exe && note_no_funcs(b, m->v[i].path)) {
			snprintf(why, sizeof(why), "out of memory");
			rc = -1;
		}
		if (rc < 0) {
			sp_set_err(err, errlen, "%s", why);
			return -1;
		}
		if (rc == 0)
			(*ok)++;
		else if (rc == 1 || exe)
			fprintf(stderr, "spanprobe: warning: %s: %s\n", who, why);
	}
	if (*ok == 0)
		sp_set_err(err, errlen, "%s: no object could be read (%s)", who, why);
	return 0;
}

static int resolve_pid(struct builder *b, pid_t pid, struct sp_pattern_list *pats,
		       const struct prepped *pp, enum sp_exit_policy policy,
		       char *err, size_t errlen)
{
	struct sp_mapped_objects m;
	char who[32];
	size_t ok;
	int rc;

	if (sp_proc_objects(pid, &m, err, errlen))
		return -1;
	if (set_scope(b, &m)) {
		sp_proc_objects_free(&m);
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	snprintf(who, sizeof(who), "pid %d", (int)pid);
	rc = resolve_objects(b, &m, 0, who, pats, pp, policy, &ok, err, errlen);
	sp_proc_objects_free(&m);
	return rc || !ok ? -1 : 0;
}

/* The executable must resolve; its libraries are best effort. */
static int resolve_program(struct builder *b, const char *exe,
			   struct sp_pattern_list *pats, const struct prepped *pp,
			   enum sp_exit_policy policy, char *err, size_t errlen)
{
	struct sp_mapped_objects m;
	size_t ok;
	int rc;

	if (sp_program_objects(exe, &m, err, errlen))
		return -1;
	if (set_scope(b, &m)) {
		sp_proc_objects_free(&m);
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	rc = resolve_obj(b, exe, exe, true, pats, pp, policy, err, errlen) ? -1 : 0;
	if (rc == 0)
		rc = resolve_objects(b, &m, 1, exe, pats, pp, policy, &ok, err, errlen);
	sp_proc_objects_free(&m);
	return rc;
}

static bool uses_guard(const struct sp_func_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (!s->v[i].problem && s->v[i].exit_mode == SP_EXIT_GUARD)
			return true;
	return false;
}

static int resolve(pid_t pid, const char *binary, bool with_libs,
		   struct sp_pattern_list *pats, enum sp_exit_policy policy,
		   struct sp_func_set *out, char *err, size_t errlen)
{
	struct builder b = { .set = out };
	struct prepped *pp = calloc(pats->n ? pats->n : 1, sizeof(*pp));
	int rc;

	memset(out, 0, sizeof(*out));
	if (!pp) {
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	prep_patterns(pats, pp);
	for (size_t i = 0; i < pats->n; i++)
		pats->v[i].matches = 0;
	if (pid > 0)
		rc = resolve_pid(&b, pid, pats, pp, policy, err, errlen);
	else if (binary && with_libs)
		rc = resolve_program(&b, binary, pats, pp, policy, err, errlen);
	else if (binary)
		rc = scope_of_binary(&b, binary, err, errlen) ||
		     resolve_obj(&b, binary, binary, true, pats, pp, policy, err,
				 errlen) ? -1 : 0;
	else {
		sp_set_err(err, errlen, "neither a pid nor a binary to resolve in");
		rc = -1;
	}
	if (rc == 0)
		rc = sp_debuginfo_check_used(err, errlen);
	free(pp);
	free(b.scope.raiser);
	if (rc == 0 && b.scope.unwinder && uses_guard(out)) {
		out->unwinder = b.scope.unwinder;
		b.scope.unwinder = NULL;
	}
	free(b.scope.unwinder);
	if (rc)
		sp_func_set_free(out);
	return rc;
}

int sp_resolve(pid_t pid, const char *binary, struct sp_pattern_list *pats,
	       enum sp_exit_policy policy, struct sp_func_set *out,
	       char *err, size_t errlen)
{
	return resolve(pid, binary, false, pats, policy, out, err, errlen);
}

int sp_resolve_more(const struct sp_mapped_objects *m, bool first_is_exe,
		    struct sp_pattern_list *pats, enum sp_exit_policy policy,
		    struct sp_func_set *out, char *err, size_t errlen)
{
	/* the arrays hold exactly what is in use: they grow from there */
	struct builder b = { .set = out, .cap = out->n, .objects_cap = out->n_objects,
			     .no_exe = !first_is_exe };
	struct prepped *pp = calloc(pats->n ? pats->n : 1, sizeof(*pp));
	size_t ok;
	int rc;

	if (!pp) {
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	prep_patterns(pats, pp);
	/* What raises in the rest of the process was decided at attach and is
	 * not known here: assume something does (ret sites) rather than risk
	 * a uretprobe that an unwinding exception would turn into an abort. */
	b.scope.raiser = strdup("the process (a library mapped after attach)");
	b.scope.sym = "not checked";
	rc = !b.scope.raiser ? -1 :
	     m->n ? resolve_objects(&b, m, 0, "new mapping", pats, pp, policy, &ok,
				    err, errlen) : 0;
	if (!b.scope.raiser)
		sp_set_err(err, errlen, "out of memory");
	free(b.scope.raiser);
	free(pp);
	return rc;
}

int sp_resolve_program(const char *exe, struct sp_pattern_list *pats,
		       enum sp_exit_policy policy, struct sp_func_set *out,
		       char *err, size_t errlen)
{
	return resolve(0, exe, true, pats, policy, out, err, errlen);
}

void sp_func_set_free(struct sp_func_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		func_free(&s->v[i]);
	free(s->v);
	for (size_t i = 0; i < s->n_no_funcs; i++)
		free(s->no_funcs[i]);
	free(s->no_funcs);
	for (size_t i = 0; i < s->n_objects; i++) {
		free(s->objects[i].path);
		free(s->objects[i].build_id);
		free(s->objects[i].debug_file);
		free(s->objects[i].debug_why);
	}
	free(s->objects);
	free(s->unwinder);
	memset(s, 0, sizeof(*s));
}
