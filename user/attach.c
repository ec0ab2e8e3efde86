#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include "attach.h"
#include "spanprobe.skel.h"

struct sp_attach {
	struct spanprobe_bpf *skel;
	struct bpf_link **links;
	size_t n_links, cap_links;
};

/* Offsets and cookies of one kind of probe in one object. */
struct probe_batch {
	unsigned long *offsets;
	__u64 *cookies;
	size_t n, cap;
};

static int batch_add(struct probe_batch *b, uint64_t off, uint32_t cookie)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		unsigned long *o = realloc(b->offsets, cap * sizeof(*o));
		__u64 *c = o ? realloc(b->cookies, cap * sizeof(*c)) : NULL;

		if (o)
			b->offsets = o;
		if (!c)
			return -ENOMEM;
		b->cookies = c;
		b->cap = cap;
	}
	b->offsets[b->n] = off;
	b->cookies[b->n] = cookie;
	b->n++;
	return 0;
}

static void batch_free(struct probe_batch *b)
{
	free(b->offsets);
	free(b->cookies);
	memset(b, 0, sizeof(*b));
}

static int keep_link(struct sp_attach *a, struct bpf_link *l)
{
	if (a->n_links == a->cap_links) {
		size_t cap = a->cap_links ? a->cap_links * 2 : 16;
		struct bpf_link **v = realloc(a->links, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->links = v;
		a->cap_links = cap;
	}
	a->links[a->n_links++] = l;
	return 0;
}

static int attach_multi(struct sp_attach *a, struct bpf_program *prog,
			pid_t pid, const char *path, struct probe_batch *b,
			bool retprobe)
{
	LIBBPF_OPTS(bpf_uprobe_multi_opts, o, .offsets = b->offsets,
		    .cookies = b->cookies, .cnt = b->n, .retprobe = retprobe);
	struct bpf_link *l;

	l = bpf_program__attach_uprobe_multi(prog, pid, path, NULL, &o);
	if (!l)
		return -errno;
	return keep_link(a, l);
}

static int attach_classic(struct sp_attach *a, struct bpf_program *prog,
			  pid_t pid, const char *path, struct probe_batch *b,
			  bool retprobe)
{
	for (size_t i = 0; i < b->n; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, o, .bpf_cookie = b->cookies[i],
			    .retprobe = retprobe);
		struct bpf_link *l;
		int err;

		l = bpf_program__attach_uprobe_opts(prog, pid, path, b->offsets[i], &o);
		if (!l)
			return -errno;
		err = keep_link(a, l);
		if (err)
			return err;
	}
	return 0;
}

struct object_batches {
	struct probe_batch entry, uret, sites;
};

static int collect_object(const struct sp_func_set *fs, const char *path,
			  struct object_batches *ob, bool *done)
{
	int err = 0;

	for (size_t i = 0; i < fs->n && !err; i++) {
		const struct sp_func *f = &fs->v[i];

		if (done[i] || f->problem || strcmp(f->open_path, path) != 0)
			continue;
		done[i] = true;
		err = batch_add(&ob->entry, f->offset, i);
		if (f->exit_mode == SP_EXIT_URETPROBE)
			err = err ? err : batch_add(&ob->uret, f->offset, i);
		for (size_t k = 0; k < f->n_exit && !err; k++)
			err = batch_add(&ob->sites, f->exit_offsets[k], i);
	}
	return err;
}

static int attach_object(struct sp_attach *a, pid_t pid, const char *path,
			 struct object_batches *ob, bool multi)
{
	int (*fn)(struct sp_attach *, struct bpf_program *, pid_t,
		  const char *, struct probe_batch *, bool) =
		multi ? attach_multi : attach_classic;
	int err = 0;

	if (ob->entry.n)
		err = fn(a, a->skel->progs.sp_entry, pid, path, &ob->entry, false);
	if (!err && ob->uret.n)
		err = fn(a, a->skel->progs.sp_exit_ret, pid, path, &ob->uret, true);
	if (!err && ob->sites.n)
		err = fn(a, a->skel->progs.sp_exit_site, pid, path, &ob->sites, false);
	return err;
}

