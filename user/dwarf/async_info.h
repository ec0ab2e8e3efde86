/*
 * What the Rust async analysis finds (async_dwarf.h has the entry points
 * that fill and read it): polls, their futures' nested nodes, the async
 * fns DWARF knows. Types only, so that the parts of the analysis can
 * share them without depending on its top (async_dwarf.c).
 */
#ifndef SPANPROBE_ASYNC_INFO_H
#define SPANPROBE_ASYNC_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "symbols/symbols.h"

/* At most this many nested nodes per root future; more sets truncated. */
#define SP_ASYNC_MAX_NODES 256

/* A field of a future's Unresumed variant: one argument of the async fn
 * (or one captured variable of the async block). Offsets are absolute in
 * the root future for nodes, relative to the future for polls. Their
 * bytes stay in place for the whole life of the future, so they tell one
 * instance from the next when a slot is reused (loop iterations). */
struct sp_async_field {
	char *name;
	uint32_t off, size;
	/* what `args` can show of it (polls only): SP_AFIELD_NONE, an
	 * integer (int_size bytes), a string (&str, String: its pointer and
	 * length at ptr_off and len_off in the field) or a length (slices,
	 * Vec: len_off) */
	uint8_t show;
	uint8_t int_size;
	bool is_signed;
	uint32_t ptr_off, len_off;
};
enum { SP_AFIELD_NONE = 0, SP_AFIELD_INT, SP_AFIELD_STR, SP_AFIELD_LEN };

enum sp_async_node_kind {
	/* a nested async fn/block future: off/size = its __state */
	SP_ANODE_COROUTINE,
	/* an enum wrapping futures, e.g. MaybeDone<F> of join!/try_join!,
	 * Option<F>: off/size = its tag, which is an explicit artificial
	 * member or a niche inside one of its variants */
	SP_ANODE_MAYBE_DONE,
	/* a pointer to a dyn Future (Pin<Box<dyn Future>>, &mut dyn Future):
	 * off = the data pointer, equal to the pointed-to future's `self`
	 * when its own (out-of-line) poll runs; size = 8 */
	SP_ANODE_DYN_BOX,
	/* tokio's JoinHandle<T>: off = its `raw` task pointer; size = 8 */
	SP_ANODE_JOIN_HANDLE,
	/* an owning pointer to futures (Box<T>, Pin<Box<T>>, the Some of an
	 * Option<Pin<Box<T>>>): off = the pointer, size = 8. A hop: the
	 * nodes inside T have their offsets in T (their space is this
	 * node), valid while the pointer is not null */
	SP_ANODE_BOX,
};

/* [lo, hi], inclusive. */
struct sp_async_range {
	uint64_t lo, hi;
};

/* A node is valid while its parent is valid and the parent's value (the
 * root's state for parent -1, else nodes[parent]'s state or tag) is in
 * one of guard[] -- or, with guard_negate, in none of them (the untagged
 * variant of a niche-encoded enum: valid unless the niche holds one of
 * the other variants' values).
 *
 * Each await's __awaitee is its own node, even when two awaits put the
 * same future type at the same offset (two instances, one after the
 * other). A local or captured variable kept across several awaits (a
 * JoinHandle, the MaybeDone tuple of join!) is one node whose guard lists
 * all those Suspend states. */
struct sp_async_node {
	char *name;          /* coroutines: named like polls (below); the
	                      * other kinds: the DWARF type name */
	char *path;          /* member path from the parent's object, e.g.
	                      * "__awaitee" or "futures.__0.Future.__0" */
	enum sp_async_node_kind kind;
	int parent;          /* index into nodes[]; -1: the root future */
	struct sp_async_range *guard;
	size_t n_guard;
	bool guard_negate;
	/* the SP_ANODE_BOX node whose pointee holds it (its offsets are in
	 * that pointee), -1: the root future itself */
	int space;
	uint8_t hops;        /* SP_ANODE_BOX nodes between the root and it */
	uint32_t base;       /* offset of the object in its space */
	uint32_t obj_size;   /* its byte size (future size for coroutines) */
	uint32_t off;        /* offset of the state/tag/pointer in its space */
	uint8_t size;        /* its size in bytes: 1, 2, 4 or 8 */
	bool is_block;       /* coroutine of an async block */
	struct sp_async_field *args; /* coroutines: Unresumed fields,
	                              * absolute offsets */
	size_t n_args;
	/* coroutines awaited directly (a parent's __awaitee): locals the
	 * parent holds across that await (a loop's iterator, an
	 * accumulator), in the parent's space. They cannot change while
	 * the parent is suspended on this future, so a change means the
	 * parent ran past the await: one instance from the next when a
	 * loop awaits equal arguments in the same slot. */
	struct sp_async_field *held;
	size_t n_held;
};

