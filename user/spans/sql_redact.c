/*
 * A lexer just good enough to find SQL literals: it never has to
 * understand a statement, only where a constant starts and ends, and it
 * errs toward replacing (an unterminated string runs to the end).
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include "spans/sql_redact.h"

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* End of a '...' constant starting at the quote q; '' is an escaped
 * quote, and so is \' in an E'' string. */
static const char *end_quoted(const char *q, bool backslash)
{
	const char *p = q + 1;

	for (; *p; p++) {
		if (backslash && *p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '\'') {
			if (p[1] == '\'') {
				p++;
				continue;
			}
			return p + 1;
		}
	}
	return p;
}

/* $tag$ at p (tag empty or an identifier): its length, or 0. */
static size_t dollar_tag(const char *p)
{
	size_t n = 1;

	if (isdigit((unsigned char)p[1]))
		return 0; /* $1 is a parameter */
	while (p[n] && (isalnum((unsigned char)p[n]) || p[n] == '_'))
		n++;
	return p[n] == '$' ? n + 1 : 0;
}

static const char *end_dollar(const char *p, size_t tag)
{
	const char *e = p + tag;

	for (; *e; e++)
		if (*e == '$' && !strncmp(e, p, tag))
			return e + tag;
	return e;
}

static const char *end_number(const char *p)
{
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
		while (isxdigit((unsigned char)*p) || *p == '_')
			p++;
		return p;
	}
	while (isdigit((unsigned char)*p) || *p == '.' || *p == '_')
		p++;
	if ((*p == 'e' || *p == 'E') &&
	    (isdigit((unsigned char)p[1]) || ((p[1] == '+' || p[1] == '-') && isdigit((unsigned char)p[2])))) {
		p += 2;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p;
}

void sp_sql_redact(char *s)
{
	const char *r = s;
	char *w = s;

	while (*r) {
		const char *end = NULL;
		size_t tag;

		if (*r == '"') { /* a quoted identifier: kept as is */
			const char *e = strchr(r + 1, '"');
			size_t n = e ? (size_t)(e + 1 - r) : strlen(r);

			memmove(w, r, n);
			w += n;
			r += n;
			continue;
		}
		if (*r == '\'') {
			end = end_quoted(r, false);
		} else if ((*r == 'E' || *r == 'e') && r[1] == '\'' && (r == s || !ident_char(r[-1]))) {
			end = end_quoted(r + 1, true);
		} else if (*r == '$' && (r == s || !ident_char(r[-1])) && (tag = dollar_tag(r))) {
			end = end_dollar(r, tag);
		} else if ((isdigit((unsigned char)*r) ||
			    (*r == '.' && isdigit((unsigned char)r[1]))) &&
			   (r == s || !ident_char(r[-1]))) {
			end = end_number(r);
		}
		if (end) {
			*w++ = '?';
			r = end;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}
