/*
 * throwstorm: thousands of C++ exceptions thrown through instrumented
 * frames, in short queries. Truth is written by an RAII guard
 * (tests/stress/truth.h); a frame whose destructor runs during unwinding
 * is "abnormal", ended when the unwinder destroyed it.
 *
 * One thread; root storm::Engine::run_query(int). Query kinds (-k, cycled):
 *   N  plan(), execute() -> fetch_with_retry() -> scan_partition(int) x2
 *      -> read_page(int, int) x2, then finish()
 *   X  read_page of partition 1 throws QueryError through scan_partition,
 *      fetch_with_retry and execute; run_query catches it and calls
 *      log_error() and finish()
 *   R  read_page of partition 1 throws RetryError; fetch_with_retry
 *      catches it (a middle frame) and scans the partition again
 *   T  read_page of partition 1 throws RethrowError (a QueryError);
 *      scan_partition catches it and rethrows it with `throw;`
 *      (__cxa_rethrow: _Unwind_Resume_or_Rethrow); run_query catches it
 *   E  the query runs on a thread of its own, and read_page of partition 1
 *      calls pthread_exit: a forced unwind runs every frame's destructor
 *      up to the thread's start, and the thread ends inside the query
 * Every 16th query is followed by storm::housekeeping(), outside queries.
 *
 * Usage: throwstorm [-n QUERIES] [-k KINDS] [--truth FILE] [--pid-file FILE]
 *                   [--wait-signal] [--hold FILE]      (as jmpstorm)
 * Default: 3000 queries of NXR (1,000 of each kind). T and E only when
 * asked (-k NXRTE: the unwind guard's tests).
 */
#include <csignal>
#include <pthread.h>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include "fixture_ctl.h"
#include "truth.h"

#define PROBED __attribute__((noinline, noclone))

namespace {

/* pthread_exit's forced unwind is no C++ exception: uncaught_exceptions()
 * does not see it */
thread_local bool exiting;

class Frame {
public:
	explicit Frame(const char *name) : unwinding_(std::uncaught_exceptions()) { tr_enter(name); }
	~Frame()
	{
		uint64_t t;

		tr_make_room();
		t = tr_now();

		tr_emit(t, tr_preemptions(), std::uncaught_exceptions() > unwinding_ || exiting);
	}
	Frame(const Frame &) = delete;
	Frame &operator=(const Frame &) = delete;
private:
	int unwinding_;
};

} // namespace

namespace storm {

struct QueryError : std::runtime_error { using std::runtime_error::runtime_error; };
struct RetryError : std::runtime_error { using std::runtime_error::runtime_error; };
struct RethrowError : QueryError { using QueryError::QueryError; };

PROBED void read_page(int page, int fail)
{
	Frame f("storm::read_page(int, int)");
	tr_nap_us(30 + page);
	if (fail == 1)
		throw QueryError("corrupt page");
	if (fail == 2)
		throw RetryError("page moved");
	if (fail == 3)
		throw RethrowError("corrupt page, rethrown");
	if (fail == 4) {
		exiting = true;
		pthread_exit(nullptr);
	}
}

PROBED long scan_partition(int part, int fail)
{
	Frame f("storm::scan_partition(int, int)");
	tr_nap_us(40);
	for (int page = 0; page < 2; page++) {
		try {
			read_page(page, page == 1 ? fail : 0);
		} catch (const RethrowError &) {
			tr_nap_us(10);
			throw;
		}
	}
	return part;
}

PROBED long fetch_with_retry(int fail)
{
	Frame f("storm::fetch_with_retry(int)");
	long sum = 0;

	for (int part = 0; part < 2; part++) {
		try {
			sum += scan_partition(part, part == 1 ? fail : 0);
		} catch (const RetryError &) {
			sum += scan_partition(part, 0);
		}
	}
	return sum;
}

PROBED long execute(int fail)
{
	Frame f("storm::execute(int)");
	tr_nap_us(40);
	return fetch_with_retry(fail);
}

PROBED void plan() { Frame f("storm::plan()"); tr_nap_us(60); }
PROBED void log_error() { Frame f("storm::log_error()"); tr_nap_us(50); }
PROBED void finish() { Frame f("storm::finish()"); tr_nap_us(40); }
PROBED void housekeeping() { Frame f("storm::housekeeping()"); tr_nap_us(40); }

class Engine {
public:
	explicit Engine(const char *kinds) : kinds_(kinds) {}
	PROBED long run_query(int q);
private:
	const char *kinds_;
};

long Engine::run_query(int q)
{
	char kind = kinds_[q % std::strlen(kinds_)];
	long r = 0;

	tr_query = q;
	{
		Frame f("storm::Engine::run_query(int)");
		plan();
		try {
			r = execute(kind == 'X' ? 1 : kind == 'R' ? 2 : kind == 'T' ? 3 :
				    kind == 'E' ? 4 : 0);
		} catch (const QueryError &) {
			log_error();
		}
		finish();
	}
	tr_query = -1;
	return r;
}

} // namespace storm

