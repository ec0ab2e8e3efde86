/* Probe pricing: which first instructions the kernel emulates. The byte
 * sequences are the ins_* functions of tests/bench/target.c, whose
 * measured costs (make bench) fixed these answers on Linux 6.18. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "symbols/exit_sites.h"
#include "symbols/entry_place.h"
#include "symbols/probe_cost.h"

struct case_ {
	const char *what;
	uint8_t bytes[8];
	size_t n;
	enum sp_probe_exec want;
};

static const struct case_ cases[] = {
	{ "push %rbp", { 0x55 }, 1, SP_EXEC_EMULATED },
	{ "push %rbx", { 0x53 }, 1, SP_EXEC_EMULATED },
	{ "push %r12", { 0x41, 0x54 }, 2, SP_EXEC_EMULATED },
	{ "push %r15", { 0x41, 0x57 }, 2, SP_EXEC_EMULATED },
	{ "push %ax", { 0x66, 0x50 }, 2, SP_EXEC_SINGLESTEP },
	{ "push $0", { 0x6a, 0x00 }, 2, SP_EXEC_SINGLESTEP },
	{ "nop", { 0x90 }, 1, SP_EXEC_EMULATED },
	{ "xchg %ax,%ax", { 0x66, 0x90 }, 2, SP_EXEC_EMULATED },
	{ "pause", { 0xf3, 0x90 }, 2, SP_EXEC_EMULATED },
	{ "nopl (%rax)", { 0x0f, 0x1f, 0x00 }, 3, SP_EXEC_EMULATED },
	{ "nopl 0(%rax)", { 0x0f, 0x1f, 0x40, 0x00 }, 4, SP_EXEC_EMULATED },
	{ "nop5", { 0x0f, 0x1f, 0x44, 0x00, 0x00 }, 5, SP_EXEC_OPTIMIZED },
	{ "nopw 0(%rax,%rax)", { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 }, 6,
	  SP_EXEC_EMULATED },
	{ "jmp rel8", { 0xeb, 0x00 }, 2, SP_EXEC_EMULATED },
	{ "jmp rel32", { 0xe9, 0, 0, 0, 0 }, 5, SP_EXEC_EMULATED },
	{ "call rel32", { 0xe8, 0, 0, 0, 0 }, 5, SP_EXEC_EMULATED },
	{ "je rel8", { 0x74, 0x00 }, 2, SP_EXEC_EMULATED },
	{ "je rel32", { 0x0f, 0x84, 0, 0, 0, 0 }, 6, SP_EXEC_EMULATED },
	{ "callw rel16", { 0x66, 0xe8, 0, 0 }, 4, SP_EXEC_SINGLESTEP },
	{ "endbr64", { 0xf3, 0x0f, 0x1e, 0xfa }, 4, SP_EXEC_SINGLESTEP },
	{ "sub $0x68,%rsp", { 0x48, 0x83, 0xec, 0x68 }, 4, SP_EXEC_SINGLESTEP },
	{ "mov %rdi,%rax", { 0x48, 0x89, 0xf8 }, 3, SP_EXEC_SINGLESTEP },
	{ "movzbl %dil,%eax", { 0x40, 0x0f, 0xb6, 0xc7 }, 4, SP_EXEC_SINGLESTEP },
	{ "xor %eax,%eax", { 0x31, 0xc0 }, 2, SP_EXEC_SINGLESTEP },
	{ "lea 0(%rip),%rax", { 0x48, 0x8d, 0x05, 0, 0, 0, 0 }, 7, SP_EXEC_SINGLESTEP },
	{ "test %rdi,%rdi", { 0x48, 0x85, 0xff }, 3, SP_EXEC_SINGLESTEP },
	{ "ret", { 0xc3 }, 1, SP_EXEC_SINGLESTEP },
	{ "jmp *0(%rip)", { 0xff, 0x25, 0, 0, 0, 0 }, 6, SP_EXEC_SINGLESTEP },
};

static void test_byte_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sp_probe_exec got = sp_probe_exec_of(cases[i].bytes, cases[i].n);

		if (got != cases[i].want)
			fail_msg("%s: %s, expected %s", cases[i].what,
				 sp_probe_exec_name(got), sp_probe_exec_name(cases[i].want));
	}
}

/* The nop5 check must stop at the instruction's end: a 4-byte nop
 * followed by a 0x00 byte is not the optimisable 5-byte nop. */
