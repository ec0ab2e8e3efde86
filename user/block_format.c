/*
 * Block files (layout in docs/block-format.md).
 *
 * Every field is serialised byte by byte in little-endian so the files
 * are portable and no struct padding reaches the disk. The decoder treats
 * its input as hostile: it is the target of a fuzzer, and a block file
 * may be cut short by a crash or damaged on disk.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>
#include "block_format.h"

#define FRAME_SIZE SP_BLOCK_FRAME_SIZE
#define PHDR_SIZE 64u /* block header at the start of the payload */
#define REC_SIZE 64u  /* one span record */
#define MAX_SPANS ((SP_BLOCK_MAX_PAYLOAD - PHDR_SIZE) / REC_SIZE)
#define MAX_CLEN ZSTD_COMPRESSBOUND(SP_BLOCK_MAX_PAYLOAD)
#define SCAN_CHUNK 65536u

/* Frame header field offsets. */
enum { F_MAGIC = 0, F_VERSION = 8, F_CLEN = 12, F_ULEN = 16, F_PCRC = 20,
       F_RESERVED = 24, F_HCRC = 28 };
/* Block header (payload) field offsets. */
enum { H_VERSION = 0, H_PID = 4, H_START = 8, H_RBEGIN = 16, H_REND = 24,
       H_NSPANS = 32, H_DROPPED = 40, H_EXE = 48, H_NSTR = 52, H_STRLEN = 56,
       H_RESERVED = 60 };
