/*
 * Held queries: nested async spans, spawned-task links and re-rooting
 * (see async_queries.h).
 */
#include <stdlib.h>
#include <string.h>
#include "base/grow.h"
#include "resolve/async_nested.h"
#include "spans/async_queries.h"

/* Keys of derived spans: the kernel's have the CPU in bits 48..62. */
#define SYNTH_KEY (1ull << 63)

struct group {
	uint64_t qkey;
	struct sp_span_rec *recs;
	size_t n, cap;
};

struct run {
	uint64_t fut_key;
	struct sp_nested_run nr;
};

struct sp_held {
	const struct sp_func_set *funcs;
	struct sp_assembler *a;
	uint64_t hold_ns;
	uint64_t next_key;
	struct group *groups;    /* waiting for their root; oldest first */
	size_t n_groups, cap_groups;
	struct run *runs;        /* carrier futures being read */
	size_t n_runs, cap_runs;
	struct group *tasks;     /* spawned tasks waiting for a link */
	size_t n_tasks, cap_tasks;
	struct sp_held_stats st;
};

/* One span of a rebuilt carrier query. */
struct onode {
	struct sp_span_rec rec;
	int parent;   /* index; -1: none */
	int query;    /* index of its query's root; -1: outside */
	uint64_t unc_lo, unc_hi;
	bool can_root;
	int ndepth;   /* nested spans: depth among them, for containment */
	uint64_t addr; /* nested spans: the future's address, 0 if unknown */
	const char *fn; /* nested spans: the async fn */
	bool dropped; /* a nested span that is an out-of-line poll's span
		       * (the same future): that one, exact, replaces it */
	struct sp_span_caps *caps; /* nested spans: `args`, until emitted */
};

struct out {
	struct onode *v;
	size_t n, cap;
};

struct sp_held *sp_held_new(const struct sp_func_set *funcs, struct sp_assembler *a,
			    uint64_t hold_ns)
{
	struct sp_held *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->funcs = funcs;
	h->a = a;
	h->hold_ns = hold_ns;
	return h;
}

static void group_free(struct group *g)
{
	free(g->recs);
	memset(g, 0, sizeof(*g));
}

static void remove_at(void *v, size_t *n, size_t i, size_t size)
{
	char *b = v;

	memmove(b + i * size, b + (i + 1) * size, (*n - i - 1) * size);
	(*n)--;
}

static const struct sp_func *func_of(const struct sp_held *h, uint32_t sym)
{
	return sym < h->funcs->n ? &h->funcs->v[sym] : NULL;
}

/* ---------------------------------------------------------------- runs */

static struct run *run_find(struct sp_held *h, uint64_t fut_key, size_t *idx)
{
	for (size_t i = h->n_runs; i-- > 0;)
		if (h->runs[i].fut_key == fut_key) {
			if (idx)
				*idx = i;
			return &h->runs[i];
		}
	return NULL;
}

static void carrier_quiet(struct sp_held *h, const struct sp_func *f, struct run *run,
			  uint32_t tid);

static void run_drop(struct sp_held *h, size_t i)
{
	sp_nested_run_free(&h->runs[i].nr);
	remove_at(h->runs, &h->n_runs, i, sizeof(*h->runs));
}

void sp_held_nested(struct sp_held *h, const struct sp_nested_rec *r)
{
	const struct sp_func *f = func_of(h, r->sym_id);
	struct run *run;

	h->st.nested_records++;
	if (!f || !f->nested)
		return;
	run = run_find(h, r->fut_key, NULL);
	if (!run) {
		if (h->n_runs == SP_HELD_MAX)
			run_drop(h, 0);
		if (sp_grow((void **)&h->runs, &h->cap_runs, h->n_runs, sizeof(*h->runs)))
			return;
		run = &h->runs[h->n_runs];
		if (sp_nested_run_init(&run->nr, f->nested))
			return;
		run->fut_key = r->fut_key;
		h->n_runs++;
	}
	run->nr.obj = r->obj;
	run->nr.tid = r->tid;
	run->nr.poll_ns = r->poll_ns;
	run->nr.mid = r->mid != 0;
	sp_nested_run_feed(&run->nr, r->entry_ns, r->exit_ns, (const uint64_t *)r->v,
			   r->n < SP_NESTED_MAX ? r->n : SP_NESTED_MAX);
	carrier_quiet(h, f, run, r->tid);
}

