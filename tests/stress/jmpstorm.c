/*
 * jmpstorm: thousands of longjmp / siglongjmp exits through instrumented
 * frames, PostgreSQL style, in short queries so that a stress test can
 * run 1,000 of each in seconds. Every call is written to the ground truth
 * (tests/stress/truth.h); frames left by a jump are "abnormal", ended when
 * the catcher noticed.
 *
 * One thread; root handle_query. Query kinds (-k, cycled):
 *   N  parse_query, execute_query -> scan_table -> fetch_tuple x3
 *      -> check_tuple, send_result
 *   L  check_tuple (2nd tuple) -> raise_error longjmps to handle_query:
 *      5 frames left at once; then report_error and a retry that works
 *   S  check_tuple (3rd tuple) raises SIGUSR2; the handler calls
 *      on_signal, which siglongjmps to handle_query through the signal
 *      frame; then report_error
 *   M  exec_subxact catches (setjmp in a middle frame) raise_error from
 *      risky_step -> deeper_step, calls rollback_subxact, then the query
 *      goes on normally
 * Every 16th query is followed by housekeeping(), outside any query.
 *
 * Usage: jmpstorm [-n QUERIES] [-k KINDS] [--truth FILE] [--pid-file FILE]
 *                 [--wait-signal] [--hold FILE]
 * --wait-signal: wait for SIGUSR1 before the first query; --hold FILE:
 * after the last one write "done N" to FILE and wait for SIGUSR1/SIGTERM
 * before exiting (so a test can look at the tracer while it is attached).
 * Default: 4000 queries of NLSM (1,000 of each kind).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fixture_ctl.h"
#include "truth.h"

#define PROBED __attribute__((noinline, noclone))

static jmp_buf *err_stack;    /* innermost catcher of raise_error */
static sigjmp_buf sig_env;    /* handle_query's catcher of on_signal */

PROBED __attribute__((noreturn)) void raise_error(int code)
{
	tr_enter(__func__);
	tr_nap_us(30);
	longjmp(*err_stack, code);
}

PROBED __attribute__((noreturn)) void on_signal(void)
{
	tr_enter(__func__);
	tr_nap_us(30);
	siglongjmp(sig_env, 1);
}

static void on_usr2(int sig)
{
	(void)sig;
	on_signal();
}

PROBED void parse_query(void)      { tr_enter(__func__); tr_nap_us(80); tr_leave(); }
PROBED void send_result(void)      { tr_enter(__func__); tr_nap_us(50); tr_leave(); }
PROBED void report_error(void)     { tr_enter(__func__); tr_nap_us(60); tr_leave(); }
PROBED void rollback_subxact(void) { tr_enter(__func__); tr_nap_us(40); tr_leave(); }
PROBED void process_rows(void)     { tr_enter(__func__); tr_nap_us(40); tr_leave(); }
PROBED void housekeeping(void)     { tr_enter(__func__); tr_nap_us(40); tr_leave(); }

PROBED void check_tuple(int i, char kind)
{
	tr_enter(__func__);
	tr_nap_us(30 + i);
	if (kind == 'L' && i == 1)
		raise_error(1);
	if (kind == 'S' && i == 2)
		raise(SIGUSR2);
	tr_leave();
}

PROBED void fetch_tuple(int i, char kind)
{
	tr_enter(__func__);
	tr_nap_us(40);
	check_tuple(i, kind);
	tr_leave();
}

PROBED void scan_table(char kind)
{
	tr_enter(__func__);
	tr_nap_us(50);
	for (int i = 0; i < 3; i++)
		fetch_tuple(i, kind);
	tr_leave();
}

PROBED void execute_query(char kind)
{
	tr_enter(__func__);
	tr_nap_us(50);
	scan_table(kind);
	tr_leave();
}

PROBED void deeper_step(void)
{
	tr_enter(__func__);
	tr_nap_us(40);
	raise_error(2);
}

PROBED void risky_step(void)
{
	tr_enter(__func__);
	tr_nap_us(40);
	deeper_step();
	tr_leave();
}

PROBED void exec_subxact(void)
{
	tr_enter(__func__);
	volatile int level = tr_depth;
	jmp_buf env, *volatile outer = err_stack;

	tr_nap_us(40);
	if (setjmp(env) == 0) {
		err_stack = &env;
		risky_step();
	} else {
		tr_unwind_to(level);
		rollback_subxact();
	}
	err_stack = outer;
	process_rows();
	tr_leave();
}

PROBED void handle_query(int qid, char kind)
{
	tr_query = qid;
	tr_enter(__func__);
	volatile int level = tr_depth;
	jmp_buf env;

	err_stack = &env;
	if (setjmp(env) != 0) {
		tr_unwind_to(level);
		report_error();
		execute_query('N'); /* the retry works */
	} else if (sigsetjmp(sig_env, 1) != 0) {
		tr_unwind_to(level);
		report_error();
	} else {
		parse_query();
		if (kind == 'M')
			exec_subxact();
		execute_query(kind);
	}
	err_stack = NULL;
	send_result();
	tr_leave();
	tr_query = -1;
}

int main(int argc, char **argv)
{
	const char *kinds = "NLSM", *pid_path = NULL, *truth_path = NULL, *hold = NULL;
	int n = 4000;
	bool wait_signal = false;
	sigset_t set;
	struct sigaction sa = { .sa_handler = on_usr2 };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--wait-signal")) { wait_signal = true; continue; }
		if (!v)
			goto usage;
		if (!strcmp(a, "-n")) n = atoi(v);
		else if (!strcmp(a, "-k")) kinds = v;
		else if (!strcmp(a, "--truth")) truth_path = v;
		else if (!strcmp(a, "--pid-file")) pid_path = v;
		else if (!strcmp(a, "--hold")) hold = v;
		else goto usage;
		i++;
	}
	if (!*kinds || strspn(kinds, "NLSM") != strlen(kinds) || n < 0)
		goto usage;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	if (tr_open(truth_path) || tr_write_pid(pid_path))
		return 2;
	if (wait_signal)
		fx_wait_release();
	tr_mark();
	for (int q = 0; q < n; q++) {
		handle_query(q, kinds[q % strlen(kinds)]);
		if (q % 16 == 15)
			housekeeping();
	}
	tr_mark();
	tr_close();
	printf("jmpstorm: served %d queries\n", n);
	fflush(stdout);
	fx_hold(hold, n);
	return 0;
usage:
	fprintf(stderr, "usage: jmpstorm [-n QUERIES] [-k NLSM...] [--truth FILE] "
		"[--pid-file FILE] [--wait-signal] [--hold FILE]\n");
	return 2;
}
