/*
 * The futures one root future holds nested by value (the ones release
 * builds inline into its poll), as a tree of nodes with the guards that
 * say when each is valid; and where a spawned future sits in its tokio
 * task cell, which links a JoinHandle to the spawned poll's span.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dwarf.h>
#include "dwarf/async_dwarf_names.h"
#include "dwarf/async_dwarf_tree.h"
#include "dwarf/async_dwarf_types.h"

#define MAX_ARRAY 16      /* arrays of futures longer than this: skipped */
#define PATH_LEN 512
#define MAX_HOPS 4        /* Box pointers followed from the root future */

/* ------------------------------------------------------------------ */
/* The nested tree of one root future.                                 */

/* A coroutine node whose own Suspend variants are still to expand. */
struct todo {
	int node;
	Dwarf_Off env;
	int depth;
};

/* Coroutines are expanded breadth first (a queue of todo): when a huge
 * future hits SP_ASYNC_MAX_NODES, what is cut is the deepest nesting,
 * not the later awaits of the root. */
struct tree {
	struct scan *s;
	struct sp_async_poll *p;
	size_t cap;
	uint64_t *type_die;   /* parallel to p->nodes: the node's type */
	bool *mergeable;      /* parallel: same instance across variants */
	struct todo *q;
	size_t q_head, q_n, q_cap;
};

/* Where a node comes from and what its parent must hold. */
struct place {
	int parent;
	const struct sp_async_range *guard;
	size_t n_guard;
	bool negate;
	bool mergeable; /* not an __awaitee: a local/upvar that keeps its
	                 * identity across the suspend points it spans */
	int depth;
	int space;      /* the Box node whose pointee this is in, -1: root */
	uint8_t hops;
};

static void descend(struct tree *t, Dwarf_Die *type, uint32_t abs,
		    const char *path, const struct place *pl);

static bool same_guard_kind(const struct sp_async_node *n, const struct place *pl)
{
	return n->guard_negate == pl->negate;
}

static int add_ranges(struct scan *s, struct sp_async_node *n,
		      const struct sp_async_range *r, size_t k)
{
	struct sp_async_range *g = realloc(n->guard, (n->n_guard + k) * sizeof(*g));

	if (!g) {
		s->oom = true;
		return -1;
	}
	for (size_t i = 0; i < k; i++) {
		bool dup = false;

		for (size_t j = 0; j < n->n_guard; j++)
			dup |= g[j].lo == r[i].lo && g[j].hi == r[i].hi;
		if (!dup)
			g[n->n_guard++] = r[i];
	}
	n->guard = g;
	return 0;
}

/* The same local seen again under another variant of its parent: widen
 * its guard instead of adding (and expanding) a second node. */
static bool merged(struct tree *t, uint64_t die, uint32_t base,
		   enum sp_async_node_kind kind, const char *path,
		   const struct place *pl)
{
	if (!pl->mergeable)
		return false;
	for (size_t i = 0; i < t->p->n_nodes; i++) {
		struct sp_async_node *n = &t->p->nodes[i];

		if (t->mergeable[i] && n->parent == pl->parent && n->kind == kind &&
		    n->base == base && n->space == pl->space && t->type_die[i] == die &&
		    strcmp(n->path, path) == 0 && same_guard_kind(n, pl)) {
			add_ranges(t->s, n, pl->guard, pl->n_guard);
			return true;
		}
	}
	return false;
}

/* Room for one more node in p->nodes and the parallel arrays. */
static bool reserve_node(struct tree *t)
{
	struct sp_async_poll *p = t->p;
	size_t nc = t->cap ? t->cap * 2 : 16;
	struct sp_async_node *n;
	uint64_t *die;
	bool *m;

	if (p->n_nodes < t->cap)
		return true;
	if ((n = realloc(p->nodes, nc * sizeof(*n))))
		p->nodes = n;
	if ((die = realloc(t->type_die, nc * sizeof(*die))))
		t->type_die = die;
	if ((m = realloc(t->mergeable, nc * sizeof(*m))))
		t->mergeable = m;
	if (!n || !die || !m) {
		t->s->oom = true;
		return false;
	}
	t->cap = nc;
	return true;
}

