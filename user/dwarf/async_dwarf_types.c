/*
 * Reading rustc's DWARF types for the async analysis: layout through
 * typedefs, coroutine types and enums (their variant parts), whether a
 * type can hold a future by value, and a future's arguments (the fields
 * of its Unresumed variant).
 */
#include <string.h>
#include <dwarf.h>
#include "dwarf/async_dwarf_names.h"
#include "dwarf/async_dwarf_types.h"

/* ------------------------------------------------------------------ */
/* Types.                                                              */

bool sp_adw_type_of(Dwarf_Die *d, Dwarf_Die *out)
{
	Dwarf_Attribute a;

	return dwarf_attr_integrate(d, DW_AT_type, &a) &&
	       dwarf_formref_die(&a, out) != NULL;
}

/* Through typedefs and qualifiers, which change no layout. */
bool sp_adw_peel(Dwarf_Die *t)
{
	for (int i = 0; i < 8; i++) {
		int tag = dwarf_tag(t);

		if (tag != DW_TAG_typedef && tag != DW_TAG_const_type &&
		    tag != DW_TAG_volatile_type)
			return true;
		if (!sp_adw_type_of(t, t))
			return false;
	}
	return false;
}

uint64_t sp_adw_type_size(Dwarf_Die *t)
{
	Dwarf_Word sz;
	Dwarf_Die p = *t;

	if (!sp_adw_peel(&p))
		return 0;
	if (dwarf_tag(&p) == DW_TAG_pointer_type ||
	    dwarf_tag(&p) == DW_TAG_reference_type)
		return 8;
	return dwarf_aggregate_size(&p, &sz) == 0 ? sz : 0;
}

/* DW_AT_data_member_location as a constant; absent means 0 (unions). */
bool sp_adw_member_offset(Dwarf_Die *m, uint64_t *off)
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
bool sp_adw_child_tag(Dwarf_Die *parent, int tag, Dwarf_Die *out)
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
bool sp_adw_variant_part(Dwarf_Die *st, Dwarf_Die *vp, Dwarf_Die *discr,
			 bool *has_discr)
{
	Dwarf_Attribute a;

	if (dwarf_tag(st) != DW_TAG_structure_type ||
	    !sp_adw_child_tag(st, DW_TAG_variant_part, vp))
		return false;
	*has_discr = dwarf_attr(vp, DW_AT_discr, &a) &&
		     dwarf_formref_die(&a, discr) != NULL;
	return true;
}

/* A coroutine (async fn/block future) type: named like one, with a
 * variant part discriminated by its artificial "__state" member. */
bool coroutine_env(Dwarf_Die *t, struct env *e)
{
	Dwarf_Die discr, st;
	bool has_discr;
	uint64_t off, sz;
	const char *n;

	if (dwarf_tag(t) != DW_TAG_structure_type || !is_env_name(dwarf_diename(t)) ||
	    !sp_adw_variant_part(t, &e->vp, &discr, &has_discr) || !has_discr)
		return false;
	n = dwarf_diename(&discr);
	if (!n || strcmp(n, "__state") != 0 || !sp_adw_member_offset(&discr, &off) ||
	    !sp_adw_type_of(&discr, &st) || !(sz = sp_adw_type_size(&st)) || sz > 8 ||
	    off > UINT32_MAX)
		return false;
	e->state_off = (uint32_t)off;
	e->state_size = (uint8_t)sz;
	return true;
}

/* A fat pointer to a dyn Future (Box<dyn Future..>, &mut dyn Future..):
 * members "pointer" (data) and "vtable". */
bool dyn_future_ptr(Dwarf_Die *t, uint32_t *ptr_off, const char **name)
{
	Dwarf_Die m, pt, target;
	uint64_t off;
	const char *n;

	if (dwarf_tag(t) != DW_TAG_structure_type ||
	    !member_named(t, "vtable", &m) || !member_named(t, "pointer", &m) ||
	    !sp_adw_type_of(&m, &pt) || !sp_adw_peel(&pt) ||
	    dwarf_tag(&pt) != DW_TAG_pointer_type || !sp_adw_type_of(&pt, &target))
		return false;
	/* "dyn core::future::future::Future<Output=T>", or with more bounds
	 * "(dyn core::future::future::Future<Output=T> + core::marker::Send)" */
	n = dwarf_diename(&target);
	if (!n || !sp_adw_starts_with(n + (n[0] == '('), "dyn ") ||
	    !strstr(n, "core::future::future::Future") || !sp_adw_member_offset(&m, &off))
		return false;
	*ptr_off = (uint32_t)off;
	*name = n;
	return true;
}

