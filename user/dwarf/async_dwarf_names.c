/*
 * Names in the Rust async analysis: recognising rustc's names for polls
 * and coroutine types, and spelling them as users write them (the paths
 * their symbols demangle to, which symbol-list patterns name).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dwarf.h>
#include "dwarf/async_dwarf_names.h"
#include "symbols/symbols.h"

/* ------------------------------------------------------------------ */
/* Names.                                                              */

bool sp_adw_starts_with(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

const char *sp_adw_die_name(Dwarf_Die *d)
{
	Dwarf_Attribute a;
	const char *n = dwarf_diename(d);

	if (n)
		return n;
	/* a concrete out-of-line copy names itself through its origin */
	return dwarf_formstring(dwarf_attr_integrate(d, DW_AT_name, &a));
}

bool is_poll_name(const char *n)
{
	return sp_adw_starts_with(n, "{async_fn#") || sp_adw_starts_with(n, "{async_block#") ||
	       sp_adw_starts_with(n, "{async_closure#");
}

/* "{async_fn_env#0}", "{async_block_env#2}<T>", "{coroutine_env#0}" */
bool is_env_name(const char *n)
{
	return n && n[0] == '{' && strstr(n, "_env#");
}

/* The path people write for a poll or a coroutine type: an async fn is
 * its namespace ("app::handler", dropping "{async_fn#0}" or its env);
 * blocks and closures keep their "{async_block#N}" component, spelled
 * without "_env" and generic arguments. */
char *sp_adw_human_name(const char *ns, const char *last)
{
	const char *kind = NULL, *hash = strchr(last, '#');
	char *r = NULL;
	int num = hash ? atoi(hash + 1) : 0;

	if (sp_adw_starts_with(last, "{async_fn"))
		return strdup(*ns ? ns : last);
	if (sp_adw_starts_with(last, "{async_block"))
		kind = "async_block";
	else if (sp_adw_starts_with(last, "{async_closure"))
		kind = "async_closure";
	else if (sp_adw_starts_with(last, "{coroutine"))
		kind = "coroutine";
	if (!kind)
		return strdup(last);
	if (asprintf(&r, "%s%s{%s#%d}", ns, *ns ? "::" : "", kind, num) < 0)
		return NULL;
	return r;
}

/* "app::main::{{closure}}" + "{async_block#0}" -> "app::main::{async_block#0}";
 * "app::f::{closure#0}" + "{async_fn#0}" -> "app::f". */
char *sp_adw_name_from_symbol(const char *dem, const char *dname)
{
	static const char legacy[] = "::{{closure}}";
	size_t n = strlen(dem), keep = n;
	const char *v0 = strstr(dem, "::{closure#");
	char *prefix, *r;

	if (n > sizeof(legacy) - 1 &&
	    strcmp(dem + n - (sizeof(legacy) - 1), legacy) == 0)
		keep = n - (sizeof(legacy) - 1);
	for (; v0; v0 = strstr(v0 + 1, "::{closure#"))
		keep = (size_t)(v0 - dem); /* the last one */
	if (keep == n)
		return strdup(dem);
	if (!(prefix = strndup(dem, keep)))
		return NULL;
	r = sp_adw_human_name(prefix, dname);
	free(prefix);
	return r;
}

/* The name of an async fn's poll or future as its symbols demangle
 * (what symbol-list patterns are written against, "<T as Trait>::f"
 * included), from the poll's DW_AT_linkage_name; the namespace chain
 * ("...::{impl#1}::f") when there is none. */
char *sp_adw_display_name(const char *linkage, const char *ns, const char *dname)
{
	char *dem, *r;

	if (!linkage || !(dem = sp_demangle(linkage)))
		return sp_adw_human_name(ns, dname);
	r = sp_adw_name_from_symbol(dem, dname);
	free(dem);
	return r;
}

/* "{async_fn#0}<T>" and "{async_fn_env#0}<T>" -> "{async_fn#0}": the key
 * that pairs a coroutine type with the poll in its namespace. */
void poll_key(char *buf, size_t len, const char *ns, const char *name)
{
	const char *env = strstr(name, "_env#");
	size_t head = env ? (size_t)(env - name) : strcspn(name, "#");
	const char *tail = name + head + (env ? 4 : 0);

	snprintf(buf, len, "%s::%.*s%.*s", ns, (int)head, name,
		 (int)(strcspn(tail, "}") + (tail[strcspn(tail, "}")] ? 1 : 0)), tail);
}

uint64_t sp_adw_fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h | 1; /* never 0: the empty slot of an offmap */
}