/* Span record field offsets. */
enum { R_QUERY = 0, R_SPAN = 8, R_PARENT = 16, R_BEGIN = 24, R_END = 32,
       R_NAME = 40, R_PID = 44, R_TID = 48, R_DEPTH = 52, R_FLAGS = 56,
       R_RESERVED = 60 };

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Lengths here never exceed MAX_CLEN, which fits zlib's uInt. */
static uint32_t crc(const uint8_t *p, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

/* ---- encoding ---------------------------------------------------------- */

/* Deduplicating string table: open addressing over string indices, sized
 * once for the worst case (every name distinct) so it never rehashes. */
struct strtab {
	const char **str;
	size_t *len;
	size_t n;
	size_t bytes;    /* serialised size, NULs included */
	uint32_t *slot;  /* string index + 1; 0 is empty */
	size_t mask;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

static int strtab_init(struct strtab *t, size_t max_strings)
{
	size_t cap = 16;

	while (cap < 2 * max_strings)
		cap *= 2;
	memset(t, 0, sizeof(*t));
	t->str = malloc(max_strings * sizeof(*t->str));
	t->len = malloc(max_strings * sizeof(*t->len));
	t->slot = calloc(cap, sizeof(*t->slot));
	t->mask = cap - 1;
	if (!t->str || !t->len || !t->slot)
		return -1;
	return 0;
}

static void strtab_free(struct strtab *t)
{
	free(t->str);
	free(t->len);
	free(t->slot);
}

/* Index of s, added if new; -1 when the block would outgrow its limit. */
static int strtab_intern(struct strtab *t, const char *s, uint32_t *idx)
{
	size_t len, i;

	if (!s)
		s = "";
	len = strlen(s);
	for (i = hash_bytes(s, len) & t->mask; t->slot[i]; i = (i + 1) & t->mask) {
		uint32_t e = t->slot[i] - 1;

		if (t->len[e] == len && memcmp(t->str[e], s, len) == 0) {
			*idx = e;
			return 0;
		}
	}
	if (len >= SP_BLOCK_MAX_PAYLOAD - t->bytes)
		return -1;
	t->str[t->n] = s;
	t->len[t->n] = len;
	t->bytes += len + 1;
	*idx = (uint32_t)t->n++;
	t->slot[i] = *idx + 1;
	return 0;
}

/* exe goes first so that even an empty block has one string. */
static int intern_all(struct strtab *t, const struct sp_block_header *h,
		      const struct sp_span *spans, size_t n,
		      uint32_t *exe_idx, uint32_t *name_idx)
{
	if (strtab_intern(t, h->exe, exe_idx))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strtab_intern(t, spans[i].name, &name_idx[i]))
			return -1;
	return 0;
}

static void put_block_header(uint8_t *p, const struct sp_block_header *h,
			     const struct sp_span *spans, size_t n,
			     const struct strtab *t, uint32_t exe_idx)
{
	uint64_t lo = n ? UINT64_MAX : 0, hi = 0;

	for (size_t i = 0; i < n; i++) {
		if (spans[i].begin_ns < lo)
			lo = spans[i].begin_ns;
		if (spans[i].end_ns > hi)
			hi = spans[i].end_ns;
	}
	put32(p + H_VERSION, SP_BLOCK_VERSION);
	put32(p + H_PID, h->pid);
	put64(p + H_START, h->proc_start_ns);
	put64(p + H_RBEGIN, lo);
	put64(p + H_REND, hi);
	put64(p + H_NSPANS, n);
	put64(p + H_DROPPED, h->dropped_events);
	put32(p + H_EXE, exe_idx);
	put32(p + H_NSTR, (uint32_t)t->n);
	put32(p + H_STRLEN, (uint32_t)t->bytes);
	put32(p + H_RESERVED, 0);
}

static void put_record(uint8_t *p, const struct sp_span *s, uint32_t name)
{
	put64(p + R_QUERY, s->query_id);
	put64(p + R_SPAN, s->span_id);
	put64(p + R_PARENT, s->parent_span_id);
	put64(p + R_BEGIN, s->begin_ns);
	put64(p + R_END, s->end_ns);
	put32(p + R_NAME, name);
	put32(p + R_PID, s->pid);
	put32(p + R_TID, s->tid);
	put32(p + R_DEPTH, s->depth);
	put32(p + R_FLAGS, s->flags);
	put32(p + R_RESERVED, 0);
}

static uint8_t *build_payload(const struct sp_block_header *h,
			      const struct sp_span *spans, size_t n,
			      const struct strtab *t, uint32_t exe_idx,
			      const uint32_t *name_idx, size_t *plen)
{
	uint8_t *p, *q;

	*plen = PHDR_SIZE + t->bytes + n * REC_SIZE;
	if (*plen > SP_BLOCK_MAX_PAYLOAD) {
		errno = EFBIG;
		return NULL;
	}
	p = malloc(*plen);
	if (!p)
		return NULL;
	put_block_header(p, h, spans, n, t, exe_idx);
	q = p + PHDR_SIZE;
	for (size_t i = 0; i < t->n; i++) {
		memcpy(q, t->str[i], t->len[i] + 1);
		q += t->len[i] + 1;
	}
	for (size_t i = 0; i < n; i++, q += REC_SIZE)
		put_record(q, &spans[i], name_idx[i]);
	return p;
}

static void put_frame_header(uint8_t *p, size_t clen, size_t ulen)
{
	memcpy(p + F_MAGIC, SP_BLOCK_MAGIC, SP_BLOCK_MAGIC_LEN);
	put32(p + F_VERSION, SP_BLOCK_VERSION);
	put32(p + F_CLEN, (uint32_t)clen);
	put32(p + F_ULEN, (uint32_t)ulen);
	put32(p + F_PCRC, crc(p + FRAME_SIZE, clen));
	put32(p + F_RESERVED, 0);
	put32(p + F_HCRC, crc(p, F_HCRC));
}

/* The context is kept per thread: the sinks write one small block per
 * query, and a fresh context per block would dominate the cost. */
static ZSTD_CCtx *compressor(void)
{
	static _Thread_local ZSTD_CCtx *cctx;

	if (!cctx) {
		cctx = ZSTD_createCCtx();
		if (cctx && ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1))) {
			ZSTD_freeCCtx(cctx);
			cctx = NULL;
		}
	}
	return cctx;
}

static int compress_frame(const uint8_t *payload, size_t plen,
			  void **out, size_t *out_len)
{
	size_t bound = ZSTD_compressBound(plen), clen;
	ZSTD_CCtx *cctx = compressor();
	uint8_t *buf;

	if (!cctx) {
		errno = ENOMEM;
		return -1;
	}
	buf = malloc(FRAME_SIZE + bound);
	if (!buf)
		return -1;
	clen = ZSTD_compress2(cctx, buf + FRAME_SIZE, bound, payload, plen);
	if (ZSTD_isError(clen)) {
		free(buf);
		errno = EIO;
		return -1;
	}
	put_frame_header(buf, clen, plen);
	*out = buf;
	*out_len = FRAME_SIZE + clen;
	return 0;
}