/* -------------------------------------------------------------- output */

static int out_add(struct out *o, const struct sp_span_rec *r, int parent)
{
	if (sp_grow((void **)&o->v, &o->cap, o->n, sizeof(*o->v)))
		return -1;
	memset(&o->v[o->n], 0, sizeof(o->v[0]));
	o->v[o->n].rec = *r;
	o->v[o->n].parent = parent;
	o->v[o->n].query = -1;
	return (int)o->n++;
}

/* Its nodes' values that were not emitted go with it. */
static void out_free(struct out *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->v[i].caps);
	free(o->v);
}

static int out_find_key(const struct out *o, size_t from, size_t to, uint64_t key)
{
	for (size_t i = from; i < to; i++)
		if (o->v[i].rec.key == key)
			return (int)i;
	return -1;
}

/* The named span (node index 1 + k) to put a span with these times under:
 * the deepest one whose life encloses it; 0 (the carrier) if none. */
static int enclosing(const struct out *o, size_t n_nested, uint64_t b, uint64_t e)
{
	int best = 0, depth = -1;

	for (size_t i = 1; i <= n_nested; i++) {
		const struct onode *s = &o->v[i];

		if (!s->dropped && s->rec.begin_ns <= b && e <= s->rec.end_ns &&
		    s->ndepth > depth) {
			best = (int)i;
			depth = s->ndepth;
		}
	}
	return best;
}

/* A nested &str's or String's text: its first bytes as read when the
 * span began, cut at their length. A read that failed left zeros: a NUL
 * among the bytes shown makes it unreadable rather than invented. */
static void nested_text(struct sp_span_cap *v, const struct sp_nested_arg *a,
			const struct sp_nested_span *s, uint32_t k)
{
	size_t len = s->lenv[k], room = 8 * SP_NESTED_STR_READS;
	char b[8 * SP_NESTED_STR_READS];

	v->type = SP_SPAN_CAP_STR_T;
	v->status = SP_SPAN_CAP_UNREADABLE;
	if (a->len_read == SP_NESTED_NO_READ || a->str0 == SP_NESTED_NO_READ)
		return;
	memcpy(b, s->strv[k], sizeof(b)); /* little-endian words: bytes in order */
	if (len > room)
		len = room;
	if (memchr(b, 0, len))
		return;
	memcpy(v->str, b, len);
	v->str[len] = '\0';
	v->status = len < s->lenv[k] ? SP_SPAN_CAP_TRUNCATED : SP_SPAN_CAP_OK;
}

/* `args` on a nested async fn: its arguments as read when the span began
 * (they stay in the future for its whole life): integers, lengths of
 * slices and Vecs, text of &str and String. */
static struct sp_span_caps *nested_args(const struct sp_nested_node *n,
					const struct sp_nested_span *s)
{
	struct sp_span_caps *c;

	if (!n->want_args || !(c = calloc(1, sizeof(*c))))
		return NULL;
	for (uint32_t k = 0; k < n->n_args && k < 4 && c->n < SP_SPAN_CAPS_MAX; k++) {
		const struct sp_nested_arg *a = &n->argd[k];
		struct sp_span_cap *v = &c->v[c->n];
		uint64_t x = s->argv[k];

		if (a->show == SP_AFIELD_STR) {
			nested_text(v, a, s, k);
		} else if (a->show == SP_AFIELD_LEN) {
			v->type = SP_SPAN_CAP_U64;
			v->status = a->len_read == SP_NESTED_NO_READ ? SP_SPAN_CAP_UNREADABLE :
								       SP_SPAN_CAP_OK;
			v->num = s->lenv[k];
		} else if (a->is_int && a->size && a->size <= 8) {
			if (a->is_signed && a->size < 8)
				x = (uint64_t)((int64_t)(x << (64 - 8 * a->size)) >>
					       (64 - 8 * a->size));
			v->type = a->is_signed ? SP_SPAN_CAP_I64 : SP_SPAN_CAP_U64;
			v->status = SP_SPAN_CAP_OK;
			v->num = x;
		} else {
			continue;
		}
		v->name = a->name;
		c->n++;
	}
	if (!c->n) {
		free(c);
		return NULL;
	}
	return c;
}

