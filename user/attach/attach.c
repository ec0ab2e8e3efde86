#include <errno.h>
#include <fcntl.h>
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
#include "attach/unwind_guard.h"
#include "attach/backtrace_sites.h"
#include "attach/nested_ranges.h"
#include "spanprobe.skel.h"

/* Not in the uapi headers libbpf 1.4 ships with. */
#define SP_TRACE_UPROBE_SESSION 57

/* A kernel link and the object whose probes it holds (NULL for the
 * hooks), so that an object's probes can go when it is unmapped. */
struct held_link {
	struct bpf_link *l; /* NULL for a raw session link */
	int fd;             /* session links: libbpf 1.4 cannot create them */
	char *owner;
};

struct sp_attach {
	struct spanprobe_bpf *skel;
	struct held_link *links;
	size_t n_links, cap_links;
	int ncpus;
	enum sp_attach_mode mode;
	size_t cap_funcs; /* sym_id slots the maps were sized for */
	const char *owner; /* the object being attached now */
	pid_t link_pid;    /* the links' pid filter; -1: every process */
	struct sp_unwind_guard *guard; /* the writer of the unwind guard */
	int guard_sig;     /* its stop signal; 0: no guard */
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

static int keep(struct sp_attach *a, struct bpf_link *l, int fd)
{
	struct held_link *h;

	if (sp_grow((void **)&a->links, &a->cap_links, a->n_links, sizeof(*a->links)))
		return -ENOMEM;
	h = &a->links[a->n_links];
	h->l = l;
	h->fd = fd;
	h->owner = a->owner ? strdup(a->owner) : NULL;
	if (a->owner && !h->owner)
		return -ENOMEM;
	a->n_links++;
	return 0;
}

static int keep_link(struct sp_attach *a, struct bpf_link *l)
{
	int rc = keep(a, l, -1);

	if (rc)
		bpf_link__destroy(l);
	return rc;
}

static int keep_fd(struct sp_attach *a, int fd)
{
	int rc = keep(a, NULL, fd);

	if (rc)
		close(fd);
	return rc;
}

static void drop_link(struct held_link *h)
{
	if (h->l)
		bpf_link__destroy(h->l);
	else
		close(h->fd);
	free(h->owner);
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
	attr.link_create.uprobe_multi.pid = pid < 0 ? 0 : pid; /* 0: every process */
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return -errno;
	return keep_fd(a, fd);
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

static bool has_ret_cap(const struct sp_func *f)
{
	for (unsigned i = 0; i < f->n_caps; i++)
		if (f->caps[i].src == SP_CAP_RET)
			return true;
	return false;
}

/* error=err on a Rust poll whose DWARF says where Ready(Err(_)) is. */
static bool poll_err_known(const struct sp_func *f)
{
	return f->err_result && f->is_async && f->result_err.n;
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
	       (f->is_async && f->nested ? SP_SYM_NESTED : 0) |
	       (f->n_caps ? SP_SYM_CAPS : 0) |
	       (f->err_cond || has_ret_cap(f) ? SP_SYM_RET : 0) |
	       (f->source == SP_SRC_USDT_PAIR ? SP_SYM_USDT : 0) |
	       (poll_err_known(f) ? SP_SYM_POLL_ERR : 0);
}

/* At a tail jump RAX is not the return value. The first byte tells: ret
 * is c3/c2 (after an optional f3 or f2 prefix), a jump is anything else.
 * A site that cannot be read counts as a jump: no value is invented. */
static bool is_tail_jump(int fd, uint64_t off)
{
	uint8_t b[2] = { 0 };

	if (fd < 0 || pread(fd, b, sizeof(b), (off_t)off) != (ssize_t)sizeof(b))
		return true;
	if (b[0] == 0xf3 || b[0] == 0xf2)
		b[0] = b[1];
	return b[0] != 0xc3 && b[0] != 0xc2;
}

static int collect_object(const struct sp_func_set *fs, const char *path,
			  struct object_batches *ob, bool *done)
{
	int err = 0, fd = -1;

	for (size_t i = 0; i < fs->n && !err; i++) {
		const struct sp_func *f = &fs->v[i];
		__u32 flags = sym_flags(f);
		__u64 cookie = sp_probe_cookie((__u32)i, flags);

		if (done[i] || f->problem || f->source != SP_SRC_FUNC ||
		    strcmp(f->open_path, path) != 0)
			continue;
		done[i] = true;
		/* resolve.c moves a paired entry only where sp is unchanged */
		if (sp_exit_hijacks(f->exit_mode))
			err = batch_add(&ob->paired, f->offset + f->entry_shift, cookie);
		else
			err = batch_add(&ob->entry, f->offset + f->entry_shift,
					sp_entry_cookie((__u32)i, flags, f->entry_sp_delta));
		if ((flags & SP_SYM_RET) && f->n_exit && fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		for (size_t k = 0; k < f->n_exit && !err; k++) {
			__u64 c = (flags & SP_SYM_RET) && is_tail_jump(fd, f->exit_offsets[k]) ?
				  sp_probe_cookie((__u32)i, flags | SP_SYM_TAILJMP) : cookie;

			err = batch_add(&ob->sites, f->exit_offsets[k], c);
		}
	}
	if (fd >= 0)
		close(fd);
	return err;
}

static int attach_one_usdt(struct sp_attach *a, pid_t pid, const struct sp_func *f,
			   const char *name, __u64 cookie)
{
	LIBBPF_OPTS(bpf_usdt_opts, o, .usdt_cookie = cookie);
	struct bpf_link *l = bpf_program__attach_usdt(a->skel->progs.sp_usdt, pid, f->open_path,
						      f->usdt_provider, name, &o);

	return l ? keep_link(a, l) : -errno;
}

/* USDT sources through libbpf, which reads the notes again, finds every
 * site of the probe and passes its semaphore to the kernel (the uprobe's
 * reference counter), so guarded probes fire only while attached. */
static int attach_usdts(struct sp_attach *a, pid_t pid, const struct sp_func_set *fs,
			size_t from, struct sp_attach_stats *st, char *err, size_t errlen)
{
	for (size_t i = from; i < fs->n; i++) {
		const struct sp_func *f = &fs->v[i];
		__u32 flags = sym_flags(f);
		int rc;

		if (f->problem || f->source == SP_SRC_FUNC)
			continue;
		if (f->source == SP_SRC_USDT_ERROR) {
			rc = attach_one_usdt(a, pid, f, f->usdt_start,
					     sp_probe_cookie((__u32)i, SP_SYM_USDT_ERROR));
		} else if (f->source == SP_SRC_USDT_EVENT) {
			rc = attach_one_usdt(a, pid, f, f->usdt_start,
					     sp_probe_cookie((__u32)i, SP_SYM_USDT_EVENT |
							     (f->n_caps ? SP_SYM_CAPS : 0)));
		} else {
			rc = attach_one_usdt(a, pid, f, f->usdt_start, sp_probe_cookie((__u32)i, flags));
			if (!rc)
				rc = attach_one_usdt(a, pid, f, f->usdt_done,
						     sp_probe_cookie((__u32)i, SP_SYM_USDT_DONE));
		}
		if (rc) {
			snprintf(err, errlen, "attaching USDT %s:%s in %s: %s", f->usdt_provider,
				 f->usdt_start, f->object, strerror(-rc));
			return rc;
		}
		st->functions++;
		st->probes += f->source == SP_SRC_USDT_PAIR ? 2 : 1;
	}
	return 0;
}

/* Attaches the functions of fs from index `from` on (those before are
 * attached already), one object at a time. */
static int attach_all(struct sp_attach *a, enum sp_attach_mode mode, pid_t pid,
		      const struct sp_func_set *fs, size_t from,
		      struct sp_attach_stats *st, char *err, size_t errlen)
{
	bool *done = calloc(fs->n ? fs->n : 1, sizeof(*done));
	int rc = done ? 0 : -ENOMEM;

	for (size_t i = 0; i < from && done; i++)
		done[i] = true;
	for (size_t i = from; i < fs->n && !rc; i++) {
		struct object_batches ob = { 0 };
		const char *path = fs->v[i].open_path;

		if (done[i] || fs->v[i].problem || fs->v[i].source != SP_SRC_FUNC)
			continue;
		rc = collect_object(fs, path, &ob, done);
		a->owner = path;
		if (!rc)
			rc = attach_object(a, mode, pid, path, &ob);
		a->owner = NULL;
		if (rc)
			snprintf(err, errlen, "attaching probes in %s (%s): %s",
				 fs->v[i].object, sp_attach_mode_name(mode), strerror(-rc));
		st->functions += ob.entry.n + ob.paired.n;
		st->probes += ob.entry.n + 2 * ob.paired.n + ob.sites.n;
		batches_free(&ob);
	}
	free(done);
	if (!rc)
		rc = attach_usdts(a, pid, fs, from, st, err, errlen);
	st->links = a->n_links;
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

static bool has_guard(const struct sp_func_set *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		if (fs->v[i].exit_mode == SP_EXIT_GUARD && !fs->v[i].problem)
			return true;
	return false;
}

static void configure_programs(struct spanprobe_bpf *sk, enum sp_attach_mode mode,
			       bool carriers, bool guard)
{
	enum bpf_attach_type multi = mode == SP_ATTACH_CLASSIC ? 0 : BPF_TRACE_UPROBE_MULTI;

	/* every context switch of the system runs it: only for carriers */
	bpf_program__set_autoload(sk->progs.sp_switch, carriers);
	bpf_program__set_autoload(sk->progs.sp_session, mode == SP_ATTACH_SESSION);
	bpf_program__set_autoload(sk->progs.sp_exit_ret, mode != SP_ATTACH_SESSION);
	/* the guard's programs (they signal threads) only where it is used */
	bpf_program__set_autoload(sk->progs.sp_guard, guard);
	bpf_program__set_autoload(sk->progs.sp_guard_iter, guard);
	bpf_program__set_expected_attach_type(sk->progs.sp_session, SP_TRACE_UPROBE_SESSION);
	bpf_program__set_expected_attach_type(sk->progs.sp_entry, multi);
	bpf_program__set_expected_attach_type(sk->progs.sp_exit_ret, multi);
	bpf_program__set_expected_attach_type(sk->progs.sp_exit_site, multi);
}

static int fill_sym_info(struct sp_attach *a, const struct sp_func_set *fs, size_t from)
{
	int fd = bpf_map__fd(a->skel->maps.sym_info);

	for (__u32 i = (__u32)from; i < fs->n && i < a->cap_funcs; i++) {
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

/* What each capturing function reads, by sym_id. */
static int fill_cap_cfg(struct sp_attach *a, const struct sp_func_set *fs, size_t from)
{
	int fd = bpf_map__fd(a->skel->maps.cap_cfg);

	for (__u32 i = (__u32)from; i < fs->n && i < a->cap_funcs; i++) {
		const struct sp_func *f = &fs->v[i];
		struct sp_cap_cfg c = { .n = f->n_caps, .err_cond = f->err_cond,
					.err_value = f->err_value };

		if (!f->n_caps && !f->err_cond)
			continue;
		for (unsigned k = 0; k < f->n_caps && k < SP_CAP_MAX; k++) {
			c.c[k] = (struct sp_cap_spec){ .src = f->caps[k].src, .type = f->caps[k].type,
						       .index = f->caps[k].index };
			/* the error condition reads the return value as its
			 * capture types it */
			if (f->caps[k].src == SP_CAP_RET)
				c.err_i32 = f->caps[k].type == SP_CAP_I32 ||
					    f->caps[k].type == SP_CAP_U32;
		}
		if (bpf_map_update_elem(fd, &i, &c, BPF_ANY))
			return -errno;
	}
	return 0;
}

/* How each future argument capture reads its field, by sym_id. */
static int fill_field_cfg(struct sp_attach *a, const struct sp_func_set *fs, size_t from)
{
	int fd = bpf_map__fd(a->skel->maps.field_cfg);

	for (__u32 i = (__u32)from; i < fs->n && i < a->cap_funcs; i++) {
		const struct sp_func *f = &fs->v[i];
		struct sp_field_cfg c = { 0 };
		bool any = false;

		for (unsigned k = 0; k < f->n_caps && k < SP_CAP_MAX; k++) {
			const struct sp_field_decl *d = &f->fields[k];

			if (f->caps[k].src != SP_CAP_FIELD)
				continue;
			c.f[k] = (struct sp_field_spec){ .off = d->off, .ptr_off = d->ptr_off,
							 .len_off = d->len_off, .kind = d->kind,
							 .size = d->size, .is_signed = d->is_signed };
			any = true;
		}
		if (any && bpf_map_update_elem(fd, &i, &c, BPF_ANY))
			return -errno;
	}
	return 0;
}

/* Each poll's Ready(Err(_)) tests (error=err), by sym_id. */
static int fill_poll_err_cfg(struct sp_attach *a, const struct sp_func_set *fs, size_t from)
{
	int fd = bpf_map__fd(a->skel->maps.poll_err_cfg);

	for (__u32 i = (__u32)from; i < fs->n && i < a->cap_funcs; i++) {
		const struct sp_func *f = &fs->v[i];
		const struct sp_result_err *r = &f->result_err;
		struct sp_poll_err_cfg c = { .n = r->n, .via_ptr = r->via_ptr };

		if (!poll_err_known(f))
			continue;
		for (unsigned k = 0; k < r->n && k < SP_PERR_TESTS; k++) {
			c.t[k].off = r->t[k].off;
			c.t[k].size = r->t[k].size;
			c.t[k].negate = r->t[k].negate;
			c.t[k].n = r->t[k].n;
			for (unsigned j = 0; j < r->t[k].n && j < SP_PERR_RANGES; j++) {
				c.t[k].lo[j] = r->t[k].lo[j];
				c.t[k].hi[j] = r->t[k].hi[j];
			}
		}
		if (bpf_map_update_elem(fd, &i, &c, BPF_ANY))
			return -errno;
	}
	return 0;
}

/* Each carrier's read list (user/resolve/async_nested.h), by sym_id, and
 * the same as bulk copies (user/attach/nested_ranges.h). */
static int fill_nested_reads(struct sp_attach *a, const struct sp_func_set *fs,
			     size_t from)
{
	int fd = bpf_map__fd(a->skel->maps.nested_reads);
	int fd_ranges = bpf_map__fd(a->skel->maps.nested_ranges);

	for (__u32 i = (__u32)from; i < fs->n && i < a->cap_funcs; i++) {
		const struct sp_nested_plan *pl = fs->v[i].nested;
		struct sp_read_list rl = { 0 };
		struct sp_read_ranges rr;

		if (!pl || !fs->v[i].is_async)
			continue;
		rl.n = pl->n_reads;
		memcpy(rl.r, pl->reads, pl->n_reads * sizeof(rl.r[0]));
		sp_nested_ranges_build(pl->reads, pl->n_reads, &rr);
		if (bpf_map_update_elem(fd, &i, &rl, BPF_ANY) ||
		    bpf_map_update_elem(fd_ranges, &i, &rr, BPF_ANY))
			return -errno;
	}
	return 0;
}

static int load_skeleton(struct sp_attach *a, pid_t tgid, const struct sp_func_set *fs,
			 const struct sp_attach_opts *o, enum sp_attach_mode mode,
			 char *err, size_t errlen)
{
	/* room for the functions of objects mapped later (dlopen) */
	__u32 n = (__u32)(fs->n + o->extra_funcs);
	int rc;

	n = n ? n : 1;
	a->cap_funcs = n;

	a->skel = spanprobe_bpf__open();
	if (!a->skel) {
		snprintf(err, errlen, "opening BPF object: %s", strerror(errno));
		return -1;
	}
	a->skel->rodata->target_tgid = o->follow_children || tgid < 0 ? 0 : tgid;
	a->skel->rodata->follow_children = o->follow_children;
	/* --exe (no tgid) lists its traced processes there too */
	if (!o->follow_children && tgid > 0)
		bpf_map__set_max_entries(a->skel->maps.followed, 1);
	a->skel->rodata->min_span_ns = o->min_span_ns;
	a->skel->rodata->guard_sig = a->guard_sig;
	if (o->ring_bytes)
		bpf_map__set_max_entries(a->skel->maps.records, o->ring_bytes);
	bpf_map__set_max_entries(a->skel->maps.sym_info, n);
	bpf_map__set_max_entries(a->skel->maps.sym_stats, n);
	bpf_map__set_max_entries(a->skel->maps.nested_reads, n);
	bpf_map__set_max_entries(a->skel->maps.nested_ranges, n);
	bpf_map__set_max_entries(a->skel->maps.cap_cfg, n);
	bpf_map__set_max_entries(a->skel->maps.poll_err_cfg, n);
	bpf_map__set_max_entries(a->skel->maps.field_cfg, n);
	/* a measurement knob (make bench): reads at poll entries and exits
	 * only, as before observation points; the context-switch hook stays
	 * out */
	a->skel->rodata->observe_points = !getenv("SPANPROBE_NO_OBSERVE");
	configure_programs(a->skel, mode, has_carriers(fs) && a->skel->rodata->observe_points,
			   has_guard(fs));
	rc = spanprobe_bpf__load(a->skel);
	if (!rc && o->follow_children) {
		__u32 key = (__u32)tgid;
		__u8 one = 1;

		rc = bpf_map_update_elem(bpf_map__fd(a->skel->maps.followed), &key, &one,
					 BPF_ANY) ? -errno : 0;
	}
	if (!rc)
		rc = fill_sym_info(a, fs, 0);
	if (!rc)
		rc = fill_nested_reads(a, fs, 0);
	if (!rc)
		rc = fill_cap_cfg(a, fs, 0);
	if (!rc)
		rc = fill_poll_err_cfg(a, fs, 0);
	if (!rc)
		rc = fill_field_cfg(a, fs, 0);
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
		drop_link(&a->links[i]);
	free(a->links);
	a->links = NULL;
	a->n_links = a->cap_links = 0;
}

/* The hooks go first: the guardian serves the stops they asked for
 * until none is pending, then lets the target go. */
static void stop_guard(struct sp_attach *a)
{
	sp_guard_stop(a->guard);
	a->guard = NULL;
}

static void detach_all(struct sp_attach *a)
{
	unlink_all(a);
	stop_guard(a);
	spanprobe_bpf__destroy(a->skel);
	a->skel = NULL;
}

void sp_attach_detach(struct sp_attach *a)
{
	unlink_all(a);
}

void sp_attach_release_guard(struct sp_attach *a)
{
	stop_guard(a);
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
 * switch reads the nested futures of a carrier poll open on the thread
 * (carriers found only in a library mapped later get no such reads). */
static int attach_hooks(struct sp_attach *a, const struct sp_func_set *fs,
			bool follow_children, char *err, size_t errlen)
{
	return attach_hook(a, a->skel->progs.sp_thread_exit, "thread-exit", err, errlen) ||
	       attach_hook(a, a->skel->progs.sp_exec, "exec", err, errlen) ||
	       (follow_children &&
		attach_hook(a, a->skel->progs.sp_fork, "fork", err, errlen)) ||
	       (has_carriers(fs) && a->skel->rodata->observe_points &&
		attach_hook(a, a->skel->progs.sp_switch, "context-switch", err, errlen)) ? -1 : 0;
}

/* The unwinder's entries, where the guard restores or re-arms. */
static const struct {
	const char *func;
	__u32 kind, flags;
} guard_hooks[] = {
	{ "_Unwind_RaiseException", SP_GUARD_THROW, SP_SYM_GUARD_RESTORE },
	{ "_Unwind_Resume_or_Rethrow", SP_GUARD_THROW, SP_SYM_GUARD_RESTORE },
	{ "_Unwind_ForcedUnwind", SP_GUARD_FORCED, SP_SYM_GUARD_RESTORE },
	{ "_Unwind_Resume", SP_GUARD_RESUME, SP_SYM_GUARD_RESTORE },
	{ "_Unwind_SetIP", SP_GUARD_SETIP, SP_SYM_GUARD_REARM },
};

struct guard_arm_arg {
	struct sp_attach *a;
	pid_t tgid;
	const char *unwinder;
};

/* Where libc's longjmp lives in the process (as attach opens it), or
 * an empty string (a static program: its own longjmp is not hooked). */
static void libc_path(pid_t tgid, char *out, size_t len)
{
	char maps[64], line[4096];
	FILE *f;

	out[0] = 0;
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)tgid);
	if (!(f = fopen(maps, "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');

		if (!path || !strstr(path, "/libc.so"))
			continue;
		path[strcspn(path, "\n")] = 0;
		snprintf(out, len, "/proc/%d/root%s", (int)tgid, path);
		break;
	}
	fclose(f);
}

static int guard_hook(struct sp_attach *a, pid_t tgid, const char *path, const char *func,
		      __u32 kind, __u32 flags, int *fds, size_t max, size_t *n)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = func,
		    .bpf_cookie = sp_probe_cookie(kind, flags));
	struct bpf_link *l = bpf_program__attach_uprobe_opts(a->skel->progs.sp_guard, tgid,
							     path, 0, &uo);

	if (!l)
		return -errno;
	if (*n < max)
		fds[(*n)++] = bpf_link__fd(l);
	return 0;
}

/* _Unwind_Backtrace sees whole stacks: restored at its entry, re-armed
 * at its ret sites. Best effort: without its exits its entry is not
 * hooked either (restored slots would lose their exits for good). */
static void guard_backtrace(struct guard_arm_arg *g, int *fds, size_t max, size_t *n)
{
	uint64_t offs[32];
	size_t k = 0;
	char why[256];

	/* the knob exists only for guard_backtrace's self-check: without
	 * these hooks its fixture's traces must come out short */
	if (getenv("SPANPROBE_TEST_NO_BACKTRACE_HOOK"))
		return;
	if (sp_backtrace_ret_sites(g->unwinder, offs, 32, &k, why, sizeof(why))) {
		fprintf(stderr, "spanprobe: unwind guard: backtraces through guarded frames stop "
			"there: %s\n", why);
		return;
	}
	for (size_t i = 0; i < k; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo,
			    .bpf_cookie = sp_probe_cookie(SP_GUARD_BACKTRACE_RET, SP_SYM_GUARD_REARM));
		struct bpf_link *l = bpf_program__attach_uprobe_opts(g->a->skel->progs.sp_guard,
								     g->tgid, g->unwinder,
								     (size_t)offs[i], &uo);

		if (!l || *n >= max) {
			bpf_link__destroy(l);
			goto undo;
		}
		fds[(*n)++] = bpf_link__fd(l);
	}
	if (!guard_hook(g->a, g->tgid, g->unwinder, "_Unwind_Backtrace", SP_GUARD_BACKTRACE,
			SP_SYM_GUARD_RESTORE, fds, max, n))
		return;
undo:
	/* the ret-site links alone do nothing (no slot remembered) */
	fprintf(stderr, "spanprobe: unwind guard: cannot hook _Unwind_Backtrace in %s\n",
		g->unwinder);
}

/* Runs in the guardian: the links are its own. */
static int guard_arm(void *arg, int *fds, size_t max, size_t *n, int *iter_fd, char *err,
		     size_t errlen)
{
	static const char *const jumps[] = { "longjmp", "__longjmp_chk" };
	struct guard_arm_arg *g = arg;
	struct bpf_link *it;
	char libc[4200];
	int rc;

	for (size_t i = 0; i < sizeof(guard_hooks) / sizeof(guard_hooks[0]); i++)
		if ((rc = guard_hook(g->a, g->tgid, g->unwinder, guard_hooks[i].func,
				     guard_hooks[i].kind, guard_hooks[i].flags, fds, max, n))) {
			snprintf(err, errlen, "unwind guard: probing %s in %s: %s",
				 guard_hooks[i].func, g->unwinder, strerror(-rc));
			return -1;
		}
	/* frames a longjmp leaves must never be written: best effort (a
	 * program with longjmp linked in statically is not hooked). The
	 * knob exists only for the test (guard_stale) that proves, without
	 * these hooks, that its fixture does get a stale slot written */
	libc_path(g->tgid, libc, sizeof(libc));
	if (getenv("SPANPROBE_TEST_NO_LONGJMP_HOOK"))
		libc[0] = 0;
	for (size_t i = 0; libc[0] && i < 2; i++)
		guard_hook(g->a, g->tgid, libc, jumps[i], SP_GUARD_LONGJMP, 0, fds, max, n);
	guard_backtrace(g, fds, max, n);
	it = bpf_program__attach_iter(g->a->skel->progs.sp_guard_iter, NULL);
	if (!it) {
		snprintf(err, errlen, "unwind guard: the task iterator: %s", strerror(errno));
		return -1;
	}
	*iter_fd = bpf_link__fd(it);
	if (*n < max)
		fds[(*n)++] = *iter_fd;
	return 0;
}

/* Before any uretprobe exists: the guardian holds every thread and
 * the unwinder's entries are hooked. */
static int start_guard(struct sp_attach *a, pid_t tgid, const struct sp_attach_opts *o,
		       char *err, size_t errlen)
{
	struct guard_arm_arg arg = { a, tgid, o->unwinder };
	struct sp_guard_arm arm = { guard_arm, &arg };

	if (!o->unwinder)
		return 0;
	return sp_guard_start(&a->guard, tgid, bpf_map__fd(a->skel->maps.guard_recs),
			      a->guard_sig, &arm, err, errlen);
}

static int try_attach(struct sp_attach *a, pid_t tgid, const struct sp_func_set *fs,
		      const struct sp_attach_opts *o, enum sp_attach_mode mode,
		      struct sp_attach_stats *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	a->link_pid = o->follow_children || tgid <= 0 ? -1 : tgid;
	if (load_skeleton(a, tgid, fs, o, mode, err, errlen) ||
	    start_guard(a, tgid, o, err, errlen) ||
	    attach_hooks(a, fs, o->follow_children, err, errlen) ||
	    attach_all(a, mode, a->link_pid, fs, 0, st, err, errlen)) {
		detach_all(a);
		return -1;
	}
	a->mode = mode;
	return 0;
}

int sp_attach_open(struct sp_attach **out, pid_t tgid,
		   const struct sp_func_set *funcs, const struct sp_attach_opts *o,
		   struct sp_attach_stats *st, char *err, size_t errlen)
{
	struct sp_attach *a = calloc(1, sizeof(*a));
	/* Older kernels lack sessions (6.13) or uprobe_multi (6.6): fall back,
	 * paying attach time or a return probe outside queries. */
	enum sp_attach_mode last = o->exact ? o->best : SP_ATTACH_CLASSIC;
	int rc = -1;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->ncpus = libbpf_num_possible_cpus();
	if (o->unwinder && (o->follow_children || tgid <= 0)) {
		snprintf(err, errlen, "unwind guard: only for one process (-p PID or run)");
		free(a);
		return -1;
	}
	if (o->unwinder && (a->guard_sig = sp_guard_check(tgid, err, errlen)) < 0) {
		free(a);
		return -1;
	}
	for (enum sp_attach_mode m = o->best; m <= last && rc; m++) {
		rc = try_attach(a, tgid, funcs, o, m, st, err, errlen);
		if (rc && m < last)
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

pid_t sp_attach_guard_pid(const struct sp_attach *a)
{
	return sp_guard_pid(a->guard);
}

void sp_attach_guard_stats(const struct sp_attach *a, struct sp_guard_stats *g)
{
	const struct spanprobe_bpf__bss *b = a->skel ? a->skel->bss : NULL;

	memset(g, 0, sizeof(*g));
	if (!b)
		return;
	g->words = __atomic_load_n(&b->guard_words, __ATOMIC_RELAXED);
	g->idle = __atomic_load_n(&b->guard_idle, __ATOMIC_RELAXED);
	g->lost = __atomic_load_n(&b->guard_lost, __ATOMIC_RELAXED);
	g->stale = __atomic_load_n(&b->guard_stale, __ATOMIC_RELAXED);
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
		out->errors += s->errors;
		for (int b = 0; b < SP_HIST_BUCKETS; b++)
			out->hist[b] += s->hist[b];
	}
	free(percpu);
	return rc ? -errno : 0;
}

int sp_attach_more(struct sp_attach *a, const struct sp_func_set *funcs,
		   size_t from, struct sp_attach_stats *st, char *err, size_t errlen)
{
	int rc;

	memset(st, 0, sizeof(*st));
	for (size_t i = a->cap_funcs; i < funcs->n; i++) {
		if (!funcs->v[i].problem) {
			snprintf(err, errlen, "function %zu past the room for %zu", i, a->cap_funcs);
			return -1;
		}
	}
	rc = fill_sym_info(a, funcs, from);
	if (!rc)
		rc = fill_nested_reads(a, funcs, from);
	if (!rc)
		rc = fill_cap_cfg(a, funcs, from);
	if (!rc)
		rc = fill_poll_err_cfg(a, funcs, from);
	if (!rc)
		rc = fill_field_cfg(a, funcs, from);
	if (rc) {
		snprintf(err, errlen, "describing new functions to BPF: %s", strerror(-rc));
		return -1;
	}
	return attach_all(a, a->mode, a->link_pid, funcs, from, st, err, errlen) ? -1 : 0;
}

size_t sp_attach_release(struct sp_attach *a, const char *open_path)
{
	size_t kept = 0, released = 0;

	for (size_t i = 0; i < a->n_links; i++) {
		if (a->links[i].owner && !strcmp(a->links[i].owner, open_path)) {
			drop_link(&a->links[i]);
			released++;
		} else {
			a->links[kept++] = a->links[i];
		}
	}
	a->n_links = kept;
	return released;
}

int sp_attach_dl_hook(struct sp_attach *a, pid_t tgid, const char *open_path,
		      uint64_t offset, char *err, size_t errlen)
{
	struct bpf_link *l = bpf_program__attach_uprobe(a->skel->progs.sp_dl_change, false,
							a->link_pid < 0 || !tgid ? -1 : tgid,
							open_path, offset);
	int rc = l ? keep_link(a, l) : -errno;

	if (rc)
		snprintf(err, errlen, "probing the dynamic linker's rendezvous in %s: %s",
			 open_path, strerror(-rc));
	return rc ? -1 : 0;
}

static void dl_owner(pid_t tgid, char *buf, size_t len)
{
	snprintf(buf, len, "\1dl-hook:%d", (int)tgid); /* never a path */
}

int sp_attach_dl_hook_pid(struct sp_attach *a, pid_t tgid, const char *open_path,
			  uint64_t offset, char *err, size_t errlen)
{
	struct bpf_link *l = bpf_program__attach_uprobe(a->skel->progs.sp_dl_change, false, tgid,
							open_path, offset);
	const char *was = a->owner;
	char owner[32];
	int rc;

	dl_owner(tgid, owner, sizeof(owner));
	a->owner = owner;
	rc = l ? keep_link(a, l) : -errno;
	a->owner = was;
	if (rc)
		snprintf(err, errlen, "probing the dynamic linker's rendezvous in %s for pid %d: %s",
			 open_path, (int)tgid, strerror(-rc));
	return rc ? -1 : 0;
}

void sp_attach_dl_unhook_pid(struct sp_attach *a, pid_t tgid)
{
	char owner[32];

	dl_owner(tgid, owner, sizeof(owner));
	sp_attach_release(a, owner);
}

int sp_attach_follow_pid(struct sp_attach *a, pid_t tgid, bool on)
{
	int fd = bpf_map__fd(a->skel->maps.followed);
	__u32 key = (__u32)tgid;
	__u8 one = 1;

	return on ? bpf_map_update_elem(fd, &key, &one, BPF_ANY) : bpf_map_delete_elem(fd, &key);
}

size_t sp_attach_capacity(const struct sp_attach *a)
{
	return a->cap_funcs;
}

uint64_t sp_attach_maps_lost(const struct sp_attach *a)
{
	return __atomic_load_n(&a->skel->bss->maps_lost, __ATOMIC_RELAXED);
}

void sp_attach_close(struct sp_attach *a)
{
	if (!a)
		return;
	detach_all(a);
	free(a);
}
