/* The unwind guard's writer: a guardian process tracing the target. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "spanprobe.h"
#include "attach/unwind_guard.h"
#include "base/grow.h"

struct sp_unwind_guard {
	pid_t pid;  /* the guardian */
	int ctl_fd; /* closing it tells the guardian to finish */
};

/* ------------------------------------------------------------ the check */

/* The hex mask of `key:` in /proc/PID[/task/TID]/status; 0 if absent. */
static int status_field(const char *path, const char *key, unsigned long long *v)
{
	char line[256];
	size_t kl = strlen(key);
	FILE *f = fopen(path, "re");
	int rc = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl)) {
			*v = strtoull(line + kl, NULL, !strcmp(key, "TracerPid:") ? 10 : 16);
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

/* The signals any thread of tgid blocks: a thread that blocks the guard's
 * signal would not stop at its hook, and its unwind would reach the
 * trampoline (the main thread's mask alone says nothing of a pool that
 * blocks signals in its workers). */
static unsigned long long blocked_by_any(pid_t tgid)
{
	unsigned long long all = 0, v;
	char path[96];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)tgid);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", (int)tgid, e->d_name);
		if (!status_field(path, "SigBlk:", &v))
			all |= v;
	}
	closedir(d);
	return all;
}

int sp_guard_check(pid_t tgid, char *why, size_t whylen)
{
	/* default action: ignore; never meant for the target by anyone */
	static const int cand[] = { SIGURG, SIGWINCH, SIGCHLD };
	unsigned long long tracer = 0, caught = 0, blocked = 0;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tgid);
	if (status_field(path, "TracerPid:", &tracer) || status_field(path, "SigCgt:", &caught) ||
	    status_field(path, "SigBlk:", &blocked)) {
		snprintf(why, whylen, "pid %d: cannot read %s", (int)tgid, path);
		return -1;
	}
	blocked |= blocked_by_any(tgid);
	if (tracer) {
		snprintf(why, whylen, "pid %d is traced by pid %llu (a debugger?): the unwind "
			 "guard needs to be its tracer", (int)tgid, tracer);
		return -1;
	}
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (!((caught | blocked) >> (cand[i] - 1) & 1))
			return cand[i];
	snprintf(why, whylen, "pid %d catches or blocks (in one of its threads) SIGURG, SIGWINCH "
		 "and SIGCHLD: the unwind guard has no signal to stop its threads with", (int)tgid);
	return -1;
}

/* ------------------------------------------------------- the guardian */

struct tracee {
	pid_t tid;
	bool gone;
	bool held;    /* stopped by the sweep's PTRACE_INTERRUPT */
	bool grouped; /* in a group stop (SIGSTOP, ^Z): LISTEN, not CONT */
};

struct guardian {
	pid_t tgid;
	int sig;
	int mem_fd;
	int rec_fd; /* the hooks' records, one per thread (guard_recs) */
	struct tracee *t;
	size_t nt, capt;
	unsigned long long writes, stops, swept;
	bool draining; /* spanprobe's probes are gone: re-arming would leave
			* hijacked slots behind the guard */
	bool sweeping; /* interrupt stops are held, not resumed */
	int iter_fd;   /* the sweep iterator's link */
};

static struct tracee *tracee_of(struct guardian *g, pid_t tid)
{
	for (size_t i = 0; i < g->nt; i++)
		if (g->t[i].tid == tid)
			return &g->t[i];
	return NULL;
}

static int add_tracee(struct guardian *g, pid_t tid)
{
	struct tracee *t = tracee_of(g, tid);

	if (t) {
		t->gone = false;
		return 0;
	}
	if (sp_grow((void **)&g->t, &g->capt, g->nt, sizeof(*g->t)))
		return -1;
	g->t[g->nt++] = (struct tracee){ .tid = tid };
	return 0;
}

/* Seizes every thread, again until a pass finds no new one: threads
 * started by a seized thread are seized by the kernel (TRACECLONE),
 * those started meanwhile by the others are found by the next pass. */
static int seize_all(struct guardian *g, char *err, size_t errlen)
{
	char path[64];
	bool added = true;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)g->tgid);
	while (added) {
		DIR *d = opendir(path);
		struct dirent *e;

		if (!d) {
			snprintf(err, errlen, "pid %d: %s: %s", (int)g->tgid, path, strerror(errno));
			return -1;
		}
		added = false;
		while ((e = readdir(d))) {
			pid_t tid = (pid_t)atoi(e->d_name);

			if (tid <= 0 || tracee_of(g, tid))
				continue;
			if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACECLONE)) {
				if (errno == ESRCH)
					continue; /* it exited */
				snprintf(err, errlen, "pid %d: ptrace(PTRACE_SEIZE) of thread %d: %s",
					 (int)g->tgid, (int)tid, strerror(errno));
				closedir(d);
				return -1;
			}
			if (add_tracee(g, tid)) {
				closedir(d);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			added = true;
		}
		closedir(d);
	}
	return 0;
}

