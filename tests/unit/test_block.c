/*
 * Block format (v2 written, v1 and v2 read, statistics sections), block
 * file reader, span printing, dump command and duration parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "cmd_capture.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "output/block_format.h"
#include "cli/cli.h"
#include "output/span_print.h"

#define T0 1795644062123456000ull /* 2026-11-25T22:01:02.123456Z */
#define MS 1000000ull

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/spanprobe-test-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

static const char *tmp_path(const char *name)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t crc(const uint8_t *p, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

/* Frame header checksum after a test edited the header on purpose. */
static void fix_header_crc(uint8_t *blk)
{
	le32(blk + 28, crc(blk, 28));
}

/* Reads every byte of s so that the sanitizers see any overrun. */
static void touch(const char *s)
{
	static volatile unsigned sum;

	assert_non_null(s);
	while (*s)
		sum += (unsigned char)*s++;
}

static uint32_t rng_state = 12345;

static uint32_t rnd(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

static struct sp_span mk(uint64_t q, uint64_t id, uint64_t parent, const char *name,
			 uint64_t begin, uint64_t dur, uint32_t depth, uint32_t flags)
{
	struct sp_span s = {
		.query_id = q, .span_id = id, .parent_span_id = parent,
		.begin_ns = begin, .end_ns = begin + dur, .name = name,
		.pid = 1234, .tid = 1240, .depth = depth, .flags = flags,
	};
	return s;
}

static void *encode(uint32_t pid, const struct sp_span *spans, size_t n, size_t *len)
{
	struct sp_block_header h = { .pid = pid, .exe = "/usr/bin/server",
				     .proc_start_ns = T0 - 1000 * MS, .dropped_events = pid * 2 };
	void *buf = NULL;

	assert_int_equal(sp_block_encode(&h, spans, n, &buf, len), 0);
	assert_non_null(buf);
	return buf;
}

static struct sp_span sample[4];

static size_t sample_spans(void)
{
	sample[0] = mk(17, 17, 0, "execute_query", T0, 2847300000ull, 0, SP_SPAN_ROOT);
	sample[1] = mk(17, 18, 17, "make_session_context", T0 + 1000, 12 * MS, 1, 0);
	sample[2] = mk(17, 19, 17, "flight_sql_query_execution", T0 + 13 * MS, 2832100000ull, 1, 0);
	sample[3] = mk(17, 20, 19, "make_session_context", T0 + 14 * MS, 5, 2, SP_SPAN_ABNORMAL);
	return 4;
}

/* Three different blocks back to back, with the offset of each. */
static uint8_t *three_blocks(size_t off[4])
{
	size_t n = sample_spans(), len[3];
	void *b[3];
	uint8_t *all;

	for (int i = 0; i < 3; i++)
		b[i] = encode(101 + (uint32_t)i, sample, n - (size_t)i, &len[i]);
	all = malloc(len[0] + len[1] + len[2]);
	assert_non_null(all);
	off[0] = 0;
	for (int i = 0; i < 3; i++) {
		memcpy(all + off[i], b[i], len[i]);
		off[i + 1] = off[i] + len[i];
		free(b[i]);
	}
	return all;
}

/* ---- reader helper ----------------------------------------------------- */

#define MAX_STEPS 32

struct seq {
	int rc[MAX_STEPS];
	uint32_t pid[MAX_STEPS];
	char err[MAX_STEPS][512];
	size_t n;
};

static struct seq seq;

/* Reads path to the end, recording every result; end of file must stay
 * the end on further calls. */
static void read_all(const char *path)
{
	char err[512];
	struct sp_block b;
	struct sp_block_reader *r = sp_block_reader_open(path, err, sizeof(err));

	assert_non_null(r);
	memset(&seq, 0, sizeof(seq));
	for (;;) {
		int rc;

		assert_true(seq.n < MAX_STEPS);
		rc = sp_block_reader_next(r, &b, seq.err[seq.n], sizeof(seq.err[0]));
		seq.rc[seq.n] = rc;
		seq.pid[seq.n++] = rc == 1 ? b.hdr.pid : 0;
		if (rc == 1) /* every name must be readable */
			for (size_t i = 0; i < b.n; i++)
				touch(b.spans[i].name);
		if (rc == 0)
			break;
	}
	assert_int_equal(sp_block_reader_next(r, &b, err, sizeof(err)), 0);
	assert_int_equal(sp_block_reader_next(r, &b, err, sizeof(err)), 0);
	sp_block_reader_close(r);
}

static bool err_has(size_t step, const char *what)
{
	return strstr(seq.err[step], what) != NULL;
}

/* ---- encode / decode --------------------------------------------------- */

static void test_roundtrip(void **state)
{
	char *long_name = malloc(70001);
	struct sp_span in[6];
	struct sp_block b;
	void *buf, *storage;
	size_t len;
	char err[256];

	(void)state;
	assert_non_null(long_name);
	memset(long_name, 'x', 70000);
	long_name[70000] = '\0';
	in[0] = mk(7, 7, 0, "root()", T0, 50 * MS, 0, SP_SPAN_ROOT | SP_SPAN_INCOMPLETE);
	in[1] = mk(7, 8, 7, "日本語::関数<T>", T0 + 5, 3, 1, 0);
	in[2] = mk(7, 9, 7, long_name, T0 + 10, 4, 1, SP_SPAN_ABNORMAL);
	in[3] = mk(7, 10, 9, "😀 \"q\" \\", T0 + 11, 1, 2, 0);
	in[4] = mk(7, 11, 7, NULL, T0 + 20, UINT64_MAX - T0 - 20, 1, 0xff000000u);
	in[5] = mk(7, 12, 7, "日本語::関数<T>", T0 - 3, 1, 1, 0);
	in[5].pid = UINT32_MAX;
	in[5].tid = 99;
	/* v2's async facts, extremes included */
	in[1].poll_count = 17;
	in[1].uncertainty_lo_ns = 1234;
	in[1].uncertainty_hi_ns = 5678;
	in[4].poll_count = UINT32_MAX;
	in[4].uncertainty_lo_ns = UINT64_MAX;
	in[4].uncertainty_hi_ns = 1;
	buf = encode(42, in, 6, &len);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), 0);
	assert_int_equal(b.hdr.version, SP_BLOCK_VERSION);
	assert_int_equal(b.hdr.pid, 42);
	assert_string_equal(b.hdr.exe, "/usr/bin/server");
	assert_int_equal(b.hdr.proc_start_ns, T0 - 1000 * MS);
	assert_int_equal(b.hdr.dropped_events, 84);
	assert_int_equal(b.hdr.n_spans, 6);
	assert_int_equal(b.hdr.range_begin_ns, T0 - 3);
	assert_int_equal(b.hdr.range_end_ns, UINT64_MAX);
	assert_int_equal(b.n, 6);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(b.spans[i].query_id, in[i].query_id);
		assert_int_equal(b.spans[i].span_id, in[i].span_id);
		assert_int_equal(b.spans[i].parent_span_id, in[i].parent_span_id);
		assert_int_equal(b.spans[i].begin_ns, in[i].begin_ns);
		assert_int_equal(b.spans[i].end_ns, in[i].end_ns);
		assert_string_equal(b.spans[i].name, in[i].name ? in[i].name : "");
		assert_int_equal(b.spans[i].pid, in[i].pid);
		assert_int_equal(b.spans[i].tid, in[i].tid);
		assert_int_equal(b.spans[i].depth, in[i].depth);
		assert_int_equal(b.spans[i].flags, in[i].flags);
		assert_int_equal(b.spans[i].poll_count, in[i].poll_count);
		assert_int_equal(b.spans[i].uncertainty_lo_ns, in[i].uncertainty_lo_ns);
		assert_int_equal(b.spans[i].uncertainty_hi_ns, in[i].uncertainty_hi_ns);
	}
	assert_int_equal(b.n_stats, 0);
	assert_int_equal(b.hdr.n_stats, 0);
	/* a shared name is stored once, so both spans point at one copy */
	assert_ptr_equal(b.spans[1].name, b.spans[5].name);
	free(storage);
	free(buf);
	free(long_name);
}

/* The string table holds each distinct name once (read from the raw
 * payload, not through the decoder). */
