/* What a running process has mapped, and who it is. */
#ifndef SPANPROBE_PROC_MAPS_H
#define SPANPROBE_PROC_MAPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sp_mapped_object {
	char *path;      /* as /proc/PID/maps shows it */
	char *open_path; /* /proc/PID/root/PATH: reaches into containers */
};

struct sp_mapped_objects {
	struct sp_mapped_object *v;
	size_t n;
};

/* A file is the same object however many times (and under whatever
 * path) it is mapped: it is known by device and inode. */
struct sp_map_key {
	unsigned maj, min;
	unsigned long long ino;
};

/* One line of /proc/PID/maps: the path of an executable, file-backed
 * mapping (the line is cut at its newline), with its key; else NULL. */
char *sp_maps_exec_file(char *line, struct sp_map_key *k);

/* Appends PATH, and its open path through /proc/PID/root. 0 or -1. */
int sp_mapped_objects_push(struct sp_mapped_objects *m, pid_t pid, const char *path);

/* The distinct files mapped with execute permission, the executable
 * first. Pseudo mappings ([vdso], anonymous) are skipped; deleted files
 * are skipped with a warning on stderr. 0, or -1 with err set:
 * "pid N: no such process", "pid N: /proc/N/maps: Permission denied". */
int sp_proc_objects(pid_t pid, struct sp_mapped_objects *out, char *err,
		    size_t errlen);
void sp_proc_objects_free(struct sp_mapped_objects *m);

/* The executable path (malloc'd; may end in " (deleted)") and the start
 * time as wall-clock Unix ns (to the kernel's clock-tick precision and
 * btime's one second). Either output may be NULL. 0 or -1 with err. */
int sp_proc_info(pid_t pid, char **exe, uint64_t *start_wall_ns, char *err,
		 size_t errlen);
/* A task's start_boottime (ns since boot, as BPF reads it) as the same
 * wall-clock ns sp_proc_info gives for it; 0 when unknown. */
uint64_t sp_boottime_to_wall(uint64_t boottime_ns);

/* The address range of a kernel-provided mapping such as "[uprobes]".
 * 0 when found, -1 when the process has no such mapping (yet). */
int sp_proc_special_mapping(pid_t pid, const char *name, uint64_t *lo,
			    uint64_t *hi);

#endif
