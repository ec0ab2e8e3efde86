/*
 * Async visibility (user/resolve/async_visibility.c): what each pattern of a
 * symbol list will show of Rust async code, before attaching.
 *
 * On the tokio fixture (tests/fixtures/rust: rsqserver, rsqserver-v0,
 * rsqserver-lines) every pattern of tests/fixtures/rsqserver.syms gets
 * its exact class, root and member path; the fixture's source says what
 * they must be (servers.rs: execute_query and what it awaits are inlined
 * into the task root spawn_query::{async_block#0}; make_session_context
 * never suspends; scan_partitions is boxed, materialize_partitions
 * spawned, both polled out of line). Fixtures are found as in
 * test_async_dwarf.c ($SP_FIXTURES_DIR, else ../fixtures next to this
 * binary; missing ones skip, or fail with SP_REQUIRE_FIXTURES=1); the
 * list in $SP_SYMS_DIR, else ../../tests/fixtures from this binary.
 */
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
#include "resolve/async_visibility.h"
#include "symbols/symbols.h"
#include "resolve/resolve.h"

static char fixture_dir[4096];
static char syms_dir[4096];

#define SPAWN_ROOT "rsqserver::servers::spawn_query::{async_block#0}"

/* ------------------------------------------------------------------ */
/* Without fixtures: a hand-made analysis.                             */

static struct sp_async_node node(const char *name, const char *path, int parent,
				 enum sp_async_node_kind kind, uint32_t off)
{
	return (struct sp_async_node){ .name = (char *)name, .path = (char *)path,
				       .parent = parent, .kind = kind, .off = off,
				       .size = 1 };
}

static void parse(const char *text, struct sp_pattern_list *pats)
{
	char err[256];

	if (sp_symlist_parse_buf("t.syms", text, strlen(text), pats, err, sizeof(err)))
		fail_msg("parse: %s", err);
}

static void test_classify_synthetic(void **state)
{
	(void)state;
	struct sp_async_node nodes[] = {
		node("app::outer", "__awaitee", -1, SP_ANODE_COROUTINE, 0x10),
		node("MaybeDone<x>", "futures.__0", 0, SP_ANODE_MAYBE_DONE, 0x20),
		node("app::inner", "Future.__0", 1, SP_ANODE_COROUTINE, 0x30),
		node("app::quick", "__awaitee", 0, SP_ANODE_COROUTINE, 0x40),
	};
	struct sp_async_known known[] = { /* sorted by name */
		{ "app::hidden", 2 }, { "app::inner", 1 }, { "app::outer", 2 },
		{ "app::quick", 0 },
	};
	struct sp_async_poll poll = { .name = "app::main::{async_block#0}",
				      .self_reg = SP_AREG_RSI, .state_off = 0x99,
				      .state_size = 1, .nodes = nodes, .n_nodes = 4,
				      .from_dwarf = true };
	struct sp_async_info info = { .polls = &poll, .n = 1, .known = known,
				      .n_known = 4, .has_types = true, .has_dwarf = true };
	struct sp_pattern_list pats = { 0 };
	struct sp_avis_report rep;
	bool matched[6] = { false, false, false, false, false, true };
	char line[2048];

	parse("root app::main::{*}\nspan app::inner::{*}\nspan app::quick\n"
	      "span app::hidden::{{closure}}\nspan app::*\nspan app::sync_fn\n", &pats);
	assert_int_equal(sp_avis_init(&rep, pats.n), 0);
	assert_int_equal(sp_avis_classify(&pats, matched, "bin", &info, &rep), 0);

	assert_int_equal(rep.v[0].cls, SP_AVIS_OUT_OF_LINE);
	assert_int_equal(rep.v[0].items[0].self_reg, SP_AREG_RSI);
	assert_int_equal(rep.v[0].items[0].state_off, 0x99);

	assert_int_equal(rep.v[1].cls, SP_AVIS_INLINED);
	assert_int_equal(rep.v[1].n, 1);
	assert_string_equal(rep.v[1].items[0].root, "app::main::{async_block#0}");
	assert_string_equal(rep.v[1].items[0].path, "__awaitee.futures.__0.Future.__0");
	assert_int_equal(rep.v[1].items[0].state_off, 0x30);

	/* a node that never suspends is never pending when its root returns */
	assert_int_equal(rep.v[2].cls, SP_AVIS_INVISIBLE);
	assert_int_equal(rep.v[2].items[0].n_suspend, 0);
	assert_string_equal(rep.v[2].items[0].root, "app::main::{async_block#0}");

	/* known to the DWARF, in no root's future */
	assert_int_equal(rep.v[3].cls, SP_AVIS_INVISIBLE);
	assert_null(rep.v[3].items[0].root);
	assert_int_equal(rep.v[3].items[0].n_suspend, 2);

	/* the best class wins; every item is listed once */
	assert_int_equal(rep.v[4].cls, SP_AVIS_OUT_OF_LINE);
	assert_int_equal(rep.v[4].n, 5); /* poll, outer, inner, quick, hidden */

	assert_int_equal(rep.v[5].cls, SP_AVIS_NONE);
	assert_int_equal(rep.v[5].n, 0);

	sp_avis_pattern_text(&rep.v[1], line, sizeof(line));
	assert_string_equal(line, "app::inner: inlined, seen through root "
			    "app::main::{async_block#0} (member "
			    "__awaitee.futures.__0.Future.__0, state at root+0x30/1)");
	sp_avis_pattern_text(&rep.v[5], line, sizeof(line));
	assert_string_equal(line, "");
	sp_avis_free(&rep);
	sp_symlist_free(&pats);
}

