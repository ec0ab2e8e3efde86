/*
 * Function symbols of one ELF object, as uprobes need them: a file offset
 * per function and one entry per address, whatever the number of names.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/grow.h"
#include "symbols/elf_symbols.h"
#include "base/errmsg.h"

/* One symbol table entry before deduplication. */
struct raw_sym {
	const char *name;
	uint64_t addr, size;
	unsigned rank; /* lower wins the primary name */
	size_t seq;    /* table order, to keep the sort stable */
	bool ifunc;
};

struct raw_vec {
	struct raw_sym *v;
	size_t n, cap;
};

static int raw_push(struct raw_vec *rv, const struct raw_sym *s)
{
	if (sp_grow((void **)&rv->v, &rv->cap, rv->n, sizeof(*rv->v)))
		return -1;
	rv->v[rv->n] = *s;
	rv->v[rv->n].seq = rv->n;
	rv->n++;
	return 0;
}

/* .symtab names are preferred (they are the fuller table and what the
 * developer sees in a debugger); globals over weak over local aliases. */
static unsigned sym_rank(bool dynsym, unsigned char bind)
{
	unsigned b = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;

	return (dynsym ? 3 : 0) + b;
}

static bool wanted(const GElf_Sym *s)
{
	unsigned char t = GELF_ST_TYPE(s->st_info);

	if (t != STT_FUNC && t != STT_GNU_IFUNC)
		return false;
	/* undefined (imports), absolute and common symbols are not code */
	if (s->st_shndx == SHN_UNDEF || s->st_shndx >= SHN_LORESERVE)
		return false;
	return s->st_size > 0 && s->st_value != 0;
}

static int read_table(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh,
		      struct raw_vec *rv)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t count = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
	bool dyn = sh->sh_type == SHT_DYNSYM;

	for (size_t i = 1; d && i < count; i++) {
		GElf_Sym s;
		const char *name;

		if (!gelf_getsym(d, (int)i, &s) || !wanted(&s))
			continue;
		name = elf_strptr(e, sh->sh_link, s.st_name);
		if (!name || !*name)
			continue;
		struct raw_sym r = {
			.name = name, .addr = s.st_value, .size = s.st_size,
			.rank = sym_rank(dyn, GELF_ST_BIND(s.st_info)),
			.ifunc = GELF_ST_TYPE(s.st_info) == STT_GNU_IFUNC,
		};
		if (raw_push(rv, &r))
			return -1;
	}
	return 0;
}

/* symtab_only: a debug file, whose .dynsym is an empty NOBITS copy. */
static int collect(Elf *e, bool symtab_only, struct raw_vec *rv, bool *has_symtab)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type != SHT_SYMTAB && (symtab_only || sh.sh_type != SHT_DYNSYM))
			continue;
		*has_symtab |= sh.sh_type == SHT_SYMTAB && sh.sh_size > sh.sh_entsize;
		if (read_table(e, scn, &sh, rv))
			return -1;
	}
	return 0;
}

/* The debug file's .symtab, for an object stripped to .dynsym. A debug
 * file that cannot be read costs its symbols only. */
static int collect_debug(struct sp_elf *o, const char *debug_path, struct raw_vec *rv)
{
	bool dummy = false;
	size_t before = rv->n;

	o->dbg_fd = open(debug_path, O_RDONLY | O_CLOEXEC);
	if (o->dbg_fd < 0)
		return 0;
	o->dbg_elf = elf_begin(o->dbg_fd, ELF_C_READ_MMAP, NULL);
	if (!o->dbg_elf || elf_kind(o->dbg_elf) != ELF_K_ELF)
		return 0;
	if (collect(o->dbg_elf, true, rv, &dummy))
		return -1;
	o->symtab_from_debug = rv->n > before;
	return 0;
}

static int cmp_raw(const void *a, const void *b)
{
	const struct raw_sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Adds name to the group unless the other table already gave it. */
static void add_name(struct sp_elf_func *f, const char *name)
{
	for (size_t i = 0; i < f->n_names; i++)
		if (strcmp(f->names[i], name) == 0)
			return;
	f->names[f->n_names++] = name;
}

/* Sorted raw symbols -> one function per address. */
static int group(struct sp_elf *o, const struct raw_vec *rv)
{
	size_t nf = 0;

	o->name_pool = malloc((rv->n ? rv->n : 1) * sizeof(*o->name_pool));
	o->funcs = calloc(rv->n ? rv->n : 1, sizeof(*o->funcs));
	if (!o->name_pool || !o->funcs)
		return -1;
	for (size_t i = 0; i < rv->n; i++) {
		const struct raw_sym *r = &rv->v[i];
		struct sp_elf_func *f = nf ? &o->funcs[nf - 1] : NULL;

		if (!f || f->addr != r->addr) {
			f = &o->funcs[nf++];
			f->names = o->name_pool + i;
			f->addr = r->addr;
			f->size = r->size;
		}
		f->ifunc |= r->ifunc;
		add_name(f, r->name);
	}
	o->n = nf;
	return 0;
}

/* Uprobes take file offsets; only code in an executable segment can
 * carry one. p_filesz (not p_memsz) because code must be in the file. */
static void locate(Elf *e, struct sp_elf_func *f, size_t n)
{
	size_t nph = 0;

	if (elf_getphdrnum(e, &nph))
		return;
	for (size_t k = 0; k < nph; k++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, (int)k, &ph) || ph.p_type != PT_LOAD ||
		    !(ph.p_flags & PF_X))
			continue;
		for (size_t i = 0; i < n; i++) {
			if (f[i].addr < ph.p_vaddr ||
			    f[i].addr - ph.p_vaddr > ph.p_filesz ||
			    f[i].size > ph.p_filesz - (f[i].addr - ph.p_vaddr))
				continue;
			f[i].offset = f[i].addr - ph.p_vaddr + ph.p_offset;
			f[i].in_exec = true;
		}
	}
}

