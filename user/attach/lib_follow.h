/*
 * Keeps one process's probes in step with what it maps: objects mapped
 * after attach (dlopen) are resolved against the symbol list and probed,
 * objects it unmapped (dlclose) lose their probes. Woken by the dynamic
 * linker's rendezvous (resolve/dl_rendezvous.h, SP_RK_MAPS records).
 */
#ifndef SPANPROBE_LIB_FOLLOW_H
#define SPANPROBE_LIB_FOLLOW_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include "attach/attach.h"
#include "resolve/resolve.h"
#include "symbols/proc_maps.h"

struct sp_lib_follow;

/* What one process already has: the objects resolved at start (before,
 * read before resolution) and those the attached functions live in, so
 * that nothing is probed twice. release: the probes are that process's
 * alone (a pid filter), so an object it unmaps loses them; a family of
 * processes sharing links (--follow) only ever gains objects. */
struct sp_lib_follow *sp_lib_follow_new(pid_t pid, const struct sp_mapped_objects *before,
					const struct sp_func_set *funcs, bool release);
void sp_lib_follow_free(struct sp_lib_follow *lf);

/* Probes the rendezvous of the dynamic linker among objs for pid (0: every
 * process mapping it). 1 when there is none (static executable), 0 when
 * probed, -1 with err. */
int sp_lib_follow_hook(struct sp_attach *a, pid_t pid, const struct sp_mapped_objects *objs,
		       char *err, size_t errlen);

struct sp_lib_change {
	size_t new_objects, new_funcs, probes; /* mapped since, probed now */
	size_t gone_objects;                   /* unmapped: probes released */
	size_t skipped_funcs;                  /* past the BPF maps' room */
};

/* Rereads pid's maps; new objects' matches are appended to funcs and
 * attached (with the links' own pid filter), vanished ones released. Says what changed on log. -1 with err only when out of
 * memory or the kernel refused; a process that is gone changes nothing. */
int sp_lib_follow_rescan(struct sp_lib_follow *lf, struct sp_attach *a, pid_t pid,
			 struct sp_pattern_list *pats, enum sp_exit_policy policy,
			 struct sp_func_set *funcs, struct sp_lib_change *ch, FILE *log,
			 char *err, size_t errlen);

#endif
