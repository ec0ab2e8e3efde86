/*
 * libFuzzer harness: symbol resolution on a corrupted binary. The input is
 * written to a memfd and resolved as a program (sp_resolve with pid 0)
 * against patterns that match every function, so that everything runs:
 * ELF and symbol tables (libelf), demangling, exit-site disassembly
 * (capstone) of every function. A rejected binary must come with an error
 * naming it.
 */
#include "fuzz_common.h"
#include "symbols/symbols.h"
#include "resolve/resolve.h"

static struct sp_pattern_list pats;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char list[] = "root main\nspan *\n";
	char err[256];

	(void)argc;
	(void)argv;
	if (sp_symlist_parse_buf("fuzz.syms", list, sizeof(list) - 1, &pats, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512] = "";
	int fd = fuzz_memfd(data, size, path, sizeof(path));
	struct sp_func_set set = { 0 };

	for (size_t i = 0; i < pats.n; i++)
		pats.v[i].matches = 0;
	if (sp_resolve(0, path, &pats, SP_EXIT_AUTO, &set, err, sizeof(err))) {
		fuzz_check_err("elf", err, sizeof(err), path);
	} else {
		for (size_t i = 0; i < set.n; i++) {
			const struct sp_func *f = &set.v[i];

			if (!f->raw || !f->demangled || !f->object || (f->n_exit && !f->exit_offsets)) {
				fprintf(stderr, "elf: function %zu incompletely resolved\n", i);
				abort();
			}
			(void)strlen(f->raw);
			(void)strlen(f->demangled);
			if (f->problem)
				(void)strlen(f->problem);
		}
		sp_func_set_free(&set);
	}
	close(fd);
	return 0;
}
