#include "base/utf8_clean.h"

/* As Rust's str::from_utf8 judges it. */
size_t sp_utf8_seq_len(const unsigned char *p)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

size_t sp_utf8_clean(FILE *f, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t total = 0;

	while (*p) {
		size_t n = sp_utf8_seq_len(p), out = n ? n : 3;

		if (out > max - total)
			break;
		if (f)
			fwrite(n ? (const void *)p : REPLACEMENT, 1, out, f);
		total += out;
		p += n ? n : 1;
	}
	return total;
}
