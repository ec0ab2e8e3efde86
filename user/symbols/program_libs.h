/* The objects a program will map at start, before it runs (run mode). */
#ifndef SPANPROBE_PROGRAM_LIBS_H
#define SPANPROBE_PROGRAM_LIBS_H

#include <stddef.h>
#include "symbols/proc_maps.h"

/* The executable first, then the shared objects its dynamic loader lists
 * for it (`INTERP --list EXE`, what ldd does). A static executable, or a
 * loader that cannot list, gives the executable alone with a warning.
 * 0, or -1 with err set. */
int sp_program_objects(const char *exe, struct sp_mapped_objects *out,
		       char *err, size_t errlen);

#endif