static int attach_all(struct sp_attach *a, pid_t pid,
		      const struct sp_func_set *fs, bool multi,
		      struct sp_attach_stats *st, char *err, size_t errlen)
{
	bool *done = calloc(fs->n ? fs->n : 1, sizeof(*done));
	int rc = done ? 0 : -ENOMEM;

	for (size_t i = 0; i < fs->n && !rc; i++) {
		struct object_batches ob = { 0 };
		const char *path = fs->v[i].open_path;

		if (done[i] || fs->v[i].problem)
			continue;
		rc = collect_object(fs, path, &ob, done);
		if (!rc)
			rc = attach_object(a, pid, path, &ob, multi);
		if (rc)
			snprintf(err, errlen, "attaching probes in %s: %s",
				 fs->v[i].object, strerror(-rc));
		st->functions += ob.entry.n;
		st->probes += ob.entry.n + ob.uret.n + ob.sites.n;
		batch_free(&ob.entry);
		batch_free(&ob.uret);
		batch_free(&ob.sites);
	}
	free(done);
	st->links = a->n_links;
	st->multi = multi;
	return rc;
}

static int load_skeleton(struct sp_attach *a, pid_t tgid, bool multi,
			 char *err, size_t errlen)
{
	int rc;

	a->skel = spanprobe_bpf__open();
	if (!a->skel) {
		snprintf(err, errlen, "opening BPF object: %s", strerror(errno));
		return -1;
	}
	a->skel->rodata->target_tgid = tgid;
	if (multi) {
		bpf_program__set_expected_attach_type(a->skel->progs.sp_entry, BPF_TRACE_UPROBE_MULTI);
		bpf_program__set_expected_attach_type(a->skel->progs.sp_exit_ret, BPF_TRACE_UPROBE_MULTI);
		bpf_program__set_expected_attach_type(a->skel->progs.sp_exit_site, BPF_TRACE_UPROBE_MULTI);
	}
	rc = spanprobe_bpf__load(a->skel);
	if (rc) {
		snprintf(err, errlen, "loading BPF programs: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

static void detach_all(struct sp_attach *a)
{
	for (size_t i = 0; i < a->n_links; i++)
		bpf_link__destroy(a->links[i]);
	free(a->links);
	a->links = NULL;
	a->n_links = a->cap_links = 0;
	spanprobe_bpf__destroy(a->skel);
	a->skel = NULL;
}

static int try_attach(struct sp_attach *a, pid_t tgid,
		      const struct sp_func_set *funcs, bool multi,
		      struct sp_attach_stats *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	if (load_skeleton(a, tgid, multi, err, errlen))
		return -1;
	if (attach_all(a, tgid, funcs, multi, st, err, errlen)) {
		detach_all(a);
		return -1;
	}
	return 0;
}

int sp_attach_open(struct sp_attach **out, pid_t tgid,
		   const struct sp_func_set *funcs, bool use_multi,
		   struct sp_attach_stats *st, char *err, size_t errlen)
{
	struct sp_attach *a = calloc(1, sizeof(*a));

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Kernels before 6.6 have no uprobe_multi: fall back to one link per
	 * probe point, which costs attach time, not per-hit time. */
	if (try_attach(a, tgid, funcs, use_multi, st, err, errlen) &&
	    (!use_multi || try_attach(a, tgid, funcs, false, st, err, errlen))) {
		free(a);
		return -1;
	}
	*out = a;
	return 0;
}

int sp_attach_ringbuf_fd(const struct sp_attach *a)
{
	return bpf_map__fd(a->skel->maps.events);
}

uint64_t sp_attach_dropped(const struct sp_attach *a)
{
	return __atomic_load_n(&a->skel->bss->dropped_events, __ATOMIC_RELAXED);
}

uint64_t sp_attach_total(const struct sp_attach *a)
{
	return __atomic_load_n(&a->skel->bss->total_events, __ATOMIC_RELAXED);
}

void sp_attach_close(struct sp_attach *a)
{
	if (!a)
		return;
	detach_all(a);
	free(a);
}
