/* BPF timestamps are CLOCK_MONOTONIC; output is wall-clock Unix ns. */
#ifndef SPANPROBE_CLOCK_H
#define SPANPROBE_CLOCK_H

#include <stdint.h>

uint64_t sp_now_mono(void);
uint64_t sp_now_wall(void);
/* wall - monotonic, sampled with the tightest bracket of a few tries. */
int64_t sp_wall_offset(void);

#endif
