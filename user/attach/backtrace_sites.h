/*
 * Where _Unwind_Backtrace returns, for the unwind guard: a uretprobe on
 * it would hijack its own return (the trace would stop at the kernel's
 * trampoline again), so its end is seen at its ret sites.
 */
#ifndef SPANPROBE_BACKTRACE_SITES_H
#define SPANPROBE_BACKTRACE_SITES_H

#include <stddef.h>
#include <stdint.h>

/* File offsets of the ret and tail-jump sites of _Unwind_Backtrace in
 * the ELF object path (the unwinder: libgcc_s, or a program linking
 * libgcc_eh). Fills at most max; 0, or -1 with the reason in err (not
 * defined there, code that does not decode, more sites than max). */
int sp_backtrace_ret_sites(const char *path, uint64_t *offs, size_t max, size_t *n,
			   char *err, size_t errlen);

#endif
