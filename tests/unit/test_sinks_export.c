/*
 * OTLP/JSON and Perfetto JSON encodings, the span attributes they share,
 * and OTLP header parsing. The integration test feeds the same output to
 * the official OTLP schema and to DevTools' trace engine; here the exact
 * text is pinned so any change is deliberate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sinks/otlp_json.h"
#include "sinks/sink_otlp.h"
#include "sinks/sink_perfetto.h"
#include "sinks/span_attrs.h"

#define T0 1795644062123456789ull

static struct sp_span mk(uint64_t id, uint64_t parent, uint32_t depth, const char *name,
			 uint64_t begin, uint64_t end)
{
	return (struct sp_span){ .query_id = 0x10, .span_id = id, .parent_span_id = parent,
		.begin_ns = begin, .end_ns = end, .name = name, .pid = 77, .tid = 78,
		.depth = depth };
}

static char *otlp(const struct sp_span *s, size_t n)
{
	static const uint8_t session[8] = { 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3 };
	struct sp_otlp_resource res = {
		.service_name = "qserver", .host_name = "box", .exe = "/opt/qserver",
		.pid = 77, .proc_start_ns = T0 - 5000000000ull,
	};
	uint8_t trace_id[16];
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	sp_otlp_trace_id(trace_id, session, s[0].query_id);
	sp_otlp_write_json(f, &res, trace_id, s, n);
	assert_int_equal(fclose(f), 0);
	return out;
}

static void test_otlp_json(void **state)
{
	struct sp_span s[2] = {
		mk(0x10, 0, 0, "handle_query", T0, T0 + 1500000000),
		mk(0x12, 0x10, 1, "ns::\"quoted\"\n", T0 + 1000, T0 + 2000),
	};
	char *j;

	(void)state;
	s[1].flags = SP_SPAN_ABNORMAL;
	j = otlp(s, 2);
	assert_string_equal(j,
		"{\"resourceSpans\":[{\"resource\":{\"attributes\":["
		"{\"key\":\"service.name\",\"value\":{\"stringValue\":\"qserver\"}},"
		"{\"key\":\"host.name\",\"value\":{\"stringValue\":\"box\"}},"
		"{\"key\":\"process.pid\",\"value\":{\"intValue\":\"77\"}},"
		"{\"key\":\"process.executable.path\",\"value\":{\"stringValue\":\"/opt/qserver\"}},"
		"{\"key\":\"process.executable.name\",\"value\":{\"stringValue\":\"qserver\"}},"
		"{\"key\":\"process.creation.time\",\"value\":{\"stringValue\":\"2026-11-25T22:00:57.123456789Z\"}}]},"
		"\"scopeSpans\":[{\"scope\":{\"name\":\"spanprobe\"},\"spans\":["
		"{\"traceId\":\"deadbeef000102030000000000000010\",\"spanId\":\"0000000000000010\","
		"\"name\":\"handle_query\",\"kind\":1,\"startTimeUnixNano\":\"1795644062123456789\","
		"\"endTimeUnixNano\":\"1795644063623456789\",\"attributes\":["
		"{\"key\":\"thread.id\",\"value\":{\"intValue\":\"78\"}}]},"
		"{\"traceId\":\"deadbeef000102030000000000000010\",\"spanId\":\"0000000000000012\","
		"\"parentSpanId\":\"0000000000000010\",\"name\":\"ns::\\\"quoted\\\"\\n\",\"kind\":1,"
		"\"startTimeUnixNano\":\"1795644062123457789\",\"endTimeUnixNano\":\"1795644062123458789\","
		"\"attributes\":[{\"key\":\"thread.id\",\"value\":{\"intValue\":\"78\"}},"
		"{\"key\":\"spanprobe.abnormal\",\"value\":{\"boolValue\":true}}]}]}]}]}");
	free(j);
}

/* Async spans will fill these; native ones leave them 0 = absent. */
static void test_span_attrs_optional(void **state)
{
	struct sp_span s = mk(1, 0, 0, "f", 1, 2);
	struct sp_span_attr a[SP_SPAN_ATTRS_MAX];
	size_t n;
	char *j;

	(void)state;
	n = sp_span_attrs(&s, a);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].key, "thread.id");
	assert_int_equal(a[0].value, 78);
	s.poll_count = 8;
	s.uncertainty_lo_ns = 60000;
	s.uncertainty_hi_ns = 10000;
	s.flags = SP_SPAN_INCOMPLETE;
	n = sp_span_attrs(&s, a);
	assert_int_equal(n, 5);
	assert_string_equal(a[1].key, "spanprobe.poll_count");
	assert_int_equal(a[1].value, 8);
	assert_string_equal(a[2].key, "spanprobe.uncertainty_lo_ns");
	assert_int_equal(a[2].value, 60000);
	assert_string_equal(a[3].key, "spanprobe.uncertainty_hi_ns");
	assert_int_equal(a[3].value, 10000);
	assert_string_equal(a[4].key, "spanprobe.incomplete");
	assert_int_equal(a[4].type, SP_ATTR_BOOL);
	j = otlp(&s, 1);
	assert_non_null(strstr(j, "{\"key\":\"spanprobe.poll_count\",\"value\":{\"intValue\":\"8\"}},"
			       "{\"key\":\"spanprobe.uncertainty_lo_ns\",\"value\":{\"intValue\":\"60000\"}},"
			       "{\"key\":\"spanprobe.uncertainty_hi_ns\",\"value\":{\"intValue\":\"10000\"}},"
			       "{\"key\":\"spanprobe.incomplete\",\"value\":{\"boolValue\":true}}"));
	free(j);
	/* a nested async span that may stand for several instances says so */
	s.flags = SP_SPAN_MERGED;
	n = sp_span_attrs(&s, a);
	assert_int_equal(n, 5);
	assert_string_equal(a[4].key, "spanprobe.merged");
	assert_int_equal(a[4].type, SP_ATTR_BOOL);
	j = otlp(&s, 1);
	assert_non_null(strstr(j, "{\"key\":\"spanprobe.merged\",\"value\":{\"boolValue\":true}}"));
	free(j);
}

