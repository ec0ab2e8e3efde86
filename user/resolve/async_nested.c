/*
 * Nested async spans: the read plan of a carrier poll and the replay of
 * its reads into spans (see async_nested.h).
 */
#include <stdlib.h>
#include <string.h>
#include "resolve/async_nested.h"
#include "resolve/async_resolve.h"

/* -1 when no pattern names it; SP_ROLE_ROOT wins over SP_ROLE_SPAN. */
static int node_role(const struct sp_async_info *info, const struct sp_async_node *n,
		     struct sp_pattern_list *pats)
{
	const struct sp_async_known *k = info ? sp_async_find_known(info, n->name) : NULL;
	int role = -1;

	if (n->kind != SP_ANODE_COROUTINE || (k && !k->n_suspend))
		return -1;
	for (size_t i = 0; pats && i < pats->n; i++) {
		if (!sp_async_name_matches(pats->v[i].glob, n->name))
			continue;
		pats->v[i].matches++;
		if ((int)pats->v[i].role > role)
			role = (int)pats->v[i].role;
	}
	return role;
}

/* `args` on a pattern that names it. */
static bool node_wants_args(const struct sp_async_node *n, const struct sp_pattern_list *pats)
{
	for (size_t i = 0; pats && i < pats->n; i++)
		if (pats->v[i].want_args && sp_async_name_matches(pats->v[i].glob, n->name))
			return true;
	return false;
}

static bool is_ptr(enum sp_async_node_kind k)
{
	return k == SP_ANODE_JOIN_HANDLE || k == SP_ANODE_DYN_BOX;
}


/* Which of p's nodes to read: the named coroutines and the pointers, and
 * every ancestor whose value their validity depends on. */
static bool choose_nodes(const struct sp_async_poll *p, const int *role, bool want_handles,
			 bool *keep)
{
	bool named = false, handles = false;

	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct sp_async_node *n = &p->nodes[i];

		named |= n->kind == SP_ANODE_COROUTINE && role[i] >= 0;
		handles |= n->kind == SP_ANODE_JOIN_HANDLE && want_handles;
	}
	if (!named && !handles)
		return false;
	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct sp_async_node *n = &p->nodes[i];

		keep[i] = (n->kind == SP_ANODE_COROUTINE && role[i] >= 0) ||
			  (n->kind == SP_ANODE_JOIN_HANDLE && want_handles) ||
			  (n->kind == SP_ANODE_DYN_BOX && named);
	}
	/* children come after their parents: walk back up */
	for (size_t i = p->n_nodes; i-- > 0;)
		if (keep[i] && p->nodes[i].parent >= 0)
			keep[p->nodes[i].parent] = true;
	return true;
}

/* base: 0 for the carrier's self, else 1 + the read of the pointer
 * (bpf/spanprobe.h, struct sp_read). */
static uint32_t add_read(struct sp_nested_plan *pl, uint32_t off, uint32_t size, uint32_t base)
{
	pl->reads[pl->n_reads] = (struct sp_read){ .off = off, .size = size > 8 ? 8 : size,
						   .base = (__u16)base };
	return pl->n_reads++;
}

/* The read base of what lies in the pointee of plan node box - 1. */
static uint32_t box_base(const struct sp_nested_plan *pl, uint32_t box)
{
	return box ? pl->nodes[box - 1].val + 1 : 0;
}

static int copy_node(struct sp_nested_node *d, const struct sp_async_node *s, int parent,
		     int role, uint32_t val)
{
	d->name = strdup(s->name ? s->name : "?");
	d->parent = parent;
	d->kind = s->kind;
	d->n_guard = s->n_guard;
	d->guard_negate = s->guard_negate;
	d->guard = malloc((s->n_guard ? s->n_guard : 1) * sizeof(*d->guard));
	if (!d->name || !d->guard)
		return -1;
	if (s->n_guard)
		memcpy(d->guard, s->guard, s->n_guard * sizeof(*d->guard));
	d->val = val;
	d->role = s->kind == SP_ANODE_COROUTINE ? role : -1;
	d->base = s->base;
	return 0;
}

/* The locals d's parent holds across its await, 8 bytes a read, in the
 * parent's space (its own may be behind a Box the parent holds). */
static void add_held(struct sp_nested_plan *pl, const struct sp_async_node *n,
		     struct sp_nested_node *d)
{
	uint32_t box = d->parent >= 0 ? pl->nodes[d->parent].box : 0;

