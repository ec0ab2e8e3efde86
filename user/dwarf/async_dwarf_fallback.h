/*
 * Rust async polls without DWARF types (async_dwarf_fallback.c).
 */
#ifndef SPANPROBE_ASYNC_DWARF_FALLBACK_H
#define SPANPROBE_ASYNC_DWARF_FALLBACK_H

#include "dwarf/async_dwarf_base.h"

struct sp_elf; /* symbols/elf_symbols.h */

int sp_adw_cmp_u64(const void *a, const void *b);
void sp_adw_name_symbols(struct scan *s, const struct sp_elf *elf);
void run_fallback(struct scan *s, const struct sp_elf *elf);

#endif