int sp_block_encode(const struct sp_block_header *h,
		    const struct sp_span *spans, size_t n,
		    void **out, size_t *out_len)
{
	struct strtab t;
	uint32_t exe_idx, *name_idx = NULL;
	uint8_t *payload = NULL;
	size_t plen;
	int rc = -1;

	if (!h || (n && !spans) || !out || !out_len) {
		errno = EINVAL;
		return -1;
	}
	if (n > MAX_SPANS) {
		errno = EFBIG;
		return -1;
	}
	if (strtab_init(&t, n + 1) || !(name_idx = malloc((n + 1) * sizeof(*name_idx))))
		goto out;
	if (intern_all(&t, h, spans, n, &exe_idx, name_idx)) {
		errno = EFBIG;
		goto out;
	}
	payload = build_payload(h, spans, n, &t, exe_idx, name_idx, &plen);
	if (payload)
		rc = compress_frame(payload, plen, out, out_len);
out:
	free(payload);
	free(name_idx);
	strtab_free(&t);
	return rc;
}

int sp_block_write(FILE *f, const struct sp_block_header *h,
		   const struct sp_span *spans, size_t n)
{
	void *buf;
	size_t len;
	int rc = 0;

	if (!f) {
		errno = EINVAL;
		return -1;
	}
	if (sp_block_encode(h, spans, n, &buf, &len))
		return -1;
	/* One write per block: a crash can cut only the block in flight,
	 * and the reader recognises that as a truncated final block. */
	if (fwrite(buf, 1, len, f) != len || fflush(f))
		rc = -1;
	free(buf);
	return rc;
}

/* ---- decoding ---------------------------------------------------------- */

struct frame {
	uint32_t clen, ulen, pcrc;
};

static bool frame_crc_ok(const uint8_t *p)
{
	return memcmp(p + F_MAGIC, SP_BLOCK_MAGIC, SP_BLOCK_MAGIC_LEN) == 0 &&
	       crc(p, F_HCRC) == get32(p + F_HCRC);
}

/* Checks the FRAME_SIZE bytes at p. The header checksum comes before any
 * use of the lengths, so garbage cannot make the reader swallow or
 * allocate a bogus amount. */
static int frame_parse(const uint8_t *p, struct frame *f, char *err, size_t errlen)
{
	uint32_t version = get32(p + F_VERSION);

	if (memcmp(p + F_MAGIC, SP_BLOCK_MAGIC, SP_BLOCK_MAGIC_LEN) != 0) {
		set_err(err, errlen, "bad magic");
		return -1;
	}
	if (!frame_crc_ok(p)) {
		set_err(err, errlen, "frame header checksum mismatch");
		return -1;
	}
	if (version != SP_BLOCK_VERSION) {
		set_err(err, errlen, "unsupported format version %u (this build reads %u)",
			version, SP_BLOCK_VERSION);
		return -1;
	}
	f->clen = get32(p + F_CLEN);
	f->ulen = get32(p + F_ULEN);
	f->pcrc = get32(p + F_PCRC);
	if (f->ulen < PHDR_SIZE || f->ulen > SP_BLOCK_MAX_PAYLOAD) {
		set_err(err, errlen, "uncompressed length %u out of range", f->ulen);
		return -1;
	}
	if (f->clen == 0 || f->clen > MAX_CLEN) {
		set_err(err, errlen, "compressed length %u out of range", f->clen);
		return -1;
	}
	return 0;
}

/* Pointers to the n NUL-terminated strings that must fill p[0..len)
 * exactly; NULL (with err) if the table is malformed. */
static const char **strtab_parse(const uint8_t *p, size_t len, uint32_t n,
				 char *err, size_t errlen)
{
	const char **v;
	size_t pos = 0;
	uint32_t i;

	if (n > len || (len && p[len - 1] != 0)) {
		set_err(err, errlen, "malformed string table (%u strings in %zu bytes)", n, len);
		return NULL;
	}
	v = malloc((n ? n : 1) * sizeof(*v));
	if (!v) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	/* the last byte is a NUL, so memchr always finds one */
	for (i = 0; i < n && pos < len; i++) {
		const uint8_t *nul = memchr(p + pos, 0, len - pos);

		v[i] = (const char *)p + pos;
		pos = (size_t)(nul - p) + 1;
	}
	if (i == n && pos == len)
		return v;
	free(v);
	set_err(err, errlen, "string table does not hold exactly %u strings", n);
	return NULL;
}