/* Without types, what matches no poll and no sync function is unknown. */
static void test_classify_untyped(void **state)
{
	(void)state;
	struct sp_async_poll poll = { .name = "app::f", .state_off = 8, .state_size = 1 };
	struct sp_async_info info = { .polls = &poll, .n = 1, .has_dwarf = true };
	struct sp_pattern_list pats = { 0 };
	struct sp_avis_report rep;
	bool matched[3] = { false, false, true };
	char line[2048];

	parse("span app::f::{*}\nspan app::g::{*}\nspan app::sync_fn\n", &pats);
	assert_int_equal(sp_avis_init(&rep, pats.n), 0);
	assert_int_equal(sp_avis_classify(&pats, matched, "bin", &info, &rep), 0);
	assert_int_equal(rep.v[0].cls, SP_AVIS_OUT_OF_LINE);
	assert_false(rep.v[0].items[0].from_dwarf);
	assert_int_equal(rep.v[1].cls, SP_AVIS_UNKNOWN);
	assert_null(rep.v[1].items[0].name);
	assert_int_equal(rep.v[2].cls, SP_AVIS_NONE);
	sp_avis_pattern_text(&rep.v[1], line, sizeof(line));
	assert_string_equal(line, "bin: unknown: " SP_AVIS_NEEDS_TYPES);
	sp_avis_free(&rep);
	sp_symlist_free(&pats);
}

/* ------------------------------------------------------------------ */
/* The tokio fixture.                                                  */

static void need(const char *name, char *path, size_t len)
{
	const char *req = getenv("SP_REQUIRE_FIXTURES");

	snprintf(path, len, "%s/%s", fixture_dir, name);
	if (access(path, X_OK) == 0)
		return;
	fprintf(stderr, "SKIPPED: fixture %s not built (make rust-fixtures; "
		"or set SP_FIXTURES_DIR)\n", path);
	if (req && strcmp(req, "1") == 0)
		fail_msg("fixture %s missing and SP_REQUIRE_FIXTURES=1", path);
	skip();
}

struct result {
	struct sp_pattern_list pats;
	struct sp_func_set fs;
	struct sp_avis_report rep;
};

static void classify_fixture(const char *name, const char *extra, struct result *r)
{
	char bin[4200], syms[4200], err[512];
	FILE *f;
	char *text = NULL;
	size_t len = 0;

	need(name, bin, sizeof(bin));
	snprintf(syms, sizeof(syms), "%s/rsqserver.syms", syms_dir);
	/* the fixture's own list, then the test's patterns */
	f = open_memstream(&text, &len);
	assert_non_null(f);
	{
		FILE *in = fopen(syms, "r");
		char buf[4096];
		size_t n;

		if (!in)
			fail_msg("%s: cannot open (set SP_SYMS_DIR)", syms);
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			fwrite(buf, 1, n, f);
		fclose(in);
	}
	fputs(extra, f);
	fclose(f);
	memset(r, 0, sizeof(*r));
	if (sp_symlist_parse_buf(syms, text, len, &r->pats, err, sizeof(err)))
		fail_msg("%s", err);
	free(text);
	if (sp_resolve(0, bin, &r->pats, SP_EXIT_AUTO, &r->fs, err, sizeof(err)))
		fail_msg("sp_resolve(%s): %s", bin, err);
	if (sp_avis_for_target(0, bin, false, &r->pats, &r->fs, &r->rep, err, sizeof(err)))
		fail_msg("sp_avis_for_target(%s): %s", bin, err);
	assert_int_equal(r->rep.n, r->pats.n);
}

static void free_result(struct result *r)
{
	sp_avis_free(&r->rep);
	sp_func_set_free(&r->fs);
	sp_symlist_free(&r->pats);
}