	d->held0 = pl->n_reads;
	for (size_t k = 0; k < n->n_held; k++) {
		for (uint32_t o = 0; o < n->held[k].size; o += 8) {
			if (pl->n_reads == SP_NESTED_MAX) {
				pl->truncated = true;
				d->weak_id = true;
				return;
			}
			add_read(pl, n->held[k].off + o, n->held[k].size - o, box_base(pl, box));
			d->n_held++;
		}
	}
}

/* Nodes first (they are what the spans are made of), fingerprints with
 * the room left. */
static int fill_plan(struct sp_nested_plan *pl, const struct sp_async_poll *p, const int *role,
		     const bool *keep, int *map)
{
	add_read(pl, p->state_off, p->state_size, 0);
	pl->plain = p->plain;
	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct sp_async_node *n = &p->nodes[i];
		int parent = n->parent >= 0 ? map[n->parent] : -1;
		int space = n->space >= 0 ? map[n->space] : -1;

		map[i] = -1;
		if (!keep[i])
			continue;
		if (pl->n_reads == SP_NESTED_MAX || (n->parent >= 0 && parent < 0) ||
		    (n->space >= 0 && space < 0)) {
			pl->truncated = true;
			continue;
		}
		if (copy_node(&pl->nodes[pl->n], n, parent, role[i],
			      add_read(pl, n->off, n->size,
				       space < 0 ? 0 : box_base(pl, (uint32_t)space + 1))))
			return -1;
		pl->nodes[pl->n].box = space < 0 ? 0 : (uint32_t)space + 1;
		map[i] = (int)pl->n++;
	}
	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct sp_async_node *n = &p->nodes[i];
		struct sp_nested_node *d;

		if (map[i] < 0 || (d = &pl->nodes[map[i]])->role < 0)
			continue;
		d->arg0 = pl->n_reads;
		for (size_t k = 0; k < n->n_args; k++) {
			if (!n->args[k].size)
				continue;
			if (pl->n_reads == SP_NESTED_MAX) {
				pl->truncated = true;
				d->weak_id = true;
				break;
			}
			add_read(pl, n->args[k].off, n->args[k].size, box_base(pl, d->box));
			if (d->n_args < 4) {
				struct sp_nested_arg *a = &d->argd[d->n_args];

				a->name = n->args[k].name ? strdup(n->args[k].name) : NULL;
				a->is_int = n->args[k].show == SP_AFIELD_INT && a->name;
				a->is_signed = n->args[k].is_signed;
				a->size = n->args[k].int_size;
				a->show = a->name ? n->args[k].show : SP_AFIELD_NONE;
				a->off = n->args[k].off;
				a->ptr_off = n->args[k].ptr_off;
				a->len_off = n->args[k].len_off;
			}
			d->n_args++;
		}
		add_held(pl, n, d);
		d->weak_id |= !d->n_args && !d->n_held && !d->box;
	}
	return 0;
}

/* `args` of a nested async fn, after every fingerprint (those tell
 * instances apart, they come first): the length word of a slice, Vec or
 * string, and the first bytes of a string's text through its pointer (a
 * hop: a list with one has no bulk copies, nested_ranges.c). What finds
 * no room stays SP_NESTED_NO_READ, shown unreadable. */
static void add_arg_reads(struct sp_nested_plan *pl, struct sp_nested_node *d)
{
	uint32_t base = box_base(pl, d->box);

	for (uint32_t k = 0; k < 4; k++) {
		struct sp_nested_arg *a = &d->argd[k];
		uint32_t ptr = SP_NESTED_NO_READ;

		a->len_read = a->str0 = SP_NESTED_NO_READ;
		if (k >= d->n_args || (a->show != SP_AFIELD_LEN && a->show != SP_AFIELD_STR))
			continue;
		/* the fingerprint read holds the field's first 8 bytes */
		if (a->len_off == 0)
			a->len_read = d->arg0 + k;
		else if (pl->n_reads < SP_NESTED_MAX)
			a->len_read = add_read(pl, a->off + a->len_off, 8, base);
		if (a->show != SP_AFIELD_STR)
			continue;
		if (a->ptr_off == 0)
			ptr = d->arg0 + k;
		else if (pl->n_reads < SP_NESTED_MAX)
			ptr = add_read(pl, a->off + a->ptr_off, 8, base);
		if (ptr == SP_NESTED_NO_READ || pl->n_reads + SP_NESTED_STR_READS > SP_NESTED_MAX)
			continue;
		a->str0 = pl->n_reads;
		for (uint32_t j = 0; j < SP_NESTED_STR_READS; j++)
			add_read(pl, 8 * j, 8, ptr + 1);
	}
}