static void test_names_deduplicated(void **state)
{
	struct sp_span in[5];
	size_t len, cap = 4096;
	uint8_t *buf, *payload = malloc(cap);
	size_t got;

	(void)state;
	in[0] = mk(1, 1, 0, "a", T0, 1, 0, SP_SPAN_ROOT);
	in[1] = mk(1, 2, 1, "b", T0, 1, 1, 0);
	in[2] = mk(1, 3, 1, "a", T0, 1, 1, 0);
	in[3] = mk(1, 4, 1, "/usr/bin/server", T0, 1, 1, 0); /* same as exe */
	in[4] = mk(1, 5, 1, "b", T0, 1, 1, 0);
	buf = encode(1, in, 5, &len);
	/* zstd frame header descriptor, bit 2: content checksum present */
	assert_true(buf[SP_BLOCK_FRAME_SIZE + 4] & 0x04);
	got = ZSTD_decompress(payload, cap, buf + SP_BLOCK_FRAME_SIZE, len - SP_BLOCK_FRAME_SIZE);
	assert_false(ZSTD_isError(got));
	assert_int_equal(got, 64 + sizeof("/usr/bin/server") + 4 + 5 * 88);
	assert_int_equal(rd32(payload + 52), 3);  /* n_strings */
	assert_int_equal(rd32(payload + 56), sizeof("/usr/bin/server") + 4);
	assert_memory_equal(payload + 64, "/usr/bin/server\0a\0b\0", 20);
	free(payload);
	free(buf);
}

static void test_empty_block(void **state)
{
	struct sp_block_header h = { .pid = 5, .exe = NULL, .proc_start_ns = 9 };
	struct sp_block b;
	void *buf, *storage;
	size_t len;
	char err[256];

	(void)state;
	assert_int_equal(sp_block_encode(&h, NULL, 0, &buf, &len), 0);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.hdr.n_spans, 0);
	assert_int_equal(b.hdr.range_begin_ns, 0);
	assert_int_equal(b.hdr.range_end_ns, 0);
	assert_int_equal(b.hdr.proc_start_ns, 9);
	assert_string_equal(b.hdr.exe, "");
	free(storage);
	free(buf);
}

static void test_encode_rejects_bad_args(void **state)
{
	struct sp_block_header h = { .exe = "x" };
	void *buf;
	size_t len;

	(void)state;
	assert_int_equal(sp_block_encode(NULL, NULL, 0, &buf, &len), -1);
	assert_int_equal(sp_block_encode(&h, NULL, 3, &buf, &len), -1);
	assert_int_equal(sp_block_encode(&h, NULL, 0, NULL, &len), -1);
	/* more spans than any block may hold: refused before touching them */
	assert_int_equal(sp_block_encode(&h, (const struct sp_span *)&h,
					 SP_BLOCK_MAX_PAYLOAD / 64, &buf, &len), -1);
	assert_int_equal(sp_block_encode_stats(&h, NULL, 2, &buf, &len), -1);
	assert_int_equal(sp_block_encode_stats(&h, (const struct sp_sym_report *)&h,
					       SP_BLOCK_MAX_PAYLOAD / 1432 + 1, &buf, &len), -1);
	assert_int_equal(sp_block_encode_stats(NULL, NULL, 0, &buf, &len), -1);
}

static void test_decode_wrong_magic_and_short(void **state)
{
	struct sp_block b;
	void *storage = (void *)1;
	size_t len;
	uint8_t *buf = encode(1, sample, sample_spans(), &len);
	char err[256];

	(void)state;
	assert_int_equal(sp_block_decode(NULL, 0, &b, &storage, err, sizeof(err)), -1);
	assert_null(storage);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(sp_block_decode(buf, cut, &b, &storage, err, sizeof(err)), -1);
		assert_null(storage);
	}
	buf[0] ^= 0xff;
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "magic"));
	free(buf);
}

/* A frame version from the future, well framed (header checksum good). */
static void test_decode_version_mismatch(void **state)
{
	struct sp_block b;
	void *storage;
	size_t len;
	uint8_t *buf = encode(1, sample, sample_spans(), &len);
	char err[256];

	(void)state;
	le32(buf + 8, SP_BLOCK_VERSION + 1);
	fix_header_crc(buf);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unsupported format version 4 (this build reads 1 to 3)"));
	le32(buf + 8, 0);
	fix_header_crc(buf);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unsupported format version 0"));
	/* a v2 payload in a frame that says v1 */
	le32(buf + 8, 1);
	fix_header_crc(buf);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match the frame"));
	free(buf);
}

/* ---- statistics blocks ------------------------------------------------ */

static void fill_report(struct sp_sym_report *r, const char *name, const char *raw,
			const char *object, uint32_t role, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->raw = raw;
	r->object = object;
	r->role = role;
	r->s.calls = seed;
	r->s.total_ns = seed * 1000;
	r->s.max_ns = seed * 7;
	r->s.under_min_span = seed / 2;
	r->s.outside_calls = seed * 3;
	r->s.abnormal = seed % 5;
	r->kept_in_slow = seed % 3;
	r->est_cost_ns = seed * 1200;
	r->min_span_ns = 5 * MS;
	for (size_t b = 0; b < SP_HIST_BUCKETS; b++)
		r->s.hist[b] = (b * 31 + seed) % 4 == 0 ? b + seed : 0;
}

static void assert_report_equal(const struct sp_sym_report *a, const struct sp_sym_report *b)
{
	assert_string_equal(a->name, b->name ? b->name : "");
	assert_string_equal(a->raw, b->raw ? b->raw : "");
	assert_string_equal(a->object, b->object ? b->object : "");
	assert_int_equal(a->role, b->role);
	assert_int_equal(a->kept_in_slow, b->kept_in_slow);
	assert_int_equal(a->est_cost_ns, b->est_cost_ns);
	assert_int_equal(a->min_span_ns, b->min_span_ns);
	/* the counters have no padding: compare them whole */
	assert_memory_equal(&a->s, &b->s, sizeof(a->s));
}

static void test_stats_roundtrip(void **state)
{
	struct sp_block_header h = { .pid = 31, .exe = "/usr/bin/server",
				     .proc_start_ns = T0 - MS, .dropped_events = 3,
				     .range_begin_ns = T0, .range_end_ns = T0 + 60000 * MS,
				     .n_spans = 99 /* ignored */ };
	struct sp_sym_report in[4];
	struct sp_block b;
	void *buf, *storage;
	size_t len;
	char err[256];

	(void)state;
	fill_report(&in[0], "demo::Engine::run(int)", "_ZN4demo6Engine3runEi", "/usr/bin/server", 1, 12345);
	fill_report(&in[1], "plan_query", "plan_query", "/usr/lib/libplan.so", 0, 7);
	fill_report(&in[2], NULL, NULL, NULL, 0, 0);
	fill_report(&in[3], "日本語::関数", "plan_query", "/usr/bin/server", 0, 99);
	in[3].s.max_ns = UINT64_MAX;
	in[3].s.hist[SP_HIST_BUCKETS - 1] = UINT64_MAX;
	in[3].est_cost_ns = UINT64_MAX;
	assert_int_equal(sp_block_encode_stats(&h, in, 4, &buf, &len), 0);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), 0);
	assert_int_equal(b.hdr.version, 3);
	assert_int_equal(b.hdr.pid, 31);
	assert_int_equal(b.hdr.n_spans, 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.hdr.n_stats, 4);
	assert_int_equal(b.n_stats, 4);
	/* a block without spans keeps the caller's range */
	assert_int_equal(b.hdr.range_begin_ns, T0);
	assert_int_equal(b.hdr.range_end_ns, T0 + 60000 * MS);
	for (size_t i = 0; i < 4; i++)
		assert_report_equal(&b.stats[i], &in[i]);
	/* names, raw names and objects share one deduplicated table */
	assert_ptr_equal(b.stats[1].name, b.stats[1].raw);
	assert_ptr_equal(b.stats[1].raw, b.stats[3].raw);
	assert_ptr_equal(b.stats[0].object, b.hdr.exe);
	free(storage);
	free(buf);
}