static void test_decode_bounds_nop5_check(void **state)
{
	(void)state;
	const uint8_t nop4_then[] = { 0x0f, 0x1f, 0x40, 0x00, 0x00, 0xc3 };
	const uint8_t nop5_then[] = { 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3 };
	struct sp_probe_insn in;

	assert_int_equal(sp_probe_insn_decode(nop4_then, sizeof(nop4_then), 0x1000, &in), 0);
	assert_int_equal(in.len, 4);
	assert_int_equal(in.exec, SP_EXEC_EMULATED);
	assert_int_equal(sp_probe_insn_decode(nop5_then, sizeof(nop5_then), 0x1000, &in), 0);
	assert_int_equal(in.len, 5);
	assert_int_equal(in.exec, SP_EXEC_OPTIMIZED);
}

static void test_decode_text(void **state)
{
	(void)state;
	const uint8_t sub[] = { 0x48, 0x83, 0xec, 0x68, 0x90 };
	const uint8_t push[] = { 0x55, 0x48, 0x89, 0xe5 };
	struct sp_probe_insn in;

	assert_int_equal(sp_probe_insn_decode(sub, sizeof(sub), 0x1000, &in), 0);
	assert_int_equal(in.len, 4);
	assert_int_equal(in.exec, SP_EXEC_SINGLESTEP);
	assert_non_null(strstr(in.text, "sub"));
	assert_non_null(strstr(in.text, "%rsp"));
	assert_int_equal(sp_probe_insn_decode(push, sizeof(push), 0x1000, &in), 0);
	assert_int_equal(in.len, 1);
	assert_int_equal(in.exec, SP_EXEC_EMULATED);
	assert_non_null(strstr(in.text, "push"));
}

static void test_undecodable(void **state)
{
	(void)state;
	const uint8_t bad[] = { 0x06 }; /* push %es: invalid in 64-bit mode */
	const uint8_t prefixes_only[] = { 0x66, 0x66 };
	struct sp_probe_insn in;

	assert_int_equal(sp_probe_insn_decode(bad, sizeof(bad), 0, &in), 0);
	assert_int_equal(in.exec, SP_EXEC_UNDECODABLE);
	assert_int_equal(in.len, 0);
	assert_int_equal(sp_probe_exec_of(prefixes_only, sizeof(prefixes_only)),
			 SP_EXEC_UNDECODABLE);
}

/* The messages rely on single-stepping being dearer than emulation, and
 * on the 5-byte nop being the cheapest of all. */
static void test_costs_ordered(void **state)
{
	(void)state;
	assert_true(sp_probe_hit_ns(SP_EXEC_OPTIMIZED) < sp_probe_hit_ns(SP_EXEC_EMULATED));
	assert_true(sp_probe_hit_ns(SP_EXEC_EMULATED) * 10 < sp_probe_hit_ns(SP_EXEC_SINGLESTEP));
	assert_int_equal(sp_probe_hit_ns(SP_EXEC_UNDECODABLE),
			 sp_probe_hit_ns(SP_EXEC_SINGLESTEP));
	assert_string_equal(sp_probe_exec_name(SP_EXEC_SINGLESTEP), "single-stepped");
}

static void test_endbr64(void **state)
{
	(void)state;
	const uint8_t cet[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x55 };
	const uint8_t endbr32[] = { 0xf3, 0x0f, 0x1e, 0xfb };

	assert_true(sp_probe_is_endbr64(cet, sizeof(cet)));
	assert_false(sp_probe_is_endbr64(cet, 3));
	assert_false(sp_probe_is_endbr64(endbr32, sizeof(endbr32)));
	/* what follows it is judged on its own */
	assert_int_equal(sp_probe_exec_of(cet + 4, 1), SP_EXEC_EMULATED);
}

/* The entry probe moves past single-stepped instructions onto the first
 * emulated one, with the stack pointer's move; never past a call, a
 * write to `self` of a poll, or (for uretprobe exits) any move of sp. */
static void place(const uint8_t *code, size_t n, unsigned limits, unsigned shift,
		  unsigned delta)
{
	struct sp_entry_place pl;

	sp_entry_place_find(code, n, 0x1000, limits, &pl);
	assert_int_equal(pl.shift, shift);
	assert_int_equal(pl.sp_delta, delta);
}

