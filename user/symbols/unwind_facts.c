/*
 * Which code an exception or a panic can unwind through, read from the
 * objects' symbol tables and unwind tables (see unwind_facts.h).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "symbols/unwind_facts.h"

static bool has_section(Elf *e, const char *want)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(e, &shstrndx))
		return false;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (gelf_getshdr(scn, &sh) && (name = elf_strptr(e, shstrndx, sh.sh_name)) &&
		    strcmp(name, want) == 0)
			return true;
	}
	return false;
}

/* Calls *fn on every named symbol of .symtab and .dynsym until it
 * returns non-NULL; that value is returned. */
typedef const char *(*sym_fn)(const char *name, const GElf_Sym *s, void *arg);

static const char *each_symbol(Elf *e, sym_fn fn, void *arg)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t count;

		if (!gelf_getshdr(scn, &sh) ||
		    (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) ||
		    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 1; i < count; i++) {
			GElf_Sym s;
			const char *name, *got;

			if (!gelf_getsym(d, (int)i, &s) ||
			    !(name = elf_strptr(e, sh.sh_link, s.st_name)) ||
			    (name[0] != '_' && name[0] != 'r'))
				continue;
			if ((got = fn(name, &s, arg)))
				return got;
		}
	}
	return NULL;
}

/* Symbol versions follow '@' in some tables' names. */
static bool name_is(const char *name, const char *want)
{
	size_t n = strlen(want);

	return strncmp(name, want, n) == 0 && (name[n] == '\0' || name[n] == '@');
}

struct raise_scan {
	bool except_table;
};

static const char *raiser_of(const char *name, const GElf_Sym *s, void *arg)
{
	static const char *const starts[] = { "_Unwind_RaiseException",
					      "_Unwind_Resume_or_Rethrow" };
	static const char *const throws[] = { "__cxa_throw", "__cxa_rethrow" };
	const struct raise_scan *rs = arg;
	bool imported = s->st_shndx == SHN_UNDEF;

	for (size_t i = 0; i < 2; i++) {
		if (name_is(name, throws[i]))
			return throws[i];
		/* defined: libgcc_s, or libgcc_eh linked in statically,
		 * which starts unwinds only for a program that catches */
		if (name_is(name, starts[i]) && (imported || rs->except_table))
			return starts[i];
	}
	return NULL;
}

const char *sp_object_raiser(Elf *e)
{
	struct raise_scan rs = { .except_table = has_section(e, ".gcc_except_table") };

	return each_symbol(e, raiser_of, &rs);
}

static const char *rust_personality(const char *name, const GElf_Sym *s, void *arg)
{
	(void)arg;
	return s->st_shndx != SHN_UNDEF && name_is(name, "rust_eh_personality") ? name : NULL;
}

bool sp_object_is_rust(Elf *e)
{
	return each_symbol(e, rust_personality, NULL) != NULL;
}

/* libdw does not export its error codes; the one for "no FDE covers this
 * address" is learnt from address 0, which holds the ELF header, never
 * code. Any other failure makes a lookup's answer unknown. */
static int no_match_error(Dwarf_CFI *cfi)
{
	Dwarf_Frame *fr = NULL;

	(void)dwarf_errno(); /* clears the pending error */
	if (dwarf_cfi_addrframe(cfi, 0, &fr) == 0) {
		free(fr);
		return -1;
	}
	return dwarf_errno();
}

struct sp_unwind_table *sp_unwind_table_open(Elf *e)
{
	struct sp_unwind_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->has_eh_frame = has_section(e, ".eh_frame");
	t->cfi = t->has_eh_frame ? dwarf_getcfi_elf(e) : NULL;
	t->no_match = t->cfi ? no_match_error(t->cfi) : -1;
	return t;
}

void sp_unwind_table_free(struct sp_unwind_table *t)
{
	if (!t)
		return;
	if (t->cfi)
		dwarf_cfi_end(t->cfi);
	free(t);
}

/* An FDE covers a whole function, but a cold part has one of its own:
 * every part is looked up. */
int sp_code_has_cfi(const struct sp_unwind_table *t, const struct sp_code_range *r, size_t n)
{
	if (!t->has_eh_frame)
		return 0;
	if (!t->cfi || t->no_match <= 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		Dwarf_Frame *fr = NULL;
		int rc = dwarf_cfi_addrframe(t->cfi, r[i].addr, &fr);

		free(fr);
		if (rc == 0)
			return 1;
		if (dwarf_errno() != t->no_match)
			return -1;
	}
	return 0;
}

int sp_objects_raiser(const char *const *paths, size_t n, const char **sym)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		Elf *e = fd >= 0 ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
		const char *got = e && elf_kind(e) == ELF_K_ELF ? sp_object_raiser(e) : NULL;

		if (e)
			elf_end(e);
		if (fd >= 0)
			close(fd);
		if (got) {
			*sym = got;
			return (int)i;
		}
	}
	return -1;
}

/* Every hook the guard needs, defined here (libgcc_s, or libgcc_eh
 * linked into the program): the guard probes them in this object. */
static const char *unwinder_of(const char *name, const GElf_Sym *s, void *arg)
{
	unsigned *seen = arg;
	static const char *const need[] = { "_Unwind_RaiseException", "_Unwind_Resume_or_Rethrow",
					    "_Unwind_ForcedUnwind", "_Unwind_Resume",
					    "_Unwind_SetIP" };

	if (s->st_shndx == SHN_UNDEF || GELF_ST_TYPE(s->st_info) != STT_FUNC || !s->st_value)
		return NULL;
	for (unsigned i = 0; i < 5; i++)
		if (name_is(name, need[i]))
			*seen |= 1u << i;
	return *seen == 0x1f ? name : NULL;
}

int sp_objects_unwinder(const char *const *paths, size_t n)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		Elf *e = fd >= 0 ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
		unsigned seen = 0;
		bool got = e && elf_kind(e) == ELF_K_ELF && each_symbol(e, unwinder_of, &seen);

		if (e)
			elf_end(e);
		if (fd >= 0)
			close(fd);
		if (got)
			return (int)i;
	}
	return -1;
}
