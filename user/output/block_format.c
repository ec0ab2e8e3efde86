/*
 * Block files (layout in docs/block-format.md).
 *
 * Every field is serialised byte by byte in little-endian so the files
 * are portable and no struct padding reaches the disk. The decoder treats
 * its input as hostile: it is the target of a fuzzer, and a block file
 * may be cut short by a crash or damaged on disk.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>
#include "output/block_format.h"
#include "base/errmsg.h"

#define FRAME_SIZE SP_BLOCK_FRAME_SIZE
#define PHDR_SIZE 64u    /* block header at the start of the payload */
#define REC_SIZE_V1 64u  /* one span record, version 1 */
#define REC_SIZE_V2 80u  /* one span record, version 2 */
#define REC_SIZE 88u     /* one span record, version 3 */
#define HIST_OFF 88u     /* histogram inside a statistics entry */
#define STAT_SIZE_V2 (HIST_OFF + 8u * SP_HIST_BUCKETS) /* statistics entry, v2 */
#define STAT_SIZE (STAT_SIZE_V2 + 8u) /* v3: errors appended */
#define CAP_SIZE 16u     /* one captured value (v3) */
#define MAX_SPANS ((SP_BLOCK_MAX_PAYLOAD - PHDR_SIZE) / REC_SIZE)
#define MAX_STATS ((SP_BLOCK_MAX_PAYLOAD - PHDR_SIZE) / STAT_SIZE)
#define MAX_CLEN ZSTD_COMPRESSBOUND(SP_BLOCK_MAX_PAYLOAD)
#define SCAN_CHUNK 65536u

/* The v2 layout spells out 168 histogram counters and their bucketing
 * (docs/block-format.md): changing either is a new format version. */
_Static_assert(SP_HIST_BUCKETS == 168 && SP_HIST_SUB == 4,
	       "histogram layout changed: bump SP_BLOCK_VERSION");
_Static_assert(STAT_SIZE_V2 == 1432, "statistics entry size");
_Static_assert(SP_SPAN_CAPS_MAX == 4 && SP_SPAN_CAP_STR == 127,
	       "capture limits changed: bump SP_BLOCK_VERSION");

/* Frame header field offsets. */
enum { F_MAGIC = 0, F_VERSION = 8, F_CLEN = 12, F_ULEN = 16, F_PCRC = 20,
       F_RESERVED = 24, F_HCRC = 28 };
/* Block header (payload) field offsets; H_NSTATS is v1's reserved word. */
enum { H_VERSION = 0, H_PID = 4, H_START = 8, H_RBEGIN = 16, H_REND = 24,
       H_NSPANS = 32, H_DROPPED = 40, H_EXE = 48, H_NSTR = 52, H_STRLEN = 56,
       H_NSTATS = 60 };
/* Span record field offsets; v1 records end at 64 (R_POLLS is reserved). */
enum { R_QUERY = 0, R_SPAN = 8, R_PARENT = 16, R_BEGIN = 24, R_END = 32,
       R_NAME = 40, R_PID = 44, R_TID = 48, R_DEPTH = 52, R_FLAGS = 56,
       R_POLLS = 60, R_UNC_LO = 64, R_UNC_HI = 72, R_CAPS = 80, R_NCAPS = 84 };
/* Captured value field offsets (v3). */
enum { C_NAME = 0, C_TYPE = 4, C_STATUS = 5, C_VALUE = 8 };
/* Statistics entry field offsets (v2). */
enum { S_NAME = 0, S_RAW = 4, S_OBJECT = 8, S_ROLE = 12, S_CALLS = 16,
       S_TOTAL = 24, S_MAX = 32, S_UNDER = 40, S_OUTSIDE = 48, S_ABNORMAL = 56,
       S_KEPT = 64, S_COST = 72, S_MINSPAN = 80, S_HIST = HIST_OFF,
       S_ERRORS = STAT_SIZE_V2 };
/* Largest role a v2 entry may hold (enum sp_role: span 0, root 1). */
#define MAX_ROLE 1u

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

/* What one block holds, as the encoder sees it. */
struct content {
	const struct sp_block_header *h;
	const struct sp_span *spans;
	size_t n;
	const struct sp_sym_report *stats;
	size_t n_stats;
};