/* One word, written only while it still holds what the hook saw. */
static void write_word(struct guardian *g, const struct sp_guard_rec *r, uint32_t i)
{
	uint64_t cur = 0, want, expect;

	if (pread(g->mem_fd, &cur, sizeof(cur), (off_t)r->slot[i]) != (ssize_t)sizeof(cur))
		return;
	if (r->op == SP_GUARD_RESTORE) {
		if (cur < r->tramp || cur >= r->tramp + 4096)
			return;
		want = r->val[i];
	} else {
		expect = r->val[i];
		if (g->draining || cur != expect)
			return;
		want = r->tramp;
	}
	if (pwrite(g->mem_fd, &want, sizeof(want), (off_t)r->slot[i]) == (ssize_t)sizeof(want))
		g->writes++;
}

/* Applies the record of the stopped thread tid, if its hook left one
 * (the signal may also come from someone else), and takes it away.
 * /proc/PID/mem is opened each time: an open file stays bound to the
 * address space it was opened on, which an exec replaces (`run` seizes
 * the program before its exec). */
static void apply_pending(struct guardian *g, pid_t tid)
{
	struct sp_guard_rec r;
	uint32_t key = (uint32_t)tid;
	char path[64];

	if (bpf_map_lookup_and_delete_elem(g->rec_fd, &key, &r) || r.kind != SP_RK_GUARD)
		return;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)g->tgid);
	g->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	for (uint32_t w = 0; g->mem_fd >= 0 && w < r.n && w < SP_GUARD_MAX; w++)
		write_word(g, &r, w);
	if (g->mem_fd >= 0)
		close(g->mem_fd);
	g->mem_fd = -1;
}

static void on_stop(struct guardian *g, pid_t tid, int status)
{
	int sig = WSTOPSIG(status), event = status >> 16;
	unsigned long msg = 0;

	if (!tracee_of(g, tid))
		add_tracee(g, tid); /* a new thread's first stop, before its clone event */
	if (event == PTRACE_EVENT_CLONE) {
		if (!ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg))
			add_tracee(g, (pid_t)msg);
		ptrace(PTRACE_CONT, tid, 0, 0);
	} else if (event == PTRACE_EVENT_STOP) {
		struct tracee *t = tracee_of(g, tid);
		bool group = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;

		if (g->sweeping && t) {
			t->held = true; /* resumed after the sweep */
			t->grouped = group;
		} else if (group) {
			/* a group stop stays a stop until SIGCONT, as untraced */
			ptrace(PTRACE_LISTEN, tid, 0, 0);
		} else {
			ptrace(PTRACE_CONT, tid, 0, 0);
		}
	} else if (event) {
		ptrace(PTRACE_CONT, tid, 0, 0);
	} else if (sig == g->sig) {
		g->stops++;
		apply_pending(g, tid);
		ptrace(PTRACE_CONT, tid, 0, 0); /* the signal is ours: suppressed */
	} else {
		ptrace(PTRACE_CONT, tid, 0, sig);
	}
}

/* Reaps every state change; false once no thread is left. */
static bool reap(struct guardian *g)
{
	int status;
	pid_t tid;

	while ((tid = waitpid(-1, &status, __WALL | WNOHANG)) > 0) {
		struct tracee *t = tracee_of(g, tid);

		if (WIFSTOPPED(status))
			on_stop(g, tid, status);
		else if (t)
			t->gone = true;
	}
	return !(tid < 0 && errno == ECHILD);
}

/* A live thread with our signal pending: its stop is still to come. */
static bool signal_pending(struct guardian *g)
{
	for (size_t i = 0; i < g->nt; i++) {
		unsigned long long pend = 0;
		char path[64];

		if (g->t[i].gone)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)g->tgid,
			 (int)g->t[i].tid);
		if (!status_field(path, "SigPnd:", &pend) && (pend >> (g->sig - 1) & 1))
			return true;
	}
	return false;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Holds every live thread (PTRACE_INTERRUPT); stops that come first are
 * served as usual. false if some thread did not stop within 2 s. */
