/*
 * Rust async analysis (user/dwarf/async_dwarf.c, user/dwarf/async_disasm.c)
 * against the rust-mini fixtures (tests/fixtures/rust-mini/rust-mini.mk).
 *
 * What the analysis says is checked against what the fixture itself
 * measures at run time (`rust-mini --dump`), not against DWARF: the size
 * of each future, the byte that behaves like its state, and snapshots of
 * the root future after every poll, which the nested tree must decode
 * into exactly the futures the program was awaiting at that moment.
 *
 * The fixtures are found in $SP_FIXTURES_DIR, else in ../fixtures next
 * to this test binary ($(BUILD)/tests -> $(BUILD)/fixtures). When they
 * are missing the fixture tests are reported SKIPPED (loudly), or fail
 * with SP_REQUIRE_FIXTURES=1.
 */
#include <inttypes.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "dwarf/async_disasm.h"
#include "dwarf/async_dwarf.h"
#include "symbols/elf_symbols.h"
#include "symbols/symbols.h"

static char fixture_dir[4096];
static char self_path[4096];

/* ------------------------------------------------------------------ */
/* Fixtures.                                                           */

static void fixture_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", fixture_dir, name);
}

/* Skips (or, with SP_REQUIRE_FIXTURES=1, fails) when name is missing. */
static void need(const char *name, char *path, size_t len)
{
	const char *req = getenv("SP_REQUIRE_FIXTURES");

	fixture_path(path, len, name);
	if (access(path, X_OK) == 0)
		return;
	fprintf(stderr,
		"SKIPPED: fixture %s not built (make rust-mini BUILD=...; "
		"or set SP_FIXTURES_DIR)\n", path);
	if (req && strcmp(req, "1") == 0)
		fail_msg("fixture %s missing and SP_REQUIRE_FIXTURES=1", path);
	skip();
}

static void analyze(const char *name, struct sp_async_info *info)
{
	char path[4200], err[256] = "";

	need(name, path, sizeof(path));
	if (sp_async_analyze(path, info, err, sizeof(err)) != 0)
		fail_msg("sp_async_analyze(%s): %s", path, err);
	if (getenv("SP_ASYNC_PRINT"))
		sp_async_info_print(stderr, info);
}

#define MAX_SNAPS 16

/* What `rust-mini --dump` printed. */
struct dump {
	struct {
		char name[64];
		unsigned size;
		unsigned offs[8];
		int n_offs;
	} fut[8];
	int n_fut;
	unsigned root_size;
	uint8_t *snap[MAX_SNAPS];
	int n_snap;
	uint64_t dynbox;
	uint64_t result;
};

