#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "resolve/async_nested.h"
#include "spans/async_queries.h"
#include "resolve/async_visibility.h"
#include "attach/attach.h"
#include "base/clock.h"
#include "symbols/proc_maps.h"
#include "spans/query_filter.h"
#include "sinks/sinks.h"
#include "stats/kept_count.h"
#include "spans/span_assembler.h"
#include "stats/stats_session.h"
#include "cli/trace_session.h"

#define DRAIN_INTERVAL_MS 20
/* A spawned task waits this long after its end for its spawner's
 * carrier to claim it through the JoinHandle. */
#define SPAWN_HOLD_NS 2000000000ull

volatile int sp_stop_signal;

struct sp_session {
	pid_t pid;
	int pidfd;
	const struct sp_trace_opts *o;
	struct sp_pattern_list pats;
	struct sp_func_set funcs;
	struct sp_asm_sym *syms;
	struct sp_attach *att;
	struct sp_attach_stats ast;
	struct ring_buffer *rb;
	struct sp_assembler *asm_;
	struct sp_held *held;    /* nested async spans, spawned-task links */
	size_t n_syms;
	struct sp_filter *filter;
	struct sp_sinks sinks;
	struct sp_kept_count *kept; /* kept spans per function, for advice */
	uint64_t dropped;
	uint64_t start_mono;
	uint64_t tramp_lo, tramp_hi;
	char *exe;
	const char *end_reason;
	bool reaped; /* run: the child's status has been collected */
};

static void on_stop(int sig)
{
	sp_stop_signal = sig;
}

void sp_install_stop_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	/* no SA_RESTART: poll() must return so the loop sees the flag */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* BPF tells a tail call from a longjmp by the return trampoline in the
 * slot. The kernel maps it ([uprobes]) on the first hijacked return. */
static void update_trampoline(struct sp_session *s)
{
	if (s->tramp_hi || sp_proc_special_mapping(s->pid, "[uprobes]", &s->tramp_lo, &s->tramp_hi))
		return;
	sp_attach_set_trampoline(s->att, s->tramp_lo, s->tramp_hi);
}

static int handle_event(void *ctx, void *data, size_t len)
{
	struct sp_session *s = ctx;

	/* a block written for this record must count the losses before it */
	s->dropped = sp_attach_dropped(s->att);
	if (len < sizeof(__u32))
		return 0;
	if (len >= sizeof(struct sp_span_rec) && *(const __u32 *)data == SP_RK_SPAN)
		sp_held_span(s->held, data);
	else if (len >= sizeof(struct sp_nested_rec) && *(const __u32 *)data == SP_RK_NESTED)
		sp_held_nested(s->held, data);
	return 0;
}

static size_t count_unmatched(const struct sp_session *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->pats.n; i++)
		n += !s->pats.v[i].matches;
	return n;
}

/* A pattern that matched nothing may still name an async fn: the same
 * line as `spanprobe symbols` says what it is and why it gives nothing
 * (rep: the analysis of the target, run only when some pattern matched
 * nothing). */
static void why_unmatched(const struct sp_avis_report *rep, size_t i, char *why, size_t len)
{
	why[0] = '\0';
	if (i < rep->n)
		sp_avis_pattern_text(&rep->v[i], why, len);
}

static void warn_unmatched(const struct sp_session *s, const struct sp_avis_report *rep)
{
	char why[2048];

	for (size_t i = 0; i < s->pats.n; i++) {
		const struct sp_pattern *p = &s->pats.v[i];

		if (p->matches)
			continue;
		why_unmatched(rep, i, why, sizeof(why));
		fprintf(stderr, "spanprobe: %s: %s:%d: pattern '%s' matched nothing%s%s\n",
			s->o->strict ? "error" : "warning", p->file, p->line, p->glob,
			*why ? ": " : "", why);
	}
}

/* Something a root pattern named will be traced: an attachable probed
 * function, or an async fn inlined into an attachable carrier. */
static bool root_traced(const struct sp_session *s)
{
	for (size_t i = 0; i < s->funcs.n; i++) {
		const struct sp_func *f = &s->funcs.v[i];

		if (f->problem)
			continue;
		if (f->pattern >= 0 && f->role == SP_ROLE_ROOT)
			return true;
		for (size_t k = 0; f->nested && k < f->nested->n; k++)
			if (f->nested->nodes[k].role == SP_ROLE_ROOT)
				return true;
	}
	return false;
}

