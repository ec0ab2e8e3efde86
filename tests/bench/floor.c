/*
 * Loader of the benchmark floor (bpf/floor.bpf.c): attaches empty BPF
 * programs to file offsets of one binary for one process, says so on
 * stdout and holds them until SIGINT or SIGTERM.
 *
 *   floor MODE PID BINARY OFFSET...
 *
 * MODE  pair     uprobe_multi entry + uretprobe_multi return (the floor)
 *       classic  perf-event uprobe + uretprobe per offset
 *       session  uprobe session program returning 0 (entry and return)
 *       session-skip  uprobe session program returning 1 (entry only)
 *       session-minimal  the least a span timer does: a session program that
 *                keeps a timestamp in task storage and compares at return
 *       pair-clock  as pair, each program reading bpf_ktime_get_ns()
 *       entry    uprobe_multi entry only
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "floor.skel.h"

/* Not in the uapi headers of libbpf 1.4. */
#define FLOOR_TRACE_UPROBE_SESSION 57
#define MAX_LINKS 4096

enum mode { M_PAIR, M_CLASSIC, M_SESSION, M_ENTRY, M_SESSION_SKIP, M_PAIR_CLOCK,
	    M_SESSION_MINIMAL };

struct run {
	struct floor_bpf *skel;
	enum mode mode;
	pid_t pid;
	const char *binary;
	unsigned long *offsets;
	size_t n;
	struct bpf_link *links[MAX_LINKS];
	size_t n_links;
	int session_fd;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_mode(const char *s, enum mode *m)
{
	/* in enum mode order */
	static const char *names[] = { "pair", "classic", "session", "entry",
				       "session-skip", "pair-clock", "session-minimal" };

	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(s, names[i]) == 0) {
			*m = (enum mode)i;
			return 0;
		}
	return -1;
}

/* Only the programs of the chosen mode are loaded, each with the attach
 * type its link needs. */
static void pick_programs(struct floor_bpf *sk, enum mode m)
{
	bpf_program__set_autoload(sk->progs.floor_multi_entry, m == M_PAIR || m == M_ENTRY);
	bpf_program__set_autoload(sk->progs.floor_multi_exit, m == M_PAIR);
	bpf_program__set_autoload(sk->progs.floor_session, m == M_SESSION);
	bpf_program__set_autoload(sk->progs.floor_session_skip, m == M_SESSION_SKIP);
	bpf_program__set_autoload(sk->progs.floor_session_minimal, m == M_SESSION_MINIMAL);
	bpf_program__set_autoload(sk->progs.floor_clock_entry, m == M_PAIR_CLOCK);
	bpf_program__set_autoload(sk->progs.floor_clock_exit, m == M_PAIR_CLOCK);
	bpf_program__set_autoload(sk->progs.floor_classic_entry, m == M_CLASSIC);
	bpf_program__set_autoload(sk->progs.floor_classic_exit, m == M_CLASSIC);
	bpf_program__set_expected_attach_type(sk->progs.floor_session,
					      FLOOR_TRACE_UPROBE_SESSION);
	bpf_program__set_expected_attach_type(sk->progs.floor_session_skip,
					      FLOOR_TRACE_UPROBE_SESSION);
	bpf_program__set_expected_attach_type(sk->progs.floor_session_minimal,
					      FLOOR_TRACE_UPROBE_SESSION);
}

static int keep(struct run *r, struct bpf_link *l)
{
	if (!l)
		return -errno;
	if (r->n_links == MAX_LINKS) {
		bpf_link__destroy(l);
		return -E2BIG;
	}
	r->links[r->n_links++] = l;
	return 0;
}

static int attach_multi(struct run *r, struct bpf_program *p, bool ret)
{
	LIBBPF_OPTS(bpf_uprobe_multi_opts, o, .offsets = r->offsets, .cnt = r->n,
		    .retprobe = ret);

	return keep(r, bpf_program__attach_uprobe_multi(p, r->pid, r->binary, NULL, &o));
}

