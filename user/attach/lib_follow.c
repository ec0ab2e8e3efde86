#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "attach/lib_follow.h"
#include "base/grow.h"
#include "resolve/dl_rendezvous.h"

/* An object is the same file whatever path maps it: keyed by device and
 * inode. open_path is what its probes were attached under (NULL: none). */
struct known {
	dev_t dev;
	ino_t ino;
	char *open_path;
	char *path;       /* as the process sees it, for messages */
	bool seen_mapped; /* found in the maps once: its absence means unmapped */
	bool mapped_now;  /* scratch for one rescan */
};

struct sp_lib_follow {
	pid_t pid;    /* the process being rescanned */
	bool release; /* one process: its unmapped objects lose their probes */
	struct known *v;
	size_t n, cap;
};

static struct known *find(struct sp_lib_follow *lf, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < lf->n; i++)
		if (lf->v[i].dev == dev && lf->v[i].ino == ino)
			return &lf->v[i];
	return NULL;
}

static struct known *add(struct sp_lib_follow *lf, dev_t dev, ino_t ino)
{
	struct known *k = find(lf, dev, ino);

	if (k)
		return k;
	if (sp_grow((void **)&lf->v, &lf->cap, lf->n, sizeof(*lf->v)))
		return NULL;
	k = &lf->v[lf->n++];
	memset(k, 0, sizeof(*k));
	k->dev = dev;
	k->ino = ino;
	return k;
}

static int add_path(struct sp_lib_follow *lf, const char *open_path, const char *path,
		    bool probed)
{
	struct stat st;
	struct known *k;

	if (stat(open_path, &st))
		return 0; /* gone already: nothing of it can be mapped anew */
	k = add(lf, st.st_dev, st.st_ino);
	if (!k)
		return -1;
	if (probed && !k->open_path &&
	    (!(k->open_path = strdup(open_path)) || !(k->path = strdup(path))))
		return -1;
	return 0;
}

struct sp_lib_follow *sp_lib_follow_new(pid_t pid, const struct sp_mapped_objects *before,
					const struct sp_func_set *funcs, bool release)
{
	struct sp_lib_follow *lf = calloc(1, sizeof(*lf));
	int rc = lf ? 0 : -1;

	if (lf) {
		lf->pid = pid;
		lf->release = release;
	}
	for (size_t i = 0; !rc && i < funcs->n; i++)
		if (!funcs->v[i].problem)
			rc = add_path(lf, funcs->v[i].open_path, funcs->v[i].object, true);
	for (size_t i = 0; !rc && before && i < before->n; i++)
		rc = add_path(lf, before->v[i].open_path, before->v[i].path, false);
	if (rc) {
		sp_lib_follow_free(lf);
		return NULL;
	}
	return lf;
}

void sp_lib_follow_free(struct sp_lib_follow *lf)
{
	if (!lf)
		return;
	for (size_t i = 0; i < lf->n; i++) {
		free(lf->v[i].open_path);
		free(lf->v[i].path);
	}
	free(lf->v);
	free(lf);
}

int sp_lib_follow_hook(struct sp_attach *a, pid_t pid, const struct sp_mapped_objects *objs,
		       char *err, size_t errlen)
{
	uint64_t off;
	int i = sp_dl_rendezvous(objs, &off);

	if (i < 0)
		return 1;
	return sp_attach_dl_hook(a, pid, objs->v[i].open_path, off, err, errlen);
}

/* One line of /proc/PID/maps: an executable file mapping is an object.
 * A deleted file still mapped stays known (its probes still fire) but is
 * never resolved anew: the file at its path is another one. */
static int scan_line(struct sp_lib_follow *lf, char *line, struct sp_mapped_objects *fresh)
{
	struct sp_map_key mk;
	char *p = sp_maps_exec_file(line, &mk);
	struct known *k;

	if (!p)
		return 0;
	k = find(lf, makedev(mk.maj, mk.min), (ino_t)mk.ino);
	if (k) {
		k->mapped_now = k->seen_mapped = true;
		return 0;
	}
	if (strstr(p, " (deleted)"))
		return 0;
	k = add(lf, makedev(mk.maj, mk.min), (ino_t)mk.ino);
	if (!k)
		return -1;
	k->mapped_now = k->seen_mapped = true;
	return sp_mapped_objects_push(fresh, lf->pid, p);
}

