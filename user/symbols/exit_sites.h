/* Where a function's call ends, for probing without uretprobes. */
#ifndef SPANPROBE_EXIT_SITES_H
#define SPANPROBE_EXIT_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gelf.h>

/* An address range that belongs to the function being scanned: its body
 * and any split-off cold part. Jumps within these are not exits. */
struct sp_code_range {
	uint64_t addr;
	uint64_t size;
};

struct sp_exit_sites {
	uint64_t *v; /* file offsets, in scan order */
	size_t n, cap;
};

/* Linear sweep of x86-64 code: size bytes at virtual address addr, whose
 * first byte is at file offset file_off. Appends the file offsets of
 * every ret and of every direct jmp leaving all of inside[] (a tail call;
 * also "jmp [rip+x]", a tail call through the GOT). Fails, with a reason
 * in err, on undecodable bytes (trailing int3/nop/zero padding is fine)
 * or a conditional jump leaving the function (a probe on it would fire
 * whether or not it is taken). 0 or -1. */
int sp_exit_sites_scan(const uint8_t *code, uint64_t size, uint64_t addr,
		       uint64_t file_off, const struct sp_code_range *inside,
		       size_t n_inside, struct sp_exit_sites *out, char *err,
		       size_t errlen);
void sp_exit_sites_free(struct sp_exit_sites *s);

/* Whether a direct jump or call in size bytes of code at virtual address
 * addr lands on target: 1 yes, 0 no, -1 undecodable (the caller must
 * assume yes). */
int sp_code_branches_to(const uint8_t *code, uint64_t size, uint64_t addr,
			uint64_t target);
/* The same for any target in [lo, hi]. */
int sp_code_branches_into(const uint8_t *code, uint64_t size, uint64_t addr,
			  uint64_t lo, uint64_t hi);

#endif
