#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "base/grow.h"
#include "resolve/async_nested.h"
#include "attach/attach.h"
#include "spanprobe.skel.h"

/* Not in the uapi headers libbpf 1.4 ships with. */
#define SP_TRACE_UPROBE_SESSION 57

struct sp_attach {
	struct spanprobe_bpf *skel;
	struct bpf_link **links;
	size_t n_links, cap_links;
	int *raw_fds; /* session links: libbpf 1.4 cannot create them */
	size_t n_raw, cap_raw;
	int ncpus;
};

/* Offsets and cookies of one kind of probe in one object. */
struct probe_batch {
	unsigned long *offsets;
	__u64 *cookies;
	size_t n, cap;
};

struct object_batches {
	struct probe_batch entry;  /* entry only: exits at ret sites */
	struct probe_batch paired; /* entry + return (session or uretprobe) */
	struct probe_batch sites;  /* ret / tail-jump sites */
};

static int batch_add(struct probe_batch *b, uint64_t off, __u64 cookie)
{
	size_t cap = b->cap;

	if (sp_grow((void **)&b->offsets, &cap, b->n, sizeof(*b->offsets)) ||
	    sp_grow((void **)&b->cookies, &b->cap, b->n, sizeof(*b->cookies)))
		return -ENOMEM;
	b->offsets[b->n] = off;
	b->cookies[b->n] = cookie;
	b->n++;
	return 0;
}

static void batches_free(struct object_batches *ob)
{
	struct probe_batch *all[] = { &ob->entry, &ob->paired, &ob->sites };

	for (size_t i = 0; i < 3; i++) {
		free(all[i]->offsets);
		free(all[i]->cookies);
	}
	memset(ob, 0, sizeof(*ob));
}

static int keep_link(struct sp_attach *a, struct bpf_link *l)
{
	if (sp_grow((void **)&a->links, &a->cap_links, a->n_links, sizeof(*a->links)))
		return -ENOMEM;
	a->links[a->n_links++] = l;
	return 0;
}

static int keep_fd(struct sp_attach *a, int fd)
{
	if (sp_grow((void **)&a->raw_fds, &a->cap_raw, a->n_raw, sizeof(*a->raw_fds)))
		return -ENOMEM;
	a->raw_fds[a->n_raw++] = fd;
	return 0;
}

static int attach_session(struct sp_attach *a, pid_t pid, const char *path,
			  struct probe_batch *b)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = bpf_program__fd(a->skel->progs.sp_session);
	attr.link_create.attach_type = SP_TRACE_UPROBE_SESSION;
	attr.link_create.uprobe_multi.path = (__u64)(uintptr_t)path;
	attr.link_create.uprobe_multi.offsets = (__u64)(uintptr_t)b->offsets;
	attr.link_create.uprobe_multi.cookies = (__u64)(uintptr_t)b->cookies;
	attr.link_create.uprobe_multi.cnt = b->n;
	attr.link_create.uprobe_multi.pid = pid;
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return -errno;
	return keep_fd(a, fd) ? (close(fd), -ENOMEM) : 0;
}

static int attach_multi(struct sp_attach *a, struct bpf_program *prog, pid_t pid,
			const char *path, struct probe_batch *b, bool retprobe)
{
	LIBBPF_OPTS(bpf_uprobe_multi_opts, o, .offsets = b->offsets,
		    .cookies = b->cookies, .cnt = b->n, .retprobe = retprobe);
	struct bpf_link *l = bpf_program__attach_uprobe_multi(prog, pid, path, NULL, &o);

	return l ? keep_link(a, l) : -errno;
}

static int attach_classic(struct sp_attach *a, struct bpf_program *prog, pid_t pid,
			  const char *path, struct probe_batch *b, bool retprobe)
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

static int attach_batch(struct sp_attach *a, enum sp_attach_mode mode,
			struct bpf_program *prog, pid_t pid, const char *path,
			struct probe_batch *b, bool retprobe)
{
	if (!b->n)
		return 0;
	if (mode == SP_ATTACH_CLASSIC)
		return attach_classic(a, prog, pid, path, b, retprobe);
	return attach_multi(a, prog, pid, path, b, retprobe);
}

