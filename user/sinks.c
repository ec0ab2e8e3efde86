#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "sinks.h"
#include "span_print.h"

int sp_sinks_open_blocks(struct sp_sinks *s, const char *path,
			 char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 errno == ELOOP ? "is a symbolic link, refusing to follow it" : strerror(errno));
		return -1;
	}
	s->blocks = fdopen(fd, "wb");
	if (!s->blocks) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	s->blocks_path = path;
	return 0;
}

void sp_sinks_query(void *arg, struct sp_span *spans, size_t n)
{
	struct sp_sinks *s = arg;

	for (size_t i = 0; i < n; i++) {
		spans[i].begin_ns += s->wall_offset;
		spans[i].end_ns += s->wall_offset;
	}
	if (s->print_trees) {
		sp_print_tree(stdout, spans, n);
		fflush(stdout);
	}
	if (s->blocks) {
		s->meta.dropped_events = s->dropped ? *s->dropped : 0;
		if (sp_block_write(s->blocks, &s->meta, spans, n))
			s->write_errors++;
		else
			s->blocks_written++;
	}
}

int sp_sinks_close(struct sp_sinks *s)
{
	int rc = 0;

	if (s->blocks && fclose(s->blocks))
		rc = -1;
	s->blocks = NULL;
	return rc;
}
