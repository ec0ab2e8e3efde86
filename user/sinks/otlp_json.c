#include <inttypes.h>
#include <stdbool.h>
#include <time.h>
#include "sinks/otlp_json.h"
#include "sinks/span_attrs.h"
#include "output/span_print.h"

#define SPAN_KIND_INTERNAL 1

static void hex(FILE *f, const uint8_t *b, size_t n)
{
	putc('"', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
	putc('"', f);
}

static void span_id(FILE *f, uint64_t id)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(id >> (56 - 8 * i));
	hex(f, b, 8);
}

void sp_otlp_trace_id(uint8_t out[16], const uint8_t session[8], uint64_t query_id)
{
	for (int i = 0; i < 8; i++) {
		out[i] = session[i];
		out[8 + i] = (uint8_t)(query_id >> (56 - 8 * i));
	}
}

/* {"key":"k","value":{"stringValue":"v"}} */
static void attr_string(FILE *f, const char *key, const char *value, bool comma)
{
	fprintf(f, "%s{\"key\":", comma ? "," : "");
	sp_print_json_string(f, key);
	fputs(",\"value\":{\"stringValue\":", f);
	sp_print_json_string(f, value);
	fputs("}}", f);
}

/* int64 values are strings in proto3 JSON */
static void attr_int(FILE *f, const char *key, int64_t v, bool comma)
{
	fprintf(f, "%s{\"key\":\"%s\",\"value\":{\"intValue\":\"%" PRId64 "\"}}",
		comma ? "," : "", key, v);
}

/* A u64 past INT64_MAX has no intValue: its decimal text instead. */
static void attr_uint_text(FILE *f, const char *key, uint64_t v, bool comma)
{
	fprintf(f, "%s{\"key\":", comma ? "," : "");
	sp_print_json_string(f, key);
	fprintf(f, ",\"value\":{\"stringValue\":\"%" PRIu64 "\"}}", v);
}

static void attr_bool(FILE *f, const char *key, bool v, bool comma)
{
	fprintf(f, "%s{\"key\":\"%s\",\"value\":{\"boolValue\":%s}}",
		comma ? "," : "", key, v ? "true" : "false");
}

static void creation_time(FILE *f, uint64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000u);
	struct tm tm;
	char buf[64];

	gmtime_r(&secs, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + 19, sizeof(buf) - 19, ".%09" PRIu64 "Z", ns % 1000000000u);
	attr_string(f, "process.creation.time", buf, true);
}

static void resource(FILE *f, const struct sp_otlp_resource *r)
{
	fputs("\"resource\":{\"attributes\":[", f);
	attr_string(f, "service.name", r->service_name, false);
	attr_string(f, "host.name", r->host_name, true);
	attr_int(f, "process.pid", r->pid, true);
	attr_string(f, "process.executable.path", r->exe, true);
	attr_string(f, "process.executable.name", r->service_name, true);
	if (r->proc_start_ns)
		creation_time(f, r->proc_start_ns);
	fputs("]}", f);
}

static void span_attributes(FILE *f, const struct sp_span *s)
{
	struct sp_span_attr a[SP_SPAN_ATTRS_MAX];
	size_t n = sp_span_attrs(s, a);

	fputs(",\"attributes\":[", f);
	for (size_t i = 0; i < n; i++) {
		if (a[i].type == SP_ATTR_BOOL)
			attr_bool(f, a[i].key, a[i].value != 0, i > 0);
		else if (a[i].type == SP_ATTR_STRING)
			attr_string(f, a[i].key, a[i].str, i > 0);
		else if (a[i].type == SP_ATTR_UINT && a[i].value < 0)
			attr_uint_text(f, a[i].key, (uint64_t)a[i].value, i > 0);
		else
			attr_int(f, a[i].key, a[i].value, i > 0);
	}
	putc(']', f);
	/* a failed span: STATUS_CODE_ERROR (2); the rest keep the default */
	if (s->flags & SP_SPAN_ERROR)
		fputs(",\"status\":{\"code\":2}", f);
}

static void span(FILE *f, const uint8_t trace_id[16], const struct sp_span *s)
{
	fputs("{\"traceId\":", f);
	hex(f, trace_id, 16);
	fputs(",\"spanId\":", f);
	span_id(f, s->span_id);
	if (s->parent_span_id) {
		fputs(",\"parentSpanId\":", f);
		span_id(f, s->parent_span_id);
	}
	fputs(",\"name\":", f);
	sp_print_json_string(f, s->name);
	fprintf(f, ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRIu64 "\",\"endTimeUnixNano\":\"%" PRIu64 "\"",
		SPAN_KIND_INTERNAL, s->begin_ns, s->end_ns);
	span_attributes(f, s);
	putc('}', f);
}

void sp_otlp_write_json(FILE *f, const struct sp_otlp_resource *res,
			const uint8_t trace_id[16], const struct sp_span *spans, size_t n)
{
	fputs("{\"resourceSpans\":[{", f);
	resource(f, res);
	fputs(",\"scopeSpans\":[{\"scope\":{\"name\":\"spanprobe\"},\"spans\":[", f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			putc(',', f);
		span(f, trace_id, &spans[i]);
	}
	fputs("]}]}]}", f);
}
