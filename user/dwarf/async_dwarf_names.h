/*
 * rustc's names in the Rust async analysis (async_dwarf_names.c).
 */
#ifndef SPANPROBE_ASYNC_DWARF_NAMES_H
#define SPANPROBE_ASYNC_DWARF_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dwarf/async_dwarf_base.h"

bool sp_adw_starts_with(const char *s, const char *p);
const char *sp_adw_die_name(Dwarf_Die *d);
bool is_poll_name(const char *n);
bool is_env_name(const char *n);
char *sp_adw_human_name(const char *ns, const char *last);
char *sp_adw_name_from_symbol(const char *dem, const char *dname);
char *sp_adw_display_name(const char *linkage, const char *ns, const char *dname);
void poll_key(char *buf, size_t len, const char *ns, const char *name);
uint64_t sp_adw_fnv1a(const char *s);

#endif