static const struct sp_avis_pattern *by_glob(const struct result *r, const char *glob)
{
	for (size_t i = 0; i < r->pats.n; i++)
		if (strcmp(r->pats.v[i].glob, glob) == 0)
			return &r->rep.v[i];
	fail_msg("pattern '%s' not in the list", glob);
	return NULL;
}

static void expect_inlined(const struct result *r, const char *glob, const char *name,
			   const char *path)
{
	const struct sp_avis_pattern *p = by_glob(r, glob);

	assert_int_equal(p->cls, SP_AVIS_INLINED);
	assert_int_equal(p->n, 1);
	assert_int_equal(p->items[0].cls, SP_AVIS_INLINED);
	assert_string_equal(p->items[0].name, name);
	assert_string_equal(p->items[0].root, SPAWN_ROOT);
	assert_string_equal(p->items[0].path, path);
	assert_true(p->items[0].n_suspend > 0);
}

static void expect_out_of_line(const struct result *r, const char *glob,
			       const char *name, uint32_t state_off, bool typed)
{
	const struct sp_avis_pattern *p = by_glob(r, glob);

	assert_int_equal(p->cls, SP_AVIS_OUT_OF_LINE);
	assert_int_equal(p->n, 1);
	assert_string_equal(p->items[0].name, name);
	assert_int_equal(p->items[0].self_reg, SP_AREG_RDI);
	assert_int_equal(p->items[0].state_off, state_off);
	assert_int_equal(p->items[0].state_size, 1);
	assert_int_equal(p->items[0].from_dwarf, typed);
}

static void expect_none(const struct result *r, const char *glob)
{
	const struct sp_avis_pattern *p = by_glob(r, glob);

	assert_int_equal(p->cls, SP_AVIS_NONE);
	assert_int_equal(p->n, 0);
}

static void expect_unknown(const struct result *r, const char *glob)
{
	const struct sp_avis_pattern *p = by_glob(r, glob);
	char line[2048];

	assert_int_equal(p->cls, SP_AVIS_UNKNOWN);
	assert_int_equal(p->n, 1);
	assert_null(p->items[0].name);
	sp_avis_pattern_text(p, line, sizeof(line));
	assert_non_null(strstr(line, "nested decoding needs debug info (DWARF types)"));
}

#define EXTRA "span rsqserver::servers::serve::{*}\nspan rsqserver::no_such_fn::{*}\n" \
	"span *read_blocks*\n"

static const char *const MSV =
	"rsqserver::lakehouse::materialized_view::MaterializedView::scan_partitions";
static const char *const JIT = "rsqserver::lakehouse::jit_partitions::materialize_partitions";

/* Every pattern of the list, the release builds with debug info. */
static void check_typed(const char *fixture)
{
	struct result r;
	const struct sp_avis_pattern *p;

	classify_fixture(fixture, EXTRA, &r);
	expect_inlined(&r, "rsqserver::servers::execute_query::{*}",
		       "rsqserver::servers::execute_query", "__awaitee");
	p = by_glob(&r, "rsqserver::lakehouse::query::make_session_context::{*}");
	assert_int_equal(p->cls, SP_AVIS_INVISIBLE);
	assert_int_equal(p->n, 1);
	assert_int_equal(p->items[0].n_suspend, 0);
	assert_string_equal(p->items[0].root, SPAWN_ROOT);
	expect_inlined(&r, "rsqserver::servers::query_planning::{*}",
		       "rsqserver::servers::query_planning", "__awaitee.__awaitee");
	expect_inlined(&r, "rsqserver::servers::query_execution::{*}",
		       "rsqserver::servers::query_execution", "__awaitee.__awaitee");
	expect_inlined(&r, "rsqserver::lakehouse::partition_cache::fetch_partitions::{*}",
		       "rsqserver::lakehouse::partition_cache::fetch_partitions",
		       "__awaitee.__awaitee.__awaitee");
	expect_inlined(&r, "rsqserver::lakehouse::block_processor::process_block::{*}",
		       "rsqserver::lakehouse::block_processor::process_block",
		       "__awaitee.__awaitee.__awaitee");
	p = by_glob(&r, "rsqserver::lakehouse::metadata::fetch_*_metadata::{*}");
	assert_int_equal(p->cls, SP_AVIS_INLINED);
	assert_int_equal(p->n, 2);
	assert_string_equal(p->items[0].name, "rsqserver::lakehouse::metadata::fetch_stream_metadata");
	assert_string_equal(p->items[0].path, "__awaitee.__awaitee.futures.__0.Future.__0");
	assert_string_equal(p->items[1].name, "rsqserver::lakehouse::metadata::fetch_block_metadata");
	assert_string_equal(p->items[1].path, "__awaitee.__awaitee.futures.__1.Future.__0");
	expect_inlined(&r, "<*ParquetBlockSource as *BlockSource>::read_blocks::{*}",
		       "<rsqserver::lakehouse::reader_factory::ParquetBlockSource as "
		       "rsqserver::lakehouse::block_source::BlockSource>::read_blocks",
		       "__awaitee.__awaitee.__awaitee");
	expect_none(&r, "<*MaterializedView as *TableScan>::scan");
	expect_out_of_line(&r, "rsqserver::lakehouse::materialized_view::MaterializedView::"
			   "scan_partitions::{*}", MSV, 0xb0, true);
	expect_out_of_line(&r, "rsqserver::lakehouse::jit_partitions::materialize_partitions::{*}",
			   JIT, 0xa0, true);
	/* serve runs inside block_on's inlined poll: no root of ours holds it */
	p = by_glob(&r, "rsqserver::servers::serve::{*}");
	assert_int_equal(p->cls, SP_AVIS_INVISIBLE);
	assert_null(p->items[0].root);
	assert_true(p->items[0].n_suspend > 0);
	expect_none(&r, "rsqserver::no_such_fn::{*}");
	/* one async fn, one item: not again under its "{impl#N}" spelling */
	expect_inlined(&r, "*read_blocks*",
		       "<rsqserver::lakehouse::reader_factory::ParquetBlockSource as "
		       "rsqserver::lakehouse::block_source::BlockSource>::read_blocks",
		       "__awaitee.__awaitee.__awaitee");
	free_result(&r);
}