static int parse_records(const uint8_t *p, size_t n, const char **str,
			 uint32_t n_str, struct sp_span *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++, p += REC_SIZE) {
		uint32_t name = get32(p + R_NAME);

		if (name >= n_str) {
			set_err(err, errlen, "span %zu: string index %u out of range (%u strings)",
				i, name, n_str);
			return -1;
		}
		out[i].query_id = get64(p + R_QUERY);
		out[i].span_id = get64(p + R_SPAN);
		out[i].parent_span_id = get64(p + R_PARENT);
		out[i].begin_ns = get64(p + R_BEGIN);
		out[i].end_ns = get64(p + R_END);
		out[i].name = str[name];
		out[i].pid = get32(p + R_PID);
		out[i].tid = get32(p + R_TID);
		out[i].depth = get32(p + R_DEPTH);
		out[i].flags = get32(p + R_FLAGS);
	}
	return 0;
}

static void get_block_header(const uint8_t *p, struct sp_block_header *h)
{
	h->version = get32(p + H_VERSION);
	h->pid = get32(p + H_PID);
	h->proc_start_ns = get64(p + H_START);
	h->range_begin_ns = get64(p + H_RBEGIN);
	h->range_end_ns = get64(p + H_REND);
	h->n_spans = get64(p + H_NSPANS);
	h->dropped_events = get64(p + H_DROPPED);
}

/* Checks that the sections add up to exactly len bytes. */
static int check_layout(const uint8_t *p, size_t len, const struct sp_block_header *h,
			char *err, size_t errlen)
{
	uint32_t slen = get32(p + H_STRLEN);
	size_t rest;

	if (h->version != SP_BLOCK_VERSION) {
		set_err(err, errlen, "block header version %u does not match the frame",
			h->version);
		return -1;
	}
	if (slen > len - PHDR_SIZE) {
		set_err(err, errlen, "string table (%u bytes) overruns the payload (%zu bytes)",
			slen, len);
		return -1;
	}
	rest = len - PHDR_SIZE - slen;
	if (rest % REC_SIZE || rest / REC_SIZE != h->n_spans) {
		set_err(err, errlen, "%llu spans do not fill the %zu bytes left for them",
			(unsigned long long)h->n_spans, rest);
		return -1;
	}
	return 0;
}

/* Fills b from the decompressed payload p; spans has room for every
 * record the payload could hold. */
static int payload_parse(const uint8_t *p, size_t len, struct sp_span *spans,
			 struct sp_block *b, char *err, size_t errlen)
{
	uint32_t exe = get32(p + H_EXE), n_str = get32(p + H_NSTR);
	uint32_t slen = get32(p + H_STRLEN);
	const char **str;
	int rc;

	get_block_header(p, &b->hdr);
	if (check_layout(p, len, &b->hdr, err, errlen))
		return -1;
	if (exe >= n_str) {
		set_err(err, errlen, "exe string index %u out of range (%u strings)", exe, n_str);
		return -1;
	}
	str = strtab_parse(p + PHDR_SIZE, slen, n_str, err, errlen);
	if (!str)
		return -1;
	b->hdr.exe = str[exe];
	b->spans = spans;
	b->n = (size_t)b->hdr.n_spans;
	rc = parse_records(p + PHDR_SIZE + slen, b->n, str, n_str, spans, err, errlen);
	free(str);
	return rc;
}

/* z holds f->clen compressed bytes. The zstd frame must be exactly one
 * frame whose declared content size is the frame header's. */
static int check_zstd(const struct frame *f, const uint8_t *z, char *err, size_t errlen)
{
	size_t fsize = ZSTD_findFrameCompressedSize(z, f->clen);
	unsigned long long csize = ZSTD_getFrameContentSize(z, f->clen);

	if (crc(z, f->clen) != f->pcrc) {
		set_err(err, errlen, "payload checksum mismatch");
		return -1;
	}
	if (ZSTD_isError(fsize) || fsize != f->clen) {
		set_err(err, errlen, "payload is not a single zstd frame of %u bytes", f->clen);
		return -1;
	}
	if (csize != f->ulen) {
		set_err(err, errlen, "zstd content size does not match the frame header");
		return -1;
	}
	return 0;
}

