#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>
#include "sinks/cbor_writer.h"
#include "sinks/transit_writer.h"
#include "base/utf8_clean.h"

/* ---- layouts (wire note §2.7; stream_metadata.txt of the vectors) ---- */

struct member {
	const char *name, *type_name;
	uint32_t offset, size;
	bool is_reference;
};

struct udt {
	const char *name;
	uint32_t size; /* 0: dynamically sized, u32 length prefix */
	bool is_reference;
	const struct member *members;
	size_t n_members;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define STR_REF "* const u8"

static const struct member span_record[] = {
	{ "id", "u64", 0, 8, false },
	{ "name", STR_REF, 8, 8, true },
	{ "target", STR_REF, 16, 8, true },
	{ "module_path", STR_REF, 24, 8, true },
	{ "file", STR_REF, 32, 8, true },
	{ "line", "u32", 40, 4, false },
	{ "lod", "u32", 44, 4, false },
};
static const struct member span_location_record[] = {
	{ "id", "u64", 0, 8, false },
	{ "target", STR_REF, 8, 8, true },
	{ "module_path", STR_REF, 16, 8, true },
	{ "file", STR_REF, 24, 8, true },
	{ "line", "u32", 32, 4, false },
	{ "lod", "u32", 36, 4, false },
};
static const struct udt deps_types[] = {
	{ "SpanRecord", 48, false, span_record, N(span_record) },
	{ "SpanLocationRecord", 40, false, span_location_record, N(span_location_record) },
	{ "StaticString", 0, false, NULL, 0 },
};

static const struct member thread_span[] = {
	{ "thread_span_desc", "& 'static SpanMetadata", 0, 8, true },
	{ "time", "i64", 8, 8, false },
};
static const struct member thread_named_span[] = {
	{ "thread_span_location", "& 'static SpanLocation", 0, 8, true },
	{ "name", "StringId", 8, 16, false },
	{ "time", "i64", 24, 8, false },
};
/* depth is declared before time although it lies after it: the Rust
 * struct's field order, kept so the metadata bytes match */
static const struct member async_span[] = {
	{ "span_desc", "& 'static SpanMetadata", 0, 8, true },
	{ "span_id", "u64", 8, 8, false },
	{ "parent_span_id", "u64", 16, 8, false },
	{ "depth", "u32", 32, 4, false },
	{ "time", "i64", 24, 8, false },
};
static const struct member async_named_span[] = {
	{ "span_location", "& 'static SpanLocation", 0, 8, true },
	{ "name", "StringId", 8, 16, false },
	{ "span_id", "u64", 24, 8, false },
	{ "parent_span_id", "u64", 32, 8, false },
	{ "depth", "u32", 48, 4, false },
	{ "time", "i64", 40, 8, false },
};
static const struct member string_id[] = {
	{ "id", "usize", 0, 8, true },
};
static const struct udt obj_types[] = {
	{ "BeginThreadSpanEvent", 16, false, thread_span, N(thread_span) },
	{ "EndThreadSpanEvent", 16, false, thread_span, N(thread_span) },
	{ "BeginThreadNamedSpanEvent", 32, false, thread_named_span, N(thread_named_span) },
	{ "EndThreadNamedSpanEvent", 32, false, thread_named_span, N(thread_named_span) },
	{ "BeginAsyncSpanEvent", 40, false, async_span, N(async_span) },
	{ "EndAsyncSpanEvent", 40, false, async_span, N(async_span) },
	{ "BeginAsyncNamedSpanEvent", 56, false, async_named_span, N(async_named_span) },
	{ "EndAsyncNamedSpanEvent", 56, false, async_named_span, N(async_named_span) },
	{ "StringId", 16, true, string_id, N(string_id) },
};

/* Key order is serde's: the Rust field order. */
static void write_member(FILE *f, const struct member *m)
{
	sp_cbor_map(f, 5);
	sp_cbor_kv_text(f, "name", m->name);
	sp_cbor_kv_text(f, "type_name", m->type_name);
	sp_cbor_text(f, "offset");
	sp_cbor_uint(f, m->offset);
	sp_cbor_text(f, "size");
	sp_cbor_uint(f, m->size);
	sp_cbor_text(f, "is_reference");
	sp_cbor_bool(f, m->is_reference);
}

static void write_udts(FILE *f, const struct udt *t, size_t n)
{
	sp_cbor_array(f, n);
	for (size_t i = 0; i < n; i++) {
		sp_cbor_map(f, 4);
		sp_cbor_kv_text(f, "name", t[i].name);
		sp_cbor_text(f, "size");
		sp_cbor_uint(f, t[i].size);
		sp_cbor_text(f, "members");
		sp_cbor_array(f, t[i].n_members);
		for (size_t j = 0; j < t[i].n_members; j++)
			write_member(f, &t[i].members[j]);
		sp_cbor_text(f, "is_reference");
		sp_cbor_bool(f, t[i].is_reference);
	}
}

void sp_transit_dependencies_metadata(FILE *cbor)
{
	write_udts(cbor, deps_types, N(deps_types));
}

void sp_transit_objects_metadata(FILE *cbor)
{
	write_udts(cbor, obj_types, N(obj_types));
}

/* ---- entries: a type byte, [u32 size], then the little-endian body ---- */

static void put_le(FILE *f, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++)
		putc((int)((v >> (8 * i)) & 0xff), f);
}