/* tokio::runtime::task::join::JoinHandle<T>: its RawTask "raw" is the
 * task cell's address (the spawned future lives at a fixed offset in
 * that cell). */
bool join_handle(Dwarf_Die *t, uint32_t *raw_off)
{
	Dwarf_Die m;
	uint64_t off;

	if (dwarf_tag(t) != DW_TAG_structure_type ||
	    !sp_adw_starts_with(dwarf_diename(t), "JoinHandle<") ||
	    !member_named(t, "raw", &m) || !sp_adw_member_offset(&m, &off))
		return false;
	*raw_off = (uint32_t)off;
	return true;
}

/* alloc::boxed::Box<T, A> of a sized T: rustc describes it as a thin
 * pointer type named after the Box (a Box<dyn ..> is a struct with a
 * vtable: dyn_future_ptr). Only owning pointers are followed: what they
 * point to belongs to the future that holds them, as a `&T` or an Arc's
 * target does not. */
bool owning_box(Dwarf_Die *t, Dwarf_Die *pointee)
{
	const char *n;

	if (dwarf_tag(t) != DW_TAG_pointer_type || !(n = dwarf_diename(t)) ||
	    !sp_adw_starts_with(n, "alloc::boxed::Box<") || !sp_adw_type_of(t, pointee) ||
	    !sp_adw_peel(pointee))
		return false;
	return dwarf_tag(pointee) == DW_TAG_structure_type ||
	       dwarf_tag(pointee) == DW_TAG_union_type;
}

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
	if (!sp_adw_child_tag(var, DW_TAG_member, &m) || !sp_adw_member_offset(&m, &v->off) ||
	    !sp_adw_type_of(&m, &v->type))
		return false;
	v->name = dwarf_diename(&m);
	return true;
}