/* The payload a stats block holds, read raw: sizes as the doc says. */
static void test_stats_layout(void **state)
{
	struct sp_block_header h = { .exe = "x" };
	struct sp_sym_report r;
	size_t len, got, cap = 8192;
	uint8_t *buf, *payload = malloc(cap);

	(void)state;
	assert_non_null(payload);
	fill_report(&r, "f", "f", "x", 1, 5);
	assert_int_equal(sp_block_encode_stats(&h, &r, 1, (void **)&buf, &len), 0);
	got = ZSTD_decompress(payload, cap, buf + SP_BLOCK_FRAME_SIZE, len - SP_BLOCK_FRAME_SIZE);
	assert_false(ZSTD_isError(got));
	assert_int_equal(got, 64 + 4 + 1440);
	assert_int_equal(rd32(payload + 0), 3);
	assert_int_equal(rd32(payload + 52), 2);   /* "x", "f" */
	assert_int_equal(rd32(payload + 60), 1);   /* n_stats */
	assert_memory_equal(payload + 64, "x\0f\0", 4);
	assert_int_equal(rd32(payload + 68 + 0), 1);   /* name "f" */
	assert_int_equal(rd32(payload + 68 + 4), 1);   /* raw "f" */
	assert_int_equal(rd32(payload + 68 + 8), 0);   /* object "x" */
	assert_int_equal(rd32(payload + 68 + 12), 1);  /* role root */
	assert_int_equal(rd32(payload + 68 + 16), 5);  /* calls */
	assert_int_equal(rd32(payload + 68 + 80), 5 * MS); /* min_span_ns */
	assert_true(r.s.hist[1] != 0);
	assert_int_equal(rd32(payload + 68 + 88 + 8 * 1), r.s.hist[1]);
	free(payload);
	free(buf);
}

/* Span blocks and stats blocks in one file, as a session writes them. */
static void test_stats_in_file(void **state)
{
	const char *path = tmp_path("stats.blk");
	struct sp_block_header h = { .exe = "/bin/x", .proc_start_ns = T0 };
	struct sp_sym_report r[2];
	struct sp_block b;
	struct sp_block_reader *rd;
	char err[256];
	FILE *f = fopen(path, "wb");

	(void)state;
	assert_non_null(f);
	fill_report(&r[0], "execute_query", "execute_query", "/bin/x", 1, 3);
	fill_report(&r[1], "plan", "plan", "/bin/x", 0, 40);
	h.pid = 1;
	assert_int_equal(sp_block_write(f, &h, sample, sample_spans()), 0);
	h.pid = 2;
	assert_int_equal(sp_block_write_stats(f, &h, r, 2), 0);
	h.pid = 3;
	assert_int_equal(sp_block_write_stats(f, &h, r, 0), 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(sp_block_write_stats(NULL, &h, r, 2), -1);

	rd = sp_block_reader_open(path, err, sizeof(err));
	assert_non_null(rd);
	assert_int_equal(sp_block_reader_next(rd, &b, err, sizeof(err)), 1);
	assert_int_equal(b.n, 4);
	assert_int_equal(b.n_stats, 0);
	assert_int_equal(sp_block_reader_next(rd, &b, err, sizeof(err)), 1);
	assert_int_equal(b.hdr.pid, 2);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.n_stats, 2);
	assert_report_equal(&b.stats[1], &r[1]);
	assert_int_equal(sp_block_reader_next(rd, &b, err, sizeof(err)), 1);
	assert_int_equal(b.n_stats, 0);
	assert_int_equal(sp_block_reader_next(rd, &b, err, sizeof(err)), 0);
	sp_block_reader_close(rd);
	unlink(path);
}

/* Damage anywhere in a stats block is caught, never crashes. */
static void test_stats_frame_mutations(void **state)
{
	struct sp_block_header h = { .exe = "/bin/x" };
	struct sp_sym_report r[3];
	struct sp_block b;
	uint8_t *good, *p;
	void *storage;
	size_t len;
	char err[256];

	(void)state;
	fill_report(&r[0], "a", "_Za", "/bin/x", 1, 3);
	fill_report(&r[1], "b", "b", "/lib/y.so", 0, 40);
	fill_report(&r[2], "c", "c", "/bin/x", 0, 1 << 20);
	assert_int_equal(sp_block_encode_stats(&h, r, 3, (void **)&good, &len), 0);
	p = malloc(len);
	assert_non_null(p);
	for (int iter = 0; iter < 2000; iter++) {
		memcpy(p, good, len);
		p[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
		le32(p + 20, crc(p + SP_BLOCK_FRAME_SIZE, len - SP_BLOCK_FRAME_SIZE));
		memcpy(p, SP_BLOCK_MAGIC, 8);
		fix_header_crc(p);
		if (sp_block_decode(p, len, &b, &storage, err, sizeof(err)) == 0) {
			for (size_t i = 0; i < b.n_stats; i++) {
				touch(b.stats[i].name);
				touch(b.stats[i].raw);
				touch(b.stats[i].object);
			}
			free(storage);
		}
	}
	free(p);
	free(good);
}

/* The worked example of docs/block-format.md, byte for byte. */
static void test_doc_example(void **state)
{
	struct sp_block_header h = { .pid = 4242, .exe = "/bin/srv" };
	struct sp_span s[2];
	size_t len, got, cap = 4096;
	uint8_t *buf, *payload = malloc(cap);

	(void)state;
	assert_non_null(payload);
	s[0] = mk(1, 1, 0, "q", T0, 10, 0, SP_SPAN_ROOT);
	s[1] = mk(1, 2, 1, "f", T0 + 1, 5, 1, 0);
	s[1].poll_count = 3;
	assert_int_equal(sp_block_encode(&h, s, 2, (void **)&buf, &len), 0);
	assert_memory_equal(buf, "\x89SPB\r\n\x1a\n\x03\0\0\0", 12);
	assert_int_equal(rd32(buf + 16), 0xfd);
	got = ZSTD_decompress(payload, cap, buf + SP_BLOCK_FRAME_SIZE, len - SP_BLOCK_FRAME_SIZE);
	assert_int_equal(got, 253);
	assert_memory_equal(payload + 0x00, "\x03\0\0\0\x92\x10\0\0", 8);
	assert_memory_equal(payload + 0x20, "\x02\0\0\0\0\0\0\0", 8);
	assert_memory_equal(payload + 0x34, "\x03\0\0\0\x0d\0\0\0\0\0\0\0", 12);
	assert_memory_equal(payload + 0x40, "/bin/srv\0q\0f\0", 13);
	assert_int_equal(rd32(payload + 0x4d + 40), 1);
	assert_int_equal(rd32(payload + 0xa5 + 40), 2);
	assert_int_equal(rd32(payload + 0xa5 + 60), 3); /* poll_count */
	assert_int_equal(rd32(payload + 0xa5 + 84), 0); /* no captures */
	free(buf);

	/* and its statistics block example */
	{
		struct sp_sym_report r;

		memset(&r, 0, sizeof(r));
		r.name = r.raw = "f";
		r.object = "/bin/srv";
		r.s.calls = 9;
		r.s.hist[3] = 5;
		assert_int_equal(sp_block_encode_stats(&h, &r, 1, (void **)&buf, &len), 0);
		got = ZSTD_decompress(payload, cap, buf + SP_BLOCK_FRAME_SIZE,
				      len - SP_BLOCK_FRAME_SIZE);
		assert_int_equal(got, 1515);
		assert_int_equal(rd32(payload + 0x3c), 1);
		assert_memory_equal(payload + 0x40, "/bin/srv\0f\0", 11);
		assert_memory_equal(payload + 0x4b, "\1\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0", 16);
		assert_int_equal(rd32(payload + 0x5b), 9);
		assert_int_equal(rd32(payload + 0xa3 + 8 * 3), 5);
		free(buf);
	}
	free(payload);
}

/* ---- hand-made payloads, to reach the checks behind the checksums ---- */

/* Wraps any payload in a frame of the given version with good checksums;
 * ulen as declared. */
static uint8_t *wrap_v(uint32_t version, const uint8_t *payload, size_t plen,
		       uint32_t ulen, size_t *len)
{
	size_t bound = ZSTD_compressBound(plen), clen;
	uint8_t *buf = malloc(SP_BLOCK_FRAME_SIZE + bound);

	assert_non_null(buf);
	clen = ZSTD_compress(buf + SP_BLOCK_FRAME_SIZE, bound, payload, plen, 1);
	assert_false(ZSTD_isError(clen));
	memcpy(buf, SP_BLOCK_MAGIC, 8);
	le32(buf + 8, version);
	le32(buf + 12, (uint32_t)clen);
	le32(buf + 16, ulen);
	le32(buf + 20, crc(buf + SP_BLOCK_FRAME_SIZE, clen));
	le32(buf + 24, 0);
	fix_header_crc(buf);
	*len = SP_BLOCK_FRAME_SIZE + clen;
	return buf;
}

static uint8_t *wrap(const uint8_t *payload, size_t plen, uint32_t ulen, size_t *len)
{
	return wrap_v(2, payload, plen, ulen, len);
}

#define REC2 80 /* span record, v2 */
#define STAT2 1432 /* statistics entry, v2 */

/* header + "exe\0f\0" + two v2 records naming "f" (v2 is still read) */
static size_t good_payload(uint8_t *p)
{
	memset(p, 0, 230);
	le32(p + 0, 2);
	le32(p + 4, 77);
	le64(p + 32, 2);      /* n_spans */
	le32(p + 48, 0);      /* exe */
	le32(p + 52, 2);      /* n_strings */
	le32(p + 56, 6);      /* strtab bytes */
	memcpy(p + 64, "exe\0f\0", 6);
	for (int i = 0; i < 2; i++) {
		uint8_t *r = p + 70 + REC2 * i;

		le64(r + 8, (uint64_t)i + 1);
		le32(r + 40, 1);
	}
	return 230;
}

/* header + "exe\0f\0g\0" + one v2 record + two statistics entries
 * (name f raw g object exe, role span / root) */
static size_t good_stats_payload(uint8_t *p)
{
	size_t n = 64 + 8 + REC2 + 2 * STAT2;

	memset(p, 0, n);
	le32(p + 0, 2);
	le64(p + 32, 1);      /* n_spans */
	le32(p + 52, 3);      /* n_strings */
	le32(p + 56, 8);      /* strtab bytes */
	le32(p + 60, 2);      /* n_stats */
	memcpy(p + 64, "exe\0f\0g\0", 8);
	le32(p + 72 + 40, 1);
	for (int i = 0; i < 2; i++) {
		uint8_t *e = p + 72 + REC2 + STAT2 * i;

		le32(e + 0, 1);
		le32(e + 4, 2);
		le32(e + 12, (uint32_t)i);
		le64(e + 16, 10 + (uint64_t)i);
	}
	return n;
}

static int decode_payload(const uint8_t *p, size_t plen, uint32_t ulen, char *err)
{
	struct sp_block b;
	void *storage;
	size_t len;
	uint8_t *buf = wrap(p, plen, ulen, &len);
	int rc = sp_block_decode(buf, len, &b, &storage, err, 256);

	if (rc == 0) {
		touch(b.hdr.exe);
		for (size_t i = 0; i < b.n; i++)
			touch(b.spans[i].name);
		for (size_t i = 0; i < b.n_stats; i++) {
			touch(b.stats[i].name);
			touch(b.stats[i].raw);
			touch(b.stats[i].object);
		}
	} else {
		assert_null(storage);
	}
	free(storage);
	free(buf);
	return rc;
}

static void expect_bad(const uint8_t *p, size_t plen, const char *what)
{
	char err[256];

	assert_int_equal(decode_payload(p, plen, (uint32_t)plen, err), -1);
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not mention \"%s\"", err, what);
}