static bool hold_all(struct guardian *g)
{
	int64_t until = now_ms() + 2000;
	bool all;

	g->sweeping = true;
	for (size_t i = 0; i < g->nt; i++)
		if (!g->t[i].gone && !g->t[i].held && ptrace(PTRACE_INTERRUPT, g->t[i].tid, 0, 0))
			g->t[i].gone = errno == ESRCH;
	do {
		struct timespec nap = { 0, 200000 };

		reap(g);
		all = true;
		for (size_t i = 0; i < g->nt; i++)
			all &= g->t[i].gone || g->t[i].held;
		if (!all)
			nanosleep(&nap, NULL);
	} while (!all && now_ms() < until);
	return all;
}

static void release_all(struct guardian *g)
{
	for (size_t i = 0; i < g->nt; i++) {
		struct tracee *t = &g->t[i];

		if (!t->held)
			continue;
		ptrace(t->grouped ? PTRACE_LISTEN : PTRACE_CONT, t->tid, 0, 0);
		t->held = t->grouped = false;
	}
	g->sweeping = false;
}

/* The slots of one held thread that are live: at or above its stack
 * pointer, rising along the kernel's order; each written only if it
 * still holds the trampoline. */
static unsigned sweep_thread(struct guardian *g, const struct sp_guard_rec *r)
{
	struct user_regs_struct regs;
	struct tracee *t = tracee_of(g, (pid_t)r->tid);
	struct sp_guard_rec one = *r;
	uint64_t prev = 0, before = g->writes;

	if (!t || !t->held || ptrace(PTRACE_GETREGS, t->tid, 0, &regs))
		return 0;
	one.op = SP_GUARD_RESTORE;
	for (uint32_t i = 0; i < r->n && i < SP_GUARD_MAX; i++) {
		if (r->slot[i] < regs.rsp || r->slot[i] <= prev)
			continue;
		prev = r->slot[i];
		write_word(g, &one, i);
	}
	return (unsigned)(g->writes - before);
}

/* Restores every live hijacked slot of every thread: the threads are
 * held meanwhile, the kernel's lists read through the iterator. Returns
 * the words written. */
static unsigned sweep(struct guardian *g)
{
	struct sp_guard_rec r;
	char path[64];
	unsigned n = 0;
	int fd;

	if (!hold_all(g)) {
		release_all(g);
		return 1; /* try again */
	}
	fd = bpf_iter_create(g->iter_fd);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)g->tgid);
	g->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	while (fd >= 0 && g->mem_fd >= 0 && read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		n += sweep_thread(g, &r);
	if (fd >= 0)
		close(fd);
	if (g->mem_fd >= 0)
		close(g->mem_fd);
	g->mem_fd = -1;
	release_all(g);
	g->swept += n;
	return n;
}

/* spanprobe is gone or has removed its probes: no slot is hijacked any
 * more once a sweep finds none left; the guard hooks go with us. */
static void finish(struct guardian *g)
{
	int quiet = 0;

	g->draining = true;
	/* one empty sweep proves little: the threads may all have been
	 * between probed calls at that instant; three in a row, 25 ms
	 * apart, before the hooks go */
	for (int i = 0; i < 80 && quiet < 3; i++) {
		struct timespec nap = { 0, 25000000 };

		reap(g);
		quiet = !sweep(g) && !signal_pending(g) ? quiet + 1 : 0;
		nanosleep(&nap, NULL);
	}
}

/* spanprobe's own death: its fds (the probes) are closed once it has
 * exited, which its pidfd tells. */
static void await_parent_exit(pid_t parent)
{
	int fd = (int)syscall(SYS_pidfd_open, parent, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (fd < 0) {
		struct timespec nap = { 0, 200000000 };

		nanosleep(&nap, NULL);
		return;
	}
	while (poll(&p, 1, 5000) < 0 && errno == EINTR)
		;
	close(fd);
}

/* Serves stops until spanprobe says its probes are gone ('d' then close)
 * or dies, then restores what is left (finish). */
static void serve(struct guardian *g, int sig_fd, int ctl_fd, pid_t parent)
{
	struct pollfd p[2] = { { .fd = sig_fd, .events = POLLIN }, { .fd = ctl_fd, .events = POLLIN } };
	struct signalfd_siginfo si;
	char c = 0;

	for (;;) {
		int n = poll(p, 2, 1000);

		while (n > 0 && p[0].revents && read(sig_fd, &si, sizeof(si)) > 0)
			;
		if (!reap(g))
			return; /* the target is gone */
		if (n > 0 && p[1].revents)
			break;
	}
	if (read(ctl_fd, &c, 1) != 1 || c != 'd')
		await_parent_exit(parent);
	close(ctl_fd);
	finish(g);
}

/* Everything but the fds the guardian uses is closed: spanprobe's links
 * must go away when spanprobe does. */
static bool kept(int fd, const int *keep, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

static void close_others(const int *keep, size_t n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int dfd = d ? dirfd(d) : -1;

	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd <= 2 || fd == dfd || kept(fd, keep, n))
			continue;
		close(fd);
	}
	closedir(d);
}

