/*
 * micromegas encoding: CBOR writer, transit buffers, LZ4 frames and the
 * three request bodies, compared byte for byte with golden vectors made
 * by micromegas' own Rust code (tests/unit/data/micromegas, from
 * shared/notes/micromegas-vectors; inputs pinned in its README).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/cbor_writer.h"
#include "sinks/micromegas_block.h"
#include "sinks/micromegas_records.h"
#include "sinks/transit_writer.h"

#define DATA "tests/unit/data/micromegas/"
#define START_NS 1767225600000000000ull /* 2026-01-01T00:00:00Z */
#define PROCESS_ID "00000000-0000-4000-8000-000000000001"
#define STREAM_ID "00000000-0000-4000-8000-000000000002"

struct buf {
	char *p;
	size_t len;
	FILE *f;
};

static void buf_open(struct buf *b)
{
	b->p = NULL;
	b->len = 0;
	b->f = open_memstream(&b->p, &b->len);
	assert_non_null(b->f);
}

static void buf_close(struct buf *b)
{
	assert_false(ferror(b->f));
	assert_int_equal(fclose(b->f), 0);
}

static void *read_file(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *p;
	long n;

	snprintf(path, sizeof(path), "%s%s", DATA, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: cannot open (run from the top of the tree)", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* Equal to the golden file, or a message with the first differing byte. */
static void assert_golden(const void *got, size_t len, const char *name)
{
	size_t glen;
	unsigned char *want = read_file(name, &glen);
	const unsigned char *g = got;

	for (size_t i = 0; i < len && i < glen; i++)
		if (g[i] != want[i])
			fail_msg("%s: byte %zu is %02x, golden %02x", name, i, g[i], want[i]);
	if (len != glen)
		fail_msg("%s: %zu bytes, golden %zu", name, len, glen);
	free(want);
}

static void assert_bytes(const struct buf *b, const char *hex)
{
	char got[128] = "";

	for (size_t i = 0; i < b->len && i < 60; i++)
		sprintf(got + 2 * i, "%02x", (unsigned char)b->p[i]);
	assert_string_equal(got, hex);
}

/* ---- CBOR --------------------------------------------------------------- */

/* RFC 8949 Appendix A examples */
static void test_cbor_integers(void **state)
{
	static const struct { int64_t v; const char *hex; } ints[] = {
		{ 0, "00" }, { 23, "17" }, { 24, "1818" }, { 100, "1864" }, { 1000, "1903e8" },
		{ 1000000, "1a000f4240" }, { 1000000000000, "1b000000e8d4a51000" },
		{ -1, "20" }, { -10, "29" }, { -100, "3863" }, { -1000, "3903e7" },
		{ INT64_MIN, "3b7fffffffffffffff" },
	};
	struct buf b;

	(void)state;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		buf_open(&b);
		sp_cbor_int(b.f, ints[i].v);
		buf_close(&b);
		assert_bytes(&b, ints[i].hex);
		free(b.p);
	}
	buf_open(&b);
	sp_cbor_uint(b.f, UINT64_MAX);
	buf_close(&b);
	assert_bytes(&b, "1bffffffffffffffff");
	free(b.p);
}

static void test_cbor_items(void **state)
{
	struct buf b;

	(void)state;
	buf_open(&b);
	sp_cbor_text(b.f, "IETF");
	sp_cbor_bytes(b.f, "\x01\x02\x03\x04", 4);
	sp_cbor_bool(b.f, false);
	sp_cbor_bool(b.f, true);
	sp_cbor_null(b.f);
	sp_cbor_array(b.f, 25);
	sp_cbor_map(b.f, 1);
	sp_cbor_kv_text(b.f, "a", "");
	buf_close(&b);
	assert_bytes(&b, "6449455446" "4401020304" "f4f5f6" "9819" "a1616160");
	free(b.p);
}

/* ---- the golden vectors ------------------------------------------------- */

static void test_insert_process_golden(void **state)
{
	struct sp_mm_process p = {
		.process_id = PROCESS_ID, .exe = "/usr/bin/spanprobe", .username = "user",
		.realname = "User", .computer = "host", .distro = "Debian GNU/Linux 12",
		.cpu_brand = "unknown", .tsc_frequency = 1000000000, .start_time_ns = START_NS,
		.start_ticks = 100, .parent_process_id = NULL,
	};
	struct buf b;

	(void)state;
	buf_open(&b);
	sp_mm_process_body(b.f, &p);
	buf_close(&b);
	assert_golden(b.p, b.len, "insert_process.cbor.bin");
	free(b.p);
}

static void test_insert_stream_golden(void **state)
{
	static const char *const tags[] = { "cpu" };
	struct sp_mm_property props[] = { { "thread-id", "12345" } };
	struct sp_mm_stream s = {
		.process_id = PROCESS_ID, .stream_id = STREAM_ID, .tags = tags, .n_tags = 1,
		.properties = props, .n_properties = 1,
	};
	struct buf b;

	(void)state;
	buf_open(&b);
	sp_mm_stream_body(b.f, &s);
	buf_close(&b);
	assert_golden(b.p, b.len, "insert_stream.cbor.bin");
	free(b.p);
}

/* The span of the vectors, through the same encoder the sink uses. */
static void test_transit_golden(void **state)
{
	struct sp_span s = {
		.query_id = 7, .span_id = 7, .parent_span_id = 0, .begin_ns = 1000, .end_ns = 2000,
		.name = "execute_query", .pid = 1, .tid = 12345, .depth = 0,
	};
	char *deps, *objs;
	size_t dl, ol;

	(void)state;
	assert_int_equal(sp_mm_encode_transit(&s, 1, &deps, &dl, &objs, &ol), 0);
	assert_golden(deps, dl, "dependencies.transit.bin");
	assert_golden(objs, ol, "objects.transit.bin");
	free(deps);
	free(objs);
}

static void assert_lz4_golden(const char *transit, const char *frame)
{
	size_t n, flen;
	void *src = read_file(transit, &n), *out;

	assert_int_equal(sp_transit_lz4(src, n, &out, &flen), 0);
	assert_golden(out, flen, frame);
	free(src);
	free(out);
}

static void test_lz4_golden(void **state)
{
	void *out;
	size_t len;

	(void)state;
	assert_lz4_golden("dependencies.transit.bin", "dependencies.lz4.bin");
	assert_lz4_golden("objects.transit.bin", "objects.lz4.bin");
	assert_lz4_golden("spec-2.7-example/dependencies.transit.bin",
			  "spec-2.7-example/dependencies.lz4.bin");
	assert_lz4_golden("spec-2.7-example/objects.transit.bin", "spec-2.7-example/objects.lz4.bin");
	assert_int_equal(sp_transit_lz4("", 0, &out, &len), 0);
	assert_golden(out, len, "empty.lz4.bin");
	free(out);
}

static void block_golden(const char *dir, const char *block_id, int64_t begin_ticks,
			 int64_t end_ticks)
{
	char name[128];
	struct sp_mm_block blk = {
		.block_id = block_id, .stream_id = STREAM_ID, .process_id = PROCESS_ID,
		.begin_time_ns = START_NS + (uint64_t)begin_ticks,
		.end_time_ns = START_NS + (uint64_t)end_ticks,
		.begin_ticks = begin_ticks, .end_ticks = end_ticks, .nb_objects = 2,
	};
	size_t dl, ol;
	void *d, *o;
	struct buf b;

	snprintf(name, sizeof(name), "%sdependencies.transit.bin", dir);
	d = read_file(name, &dl);
	assert_int_equal(sp_transit_lz4(d, dl, (void **)&blk.deps_lz4, &blk.deps_len), 0);
	snprintf(name, sizeof(name), "%sobjects.transit.bin", dir);
	o = read_file(name, &ol);
	assert_int_equal(sp_transit_lz4(o, ol, (void **)&blk.objs_lz4, &blk.objs_len), 0);
	buf_open(&b);
	sp_mm_block_body(b.f, &blk);
	buf_close(&b);
	snprintf(name, sizeof(name), "%sinsert_block.cbor.bin", dir);
	assert_golden(b.p, b.len, name);
	free(b.p);
	free(d);
	free(o);
	free((void *)blk.deps_lz4);
	free((void *)blk.objs_lz4);
}

static void test_insert_block_golden(void **state)
{
	(void)state;
	/* events at ticks 1000 and 2000, start_ticks 100 */
	block_golden("", "00000000-0000-4000-8000-000000000003", 900, 1900);
	block_golden("spec-2.7-example/", "00000000-0000-4000-8000-000000000004",
		     999999900, 1000249900);
}

/* The note's §2.7 example, entry by entry with its pinned ids. */
static void test_spec_example_entries(void **state)
{
	struct sp_transit_span_desc d = {
		.id = 100, .name = 1, .target = 2, .module_path = 2, .file = 3, .line = 0,
		.lod = SP_TRANSIT_LOD_MAX,
	};
	struct sp_transit_async_event e = {
		.span_desc = 100, .span_id = 7, .parent_span_id = 0, .time = 1000000000, .depth = 0,
	};
	struct buf deps, objs;

	(void)state;
	buf_open(&deps);
	sp_transit_static_string(deps.f, 1, "read_file");
	sp_transit_static_string(deps.f, 2, "ebpf::vfs");
	sp_transit_static_string(deps.f, 3, "fs/read_write.c");
	sp_transit_span_record(deps.f, &d);
	buf_close(&deps);
	assert_golden(deps.p, deps.len, "spec-2.7-example/dependencies.transit.bin");
	buf_open(&objs);
	sp_transit_async_event(objs.f, true, &e);
	e.time = 1000250000;
	sp_transit_async_event(objs.f, false, &e);
	buf_close(&objs);
	assert_golden(objs.p, objs.len, "spec-2.7-example/objects.transit.bin");
	free(deps.p);
	free(objs.p);
}

/* ---- beyond the vectors -------------------------------------------------- */

static void test_target(void **state)
{
	static const struct { const char *name, *target; } cases[] = {
		{ "micromegas::servers::flight_sql_service_impl::execute_query",
		  "micromegas::servers::flight_sql_service_impl" },
		{ "handle_query", "spanprobe" },
		{ "::f", "spanprobe" },
		{ "demo::Engine::run_query(int)", "demo::Engine" },
		{ "ns::f(std::string const&)", "ns" },
		{ "<a::B as c::D>::poll", "<a::B as c::D>" },
		{ "std::vector<ns::T>::push_back", "std::vector<ns::T>" },
		{ "", "spanprobe" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		const char *t = sp_mm_target(cases[i].name, &len);

		if (len != strlen(cases[i].target) || strncmp(t, cases[i].target, len))
			fail_msg("target of '%s' is '%.*s', expected '%s'", cases[i].name,
				 (int)len, t, cases[i].target);
	}
}

static void test_static_string_utf8(void **state)
{
	struct buf b;

	(void)state;
	buf_open(&b);
	/* a lone continuation byte and each byte of a truncated sequence
	 * become U+FFFD */
	sp_transit_static_string(b.f, 9, "a\x80z\xe2\x82");
	buf_close(&b);
	assert_int_equal(b.len, 1 + 4 + 8 + 11);
	assert_memory_equal(b.p, "\x02\x13\x00\x00\x00\x09\0\0\0\0\0\0\0"
			    "a\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd", b.len);
	free(b.p);
}

static uint64_t rd64(const char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

/* 120 distinct names make 241 strings: record ids must not reuse them,
 * and every record's references must point back to strings. */
static void test_many_names_unique_ids(void **state)
{
	enum { N = 120 };
	struct sp_span s[N];
	char names[N][24];
	char *deps, *objs;
	size_t dl, ol, pos = 0, nstr = 0, nrec = 0;
	uint64_t ids[3 * N + 1];
	size_t nids = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "m%d::f%d", i % 7, i);
		s[i] = (struct sp_span){ .query_id = 1, .span_id = (uint64_t)i + 1,
			.parent_span_id = i ? 1 : 0, .begin_ns = 100 + (uint64_t)i,
			.end_ns = 1000 - (uint64_t)i, .name = names[i], .depth = i ? 1 : 0 };
	}
	assert_int_equal(sp_mm_encode_transit(s, N, &deps, &dl, &objs, &ol), 0);
	while (pos < dl) {
		if (deps[pos] == SP_TRANSIT_STATIC_STRING) {
			uint32_t size = (uint32_t)rd64(deps + pos + 1) & 0xffffffffu;

			ids[nids++] = rd64(deps + pos + 5);
			pos += 5 + size;
			nstr++;
		} else {
			assert_int_equal(deps[pos], SP_TRANSIT_SPAN_RECORD);
			ids[nids++] = rd64(deps + pos + 1);
			for (int r = 1; r <= 4; r++) {
				uint64_t ref = rd64(deps + pos + 1 + 8 * r);
				int found = 0;

				for (size_t k = 0; k < nstr; k++)
					found |= ids[k] == ref;
				assert_true(found);
			}
			pos += 1 + 48;
			nrec++;
		}
	}
	assert_int_equal(pos, dl);
	assert_int_equal(nstr, 2 * N + 1);
	assert_int_equal(nrec, N);
	for (size_t i = 0; i < nids; i++)
		for (size_t j = i + 1; j < nids; j++)
			assert_true(ids[i] != ids[j]);
	assert_int_equal(ol, 2 * N * 41);
	free(deps);
	free(objs);
}

/* Begin/end events sorted by time; at equal times a parent begins before
 * its child, a child ends before its parent, and one span's end comes
 * before the next one's begin only when their times say so. */
static void test_event_order(void **state)
{
	struct sp_span s[] = {
		{ .query_id = 1, .span_id = 1, .begin_ns = 10, .end_ns = 50, .name = "root" },
		{ .query_id = 1, .span_id = 2, .parent_span_id = 1, .depth = 1, .begin_ns = 10,
		  .end_ns = 30, .name = "a" },
		{ .query_id = 1, .span_id = 3, .parent_span_id = 1, .depth = 1, .begin_ns = 30,
		  .end_ns = 50, .name = "b" },
		{ .query_id = 1, .span_id = 4, .parent_span_id = 3, .depth = 2, .begin_ns = 40,
		  .end_ns = 40, .name = "z" },
	};
	/* (type, span, time) expected */
	static const int want[][3] = {
		{ 4, 1, 10 }, { 4, 2, 10 }, { 4, 3, 30 }, { 5, 2, 30 },
		{ 4, 4, 40 }, { 5, 4, 40 }, { 5, 3, 50 }, { 5, 1, 50 },
	};
	char *deps, *objs;
	size_t dl, ol;

	(void)state;
	assert_int_equal(sp_mm_encode_transit(s, 4, &deps, &dl, &objs, &ol), 0);
	assert_int_equal(ol, 8 * 41);
	for (int i = 0; i < 8; i++) {
		const char *e = objs + 41 * i;

		assert_int_equal(e[0], want[i][0]);
		assert_int_equal(rd64(e + 1 + 8), (uint64_t)want[i][1]);
		assert_int_equal(rd64(e + 1 + 24), (uint64_t)want[i][2]);
	}
	free(deps);
	free(objs);
}

static void test_payload(void **state)
{
	struct sp_span s = {
		.query_id = 5, .span_id = 5, .begin_ns = START_NS + 7, .end_ns = START_NS + 99,
		.name = "q", .tid = 3,
	};
	struct sp_mm_payload p;

	(void)state;
	assert_int_equal(sp_mm_encode_spans(&s, 1, &p), 0);
	assert_int_equal(p.nb_objects, 2);
	assert_int_equal(p.begin_ns, START_NS + 7);
	assert_int_equal(p.end_ns, START_NS + 99);
	assert_memory_equal(p.deps_lz4, "\x04\x22\x4d\x18\x54\x40", 6); /* linked, both checksums */
	assert_memory_equal(p.objs_lz4, "\x04\x22\x4d\x18", 4);
	sp_mm_payload_free(&p);
}

static void test_times_and_uuid(void **state)
{
	char t[40], u[SP_MM_UUID_LEN + 1], v[SP_MM_UUID_LEN + 1];

	(void)state;
	sp_mm_time_nanos(t, START_NS + 900);
	assert_string_equal(t, "2026-01-01T00:00:00.000000900+00:00");
	sp_mm_time_auto(t, START_NS);
	assert_string_equal(t, "2026-01-01T00:00:00Z");
	sp_mm_time_auto(t, START_NS + 1500000000ull);
	assert_string_equal(t, "2026-01-01T00:00:01.500Z");
	sp_mm_time_auto(t, START_NS + 1000);
	assert_string_equal(t, "2026-01-01T00:00:00.000001Z");
	sp_mm_time_auto(t, START_NS + 1);
	assert_string_equal(t, "2026-01-01T00:00:00.000000001Z");
	assert_int_equal(sp_mm_uuid_v4(u), 0);
	assert_int_equal(sp_mm_uuid_v4(v), 0);
	assert_int_equal(strlen(u), 36);
	assert_true(u[8] == '-' && u[13] == '-' && u[18] == '-' && u[23] == '-');
	assert_int_equal(u[14], '4');
	assert_non_null(strchr("89ab", u[19]));
	assert_string_not_equal(u, v);
}

static void test_process_text_limits(void **state)
{
	char exe[400];
	struct sp_mm_process p = {
		.process_id = PROCESS_ID, .exe = exe, .username = "u\xff", .realname = "",
		.computer = "h", .distro = "d", .cpu_brand = "c", .tsc_frequency = 1000000000,
		.start_time_ns = START_NS,
	};
	struct buf b;
	const char *at;

	(void)state;
	memset(exe, 'x', sizeof(exe) - 1);
	exe[sizeof(exe) - 1] = 0;
	buf_open(&b);
	sp_mm_process_body(b.f, &p);
	buf_close(&b);
	/* "exe" then a 255-byte text: head 0x78 0xff */
	at = memmem(b.p, b.len, "\x63" "exe" "\x78\xff", 6);
	assert_non_null(at);
	assert_int_equal(at[6 + 255], 0x68); /* next key: "username" (8 chars) */
	/* the invalid byte became U+FFFD: "u" + 3 bytes */
	assert_non_null(memmem(b.p, b.len, "\x64u\xef\xbf\xbd", 5));
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cbor_integers),
		cmocka_unit_test(test_cbor_items),
		cmocka_unit_test(test_insert_process_golden),
		cmocka_unit_test(test_insert_stream_golden),
		cmocka_unit_test(test_transit_golden),
		cmocka_unit_test(test_lz4_golden),
		cmocka_unit_test(test_insert_block_golden),
		cmocka_unit_test(test_spec_example_entries),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_static_string_utf8),
		cmocka_unit_test(test_many_names_unique_ids),
		cmocka_unit_test(test_event_order),
		cmocka_unit_test(test_payload),
		cmocka_unit_test(test_times_and_uuid),
		cmocka_unit_test(test_process_text_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
