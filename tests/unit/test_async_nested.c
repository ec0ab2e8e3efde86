/*
 * Nested async spans (user/resolve/async_nested.c) from synthetic reads: the
 * derivation rules, each on the smallest read sequence that shows it.
 *
 * The plan below mirrors the shape of the rsqserver fixture's task root:
 *   carrier state (read 0)
 *   [0] eq  coroutine, valid while the carrier is in 3      named root
 *   [1] pb  coroutine, valid while eq is in 4 (a loop)     named, arg i
 *   [2] md  MaybeDone tag of join!, valid while eq is in 5
 *   [3] fs  coroutine inside md, valid while md's tag is 0 named
 *   [4] jh  JoinHandle, valid while eq is in 4 or 5
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "resolve/async_nested.h"

enum { R_ROOT, R_EQ, R_PB, R_MD, R_FS, R_JH, R_ARG_I, N_READS };
enum { EQ, PB, MD, FS, JH, N_NODES };

static struct sp_async_range g3 = { 3, 3 }, g4 = { 4, 4 }, g5 = { 5, 5 }, g0 = { 0, 0 },
			     g45 = { 4, 5 };

static struct sp_nested_node nodes[N_NODES] = {
	[EQ] = { "eq", -1, SP_ANODE_COROUTINE, &g3, 1, false, R_EQ, 0, 0, SP_ROLE_ROOT, 0, 0, 0, 0, 0, false, { { 0 } }, false },
	[PB] = { "pb", EQ, SP_ANODE_COROUTINE, &g4, 1, false, R_PB, R_ARG_I, 1, SP_ROLE_SPAN, 0, 0, 0, 0, 0, false, { { 0 } }, false },
	[MD] = { "md", EQ, SP_ANODE_MAYBE_DONE, &g5, 1, false, R_MD, 0, 0, -1, 0, 0, 0, 0, 0, false, { { 0 } }, false },
	[FS] = { "fs", MD, SP_ANODE_COROUTINE, &g0, 1, false, R_FS, 0, 0, SP_ROLE_SPAN, 0, 0, 0, 0, 0, false, { { 0 } }, false },
	[JH] = { "jh", EQ, SP_ANODE_JOIN_HANDLE, &g45, 1, false, R_JH, 0, 0, -1, 0, 0, 0, 0, 0, false, { { 0 } }, false },
};

static struct sp_nested_plan plan = { .nodes = nodes, .n = N_NODES, .n_reads = N_READS };

/* A read: carrier, eq, pb, md tag, fs, join handle, pb's i. */
#define READ(r, entry, exit, ...)                                                   \
	do {                                                                       \
		uint64_t v_[N_READS] = { __VA_ARGS__ };                            \
		assert_int_equal(sp_nested_run_feed(r, entry, exit, v_, N_READS), 0); \
	} while (0)

static const struct sp_nested_span *only(const struct sp_nested_run *r, uint32_t node, size_t k)
{
	for (size_t i = 0; i < r->n_spans; i++)
		if (r->spans[i].node == node && k-- == 0)
			return &r->spans[i];
	return NULL;
}

static size_t count(const struct sp_nested_run *r, uint32_t node)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_spans; i++)
		n += r->spans[i].node == node;
	return n;
}

/* A loop awaits pb(i) in one slot: each new i is a new instance, ending
 * and beginning in the same poll window. */
