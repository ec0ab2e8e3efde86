/*
 * Attach-time analysis of Rust async code: where each out-of-line poll
 * function of an async fn / async block is, where its future keeps the
 * coroutine state byte, and which futures it holds nested by value (the
 * ones release builds inline into it, whose progress can only be seen by
 * reading the root future's memory).
 *
 * The coroutine state of a future is 0 Unresumed (not started: a span
 * begins at the first poll that sees it), 1 Returned (the span is over),
 * 2 Panicked, 3+k Suspend{k}. rustc fixes these values; only where the
 * state lives is per type, hence this analysis.
 *
 * Sources, best first:
 *   - DWARF types (debug = true / 2 / "full"; not "limited", which in
 *     rustc 1.95 emits no type at all): everything below, read from the
 *     object or from its separate debug file (symbols/debuginfo.h).
 *   - no DWARF types (debug = "line-tables-only", or none): only the
 *     out-of-line polls, recognised by name (DWARF {async_fn#N} subprogram,
 *     else a {{closure}} / {closure#N} symbol) and by their code (see
 *     async_disasm.h); self register and state offset come from the
 *     state-dispatch instruction. No future size, arguments or nested tree:
 *     those need DWARF types.
 *
 * x86-64 only (the self register is a SysV argument register).
 */
#ifndef SPANPROBE_ASYNC_DWARF_H
#define SPANPROBE_ASYNC_DWARF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "dwarf/async_info.h"

/* Analyses the ELF object at path. 0, or -1 with err set (unreadable,
 * not ELF, not x86-64, out of memory). An object with no async code is
 * not an error: out->n is 0. */
int sp_async_analyze(const char *path, struct sp_async_info *out, char *err,
		     size_t errlen);
/* The same with the DWARF (and, for an object stripped to .dynsym, the
 * .symtab) of debug_path, the object's separate debug file, already
 * checked to be its own (symbols/debuginfo.h); NULL: the object's own.
 * Code and file offsets always come from the object itself. */
int sp_async_analyze_debug(const char *path, const char *debug_path,
			   struct sp_async_info *out, char *err, size_t errlen);
void sp_async_info_free(struct sp_async_info *info);

/* The known entry named name, or NULL. */
const struct sp_async_known *sp_async_find_known(const struct sp_async_info *info,
						  const char *name);

/* Whether a node's guard accepts its parent's value. */
bool sp_async_guard_holds(const struct sp_async_node *n, uint64_t parent_value);

/* Decodes a copy of a root future (len bytes from `self` of p's poll):
 * value[i] = the state/tag/pointer of node i read from mem, active[i] =
 * node i is valid (every guard up to the root holds). A node whose bytes
 * lie outside mem is inactive. The arrays have p->n_nodes entries. */
void sp_async_eval(const struct sp_async_poll *p, const uint8_t *mem,
		   size_t len, uint64_t *value, bool *active);

/* Little-endian unsigned read of size (1..8) bytes; 0 if out of range. */
uint64_t sp_async_read(const uint8_t *mem, size_t len, uint32_t off,
		       uint32_t size);

/* Human-readable dump, for debugging. */
void sp_async_info_print(FILE *f, const struct sp_async_info *info);

#endif
