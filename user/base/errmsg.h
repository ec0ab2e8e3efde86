/* The err/errlen convention of the loader's functions: a message for the
 * caller to print, written only when the caller gave a buffer. */
#ifndef SPANPROBE_ERRMSG_H
#define SPANPROBE_ERRMSG_H

#include <stddef.h>

void sp_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* s[0..n) made fit for an error message: control bytes and DEL as \xNN
 * (an input file is not trusted to drive the terminal), cut after 64
 * bytes with "...". out is always terminated. */
void sp_err_printable(char *out, size_t outlen, const char *s, size_t n);

#endif
