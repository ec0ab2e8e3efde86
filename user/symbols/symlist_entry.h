/* One symbol-list entry's text after its keyword (symlist_entry.c). */
#ifndef SPANPROBE_SYMLIST_ENTRY_H
#define SPANPROBE_SYMLIST_ENTRY_H

#include <stdbool.h>
#include "symbols/symbols.h"

/* The keyword that started the line. */
enum { SP_KW_SPAN = 0, SP_KW_ERROR = 1, SP_KW_EVENT = 2 };

/* Fills p's glob (or USDT source), captures and error condition from the
 * text [s, e), non-empty and trimmed; kw: SP_KW_ERROR or SP_KW_EVENT
 * for lines starting "error" or "event", SP_KW_SPAN for root and span. 0, or -1 with "file:line: message" in err (p may then hold
 * allocations: sp_symlist_entry_free releases them). */
int sp_symlist_entry(const char *file, int line, int kw, const char *s, const char *e,
		     struct sp_pattern *p, char *err, size_t errlen);
/* Frees what sp_symlist_entry allocated (not glob or file). */
void sp_symlist_entry_free(struct sp_pattern *p);

#endif
