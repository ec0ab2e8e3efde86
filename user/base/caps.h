#ifndef SPANPROBE_CAPS_H
#define SPANPROBE_CAPS_H
#include <stddef.h>
/* 0 when the effective set allows loading and attaching uprobes; else -1
 * with a one-line message naming what is missing. */
int sp_check_caps(char *err, size_t errlen);
#endif
