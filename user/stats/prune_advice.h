/*
 * Pruning advice: the symbol list rewritten without the functions that
 * never produced a kept span inside a slow query, costliest first.
 */
#ifndef SPANPROBE_PRUNE_ADVICE_H
#define SPANPROBE_PRUNE_ADVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "output/sym_stats.h"
#include "symbols/symbols.h"

struct sp_prune_in {
	const char *source;  /* the symbol list's name, as parsed */
	const char *text;    /* its bytes: the lines to rewrite */
	size_t len;
	const struct sp_pattern_list *pats;  /* parsed from text */
	const struct sp_func_set *funcs;     /* what pats resolved to */
	const struct sp_sym_report *reports; /* reports[i] is funcs->v[i] */
};

/*
 * Decides which functions to prune: a function is pruned when it is
 * attachable, not a root, had no kept span inside a slow query, and no
 * line of the rewritten list would still match it (an exact name shared
 * with a function that stays keeps both). pruned[] has funcs->n entries.
 * Returns how many were pruned, -1 with err when there is no basis for
 * advice (no slow query was kept) or out of memory.
 */
long sp_prune_select(const struct sp_prune_in *in, bool *pruned, char *err, size_t errlen);

/*
 * Writes the advice to out: a comment header listing the pruned functions
 * by estimated probe cost, then in->text line by line with
 *   - lines without an entry, and entries that lose nothing, unchanged;
 *   - an entry all of whose functions are pruned commented out, after a
 *     "# pruned: NAME never reached 5ms in slow queries, ~X probe cost";
 *   - a glob that loses only some of its functions commented out and
 *     followed by one exact "span NAME" line per function it keeps.
 * The result parses with sp_symlist_parse_buf. 0, or -1 with err (text
 * does not match pats, no slow query, out of memory, write error).
 */
int sp_prune_advice(FILE *out, const struct sp_prune_in *in, char *err, size_t errlen);

/* Reads a symbol list file whole (capped at 64 MiB, like the parser's),
 * for in->text. malloc'd; NULL with "path: reason" in err. */
char *sp_prune_read_list(const char *path, size_t *len, char *err, size_t errlen);

/*
 * For advice from a block file, where only the statistics remain: one
 * function per report (its name, raw name, object; attachable), under the
 * first pattern of pats that matches its name or raw name (-1 if none),
 * a root if its report or any matching pattern says so. out->v[i] is
 * reports[i]; free with sp_func_set_free. -1 when out of memory.
 */
int sp_prune_funcs_from_reports(const struct sp_pattern_list *pats,
				const struct sp_sym_report *reports, size_t n,
				struct sp_func_set *out);

#endif