static void child_signals(sigset_t *chld)
{
	static const int quiet[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN,
				     SIGTTOU };

	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++)
		signal(quiet[i], SIG_IGN);
	sigemptyset(chld);
	sigaddset(chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, chld, NULL);
}

static void report(int fd, const char *msg)
{
	size_t n = strlen(msg) + 1;

	if (write(fd, msg, n) != (ssize_t)n)
		_exit(3);
}

#define MAX_KEEP 32

static _Noreturn void guardian_main(pid_t tgid, int rec_fd, int sig, const struct sp_guard_arm *arm,
				    int ctl_fd, int st_fd, pid_t parent)
{
	struct guardian g = { .tgid = tgid, .sig = sig, .mem_fd = -1, .rec_fd = rec_fd,
			      .iter_fd = -1 };
	int keep[MAX_KEEP] = { rec_fd, ctl_fd, st_fd }, sig_fd;
	size_t nk = 0;
	char err[256];
	sigset_t chld;

	setpgid(0, 0);
	prctl(PR_SET_NAME, "spanprobe-guard", 0, 0, 0);
	child_signals(&chld);
	sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0) {
		report(st_fd, "the guardian cannot watch its tracees");
		_exit(1);
	}
	/* seized first: a hook that fires must find its tracer */
	if (seize_all(&g, err, sizeof(err)) ||
	    arm->arm(arm->arg, keep + 4, MAX_KEEP - 4, &nk, &g.iter_fd, err, sizeof(err))) {
		report(st_fd, err);
		_exit(1);
	}
	keep[3] = sig_fd;
	close_others(keep, nk + 4);
	report(st_fd, "");
	close(st_fd);
	serve(&g, sig_fd, ctl_fd, parent);
	if (getenv("SPANPROBE_GUARD_DEBUG"))
		fprintf(stderr, "spanprobe-guard: %llu stops, %llu words written, %llu swept\n",
			g.stops, g.writes, g.swept);
	_exit(0); /* the hooks go, the kernel detaches the tracees */
}

/* ---------------------------------------------------------- spanprobe */

static int await_ready(int st_fd, char *err, size_t errlen)
{
	char msg[256];
	ssize_t n, got = 0;

	while (got < (ssize_t)sizeof(msg) - 1 &&
	       (n = read(st_fd, msg + got, sizeof(msg) - 1 - (size_t)got)) > 0) {
		got += n;
		if (memchr(msg, 0, (size_t)got))
			break;
	}
	msg[got] = 0;
	if (got > 0 && !msg[0])
		return 0;
	snprintf(err, errlen, "unwind guard: %s", got > 0 ? msg : "the guardian died at start");
	return -1;
}

int sp_guard_start(struct sp_unwind_guard **out, pid_t tgid, int rec_fd, int sig,
		   const struct sp_guard_arm *arm, char *err, size_t errlen)
{
	struct sp_unwind_guard *g = calloc(1, sizeof(*g));
	int ctl[2], st[2], rc;
	pid_t parent;

	if (!g || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) ||
	    pipe2(st, O_CLOEXEC)) {
		snprintf(err, errlen, "unwind guard: %s", strerror(errno));
		free(g);
		return -1;
	}
	fflush(NULL);
	parent = getpid();
	g->pid = fork();
	if (g->pid == 0) {
		close(ctl[1]);
		close(st[0]);
		guardian_main(tgid, rec_fd, sig, arm, ctl[0], st[1], parent);
	}
	close(ctl[0]);
	close(st[1]);
	g->ctl_fd = ctl[1];
	rc = g->pid < 0 ? (snprintf(err, errlen, "unwind guard: fork: %s", strerror(errno)), -1)
			: await_ready(st[0], err, errlen);
	close(st[0]);
	if (rc) {
		sp_guard_stop(g);
		return -1;
	}
	*out = g;
	return 0;
}

pid_t sp_guard_pid(const struct sp_unwind_guard *g)
{
	return g ? g->pid : 0;
}

void sp_guard_stop(struct sp_unwind_guard *g)
{
	if (!g)
		return;
	if (g->ctl_fd >= 0) {
		/* 'd': the probes are detached, restore at once */
		if (send(g->ctl_fd, "d", 1, MSG_NOSIGNAL) != 1)
			fprintf(stderr, "spanprobe: warning: the unwind guard's guardian (pid %d) "
				"is gone: %s\n", (int)g->pid, strerror(errno));
		close(g->ctl_fd);
	}
	if (g->pid > 0)
		while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
			;
	free(g);
}