/* Appends a node; its index, or -1 (merged, full, or out of memory). */
static int add_node(struct tree *t, Dwarf_Die *type, enum sp_async_node_kind kind,
		    uint32_t base, const char *path, const struct place *pl)
{
	struct sp_async_poll *p = t->p;
	uint64_t die = dwarf_dieoffset(type);
	struct sp_async_node *n;

	if (merged(t, die, base, kind, path, pl))
		return -1;
	if (p->n_nodes == SP_ASYNC_MAX_NODES) {
		p->truncated = true;
		return -1;
	}
	if (!reserve_node(t))
		return -1;
	n = &p->nodes[p->n_nodes];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->parent = pl->parent;
	n->guard_negate = pl->negate;
	n->space = pl->space;
	n->hops = pl->hops;
	n->base = base;
	n->obj_size = (uint32_t)sp_adw_type_size(type);
	n->path = sp_adw_xstrdup(t->s, path);
	t->type_die[p->n_nodes] = die;
	t->mergeable[p->n_nodes] = pl->mergeable;
	p->n_nodes++;
	if (add_ranges(t->s, n, pl->guard, pl->n_guard))
		return -1;
	return (int)p->n_nodes - 1;
}

static void join_path(char *buf, const char *a, const char *b)
{
	snprintf(buf, PATH_LEN, "%s%s%s", a, *a ? "." : "", b ? b : "?");
}

/* A Box holding futures: a node for the pointer (a hop), and what it
 * points to in a space of its own, valid while the pointer is not null
 * (a changed pointer is another object: async_nested.c). */
static void add_box(struct tree *t, Dwarf_Die *type, Dwarf_Die *pointee, uint32_t abs,
		    const char *path, const struct place *pl)
{
	static const struct sp_async_range null_ptr = { 0, 0 };
	struct place in = *pl;
	int i;

	if (pl->hops >= MAX_HOPS || (i = add_node(t, type, SP_ANODE_BOX, abs, path, pl)) < 0)
		return;
	t->p->nodes[i].name = sp_adw_xstrdup(t->s, "Box");
	t->p->nodes[i].off = abs;
	t->p->nodes[i].size = 8;
	in.parent = i;
	in.guard = &null_ptr;
	in.n_guard = 1;
	in.negate = true;
	in.space = i;
	in.hops = (uint8_t)(pl->hops + 1);
	in.mergeable = true;
	descend(t, pointee, 0, "", &in);
}

/* The fields of one variant structure, under the given place. */
static void descend_fields(struct tree *t, Dwarf_Die *st, uint32_t abs,
			   const char *path, const struct place *pl)
{
	Dwarf_Die f, ft;

	if (dwarf_child(st, &f) != 0)
		return;
	do {
		char buf[PATH_LEN];
		uint64_t off;

		if (dwarf_tag(&f) != DW_TAG_member || !sp_adw_member_offset(&f, &off) ||
		    !sp_adw_type_of(&f, &ft) || !sp_adw_interesting(t->s, &ft, 0))
			continue;
		join_path(buf, path, dwarf_diename(&f));
		descend(t, &ft, abs + (uint32_t)off, buf, pl);
	} while (dwarf_siblingof(&f, &f) == 0);
}

struct suspend_ctx {
	struct tree *t;
	uint32_t base;
	int self;
	int depth;
};

/* Held locals kept per awaited future: enough for a loop's iterator and
 * an accumulator, within the read list's budget. */
#define MAX_HELD 3
#define MAX_HELD_SIZE 16

/* Whether name is one of the arguments of the coroutine that holds it
 * (they are moved into locals of the same name, and do not change
 * between iterations). */
static bool is_arg_of(const struct tree *t, int self, const char *name)
{
	const struct sp_async_field *a = self >= 0 ? t->p->nodes[self].args : t->p->args;
	size_t n = self >= 0 ? t->p->nodes[self].n_args : t->p->n_args;

	for (size_t i = 0; name && i < n; i++)
		if (a[i].name && strcmp(a[i].name, name) == 0)
			return true;
	return false;
}