/* 1 when the process is gone. */
static int read_maps(struct sp_lib_follow *lf, struct sp_mapped_objects *fresh)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	int rc = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)lf->pid);
	if (!(f = fopen(path, "re")))
		return 1;
	for (size_t i = 0; i < lf->n; i++)
		lf->v[i].mapped_now = false;
	while (!rc && getline(&line, &cap, f) > 0)
		rc = scan_line(lf, line, fresh);
	/* an exiting process shows empty maps: that is no dlclose */
	if (!rc && (ferror(f) || ftell(f) == 0))
		rc = 1;
	free(line);
	fclose(f);
	return rc;
}

/* Objects that were mapped and are not any more lose their probes. */
static void release_gone(struct sp_lib_follow *lf, struct sp_attach *a,
			 struct sp_lib_change *ch, FILE *log)
{
	for (size_t i = 0; i < lf->n; i++) {
		struct known *k = &lf->v[i];

		if (!k->seen_mapped || k->mapped_now)
			continue;
		k->seen_mapped = false;
		if (!k->open_path)
			continue;
		sp_attach_release(a, k->open_path);
		ch->gone_objects++;
		if (log)
			fprintf(log, "spanprobe: pid %d unmapped %s: its probes are released\n",
				(int)lf->pid, k->path);
		/* mapped again later, it is a new object: resolved and probed anew */
		free(k->open_path);
		free(k->path);
		*k = lf->v[--lf->n];
		i--;
	}
}

/* Functions past the maps' room are not attached; said once per rescan. */
static void mark_overflow(struct sp_func_set *funcs, size_t from, size_t cap,
			  struct sp_lib_change *ch)
{
	for (size_t i = from > cap ? from : cap; i < funcs->n; i++) {
		if (funcs->v[i].problem)
			continue;
		funcs->v[i].problem = strdup("no room left for functions of objects mapped after attach");
		ch->skipped_funcs++;
	}
}

static void remember_probed(struct sp_lib_follow *lf, const struct sp_func_set *funcs,
			    size_t from)
{
	for (size_t i = from; i < funcs->n; i++)
		if (!funcs->v[i].problem)
			add_path(lf, funcs->v[i].open_path, funcs->v[i].object, true);
}

static void say_new(const struct sp_lib_follow *lf, const struct sp_mapped_objects *fresh,
		    const struct sp_func_set *funcs, size_t from, FILE *log)
{
	for (size_t o = 0; log && o < fresh->n; o++) {
		size_t nf = 0;

		for (size_t i = from; i < funcs->n; i++)
			nf += !funcs->v[i].problem && !strcmp(funcs->v[i].open_path,
							      fresh->v[o].open_path);
		if (nf)
			fprintf(log, "spanprobe: pid %d mapped %s: %zu functions probed\n",
				(int)lf->pid, fresh->v[o].path, nf);
	}
}

int sp_lib_follow_rescan(struct sp_lib_follow *lf, struct sp_attach *a, pid_t pid,
			 struct sp_pattern_list *pats, enum sp_exit_policy policy,
			 struct sp_func_set *funcs, struct sp_lib_change *ch, FILE *log,
			 char *err, size_t errlen)
{
	struct sp_mapped_objects fresh = { 0 };
	struct sp_attach_stats st = { 0 };
	size_t from = funcs->n;
	int rc;

	memset(ch, 0, sizeof(*ch));
	lf->pid = pid;
	rc = read_maps(lf, &fresh);
	if (rc) {
		sp_proc_objects_free(&fresh);
		if (rc < 0)
			snprintf(err, errlen, "pid %d: out of memory", (int)lf->pid);
		return rc < 0 ? -1 : 0;
	}
	if (lf->release)
		release_gone(lf, a, ch, log);
	ch->new_objects = fresh.n;
	rc = sp_resolve_more(&fresh, false, pats, policy, funcs, err, errlen);
	if (!rc && funcs->n > from) {
		mark_overflow(funcs, from, sp_attach_capacity(a), ch);
		rc = sp_attach_more(a, funcs, from, &st, err, errlen);
		ch->new_funcs = st.functions;
		ch->probes = st.probes;
		remember_probed(lf, funcs, from);
		if (!rc)
			say_new(lf, &fresh, funcs, from, log);
	}
	sp_proc_objects_free(&fresh);
	return rc;
}