enum sp_async_reg { SP_AREG_RDI = 0, SP_AREG_RSI = 1 };

/* One out-of-line poll function of an async fn or block. */
struct sp_async_poll {
	char *name;          /* the path its symbols demangle to, without the
	                      * closure part: "app::handler",
	                      * "<app::Src as app::Source>::read",
	                      * "app::main::{async_block#0}"; with neither
	                      * DWARF types nor line tables, the demangled
	                      * symbol itself ("app::handler::{{closure}}") */
	char *linkage_name;  /* DW_AT_linkage_name, else the symbol; NULL
	                      * when neither is known */
	char *symbol;        /* ELF symbol at low_pc as in the file (with any
	                      * .llvm.N suffix), NULL if none */
	uint64_t low_pc, file_offset, size;
	enum sp_async_reg self_reg; /* RSI when Poll<T> comes back through a
	                             * hidden pointer (sret) */
	uint32_t state_off;  /* __state in the future (self + state_off) */
	uint8_t state_size;
	uint32_t future_size; /* 0 when unknown (no DWARF types) */
	/* When this future is a tokio task (tokio::spawn), its offset in the
	 * task cell: self == JoinHandle.raw + task_cell_off, which links a
	 * SP_ANODE_JOIN_HANDLE node of the spawner to this poll's span.
	 * UINT32_MAX when not spawned through tokio or unknown. */
	uint32_t task_cell_off;
	bool is_block;
	bool from_dwarf;     /* layout from DWARF types, not disassembly */
	/* not a coroutine's poll: a hand-written Future's (`<T as
	 * Future>::poll`, e.g. hyper's connection task), listed in
	 * sp_async_info.plain because its future holds async fns a
	 * pattern may name, by value or behind a Box; it has no state
	 * (state_size 0) and no arguments */
	bool plain;
	struct sp_async_field *args; /* Unresumed fields, offsets in self */
	size_t n_args;
	/* where its Poll<Result<..>> says Ready(Err(_)); n 0: not a Result */
	struct sp_result_err result_err;
	struct sp_async_node *nodes; /* breadth first: parents come before
	                              * their children */
	size_t n_nodes;
	bool truncated;      /* more than SP_ASYNC_MAX_NODES nested nodes */
};

struct sp_async_reject {
	char *name;          /* demangled symbol, or the DWARF name */
	uint64_t low_pc;
	char *why;
};

/* An async fn or block whose coroutine type the DWARF describes, polled
 * out of line or not: what a pattern may name even when nothing of it
 * can be attached to or read. */
struct sp_async_known {
	char *name;          /* spelled as sp_async_poll.name */
	uint32_t n_suspend;  /* its Suspend variants (await points); 0: it
	                      * never suspends, so it runs to completion
	                      * inside the poll that starts it */
};

struct sp_async_info {
	struct sp_async_poll *polls; /* sorted by low_pc */
	size_t n;
	/* out-of-line polls of hand-written futures that hold coroutines
	 * (sp_async_poll.plain): carriers only, never spans of their own */
	struct sp_async_poll *plain;
	size_t n_plain;
	/* sorted by name, one entry per name (the most await points among
	 * its instances); empty without DWARF types */
	struct sp_async_known *known;
	size_t n_known;
	bool has_types;      /* false: line tables only, or no DWARF at all:
	                      * polls come from disassembly and have no
	                      * nested nodes */
	bool has_dwarf;      /* the object has .debug_info for Rust code */
	/* split DWARF (split-debuginfo): units whose .dwo/.dwp was read,
	 * and skeletons whose split unit libdw could not find or read */
	size_t split_units, split_missing;
	/* Candidates (closures by name, or DWARF async polls without
	 * types) whose code showed no coroutine state dispatch: ordinary
	 * closures, mostly. */
	struct sp_async_reject *rejected;
	size_t n_rejected;
};

#endif
