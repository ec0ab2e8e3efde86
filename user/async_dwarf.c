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
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include "async_disasm.h"
#include "async_dwarf.h"
#include "elf_symbols.h"
#include "symbols.h"
#include "errmsg.h"

/*
 * libdw returns DW_FORM_string names as pointers into .debug_info without
 * checking for their NUL: in a corrupted file a name can run off the end
 * of its section (found by tests/fuzz). Every name is checked against the
 * bounds of the sections of the file under analysis. One analysis runs at
 * a time: the loader resolves symbols on one thread.
 */
#define MAX_NAME_SECS 128
static struct { const char *lo, *hi; } name_secs[MAX_NAME_SECS];
static size_t n_name_secs;

static void note_sections(Elf *e)
{
	Elf_Scn *scn = NULL;

	n_name_secs = 0;
	while ((scn = elf_nextscn(e, scn)) && n_name_secs < MAX_NAME_SECS) {
		Elf_Data *d = elf_getdata(scn, NULL);

		if (d && d->d_buf && d->d_size) {
			name_secs[n_name_secs].lo = d->d_buf;
			name_secs[n_name_secs].hi = (const char *)d->d_buf + d->d_size;
			n_name_secs++;
		}
	}
}

static const char *checked_name(const char *n)
{
	if (!n)
		return NULL;
	for (size_t i = 0; i < n_name_secs; i++)
		if (n >= name_secs[i].lo && n < name_secs[i].hi)
			return memchr(n, 0, (size_t)(name_secs[i].hi - n)) ? n : NULL;
	/* a buffer libdw made itself (a decompressed section) */
	return n;
}

static const char *checked_diename(Dwarf_Die *d)
{
	return checked_name(dwarf_diename(d));
}

static const char *checked_formstring(Dwarf_Attribute *a)
{
	return checked_name(dwarf_formstring(a));
}

#define dwarf_diename(d) checked_diename(d)
#define dwarf_formstring(a) checked_formstring(a)

#define MAX_DEPTH 48      /* type nesting followed below one future */
#define MAX_ARRAY 16      /* arrays of futures longer than this: skipped */
#define PATH_LEN 512

/* ------------------------------------------------------------------ */
/* Growable arrays and a small hash map.                               */

/* Makes room for one more element of v (n used, *cap allocated). */
static void *grow(void *v, size_t n, size_t *cap, size_t elem)
{
	void *nv;
	size_t nc;

	if (n < *cap)
		return v;
	nc = *cap ? *cap * 2 : 8;
	nv = realloc(v, nc * elem);
	if (!nv)
		return NULL;
	*cap = nc;
	return nv;
}

/* DIE offset -> value, open addressing; offsets are never 0 in a map
 * because no type DIE sits at offset 0 of .debug_info. */
struct offmap {
	uint64_t *key;
	uint32_t *val;
	size_t cap, n;
};

static size_t off_hash(uint64_t k, size_t cap)
{
	return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static bool offmap_get(const struct offmap *m, uint64_t k, uint32_t *v)
{
	if (!m->cap)
		return false;
	for (size_t i = off_hash(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->key[i] == k) {
			*v = m->val[i];
			return true;
		}
		if (!m->key[i])
			return false;
	}
}

static int offmap_rehash(struct offmap *m, size_t cap);

static int offmap_put(struct offmap *m, uint64_t k, uint32_t v)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && offmap_rehash(m, m->cap ? m->cap * 2 : 256))
		return -1;
	for (i = off_hash(k, m->cap); m->key[i] && m->key[i] != k;
	     i = (i + 1) & (m->cap - 1))
		;
	if (!m->key[i])
		m->n++;
	m->key[i] = k;
	m->val[i] = v;
	return 0;
}

static int offmap_rehash(struct offmap *m, size_t cap)
{
	struct offmap nm = { .cap = cap };

	nm.key = calloc(cap, sizeof(*nm.key));
	nm.val = calloc(cap, sizeof(*nm.val));
	if (!nm.key || !nm.val) {
		free(nm.key);
		free(nm.val);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->key[i])
			offmap_put(&nm, m->key[i], m->val[i]);
	free(m->key);
	free(m->val);
	*m = nm;
	return 0;
}

