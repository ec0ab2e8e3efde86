/*
 * The fast pass over every DIE of a unit, for the async analysis's walk.
 *
 * Walking a unit with libdw costs two rwlock operations per DIE in
 * elfutils 0.188 (its abbreviation hash is built thread-safe), which was
 * 40% of the time on a 70 MB .debug_info; and a namespace walk visits
 * every DIE anyway, since skipping a subtree means decoding it. This
 * decodes the DIE stream directly (DWARF 2-5, 32/64-bit), keeping only
 * the DIEs whose parents are namespaces. libdw still does the rest. A
 * form it does not know makes it give the unit back to the libdw walk.
 */
#include <stdlib.h>
#include <string.h>
#include <dwarf.h>
#include <gelf.h>
#include "dwarf/dwarf_raw.h"

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
			struct raw_spec *sv = sp_adw_grow(u->spec, u->n_spec, &cap_spec,
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
				w->note(w, &f);
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
			restore[depth] = (int)sp_adw_push_ns(w, f.name);
	}
	return !c.bad;
}

void find_raw_secs(Elf *e, struct raw_secs *r)
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

/* One unit through the fast pass; false to have libdw walk it. */
bool raw_unit_walk(struct walk *w, const struct raw_secs *r,
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
