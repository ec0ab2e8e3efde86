/*
 * C++ benchmark target for `make bench`: a method call, the commonest
 * thing users trace in a C++ server, in timed loops. The program throws
 * (on a path the loops never take), as C++ servers do: spanprobe's
 * default then ends the calls at their ret sites.
 *
 * Commands as tests/bench/rust_target.rs: armed|clear FUNC [OFF],
 * run plain|root leaf MS ("CALLS NS"), quit; FUNC: leaf
 * (bench::Counter::add(long)) or root (bench::root).
 * run plain|root throw MS: the same loops, each call throwing out of
 * add() into the loop's catch (the cost of an exception through a
 * traced frame).
 */
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#define NOINLINE __attribute__((noinline, used))

namespace bench {

struct Counter {
	long total = 0;
	NOINLINE long add(long x);
};

long Counter::add(long x)
{
	if (x < 0) /* never in the loops */
		throw std::invalid_argument("negative");
	total += x * 3 + 1;
	return total;
}

using clk = std::chrono::steady_clock;

NOINLINE long timed_loop(Counter &c, clk::time_point deadline, long *calls)
{
	long acc = 0, n = 0;

	do {
		for (int i = 0; i < 256; i++)
			acc += c.add(n + i);
		n += 256;
	} while (clk::now() < deadline);
	*calls = n;
	return acc;
}

/* Each call throws through add(); caught here, above the traced frame. */
NOINLINE long throw_loop(Counter &c, clk::time_point deadline, long *calls)
{
	long acc = 0, n = 0;

	do {
		for (int i = 0; i < 16; i++) {
			try {
				acc += c.add(-1 - i);
			} catch (const std::invalid_argument &) {
				acc++;
			}
		}
		n += 16;
	} while (clk::now() < deadline);
	*calls = n;
	return acc;
}

volatile long sink;

/* The query root; the store after the call keeps it from being a tail call. */
NOINLINE long root(Counter &c, clk::time_point deadline, long *calls, bool throws = false)
{
	long r = throws ? throw_loop(c, deadline, calls) : timed_loop(c, deadline, calls);

	sink = r;
	return r;
}

} // namespace bench

static const unsigned char *addr_of(const char *name)
{
	if (!strcmp(name, "leaf")) {
		long (bench::Counter::*m)(long) = &bench::Counter::add;
		const unsigned char *p;

		static_assert(sizeof(m) >= sizeof(p), "member pointer");
		memcpy(&p, &m, sizeof(p)); /* non-virtual: the function's address */
		return p;
	}
	if (!strcmp(name, "root"))
		return reinterpret_cast<const unsigned char *>(&bench::root);
	return nullptr;
}

static const char *wait_state(const unsigned char *a, unsigned char pristine, bool armed)
{
	for (int i = 0; i < 10000; i++) {
		if ((*(const volatile unsigned char *)a != pristine) == armed)
			return "ok";
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	return "timeout";
}

int main()
{
	unsigned char pristine[2][16];
	const char *names[2] = { "leaf", "root" };
	char line[256], a[64], b[64];
	bench::Counter c;

	for (int i = 0; i < 2; i++)
		memcpy(pristine[i], addr_of(names[i]), 16);
	setvbuf(stdout, nullptr, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		unsigned off = 0;
		long ms = 0;

		if (!strncmp(line, "quit", 4))
			break;
		if ((sscanf(line, "armed %63s %u", a, &off) >= 1 ||
		     sscanf(line, "clear %63s %u", a, &off) >= 1)) {
			int k = !strcmp(a, "leaf") ? 0 : !strcmp(a, "root") ? 1 : -1;

			if (k < 0 || off >= 16)
				printf("error unknown function or offset\n");
			else
				printf("%s\n", wait_state(addr_of(a) + off, pristine[k][off],
							  line[0] == 'a'));
		} else if (sscanf(line, "run %63s %63s %ld", a, b, &ms) == 3 &&
			   (!strcmp(b, "leaf") || !strcmp(b, "throw")) && ms > 0) {
			long calls = 0;
			bool throws = !strcmp(b, "throw");
			auto t0 = bench::clk::now();
			auto deadline = t0 + std::chrono::milliseconds(ms);

			if (!strcmp(a, "root"))
				bench::sink = bench::root(c, deadline, &calls, throws);
			else
				bench::sink = throws ? bench::throw_loop(c, deadline, &calls)
						     : bench::timed_loop(c, deadline, &calls);
			printf("%ld %lld\n", calls,
			       (long long)std::chrono::duration_cast<std::chrono::nanoseconds>(
				       bench::clk::now() - t0).count());
		} else {
			printf("error unknown command\n");
		}
	}
	return 0;
}
