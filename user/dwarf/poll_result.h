/*
 * Where a Rust poll's return value says Poll::Ready(Err(_)): the
 * discriminants of Poll<Result<T, E>> as rustc's DWARF lays them out
 * (variant parts, niche values included), for `error=err`.
 */
#ifndef SPANPROBE_POLL_RESULT_H
#define SPANPROBE_POLL_RESULT_H

#include <elfutils/libdw.h>
#include "symbols/symbols.h"

/* From the poll subprogram sub: out->n tests, via_ptr when the Poll is
 * larger than 16 bytes (returned through the hidden pointer, which RAX
 * holds at return). false when the return type is no Poll<Result<..>>,
 * or its discriminants are not plain integers of at most 8 bytes. */
bool sp_poll_result_err(Dwarf_Die *sub, struct sp_result_err *out);

#endif
