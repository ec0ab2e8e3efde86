/*
 * The ground the Rust async analysis stands on (async_dwarf_base.h): DWARF
 * names checked against the bounds of their sections, growable arrays, the
 * DIE-offset map, and the analysis state's allocation helpers. It calls
 * nothing of the analysis above it (names, types, tree, fallback, walk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gelf.h>
#include <elfutils/libdw.h>
#include "base/grow.h"
#include "dwarf/async_dwarf_base.h"

/*
 * libdw returns DW_FORM_string names as pointers into .debug_info without
 * checking for their NUL: in a corrupted file a name can run off the end
 * of its section (found by tests/fuzz). Every name is checked against the
 * bounds of the sections of the file under analysis. One analysis runs at
 * a time: the loader resolves symbols on one thread.
 */
#define MAX_NAME_SECS 128
static struct { const char *lo, *hi; } name_secs[MAX_NAME_SECS];
static size_t n_name_secs;

void sp_adw_note_sections(Elf *e)
{
	n_name_secs = 0;
	sp_adw_add_sections(e);
}

static bool noted(const char *lo)
{
	for (size_t i = 0; i < n_name_secs; i++)
		if (name_secs[i].lo == lo)
			return true;
	return false;
}

void sp_adw_add_sections(Elf *e)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn)) && n_name_secs < MAX_NAME_SECS) {
		Elf_Data *d = elf_getdata(scn, NULL);

		/* a .dwp serves many units: its sections are noted once */
		if (d && d->d_buf && d->d_size && !noted(d->d_buf)) {
			name_secs[n_name_secs].lo = d->d_buf;
			name_secs[n_name_secs].hi = (const char *)d->d_buf + d->d_size;
			n_name_secs++;
		}
	}
}

void sp_adw_forget_sections(void)
{
	n_name_secs = 0;
}

static const char *checked_name(const char *n)
{
	if (!n)
		return NULL;
	for (size_t i = 0; i < n_name_secs; i++)
		if (n >= name_secs[i].lo && n < name_secs[i].hi)
			return memchr(n, 0, (size_t)(name_secs[i].hi - n)) ? n : NULL;
	/* a buffer libdw made itself (a decompressed section) */
	return n;
}

const char *sp_adw_checked_diename(Dwarf_Die *d)
{
	return checked_name((dwarf_diename)(d)); /* libdw's, not the macro */
}

const char *sp_adw_checked_formstring(Dwarf_Attribute *a)
{
	return checked_name((dwarf_formstring)(a));
}

/* ------------------------------------------------------------------ */
/* Growable arrays and a small hash map.                               */

/* Makes room for one more element of v (n used, *cap allocated). */
void *sp_adw_grow(void *v, size_t n, size_t *cap, size_t elem)
{
	return sp_grow(&v, cap, n, elem) ? NULL : v;
}

static size_t off_hash(uint64_t k, size_t cap)
{
	return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

bool offmap_get(const struct offmap *m, uint64_t k, uint32_t *v)
{
	if (!m->cap)
		return false;
	for (size_t i = off_hash(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->key[i] == k) {
			*v = m->val[i];
			return true;
		}
		if (!m->key[i])
			return false;
	}
}

static int offmap_rehash(struct offmap *m, size_t cap);

int offmap_put(struct offmap *m, uint64_t k, uint32_t v)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && offmap_rehash(m, m->cap ? m->cap * 2 : 256))
		return -1;
	for (i = off_hash(k, m->cap); m->key[i] && m->key[i] != k;
	     i = (i + 1) & (m->cap - 1))
		;
	if (!m->key[i])
		m->n++;
	m->key[i] = k;
	m->val[i] = v;
	return 0;
}

static int offmap_rehash(struct offmap *m, size_t cap)
{
	struct offmap nm = { .cap = cap };

	nm.key = calloc(cap, sizeof(*nm.key));
	nm.val = calloc(cap, sizeof(*nm.val));
	if (!nm.key || !nm.val) {
		free(nm.key);
		free(nm.val);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->key[i])
			offmap_put(&nm, m->key[i], m->val[i]);
	free(m->key);
	free(m->val);
	*m = nm;
	return 0;
}

void offmap_clear(struct offmap *m)
{
	free(m->key);
	free(m->val);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* Analysis state.                                                     */

char *sp_adw_xstrdup(struct scan *s, const char *str)
{
	char *d = strdup(str ? str : "");

	if (!d)
		s->oom = true;
	return d;
}

struct sp_async_poll *sp_adw_new_poll(struct scan *s)
{
	size_t cap = s->polls_cap;
	struct sp_async_poll *v = sp_adw_grow(s->out->polls, s->out->n, &s->polls_cap,
					      sizeof(*v));
	uint64_t *e;

	if (!v) {
		s->oom = true;
		return NULL;
	}
	s->out->polls = v;
	if (!(e = sp_adw_grow(s->poll_env, s->out->n, &cap, sizeof(*e)))) {
		s->oom = true;
		return NULL;
	}
	s->poll_env = e;
	e[s->out->n] = 0;
	memset(&v[s->out->n], 0, sizeof(*v));
	v[s->out->n].task_cell_off = UINT32_MAX;
	return &v[s->out->n++];
}

/* Appends a namespace component; returns the length to restore. */
size_t sp_adw_push_ns(struct walk *w, const char *name)
{
	size_t len = strlen(w->ns);

	snprintf(w->ns + len, sizeof(w->ns) - len, "%s%s", len ? "::" : "",
		 name ? name : "?");
	return len;
}
