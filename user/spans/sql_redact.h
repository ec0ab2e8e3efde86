/* --redact: literal values out of captured SQL text. */
#ifndef SPANPROBE_SQL_REDACT_H
#define SPANPROBE_SQL_REDACT_H

/* Rewrites s in place (it only shrinks): every string constant ('...',
 * E'...', $tag$...$tag$, including one cut off at the end) and every
 * numeric constant becomes '?'. Identifiers, "quoted identifiers",
 * keywords and comments stay. */
void sp_sql_redact(char *s);

#endif
