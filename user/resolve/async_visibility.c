#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "resolve/async_resolve.h"
#include "resolve/async_visibility.h"
#include "symbols/debuginfo.h"
#include "symbols/program_libs.h"
#include "base/errmsg.h"

#define PATH_MAX_LEN 1024

int sp_avis_init(struct sp_avis_report *rep, size_t n_patterns)
{
	rep->n = n_patterns;
	rep->v = calloc(n_patterns ? n_patterns : 1, sizeof(*rep->v));
	return rep->v ? 0 : -1;
}

static void free_item(struct sp_avis_item *it)
{
	free(it->object);
	free(it->name);
	free(it->root);
	free(it->path);
}

void sp_avis_free(struct sp_avis_report *rep)
{
	for (size_t i = 0; rep->v && i < rep->n; i++) {
		for (size_t k = 0; k < rep->v[i].n; k++)
			free_item(&rep->v[i].items[k]);
		free(rep->v[i].items);
	}
	free(rep->v);
	rep->v = NULL;
	rep->n = 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = strdup(s)))
		*oom = true;
	return d;
}

/* Takes copies of its strings; 0 or -1 (out of memory). */
static int add_item(struct sp_avis_pattern *p, const struct sp_avis_item *it)
{
	struct sp_avis_item *v = realloc(p->items, (p->n + 1) * sizeof(*v));
	bool oom = false;

	if (!v)
		return -1;
	p->items = v;
	v[p->n] = *it;
	v[p->n].object = dup_or_null(it->object, &oom);
	v[p->n].name = dup_or_null(it->name, &oom);
	v[p->n].root = dup_or_null(it->root, &oom);
	v[p->n].path = dup_or_null(it->path, &oom);
	p->n++;
	if (oom)
		return -1;
	if (p->cls == SP_AVIS_NONE || it->cls < p->cls)
		p->cls = it->cls;
	return 0;
}

/* "__awaitee" then "__awaitee" -> "__awaitee.__awaitee": the node's
 * place from the root future, through its ancestors. */
static void member_path(const struct sp_async_poll *p, size_t i, char *buf, size_t len)
{
	int chain[SP_ASYNC_MAX_NODES]; /* parents come first: no longer chain */
	size_t n = 0, at = 0;

	buf[0] = '\0';
	for (int k = (int)i; k >= 0 && n < SP_ASYNC_MAX_NODES; k = p->nodes[k].parent)
		chain[n++] = k;
	while (n-- > 0 && at < len) {
		const struct sp_async_node *nd = &p->nodes[chain[n]];
		char part[PATH_MAX_LEN];
		size_t pl;
		int w;

		snprintf(part, sizeof(part), "%s", nd->path ? nd->path : "?");
		pl = strlen(part);
		/* a Box's path names its pointer field: "in_flight.pointer" */
		if (nd->kind == SP_ANODE_BOX && pl >= 7 && strcmp(part + pl - 7, "pointer") == 0)
			part[pl - 7 - (pl > 7 && part[pl - 8] == '.')] = '\0';
		if (*part) {
			bool after_hop = at >= 2 && strcmp(buf + at - 2, "->") == 0;

			w = snprintf(buf + at, len - at, "%s%s", at && !after_hop ? "." : "", part);
			at += w > 0 ? (size_t)w : 0;
		}
		if (nd->kind == SP_ANODE_BOX && at < len) {
			w = snprintf(buf + at, len - at, "->");
			at += w > 0 ? (size_t)w : 0;
		}
	}
}

static int add_poll(struct sp_avis_pattern *pat, const char *object,
		    const struct sp_async_poll *p)
{
	struct sp_avis_item it = {
		.cls = SP_AVIS_OUT_OF_LINE, .object = (char *)object,
		.name = p->name, .self_reg = p->self_reg,
		.state_off = p->state_off, .state_size = p->state_size,
		.from_dwarf = p->from_dwarf,
	};

	return add_item(pat, &it);
}

/* A coroutine nested in a root is only seen when the root's poll
 * returns with it pending: one that never suspends finishes inside the
 * poll that started it, whatever the layout says. */