/* The inlined futures' spans, right after the carrier (index 0). */
static int add_nested(struct sp_held *h, struct out *o, const struct sp_nested_run *run,
		      const struct sp_span_rec *root)
{
	for (size_t k = 0; k < run->n_spans; k++) {
		const struct sp_nested_span *s = &run->spans[k];
		const struct sp_nested_node *n = &run->plan->nodes[s->node];
		struct sp_span_rec r = {
			.kind = SP_RK_SPAN, .tgid = root->tgid, .key = SYNTH_KEY | ++h->next_key,
			.begin_ns = s->begin_ns, .end_ns = s->end_ns,
			.tid = s->tid ? s->tid : root->tid,
			.sym_id = n->name_sym, .flags = (__u16)s->flags,
		};
		int parent = s->parent;
		int i = out_add(o, &r, parent >= 0 ? 1 + parent : 0);

		if (i < 0)
			return -1;
		o->v[i].unc_lo = s->unc_lo_ns;
		o->v[i].unc_hi = s->unc_hi_ns;
		o->v[i].can_root = n->role == SP_ROLE_ROOT;
		o->v[i].ndepth = parent >= 0 ? o->v[1 + parent].ndepth + 1 : 0;
		o->v[i].addr = s->addr;
		o->v[i].fn = n->name;
		/* a tentative instance that was other bytes (async_nested.c):
		 * its children already hang from its parent */
		o->v[i].dropped = s->gone;
		h->st.nested_spans += !s->gone;
		o->v[i].caps = nested_args(n, s);
	}
	return 0;
}

/* A span the kernel put directly under the carrier poll. */
static int reparent(const struct sp_held *h, const struct out *o, size_t n_nested,
		    const struct sp_nested_run *run, const struct sp_span_rec *r)
{
	const struct sp_func *f = func_of(h, r->sym_id);

	if (run && f && f->is_async && r->obj) {
		int holder = sp_nested_run_holder(run, SP_ANODE_DYN_BOX, r->obj, r->begin_ns,
						  r->end_ns);

		if (holder >= -1)
			return holder >= 0 ? 1 + holder : 0;
	}
	return enclosing(o, n_nested, r->begin_ns, r->end_ns);
}

/* An out-of-line poll's future that the carrier also holds (its poll
 * was not inlined everywhere: query_db awaited from three places): the
 * nested span at the same address, of the same fn, over the same time,
 * is the same future. That nested span gives way to the exact one: x
 * takes its place, its children come along. Returns x's parent, -2 if
 * there is no such span. */
static int same_future(struct sp_held *h, struct out *o, size_t n_nested, int x)
{
	const struct sp_span_rec *r = &o->v[x].rec;
	const struct sp_func *f = func_of(h, r->sym_id);

	if (!f || !f->is_async || !r->obj)
		return -2;
	for (size_t k = 1; k <= n_nested; k++) {
		struct onode *s = &o->v[k];

		if (s->dropped || s->addr != r->obj || !s->fn || strcmp(s->fn, f->demangled) != 0 ||
		    s->rec.begin_ns > r->begin_ns || r->end_ns > s->rec.end_ns)
			continue;
		s->dropped = true;
		o->v[x].ndepth = s->ndepth;
		for (size_t i = 1; i <= n_nested; i++)
			if (o->v[i].parent == (int)k)
				o->v[i].parent = x;
		h->st.nested_spans--;
		return s->parent;
	}
	return -2;
}

