/*
 * Durations on the command line: digits, an optional decimal fraction,
 * then a unit ("250us", "1.5s"). Digits are parsed by hand because
 * strtoull would also take leading blanks, a sign or a wrapped negative.
 */
#include <string.h>
#include "cli/cli.h"

#define MAX_FRAC_DIGITS 9 /* a nanosecond is 1e-9 s: finer is never exact */

struct unit {
	const char *sfx;
	uint64_t mul;
};

static const struct unit *find_unit(const char *s)
{
	static const struct unit units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(s, units[i].sfx) == 0)
			return &units[i];
	return NULL;
}

/* Reads one or more digits; -1 if there are none or they overflow. */
static int digits(const char **s, uint64_t *v, unsigned *count)
{
	const char *p = *s;

	*v = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (*v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		*v = *v * 10 + (uint64_t)(*p - '0');
	}
	*count = (unsigned)(p - *s);
	*s = p;
	return *count ? 0 : -1;
}

/* frac/10^nd of one unit, which must be a whole number of ns. */
static int frac_ns(uint64_t frac, unsigned nd, uint64_t mul, uint64_t *ns)
{
	uint64_t scale = 1;

	if (nd > MAX_FRAC_DIGITS)
		return -1;
	while (nd--)
		scale *= 10;
	/* frac < 1e9 and mul <= 1e9, so the product fits */
	if (frac * mul % scale)
		return -1;
	*ns = frac * mul / scale;
	return 0;
}

int sp_parse_duration(const char *s, uint64_t *ns)
{
	const struct unit *u;
	uint64_t whole, frac = 0, part = 0;
	unsigned nd = 0, nw;

	if (!s || digits(&s, &whole, &nw))
		return -1;
	if (*s == '.') {
		s++;
		if (digits(&s, &frac, &nd))
			return -1;
	}
	if (*s == '\0') {
		/* a unit is required so that "5" is never ambiguous */
		if (whole != 0 || nd)
			return -1;
		*ns = 0;
		return 0;
	}
	u = find_unit(s);
	if (!u || whole > UINT64_MAX / u->mul)
		return -1;
	if (nd && frac_ns(frac, nd, u->mul, &part))
		return -1;
	if (whole * u->mul > UINT64_MAX - part)
		return -1;
	*ns = whole * u->mul + part;
	return 0;
}
