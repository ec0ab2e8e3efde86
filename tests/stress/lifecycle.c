/*
 * lifecycle: a target that ends while it is traced, in one of the ways a
 * real server does. Serves -n queries (handle_query -> parse_query,
 * execute_query -> run_step x4, send_result; ~1 ms each), then starts one
 * more and, inside run_step (depth 2), does what --end says:
 *   return  no last query: main returns 0 after the -n queries
 *   exit    exit(3) from inside the query
 *   segv    a write through a NULL pointer (SIGSEGV, no handler)
 *   exec    execv of this program with --after-exec: the new image (same
 *           pid) says "exec'd", waits for SIGUSR1, serves -n queries
 *           without truth, then exits 0
 *   serve   no last query: serves queries until SIGTERM/SIGINT (between
 *           two queries), then exits 0; see --spin
 * Frames left by exit/segv/exec are written to the truth as abnormal,
 * ended just before; the truth file is complete before the end.
 *
 * --spin FILE (serve): after every query, times 2,000 calls of
 * hot_call(), an instrumented function outside any query, and appends
 * "<unix ns> <ns per call>" to FILE: how fast the target runs, for
 * information (probes cost a trap per call).
 *
 * Usage: lifecycle [-n QUERIES] [--end MODE] [--truth FILE] [--pid-file FILE]
 *                  [--wait-signal] [--spin FILE]
 * Prints "lifecycle: served N queries" before it ends (exit, exec, return).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "truth.h"

#define PROBED __attribute__((noinline, noclone))

static const char *end_mode = "return", *self_path;
static char **self_argv;
static volatile sig_atomic_t stop;
static volatile unsigned long hot_sink;

PROBED void parse_query(void) { tr_enter(__func__); tr_nap_us(100); tr_leave(); }
PROBED void send_result(void) { tr_enter(__func__); tr_nap_us(100); tr_leave(); }
static __attribute__((noinline)) void touch(void) { __asm__ volatile("" ::: "memory"); }
/* not a leaf, so it starts with `push %rbp` like most functions: an entry
 * probe the kernel emulates rather than single-steps */
PROBED void hot_call(unsigned long i) { touch(); hot_sink += i; }

static void finish_here(void)
{
	char *argv[8];
	int k = 0;

	tr_unwind_to(0);
	tr_close();
	fflush(stdout);
	if (!strcmp(end_mode, "exit"))
		exit(3);
	if (!strcmp(end_mode, "segv"))
		*(volatile int *)(uintptr_t)(hot_sink * 0) = 1;
	/* exec: the same program, serving a few queries without truth */
	argv[k++] = self_argv[0];
	argv[k++] = "--after-exec";
	argv[k] = NULL;
	execv(self_path, argv);
	perror("lifecycle: execv");
	_exit(127);
}

PROBED void run_step(int i, bool last)
{
	tr_enter(__func__);
	tr_nap_us(150);
	if (last && i == 2)
		finish_here();
	tr_leave();
}

PROBED void execute_query(bool last)
{
	tr_enter(__func__);
	tr_nap_us(50);
	for (int i = 0; i < 4; i++)
		run_step(i, last);
	tr_leave();
}

PROBED void handle_query(int q, bool last)
{
	tr_query = q;
	tr_enter(__func__);
	parse_query();
	execute_query(last);
	send_result();
	tr_leave();
	tr_query = -1;
}

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void spin(FILE *f)
{
	struct timespec a, b;
	double ns;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned long i = 0; i < 2000; i++)
		hot_call(i);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 2000;
	fprintf(f, "%" PRIu64 " %.1f\n", tr_now(), ns);
	fflush(f);
}

int main(int argc, char **argv)
{
	const char *pid_path = NULL, *truth_path = NULL, *spin_path = NULL;
	int n = 5, q = 0;
	bool wait_signal = false, after_exec = false;
	FILE *spin_f = NULL;
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t set;

	self_argv = argv;
	self_path = "/proc/self/exe";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--wait-signal")) { wait_signal = true; continue; }
		if (!strcmp(a, "--after-exec")) { after_exec = true; continue; }
		if (!v)
			goto usage;
		if (!strcmp(a, "-n")) n = atoi(v);
		else if (!strcmp(a, "--end")) end_mode = v;
		else if (!strcmp(a, "--truth")) truth_path = v;
		else if (!strcmp(a, "--pid-file")) pid_path = v;
		else if (!strcmp(a, "--spin")) spin_path = v;
		else goto usage;
		i++;
	}
	if (strcmp(end_mode, "return") && strcmp(end_mode, "exit") && strcmp(end_mode, "segv") &&
	    strcmp(end_mode, "exec") && strcmp(end_mode, "serve"))
		goto usage;
	if (after_exec) {
		int sig;

		/* SIGUSR1 is still blocked: the mask survives execve */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		printf("lifecycle: exec'd, waiting for SIGUSR1\n");
		fflush(stdout);
		sigwait(&set, &sig);
		for (int i = 0; i < n; i++)
			handle_query(i, false);
		printf("lifecycle: after exec, served %d queries\n", n);
		return 0;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (tr_open(truth_path) || tr_write_pid(pid_path))
		return 2;
	if (spin_path && !(spin_f = fopen(spin_path, "w"))) {
		perror(spin_path);
		return 2;
	}
	if (wait_signal) {
		int sig;

		sigwait(&set, &sig);
	}
	tr_mark();
	if (!strcmp(end_mode, "serve")) {
		while (!stop) {
			handle_query(q++, false);
			tr_flush();
			if (spin_f)
				spin(spin_f);
		}
	} else {
		for (; q < n; q++)
			handle_query(q, false);
	}
	printf("lifecycle: served %d queries\n", q);
	fflush(stdout);
	if (!strcmp(end_mode, "serve") || !strcmp(end_mode, "return")) {
		tr_close();
		return 0;
	}
	handle_query(q, true);
	return 1; /* not reached */
usage:
	fprintf(stderr, "usage: lifecycle [-n QUERIES] [--end return|exit|segv|exec|serve] "
		"[--truth FILE] [--pid-file FILE] [--wait-signal] [--spin FILE]\n");
	return 2;
}
