/*
 * Other tracers of the same process (other_tracers.h): the kernel's BPF
 * links, their owners from /proc/PID/fdinfo.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include "attach/other_tracers.h"
#include "base/grow.h"

struct found {
	__u32 *ids;      /* links that probe the target */
	size_t n, cap;
};

/* A perf-event uprobe on file:offset hits our target if the file is one
 * of the target's objects and the offset one of our entry points. */
static bool on_our_entry(const struct sp_func_set *fs, const char *file, __u32 offset)
{
	for (size_t i = 0; i < fs->n; i++) {
		const struct sp_func *f = &fs->v[i];
		const char *obj = f->open_path ? f->open_path : f->object;

		if (obj && !strcmp(obj, file) && f->offset + f->entry_shift == offset)
			return true;
	}
	return false;
}

static bool probes_target(int fd, pid_t tgid, const struct sp_func_set *fs)
{
	struct bpf_link_info info;
	char file[4096];
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_link_get_info_by_fd(fd, &info, &len))
		return false;
	if (info.type == BPF_LINK_TYPE_UPROBE_MULTI)
		return info.uprobe_multi.pid == (__u32)tgid;
	if (info.type != BPF_LINK_TYPE_PERF_EVENT)
		return false;
	/* again, with room for the file name */
	memset(&info, 0, sizeof(info));
	info.perf_event.uprobe.file_name = (__u64)(uintptr_t)file;
	info.perf_event.uprobe.name_len = sizeof(file);
	len = sizeof(info);
	if (bpf_link_get_info_by_fd(fd, &info, &len) ||
	    (info.perf_event.type != BPF_PERF_EVENT_UPROBE &&
	     info.perf_event.type != BPF_PERF_EVENT_URETPROBE))
		return false;
	file[sizeof(file) - 1] = 0;
	return on_our_entry(fs, file, info.perf_event.uprobe.offset);
}

static int list_links(pid_t tgid, const struct sp_func_set *fs, struct found *f,
		      char *err, size_t errlen)
{
	__u32 id = 0;

	while (!bpf_link_get_next_id(id, &id)) {
		int fd = bpf_link_get_fd_by_id(id);

		if (fd < 0)
			continue; /* gone meanwhile */
		if (probes_target(fd, tgid, fs)) {
			if (sp_grow((void **)&f->ids, &f->cap, f->n + 1, sizeof(*f->ids))) {
				close(fd);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			f->ids[f->n++] = id;
		}
		close(fd);
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "listing BPF links: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static bool is_ours(const struct found *f, __u32 id)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->ids[i] == id)
			return true;
	return false;
}

/* How many of the found links process pid holds (from its fdinfo). */
static size_t links_held(pid_t pid, const struct found *f)
{
	char path[320], line[128];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d))) {
		FILE *fi;
		unsigned id;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
		if (!(fi = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof(line), fi))
			if (sscanf(line, "link_id: %u", &id) == 1 && is_ours(f, id))
				n++;
		fclose(fi);
	}
	closedir(d);
	return n;
}

static void comm_of(pid_t pid, char *comm, size_t len)
{
	char path[64];
	FILE *fc;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	comm[0] = 0;
	if ((fc = fopen(path, "r"))) {
		if (fgets(comm, (int)len, fc))
			comm[strcspn(comm, "\n")] = 0;
		fclose(fc);
	}
}

/* The processes holding the links, by scanning every /proc/PID/fdinfo
 * (a link pinned in bpffs or held by a dead owner's child shows no
 * owner: it is reported with owner 0). */
static size_t owners(const struct found *f, struct sp_other_tracer *out, size_t max)
{
	struct dirent *e;
	size_t n = 0, owned = 0;
	DIR *d = opendir("/proc");
	pid_t self = getpid();

	while (d && (e = readdir(d)) && n < max) {
		pid_t pid = (pid_t)atoi(e->d_name);
		size_t held;

		if (pid <= 0 || pid == self || !(held = links_held(pid, f)))
			continue;
		out[n] = (struct sp_other_tracer){ .owner = pid, .links = held };
		comm_of(pid, out[n].comm, sizeof(out[n].comm));
		owned += held;
		n++;
	}
	if (d)
		closedir(d);
	if (owned < f->n && n < max)
		out[n++] = (struct sp_other_tracer){ .owner = 0, .links = f->n - owned };
	return n;
}

int sp_find_other_tracers(pid_t tgid, const struct sp_func_set *funcs,
			  struct sp_other_tracer *out, size_t max,
			  char *err, size_t errlen)
{
	struct found f = { 0 };
	size_t n = 0;

	if (list_links(tgid, funcs, &f, err, errlen)) {
		free(f.ids);
		return -1;
	}
	if (f.n)
		n = owners(&f, out, max);
	free(f.ids);
	return (int)n;
}
