#include <string.h>
#include "sinks/cbor_writer.h"

void sp_cbor_head(FILE *f, enum sp_cbor_major major, uint64_t arg)
{
	unsigned char b[9];
	size_t len;
	unsigned mt = (unsigned)major << 5;

	if (arg < 24) {
		b[0] = (unsigned char)(mt | arg);
		len = 1;
	} else {
		/* 24..27 announce 1, 2, 4 or 8 big-endian argument bytes */
		unsigned extra = arg <= 0xff ? 0 : arg <= 0xffff ? 1 : arg <= 0xffffffffu ? 2 : 3;
		size_t n = (size_t)1 << extra;

		b[0] = (unsigned char)(mt | (24 + extra));
		for (size_t i = 0; i < n; i++)
			b[1 + i] = (unsigned char)(arg >> (8 * (n - 1 - i)));
		len = 1 + n;
	}
	fwrite(b, 1, len, f);
}

void sp_cbor_uint(FILE *f, uint64_t v)
{
	sp_cbor_head(f, SP_CBOR_UINT, v);
}

void sp_cbor_int(FILE *f, int64_t v)
{
	if (v >= 0)
		sp_cbor_head(f, SP_CBOR_UINT, (uint64_t)v);
	else /* major 1 stores -1 - v, which cannot overflow for INT64_MIN */
		sp_cbor_head(f, SP_CBOR_NEGINT, (uint64_t)(-(v + 1)));
}

void sp_cbor_text_n(FILE *f, const char *s, size_t n)
{
	sp_cbor_head(f, SP_CBOR_TEXT, n);
	fwrite(s, 1, n, f);
}

void sp_cbor_text(FILE *f, const char *s)
{
	sp_cbor_text_n(f, s, strlen(s));
}

void sp_cbor_bytes(FILE *f, const void *p, size_t n)
{
	sp_cbor_head(f, SP_CBOR_BYTES, n);
	fwrite(p, 1, n, f);
}

void sp_cbor_bool(FILE *f, bool v)
{
	putc(v ? 0xf5 : 0xf4, f);
}

void sp_cbor_null(FILE *f)
{
	putc(0xf6, f);
}

void sp_cbor_array(FILE *f, size_t n)
{
	sp_cbor_head(f, SP_CBOR_ARRAY, n);
}

void sp_cbor_map(FILE *f, size_t n)
{
	sp_cbor_head(f, SP_CBOR_MAP, n);
}

void sp_cbor_kv_text(FILE *f, const char *key, const char *value)
{
	sp_cbor_text(f, key);
	sp_cbor_text(f, value);
}