/* What root pattern i resolved to, for the error when no root is traced. */
static void root_resolution(const struct sp_session *s, const struct sp_avis_report *rep,
			    size_t i)
{
	const struct sp_pattern *p = &s->pats.v[i];
	char why[2048];
	size_t found = 0;

	for (size_t k = 0; k < s->funcs.n; k++) {
		const struct sp_func *f = &s->funcs.v[k];

		if (f->pattern != (int)i)
			continue;
		fprintf(stderr, "  %s:%d: root '%s': %s: not attachable: %s\n", p->file, p->line,
			p->glob, f->demangled, f->problem ? f->problem : "?");
		found++;
	}
	if (found)
		return;
	if (p->matches) {
		/* an inlined async fn whose carrier cannot be attached */
		fprintf(stderr, "  %s:%d: root '%s': its carrier cannot be attached\n", p->file,
			p->line, p->glob);
		return;
	}
	why_unmatched(rep, i, why, sizeof(why));
	fprintf(stderr, "  %s:%d: root '%s': matched nothing%s%s\n", p->file, p->line, p->glob,
		*why ? ": " : "", why);
}

/* Without a traced root there is no query, so nothing would ever be
 * kept: an error naming every root pattern and what it resolved to. */
static int check_roots(const struct sp_session *s, const struct sp_avis_report *rep)
{
	if (root_traced(s))
		return 0;
	fprintf(stderr, "spanprobe: error: %s: no `root` pattern attached anything, so no query "
		"can be seen:\n", s->o->symbols);
	for (size_t i = 0; i < s->pats.n; i++)
		if (s->pats.v[i].role == SP_ROLE_ROOT)
			root_resolution(s, rep, i);
	return -1;
}

static void warn_problems(const struct sp_session *s)
{
	for (size_t i = 0; i < s->funcs.n; i++)
		if (s->funcs.v[i].problem)
			fprintf(stderr, "spanprobe: warning: %s (%s): not attached: %s\n",
				s->funcs.v[i].demangled, s->funcs.v[i].object,
				s->funcs.v[i].problem);
}

static int resolve(struct sp_session *s, const char *binary)
{
	struct sp_avis_report rep = { 0 };
	char err[512];
	size_t attachable = 0;
	int rc;

	if (sp_symlist_parse_file(s->o->symbols, &s->pats, err, sizeof(err)) ||
	    (binary ? sp_resolve_program(binary, &s->pats, s->o->exit_policy,
					 &s->funcs, err, sizeof(err))
		    : sp_resolve(s->pid, NULL, &s->pats, s->o->exit_policy,
				 &s->funcs, err, sizeof(err)))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		return -1;
	}
	if (count_unmatched(s) &&
	    sp_avis_for_target(binary ? 0 : s->pid, binary, binary != NULL, &s->pats,
			       &s->funcs, &rep, err, sizeof(err)))
		fprintf(stderr, "spanprobe: warning: %s\n", err);
	warn_unmatched(s, &rep);
	warn_problems(s);
	for (size_t i = 0; i < s->funcs.n; i++)
		attachable += !s->funcs.v[i].problem;
	if (s->o->strict && count_unmatched(s))
		rc = -1;
	else if (!attachable) {
		fprintf(stderr, "spanprobe: %s: no attachable function matched\n", s->o->symbols);
		rc = -1;
	} else {
		rc = check_roots(s, &rep);
	}
	sp_avis_free(&rep);
	return rc;
}

/* Kept queries are counted per function (pruning advice) on their way to
 * the sinks. */
static void on_kept_query(void *arg, struct sp_span *spans, size_t n)
{
	struct sp_session *s = arg;

	sp_kept_count_add(s->kept, spans, n);
	sp_sinks_query(&s->sinks, spans, n);
}

/* The assembler names spans by symbol: the probed functions, then the
 * named async fns inlined into carriers. */
static int build_syms(struct sp_session *s)
{
	size_t n = s->funcs.n;

	for (size_t i = 0; i < s->funcs.n; i++)
		n += sp_nested_plan_named(s->funcs.v[i].nested);
	s->syms = calloc(n ? n : 1, sizeof(*s->syms));
	if (!s->syms)
		return -1;
	for (size_t i = 0; i < s->funcs.n; i++) {
		s->syms[i].name = s->funcs.v[i].demangled;
		s->syms[i].root = s->funcs.v[i].role == SP_ROLE_ROOT;
	}
	s->n_syms = s->funcs.n;
	for (size_t i = 0; i < s->funcs.n; i++) {
		struct sp_nested_plan *pl = s->funcs.v[i].nested;

		for (size_t k = 0; pl && k < pl->n; k++) {
			struct sp_nested_node *nd = &pl->nodes[k];

			if (nd->role < 0)
				continue;
			nd->name_sym = (uint32_t)s->n_syms;
			s->syms[s->n_syms].name = nd->name;
			s->syms[s->n_syms++].root = nd->role == SP_ROLE_ROOT;
		}
	}
	return 0;
}