struct sp_nested_plan *sp_nested_plan_new(const struct sp_async_info *info,
					  const struct sp_async_poll *p,
					  struct sp_pattern_list *pats,
					  bool want_handles)
{
	size_t nn = p->n_nodes ? p->n_nodes : 1;
	int *role = calloc(nn, sizeof(*role)), *map = calloc(nn, sizeof(*map));
	bool *keep = calloc(nn, sizeof(*keep));
	struct sp_nested_plan *pl = NULL;

	if (!role || !map || !keep || !p->n_nodes || (!p->state_size && !p->plain))
		goto out;
	for (size_t i = 0; i < p->n_nodes; i++)
		role[i] = node_role(info, &p->nodes[i], pats);
	if (!choose_nodes(p, role, want_handles, keep))
		goto out;
	pl = calloc(1, sizeof(*pl));
	if (!pl || !(pl->nodes = calloc(nn, sizeof(*pl->nodes))) ||
	    fill_plan(pl, p, role, keep, map)) {
		sp_nested_plan_free(pl);
		pl = NULL;
	}
	for (size_t i = 0; pl && i < p->n_nodes; i++)
		if (map[i] >= 0)
			pl->nodes[map[i]].want_args = node_wants_args(&p->nodes[i], pats);
	for (size_t i = 0; pl && i < pl->n; i++)
		if (pl->nodes[i].want_args)
			add_arg_reads(pl, &pl->nodes[i]);
out:
	free(role);
	free(map);
	free(keep);
	return pl;
}

void sp_nested_plan_free(struct sp_nested_plan *pl)
{
	if (!pl)
		return;
	for (size_t i = 0; pl->nodes && i < pl->n; i++) {
		free(pl->nodes[i].name);
		free(pl->nodes[i].guard);
		for (int k = 0; k < 4; k++)
			free(pl->nodes[i].argd[k].name);
	}
	free(pl->nodes);
	free(pl);
}

size_t sp_nested_plan_named(const struct sp_nested_plan *pl)
{
	size_t k = 0;

	for (size_t i = 0; pl && i < pl->n; i++)
		k += pl->nodes[i].role >= 0;
	return k;
}

int sp_nested_run_init(struct sp_nested_run *r, const struct sp_nested_plan *pl)
{
	size_t n = pl->n ? pl->n : 1;

	memset(r, 0, sizeof(*r));
	r->plan = pl;
	r->cur = malloc(n * sizeof(*r->cur));
	r->last_ptr = malloc(n * sizeof(*r->last_ptr));
	r->fp = calloc(n, sizeof(*r->fp));
	r->value = calloc(n, sizeof(*r->value));
	r->active = calloc(n, sizeof(*r->active));
	r->live_ns = calloc(n, sizeof(*r->live_ns));
	r->ran = calloc(n, sizeof(*r->ran));
	r->seen_ns = calloc(n, sizeof(*r->seen_ns));
	r->seen_fp = calloc(n, sizeof(*r->seen_fp));
	if (!r->cur || !r->last_ptr || !r->fp || !r->value || !r->active || !r->live_ns ||
	    !r->ran || !r->seen_ns || !r->seen_fp) {
		sp_nested_run_free(r);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		r->cur[i] = r->last_ptr[i] = -1;
	return 0;
}

void sp_nested_run_free(struct sp_nested_run *r)
{
	free(r->spans);
	free(r->ptrs);
	free(r->cur);
	free(r->fp);
	free(r->last_ptr);
	free(r->value);
	free(r->active);
	free(r->live_ns);
	free(r->ran);
	free(r->seen_ns);
	free(r->seen_fp);
	memset(r, 0, sizeof(*r));
}

void sp_nested_run_reset(struct sp_nested_run *r)
{
	r->n_spans = 0;
	r->n_ptrs = 0;
	r->n_tentative = 0;
	for (size_t i = 0; i < r->plan->n; i++)
		r->last_ptr[i] = -1;
}

static bool guard_holds(const struct sp_nested_node *n, uint64_t parent_value)
{
	struct sp_async_node tmp = { .guard = n->guard, .n_guard = n->n_guard,
				     .guard_negate = n->guard_negate };

	return sp_async_guard_holds(&tmp, parent_value);
}

static uint64_t mix(uint64_t h, uint64_t x)
{
	for (int b = 0; b < 8; b++)
		h = (h ^ ((x >> (8 * b)) & 0xff)) * 1099511628211ull;
	return h;
}

/* An instance's identity: its arguments, the locals its parent holds
 * across its await (a loop's iterator), and the pointers it is reached
 * through (a Box that now points elsewhere holds another future). */
static uint64_t fingerprint(const struct sp_nested_run *r, const struct sp_nested_node *n,
			    const uint64_t *v, uint32_t nv)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t k = 0; k < n->n_args; k++)
		h = mix(h, n->arg0 + k < nv ? v[n->arg0 + k] : 0);
	for (uint32_t k = 0; k < n->n_held; k++)
		h = mix(h, n->held0 + k < nv ? v[n->held0 + k] : 0);
	for (uint32_t b = n->box; b; b = r->plan->nodes[b - 1].box)
		h = mix(h, r->value[b - 1]);
	return h;
}