/* String indices of a block's contents: exe, then per span its name,
 * then per statistics entry its name, raw name and object. */
struct indices {
	uint32_t exe;
	uint32_t *span;  /* n */
	uint32_t *stat;  /* 3 * n_stats */
	uint32_t *cap;   /* per span, SP_SPAN_CAPS_MAX x (name, string value) */
	size_t n_caps;   /* captured values in the block */
};

/* exe goes first so that even an empty block has one string. */
static int intern_all(struct strtab *t, const struct content *c, struct indices *ix)
{
	if (strtab_intern(t, c->h->exe, &ix->exe))
		return -1;
	for (size_t i = 0; i < c->n; i++)
		if (strtab_intern(t, c->spans[i].name, &ix->span[i]))
			return -1;
	ix->n_caps = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct sp_span_caps *cp = c->spans[i].caps;
		uint32_t *slot = &ix->cap[i * 2 * SP_SPAN_CAPS_MAX];

		for (uint32_t k = 0; cp && k < cp->n && k < SP_SPAN_CAPS_MAX; k++) {
			const struct sp_span_cap *v = &cp->v[k];

			if (strtab_intern(t, v->name, &slot[2 * k]) ||
			    (v->type == SP_SPAN_CAP_STR_T && strtab_intern(t, v->str, &slot[2 * k + 1])))
				return -1;
			ix->n_caps++;
		}
	}
	for (size_t i = 0; i < c->n_stats; i++) {
		const struct sp_sym_report *r = &c->stats[i];

		if (strtab_intern(t, r->name, &ix->stat[3 * i]) ||
		    strtab_intern(t, r->raw, &ix->stat[3 * i + 1]) ||
		    strtab_intern(t, r->object, &ix->stat[3 * i + 2]))
			return -1;
	}
	return 0;
}

/* The range covers the spans; a block without spans (statistics) keeps
 * the caller's, the time its figures cover. */
static void span_range(const struct content *c, uint64_t *lo, uint64_t *hi)
{
	if (!c->n) {
		*lo = c->h->range_begin_ns;
		*hi = c->h->range_end_ns;
		return;
	}
	*lo = UINT64_MAX;
	*hi = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (c->spans[i].begin_ns < *lo)
			*lo = c->spans[i].begin_ns;
		if (c->spans[i].end_ns > *hi)
			*hi = c->spans[i].end_ns;
	}
}

static void put_block_header(uint8_t *p, const struct content *c,
			     const struct strtab *t, uint32_t exe_idx)
{
	uint64_t lo, hi;

	span_range(c, &lo, &hi);
	put32(p + H_VERSION, SP_BLOCK_VERSION);
	put32(p + H_PID, c->h->pid);
	put64(p + H_START, c->h->proc_start_ns);
	put64(p + H_RBEGIN, lo);
	put64(p + H_REND, hi);
	put64(p + H_NSPANS, c->n);
	put64(p + H_DROPPED, c->h->dropped_events);
	put32(p + H_EXE, exe_idx);
	put32(p + H_NSTR, (uint32_t)t->n);
	put32(p + H_STRLEN, (uint32_t)t->bytes);
	put32(p + H_NSTATS, (uint32_t)c->n_stats);
}

static uint32_t n_caps_of(const struct sp_span *s)
{
	if (!s->caps)
		return 0;
	return s->caps->n < SP_SPAN_CAPS_MAX ? s->caps->n : SP_SPAN_CAPS_MAX;
}

/* idx: name and string-value indices of each captured value. */
static void put_caps(uint8_t *p, const struct sp_span *s, const uint32_t *idx)
{
	for (uint32_t k = 0; k < n_caps_of(s); k++, p += CAP_SIZE) {
		const struct sp_span_cap *v = &s->caps->v[k];
		bool str = v->type == SP_SPAN_CAP_STR_T;
		bool has = v->status == SP_SPAN_CAP_OK || v->status == SP_SPAN_CAP_TRUNCATED;

		memset(p, 0, CAP_SIZE);
		put32(p + C_NAME, idx[2 * k]);
		p[C_TYPE] = v->type;
		p[C_STATUS] = v->status;
		put64(p + C_VALUE, !has ? 0 : str ? idx[2 * k + 1] : v->num);
	}
}