/* The locals a Suspend variant keeps beside its __awaitee: what the
 * awaited future's instances are told apart by when their arguments are
 * equal (the parent cannot change them while suspended on it). */
static void held_locals(struct tree *t, struct suspend_ctx *c, struct variant *v,
			struct sp_async_field *out, size_t *n)
{
	Dwarf_Die f, ft;

	*n = 0;
	if (dwarf_child(&v->type, &f) != 0)
		return;
	do {
		const char *fname = dwarf_diename(&f);
		uint64_t off, size;

		if (*n == MAX_HELD)
			return;
		if (dwarf_tag(&f) != DW_TAG_member || !fname || strcmp(fname, "__awaitee") == 0 ||
		    !sp_adw_member_offset(&f, &off) || !sp_adw_type_of(&f, &ft) ||
		    is_arg_of(t, c->self, fname))
			continue;
		size = sp_adw_type_size(&ft);
		if (size == 0 || size > MAX_HELD_SIZE)
			continue;
		out[*n].name = (char *)fname; /* borrowed until copied */
		out[*n].off = c->base + (uint32_t)(v->off + off);
		out[*n].size = (uint32_t)size;
		(*n)++;
	} while (dwarf_siblingof(&f, &f) == 0);
}

/* Gives the coroutines just added for an __awaitee (nodes from..) the
 * locals their parent holds across that await. */
static void set_held(struct tree *t, int self, size_t from, const struct sp_async_field *h,
		     size_t nh)
{
	for (size_t i = from; nh && i < t->p->n_nodes; i++) {
		struct sp_async_node *n = &t->p->nodes[i];

		if (n->parent != self || n->kind != SP_ANODE_COROUTINE || n->n_held)
			continue;
		n->held = calloc(nh, sizeof(*n->held));
		if (!n->held) {
			t->s->oom = true;
			return;
		}
		for (size_t k = 0; k < nh; k++) {
			n->held[k] = h[k];
			n->held[k].name = sp_adw_xstrdup(t->s, h[k].name);
		}
		n->n_held = nh;
	}
}

/* A Suspend variant of a coroutine: everything it keeps by value. */
static bool expand_suspend(void *p, struct variant *v)
{
	struct suspend_ctx *c = p;
	struct sp_async_field held[MAX_HELD];
	size_t n_held;
	Dwarf_Die f, ft;
	const char *tn = dwarf_diename(&v->type);

	if (v->is_default || !sp_adw_starts_with(tn, "Suspend") ||
	    dwarf_child(&v->type, &f) != 0)
		return true;
	held_locals(c->t, c, v, held, &n_held);
	do {
		const struct sp_async_node *me = c->self >= 0 ? &c->t->p->nodes[c->self] : NULL;
		struct place pl = { .parent = c->self, .guard = v->v,
				    .n_guard = v->n, .depth = c->depth + 1,
				    .space = me ? me->space : -1, .hops = me ? me->hops : 0 };
		const char *fname = dwarf_diename(&f);
		uint64_t off;

		if (dwarf_tag(&f) != DW_TAG_member || !sp_adw_member_offset(&f, &off) ||
		    !sp_adw_type_of(&f, &ft) || !sp_adw_interesting(c->t->s, &ft, 0))
			continue;
		size_t from = c->t->p->n_nodes;

		pl.mergeable = !fname || strcmp(fname, "__awaitee") != 0;
		descend(c->t, &ft, c->base + (uint32_t)(v->off + off),
			fname ? fname : "?", &pl);
		if (!pl.mergeable)
			set_held(c->t, c->self, from, held, n_held);
	} while (dwarf_siblingof(&f, &f) == 0);
	return true;
}

static void expand_coroutine(struct tree *t, struct env *e, uint32_t base,
			     int self, int depth)
{
	struct suspend_ctx c = { t, base, self, depth };

	for_each_variant(&e->vp, expand_suspend, &c);
}

static const char *poll_linkage(struct scan *s, const char *ns, const char *name)
{
	char key[4352];
	uint32_t idx;

	poll_key(key, sizeof(key), ns, name);
	return offmap_get(&s->link_of, sp_adw_fnv1a(key), &idx) ? s->links[idx] : NULL;
}

