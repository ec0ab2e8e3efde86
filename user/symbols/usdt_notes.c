/*
 * .note.stapsdt: each note (owner "stapsdt", type 3) describes one probe
 * site. Its descriptor holds three 8-byte addresses (pc, the link-time
 * address of .stapsdt.base, the semaphore) and three NUL-terminated
 * strings (provider, name, argument specs). The section comes from the
 * traced file, so every length is checked before it is used.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/errmsg.h"
#include "base/grow.h"
#include "symbols/usdt_notes.h"

#define NT_STAPSDT 3
#define ADDRS_LEN 24

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static size_t align4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* "%reg" at *s: copies the name, advances. */
static int parse_reg(const char **s, char reg[8])
{
	const char *p = *s;
	size_t n = 0;

	if (*p != '%')
		return -1;
	p++;
	while (isalnum((unsigned char)p[n]))
		n++;
	if (n == 0 || n >= 8)
		return -1;
	memcpy(reg, p, n);
	reg[n] = '\0';
	*s = p + n;
	return 0;
}

static int parse_int(const char **s, int64_t *v)
{
	char *end;
	long long x;

	if (!isdigit((unsigned char)**s) && **s != '-' && **s != '+')
		return -1;
	x = strtoll(*s, &end, 0);
	if (end == *s)
		return -1;
	*v = x;
	*s = end;
	return 0;
}

static bool size_ok(long n)
{
	return n == 1 || n == 2 || n == 4 || n == 8 || n == -1 || n == -2 || n == -4 || n == -8;
}

/* One "SIZE@LOC" token ending at a blank or the end. */
static int parse_one(const char **s, struct sp_usdt_arg *a)
{
	const char *p = *s;
	int64_t size;

	memset(a, 0, sizeof(*a));
	if (parse_int(&p, &size) || *p != '@' || !size_ok((long)size))
		return -1;
	a->size = (int8_t)size;
	p++;
	if (*p == '$') {
		p++;
		a->kind = SP_USDT_ARG_CONST;
		if (parse_int(&p, &a->val))
			return -1;
	} else if (*p == '%') {
		a->kind = SP_USDT_ARG_REG;
		if (parse_reg(&p, a->reg))
			return -1;
	} else {
		a->kind = SP_USDT_ARG_DEREF;
		if (*p != '(' && parse_int(&p, &a->val))
			return -1;
		if (*p++ != '(' || parse_reg(&p, a->reg) || *p++ != ')')
			return -1;
	}
	if (*p && !isspace((unsigned char)*p))
		return -1;
	*s = p;
	return 0;
}

int sp_usdt_parse_args(const char *text, struct sp_usdt_arg *args, int max)
{
	const char *p = text;
	int n = 0;

	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			return n;
		if (n == max || parse_one(&p, &args[n]))
			return -1;
		n++;
	}
}

/* The next NUL-terminated string in [*p, end), or NULL. */
static const char *take_str(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	const char *s = (const char *)*p;

	if (!nul)
		return NULL;
	*p = nul + 1;
	return s;
}

static int add_probe(struct sp_usdt_list *out, const uint8_t *desc, size_t dlen,
		     uint64_t base_addr, const char **why)
{
	const uint8_t *p = desc + ADDRS_LEN, *end = desc + dlen;
	const char *prov, *name, *args;
	uint64_t pc = rd64(desc), base = rd64(desc + 8), sema = rd64(desc + 16);
	struct sp_usdt_probe *pr;

	if (!(prov = take_str(&p, end)) || !(name = take_str(&p, end)) ||
	    !(args = take_str(&p, end))) {
		*why = "descriptor strings not NUL-terminated";
		return -1;
	}
	if (!*prov || !*name) {
		*why = "empty provider or probe name";
		return -1;
	}
	if (base_addr && base) {
		pc += base_addr - base;
		if (sema)
			sema += base_addr - base;
	}
	if (sp_grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v))) {
		*why = "out of memory";
		return -1;
	}
	pr = &out->v[out->n++];
	memset(pr, 0, sizeof(*pr));
	pr->pc = pc;
	pr->semaphore = sema;
	pr->provider = strdup(prov);
	pr->name = strdup(name);
	pr->args_text = strdup(args);
	if (!pr->provider || !pr->name || !pr->args_text) {
		*why = "out of memory";
		return -1;
	}
	pr->n_args = sp_usdt_parse_args(args, pr->args, SP_USDT_MAX_ARGS);
	return 0;
}