static void test_loop_reuse_new_fingerprint(void **state)
{
	struct sp_nested_run r;
	const struct sp_nested_span *s;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);                        /* first poll: Unresumed */
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0, 0);     /* eq awaits pb(0) */
	READ(&r, 30, 40, 3, 4, 3, 0, 0, 0, 1);     /* pb(1) replaced it */
	READ(&r, 50, 60, 3, 4, 4, 0, 0, 0, 1);     /* pb(1) suspended elsewhere */
	READ(&r, 70, 80, 3, 6, 3, 0, 0, 0, 1);     /* eq moved on */
	READ(&r, 90, 95, 1, 1, 0, 0, 0, 0, 0);     /* returned */
	sp_nested_run_end(&r, 95, false);

	assert_int_equal(count(&r, PB), 2);
	assert_int_equal(count(&r, EQ), 1);
	s = only(&r, PB, 0);
	assert_int_equal(s->begin_ns, 10);
	assert_int_equal(s->unc_lo_ns, 10);
	assert_int_equal(s->end_ns, 40);
	assert_int_equal(s->unc_hi_ns, 10);
	assert_int_equal(s->parent, 0); /* eq's span, the first opened */
	s = only(&r, PB, 1);
	assert_int_equal(s->begin_ns, 30);
	assert_int_equal(s->end_ns, 80);
	assert_int_equal(s->flags, 0);
	s = only(&r, EQ, 0);
	assert_int_equal(s->begin_ns, 10);
	assert_int_equal(s->end_ns, 95);
	assert_int_equal(s->parent, -1);
	assert_false(s->open);
	sp_nested_run_free(&r);
}

/* Identical fingerprints in consecutive reads are one instance. */
static void test_same_fingerprint_is_one_instance(void **state)
{
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0, 7);
	READ(&r, 30, 40, 3, 4, 5, 0, 0, 0, 7);
	READ(&r, 50, 60, 1, 1, 0, 0, 0, 0, 0);
	sp_nested_run_end(&r, 60, false);
	assert_int_equal(count(&r, PB), 1);
	assert_int_equal(only(&r, PB, 0)->end_ns, 60);
	sp_nested_run_free(&r);
}

/* join!: the future inside MaybeDone ends when the tag leaves Future
 * (0), though its own bytes still say Suspended. */
static void test_join_maybe_done(void **state)
{
	struct sp_nested_run r;
	const struct sp_nested_span *s;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 5, 0, 0, 3, 0, 0);     /* join!: fs pending */
	READ(&r, 30, 40, 3, 5, 0, 1, 3, 0, 0);     /* fs done (tag Done) */
	READ(&r, 50, 60, 1, 1, 0, 0, 0, 0, 0);
	sp_nested_run_end(&r, 60, false);
	assert_int_equal(count(&r, FS), 1);
	s = only(&r, FS, 0);
	assert_int_equal(s->begin_ns, 10);
	assert_int_equal(s->end_ns, 40);
	assert_int_equal(s->unc_hi_ns, 10);
	assert_int_equal(s->parent, 0);
	assert_int_equal(count(&r, PB), 0); /* pb's guard never held */
	sp_nested_run_free(&r);
}

/* Attached mid-flight: the first read finds the carrier already
 * running, so what is live then is PARTIAL, begun no earlier than seen. */
static void test_partial_at_attach(void **state)
{
	struct sp_nested_run r;
	const struct sp_nested_span *s;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 100, 0, 3, 4, 3, 0, 0, 0, 2);
	READ(&r, 100, 110, 3, 4, 3, 0, 0, 0, 3);
	READ(&r, 120, 130, 1, 1, 0, 0, 0, 0, 0);
	sp_nested_run_end(&r, 130, false);
	s = only(&r, EQ, 0);
	assert_true(s->flags & SP_REC_PARTIAL);
	assert_int_equal(s->begin_ns, 100);
	assert_int_equal(s->unc_lo_ns, 0);
	assert_true(only(&r, PB, 0)->flags & SP_REC_PARTIAL);
	/* the next instance began while traced */
	assert_false(only(&r, PB, 1)->flags & SP_REC_PARTIAL);
	assert_int_equal(only(&r, PB, 1)->begin_ns, 100);
	sp_nested_run_free(&r);
}

/* A future whose state says Panicked ends abnormal. */
static void test_panicked(void **state)
{
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0, 0);
	READ(&r, 30, 40, 3, 4, 2, 0, 0, 0, 0);
	sp_nested_run_end(&r, 40, true);
	assert_true(only(&r, PB, 0)->flags & SP_REC_ABNORMAL);
	assert_int_equal(only(&r, PB, 0)->end_ns, 40);
	/* eq never returned: the carrier ended abnormally under it */
	assert_true(only(&r, EQ, 0)->flags & SP_REC_ABNORMAL);
	sp_nested_run_free(&r);
}