/* The records of a group (kernel keys), the first under `top`. */
static int add_group(struct sp_held *h, struct out *o, const struct group *g,
		     uint64_t carrier_key, size_t n_nested, const struct sp_nested_run *run,
		     int top_parent)
{
	size_t from = o->n;
	int same;

	for (size_t i = 0; i < g->n; i++)
		if (out_add(o, &g->recs[i], -1) < 0)
			return -1;
	for (size_t i = from; i < o->n; i++) {
		struct onode *x = &o->v[i];

		if (x->rec.key == g->qkey)
			x->parent = top_parent;
		else if (x->rec.parent_key == carrier_key &&
			 (same = same_future(h, o, n_nested, (int)i)) != -2)
			x->parent = same;
		else if (x->rec.parent_key == carrier_key)
			x->parent = reparent(h, o, n_nested, run, &x->rec);
		else if ((x->parent = out_find_key(o, from, o->n, x->rec.parent_key)) < 0)
			x->parent = top_parent >= 0 ? top_parent : 0;
	}
	return 0;
}

/* Whether span i will be in some query: it or an ancestor may be a root. */
static bool in_a_query(const struct out *o, int i)
{
	for (int guard = 0; i >= 0 && guard < 4096; i = o->v[i].parent, guard++)
		if (o->v[i].can_root)
			return true;
	return false;
}

/* Spawned tasks whose JoinHandle this carrier held while they ran, under
 * a span that is in a query (else they stay queries of their own). */
static int claim_tasks(struct sp_held *h, struct out *o, size_t n_nested,
		       const struct sp_nested_run *run, uint64_t carrier_key)
{
	for (size_t i = 0; i < h->n_tasks;) {
		struct group *g = &h->tasks[i];
		const struct sp_span_rec *r = &g->recs[g->n - 1];
		const struct sp_func *f = func_of(h, r->sym_id);
		int holder = f ? sp_nested_run_holder(run, SP_ANODE_JOIN_HANDLE,
						      r->obj - f->task_cell_off,
						      r->begin_ns, r->end_ns) : -2;

		if (holder < -1 || !in_a_query(o, holder >= 0 ? 1 + holder : 0)) {
			i++;
			continue;
		}
		if (add_group(h, o, g, carrier_key, n_nested, run, holder >= 0 ? 1 + holder : 0))
			return -1;
		h->st.linked_tasks++;
		group_free(g);
		remove_at(h->tasks, &h->n_tasks, i, sizeof(*h->tasks));
	}
	return 0;
}

/* Each span's query: its outermost ancestor (itself included) that may
 * be a root. */
static void assign_queries(struct out *o)
{
	for (size_t i = 0; i < o->n; i++) {
		int q = -1, guard = 0;

		for (int k = (int)i; k >= 0 && guard++ < 4096; k = o->v[k].parent)
			if (o->v[k].can_root)
				q = k;
		o->v[i].query = o->v[i].dropped ? -1 : q;
	}
}

static int depth_in(const struct out *o, int i, int q)
{
	int d = 0;

	while (i != q && i >= 0 && d < 4096) {
		i = o->v[i].parent;
		d++;
	}
	return d;
}

/* One query to the assembler: its spans, then its root. */
static void emit_query(struct sp_held *h, struct out *o, int q, uint16_t root_flags)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < o->n; i++) {
			struct onode *x = &o->v[i];
			struct sp_span_rec r = x->rec;
			bool is_root = (int)i == q;

			if (x->query != q || is_root != (pass == 1))
				continue;
			r.query_key = o->v[q].rec.key;
			r.parent_key = is_root ? 0 : o->v[x->parent].rec.key;
			r.depth = (__u16)depth_in(o, (int)i, q);
			r.flags &= (__u16)~SP_REC_ROOT;
			if (is_root)
				r.flags |= SP_REC_ROOT | root_flags;
			if (x->caps) {
				sp_asm_put_caps(h->a, r.key, x->caps);
				x->caps = NULL;
			}
			sp_asm_record_unc(h->a, &r, x->unc_lo, x->unc_hi);
		}
	}
}

static void emit_all(struct sp_held *h, struct out *o, uint16_t root_flags)
{
	assign_queries(o);
	for (size_t i = 0; i < o->n; i++) {
		if (o->v[i].dropped)
			continue;
		if (o->v[i].query < 0)
			h->st.outside++;
		else if (o->v[i].query == (int)i)
			emit_query(h, o, (int)i, root_flags);
	}
}