/* v3: captured values and the error flag survive a round trip; a record
 * whose captures do not follow on from the previous one's is refused. */
static void test_caps_roundtrip(void **state)
{
	struct sp_span_caps c0 = { 0 }, c2 = { 0 };
	struct sp_span in[3];
	struct sp_block b;
	void *storage;
	size_t len, got, cap = 8192;
	uint8_t *buf, *payload = malloc(cap);
	char err[256];

	(void)state;
	in[0] = mk(1, 1, 0, "q", T0, 10, 0, SP_SPAN_ROOT | SP_SPAN_ERROR);
	in[1] = mk(1, 2, 1, "f", T0 + 1, 5, 1, 0);
	in[2] = mk(1, 3, 1, "g", T0 + 2, 5, 1, 0);
	c0.n = 2;
	c0.v[0] = (struct sp_span_cap){ .name = "query", .type = SP_SPAN_CAP_STR_T,
					.status = SP_SPAN_CAP_TRUNCATED };
	memset(c0.v[0].str, 'x', SP_SPAN_CAP_STR);
	c0.v[1] = (struct sp_span_cap){ .name = "rows", .type = SP_SPAN_CAP_I64,
					.status = SP_SPAN_CAP_OK, .num = (uint64_t)-5 };
	c2.n = 3;
	c2.v[0] = (struct sp_span_cap){ .name = "ptr", .type = SP_SPAN_CAP_STR_T,
					.status = SP_SPAN_CAP_UNREADABLE };
	c2.v[1] = (struct sp_span_cap){ .name = "ret", .type = SP_SPAN_CAP_U64,
					.status = SP_SPAN_CAP_MISSING };
	c2.v[2] = (struct sp_span_cap){ .name = "query", .type = SP_SPAN_CAP_STR_T,
					.status = SP_SPAN_CAP_OK };
	strcpy(c2.v[2].str, "SELECT 1");
	in[0].caps = &c0;
	in[2].caps = &c2;
	buf = encode(1, in, 3, &len);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), 0);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.spans[0].flags, SP_SPAN_ROOT | SP_SPAN_ERROR);
	assert_null(b.spans[1].caps);
	for (int i = 0; i < 3; i += 2) {
		const struct sp_span_caps *w = in[i].caps, *g = b.spans[i].caps;

		assert_non_null(g);
		assert_int_equal(g->n, w->n);
		for (uint32_t k = 0; k < w->n; k++) {
			assert_string_equal(g->v[k].name, w->v[k].name);
			assert_int_equal(g->v[k].type, w->v[k].type);
			assert_int_equal(g->v[k].status, w->v[k].status);
			assert_int_equal(g->v[k].num, w->v[k].num);
			assert_string_equal(g->v[k].str, w->v[k].str);
		}
	}
	free(storage);
	/* payload: 3 records of 88 bytes, then 5 captures of 16 */
	got = ZSTD_decompress(payload, cap, buf + SP_BLOCK_FRAME_SIZE, len - SP_BLOCK_FRAME_SIZE);
	assert_false(ZSTD_isError(got));
	size_t recs = 64 + rd32(payload + 56);

	assert_int_equal(got, recs + 3 * 88 + 5 * 16);
	assert_int_equal(rd32(payload + recs + 2 * 88 + 80), 2); /* first capture of g */
	assert_int_equal(rd32(payload + recs + 2 * 88 + 84), 3);
	le32(payload + recs + 2 * 88 + 80, 1); /* overlaps q's */
	free(buf);
	buf = wrap_v(3, payload, got, (uint32_t)got, &len);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "out of order or range"));
	free(buf);
	free(payload);
}

static void test_crafted_payloads(void **state)
{
	uint8_t p[512];
	size_t n = good_payload(p);
	char err[256];

	(void)state;
	assert_int_equal(decode_payload(p, n, (uint32_t)n, err), 0);

	good_payload(p); le32(p + 70 + REC2 + 40, 2);
	expect_bad(p, n, "string index 2 out of range");
	good_payload(p); le32(p + 48, 5);
	expect_bad(p, n, "exe string index");
	good_payload(p); p[64 + 5] = 'g';
	expect_bad(p, n, "string table");
	good_payload(p); le32(p + 52, 3);
	expect_bad(p, n, "string table");
	good_payload(p); le32(p + 52, 1);
	expect_bad(p, n, "string table");
	good_payload(p); le32(p + 52, 0);
	expect_bad(p, n, "exe string index");
	good_payload(p); le32(p + 56, 200);
	expect_bad(p, n, "overruns");
	good_payload(p); le32(p + 56, UINT32_MAX);
	expect_bad(p, n, "overruns");
	good_payload(p); le64(p + 32, 3);
	expect_bad(p, n, "spans do not fill");
	good_payload(p); le64(p + 32, UINT64_MAX);
	expect_bad(p, n, "spans do not fill");
	good_payload(p);
	expect_bad(p, n - 1, "spans do not fill");
	good_payload(p); le32(p + 0, 9);
	expect_bad(p, n, "does not match the frame");
	good_payload(p);
	expect_bad(p, 63, "out of range");
	/* the frame must declare what zstd holds */
	assert_int_equal(decode_payload(p, n, (uint32_t)n + 64, err), -1);
	assert_non_null(strstr(err, "content size"));
	assert_int_equal(decode_payload(p, n, SP_BLOCK_MAX_PAYLOAD + 1, err), -1);
	assert_non_null(strstr(err, "out of range"));
}

