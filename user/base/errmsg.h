/* The err/errlen convention of the loader's functions: a message for the
 * caller to print, written only when the caller gave a buffer. */
#ifndef SPANPROBE_ERRMSG_H
#define SPANPROBE_ERRMSG_H

#include <stddef.h>

void sp_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
