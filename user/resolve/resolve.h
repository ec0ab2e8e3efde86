/*
 * Resolution (resolve.c): every pattern of a symbol list against the ELF
 * objects of a process or a program, Rust async polls annotated from
 * their analysis (dwarf/), carriers given their nested read plans.
 */
#ifndef SPANPROBE_RESOLVE_H
#define SPANPROBE_RESOLVE_H

#include <sys/types.h>
#include "symbols/symbols.h"

enum sp_exit_policy { SP_EXIT_AUTO = 0, SP_EXIT_FORCE_URETPROBE, SP_EXIT_FORCE_RETSITES,
		      SP_EXIT_FORCE_GUARD,
		      /* auto where the guard cannot work (a debugger traces the
		       * process, several processes are traced): no guard */
		      SP_EXIT_AUTO_NO_GUARD };

/* Resolves every pattern against the executable and shared objects mapped
 * by pid (via /proc/PID/maps and /proc/PID/root), or against one binary
 * when pid == 0. Each function appears once even if several patterns or
 * both symbol tables match it; pats->v[i].matches is updated.
 * Returns 0, or -1 with err set (no such pid, unreadable binary, ...). */
int sp_resolve(pid_t pid, const char *binary, struct sp_pattern_list *pats,
	       enum sp_exit_policy policy, struct sp_func_set *out,
	       char *err, size_t errlen);
/* For a program about to be started: its executable and the shared
 * objects its dynamic loader will map (libraries are best effort). */
int sp_resolve_program(const char *exe, struct sp_pattern_list *pats,
		       enum sp_exit_policy policy, struct sp_func_set *out,
		       char *err, size_t errlen);
/* Appends to out the functions of the objects m lists: libraries mapped
 * after the first resolution (dlopen), or the files of attach --exe
 * (first_is_exe: m->v[0] is an executable, whose debug file is looked
 * for everywhere). pats' match counts grow. An object that cannot be read
 * is a warning on stderr; -1 only when out of memory. */
struct sp_mapped_objects;
int sp_resolve_more(const struct sp_mapped_objects *m, bool first_is_exe,
		    struct sp_pattern_list *pats, enum sp_exit_policy policy,
		    struct sp_func_set *out, char *err, size_t errlen);
void sp_func_set_free(struct sp_func_set *s);

#endif
