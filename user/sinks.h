/* Where kept queries go: the block file and/or trees on stdout. */
#ifndef SPANPROBE_SINKS_H
#define SPANPROBE_SINKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "block_format.h"

struct sp_sinks {
	FILE *blocks;           /* NULL: no block file */
	const char *blocks_path;
	bool print_trees;
	int64_t wall_offset;    /* added to monotonic times */
	struct sp_block_header meta;
	const uint64_t *dropped; /* live count of lost events */
	uint64_t blocks_written;
	uint64_t write_errors;
};

/* Creates the block file 0600, refusing to follow a symlink. */
int sp_sinks_open_blocks(struct sp_sinks *s, const char *path,
			 char *err, size_t errlen);
/* An sp_query_fn: converts times to wall clock and writes one block. */
void sp_sinks_query(void *sinks, struct sp_span *spans, size_t n);
int sp_sinks_close(struct sp_sinks *s);

#endif