/* Where node i's object is now: in the carrier's future, or behind the
 * pointer of its space. */
static uint64_t address_of(const struct sp_nested_run *r, int i)
{
	const struct sp_nested_node *n = &r->plan->nodes[i];
	uint64_t from = n->box ? r->value[n->box - 1] : r->obj;

	return from ? from + n->base : 0;
}

/* The open span of i's nearest named ancestor; -1: the carrier. */
static int owner_of(const struct sp_nested_run *r, int i)
{
	for (int p = r->plan->nodes[i].parent; p >= 0; p = r->plan->nodes[p].parent)
		if (r->plan->nodes[p].role >= 0 && r->cur[p] >= 0)
			return r->cur[p];
	return -1;
}

static int open_span(struct sp_nested_run *r, int i, uint64_t lo, uint64_t hi, bool partial,
		     const uint64_t *v, uint32_t nv)
{
	const struct sp_nested_node *n = &r->plan->nodes[i];
	struct sp_nested_span *s;

	if (r->n_spans == r->cap_spans) {
		size_t cap = r->cap_spans ? r->cap_spans * 2 : 16;

		s = realloc(r->spans, cap * sizeof(*s));
		if (!s)
			return -1;
		r->spans = s;
		r->cap_spans = cap;
	}
	s = &r->spans[r->n_spans];
	memset(s, 0, sizeof(*s));
	s->node = (uint32_t)i;
	s->parent = owner_of(r, i);
	/* attached mid-flight: its begin is unknown, not this read */
	s->begin_ns = partial ? hi : lo;
	s->unc_lo_ns = partial ? 0 : hi - lo;
	s->flags = partial ? SP_REC_PARTIAL : 0;
	/* never a plain span for what may be several instances */
	if (r->plan->nodes[i].weak_id)
		s->flags |= SP_REC_MERGED;
	s->open = true;
	s->addr = address_of(r, i);
	s->tid = r->tid;
	/* an async fn's arguments stay in place for the future's life */
	for (uint32_t k = 0; k < n->n_args && k < 4; k++) {
		const struct sp_nested_arg *a = &n->argd[k];

		s->argv[k] = n->arg0 + k < nv ? v[n->arg0 + k] : 0;
		s->lenv[k] = a->len_read < nv ? v[a->len_read] : 0;
		for (uint32_t j = 0; j < SP_NESTED_STR_READS; j++)
			s->strv[k][j] = a->str0 != SP_NESTED_NO_READ && a->str0 + j < nv ?
						 v[a->str0 + j] : 0;
	}
	r->cur[i] = (int)r->n_spans++;
	return 0;
}

static void close_span(struct sp_nested_run *r, int i, uint64_t lo, uint64_t hi, uint32_t flags)
{
	struct sp_nested_span *s = &r->spans[r->cur[i]];

	s->end_ns = hi;
	s->unc_hi_ns = hi - lo;
	s->flags |= flags;
	s->open = false;
	r->cur[i] = -1;
}