/* Captured values: under their own names, unread ones marked, never
 * invented; a failed span has OTLP status ERROR. */
static void test_span_attrs_captures(void **state)
{
	struct sp_span s = mk(1, 0, 0, "postgresql:query", 1, 2);
	struct sp_span_caps c = { 0 };
	struct sp_span_attr a[SP_SPAN_ATTRS_MAX];
	size_t n;
	char *j;

	(void)state;
	c.n = 4;
	c.v[0] = (struct sp_span_cap){ .name = "query", .type = SP_SPAN_CAP_STR_T,
				       .status = SP_SPAN_CAP_TRUNCATED };
	strcpy(c.v[0].str, "SELECT \"x\"");
	c.v[1] = (struct sp_span_cap){ .name = "rows", .type = SP_SPAN_CAP_I64,
				       .status = SP_SPAN_CAP_OK, .num = (uint64_t)-3 };
	c.v[2] = (struct sp_span_cap){ .name = "ptr", .type = SP_SPAN_CAP_STR_T,
				       .status = SP_SPAN_CAP_UNREADABLE };
	c.v[3] = (struct sp_span_cap){ .name = "big", .type = SP_SPAN_CAP_U64,
				       .status = SP_SPAN_CAP_OK, .num = UINT64_MAX };
	s.caps = &c;
	s.flags = SP_SPAN_ERROR;
	n = sp_span_attrs(&s, a);
	assert_int_equal(n, 7);
	assert_string_equal(a[1].key, "spanprobe.error");
	assert_string_equal(a[2].key, "query");
	assert_string_equal(a[2].str, "SELECT \"x\"");
	assert_int_equal(a[3].value, -3);
	assert_string_equal(a[4].str, "<unreadable>");
	assert_int_equal(a[5].type, SP_ATTR_UINT);
	assert_string_equal(a[6].key, "spanprobe.truncated");
	j = otlp(&s, 1);
	assert_non_null(strstr(j, "{\"key\":\"query\",\"value\":{\"stringValue\":\"SELECT \\\"x\\\"\"}},"
			       "{\"key\":\"rows\",\"value\":{\"intValue\":\"-3\"}},"
			       "{\"key\":\"ptr\",\"value\":{\"stringValue\":\"<unreadable>\"}},"
			       "{\"key\":\"big\",\"value\":{\"stringValue\":\"18446744073709551615\"}},"
			       "{\"key\":\"spanprobe.truncated\",\"value\":{\"boolValue\":true}}],"
			       "\"status\":{\"code\":2}"));
	free(j);
}

