/*
 * burst: overflows the tracer's ring buffer on purpose. One thread serves
 *   -b small queries (handle_query -> parse_query, 8 x fetch_row with a
 *      short sleep, send_result: 11 calls, ~1 ms),
 *   one burst query (handle_query -> parse_query, burst_loop -> tiny_call
 *      x N without any sleep: N + 1 calls in a few tens of ms; then
 *      settle(), which sleeps 300 ms so the tracer can drain its buffer
 *      before the rest of the query: its root record finds room again),
 *   -a small queries again, after another 300 ms,
 * every call written to the ground truth (tests/stress/truth.h). With
 * --min-span 0 every call inside a query is one record for the tracer,
 * so the truth says exactly how many records the kernel had to send.
 *
 * Usage: burst [-b BEFORE] [-a AFTER] [-N BURST_CALLS] [--truth FILE]
 *              [--pid-file FILE] [--wait-signal] [--hold FILE]
 * Default: 5 small queries, a burst of 50,000 calls, 5 small queries.
 * Prints "burst: served Q queries, R calls inside queries".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fixture_ctl.h"
#include "truth.h"

#define PROBED __attribute__((noinline, noclone))

static volatile unsigned long sink;
static long calls_in_queries;

PROBED void parse_query(void) { tr_enter(__func__); tr_nap_us(60); tr_leave(); calls_in_queries++; }
PROBED void send_result(void) { tr_enter(__func__); tr_nap_us(40); tr_leave(); calls_in_queries++; }
PROBED void fetch_row(int i) { tr_enter(__func__); tr_nap_us(40 + i); tr_leave(); calls_in_queries++; }
PROBED void tiny_call(long i) { tr_enter(__func__); sink += (unsigned long)i; tr_leave(); calls_in_queries++; }

PROBED void settle(void) { tr_enter(__func__); tr_nap_us(300000); tr_leave(); calls_in_queries++; }

PROBED void burst_loop(long n)
{
	tr_enter(__func__);
	for (long i = 0; i < n; i++)
		tiny_call(i);
	tr_leave();
	calls_in_queries++;
}

PROBED void handle_query(int q, long burst)
{
	tr_query = q;
	tr_enter(__func__);
	parse_query();
	if (burst) {
		burst_loop(burst);
		settle();
	} else {
		for (int i = 0; i < 8; i++)
			fetch_row(i);
	}
	send_result();
	tr_leave();
	tr_query = -1;
	calls_in_queries++;
}

int main(int argc, char **argv)
{
	const char *pid_path = NULL, *truth_path = NULL, *hold = NULL;
	int before = 5, after = 5, q = 0;
	long burst = 50000;
	bool wait_signal = false;
	sigset_t set;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--wait-signal")) { wait_signal = true; continue; }
		if (!v)
			goto usage;
		if (!strcmp(a, "-b")) before = atoi(v);
		else if (!strcmp(a, "-a")) after = atoi(v);
		else if (!strcmp(a, "-N")) burst = atol(v);
		else if (!strcmp(a, "--truth")) truth_path = v;
		else if (!strcmp(a, "--pid-file")) pid_path = v;
		else if (!strcmp(a, "--hold")) hold = v;
		else goto usage;
		i++;
	}
	if (before < 0 || after < 0 || burst < 1)
		goto usage;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (tr_open(truth_path) || tr_write_pid(pid_path))
		return 2;
	if (wait_signal)
		fx_wait_release();
	tr_mark();
	for (int i = 0; i < before; i++)
		handle_query(q++, 0);
	handle_query(q++, burst);
	tr_nap_us(300000);
	for (int i = 0; i < after; i++)
		handle_query(q++, 0);
	tr_mark();
	tr_close();
	printf("burst: served %d queries, %ld calls inside queries\n", q, calls_in_queries);
	fflush(stdout);
	fx_hold(hold, q);
	return 0;
usage:
	fprintf(stderr, "usage: burst [-b BEFORE] [-a AFTER] [-N BURST_CALLS] [--truth FILE] "
		"[--pid-file FILE] [--wait-signal] [--hold FILE]\n");
	return 2;
}