/* A change first seen at a poll's entry happened while the future was
 * not polled: the window starts at the previous read. */
static void test_change_seen_at_entry(void **state)
{
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0, 0);
	READ(&r, 50, 0, 3, 4, 3, 0, 0, 0, 1);
	sp_nested_run_end(&r, 60, false);
	assert_int_equal(only(&r, PB, 0)->end_ns, 50);
	assert_int_equal(only(&r, PB, 0)->unc_hi_ns, 30);
	assert_int_equal(only(&r, PB, 1)->begin_ns, 20);
	sp_nested_run_free(&r);
}

/* The JoinHandle held by eq links a spawned task to eq's span, if the
 * task's life overlaps the time the handle was held. */
static void test_join_handle_holder(void **state)
{
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0x1000, 0);
	READ(&r, 30, 40, 3, 5, 3, 0, 3, 0x1000, 0);
	READ(&r, 50, 60, 1, 1, 0, 0, 0, 0, 0);
	sp_nested_run_end(&r, 60, false);
	assert_int_equal(sp_nested_run_holder(&r, SP_ANODE_JOIN_HANDLE, 0x1000, 15, 35), 0);
	assert_int_equal(sp_nested_run_holder(&r, SP_ANODE_JOIN_HANDLE, 0x1000, 45, 55), -2);
	assert_int_equal(sp_nested_run_holder(&r, SP_ANODE_JOIN_HANDLE, 0x2000, 15, 35), -2);
	assert_int_equal(sp_nested_run_holder(&r, SP_ANODE_DYN_BOX, 0x1000, 15, 35), -2);
	sp_nested_run_free(&r);
}

/* The same instance, but the read was made inside the poll (a probe hit
 * or a context switch): r.mid, r.poll_ns as the session sets them. */
#define MID_READ(r, poll, entry, exit, ...)                                        \
	do {                                                                       \
		(r)->mid = true;                                                   \
		(r)->poll_ns = (poll);                                             \
		READ(r, entry, exit, __VA_ARGS__);                                 \
		(r)->mid = false;                                                  \
	} while (0)

/* A loop instance that exists only inside one poll (its thread was
 * preempted past the timer's deadline): seen by a read inside the poll,
 * between the previous instance and the next, it is kept when the read at
 * the poll's exit still finds the node valid (eq still in 4). */
static void test_instance_seen_only_inside_a_poll(void **state)
{
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0, 1);           /* pb(1) */
	r.poll_ns = 30;
	READ(&r, 30, 0, 3, 4, 3, 0, 0, 0, 1);            /* next poll's entry */
	MID_READ(&r, 30, 30, 35, 3, 4, 3, 0, 0, 0, 2);   /* pb(2) inside it */
	READ(&r, 35, 50, 3, 4, 3, 0, 0, 0, 3);           /* exit: pb(3) */
	r.poll_ns = 0;
	READ(&r, 60, 70, 1, 1, 0, 0, 0, 0, 0);
	sp_nested_run_end(&r, 70, false);
	assert_int_equal(count(&r, PB), 3);
	assert_false(only(&r, PB, 1)->gone);
	assert_int_equal(only(&r, PB, 0)->end_ns, 35);
	assert_int_equal(only(&r, PB, 1)->begin_ns, 30);
	assert_int_equal(only(&r, PB, 1)->end_ns, 50);
	/* pb(3) came after pb(2) was seen */
	assert_int_equal(only(&r, PB, 2)->begin_ns, 35);
	sp_nested_run_free(&r);
}

/* Bytes read inside a poll as pb's, while eq's state lagged its code:
 * at the poll's exit eq is elsewhere (5), so they were not pb's. */