/* Calls fn for every variant of a variant part; stops early on false. */
void for_each_variant(Dwarf_Die *vp, bool (*fn)(void *, struct variant *),
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

struct interest_ctx {
	struct scan *s;
	int depth;
	bool yes;
};

static bool variant_interest(void *p, struct variant *v)
{
	struct interest_ctx *c = p;

	c->yes = sp_adw_interesting(c->s, &v->type, c->depth + 1);
	return !c->yes;
}

static bool members_interesting(struct scan *s, Dwarf_Die *t, int depth)
{
	Dwarf_Die c, mt;

	if (dwarf_child(t, &c) != 0)
		return false;
	do {
		int tag = dwarf_tag(&c);

		if (tag == DW_TAG_member && sp_adw_type_of(&c, &mt) &&
		    sp_adw_interesting(s, &mt, depth + 1))
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
		return sp_adw_type_of(t, &et) && sp_adw_interesting(s, &et, depth + 1);
	case DW_TAG_pointer_type:
		return owning_box(t, &et) && sp_adw_interesting(s, &et, depth + 1);
	default:
		return false;
	}
}

bool sp_adw_interesting(struct scan *s, Dwarf_Die *t, int depth)
{
	Dwarf_Die p = *t;
	uint64_t key;
	uint32_t memo;
	bool yes;

	if (depth > MAX_DEPTH || !sp_adw_peel(&p))
		return false;
	switch (dwarf_tag(&p)) {
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_array_type:
	case DW_TAG_pointer_type: /* a Box: its pointee (owning_box) */
		break;
	default:
		return false; /* scalars, other pointers: nothing held */
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
	struct sp_async_field *nv = sp_adw_grow(*v, *n, cap, sizeof(**v));

	if (!nv) {
		s->oom = true;
		return -1;
	}
	*v = nv;
	memset(&nv[*n], 0, sizeof(nv[*n]));
	nv[*n].name = sp_adw_xstrdup(s, name);
	nv[*n].off = (uint32_t)off;
	nv[*n].size = (uint32_t)size;
	(*n)++;
	return 0;
}

/* A member of st by name: its offset and type. */
static bool field_of(Dwarf_Die *st, const char *name, uint64_t *off, Dwarf_Die *type)
{
	Dwarf_Die m;

	return member_named(st, name, &m) && sp_adw_member_offset(&m, off) &&
	       sp_adw_type_of(&m, type) && sp_adw_peel(type);
}

/* The first pointer inside t, depth first (Vec's buf.inner.ptr.pointer
 * in today's std, other paths in others): its offset in t. */
static bool first_pointer(Dwarf_Die *t, uint64_t base, uint64_t *off, int depth)
{
	Dwarf_Die m, mt;
	uint64_t o;

	if (depth > 6 || dwarf_child(t, &m) != 0)
		return false;
	do {
		if (dwarf_tag(&m) != DW_TAG_member || !sp_adw_member_offset(&m, &o) ||
		    !sp_adw_type_of(&m, &mt) || !sp_adw_peel(&mt))
			continue;
		if (dwarf_tag(&mt) == DW_TAG_pointer_type) {
			*off = base + o;
			return true;
		}
		if (dwarf_tag(&mt) == DW_TAG_structure_type &&
		    first_pointer(&mt, base + o, off, depth + 1))
			return true;
	} while (dwarf_siblingof(&m, &m) == 0);
	return false;
}

static bool starts(const char *s, const char *prefix)
{
	return s && !strncmp(s, prefix, strlen(prefix));
}

/* What `args` shows of a field of type t: integers, the text of &str
 * and String, the length of slices and Vecs. */
static void classify_field(Dwarf_Die *t, struct sp_async_field *f)
{
	Dwarf_Die mt, vec;
	Dwarf_Attribute a;
	Dwarf_Word enc;
	uint64_t o, p, vo;
	const char *n;

	if (!sp_adw_peel(t))
		return;
	n = dwarf_diename(t);
	if (dwarf_tag(t) == DW_TAG_base_type && f->size >= 1 && f->size <= 8 &&
	    dwarf_attr(t, DW_AT_encoding, &a) && !dwarf_formudata(&a, &enc) &&
	    (enc == DW_ATE_signed || enc == DW_ATE_unsigned)) {
		f->show = SP_AFIELD_INT;
		f->int_size = (uint8_t)f->size;
		f->is_signed = enc == DW_ATE_signed;
		return;
	}
	if (dwarf_tag(t) != DW_TAG_structure_type || !n)
		return;
	if ((!strcmp(n, "&str") || !strcmp(n, "&mut str")) &&
	    field_of(t, "data_ptr", &p, &mt) && field_of(t, "length", &o, &mt)) {
		f->show = SP_AFIELD_STR;
		f->ptr_off = (uint32_t)p;
		f->len_off = (uint32_t)o;
	} else if ((starts(n, "&[") || starts(n, "&mut [")) && field_of(t, "length", &o, &mt)) {
		f->show = SP_AFIELD_LEN;
		f->len_off = (uint32_t)o;
	} else if (!strcmp(n, "String") && field_of(t, "vec", &vo, &vec) &&
		   field_of(&vec, "len", &o, &mt) && first_pointer(&vec, 0, &p, 0)) {
		f->show = SP_AFIELD_STR;
		f->ptr_off = (uint32_t)(vo + p);
		f->len_off = (uint32_t)(vo + o);
	} else if (starts(n, "Vec<") && field_of(t, "len", &o, &mt)) {
		f->show = SP_AFIELD_LEN;
		f->len_off = (uint32_t)o;
	}
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

		if (dwarf_tag(&f) != DW_TAG_member || !sp_adw_member_offset(&f, &off) ||
		    !sp_adw_type_of(&f, &ft))
			continue;
		if (add_field(c->s, &c->v, &c->n, &c->cap, dwarf_diename(&f),
			      c->base + v->off + off, sp_adw_type_size(&ft)))
			return false;
		classify_field(&ft, &c->v[c->n - 1]);
	} while (dwarf_siblingof(&f, &f) == 0);
	return false; /* there is one Unresumed */
}

void env_args(struct scan *s, struct env *e, uint32_t base,
	      struct sp_async_field **args, size_t *n)
{
	struct args_ctx c = { .s = s, .base = base };

	for_each_variant(&e->vp, collect_unresumed, &c);
	*args = c.v;
	*n = c.n;
}
