/*
 * Benchmark target for `make bench`: calls probed functions in timed
 * loops on command, so the harness can attach a tracer, wait until its
 * breakpoints are really in place, and measure the time each call gains.
 *
 * Commands, one per line on stdin; one answer line each on stdout:
 *   armed FUNC [OFF]   wait (<= 10 s) until the byte at FUNC+OFF differs
 *                      from its pristine value: a breakpoint is installed
 *   clear FUNC [OFF]   wait until it is pristine again: probes are gone
 *   run plain|root FUNC MS
 *                      call FUNC in a loop for MS ms, directly (outside
 *                      any query) or from bench_root (inside one);
 *                      answers "CALLS NS"
 *   rate FUNC RATE BATCH SECS
 *                      paced load: every BATCH/RATE s one bench_root call
 *                      that calls FUNC BATCH times, for SECS s; answers
 *                      "CALLS NS LATE" (LATE: batches that missed their
 *                      slot, i.e. the rate was not reached)
 *   quit
 *
 * Built with -O2 -fno-omit-frame-pointer so that bench_leaf starts with
 * `push %rbp`, like most compiled functions (the harness checks it). The
 * ins_* functions each start with one chosen instruction: the kernel
 * emulates some first instructions and single-steps the others, and the
 * harness measures which.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef long (*leaf_fn)(long);

#define NOINLINE __attribute__((noinline, used))

/* Short on purpose: a probed call must stay far below --min-span so its
 * span never leaves the kernel, as with most calls in real programs. */
NOINLINE long bench_leaf(long x)
{
	volatile long v = x; /* a stack slot: GCC then sets up %rbp */

	return v * 3 + 1;
}

/* For the captures phase: returns a C string (the capture "s=ret:str"
 * reads it at exit), and takes an integer (x=arg0:i64). Same frame setup
 * as bench_leaf. */
static const char *const bench_names[] = { "alpha", "beta-gamma", "delta_epsilon_zeta",
					   "SELECT 1" };

NOINLINE long bench_leaf_str(long x)
{
	volatile long v = x;

	return (long)bench_names[v & 3];
}

/* The same without a stack slot: GCC omits the frame setup and the
 * function starts with `lea`, which the kernel single-steps. */
