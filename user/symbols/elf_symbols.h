/* Function symbols of one ELF object, deduplicated by address. */
#ifndef SPANPROBE_ELF_SYMBOLS_H
#define SPANPROBE_ELF_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gelf.h>

struct sp_elf_func {
	/* names[0] is preferred (.symtab over .dynsym, global over local);
	 * the rest are aliases at the same address. They point into the
	 * ELF's string tables and live as long as the sp_elf. */
	const char **names;
	size_t n_names;
	uint64_t addr;   /* st_value */
	uint64_t size;   /* st_size of names[0] */
	uint64_t offset; /* file offset of addr; valid when in_exec */
	bool in_exec;    /* [addr, addr+size) lies in an executable PT_LOAD */
	bool ifunc;      /* STT_GNU_IFUNC: addr is the resolver */
};

struct sp_elf {
	int fd;
	Elf *elf;
	/* The separate debug file whose .symtab was read (a binary stripped
	 * to .dynsym): names point into it too. -1 / NULL when none. */
	int dbg_fd;
	Elf *dbg_elf;
	bool own_symtab;       /* the object has a .symtab of its own */
	bool symtab_from_debug; /* .symtab came from dbg_elf */
	const uint8_t *image; /* the whole file (map) */
	size_t image_size;
	void *map;            /* shared mapping of fd: see sp_elf_begin_shared */
	size_t map_size;
	struct sp_elf_func *funcs; /* sorted by addr */
	size_t n;
	const char **name_pool; /* backing store of every funcs[i].names */
};

/* Opens path and collects its defined, sized STT_FUNC / STT_GNU_IFUNC
 * symbols from .symtab and .dynsym. display names the file in errors:
 * "DISPLAY: No such file or directory", "DISPLAY: not an ELF file",
 * "DISPLAY: no symbols (.symtab and .dynsym are empty)". 0, -1, or SP_ELF_NO_FUNCS when
 * the file is a good ELF object that defines no function (a data-only
 * library such as libicudata, or a stripped one). */
#define SP_ELF_NO_FUNCS (-2)
int sp_elf_open(struct sp_elf *o, const char *path, const char *display,
		char *err, size_t errlen);
/* The same, and when the object has no .symtab of its own, the .symtab
 * of debug_path (its separate debug file, already checked to be its
 * own; NULL for none). Addresses are the object's: --only-keep-debug
 * keeps section addresses, and file offsets come from the object's own
 * load segments (the debug file's hold no code). */
int sp_elf_open_debug(struct sp_elf *o, const char *path, const char *debug_path,
		      const char *display, char *err, size_t errlen);
void sp_elf_close(struct sp_elf *o);
/* fd's file as an Elf over a shared mapping of it (munmap *map after
 * elf_end): the kernel inserts every active uprobe of a file (ours of an
 * earlier rescan, another tracer's, one made for every process by attach
 * --exe) into each private mapping of it that may execute, read-only ones
 * included, so code read through libelf's own private mapping would show
 * their int3s. A shared mapping gets none. */
Elf *sp_elf_begin_shared(int fd, void **map, size_t *size);


/* Bytes of [offset, offset+size) in the file, or NULL if out of range. */
const uint8_t *sp_elf_bytes(const struct sp_elf *o, uint64_t offset,
			    uint64_t size);

#endif
