/*
 * libFuzzer harness: the block decoder and the block file reader.
 *
 * The first input byte picks how the rest is used:
 *   even  raw bytes: decoded as one block (sp_block_decode), then read as
 *         a whole file (sp_block_reader_*), which must report every
 *         damaged or truncated block with the file name and byte offset,
 *         resynchronise, and stop;
 *   odd   an uncompressed payload, wrapped here in a well-formed frame
 *         (zstd, both checksums), so that the payload parser is reached
 *         rather than bounced by the checksums.
 * A decoded block must be self-consistent: every name a readable string
 * inside the block, as many spans as the header says. It is encoded again
 * and must decode to the same spans.
 */
#include <zlib.h>
#include <zstd.h>
#include "output/block_format.h"
#include "fuzz_common.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* Frame header layout: docs/block-format.md. */
static uint8_t *wrap(const uint8_t *payload, size_t plen, size_t *out)
{
	size_t bound = ZSTD_compressBound(plen), clen;
	uint8_t *f = malloc(SP_BLOCK_FRAME_SIZE + bound);

	if (!f)
		return NULL;
	clen = ZSTD_compress(f + SP_BLOCK_FRAME_SIZE, bound, payload, plen, 1);
	if (ZSTD_isError(clen)) {
		free(f);
		return NULL;
	}
	memcpy(f, SP_BLOCK_MAGIC, SP_BLOCK_MAGIC_LEN);
	put32(f + 8, SP_BLOCK_VERSION);
	put32(f + 12, (uint32_t)clen);
	put32(f + 16, (uint32_t)plen);
	put32(f + 20, crc(f + SP_BLOCK_FRAME_SIZE, clen));
	put32(f + 24, 0);
	put32(f + 28, crc(f, 28));
	*out = SP_BLOCK_FRAME_SIZE + clen;
	return f;
}

static void check_block(const struct sp_block *b, const void *storage)
{
	size_t sum = 0;
	struct sp_block again;
	void *enc = NULL, *st2 = NULL;
	size_t elen;
	char err[256] = "";

	if (!storage || b->n != b->hdr.n_spans || !b->hdr.exe) {
		fprintf(stderr, "block: decoded block inconsistent (%zu spans, header %llu)\n",
			b->n, (unsigned long long)b->hdr.n_spans);
		abort();
	}
	sum += strlen(b->hdr.exe);
	for (size_t i = 0; i < b->n; i++)
		sum += strlen(b->spans[i].name); /* ASan: inside the block */
	if (sum > SIZE_MAX / 2)
		abort(); /* (keeps the reads) */
	/* what was read can be written and read back identically */
	if (sp_block_encode(&b->hdr, b->spans, b->n, &enc, &elen))
		return; /* e.g. EFBIG: the writer's limits may be stricter */
	if (sp_block_decode(enc, elen, &again, &st2, err, sizeof(err))) {
		fprintf(stderr, "block: a re-encoded block does not decode: %s\n", err);
		abort();
	}
	if (again.n != b->n || strcmp(again.hdr.exe, b->hdr.exe) != 0) {
		fprintf(stderr, "block: round trip changed the block\n");
		abort();
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct sp_span *x = &b->spans[i], *y = &again.spans[i];

		if (x->query_id != y->query_id || x->span_id != y->span_id ||
		    x->parent_span_id != y->parent_span_id || x->begin_ns != y->begin_ns ||
		    x->end_ns != y->end_ns || x->tid != y->tid || x->pid != y->pid ||
		    x->depth != y->depth || x->flags != y->flags || strcmp(x->name, y->name) != 0) {
			fprintf(stderr, "block: round trip changed span %zu\n", i);
			abort();
		}
	}
	free(st2);
	free(enc);
}

static void decode_one(const uint8_t *p, size_t n)
{
	struct sp_block b;
	void *storage = NULL;
	char err[256] = "";

	if (sp_block_decode(p, n, &b, &storage, err, sizeof(err))) {
		fuzz_check_err("block decode", err, sizeof(err), NULL);
		if (storage) {
			fprintf(stderr, "block: failed decode left storage\n");
			abort();
		}
		return;
	}
	check_block(&b, storage);
	free(storage);
}

static void read_file(const uint8_t *p, size_t n)
{
	char path[64], err[512];
	int fd = fuzz_memfd(p, n, path, sizeof(path));
	struct sp_block_reader *r = sp_block_reader_open(path, err, sizeof(err));
	struct sp_block b;
	size_t errors = 0, blocks = 0;
	int rc;

	if (!r) {
		fprintf(stderr, "block: cannot open %s: %s\n", path, err);
		abort();
	}
	/* each error moves on by at least a byte: the loop ends */
	while (err[0] = '\0', (rc = sp_block_reader_next(r, &b, err, sizeof(err))) != 0) {
		if (rc < 0) {
			fuzz_check_err("block reader", err, sizeof(err), path);
			if (!strstr(err, "offset")) {
				fprintf(stderr, "block reader: no byte offset in: %s\n", err);
				abort();
			}
			if (++errors > n + 1) {
				fprintf(stderr, "block reader: more errors than bytes\n");
				abort();
			}
			continue;
		}
		blocks++;
		if (b.n != b.hdr.n_spans) {
			fprintf(stderr, "block reader: inconsistent block\n");
			abort();
		}
		for (size_t i = 0; i < b.n; i++)
			(void)strlen(b.spans[i].name);
	}
	sp_block_reader_close(r);
	close(fd);
	(void)blocks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		size_t n;
		uint8_t *blk = wrap(data + 1, size - 1, &n);

		if (blk) {
			decode_one(blk, n);
			read_file(blk, n);
			free(blk);
		}
		return 0;
	}
	decode_one(data + 1, size - 1);
	read_file(data + 1, size - 1);
	return 0;
}
