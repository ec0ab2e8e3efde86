/*
 * Where an object's separate debug information is: production binaries
 * are stripped and their DWARF and .symtab kept apart (issue 12). The
 * places are searched in the order perf and gdb use, and a file is only
 * ever taken when it is provably the object's own.
 */
#ifndef SPANPROBE_DEBUGINFO_H
#define SPANPROBE_DEBUGINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <gelf.h>

enum sp_dbg_source {
	SP_DBG_NONE = 0,
	SP_DBG_OPTION,     /* --debuginfo FILE, or a file under --debuginfo DIR */
	SP_DBG_BUILD_ID,   /* /usr/lib/debug/.build-id/xx/yyyy.debug */
	SP_DBG_DEBUGLINK,  /* .gnu_debuglink: beside the object, in .debug/,
	                    * or under /usr/lib/debug/DIR */
	SP_DBG_DEBUGINFOD, /* fetched from DEBUGINFOD_URLS */
};

#define SP_BUILD_ID_HEX 129 /* 64 bytes at most, in hex, and the NUL */

/* What the lookup found for one object. */
struct sp_debuginfo {
	enum sp_dbg_source source;
	char *path;          /* the debug file, to open; NULL if none */
	char build_id[SP_BUILD_ID_HEX]; /* the object's; "" if it has none */
	/* Why nothing was taken, when something was considered: a refused
	 * candidate ("P: build-id X differs from the object's Y"), or
	 * debuginfod's failure. "" otherwise. */
	char why[512];
};

/* --debuginfo PATH (a debug file or a directory), searched first, in
 * order. The strings are not copied. 0, or -1 with err naming a path
 * that cannot be read. */
int sp_debuginfo_set_paths(const char *const *paths, size_t n, char *err,
			   size_t errlen);

/* Whether --debuginfo was given: then every object is looked up, even
 * one that carries its own debug sections. */
bool sp_debuginfo_forced(void);

/* Looks for the debug file of the object the process sees as path and
 * spanprobe opens as open_path (through /proc/PID/root for a process in
 * a container: the standard places are looked for under that root
 * first), elf being that object, open. Order: --debuginfo; build-id
 * directories; .gnu_debuglink (CRC checked); debuginfod. A candidate
 * whose build-id is not the object's is refused, with both ids in a
 * warning on stderr, and the search goes on. Results are kept per
 * open_path until sp_debuginfo_reset: a second lookup costs nothing and
 * warns no more. Never NULL (out of memory: an empty result). */
const struct sp_debuginfo *sp_debuginfo_find(const char *path,
					     const char *open_path, Elf *elf);

/* What resolution calls: the lookup of sp_debuginfo_find for the
 * executable when it lacks .debug_info or .symtab (or whatever it has,
 * when --debuginfo was given). A shared library is looked for in the
 * --debuginfo paths only: the debug files distributions install for
 * their libraries (libc6-dbg, *-dbgsym) would hand every glob of a
 * symbol list thousands of internal names to match (libc's regex has a
 * merge_state_array), and debuginfod would fetch one per library at
 * every attach. NULL when not looked up or not openable (resolution
 * reports that itself). */
const struct sp_debuginfo *sp_debuginfo_for(const char *path, const char *open_path,
					    bool executable);

/* After the lookups: a --debuginfo FILE that no object took is an error
 * naming its build-id and that of the object looked up first (the
 * executable). 0, or -1 with err set. */
int sp_debuginfo_check_used(char *err, size_t errlen);

/* "--debuginfo", "build-id directory", ".gnu_debuglink", "debuginfod",
 * or NULL for none. */
const char *sp_debuginfo_source_name(enum sp_dbg_source s);

/* The object's GNU build-id in hex into buf ("" if none); its length in
 * bytes. */
size_t sp_build_id_hex(Elf *elf, char *buf, size_t len);

/* Forgets the cached lookups, the paths and the debuginfod state. */
void sp_debuginfo_reset(void);

#endif