static void test_crafted_stats_payloads(void **state)
{
	uint8_t p[4096], *e;
	size_t n = good_stats_payload(p), len;
	struct sp_block b;
	void *storage;
	uint8_t *buf;
	char err[256];

	(void)state;
	buf = wrap(p, n, (uint32_t)n, &len);
	assert_int_equal(sp_block_decode(buf, len, &b, &storage, err, sizeof(err)), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.n_stats, 2);
	assert_int_equal(b.hdr.n_stats, 2);
	assert_string_equal(b.spans[0].name, "f");
	assert_string_equal(b.stats[1].name, "f");
	assert_string_equal(b.stats[1].raw, "g");
	assert_string_equal(b.stats[1].object, "exe");
	assert_int_equal(b.stats[0].role, 0);
	assert_int_equal(b.stats[1].role, 1);
	assert_int_equal(b.stats[1].s.calls, 11);
	free(storage);
	free(buf);

	e = p + 72 + REC2;
	good_stats_payload(p); le32(p + 60, 3);
	expect_bad(p, n, "3 statistics entries overrun");
	good_stats_payload(p); le32(p + 60, UINT32_MAX);
	expect_bad(p, n, "statistics entries overrun");
	good_stats_payload(p); le32(p + 60, 1);
	expect_bad(p, n, "spans do not fill");
	good_stats_payload(p); le32(p + 60, 0);
	expect_bad(p, n, "spans do not fill");
	good_stats_payload(p); le32(e + 0, 3);
	expect_bad(p, n, "statistics entry 0: string index out of range");
	good_stats_payload(p); le32(e + STAT2 + 4, UINT32_MAX);
	expect_bad(p, n, "statistics entry 1: string index out of range");
	good_stats_payload(p); le32(e + 8, 3);
	expect_bad(p, n, "string index out of range");
	good_stats_payload(p); le32(e + STAT2 + 12, 2);
	expect_bad(p, n, "statistics entry 1: unknown role 2");
	good_stats_payload(p);
	expect_bad(p, n - 1, "spans do not fill");
}

/* A version 1 block, encoded by hand as a v1 writer did (docs: 64-byte
 * records, reserved words): still read, the v2-only fields zero. */
static size_t v1_payload(uint8_t *p)
{
	memset(p, 0, 205);
	le32(p + 0, 1);                /* version */
	le32(p + 4, 4242);             /* pid */
	le64(p + 8, T0 - 1000 * MS);   /* proc_start_ns */
	le64(p + 16, T0);              /* range */
	le64(p + 24, T0 + 50 * MS);
	le64(p + 32, 2);               /* n_spans */
	le64(p + 40, 7);               /* dropped_events */
	le32(p + 48, 0);               /* exe */
	le32(p + 52, 3);               /* n_strings */
	le32(p + 56, 13);              /* strtab_length */
	le32(p + 60, 0xdeadbeef);      /* reserved: v1 readers ignored it */
	memcpy(p + 64, "/bin/srv\0q\0f\0", 13);
	for (int i = 0; i < 2; i++) {
		uint8_t *r = p + 77 + 64 * i;

		le64(r + 0, 1);                        /* query_id */
		le64(r + 8, (uint64_t)i + 1);          /* span_id */
		le64(r + 16, (uint64_t)i);             /* parent */
		le64(r + 24, T0 + (uint64_t)i * MS);   /* begin */
		le64(r + 32, T0 + 50 * MS);            /* end */
		le32(r + 40, 1 + (uint32_t)i);         /* name: q, f */
		le32(r + 44, 4242);
		le32(r + 48, 4243);
		le32(r + 52, (uint32_t)i);             /* depth */
		le32(r + 56, i ? 0 : SP_SPAN_ROOT);
		le32(r + 60, 0xffffffff);              /* reserved */
	}
	return 205;
}

static void test_read_v1_block(void **state)
{
	const char *path = tmp_path("v1.blk");
	uint8_t p[256], *v1, *file;
	size_t n = v1_payload(p), len, len2;
	struct sp_block b;
	void *storage, *v2;
	char err[256];

	(void)state;
	v1 = wrap_v(1, p, n, (uint32_t)n, &len);
	assert_int_equal(sp_block_decode(v1, len, &b, &storage, err, sizeof(err)), 0);
	assert_int_equal(b.hdr.version, 1);
	assert_int_equal(b.hdr.pid, 4242);
	assert_string_equal(b.hdr.exe, "/bin/srv");
	assert_int_equal(b.hdr.dropped_events, 7);
	assert_int_equal(b.hdr.n_stats, 0);
	assert_int_equal(b.n_stats, 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.spans[0].name, "q");
	assert_string_equal(b.spans[1].name, "f");
	assert_int_equal(b.spans[0].flags, SP_SPAN_ROOT);
	assert_int_equal(b.spans[1].parent_span_id, 1);
	assert_int_equal(b.spans[1].tid, 4243);
	assert_int_equal(b.spans[1].begin_ns, T0 + MS);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(b.spans[i].poll_count, 0);
		assert_int_equal(b.spans[i].uncertainty_lo_ns, 0);
		assert_int_equal(b.spans[i].uncertainty_hi_ns, 0);
	}
	free(storage);
	/* v1 records are 64 bytes: 16 bytes more (a v2 record's size) do
	 * not make a valid v1 block */
	memset(p + n, 0, 32);
	file = wrap_v(1, p, n + 16, (uint32_t)n + 16, &len2);
	assert_int_equal(sp_block_decode(file, len2, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "spans do not fill"));
	free(file);

	/* a file that holds a v1 block between v2 blocks reads in full */
	v2 = encode(9, sample, sample_spans(), &len2);
	file = malloc(2 * len2 + len);
	assert_non_null(file);
	memcpy(file, v2, len2);
	memcpy(file + len2, v1, len);
	memcpy(file + len2 + len, v2, len2);
	write_file(path, file, 2 * len2 + len);
	read_all(path);
	assert_int_equal(seq.n, 4);
	assert_int_equal(seq.pid[0], 9);
	assert_int_equal(seq.pid[1], 4242);
	assert_int_equal(seq.pid[2], 9);
	assert_int_equal(seq.rc[3], 0);
	unlink(path);
	free(file);
	free(v2);
	free(v1);
}

static void test_two_zstd_frames_rejected(void **state)
{
	uint8_t p[512], *buf, *two;
	size_t n = good_payload(p), len, clen;
	struct sp_block b;
	void *storage;
	char err[256];

	(void)state;
	buf = wrap(p, n, (uint32_t)n, &len);
	clen = len - SP_BLOCK_FRAME_SIZE;
	two = malloc(len + clen);
	assert_non_null(two);
	memcpy(two, buf, len);
	memcpy(two + len, buf + SP_BLOCK_FRAME_SIZE, clen);
	le32(two + 12, (uint32_t)(2 * clen));
	le32(two + 20, crc(two + SP_BLOCK_FRAME_SIZE, 2 * clen));
	fix_header_crc(two);
	assert_int_equal(sp_block_decode(two, len + clen, &b, &storage, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "single zstd frame"));
	free(two);
	free(buf);
}

/* A small in-process fuzz: random edits of a payload that is then
 * re-framed with good checksums, so every edit reaches the parser. */
static void mutate_payload(const uint8_t *good, size_t n, uint32_t version, int iters)
{
	static uint8_t p[4096];
	char err[256];

	for (int iter = 0; iter < iters; iter++) {
		size_t len = n, blen;
		int edits = 1 + (int)(rnd() % 4);
		struct sp_block b;
		void *storage;
		uint8_t *buf;

		memcpy(p, good, n);
		for (int e = 0; e < edits; e++) {
			/* favour the header and the string table */
			size_t at = rnd() % 2 ? rnd() % 72 : rnd() % n;

			p[at] = rnd() % 3 ? (uint8_t)rnd() : (uint8_t)(rnd() % 2 ? 0xff : 0);
		}
		if (rnd() % 8 == 0)
			len = rnd() % sizeof(p);
		buf = wrap_v(version, p, len, (uint32_t)len, &blen);
		if (sp_block_decode(buf, blen, &b, &storage, err, sizeof(err)) == 0) {
			touch(b.hdr.exe);
			for (size_t i = 0; i < b.n; i++)
				touch(b.spans[i].name);
			for (size_t i = 0; i < b.n_stats; i++) {
				touch(b.stats[i].name);
				touch(b.stats[i].raw);
				touch(b.stats[i].object);
			}
			free(storage);
		} else {
			assert_null(storage);
		}
		free(buf);
	}
}

static void test_payload_mutations(void **state)
{
	uint8_t good[4096];

	(void)state;
	mutate_payload(good, good_payload(good), SP_BLOCK_VERSION, 5000);
	mutate_payload(good, good_stats_payload(good), SP_BLOCK_VERSION, 5000);
	mutate_payload(good, v1_payload(good), 1, 5000);
}

