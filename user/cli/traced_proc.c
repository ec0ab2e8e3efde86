#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "cli/traced_proc.h"
#include "symbols/proc_maps.h"

static void on_kept(void *arg, struct sp_span *spans, size_t n)
{
	struct sp_traced_proc *p = arg;

	p->ctx->kept(p->ctx->arg, p, spans, n);
}

/* Its identity: /proc, read after the pidfd was opened, says which
 * process the pidfd is; BPF's start time, when known, says whether that
 * is the process the records came from. */
static void read_identity(struct sp_traced_proc *p, const char *exe_hint, bool read_exe)
{
	uint64_t bpf_start = sp_boottime_to_wall(p->start_boot);

	if (sp_proc_info(p->pid, read_exe ? &p->exe : NULL, &p->start_ns, NULL, 0))
		p->start_ns = 0;
	if (bpf_start && p->start_ns != bpf_start) {
		/* gone, and its pid maybe someone else's already */
		if (p->pidfd >= 0)
			close(p->pidfd);
		p->pidfd = -1;
		free(p->exe);
		p->exe = NULL;
		p->start_ns = bpf_start;
	}
	if (!p->exe)
		p->exe = strdup(exe_hint ? exe_hint : "?");
}

bool sp_proc_other_life(const struct sp_traced_proc *p, uint64_t start_boot)
{
	if (!start_boot)
		return false;
	if (p->start_boot)
		return p->start_boot != start_boot;
	return p->start_ns && p->start_ns != sp_boottime_to_wall(start_boot);
}

struct sp_traced_proc *sp_proc_new(const struct sp_proc_ctx *c, pid_t pid,
				   const char *exe_hint, bool read_exe, uint64_t start_boot)
{
	static uint64_t serials;
	struct sp_traced_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pid = pid;
	p->ctx = c;
	p->start_boot = start_boot;
	p->serial = ++serials;
	/* opened first, so that a pid reused later is never mistaken */
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	read_identity(p, exe_hint, read_exe);
	p->filter = sp_filter_new(c->min_span_ns, c->min_query_ns, on_kept, p);
	p->asm_ = sp_asm_new(c->syms, c->n_syms, (uint32_t)pid, sp_filter_span,
			     sp_filter_discard, p->filter);
	if (p->asm_) {
		sp_asm_set_caps(p->asm_, c->funcs);
		sp_asm_set_redact(p->asm_, c->redact);
	}
	p->held = p->asm_ ? sp_held_new(c->funcs, p->asm_, c->spawn_hold_ns) : NULL;
	if (!p->exe || !p->filter || !p->asm_ || !p->held) {
		sp_proc_free(p);
		return NULL;
	}
	return p;
}

void sp_proc_record(struct sp_traced_proc *p, const void *data, size_t len)
{
	__u32 kind = *(const __u32 *)data;

	if (kind == SP_RK_SPAN && len >= sizeof(struct sp_span_rec))
		sp_held_span(p->held, data);
	else if (kind == SP_RK_NESTED && len >= sizeof(struct sp_nested_rec))
		sp_held_nested(p->held, data);
	else if (kind == SP_RK_CAPS && len >= sizeof(struct sp_cap_rec))
		sp_asm_caps(p->asm_, data);
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* linux 6.9 */
#endif

/* One thread's stack, if it has one. Task storage is keyed by a pidfd of
 * the thread and cannot be listed, so the threads come from /proc. */
static void flush_thread(struct sp_traced_proc *p, int map_fd, pid_t tid, uint64_t now,
			 struct sp_span_rec **recs, size_t *n)
{
	int tfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	struct sp_thread st;

	/* before 6.9 only a thread-group leader has a pidfd */
	if (tfd < 0 && errno == EINVAL)
		tfd = (int)syscall(SYS_pidfd_open, tid, 0);
	if (tfd < 0)
		return; /* exited meanwhile: its exit hook ended its calls */
	if (bpf_map_lookup_elem(map_fd, &tfd, &st) == 0 && st.n)
		sp_asm_flush_thread(p->asm_, (uint32_t)tid, &st, now, recs, n);
	close(tfd);
}

static void flush_threads(struct sp_traced_proc *p, uint64_t now,
			  struct sp_span_rec **recs, size_t *n)
{
	int fd = sp_attach_threads_fd(p->ctx->att);
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)p->pid);
	d = opendir(path);
	if (!d)
		return; /* the process is gone: every thread's exit hook ran */
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			flush_thread(p, fd, (pid_t)atoi(de->d_name), now, recs, n);
	closedir(d);
}

/* Its futures still running: their span is cut off at now, like calls,
 * and their entries leave the map (a process that is gone polls nothing). */
static void flush_futures(struct sp_traced_proc *p, uint64_t now,
			  struct sp_span_rec **recs, size_t *n)
{
	int fd = sp_attach_futures_fd(p->ctx->att);
	struct sp_future_key key, next, *prev = NULL;
	struct sp_future fu;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		struct sp_span_rec *v;

		key = next;
		if (next.tgid != (__u32)p->pid) {
			prev = &key;
			continue;
		}
		if (bpf_map_lookup_elem(fd, &next, &fu) == 0 &&
		    (v = realloc(*recs, (*n + 1) * sizeof(*v)))) {
			*recs = v;
			memset(&v[*n], 0, sizeof(*v));
			sp_fill_future_rec(&v[*n], &fu, next.sym_id, now,
					   SP_REC_ABNORMAL | SP_REC_INCOMPLETE);
			v[*n].obj = next.obj;
			v[*n].tgid = (__u32)p->pid;
			(*n)++;
		}
		/* deleting the current key restarts the walk */
		if (bpf_map_delete_elem(fd, &key) == 0)
			prev = NULL;
		else
			prev = &key;
	}
}

void sp_proc_flush(struct sp_traced_proc *p, uint64_t now, bool live)
{
	struct sp_span_rec *recs = NULL;
	size_t n = 0;

	if (live)
		flush_threads(p, now, &recs, &n);
	flush_futures(p, now, &recs, &n);
	sp_held_flush(p->held, recs, n);
	free(recs);
}

static void add_asm(struct sp_asm_stats *t, const struct sp_asm_stats *a)
{
	t->records += a->records;
	t->spans += a->spans;
	t->abnormal += a->abnormal;
	t->lost_queries += a->lost_queries;
	t->bad_records += a->bad_records;
}

void sp_proc_add_totals(const struct sp_traced_proc *p, struct sp_proc_totals *t)
{
	const struct sp_filter_stats *f = sp_filter_stats(p->filter);
	const struct sp_held_stats *h = sp_held_stats(p->held);

	add_asm(&t->as, sp_asm_stats(p->asm_));
	t->fs.queries_seen += f->queries_seen;
	t->fs.queries_kept += f->queries_kept;
	t->fs.spans_kept += f->spans_kept;
	t->fs.spans_dropped += f->spans_dropped;
	t->hs.nested_records += h->nested_records;
	t->hs.nested_spans += h->nested_spans;
	t->hs.linked_tasks += h->linked_tasks;
	t->hs.own_root_tasks += h->own_root_tasks;
	t->hs.outside += h->outside;
	t->hs.lost += h->lost;
}

void sp_proc_free(struct sp_traced_proc *p)
{
	if (!p)
		return;
	sp_lib_follow_free(p->libs);
	sp_held_free(p->held);
	sp_asm_free(p->asm_);
	sp_filter_free(p->filter);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p->exe);
	free(p);
}
