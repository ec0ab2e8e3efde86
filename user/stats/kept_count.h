/*
 * Per probed function, how many spans it had among the kept spans of slow
 * queries: the evidence pruning advice weighs. Fed with each kept query
 * as the sinks receive it.
 */
#ifndef SPANPROBE_KEPT_COUNT_H
#define SPANPROBE_KEPT_COUNT_H

#include <stddef.h>
#include <stdint.h>
#include "spans/span.h"
#include "symbols/symbols.h"

struct sp_kept_count;

/* funcs must outlive the counter: spans are matched to functions by their
 * name pointer (the assembler names a span with its function's demangled
 * string), by the name itself when the pointer is not one of them. */
struct sp_kept_count *sp_kept_count_new(const struct sp_func_set *funcs);
/* The spans of one kept query (any order, root included). */
void sp_kept_count_add(struct sp_kept_count *c, const struct sp_span *spans, size_t n);
/* Counts indexed like funcs->v (the BPF sym_id); valid until freed. */
/* The same counts over funcs, which has grown since (objects mapped
 * after attach); frees old. NULL when out of memory (old is kept). */
struct sp_kept_count *sp_kept_count_renew(struct sp_kept_count *old,
					  const struct sp_func_set *funcs);
const uint64_t *sp_kept_count_get(const struct sp_kept_count *c);
/* Spans whose name matched no function (should stay 0). */
uint64_t sp_kept_count_unknown(const struct sp_kept_count *c);
void sp_kept_count_free(struct sp_kept_count *c);

#endif
