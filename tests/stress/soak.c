/*
 * soak: a steady load for long runs under the tracer.
 *   - a worker thread makes RATE instrumented calls per second (default
 *     100,000), paced in 1 ms ticks: fast queries of 10 calls each
 *     (fast_query -> fast_step x 9, no sleep), far under any threshold;
 *   - a second thread starts a slow query every second: slow_query ->
 *     slow_step x 3 (350 ms each), ~1.05 s: kept with --min-query 1s.
 * No ground truth: a soak run is about the tracer's resources over time.
 * Every second the main thread appends "<unix s> <calls so far> <slow
 * queries so far>" to --stats FILE. Stops on SIGTERM/SIGINT (or after
 * --for SECONDS) and prints totals.
 *
 * Usage: soak [-r RATE] [--for SECONDS] [--stats FILE] [--pid-file FILE]
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "truth.h"

#define PROBED __attribute__((noinline, noclone))

static volatile sig_atomic_t stop;
static volatile unsigned long sink;
static unsigned long calls, slow_done;
static long rate = 100000;

/* Not a leaf: gcc gives it a frame, so it starts with `push %rbp` (an
 * entry probe the kernel emulates) like most real functions; a leaf
 * starting with a RIP-relative load would be single-stepped instead. */
static __attribute__((noinline)) void touch(void) { __asm__ volatile("" ::: "memory"); }

PROBED void fast_step(unsigned long i)
{
	touch();
	sink += i;
}

/* The write after the loop keeps the last call a call: as a tail jump,
 * the callee would run after its caller's span has ended. */
PROBED void fast_query(unsigned long base)
{
	for (unsigned long i = 0; i < 9; i++)
		fast_step(base + i);
	sink++;
}

PROBED void slow_step(void) { tr_nap_us(350000); }

PROBED void slow_query(void)
{
	for (int i = 0; i < 3; i++)
		slow_step();
	sink++;
}

static void tick_add(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000) {
		t->tv_nsec -= 1000000000;
		t->tv_sec++;
	}
}

static void *fast_worker(void *arg)
{
	struct timespec next;
	long per_tick = rate / 1000 / 10; /* queries of 10 calls per 1 ms */
	unsigned long n = 0;

	(void)arg;
	if (per_tick < 1)
		per_tick = 1;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop) {
		for (long k = 0; k < per_tick; k++, n += 10)
			fast_query(n);
		__atomic_store_n(&calls, n, __ATOMIC_RELAXED);
		tick_add(&next, 1000000);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

static void *slow_worker(void *arg)
{
	struct timespec next;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop) {
		slow_query();
		__atomic_add_fetch(&slow_done, 1, __ATOMIC_RELAXED);
		tick_add(&next, 1000000000);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	const char *pid_path = NULL, *stats_path = NULL;
	long for_s = 0;
	FILE *stats = NULL;
	pthread_t fast, slow;
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t set;
	time_t t0 = time(NULL);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			goto usage;
		if (!strcmp(a, "-r")) rate = atol(v);
		else if (!strcmp(a, "--for")) for_s = atol(v);
		else if (!strcmp(a, "--stats")) stats_path = v;
		else if (!strcmp(a, "--pid-file")) pid_path = v;
		else goto usage;
		i++;
	}
	if (rate < 10 || for_s < 0)
		goto usage;
	if (stats_path && !(stats = fopen(stats_path, "w"))) {
		perror(stats_path);
		return 2;
	}
	/* the workers do not take the signals: they only watch `stop` */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&fast, NULL, fast_worker, NULL) ||
	    pthread_create(&slow, NULL, slow_worker, NULL))
		return 1;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (tr_write_pid(pid_path))
		return 2;
	while (!stop && (!for_s || time(NULL) - t0 < for_s)) {
		sleep(1);
		if (stats) {
			fprintf(stats, "%ld %lu %lu\n", (long)time(NULL),
				__atomic_load_n(&calls, __ATOMIC_RELAXED),
				__atomic_load_n(&slow_done, __ATOMIC_RELAXED));
			fflush(stats);
		}
	}
	stop = 1;
	pthread_join(fast, NULL);
	pthread_join(slow, NULL);
	printf("soak: %lu calls, %lu slow queries in %ld s\n", calls, slow_done,
	       (long)(time(NULL) - t0));
	return 0;
usage:
	fprintf(stderr, "usage: soak [-r RATE] [--for SECONDS] [--stats FILE] [--pid-file FILE]\n");
	return 2;
}