static int attach_object(struct sp_attach *a, enum sp_attach_mode mode, pid_t pid,
			 const char *path, struct object_batches *ob)
{
	struct spanprobe_bpf *sk = a->skel;
	int err;

	if (mode == SP_ATTACH_SESSION) {
		err = ob->paired.n ? attach_session(a, pid, path, &ob->paired) : 0;
	} else {
		err = attach_batch(a, mode, sk->progs.sp_entry, pid, path, &ob->paired, false);
		if (!err)
			err = attach_batch(a, mode, sk->progs.sp_exit_ret, pid, path, &ob->paired, true);
	}
	if (!err)
		err = attach_batch(a, mode, sk->progs.sp_entry, pid, path, &ob->entry, false);
	if (!err)
		err = attach_batch(a, mode, sk->progs.sp_exit_site, pid, path, &ob->sites, false);
	return err;
}

/* What the BPF side must know of a function (enum sp_sym_flags). */
static __u32 sym_flags(const struct sp_func *f)
{
	return (f->role == SP_ROLE_ROOT ? SP_SYM_ROOT : 0) |
	       (f->is_async ? SP_SYM_ASYNC : 0) |
	       (f->self_in_rsi ? SP_SYM_SELF_RSI : 0) |
	       /* carriers and spawned tasks are tracked with no frame under
		* them: userspace decides later which query they belong to */
	       (f->is_async && f->held ? SP_SYM_HELD | SP_SYM_ROOT : 0) |
	       (f->is_async && f->nested ? SP_SYM_NESTED : 0);
}

static int collect_object(const struct sp_func_set *fs, const char *path,
			  struct object_batches *ob, bool *done)
{
	int err = 0;

	for (size_t i = 0; i < fs->n && !err; i++) {
		const struct sp_func *f = &fs->v[i];
		__u64 cookie = sp_probe_cookie((__u32)i, sym_flags(f));

		if (done[i] || f->problem || strcmp(f->open_path, path) != 0)
			continue;
		done[i] = true;
		if (f->exit_mode == SP_EXIT_URETPROBE)
			err = batch_add(&ob->paired, f->offset + f->entry_shift, cookie);
		else
			err = batch_add(&ob->entry, f->offset + f->entry_shift, cookie);
		for (size_t k = 0; k < f->n_exit && !err; k++)
			err = batch_add(&ob->sites, f->exit_offsets[k], cookie);
	}
	return err;
}

static int attach_all(struct sp_attach *a, enum sp_attach_mode mode, pid_t pid,
		      const struct sp_func_set *fs, struct sp_attach_stats *st,
		      char *err, size_t errlen)
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
			rc = attach_object(a, mode, pid, path, &ob);
		if (rc)
			snprintf(err, errlen, "attaching probes in %s (%s): %s",
				 fs->v[i].object, sp_attach_mode_name(mode), strerror(-rc));
		st->functions += ob.entry.n + ob.paired.n;
		st->probes += ob.entry.n + 2 * ob.paired.n + ob.sites.n;
		batches_free(&ob);
	}
	free(done);
	st->links = a->n_links + a->n_raw;
	st->mode = mode;
	return rc;
}

/* Programs a mode does not use are not loaded: on an old kernel the
 * session program would not even pass the verifier. */
static bool has_carriers(const struct sp_func_set *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		if (fs->v[i].nested && !fs->v[i].problem)
			return true;
	return false;
}

static void configure_programs(struct spanprobe_bpf *sk, enum sp_attach_mode mode,
			       bool carriers)
{
	enum bpf_attach_type multi = mode == SP_ATTACH_CLASSIC ? 0 : BPF_TRACE_UPROBE_MULTI;

	/* every context switch of the system runs it: only for carriers */
	bpf_program__set_autoload(sk->progs.sp_switch, carriers);
	bpf_program__set_autoload(sk->progs.sp_session, mode == SP_ATTACH_SESSION);
	bpf_program__set_autoload(sk->progs.sp_exit_ret, mode != SP_ATTACH_SESSION);
	bpf_program__set_expected_attach_type(sk->progs.sp_session, SP_TRACE_UPROBE_SESSION);
	bpf_program__set_expected_attach_type(sk->progs.sp_entry, multi);
	bpf_program__set_expected_attach_type(sk->progs.sp_exit_ret, multi);
	bpf_program__set_expected_attach_type(sk->progs.sp_exit_site, multi);
}