static int add_node(struct sp_avis_pattern *pat, const char *object,
		    const struct sp_async_info *info, const struct sp_async_poll *p,
		    size_t i)
{
	const struct sp_async_node *n = &p->nodes[i];
	const struct sp_async_known *k = sp_async_find_known(info, n->name);
	char path[PATH_MAX_LEN];
	struct sp_avis_item it = {
		.object = (char *)object, .name = n->name, .root = p->name,
		.path = path, .self_reg = p->self_reg, .state_off = n->off,
		.state_size = n->size, .n_suspend = k ? k->n_suspend : 1,
	};

	member_path(p, i, path, sizeof(path));
	it.hops = n->hops;
	it.cls = it.n_suspend ? SP_AVIS_INLINED : SP_AVIS_INVISIBLE;
	return add_item(pat, &it);
}

/* Depth of node i in p's tree. */
static int node_depth(const struct sp_async_poll *p, size_t i)
{
	int d = 0;

	for (int k = p->nodes[i].parent; k >= 0 && d < SP_ASYNC_MAX_NODES; k = p->nodes[k].parent)
		d++;
	return d;
}

/* The shallowest depth at which hand-written poll p holds name, or -1. */
static int plain_depth(const struct sp_async_poll *p, const char *name)
{
	int best = -1;

	for (size_t k = 0; k < p->n_nodes; k++)
		if (p->nodes[k].kind == SP_ANODE_COROUTINE && p->nodes[k].name &&
		    strcmp(p->nodes[k].name, name) == 0 &&
		    (best < 0 || node_depth(p, k) < best))
			best = node_depth(p, k);
	return best;
}

/* Whether hand-written poll c is a carrier for name, as resolution
 * chooses (resolve.c, keep_innermost): no coroutine shows name, and no
 * other hand-written poll holds it closer to its top. */
static bool plain_carrier_of(const struct sp_async_info *info, size_t c, const char *name)
{
	int d = plain_depth(&info->plain[c], name);

	if (d < 0)
		return false;
	for (size_t o = 0; o < info->n_plain; o++) {
		int od = plain_depth(&info->plain[o], name);

		if (od >= 0 && od < d)
			return false;
	}
	return true;
}

static bool names_poll_or_node(const struct sp_async_info *info, const char *name)
{
	for (size_t i = 0; i < info->n; i++) {
		const struct sp_async_poll *p = &info->polls[i];

		if (p->name && strcmp(p->name, name) == 0)
			return true;
		for (size_t k = 0; k < p->n_nodes; k++)
			if (p->nodes[k].kind == SP_ANODE_COROUTINE && p->nodes[k].name &&
			    strcmp(p->nodes[k].name, name) == 0)
				return true;
	}
	return false;
}

static int classify_polls(const char *glob, const char *object,
			  const struct sp_async_info *info, struct sp_avis_pattern *pat)
{
	for (size_t i = 0; i < info->n; i++) {
		const struct sp_async_poll *p = &info->polls[i];

		if (sp_async_name_matches(glob, p->name) && add_poll(pat, object, p))
			return -1;
		for (size_t k = 0; k < p->n_nodes; k++)
			if (p->nodes[k].kind == SP_ANODE_COROUTINE &&
			    sp_async_name_matches(glob, p->nodes[k].name) &&
			    add_node(pat, object, info, p, k))
				return -1;
	}
	/* hand-written futures' polls, for what no coroutine shows */
	for (size_t i = 0; i < info->n_plain; i++) {
		const struct sp_async_poll *p = &info->plain[i];

		for (size_t k = 0; k < p->n_nodes; k++) {
			const char *name = p->nodes[k].name;

			/* "{impl#N}::f" spellings: see resolve.c, orphans */
			if (p->nodes[k].kind == SP_ANODE_COROUTINE && name && !strstr(name, "{impl#") &&
			    sp_async_name_matches(glob, name) && !names_poll_or_node(info, name) &&
			    plain_carrier_of(info, i, name) && node_depth(p, k) == plain_depth(p, name) &&
			    add_node(pat, object, info, p, k))
				return -1;
		}
	}
	return 0;
}

