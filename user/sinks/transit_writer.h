/*
 * micromegas "transit" encoding of async span events (wire note §2.6,
 * §2.7): the stream metadata that declares the layouts, the entries of
 * the dependencies and objects buffers, and the LZ4 frame around them.
 *
 * The layouts are exactly those of a Rust thread stream, so a spanprobe
 * stream is indistinguishable from one written by micromegas' own
 * tracing crate, and the golden vectors apply byte for byte.
 */
#ifndef SPANPROBE_TRANSIT_WRITER_H
#define SPANPROBE_TRANSIT_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Type bytes: indexes into the metadata arrays below. */
enum sp_transit_dep_type {
	SP_TRANSIT_SPAN_RECORD = 0,
	SP_TRANSIT_SPAN_LOCATION_RECORD = 1,
	SP_TRANSIT_STATIC_STRING = 2,
};
enum sp_transit_obj_type {
	SP_TRANSIT_BEGIN_ASYNC_SPAN = 4,
	SP_TRANSIT_END_ASYNC_SPAN = 5,
	SP_TRANSIT_BEGIN_ASYNC_NAMED_SPAN = 6,
	SP_TRANSIT_END_ASYNC_NAMED_SPAN = 7,
};

#define SP_TRANSIT_LOD_MAX 3 /* Verbosity::Max, what #[span_fn] uses */

/* The two CBOR arrays of an insert_stream body. */
void sp_transit_dependencies_metadata(FILE *cbor);
void sp_transit_objects_metadata(FILE *cbor);

/* A StaticString dependency. Bytes that are not UTF-8 become U+FFFD:
 * the server decodes strictly and would drop the whole block. */
void sp_transit_static_string(FILE *buf, uint64_t id, const char *s);

struct sp_transit_span_desc {
	uint64_t id;
	uint64_t name, target, module_path, file; /* StaticString ids */
	uint32_t line;
	uint32_t lod;
};
void sp_transit_span_record(FILE *buf, const struct sp_transit_span_desc *d);

/* SpanLocationRecord: the static half of a named span (no name). */
struct sp_transit_span_location {
	uint64_t id;
	uint64_t target, module_path, file; /* StaticString ids */
	uint32_t line;
	uint32_t lod;
};
void sp_transit_span_location_record(FILE *buf, const struct sp_transit_span_location *l);

struct sp_transit_async_event {
	uint64_t span_desc;      /* SpanRecord id */
	uint64_t span_id;
	uint64_t parent_span_id; /* 0 for a root */
	int64_t time;            /* absolute ticks */
	uint32_t depth;
};
void sp_transit_async_event(FILE *buf, bool begin, const struct sp_transit_async_event *e);

/* Begin/EndAsyncNamedSpanEvent: e->span_desc is a SpanLocationRecord id
 * and name a StaticString id whose text is name_len bytes long (the
 * StringId's second word, which micromegas' parser does not read). */
void sp_transit_async_named_event(FILE *buf, bool begin, const struct sp_transit_async_event *e,
				  uint64_t name, uint64_t name_len);

/* An LZ4 frame the way micromegas' Rust client makes one: linked 64 KiB
 * blocks, block and content checksums, level 10. Any frame decodes; this
 * one is also byte-identical to Rust's. *out is malloc'd. 0 or -1. */
int sp_transit_lz4(const void *src, size_t n, void **out, size_t *out_len);

#endif