static int fill_sym_info(struct sp_attach *a, const struct sp_func_set *fs)
{
	int fd = bpf_map__fd(a->skel->maps.sym_info);

	for (__u32 i = 0; i < fs->n; i++) {
		const struct sp_func *f = &fs->v[i];
		struct sp_sym_info info = {
			.flags = sym_flags(f),
			.state_off = f->state_off,
			.state_size = f->state_size,
		};

		if (bpf_map_update_elem(fd, &i, &info, BPF_ANY))
			return -errno;
	}
	return 0;
}

/* Each carrier's read list (user/resolve/async_nested.h), by sym_id. */
static int fill_nested_reads(struct sp_attach *a, const struct sp_func_set *fs)
{
	int fd = bpf_map__fd(a->skel->maps.nested_reads);

	for (__u32 i = 0; i < fs->n; i++) {
		const struct sp_nested_plan *pl = fs->v[i].nested;
		struct sp_read_list rl = { 0 };

		if (!pl || !fs->v[i].is_async)
			continue;
		rl.n = pl->n_reads;
		memcpy(rl.r, pl->reads, pl->n_reads * sizeof(rl.r[0]));
		if (bpf_map_update_elem(fd, &i, &rl, BPF_ANY))
			return -errno;
	}
	return 0;
}

static int load_skeleton(struct sp_attach *a, pid_t tgid, const struct sp_func_set *fs,
			 const struct sp_attach_opts *o, enum sp_attach_mode mode,
			 char *err, size_t errlen)
{
	__u32 n = fs->n ? (__u32)fs->n : 1;
	int rc;

	a->skel = spanprobe_bpf__open();
	if (!a->skel) {
		snprintf(err, errlen, "opening BPF object: %s", strerror(errno));
		return -1;
	}
	a->skel->rodata->target_tgid = tgid;
	a->skel->rodata->min_span_ns = o->min_span_ns;
	if (o->ring_bytes)
		bpf_map__set_max_entries(a->skel->maps.records, o->ring_bytes);
	bpf_map__set_max_entries(a->skel->maps.sym_info, n);
	bpf_map__set_max_entries(a->skel->maps.sym_stats, n);
	bpf_map__set_max_entries(a->skel->maps.nested_reads, n);
	configure_programs(a->skel, mode, has_carriers(fs));
	rc = spanprobe_bpf__load(a->skel);
	if (!rc)
		rc = fill_sym_info(a, fs);
	if (!rc)
		rc = fill_nested_reads(a, fs);
	if (rc) {
		snprintf(err, errlen, "loading BPF programs (%s): %s",
			 sp_attach_mode_name(mode), strerror(-rc));
		return -1;
	}
	return 0;
}

static void unlink_all(struct sp_attach *a)
{
	for (size_t i = 0; i < a->n_links; i++)
		bpf_link__destroy(a->links[i]);
	for (size_t i = 0; i < a->n_raw; i++)
		close(a->raw_fds[i]);
	free(a->links);
	free(a->raw_fds);
	a->links = NULL;
	a->raw_fds = NULL;
	a->n_links = a->cap_links = a->n_raw = a->cap_raw = 0;
}

static void detach_all(struct sp_attach *a)
{
	unlink_all(a);
	spanprobe_bpf__destroy(a->skel);
	a->skel = NULL;
}

void sp_attach_detach(struct sp_attach *a)
{
	unlink_all(a);
}

/* Frees the state of threads that exit inside a query (see the program). */
static int attach_hook(struct sp_attach *a, struct bpf_program *prog, const char *what,
		       char *err, size_t errlen)
{
	struct bpf_link *l = bpf_program__attach(prog);
	int rc = l ? keep_link(a, l) : -errno;

	if (rc)
		snprintf(err, errlen, "attaching the %s hook: %s", what, strerror(-rc));
	return rc;
}

/* Thread exit frees the state of threads that die inside a query; exec
 * tells userspace that the probed code is gone; with carriers, a context
 * switch reads the nested futures of a carrier poll open on the thread. */
static int attach_hooks(struct sp_attach *a, const struct sp_func_set *fs, char *err,
			size_t errlen)
{
	return attach_hook(a, a->skel->progs.sp_thread_exit, "thread-exit", err, errlen) ||
	       attach_hook(a, a->skel->progs.sp_exec, "exec", err, errlen) ||
	       (has_carriers(fs) &&
		attach_hook(a, a->skel->progs.sp_switch, "context-switch", err, errlen)) ? -1 : 0;
}