static void put_record(uint8_t *p, const struct sp_span *s, uint32_t name, uint32_t first_cap)
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
	put32(p + R_POLLS, s->poll_count);
	put64(p + R_UNC_LO, s->uncertainty_lo_ns);
	put64(p + R_UNC_HI, s->uncertainty_hi_ns);
	put32(p + R_CAPS, first_cap);
	put32(p + R_NCAPS, n_caps_of(s));
}

/* idx: the entry's name, raw and object string indices. */
static void put_stat(uint8_t *p, const struct sp_sym_report *r, const uint32_t *idx)
{
	put32(p + S_NAME, idx[0]);
	put32(p + S_RAW, idx[1]);
	put32(p + S_OBJECT, idx[2]);
	put32(p + S_ROLE, r->role);
	put64(p + S_CALLS, r->s.calls);
	put64(p + S_TOTAL, r->s.total_ns);
	put64(p + S_MAX, r->s.max_ns);
	put64(p + S_UNDER, r->s.under_min_span);
	put64(p + S_OUTSIDE, r->s.outside_calls);
	put64(p + S_ABNORMAL, r->s.abnormal);
	put64(p + S_KEPT, r->kept_in_slow);
	put64(p + S_COST, r->est_cost_ns);
	put64(p + S_MINSPAN, r->min_span_ns);
	for (size_t b = 0; b < SP_HIST_BUCKETS; b++)
		put64(p + S_HIST + 8 * b, r->s.hist[b]);
	put64(p + S_ERRORS, r->s.errors);
}