/* Some hand-written future's poll carries name. */
static bool plain_shown(const struct sp_async_info *info, const char *name)
{
	if (strstr(name, "{impl#"))
		return false;
	for (size_t i = 0; i < info->n_plain; i++)
		if (plain_carrier_of(info, i, name))
			return true;
	return false;
}

/* Async fns the DWARF types describe but no root holds by value: their
 * code is inlined somewhere no future of ours can be read. */
static int classify_known(const char *glob, const char *object,
			  const struct sp_async_info *info, struct sp_avis_pattern *pat)
{
	for (size_t i = 0; i < info->n_known; i++) {
		const struct sp_async_known *k = &info->known[i];
		struct sp_avis_item it = { .cls = SP_AVIS_INVISIBLE,
					   .object = (char *)object, .name = k->name,
					   .n_suspend = k->n_suspend };

		if (!sp_async_name_matches(glob, k->name) ||
		    names_poll_or_node(info, k->name) || plain_shown(info, k->name))
			continue;
		if (add_item(pat, &it))
			return -1;
	}
	return 0;
}

int sp_avis_classify(const struct sp_pattern_list *pats, const bool *matched,
		     const char *object, const struct sp_async_info *info,
		     struct sp_avis_report *rep)
{
	for (size_t i = 0; i < pats->n && i < rep->n; i++) {
		struct sp_avis_pattern *pat = &rep->v[i];
		size_t before = pat->n;
		struct sp_avis_item unknown = { .cls = SP_AVIS_UNKNOWN,
						.object = (char *)object };

		if (classify_polls(pats->v[i].glob, object, info, pat) ||
		    classify_known(pats->v[i].glob, object, info, pat))
			return -1;
		/* without types, only a sync function that matched is known
		 * not to be an inlined async fn */
		if (!info->has_types && pat->n == before && !matched[i] &&
		    add_item(pat, &unknown))
			return -1;
	}
	return 0;
}

/* An object worth classifying against: Rust, by its DWARF, its polls
 * or its closures. */
static bool is_rust(const struct sp_async_info *info)
{
	return info->has_dwarf || info->n || info->n_rejected;
}

/* matched[i]: pattern i matched a function of object that is not a poll. */
static void sync_matches(const struct sp_pattern_list *pats, const struct sp_func_set *fs,
			 const char *object, bool *matched)
{
	for (size_t i = 0; i < pats->n; i++) {
		matched[i] = false;
		for (size_t k = 0; k < fs->n && !matched[i]; k++) {
			const struct sp_func *f = &fs->v[k];

			matched[i] = !f->is_async && strcmp(f->object, object) == 0 &&
				     (f->pattern == (int)i ||
				      sp_pattern_matches(pats->v[i].glob, f->raw, f->demangled));
		}
	}
}

/* exe: the executable (the first object), see sp_debuginfo_for */
static int one_object(const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		      const struct sp_mapped_object *o, bool exe, bool *matched,
		      struct sp_avis_report *rep)
{
	const struct sp_debuginfo *dbg = sp_debuginfo_for(o->path, o->open_path, exe);
	struct sp_async_info info;
	char why[256];
	int rc = 0;

	if (sp_async_analyze_debug(o->open_path, dbg ? dbg->path : NULL, &info, why,
				   sizeof(why))) {
		fprintf(stderr, "spanprobe: warning: %s: async analysis: %s\n", o->path, why);
		return 0;
	}
	if (is_rust(&info)) {
		sync_matches(pats, fs, o->path, matched);
		rc = sp_avis_classify(pats, matched, o->path, &info, rep);
	}
	sp_async_info_free(&info);
	return rc;
}

int sp_avis_build(const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		  const struct sp_mapped_objects *objs, struct sp_avis_report *rep,
		  char *err, size_t errlen)
{
	bool *matched = calloc(pats->n ? pats->n : 1, sizeof(*matched));
	int rc = matched && sp_avis_init(rep, pats->n) == 0 ? 0 : -1;

	for (size_t i = 0; rc == 0 && i < objs->n; i++)
		rc = one_object(pats, fs, &objs->v[i], i == 0, matched, rep);
	free(matched);
	if (rc) {
		sp_avis_free(rep);
		sp_set_err(err, errlen, "async visibility: out of memory");
	}
	return rc;
}

