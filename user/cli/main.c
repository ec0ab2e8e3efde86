/* spanprobe: zero-code span tracing of running processes with uprobes. */
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "attach", sp_cmd_attach, "attach -p PID -s SYMBOLS [-o FILE] [options]" },
	{ "run", sp_cmd_run, "run -s SYMBOLS [-o FILE] [options] -- CMD [ARGS...]" },
	{ "symbols", sp_cmd_symbols, "symbols -s SYMBOLS (-p PID | BINARY) [--json]" },
	{ "dump", sp_cmd_dump, "dump FILE [--json | --perfetto OUT] [--expand]" },
	{ "stats", sp_cmd_stats, "stats FILE [--json] [--prune-advice -s SYMBOLS]" },
};

static int usage(FILE *f)
{
	fputs("usage: spanprobe COMMAND ...\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  spanprobe %s\n", commands[i].help);
	fputs("  spanprobe --version [--json]\n"
	      "  -h, --help     this text; `spanprobe COMMAND --help`: the options of one command\n"
	      "  --version      the version, libbpf's, and the kernel features found\n", f);
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		return usage(stdout);
	if (!strcmp(argv[1], "--version"))
		return sp_cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "spanprobe: unknown command '%s'\n", argv[1]);
	return usage(stderr);
}
