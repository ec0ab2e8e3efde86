/*
 * Bodies of micromegas' three native ingestion requests (wire note §2.2
 * to §2.4): insert_process, insert_stream and insert_block, each one CBOR
 * map with the Rust field names as keys, in the Rust field order so the
 * bytes match the golden vectors.
 */
#ifndef SPANPROBE_MICROMEGAS_RECORDS_H
#define SPANPROBE_MICROMEGAS_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SP_MM_UUID_LEN 36 /* lowercase, hyphenated, without the NUL */

struct sp_mm_property {
	const char *key, *value;
};

struct sp_mm_process {
	const char *process_id;
	/* text columns are VARCHAR(255) on the server: cut to 255 bytes */
	const char *exe, *username, *realname, *computer, *distro, *cpu_brand;
	uint64_t tsc_frequency;  /* ticks per second */
	uint64_t start_time_ns;  /* Unix ns */
	int64_t start_ticks;     /* tick value at start_time */
	const char *parent_process_id; /* NULL: none, sent as null */
	const struct sp_mm_property *properties;
	size_t n_properties;
};

struct sp_mm_stream {
	const char *process_id, *stream_id;
	const char *const *tags;
	size_t n_tags;
	const struct sp_mm_property *properties;
	size_t n_properties;
};

struct sp_mm_block {
	const char *block_id, *stream_id, *process_id;
	uint64_t begin_time_ns, end_time_ns; /* Unix ns, covering the events */
	int64_t begin_ticks, end_ticks;      /* relative to start_ticks */
	const void *deps_lz4;                /* LZ4 frames of the two */
	size_t deps_len;                     /* transit buffers */
	const void *objs_lz4;
	size_t objs_len;
	int64_t object_offset; /* objects in earlier blocks of the stream */
	int32_t nb_objects;
};

void sp_mm_process_body(FILE *f, const struct sp_mm_process *p);
void sp_mm_stream_body(FILE *f, const struct sp_mm_stream *s);
void sp_mm_block_body(FILE *f, const struct sp_mm_block *b);

/* "2026-01-01T00:00:00.000000900+00:00": what the Rust client sends for
 * block times (nanoseconds, numeric offset). */
void sp_mm_time_nanos(char out[40], uint64_t unix_ns);
/* "2026-01-01T00:00:00Z", "...00.5Z": chrono's serde form, with 0, 3, 6
 * or 9 fraction digits, used for the process start time. */
void sp_mm_time_auto(char out[40], uint64_t unix_ns);

/* A random (version 4) UUID. 0, or -1 if the kernel gave no randomness. */
int sp_mm_uuid_v4(char out[SP_MM_UUID_LEN + 1]);

#endif