int sp_avis_for_target(pid_t pid, const char *binary, bool with_libs,
		       const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		       struct sp_avis_report *rep, char *err, size_t errlen)
{
	struct sp_mapped_object one = { (char *)binary, (char *)binary };
	struct sp_mapped_objects m = { &one, 1 };
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (pid > 0 && sp_proc_objects(pid, &m, err, errlen))
		return -1;
	if (pid <= 0 && with_libs && sp_program_objects(binary, &m, err, errlen))
		return -1;
	rc = sp_avis_build(pats, fs, &m, rep, err, errlen);
	if (m.v != &one)
		sp_proc_objects_free(&m);
	return rc;
}

const char *sp_avis_class_id(enum sp_avis_class c)
{
	switch (c) {
	case SP_AVIS_OUT_OF_LINE:
		return "out_of_line";
	case SP_AVIS_INLINED:
		return "inlined";
	case SP_AVIS_INVISIBLE:
		return "invisible";
	case SP_AVIS_UNKNOWN:
		return "unknown";
	default:
		return NULL;
	}
}

static const char *reg_name(enum sp_async_reg r)
{
	return r == SP_AREG_RSI ? "rsi" : "rdi";
}

static void invisible_text(const struct sp_avis_item *it, char *buf, size_t len)
{
	if (it->n_suspend == 0 && it->root)
		snprintf(buf, len, "invisible: inlined into root %s and never suspends "
			 "(no await point): it finishes inside one poll", it->root);
	else if (it->n_suspend == 0)
		snprintf(buf, len, "invisible: inlined and never suspends (no await "
			 "point): it finishes inside one poll");
	else
		snprintf(buf, len, "invisible: inlined, and no out-of-line poll's future "
			 "holds it by value across an await (%u await point%s)",
			 it->n_suspend, it->n_suspend == 1 ? "" : "s");
}

void sp_avis_item_text(const struct sp_avis_item *it, char *buf, size_t len)
{
	switch (it->cls) {
	case SP_AVIS_OUT_OF_LINE:
		snprintf(buf, len, "out-of-line poll (self in %s, state at self+%#x/%u, "
			 "from %s)", reg_name(it->self_reg), it->state_off,
			 it->state_size, it->from_dwarf ? "DWARF types" : "its code");
		break;
	case SP_AVIS_INLINED:
		if (it->hops)
			snprintf(buf, len, "inlined, seen through root %s via %s (%u hop%s: Box), "
				 "state at +%#x/%u behind the last hop", it->root, it->path,
				 it->hops, it->hops == 1 ? "" : "s", it->state_off, it->state_size);
		else
			snprintf(buf, len, "inlined, seen through root %s (member %s, state at "
				 "root+%#x/%u)", it->root, it->path, it->state_off, it->state_size);
		break;
	case SP_AVIS_INVISIBLE:
		invisible_text(it, buf, len);
		break;
	case SP_AVIS_UNKNOWN:
		snprintf(buf, len, "unknown: %s", SP_AVIS_NEEDS_TYPES);
		break;
	default:
		snprintf(buf, len, "not async");
		break;
	}
}

void sp_avis_pattern_text(const struct sp_avis_pattern *p, char *buf, size_t len)
{
	char one[2048];
	size_t best = 0;

	buf[0] = '\0';
	if (p->cls == SP_AVIS_NONE || !p->n)
		return;
	while (best < p->n && p->items[best].cls != p->cls)
		best++;
	sp_avis_item_text(&p->items[best], one, sizeof(one));
	/* an UNKNOWN item names no function: say which object lacks types */
	snprintf(buf, len, "%s: %s", p->items[best].name ? p->items[best].name :
		 p->items[best].object, one);
	if (p->n > 1) {
		size_t at = strlen(buf);

		snprintf(buf + at, len - at, " (and %zu more)", p->n - 1);
	}
}
