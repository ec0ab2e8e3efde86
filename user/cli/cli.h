/* Subcommand entry points; each takes its own argv (argv[0] is the
 * subcommand name) and returns the process exit status. */
#ifndef SPANPROBE_CLI_H
#define SPANPROBE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

int sp_cmd_attach(int argc, char **argv);
int sp_cmd_run(int argc, char **argv);
int sp_cmd_symbols(int argc, char **argv);
int sp_cmd_dump(int argc, char **argv);
int sp_cmd_stats(int argc, char **argv);
/* --version [--json]: argv[0] is "--version" */
int sp_cmd_version(int argc, char **argv);
/* `symbols --usdt`: the USDT probes of the objects of pid (> 0) or of
 * binary, as text or JSON on stdout; the exit status. */
int sp_list_usdt(pid_t pid, const char *binary, bool json);

/* "5ms", "1s", "250us", "10ns", "0": 0 or -1 when malformed. A bare
 * number is taken as nanoseconds only when it is 0. */
int sp_parse_duration(const char *s, uint64_t *ns);

/* --debuginfo PATH (repeatable): collect each while parsing, then apply
 * them (a path that cannot be read is an error on stderr). 0 or -1. */
int sp_cli_debuginfo_add(const char *path);
int sp_cli_debuginfo_apply(void);

#endif
