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
	bool *by_pid;    /* ...naming its pid (uprobe_multi, session) */
	size_t n, cap, cap_kind;
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

/* A uprobe_multi (or session) link without a pid filter, or one for
 * another process while we probe a whole file (tgid 0): on our entry
 * points of the same file, it fires where ours do. */
static bool multi_on_our_entry(int fd, __u32 count, const struct sp_func_set *fs)
{
	struct bpf_link_info info;
	char file[4096];
	__u64 *offs = calloc(count ? count : 1, sizeof(*offs));
	__u32 len = sizeof(info);
	bool hit = false;

	if (!offs)
		return false;
	memset(&info, 0, sizeof(info));
	info.uprobe_multi.path = (__u64)(uintptr_t)file;
	info.uprobe_multi.path_size = sizeof(file);
	info.uprobe_multi.offsets = (__u64)(uintptr_t)offs;
	info.uprobe_multi.count = count;
	if (!bpf_link_get_info_by_fd(fd, &info, &len)) {
		file[sizeof(file) - 1] = 0;
		for (__u32 i = 0; !hit && i < count; i++)
			hit = on_our_entry(fs, file, (__u32)offs[i]);
	}
	free(offs);
	return hit;
}

/* 1: a link for tgid's pid, 2: a probe on one of our entry points that
 * fires where ours do (a perf-event uprobe, whose pid filter is not
 * shown, or a uprobe_multi link for every process, or for any process
 * while tgid is 0: we probe the file for all), 0: neither. */
static int probes_target(int fd, pid_t tgid, const struct sp_func_set *fs)
{
	struct bpf_link_info info;
	char file[4096];
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_link_get_info_by_fd(fd, &info, &len))
		return 0;
	if (info.type == BPF_LINK_TYPE_UPROBE_MULTI) {
		if (tgid && info.uprobe_multi.pid == (__u32)tgid)
			return 1;
		if ((!tgid || !info.uprobe_multi.pid) &&
		    multi_on_our_entry(fd, info.uprobe_multi.count, fs))
			return 2;
		return 0;
	}
	if (info.type != BPF_LINK_TYPE_PERF_EVENT)
		return 0;
	/* again, with room for the file name */
	memset(&info, 0, sizeof(info));
	info.perf_event.uprobe.file_name = (__u64)(uintptr_t)file;
	info.perf_event.uprobe.name_len = sizeof(file);
	len = sizeof(info);
	if (bpf_link_get_info_by_fd(fd, &info, &len) ||
	    (info.perf_event.type != BPF_PERF_EVENT_UPROBE &&
	     info.perf_event.type != BPF_PERF_EVENT_URETPROBE))
		return 0;
	file[sizeof(file) - 1] = 0;
	return on_our_entry(fs, file, info.perf_event.uprobe.offset) ? 2 : 0;
}

static int list_links(pid_t tgid, const struct sp_func_set *fs, struct found *f,
		      char *err, size_t errlen)
{
	__u32 id = 0;

	while (!bpf_link_get_next_id(id, &id)) {
		int fd = bpf_link_get_fd_by_id(id);

		if (fd < 0)
			continue; /* gone meanwhile */
		int kind = probes_target(fd, tgid, fs);

		if (kind) {
			if (sp_grow((void **)&f->ids, &f->cap, f->n + 1, sizeof(*f->ids)) ||
			    sp_grow((void **)&f->by_pid, &f->cap_kind, f->n + 1, sizeof(*f->by_pid))) {
				close(fd);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			f->by_pid[f->n] = kind == 1;
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

/* Index of link id among the found ones, or -1. */
static long found_at(const struct found *f, __u32 id)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->ids[i] == id)
			return (long)i;
	return -1;
}

/* How many of the found links process pid holds (from its fdinfo);
 * *by_pid tells whether one of them names the target's pid. */
static size_t links_held(pid_t pid, const struct found *f, bool *by_pid)
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
		long at;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
		if (!(fi = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof(line), fi))
			if (sscanf(line, "link_id: %u", &id) == 1 && (at = found_at(f, id)) >= 0) {
				*by_pid |= f->by_pid[at];
				n++;
			}
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
		bool by_pid = false;
		size_t held;

		if (pid <= 0 || pid == self || !(held = links_held(pid, f, &by_pid)))
			continue;
		out[n] = (struct sp_other_tracer){ .owner = pid, .links = held, .by_pid = by_pid };
		comm_of(pid, out[n].comm, sizeof(out[n].comm));
		owned += held;
		n++;
	}
	if (d)
		closedir(d);
	if (owned < f->n && n < max) {
		out[n] = (struct sp_other_tracer){ .owner = 0, .links = f->n - owned };
		for (size_t i = 0; i < f->n; i++)
			out[n].by_pid |= f->by_pid[i];
		n++;
	}
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
		free(f.by_pid);
		return -1;
	}
	if (f.n)
		n = owners(&f, out, max);
	free(f.ids);
	free(f.by_pid);
	return (int)n;
}
