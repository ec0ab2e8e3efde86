/*
 * What a uprobe costs where it is placed. On x86-64 the kernel replaces
 * the probed instruction with a breakpoint; on a hit it either emulates
 * that instruction in the trap handler or copies it out of line and
 * single-steps it, which takes a second trap and is ~30x dearer. The
 * instruction decides, so a function's first instruction (and, with ret
 * site exit probes, its `ret`) sets the price of tracing it.
 */
#ifndef SPANPROBE_PROBE_COST_H
#define SPANPROBE_PROBE_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sp_probe_exec {
	/* the 5-byte nop 0f 1f 44 00 00: the kernel rewrites it into a
	 * call to its uprobe trampoline, no trap at all */
	SP_EXEC_OPTIMIZED = 0,
	/* push reg, nop, pause, jmp/call/jcc rel: done in the trap handler */
	SP_EXEC_EMULATED,
	/* everything else, ret and endbr64 included */
	SP_EXEC_SINGLESTEP,
	SP_EXEC_UNDECODABLE,
};

struct sp_probe_insn {
	enum sp_probe_exec exec;
	unsigned len;  /* bytes; 0 when undecodable */
	char text[200]; /* AT&T syntax: "pushq %rbp"; fits capstone's longest */
};

/* The kernel's rule (x86-64, measured on 6.18 with `make bench`) for the
 * instruction at code[0..n). Pure byte rules: no decoder needed. */
enum sp_probe_exec sp_probe_exec_of(const uint8_t *code, size_t n);

/* Decodes the instruction at code (virtual address addr, for branch
 * targets in the text) and classifies it. 0, or -1 if capstone fails. */
int sp_probe_insn_decode(const uint8_t *code, size_t n, uint64_t addr,
			 struct sp_probe_insn *out);

/* "optimized", "emulated", "single-stepped", "undecodable" */
const char *sp_probe_exec_name(enum sp_probe_exec e);

/* Added ns per hit of an empty BPF program at such an instruction, as
 * measured by `make bench` (docs/performance.md); the ratios, not the
 * figures, carry over to other machines. */
unsigned sp_probe_hit_ns(enum sp_probe_exec e);

/* Added ns of the return half of a uretprobe or uprobe session
 * (return trampoline), whatever the function's instructions. */
unsigned sp_probe_uretprobe_ns(void);

/* True for endbr64 (f3 0f 1e fa): the CET landing pad that
 * -fcf-protection puts first in every function. It only marks a valid
 * indirect-branch target, so the instruction after it sees the same
 * calls with the same stack. */
bool sp_probe_is_endbr64(const uint8_t *code, size_t n);

/* Reads up to n code bytes at file offset off of path; the count read,
 * or -1 with errno set. */
long sp_probe_read_code(const char *path, uint64_t off, uint8_t *buf, size_t n);

#endif
