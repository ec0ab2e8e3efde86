/*
 * USDT probes of one ELF object, from its .note.stapsdt notes (SystemTap
 * SDT v3: pc, base, semaphore, "provider", "name", "argument specs").
 * Used to list and check probes; the attach itself is libbpf's
 * (bpf_program__attach_usdt), which reads the same notes.
 */
#ifndef SPANPROBE_USDT_NOTES_H
#define SPANPROBE_USDT_NOTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gelf.h>

#define SP_USDT_MAX_ARGS 12 /* as libbpf's BPF side */

enum sp_usdt_arg_kind {
	SP_USDT_ARG_CONST = 0, /* $N */
	SP_USDT_ARG_REG,       /* %reg */
	SP_USDT_ARG_DEREF,     /* off(%reg) */
};

/* One "SIZE@LOCATION" spec, e.g. "-4@%esi", "8@-16(%rbp)", "8@$3". */
struct sp_usdt_arg {
	enum sp_usdt_arg_kind kind;
	int8_t size;       /* bytes, negative when signed: -8 -4 -2 -1 1 2 4 8 */
	char reg[8];       /* register name without '%' (REG, DEREF) */
	int64_t val;       /* the constant (CONST) or the offset (DEREF) */
};

struct sp_usdt_probe {
	char *provider;
	char *name;
	uint64_t pc;        /* address, .stapsdt.base adjustment applied */
	uint64_t semaphore; /* address, adjusted; 0: none */
	uint64_t pc_offset; /* file offset of pc (0 when no PT_LOAD holds it) */
	char *args_text;    /* the specs as written */
	int n_args;         /* -1 when args_text could not be parsed */
	struct sp_usdt_arg args[SP_USDT_MAX_ARGS];
};

struct sp_usdt_list {
	struct sp_usdt_probe *v;
	size_t n, cap;
};

/* Parses the contents of a .note.stapsdt section (any alignment of buf).
 * base_addr is the address of the object's .stapsdt.base section (0 if
 * it has none): a note records where that section was at link time, so
 * the difference is how far prelink (or any relinking) moved the probes.
 * Notes of other owners or types are skipped. A malformed stapsdt note
 * is an error ("note at byte N: REASON"; out is then empty); a malformed
 * argument spec only sets that probe's n_args to -1. out is initialised
 * here. 0 or -1. */
int sp_usdt_parse_notes(const void *buf, size_t len, uint64_t base_addr,
			struct sp_usdt_list *out, char *err, size_t errlen);

/* Parses one argument list ("-4@%esi 8@-16(%rbp)"); the count or -1. */
int sp_usdt_parse_args(const char *text, struct sp_usdt_arg *args, int max);

/* The probes of an open ELF object: its .note.stapsdt, adjusted by its
 * .stapsdt.base, each pc given its file offset. An object without the
 * section has none (0, empty list). 0 or -1 with err. */
int sp_usdt_read_elf(Elf *e, struct sp_usdt_list *out, char *err, size_t errlen);

/* "provider:name" against a probe; each side may be a shell glob. */
bool sp_usdt_matches(const struct sp_usdt_probe *p, const char *spec);

void sp_usdt_list_free(struct sp_usdt_list *l);

#endif
