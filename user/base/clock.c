#include <time.h>
#include "base/clock.h"

static uint64_t now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sp_now_mono(void)
{
	return now(CLOCK_MONOTONIC);
}

uint64_t sp_now_wall(void)
{
	return now(CLOCK_REALTIME);
}

int64_t sp_wall_offset(void)
{
	uint64_t best_gap = UINT64_MAX;
	int64_t best = 0;

	for (int i = 0; i < 8; i++) {
		uint64_t m0 = sp_now_mono(), w = sp_now_wall(), m1 = sp_now_mono();

		if (m1 - m0 < best_gap) {
			best_gap = m1 - m0;
			best = (int64_t)(w - (m0 + (m1 - m0) / 2));
		}
	}
	return best;
}
