/* One tracing session: probes attached to a process, the event loop that
 * drains them into spans, and the summary at the end. */
#ifndef SPANPROBE_TRACE_SESSION_H
#define SPANPROBE_TRACE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "attach/attach.h"
#include "sinks/sinks.h"
#include "symbols/symbols.h"
#include "resolve/resolve.h"

struct sp_trace_opts {
	const char *symbols;
	const char *output;     /* NULL: trees on stdout */
	uint64_t min_span_ns;
	uint64_t min_query_ns;
	uint64_t duration_ns;   /* 0: until stopped */
	bool strict;
	enum sp_attach_mode attach_mode; /* the best mode to try first */
	uint32_t ring_bytes;    /* 0: the default ring buffer size */
	bool stats;             /* --stats: per-symbol table at exit */
	bool expand;            /* --expand: trees without collapsed siblings */
	bool verbose;           /* -v: every object without symbols named */
	bool prune_advice;      /* --prune-advice: the symbol list without
				 * what never mattered */
	bool redact;            /* --redact: literals out of captured strings */
	enum sp_exit_policy exit_policy;
	struct sp_export_opts exports; /* --micromegas, --otlp, --perfetto */
	const char **exes;      /* attach --exe FILE...: every process mapping them */
	size_t n_exes;
	bool follow;            /* -p PID --follow: PID and the processes it forks */
	size_t max_procs;       /* 0: no limit; past it, processes are counted */
};

struct sp_session;

/* Resolves the symbols (in the running pid, in `binary` for a process
 * about to exec it, or in o->exes with pid 0), attaches, opens the sinks.
 * Prints errors itself. */
struct sp_session *sp_session_start(pid_t pid, const char *binary,
				    const struct sp_trace_opts *o);
/* Drains events until a signal, the duration, an exec or the target's
 * exit. For a child (run mode) returns 1 once *status holds its wait
 * status, 0 if it is still running. */
int sp_session_loop(struct sp_session *s, bool is_child, int *status);
/* Flushes, prints the summary, releases everything. 0 if all went out. */
int sp_session_finish(struct sp_session *s);

/* Set by the SIGINT/SIGTERM handler. */
extern volatile int sp_stop_signal;
void sp_install_stop_handlers(void);

#endif