static int see_ptr(struct sp_nested_run *r, int i, uint64_t lo, uint64_t hi)
{
	struct sp_nested_ptr *p;

	if (!r->active[i] || !r->value[i]) {
		r->last_ptr[i] = -1;
		return 0;
	}
	if (r->last_ptr[i] >= 0 && r->ptrs[r->last_ptr[i]].value == r->value[i]) {
		p = &r->ptrs[r->last_ptr[i]];
		p->last_ns = hi;
		if (p->mid_owner && !r->mid) {
			p->owner = owner_of(r, i);
			p->mid_owner = false;
		}
		return 0;
	}
	if (r->n_ptrs == r->cap_ptrs) {
		size_t cap = r->cap_ptrs ? r->cap_ptrs * 2 : 8;

		p = realloc(r->ptrs, cap * sizeof(*p));
		if (!p)
			return -1;
		r->ptrs = p;
		r->cap_ptrs = cap;
	}
	r->ptrs[r->n_ptrs] = (struct sp_nested_ptr){
		.node = (uint32_t)i, .kind = r->plan->nodes[i].kind, .value = r->value[i],
		.first_ns = lo, .last_ns = hi, .owner = owner_of(r, i), .mid_owner = r->mid,
	};
	r->last_ptr[i] = (int)r->n_ptrs++;
	return 0;
}

/* The earliest a future first seen live in this read can have begun.
 * Its end shows in its own state (Returned) at the next read; its begin,
 * when its parent is a coroutine, only once the parent suspends on it,
 * which the parent records at the end of its poll: reads made in between
 * (lo) still show the parent's previous state while the future already
 * runs. It began in this carrier poll, after its slot's previous
 * instance was last seen live. */
static bool may_lag(const struct sp_nested_run *r, int i)
{
	/* an enum's tag or a pointer (hyper's in_flight = Some(future)) is
	 * written before the future is first polled: no lag of its own; but
	 * a coroutine further up (query_execution above join!'s MaybeDone)
	 * shows the enum only once it suspends on it */
	for (int p = r->plan->nodes[i].parent; p >= 0; p = r->plan->nodes[p].parent)
		if (r->plan->nodes[p].kind == SP_ANODE_COROUTINE)
			return true;
	return !r->plan->plain;
}

static uint64_t begin_lo(const struct sp_nested_run *r, int i, uint64_t lo, uint64_t fp)
{
	uint64_t b;

	if (!r->poll_ns || !may_lag(r, i))
		return lo;
	b = r->poll_ns > r->live_ns[i] ? r->poll_ns : r->live_ns[i];
	/* a read that saw another instance in the slot: this one came after */
	if (r->seen_fp[i] != fp && r->seen_ns[i] > b)
		b = r->seen_ns[i];
	return b < lo ? b : lo;
}

/* One named future in one read: the open instance ends when the future
 * is no longer live or is another instance (new fingerprint); a live one
 * without an open instance begins. */
static int step_named(struct sp_nested_run *r, int i, const uint64_t *v, uint32_t nv,
		      uint64_t lo, uint64_t hi, bool partial, bool entry)
{
	const struct sp_nested_node *n = &r->plan->nodes[i];
	uint64_t st = r->value[i], fp = fingerprint(r, n, v, nv);
	bool live = r->active[i] && st != 1 && st != 2;
	/* Unresumed again after it ran: the slot holds a new future */
	bool reborn = st == 0 && r->cur[i] >= 0 && r->ran[i];

	if (r->cur[i] >= 0 && (!live || fp != r->fp[i] || reborn))
		close_span(r, i, lo, hi, r->active[i] && st == 2 ? SP_REC_ABNORMAL : 0);
	/* Unresumed at a poll's entry, where states are up to date: its body
	 * has not run, it begins in this poll, not since the previous read
	 * (a plain carrier, tower's Map around hyper's service_fn future, is
	 * entered first for the poll that starts it) */
	if (live && st == 0 && entry && !r->mid) {
		lo = hi;
		partial = false;
	}
	/* Inside a poll a parent's state lags its code: its next await's
	 * future, or what it builds in a slot it left, would pass for this
	 * node's. Instances begin for sure only at a poll's entry or exit,
	 * where the parent's state is up to date. Inside a poll, another
	 * instance than the last (a loop's next iteration, which may also
	 * end before the poll does: a thread preempted inside the poll past
	 * a timer's deadline) begins tentatively: the next read at the
	 * poll's entry or exit keeps it if the node is still valid there
	 * (decide_tentative). */
	if (live && r->cur[i] < 0 && (!r->mid || fp != r->fp[i])) {
		if (open_span(r, i, begin_lo(r, i, lo, fp), hi, partial && !r->mid, v, nv))
			return -1;
		r->fp[i] = fp;
		r->ran[i] = false;
		if (r->mid) {
			r->spans[r->cur[i]].tentative = true;
			r->n_tentative++;
		}
	}
	if (live) {
		r->seen_ns[i] = hi;
		r->seen_fp[i] = fp;
	}
	if (live && r->cur[i] >= 0 && st != 0)
		r->ran[i] = true;
	if (live && r->cur[i] >= 0)
		r->live_ns[i] = hi;
	return 0;
}

