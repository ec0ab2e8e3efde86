/*
 * A minimal CBOR (RFC 8949) encoder for the micromegas ingestion bodies.
 *
 * Definite lengths and minimal heads only: that is what serde/ciborium
 * emits, so bodies can be compared byte for byte with Rust's. Output goes
 * to a stdio stream (open_memstream() for a buffer); errors show up in
 * ferror() of that stream, so callers check once at the end.
 */
#ifndef SPANPROBE_CBOR_WRITER_H
#define SPANPROBE_CBOR_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum sp_cbor_major {
	SP_CBOR_UINT = 0,
	SP_CBOR_NEGINT = 1,
	SP_CBOR_BYTES = 2,
	SP_CBOR_TEXT = 3,
	SP_CBOR_ARRAY = 4,
	SP_CBOR_MAP = 5,
	SP_CBOR_SIMPLE = 7,
};

/* The head of an item: major type and argument, shortest form. */
void sp_cbor_head(FILE *f, enum sp_cbor_major major, uint64_t arg);
void sp_cbor_uint(FILE *f, uint64_t v);
void sp_cbor_int(FILE *f, int64_t v);
void sp_cbor_text(FILE *f, const char *s);            /* NUL-terminated */
void sp_cbor_text_n(FILE *f, const char *s, size_t n);
void sp_cbor_bytes(FILE *f, const void *p, size_t n);
void sp_cbor_bool(FILE *f, bool v);
void sp_cbor_null(FILE *f);
/* Containers: the caller then writes n items (n key/value pairs). */
void sp_cbor_array(FILE *f, size_t n);
void sp_cbor_map(FILE *f, size_t n);
/* A text key followed by a text value: the common map entry. */
void sp_cbor_kv_text(FILE *f, const char *key, const char *value);

#endif
