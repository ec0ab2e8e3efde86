/*
 * The objects a running process executes code from, read from /proc.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "symbols/proc_maps.h"
#include "base/errmsg.h"

#define DELETED_TAG " (deleted)"

struct seen {
	struct sp_map_key *v;
	size_t n;
};

/* ENOENT/ESRCH mean the pid is gone; anything else is worth its text. */
static void proc_err(pid_t pid, const char *what, int e, char *err,
		     size_t errlen)
{
	if (e == ENOENT || e == ESRCH)
		sp_set_err(err, errlen, "pid %d: no such process", (int)pid);
	else
		sp_set_err(err, errlen, "pid %d: /proc/%d/%s: %s", (int)pid,
			(int)pid, what, strerror(e));
}

char *sp_maps_exec_file(char *line, struct sp_map_key *k)
{
	char perms[8];
	int pos = 0;
	char *p, *nl;

	if (sscanf(line, "%*x-%*x %7s %*x %x:%x %llu %n", perms, &k->maj,
		   &k->min, &k->ino, &pos) != 4 || pos == 0)
		return NULL;
	/* [vdso], [vsyscall] and anonymous code have no file to probe */
	if (strlen(perms) < 3 || perms[2] != 'x' || k->ino == 0)
		return NULL;
	p = line + pos;
	if (*p != '/')
		return NULL;
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	return p;
}

static bool seen_add(struct seen *s, const struct sp_map_key *k)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].maj == k->maj && s->v[i].min == k->min &&
		    s->v[i].ino == k->ino)
			return false;
	struct sp_map_key *v = realloc(s->v, (s->n + 1) * sizeof(*v));

	if (!v)
		return false;
	s->v = v;
	v[s->n++] = *k;
	return true;
}

static bool is_deleted(const char *path)
{
	size_t n = strlen(path), t = strlen(DELETED_TAG);

	return n > t && strcmp(path + n - t, DELETED_TAG) == 0;
}

int sp_mapped_objects_push(struct sp_mapped_objects *m, pid_t pid, const char *path)
{
	struct sp_mapped_object *v = realloc(m->v, (m->n + 1) * sizeof(*v));

	if (!v)
		return -1;
	m->v = v;
	v[m->n].path = strdup(path);
	if (asprintf(&v[m->n].open_path, "/proc/%d/root%s", (int)pid, path) < 0)
		v[m->n].open_path = NULL;
	m->n++;
	return v[m->n - 1].path && v[m->n - 1].open_path ? 0 : -1;
}

static int read_maps(FILE *f, pid_t pid, struct sp_mapped_objects *m)
{
	struct seen seen = { 0 };
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	while (rc == 0 && getline(&line, &cap, f) > 0) {
		struct sp_map_key k;
		char *path = sp_maps_exec_file(line, &k);

		if (!path || !seen_add(&seen, &k))
			continue;
		if (is_deleted(path)) {
			/* the file on disk is not what runs; a probe on a
			 * new file at that path would never fire */
			fprintf(stderr,
				"spanprobe: warning: pid %d: %s: not probed, the file was removed or replaced\n",
				(int)pid, path);
			continue;
		}
		rc = sp_mapped_objects_push(m, pid, path);
	}
	free(line);
	free(seen.v);
	return rc;
}

/* Moves the executable to the front: its symbols are the ones users mean
 * first, and resolution keeps this order. */
static void exe_first(struct sp_mapped_objects *m, pid_t pid)
{
	char *exe = NULL;

	if (sp_proc_info(pid, &exe, NULL, NULL, 0))
		return;
	for (size_t i = 1; i < m->n; i++) {
		if (strcmp(m->v[i].path, exe) == 0) {
			struct sp_mapped_object t = m->v[i];

			memmove(&m->v[1], &m->v[0], i * sizeof(m->v[0]));
			m->v[0] = t;
			break;
		}
	}
	free(exe);
}

int sp_proc_objects(pid_t pid, struct sp_mapped_objects *out, char *err,
		    size_t errlen)
{
	char p[64];
	FILE *f;
	int rc;

	out->v = NULL;
	out->n = 0;
	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	f = pid > 0 ? fopen(p, "re") : NULL;
	if (!f) {
		proc_err(pid, "maps", pid > 0 ? errno : ESRCH, err, errlen);
		return -1;
	}
	errno = 0;
	rc = read_maps(f, pid, out);
	if (rc == 0 && ferror(f))
		rc = -1;
	fclose(f);
	if (rc) {
		proc_err(pid, "maps", errno ? errno : ENOMEM, err, errlen);
		sp_proc_objects_free(out);
		return -1;
	}
	if (out->n == 0) {
		sp_set_err(err, errlen,
			"pid %d: no executable file mappings (kernel thread or exiting?)",
			(int)pid);
		return -1;
	}
	exe_first(out, pid);
	return 0;
}

