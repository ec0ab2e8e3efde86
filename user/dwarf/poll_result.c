/*
 * Poll<Result<T, E>>: Ready is one variant of Poll's variant part, Err
 * one of Result's inside Ready's __0. Each variant is told by its
 * discriminant member's value: listed values, or, for the untagged
 * (dataful) variant of a niche encoding, none of the other variants'.
 */
#include <dwarf.h>
#include <string.h>
#include "dwarf/async_dwarf_types.h"
#include "dwarf/poll_result.h"

struct pick {
	const char *want;
	struct variant found;
	bool ok;
	struct sp_async_range other[SP_RESULT_RANGES];
	size_t n_other;
	bool too_many;
};

static bool note_variant(void *ctx, struct variant *v)
{
	struct pick *p = ctx;

	if (v->name && !strcmp(v->name, p->want)) {
		p->found = *v;
		p->ok = true;
		return true;
	}
	for (size_t i = 0; i < v->n; i++) {
		if (p->n_other == SP_RESULT_RANGES) {
			p->too_many = true;
			break;
		}
		p->other[p->n_other++] = v->v[i];
	}
	return true;
}

/* The test that tells variant `want` of the enum type t (at base in the
 * Poll), and that variant's structure. */
static bool variant_test(Dwarf_Die *t, const char *want, uint64_t base,
			 struct sp_result_test *out, Dwarf_Die *var_type, uint64_t *var_off)
{
	Dwarf_Die vp, discr, dt;
	bool has_discr;
	uint64_t off, size;
	struct pick p = { .want = want };

	if (!sp_adw_peel(t) || !sp_adw_variant_part(t, &vp, &discr, &has_discr) || !has_discr ||
	    !sp_adw_member_offset(&discr, &off) || !sp_adw_type_of(&discr, &dt) ||
	    !(size = sp_adw_type_size(&dt)) || size > 8)
		return false;
	for_each_variant(&vp, note_variant, &p);
	if (!p.ok || (p.found.is_default && (p.too_many || !p.n_other)) ||
	    p.found.n > SP_RESULT_RANGES || base + off > UINT32_MAX)
		return false;
	memset(out, 0, sizeof(*out));
	out->off = (uint32_t)(base + off);
	out->size = (uint8_t)size;
	out->negate = p.found.is_default;
	out->n = (uint8_t)(out->negate ? p.n_other : p.found.n);
	for (size_t i = 0; i < out->n; i++) {
		const struct sp_async_range *r = out->negate ? &p.other[i] : &p.found.v[i];

		out->lo[i] = r->lo;
		out->hi[i] = r->hi;
	}
	*var_type = p.found.type;
	*var_off = p.found.off;
	return true;
}

/* The offset and type of member name of structure st. */
static bool member(Dwarf_Die *st, const char *name, uint64_t *off, Dwarf_Die *type)
{
	Dwarf_Die m;

	if (dwarf_child(st, &m) != 0)
		return false;
	do {
		const char *n = dwarf_diename(&m);

		if (dwarf_tag(&m) == DW_TAG_member && n && !strcmp(n, name))
			return sp_adw_member_offset(&m, off) && sp_adw_type_of(&m, type);
	} while (dwarf_siblingof(&m, &m) == 0);
	return false;
}

static bool named_like(Dwarf_Die *t, const char *prefix)
{
	const char *n = dwarf_diename(t);

	return n && !strncmp(n, prefix, strlen(prefix));
}

bool sp_poll_result_err(Dwarf_Die *sub, struct sp_result_err *out)
{
	Dwarf_Die poll, ready, res, err;
	uint64_t ready_off, inner_off, err_off, size;

	memset(out, 0, sizeof(*out));
	if (!sp_adw_type_of(sub, &poll) || !sp_adw_peel(&poll) || !named_like(&poll, "Poll<") ||
	    !(size = sp_adw_type_size(&poll)))
		return false;
	if (!variant_test(&poll, "Ready", 0, &out->t[0], &ready, &ready_off))
		return false;
	/* the variant's fields are at offsets in the enum already (rustc
	 * places each variant's structure at 0) */
	if (!member(&ready, "__0", &inner_off, &res) || !sp_adw_peel(&res) ||
	    !named_like(&res, "Result<") ||
	    !variant_test(&res, "Err", ready_off + inner_off, &out->t[1], &err, &err_off)) {
		memset(out, 0, sizeof(*out));
		return false;
	}
	out->n = 2;
	out->via_ptr = size > 16;
	return true;
}
