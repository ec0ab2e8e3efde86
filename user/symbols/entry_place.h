/*
 * Where a function's entry probe goes. The kernel single-steps most first
 * instructions (`sub $N,%rsp`, `mov`, `lea`, `endbr64`: ~19 us per hit
 * here) and emulates a few (push, nop, jmp, jcc, call: ~0.55 us), so the
 * probe moves to the first emulated instruction of the entry block when
 * the instructions before it change nothing the BPF programs read at
 * entry except the stack pointer, by an amount known here.
 */
#ifndef SPANPROBE_ENTRY_PLACE_H
#define SPANPROBE_ENTRY_PLACE_H

#include <stddef.h>
#include <stdint.h>
#include "symbols/probe_cost.h"

enum sp_entry_limits {
	/* the stack pointer must still point at the return-address slot:
	 * a uretprobe or session hijacks the word there at its entry hit */
	SP_ENTRY_KEEP_SP = 1u << 0,
	/* a Rust poll: its `self` (RDI or RSI) and the memory it points to
	 * are read at entry, so nothing may write them before the probe */
	SP_ENTRY_KEEP_ARGS = 1u << 1,
	/* captured arguments (argN): none of the six argument registers, nor
	 * the memory they point to, may be written before the probe */
	SP_ENTRY_KEEP_ALL_ARGS = 1u << 2,
};

struct sp_entry_place {
	unsigned shift;    /* bytes from the start; 0: the probe stays there */
	unsigned sp_delta; /* bytes the stack pointer moved by then (sub, push) */
	unsigned skipped;  /* instructions stepped over */
};

/* Scans the first n code bytes (virtual address addr). Stops at the first
 * emulated or optimized instruction (the probe goes there), and gives up
 * (shift 0) at anything else that transfers control, moves the stack
 * pointer other than by push or `sub $imm,%rsp`, breaks limits, or lies
 * beyond the first few instructions. The caller must still check that no
 * branch lands in (addr, addr + shift]: a jump back there would hit the
 * probe without a call. */
void sp_entry_place_find(const uint8_t *code, size_t n, uint64_t addr, unsigned limits,
			 struct sp_entry_place *out);

#endif