static int attach_classic(struct run *r)
{
	int err = 0;

	for (size_t i = 0; i < r->n && !err; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = false);
		LIBBPF_OPTS(bpf_uprobe_opts, ro, .retprobe = true);

		err = keep(r, bpf_program__attach_uprobe_opts(r->skel->progs.floor_classic_entry,
							       r->pid, r->binary,
							       r->offsets[i], &o));
		if (!err)
			err = keep(r, bpf_program__attach_uprobe_opts(
					      r->skel->progs.floor_classic_exit, r->pid,
					      r->binary, r->offsets[i], &ro));
	}
	return err;
}

/* libbpf 1.4 cannot create session links: BPF_LINK_CREATE by hand. */
static int attach_session(struct run *r, struct bpf_program *p)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = bpf_program__fd(p);
	a.link_create.attach_type = FLOOR_TRACE_UPROBE_SESSION;
	a.link_create.uprobe_multi.path = (__u64)(uintptr_t)r->binary;
	a.link_create.uprobe_multi.offsets = (__u64)(uintptr_t)r->offsets;
	a.link_create.uprobe_multi.cnt = (__u32)r->n;
	a.link_create.uprobe_multi.pid = (__u32)r->pid;
	r->session_fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	return r->session_fd < 0 ? -errno : 0;
}

static int attach(struct run *r)
{
	int err;

	switch (r->mode) {
	case M_PAIR:
		err = attach_multi(r, r->skel->progs.floor_multi_entry, false);
		return err ? err : attach_multi(r, r->skel->progs.floor_multi_exit, true);
	case M_PAIR_CLOCK:
		err = attach_multi(r, r->skel->progs.floor_clock_entry, false);
		return err ? err : attach_multi(r, r->skel->progs.floor_clock_exit, true);
	case M_ENTRY:
		return attach_multi(r, r->skel->progs.floor_multi_entry, false);
	case M_SESSION:
		return attach_session(r, r->skel->progs.floor_session);
	case M_SESSION_SKIP:
		return attach_session(r, r->skel->progs.floor_session_skip);
	case M_SESSION_MINIMAL:
		return attach_session(r, r->skel->progs.floor_session_minimal);
	case M_CLASSIC:
		return attach_classic(r);
	}
	return -EINVAL;
}

static void release(struct run *r)
{
	for (size_t i = 0; i < r->n_links; i++)
		bpf_link__destroy(r->links[i]);
	if (r->session_fd >= 0)
		close(r->session_fd);
	floor_bpf__destroy(r->skel);
	free(r->offsets);
}

static int parse_args(int argc, char **argv, struct run *r)
{
	char *end;

	if (argc < 5 || parse_mode(argv[1], &r->mode))
		return -1;
	r->pid = (pid_t)strtol(argv[2], &end, 10);
	if (*end || r->pid <= 0)
		return -1;
	r->binary = argv[3];
	r->n = (size_t)(argc - 4);
	r->offsets = calloc(r->n, sizeof(*r->offsets));
	if (!r->offsets)
		return -1;
	for (size_t i = 0; i < r->n; i++) {
		r->offsets[i] = strtoul(argv[4 + i], &end, 0);
		if (*end)
			return -1;
	}
	return 0;
}

static void wait_for_signal(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop)
		sigsuspend(&old); /* no window between the test and the wait */
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int main(int argc, char **argv)
{
	struct run r = { .session_fd = -1 };
	int err;

	if (parse_args(argc, argv, &r)) {
		fprintf(stderr, "usage: floor pair|pair-clock|classic|session|session-skip|session-minimal|entry "
			"PID BINARY OFFSET...\n");
		free(r.offsets);
		return 2;
	}
	r.skel = floor_bpf__open();
	if (!r.skel) {
		fprintf(stderr, "floor: open: %s\n", strerror(errno));
		return 1;
	}
	pick_programs(r.skel, r.mode);
	err = floor_bpf__load(r.skel);
	if (!err)
		err = attach(&r);
	if (err) {
		fprintf(stderr, "floor: %s: %s\n", argv[1], strerror(-err));
		release(&r);
		return 1;
	}
	printf("floor: attached %s to %zu offset%s\n", argv[1], r.n, r.n == 1 ? "" : "s");
	fflush(stdout);
	wait_for_signal();
	release(&r);
	return 0;
}
