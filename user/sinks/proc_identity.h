/* Who and where a traced process runs, for micromegas' process record:
 * the user it runs as, the machine, its distribution, the CPU. */
#ifndef SPANPROBE_PROC_IDENTITY_H
#define SPANPROBE_PROC_IDENTITY_H

#include <sys/types.h>

struct sp_proc_identity {
	char username[64];
	char realname[128];
	char computer[256];
	char distro[128];
	char cpu_brand[128];
};

/* Best effort: a field that cannot be read is "unknown". The distro is
 * read through /proc/PID/root, so a container's own is found. */
void sp_proc_identity(pid_t pid, struct sp_proc_identity *id);

#endif