static uint8_t *build_payload(const struct content *c, const struct strtab *t,
			      const struct indices *ix, size_t *plen)
{
	uint8_t *p, *q;

	/* n and n_stats were bounded by MAX_SPANS and MAX_STATS: no overflow */
	*plen = PHDR_SIZE + t->bytes + c->n * REC_SIZE + c->n_stats * STAT_SIZE +
		ix->n_caps * CAP_SIZE;
	if (*plen > SP_BLOCK_MAX_PAYLOAD) {
		errno = EFBIG;
		return NULL;
	}
	p = malloc(*plen);
	if (!p)
		return NULL;
	put_block_header(p, c, t, ix->exe);
	q = p + PHDR_SIZE;
	for (size_t i = 0; i < t->n; i++) {
		memcpy(q, t->str[i], t->len[i] + 1);
		q += t->len[i] + 1;
	}
	uint32_t first_cap = 0;

	for (size_t i = 0; i < c->n; i++, q += REC_SIZE) {
		put_record(q, &c->spans[i], ix->span[i], first_cap);
		first_cap += n_caps_of(&c->spans[i]);
	}
	for (size_t i = 0; i < c->n_stats; i++, q += STAT_SIZE)
		put_stat(q, &c->stats[i], &ix->stat[3 * i]);
	for (size_t i = 0; i < c->n; i++) {
		put_caps(q, &c->spans[i], &ix->cap[i * 2 * SP_SPAN_CAPS_MAX]);
		q += n_caps_of(&c->spans[i]) * CAP_SIZE;
	}
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

static int encode(const struct content *c, void **out, size_t *out_len)
{
	struct indices ix = { 0 };
	struct strtab t;
	uint8_t *payload = NULL;
	size_t plen;
	int rc = -1;

	if (!c->h || (c->n && !c->spans) || (c->n_stats && !c->stats) || !out || !out_len) {
		errno = EINVAL;
		return -1;
	}
	if (c->n > MAX_SPANS || c->n_stats > MAX_STATS) {
		errno = EFBIG;
		return -1;
	}
	size_t cap_strs = 0;

	for (size_t i = 0; i < c->n; i++)
		cap_strs += 2 * n_caps_of(&c->spans[i]);
	if (strtab_init(&t, 1 + c->n + 3 * c->n_stats + cap_strs))
		goto out;
	ix.span = malloc((c->n ? c->n : 1) * sizeof(*ix.span));
	ix.stat = malloc((c->n_stats ? 3 * c->n_stats : 1) * sizeof(*ix.stat));
	ix.cap = calloc(c->n ? c->n * 2 * SP_SPAN_CAPS_MAX : 1, sizeof(*ix.cap));
	if (!ix.span || !ix.stat || !ix.cap)
		goto out;
	if (intern_all(&t, c, &ix)) {
		errno = EFBIG;
		goto out;
	}
	payload = build_payload(c, &t, &ix, &plen);
	if (payload)
		rc = compress_frame(payload, plen, out, out_len);
out:
	free(payload);
	free(ix.span);
	free(ix.stat);
	free(ix.cap);
	strtab_free(&t);
	return rc;
}

int sp_block_encode(const struct sp_block_header *h,
		    const struct sp_span *spans, size_t n,
		    void **out, size_t *out_len)
{
	struct content c = { .h = h, .spans = spans, .n = n };

	return encode(&c, out, out_len);
}

int sp_block_encode_stats(const struct sp_block_header *h,
			  const struct sp_sym_report *stats, size_t n,
			  void **out, size_t *out_len)
{
	struct content c = { .h = h, .stats = stats, .n_stats = n };

	return encode(&c, out, out_len);
}

/* One write per block: a crash can cut only the block in flight, and the
 * reader recognises that as a truncated final block. */
static int write_encoded(FILE *f, const struct content *c)
{
	void *buf;
	size_t len;
	int rc = 0;

	if (!f) {
		errno = EINVAL;
		return -1;
	}
	if (encode(c, &buf, &len))
		return -1;
	if (fwrite(buf, 1, len, f) != len || fflush(f))
		rc = -1;
	free(buf);
	return rc;
}

int sp_block_write(FILE *f, const struct sp_block_header *h,
		   const struct sp_span *spans, size_t n)
{
	struct content c = { .h = h, .spans = spans, .n = n };

	return write_encoded(f, &c);
}

int sp_block_write_stats(FILE *f, const struct sp_block_header *h,
			 const struct sp_sym_report *stats, size_t n)
{
	struct content c = { .h = h, .stats = stats, .n_stats = n };

	return write_encoded(f, &c);
}

/* ---- decoding ---------------------------------------------------------- */

struct frame {
	uint32_t version, clen, ulen, pcrc;
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
		sp_set_err(err, errlen, "bad magic");
		return -1;
	}
	if (!frame_crc_ok(p)) {
		sp_set_err(err, errlen, "frame header checksum mismatch");
		return -1;
	}
	if (version < SP_BLOCK_MIN_VERSION || version > SP_BLOCK_VERSION) {
		sp_set_err(err, errlen, "unsupported format version %u (this build reads %u to %u)",
			version, SP_BLOCK_MIN_VERSION, SP_BLOCK_VERSION);
		return -1;
	}
	f->version = version;
	f->clen = get32(p + F_CLEN);
	f->ulen = get32(p + F_ULEN);
	f->pcrc = get32(p + F_PCRC);
	if (f->ulen < PHDR_SIZE || f->ulen > SP_BLOCK_MAX_PAYLOAD) {
		sp_set_err(err, errlen, "uncompressed length %u out of range", f->ulen);
		return -1;
	}
	if (f->clen == 0 || f->clen > MAX_CLEN) {
		sp_set_err(err, errlen, "compressed length %u out of range", f->clen);
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
		sp_set_err(err, errlen, "malformed string table (%u strings in %zu bytes)", n, len);
		return NULL;
	}
	v = malloc((n ? n : 1) * sizeof(*v));
	if (!v) {
		sp_set_err(err, errlen, "out of memory");
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
	sp_set_err(err, errlen, "string table does not hold exactly %u strings", n);
	return NULL;
}

/* Where the sections of a payload are, once check_layout has proved they
 * add up to its length. */
struct layout {
	size_t rec_size;           /* span record size of this version */
	size_t stat_size;          /* statistics entry size of this version */
	uint32_t exe, n_str, slen;
	size_t n_spans, n_stats, n_caps;
	size_t spans_off, stats_off, caps_off;
	const uint8_t *caps_base;  /* set when parsing: payload + caps_off */
	struct sp_span_caps *pool; /* room for the spans' captures */
};

/* Captured value i of the block into v; strings come from the table. */
static int parse_cap(const uint8_t *p, size_t i, const struct layout *l, const char **str,
		     struct sp_span_cap *v, char *err, size_t errlen)
{
	uint32_t name = get32(p + C_NAME);
	uint64_t val = get64(p + C_VALUE);
	bool has;

	memset(v, 0, sizeof(*v));
	v->type = p[C_TYPE];
	v->status = p[C_STATUS];
	if (name >= l->n_str || v->type > SP_SPAN_CAP_STR_T || v->status > SP_SPAN_CAP_TRUNCATED) {
		sp_set_err(err, errlen, "captured value %zu: bad name, type or status", i);
		return -1;
	}
	v->name = str[name];
	has = v->status == SP_SPAN_CAP_OK || v->status == SP_SPAN_CAP_TRUNCATED;
	if (v->type != SP_SPAN_CAP_STR_T) {
		v->num = val;
	} else if (has) {
		if (val >= l->n_str || strlen(str[val]) > SP_SPAN_CAP_STR) {
			sp_set_err(err, errlen, "captured value %zu: bad string", i);
			return -1;
		}
		strcpy(v->str, str[val]);
	}
	return 0;
}

/* A v3 record's captures: consecutive entries of the captures section. */
static int parse_span_caps(const uint8_t *rec, size_t i, const struct layout *l,
			   const char **str, size_t *next, struct sp_span_caps **pool,
			   struct sp_span *out, char *err, size_t errlen)
{
	uint32_t first = get32(rec + R_CAPS), n = get32(rec + R_NCAPS);

	if (!n)
		return 0;
	if (n > SP_SPAN_CAPS_MAX || first != *next || n > l->n_caps - *next) {
		sp_set_err(err, errlen, "span %zu: captures %u+%u out of order or range (%zu)",
			i, first, n, l->n_caps);
		return -1;
	}
	out->caps = (*pool)++;
	out->caps->n = n;
	*next += n;
	for (uint32_t k = 0; k < n; k++)
		if (parse_cap(l->caps_base + (size_t)(first + k) * CAP_SIZE, first + k, l, str,
			      &out->caps->v[k], err, errlen))
			return -1;
	return 0;
}

static int parse_records(const uint8_t *p, const struct layout *l, const char **str,
			 struct sp_span *out, char *err, size_t errlen)
{
	struct sp_span_caps *pool = l->pool;
	size_t next = 0;

	for (size_t i = 0; i < l->n_spans; i++, p += l->rec_size) {
		uint32_t name = get32(p + R_NAME);

		if (name >= l->n_str) {
			sp_set_err(err, errlen, "span %zu: string index %u out of range (%u strings)",
				i, name, l->n_str);
			return -1;
		}
		memset(&out[i], 0, sizeof(out[i]));
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
		if (l->rec_size < REC_SIZE_V2)
			continue; /* v1: no async facts, and word 60 is reserved */
		out[i].poll_count = get32(p + R_POLLS);
		out[i].uncertainty_lo_ns = get64(p + R_UNC_LO);
		out[i].uncertainty_hi_ns = get64(p + R_UNC_HI);
		if (l->rec_size >= REC_SIZE &&
		    parse_span_caps(p, i, l, str, &next, &pool, &out[i], err, errlen))
			return -1;
	}
	if (next != l->n_caps) {
		sp_set_err(err, errlen, "%zu captured values belong to no span", l->n_caps - next);
		return -1;
	}
	return 0;
}

static int parse_stat(const uint8_t *p, size_t i, const struct layout *l,
		      const char **str, struct sp_sym_report *r, char *err, size_t errlen)
{
	uint32_t name = get32(p + S_NAME), raw = get32(p + S_RAW);
	uint32_t object = get32(p + S_OBJECT), role = get32(p + S_ROLE);

	if (name >= l->n_str || raw >= l->n_str || object >= l->n_str) {
		sp_set_err(err, errlen, "statistics entry %zu: string index out of range (%u strings)",
			i, l->n_str);
		return -1;
	}
	if (role > MAX_ROLE) {
		sp_set_err(err, errlen, "statistics entry %zu: unknown role %u", i, role);
		return -1;
	}
	memset(r, 0, sizeof(*r));
	r->name = str[name];
	r->raw = str[raw];
	r->object = str[object];
	r->role = role;
	r->s.calls = get64(p + S_CALLS);
	r->s.total_ns = get64(p + S_TOTAL);
	r->s.max_ns = get64(p + S_MAX);
	r->s.under_min_span = get64(p + S_UNDER);
	r->s.outside_calls = get64(p + S_OUTSIDE);
	r->s.abnormal = get64(p + S_ABNORMAL);
	r->kept_in_slow = get64(p + S_KEPT);
	r->est_cost_ns = get64(p + S_COST);
	r->min_span_ns = get64(p + S_MINSPAN);
	for (size_t b = 0; b < SP_HIST_BUCKETS; b++)
		r->s.hist[b] = get64(p + S_HIST + 8 * b);
	if (l->stat_size >= STAT_SIZE)
		r->s.errors = get64(p + S_ERRORS);
	return 0;
}

static int parse_stats(const uint8_t *p, const struct layout *l, const char **str,
		       struct sp_sym_report *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < l->n_stats; i++, p += l->stat_size)
		if (parse_stat(p, i, l, str, &out[i], err, errlen))
			return -1;
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
	/* v1 writers left the word reserved; its readers ignored it */
	h->n_stats = h->version >= 2 ? get32(p + H_NSTATS) : 0;
}

