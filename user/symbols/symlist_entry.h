/* One symbol-list entry's text after its keyword (symlist_entry.c). */
#ifndef SPANPROBE_SYMLIST_ENTRY_H
#define SPANPROBE_SYMLIST_ENTRY_H

#include <stdbool.h>
#include "symbols/symbols.h"

/* Fills p's glob (or USDT source), captures and error condition from the
 * text [s, e), non-empty and trimmed; error_kw: the line's keyword was
 * "error". 0, or -1 with "file:line: message" in err (p may then hold
 * allocations: sp_symlist_entry_free releases them). */
int sp_symlist_entry(const char *file, int line, bool error_kw, const char *s, const char *e,
		     struct sp_pattern *p, char *err, size_t errlen);
/* Frees what sp_symlist_entry allocated (not glob or file). */
void sp_symlist_entry_free(struct sp_pattern *p);

#endif
