/*
 * What unwinding can do in an object, for choosing exit probes. A
 * uretprobe swaps a frame's return address for the kernel's trampoline;
 * an exception or a panic unwinding through that frame makes the unwinder
 * look the trampoline up, find no unwind table and abort the target. It
 * is harmless where no unwinding can start at all, and on code that no
 * unwind table covers (the unwinder stops there with or without it).
 */
#ifndef SPANPROBE_UNWIND_FACTS_H
#define SPANPROBE_UNWIND_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <gelf.h>
#include <elfutils/libdw.h>
#include "symbols/exit_sites.h"

/* The unwinder entry through which exceptions or panics start in this
 * object, or NULL when none can: an import of _Unwind_RaiseException or
 * _Unwind_Resume_or_Rethrow (libstdc++, Rust built with panic = "unwind"),
 * any __cxa_throw / __cxa_rethrow (C++), or the unwinder linked in
 * statically next to exception tables. libgcc_s defines the unwinder but
 * starts nothing by itself; a Rust panic = "abort" build and plain C
 * import none of it. */
const char *sp_object_raiser(Elf *e);

/* A Rust object: it defines rust_eh_personality (panic = "abort" builds
 * too: the standard library is always compiled for unwinding). */
bool sp_object_is_rust(Elf *e);

/* The object's .eh_frame (what the runtime unwinder reads), through libdw. */
struct sp_unwind_table {
	bool has_eh_frame;
	Dwarf_CFI *cfi;  /* NULL: none, or unreadable */
	int no_match;    /* libdw's error code for "no FDE here" */
};

/* NULL only when out of memory. */
struct sp_unwind_table *sp_unwind_table_open(Elf *e);
void sp_unwind_table_free(struct sp_unwind_table *t);

/* Whether an unwind table entry covers any of the n code ranges: 1 yes,
 * 0 none (code built with -fno-asynchronous-unwind-tables, hand-written
 * assembly: nothing unwinds through it, the unwinder stops there), -1
 * unknown (the table cannot be read: assume yes). */
int sp_code_has_cfi(const struct sp_unwind_table *t, const struct sp_code_range *r, size_t n);

/* The first of n objects (paths to open) that starts unwinds, its index,
 * with *sym the unwinder entry it uses; -1 when none does. Unreadable
 * files are skipped: their own functions are not probed either. */
int sp_objects_raiser(const char *const *paths, size_t n, const char **sym);

/* The first of n objects that defines the unwinder functions the unwind
 * guard hooks (_Unwind_RaiseException, _Unwind_Resume_or_Rethrow,
 * _Unwind_ForcedUnwind, _Unwind_Resume, _Unwind_SetIP): libgcc_s, or a
 * program with libgcc_eh linked in; -1 when none does. */
int sp_objects_unwinder(const char *const *paths, size_t n);

#endif