static void test_lagging_parent_invents_nothing(void **state)
{
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &plan), 0);
	READ(&r, 10, 0, 0);
	READ(&r, 10, 20, 3, 4, 3, 0, 0, 0, 1);
	r.poll_ns = 30;
	READ(&r, 30, 0, 3, 4, 3, 0, 0, 0, 1);
	MID_READ(&r, 30, 30, 35, 3, 4, 3, 0, 0, 0, 99); /* join!'s bytes */
	READ(&r, 35, 50, 3, 5, 0, 0, 3, 0, 99);
	READ(&r, 60, 70, 1, 1, 0, 0, 0, 0, 0);
	sp_nested_run_end(&r, 70, false);
	assert_int_equal(count(&r, PB), 2);
	assert_false(only(&r, PB, 0)->gone);
	assert_true(only(&r, PB, 1)->gone);
	sp_nested_run_free(&r);
}

/* Futures behind a pointer (hyper's in_flight: Pin<Box<Option<F>>>): a
 * plain carrier, a Box node whose pointee holds h. A null pointer ends
 * the chain (h's instance ends); another pointer is another object, so
 * another instance even when everything read behind it is equal. */
enum { B_PTR, B_H, B_ARG, B_N };

static void test_pointer_hops(void **state)
{
	static struct sp_async_range nonnull = { 0, 0 };
	struct sp_nested_node bn[] = {
		{ "Box", -1, SP_ANODE_BOX, NULL, 0, true, B_PTR, 0, 0, -1, 0, 0, 0, 0, 0, false, { { 0 } }, false },
		{ "h", 0, SP_ANODE_COROUTINE, &nonnull, 1, true, B_H, B_ARG, 1, SP_ROLE_ROOT, 0,
		  1, 0, 0, 0, false, { { 0 } }, false },
	};
	struct sp_nested_plan bp = { .nodes = bn, .n = 2, .n_reads = B_N, .plain = true };
	struct sp_nested_run r;
	const struct sp_nested_span *s;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &bp), 0);
#define BREAD(entry, exit, ptr, st, arg)                                             \
	do {                                                                         \
		uint64_t v_[B_N] = { ptr, st, arg };                                 \
		assert_int_equal(sp_nested_run_feed(&r, entry, exit, v_, B_N), 0);   \
	} while (0)
	BREAD(10, 20, 0, 0, 0);            /* no request: in_flight None */
	BREAD(30, 40, 0x5000, 3, 7);       /* a handler behind 0x5000 */
	BREAD(50, 60, 0x5000, 4, 7);       /* the same one, further on */
	BREAD(70, 80, 0, 0, 0);            /* null: it is over */
	BREAD(90, 100, 0x6000, 3, 7);      /* another object, equal bytes */
	BREAD(110, 120, 0x7000, 3, 7);     /* and another, within one poll */
	BREAD(130, 140, 0, 0, 0);
#undef BREAD
	sp_nested_run_end(&r, 140, false);
	assert_int_equal(r.n_spans, 3);
	s = &r.spans[0];
	assert_int_equal(s->begin_ns, 30);
	assert_int_equal(s->end_ns, 80);
	assert_int_equal(s->addr, 0x5000);
	assert_int_equal(r.spans[1].addr, 0x6000);
	assert_int_equal(r.spans[1].end_ns, 120);
	assert_int_equal(r.spans[2].addr, 0x7000);
	assert_int_equal(r.spans[2].begin_ns, 110);
	for (size_t k = 0; k < r.n_spans; k++)
		assert_false(r.spans[k].flags & SP_REC_MERGED);
	sp_nested_run_free(&r);
}

/* tower's Map around hyper's service_fn future (tsrv-fn): a plain carrier
 * entered first by the poll that starts h. A read at a poll's entry has
 * its window from the previous read (BPF: entry_ns = previous read,
 * exit_ns = now = poll_ns); h seen Unresumed there has not run: it
 * begins at that entry, not since the previous request's last read, and
 * is not partial. */
enum { M_TAG, M_H, M_ARG, M_N };

