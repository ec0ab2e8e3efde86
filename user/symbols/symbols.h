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

/* What a symbol-list entry probes. */
enum sp_source {
	SP_SRC_FUNC = 0,       /* functions matching glob */
	SP_SRC_USDT_PAIR = 1,  /* "usdt P:START P:DONE": a span from start to done */
	SP_SRC_USDT_ERROR = 2, /* "error usdt P:NAME": fails the innermost
				* open USDT span, which ends there */
	SP_SRC_USDT_EVENT = 3, /* "event usdt P:NAME": an instant event in
				* the innermost open span */
};

/* How a Rust poll's Poll<Result<T, E>> says Poll::Ready(Err(_)), from
 * its DWARF (user/dwarf/poll_result.h); the BPF side evaluates it
 * (struct sp_poll_err_cfg in bpf/spanprobe.h). Every test must hold: a
 * test holds when the size bytes at off lie in one of the ranges, or,
 * with negate, in none (the untagged variant of a niche encoding). */
#define SP_RESULT_TESTS 2
#define SP_RESULT_RANGES 4
struct sp_result_test {
	uint32_t off;
	uint8_t size;
	bool negate;
	uint8_t n;
	uint64_t lo[SP_RESULT_RANGES], hi[SP_RESULT_RANGES];
};
struct sp_result_err {
	uint8_t n;    /* tests; 0: not known (the function is not flagged) */
	bool via_ptr; /* the Poll comes back through the hidden pointer */
	struct sp_result_test t[SP_RESULT_TESTS];
};

/* Opt-in captures: "NAME=argN:TYPE", "NAME=ret:TYPE" (enums in
 * bpf/spanprobe.h: SP_CAP_*), and "error=neg|null|VALUE". At most
 * SP_CAP_MAX per entry. */
struct sp_cap_decl {
	char *name;
	uint8_t src;   /* SP_CAP_ARG, SP_CAP_RET */
	uint8_t type;  /* SP_CAP_I64, SP_CAP_U64, SP_CAP_STR */
	uint8_t index; /* argN */
};

struct sp_pattern {
	char *glob;            /* functions; for USDT, "P:START" or "P:NAME" */
	enum sp_role role;
	char *file;
	int line;
	unsigned matches; /* filled by resolution */
	enum sp_source source;
	char *usdt_done;       /* "P:DONE" of a pair */
	struct sp_cap_decl caps[4];
	uint8_t n_caps;
	uint8_t err_cond;      /* SP_ERR_* */
	int64_t err_value;     /* for SP_ERR_EQ */
	char *text;            /* the entry as written after its keyword */
	bool want_args;        /* a bare "args": every parameter DWARF names */
	bool err_result;       /* "error=err": a Rust poll's Ready(Err(_)) */
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
	/* a uretprobe (or session) under the unwind guard: the unwinder's
	 * entries restore the real return addresses before it reads them
	 * (user/attach/unwind_guard.h) */
	SP_EXIT_GUARD = 2,
};

/* The exit is the kernel's return hijack (uretprobe or session). */
static inline int sp_exit_hijacks(int mode)
{
	return mode == SP_EXIT_URETPROBE || mode == SP_EXIT_GUARD;
}

struct sp_func {
	char *raw;          /* symbol as in the ELF */
	char *demangled;    /* demangled, hash and clone suffixes removed */
	char *object;       /* path as the process sees it */
	char *open_path;    /* path to open and attach (through /proc/PID/root) */
	uint64_t addr;      /* st_value */
	uint64_t size;      /* st_size */
	uint64_t offset;    /* file offset of the entry */
	/* The entry probe goes at offset + entry_shift: past leading
	 * instructions the kernel would single-step (entry_place.h), where
	 * the stack pointer is entry_sp_delta bytes below the slot. */
	uint8_t entry_shift;
	uint16_t entry_sp_delta;
	enum sp_role role;
	int pattern;        /* index of the first pattern that matched */
	enum sp_exit_mode exit_mode;
	char *exit_why;     /* why that exit mode (for `symbols`) */
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
	/* A USDT source (pattern's source != SP_SRC_FUNC): probed through
	 * libbpf by provider and name, not by offset. */
	enum sp_source source;
	char *usdt_provider, *usdt_start, *usdt_done;
	/* Captures and error condition of its pattern (names borrowed from
	 * the pattern list, which outlives the function set). */
	struct sp_cap_decl caps[4];
	uint8_t n_caps;
	uint8_t err_cond;
	int64_t err_value;
	char *owned_names[4]; /* names `args` found in DWARF (caps point here) */
	/* `args` on the entry; on a Rust poll, captures read fields of the
	 * future's Unresumed variant (SP_CAP_FIELD), described here by
	 * capture index (enum sp_field_kind in bpf/spanprobe.h) */
	bool want_args;
	struct sp_field_decl {
		uint32_t off, ptr_off, len_off;
		uint8_t kind, size;
		bool is_signed;
	} fields[4];
	/* error=err on a Rust poll: Poll::Ready(Err(_)) fails the future */
	bool err_result;
	struct sp_result_err result_err; /* from the poll's DWARF */
	/* matched only as an async fn's name without its poll suffix
	 * ("app::handler" for app::handler::{{closure}}): kept only if the
	 * analysis finds it is that async fn's poll, as `symbols` says */
	bool by_fn_name;
};

/* Where an object's function names come from. */
enum sp_syms_src {
	SP_SYMS_SYMTAB = 0,   /* its own .symtab (and .dynsym) */
	SP_SYMS_DEBUG_SYMTAB, /* stripped to .dynsym: its debug file's .symtab */
	SP_SYMS_DYNSYM,       /* .dynsym only */
};

/* What the DWARF of a Rust object holds for the async analysis. */
enum sp_types_src {
	SP_TYPES_NOT_READ = 0, /* not analysed: no Rust async code */
	SP_TYPES_NONE,         /* no DWARF for its Rust code */
	SP_TYPES_LINES,        /* DWARF without types: debug = "limited" or
	                        * "line-tables-only" */
	SP_TYPES_FULL,         /* DWARF types: debug = true ("full") */
};

/* One object read by resolution, and where its symbols and DWARF came
 * from (what `symbols` reports). */
struct sp_object_src {
	char *path;           /* as the process sees it */
	char *build_id;       /* hex; "" when it has none */
	char *debug_file;     /* its separate debug file; NULL if none */
	const char *debug_source; /* how it was found (debuginfo.h); NULL */
	char *debug_why;      /* why none was taken; NULL: nothing to say */
	enum sp_syms_src syms;
	enum sp_types_src types;
	size_t split_units, split_missing; /* split DWARF (.dwo, .dwp) */
};

struct sp_func_set {
	struct sp_func *v;
	size_t n;
	/* Libraries skipped because they define no function (data-only,
	 * like libicudata): nothing to trace there, so no warning; the
	 * caller may name them (-v) or count them. */
	char **no_funcs;
	size_t n_no_funcs;
	struct sp_object_src *objects; /* in the order they were read */
	size_t n_objects;
	/* The object defining the unwinder (open path): set when a function
	 * has SP_EXIT_GUARD, the guard hooks go there. */
	char *unwinder;
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
