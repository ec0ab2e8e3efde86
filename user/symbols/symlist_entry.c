/*
 * The text of one symbol-list entry after its keyword: a function glob or
 * a USDT source, followed by optional capture suffixes:
 *   NAME=argN:TYPE  NAME=ret:TYPE  (TYPE: i64, u64, i32, u32, str)
 *   error=neg | error=null | error=VALUE   (on the return value)
 * and a bare "args": every parameter the function's DWARF names.
 * Suffixes are whole blank-separated tokens at the end of the line whose
 * NAME is a plain identifier, so C++ names ("operator=(A const&)") stay
 * patterns.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "base/errmsg.h"
#include "spanprobe.h"
#include "symbols/symlist_entry.h"

/* The SysV ABI passes the first six integer arguments in registers. */
#define SP_REG_ARGS 6
#define SP_USDT_ARGS 12

static bool is_ident(const char *s, size_t n)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

/* [s, e) is one token; it is a suffix when it reads IDENT=... */
static bool is_suffix(const char *s, const char *e)
{
	const char *eq = memchr(s, '=', (size_t)(e - s));

	return eq && eq + 1 < e && is_ident(s, (size_t)(eq - s));
}

static int parse_type(const char *t, size_t n, uint8_t *type)
{
	if (n == 3 && !memcmp(t, "i64", 3))
		*type = SP_CAP_I64;
	else if (n == 3 && !memcmp(t, "u64", 3))
		*type = SP_CAP_U64;
	else if (n == 3 && !memcmp(t, "str", 3))
		*type = SP_CAP_STR_T;
	else if (n == 3 && !memcmp(t, "i32", 3))
		*type = SP_CAP_I32;
	else if (n == 3 && !memcmp(t, "u32", 3))
		*type = SP_CAP_U32;
	else
		return -1;
	return 0;
}

static int parse_err_cond(const char *v, size_t n, struct sp_pattern *p)
{
	char buf[32], *end;

	if (n == 3 && !memcmp(v, "neg", 3)) {
		p->err_cond = SP_ERR_NEG;
		return 0;
	}
	if (n == 4 && !memcmp(v, "null", 4)) {
		p->err_cond = SP_ERR_NULL;
		return 0;
	}
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	p->err_value = strtoll(buf, &end, 0);
	if (errno || end == buf || *end)
		return -1;
	p->err_cond = SP_ERR_EQ;
	return 0;
}

/* "argN:TYPE" or "ret:TYPE" */
static int parse_source(const char *v, size_t n, struct sp_cap_decl *c)
{
	const char *colon = memchr(v, ':', n);
	size_t head;

	if (!colon)
		return -1;
	head = (size_t)(colon - v);
	if (parse_type(colon + 1, n - head - 1, &c->type))
		return -1;
	if (head == 3 && !memcmp(v, "ret", 3)) {
		c->src = SP_CAP_RET;
		return 0;
	}
	if (head < 4 || head > 5 || memcmp(v, "arg", 3) || !isdigit((unsigned char)v[3]) ||
	    (head == 5 && !isdigit((unsigned char)v[4])))
		return -1;
	c->src = SP_CAP_ARG;
	c->index = (uint8_t)atoi(v + 3);
	if (head == 5)
		c->index = (uint8_t)((v[3] - '0') * 10 + (v[4] - '0'));
	return 0;
}

#define FAIL(...) do { sp_set_err(err, errlen, __VA_ARGS__); return -1; } while (0)

static int parse_suffix(const char *file, int line, const char *s, const char *e,
			struct sp_pattern *p, char *err, size_t errlen)
{
	const char *eq = memchr(s, '=', (size_t)(e - s));
	size_t nlen = (size_t)(eq - s), vlen = (size_t)(e - eq - 1);
	struct sp_cap_decl c = { 0 };
	char shown[300];

	/* the token is echoed in errors: escaped, as the file is not trusted */
	sp_err_printable(shown, sizeof(shown), s, (size_t)(e - s));

	if (nlen == 5 && !memcmp(s, "error", 5)) {
		if (p->err_cond || p->err_result)
			FAIL("%s:%d: more than one error= condition", file, line);
		if (vlen == 3 && !memcmp(eq + 1, "err", 3)) {
			p->err_result = true;
			return 0;
		}
		if (parse_err_cond(eq + 1, vlen, p))
			FAIL("%s:%d: bad '%s': expected error=neg, error=null, error=VALUE or error=err",
			     file, line, shown);
		return 0;
	}
	if (parse_source(eq + 1, vlen, &c))
		FAIL("%s:%d: bad capture '%s': expected NAME=argN:TYPE or NAME=ret:TYPE, "
		     "TYPE one of i64, u64, i32, u32, str", file, line, shown);
	for (unsigned i = 0; i < p->n_caps; i++)
		if (strlen(p->caps[i].name) == nlen && !memcmp(p->caps[i].name, s, nlen))
			FAIL("%s:%d: capture '%.*s' given twice", file, line, (int)nlen, s);
	if (p->n_caps == SP_CAP_MAX)
		FAIL("%s:%d: more than %d captures", file, line, SP_CAP_MAX);
	c.name = strndup(s, nlen);
	if (!c.name)
		FAIL("%s:%d: out of memory", file, line);
	/* suffixes are read from the end: insert at the front */
	memmove(&p->caps[1], &p->caps[0], p->n_caps * sizeof(p->caps[0]));
	p->caps[0] = c;
	p->n_caps++;
	return 0;
}

/* "P:N" with both sides non-empty, printable ASCII (it is echoed). */
static bool probe_spec(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);

	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)s[i]))
			return false;
	return colon && colon > s && colon + 1 < s + n && !memchr(colon + 1, ':', (size_t)(s + n - colon - 1));
}