void sp_proc_objects_free(struct sp_mapped_objects *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].path);
		free(m->v[i].open_path);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static int read_exe(pid_t pid, char **exe, char *err, size_t errlen)
{
	char p[64], buf[PATH_MAX + sizeof(DELETED_TAG)];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	n = readlink(p, buf, sizeof(buf) - 1);
	if (n < 0) {
		int e = errno;
		struct stat st;

		/* kernel threads exist but have no exe */
		snprintf(p, sizeof(p), "/proc/%d", (int)pid);
		if (e == ENOENT && stat(p, &st) == 0)
			sp_set_err(err, errlen, "pid %d: no executable (kernel thread?)",
				(int)pid);
		else
			proc_err(pid, "exe", e, err, errlen);
		return -1;
	}
	buf[n] = '\0';
	*exe = strdup(buf);
	return *exe ? 0 : -1;
}

/* Field 22 of /proc/PID/stat: start time in clock ticks after boot.
 * comm (field 2) may hold spaces and ')' so parse from the last ')'. */
static int read_start_ticks(pid_t pid, unsigned long long *ticks, char *err,
			    size_t errlen)
{
	char p[64], buf[1024];
	FILE *f;
	size_t n;
	char *s;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	f = fopen(p, "re");
	if (!f) {
		proc_err(pid, "stat", errno, err, errlen);
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	/* after ')': state is field 3, so starttime is the 20th token */
	if (!s || sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u"
			 " %*u %*u %*d %*d %*d %*d %*d %*d %llu", ticks) != 1) {
		sp_set_err(err, errlen, "pid %d: cannot parse %s", (int)pid, p);
		return -1;
	}
	return 0;
}

static int read_btime(unsigned long long *btime, char *err, size_t errlen)
{
	FILE *f = fopen("/proc/stat", "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = -1;

	while (f && getline(&line, &cap, f) > 0)
		if (sscanf(line, "btime %llu", btime) == 1) {
			rc = 0;
			break;
		}
	free(line);
	if (f)
		fclose(f);
	if (rc)
		sp_set_err(err, errlen, "/proc/stat: no btime line");
	return rc;
}

/* Clock ticks since boot as wall-clock ns: split to keep ticks * 1e9
 * from overflowing. */
static uint64_t ticks_to_wall(unsigned long long ticks, unsigned long long btime,
			      unsigned long long hz)
{
	return btime * 1000000000ull + ticks / hz * 1000000000ull +
	       ticks % hz * 1000000000ull / hz;
}

int sp_proc_info(pid_t pid, char **exe, uint64_t *start_wall_ns, char *err,
		 size_t errlen)
{
	unsigned long long ticks, btime;
	long hz = sysconf(_SC_CLK_TCK);

	if (exe)
		*exe = NULL;
	if (pid <= 0) {
		proc_err(pid, "stat", ESRCH, err, errlen);
		return -1;
	}
	if (exe && read_exe(pid, exe, err, errlen))
		return -1;
	if (!start_wall_ns)
		return 0;
	if (read_start_ticks(pid, &ticks, err, errlen) ||
	    read_btime(&btime, err, errlen) || hz <= 0) {
		if (hz <= 0)
			sp_set_err(err, errlen, "sysconf(_SC_CLK_TCK) failed");
		if (exe) {
			free(*exe);
			*exe = NULL;
		}
		return -1;
	}
	*start_wall_ns = ticks_to_wall(ticks, btime, (unsigned long long)hz);
	return 0;
}

uint64_t sp_boottime_to_wall(uint64_t boottime_ns)
{
	unsigned long long btime;
	long hz = sysconf(_SC_CLK_TCK);

	if (!boottime_ns || hz <= 0 || read_btime(&btime, NULL, 0))
		return 0;
	/* the kernel's own rounding for /proc/PID/stat (nsec_to_clock_t) */
	return ticks_to_wall(boottime_ns / (1000000000ull / (unsigned long long)hz), btime,
			     (unsigned long long)hz);
}

int sp_proc_special_mapping(pid_t pid, const char *name, uint64_t *lo,
			    uint64_t *hi)
{
	char path[64], line[512], tail[256];
	unsigned long long a, b;
	int rc = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (rc && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %255s", &a, &b, tail) == 3 &&
		    strcmp(tail, name) == 0) {
			*lo = a;
			*hi = b;
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}