static int try_attach(struct sp_attach *a, pid_t tgid, const struct sp_func_set *fs,
		      const struct sp_attach_opts *o, enum sp_attach_mode mode,
		      struct sp_attach_stats *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	if (load_skeleton(a, tgid, fs, o, mode, err, errlen) ||
	    attach_hooks(a, fs, err, errlen) ||
	    attach_all(a, mode, tgid, fs, st, err, errlen)) {
		detach_all(a);
		return -1;
	}
	st->links = a->n_links + a->n_raw;
	return 0;
}

int sp_attach_open(struct sp_attach **out, pid_t tgid,
		   const struct sp_func_set *funcs, const struct sp_attach_opts *o,
		   struct sp_attach_stats *st, char *err, size_t errlen)
{
	struct sp_attach *a = calloc(1, sizeof(*a));
	int rc = -1;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->ncpus = libbpf_num_possible_cpus();
	/* Older kernels lack sessions (6.13) or uprobe_multi (6.6): fall back,
	 * paying attach time or a return probe outside queries. */
	for (enum sp_attach_mode m = o->best; m <= SP_ATTACH_CLASSIC && rc; m++) {
		rc = try_attach(a, tgid, funcs, o, m, st, err, errlen);
		if (rc && m < SP_ATTACH_CLASSIC)
			fprintf(stderr, "spanprobe: warning: %s; trying %s\n", err,
				sp_attach_mode_name(m + 1));
	}
	if (rc) {
		free(a);
		return -1;
	}
	*out = a;
	return 0;
}

const char *sp_attach_mode_name(enum sp_attach_mode m)
{
	static const char *names[] = { "uprobe session", "uprobe_multi", "classic uprobes" };

	return m <= SP_ATTACH_CLASSIC ? names[m] : "?";
}

int sp_attach_records_fd(const struct sp_attach *a)
{
	return bpf_map__fd(a->skel->maps.records);
}

int sp_attach_threads_fd(const struct sp_attach *a)
{
	return bpf_map__fd(a->skel->maps.threads);
}

int sp_attach_futures_fd(const struct sp_attach *a)
{
	return bpf_map__fd(a->skel->maps.futures);
}

uint64_t sp_attach_dropped(const struct sp_attach *a)
{
	return __atomic_load_n(&a->skel->bss->dropped_records, __ATOMIC_RELAXED);
}

uint64_t sp_attach_depth_overflows(const struct sp_attach *a)
{
	return __atomic_load_n(&a->skel->bss->depth_overflows, __ATOMIC_RELAXED);
}

uint64_t sp_attach_exec_count(const struct sp_attach *a)
{
	return __atomic_load_n(&a->skel->bss->exec_count, __ATOMIC_RELAXED);
}

void sp_attach_set_trampoline(struct sp_attach *a, uint64_t lo, uint64_t hi)
{
	/* hi first: BPF tests lo <= addr < hi, never a range that is half set */
	__atomic_store_n(&a->skel->bss->tramp_hi, hi, __ATOMIC_RELAXED);
	__atomic_store_n(&a->skel->bss->tramp_lo, lo, __ATOMIC_RELAXED);
}

int sp_attach_sym_stats(const struct sp_attach *a, uint32_t sym_id, struct sp_sym_stats *out)
{
	struct sp_sym_stats *percpu = calloc(a->ncpus, sizeof(*percpu));
	int rc;

	memset(out, 0, sizeof(*out));
	if (!percpu)
		return -ENOMEM;
	rc = bpf_map_lookup_elem(bpf_map__fd(a->skel->maps.sym_stats), &sym_id, percpu);
	for (int c = 0; !rc && c < a->ncpus; c++) {
		const struct sp_sym_stats *s = &percpu[c];

		out->calls += s->calls;
		out->total_ns += s->total_ns;
		out->max_ns = s->max_ns > out->max_ns ? s->max_ns : out->max_ns;
		out->under_min_span += s->under_min_span;
		out->outside_calls += s->outside_calls;
		out->abnormal += s->abnormal;
		for (int b = 0; b < SP_HIST_BUCKETS; b++)
			out->hist[b] += s->hist[b];
	}
	free(percpu);
	return rc ? -errno : 0;
}

void sp_attach_close(struct sp_attach *a)
{
	if (!a)
		return;
	detach_all(a);
	free(a);
}