static void test_unresumed_at_entry(void **state)
{
	struct sp_nested_node mn[] = {
		{ "h", -1, SP_ANODE_COROUTINE, &g0, 1, false, M_H, M_ARG, 1, SP_ROLE_ROOT, 0,
		  0, 0, 0, 0, false, { { 0 } }, false },
	};
	struct sp_nested_plan mp = { .nodes = mn, .n = 1, .n_reads = M_N, .plain = true };
	struct sp_nested_run r;

	(void)state;
	assert_int_equal(sp_nested_run_init(&r, &mp), 0);
#define MREAD(poll, entry, exit, st, arg)                                            \
	do {                                                                         \
		uint64_t v_[M_N] = { 0, st, arg };                                   \
		r.poll_ns = poll;                                                    \
		assert_int_equal(sp_nested_run_feed(&r, entry, exit, v_, M_N), 0);   \
	} while (0)
	MREAD(100, 100, 0, 0, 7);       /* first read, at the entry: Unresumed */
	MREAD(100, 100, 110, 3, 7);     /* its exit: suspended */
	MREAD(500, 110, 510, 1, 7);     /* a later poll's exit: Returned */
	MREAD(900, 510, 900, 0, 7);     /* the next request, at the entry */
	MREAD(900, 900, 910, 3, 7);
	MREAD(1300, 910, 1310, 1, 7);
#undef MREAD
	sp_nested_run_end(&r, 1400, false);
	assert_int_equal(r.n_spans, 2);
	for (size_t k = 0; k < 2; k++) {
		assert_false(r.spans[k].flags & SP_REC_PARTIAL);
		assert_int_equal(r.spans[k].unc_lo_ns, 0);
	}
	assert_int_equal(r.spans[0].begin_ns, 100);
	assert_int_equal(r.spans[1].begin_ns, 900);
	assert_int_equal(r.spans[1].end_ns, 1310);
	sp_nested_run_free(&r);
}

/* Equal arguments, told apart by a local the parent holds across the
 * await (a loop's iterator); with nothing to tell them apart, the span is
 * flagged merged, never plain. */
static void test_held_local_and_merged(void **state)
{
	struct sp_nested_node hn[] = {
		{ "p", -1, SP_ANODE_COROUTINE, &g3, 1, false, 1, 0, 0, -1, 0, 0, 0, 0, 0, false, { { 0 } }, false },
		{ "c", 0, SP_ANODE_COROUTINE, &g4, 1, false, 2, 3, 1, SP_ROLE_SPAN, 0, 0, 0, 4, 1,
		  false, { { 0 } }, false },
	};
	struct sp_nested_plan hp = { .nodes = hn, .n = 2, .n_reads = 5 };
	struct sp_nested_run r;

	(void)state;
	for (int weak = 0; weak < 2; weak++) {
		hn[1].weak_id = weak;
		hn[1].n_held = weak ? 0 : 1;
		assert_int_equal(sp_nested_run_init(&r, &hp), 0);
		READ(&r, 10, 0, 0);
		READ(&r, 10, 20, 3, 4, 3, 1, 0);   /* c(key 1), iteration 0 */
		READ(&r, 30, 40, 3, 4, 3, 1, 1);   /* c(key 1), iteration 1 */
		READ(&r, 50, 60, 1, 1, 0, 0, 0);
		sp_nested_run_end(&r, 60, false);
		if (weak) {
			assert_int_equal(count(&r, 1), 1);
			assert_true(only(&r, 1, 0)->flags & SP_REC_MERGED);
		} else {
			assert_int_equal(count(&r, 1), 2);
			assert_int_equal(only(&r, 1, 0)->end_ns, 40);
			assert_false(only(&r, 1, 0)->flags & SP_REC_MERGED);
		}
		sp_nested_run_free(&r);
	}
}

/* `args` on a nested async fn: after the fingerprints, the length word of
 * a &str, a Vec and a String, and 4 reads of each string's text through
 * its pointer (a hop from the read that holds it); with no room left in
 * the list, what does not fit stays SP_NESTED_NO_READ (shown unreadable). */