char *env_human_name(struct scan *s, Dwarf_Die *env)
{
	uint32_t idx;
	const char *n = dwarf_diename(env), *ns;

	if (!n)
		return strdup("?");
	if (!offmap_get(&s->env_ns, dwarf_dieoffset(env), &idx))
		return sp_adw_human_name("", n);
	ns = s->ns_names[idx];
	return sp_adw_display_name(poll_linkage(s, ns, n), ns, n);
}

static void enqueue(struct tree *t, int node, Dwarf_Die *env, int depth)
{
	struct todo *q = sp_adw_grow(t->q, t->q_n, &t->q_cap, sizeof(*q));

	if (!q) {
		t->s->oom = true;
		return;
	}
	t->q = q;
	q[t->q_n].node = node;
	q[t->q_n].env = dwarf_dieoffset(env);
	q[t->q_n].depth = depth;
	t->q_n++;
}

static void add_coroutine(struct tree *t, Dwarf_Die *type, struct env *e,
			  uint32_t abs, const char *path, const struct place *pl)
{
	int i = add_node(t, type, SP_ANODE_COROUTINE, abs, path, pl);
	struct sp_async_node *n;

	if (i < 0)
		return;
	n = &t->p->nodes[i];
	n->name = env_human_name(t->s, type);
	if (!n->name)
		t->s->oom = true;
	n->is_block = strstr(dwarf_diename(type), "block") != NULL;
	n->off = abs + e->state_off;
	n->size = e->state_size;
	env_args(t->s, e, abs, &n->args, &n->n_args);
	enqueue(t, i, type, pl->depth);
}

static void add_leaf(struct tree *t, Dwarf_Die *type, enum sp_async_node_kind kind,
		     const char *name, uint32_t abs, uint32_t ptr_off,
		     const char *path, const struct place *pl)
{
	int i = add_node(t, type, kind, abs, path, pl);

	if (i < 0)
		return;
	t->p->nodes[i].name = sp_adw_xstrdup(t->s, name);
	t->p->nodes[i].off = abs + ptr_off;
	t->p->nodes[i].size = 8;
}

/* An enum holding futures: a node for its tag, then each variant's
 * fields guarded by that variant's value(s). */
struct enum_ctx {
	struct tree *t;
	uint32_t abs;
	int self;       /* the tag node, or the enclosing parent if untagged */
	const struct place *outer;
	Dwarf_Die *vp;
	bool tagged;
};

struct others_ctx {
	struct sp_async_range v[32];
	size_t n;
};

static bool collect_values(void *p, struct variant *v)
{
	struct others_ctx *o = p;

	for (size_t i = 0; i < v->n && o->n < 32; i++)
		o->v[o->n++] = v->v[i];
	return true;
}

static bool expand_enum_variant(void *p, struct variant *v)
{
	struct enum_ctx *c = p;
	struct others_ctx others = { .n = 0 };
	struct place pl = *c->outer;

	if (!sp_adw_interesting(c->t->s, &v->type, 0))
		return true;
	if (c->tagged) {
		pl.parent = c->self;
		pl.depth++;
		if (v->is_default) {
			/* valid unless the niche holds another variant */
			for_each_variant(c->vp, collect_values, &others);
			pl.guard = others.v;
			pl.n_guard = others.n;
			pl.negate = true;
		} else {
			pl.guard = v->v;
			pl.n_guard = v->n;
			pl.negate = false;
		}
	}
	descend_fields(c->t, &v->type, c->abs + (uint32_t)v->off,
		       v->name ? v->name : "?", &pl);
	return true;
}

