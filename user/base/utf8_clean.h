/* Text for decoders that reject bad UTF-8 (CBOR text, micromegas
 * StaticString): invalid bytes become U+FFFD instead of failing a whole
 * request on a strange symbol or path. */
#ifndef SPANPROBE_UTF8_CLEAN_H
#define SPANPROBE_UTF8_CLEAN_H

#include <stddef.h>
#include <stdio.h>

/* Writes s (NULL: "") as valid UTF-8 to f, or only measures it when f is
 * NULL. Stops before max bytes without splitting a character (use
 * SIZE_MAX for no limit). Returns the bytes written or measured. */
size_t sp_utf8_clean(FILE *f, const char *s, size_t max);

/* Length of the well-formed UTF-8 sequence at p, 0 if there is none
 * (overlongs, surrogates and code points past U+10FFFF rejected). Stops
 * at the first bad byte, so it never reads past a terminating NUL. */
size_t sp_utf8_seq_len(const unsigned char *p);

#endif