static void test_plan_arg_reads(void **state)
{
	static struct sp_async_range g = { 3, 3 };
	struct sp_async_field args[3] = {
		{ .name = "table", .off = 0x20, .size = 16, .show = SP_AFIELD_STR, .len_off = 8 },
		{ .name = "tags", .off = 0x30, .size = 24, .show = SP_AFIELD_LEN, .len_off = 16 },
		{ .name = "owner", .off = 0x48, .size = 24, .show = SP_AFIELD_STR, .ptr_off = 8,
		  .len_off = 16 },
	};
	struct sp_async_field held = { .name = "it", .off = 0x100, .size = 8 * 57 };
	struct sp_async_node node = { .name = "app::c", .kind = SP_ANODE_COROUTINE, .parent = -1,
				      .guard = &g, .n_guard = 1, .space = -1, .off = 0x10, .size = 1,
				      .args = args, .n_args = 3 };
	struct sp_async_poll poll = { .state_off = 0x8, .state_size = 1, .nodes = &node, .n_nodes = 1 };
	struct sp_pattern pat = { .glob = "app::c", .role = SP_ROLE_SPAN, .want_args = true };
	struct sp_pattern_list pats = { &pat, 1 };
	struct sp_nested_plan *pl;
	const struct sp_nested_arg *a;

	(void)state;
	pl = sp_nested_plan_new(NULL, &poll, &pats, false);
	assert_non_null(pl);
	assert_int_equal(pl->n, 1);
	a = pl->nodes[0].argd;
	/* reads: 0 carrier, 1 c's state, 2-4 fingerprints */
	assert_int_equal(a[0].len_read, 5);
	assert_int_equal(pl->reads[5].off, 0x28);
	assert_int_equal(a[0].str0, 6);
	for (uint32_t j = 0; j < SP_NESTED_STR_READS; j++) {
		assert_int_equal(pl->reads[6 + j].base, 2 + 1); /* the &str's pointer */
		assert_int_equal(pl->reads[6 + j].off, 8 * j);
	}
	assert_int_equal(a[1].len_read, 10);
	assert_int_equal(pl->reads[10].off, 0x40);
	assert_int_equal(a[1].str0, SP_NESTED_NO_READ);
	assert_int_equal(a[2].len_read, 11);
	assert_int_equal(pl->reads[11].off, 0x58);
	assert_int_equal(pl->reads[12].off, 0x50);  /* String's pointer */
	assert_int_equal(a[2].str0, 13);
	assert_int_equal(pl->reads[13].base, 12 + 1);
	assert_int_equal(pl->n_reads, 17);
	sp_nested_plan_free(pl);

	/* 57 reads of held locals: 62 used, room for 2 */
	node.held = &held;
	node.n_held = 1;
	pl = sp_nested_plan_new(NULL, &poll, &pats, false);
	assert_non_null(pl);
	a = pl->nodes[0].argd;
	assert_int_equal(a[0].len_read, 62);
	assert_int_equal(a[0].str0, SP_NESTED_NO_READ);
	assert_int_equal(a[1].len_read, 63);
	assert_int_equal(a[2].len_read, SP_NESTED_NO_READ);
	assert_int_equal(a[2].str0, SP_NESTED_NO_READ);
	assert_int_equal(pl->n_reads, SP_NESTED_MAX);
	sp_nested_plan_free(pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop_reuse_new_fingerprint),
		cmocka_unit_test(test_same_fingerprint_is_one_instance),
		cmocka_unit_test(test_join_maybe_done),
		cmocka_unit_test(test_partial_at_attach),
		cmocka_unit_test(test_panicked),
		cmocka_unit_test(test_change_seen_at_entry),
		cmocka_unit_test(test_join_handle_holder),
		cmocka_unit_test(test_instance_seen_only_inside_a_poll),
		cmocka_unit_test(test_lagging_parent_invents_nothing),
		cmocka_unit_test(test_pointer_hops),
		cmocka_unit_test(test_unresumed_at_entry),
		cmocka_unit_test(test_held_local_and_merged),
		cmocka_unit_test(test_plan_arg_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
