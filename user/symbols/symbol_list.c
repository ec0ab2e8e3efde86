/*
 * Symbol list files: "root PATTERN" / "span PATTERN" lines, '#' comments.
 *
 * The pattern is the whole rest of the line because demangled C++ names
 * carry spaces ("(anonymous namespace)::f()", "f(int, char)").
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "symbols/symbols.h"
#include "symbols/symlist_entry.h"
#include "base/errmsg.h"

#define SP_SYMLIST_MAX_LINE 4096

/* Narrows [*s, *e) to drop surrounding blanks (CR included, so files
 * written on Windows parse too). */
static void trim(const char **s, const char **e)
{
	while (*s < *e && isspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

static int push_pattern(struct sp_pattern_list *l, const char *file, struct sp_pattern *p)
{
	struct sp_pattern *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -1;
	l->v = v;
	p->file = strdup(file);
	v[l->n++] = *p;
	return p->file ? 0 : -1;
}

/* One logical line, comment already cut off. 0 ok, -1 with err set. */
static int parse_line(const char *name, int lineno, const char *s,
		      const char *e, struct sp_pattern_list *out, char *err,
		      size_t errlen)
{
	const char *kw = s, *kw_end, *pat, *pat_end = e;
	struct sp_pattern p = { .line = lineno };
	enum sp_role role;
	int kwk = SP_KW_SPAN;

	trim(&kw, &pat_end);
	if (kw == pat_end)
		return 0;
	kw_end = kw;
	while (kw_end < pat_end && !isspace((unsigned char)*kw_end))
		kw_end++;
	if (kw_end - kw == 4 && memcmp(kw, "root", 4) == 0) {
		role = SP_ROLE_ROOT;
	} else if (kw_end - kw == 4 && memcmp(kw, "span", 4) == 0) {
		role = SP_ROLE_SPAN;
	} else if (kw_end - kw == 5 && memcmp(kw, "error", 5) == 0) {
		role = SP_ROLE_SPAN;
		kwk = SP_KW_ERROR;
	} else if (kw_end - kw == 5 && memcmp(kw, "event", 5) == 0) {
		role = SP_ROLE_SPAN;
		kwk = SP_KW_EVENT;
	} else {
		char shown[300];

		sp_err_printable(shown, sizeof(shown), kw, (size_t)(kw_end - kw));
		sp_set_err(err, errlen,
			"%s:%d: unknown keyword '%s' (expected 'root', 'span', 'error' or 'event')",
			name, lineno, shown);
		return -1;
	}
	pat = kw_end;
	trim(&pat, &pat_end);
	if (pat == pat_end) {
		sp_set_err(err, errlen, "%s:%d: missing pattern after '%.*s'",
			name, lineno, (int)(kw_end - kw), kw);
		return -1;
	}
	p.role = role;
	if (sp_symlist_entry(name, lineno, kwk, pat, pat_end, &p, err, errlen)) {
		sp_symlist_entry_free(&p);
		free(p.glob);
		return -1;
	}
	if (push_pattern(out, name, &p)) {
		sp_set_err(err, errlen, "%s:%d: out of memory", name, lineno);
		return -1;
	}
	return 0;
}

/* Rejects what cannot be a text line before any parsing, so a binary
 * file given by mistake fails at its first line, not somewhere odd. */
static int check_line(const char *name, int lineno, const char *s, size_t n,
		      char *err, size_t errlen)
{
	if (memchr(s, '\0', n)) {
		sp_set_err(err, errlen, "%s:%d: NUL byte in line (not a text file?)",
			name, lineno);
		return -1;
	}
	if (n > SP_SYMLIST_MAX_LINE) {
		sp_set_err(err, errlen, "%s:%d: line longer than %d bytes", name,
			lineno, SP_SYMLIST_MAX_LINE);
		return -1;
	}
	return 0;
}

int sp_symlist_parse_buf(const char *name, const char *buf, size_t len,
			 struct sp_pattern_list *out, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	int lineno = 0;

	out->v = NULL;
	out->n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *hash;

		lineno++;
		if (check_line(name, lineno, p, (size_t)(le - p), err, errlen))
			goto fail;
		hash = memchr(p, '#', (size_t)(le - p));
		if (parse_line(name, lineno, p, hash ? hash : le, out, err,
			       errlen))
			goto fail;
		p = nl ? nl + 1 : end;
	}
	if (out->n == 0) {
		/* every consumer would trace nothing; say so where the
		 * mistake is rather than later as "nothing attachable" */
		sp_set_err(err, errlen,
			"%s: no entries (expected 'root PATTERN' or 'span PATTERN' lines)",
			name);
		return -1;
	}
	return 0;
fail:
	sp_symlist_free(out);
	return -1;
}

/* Whole file in memory: symbol lists are small, and it lets the buffer
 * parser (which the tests drive directly) do all the work. The cap keeps
 * a huge file given by mistake from being read in full. */
#define SP_SYMLIST_MAX_FILE (64u << 20)

static char *slurp(FILE *f, size_t *len)
{
	size_t cap = 0, n = 0;
	char *buf = NULL;

	for (;;) {
		if (n == cap) {
			char *nb = cap >= SP_SYMLIST_MAX_FILE ? NULL :
				   realloc(buf, cap ? cap * 2 : 4096);

			if (!nb) {
				free(buf);
				errno = cap >= SP_SYMLIST_MAX_FILE ? EFBIG : ENOMEM;
				return NULL;
			}
			buf = nb;
			cap = cap ? cap * 2 : 4096;
		}
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (n < cap) {
			if (ferror(f)) {
				free(buf);
				return NULL;
			}
			break;
		}
	}
	*len = n;
	return buf;
}

int sp_symlist_parse_file(const char *path, struct sp_pattern_list *out,
			  char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	size_t len = 0;
	char *buf;
	int rc;

	out->v = NULL;
	out->n = 0;
	if (!f) {
		sp_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	errno = 0;
	buf = slurp(f, &len);
	if (!buf) {
		/* reading a directory fails here with EISDIR */
		sp_set_err(err, errlen, "%s: %s", path,
			strerror(errno ? errno : EIO));
		fclose(f);
		return -1;
	}
	fclose(f);
	rc = sp_symlist_parse_buf(path, buf, len, out, err, errlen);
	free(buf);
	return rc;
}

void sp_symlist_free(struct sp_pattern_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].glob);
		free(l->v[i].file);
		sp_symlist_entry_free(&l->v[i]);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
