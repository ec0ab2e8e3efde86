/* --debuginfo PATH, repeatable, for attach, run and symbols: collected
 * while the options are parsed, handed to the lookup once they all are. */
#include <stdio.h>
#include "cli/cli.h"
#include "symbols/debuginfo.h"

#define MAX_DEBUGINFO 32

static const char *paths[MAX_DEBUGINFO];
static size_t n_paths;

int sp_cli_debuginfo_add(const char *path)
{
	if (n_paths == MAX_DEBUGINFO) {
		fprintf(stderr, "spanprobe: --debuginfo: at most %d paths\n", MAX_DEBUGINFO);
		return -1;
	}
	paths[n_paths++] = path;
	return 0;
}

int sp_cli_debuginfo_apply(void)
{
	char err[1024];

	if (sp_debuginfo_set_paths(paths, n_paths, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "spanprobe: %s\n", err);
	return -1;
}