static void test_otlp_headers(void **state)
{
	char **h, err[128];
	size_t n;

	(void)state;
	assert_int_equal(sp_otlp_parse_headers("Authorization=Bearer%20abc, x-tenant = t1 ,", &h, &n,
					       err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(h[0], "Authorization: Bearer abc");
	assert_string_equal(h[1], "x-tenant: t1");
	free(h[0]);
	free(h[1]);
	free(h);
	assert_int_equal(sp_otlp_parse_headers(NULL, &h, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	/* a value that would smuggle in a header, and an entry without '=' */
	assert_int_equal(sp_otlp_parse_headers("a=b%0d%0aX-Evil: 1", &h, &n, err, sizeof(err)), -1);
	assert_null(strstr(err, "Evil"));
	assert_int_equal(sp_otlp_parse_headers("a=b,secret", &h, &n, err, sizeof(err)), -1);
	assert_null(strstr(err, "secret"));
}

/* ---- Perfetto ------------------------------------------------------------ */

static char tmpl[] = "/tmp/spanprobe-perfetto-XXXXXX";

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 16);

	assert_non_null(f);
	assert_non_null(buf);
	fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	return buf;
}

static void test_perfetto_file(void **state)
{
	struct sp_block_header h = { .pid = 77, .exe = "/opt/qserver", .proc_start_ns = T0 - 1000000 };
	struct sp_span q1[] = {
		mk(0x10, 0, 0, "handle_query", T0, T0 + 2000000),
		mk(0x11, 0x10, 1, "merge", T0 + 1000, T0 + 1298),
		mk(0x12, 0x10, 1, "finalize", T0 + 1298, T0 + 2000),
	};
	struct sp_span q2[] = { mk(0x20, 0, 0, "handle_query", T0 + 5000000, T0 + 6000000) };
	char path[64], err[128], *text;
	struct sp_perfetto *p;
	struct stat st;

	(void)state;
	q2[0].query_id = 0x20;
	assert_non_null(mkdtemp(tmpl));
	snprintf(path, sizeof(path), "%s/t.json", tmpl);
	p = sp_perfetto_open(path, err, sizeof(err));
	assert_non_null(p);
	sp_perfetto_query(p, &h, q1, 3);
	sp_perfetto_query(p, &h, q2, 1);
	assert_int_equal(sp_perfetto_queries(p), 2);
	assert_int_equal(sp_perfetto_close(p), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(path);
	assert_string_equal(text,
		"[\n"
		"{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":77,\"tid\":0,\"args\":{\"name\":\"qserver (pid 77)\","
		"\"time_origin_unix_ns\":\"1795644062122456789\"}},\n"
		"{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":77,\"tid\":1,\"args\":{\"name\":\"query 1: handle_query (tid 78, 2.0 ms)\"}},\n"
		"{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":77,\"tid\":1,\"args\":{\"sort_index\":1}},\n"
		"{\"ph\":\"X\",\"cat\":\"spanprobe\",\"name\":\"handle_query\",\"pid\":77,\"tid\":1,"
		"\"ts\":1000.0000000000,\"dur\":2000.0000000000,\"args\":{\"span_id\":\"16\",\"parent_span_id\":\"0\",\"depth\":0,\"thread.id\":78}},\n"
		"{\"ph\":\"X\",\"cat\":\"spanprobe\",\"name\":\"merge\",\"pid\":77,\"tid\":1,"
		"\"ts\":1001.0000000000,\"dur\":0.2978515625,\"args\":{\"span_id\":\"17\",\"parent_span_id\":\"16\",\"depth\":1,\"thread.id\":78}},\n"
		"{\"ph\":\"X\",\"cat\":\"spanprobe\",\"name\":\"finalize\",\"pid\":77,\"tid\":1,"
		"\"ts\":1001.2978515625,\"dur\":0.7021484375,\"args\":{\"span_id\":\"18\",\"parent_span_id\":\"16\",\"depth\":1,\"thread.id\":78}},\n"
		"{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":77,\"tid\":2,\"args\":{\"name\":\"query 2: handle_query (tid 78, 1.0 ms)\"}},\n"
		"{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":77,\"tid\":2,\"args\":{\"sort_index\":2}},\n"
		"{\"ph\":\"X\",\"cat\":\"spanprobe\",\"name\":\"handle_query\",\"pid\":77,\"tid\":2,"
		"\"ts\":6000.0000000000,\"dur\":1000.0000000000,\"args\":{\"span_id\":\"32\",\"parent_span_id\":\"0\",\"depth\":0,\"thread.id\":78}}\n"
		"]\n");
	free(text);
	unlink(path);
	/* a symlink at the path is refused, as for the block file */
	assert_int_equal(symlink("/tmp/elsewhere", path), 0);
	assert_null(sp_perfetto_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, "symbolic link"));
	unlink(path);
	rmdir(tmpl);
}

/* Whatever the ns, round(ts * 1000) in doubles gives it back, and ts + dur
 * of a slice equals the ts of a slice that begins where it ends. */
static void test_perfetto_times_exact(void **state)
{
	uint32_t seed = 1;

	(void)state;
	for (int i = 0; i < 2000; i++) {
		struct sp_block_header h = { .pid = 1, .exe = "x", .proc_start_ns = T0 };
		uint64_t b, m, e;
		struct sp_span s[2];
		char *buf = NULL, err[64], path[] = "/tmp/spanprobe-pf-XXXXXX";
		double ts0, dur0, ts1;
		int fd = mkstemp(path);
		struct sp_perfetto *p;
		const char *x;

		seed = seed * 1103515245u + 12345u;
		b = T0 + (uint64_t)seed * 977u % 86400000000000ull; /* within a day */
		seed = seed * 1103515245u + 12345u;
		m = b + seed % 5000000000u;
		e = m + seed % 777777u + 1;
		s[0] = mk(1, 0, 0, "a", b, m);
		s[1] = mk(2, 0, 0, "b", m, e);
		s[0].query_id = s[1].query_id = 1;
		close(fd);
		unlink(path);
		p = sp_perfetto_open(path, err, sizeof(err));
		assert_non_null(p);
		sp_perfetto_query(p, &h, s, 2);
		assert_int_equal(sp_perfetto_close(p), 0);
		buf = slurp(path);
		unlink(path);
		x = strstr(buf, "\"name\":\"a\"");
		assert_non_null(x);
		assert_int_equal(sscanf(strstr(x, "\"ts\":") + 5, "%lf", &ts0), 1);
		assert_int_equal(sscanf(strstr(x, "\"dur\":") + 6, "%lf", &dur0), 1);
		x = strstr(buf, "\"name\":\"b\"");
		assert_int_equal(sscanf(strstr(x, "\"ts\":") + 5, "%lf", &ts1), 1);
		assert_int_equal((uint64_t)llround(ts0 * 1000) + T0, b);
		assert_int_equal((uint64_t)llround((ts0 + dur0) * 1000) + T0, m);
		assert_true(ts0 + dur0 == ts1);
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_otlp_json),
		cmocka_unit_test(test_span_attrs_optional),
		cmocka_unit_test(test_span_attrs_captures),
		cmocka_unit_test(test_otlp_headers),
		cmocka_unit_test(test_perfetto_file),
		cmocka_unit_test(test_perfetto_times_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