static void parse_hex(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void parse_state(struct dump *d, const char *rest)
{
	char name[64];
	int used = 0;
	const char *p;

	assert_int_equal(sscanf(rest, "%63s%n", name, &used), 1);
	for (int i = 0; i < d->n_fut; i++) {
		if (strcmp(d->fut[i].name, name) != 0)
			continue;
		for (p = rest + used; d->fut[i].n_offs < 8;) {
			unsigned off;
			int k = 0;

			if (sscanf(p, " %x%n", &off, &k) != 1)
				break;
			d->fut[i].offs[d->fut[i].n_offs++] = off;
			p += k;
		}
	}
}

static void parse_line(struct dump *d, char *line)
{
	char name[64];
	unsigned v;
	int k, pos = 0;

	if (sscanf(line, "size %63s %u", name, &v) == 2 && d->n_fut < 8) {
		snprintf(d->fut[d->n_fut].name, sizeof(d->fut[0].name), "%s", name);
		d->fut[d->n_fut++].size = v;
	} else if (strncmp(line, "state ", 6) == 0) {
		parse_state(d, line + 6);
	} else if (sscanf(line, "root %u", &v) == 1) {
		d->root_size = v;
	} else if (sscanf(line, "snap %d %n", &k, &pos) == 1 && pos) {
		assert_int_equal(k, d->n_snap);
		assert_true(k < MAX_SNAPS);
		assert_int_equal(strlen(line + pos), 2 * d->root_size);
		d->snap[k] = malloc(d->root_size);
		assert_non_null(d->snap[k]);
		parse_hex(line + pos, d->snap[k], d->root_size);
		d->n_snap++;
	} else if (sscanf(line, "dynbox %" SCNx64, &d->dynbox) == 1) {
	} else {
		assert_int_equal(sscanf(line, "result %" SCNu64, &d->result), 1);
	}
}

static void run_dump(const char *name, struct dump *d)
{
	char path[4200], cmd[4300], *line = NULL;
	size_t cap = 0;
	FILE *f;

	memset(d, 0, sizeof(*d));
	need(name, path, sizeof(path));
	snprintf(cmd, sizeof(cmd), "'%s' --dump", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		parse_line(d, line);
	}
	free(line);
	assert_int_equal(pclose(f), 0);
	assert_int_equal(d->n_fut, 6);
	assert_int_equal(d->n_snap, 12);
	assert_int_equal(d->result, 292);
}

static void free_dump(struct dump *d)
{
	for (int i = 0; i < d->n_snap; i++)
		free(d->snap[i]);
}

static const struct sp_async_poll *find_poll(const struct sp_async_info *info,
					     const char *name)
{
	for (size_t i = 0; i < info->n; i++)
		if (strcmp(info->polls[i].name, name) == 0)
			return &info->polls[i];
	return NULL;
}

static const struct sp_async_poll *must_poll(const struct sp_async_info *info,
					     const char *name)
{
	const struct sp_async_poll *p = find_poll(info, name);

	if (!p)
		fail_msg("no poll named %s", name);
	return p;
}

/* The out-of-line polls of rust-mini (release: those reached through a
 * vtable, and the children kept out of line by the --dump helpers), and
 * which register holds self: RSI for the Poll<Wide> (32-byte) ones. */
static const struct {
	const char *name;
	enum sp_async_reg reg;
	bool block;
} expected_polls[] = {
	{ "rust_mini::leaf", SP_AREG_RDI, false },
	{ "rust_mini::step_one", SP_AREG_RDI, false },
	{ "rust_mini::looped", SP_AREG_RDI, false },
	{ "rust_mini::left", SP_AREG_RDI, false },
	{ "rust_mini::right", SP_AREG_RSI, false },
	{ "rust_mini::scan_inner", SP_AREG_RSI, false },
	{ "rust_mini::task::{async_block#0}", SP_AREG_RDI, true },
	{ "rust_mini::wide_task::{async_block#0}", SP_AREG_RSI, true },
};
#define N_EXPECTED (sizeof(expected_polls) / sizeof(expected_polls[0]))

/* ------------------------------------------------------------------ */
/* Pure helpers (no fixture).                                          */

static void test_guard_and_read(void **state)
{
	(void)state;
	struct sp_async_range r[] = { { 3, 3 }, { 6, 9 } };
	struct sp_async_node n = { .guard = r, .n_guard = 2 };
	const uint8_t mem[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

	assert_true(sp_async_guard_holds(&n, 3));
	assert_true(sp_async_guard_holds(&n, 7));
	assert_false(sp_async_guard_holds(&n, 4));
	assert_false(sp_async_guard_holds(&n, 10));
	n.guard_negate = true;
	assert_false(sp_async_guard_holds(&n, 3));
	assert_true(sp_async_guard_holds(&n, 0));
	assert_int_equal(sp_async_read(mem, sizeof(mem), 0, 1), 1);
	assert_int_equal(sp_async_read(mem, sizeof(mem), 1, 2), 0x0302);
	assert_int_equal(sp_async_read(mem, sizeof(mem), 1, 8), 0x0908070605040302ull);
	assert_int_equal(sp_async_read(mem, sizeof(mem), 2, 8), 0); /* past end */
	assert_int_equal(sp_async_read(mem, sizeof(mem), 0, 0), 0);
}

static void test_closure_names(void **state)
{
	(void)state;
	assert_true(sp_async_is_closure_name("app::main::{{closure}}"));
	assert_true(sp_async_is_closure_name("app::main::{{closure}}::{{closure}}"));
	assert_true(sp_async_is_closure_name("app::main::{closure#0}"));
	assert_true(sp_async_is_closure_name("app::f::{closure#12}"));
	assert_false(sp_async_is_closure_name("app::f::{closure#}"));
	assert_false(sp_async_is_closure_name("app::f::{closure#1}x"));
	assert_false(sp_async_is_closure_name("app::f"));
	assert_false(sp_async_is_closure_name(
		"core::ptr::drop_in_place<app::main::{{closure}}>"));
	assert_false(sp_async_is_closure_name("{shim:vtable#0}"));
}

static void test_errors_and_non_rust(void **state)
{
	(void)state;
	struct sp_async_info info;
	char err[256] = "", tmp[] = "/tmp/sp_async_XXXXXX";
	int fd;

	assert_int_equal(sp_async_analyze("/nonexistent/x", &info, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not an elf\n", 11), 11);
	close(fd);
	assert_int_equal(sp_async_analyze(tmp, &info, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an ELF"));
	unlink(tmp);
	/* this test is C with DWARF: no Rust units, nothing async, no error */
	assert_int_equal(sp_async_analyze(self_path, &info, err, sizeof(err)), 0);
	assert_int_equal(info.n, 0);
	assert_false(info.has_dwarf);
	assert_false(info.has_types);
	sp_async_info_free(&info);
}

/* ------------------------------------------------------------------ */
/* DWARF, checked against the program's own measurements.              */

static void check_polls_vs_dump(const char *bin)
{
	struct sp_async_info info;
	struct dump d;

	analyze(bin, &info);
	run_dump(bin, &d);
	assert_true(info.has_dwarf);
	assert_true(info.has_types);
	assert_int_equal(info.n, N_EXPECTED);
	for (size_t i = 0; i < N_EXPECTED; i++) {
		const struct sp_async_poll *p = must_poll(&info, expected_polls[i].name);

		assert_true(p->from_dwarf);
		assert_int_equal(p->self_reg, expected_polls[i].reg);
		assert_int_equal(p->is_block, expected_polls[i].block);
		assert_int_equal(p->state_size, 1);
		assert_non_null(p->symbol);
		assert_non_null(p->linkage_name);
		assert_false(p->truncated);
		/* not a tokio task */
		assert_int_equal(p->task_cell_off, UINT32_MAX);
	}
	for (int i = 0; i < d.n_fut; i++) {
		const struct sp_async_poll *p = must_poll(&info, d.fut[i].name);

		assert_int_equal(p->future_size, d.fut[i].size);
		/* exactly one byte behaved like the state, and it is ours */
		assert_int_equal(d.fut[i].n_offs, 1);
		assert_int_equal(p->state_off, d.fut[i].offs[0]);
		/* every async fn here takes one u64 */
		assert_int_equal(p->n_args, 1);
		assert_int_equal(p->args[0].size, 8);
	}
	assert_int_equal(must_poll(&info, "rust_mini::task::{async_block#0}")->future_size,
			 d.root_size);
	assert_string_equal(must_poll(&info, "rust_mini::leaf")->args[0].name, "x");
	assert_string_equal(
		must_poll(&info, "rust_mini::task::{async_block#0}")->args[0].name, "q");
	free_dump(&d);
	sp_async_info_free(&info);
}

static void test_release_polls(void **state)
{
	(void)state;
	check_polls_vs_dump("rust-mini");
}

static void test_debug_polls(void **state)
{
	(void)state;
	/* opt-level 0: self is described on the stack, the size rule picks
	 * the register */
	check_polls_vs_dump("rust-mini-debug");
}

static void test_dwarf5_polls(void **state)
{
	(void)state;
	/* names through DW_FORM_strx and .debug_str_offsets */
	check_polls_vs_dump("rust-mini-dwarf5");
}

static void test_v0_polls(void **state)
{
	(void)state;
	struct sp_async_info info;

	check_polls_vs_dump("rust-mini-v0");
	analyze("rust-mini-v0", &info);
	for (size_t i = 0; i < info.n; i++)
		assert_true(strncmp(info.polls[i].symbol, "_R", 2) == 0);
	sp_async_info_free(&info);
}

/* file_offset, computed by the analysis from low_pc, against the symbol
 * table's own (elf_symbols.c). */
static void test_file_offsets(void **state)
{
	(void)state;
	struct sp_async_info info;
	struct sp_elf elf;
	char path[4200], err[256];

	analyze("rust-mini", &info);
	fixture_path(path, sizeof(path), "rust-mini");
	assert_int_equal(sp_elf_open(&elf, path, path, err, sizeof(err)), 0);
	for (size_t i = 0; i < info.n; i++) {
		const struct sp_async_poll *p = &info.polls[i];
		bool seen = false;

		for (size_t k = 0; k < elf.n; k++) {
			if (elf.funcs[k].addr != p->low_pc)
				continue;
			assert_true(elf.funcs[k].in_exec);
			assert_int_equal(elf.funcs[k].offset, p->file_offset);
			assert_string_equal(elf.funcs[k].names[0], p->symbol);
			seen = true;
		}
		assert_true(seen);
	}
	sp_elf_close(&elf);
	sp_async_info_free(&info);
}

/* ------------------------------------------------------------------ */
/* The nested tree of the task root, decoded from real snapshots.      */

static int find_node(const struct sp_async_poll *p, enum sp_async_node_kind kind,
		     const char *name_prefix, int parent, int guard)
{
	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct sp_async_node *n = &p->nodes[i];

		if (n->kind == kind && n->parent == parent &&
		    strncmp(n->name, name_prefix, strlen(name_prefix)) == 0 &&
		    (guard < 0 || (n->n_guard == 1 && n->guard[0].lo == (uint64_t)guard &&
				   n->guard[0].hi == (uint64_t)guard)))
			return (int)i;
	}
	fail_msg("no node %s (kind %d, parent %d, guard %d)", name_prefix, kind,
		 parent, guard);
	return -1;
}

enum {
	N_STEP, N_LEAF1, N_LEAF2, N_LOOPED, N_MDL, N_LEFT, N_MDR, N_RIGHT,
	N_DYN, N_LAB, N_LEAF3, N_COUNT
};

#define ANY 0xffffffffffffffffull /* active, any non-zero value */

struct expect {
	uint64_t root;
	uint64_t val[N_COUNT]; /* 0 = must be inactive, else value+1 */
};

static void locate_nodes(const struct sp_async_poll *p, int *ix)
{
	ix[N_STEP] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::step_one", -1, 3);
	ix[N_LEAF1] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::leaf", ix[N_STEP], 3);
	ix[N_LEAF2] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::leaf", ix[N_STEP], 4);
	ix[N_LOOPED] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::looped", -1, 4);
	ix[N_MDL] = find_node(p, SP_ANODE_MAYBE_DONE, "MaybeDone<rust_mini::left", -1, 5);
	ix[N_LEFT] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::left", ix[N_MDL], 0);
	ix[N_MDR] = find_node(p, SP_ANODE_MAYBE_DONE, "MaybeDone<rust_mini::right", -1, 5);
	ix[N_RIGHT] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::right", ix[N_MDR], 0);
	ix[N_DYN] = find_node(p, SP_ANODE_DYN_BOX, "dyn core::future::future::Future", -1, 6);
	ix[N_LAB] = find_node(p, SP_ANODE_MAYBE_DONE, "Labeled<", -1, 7);
	ix[N_LEAF3] = find_node(p, SP_ANODE_COROUTINE, "rust_mini::leaf", ix[N_LAB], -1);
}

static void check_shape(const struct sp_async_poll *p, const int *ix)
{
	const struct sp_async_node *lab = &p->nodes[ix[N_LAB]];
	const struct sp_async_node *leaf3 = &p->nodes[ix[N_LEAF3]];

	assert_int_equal(p->n_nodes, N_COUNT);
	for (size_t i = 0; i < p->n_nodes; i++)
		assert_true(p->nodes[i].parent < (int)i); /* eval's order */
	/* the niche: Running is whatever the label pointer holds but 0 */
	assert_int_equal(lab->size, 8);
	assert_true(leaf3->guard_negate);
	assert_int_equal(leaf3->n_guard, 1);
	assert_int_equal(leaf3->guard[0].lo, 0);
	/* MaybeDone's explicit u64 tag; Future is variant 0 */
	assert_int_equal(p->nodes[ix[N_MDL]].size, 8);
	assert_false(p->nodes[ix[N_LEFT]].guard_negate);
	assert_int_equal(p->nodes[ix[N_DYN]].size, 8);
	assert_string_equal(p->nodes[ix[N_STEP]].path, "__awaitee");
	assert_string_equal(p->nodes[ix[N_MDL]].path, "__awaitee.a");
	for (int k = 0; k < N_COUNT; k++)
		assert_true(p->nodes[ix[k]].off + p->nodes[ix[k]].size <= p->future_size);
}

/* What task(7) is awaiting after each poll (see rust_mini.rs): value+1
 * of each active node's state (tag, pointer). */
static void script(struct expect *e, uint64_t dynbox)
{
	static const uint64_t roots[] = { 0, 3, 3, 4, 4, 4, 5, 5, 5, 6, 7, 1 };

	memset(e, 0, 12 * sizeof(*e));
	for (int k = 0; k < 12; k++)
		e[k].root = roots[k];
	e[1].val[N_STEP] = 3 + 1, e[1].val[N_LEAF1] = 3 + 1;
	e[2].val[N_STEP] = 4 + 1, e[2].val[N_LEAF2] = 3 + 1;
	for (int k = 3; k <= 5; k++)
		e[k].val[N_LOOPED] = 3 + 1;
	for (int k = 6; k <= 7; k++) {
		e[k].val[N_MDL] = 0 + 1, e[k].val[N_LEFT] = 3 + 1;
		e[k].val[N_MDR] = 0 + 1, e[k].val[N_RIGHT] = 3 + 1;
	}
	/* left is done: MaybeDone::Done (1) and the future is gone */
	e[8].val[N_MDL] = 1 + 1;
	e[8].val[N_MDR] = 0 + 1, e[8].val[N_RIGHT] = 3 + 1;
	e[9].val[N_DYN] = dynbox + 1;
	e[10].val[N_LAB] = ANY, e[10].val[N_LEAF3] = 3 + 1;
}

static uint64_t arg0(const struct sp_async_node *n, const uint8_t *mem, size_t len)
{
	assert_int_equal(n->n_args, 1);
	return sp_async_read(mem, len, n->args[0].off, n->args[0].size);
}

/* The arguments tell instances apart (leaf(7) then leaf(15); looped(i)). */
static void check_args(const struct sp_async_poll *p, const int *ix,
		       const struct dump *d)
{
	size_t len = d->root_size;

	assert_int_equal(arg0(&p->nodes[ix[N_LEAF1]], d->snap[1], len), 7);
	assert_int_equal(arg0(&p->nodes[ix[N_LEAF2]], d->snap[2], len), 15);
	for (int k = 3; k <= 5; k++)
		assert_int_equal(arg0(&p->nodes[ix[N_LOOPED]], d->snap[k], len), k - 3);
	assert_int_equal(arg0(&p->nodes[ix[N_LEFT]], d->snap[6], len), 7);
	assert_int_equal(arg0(&p->nodes[ix[N_RIGHT]], d->snap[6], len), 7);
	assert_int_equal(arg0(&p->nodes[ix[N_LEAF3]], d->snap[10], len), 107);
	assert_int_equal(sp_async_read(d->snap[1], len, p->args[0].off,
				       p->args[0].size), 7);
}

static void check_snapshots(const struct sp_async_poll *p, const int *ix,
			    const struct dump *d)
{
	struct expect e[12];
	uint64_t value[SP_ASYNC_MAX_NODES];
	bool active[SP_ASYNC_MAX_NODES];

	script(e, d->dynbox);
	for (int k = 0; k < 12; k++) {
		size_t len = d->root_size;

		assert_int_equal(sp_async_read(d->snap[k], len, p->state_off,
					       p->state_size), e[k].root);
		sp_async_eval(p, d->snap[k], len, value, active);
		for (int n = 0; n < N_COUNT; n++) {
			uint64_t want = e[k].val[n];

			if (active[ix[n]] != (want != 0))
				fail_msg("snapshot %d: node %d (%s) %s", k, ix[n],
					 p->nodes[ix[n]].name,
					 want ? "should be active" : "should not be active");
			if (want == ANY)
				assert_true(value[ix[n]] != 0);
			else if (want)
				assert_int_equal(value[ix[n]], want - 1);
		}
	}
}

static void check_tree(const char *bin)
{
	struct sp_async_info info;
	struct dump d;
	int ix[N_COUNT];
	const struct sp_async_poll *root, *wide;

	analyze(bin, &info);
	run_dump(bin, &d);
	root = must_poll(&info, "rust_mini::task::{async_block#0}");
	locate_nodes(root, ix);
	check_shape(root, ix);
	check_snapshots(root, ix, &d);
	check_args(root, ix, &d);
	/* the sret root holds the same Box<dyn Future>, and nothing else */
	wide = must_poll(&info, "rust_mini::wide_task::{async_block#0}");
	assert_int_equal(wide->n_nodes, 1);
	assert_int_equal(wide->nodes[0].kind, SP_ANODE_DYN_BOX);
	/* step_one alone: its two leaf awaits, one node each (not merged:
	 * two awaits are two instances) */
	assert_int_equal(must_poll(&info, "rust_mini::step_one")->n_nodes, 2);
	assert_int_equal(must_poll(&info, "rust_mini::leaf")->n_nodes, 0);
	free_dump(&d);
	sp_async_info_free(&info);
}

static void test_release_tree(void **state)
{
	(void)state;
	check_tree("rust-mini");
}

static void test_debug_tree(void **state)
{
	(void)state;
	check_tree("rust-mini-debug");
}

static void test_dwarf5_tree(void **state)
{
	(void)state;
	check_tree("rust-mini-dwarf5");
}

static void test_v0_tree(void **state)
{
	(void)state;
	check_tree("rust-mini-v0");
}

/* ------------------------------------------------------------------ */
/* Disassembly.                                                        */

/* On every poll DWARF found, the code says the same thing. */
static void check_disasm_agrees(const char *bin)
{
	struct sp_async_info info;
	struct sp_async_disasm dis;
	struct sp_elf elf;
	char path[4200], err[256], why[128];

	analyze(bin, &info);
	fixture_path(path, sizeof(path), bin);
	assert_int_equal(sp_elf_open(&elf, path, path, err, sizeof(err)), 0);
	assert_int_equal(sp_async_disasm_init(&dis, &elf, err, sizeof(err)), 0);
	assert_true(dis.n_panic > 0);
	assert_int_equal(info.n, N_EXPECTED);
	for (size_t i = 0; i < info.n; i++) {
		const struct sp_async_poll *p = &info.polls[i];
		struct sp_async_dispatch d;

		if (!sp_async_disasm_dispatch(&dis, p->low_pc, p->size, true, &d, why,
					      sizeof(why)))
			fail_msg("%s: %s: %s", bin, p->name, why);
		assert_true(d.resumed_panic);
		assert_int_equal(d.self_reg, p->self_reg);
		assert_int_equal(d.state_off, p->state_off);
		assert_int_equal(d.state_size, p->state_size);
	}
	sp_async_disasm_free(&dis);
	sp_elf_close(&elf);
	sp_async_info_free(&info);
}

static void test_disasm_agrees_release(void **state)
{
	(void)state;
	check_disasm_agrees("rust-mini");
}

static void test_disasm_agrees_debug(void **state)
{
	(void)state;
	check_disasm_agrees("rust-mini-debug");
}

/* The closure that loads a byte of its environment and jumps through a
 * table on it, exactly like a state dispatch: rejected for calling no
 * resumed-after-completion panic. The plain one: no dispatch at all. */
static void test_closures_not_found(void **state)
{
	(void)state;
	struct sp_async_disasm dis;
	struct sp_elf elf;
	char path[4200], err[256], why[128];
	int seen = 0, seen_panic_reason = 0;

	need("rust-mini", path, sizeof(path));
	assert_int_equal(sp_elf_open(&elf, path, path, err, sizeof(err)), 0);
	assert_int_equal(sp_async_disasm_init(&dis, &elf, err, sizeof(err)), 0);
	for (size_t i = 0; i < elf.n; i++) {
		char *dem = sp_demangle(elf.funcs[i].names[0]);
		struct sp_async_dispatch d;

		if (strcmp(dem, "rust_mini::closures::{{closure}}") == 0) {
			seen++;
			assert_false(sp_async_disasm_dispatch(&dis, elf.funcs[i].addr,
							      elf.funcs[i].size, true,
							      &d, why, sizeof(why)));
			seen_panic_reason += strstr(why, "panic") != NULL;
		}
		free(dem);
	}
	assert_int_equal(seen, 2);
	assert_int_equal(seen_panic_reason, 1);
	sp_async_disasm_free(&dis);
	sp_elf_close(&elf);
}

/* ------------------------------------------------------------------ */
/* Without DWARF types.                                                */

static void check_untyped(const char *bin, const char *release, bool dwarf_names)
{
	struct sp_async_info info, ref;

	analyze(bin, &info);
	analyze(release, &ref);
	assert_false(info.has_types);
	assert_int_equal(info.n, N_EXPECTED);
	for (size_t i = 0; i < N_EXPECTED; i++) {
		const struct sp_async_poll *r = must_poll(&ref, expected_polls[i].name);
		char sym[256];
		const struct sp_async_poll *p;

		/* one name per function (issue 12): an async fn's poll has
		 * its DWARF name without DWARF too; only DWARF tells an async
		 * block from its fn's own body, so without it a block is named
		 * after its fn */
		snprintf(sym, sizeof(sym), "%.*s",
			 (int)(strcspn(expected_polls[i].name, "{") -
			       (expected_polls[i].block ? 2 : 0)),
			 expected_polls[i].name);
		p = must_poll(&info, dwarf_names ? expected_polls[i].name : sym);
		assert_false(p->from_dwarf);
		assert_int_equal(p->self_reg, r->self_reg);
		assert_int_equal(p->state_off, r->state_off);
		assert_int_equal(p->state_size, r->state_size);
		assert_int_equal(p->future_size, 0);
		assert_int_equal(p->n_nodes, 0);
		assert_int_equal(p->n_args, 0);
		assert_non_null(p->symbol);
		if (dwarf_names)
			assert_int_equal(p->is_block, expected_polls[i].block);
	}
	sp_async_info_free(&ref);
	sp_async_info_free(&info);
}

static void test_line_tables_only(void **state)
{
	(void)state;
	struct sp_async_info info;

	check_untyped("rust-mini-lines", "rust-mini", true);
	analyze("rust-mini-lines", &info);
	assert_true(info.has_dwarf);
	sp_async_info_free(&info);
}

static void test_no_debug_info(void **state)
{
	(void)state;
	struct sp_async_info info;
	int closures = 0;

	check_untyped("rust-mini-nodebug", "rust-mini", false);
	analyze("rust-mini-nodebug", &info);
	for (size_t i = 0; i < info.n_rejected; i++) {
		if (strcmp(info.rejected[i].name, "rust_mini::closures::{{closure}}"))
			continue;
		closures++;
	}
	assert_int_equal(closures, 2);
	for (size_t i = 0; i < info.n; i++)
		assert_null(strstr(info.polls[i].name, "closures"));
	sp_async_info_free(&info);
}

/* The first node of kind named name under parent (any parent: -2). */
static int node_named(const struct sp_async_poll *p, enum sp_async_node_kind kind,
		      const char *name, int parent)
{
	for (size_t i = 0; i < p->n_nodes; i++)
		if (p->nodes[i].kind == kind && p->nodes[i].name &&
		    strcmp(p->nodes[i].name, name) == 0 && (parent == -2 || p->nodes[i].parent == parent))
			return (int)i;
	return -1;
}

/* hyper 0.14 (hsrv, release): the handler's future is behind hyper's
 * in_flight: Pin<Box<Option<F>>>, one pointer hop from the connection's
 * hand-written future. The tree records the hop (a Box node, the nodes
 * behind it in its space, one hop deep), and load_user's query_db knows
 * what load_user holds across that await (its loop's iterator) to tell
 * the loop's two instances with equal arguments apart. */
static void test_hyper_pointer_hops(void **state)
{
	struct sp_async_info info;
	const struct sp_async_poll *p = NULL;
	int box = -1, h, lu, qd;

	(void)state;
	analyze("hsrv", &info);
	for (size_t i = 0; i < info.n_plain; i++)
		if (strstr(info.plain[i].name, "UpgradeableConnection"))
			p = &info.plain[i];
	assert_non_null(p);
	assert_true(p->plain);
	for (size_t i = 0; i < p->n_nodes; i++)
		if (p->nodes[i].kind == SP_ANODE_BOX && strstr(p->nodes[i].path, "in_flight"))
			box = (int)i;
	assert_true(box >= 0);
	assert_int_equal(p->nodes[box].hops, 0);
	assert_int_equal(p->nodes[box].space, -1);
	assert_int_equal(p->nodes[box].size, 8);
	h = node_named(p, SP_ANODE_COROUTINE, "hsrv::handlers::handle", -2);
	assert_true(h >= 0);
	assert_int_equal(p->nodes[h].space, box);
	assert_int_equal(p->nodes[h].hops, 1);
	/* valid while the pointer is not null */
	for (int a = h; a != box; a = p->nodes[a].parent)
		assert_true(a >= 0);
	lu = node_named(p, SP_ANODE_COROUTINE, "hsrv::handlers::load_user", h);
	assert_true(lu >= 0);
	assert_int_equal(p->nodes[lu].space, box);
	assert_true(p->nodes[lu].n_args >= 2); /* key, ms */
	qd = node_named(p, SP_ANODE_COROUTINE, "hsrv::handlers::query_db", lu);
	assert_true(qd >= 0);
	assert_true(p->nodes[qd].n_held >= 1);
	for (size_t k = 0; k < p->nodes[qd].n_held; k++) {
		const struct sp_async_field *f = &p->nodes[qd].held[k];

		/* inside load_user's future, never one of its arguments */
		assert_true(f->off >= p->nodes[lu].base);
		assert_true(f->off + f->size <= p->nodes[lu].base + p->nodes[lu].obj_size);
		for (size_t a = 0; a < p->nodes[lu].n_args; a++)
			assert_string_not_equal(f->name, p->nodes[lu].args[a].name);
	}
	sp_async_info_free(&info);
}

static void locate_fixtures(const char *argv0)
{
	const char *env = getenv("SP_FIXTURES_DIR");
	char buf[4096];

	snprintf(self_path, sizeof(self_path), "%s", argv0);
	if (env) {
		snprintf(fixture_dir, sizeof(fixture_dir), "%s", env);
		return;
	}
	snprintf(buf, sizeof(buf), "%s", argv0);
	snprintf(fixture_dir, sizeof(fixture_dir), "%s/../fixtures", dirname(buf));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guard_and_read),
		cmocka_unit_test(test_closure_names),
		cmocka_unit_test(test_errors_and_non_rust),
		cmocka_unit_test(test_release_polls),
		cmocka_unit_test(test_debug_polls),
		cmocka_unit_test(test_v0_polls),
		cmocka_unit_test(test_dwarf5_polls),
		cmocka_unit_test(test_file_offsets),
		cmocka_unit_test(test_release_tree),
		cmocka_unit_test(test_debug_tree),
		cmocka_unit_test(test_dwarf5_tree),
		cmocka_unit_test(test_v0_tree),
		cmocka_unit_test(test_disasm_agrees_release),
		cmocka_unit_test(test_disasm_agrees_debug),
		cmocka_unit_test(test_closures_not_found),
		cmocka_unit_test(test_line_tables_only),
		cmocka_unit_test(test_no_debug_info),
		cmocka_unit_test(test_hyper_pointer_hops),
	};

	(void)argc;
	locate_fixtures(argv[0]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
