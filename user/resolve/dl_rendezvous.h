/*
 * The dynamic linker's debugger rendezvous: glibc's ld.so calls
 * _dl_debug_state (the r_brk of struct r_debug) before and after every
 * change of the link map, i.e. on every dlopen and dlclose. A probe there
 * tells spanprobe when to look for new and vanished objects.
 */
#ifndef SPANPROBE_DL_RENDEZVOUS_H
#define SPANPROBE_DL_RENDEZVOUS_H

#include <stdbool.h>
#include <stdint.h>
#include "symbols/proc_maps.h"

/* Whether the object's file name looks like a dynamic linker (ld-*.so*,
 * ld.so*): only those are opened to look for the rendezvous. */
bool sp_dl_is_linker_name(const char *path);
/* The index in m of the dynamic linker and the file offset of its
 * _dl_debug_state. -1 when the objects hold no dynamic linker (a static
 * executable) or it has no such symbol. */
int sp_dl_rendezvous(const struct sp_mapped_objects *m, uint64_t *offset);

#endif