NOINLINE long bench_leaf_ss(long x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

/* Each ins_* function starts with the instruction its name says and
 * returns its argument; the harness probes their first byte. */
#define INS_FUNC(name, body)                                               \
	__asm__(".text\n.p2align 4\n.globl " #name "\n.type " #name           \
		", @function\n" #name ":\n" body "\n.size " #name ", .-" #name \
		"\n")

INS_FUNC(ins_push_rbp, "push %rbp\n mov %rdi, %rax\n pop %rbp\n ret");
INS_FUNC(ins_push_rbx, "push %rbx\n mov %rdi, %rax\n pop %rbx\n ret");
INS_FUNC(ins_push_r12, "push %r12\n mov %rdi, %rax\n pop %r12\n ret");
INS_FUNC(ins_nop1, "nop\n mov %rdi, %rax\n ret");
INS_FUNC(ins_nop2, ".byte 0x66, 0x90\n mov %rdi, %rax\n ret");
INS_FUNC(ins_nop3, ".byte 0x0f, 0x1f, 0x00\n mov %rdi, %rax\n ret");
INS_FUNC(ins_nop4, ".byte 0x0f, 0x1f, 0x40, 0x00\n mov %rdi, %rax\n ret");
INS_FUNC(ins_nop5, ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n mov %rdi, %rax\n ret");
INS_FUNC(ins_nop6, ".byte 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00\n mov %rdi, %rax\n ret");
INS_FUNC(ins_pause, "pause\n mov %rdi, %rax\n ret");
INS_FUNC(ins_push_imm, "push $0\n add $8, %rsp\n mov %rdi, %rax\n ret");
INS_FUNC(ins_jcc32, ".byte 0x0f, 0x84\n .long 0\n mov %rdi, %rax\n ret");
INS_FUNC(ins_endbr64, "endbr64\n mov %rdi, %rax\n ret");
INS_FUNC(ins_sub_rsp, "sub $0x68, %rsp\n add $0x68, %rsp\n mov %rdi, %rax\n ret");
INS_FUNC(ins_mov_reg, "mov %rdi, %rax\n ret");
INS_FUNC(ins_movzbl, "movzbl %dil, %eax\n mov %rdi, %rax\n ret");
INS_FUNC(ins_xor, "xor %eax, %eax\n mov %rdi, %rax\n ret");
INS_FUNC(ins_lea_rip, "lea 0(%rip), %rax\n mov %rdi, %rax\n ret");
INS_FUNC(ins_test, "test %rdi, %rdi\n mov %rdi, %rax\n ret");
INS_FUNC(ins_jmp8, "jmp 1f\n1: mov %rdi, %rax\n ret");
INS_FUNC(ins_jmp32, ".byte 0xe9\n .long 0\n mov %rdi, %rax\n ret");
INS_FUNC(ins_jcc, "je 1f\n1: mov %rdi, %rax\n ret");
INS_FUNC(ins_call_helper, "ret");
INS_FUNC(ins_call, "call ins_call_helper\n mov %rdi, %rax\n ret");
INS_FUNC(ins_ret, "mov %rdi, %rax\n ret");

long ins_push_rbp(long), ins_push_rbx(long), ins_push_r12(long), ins_nop1(long),
	ins_nop2(long), ins_nop3(long), ins_nop4(long), ins_nop5(long), ins_nop6(long),
	ins_pause(long), ins_push_imm(long), ins_jcc32(long), ins_endbr64(long),
	ins_sub_rsp(long), ins_mov_reg(long), ins_movzbl(long), ins_xor(long),
	ins_lea_rip(long), ins_test(long), ins_jmp8(long), ins_jmp32(long),
	ins_jcc(long), ins_call(long), ins_ret(long);

long bench_root(leaf_fn f, uint64_t deadline, long *calls, long n);

/* Functions the harness may call (fn) or only watch (code): the root is
 * watched so that a tracer counts as attached once both are armed. */
static const struct {
	const char *name;
	leaf_fn fn;
	const void *code;
} funcs[] = {
#define CALLABLE(f) { #f, f, (const void *)f }
	CALLABLE(bench_leaf), CALLABLE(bench_leaf_ss), CALLABLE(bench_leaf_str),
	{ "bench_root", NULL, (const void *)bench_root },
	CALLABLE(ins_push_rbp), CALLABLE(ins_push_rbx), CALLABLE(ins_push_r12),
	CALLABLE(ins_nop1), CALLABLE(ins_nop2), CALLABLE(ins_nop3), CALLABLE(ins_nop4),
	CALLABLE(ins_nop5), CALLABLE(ins_nop6), CALLABLE(ins_pause), CALLABLE(ins_push_imm),
	CALLABLE(ins_jcc32), CALLABLE(ins_endbr64), CALLABLE(ins_sub_rsp),
	CALLABLE(ins_mov_reg), CALLABLE(ins_movzbl), CALLABLE(ins_xor),
	CALLABLE(ins_lea_rip), CALLABLE(ins_test), CALLABLE(ins_jmp8),
	CALLABLE(ins_jmp32), CALLABLE(ins_jcc), CALLABLE(ins_call), CALLABLE(ins_ret),
#undef CALLABLE
};

#define N_FUNCS (sizeof(funcs) / sizeof(funcs[0]))
#define CODE_PEEK 16

/* Code bytes as loaded, before any tracer touched them. */
static unsigned char pristine[N_FUNCS][CODE_PEEK];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The loop body shared by both modes, so "inside" and "outside" differ
 * only by the enclosing bench_root call. The clock is read every 256
 * calls: its cost is spread to well under 1 ns per call. */
NOINLINE long timed_loop(leaf_fn f, uint64_t deadline, long *calls)
{
	long acc = 0, n = 0;

	do {
		for (int i = 0; i < 256; i++)
			acc += f(n + i);
		n += 256;
	} while (now_ns() < deadline);
	*calls = n;
	return acc;
}

NOINLINE long counted_loop(leaf_fn f, long n)
{
	long acc = 0;

	for (long i = 0; i < n; i++)
		acc += f(i);
	return acc;
}

/* The query root. The volatile store after the call keeps the call from
 * becoming a tail jump, so the root's frame lasts the whole loop. */
static volatile long sink;

NOINLINE long bench_root(leaf_fn f, uint64_t deadline, long *calls, long n)
{
	long r = deadline ? timed_loop(f, deadline, calls) : counted_loop(f, n);

	sink = r;
	return r;
}

static int find(const char *name)
{
	for (size_t i = 0; i < N_FUNCS; i++)
		if (strcmp(funcs[i].name, name) == 0)
			return (int)i;
	return -1;
}

static unsigned char code_byte(int fi, unsigned off)
{
	return ((const volatile unsigned char *)funcs[fi].code)[off];
}

/* Waits until the byte's state is `want_armed`; 0 on success. */
static int wait_state(int fi, unsigned off, int want_armed)
{
	struct timespec pause = { 0, 1000000 };

	for (int i = 0; i < 10000; i++) {
		int armed = code_byte(fi, off) != pristine[fi][off];

		if (armed == want_armed)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

static void cmd_wait(const char *name, unsigned off, int want_armed)
{
	int fi = find(name);

	if (fi < 0 || off >= CODE_PEEK)
		printf("error unknown function or offset\n");
	else
		printf(wait_state(fi, off, want_armed) ? "timeout\n" : "ok\n");
}

static void cmd_run(const char *mode, const char *name, long ms)
{
	int fi = find(name);
	long calls = 0;
	uint64_t t0, t1;

	if (fi < 0 || !funcs[fi].fn || ms <= 0) {
		printf("error bad run\n");
		return;
	}
	t0 = now_ns();
	if (strcmp(mode, "root") == 0)
		sink = bench_root(funcs[fi].fn, t0 + (uint64_t)ms * 1000000ull, &calls, 0);
	else
		sink = timed_loop(funcs[fi].fn, t0 + (uint64_t)ms * 1000000ull, &calls);
	t1 = now_ns();
	printf("%ld %llu\n", calls, (unsigned long long)(t1 - t0));
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Batches on a fixed schedule; a batch that starts after its slot is
 * counted late and the schedule is not shifted, so a rate the probes
 * make unreachable shows up as late batches. */
static void cmd_rate(const char *name, double rate, long batch, double secs)
{
	int fi = find(name);
	uint64_t period, t0, end, next;
	long calls = 0, late = 0, dummy;

	if (fi < 0 || !funcs[fi].fn || rate <= 0 || batch <= 0 || secs <= 0) {
		printf("error bad rate\n");
		return;
	}
	period = (uint64_t)(1e9 * (double)batch / rate);
	t0 = now_ns();
	end = t0 + (uint64_t)(secs * 1e9);
	for (next = t0; next < end; next += period) {
		if (now_ns() > next + period)
			late++;
		else
			sleep_until(next);
		sink = bench_root(funcs[fi].fn, 0, &dummy, batch);
		calls += batch;
	}
	printf("%ld %llu %ld\n", calls, (unsigned long long)(now_ns() - t0), late);
}

static void dispatch(char *line)
{
	char a[64] = "", b[64] = "";
	double x = 0, z = 0;
	long y = 0;
	unsigned off = 0;

	if (sscanf(line, "armed %63s %u", a, &off) >= 1)
		cmd_wait(a, off, 1);
	else if (sscanf(line, "clear %63s %u", a, &off) >= 1)
		cmd_wait(a, off, 0);
	else if (sscanf(line, "run %63s %63s %ld", a, b, &y) == 3)
		cmd_run(a, b, y);
	else if (sscanf(line, "rate %63s %lf %ld %lf", a, &x, &y, &z) == 4)
		cmd_rate(a, x, y, z);
	else
		printf("error unknown command\n");
}

int main(void)
{
	char line[256];

	for (size_t i = 0; i < N_FUNCS; i++)
		memcpy(pristine[i], funcs[i].code, CODE_PEEK);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "quit", 4) == 0)
			break;
		dispatch(line);
	}
	return 0;
}