int sp_usdt_parse_notes(const void *buf, size_t len, uint64_t base_addr,
			struct sp_usdt_list *out, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	while (len - off >= 12) {
		uint32_t namesz = rd32(b + off), descsz = rd32(b + off + 4);
		uint32_t type = rd32(b + off + 8);
		size_t name_off = off + 12, desc_off, next;
		const char *why = NULL;

		if (namesz > len - name_off || align4(namesz) > len - name_off) {
			why = "name runs past the section";
		} else {
			desc_off = name_off + align4(namesz);
			if (descsz > len - desc_off)
				why = "descriptor runs past the section";
		}
		if (why) {
			sp_set_err(err, errlen, "note at byte %zu: %s", off, why);
			sp_usdt_list_free(out);
			return -1;
		}
		next = desc_off + align4(descsz);
		if (type == NT_STAPSDT && namesz == 8 && memcmp(b + name_off, "stapsdt", 8) == 0) {
			if (descsz < ADDRS_LEN + 3)
				why = "descriptor too short";
			else
				add_probe(out, b + desc_off, descsz, base_addr, &why);
			if (why) {
				sp_set_err(err, errlen, "note at byte %zu: %s", off, why);
				sp_usdt_list_free(out);
				return -1;
			}
		}
		if (next <= off || next > len)
			break;
		off = next;
	}
	return 0;
}

static Elf_Scn *find_section(Elf *e, const char *want, GElf_Shdr *sh)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(e, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(e, scn))) {
		const char *n;

		if (!gelf_getshdr(scn, sh))
			continue;
		n = elf_strptr(e, shstrndx, sh->sh_name);
		if (n && strcmp(n, want) == 0)
			return scn;
	}
	return NULL;
}

/* File offset of a virtual address inside a PT_LOAD, or 0. */
static uint64_t vaddr_to_offset(Elf *e, uint64_t addr)
{
	size_t n;

	if (elf_getphdrnum(e, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD &&
		    addr >= ph.p_vaddr && addr - ph.p_vaddr < ph.p_filesz)
			return addr - ph.p_vaddr + ph.p_offset;
	}
	return 0;
}

int sp_usdt_read_elf(Elf *e, struct sp_usdt_list *out, char *err, size_t errlen)
{
	GElf_Shdr sh, bsh;
	Elf_Scn *scn = find_section(e, ".note.stapsdt", &sh);
	Elf_Data *d;

	memset(out, 0, sizeof(*out));
	if (!scn || sh.sh_type != SHT_NOTE)
		return 0;
	if (gelf_getclass(e) != ELFCLASS64) {
		sp_set_err(err, errlen, ".note.stapsdt: only 64-bit objects are supported");
		return -1;
	}
	d = elf_rawdata(scn, NULL);
	if (!d || !d->d_buf) {
		sp_set_err(err, errlen, ".note.stapsdt: unreadable: %s", elf_errmsg(-1));
		return -1;
	}
	if (sp_usdt_parse_notes(d->d_buf, d->d_size,
				find_section(e, ".stapsdt.base", &bsh) ? bsh.sh_addr : 0,
				out, err, errlen))
		return -1;
	for (size_t i = 0; i < out->n; i++)
		out->v[i].pc_offset = vaddr_to_offset(e, out->v[i].pc);
	return 0;
}

bool sp_usdt_matches(const struct sp_usdt_probe *p, const char *spec)
{
	const char *colon = strchr(spec, ':');
	char prov[256];
	size_t n;

	if (!colon || (n = (size_t)(colon - spec)) >= sizeof(prov))
		return false;
	memcpy(prov, spec, n);
	prov[n] = '\0';
	return fnmatch(prov, p->provider, 0) == 0 && fnmatch(colon + 1, p->name, 0) == 0;
}

void sp_usdt_list_free(struct sp_usdt_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].provider);
		free(l->v[i].name);
		free(l->v[i].args_text);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}
