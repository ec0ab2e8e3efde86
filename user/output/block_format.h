/*
 * Block files: a sequence of self-contained zstd-compressed blocks, each
 * with its own header and string table (docs/block-format.md).
 */
#ifndef SPANPROBE_BLOCK_FORMAT_H
#define SPANPROBE_BLOCK_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "spans/span.h"
#include "output/sym_stats.h"

/* Written: SP_BLOCK_VERSION. Read: every version from SP_BLOCK_MIN_VERSION
 * (v1 has 64-byte span records and no statistics section; v2 80-byte
 * records, 1432-byte statistics entries and no captures section). */
#define SP_BLOCK_VERSION 3
#define SP_BLOCK_MIN_VERSION 1

/* Frame header constants (docs/block-format.md has the byte layout). */
#define SP_BLOCK_MAGIC "\x89SPB\r\n\x1a\n" /* 8 bytes, no NUL on disk */
#define SP_BLOCK_MAGIC_LEN 8
#define SP_BLOCK_FRAME_SIZE 32
#define SP_BLOCK_MAX_PAYLOAD (256u << 20) /* uncompressed bytes per block */

struct sp_block_header {
	uint32_t version;
	uint32_t pid;
	const char *exe;
	uint64_t proc_start_ns;  /* wall-clock Unix ns */
	uint64_t range_begin_ns; /* wall-clock, min begin of the spans */
	uint64_t range_end_ns;   /* wall-clock, max end of the spans */
	uint64_t n_spans;
	uint64_t dropped_events; /* lost so far in the session, cumulative */
	uint32_t n_stats;        /* statistics entries (v2; 0 in v1) */
};

/* Writer: one call per block; the block is on disk (fsync not implied)
 * when it returns 0. range, n_spans and n_stats are computed from what is
 * written, and SP_BLOCK_VERSION is written whatever h->version says. A
 * NULL exe or span name is stored as "". -1 with errno set on failure
 * (EFBIG: the block would exceed SP_BLOCK_MAX_PAYLOAD). */
int sp_block_write(FILE *f, const struct sp_block_header *h,
		   const struct sp_span *spans, size_t n);

/* A block with no spans and n per-symbol statistics entries. Its range
 * is h->range_begin_ns .. h->range_end_ns as given: the time the figures
 * cover (0 when unknown). NULL strings are stored as "". */
int sp_block_write_stats(FILE *f, const struct sp_block_header *h,
			 const struct sp_sym_report *stats, size_t n);

/* Encodes into a malloc'd buffer (for tests and the fuzz harness);
 * the caller frees *out. */
int sp_block_encode(const struct sp_block_header *h,
		    const struct sp_span *spans, size_t n,
		    void **out, size_t *out_len);
int sp_block_encode_stats(const struct sp_block_header *h,
			  const struct sp_sym_report *stats, size_t n,
			  void **out, size_t *out_len);

struct sp_block_reader;

struct sp_block {
	struct sp_block_header hdr; /* strings point into the block */
	struct sp_span *spans;      /* names point into the block */
	size_t n;
	struct sp_sym_report *stats; /* strings point into the block */
	size_t n_stats;
};

struct sp_block_reader *sp_block_reader_open(const char *path, char *err, size_t errlen);
/* 1: a block was read into *b (valid until the next call),
 * 0: clean end of file,
 * -1: error; err says what and at which byte offset. A truncated final
 *     block is reported this way, and reading stops there. A corrupted
 *     block in the middle is reported; the next call resynchronises on
 *     the next block magic and carries on from there. */
int sp_block_reader_next(struct sp_block_reader *r, struct sp_block *b,
			 char *err, size_t errlen);
void sp_block_reader_close(struct sp_block_reader *r);

/* Decodes one block from memory (fuzz harness, tests): buf must hold
 * exactly one whole block. On success *b points into *storage, which the
 * caller releases with free(); on failure *storage is NULL and err says
 * why (without file name or offset). */
int sp_block_decode(const void *buf, size_t len, struct sp_block *b,
		    void **storage, char *err, size_t errlen);

#endif