static void test_rsqserver(void **state)
{
	(void)state;
	check_typed("rsqserver");
}

static void test_rsqserver_v0(void **state)
{
	(void)state;
	check_typed("rsqserver-v0");
}

/* debug = "line-tables-only": the out-of-line polls from their code, the
 * rest unknown, with the reason. */
static void test_rsqserver_lines(void **state)
{
	(void)state;
	static const char *const inlined[] = {
		"rsqserver::servers::execute_query::{*}",
		"rsqserver::lakehouse::query::make_session_context::{*}",
		"rsqserver::servers::query_planning::{*}",
		"rsqserver::servers::query_execution::{*}",
		"rsqserver::lakehouse::partition_cache::fetch_partitions::{*}",
		"rsqserver::lakehouse::block_processor::process_block::{*}",
		"rsqserver::lakehouse::metadata::fetch_*_metadata::{*}",
		"<*ParquetBlockSource as *BlockSource>::read_blocks::{*}",
		"rsqserver::servers::serve::{*}",
		"rsqserver::no_such_fn::{*}",
		"*read_blocks*",
	};
	struct result r;

	classify_fixture("rsqserver-lines", EXTRA, &r);
	for (size_t i = 0; i < sizeof(inlined) / sizeof(inlined[0]); i++)
		expect_unknown(&r, inlined[i]);
	expect_none(&r, "<*MaterializedView as *TableScan>::scan");
	expect_out_of_line(&r, "rsqserver::lakehouse::materialized_view::MaterializedView::"
			   "scan_partitions::{*}", MSV, 0xb0, false);
	expect_out_of_line(&r, "rsqserver::lakehouse::jit_partitions::materialize_partitions::{*}",
			   JIT, 0xa0, false);
	free_result(&r);
}

/* The list covers the fixture: a pattern added to it without a class
 * here would go unchecked. */
static void test_every_pattern_checked(void **state)
{
	(void)state;
	struct result r;

	classify_fixture("rsqserver", "", &r);
	assert_int_equal(r.pats.n, 11);
	free_result(&r);
}

static void locate(const char *argv0)
{
	const char *fx = getenv("SP_FIXTURES_DIR"), *sy = getenv("SP_SYMS_DIR");
	char buf[4096], *dir;

	snprintf(buf, sizeof(buf), "%s", argv0);
	dir = dirname(buf);
	if (fx)
		snprintf(fixture_dir, sizeof(fixture_dir), "%s", fx);
	else
		snprintf(fixture_dir, sizeof(fixture_dir), "%s/../fixtures", dir);
	if (sy)
		snprintf(syms_dir, sizeof(syms_dir), "%s", sy);
	else
		snprintf(syms_dir, sizeof(syms_dir), "%s/../../tests/fixtures", dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_synthetic),
		cmocka_unit_test(test_classify_untyped),
		cmocka_unit_test(test_rsqserver),
		cmocka_unit_test(test_rsqserver_v0),
		cmocka_unit_test(test_rsqserver_lines),
		cmocka_unit_test(test_every_pattern_checked),
	};

	(void)argc;
	locate(argv[0]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
