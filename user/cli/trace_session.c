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
#include "resolve/dl_rendezvous.h"
#include "attach/attach.h"
#include "attach/kernel_features.h"
#include "attach/lib_follow.h"
#include "attach/other_tracers.h"
#include "attach/unwind_guard.h"
#include "base/clock.h"
#include "symbols/proc_maps.h"
#include "symbols/program_libs.h"
#include "spans/query_filter.h"
#include "output/span_print.h"
#include "sinks/sinks.h"
#include "stats/kept_count.h"
#include "spans/span_assembler.h"
#include "stats/stats_session.h"
#include "cli/trace_session.h"
#include "cli/traced_proc.h"

#define DRAIN_INTERVAL_MS 20
/* A spawned task waits this long after its end for its spawner's
 * carrier to claim it through the JoinHandle. */
#define SPAWN_HOLD_NS 2000000000ull
/* Room in the BPF maps and the symbol table for functions of objects
 * mapped after attach (dlopen). Per-CPU statistics cost ~1.4 KiB per
 * function and CPU, so the room is bounded. */
#define LATE_FUNCS 256
/* Distinct processes past --max-processes that are counted. */
#define MAX_SKIPPED_KEPT 4096

volatile int sp_stop_signal;

struct sp_session {
	pid_t pid;       /* -p PID or run's child; 0 with --exe */
	bool many;       /* --exe or --follow: processes come and go */
	const struct sp_trace_opts *o;
	struct sp_pattern_list pats;
	struct sp_func_set funcs;
	struct sp_asm_sym *syms;
	size_t n_syms;
	size_t sym_cap; /* syms[0..sym_cap) are probed functions by sym_id */
	struct sp_mapped_objects before; /* what was mapped before resolution */
	struct sp_lib_follow *family_libs; /* --follow: objects the family maps */
	char *dl_path;   /* --exe: the loader whose rendezvous each traced */
	uint64_t dl_off; /* process gets a hook of its own, and where */
	char no_guard[256]; /* why auto does without the unwind guard */
	uint64_t maps_lost;
	size_t late_objects, late_funcs, gone_objects;
	struct sp_attach *att;
	struct sp_attach_stats ast;
	struct ring_buffer *rb;
	struct sp_proc_ctx ctx;
	struct sp_traced_proc **procs; /* procs[0] is the target, if any */
	size_t n_procs, cap_procs;
	struct sp_traced_proc *last;   /* of the previous record */
	struct sp_proc_totals gone;    /* figures of the processes freed */
	size_t procs_seen, procs_exited;
	/* past --max-processes: skipped for their whole life, or their
	 * queries would start half-way once a place frees up */
	pid_t skipped[MAX_SKIPPED_KEPT];
	size_t n_skipped, procs_skipped;
	uint64_t last_purge;
	uint64_t skipped_records;
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

static void warn_problems(const struct sp_session *s, size_t from)
{
	for (size_t i = from; i < s->funcs.n; i++)
		if (s->funcs.v[i].problem)
			fprintf(stderr, "spanprobe: warning: %s (%s): not attached: %s\n",
				s->funcs.v[i].demangled, s->funcs.v[i].object,
				s->funcs.v[i].problem);
}

/* attach --exe: the files themselves, whatever maps them. */
static int exe_objects(struct sp_session *s)
{
	for (size_t i = 0; i < s->o->n_exes; i++) {
		struct sp_mapped_object *v = realloc(s->before.v, (i + 1) * sizeof(*v));
		char *real = realpath(s->o->exes[i], NULL);

		if (!v || !real) {
			fprintf(stderr, "spanprobe: --exe %s: %s\n", s->o->exes[i], strerror(errno));
			free(real);
			return -1;
		}
		s->before.v = v;
		v[i].path = real;
		v[i].open_path = strdup(real);
		s->before.n = i + 1;
		if (!v[i].open_path)
			return -1;
	}
	return 0;
}

/* The unwind guard traces one process, which nobody else may trace:
 * auto does without it otherwise, --exit-probe guard refuses. */
static int exit_policy(struct sp_session *s, enum sp_exit_policy *p, char *err,
		       size_t errlen)
{
	char *why = s->no_guard;
	size_t whylen = sizeof(s->no_guard);

	*p = s->o->exit_policy;
	if (*p != SP_EXIT_AUTO && *p != SP_EXIT_FORCE_GUARD)
		return 0;
	if (s->o->n_exes || s->o->follow)
		snprintf(why, whylen, "the unwind guard works on one process, not with %s",
			 s->o->n_exes ? "--exe" : "--follow");
	else if (sp_guard_check(s->pid, why, whylen) > 0)
		return 0;
	if (*p == SP_EXIT_FORCE_GUARD) {
		snprintf(err, errlen, "--exit-probe guard: %s", why);
		why[0] = 0;
		return -1;
	}
	*p = SP_EXIT_AUTO_NO_GUARD;
	return 0;
}

static int resolve_targets(struct sp_session *s, const char *binary, char *err, size_t errlen)
{
	enum sp_exit_policy p;

	if (exit_policy(s, &p, err, errlen))
		return -1;
	if (s->o->n_exes)
		return sp_resolve_more(&s->before, true, &s->pats, p, &s->funcs, err, errlen);
	if (binary)
		return sp_resolve_program(binary, &s->pats, p, &s->funcs, err, errlen);
	return sp_resolve(s->pid, NULL, &s->pats, p, &s->funcs, err, errlen);
}

/* What is mapped before resolution: together with the functions found,
 * what later rescans must not resolve twice. */
static int snapshot_objects(struct sp_session *s, const char *binary)
{
	char err[512];

	if (s->o->n_exes)
		return exe_objects(s);
	if (!(binary ? sp_program_objects(binary, &s->before, err, sizeof(err))
		     : sp_proc_objects(s->pid, &s->before, err, sizeof(err))))
		return 0;
	fprintf(stderr, "spanprobe: %s\n", err);
	return -1;
}

static int resolve(struct sp_session *s, const char *binary)
{
	struct sp_avis_report rep = { 0 };
	char err[512];
	size_t attachable = 0;
	int rc;

	if (snapshot_objects(s, binary))
		return -1;
	if (sp_symlist_parse_file(s->o->symbols, &s->pats, err, sizeof(err)) ||
	    resolve_targets(s, binary, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		return -1;
	}
	/* attach --exe: the analysis reads the first file named */
	if (count_unmatched(s) &&
	    sp_avis_for_target(binary || s->o->n_exes ? 0 : s->pid,
			       s->o->n_exes ? s->o->exes[0] : binary, binary != NULL, &s->pats,
			       &s->funcs, &rep, err, sizeof(err)))
		fprintf(stderr, "spanprobe: warning: %s\n", err);
	warn_unmatched(s, &rep);
	warn_problems(s, 0);
	for (size_t i = 0; s->o->verbose && i < s->funcs.n_no_funcs; i++)
		fprintf(stderr, "spanprobe: %s: no function symbols (data only): nothing to trace there\n",
			s->funcs.no_funcs[i]);
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

/* ------------------------------------------------------------------ */
/* the processes */

/* Kept queries are counted per function (pruning advice) on their way to
 * the sinks, under the identity of the process they ran in. */
static void on_kept_query(void *arg, struct sp_traced_proc *p, struct sp_span *spans, size_t n)
{
	struct sp_session *s = arg;

	s->sinks.meta.pid = (uint32_t)p->pid;
	s->sinks.meta.exe = p->exe;
	s->sinks.meta.proc_start_ns = p->start_ns;
	sp_kept_count_add(s->kept, spans, n);
	sp_sinks_query(&s->sinks, spans, n);
}

static struct sp_traced_proc *find_proc(struct sp_session *s, pid_t pid)
{
	if (s->last && s->last->pid == pid)
		return s->last;
	for (size_t i = 0; i < s->n_procs; i++)
		if (s->procs[i]->pid == pid)
			return s->last = s->procs[i];
	return NULL;
}

static bool is_skipped(const struct sp_session *s, pid_t pid)
{
	for (size_t i = 0; i < s->n_skipped; i++)
		if (s->skipped[i] == pid)
			return true;
	return false;
}

static void skip(struct sp_session *s, pid_t pid)
{
	s->skipped_records++;
	if (is_skipped(s, pid))
		return;
	s->procs_skipped++;
	if (s->n_skipped < MAX_SKIPPED_KEPT)
		s->skipped[s->n_skipped++] = pid;
}

/* Skipped processes that are gone free their pid (once a second). */
static void purge_skipped(struct sp_session *s, uint64_t now)
{
	if (!s->n_skipped || now - s->last_purge < 1000000000ull)
		return;
	s->last_purge = now;
	for (size_t i = 0; i < s->n_skipped;)
		if (kill(s->skipped[i], 0) && errno == ESRCH)
			s->skipped[i] = s->skipped[--s->n_skipped];
		else
			i++;
}

/* A process first seen; past --max-processes it is counted, not traced. */
static struct sp_traced_proc *add_proc(struct sp_session *s, pid_t pid, const char *exe_hint,
				       bool read_exe, uint64_t start_boot)
{
	struct sp_traced_proc *p, **v;

	if (s->o->max_procs && (s->n_procs >= s->o->max_procs || is_skipped(s, pid))) {
		skip(s, pid);
		return NULL;
	}
	p = sp_proc_new(&s->ctx, pid, exe_hint, read_exe, start_boot);
	if (!p)
		return NULL;
	if (s->n_procs == s->cap_procs) {
		size_t cap = s->cap_procs ? 2 * s->cap_procs : 16;

		if (!(v = realloc(s->procs, cap * sizeof(*v)))) {
			sp_proc_free(p);
			return NULL;
		}
		s->procs = v;
		s->cap_procs = cap;
	}
	s->procs[s->n_procs++] = p;
	s->procs_seen++;
	/* --exe: its rendezvous is heard from now on, and what it opened
	 * before it was seen is looked for at once */
	if (s->o->n_exes && s->att && p->pidfd >= 0) {
		char err[512];

		struct pollfd alive = { .fd = p->pidfd, .events = POLLIN };

		sp_attach_follow_pid(s->att, pid, true);
		/* gone already (short-lived processes): no hook, no libbpf noise */
		if (s->dl_path && poll(&alive, 1, 0) == 0 &&
		    sp_attach_dl_hook_pid(s->att, pid, s->dl_path, s->dl_off, err, sizeof(err)) &&
		    s->o->verbose)
			fprintf(stderr, "spanprobe: %s\n", err);
		p->rescan = true;
	}
	return s->last = p;
}

/* Everything the process left is flushed under its identity; its
 * figures go to the totals. */
static void retire_proc(struct sp_session *s, size_t i, uint64_t now)
{
	struct sp_traced_proc *p = s->procs[i];

	if (s->o->n_exes) {
		sp_attach_follow_pid(s->att, p->pid, false);
		if (s->dl_path)
			sp_attach_dl_unhook_pid(s->att, p->pid);
	}
	sp_proc_flush(p, now, false);
	sp_proc_add_totals(p, &s->gone);
	if (s->last == p)
		s->last = NULL;
	sp_proc_free(p);
	s->procs[i] = s->procs[--s->n_procs];
	s->procs_exited++;
}

static void retire_pid(struct sp_session *s, pid_t pid, uint64_t now)
{
	for (size_t i = 0; i < s->n_procs; i++)
		if (s->procs[i]->pid == pid) {
			retire_proc(s, i, now);
			return;
		}
}

/* By life, not pid: the pid may be a new process's already. */
static void retire_serial(struct sp_session *s, uint64_t serial, uint64_t now)
{
	for (size_t i = 0; i < s->n_procs; i++)
		if (s->procs[i]->serial == serial) {
			retire_proc(s, i, now);
			return;
		}
}

static void all_totals(const struct sp_session *s, struct sp_proc_totals *t)
{
	*t = s->gone;
	for (size_t i = 0; i < s->n_procs; i++)
		sp_proc_add_totals(s->procs[i], t);
}

/* BPF tells a tail call from a longjmp by the return trampoline in the
 * slot. The kernel maps it ([uprobes]) on the first hijacked return. Its
 * address is per process: with many processes it is not published. */
static void update_trampoline(struct sp_session *s)
{
	if (s->many || s->tramp_hi ||
	    sp_proc_special_mapping(s->pid, "[uprobes]", &s->tramp_lo, &s->tramp_hi))
		return;
	sp_attach_set_trampoline(s->att, s->tramp_lo, s->tramp_hi);
}

static pid_t record_tgid(const void *data, size_t len)
{
	__u32 kind = *(const __u32 *)data;

	if (kind == SP_RK_NESTED && len >= sizeof(struct sp_nested_rec))
		return (pid_t)((const struct sp_nested_rec *)data)->tgid;
	/* the other kinds have the tgid right after the kind */
	return len >= 2 * sizeof(__u32) ? (pid_t)((const __u32 *)data)[1] : 0;
}

static void exec_record(struct sp_session *s, pid_t tgid)
{
	/* the old program's calls ended in the exec hook, before this
	 * record: its life is over, the next record starts a new one */
	if (find_proc(s, tgid))
		retire_pid(s, tgid, sp_now_mono());
}

/* A thread's first stack (follow mode): the process's start time. A
 * pid known under another start time is a new process that reused it:
 * the old one (gone, its records all read before this one) is retired
 * first, so nothing of it is mixed into the new one. */
static void proc_record(struct sp_session *s, pid_t tgid, const void *data, size_t len)
{
	const struct sp_proc_rec *r = data;
	struct sp_traced_proc *p;

	if (len < sizeof(*r) || !s->many)
		return;
	p = find_proc(s, tgid);
	if (p && sp_proc_other_life(p, r->start_boottime_ns)) {
		retire_pid(s, tgid, sp_now_mono());
		p = NULL;
	}
	if (!p)
		add_proc(s, tgid, s->exe, true, r->start_boottime_ns);
	else if (!p->start_boot)
		p->start_boot = r->start_boottime_ns;
}

static int handle_event(void *ctx, void *data, size_t len)
{
	struct sp_session *s = ctx;
	struct sp_traced_proc *p;
	pid_t tgid;
	__u32 kind;

	/* a block written for this record must count the losses before it */
	s->dropped = sp_attach_dropped(s->att);
	if (len < sizeof(__u32))
		return 0;
	kind = *(const __u32 *)data;
	tgid = record_tgid(data, len);
	if (kind == SP_RK_EXEC) {
		exec_record(s, tgid);
		return 0;
	}
	if (kind == SP_RK_PROC) {
		proc_record(s, tgid, data, len);
		return 0;
	}
	/* one target: every record is its own (a future's carries its tgid) */
	p = s->many ? find_proc(s, tgid) : s->procs[0];
	if (kind == SP_RK_MAPS) {
		if (p)
			p->rescan = true;
		return 0;
	}
	if (!p)
		p = add_proc(s, tgid, s->exe, true, 0);
	if (p)
		sp_proc_record(p, data, len);
	return 0;
}

/* ------------------------------------------------------------------ */
/* start */

/* The assembler names spans by symbol: the probed functions, with room
 * for those of objects mapped later, then the named async fns inlined
 * into carriers. */
static int build_syms(struct sp_session *s)
{
	size_t n;

	s->sym_cap = s->funcs.n + LATE_FUNCS;
	n = s->sym_cap;
	for (size_t i = 0; i < s->funcs.n; i++)
		n += sp_nested_plan_named(s->funcs.v[i].nested);
	s->syms = calloc(n, sizeof(*s->syms));
	if (!s->syms)
		return -1;
	for (size_t i = 0; i < s->sym_cap; i++)
		s->syms[i].name = "?";
	for (size_t i = 0; i < s->funcs.n; i++) {
		s->syms[i].name = s->funcs.v[i].demangled;
		s->syms[i].root = s->funcs.v[i].role == SP_ROLE_ROOT;
	}
	s->n_syms = s->sym_cap;
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
	s->ctx = (struct sp_proc_ctx){
		.syms = s->syms, .n_syms = s->n_syms, .funcs = &s->funcs,
		.min_span_ns = s->o->min_span_ns, .min_query_ns = s->o->min_query_ns,
		.spawn_hold_ns = SPAWN_HOLD_NS, .kept = on_kept_query, .arg = s,
		.redact = s->o->redact,
	};
	return s->kept ? 0 : -1;
}

static int open_sinks(struct sp_session *s, const char *binary)
{
	char err[512];
	uint64_t start = 0;

	/* a child about to exec still shows our own exe; its start time
	 * survives the exec */
	if (s->o->n_exes)
		s->exe = strdup(s->before.v[0].path);
	else if (sp_proc_info(s->pid, binary ? NULL : &s->exe, &start, err, sizeof(err)) || !s->exe)
		s->exe = strdup(binary ? binary : "?");
	s->sinks.wall_offset = sp_wall_offset();
	s->sinks.print_trees = !s->o->output;
	s->sinks.tree_flags = s->o->expand ? SP_TREE_EXPAND : 0;
	s->sinks.dropped = &s->dropped;
	s->sinks.meta.version = SP_BLOCK_VERSION;
	s->sinks.meta.pid = (uint32_t)s->pid;
	s->sinks.meta.exe = s->exe;
	s->sinks.meta.proc_start_ns = start;
	if ((s->o->output && sp_sinks_open_blocks(&s->sinks, s->o->output, err, sizeof(err))) ||
	    sp_sinks_open_exports(&s->sinks, &s->o->exports, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		return -1;
	}
	return 0;
}

/* --exe: what the files named map at start (their dynamic loader's list)
 * is not followed, only what their processes open later. */
static int exe_startup_objects(const struct sp_session *s, struct sp_mapped_objects *out)
{
	char err[512];

	for (size_t i = 0; i < s->before.n; i++) {
		struct sp_mapped_objects one = { 0 };
		struct sp_mapped_object *v;

		if (sp_program_objects(s->before.v[i].open_path, &one, err, sizeof(err))) {
			if (s->o->verbose)
				fprintf(stderr, "spanprobe: %s\n", err);
			continue;
		}
		v = realloc(out->v, (out->n + one.n) * sizeof(*v));
		if (!v) {
			sp_proc_objects_free(&one);
			return -1;
		}
		out->v = v;
		memcpy(&v[out->n], one.v, one.n * sizeof(*v));
		out->n += one.n;
		free(one.v);
	}
	return 0;
}

/* --exe: one follower for every process (the links are for all of them:
 * an object is probed once, never released while another may map it),
 * woken by the rendezvous of the loader the files use, hooked in each
 * traced process as it is first seen (new_proc). */
static int follow_exe_libs(struct sp_session *s)
{
	struct sp_mapped_objects start = { 0 };
	int rc = exe_startup_objects(s, &start), i;

	if (!rc && !(s->family_libs = sp_lib_follow_new(0, &start, &s->funcs, false)))
		rc = -1;
	i = rc ? -1 : sp_dl_rendezvous(&start, &s->dl_off);
	if (i >= 0 && !(s->dl_path = strdup(start.v[i].open_path)))
		rc = -1;
	sp_proc_objects_free(&start);
	if (rc) {
		fprintf(stderr, "spanprobe: out of memory\n");
		return -1;
	}
	return 0; /* no rendezvous (static executables): nothing to follow */
}

/* Libraries mapped later (dlopen) are probed when the dynamic linker's
 * rendezvous fires. Without one (a static executable) nothing is lost
 * but that. */
static int follow_libs(struct sp_session *s)
{
	struct sp_lib_follow *lf;
	char err[512];

	if (s->o->n_exes)
		return follow_exe_libs(s);
	lf = sp_lib_follow_new(s->pid, &s->before, &s->funcs, !s->many);
	if (!lf) {
		fprintf(stderr, "spanprobe: out of memory\n");
		return -1;
	}
	if (s->many)
		s->family_libs = lf;
	else
		s->procs[0]->libs = lf;
	if (sp_lib_follow_hook(s->att, s->pid, &s->before, err, sizeof(err)) < 0)
		fprintf(stderr, "spanprobe: warning: %s: libraries opened later are not probed\n", err);
	return 0;
}

/* Who is probed: a pid, or (--exe) every process of the files named. */
static void traced_what(const struct sp_session *s, char *what, size_t len)
{
	if (s->pid) {
		snprintf(what, len, "pid %d", s->pid);
		return;
	}
	snprintf(what, len, "%s%s", s->before.n ? s->before.v[0].path : "?",
		 s->o->n_exes > 1 ? " (or another --exe file)" : "");
}

/* A second tracer doubles every probe hit; say so before adding ours.
 * --exe: any uprobe on our entry points of the files fires in processes
 * we trace, whatever process it was made for. */
static void warn_other_tracers(const struct sp_session *s)
{
	struct sp_other_tracer t[8];
	char err[256], what[512];
	int n;

	if (!s->pid && !s->o->n_exes)
		return;
	traced_what(s, what, sizeof(what));
	n = sp_find_other_tracers(s->pid, &s->funcs, t, 8, err, sizeof(err));
	if (n < 0 && s->o->verbose)
		fprintf(stderr, "spanprobe: cannot tell whether another tracer probes %s: %s\n",
			what, err);
	for (int i = 0; i < n; i++) {
		char who[64];

		if (t[i].owner)
			snprintf(who, sizeof(who), "of pid %d (%s)", t[i].owner, t[i].comm);
		else
			snprintf(who, sizeof(who), "held by no process (pinned?)");
		/* a perf-event uprobe does not say which process it filters on */
		fprintf(stderr, "spanprobe: warning: %s %s: %zu uprobe link%s %s %s; "
			"every probe will fire twice (the target pays twice, and each "
			"tracer sees all calls)\n", what,
			t[i].by_pid ? "is already traced" : "may already be traced",
			t[i].links, t[i].links == 1 ? "" : "s", who,
			t[i].by_pid ? "probe it" : "sit on the same functions of the same file");
	}
}

static int attach(struct sp_session *s)
{
	struct sp_attach_opts ao = { .min_span_ns = s->o->min_span_ns,
				     .ring_bytes = s->o->ring_bytes, .best = s->o->attach_mode,
				     .extra_funcs = s->sym_cap - s->funcs.n,
				     .follow_children = s->o->follow,
				     .unwinder = s->funcs.unwinder };
	char err[512];

	warn_other_tracers(s);
	if (sp_attach_open(&s->att, s->pid, &s->funcs, &ao, &s->ast, err, sizeof(err))) {
		if (s->pid && kill(s->pid, 0) && errno == ESRCH)
			fprintf(stderr, "spanprobe: pid %d exited during attach\n", s->pid);
		else
			fprintf(stderr, "spanprobe: %s\n", err);
		return -1;
	}
	s->ctx.att = s->att;
	s->rb = ring_buffer__new(sp_attach_records_fd(s->att), handle_event, s, NULL);
	if (!s->rb) {
		fprintf(stderr, "spanprobe: ring buffer: %s\n", strerror(errno));
		return -1;
	}
	return follow_libs(s);
}

static void session_free(struct sp_session *s)
{
	ring_buffer__free(s->rb);
	for (size_t i = 0; i < s->n_procs; i++)
		sp_proc_free(s->procs[i]);
	free(s->procs);
	sp_lib_follow_free(s->family_libs);
	free(s->dl_path);
	sp_proc_objects_free(&s->before);
	sp_attach_close(s->att);
	sp_kept_count_free(s->kept);
	sp_sinks_close(&s->sinks);
	sp_func_set_free(&s->funcs);
	sp_symlist_free(&s->pats);
	free(s->syms);
	free(s->exe);
	free(s);
}

/* The target of -p or run is traced from the start; it must exist. */
static int add_target(struct sp_session *s, const char *binary)
{
	struct sp_traced_proc *p;

	if (!s->pid)
		return 0;
	p = add_proc(s, s->pid, binary, binary == NULL, 0);
	if (!p)
		return -1;
	if (p->pidfd < 0) {
		fprintf(stderr, "spanprobe: pid %d: no such process\n", s->pid);
		return -1;
	}
	free(p->exe);
	p->exe = strdup(s->exe);
	return p->exe ? 0 : -1;
}

/* How the functions' ends are seen (issue 11: the choice is told). */
static void say_exits(const struct sp_session *s)
{
	size_t n[3] = { 0 };

	for (size_t i = 0; i < s->funcs.n; i++)
		if (!s->funcs.v[i].problem && s->funcs.v[i].source == SP_SRC_FUNC &&
		    s->funcs.v[i].exit_mode <= SP_EXIT_GUARD)
			n[s->funcs.v[i].exit_mode]++;
	fprintf(stderr, "spanprobe: exits: %zu uretprobe, %zu guarded uretprobe, %zu ret sites",
		n[SP_EXIT_URETPROBE], n[SP_EXIT_GUARD], n[SP_EXIT_RETSITES]);
	if (n[SP_EXIT_RETSITES] && s->no_guard[0])
		fprintf(stderr, " (ret sites, not the unwind guard: %s)", s->no_guard);
	if (s->funcs.unwinder) {
		struct sp_feature_result w;

		fprintf(stderr, " (unwind guard on %s, guardian pid %d)", s->funcs.unwinder,
			(int)sp_attach_guard_pid(s->att));
		/* the guardian is the writer either way: the BPF writer is not
		 * built, and this kernel (lockdown) would refuse it */
		sp_kernel_write_user_probe(&w);
		fprintf(stderr, "; slots written by the guardian through /proc/PID/mem "
			"(bpf_probe_write_user %s%s)", !w.known ? "untested: " : "",
			w.yes ? "allowed here, unused" : w.detail);
	}
	fputc('\n', stderr);
}

static void say_attached(const struct sp_session *s)
{
	if (s->o->n_exes) {
		fprintf(stderr, "spanprobe: attached %zu probes on %zu functions to every process of",
			s->ast.probes, s->ast.functions);
		for (size_t i = 0; i < s->o->n_exes; i++)
			fprintf(stderr, " %s", s->before.v[i].path);
		fprintf(stderr, " (%s)\n", sp_attach_mode_name(s->ast.mode));
		return;
	}
	fprintf(stderr, "spanprobe: attached %zu probes on %zu functions to pid %d%s (%s)\n",
		s->ast.probes, s->ast.functions, s->pid,
		s->o->follow ? " and the processes it forks" : "",
		sp_attach_mode_name(s->ast.mode));
}

struct sp_session *sp_session_start(pid_t pid, const char *binary,
				    const struct sp_trace_opts *o)
{
	struct sp_session *s = calloc(1, sizeof(*s));
	int pidfd;

	if (!s)
		return NULL;
	s->pid = pid;
	s->o = o;
	s->many = o->n_exes || o->follow;
	if (pid) {
		/* fails early and clearly for a pid that does not exist */
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			fprintf(stderr, "spanprobe: pid %d: %s\n", pid,
				errno == ESRCH ? "no such process" : strerror(errno));
			free(s);
			return NULL;
		}
		close(pidfd);
	}
	if (resolve(s, binary) || open_sinks(s, binary) || build_pipeline(s) ||
	    add_target(s, binary) || attach(s)) {
		session_free(s);
		return NULL;
	}
	s->start_mono = sp_now_mono();
	say_attached(s);
	say_exits(s);
	return s;
}

/* ------------------------------------------------------------------ */
/* the loop */

static void check_loss(struct sp_session *s)
{
	/* the queries that lost records are flagged by BPF itself */
	s->dropped = sp_attach_dropped(s->att);
}

static void status_line(struct sp_session *s, uint64_t now, uint64_t *last,
			uint64_t *last_events)
{
	struct sp_proc_totals t;

	if (now - *last < 1000000000ull)
		return;
	all_totals(s, &t);
	fprintf(stderr, "\r\033[K%zu probes | %.0f spans/s out of the kernel",
		s->ast.probes, (double)(t.as.records - *last_events) * 1e9 / (double)(now - *last));
	if (s->many)
		fprintf(stderr, " | processes %zu seen, %zu traced, %zu exited",
			s->procs_seen, s->n_procs, s->procs_exited);
	fprintf(stderr, " | queries %llu seen, %llu kept | %llu lost",
		(unsigned long long)t.fs.queries_seen, (unsigned long long)t.fs.queries_kept,
		(unsigned long long)s->dropped);
	sp_sinks_status(stderr, &s->sinks);
	*last = now;
	*last_events = t.as.records;
}

/* New functions get their names in the symbol table; the kept counts
 * are rebuilt to cover them. */
static void adopt_late_funcs(struct sp_session *s, size_t from)
{
	struct sp_kept_count *k;

	for (size_t i = from; i < s->funcs.n && i < s->sym_cap; i++) {
		s->syms[i].name = s->funcs.v[i].demangled;
		s->syms[i].root = s->funcs.v[i].role == SP_ROLE_ROOT;
	}
	k = sp_kept_count_renew(s->kept, &s->funcs);
	if (k)
		s->kept = k;
	warn_problems(s, from);
}

static void rescan_one(struct sp_session *s, struct sp_traced_proc *p)
{
	struct sp_lib_follow *lf = s->many ? s->family_libs : p->libs;
	struct sp_lib_change ch;
	size_t from = s->funcs.n;
	char err[512];

	p->rescan = false;
	if (!lf)
		return;
	if (sp_lib_follow_rescan(lf, s->att, p->pid, &s->pats, s->o->exit_policy,
				 &s->funcs, &ch, stderr, err, sizeof(err)))
		fprintf(stderr, "spanprobe: warning: pid %d: new objects not probed: %s\n",
			(int)p->pid, err);
	if (s->funcs.n > from)
		adopt_late_funcs(s, from);
	s->late_objects += ch.new_funcs ? ch.new_objects : 0;
	s->late_funcs += ch.new_funcs;
	s->gone_objects += ch.gone_objects;
}

/* A dlopen or dlclose happened (or a rendezvous record was lost: every
 * process is rescanned). */
static void rescan_libs(struct sp_session *s)
{
	uint64_t lost = sp_attach_maps_lost(s->att);
	bool all = lost != s->maps_lost;

	s->maps_lost = lost;
	for (size_t i = 0; i < s->n_procs; i++)
		if (all || s->procs[i]->rescan)
			rescan_one(s, s->procs[i]);
}

/* Waits at most one drain interval for an exit or a record that wakes
 * the loader (a dlopen); *gone gets the lives (serials) that exited. */
static size_t wait_exits(struct sp_session *s, uint64_t *gone, int timeout_ms)
{
	struct pollfd p[1 + s->n_procs];
	size_t n = 0, k = 0;

	p[n++] = (struct pollfd){ .fd = ring_buffer__epoll_fd(s->rb), .events = POLLIN };
	for (size_t i = 0; i < s->n_procs; i++)
		p[n++] = (struct pollfd){ .fd = s->procs[i]->pidfd, .events = POLLIN };
	if (poll(p, n, timeout_ms) <= 0)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (p[i].revents & (POLLIN | POLLHUP))
			gone[k++] = s->procs[i - 1]->serial;
	return k;
}

/* Processes that exited (their records are in: consumed after the exit
 * was seen) are flushed and forgotten; so are those gone before their
 * first record was read. */
static void retire_exited(struct sp_session *s, const uint64_t *gone, size_t k, uint64_t now)
{
	for (size_t i = 0; i < k; i++)
		retire_serial(s, gone[i], now);
	for (size_t i = 0; i < s->n_procs;)
		if (s->procs[i]->pidfd < 0)
			retire_proc(s, i, now); /* the last one moves to i */
		else
			i++;
}

/* One target: its exit ends the session. */
static bool single_gone(struct sp_session *s, bool gone, bool is_child, int *status)
{
	if (!gone)
		return false;
	if (is_child && waitpid(s->pid, status, 0) == s->pid)
		s->reaped = true;
	s->end_reason = "the process exited";
	return true;
}

static bool stop_now(struct sp_session *s, bool is_child, uint64_t now)
{
	/* run's own child execs once, into the command */
	if (!s->many && sp_attach_exec_count(s->att) > (is_child ? 1u : 0u)) {
		s->end_reason = "the process called exec";
		return true;
	}
	if (sp_stop_signal && !is_child) {
		s->end_reason = strsignal(sp_stop_signal);
		return true;
	}
	if (sp_stop_signal && is_child)
		kill(s->pid, sp_stop_signal), sp_stop_signal = 0;
	if (s->o->duration_ns && now - s->start_mono >= s->o->duration_ns) {
		s->end_reason = "the duration elapsed";
		return true;
	}
	/* --follow: the family is gone (no --exe: nothing new can come) */
	if (s->o->follow && !s->n_procs) {
		s->end_reason = "every process exited";
		return true;
	}
	return false;
}

int sp_session_loop(struct sp_session *s, bool is_child, int *status)
{
	bool tty = isatty(STDERR_FILENO);
	uint64_t last = s->start_mono, last_events = 0;

	for (;;) {
		uint64_t *gone_pids = calloc(s->n_procs + 1, sizeof(*gone_pids));
		size_t gone = gone_pids ? wait_exits(s, gone_pids, DRAIN_INTERVAL_MS) : 0;
		uint64_t now = sp_now_mono();

		ring_buffer__consume(s->rb);
		for (size_t i = 0; i < s->n_procs; i++)
			sp_held_tick(s->procs[i]->held, now);
		check_loss(s);
		update_trampoline(s);
		if (!s->many && single_gone(s, gone, is_child, status)) {
			free(gone_pids);
			break;
		}
		if (s->many && gone_pids)
			retire_exited(s, gone_pids, gone, now);
		free(gone_pids);
		rescan_libs(s);
		purge_skipped(s, now);
		if (stop_now(s, is_child, now))
			break;
		if (tty)
			status_line(s, now, &last, &last_events);
	}
	if (tty)
		fputs("\r\033[K", stderr);
	return s->reaped;
}

/* ------------------------------------------------------------------ */
/* the end */

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
	/* the figures are the binary's, over every process traced */
	s->sinks.meta.pid = (uint32_t)s->pid;
	s->sinks.meta.exe = s->exe;
	if (s->many)
		s->sinks.meta.proc_start_ns = 0;
	s->sinks.meta.dropped_events = s->dropped;
	return sp_stats_session_report(&st);
}

static void summary_async(const struct sp_held_stats *h)
{
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

/* Data-only libraries (no function symbols), counted once here rather
 * than warned about at every attach; -v names them as they are read. */
static void summary_no_funcs(const struct sp_session *s)
{
	size_t n = s->funcs.n_no_funcs;

	if (!n)
		return;
	fprintf(stderr, "; %zu librar%s without function symbols skipped (", n, n == 1 ? "y" : "ies");
	for (size_t i = 0; i < n && i < 3; i++) {
		const char *slash = strrchr(s->funcs.no_funcs[i], '/');

		fprintf(stderr, "%s%s", i ? ", " : "", slash ? slash + 1 : s->funcs.no_funcs[i]);
	}
	fputs(n > 3 ? ", ...)" : ")", stderr);
}

static void summary_who(const struct sp_session *s, double secs)
{
	if (!s->many) {
		fprintf(stderr, "spanprobe: pid %d (%s) traced for %.1f s until %s", s->pid, s->exe,
			secs, s->end_reason ? s->end_reason : "stopped");
		return;
	}
	if (s->o->n_exes)
		fprintf(stderr, "spanprobe: processes of %s%s", s->exe,
			s->o->n_exes > 1 ? " and more files" : "");
	else
		fprintf(stderr, "spanprobe: pid %d and the processes it forked", s->pid);
	fprintf(stderr, " traced for %.1f s until %s: %zu processes seen, %zu exited, %zu still running",
		secs, s->end_reason ? s->end_reason : "stopped", s->procs_seen,
		s->procs_exited, s->procs_seen - s->procs_exited);
	if (s->skipped_records)
		fprintf(stderr, ", %zu more skipped past --max-processes %zu (%llu records)",
			s->procs_skipped, s->o->max_procs, (unsigned long long)s->skipped_records);
}

static void summary(struct sp_session *s, double secs, const struct sp_proc_totals *t)
{
	summary_who(s, secs);
	fprintf(stderr,
		": %zu probes on %zu functions, "
		"%llu span records from the kernel (%llu lost), %llu queries seen, %llu kept (root >= %.3f s) "
		"with %llu spans (>= %.3f ms), %llu abnormal exits",
		s->ast.probes, s->ast.functions,
		(unsigned long long)t->as.records, (unsigned long long)s->dropped,
		(unsigned long long)t->fs.queries_seen, (unsigned long long)t->fs.queries_kept,
		s->o->min_query_ns / 1e9, (unsigned long long)t->fs.spans_kept,
		s->o->min_span_ns / 1e6, (unsigned long long)t->as.abnormal);
	if (s->late_funcs || s->gone_objects)
		fprintf(stderr, "; objects mapped after attach: %zu probed (%zu functions), %zu unmapped",
			s->late_objects, s->late_funcs, s->gone_objects);
	if (sp_attach_depth_overflows(s->att))
		fprintf(stderr, "; %llu calls deeper than %d frames not traced",
			(unsigned long long)sp_attach_depth_overflows(s->att), SP_MAX_DEPTH);
	if (s->funcs.unwinder) {
		struct sp_guard_stats g;

		sp_attach_guard_stats(s->att, &g);
		fprintf(stderr, "; unwind guard: %llu return slots restored or re-armed (%llu "
			"unwinder hits had none to write, %llu stale slots skipped, %llu LOST: "
			"no room for a thread's record: %d threads unwinding at once, or no "
			"memory)", (unsigned long long)g.words,
			(unsigned long long)g.idle, (unsigned long long)g.stale,
			(unsigned long long)g.lost, SP_GUARD_THREADS);
	}
	if (t->as.lost_queries)
		fprintf(stderr, "; %llu queries lost their root record",
			(unsigned long long)t->as.lost_queries);
	summary_async(&t->hs);
	summary_no_funcs(s);
	if (s->o->output)
		fprintf(stderr, "; %llu blocks written to %s",
			(unsigned long long)s->sinks.blocks_written, s->o->output);
	if (s->sinks.write_errors)
		fprintf(stderr, "; %llu blocks FAILED to write",
			(unsigned long long)s->sinks.write_errors);
	sp_sinks_summary(stderr, &s->sinks);
	fputs(".\n", stderr);
}

/* A process that exited before the stop (its exit not yet polled when the
 * signal came) is flushed and counted as exited, not as still running. */
static void retire_gone_at_stop(struct sp_session *s, uint64_t now)
{
	uint64_t *gone = calloc(s->n_procs + 1, sizeof(*gone));
	size_t k = gone ? wait_exits(s, gone, 0) : 0;

	retire_exited(s, gone, k, now);
	free(gone);
}

int sp_session_finish(struct sp_session *s)
{
	struct sp_proc_totals t;
	uint64_t end;
	int rc, stats_rc;

	/* no new hits once the links are gone; then what is buffered, then the
	 * calls still open, cut off at a time after every one of them began.
	 * The guardian's last sweeps come after that time is taken: they
	 * hold every thread in turn, which took up to 1.6 s under load, and
	 * the session is not longer than asked for them */
	sp_attach_detach(s->att);
	end = sp_now_mono();
	sp_attach_release_guard(s->att);
	ring_buffer__consume(s->rb);
	check_loss(s);
	if (s->many)
		retire_gone_at_stop(s, end);
	for (size_t i = 0; i < s->n_procs; i++)
		sp_proc_flush(s->procs[i], end, true);
	all_totals(s, &t);
	stats_rc = report_stats(s, end);
	/* the exports' last requests go out before the summary counts them */
	rc = sp_sinks_finish_exports(&s->sinks, SP_SINKS_DRAIN_MS);
	summary(s, (double)(end - s->start_mono) / 1e9, &t);
	rc = s->sinks.write_errors || stats_rc ? -1 : rc;
	if (sp_sinks_close(&s->sinks)) {
		fprintf(stderr, "spanprobe: %s: %s\n", s->o->output, strerror(errno));
		rc = -1;
	}
	session_free(s);
	return rc;
}