static int next_token(const char **s, const char *e, const char **ts)
{
	while (*s < e && isspace((unsigned char)**s))
		(*s)++;
	*ts = *s;
	while (*s < e && !isspace((unsigned char)**s))
		(*s)++;
	return *s > *ts;
}

static int parse_usdt(const char *file, int line, const char *s, const char *e,
		      struct sp_pattern *p, char *err, size_t errlen)
{
	const char *t1, *t2, *t3;
	const char *p1, *p2;
	bool two = p->source == SP_SRC_USDT_PAIR;
	const char *kw = p->source == SP_SRC_USDT_EVENT ? "event" : "error";

	if (!next_token(&s, e, &t1) || !probe_spec(t1, (size_t)(s - t1)))
		goto usage;
	p1 = s;
	if (two && (!next_token(&s, e, &t2) || !probe_spec(t2, (size_t)(s - t2))))
		goto usage;
	p2 = s;
	if (next_token(&s, e, &t3))
		goto usage;
	p->glob = strndup(t1, (size_t)(p1 - t1));
	if (two)
		p->usdt_done = strndup(t2, (size_t)(p2 - t2));
	if (!p->glob || (two && !p->usdt_done))
		FAIL("%s:%d: out of memory", file, line);
	return 0;
usage:
	if (two)
		FAIL("%s:%d: expected 'usdt PROVIDER:START PROVIDER:DONE [NAME=argN:TYPE ...]'",
		     file, line);
	FAIL("%s:%d: expected '%s usdt PROVIDER:NAME'", file, line, kw);
}

static int check_caps(const char *file, int line, const struct sp_pattern *p, char *err,
		      size_t errlen)
{
	bool usdt = p->source != SP_SRC_FUNC;

	if (p->source == SP_SRC_USDT_ERROR && (p->n_caps || p->err_cond))
		FAIL("%s:%d: an error probe takes no captures", file, line);
	if (usdt && p->want_args)
		FAIL("%s:%d: 'args' names a function's parameters from DWARF; a USDT probe has "
		     "none (name its arguments: NAME=argN:TYPE)", file, line);
	if (p->source == SP_SRC_USDT_EVENT && p->want_args)
		FAIL("%s:%d: an event takes no 'args'", file, line);
	if (usdt && p->err_result)
		FAIL("%s:%d: error=err tests a Rust poll's Poll::Ready(Err(_)); a USDT probe "
		     "returns nothing", file, line);
	if (p->err_result && p->err_cond)
		FAIL("%s:%d: more than one error= condition", file, line);
	if (usdt && p->err_cond)
		FAIL("%s:%d: error= tests a return value; a USDT probe has none "
		     "(use an 'error usdt PROVIDER:NAME' line)", file, line);
	for (unsigned i = 0; i < p->n_caps; i++) {
		const struct sp_cap_decl *c = &p->caps[i];

		if (usdt && c->src == SP_CAP_RET)
			FAIL("%s:%d: capture '%s': a USDT probe has no return value",
			     file, line, c->name);
		if (c->src == SP_CAP_ARG && c->index >= (usdt ? SP_USDT_ARGS : SP_REG_ARGS))
			FAIL(usdt ? "%s:%d: capture '%s': a USDT probe has at most 12 arguments (arg0..arg11)"
				  : "%s:%d: capture '%s': only the register arguments arg0..arg5 can be read",
			     file, line, c->name);
	}
	return 0;
}

int sp_symlist_entry(const char *file, int line, int kw, const char *s, const char *e,
		     struct sp_pattern *p, char *err, size_t errlen)
{
	const char *head_end = e;

	p->text = strndup(s, (size_t)(e - s));
	if (!p->text)
		FAIL("%s:%d: out of memory", file, line);
	/* suffixes, from the end */
	for (;;) {
		const char *te = head_end, *ts;

		while (te > s && isspace((unsigned char)te[-1]))
			te--;
		ts = te;
		while (ts > s && !isspace((unsigned char)ts[-1]))
			ts--;
		if (ts > s && te - ts == 4 && !memcmp(ts, "args", 4) && !p->want_args) {
			p->want_args = true;
			head_end = ts;
			continue;
		}
		if (ts == s || !is_suffix(ts, te))
			break;
		if (parse_suffix(file, line, ts, te, p, err, errlen))
			return -1;
		head_end = ts;
	}
	while (head_end > s && isspace((unsigned char)head_end[-1]))
		head_end--;
	if (head_end - s > 4 && !memcmp(s, "usdt", 4) && isspace((unsigned char)s[4])) {
		p->source = kw == SP_KW_ERROR ? SP_SRC_USDT_ERROR :
			    kw == SP_KW_EVENT ? SP_SRC_USDT_EVENT : SP_SRC_USDT_PAIR;
		if (parse_usdt(file, line, s + 4, head_end, p, err, errlen))
			return -1;
	} else if (kw != SP_KW_SPAN) {
		FAIL("%s:%d: expected '%s usdt PROVIDER:NAME'", file, line,
		     kw == SP_KW_EVENT ? "event" : "error");
	} else {
		p->glob = strndup(s, (size_t)(head_end - s));
		if (!p->glob)
			FAIL("%s:%d: out of memory", file, line);
	}
	return check_caps(file, line, p, err, errlen);
}

void sp_symlist_entry_free(struct sp_pattern *p)
{
	for (unsigned i = 0; i < p->n_caps; i++)
		free(p->caps[i].name);
	free(p->usdt_done);
	free(p->text);
}