/* Reads the block header into *h and checks that the sections add up to
 * exactly len bytes, without overflow whatever the counts say. */
static int check_layout(const uint8_t *p, size_t len, uint32_t version,
			struct sp_block_header *h, struct layout *l,
			char *err, size_t errlen)
{
	size_t rest;

	get_block_header(p, h);
	if (h->version != version) {
		sp_set_err(err, errlen, "block header version %u does not match the frame",
			h->version);
		return -1;
	}
	l->rec_size = version >= 3 ? REC_SIZE : version == 2 ? REC_SIZE_V2 : REC_SIZE_V1;
	l->stat_size = version >= 3 ? STAT_SIZE : STAT_SIZE_V2;
	l->exe = get32(p + H_EXE);
	l->n_str = get32(p + H_NSTR);
	l->slen = get32(p + H_STRLEN);
	if (l->slen > len - PHDR_SIZE) {
		sp_set_err(err, errlen, "string table (%u bytes) overruns the payload (%zu bytes)",
			l->slen, len);
		return -1;
	}
	rest = len - PHDR_SIZE - l->slen;
	if (h->n_stats > rest / l->stat_size) {
		sp_set_err(err, errlen, "%u statistics entries overrun the %zu bytes left for them",
			h->n_stats, rest);
		return -1;
	}
	rest -= (size_t)h->n_stats * l->stat_size;
	l->n_caps = 0;
	if (version >= 3) {
		/* v3: what the span records leave is the captures section */
		if (h->n_spans > rest / l->rec_size ||
		    (rest - (size_t)h->n_spans * l->rec_size) % CAP_SIZE) {
			sp_set_err(err, errlen, "%llu spans and their captures do not fill the "
				   "%zu bytes left for them", (unsigned long long)h->n_spans, rest);
			return -1;
		}
		l->n_caps = (rest - (size_t)h->n_spans * l->rec_size) / CAP_SIZE;
		rest = (size_t)h->n_spans * l->rec_size;
	}
	if (rest % l->rec_size || rest / l->rec_size != h->n_spans) {
		sp_set_err(err, errlen, "%llu spans do not fill the %zu bytes left for them",
			(unsigned long long)h->n_spans, rest);
		return -1;
	}
	l->n_spans = (size_t)h->n_spans;
	l->n_stats = h->n_stats;
	l->spans_off = PHDR_SIZE + l->slen;
	l->stats_off = l->spans_off + rest;
	l->caps_off = l->stats_off + (size_t)h->n_stats * l->stat_size;
	return 0;
}

