/* Shared by the libFuzzer harnesses: inputs as files, and the rule that
 * every rejected input comes with a clear error. */
#ifndef SPANPROBE_FUZZ_COMMON_H
#define SPANPROBE_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A rejected input must say why: a non-empty, printable, NUL-terminated
 * message (mentioning `must`, e.g. the file name, when given). A silent
 * or garbled rejection is a failure of the harness, reported like a
 * crash. */
static __attribute__((unused)) void fuzz_check_err(const char *what, const char *err, size_t errlen, const char *must)
{
	size_t n = strnlen(err, errlen);

	if (n == 0 || n == errlen) {
		fprintf(stderr, "%s: input rejected without a (terminated) error message\n", what);
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)err[i];

		if (c < 0x20 && c != '\t') {
			fprintf(stderr, "%s: control character 0x%02x in the error: %s\n", what, c, err);
			abort();
		}
	}
	if (must && !strstr(err, must)) {
		fprintf(stderr, "%s: the error does not name %s: %s\n", what, must, err);
		abort();
	}
}

/* The input as a file: an anonymous memfd, reached through its
 * /proc/self/fd path (no disk, nothing to clean up but the fd). */
static __attribute__((unused)) int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);

		if (w <= 0) {
			perror("write");
			abort();
		}
		off += (size_t)w;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