static void add_enum(struct tree *t, Dwarf_Die *type, uint32_t abs,
		     const char *path, const struct place *pl)
{
	Dwarf_Die vp, discr, dt;
	bool has_discr;
	uint64_t doff;
	struct enum_ctx c = { .t = t, .abs = abs, .self = pl->parent,
			      .outer = pl, .vp = &vp };

	if (!sp_adw_variant_part(type, &vp, &discr, &has_discr))
		return;
	if (has_discr && sp_adw_member_offset(&discr, &doff) && sp_adw_type_of(&discr, &dt) &&
	    sp_adw_type_size(&dt) >= 1 && sp_adw_type_size(&dt) <= 8) {
		int i = add_node(t, type, SP_ANODE_MAYBE_DONE, abs, path, pl);

		if (i < 0)
			return;
		t->p->nodes[i].name = sp_adw_xstrdup(t->s, dwarf_diename(type));
		t->p->nodes[i].off = abs + (uint32_t)doff;
		t->p->nodes[i].size = (uint8_t)sp_adw_type_size(&dt);
		c.self = i;
		c.tagged = true;
	}
	for_each_variant(&vp, expand_enum_variant, &c);
}

static void descend_struct(struct tree *t, Dwarf_Die *type, uint32_t abs,
			   const char *path, const struct place *pl)
{
	struct env e;
	uint32_t off;
	const char *n;
	Dwarf_Die vp, discr;
	bool has_discr;

	if (coroutine_env(type, &e))
		add_coroutine(t, type, &e, abs, path, pl);
	else if (dyn_future_ptr(type, &off, &n))
		add_leaf(t, type, SP_ANODE_DYN_BOX, n, abs, off, path, pl);
	else if (join_handle(type, &off))
		add_leaf(t, type, SP_ANODE_JOIN_HANDLE, dwarf_diename(type), abs,
			 off, path, pl);
	else if (sp_adw_variant_part(type, &vp, &discr, &has_discr))
		add_enum(t, type, abs, path, pl);
	else
		descend_fields(t, type, abs, path, pl);
}

static void descend_array(struct tree *t, Dwarf_Die *type, uint32_t abs,
			  const char *path, const struct place *pl)
{
	Dwarf_Die et;
	uint64_t esz, total = sp_adw_type_size(type);

	if (!sp_adw_type_of(type, &et) || !(esz = sp_adw_type_size(&et)) ||
	    total / esz > MAX_ARRAY)
		return;
	for (uint64_t i = 0; i < total / esz; i++) {
		char buf[PATH_LEN];

		snprintf(buf, sizeof(buf), "%s[%" PRIu64 "]", path, i);
		descend(t, &et, abs + (uint32_t)(i * esz), buf, pl);
	}
}

static void descend(struct tree *t, Dwarf_Die *type, uint32_t abs,
		    const char *path, const struct place *pl)
{
	Dwarf_Die p = *type;
	struct place deeper = *pl;

	if (pl->depth > MAX_DEPTH || t->s->oom || t->p->truncated || !sp_adw_peel(&p) ||
	    !sp_adw_interesting(t->s, &p, 0))
		return;
	deeper.depth++;
	switch (dwarf_tag(&p)) {
	case DW_TAG_structure_type:
		descend_struct(t, &p, abs, path, &deeper);
		break;
	case DW_TAG_union_type:
		descend_fields(t, &p, abs, path, &deeper);
		break;
	case DW_TAG_array_type:
		descend_array(t, &p, abs, path, &deeper);
		break;
	case DW_TAG_pointer_type: {
		Dwarf_Die pointee;

		if (owning_box(&p, &pointee))
			add_box(t, &p, &pointee, abs, path, &deeper);
		break;
	}
	default:
		break;
	}
}

static void expand_queue(struct tree *t)
{
	struct scan *s = t->s;
	struct sp_async_poll *p = t->p;

	while (t->q_head < t->q_n && !s->oom && !p->truncated) {
		struct todo td = t->q[t->q_head++];
		Dwarf_Die env;
		struct env ce;

		if (dwarf_offdie(s->dw, td.env, &env) && coroutine_env(&env, &ce))
			expand_coroutine(t, &ce, p->nodes[td.node].base, td.node,
					 td.depth);
	}
	free(t->type_die);
	free(t->mergeable);
	free(t->q);
}

/* A hand-written future (sp_async_poll.plain): every field of its type,
 * always valid at the top (it has no state), Boxes followed. */
