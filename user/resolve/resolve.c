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
#include "resolve/async_nested.h"
#include "resolve/async_resolve.h"
#include "symbols/elf_symbols.h"
#include "symbols/exit_sites.h"
#include "symbols/proc_maps.h"
#include "symbols/probe_cost.h"
#include "symbols/program_libs.h"
#include "symbols/symbols.h"
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
	char **dem;            /* parallel to elf.name_pool */
	bool can_unwind;
	bool x86_64;
	struct cold_ref *cold; /* built on first need */
	size_t n_cold;
	bool cold_built;
};

struct builder {
	struct sp_func_set *set;
	size_t cap;
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

static int open_obj(struct obj *o, const char *path, const char *open_path,
		    char *err, size_t errlen)
{
	GElf_Ehdr eh;

	memset(o, 0, sizeof(*o));
	o->path = path;
	o->open_path = open_path;
	if (sp_elf_open(&o->elf, open_path, path, err, errlen))
		return -1;
	o->can_unwind = sp_object_can_unwind(o->elf.elf);
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

static void choose_exit(struct obj *o, size_t fi, enum sp_exit_policy policy,
			struct sp_func *out)
{
	char why[256];

	out->exit_mode = policy == SP_EXIT_FORCE_RETSITES ? SP_EXIT_RETSITES :
			 policy == SP_EXIT_FORCE_URETPROBE ? SP_EXIT_URETPROBE :
			 o->can_unwind ? SP_EXIT_RETSITES : SP_EXIT_URETPROBE;
	if (out->problem || out->exit_mode != SP_EXIT_RETSITES)
		return;
	if (fill_exit_sites(o, fi, out, why, sizeof(why)))
		set_problem(out, "cannot decode for exit sites: %s", why);
}

/* Past a leading endbr64 when that is cheaper and no branch of the
 * function, its cold parts included, comes back there. */
static void choose_entry(struct obj *o, size_t fi, struct sp_func *out)
{
	const struct sp_elf_func *f = &o->elf.funcs[fi];
	const uint8_t *code = sp_elf_bytes(&o->elf, f->offset, f->size);
	struct sp_code_range r[MAX_PARTS];
	size_t idx[MAX_PARTS], n;
	unsigned shift;

	if (out->problem || !o->x86_64 || !code ||
	    !(shift = sp_probe_entry_shift(code, f->size)))
		return;
	if (!o->cold_built && build_cold_index(o))
		return;
	r[0] = (struct sp_code_range){ f->addr, f->size };
	idx[0] = fi;
	n = find_colds(o, f, r, 1, MAX_PARTS, idx);
	for (size_t i = 0; i < n; i++) {
		const struct sp_elf_func *p = &o->elf.funcs[idx[i]];
		const uint8_t *pc = sp_elf_bytes(&o->elf, p->offset, p->size);

		if (!pc || sp_code_branches_to(pc, p->size, p->addr, f->addr + shift) != 0)
			return;
	}
	out->entry_shift = (uint8_t)shift;
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
	choose_exit(o, fi, policy, out);
	choose_entry(o, fi, out);
	return out->raw && out->demangled && out->object && out->open_path ? 0 : -1;
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
			named += sp_async_name_matches(pats->v[p].glob, f->demangled);
		if (f->by_fn_name && !named) {
			func_free(f);
			continue;
		}
		for (size_t p = 0; f->by_fn_name && p < pats->n; p++)
			pats->v[p].matches += sp_async_name_matches(pats->v[p].glob, f->demangled);
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
	if (sp_async_analyze(o->open_path, &info, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: warning: %s: async analysis: %s\n", o->path, err);
		return 0;
	}
	/* (v is still NULL when nothing matched yet: no pointer arithmetic on it) */
	if (b->set->n > first)
		sp_async_annotate_info(b->set->v + first, b->set->n - first, &info);
	handles = b->set->n > first && spawned_named(b->set->v + first, b->set->n - first);
	for (size_t i = 0; i < b->set->n - first; i++) {
		struct sp_func *f = &b->set->v[first + i];

		f->held |= f->spawned && f->pattern >= 0;
	}
	rc = add_carriers(b, o, first, &info, pats, handles, policy);
	sp_async_info_free(&info);
	return rc;
}

static int resolve_obj(struct builder *b, const char *path, const char *open_path,
		       struct sp_pattern_list *pats, const struct prepped *pp,
		       enum sp_exit_policy policy, char *err, size_t errlen)
{
	/* 1: the object cannot be used (err says why); -1: out of memory */
	size_t first = b->set->n;
	struct obj o;
	int rc = 0;

	if (open_obj(&o, path, open_path, err, errlen)) {
		close_obj(&o);
		return 1;
	}
	for (size_t i = 0; rc == 0 && i < o.elf.n; i++)
		if (!is_cold_part(&o.elf.funcs[i]))
			rc = match_func(b, &o, i, pats, pp, policy);
	if (!rc)
		rc = resolve_async(b, &o, first, pats, policy);
	if (!rc)
		confirm_fn_names(b, first, pats);
	close_obj(&o);
	if (rc)
		sp_set_err(err, errlen, "%s: out of memory", path);
	return rc ? -1 : 0;
}

/* A process maps many objects; one that cannot be read (no symbols, not
 * ELF) costs its own functions only, so it is a warning. Counts the
 * objects read into *ok; -1 only when out of memory. */
static int resolve_objects(struct builder *b, const struct sp_mapped_objects *m,
			   size_t from, const char *who, struct sp_pattern_list *pats,
			   const struct prepped *pp, enum sp_exit_policy policy,
			   size_t *ok, char *err, size_t errlen)
{
	char why[512] = "";

	*ok = 0;
	for (size_t i = from; i < m->n; i++) {
		int rc = resolve_obj(b, m->v[i].path, m->v[i].open_path, pats, pp,
				     policy, why, sizeof(why));

		if (rc < 0) {
			sp_set_err(err, errlen, "%s", why);
			return -1;
		}
		if (rc == 0)
			(*ok)++;
		else
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
	rc = resolve_obj(b, exe, exe, pats, pp, policy, err, errlen) ? -1 : 0;
	if (rc == 0)
		rc = resolve_objects(b, &m, 1, exe, pats, pp, policy, &ok, err, errlen);
	sp_proc_objects_free(&m);
	return rc;
}

static int resolve(pid_t pid, const char *binary, bool with_libs,
		   struct sp_pattern_list *pats, enum sp_exit_policy policy,
		   struct sp_func_set *out, char *err, size_t errlen)
{
	struct builder b = { .set = out };
	struct prepped *pp = calloc(pats->n ? pats->n : 1, sizeof(*pp));
	int rc;

	out->v = NULL;
	out->n = 0;
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
		rc = resolve_obj(&b, binary, binary, pats, pp, policy, err,
				 errlen) ? -1 : 0;
	else {
		sp_set_err(err, errlen, "neither a pid nor a binary to resolve in");
		rc = -1;
	}
	free(pp);
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
	s->v = NULL;
	s->n = 0;
}