static int frame_decode(const struct frame *f, const uint8_t *z, struct sp_block *b,
			void **storage, char *err, size_t errlen)
{
	/* spans first, the payload after: one allocation backs the block */
	size_t max_spans = (f->ulen - PHDR_SIZE) / REC_SIZE;
	size_t span_bytes = max_spans * sizeof(struct sp_span), got;
	uint8_t *mem, *payload;

	if (check_zstd(f, z, err, errlen))
		return -1;
	mem = malloc(span_bytes + f->ulen);
	if (!mem) {
		set_err(err, errlen, "out of memory for a %u-byte block", f->ulen);
		return -1;
	}
	payload = mem + span_bytes;
	got = ZSTD_decompress(payload, f->ulen, z, f->clen);
	if (ZSTD_isError(got) || got != f->ulen) {
		set_err(err, errlen, "zstd: %s",
			ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
		free(mem);
		return -1;
	}
	if (payload_parse(payload, f->ulen, (struct sp_span *)(void *)mem, b, err, errlen)) {
		free(mem);
		memset(b, 0, sizeof(*b));
		return -1;
	}
	*storage = mem;
	return 0;
}

int sp_block_decode(const void *buf, size_t len, struct sp_block *b,
		    void **storage, char *err, size_t errlen)
{
	const uint8_t *p = buf;
	struct frame f;

	if (!b || !storage) {
		set_err(err, errlen, "invalid argument");
		return -1;
	}
	memset(b, 0, sizeof(*b));
	*storage = NULL;
	if (!p || len < FRAME_SIZE) {
		set_err(err, errlen, "have %zu bytes, a block needs at least %u", len,
			(unsigned)FRAME_SIZE);
		return -1;
	}
	if (frame_parse(p, &f, err, errlen))
		return -1;
	if (len - FRAME_SIZE != f.clen) {
		set_err(err, errlen, "have %zu bytes, the block is %zu", len,
			(size_t)FRAME_SIZE + f.clen);
		return -1;
	}
	return frame_decode(&f, p + FRAME_SIZE, b, storage, err, errlen);
}

/* ---- file reader ------------------------------------------------------- */

enum rd_state { RD_OK, RD_RESYNC, RD_DONE };

/* A sliding window over the file rather than seeks, so that pipes work. */
struct sp_block_reader {
	FILE *f;
	char *path;
	uint8_t *buf;
	size_t cap, head, tail; /* unread bytes are buf[head..tail) */
	uint64_t off;           /* file offset of buf[head] */
	enum rd_state state;
	void *storage;          /* backs the block returned last */
};

struct sp_block_reader *sp_block_reader_open(const char *path, char *err, size_t errlen)
{
	struct sp_block_reader *r;
	struct stat st;
	FILE *f = fopen(path, "rb");

	if (!f) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		set_err(err, errlen, "%s: %s", path, strerror(EISDIR));
		fclose(f);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r)
		r->path = strdup(path);
	if (!r || !r->path) {
		set_err(err, errlen, "%s: out of memory", path);
		free(r);
		fclose(f);
		return NULL;
	}
	r->f = f;
	return r;
}

void sp_block_reader_close(struct sp_block_reader *r)
{
	if (!r)
		return;
	fclose(r->f);
	free(r->storage);
	free(r->buf);
	free(r->path);
	free(r);
}

static int make_room(struct sp_block_reader *r, size_t want)
{
	size_t have = r->tail - r->head;

	if (have)
		memmove(r->buf, r->buf + r->head, have);
	r->head = 0;
	r->tail = have;
	if (r->cap < want) {
		size_t cap = want < SCAN_CHUNK ? SCAN_CHUNK : want;
		uint8_t *nb = realloc(r->buf, cap);

		if (!nb)
			return -1;
		r->buf = nb;
		r->cap = cap;
	}
	return 0;
}

/* Makes up to want bytes readable at buf[head]; *have is how many are,
 * fewer only at end of file. -1 on read error or out of memory. */
