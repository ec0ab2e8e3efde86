/*
 * Ground truth for the stress fixtures (C and C++), one JSON object per
 * call of an instrumented function, in the format check_spans.py reads:
 * query name parent depth begin_ns end_ns tid pid id parent_id abnormal
 * iv_begin iv_end. Every thread has its own stack of open calls; records
 * are written when a call ends (normally or not), under a lock.
 *
 * tr_enter(name) at the top of an instrumented function, tr_leave() just
 * before it returns; a catcher calls tr_unwind_to(level) with the depth
 * it saved, which ends every frame above it as abnormal, now. A thread
 * calls tr_flush() before it ends; the main thread tr_close().
 */
#ifndef SPANPROBE_STRESS_TRUTH_H
#define SPANPROBE_STRESS_TRUTH_H

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TR_MAX_DEPTH 64

struct tr_frame {
	uint64_t id, begin;
	long iv;
	const char *name;
};

static FILE *tr_file;
static pthread_mutex_t tr_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t tr_next_id;
static __thread struct tr_frame tr_stk[TR_MAX_DEPTH];
static __thread int tr_depth;
static __thread int tr_query = -1;

static inline uint64_t tr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Voluntary context switches made by tr_nap_us() so far on this thread. */
static __thread long tr_nap_switches;

/* Times this thread was switched out so far other than by its own naps:
 * preempted, or blocked (on a lock in the kernel's uprobe path, on a page
 * fault...). Recorded with each timestamp: where it changed between two
 * timestamps of a thread, the probe may have fired long before (a begin)
 * or after (an end) the fixture read its clock, and check_spans.py is
 * lenient there (see tests/fixtures/qserver.c for the idea). */
static inline long tr_preemptions(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nivcsw + ru.ru_nvcsw - tr_nap_switches;
}

static __attribute__((noinline, unused)) void tr_enter(const char *name)
{
	uint64_t t = tr_now();
	struct tr_frame *f = &tr_stk[tr_depth++];

	f->begin = t;
	f->iv = tr_preemptions();
	f->name = name;
	f->id = __atomic_add_fetch(&tr_next_id, 1, __ATOMIC_RELAXED);
}

/* Lines are gathered per thread and written in bulk: a lock taken between
 * a call's end timestamp and its real return (contended by other threads)
 * would delay the return by an amount the truth cannot see. */
#define TR_BUF 65536
static __thread char tr_buf[TR_BUF];
static __thread size_t tr_len;

/* Writes this thread's lines out; every thread calls it before it ends. */
static __attribute__((unused)) void tr_flush(void)
{
	if (tr_file && tr_len) {
		pthread_mutex_lock(&tr_mu);
		fwrite(tr_buf, 1, tr_len, tr_file);
		pthread_mutex_unlock(&tr_mu);
	}
	tr_len = 0;
}

/* Called before a call's end is timestamped, never after: writing out
 * (a syscall, maybe a wait for the disk) must fall inside the call. Half
 * the buffer holds any unwinding (64 frames of < 512 bytes). */
static inline __attribute__((always_inline, unused)) void tr_make_room(void)
{
	if (tr_len > TR_BUF / 2)
		tr_flush();
}

static __attribute__((noinline, unused)) void tr_emit(uint64_t end, long iv, int abnormal)
{
	const struct tr_frame *f = &tr_stk[--tr_depth];
	const struct tr_frame *p = tr_depth ? f - 1 : NULL;
	char q[16] = "null", parent[160] = "null", pid[24] = "null";
	int n;

	if (!tr_file)
		return;
	if (tr_query >= 0)
		snprintf(q, sizeof(q), "%d", tr_query);
	if (p) {
		snprintf(parent, sizeof(parent), "\"%s\"", p->name);
		snprintf(pid, sizeof(pid), "%" PRIu64, p->id);
	}
	if (tr_len > TR_BUF - 1024)
		tr_flush(); /* not reached: tr_make_room() came first */
	n = snprintf(tr_buf + tr_len, TR_BUF - tr_len,
		     "{\"query\":%s,\"name\":\"%s\",\"parent\":%s,\"depth\":%d,"
		     "\"begin_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64 ",\"tid\":%d,\"pid\":%d,"
		     "\"id\":%" PRIu64 ",\"parent_id\":%s,\"abnormal\":%s,"
		     "\"iv_begin\":%ld,\"iv_end\":%ld}\n",
		     q, f->name, parent, tr_depth, f->begin, end, (int)gettid(), (int)getpid(),
		     f->id, pid, abnormal ? "true" : "false", f->iv, iv);
	if (n > 0 && (size_t)n < TR_BUF - tr_len)
		tr_len += (size_t)n;
}

/* Inlined: the end timestamp must come before the instrumented function's
 * own exit (with ret-site probes a `jmp tr_leave` tail call would be that
 * exit, and anything delaying the thread after it would be invisible to
 * the truth's preemption counts). */
static inline __attribute__((always_inline, unused)) void tr_leave(void)
{
	uint64_t t;

	tr_make_room();
	t = tr_now();
	tr_emit(t, tr_preemptions(), 0);
}

/* The frames above level were left without returning. */
static __attribute__((unused)) void tr_unwind_to(int level)
{
	uint64_t t;
	long iv;

	tr_make_room();
	t = tr_now();
	iv = tr_preemptions();

	while (tr_depth > level)
		tr_emit(t, iv, 1);
}

static __attribute__((unused)) int tr_open(const char *path)
{
	if (!path)
		return 0;
	tr_file = fopen(path, "w");
	if (!tr_file) {
		perror(path);
		return -1;
	}
	return 0;
}

/* A record of no instrumented call, outside any query: it only gives
 * check_spans.py the thread's preemption count at this point, so that a
 * preemption before the thread's first real timestamp (or after its last
 * one) is noticed. Call it when a thread starts, and before it ends. */
static __attribute__((unused)) void tr_mark(void)
{
	int q = tr_query;

	tr_query = -1;
	tr_enter("(thread start)");
	tr_emit(tr_stk[tr_depth - 1].begin, tr_stk[tr_depth - 1].iv, 0);
	tr_query = q;
}

/* Flushes the calling thread's lines (the others must have flushed theirs). */
static __attribute__((unused)) void tr_close(void)
{
	tr_flush();
	if (tr_file)
		fclose(tr_file);
	tr_file = NULL;
}

/* Sleeps; the switches the sleep itself makes are not "preemptions". */
static __attribute__((unused)) void tr_nap_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	struct rusage a, b;

	getrusage(RUSAGE_THREAD, &a);
	while (nanosleep(&ts, &ts))
		;
	getrusage(RUSAGE_THREAD, &b);
	tr_nap_switches += b.ru_nvcsw - a.ru_nvcsw;
}

static __attribute__((unused)) int tr_write_pid(const char *path)
{
	FILE *f;

	if (!path)
		return 0;
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		return -1;
	}
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f);
}

#endif