/* Random damage to a whole encoded block must be caught, never crash. */
static void test_frame_mutations(void **state)
{
	size_t len;
	uint8_t *good = encode(3, sample, sample_spans(), &len), *p = malloc(len);
	struct sp_block b;
	void *storage;
	char err[256];

	(void)state;
	assert_non_null(p);
	for (int iter = 0; iter < 3000; iter++) {
		memcpy(p, good, len);
		p[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
		if (iter % 2) { /* also re-sign the header: reaches zstd */
			le32(p + 20, crc(p + SP_BLOCK_FRAME_SIZE, len - SP_BLOCK_FRAME_SIZE));
			fix_header_crc(p);
			memcpy(p, SP_BLOCK_MAGIC, 8);
			fix_header_crc(p);
		}
		if (sp_block_decode(p, len, &b, &storage, err, sizeof(err)) == 0) {
			/* only a re-signed edit that zstd tolerates can get here */
			assert_true(iter % 2);
			for (size_t i = 0; i < b.n; i++)
				touch(b.spans[i].name);
			free(storage);
		}
	}
	free(p);
	free(good);
}

/* ---- block files ------------------------------------------------------- */

static void test_write_and_read_file(void **state)
{
	const char *path = tmp_path("three.blk");
	struct sp_block_header h = { .exe = "/bin/x", .proc_start_ns = T0 };
	size_t n = sample_spans();
	FILE *f = fopen(path, "wb");

	(void)state;
	assert_non_null(f);
	for (uint32_t i = 0; i < 3; i++) {
		h.pid = 200 + i;
		assert_int_equal(sp_block_write(f, &h, sample, n - i), 0);
	}
	assert_int_equal(fclose(f), 0);
	read_all(path);
	assert_int_equal(seq.n, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(seq.rc[i], 1);
		assert_int_equal(seq.pid[i], 200 + i);
	}
	assert_int_equal(seq.rc[3], 0);
	unlink(path);
}

static void test_write_errors(void **state)
{
	struct sp_block_header h = { .exe = "/bin/x" };
	FILE *f = fopen("/dev/full", "wb");

	(void)state;
	if (!f)
		skip();
	assert_int_equal(sp_block_write(f, &h, sample, sample_spans()), -1);
	fclose(f);
	assert_int_equal(sp_block_write(NULL, &h, sample, 1), -1);
}

static void test_empty_file(void **state)
{
	const char *path = tmp_path("empty.blk");

	(void)state;
	write_file(path, "", 0);
	read_all(path);
	assert_int_equal(seq.n, 1);
	assert_int_equal(seq.rc[0], 0);
	unlink(path);
}

/* Every possible crash point: the whole blocks before the cut come back,
 * the cut one is reported once, then the file ends. */
static void test_truncated_every_length(void **state)
{
	const char *path = tmp_path("cut.blk");
	size_t off[4];
	uint8_t *all = three_blocks(off);
	char want[64];

	(void)state;
	for (size_t cut = 0; cut < off[3]; cut++) {
		size_t whole = cut >= off[2] ? 2 : cut >= off[1] ? 1 : 0;
		bool clean = cut == off[whole];

		write_file(path, all, cut);
		read_all(path);
		assert_int_equal(seq.n, whole + (clean ? 1 : 2));
		for (size_t i = 0; i < whole; i++)
			assert_int_equal(seq.pid[i], 101 + i);
		if (clean)
			continue;
		assert_int_equal(seq.rc[whole], -1);
		snprintf(want, sizeof(want), "truncated block at offset %zu ", off[whole]);
		if (!err_has(whole, want) || !err_has(whole, path))
			fail_msg("cut at %zu: %s", cut, seq.err[whole]);
	}
	/* the byte counts are in the message */
	write_file(path, all, off[2] + 40);
	read_all(path);
	snprintf(want, sizeof(want), "(have 40 of %zu bytes)", off[3] - off[2]);
	assert_true(err_has(2, want));
	write_file(path, all, off[1] + 10);
	read_all(path);
	assert_true(err_has(1, "(have 10 of 32 bytes)"));
	unlink(path);
	free(all);
}

/* Any single damaged byte of the middle block loses that block only. */
static void test_corrupt_middle_every_byte(void **state)
{
	const char *path = tmp_path("bad.blk");
	size_t off[4];
	uint8_t *all = three_blocks(off);
	char want[64];

	(void)state;
	snprintf(want, sizeof(want), "corrupted block at offset %zu:", off[1]);
	for (size_t at = off[1]; at < off[2]; at++) {
		all[at] ^= 0x5a;
		write_file(path, all, off[3]);
		all[at] ^= 0x5a;
		read_all(path);
		assert_int_equal(seq.n, 4);
		assert_int_equal(seq.pid[0], 101);
		assert_int_equal(seq.rc[1], -1);
		assert_int_equal(seq.pid[2], 103);
		assert_int_equal(seq.rc[3], 0);
		if (!err_has(1, want) || !err_has(1, path))
			fail_msg("byte %zu: %s", at, seq.err[1]);
	}
	unlink(path);
	free(all);
}

static void test_corrupt_first_block(void **state)
{
	const char *path = tmp_path("bad1.blk");
	size_t off[4];
	uint8_t *all = three_blocks(off);

	(void)state;
	all[off[1] - 3] ^= 1;
	write_file(path, all, off[3]);
	read_all(path);
	assert_int_equal(seq.n, 4);
	assert_int_equal(seq.rc[0], -1);
	assert_true(err_has(0, "payload checksum mismatch"));
	assert_int_equal(seq.pid[1], 102);
	assert_int_equal(seq.pid[2], 103);
	unlink(path);
	free(all);
}

static void test_garbage_file(void **state)
{
	const char *path = tmp_path("garbage.blk");
	uint8_t junk[5000];

	(void)state;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd();
	write_file(path, junk, sizeof(junk));
	read_all(path);
	assert_int_equal(seq.n, 2);
	assert_int_equal(seq.rc[0], -1);
	assert_true(err_has(0, "offset 0: bad magic"));
	/* short garbage, shorter than a frame header */
	write_file(path, "hello\n", 6);
	read_all(path);
	assert_int_equal(seq.n, 2);
	assert_true(err_has(0, "bad magic"));
	unlink(path);
}

/* Garbage before, between (across a scan chunk) and after good blocks. */
static void test_resync_through_garbage(void **state)
{
	const char *path = tmp_path("mixed.blk");
	size_t off[4], pos = 0, junk = 200000;
	uint8_t *all = three_blocks(off);
	uint8_t *file = malloc(off[3] + junk + 200);

	(void)state;
	assert_non_null(file);
	for (size_t i = 0; i < 100; i++)
		file[pos++] = (uint8_t)rnd();
	/* a decoy the scan itself must step over */
	memcpy(file + pos, SP_BLOCK_MAGIC, 8);
	pos += 8;
	for (size_t i = 0; i < 50; i++)
		file[pos++] = (uint8_t)rnd();
	memcpy(file + pos, all, off[1]);
	pos += off[1];
	/* a decoy magic with a bad header checksum, then plain junk */
	memcpy(file + pos, SP_BLOCK_MAGIC, 8);
	pos += 8;
	for (size_t i = 0; i < junk; i++)
		file[pos++] = (uint8_t)rnd();
	memcpy(file + pos, all + off[1], off[3] - off[1]);
	pos += off[3] - off[1];
	memcpy(file + pos, "\x89SP", 3); /* a magic cut short by the end */
	pos += 3;
	write_file(path, file, pos);
	read_all(path);
	assert_int_equal(seq.n, 7);
	assert_int_equal(seq.rc[0], -1);
	assert_true(err_has(0, "offset 0:"));
	assert_int_equal(seq.pid[1], 101);
	assert_int_equal(seq.rc[2], -1);
	assert_int_equal(seq.pid[3], 102);
	assert_int_equal(seq.pid[4], 103);
	assert_int_equal(seq.rc[5], -1);
	assert_true(err_has(5, "truncated"));
	assert_int_equal(seq.rc[6], 0);
	unlink(path);
	free(file);
	free(all);
}

/* A block appended after a crash-truncated one is still found. */
static void test_block_after_truncated_block(void **state)
{
	const char *path = tmp_path("append.blk");
	size_t off[4];
	uint8_t *all = three_blocks(off), *file = malloc(off[3]);
	size_t first = off[1] - 20;

	(void)state;
	memcpy(file, all, first);
	memcpy(file + first, all + off[1], off[2] - off[1]);
	write_file(path, file, first + off[2] - off[1]);
	read_all(path);
	assert_int_equal(seq.n, 3);
	assert_int_equal(seq.rc[0], -1);
	assert_int_equal(seq.pid[1], 102);
	unlink(path);
	free(file);
	free(all);
}

static void test_version_mismatch_in_file(void **state)
{
	const char *path = tmp_path("v4.blk");
	size_t off[4];
	uint8_t *all = three_blocks(off);

	(void)state;
	le32(all + off[1] + 8, 4);
	fix_header_crc(all + off[1]);
	write_file(path, all, off[3]);
	read_all(path);
	assert_int_equal(seq.n, 4);
	assert_int_equal(seq.pid[0], 101);
	assert_int_equal(seq.rc[1], -1);
	assert_true(err_has(1, "unsupported format version 4"));
	assert_int_equal(seq.pid[2], 103);
	unlink(path);
	free(all);
}

static void test_open_errors(void **state)
{
	char err[256];

	(void)state;
	assert_null(sp_block_reader_open(tmp_path("missing.blk"), err, sizeof(err)));
	assert_non_null(strstr(err, "missing.blk: No such file"));
	assert_null(sp_block_reader_open(tmpdir, err, sizeof(err)));
	assert_non_null(strstr(err, "Is a directory"));
}

/* ---- printing ---------------------------------------------------------- */

static char *capture_tree(const struct sp_span *s, size_t n, bool json)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(f);
	if (json)
		sp_print_json(f, s, n);
	else
		sp_print_tree(f, s, n, SP_TREE_EXPAND);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void test_tree_known(void **state)
{
	struct sp_span s[5];
	char *text;

	(void)state;
	/* deliberately out of order */
	s[0] = mk(17, 21, 19, "block_processing", T0 + 171 * MS, 2489 * MS, 2, SP_SPAN_ABNORMAL);
	s[1] = mk(17, 19, 17, "flight_sql_query_execution", T0 + 13 * MS, 2832100000ull, 1, 0);
	s[2] = mk(17, 17, 0, "execute_query", T0, 2847300000ull, 0, SP_SPAN_ROOT);
	s[3] = mk(17, 20, 19, "partition_fetch", T0 + 14 * MS, 156200000ull, 2, 0);
	s[4] = mk(17, 18, 17, "make_session_context", T0 + 1000, 12 * MS, 1, 0);
	text = capture_tree(s, 5, false);
	assert_string_equal(text,
		"query 17 pid 1234 tid 1240  execute_query  2847.3 ms  (2026-11-25T22:01:02.123456Z)\n"
		"├── make_session_context  12.0 ms\n"
		"└── flight_sql_query_execution  2832.1 ms\n"
		"    ├── partition_fetch  156.2 ms\n"
		"    └── block_processing  2489.0 ms  [abnormal]\n");
	free(text);
}

static void test_tree_details(void **state)
{
	struct sp_span s[5];
	char *text;

	(void)state;
	s[0] = mk(5, 5, 0, "q", T0, 999949, 0, SP_SPAN_ROOT | SP_SPAN_INCOMPLETE);
	s[1] = mk(5, 6, 5, "a\x1b[31m", T0 + 1, 1500, 1, 0);
	s[2] = mk(5, 7, 6, "deep", T0 + 2, 42, 2, SP_SPAN_ABNORMAL | SP_SPAN_INCOMPLETE);
	s[3] = mk(5, 8, 5, "other_thread", T0 + 3, 999950, 1, 0);
	s[4] = mk(5, 9, 5, "ended_before_begin", T0 + 4, 0, 1, 0);
	s[3].tid = 77;
	s[4].end_ns = T0;
	text = capture_tree(s, 5, false);
	assert_string_equal(text,
		"query 5 pid 1234 tid 1240  q  999.9 µs  (2026-11-25T22:01:02.123456Z)  [incomplete]\n"
		"├── a?[31m  1.5 µs\n"
		"│   └── deep  0.0 µs  [abnormal] [incomplete]\n"
		"├── other_thread  1.0 ms  tid 77\n"
		"└── ended_before_begin  0.0 µs\n");
	free(text);
}

/* Nested async spans: a window over 1 ms is shown beside the duration
 * (issue 10), one of 1 ms or less is not. */
static void test_tree_windows(void **state)
{
	struct sp_span s[4];
	char *text;

	(void)state;
	s[0] = mk(9, 9, 0, "handle", T0, 1200 * MS, 0, SP_SPAN_ROOT);
	s[1] = mk(9, 10, 9, "load_user", T0 + 1, 700 * MS, 1, 0);
	s[2] = mk(9, 11, 9, "query_db", T0 + 2, 200 * MS, 1, 0);
	s[3] = mk(9, 12, 9, "audit", T0 + 3, 500 * MS, 1, 0);
	s[1].uncertainty_hi_ns = 20200000;
	s[2].uncertainty_lo_ns = 1500000;
	s[2].uncertainty_hi_ns = 1000000;
	s[3].uncertainty_lo_ns = 999999;
	text = capture_tree(s, 4, false);
	assert_string_equal(text,
		"query 9 pid 1234 tid 1240  handle  1200.0 ms  (2026-11-25T22:01:02.123456Z)\n"
		"├── load_user  700.0 ms  [end ≤ -20.2 ms]\n"
		"├── query_db  200.0 ms  [begin ≤ +1.5 ms]\n"
		"└── audit  500.0 ms\n");
	free(text);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Orphans, duplicate ids, self-parents, cycles and deep chains: every
 * span printed exactly once, no hang, no stack overflow. */
static void test_tree_hostile(void **state)
{
	enum { DEEP = 20000 };
	struct sp_span *s = calloc(DEEP, sizeof(*s));
	char *text;

	(void)state;
	assert_non_null(s);
	s[0] = mk(1, 1, 0, "root", T0, 10, 0, SP_SPAN_ROOT);
	s[1] = mk(1, 1, 0, "dup_root", T0, 10, 0, SP_SPAN_ROOT);
	s[2] = mk(1, 5, 1, "child_of_dup", T0 + 1, 1, 1, 0);
	s[3] = mk(1, 6, 6, "self_parent", T0 + 2, 1, 1, 0);
	s[4] = mk(1, 7, 8, "cycle_a", T0 + 3, 1, 1, 0);
	s[5] = mk(1, 8, 7, "cycle_b", T0 + 4, 1, 1, 0);
	s[6] = mk(1, 9, 999, "orphan", T0 + 5, 1, 1, 0);
	s[7] = mk(1, 5, 5, "dup_self", T0 + 6, 1, 1, 0);
	s[8] = mk(1, 10, 0, NULL, T0 + 7, 1, 0, 0);
	text = capture_tree(s, 9, false);
	assert_int_equal(count_lines(text), 9);
	assert_non_null(strstr(text, "query 1 pid 1234 tid 1240  orphan  0.0 µs  "));
	assert_non_null(strstr(text, "[orphan]\n"));
	free(text);

	for (size_t i = 0; i < DEEP; i++)
		s[i] = mk(1, i + 1, i, "r", T0 + i, DEEP - i, (uint32_t)i, 0);
	text = capture_tree(s, DEEP, false);
	assert_int_equal(count_lines(text), DEEP);
	assert_non_null(strstr(text, "[+19967]"));
	free(text);
	free(s);
}

static void test_json_escaping(void **state)
{
	struct sp_span s = mk(3, 4, 3, "a\"b\\c\nd\te\x01" "f\x7f é😀\xff\xc3(\xed\xa0\x80!",
			      T0, 1500, 1, SP_SPAN_ABNORMAL);
	char *text;

	(void)state;
	text = capture_tree(&s, 1, true);
	assert_string_equal(text,
		"{\"query_id\":3,\"span_id\":4,\"parent_span_id\":3,\"depth\":1,"
		"\"name\":\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f é😀\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd!\","
		"\"begin_ns\":1795644062123456000,\"end_ns\":1795644062123457500,"
		"\"duration_ns\":1500,\"tid\":1240,\"pid\":1234,"
		"\"flags\":[\"abnormal\"],\"abnormal\":true}\n");
	free(text);
}

static void test_json_flags_and_lines(void **state)
{
	struct sp_span s[3];
	char *text;

	(void)state;
	s[0] = mk(1, 1, 0, "r", T0, 0, 0, SP_SPAN_ROOT | SP_SPAN_INCOMPLETE | 0x100);
	s[1] = mk(1, 2, 1, NULL, 10, 5, 1, 0);
	s[2] = mk(1, 3, 1, "x", 10, 5, 1, SP_SPAN_ROOT | SP_SPAN_ABNORMAL);
	s[1].end_ns = 0;
	text = capture_tree(s, 3, true);
	assert_int_equal(count_lines(text), 3);
	assert_non_null(strstr(text, "\"flags\":[\"root\",\"incomplete\",\"0x100\"],\"abnormal\":false}\n"));
	assert_non_null(strstr(text, "\"name\":\"\",\"begin_ns\":10,\"end_ns\":0,\"duration_ns\":0,"));
	assert_non_null(strstr(text, "\"flags\":[],\"abnormal\":false}\n"));
	assert_non_null(strstr(text, "\"flags\":[\"root\",\"abnormal\"],\"abnormal\":true}\n"));
	free(text);
}

struct groups {
	uint64_t q[8];
	size_t n[8];
	size_t count;
	bool ordered;
};

static void collect(const struct sp_span *q, size_t n, void *arg)
{
	struct groups *g = arg;

	for (size_t i = 0; i < n; i++) {
		if (q[i].query_id != q[0].query_id)
			g->ordered = false;
		if (i && q[i].begin_ns < q[i - 1].begin_ns)
			g->ordered = false;
	}
	g->q[g->count] = q[0].query_id;
	g->n[g->count++] = n;
}

static void test_for_each_query(void **state)
{
	struct sp_span s[6];
	struct groups g = { .ordered = true };

	(void)state;
	s[0] = mk(9, 9, 0, "a", 50, 1, 0, SP_SPAN_ROOT);
	s[1] = mk(3, 4, 3, "b", 20, 1, 1, 0);
	s[2] = mk(9, 10, 9, "c", 60, 1, 1, 0);
	s[3] = mk(3, 3, 0, "d", 10, 1, 0, SP_SPAN_ROOT);
	s[4] = mk(UINT64_MAX, 1, 0, "e", 0, 1, 0, 0);
	s[5] = mk(9, 11, 9, "f", 55, 1, 1, 0);
	sp_for_each_query(s, 6, collect, &g);
	assert_true(g.ordered);
	assert_int_equal(g.count, 3);
	assert_int_equal(g.q[0], 3);
	assert_int_equal(g.n[0], 2);
	assert_int_equal(g.q[1], 9);
	assert_int_equal(g.n[1], 3);
	assert_int_equal(g.q[2], UINT64_MAX);
	sp_for_each_query(s, 0, collect, &g);
	assert_int_equal(g.count, 3);
}

/* ---- dump command ------------------------------------------------------ */

static struct run run_dump(int argc, const char **argv)
{
	return run_cmd(sp_cmd_dump, argc, argv);
}

static void test_dump_usage(void **state)
{
	const char *none[] = { "dump" };
	const char *two[] = { "dump", "a", "b" };
	const char *opt[] = { "dump", "--tree", "a" };
	const char *missing[] = { "dump", tmp_path("nope.blk") };
	struct run r;

	(void)state;
	r = run_dump(1, none);
	assert_int_equal(r.rc, 2);
	assert_non_null(strstr(r.err, "usage"));
	run_free(&r);
	r = run_dump(3, two);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = run_dump(3, opt);
	assert_int_equal(r.rc, 2);
	assert_non_null(strstr(r.err, "--tree"));
	run_free(&r);
	r = run_dump(2, missing);
	assert_int_equal(r.rc, 2);
	assert_non_null(strstr(r.err, "nope.blk"));
	assert_string_equal(r.out, "");
	run_free(&r);
}

static void test_dump_output(void **state)
{
	char path[128];
	size_t off[4];
	uint8_t *all = three_blocks(off);
	const char *tree[] = { "dump", path };
	const char *json[] = { "dump", "--json", path };
	struct run r;

	(void)state;
	snprintf(path, sizeof(path), "%s", tmp_path("dump.blk"));
	write_file(path, all, off[3]);
	r = run_dump(2, tree);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "");
	assert_non_null(strstr(r.out,
		"block: pid 101 exe /usr/bin/server started 2026-11-25T22:01:01.123456Z"
		"  spans from 2026-11-25T22:01:02.123456Z to 2026-11-25T22:01:04.970756Z"
		"  4 spans  202 dropped events\n"
		"query 17 pid 1234 tid 1240  execute_query  2847.3 ms  (2026-11-25T22:01:02.123456Z)\n"));
	assert_non_null(strstr(r.out, "block: pid 103 "));
	run_free(&r);

	/* damage the middle block: the others still come out, status 1 */
	all[off[1] + 40] ^= 1;
	write_file(path, all, off[3]);
	r = run_dump(3, json);
	assert_int_equal(r.rc, 1);
	assert_int_equal(count_lines(r.out), 4 + 2);
	for (const char *l = r.out; *l; l = strchr(l, '\n') + 1)
		assert_int_equal(*l, '{');
	assert_non_null(strstr(r.err, path));
	assert_non_null(strstr(r.err, "offset"));
	run_free(&r);
	unlink(path);
	free(all);
}

/* ---- durations --------------------------------------------------------- */

static void test_duration_ok(void **state)
{
	static const struct { const char *s; uint64_t ns; } ok[] = {
		{ "5ms", 5000000 }, { "1s", 1000000000 }, { "0", 0 },
		{ "250us", 250000 }, { "10ns", 10 }, { "0s", 0 },
		{ "1.5s", 1500000000 }, { "0.5ms", 500000 }, { "2.25us", 2250 },
		{ "0.000000001s", 1 }, { "18446744073709551615ns", UINT64_MAX },
		{ "18446744073.709551615s", UINT64_MAX },
	};
	uint64_t ns;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ns = 7;
		if (sp_parse_duration(ok[i].s, &ns) != 0 || ns != ok[i].ns)
			fail_msg("\"%s\" gave %llu", ok[i].s, (unsigned long long)ns);
	}
}