void sp_transit_static_string(FILE *buf, uint64_t id, const char *s)
{
	size_t len = sp_utf8_clean(NULL, s, SIZE_MAX);

	putc(SP_TRANSIT_STATIC_STRING, buf);
	put_le(buf, 8 + len, 4);
	put_le(buf, id, 8);
	sp_utf8_clean(buf, s, SIZE_MAX);
}

void sp_transit_span_record(FILE *buf, const struct sp_transit_span_desc *d)
{
	putc(SP_TRANSIT_SPAN_RECORD, buf);
	put_le(buf, d->id, 8);
	put_le(buf, d->name, 8);
	put_le(buf, d->target, 8);
	put_le(buf, d->module_path, 8);
	put_le(buf, d->file, 8);
	put_le(buf, d->line, 4);
	put_le(buf, d->lod, 4);
}

void sp_transit_span_location_record(FILE *buf, const struct sp_transit_span_location *l)
{
	putc(SP_TRANSIT_SPAN_LOCATION_RECORD, buf);
	put_le(buf, l->id, 8);
	put_le(buf, l->target, 8);
	put_le(buf, l->module_path, 8);
	put_le(buf, l->file, 8);
	put_le(buf, l->line, 4);
	put_le(buf, l->lod, 4);
}

/* Layout of async_named_span above: name (a StringId: id, length) sits
 * between the location and the ids. */
void sp_transit_async_named_event(FILE *buf, bool begin, const struct sp_transit_async_event *e,
				  uint64_t name, uint64_t name_len)
{
	putc(begin ? SP_TRANSIT_BEGIN_ASYNC_NAMED_SPAN : SP_TRANSIT_END_ASYNC_NAMED_SPAN, buf);
	put_le(buf, e->span_desc, 8);
	put_le(buf, name, 8);
	put_le(buf, name_len, 8);
	put_le(buf, e->span_id, 8);
	put_le(buf, e->parent_span_id, 8);
	put_le(buf, (uint64_t)e->time, 8);
	put_le(buf, e->depth, 4);
	put_le(buf, 0, 4); /* the struct's tail padding */
}

void sp_transit_async_event(FILE *buf, bool begin, const struct sp_transit_async_event *e)
{
	putc(begin ? SP_TRANSIT_BEGIN_ASYNC_SPAN : SP_TRANSIT_END_ASYNC_SPAN, buf);
	put_le(buf, e->span_desc, 8);
	put_le(buf, e->span_id, 8);
	put_le(buf, e->parent_span_id, 8);
	put_le(buf, (uint64_t)e->time, 8);
	put_le(buf, e->depth, 4);
	put_le(buf, 0, 4); /* the struct's tail padding */
}

/* ---- LZ4 frame ---------------------------------------------------------- */

#define LZ4_CHUNK (64u * 1024u)

int sp_transit_lz4(const void *src, size_t n, void **out, size_t *out_len)
{
	LZ4F_preferences_t prefs;
	LZ4F_cctx *cctx = NULL;
	const char *in = src;
	size_t cap, len, r;
	char *dst;

	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.blockSizeID = LZ4F_max64KB;
	prefs.frameInfo.blockMode = LZ4F_blockLinked;
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
	prefs.compressionLevel = 10;
	/* each update gets its own worst case, so chunking cannot overflow */
	cap = LZ4F_HEADER_SIZE_MAX + (n / LZ4_CHUNK + 1) * LZ4F_compressBound(LZ4_CHUNK, &prefs) +
	      LZ4F_compressBound(0, &prefs);
	dst = malloc(cap);
	if (!dst || LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)))
		goto fail;
	r = LZ4F_compressBegin(cctx, dst, cap, &prefs);
	if (LZ4F_isError(r))
		goto fail;
	len = r;
	for (size_t off = 0; off < n; off += LZ4_CHUNK) {
		size_t chunk = n - off < LZ4_CHUNK ? n - off : LZ4_CHUNK;

		r = LZ4F_compressUpdate(cctx, dst + len, cap - len, in + off, chunk, NULL);
		if (LZ4F_isError(r))
			goto fail;
		len += r;
	}
	r = LZ4F_compressEnd(cctx, dst + len, cap - len, NULL);
	if (LZ4F_isError(r))
		goto fail;
	LZ4F_freeCompressionContext(cctx);
	*out = dst;
	*out_len = len + r;
	return 0;
fail:
	LZ4F_freeCompressionContext(cctx);
	free(dst);
	return -1;
}
