#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "sinks/cbor_writer.h"
#include "sinks/micromegas_records.h"
#include "sinks/transit_writer.h"
#include "base/utf8_clean.h"

#define MM_TEXT_MAX 255

/* CBOR text must be UTF-8, or ciborium rejects the body with a 400. */
static void text(FILE *f, const char *s, size_t max)
{
	sp_cbor_head(f, SP_CBOR_TEXT, sp_utf8_clean(NULL, s, max));
	sp_utf8_clean(f, s, max);
}

static void key_text(FILE *f, const char *key, const char *value, size_t max)
{
	sp_cbor_text(f, key);
	text(f, value, max);
}

static void key_int(FILE *f, const char *key, int64_t v)
{
	sp_cbor_text(f, key);
	sp_cbor_int(f, v);
}

static void properties(FILE *f, const struct sp_mm_property *p, size_t n)
{
	sp_cbor_text(f, "properties");
	sp_cbor_map(f, n);
	for (size_t i = 0; i < n; i++) {
		text(f, p[i].key, SIZE_MAX);
		text(f, p[i].value, SIZE_MAX);
	}
}

void sp_mm_process_body(FILE *f, const struct sp_mm_process *p)
{
	char start[40];

	sp_mm_time_auto(start, p->start_time_ns);
	sp_cbor_map(f, 12);
	sp_cbor_kv_text(f, "process_id", p->process_id);
	key_text(f, "exe", p->exe, MM_TEXT_MAX);
	key_text(f, "username", p->username, MM_TEXT_MAX);
	key_text(f, "realname", p->realname, MM_TEXT_MAX);
	key_text(f, "computer", p->computer, MM_TEXT_MAX);
	key_text(f, "distro", p->distro, MM_TEXT_MAX);
	key_text(f, "cpu_brand", p->cpu_brand, MM_TEXT_MAX);
	key_int(f, "tsc_frequency", (int64_t)p->tsc_frequency);
	sp_cbor_kv_text(f, "start_time", start);
	key_int(f, "start_ticks", p->start_ticks);
	sp_cbor_text(f, "parent_process_id");
	if (p->parent_process_id)
		sp_cbor_text(f, p->parent_process_id);
	else
		sp_cbor_null(f);
	properties(f, p->properties, p->n_properties);
}

void sp_mm_stream_body(FILE *f, const struct sp_mm_stream *s)
{
	sp_cbor_map(f, 6);
	sp_cbor_kv_text(f, "process_id", s->process_id);
	sp_cbor_kv_text(f, "stream_id", s->stream_id);
	sp_cbor_text(f, "dependencies_metadata");
	sp_transit_dependencies_metadata(f);
	sp_cbor_text(f, "objects_metadata");
	sp_transit_objects_metadata(f);
	sp_cbor_text(f, "tags");
	sp_cbor_array(f, s->n_tags);
	for (size_t i = 0; i < s->n_tags; i++)
		text(f, s->tags[i], SIZE_MAX);
	properties(f, s->properties, s->n_properties);
}

void sp_mm_block_body(FILE *f, const struct sp_mm_block *b)
{
	char begin[40], end[40];

	sp_mm_time_nanos(begin, b->begin_time_ns);
	sp_mm_time_nanos(end, b->end_time_ns);
	sp_cbor_map(f, 10);
	sp_cbor_kv_text(f, "block_id", b->block_id);
	sp_cbor_kv_text(f, "stream_id", b->stream_id);
	sp_cbor_kv_text(f, "process_id", b->process_id);
	sp_cbor_kv_text(f, "begin_time", begin);
	key_int(f, "begin_ticks", b->begin_ticks);
	sp_cbor_kv_text(f, "end_time", end);
	key_int(f, "end_ticks", b->end_ticks);
	sp_cbor_text(f, "payload");
	sp_cbor_map(f, 2);
	sp_cbor_text(f, "dependencies");
	sp_cbor_bytes(f, b->deps_lz4, b->deps_len);
	sp_cbor_text(f, "objects");
	sp_cbor_bytes(f, b->objs_lz4, b->objs_len);
	key_int(f, "object_offset", b->object_offset);
	key_int(f, "nb_objects", b->nb_objects);
}

/* "YYYY-MM-DDTHH:MM:SS" of a Unix time; returns the fractional ns. */
static uint32_t date_time(char out[40], uint64_t unix_ns)
{
	time_t secs = (time_t)(unix_ns / 1000000000u);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	return (uint32_t)(unix_ns % 1000000000u);
}

void sp_mm_time_nanos(char out[40], uint64_t unix_ns)
{
	uint32_t ns = date_time(out, unix_ns);
	size_t len = strlen(out);

	snprintf(out + len, 40 - len, ".%09" PRIu32 "+00:00", ns);
}

void sp_mm_time_auto(char out[40], uint64_t unix_ns)
{
	uint32_t ns = date_time(out, unix_ns);
	size_t len = strlen(out);

	if (ns == 0)
		snprintf(out + len, 40 - len, "Z");
	else if (ns % 1000000 == 0)
		snprintf(out + len, 40 - len, ".%03" PRIu32 "Z", ns / 1000000);
	else if (ns % 1000 == 0)
		snprintf(out + len, 40 - len, ".%06" PRIu32 "Z", ns / 1000);
	else
		snprintf(out + len, 40 - len, ".%09" PRIu32 "Z", ns);
}

int sp_mm_uuid_v4(char out[SP_MM_UUID_LEN + 1])
{
	unsigned char b[16];
	char *p = out;

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		p += sprintf(p, "%02x", b[i]);
	}
	return 0;
}