static void test_duration_rejected(void **state)
{
	static const char *bad[] = {
		"5", "-1ms", "5 ms", "ms", "", " 5ms", "+5ms", "5ms ", "5m", "5MS",
		"1.5ns", "1.s", ".5s", "1.5", "0.0", "1..5s", "1.5.5s",
		"0.0000000001s", "18446744073709551616ns", "18446744073709551615us",
		"18446744073.709551616s", "99999999999999999999999s", "-0", "0x10ns",
	};
	uint64_t ns = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sp_parse_duration(bad[i], &ns) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
	assert_int_equal(sp_parse_duration(NULL, &ns), -1);
	assert_int_equal(ns, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_names_deduplicated),
		cmocka_unit_test(test_empty_block),
		cmocka_unit_test(test_encode_rejects_bad_args),
		cmocka_unit_test(test_decode_wrong_magic_and_short),
		cmocka_unit_test(test_decode_version_mismatch),
		cmocka_unit_test(test_stats_roundtrip),
		cmocka_unit_test(test_stats_layout),
		cmocka_unit_test(test_stats_in_file),
		cmocka_unit_test(test_stats_frame_mutations),
		cmocka_unit_test(test_doc_example),
		cmocka_unit_test(test_caps_roundtrip),
		cmocka_unit_test(test_crafted_payloads),
		cmocka_unit_test(test_crafted_stats_payloads),
		cmocka_unit_test(test_read_v1_block),
		cmocka_unit_test(test_two_zstd_frames_rejected),
		cmocka_unit_test(test_payload_mutations),
		cmocka_unit_test(test_frame_mutations),
		cmocka_unit_test(test_write_and_read_file),
		cmocka_unit_test(test_write_errors),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_truncated_every_length),
		cmocka_unit_test(test_corrupt_middle_every_byte),
		cmocka_unit_test(test_corrupt_first_block),
		cmocka_unit_test(test_garbage_file),
		cmocka_unit_test(test_resync_through_garbage),
		cmocka_unit_test(test_block_after_truncated_block),
		cmocka_unit_test(test_version_mismatch_in_file),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_tree_known),
		cmocka_unit_test(test_tree_details),
		cmocka_unit_test(test_tree_windows),
		cmocka_unit_test(test_tree_hostile),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_json_flags_and_lines),
		cmocka_unit_test(test_for_each_query),
		cmocka_unit_test(test_dump_usage),
		cmocka_unit_test(test_dump_output),
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_rejected),
	};

	return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