static int build_pipeline(struct sp_session *s)
{
	if (build_syms(s))
		return -1;
	s->kept = sp_kept_count_new(&s->funcs);
	s->filter = sp_filter_new(s->o->min_span_ns, s->o->min_query_ns,
				  on_kept_query, s);
	s->asm_ = sp_asm_new(s->syms, s->n_syms, s->pid, sp_filter_span,
			     sp_filter_discard, s->filter);
	s->held = s->asm_ ? sp_held_new(&s->funcs, s->asm_, SPAWN_HOLD_NS) : NULL;
	return s->kept && s->filter && s->asm_ && s->held ? 0 : -1;
}

static int open_sinks(struct sp_session *s, const char *binary)
{
	char err[512];
	uint64_t start = 0;

	/* a child about to exec still shows our own exe; its start time
	 * survives the exec */
	if (sp_proc_info(s->pid, binary ? NULL : &s->exe, &start, err, sizeof(err)) || !s->exe)
		s->exe = strdup(binary ? binary : "?");
	s->sinks.wall_offset = sp_wall_offset();
	s->sinks.print_trees = !s->o->output;
	s->sinks.dropped = &s->dropped;
	s->sinks.meta.version = SP_BLOCK_VERSION;
	s->sinks.meta.pid = s->pid;
	s->sinks.meta.exe = s->exe;
	s->sinks.meta.proc_start_ns = start;
	if ((s->o->output && sp_sinks_open_blocks(&s->sinks, s->o->output, err, sizeof(err))) ||
	    sp_sinks_open_exports(&s->sinks, &s->o->exports, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		return -1;
	}
	return 0;
}

static int attach(struct sp_session *s)
{
	struct sp_attach_opts ao = { .min_span_ns = s->o->min_span_ns,
				     .ring_bytes = s->o->ring_bytes, .best = s->o->attach_mode };
	char err[512];

	if (sp_attach_open(&s->att, s->pid, &s->funcs, &ao, &s->ast, err, sizeof(err))) {
		if (kill(s->pid, 0) && errno == ESRCH)
			fprintf(stderr, "spanprobe: pid %d exited during attach\n", s->pid);
		else
			fprintf(stderr, "spanprobe: %s\n", err);
		return -1;
	}
	s->rb = ring_buffer__new(sp_attach_records_fd(s->att), handle_event, s, NULL);
	if (!s->rb) {
		fprintf(stderr, "spanprobe: ring buffer: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void session_free(struct sp_session *s)
{
	ring_buffer__free(s->rb);
	sp_attach_close(s->att);
	sp_held_free(s->held);
	sp_asm_free(s->asm_);
	sp_filter_free(s->filter);
	sp_kept_count_free(s->kept);
	sp_sinks_close(&s->sinks);
	sp_func_set_free(&s->funcs);
	sp_symlist_free(&s->pats);
	if (s->pidfd >= 0)
		close(s->pidfd);
	free(s->syms);
	free(s->exe);
	free(s);
}

struct sp_session *sp_session_start(pid_t pid, const char *binary,
				    const struct sp_trace_opts *o)
{
	struct sp_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->pid = pid;
	s->o = o;
	/* opened first so a pid that dies and is reused is never mistaken */
	s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (s->pidfd < 0) {
		fprintf(stderr, "spanprobe: pid %d: %s\n", pid,
			errno == ESRCH ? "no such process" : strerror(errno));
		free(s);
		return NULL;
	}
	if (resolve(s, binary) || open_sinks(s, binary) || build_pipeline(s) || attach(s)) {
		session_free(s);
		return NULL;
	}
	s->start_mono = sp_now_mono();
	fprintf(stderr, "spanprobe: attached %zu probes on %zu functions to pid %d (%s)\n",
		s->ast.probes, s->ast.functions, pid,
		sp_attach_mode_name(s->ast.mode));
	return s;
}

static void check_loss(struct sp_session *s)
{
	/* the queries that lost records are flagged by BPF itself */
	s->dropped = sp_attach_dropped(s->att);
}

static void status_line(struct sp_session *s, uint64_t now, uint64_t *last,
			uint64_t *last_events)
{
	const struct sp_filter_stats *fs = sp_filter_stats(s->filter);
	uint64_t ev = sp_asm_stats(s->asm_)->records;

	if (now - *last < 1000000000ull)
		return;
	fprintf(stderr, "\r\033[K%zu probes | %.0f spans/s out of the kernel | queries %llu seen, %llu kept | %llu lost",
		s->ast.probes, (double)(ev - *last_events) * 1e9 / (double)(now - *last),
		(unsigned long long)fs->queries_seen, (unsigned long long)fs->queries_kept,
		(unsigned long long)s->dropped);
	sp_sinks_status(stderr, &s->sinks);
	*last = now;
	*last_events = ev;
}

static bool target_gone(struct sp_session *s, bool is_child, int *status)
{
	struct pollfd p = { .fd = s->pidfd, .events = POLLIN };

	if (poll(&p, 1, DRAIN_INTERVAL_MS) <= 0)
		return false;
	if (is_child && waitpid(s->pid, status, 0) == s->pid)
		s->reaped = true;
	return true;
}

int sp_session_loop(struct sp_session *s, bool is_child, int *status)
{
	bool tty = isatty(STDERR_FILENO);
	uint64_t last = s->start_mono, last_events = 0;

	for (;;) {
		bool gone = target_gone(s, is_child, status);
		uint64_t now = sp_now_mono();

		ring_buffer__consume(s->rb);
		sp_held_tick(s->held, now);
		check_loss(s);
		update_trampoline(s);
		if (gone) {
			s->end_reason = "the process exited";
			break;
		}
		/* run's own child execs once, into the command */
		if (sp_attach_exec_count(s->att) > (is_child ? 1u : 0u)) {
			s->end_reason = "the process called exec";
			break;
		}
		if (sp_stop_signal && !is_child) {
			s->end_reason = strsignal(sp_stop_signal);
			break;
		}
		if (sp_stop_signal && is_child)
			kill(s->pid, sp_stop_signal), sp_stop_signal = 0;
		if (s->o->duration_ns && now - s->start_mono >= s->o->duration_ns) {
			s->end_reason = "the duration elapsed";
			break;
		}
		if (tty)
			status_line(s, now, &last, &last_events);
	}
	if (tty)
		fputs("\r\033[K", stderr);
	return s->reaped;
}

/* Per-symbol figures: always into the block file (so `spanprobe stats`
 * works on any file), printed and turned into advice on request. */
static int report_stats(struct sp_session *s, uint64_t end)
{
	struct sp_stats_session st = {
		.att = s->att, .funcs = &s->funcs, .pats = &s->pats,
		.symbols_path = s->o->symbols, .kept_in_slow = sp_kept_count_get(s->kept),
		.min_span_ns = s->o->min_span_ns, .blocks = s->sinks.blocks,
		.meta = &s->sinks.meta,
		.begin_ns = s->start_mono + s->sinks.wall_offset,
		.end_ns = end + s->sinks.wall_offset,
		.print_stats = s->o->stats, .prune_advice = s->o->prune_advice,
		.stats_out = stderr, .advice_out = stdout,
	};

	if (!s->sinks.blocks && !s->o->stats && !s->o->prune_advice)
		return 0;
	s->sinks.meta.dropped_events = s->dropped;
	return sp_stats_session_report(&st);
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* linux 6.9 */
#endif

/* One thread's stack, if it has one. Task storage is keyed by a pidfd of
 * the thread and cannot be listed, so the threads come from /proc. */
static void flush_thread(struct sp_session *s, int map_fd, pid_t tid, uint64_t now,
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
		sp_asm_flush_thread(s->asm_, (uint32_t)tid, &st, now, recs, n);
	close(tfd);
}

/* The queries still running when tracing stops are written too, cut off
 * at `now` and flagged incomplete. */
static void flush_threads(struct sp_session *s, uint64_t now,
			  struct sp_span_rec **recs, size_t *n)
{
	int fd = sp_attach_threads_fd(s->att);
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)s->pid);
	d = opendir(path);
	if (!d)
		return; /* the target is gone: every thread's exit hook ran */
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			flush_thread(s, fd, (pid_t)atoi(de->d_name), now, recs, n);
	closedir(d);
}

/* Futures still running: their span is cut off at now, like calls. */
static void flush_futures(struct sp_session *s, uint64_t now,
			  struct sp_span_rec **recs, size_t *n)
{
	int fd = sp_attach_futures_fd(s->att);
	struct sp_future_key key, next, *prev = NULL;
	struct sp_future fu;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		struct sp_span_rec *v;

		if (bpf_map_lookup_elem(fd, &next, &fu) == 0 &&
		    (v = realloc(*recs, (*n + 1) * sizeof(*v)))) {
			*recs = v;
			memset(&v[*n], 0, sizeof(*v));
			sp_fill_future_rec(&v[*n], &fu, next.sym_id, now,
					   SP_REC_ABNORMAL | SP_REC_INCOMPLETE);
			v[*n].obj = next.obj;
			v[*n].tgid = s->pid;
			(*n)++;
		}
		key = next;
		prev = &key;
	}
}

/* The queries still running when tracing stops are written too, cut off
 * at `now` and flagged incomplete. */
static void flush_open_calls(struct sp_session *s, uint64_t now)
{
	struct sp_span_rec *recs = NULL;
	size_t n = 0;

	flush_threads(s, now, &recs, &n);
	flush_futures(s, now, &recs, &n);
	sp_held_flush(s->held, recs, n);
	free(recs);
}

static void summary_async(const struct sp_session *s)
{
	const struct sp_held_stats *h = sp_held_stats(s->held);

	if (h->nested_records)
		fprintf(stderr, "; %llu nested async spans from %llu reads",
			(unsigned long long)h->nested_spans,
			(unsigned long long)h->nested_records);
	if (h->linked_tasks || h->own_root_tasks)
		fprintf(stderr, "; spawned tasks: %llu linked to their spawner, %llu their own query",
			(unsigned long long)h->linked_tasks,
			(unsigned long long)h->own_root_tasks);
	if (h->lost)
		fprintf(stderr, "; %llu held queries lost their root record",
			(unsigned long long)h->lost);
}

static void summary(struct sp_session *s, double secs)
{
	const struct sp_asm_stats *as = sp_asm_stats(s->asm_);
	const struct sp_filter_stats *fs = sp_filter_stats(s->filter);

	fprintf(stderr,
		"spanprobe: pid %d (%s) traced for %.1f s until %s: %zu probes on %zu functions, "
		"%llu span records from the kernel (%llu lost), %llu queries seen, %llu kept (root >= %.3f s) "
		"with %llu spans (>= %.3f ms), %llu abnormal exits",
		s->pid, s->exe, secs, s->end_reason ? s->end_reason : "stopped",
		s->ast.probes, s->ast.functions,
		(unsigned long long)as->records, (unsigned long long)s->dropped,
		(unsigned long long)fs->queries_seen, (unsigned long long)fs->queries_kept,
		s->o->min_query_ns / 1e9, (unsigned long long)fs->spans_kept,
		s->o->min_span_ns / 1e6, (unsigned long long)as->abnormal);
	if (sp_attach_depth_overflows(s->att))
		fprintf(stderr, "; %llu calls deeper than %d frames not traced",
			(unsigned long long)sp_attach_depth_overflows(s->att), SP_MAX_DEPTH);
	if (as->lost_queries)
		fprintf(stderr, "; %llu queries lost their root record",
			(unsigned long long)as->lost_queries);
	summary_async(s);
	if (s->o->output)
		fprintf(stderr, "; %llu blocks written to %s",
			(unsigned long long)s->sinks.blocks_written, s->o->output);
	if (s->sinks.write_errors)
		fprintf(stderr, "; %llu blocks FAILED to write",
			(unsigned long long)s->sinks.write_errors);
	sp_sinks_summary(stderr, &s->sinks);
	fputs(".\n", stderr);
}

int sp_session_finish(struct sp_session *s)
{
	uint64_t end;
	int rc, stats_rc;

	/* no new hits once the links are gone; then what is buffered, then the
	 * calls still open, cut off at a time after every one of them began */
	sp_attach_detach(s->att);
	end = sp_now_mono();
	ring_buffer__consume(s->rb);
	check_loss(s);
	flush_open_calls(s, end);
	stats_rc = report_stats(s, end);
	/* the exports' last requests go out before the summary counts them */
	rc = sp_sinks_finish_exports(&s->sinks, SP_SINKS_DRAIN_MS);
	summary(s, (double)(end - s->start_mono) / 1e9);
	rc = s->sinks.write_errors || stats_rc ? -1 : rc;
	if (sp_sinks_close(&s->sinks)) {
		fprintf(stderr, "spanprobe: %s: %s\n", s->o->output, strerror(errno));
		rc = -1;
	}
	session_free(s);
	return rc;
}