/* Builds and emits the queries of a carrier from its spans so far:
 * `root` is its own record (at its end), or a stand-in at a quiet
 * point; g holds the other records of its held query. */
static void rebuild(struct sp_held *h, const struct sp_func *f, const struct sp_span_rec *root,
		    const struct group *g, struct run *run)
{
	struct out o = { 0 };
	size_t n_nested;
	int c;

	if ((c = out_add(&o, root, -1)) < 0)
		goto out;
	o.v[c].can_root = f->pattern >= 0 && f->role == SP_ROLE_ROOT;
	if (run && add_nested(h, &o, &run->nr, root))
		goto out;
	n_nested = o.n - 1;
	if (add_group(h, &o, g, root->key, n_nested, run ? &run->nr : NULL, 0) ||
	    (run && claim_tasks(h, &o, n_nested, &run->nr, root->key)))
		goto out;
	emit_all(h, &o, root->flags & SP_REC_INCOMPLETE);
out:
	out_free(&o);
}

/* A carrier future is over: its query (or queries) can be built. */
static void carrier_done(struct sp_held *h, const struct sp_func *f, struct group *g)
{
	const struct sp_span_rec *root = &g->recs[g->n - 1];
	size_t idx = 0;
	struct run *run = run_find(h, root->key, &idx);

	if (run)
		sp_nested_run_end(&run->nr, root->end_ns, root->flags & SP_REC_ABNORMAL);
	/* the carrier's own record goes first: the group's others follow */
	g->n--;
	rebuild(h, f, root, g, run);
	if (run)
		run_drop(h, idx);
}

/*
 * A long-lived carrier (a connection's task serving request after
 * request) must not hold its queries until it returns. Whenever none of
 * its named futures is live, everything seen so far is complete: the
 * queries whose roots ended are emitted, the rest is outside any query,
 * and the run and the held records start afresh. Not when the carrier
 * itself is the query: that one ends with it.
 */
static void carrier_quiet(struct sp_held *h, const struct sp_func *f, struct run *run,
			  uint32_t tid)
{
	struct sp_span_rec stand_in = { .kind = SP_RK_SPAN, .key = run->fut_key,
					.query_key = run->fut_key, .tid = tid };
	struct group none = { 0 }, *g = &none;
	size_t gi;

	if (!run->nr.n_spans || (f->pattern >= 0 && f->role == SP_ROLE_ROOT) ||
	    !(run->fut_key & SP_KEY_HELD))
		return;
	for (size_t i = 0; i < run->nr.plan->n; i++)
		if (run->nr.cur[i] >= 0)
			return;
	for (size_t i = h->n_groups; i-- > 0;)
		if (h->groups[i].qkey == run->fut_key)
			g = &h->groups[i];
	stand_in.sym_id = (uint32_t)(f - h->funcs->v);
	stand_in.begin_ns = stand_in.end_ns = run->nr.last_ns;
	rebuild(h, f, &stand_in, g, run);
	if (g != &none) {
		gi = (size_t)(g - h->groups);
		group_free(g);
		remove_at(h->groups, &h->n_groups, gi, sizeof(*h->groups));
	}
	sp_nested_run_reset(&run->nr);
}

/* As the kernel sent it: a query of its own. */
static void emit_plain(struct sp_held *h, const struct group *g)
{
	for (size_t i = 0; i < g->n; i++)
		sp_asm_record(h->a, &g->recs[i]);
}

static void root_arrived(struct sp_held *h, struct group *g)
{
	const struct sp_func *f = func_of(h, g->recs[g->n - 1].sym_id);

	if (f && f->nested) {
		carrier_done(h, f, g);
	} else if (f && f->spawned && f->is_async &&
		   !sp_grow((void **)&h->tasks, &h->cap_tasks, h->n_tasks, sizeof(*h->tasks))) {
		h->tasks[h->n_tasks++] = *g; /* ownership moves */
		return;
	} else {
		emit_plain(h, g);
	}
	group_free(g);
}

/* -------------------------------------------------------------- groups */