static void test_entry_place(void **state)
{
	static const uint8_t push[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5 };
	/* endbr64; sub $0x68,%rsp; add $0x68,%rsp; ret */
	static const uint8_t sub_ret[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x83, 0xec, 0x68,
					   0x48, 0x83, 0xc4, 0x68, 0xc3 };
	static const uint8_t plain[] = { 0x55, 0x48, 0x89, 0xe5 };
	/* sub $0x18,%rsp; mov %rdi,0x8(%rsp); lea 0x0(%rip),%rdi; call +0 */
	static const uint8_t sub_call[] = { 0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0x7c, 0x24,
					    0x08, 0x48, 0x8d, 0x3d, 0x00, 0x00, 0x00, 0x00,
					    0xe8, 0x00, 0x00, 0x00, 0x00 };
	/* mov %rdi,%rbx; push %rbp */
	static const uint8_t mov_push[] = { 0x48, 0x89, 0xfb, 0x55 };
	/* push $0; push %rbx */
	static const uint8_t pushimm[] = { 0x6a, 0x00, 0x53 };
	/* and $-16,%rsp; push %rbx */
	static const uint8_t align[] = { 0x48, 0x83, 0xe4, 0xf0, 0x53 };
	/* movb $3,0x10(%rdi); push %rbx */
	static const uint8_t store[] = { 0xc6, 0x47, 0x10, 0x03, 0x53 };

	(void)state;
	place(push, sizeof(push), 0, 4, 0);
	place(push, sizeof(push), SP_ENTRY_KEEP_SP, 4, 0);
	place(push, 4, 0, 0, 0);               /* nothing after it */
	place(sub_ret, sizeof(sub_ret), 0, 0, 0); /* a ret before anything cheap */
	place(plain, sizeof(plain), 0, 0, 0);  /* already emulated */
	place(sub_call, sizeof(sub_call), 0, 16, 0x18);
	place(sub_call, sizeof(sub_call), SP_ENTRY_KEEP_SP, 0, 0);
	place(sub_call, sizeof(sub_call), SP_ENTRY_KEEP_ARGS, 0, 0); /* lea writes %rdi */
	place(mov_push, sizeof(mov_push), SP_ENTRY_KEEP_SP | SP_ENTRY_KEEP_ARGS, 3, 0);
	place(pushimm, sizeof(pushimm), 0, 2, 8);
	place(align, sizeof(align), 0, 0, 0);
	place(store, sizeof(store), 0, 4, 0);
	place(store, sizeof(store), SP_ENTRY_KEEP_ARGS, 0, 0);
}

/* A loop back to the instruction after endbr64 (a tail call turned into
 * a loop) would hit a probe there without a call. */
static void test_branches_to(void **state)
{
	/* 0x1000: endbr64; push %rbp; dec %edi; jne 0x1004; pop %rbp; ret */
	static const uint8_t loop[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0xff, 0xcf,
					0x75, 0xfb, 0x5d, 0xc3 };
	/* the same jumping to 0x1005 instead, then a call to 0x1004 */
	static const uint8_t other[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0xff, 0xcf,
					 0x75, 0xfc, 0xe8, 0xf6, 0xff, 0xff, 0xff, 0x5d, 0xc3 };
	static const uint8_t bad[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x06, 0x06 };

	(void)state;
	assert_int_equal(sp_code_branches_to(loop, sizeof(loop), 0x1000, 0x1004), 1);
	assert_int_equal(sp_code_branches_to(loop, sizeof(loop), 0x1000, 0x1005), 0);
	assert_int_equal(sp_code_branches_to(other, 9, 0x1000, 0x1004), 0);
	assert_int_equal(sp_code_branches_to(other, sizeof(other), 0x1000, 0x1004), 1);
	assert_int_equal(sp_code_branches_to(bad, sizeof(bad), 0x1000, 0x1004), -1);
	/* anywhere between the start and the probe */
	assert_int_equal(sp_code_branches_into(loop, sizeof(loop), 0x1000, 0x1001, 0x1004), 1);
	assert_int_equal(sp_code_branches_into(loop, sizeof(loop), 0x1000, 0x1001, 0x1003), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_rules),
		cmocka_unit_test(test_decode_bounds_nop5_check),
		cmocka_unit_test(test_decode_text),
		cmocka_unit_test(test_undecodable),
		cmocka_unit_test(test_costs_ordered),
		cmocka_unit_test(test_endbr64),
		cmocka_unit_test(test_entry_place),
		cmocka_unit_test(test_branches_to),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