void sp_adw_build_plain_tree(struct scan *s, struct sp_async_poll *p, Dwarf_Die *type)
{
	struct tree t = { .s = s, .p = p };
	struct place pl = { .parent = -1, .negate = true, .mergeable = true, .space = -1 };

	descend(&t, type, 0, "", &pl);
	expand_queue(&t);
}

void sp_adw_build_tree(struct scan *s, struct sp_async_poll *p, struct env *e)
{
	struct tree t = { .s = s, .p = p };

	expand_coroutine(&t, e, 0, -1, 0);
	expand_queue(&t);
}

/* ------------------------------------------------------------------ */
/* Where a spawned future sits in its tokio task cell.                 */

static bool find_env(struct scan *s, Dwarf_Die *t, uint32_t abs, int depth,
		     uint64_t *env, uint32_t *off);

struct find_ctx {
	struct scan *s;
	uint32_t abs;
	int depth;
	uint64_t *env;
	uint32_t *off;
	bool found;
};

static bool find_in_variant(void *p, struct variant *v)
{
	struct find_ctx *c = p;

	c->found = find_env(c->s, &v->type, c->abs + (uint32_t)v->off,
			    c->depth + 1, c->env, c->off);
	return !c->found;
}

/* The first coroutine held by value in t (depth-first), and its offset. */
static bool find_env(struct scan *s, Dwarf_Die *t, uint32_t abs, int depth,
		     uint64_t *env, uint32_t *off)
{
	Dwarf_Die p = *t, c, mt;
	struct env e;
	uint64_t moff;

	if (depth > MAX_DEPTH || !sp_adw_peel(&p) || !sp_adw_interesting(s, &p, 0))
		return false;
	if (coroutine_env(&p, &e)) {
		*env = dwarf_dieoffset(&p);
		*off = abs;
		return true;
	}
	if (dwarf_child(&p, &c) != 0)
		return false;
	do {
		if (dwarf_tag(&c) == DW_TAG_member && sp_adw_member_offset(&c, &moff) &&
		    sp_adw_type_of(&c, &mt) &&
		    find_env(s, &mt, abs + (uint32_t)moff, depth + 1, env, off))
			return true;
		if (dwarf_tag(&c) == DW_TAG_variant_part) {
			struct find_ctx fc = { s, abs, depth, env, off, false };

			for_each_variant(&c, find_in_variant, &fc);
			if (fc.found)
				return true;
		}
	} while (dwarf_siblingof(&c, &c) == 0);
	return false;
}

/* A coroutine type's identity across units: hash of its path. */
bool env_key(struct scan *s, Dwarf_Die *env, uint64_t *key)
{
	char buf[4352];
	uint32_t idx;

	if (!offmap_get(&s->env_ns, dwarf_dieoffset(env), &idx))
		return false;
	snprintf(buf, sizeof(buf), "%s::%s", s->ns_names[idx], dwarf_diename(env));
	*key = sp_adw_fnv1a(buf);
	return true;
}

/* The same future in cells of two schedulers normally sits at the same
 * offset; if not, the answer is "unknown" (UINT32_MAX). */
void index_cells(struct scan *s)
{
	for (size_t i = 0; i < s->n_cells && !s->oom; i++) {
		Dwarf_Die cell, env;
		uint64_t env_off, key;
		uint32_t off, prev;

		if (!dwarf_offdie(s->dw, s->cells[i], &cell) ||
		    !find_env(s, &cell, 0, 0, &env_off, &off) ||
		    !dwarf_offdie(s->dw, env_off, &env) || !env_key(s, &env, &key))
			continue;
		if (offmap_get(&s->cell_off, key, &prev) && prev != off)
			off = UINT32_MAX;
		if (offmap_put(&s->cell_off, key, off))
			s->oom = true;
	}
}

/* Once every unit was seen: which typed polls are tokio tasks. */
void resolve_cells(struct scan *s)
{
	for (size_t i = 0; i < s->out->n; i++) {
		uint32_t off;

		s->out->polls[i].task_cell_off = UINT32_MAX;
		if (s->poll_env[i] && offmap_get(&s->cell_off, s->poll_env[i], &off))
			s->out->polls[i].task_cell_off = off;
	}
}
