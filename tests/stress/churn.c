/*
 * churn: thread churn under the tracer. Creates THREADS short-lived
 * threads, CONCURRENCY at a time; each does one thing and exits:
 *   thread i % 10 == 9  'X' enters a query and calls pthread_exit from
 *                       inside it (depth 2): the query never returns
 *   thread i % 10 == 4  'O' calls an instrumented function outside any
 *                       query, nothing else
 *   otherwise           'N' serves one query: handle_query -> parse_query,
 *                       execute_query -> run_step, send_result
 * Ground truth per call (tests/stress/truth.h); the frames a thread leaves
 * by exiting are "abnormal", ended just before pthread_exit.
 *
 * Usage: churn [-t THREADS] [-c CONCURRENCY] [--truth FILE] [--pid-file FILE]
 *              [--wait-signal] [--hold FILE]       (as tests/stress/jmpstorm)
 * Default: 10,000 threads, 8 at a time. Prints how many queries it served.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fixture_ctl.h"
#include "truth.h"

#define PROBED __attribute__((noinline, noclone))

static int next_query;

PROBED void parse_query(void)  { tr_enter(__func__); tr_nap_us(30); tr_leave(); }
PROBED void send_result(void)  { tr_enter(__func__); tr_nap_us(20); tr_leave(); }
PROBED void idle_check(void)   { tr_enter(__func__); tr_nap_us(20); tr_leave(); }

PROBED void run_step(char kind)
{
	tr_enter(__func__);
	tr_nap_us(30);
	if (kind == 'X') {
		tr_unwind_to(0);
		tr_flush();
		pthread_exit(NULL);
	}
	tr_leave();
}

PROBED void execute_query(char kind)
{
	tr_enter(__func__);
	tr_nap_us(20);
	run_step(kind);
	tr_leave();
}

PROBED void handle_query(char kind)
{
	tr_query = __atomic_fetch_add(&next_query, 1, __ATOMIC_RELAXED);
	tr_enter(__func__);
	parse_query();
	execute_query(kind);
	send_result();
	tr_leave();
	tr_query = -1;
}

static void *worker(void *arg)
{
	long i = (long)arg;
	char kind = i % 10 == 9 ? 'X' : i % 10 == 4 ? 'O' : 'N';

	tr_mark();

	if (kind == 'O')
		idle_check();
	else
		handle_query(kind);
	tr_mark(); /* a timestamp after the query, so a preemption right at its end is seen */
	tr_flush();
	return NULL;
}

int main(int argc, char **argv)
{
	const char *pid_path = NULL, *truth_path = NULL, *hold = NULL;
	long threads = 10000, conc = 8;
	bool wait_signal = false;
	pthread_t *tids;
	sigset_t set;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--wait-signal")) { wait_signal = true; continue; }
		if (!v)
			goto usage;
		if (!strcmp(a, "-t")) threads = atol(v);
		else if (!strcmp(a, "-c")) conc = atol(v);
		else if (!strcmp(a, "--truth")) truth_path = v;
		else if (!strcmp(a, "--pid-file")) pid_path = v;
		else if (!strcmp(a, "--hold")) hold = v;
		else goto usage;
		i++;
	}
	if (threads < 0 || conc < 1)
		goto usage;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL); /* inherited by every thread */
	tids = calloc((size_t)conc, sizeof(*tids));
	if (!tids || tr_open(truth_path) || tr_write_pid(pid_path))
		return 2;
	if (wait_signal)
		fx_wait_release();
	for (long base = 0; base < threads; base += conc) {
		long k = threads - base < conc ? threads - base : conc;

		for (long j = 0; j < k; j++) {
			int err = pthread_create(&tids[j], NULL, worker, (void *)(base + j));

			if (err) {
				fprintf(stderr, "churn: pthread_create: %s\n", strerror(err));
				return 1;
			}
		}
		for (long j = 0; j < k; j++)
			pthread_join(tids[j], NULL);
	}
	tr_close();
	printf("churn: %ld threads, served %d queries\n", threads, next_query);
	fflush(stdout);
	fx_hold(hold, next_query);
	free(tids);
	return 0;
usage:
	fprintf(stderr, "usage: churn [-t THREADS] [-c CONCURRENCY] [--truth FILE] "
		"[--pid-file FILE] [--wait-signal] [--hold FILE]\n");
	return 2;
}