/* Fills b from the payload p whose layout was checked; spans and stats
 * have room for l->n_spans and l->n_stats entries. */
static int payload_parse(const uint8_t *p, struct layout *l, struct sp_span *spans,
			 struct sp_sym_report *stats, struct sp_block *b,
			 char *err, size_t errlen)
{
	const char **str;
	int rc;

	if (l->exe >= l->n_str) {
		sp_set_err(err, errlen, "exe string index %u out of range (%u strings)",
			l->exe, l->n_str);
		return -1;
	}
	str = strtab_parse(p + PHDR_SIZE, l->slen, l->n_str, err, errlen);
	if (!str)
		return -1;
	b->hdr.exe = str[l->exe];
	b->spans = spans;
	b->n = l->n_spans;
	b->stats = stats;
	b->n_stats = l->n_stats;
	l->caps_base = p + l->caps_off;
	rc = parse_records(p + l->spans_off, l, str, spans, err, errlen);
	if (!rc)
		rc = parse_stats(p + l->stats_off, l, str, stats, err, errlen);
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
		sp_set_err(err, errlen, "payload checksum mismatch");
		return -1;
	}
	if (ZSTD_isError(fsize) || fsize != f->clen) {
		sp_set_err(err, errlen, "payload is not a single zstd frame of %u bytes", f->clen);
		return -1;
	}
	if (csize != f->ulen) {
		sp_set_err(err, errlen, "zstd content size does not match the frame header");
		return -1;
	}
	return 0;
}

