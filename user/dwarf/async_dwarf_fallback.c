/*
 * Rust async polls without DWARF types (line tables only, or no DWARF):
 * recognised by name, DWARF {async_fn#N} subprograms or closure symbols,
 * and read from their code (async_disasm.h) for their self register and
 * state offset.
 */
#include <stdlib.h>
#include <string.h>
#include "dwarf/async_disasm.h"
#include "dwarf/async_dwarf_fallback.h"
#include "dwarf/async_dwarf_names.h"
#include "symbols/elf_symbols.h"
#include "symbols/symbols.h"

/* ------------------------------------------------------------------ */
/* Without types: polls recognised by name, read from their code.      */

int sp_adw_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool in_sorted(const uint64_t *v, size_t n, uint64_t key)
{
	return bsearch(&key, v, n, sizeof(*v), sp_adw_cmp_u64) != NULL;
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
	struct sp_async_reject *v = sp_adw_grow(s->out->rejected, s->out->n_rejected,
						&s->rejected_cap, sizeof(*v));

	if (!v) {
		s->oom = true;
		return;
	}
	s->out->rejected = v;
	v[s->out->n_rejected].name = sp_adw_xstrdup(s, name);
	v[s->out->n_rejected].low_pc = low;
	v[s->out->n_rejected].why = sp_adw_xstrdup(s, why);
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
	struct sp_async_poll *p = sp_adw_new_poll(fb->s);

	if (!p) {
		free(name);
		return;
	}
	p->name = name;
	if (f) {
		p->symbol = sp_adw_xstrdup(fb->s, f->names[0]);
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
		char *name = dem ? sp_adw_name_from_symbol(dem, b->dname) : strdup(b->dname);
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
			sp_adw_starts_with(b->dname, "{async_block");
	}
}

/* Only names the demangler might turn into a closure are demangled: a
 * big server has a few hundred thousand symbols. */
static bool maybe_closure(const char *raw)
{
	return strstr(raw, "closure") || (raw[0] == '_' && raw[1] == 'R' &&
					  strstr(raw, "NC"));
}

/* One name per function whatever the build: with DWARF, the poll of
 * `async fn f` is named f (async_dwarf_names.c); without, its symbol
 * "f::{{closure}}" / "f::{closure#0}" is all there is, and it gets the
 * same name. What no symbol tells is an async block's poll from its
 * fn's own: without DWARF a block inside f is named f too, where DWARF
 * says "f::{async_block#N}". Takes dem. */
static char *fn_name(char *dem)
{
	char *name = sp_adw_name_from_symbol(dem, "{async_fn#0}");

	free(dem);
	return name;
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
		code_poll(fb, f->addr, f->size, f, fn_name(dem), &dis);
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
		qsort(fb->covered, k, sizeof(uint64_t), sp_adw_cmp_u64);
	fb->n_covered = k;
	return 0;
}

/* Typed polls get their ELF symbol (with its .llvm.N suffix, which
 * libbpf needs and DW_AT_linkage_name lacks). */
void sp_adw_name_symbols(struct scan *s, const struct sp_elf *elf)
{
	for (size_t i = 0; i < s->out->n; i++) {
		struct sp_async_poll *p = &s->out->polls[i];
		const struct sp_elf_func *f;

		if (p->symbol || !(f = func_at(elf, p->low_pc)))
			continue;
		p->symbol = sp_adw_xstrdup(s, f->names[0]);
	}
}

void run_fallback(struct scan *s, const struct sp_elf *elf)
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
