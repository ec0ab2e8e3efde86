#include <string.h>
#include "resolve/dl_rendezvous.h"
#include "symbols/elf_symbols.h"

#define RENDEZVOUS "_dl_debug_state"

bool sp_dl_is_linker_name(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "ld-", 3) || !strncmp(base, "ld.so", 5);
}

/* glibc exports it in .dynsym (GLIBC_PRIVATE), so stripped loaders have it. */
static int find_in(const char *open_path, const char *display, uint64_t *offset)
{
	struct sp_elf e;
	char err[256];
	int rc = -1;

	if (sp_elf_open(&e, open_path, display, err, sizeof(err)))
		return -1;
	for (size_t i = 0; i < e.n && rc; i++)
		for (size_t k = 0; k < e.funcs[i].n_names && rc; k++)
			if (e.funcs[i].in_exec && !strcmp(e.funcs[i].names[k], RENDEZVOUS)) {
				*offset = e.funcs[i].offset;
				rc = 0;
			}
	sp_elf_close(&e);
	return rc;
}

int sp_dl_rendezvous(const struct sp_mapped_objects *m, uint64_t *offset)
{
	for (size_t i = 0; i < m->n; i++)
		if (sp_dl_is_linker_name(m->v[i].path) &&
		    find_in(m->v[i].open_path, m->v[i].path, offset) == 0)
			return (int)i;
	return -1;
}
