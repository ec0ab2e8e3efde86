/*
 * A carrier's read list (user/async_nested.c) as bulk copies: values that
 * lie close together in the future are read with one bpf_probe_read_user
 * per range (bpf/nested_reads.h), which costs less than one per value.
 */
#ifndef SPANPROBE_NESTED_RANGES_H
#define SPANPROBE_NESTED_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "spanprobe.h"

/* Two values go into one copy when at most this many bytes lie between
 * them: copying a few dozen more bytes costs less than another call. */
#define SP_NESTED_GAP 64

/* Fills out from the n values of reads (offsets from self): ranges in
 * offset order, each value's position in the concatenated copies, which
 * never exceed SP_NESTED_SCRATCH - 8 bytes (a value is loaded as 8
 * bytes). Every value gets a position: ranges merge across gaps while the
 * copies fit, else only where values touch. n == 0 (values of a size
 * outside 1..8, or a list with hops: reads whose base is another read's
 * pointer): BPF reads each value alone. */
void sp_nested_ranges_build(const struct sp_read *reads, size_t n, struct sp_read_ranges *out);

#endif
