/*
 * One traced process: its span assembly, held async queries and query
 * filter, its identity (pid, exe, start time) and the flush of what it
 * leaves open. A session traces one (attach -p, run) or many (attach
 * --exe, --follow), each with its own pipeline, so that nothing of one
 * process is ever mixed into another.
 */
#ifndef SPANPROBE_TRACED_PROC_H
#define SPANPROBE_TRACED_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "attach/attach.h"
#include "attach/lib_follow.h"
#include "spans/async_queries.h"
#include "spans/query_filter.h"
#include "spans/span_assembler.h"

struct sp_traced_proc;

/* A kept query of process p. */
typedef void (*sp_proc_kept_fn)(void *arg, struct sp_traced_proc *p,
				struct sp_span *spans, size_t n);

/* What every process's pipeline shares. */
struct sp_proc_ctx {
	const struct sp_asm_sym *syms;
	size_t n_syms;
	const struct sp_func_set *funcs;
	struct sp_attach *att;
	uint64_t min_span_ns, min_query_ns;
	uint64_t spawn_hold_ns;
	bool redact;        /* --redact: literals of captured SQL replaced */
	sp_proc_kept_fn kept;
	void *arg;
};

struct sp_traced_proc {
	pid_t pid;
	int pidfd;          /* -1: gone before it was seen */
	char *exe;
	uint64_t start_ns;  /* wall-clock Unix ns */
	uint64_t start_boot; /* BPF's start_boottime; 0: not known from BPF */
	uint64_t serial;    /* this life of the pid, unique in the session */
	struct sp_assembler *asm_;
	struct sp_held *held;
	struct sp_filter *filter;
	struct sp_lib_follow *libs; /* objects it maps later (-p, run) */
	uint64_t tramp_lo, tramp_hi;
	bool rescan;        /* its dynamic linker changed the link map */
	const struct sp_proc_ctx *ctx;
};

/* Totals over processes, the ones gone included. */
struct sp_proc_totals {
	struct sp_asm_stats as;
	struct sp_filter_stats fs;
	struct sp_held_stats hs;
};

/* A process first seen now. Its identity is read from /proc; exe_hint
 * names it when it is gone already (or about to exec: run). start_boot
 * (0: unknown) is its start time as BPF read it: it names a process gone
 * already, and a pid that /proc shows started at another time is someone
 * else's now (pidfd -1: gone). NULL when out of memory. */
struct sp_traced_proc *sp_proc_new(const struct sp_proc_ctx *c, pid_t pid,
				   const char *exe_hint, bool read_exe, uint64_t start_boot);
/* Whether a process that started at start_boot (BPF's clock) is another
 * life than p's: a reused pid. */
bool sp_proc_other_life(const struct sp_traced_proc *p, uint64_t start_boot);
/* One ring-buffer record of this process. */
void sp_proc_record(struct sp_traced_proc *p, const void *data, size_t len);
/* The calls and futures it still has open, cut off at now and flagged
 * incomplete, then every query it holds. live: its threads' stacks are
 * read too; a process that exited or exec'd has none left (its exit and
 * exec hooks ended them), and after an exec the threads found would be
 * the new program's. */
void sp_proc_flush(struct sp_traced_proc *p, uint64_t now, bool live);
/* Adds its figures to t. */
void sp_proc_add_totals(const struct sp_traced_proc *p, struct sp_proc_totals *t);
void sp_proc_free(struct sp_traced_proc *p);

#endif