/* A tentative span that was other bytes: its children go to its parent,
 * and it is never emitted. */
static void drop_span(struct sp_nested_run *r, int k)
{
	struct sp_nested_span *s = &r->spans[k];

	if (s->open)
		r->cur[s->node] = -1;
	s->open = false;
	s->gone = true;
	for (size_t j = 0; j < r->n_spans; j++)
		if (r->spans[j].parent == k)
			r->spans[j].parent = s->parent;
	for (size_t j = 0; j < r->n_ptrs; j++)
		if (r->ptrs[j].owner == k)
			r->ptrs[j].owner = s->parent;
}

/* At a read at a poll's entry or exit (states up to date): a tentative
 * instance is real when its node is valid, its parent still at that
 * await; else the read inside the poll saw another future's bytes. */
static void decide_tentative(struct sp_nested_run *r)
{
	for (size_t k = 0; r->n_tentative && k < r->n_spans; k++) {
		struct sp_nested_span *s = &r->spans[k];

		if (!s->tentative)
			continue;
		s->tentative = false;
		r->n_tentative--;
		if (!r->active[s->node])
			drop_span(r, (int)k);
	}
}

int sp_nested_run_feed(struct sp_nested_run *r, uint64_t entry_ns, uint64_t exit_ns,
		       const uint64_t *v, uint32_t nv)
{
	const struct sp_nested_plan *pl = r->plan;
	/* a change seen at an exit happened during that poll; one seen at an
	 * entry, while the future was not polled since the previous read */
	uint64_t hi = exit_ns ? exit_ns : entry_ns;
	uint64_t lo = exit_ns || !r->reads ? entry_ns : r->last_ns;
	/* the first read of a future first polled before attach (its state
	 * is not Unresumed): what is live then began earlier */
	bool partial = !r->reads && (exit_ns || (nv && v[0] != 0) || pl->plain);
	/* a read at the carrier poll's entry: its window reaches back to the
	 * previous read, its values are those at the entry (hi) */
	bool entry = !r->mid && (!exit_ns || (r->poll_ns && exit_ns == r->poll_ns));

	if (r->ended)
		return 0;
	if (lo > hi)
		lo = hi;
	for (size_t i = 0; i < pl->n; i++) {
		const struct sp_nested_node *n = &pl->nodes[i];
		uint64_t pv = n->parent < 0 ? (nv ? v[0] : 0) : r->value[n->parent];
		bool pa = n->parent < 0 || r->active[n->parent];

		r->value[i] = n->val < nv ? v[n->val] : 0;
		r->active[i] = pa && guard_holds(n, pv);
		if (n->role >= 0 && step_named(r, (int)i, v, nv, lo, hi, partial, entry))
			return -1;
		if (is_ptr(n->kind) && see_ptr(r, (int)i, lo, hi))
			return -1;
	}
	if (!r->mid)
		decide_tentative(r);
	r->last_ns = hi;
	r->reads++;
	return 0;
}

void sp_nested_run_end(struct sp_nested_run *r, uint64_t end_ns, bool abnormal)
{
	uint64_t lo = r->reads && r->last_ns < end_ns ? r->last_ns : end_ns;

	if (r->ended)
		return;
	for (size_t i = 0; i < r->plan->n; i++)
		if (r->cur[i] >= 0)
			close_span(r, (int)i, lo, end_ns, abnormal ? SP_REC_ABNORMAL : 0);
	r->ended = true;
}

int sp_nested_run_holder(const struct sp_nested_run *r, enum sp_async_node_kind kind,
			 uint64_t value, uint64_t begin_ns, uint64_t end_ns)
{
	for (size_t i = 0; i < r->n_ptrs; i++) {
		const struct sp_nested_ptr *p = &r->ptrs[i];

		if (p->kind == kind && p->value == value && p->first_ns <= end_ns &&
		    p->last_ns >= begin_ns)
			return p->owner;
	}
	return -2;
}
