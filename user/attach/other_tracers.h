/*
 * Is another tracer already probing the process we are about to trace?
 * Then every probe fires twice: the target pays double and both tracers
 * see their calls. Found from the kernel's own BPF links, so that a
 * tracer killed with SIGKILL (whose links the kernel removed) is never
 * reported, as a lock file would be.
 */
#ifndef SPANPROBE_OTHER_TRACERS_H
#define SPANPROBE_OTHER_TRACERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "symbols/symbols.h"

struct sp_other_tracer {
	pid_t owner;        /* a process holding the links; 0 if none found */
	char comm[16];      /* its name */
	size_t links;       /* links of that owner that probe the target */
	bool by_pid;        /* one of them names the target's pid (else they
			     * are perf-event uprobes on the same functions,
			     * which may filter on another process) */
};

/* Uprobe links that probe tgid: uprobe_multi (and session) links created
 * for it, and perf-event uprobes and uprobe_multi links for every process
 * on an entry point of funcs (a perf-event link does not say which process
 * it filters on: it may be another process running the same binary).
 * tgid 0: we probe the files of funcs for every process (attach --exe),
 * so any link on one of our entry points counts, whatever its pid. Grouped by owning process, at most max of
 * them in out; returns how many owners were found, or -1 (err set) when
 * the links cannot be listed. */
int sp_find_other_tracers(pid_t tgid, const struct sp_func_set *funcs,
			  struct sp_other_tracer *out, size_t max,
			  char *err, size_t errlen);

#endif
