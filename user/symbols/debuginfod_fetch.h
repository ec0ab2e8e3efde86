/*
 * A debug file by build-id from the debuginfod servers of DEBUGINFOD_URLS,
 * through elfutils' libdebuginfod (its cache, DEBUGINFOD_CACHE_PATH, and
 * its other settings are honoured), with a bounded wait.
 */
#ifndef SPANPROBE_DEBUGINFOD_FETCH_H
#define SPANPROBE_DEBUGINFOD_FETCH_H

#include <stddef.h>

/* Seconds a server may stay silent (DEBUGINFOD_TIMEOUT) and a whole
 * download may last (DEBUGINFOD_MAXTIME) when the user set neither:
 * libdebuginfod's own default waits 90 s for each silent server. */
#define SP_DEBUGINFOD_TIMEOUT_S "5"
#define SP_DEBUGINFOD_MAXTIME_S "120"

/* 0: *path (malloc'd) is the debug file, in libdebuginfod's cache.
 * 1: not there, or no DEBUGINFOD_URLS: nothing to say.
 * -1: the servers could not be asked (unreachable, timed out, no
 *     libdebuginfod.so.1): why says so, once; later calls return 1
 *     at once, so that one dead server costs one wait per session. */
int sp_debuginfod_fetch(const unsigned char *build_id, size_t len, char **path,
			char *why, size_t whylen);

/* Forgets that the servers were unreachable (tests). */
void sp_debuginfod_reset(void);

#endif