namespace {

struct ExitQuery {
	storm::Engine *engine;
	int q;
};

/* Its lines are written out by a destructor: the forced unwind runs it
 * after the frames' own, before the thread ends. */
struct ThreadLines {
	~ThreadLines()
	{
		tr_mark();
		tr_flush();
	}
};

void *exit_query_thread(void *arg)
{
	const ExitQuery *eq = static_cast<const ExitQuery *>(arg);
	ThreadLines lines;

	tr_mark();
	eq->engine->run_query(eq->q);
	return nullptr;
}

/* An E query on a thread of its own, which it ends. */
long run_exiting(storm::Engine &engine, int q)
{
	ExitQuery eq{ &engine, q };
	pthread_t t;

	if (pthread_create(&t, nullptr, exit_query_thread, &eq) || pthread_join(t, nullptr)) {
		std::fprintf(stderr, "throwstorm: cannot run query %d on a thread\n", q);
		std::exit(2);
	}
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	const char *kinds = "NXR", *pid_path = nullptr, *truth_path = nullptr, *hold = nullptr;
	int n = 3000;
	bool wait_signal = false;
	sigset_t set;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : nullptr;

		if (!std::strcmp(a, "--wait-signal")) { wait_signal = true; continue; }
		if (!v)
			goto usage;
		if (!std::strcmp(a, "-n")) n = std::atoi(v);
		else if (!std::strcmp(a, "-k")) kinds = v;
		else if (!std::strcmp(a, "--truth")) truth_path = v;
		else if (!std::strcmp(a, "--pid-file")) pid_path = v;
		else if (!std::strcmp(a, "--hold")) hold = v;
		else goto usage;
		i++;
	}
	if (!*kinds || std::strspn(kinds, "NXRTE") != std::strlen(kinds) || n < 0)
		goto usage;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, nullptr);
	if (tr_open(truth_path) || tr_write_pid(pid_path))
		return 2;
	if (wait_signal)
		fx_wait_release();
	tr_mark();
	{
		storm::Engine engine(kinds);
		long sum = 0;

		for (int q = 0; q < n; q++) {
			if (kinds[q % std::strlen(kinds)] == 'E')
				sum += run_exiting(engine, q);
			else
				sum += engine.run_query(q);
			if (q % 16 == 15)
				storm::housekeeping();
		}
		tr_mark();
		tr_close();
		std::printf("throwstorm: served %d queries (checksum %ld)\n", n, sum);
		std::fflush(stdout);
	}
	fx_hold(hold, n);
	return 0;
usage:
	std::fprintf(stderr, "usage: throwstorm [-n QUERIES] [-k NXRTE...] [--truth FILE] "
		     "[--pid-file FILE] [--wait-signal] [--hold FILE]\n");
	return 2;
}