static void offmap_clear(struct offmap *m)
{
	free(m->key);
	free(m->val);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* Analysis state.                                                     */

/* A poll function DWARF names but does not type (line tables only). */
struct bare_poll {
	uint64_t low, high;
	char *dname; /* "{async_fn#0}", "{async_block#1}" */
};

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

static char *xstrdup(struct scan *s, const char *str)
{
	char *d = strdup(str ? str : "");

	if (!d)
		s->oom = true;
	return d;
}

static bool starts_with(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

/* ------------------------------------------------------------------ */
/* Names.                                                              */

static const char *die_name(Dwarf_Die *d)
{
	Dwarf_Attribute a;
	const char *n = dwarf_diename(d);

	if (n)
		return n;
	/* a concrete out-of-line copy names itself through its origin */
	return dwarf_formstring(dwarf_attr_integrate(d, DW_AT_name, &a));
}

static bool is_poll_name(const char *n)
{
	return starts_with(n, "{async_fn#") || starts_with(n, "{async_block#") ||
	       starts_with(n, "{async_closure#");
}

/* "{async_fn_env#0}", "{async_block_env#2}<T>", "{coroutine_env#0}" */
static bool is_env_name(const char *n)
{
	return n && n[0] == '{' && strstr(n, "_env#");
}

/* The path people write for a poll or a coroutine type: an async fn is
 * its namespace ("app::handler", dropping "{async_fn#0}" or its env);
 * blocks and closures keep their "{async_block#N}" component, spelled
 * without "_env" and generic arguments. */
static char *human_name(const char *ns, const char *last)
{
	const char *kind = NULL, *hash = strchr(last, '#');
	char *r = NULL;
	int num = hash ? atoi(hash + 1) : 0;

	if (starts_with(last, "{async_fn"))
		return strdup(*ns ? ns : last);
	if (starts_with(last, "{async_block"))
		kind = "async_block";
	else if (starts_with(last, "{async_closure"))
		kind = "async_closure";
	else if (starts_with(last, "{coroutine"))
		kind = "coroutine";
	if (!kind)
		return strdup(last);
	if (asprintf(&r, "%s%s{%s#%d}", ns, *ns ? "::" : "", kind, num) < 0)
		return NULL;
	return r;
}

/* "app::main::{{closure}}" + "{async_block#0}" -> "app::main::{async_block#0}";
 * "app::f::{closure#0}" + "{async_fn#0}" -> "app::f". */
static char *name_from_symbol(const char *dem, const char *dname)
{
	static const char legacy[] = "::{{closure}}";
	size_t n = strlen(dem), keep = n;
	const char *v0 = strstr(dem, "::{closure#");
	char *prefix, *r;

	if (n > sizeof(legacy) - 1 &&
	    strcmp(dem + n - (sizeof(legacy) - 1), legacy) == 0)
		keep = n - (sizeof(legacy) - 1);
	for (; v0; v0 = strstr(v0 + 1, "::{closure#"))
		keep = (size_t)(v0 - dem); /* the last one */
	if (keep == n)
		return strdup(dem);
	if (!(prefix = strndup(dem, keep)))
		return NULL;
	r = human_name(prefix, dname);
	free(prefix);
	return r;
}

/* The name of an async fn's poll or future as its symbols demangle
 * (what symbol-list patterns are written against, "<T as Trait>::f"
 * included), from the poll's DW_AT_linkage_name; the namespace chain
 * ("...::{impl#1}::f") when there is none. */
static char *display_name(const char *linkage, const char *ns, const char *dname)
{
	char *dem, *r;

	if (!linkage || !(dem = sp_demangle(linkage)))
		return human_name(ns, dname);
	r = name_from_symbol(dem, dname);
	free(dem);
	return r;
}

/* "{async_fn#0}<T>" and "{async_fn_env#0}<T>" -> "{async_fn#0}": the key
 * that pairs a coroutine type with the poll in its namespace. */
static void poll_key(char *buf, size_t len, const char *ns, const char *name)
{
	const char *env = strstr(name, "_env#");
	size_t head = env ? (size_t)(env - name) : strcspn(name, "#");
	const char *tail = name + head + (env ? 4 : 0);

	snprintf(buf, len, "%s::%.*s%.*s", ns, (int)head, name,
		 (int)(strcspn(tail, "}") + (tail[strcspn(tail, "}")] ? 1 : 0)), tail);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h | 1; /* never 0: the empty slot of an offmap */
}

/* ------------------------------------------------------------------ */
/* Types.                                                              */

static bool type_of(Dwarf_Die *d, Dwarf_Die *out)
{
	Dwarf_Attribute a;

	return dwarf_attr_integrate(d, DW_AT_type, &a) &&
	       dwarf_formref_die(&a, out) != NULL;
}

/* Through typedefs and qualifiers, which change no layout. */
static bool peel(Dwarf_Die *t)
{
	for (int i = 0; i < 8; i++) {
		int tag = dwarf_tag(t);

		if (tag != DW_TAG_typedef && tag != DW_TAG_const_type &&
		    tag != DW_TAG_volatile_type)
			return true;
		if (!type_of(t, t))
			return false;
	}
	return false;
}

static uint64_t type_size(Dwarf_Die *t)
{
	Dwarf_Word sz;
	Dwarf_Die p = *t;

	if (!peel(&p))
		return 0;
	if (dwarf_tag(&p) == DW_TAG_pointer_type ||
	    dwarf_tag(&p) == DW_TAG_reference_type)
		return 8;
	return dwarf_aggregate_size(&p, &sz) == 0 ? sz : 0;
}

/* DW_AT_data_member_location as a constant; absent means 0 (unions). */
static bool member_offset(Dwarf_Die *m, uint64_t *off)
{
	Dwarf_Attribute a;
	Dwarf_Word w;

	if (!dwarf_attr(m, DW_AT_data_member_location, &a)) {
		*off = 0;
		return true;
	}
	if (dwarf_formudata(&a, &w) != 0)
		return false; /* a location expression: not in Rust types */
	*off = w;
	return true;
}

/* The n-th child with the given tag, or false. */
static bool child_tag(Dwarf_Die *parent, int tag, Dwarf_Die *out)
{
	if (dwarf_child(parent, out) != 0)
		return false;
	do {
		if (dwarf_tag(out) == tag)
			return true;
	} while (dwarf_siblingof(out, out) == 0);
	return false;
}

static bool member_named(Dwarf_Die *st, const char *name, Dwarf_Die *out)
{
	if (dwarf_child(st, out) != 0)
		return false;
	do {
		const char *n;

		if (dwarf_tag(out) == DW_TAG_member && (n = dwarf_diename(out)) &&
		    strcmp(n, name) == 0)
			return true;
	} while (dwarf_siblingof(out, out) == 0);
	return false;
}

/* The variant part of an enum-like structure and its discriminant
 * member (false if it has no DW_AT_discr: a one-variant enum). */
static bool variant_part(Dwarf_Die *st, Dwarf_Die *vp, Dwarf_Die *discr,
			 bool *has_discr)
{
	Dwarf_Attribute a;

	if (dwarf_tag(st) != DW_TAG_structure_type ||
	    !child_tag(st, DW_TAG_variant_part, vp))
		return false;
	*has_discr = dwarf_attr(vp, DW_AT_discr, &a) &&
		     dwarf_formref_die(&a, discr) != NULL;
	return true;
}

struct env {
	Dwarf_Die vp;
	uint32_t state_off;
	uint8_t state_size;
};

/* A coroutine (async fn/block future) type: named like one, with a
 * variant part discriminated by its artificial "__state" member. */
static bool coroutine_env(Dwarf_Die *t, struct env *e)
{
	Dwarf_Die discr, st;
	bool has_discr;
	uint64_t off, sz;
	const char *n;

	if (dwarf_tag(t) != DW_TAG_structure_type || !is_env_name(dwarf_diename(t)) ||
	    !variant_part(t, &e->vp, &discr, &has_discr) || !has_discr)
		return false;
	n = dwarf_diename(&discr);
	if (!n || strcmp(n, "__state") != 0 || !member_offset(&discr, &off) ||
	    !type_of(&discr, &st) || !(sz = type_size(&st)) || sz > 8 ||
	    off > UINT32_MAX)
		return false;
	e->state_off = (uint32_t)off;
	e->state_size = (uint8_t)sz;
	return true;
}

/* A fat pointer to a dyn Future (Box<dyn Future..>, &mut dyn Future..):
 * members "pointer" (data) and "vtable". */
static bool dyn_future_ptr(Dwarf_Die *t, uint32_t *ptr_off, const char **name)
{
	Dwarf_Die m, pt, target;
	uint64_t off;
	const char *n;

	if (dwarf_tag(t) != DW_TAG_structure_type ||
	    !member_named(t, "vtable", &m) || !member_named(t, "pointer", &m) ||
	    !type_of(&m, &pt) || !peel(&pt) ||
	    dwarf_tag(&pt) != DW_TAG_pointer_type || !type_of(&pt, &target))
		return false;
	/* "dyn core::future::future::Future<Output=T>", or with more bounds
	 * "(dyn core::future::future::Future<Output=T> + core::marker::Send)" */
	n = dwarf_diename(&target);
	if (!n || !starts_with(n + (n[0] == '('), "dyn ") ||
	    !strstr(n, "core::future::future::Future") || !member_offset(&m, &off))
		return false;
	*ptr_off = (uint32_t)off;
	*name = n;
	return true;
}

/* tokio::runtime::task::join::JoinHandle<T>: its RawTask "raw" is the
 * task cell's address (the spawned future lives at a fixed offset in
 * that cell). */
static bool join_handle(Dwarf_Die *t, uint32_t *raw_off)
{
	Dwarf_Die m;
	uint64_t off;

	if (dwarf_tag(t) != DW_TAG_structure_type ||
	    !starts_with(dwarf_diename(t), "JoinHandle<") ||
	    !member_named(t, "raw", &m) || !member_offset(&m, &off))
		return false;
	*raw_off = (uint32_t)off;
	return true;
}

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

static uint64_t uleb(const unsigned char **p, const unsigned char *end)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (*p < end) {
		unsigned char b = *(*p)++;

		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	return v;
}

/* DW_AT_discr_list: DW_DSC_label value | DW_DSC_range lo hi. */
static void discr_list(Dwarf_Attribute *a, struct variant *v)
{
	Dwarf_Block b;
	const unsigned char *p, *end;

	if (dwarf_formblock(a, &b) != 0)
		return;
	p = b.data;
	end = b.data + b.length;
	while (p < end && v->n < 8) {
		unsigned char kind = *p++;

		v->v[v->n].lo = uleb(&p, end);
		v->v[v->n].hi = kind == DW_DSC_range ? uleb(&p, end) : v->v[v->n].lo;
		v->n++;
	}
}

static bool read_variant(Dwarf_Die *var, struct variant *v)
{
	Dwarf_Attribute a;
	Dwarf_Word w;
	Dwarf_Die m;

	memset(v, 0, sizeof(*v));
	if (dwarf_attr(var, DW_AT_discr_value, &a)) {
		if (dwarf_formudata(&a, &w) != 0)
			return false;
		v->v[0].lo = v->v[0].hi = w;
		v->n = 1;
	} else if (dwarf_attr(var, DW_AT_discr_list, &a)) {
		discr_list(&a, v);
	} else {
		v->is_default = true;
	}
	if (!child_tag(var, DW_TAG_member, &m) || !member_offset(&m, &v->off) ||
	    !type_of(&m, &v->type))
		return false;
	v->name = dwarf_diename(&m);
	return true;
}

/* Calls fn for every variant of a variant part; stops early on false. */
static void for_each_variant(Dwarf_Die *vp, bool (*fn)(void *, struct variant *),
			     void *ctx)
{
	Dwarf_Die c;

	if (dwarf_child(vp, &c) != 0)
		return;
	do {
		struct variant v;

		if (dwarf_tag(&c) == DW_TAG_variant && read_variant(&c, &v) &&
		    !fn(ctx, &v))
			return;
	} while (dwarf_siblingof(&c, &c) == 0);
}

/* ------------------------------------------------------------------ */
/* Does a type hold a future (or a pointer to a dyn one) by value?     */

static bool interesting(struct scan *s, Dwarf_Die *t, int depth);

struct interest_ctx {
	struct scan *s;
	int depth;
	bool yes;
};

static bool variant_interest(void *p, struct variant *v)
{
	struct interest_ctx *c = p;

	c->yes = interesting(c->s, &v->type, c->depth + 1);
	return !c->yes;
}

static bool members_interesting(struct scan *s, Dwarf_Die *t, int depth)
{
	Dwarf_Die c, mt;

	if (dwarf_child(t, &c) != 0)
		return false;
	do {
		int tag = dwarf_tag(&c);

		if (tag == DW_TAG_member && type_of(&c, &mt) &&
		    interesting(s, &mt, depth + 1))
			return true;
		if (tag == DW_TAG_variant_part) {
			struct interest_ctx ic = { s, depth, false };

			for_each_variant(&c, variant_interest, &ic);
			if (ic.yes)
				return true;
		}
	} while (dwarf_siblingof(&c, &c) == 0);
	return false;
}

static bool compute_interest(struct scan *s, Dwarf_Die *t, int depth)
{
	struct env e;
	uint32_t off;
	const char *n;
	Dwarf_Die et;

	switch (dwarf_tag(t)) {
	case DW_TAG_structure_type:
		if (coroutine_env(t, &e) || dyn_future_ptr(t, &off, &n) ||
		    join_handle(t, &off))
			return true;
		return members_interesting(s, t, depth);
	case DW_TAG_union_type:
		return members_interesting(s, t, depth);
	case DW_TAG_array_type:
		return type_of(t, &et) && interesting(s, &et, depth + 1);
	default:
		return false;
	}
}

static bool interesting(struct scan *s, Dwarf_Die *t, int depth)
{
	Dwarf_Die p = *t;
	uint64_t key;
	uint32_t memo;
	bool yes;

	if (depth > MAX_DEPTH || !peel(&p))
		return false;
	switch (dwarf_tag(&p)) {
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_array_type:
		break;
	default:
		return false; /* scalars, pointers: nothing by value */
	}
	key = dwarf_dieoffset(&p);
	if (offmap_get(&s->interest, key, &memo))
		return memo == 2;
	if (offmap_put(&s->interest, key, 3)) {
		s->oom = true;
		return false;
	}
	yes = compute_interest(s, &p, depth);
	offmap_put(&s->interest, key, yes ? 2 : 1);
	return yes;
}

/* ------------------------------------------------------------------ */
/* Fields of the Unresumed variant (the future's arguments).           */

static int add_field(struct scan *s, struct sp_async_field **v, size_t *n,
		     size_t *cap, const char *name, uint64_t off, uint64_t size)
{
	struct sp_async_field *nv = grow(*v, *n, cap, sizeof(**v));

	if (!nv) {
		s->oom = true;
		return -1;
	}
	*v = nv;
	nv[*n].name = xstrdup(s, name);
	nv[*n].off = (uint32_t)off;
	nv[*n].size = (uint32_t)size;
	(*n)++;
	return 0;
}

struct args_ctx {
	struct scan *s;
	uint32_t base;
	struct sp_async_field *v;
	size_t n, cap;
};

static bool collect_unresumed(void *p, struct variant *v)
{
	struct args_ctx *c = p;
	Dwarf_Die f, ft;

	if (v->is_default || v->v[0].lo != 0 || dwarf_child(&v->type, &f) != 0)
		return true;
	do {
		uint64_t off;

		if (dwarf_tag(&f) != DW_TAG_member || !member_offset(&f, &off) ||
		    !type_of(&f, &ft))
			continue;
		if (add_field(c->s, &c->v, &c->n, &c->cap, dwarf_diename(&f),
			      c->base + v->off + off, type_size(&ft)))
			return false;
	} while (dwarf_siblingof(&f, &f) == 0);
	return false; /* there is one Unresumed */
}

static void env_args(struct scan *s, struct env *e, uint32_t base,
		     struct sp_async_field **args, size_t *n)
{
	struct args_ctx c = { .s = s, .base = base };

	for_each_variant(&e->vp, collect_unresumed, &c);
	*args = c.v;
	*n = c.n;
}

/* ------------------------------------------------------------------ */
/* The nested tree of one root future.                                 */

/* A coroutine node whose own Suspend variants are still to expand. */
struct todo {
	int node;
	Dwarf_Off env;
	int depth;
};

/* Coroutines are expanded breadth first (a queue of todo): when a huge
 * future hits SP_ASYNC_MAX_NODES, what is cut is the deepest nesting,
 * not the later awaits of the root. */
struct tree {
	struct scan *s;
	struct sp_async_poll *p;
	size_t cap;
	uint64_t *type_die;   /* parallel to p->nodes: the node's type */
	bool *mergeable;      /* parallel: same instance across variants */
	struct todo *q;
	size_t q_head, q_n, q_cap;
};

/* Where a node comes from and what its parent must hold. */
struct place {
	int parent;
	const struct sp_async_range *guard;
	size_t n_guard;
	bool negate;
	bool mergeable; /* not an __awaitee: a local/upvar that keeps its
	                 * identity across the suspend points it spans */
	int depth;
};

static void descend(struct tree *t, Dwarf_Die *type, uint32_t abs,
		    const char *path, const struct place *pl);

static bool same_guard_kind(const struct sp_async_node *n, const struct place *pl)
{
	return n->guard_negate == pl->negate;
}

static int add_ranges(struct scan *s, struct sp_async_node *n,
		      const struct sp_async_range *r, size_t k)
{
	struct sp_async_range *g = realloc(n->guard, (n->n_guard + k) * sizeof(*g));

	if (!g) {
		s->oom = true;
		return -1;
	}
	for (size_t i = 0; i < k; i++) {
		bool dup = false;

		for (size_t j = 0; j < n->n_guard; j++)
			dup |= g[j].lo == r[i].lo && g[j].hi == r[i].hi;
		if (!dup)
			g[n->n_guard++] = r[i];
	}
	n->guard = g;
	return 0;
}

/* The same local seen again under another variant of its parent: widen
 * its guard instead of adding (and expanding) a second node. */
static bool merged(struct tree *t, uint64_t die, uint32_t base,
		   enum sp_async_node_kind kind, const char *path,
		   const struct place *pl)
{
	if (!pl->mergeable)
		return false;
	for (size_t i = 0; i < t->p->n_nodes; i++) {
		struct sp_async_node *n = &t->p->nodes[i];

		if (t->mergeable[i] && n->parent == pl->parent && n->kind == kind &&
		    n->base == base && t->type_die[i] == die &&
		    strcmp(n->path, path) == 0 && same_guard_kind(n, pl)) {
			add_ranges(t->s, n, pl->guard, pl->n_guard);
			return true;
		}
	}
	return false;
}

/* Room for one more node in p->nodes and the parallel arrays. */
static bool reserve_node(struct tree *t)
{
	struct sp_async_poll *p = t->p;
	size_t nc = t->cap ? t->cap * 2 : 16;
	struct sp_async_node *n;
	uint64_t *die;
	bool *m;

	if (p->n_nodes < t->cap)
		return true;
	if ((n = realloc(p->nodes, nc * sizeof(*n))))
		p->nodes = n;
	if ((die = realloc(t->type_die, nc * sizeof(*die))))
		t->type_die = die;
	if ((m = realloc(t->mergeable, nc * sizeof(*m))))
		t->mergeable = m;
	if (!n || !die || !m) {
		t->s->oom = true;
		return false;
	}
	t->cap = nc;
	return true;
}

/* Appends a node; its index, or -1 (merged, full, or out of memory). */
static int add_node(struct tree *t, Dwarf_Die *type, enum sp_async_node_kind kind,
		    uint32_t base, const char *path, const struct place *pl)
{
	struct sp_async_poll *p = t->p;
	uint64_t die = dwarf_dieoffset(type);
	struct sp_async_node *n;

	if (merged(t, die, base, kind, path, pl))
		return -1;
	if (p->n_nodes == SP_ASYNC_MAX_NODES) {
		p->truncated = true;
		return -1;
	}
	if (!reserve_node(t))
		return -1;
	n = &p->nodes[p->n_nodes];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->parent = pl->parent;
	n->guard_negate = pl->negate;
	n->base = base;
	n->obj_size = (uint32_t)type_size(type);
	n->path = xstrdup(t->s, path);
	t->type_die[p->n_nodes] = die;
	t->mergeable[p->n_nodes] = pl->mergeable;
	p->n_nodes++;
	if (add_ranges(t->s, n, pl->guard, pl->n_guard))
		return -1;
	return (int)p->n_nodes - 1;
}

static void join_path(char *buf, const char *a, const char *b)
{
	snprintf(buf, PATH_LEN, "%s%s%s", a, *a ? "." : "", b ? b : "?");
}

/* The fields of one variant structure, under the given place. */
static void descend_fields(struct tree *t, Dwarf_Die *st, uint32_t abs,
			   const char *path, const struct place *pl)
{
	Dwarf_Die f, ft;

	if (dwarf_child(st, &f) != 0)
		return;
	do {
		char buf[PATH_LEN];
		uint64_t off;

		if (dwarf_tag(&f) != DW_TAG_member || !member_offset(&f, &off) ||
		    !type_of(&f, &ft) || !interesting(t->s, &ft, 0))
			continue;
		join_path(buf, path, dwarf_diename(&f));
		descend(t, &ft, abs + (uint32_t)off, buf, pl);
	} while (dwarf_siblingof(&f, &f) == 0);
}

struct suspend_ctx {
	struct tree *t;
	uint32_t base;
	int self;
	int depth;
};

/* A Suspend variant of a coroutine: everything it keeps by value. */
static bool expand_suspend(void *p, struct variant *v)
{
	struct suspend_ctx *c = p;
	Dwarf_Die f, ft;
	const char *tn = dwarf_diename(&v->type);

	if (v->is_default || !starts_with(tn, "Suspend") ||
	    dwarf_child(&v->type, &f) != 0)
		return true;
	do {
		struct place pl = { .parent = c->self, .guard = v->v,
				    .n_guard = v->n, .depth = c->depth + 1 };
		const char *fname = dwarf_diename(&f);
		uint64_t off;

		if (dwarf_tag(&f) != DW_TAG_member || !member_offset(&f, &off) ||
		    !type_of(&f, &ft) || !interesting(c->t->s, &ft, 0))
			continue;
		pl.mergeable = !fname || strcmp(fname, "__awaitee") != 0;
		descend(c->t, &ft, c->base + (uint32_t)(v->off + off),
			fname ? fname : "?", &pl);
	} while (dwarf_siblingof(&f, &f) == 0);
	return true;
}

static void expand_coroutine(struct tree *t, struct env *e, uint32_t base,
			     int self, int depth)
{
	struct suspend_ctx c = { t, base, self, depth };

	for_each_variant(&e->vp, expand_suspend, &c);
}

static const char *poll_linkage(struct scan *s, const char *ns, const char *name)
{
	char key[4352];
	uint32_t idx;

	poll_key(key, sizeof(key), ns, name);
	return offmap_get(&s->link_of, fnv1a(key), &idx) ? s->links[idx] : NULL;
}

static char *env_human_name(struct scan *s, Dwarf_Die *env)
{
	uint32_t idx;
	const char *n = dwarf_diename(env), *ns;

	if (!n)
		return strdup("?");
	if (!offmap_get(&s->env_ns, dwarf_dieoffset(env), &idx))
		return human_name("", n);
	ns = s->ns_names[idx];
	return display_name(poll_linkage(s, ns, n), ns, n);
}

static void enqueue(struct tree *t, int node, Dwarf_Die *env, int depth)
{
	struct todo *q = grow(t->q, t->q_n, &t->q_cap, sizeof(*q));

	if (!q) {
		t->s->oom = true;
		return;
	}
	t->q = q;
	q[t->q_n].node = node;
	q[t->q_n].env = dwarf_dieoffset(env);
	q[t->q_n].depth = depth;
	t->q_n++;
}

static void add_coroutine(struct tree *t, Dwarf_Die *type, struct env *e,
			  uint32_t abs, const char *path, const struct place *pl)
{
	int i = add_node(t, type, SP_ANODE_COROUTINE, abs, path, pl);
	struct sp_async_node *n;

	if (i < 0)
		return;
	n = &t->p->nodes[i];
	n->name = env_human_name(t->s, type);
	if (!n->name)
		t->s->oom = true;
	n->is_block = strstr(dwarf_diename(type), "block") != NULL;
	n->off = abs + e->state_off;
	n->size = e->state_size;
	env_args(t->s, e, abs, &n->args, &n->n_args);
	enqueue(t, i, type, pl->depth);
}

static void add_leaf(struct tree *t, Dwarf_Die *type, enum sp_async_node_kind kind,
		     const char *name, uint32_t abs, uint32_t ptr_off,
		     const char *path, const struct place *pl)
{
	int i = add_node(t, type, kind, abs, path, pl);

	if (i < 0)
		return;
	t->p->nodes[i].name = xstrdup(t->s, name);
	t->p->nodes[i].off = abs + ptr_off;
	t->p->nodes[i].size = 8;
}

/* An enum holding futures: a node for its tag, then each variant's
 * fields guarded by that variant's value(s). */
struct enum_ctx {
	struct tree *t;
	uint32_t abs;
	int self;       /* the tag node, or the enclosing parent if untagged */
	const struct place *outer;
	Dwarf_Die *vp;
	bool tagged;
};

struct others_ctx {
	struct sp_async_range v[32];
	size_t n;
};

static bool collect_values(void *p, struct variant *v)
{
	struct others_ctx *o = p;

	for (size_t i = 0; i < v->n && o->n < 32; i++)
		o->v[o->n++] = v->v[i];
	return true;
}

static bool expand_enum_variant(void *p, struct variant *v)
{
	struct enum_ctx *c = p;
	struct others_ctx others = { .n = 0 };
	struct place pl = *c->outer;

	if (!interesting(c->t->s, &v->type, 0))
		return true;
	if (c->tagged) {
		pl.parent = c->self;
		pl.depth++;
		if (v->is_default) {
			/* valid unless the niche holds another variant */
			for_each_variant(c->vp, collect_values, &others);
			pl.guard = others.v;
			pl.n_guard = others.n;
			pl.negate = true;
		} else {
			pl.guard = v->v;
			pl.n_guard = v->n;
			pl.negate = false;
		}
	}
	descend_fields(c->t, &v->type, c->abs + (uint32_t)v->off,
		       v->name ? v->name : "?", &pl);
	return true;
}

static void add_enum(struct tree *t, Dwarf_Die *type, uint32_t abs,
		     const char *path, const struct place *pl)
{
	Dwarf_Die vp, discr, dt;
	bool has_discr;
	uint64_t doff;
	struct enum_ctx c = { .t = t, .abs = abs, .self = pl->parent,
			      .outer = pl, .vp = &vp };

	if (!variant_part(type, &vp, &discr, &has_discr))
		return;
	if (has_discr && member_offset(&discr, &doff) && type_of(&discr, &dt) &&
	    type_size(&dt) >= 1 && type_size(&dt) <= 8) {
		int i = add_node(t, type, SP_ANODE_MAYBE_DONE, abs, path, pl);

		if (i < 0)
			return;
		t->p->nodes[i].name = xstrdup(t->s, dwarf_diename(type));
		t->p->nodes[i].off = abs + (uint32_t)doff;
		t->p->nodes[i].size = (uint8_t)type_size(&dt);
		c.self = i;
		c.tagged = true;
	}
	for_each_variant(&vp, expand_enum_variant, &c);
}

static void descend_struct(struct tree *t, Dwarf_Die *type, uint32_t abs,
			   const char *path, const struct place *pl)
{
	struct env e;
	uint32_t off;
	const char *n;
	Dwarf_Die vp, discr;
	bool has_discr;

	if (coroutine_env(type, &e))
		add_coroutine(t, type, &e, abs, path, pl);
	else if (dyn_future_ptr(type, &off, &n))
		add_leaf(t, type, SP_ANODE_DYN_BOX, n, abs, off, path, pl);
	else if (join_handle(type, &off))
		add_leaf(t, type, SP_ANODE_JOIN_HANDLE, dwarf_diename(type), abs,
			 off, path, pl);
	else if (variant_part(type, &vp, &discr, &has_discr))
		add_enum(t, type, abs, path, pl);
	else
		descend_fields(t, type, abs, path, pl);
}

static void descend_array(struct tree *t, Dwarf_Die *type, uint32_t abs,
			  const char *path, const struct place *pl)
{
	Dwarf_Die et;
	uint64_t esz, total = type_size(type);

	if (!type_of(type, &et) || !(esz = type_size(&et)) ||
	    total / esz > MAX_ARRAY)
		return;
	for (uint64_t i = 0; i < total / esz; i++) {
		char buf[PATH_LEN];

		snprintf(buf, sizeof(buf), "%s[%" PRIu64 "]", path, i);
		descend(t, &et, abs + (uint32_t)(i * esz), buf, pl);
	}
}

static void descend(struct tree *t, Dwarf_Die *type, uint32_t abs,
		    const char *path, const struct place *pl)
{
	Dwarf_Die p = *type;
	struct place deeper = *pl;

	if (pl->depth > MAX_DEPTH || t->s->oom || t->p->truncated || !peel(&p) ||
	    !interesting(t->s, &p, 0))
		return;
	deeper.depth++;
	switch (dwarf_tag(&p)) {
	case DW_TAG_structure_type:
		descend_struct(t, &p, abs, path, &deeper);
		break;
	case DW_TAG_union_type:
		descend_fields(t, &p, abs, path, &deeper);
		break;
	case DW_TAG_array_type:
		descend_array(t, &p, abs, path, &deeper);
		break;
	default:
		break;
	}
}

static void build_tree(struct scan *s, struct sp_async_poll *p, struct env *e)
{
	struct tree t = { .s = s, .p = p };

	expand_coroutine(&t, e, 0, -1, 0);
	while (t.q_head < t.q_n && !s->oom && !p->truncated) {
		struct todo td = t.q[t.q_head++];
		Dwarf_Die env;
		struct env ce;

		if (dwarf_offdie(s->dw, td.env, &env) && coroutine_env(&env, &ce))
			expand_coroutine(&t, &ce, p->nodes[td.node].base, td.node,
					 td.depth);
	}
	free(t.type_die);
	free(t.mergeable);
	free(t.q);
}

/* ------------------------------------------------------------------ */
/* Where a spawned future sits in its tokio task cell.                 */

static bool find_env(struct scan *s, Dwarf_Die *t, uint32_t abs, int depth,
		     uint64_t *env, uint32_t *off);

struct find_ctx {
	struct scan *s;
	uint32_t abs;
	int depth;
	uint64_t *env;
	uint32_t *off;
	bool found;
};

static bool find_in_variant(void *p, struct variant *v)
{
	struct find_ctx *c = p;

	c->found = find_env(c->s, &v->type, c->abs + (uint32_t)v->off,
			    c->depth + 1, c->env, c->off);
	return !c->found;
}

/* The first coroutine held by value in t (depth-first), and its offset. */
static bool find_env(struct scan *s, Dwarf_Die *t, uint32_t abs, int depth,
		     uint64_t *env, uint32_t *off)
{
	Dwarf_Die p = *t, c, mt;
	struct env e;
	uint64_t moff;

	if (depth > MAX_DEPTH || !peel(&p) || !interesting(s, &p, 0))
		return false;
	if (coroutine_env(&p, &e)) {
		*env = dwarf_dieoffset(&p);
		*off = abs;
		return true;
	}
	if (dwarf_child(&p, &c) != 0)
		return false;
	do {
		if (dwarf_tag(&c) == DW_TAG_member && member_offset(&c, &moff) &&
		    type_of(&c, &mt) &&
		    find_env(s, &mt, abs + (uint32_t)moff, depth + 1, env, off))
			return true;
		if (dwarf_tag(&c) == DW_TAG_variant_part) {
			struct find_ctx fc = { s, abs, depth, env, off, false };

			for_each_variant(&c, find_in_variant, &fc);
			if (fc.found)
				return true;
		}
	} while (dwarf_siblingof(&c, &c) == 0);
	return false;
}

/* A coroutine type's identity across units: hash of its path. */
static bool env_key(struct scan *s, Dwarf_Die *env, uint64_t *key)
{
	char buf[4352];
	uint32_t idx;

	if (!offmap_get(&s->env_ns, dwarf_dieoffset(env), &idx))
		return false;
	snprintf(buf, sizeof(buf), "%s::%s", s->ns_names[idx], dwarf_diename(env));
	*key = fnv1a(buf);
	return true;
}

/* The same future in cells of two schedulers normally sits at the same
 * offset; if not, the answer is "unknown" (UINT32_MAX). */
static void index_cells(struct scan *s)
{
	for (size_t i = 0; i < s->n_cells && !s->oom; i++) {
		Dwarf_Die cell, env;
		uint64_t env_off, key;
		uint32_t off, prev;

		if (!dwarf_offdie(s->dw, s->cells[i], &cell) ||
		    !find_env(s, &cell, 0, 0, &env_off, &off) ||
		    !dwarf_offdie(s->dw, env_off, &env) || !env_key(s, &env, &key))
			continue;
		if (offmap_get(&s->cell_off, key, &prev) && prev != off)
			off = UINT32_MAX;
		if (offmap_put(&s->cell_off, key, off))
			s->oom = true;
	}
}

/* Once every unit was seen: which typed polls are tokio tasks. */
static void resolve_cells(struct scan *s)
{
	for (size_t i = 0; i < s->out->n; i++) {
		uint32_t off;

		s->out->polls[i].task_cell_off = UINT32_MAX;
		if (s->poll_env[i] && offmap_get(&s->cell_off, s->poll_env[i], &off))
			s->out->polls[i].task_cell_off = off;
	}
}

/* ------------------------------------------------------------------ */
/* One poll function with DWARF types.                                 */

/* Pin<&mut ENV> -> ENV: through single-member wrappers to the pointer. */
static bool pointee_env(Dwarf_Die *t, Dwarf_Die *env, struct env *e)
{
	Dwarf_Die cur = *t, m;

	for (int i = 0; i < 6; i++) {
		if (!peel(&cur))
			return false;
		switch (dwarf_tag(&cur)) {
		case DW_TAG_pointer_type:
		case DW_TAG_reference_type:
			if (!type_of(&cur, env) || !peel(env))
				return false;
			return coroutine_env(env, e);
		case DW_TAG_structure_type:
			if (!child_tag(&cur, DW_TAG_member, &m) || !type_of(&m, &cur))
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

	if (child_tag(sub, DW_TAG_formal_parameter, param))
		return true;
	return dwarf_attr(sub, DW_AT_abstract_origin, &a) &&
	       dwarf_formref_die(&a, &origin) &&
	       child_tag(&origin, DW_TAG_formal_parameter, param);
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
	return type_of(sub, &rt) && type_size(&rt) > 16 ? SP_AREG_RSI : SP_AREG_RDI;
}

static struct sp_async_poll *new_poll(struct scan *s)
{
	size_t cap = s->polls_cap;
	struct sp_async_poll *v = grow(s->out->polls, s->out->n, &s->polls_cap,
				       sizeof(*v));
	uint64_t *e;

	if (!v) {
		s->oom = true;
		return NULL;
	}
	s->out->polls = v;
	if (!(e = grow(s->poll_env, s->out->n, &cap, sizeof(*e)))) {
		s->oom = true;
		return NULL;
	}
	s->poll_env = e;
	e[s->out->n] = 0;
	memset(&v[s->out->n], 0, sizeof(*v));
	v[s->out->n].task_cell_off = UINT32_MAX;
	return &v[s->out->n++];
}

static void add_bare(struct scan *s, uint64_t low, uint64_t high, const char *dname)
{
	struct bare_poll *b = grow(s->bare, s->n_bare, &s->bare_cap, sizeof(*b));

	if (!b) {
		s->oom = true;
		return;
	}
	s->bare = b;
	b[s->n_bare].low = low;
	b[s->n_bare].high = high;
	b[s->n_bare].dname = xstrdup(s, dname);
	s->n_bare++;
}

static void typed_poll(struct scan *s, Dwarf_Die *sub, const char *ns,
		       const char *dname, uint64_t low, uint64_t high)
{
	Dwarf_Die param, pt, env;
	struct env e;
	struct sp_async_poll *p;
	Dwarf_Attribute a;

	if (!first_param(sub, &param) || !type_of(&param, &pt) ||
	    !pointee_env(&pt, &env, &e)) {
		add_bare(s, low, high, dname); /* let the code tell */
		return;
	}
	if (!(p = new_poll(s)))
		return;
	p->linkage_name = dwarf_attr_integrate(sub, DW_AT_linkage_name, &a) ?
				  xstrdup(s, dwarf_formstring(&a)) : NULL;
	p->name = display_name(p->linkage_name, ns, dname);
	p->low_pc = low;
	p->size = high - low;
	sp_async_code_offset(s->elf, low, 1, &p->file_offset);
	p->self_reg = self_register(sub, &param, low);
	p->state_off = e.state_off;
	p->state_size = e.state_size;
	p->future_size = (uint32_t)type_size(&env);
	p->is_block = starts_with(dname, "{async_block");
	p->from_dwarf = true;
	if (!env_key(s, &env, &s->poll_env[s->out->n - 1]))
		s->poll_env[s->out->n - 1] = 0;
	if (!p->name)
		s->oom = true;
	env_args(s, &e, 0, &p->args, &p->n_args);
	build_tree(s, p, &e);
}

/* ------------------------------------------------------------------ */
/* The walk over units.                                                */

static void push_u64(struct scan *s, uint64_t **v, size_t *n, size_t *cap,
		     uint64_t x)
{
	uint64_t *nv = grow(*v, *n, cap, sizeof(*nv));

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
	    dwarf_highpc(d, &high) != 0 || high <= low || !(n = die_name(d)))
		return;
	if (starts_with(n, "{closure#")) {
		push_u64(s, &s->plain, &s->n_plain, &s->plain_cap, low);
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
	if (!(v = grow(s->ns_names, s->n_ns, &s->ns_cap, sizeof(*v)))) {
		s->oom = true;
		return;
	}
	s->ns_names = v;
	v[s->n_ns] = xstrdup(s, ns);
	if (!(d = grow(s->env_die, s->n_ns, &s->env_die_cap, sizeof(*d)))) {
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
	    !starts_with(name, "Cell<"))
		return;
	if (!(v = grow(s->cells, s->n_cells, &s->cells_cap, sizeof(*v)))) {
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

static void note_subprogram(struct walk *w, Dwarf_Off off)
{
	struct pending *v = grow(w->v, w->n, &w->cap, sizeof(*v));

	if (!v) {
		w->s->oom = true;
		return;
	}
	w->v = v;
	v[w->n].die = off;
	v[w->n].ns = xstrdup(w->s, w->ns);
	w->n++;
}

/* Every poll DIE of the namespace, inlined or not, for naming the
 * coroutine types that sit beside it. */
static void remember_linkage(struct walk *w, const char *name, const char *ln)
{
	struct scan *s = w->s;
	const char **v;
	char key[4352];

	if (!(v = grow(s->links, s->n_links, &s->links_cap, sizeof(*v)))) {
		s->oom = true;
		return;
	}
	s->links = v;
	v[s->n_links] = ln;
	poll_key(key, sizeof(key), w->ns, name);
	if (offmap_put(&s->link_of, fnv1a(key), (uint32_t)s->n_links))
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

/* Appends a namespace component; returns the length to restore. */
static size_t push_ns(struct walk *w, const char *name)
{
	size_t len = strlen(w->ns);

	snprintf(w->ns + len, sizeof(w->ns) - len, "%s%s", len ? "::" : "",
		 name ? name : "?");
	return len;
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
			size_t len = push_ns(w, f.name);

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

/* ------------------------------------------------------------------ */
/* The fast pass over every DIE of a unit.                             */
/*
 * Walking a unit with libdw costs two rwlock operations per DIE in
 * elfutils 0.188 (its abbreviation hash is built thread-safe), which was
 * 40% of the time on a 70 MB .debug_info; and a namespace walk visits
 * every DIE anyway, since skipping a subtree means decoding it. This
 * decodes the DIE stream directly (DWARF 2-5, 32/64-bit), keeping only
 * the DIEs whose parents are namespaces. libdw still does the rest. A
 * form it does not know makes it give the unit back to the libdw walk.
 */

struct raw_spec {
	uint32_t at, form;
};

struct raw_abbrev {
	uint32_t tag;
	bool children;
	bool present;
	int32_t fixed;       /* bytes of all attributes, or -1 if variable */
	uint32_t spec0, nspec;
};

struct raw_unit {
	const uint8_t *info, *str, *str_offsets;
	size_t info_len, str_len, str_offsets_len;
	uint64_t str_base;       /* DW_AT_str_offsets_base (DWARF 5) */
	bool has_str_base;
	uint8_t addr_size, off_size;
	uint16_t version;
	struct raw_abbrev *abbr; /* indexed by code */
	uint32_t n_abbr;
	struct raw_spec *spec;
	size_t n_spec;
};

struct rcur {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t r_uleb(struct rcur *c)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (c->p < c->end) {
		uint8_t b = *c->p++;

		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			return v;
	}
	c->bad = true;
	return 0;
}

static uint64_t r_fixed(struct rcur *c, size_t n)
{
	uint64_t v = 0;

	if ((size_t)(c->end - c->p) < n) {
		c->bad = true;
		c->p = c->end;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)c->p[i] << (8 * i);
	c->p += n;
	return v;
}

static void r_skip(struct rcur *c, uint64_t n)
{
	if ((uint64_t)(c->end - c->p) < n) {
		c->bad = true;
		c->p = c->end;
		return;
	}
	c->p += n;
}

/* Bytes a form takes whatever its value; -1 variable, -2 unknown. */
static int form_size(uint32_t form, const struct raw_unit *u)
{
	switch (form) {
	case DW_FORM_flag_present:
	case DW_FORM_implicit_const:
		return 0;
	case DW_FORM_data1: case DW_FORM_ref1: case DW_FORM_flag:
	case DW_FORM_strx1: case DW_FORM_addrx1:
		return 1;
	case DW_FORM_data2: case DW_FORM_ref2: case DW_FORM_strx2:
	case DW_FORM_addrx2:
		return 2;
	case DW_FORM_strx3: case DW_FORM_addrx3:
		return 3;
	case DW_FORM_data4: case DW_FORM_ref4: case DW_FORM_strx4:
	case DW_FORM_addrx4: case DW_FORM_ref_sup4:
		return 4;
	case DW_FORM_data8: case DW_FORM_ref8: case DW_FORM_ref_sig8:
	case DW_FORM_ref_sup8:
		return 8;
	case DW_FORM_data16:
		return 16;
	case DW_FORM_addr:
		return u->addr_size;
	case DW_FORM_ref_addr:
		return u->version == 2 ? u->addr_size : u->off_size;
	case DW_FORM_strp: case DW_FORM_sec_offset: case DW_FORM_line_strp:
	case DW_FORM_strp_sup: case DW_FORM_GNU_ref_alt: case DW_FORM_GNU_strp_alt:
		return u->off_size;
	case DW_FORM_string: case DW_FORM_block: case DW_FORM_block1:
	case DW_FORM_block2: case DW_FORM_block4: case DW_FORM_exprloc:
	case DW_FORM_sdata: case DW_FORM_udata: case DW_FORM_ref_udata:
	case DW_FORM_strx: case DW_FORM_addrx: case DW_FORM_loclistx:
	case DW_FORM_rnglistx: case DW_FORM_GNU_addr_index:
	case DW_FORM_GNU_str_index: case DW_FORM_indirect:
		return -1;
	default:
		return -2;
	}
}

static const char *r_str(const struct raw_unit *u, uint64_t off)
{
	/* .debug_str ends in a NUL (checked once): any string in it is
	 * terminated */
	return off < u->str_len ? (const char *)u->str + off : NULL;
}

/* DWARF 5 indexed strings: .debug_str_offsets[base + i]. */
static const char *r_strx(const struct raw_unit *u, uint64_t i)
{
	uint64_t at = u->str_base + i * u->off_size, off = 0;

	if (!u->has_str_base || !u->str_offsets || at > u->str_offsets_len ||
	    u->off_size > u->str_offsets_len - at)
		return NULL;
	for (unsigned k = 0; k < u->off_size; k++)
		off |= (uint64_t)u->str_offsets[at + k] << (8 * k);
	return r_str(u, off);
}

static bool is_strx(uint32_t form)
{
	return form == DW_FORM_strx || form == DW_FORM_strx1 ||
	       form == DW_FORM_strx2 || form == DW_FORM_strx3 ||
	       form == DW_FORM_strx4 || form == DW_FORM_GNU_str_index;
}

/* Steps over one attribute value; with str, *str gets the string of a
 * string form (NULL if it cannot be read, or the form is not a string
 * form). false: a form it does not know. */
static bool r_value(struct rcur *c, uint32_t form, const struct raw_unit *u,
		    const char **str)
{
	int n = form_size(form, u);

	if (str)
		*str = NULL;
	if (str && form == DW_FORM_strp) {
		*str = r_str(u, r_fixed(c, u->off_size));
		return true;
	}
	if (str && is_strx(form)) {
		*str = r_strx(u, n > 0 ? r_fixed(c, (size_t)n) : r_uleb(c));
		return true;
	}
	if (n >= 0) {
		r_skip(c, (uint64_t)n);
		return true;
	}
	if (n == -2)
		return false;
	switch (form) {
	case DW_FORM_string: {
		const uint8_t *z = memchr(c->p, 0, (size_t)(c->end - c->p));

		if (!z) {
			c->bad = true;
			return true;
		}
		if (str)
			*str = (const char *)c->p;
		c->p = z + 1;
		return true;
	}
	case DW_FORM_block1:
		r_skip(c, r_fixed(c, 1));
		return true;
	case DW_FORM_block2:
		r_skip(c, r_fixed(c, 2));
		return true;
	case DW_FORM_block4:
		r_skip(c, r_fixed(c, 4));
		return true;
	case DW_FORM_block:
	case DW_FORM_exprloc:
		r_skip(c, r_uleb(c));
		return true;
	case DW_FORM_indirect:
		return r_value(c, (uint32_t)r_uleb(c), u, str);
	default: /* the LEB128 forms */
		r_uleb(c);
		return true;
	}
}

/* The unit's abbreviation table, indexed by code (LLVM numbers them
 * 1..n). false if it is not that dense or is malformed. */
static bool r_abbrevs(struct raw_unit *u, const uint8_t *ab, size_t ab_len,
		      uint64_t off)
{
	struct rcur c = { ab + off, ab + ab_len, false };
	size_t cap_spec = 0;

	if (off >= ab_len)
		return false;
	for (;;) {
		uint64_t code = r_uleb(&c), at, form;
		struct raw_abbrev *a;

		if (c.bad || code == 0)
			return !c.bad;
		if (code > 1u << 20)
			return false;
		if (code >= u->n_abbr) {
			uint32_t n = (uint32_t)code + 64;
			struct raw_abbrev *v = realloc(u->abbr, n * sizeof(*v));

			if (!v)
				return false;
			memset(v + u->n_abbr, 0, (n - u->n_abbr) * sizeof(*v));
			u->abbr = v;
			u->n_abbr = n;
		}
		a = &u->abbr[code];
		a->tag = (uint32_t)r_uleb(&c);
		a->children = r_fixed(&c, 1) != 0;
		a->present = true;
		a->fixed = 0;
		a->spec0 = (uint32_t)u->n_spec;
		a->nspec = 0;
		while (!c.bad && ((at = r_uleb(&c)) | (form = r_uleb(&c)))) {
			struct raw_spec *sv = grow(u->spec, u->n_spec, &cap_spec,
						   sizeof(*sv));
			int sz = form_size((uint32_t)form, u);

			if (!sv)
				return false;
			u->spec = sv;
			sv[u->n_spec].at = (uint32_t)at;
			sv[u->n_spec++].form = (uint32_t)form;
			a->nspec++;
			if (form == DW_FORM_implicit_const)
				(void)r_uleb(&c); /* its value: not needed */
			if (sz < 0 || a->fixed < 0)
				a->fixed = -1;
			else
				a->fixed += sz;
		}
	}
}

/* Reads the attributes of one DIE the walk cares about (and, on the
 * unit DIE, where its indexed strings are). false: a form it does not
 * know, or a name it cannot read: the unit then goes to libdw. */
static bool r_facts(struct rcur *c, struct raw_unit *u,
		    const struct raw_abbrev *a, struct die_facts *f)
{
	for (uint32_t i = 0; i < a->nspec && !c->bad; i++) {
		const struct raw_spec *sp = &u->spec[a->spec0 + i];
		const char *str = NULL;
		bool named = sp->at == DW_AT_name || sp->at == DW_AT_linkage_name ||
			     sp->at == DW_AT_MIPS_linkage_name;

		if (sp->at == DW_AT_str_offsets_base &&
		    sp->form == DW_FORM_sec_offset) {
			u->str_base = r_fixed(c, u->off_size);
			u->has_str_base = true;
			continue;
		}
		if (!r_value(c, sp->form, u, named ? &str : NULL))
			return false;
		if (named && !str && f->tag != DW_TAG_compile_unit)
			return false;
		if (sp->at == DW_AT_name)
			f->name = str;
		else if (named)
			f->linkage = str;
		else if (sp->at == DW_AT_low_pc)
			f->has_low_pc = true;
	}
	return true;
}

static bool r_skip_die(struct rcur *c, const struct raw_unit *u,
		       const struct raw_abbrev *a)
{
	if (a->fixed >= 0) {
		r_skip(c, (uint64_t)a->fixed);
		return true;
	}
	for (uint32_t i = 0; i < a->nspec && !c->bad; i++)
		if (!r_value(c, u->spec[a->spec0 + i].form, u, NULL))
			return false;
	return true;
}

#define RAW_DEPTH 256

/* The DIEs of [start, end): depth tracked through has-children flags and
 * the null entries that close each sibling list. in_scope[d]: DIEs at
 * depth d are children of the unit or of namespaces only. */
static bool raw_walk(struct walk *w, struct raw_unit *u, Dwarf_Off start,
		     Dwarf_Off end)
{
	struct rcur c = { u->info + start, u->info + end, false };
	bool in_scope[RAW_DEPTH];
	int restore[RAW_DEPTH]; /* ns length to restore on leaving, or -1 */
	int depth = 0;

	in_scope[0] = false; /* the unit DIE itself */
	restore[0] = -1;
	while (c.p < c.end && !c.bad) {
		Dwarf_Off off = (Dwarf_Off)(c.p - u->info);
		uint64_t code = r_uleb(&c);
		const struct raw_abbrev *a;
		struct die_facts f = { .off = off };

		if (code == 0) {
			if (depth == 0)
				break; /* padding after the unit */
			if (restore[depth] >= 0)
				w->ns[restore[depth]] = '\0';
			depth--;
			continue;
		}
		if (code >= u->n_abbr || !(a = &u->abbr[code])->present)
			return false;
		f.tag = (int)a->tag;
		if (in_scope[depth] || depth == 0) {
			if (!r_facts(&c, u, a, &f))
				return false;
			if (depth > 0 && f.tag != DW_TAG_namespace)
				note_die(w, &f);
		} else if (!r_skip_die(&c, u, a)) {
			return false;
		}
		if (!a->children)
			continue;
		if (++depth >= RAW_DEPTH)
			return false;
		in_scope[depth] = depth == 1 ||
				  (in_scope[depth - 1] && f.tag == DW_TAG_namespace);
		restore[depth] = -1;
		if (in_scope[depth] && f.tag == DW_TAG_namespace)
			restore[depth] = (int)push_ns(w, f.name);
	}
	return !c.bad;
}

/* The sections the fast pass reads, as libdw left them (decompressed). */
struct raw_secs {
	const uint8_t *info, *abbrev, *str, *str_offsets;
	size_t info_len, abbrev_len, str_len, str_offsets_len;
};

static void find_raw_secs(Elf *e, struct raw_secs *r)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	memset(r, 0, sizeof(*r));
	if (elf_getshdrstrndx(e, &shstrndx) != 0)
		return;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *n;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS ||
		    (sh.sh_flags & SHF_COMPRESSED) ||
		    !(n = elf_strptr(e, shstrndx, sh.sh_name)) ||
		    !(d = elf_getdata(scn, NULL)) || !d->d_buf)
			continue;
		if (strcmp(n, ".debug_info") == 0) {
			r->info = d->d_buf;
			r->info_len = d->d_size;
		} else if (strcmp(n, ".debug_abbrev") == 0) {
			r->abbrev = d->d_buf;
			r->abbrev_len = d->d_size;
		} else if (strcmp(n, ".debug_str_offsets") == 0) {
			r->str_offsets = d->d_buf;
			r->str_offsets_len = d->d_size;
		} else if (strcmp(n, ".debug_str") == 0 && d->d_size &&
			   ((const uint8_t *)d->d_buf)[d->d_size - 1] == 0) {
			r->str = d->d_buf;
			r->str_len = d->d_size;
		}
	}
}

/* Where a unit is and how it is encoded. */
struct unit_span {
	Dwarf_Off die, end, abbrev; /* unit DIE, end of the unit */
	uint16_t version;
	uint8_t addr_size, off_size;
};

/* One unit through the fast pass; false to have libdw walk it. */
static bool raw_unit_walk(struct walk *w, const struct raw_secs *r,
			  const struct unit_span *us)
{
	struct raw_unit u = { .info = r->info, .info_len = r->info_len,
			      .str = r->str, .str_len = r->str_len,
			      .str_offsets = r->str_offsets,
			      .str_offsets_len = r->str_offsets_len,
			      .addr_size = us->addr_size, .off_size = us->off_size,
			      .version = us->version };
	bool ok;

	if (!r->info || !r->abbrev || us->die >= us->end || us->end > r->info_len)
		return false;
	ok = r_abbrevs(&u, r->abbrev, r->abbrev_len, us->abbrev) &&
	     raw_walk(w, &u, us->die, us->end);
	free(u.abbr);
	free(u.spec);
	return ok;
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

	*n += !v->is_default && starts_with(dwarf_diename(&v->type), "Suspend");
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
		if (!(k = grow(s->out->known, s->out->n_known, &s->known_cap, sizeof(*k)))) {
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

static void scan_unit(struct scan *s, Dwarf_Die *cu, const struct raw_secs *r,
		      const struct unit_span *us)
{
	struct walk w = { .s = s };

	if (!raw_unit_walk(&w, r, us)) {
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

static void scan_dwarf(struct scan *s)
{
	Dwarf_Off off = 0, next;
	struct raw_secs r;
	struct unit_span us;
	size_t hsize;

	find_raw_secs(s->elf, &r);
	while (!s->oom &&
	       dwarf_next_unit(s->dw, off, &next, &hsize, &us.version, &us.abbrev,
			       &us.addr_size, &us.off_size, NULL, NULL) == 0) {
		Dwarf_Die cu;

		us.die = off + hsize;
		us.end = next;
		off = next;
		if (!dwarf_offdie(s->dw, us.die, &cu) ||
		    dwarf_tag(&cu) != DW_TAG_compile_unit ||
		    dwarf_srclang(&cu) != DW_LANG_Rust)
			continue;
		s->out->has_dwarf = true;
		scan_unit(s, &cu, &r, &us);
	}
	resolve_cells(s);
}

/* ------------------------------------------------------------------ */
/* Without types: polls recognised by name, read from their code.      */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool in_sorted(const uint64_t *v, size_t n, uint64_t key)
{
	return bsearch(&key, v, n, sizeof(*v), cmp_u64) != NULL;
}

static const struct sp_elf_func *func_at(const struct sp_elf *e, uint64_t addr)
{
	size_t lo = 0, hi = e->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->funcs[mid].addr == addr)
			return &e->funcs[mid];
		if (e->funcs[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void reject(struct scan *s, const char *name, uint64_t low,
		   const char *why)
{
	struct sp_async_reject *v = grow(s->out->rejected, s->out->n_rejected,
					 &s->rejected_cap, sizeof(*v));

	if (!v) {
		s->oom = true;
		return;
	}
	s->out->rejected = v;
	v[s->out->n_rejected].name = xstrdup(s, name);
	v[s->out->n_rejected].low_pc = low;
	v[s->out->n_rejected].why = xstrdup(s, why);
	s->out->n_rejected++;
}

struct fallback {
	struct scan *s;
	struct sp_async_disasm d;
	const struct sp_elf *elf;
	uint64_t *covered; /* addresses DWARF already classified */
	size_t n_covered;
};

static void code_poll(struct fallback *fb, uint64_t low, uint64_t size,
		      const struct sp_elf_func *f, char *name,
		      const struct sp_async_dispatch *dis)
{
	struct sp_async_poll *p = new_poll(fb->s);

	if (!p) {
		free(name);
		return;
	}
	p->name = name;
	if (f) {
		p->symbol = xstrdup(fb->s, f->names[0]);
		p->linkage_name = strndup(f->names[0],
					  sp_clone_stripped_len(f->names[0], NULL));
	}
	p->low_pc = low;
	p->size = size;
	sp_async_code_offset(fb->s->elf, low, 1, &p->file_offset);
	p->self_reg = dis->self_reg;
	p->state_off = dis->state_off;
	p->state_size = dis->state_size;
	if (!p->name)
		fb->s->oom = true;
}

static void bare_polls(struct fallback *fb)
{
	struct scan *s = fb->s;

	for (size_t i = 0; i < s->n_bare && !s->oom; i++) {
		const struct bare_poll *b = &s->bare[i];
		const struct sp_elf_func *f = func_at(fb->elf, b->low);
		struct sp_async_dispatch dis;
		char *dem = f ? sp_demangle(f->names[0]) : NULL;
		char *name = dem ? name_from_symbol(dem, b->dname) : strdup(b->dname);
		char why[128];

		free(dem);
		if (!name) {
			s->oom = true;
			return;
		}
		if (!sp_async_disasm_dispatch(&fb->d, b->low, b->high - b->low,
					      false, &dis, why, sizeof(why))) {
			reject(s, name, b->low, why);
			free(name);
			continue;
		}
		code_poll(fb, b->low, b->high - b->low, f, name, &dis);
		s->out->polls[s->out->n - 1].is_block =
			starts_with(b->dname, "{async_block");
	}
}

/* Only names the demangler might turn into a closure are demangled: a
 * big server has a few hundred thousand symbols. */
static bool maybe_closure(const char *raw)
{
	return strstr(raw, "closure") || (raw[0] == '_' && raw[1] == 'R' &&
					  strstr(raw, "NC"));
}

static void symbol_polls(struct fallback *fb)
{
	for (size_t i = 0; i < fb->elf->n && !fb->s->oom; i++) {
		const struct sp_elf_func *f = &fb->elf->funcs[i];
		struct sp_async_dispatch dis;
		char why[128];
		char *dem;

		if (!f->in_exec || !maybe_closure(f->names[0]) ||
		    in_sorted(fb->covered, fb->n_covered, f->addr))
			continue;
		if (!(dem = sp_demangle(f->names[0]))) {
			fb->s->oom = true;
			return;
		}
		if (!sp_async_is_closure_name(dem)) {
			free(dem);
			continue;
		}
		if (!sp_async_disasm_dispatch(&fb->d, f->addr, f->size, true, &dis,
					      why, sizeof(why))) {
			reject(fb->s, dem, f->addr, why);
			free(dem);
			continue;
		}
		code_poll(fb, f->addr, f->size, f, dem, &dis);
	}
}

static int build_covered(struct fallback *fb)
{
	struct scan *s = fb->s;
	size_t n = s->out->n + s->n_bare + s->n_plain, k = 0;

	fb->covered = malloc((n ? n : 1) * sizeof(uint64_t));
	if (!fb->covered)
		return -1;
	for (size_t i = 0; i < s->out->n; i++)
		fb->covered[k++] = s->out->polls[i].low_pc;
	for (size_t i = 0; i < s->n_bare; i++)
		fb->covered[k++] = s->bare[i].low;
	for (size_t i = 0; i < s->n_plain; i++)
		fb->covered[k++] = s->plain[i];
	if (k)
		qsort(fb->covered, k, sizeof(uint64_t), cmp_u64);
	fb->n_covered = k;
	return 0;
}

/* Typed polls get their ELF symbol (with its .llvm.N suffix, which
 * libbpf needs and DW_AT_linkage_name lacks). */
static void name_symbols(struct scan *s, const struct sp_elf *elf)
{
	for (size_t i = 0; i < s->out->n; i++) {
		struct sp_async_poll *p = &s->out->polls[i];
		const struct sp_elf_func *f;

		if (p->symbol || !(f = func_at(elf, p->low_pc)))
			continue;
		p->symbol = xstrdup(s, f->names[0]);
	}
}

static void run_fallback(struct scan *s, const struct sp_elf *elf)
{
	struct fallback fb = { .s = s, .elf = elf };

	if (!elf || sp_async_disasm_init(&fb.d, elf, NULL, 0)) {
		for (size_t i = 0; i < s->n_bare; i++)
			reject(s, s->bare[i].dname, s->bare[i].low,
			       elf ? "capstone unavailable" : "no symbols to read code by");
		return;
	}
	if (build_covered(&fb)) {
		s->oom = true;
	} else {
		bare_polls(&fb);
		symbol_polls(&fb);
	}
	free(fb.covered);
	sp_async_disasm_free(&fb.d);
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

static int open_elf(const char *path, int *fd, Elf **elf, char *err, size_t errlen)
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
	*elf = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
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

int sp_async_analyze(const char *path, struct sp_async_info *out, char *err,
		     size_t errlen)
{
	struct scan s = { .out = out };
	struct sp_elf syms;
	bool have_syms;
	int fd = -1, rc = 0;

	memset(out, 0, sizeof(*out));
	if (open_elf(path, &fd, &s.elf, err, errlen)) {
		rc = -1;
		goto done;
	}
	note_sections(s.elf);
	/* no symbols is fine: DWARF alone still gives typed polls */
	have_syms = sp_elf_open(&syms, path, path, NULL, 0) == 0;
	s.dw = dwarf_begin_elf(s.elf, DWARF_C_READ, NULL);
	if (s.dw)
		scan_dwarf(&s);
	if (s.n_plain) /* s.plain is NULL when empty: not even qsort(NULL, 0) */
		qsort(s.plain, s.n_plain, sizeof(uint64_t), cmp_u64);
	if (!s.oom)
		run_fallback(&s, have_syms ? &syms : NULL);
	if (have_syms) {
		name_symbols(&s, &syms);
		sp_elf_close(&syms);
	}
	if (s.dw)
		dwarf_end(s.dw);
	free_scan(&s);
	sort_dedup(out);
	sort_dedup_known(out);
	if (s.oom) {
		sp_set_err(err, errlen, "%s: out of memory", path);
		sp_async_info_free(out);
		rc = -1;
	}
done:
	n_name_secs = 0;
	if (s.elf)
		elf_end(s.elf);
	if (fd >= 0)
		close(fd);
	return rc;
}

void sp_async_info_free(struct sp_async_info *info)
{
	for (size_t i = 0; i < info->n; i++)
		free_poll(&info->polls[i]);
	free(info->polls);
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

/* ------------------------------------------------------------------ */
/* Printing.                                                           */

static const char *kind_name(enum sp_async_node_kind k)
{
	switch (k) {
	case SP_ANODE_COROUTINE:
		return "future";
	case SP_ANODE_MAYBE_DONE:
		return "enum";
	case SP_ANODE_DYN_BOX:
		return "dyn-ptr";
	case SP_ANODE_JOIN_HANDLE:
		return "join-handle";
	}
	return "?";
}

static void print_fields(FILE *f, const struct sp_async_field *a, size_t n)
{
	if (!n)
		return;
	fprintf(f, " args:");
	for (size_t i = 0; i < n; i++)
		fprintf(f, " %s@%#x/%u", a[i].name, a[i].off, a[i].size);
}

static void print_guard(FILE *f, const struct sp_async_node *n)
{
	fprintf(f, "%s", n->guard_negate ? "not in {" : "in {");
	for (size_t i = 0; i < n->n_guard; i++) {
		const struct sp_async_range *r = &n->guard[i];

		if (r->lo == r->hi)
			fprintf(f, "%s%" PRIu64, i ? "," : "", r->lo);
		else
			fprintf(f, "%s%" PRIu64 "..%" PRIu64, i ? "," : "", r->lo,
				r->hi);
	}
	fprintf(f, "}");
}

static void print_node(FILE *f, const struct sp_async_poll *p, size_t i, int depth)
{
	const struct sp_async_node *n = &p->nodes[i];

	fprintf(f, "    %*s[%zu] %s %s guard=", 2 * depth, "", i, kind_name(n->kind),
		n->name ? n->name : "?");
	print_guard(f, n);
	fprintf(f, " at %s: obj %#x+%u, %s %#x/%u", n->path, n->base, n->obj_size,
		n->kind == SP_ANODE_COROUTINE   ? "state" :
		n->kind == SP_ANODE_MAYBE_DONE ? "tag" : "ptr",
		n->off, n->size);
	print_fields(f, n->args, n->n_args);
	fputc('\n', f);
}

/* Depth first, children under their parent (the array is breadth first). */
static void print_children(FILE *f, const struct sp_async_poll *p, int parent,
			   int depth)
{
	for (size_t i = 0; i < p->n_nodes && depth < 64; i++) {
		if (p->nodes[i].parent != parent)
			continue;
		print_node(f, p, i, depth);
		print_children(f, p, (int)i, depth + 1);
	}
}

static void print_poll(FILE *f, const struct sp_async_poll *p)
{
	fprintf(f, "poll %s%s\n", p->name, p->is_block ? " (async block)" : "");
	fprintf(f, "  pc %#" PRIx64 " file %#" PRIx64 " size %" PRIu64
		   ", self in %s, __state at %#x/%u, future %u bytes, from %s\n",
		p->low_pc, p->file_offset, p->size,
		p->self_reg == SP_AREG_RSI ? "rsi" : "rdi", p->state_off,
		p->state_size, p->future_size, p->from_dwarf ? "DWARF" : "code");
	if (p->task_cell_off != UINT32_MAX)
		fprintf(f, "  spawned: self = JoinHandle.raw + %#x\n", p->task_cell_off);
	if (p->symbol)
		fprintf(f, "  symbol %s\n", p->symbol);
	if (p->n_args) {
		fprintf(f, " ");
		print_fields(f, p->args, p->n_args);
		fputc('\n', f);
	}
	if (p->n_nodes)
		fprintf(f, "  nested (%zu%s):\n", p->n_nodes,
			p->truncated ? ", truncated" : "");
	print_children(f, p, -1, 0);
}

void sp_async_info_print(FILE *f, const struct sp_async_info *info)
{
	fprintf(f, "%zu async polls; DWARF %s, types %s; %zu candidates rejected\n",
		info->n, info->has_dwarf ? "yes" : "no",
		info->has_types ? "yes" : "no (no nested futures)",
		info->n_rejected);
	for (size_t i = 0; i < info->n; i++)
		print_poll(f, &info->polls[i]);
	for (size_t i = 0; i < info->n_rejected; i++)
		fprintf(f, "not a coroutine: %s at %#" PRIx64 ": %s\n",
			info->rejected[i].name, info->rejected[i].low_pc,
			info->rejected[i].why);
	for (size_t i = 0; i < info->n_known; i++)
		fprintf(f, "known: %s, %" PRIu32 " await point%s\n", info->known[i].name,
			info->known[i].n_suspend, info->known[i].n_suspend == 1 ? "" : "s");
}
