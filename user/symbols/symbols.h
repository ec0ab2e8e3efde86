/*
 * Symbol list file -> patterns -> resolved functions in ELF objects: the
 * types, the symbol-list parser (symbol_list.c) and name matching
 * (demangle.c). Resolution itself: resolve/resolve.h.
 */
#ifndef SPANPROBE_SYMBOLS_H
#define SPANPROBE_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sp_role { SP_ROLE_SPAN = 0, SP_ROLE_ROOT = 1 };

struct sp_pattern {
	char *glob;
	enum sp_role role;
	char *file;
	int line;
	unsigned matches; /* filled by resolution */
};

struct sp_pattern_list {
	struct sp_pattern *v;
	size_t n;
};

/* 0 on success; -1 with "file:line: message" (or "file: strerror") in err. */
int sp_symlist_parse_file(const char *path, struct sp_pattern_list *out,
			  char *err, size_t errlen);
int sp_symlist_parse_buf(const char *name, const char *buf, size_t len,
			 struct sp_pattern_list *out, char *err, size_t errlen);
void sp_symlist_free(struct sp_pattern_list *l);

/* How the end of a call is observed. */
enum sp_exit_mode {
	/* uretprobe: cheapest, but it rewrites the return address, so an
	 * exception or panic unwinding through the frame aborts the target */
	SP_EXIT_URETPROBE = 0,
	/* uprobes on the function's ret and tail-jump sites: nothing is
	 * rewritten, unwinding stays safe, each ret is single-stepped */
	SP_EXIT_RETSITES = 1,
};

struct sp_func {
	char *raw;          /* symbol as in the ELF */
	char *demangled;    /* demangled, hash and clone suffixes removed */
	char *object;       /* path as the process sees it */
	char *open_path;    /* path to open and attach (through /proc/PID/root) */
	uint64_t addr;      /* st_value */
	uint64_t size;      /* st_size */
	uint64_t offset;    /* file offset of the entry */
	/* The entry probe goes at offset + entry_shift: past a leading
	 * endbr64, which the kernel would single-step (probe_cost.h). */
	uint8_t entry_shift;
	enum sp_role role;
	int pattern;        /* index of the first pattern that matched */
	enum sp_exit_mode exit_mode;
	uint64_t *exit_offsets; /* file offsets of ret/tail-jump sites */
	size_t n_exit;
	char *problem;      /* NULL if attachable, else why it cannot be */
	/* An out-of-line poll of a Rust async fn or block: its span is the
	 * future's life, told by the state at self + state_off. */
	bool is_async;
	bool self_in_rsi;   /* Poll<T> comes back through a hidden pointer */
	uint8_t state_size;
	uint32_t state_off;
	/* A tokio task's poll: self == JoinHandle.raw + task_cell_off. */
	bool spawned;
	uint32_t task_cell_off;
	/* A carrier: a poll whose future holds, inlined, async fns that a
	 * pattern names (or JoinHandles of spawned tasks that one names):
	 * probed for them even when no pattern names it (pattern == -1,
	 * and then it has no span of its own). NULL otherwise. */
	struct sp_nested_plan *nested;
	/* its queries are rebuilt by userspace (user/spans/async_queries.c):
	 * carriers, and spawned tasks that may link to their spawner */
	bool held;
	/* matched only as an async fn's name without its poll suffix
	 * ("app::handler" for app::handler::{{closure}}): kept only if the
	 * analysis finds it is that async fn's poll, as `symbols` says */
	bool by_fn_name;
};

struct sp_func_set {
	struct sp_func *v;
	size_t n;
};

/* Demangles (C++, Rust legacy, Rust v0) and normalises: drops Rust's
 * ::h<16 hex> hash and clone suffixes (.llvm.N, .cold, .isra.N,
 * .constprop.N, .part.N, ...); Rust v0's "<crate::Type>::method" is
 * spelled "crate::Type::method" as legacy mangling has it. C++ names keep
 * their parameter list: "demo::outer(int)". Returns malloc'd text; the
 * raw name (minus clone suffixes) when it is not mangled. */
char *sp_demangle(const char *raw);

/* Length of raw without its trailing clone suffixes; *cold (may be NULL)
 * tells whether one of them was .cold[.N], i.e. raw names the split-off
 * cold part of a function rather than a function one can call. */
size_t sp_clone_stripped_len(const char *raw, bool *cold);

/* Shell glob (fnmatch) against the normalised demangled name or the raw
 * symbol. */
bool sp_pattern_matches(const char *glob, const char *raw, const char *demangled);

#endif