static int fill(struct sp_block_reader *r, size_t want, size_t *have)
{
	size_t avail = r->tail - r->head;

	if (avail < want) {
		if (r->cap - r->head < want && make_room(r, want))
			return -1;
		r->tail += fread(r->buf + r->tail, 1, want - avail, r->f);
		if (ferror(r->f))
			return -1;
		avail = r->tail - r->head;
	}
	*have = avail < want ? avail : want;
	return 0;
}

static void consume(struct sp_block_reader *r, size_t n)
{
	r->head += n;
	r->off += n;
}

/* Moves to the next offset holding a frame header with a good checksum
 * (or a magic cut short by end of file). 0: found, 1: end of file,
 * -1: read error. */
static int resync(struct sp_block_reader *r)
{
	for (;;) {
		size_t have, hdr;
		const uint8_t *m;

		if (fill(r, SCAN_CHUNK, &have))
			return -1;
		m = memmem(r->buf + r->head, have, SP_BLOCK_MAGIC, SP_BLOCK_MAGIC_LEN);
		if (!m) {
			bool eof = have < SCAN_CHUNK;
			/* keep a tail that may be the start of a magic */
			size_t keep = eof ? 0 : SP_BLOCK_MAGIC_LEN - 1;

			consume(r, have - keep);
			if (eof)
				return 1;
			continue;
		}
		consume(r, (size_t)(m - (r->buf + r->head)));
		if (fill(r, FRAME_SIZE, &hdr))
			return -1;
		if (hdr < FRAME_SIZE || frame_crc_ok(r->buf + r->head))
			return 0;
		consume(r, 1);
	}
}

static int read_failed(struct sp_block_reader *r, char *err, size_t errlen)
{
	set_err(err, errlen, "%s: read error at offset %llu: %s", r->path,
		(unsigned long long)r->off, strerror(errno ? errno : EIO));
	r->state = RD_DONE;
	return -1;
}

/* The next call scans from the byte after the bad block's start: its
 * length cannot be trusted, and a block appended after a crash may
 * follow a truncated one. */
static int skip_bad(struct sp_block_reader *r)
{
	consume(r, 1);
	r->state = RD_RESYNC;
	return -1;
}

static int truncated(struct sp_block_reader *r, size_t have, size_t need,
		     char *err, size_t errlen)
{
	set_err(err, errlen, "%s: truncated block at offset %llu (have %zu of %zu bytes)",
		r->path, (unsigned long long)r->off, have, need);
	return skip_bad(r);
}

static int corrupted(struct sp_block_reader *r, const char *why, char *err, size_t errlen)
{
	set_err(err, errlen, "%s: corrupted block at offset %llu: %s; skipping to the next block",
		r->path, (unsigned long long)r->off, why);
	return skip_bad(r);
}

static int read_block(struct sp_block_reader *r, struct sp_block *b,
		      char *err, size_t errlen)
{
	char why[192];
	struct frame f;
	size_t have, total;

	if (fill(r, FRAME_SIZE, &have))
		return read_failed(r, err, errlen);
	if (have == 0) {
		r->state = RD_DONE;
		return 0;
	}
	if (have < FRAME_SIZE) {
		size_t m = have < SP_BLOCK_MAGIC_LEN ? have : SP_BLOCK_MAGIC_LEN;

		if (memcmp(r->buf + r->head, SP_BLOCK_MAGIC, m) != 0)
			return corrupted(r, "bad magic", err, errlen);
		return truncated(r, have, FRAME_SIZE, err, errlen);
	}
	if (frame_parse(r->buf + r->head, &f, why, sizeof(why)))
		return corrupted(r, why, err, errlen);
	total = FRAME_SIZE + (size_t)f.clen;
	if (fill(r, total, &have))
		return read_failed(r, err, errlen);
	if (have < total)
		return truncated(r, have, total, err, errlen);
	if (frame_decode(&f, r->buf + r->head + FRAME_SIZE, b, &r->storage, why, sizeof(why)))
		return corrupted(r, why, err, errlen);
	consume(r, total);
	return 1;
}

int sp_block_reader_next(struct sp_block_reader *r, struct sp_block *b,
			 char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	free(r->storage);
	r->storage = NULL;
	if (r->state == RD_RESYNC) {
		int rc = resync(r);

		if (rc < 0)
			return read_failed(r, err, errlen);
		r->state = rc ? RD_DONE : RD_OK;
	}
	if (r->state == RD_DONE)
		return 0;
	return read_block(r, b, err, errlen);
}
