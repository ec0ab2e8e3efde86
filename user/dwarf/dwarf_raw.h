/*
 * The fast pass over the DIEs of a unit (dwarf_raw.c), for the walk of
 * the async analysis: each DIE directly in a namespace goes to w->note.
 */
#ifndef SPANPROBE_DWARF_RAW_H
#define SPANPROBE_DWARF_RAW_H

#include <stdbool.h>
#include <stdint.h>
#include "dwarf/async_dwarf_base.h"

/* The sections the fast pass reads, as libdw left them (decompressed). */
struct raw_secs {
	const uint8_t *info, *abbrev, *str, *str_offsets;
	size_t info_len, abbrev_len, str_len, str_offsets_len;
};

/* Where a unit is and how it is encoded. */
struct unit_span {
	Dwarf_Off die, end, abbrev; /* unit DIE, end of the unit */
	uint16_t version;
	uint8_t addr_size, off_size;
};

void find_raw_secs(Elf *e, struct raw_secs *r);
bool raw_unit_walk(struct walk *w, const struct raw_secs *r,
		   const struct unit_span *us);

#endif
