/*
 * libFuzzer harness: the symbol-list parser (sp_symlist_parse_buf).
 * Accepted lists must be well formed (each entry a role and a non-empty
 * pattern without surrounding blanks or a comment); rejected ones must
 * come with an error naming the file. Patterns are also run through the
 * matcher, which sees them as fnmatch globs.
 */
#include <ctype.h>
#include "fuzz_common.h"
#include "symbols/symbols.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_pattern_list l;
	char err[512] = "";

	if (sp_symlist_parse_buf("fuzz.syms", (const char *)data, size, &l, err, sizeof(err))) {
		fuzz_check_err("symlist", err, sizeof(err), "fuzz.syms");
		if (l.n || l.v) {
			fprintf(stderr, "symlist: a rejected list left %zu entries\n", l.n);
			abort();
		}
		return 0;
	}
	if (l.n == 0) {
		fprintf(stderr, "symlist: accepted a list with no entry\n");
		abort();
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct sp_pattern *p = &l.v[i];
		size_t n = strlen(p->glob);

		if (!n || isspace((unsigned char)p->glob[0]) || isspace((unsigned char)p->glob[n - 1]) ||
		    strchr(p->glob, '#') || strchr(p->glob, '\n') ||
		    (p->role != SP_ROLE_ROOT && p->role != SP_ROLE_SPAN) || p->line < 1 ||
		    strcmp(p->file, "fuzz.syms") != 0) {
			fprintf(stderr, "symlist: malformed entry %zu: role %d line %d '%s'\n",
				i, p->role, p->line, p->glob);
			abort();
		}
		(void)sp_pattern_matches(p->glob, "_ZN4demo5Query3runEv", "demo::Query::run()");
	}
	sp_symlist_free(&l);
	return 0;
}