/* The file mapped shared, not private as libelf maps it: the kernel
 * inserts every active uprobe of a file (ours of an earlier rescan,
 * another tracer's, one made for every process by attach --exe) into each
 * private mapping of it that may execute, read-only ones included, and the
 * code read here would show their int3s. A shared mapping gets none. */
Elf *sp_elf_begin_shared(int fd, void **map, size_t *size)
{
	struct stat st;
	void *m;

	*map = NULL;
	*size = 0;
	if (fstat(fd, &st) || st.st_size <= 0)
		return NULL;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return NULL;
	*map = m;
	*size = (size_t)st.st_size;
	return elf_memory(m, *size);
}

static int open_image(struct sp_elf *o, const char *path, const char *display,
		      char *err, size_t errlen)
{
	GElf_Ehdr eh;

	o->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0) {
		sp_set_err(err, errlen, "%s: %s", display, strerror(errno));
		return -1;
	}
	o->elf = sp_elf_begin_shared(o->fd, &o->map, &o->map_size);
	if (!o->elf || elf_kind(o->elf) != ELF_K_ELF || !gelf_getehdr(o->elf, &eh)) {
		sp_set_err(err, errlen, "%s: not an ELF file", display);
		return -1;
	}
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
		sp_set_err(err, errlen, "%s: not an executable or shared object",
			display);
		return -1;
	}
	o->image = (const uint8_t *)elf_rawfile(o->elf, &o->image_size);
	return 0;
}

int sp_elf_open(struct sp_elf *o, const char *path, const char *display,
		char *err, size_t errlen)
{
	return sp_elf_open_debug(o, path, NULL, display, err, errlen);
}

int sp_elf_open_debug(struct sp_elf *o, const char *path, const char *debug_path,
		      const char *display, char *err, size_t errlen)
{
	struct raw_vec rv = { 0 };

	memset(o, 0, sizeof(*o));
	o->fd = o->dbg_fd = -1;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		sp_set_err(err, errlen, "%s: libelf: %s", display, elf_errmsg(-1));
		return -1;
	}
	if (open_image(o, path, display, err, errlen))
		goto fail;
	if (collect(o->elf, false, &rv, &o->own_symtab) ||
	    (debug_path && !o->own_symtab && collect_debug(o, debug_path, &rv))) {
		sp_set_err(err, errlen, "%s: out of memory", display);
		goto fail;
	}
	if (rv.n == 0) {
		sp_set_err(err, errlen,
			"%s: no symbols (.symtab and .dynsym are empty)", display);
		free(rv.v);
		sp_elf_close(o);
		return SP_ELF_NO_FUNCS;
	}
	if (rv.n)
		qsort(rv.v, rv.n, sizeof(*rv.v), cmp_raw);
	if (group(o, &rv)) {
		sp_set_err(err, errlen, "%s: out of memory", display);
		goto fail;
	}
	free(rv.v);
	locate(o->elf, o->funcs, o->n);
	return 0;
fail:
	free(rv.v);
	sp_elf_close(o);
	return -1;
}

void sp_elf_close(struct sp_elf *o)
{
	if (o->elf)
		elf_end(o->elf);
	if (o->map)
		munmap(o->map, o->map_size);
	if (o->fd >= 0)
		close(o->fd);
	if (o->dbg_elf)
		elf_end(o->dbg_elf);
	if (o->dbg_fd >= 0)
		close(o->dbg_fd);
	free(o->funcs);
	free(o->name_pool);
	memset(o, 0, sizeof(*o));
	o->fd = o->dbg_fd = -1;
}

const uint8_t *sp_elf_bytes(const struct sp_elf *o, uint64_t offset,
			    uint64_t size)
{
	if (!o->image || offset > o->image_size || size > o->image_size - offset)
		return NULL;
	return o->image + offset;
}