/* One allocation backs a decoded block, so that the caller frees one
 * pointer: the payload first (the strings point into it, so it never
 * moves once parsed), then the span and statistics arrays, sized from the
 * checked layout rather than from what the payload could hold. */
static int frame_decode(const struct frame *f, const uint8_t *z, struct sp_block *b,
			void **storage, char *err, size_t errlen)
{
	size_t got, at = ((size_t)f->ulen + 15) & ~(size_t)15, span_bytes, need;
	uint8_t *mem, *payload;
	struct layout l;

	if (check_zstd(f, z, err, errlen))
		return -1;
	payload = malloc(f->ulen);
	if (!payload) {
		sp_set_err(err, errlen, "out of memory for a %u-byte block", f->ulen);
		return -1;
	}
	got = ZSTD_decompress(payload, f->ulen, z, f->clen);
	if (ZSTD_isError(got) || got != f->ulen) {
		sp_set_err(err, errlen, "zstd: %s",
			ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
		free(payload);
		return -1;
	}
	if (check_layout(payload, f->ulen, f->version, &b->hdr, &l, err, errlen)) {
		free(payload);
		memset(b, 0, sizeof(*b));
		return -1;
	}
	/* bounded by the payload: n_spans <= ulen / 64, n_stats <= ulen / 1432,
	 * spans with captures <= both n_spans and n_caps (<= ulen / 16) */
	span_bytes = l.n_spans * sizeof(struct sp_span);
	size_t stats_bytes = l.n_stats * sizeof(struct sp_sym_report);
	size_t cap_spans = l.n_caps < l.n_spans ? l.n_caps : l.n_spans;

	stats_bytes = (stats_bytes + 15) & ~(size_t)15;
	need = at + span_bytes + stats_bytes + cap_spans * sizeof(struct sp_span_caps);
	mem = realloc(payload, need);
	if (!mem) {
		sp_set_err(err, errlen, "out of memory for a %u-byte block", f->ulen);
		free(payload);
		memset(b, 0, sizeof(*b));
		return -1;
	}
	l.pool = (struct sp_span_caps *)(void *)(mem + at + span_bytes + stats_bytes);
	if (payload_parse(mem, &l, (struct sp_span *)(void *)(mem + at),
			  (struct sp_sym_report *)(void *)(mem + at + span_bytes), b,
			  err, errlen)) {
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
		sp_set_err(err, errlen, "invalid argument");
		return -1;
	}
	memset(b, 0, sizeof(*b));
	*storage = NULL;
	if (!p || len < FRAME_SIZE) {
		sp_set_err(err, errlen, "have %zu bytes, a block needs at least %u", len,
			(unsigned)FRAME_SIZE);
		return -1;
	}
	if (frame_parse(p, &f, err, errlen))
		return -1;
	if (len - FRAME_SIZE != f.clen) {
		sp_set_err(err, errlen, "have %zu bytes, the block is %zu", len,
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
		sp_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		sp_set_err(err, errlen, "%s: %s", path, strerror(EISDIR));
		fclose(f);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r)
		r->path = strdup(path);
	if (!r || !r->path) {
		sp_set_err(err, errlen, "%s: out of memory", path);
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
	sp_set_err(err, errlen, "%s: read error at offset %llu: %s", r->path,
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
	sp_set_err(err, errlen, "%s: truncated block at offset %llu (have %zu of %zu bytes)",
		r->path, (unsigned long long)r->off, have, need);
	return skip_bad(r);
}

static int corrupted(struct sp_block_reader *r, const char *why, char *err, size_t errlen)
{
	sp_set_err(err, errlen, "%s: corrupted block at offset %llu: %s; skipping to the next block",
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