static struct group *group_get(struct sp_held *h, uint64_t qkey, size_t *idx)
{
	for (size_t i = h->n_groups; i-- > 0;)
		if (h->groups[i].qkey == qkey) {
			*idx = i;
			return &h->groups[i];
		}
	if (h->n_groups == SP_HELD_MAX) {
		group_free(&h->groups[0]);
		remove_at(h->groups, &h->n_groups, 0, sizeof(*h->groups));
		h->st.lost++;
	}
	if (sp_grow((void **)&h->groups, &h->cap_groups, h->n_groups, sizeof(*h->groups)))
		return NULL;
	*idx = h->n_groups;
	memset(&h->groups[h->n_groups], 0, sizeof(*h->groups));
	h->groups[h->n_groups].qkey = qkey;
	return &h->groups[h->n_groups++];
}

void sp_held_span(struct sp_held *h, const struct sp_span_rec *r)
{
	struct group *g, done;
	size_t idx;

	if (!(r->query_key & SP_KEY_HELD)) {
		const struct sp_func *f = func_of(h, r->sym_id);
		size_t i;

		/* a carrier polled under another traced call is an ordinary
		 * span of that call's query: its reads are of no use */
		if (f && f->nested && run_find(h, r->key, &i))
			run_drop(h, i);
		sp_asm_record(h->a, r);
		return;
	}
	g = group_get(h, r->query_key, &idx);
	if (!g || sp_grow((void **)&g->recs, &g->cap, g->n, sizeof(*g->recs)))
		return;
	g->recs[g->n++] = *r;
	if (r->key != r->query_key)
		return;
	done = *g;
	remove_at(h->groups, &h->n_groups, idx, sizeof(*h->groups));
	root_arrived(h, &done);
}

/* Whether an open carrier holds the JoinHandle of this spawned task. */
static bool claimable(const struct sp_held *h, const struct group *g)
{
	const struct sp_span_rec *r = &g->recs[g->n - 1];
	const struct sp_func *f = func_of(h, r->sym_id);

	for (size_t i = 0; f && i < h->n_runs; i++)
		if (sp_nested_run_holder(&h->runs[i].nr, SP_ANODE_JOIN_HANDLE,
					 r->obj - f->task_cell_off, r->begin_ns, r->end_ns) >= -1)
			return true;
	return false;
}

static void release_task(struct sp_held *h, size_t i)
{
	h->st.own_root_tasks++;
	emit_plain(h, &h->tasks[i]);
	group_free(&h->tasks[i]);
	remove_at(h->tasks, &h->n_tasks, i, sizeof(*h->tasks));
}

void sp_held_tick(struct sp_held *h, uint64_t now_ns)
{
	for (size_t i = 0; i < h->n_tasks;) {
		uint64_t end = h->tasks[i].recs[h->tasks[i].n - 1].end_ns;
		uint64_t age = now_ns > end ? now_ns - end : 0;

		/* a carrier still running may claim it when it ends, but not
		 * forever: it may have been cancelled */
		if (age > h->hold_ns && (!claimable(h, &h->tasks[i]) || age > 60 * h->hold_ns))
			release_task(h, i);
		else
			i++;
	}
}

void sp_held_flush(struct sp_held *h, struct sp_span_rec *recs, size_t n)
{
	sp_asm_sort_flush(recs, n);
	for (size_t i = 0; i < n; i++)
		sp_held_span(h, &recs[i]);
	while (h->n_tasks)
		release_task(h, 0);
	h->st.lost += h->n_groups;
	while (h->n_groups) {
		group_free(&h->groups[h->n_groups - 1]);
		h->n_groups--;
	}
}

const struct sp_held_stats *sp_held_stats(const struct sp_held *h)
{
	return &h->st;
}

void sp_held_free(struct sp_held *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_groups; i++)
		group_free(&h->groups[i]);
	for (size_t i = 0; i < h->n_tasks; i++)
		group_free(&h->tasks[i]);
	for (size_t i = 0; i < h->n_runs; i++)
		sp_nested_run_free(&h->runs[i].nr);
	free(h->groups);
	free(h->tasks);
	free(h->runs);
	free(h);
}
