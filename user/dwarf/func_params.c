/*
 * Reads DW_TAG_formal_parameter children of the subprogram at an address
 * and maps them onto the SysV AMD64 integer argument registers. Only the
 * cases whose register is certain are listed; the rest of the list is
 * cut rather than guessed.
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include "base/errmsg.h"
#include "spanprobe.h"
#include "dwarf/func_params.h"

enum kind { K_INT, K_FLOAT, K_STOP };

/* Typedefs and qualifiers peeled; NULL when there is no type (void). */
static Dwarf_Die *peeled_type(Dwarf_Die *die, Dwarf_Die *mem)
{
	Dwarf_Attribute a;

	if (!dwarf_attr_integrate(die, DW_AT_type, &a) || !dwarf_formref_die(&a, mem))
		return NULL;
	if (dwarf_peel_type(mem, mem) != 0)
		return NULL;
	return mem;
}

static bool is_char(Dwarf_Die *t)
{
	Dwarf_Attribute a;
	Dwarf_Word enc = 0;

	if (!t || dwarf_tag(t) != DW_TAG_base_type || dwarf_bytesize(t) != 1 ||
	    !dwarf_attr(t, DW_AT_encoding, &a) || dwarf_formudata(&a, &enc))
		return false;
	return enc == DW_ATE_signed_char || enc == DW_ATE_unsigned_char;
}

/* How a value of type t is passed, and what to capture it as. */
static enum kind classify(Dwarf_Die *t, uint8_t *type)
{
	Dwarf_Attribute a;
	Dwarf_Word enc = 0;
	Dwarf_Die pointee;
	int size;

	if (!t)
		return K_STOP;
	switch (dwarf_tag(t)) {
	case DW_TAG_pointer_type:
	case DW_TAG_reference_type:
	case DW_TAG_rvalue_reference_type:
		*type = is_char(peeled_type(t, &pointee)) ? SP_CAP_STR_T : SP_CAP_U64;
		return K_INT;
	case DW_TAG_enumeration_type:
		*type = dwarf_bytesize(t) == 8 ? SP_CAP_I64 : SP_CAP_I32;
		return K_INT;
	case DW_TAG_base_type:
		size = dwarf_bytesize(t);
		if (!dwarf_attr(t, DW_AT_encoding, &a) || dwarf_formudata(&a, &enc))
			return K_STOP;
		if (enc == DW_ATE_float)
			return size <= 8 ? K_FLOAT : K_STOP;
		if (size > 8)
			return K_STOP; /* __int128 takes two registers */
		if (enc == DW_ATE_signed || enc == DW_ATE_signed_char)
			*type = size == 8 ? SP_CAP_I64 : SP_CAP_I32;
		else
			*type = size == 8 ? SP_CAP_U64 : SP_CAP_U32;
		return K_INT;
	default:
		return K_STOP; /* struct, union, class, array by value */
	}
}

/* The register the first parameter uses: 1 when a returned aggregate
 * comes back through a hidden pointer in rdi; -1 when unsure. */
static int first_register(Dwarf_Die *sub, Dwarf_Die *cu)
{
	Dwarf_Die mem, *rt = peeled_type(sub, &mem);
	Dwarf_Attribute a;
	int tag;

	if (!rt)
		return 0;
	tag = dwarf_tag(rt);
	if (tag != DW_TAG_structure_type && tag != DW_TAG_union_type && tag != DW_TAG_class_type)
		return 0;
	if (dwarf_bytesize(rt) > 16)
		return 1;
	/* small C aggregates come back in registers; C++ ones may not
	 * (non-trivial copy), which DWARF does not say plainly */
	if (dwarf_attr(cu, DW_AT_language, &a)) {
		Dwarf_Word lang = 0;

		if (!dwarf_formudata(&a, &lang) &&
		    (lang == DW_LANG_C89 || lang == DW_LANG_C99 || lang == DW_LANG_C11 ||
		     lang == DW_LANG_C))
			return 0;
	}
	return -1;
}

static int collect(Dwarf_Die *sub, Dwarf_Die *cu, struct sp_func_params *out, char *err,
		   size_t errlen)
{
	Dwarf_Die child, tmem;
	int reg = first_register(sub, cu);

	if (reg < 0) {
		sp_set_err(err, errlen, "returns a small struct: its argument registers are uncertain");
		return -1;
	}
	if (dwarf_child(sub, &child) != 0)
		return 0;
	do {
		Dwarf_Attribute a;
		const char *name;
		uint8_t type = SP_CAP_U64;
		enum kind k;
		bool artificial;

		if (dwarf_tag(&child) != DW_TAG_formal_parameter)
			continue;
		k = classify(peeled_type(&child, &tmem), &type);
		if (k == K_STOP || reg >= SP_PARAMS_MAX)
			break;
		if (k == K_FLOAT)
			continue;
		artificial = dwarf_attr_integrate(&child, DW_AT_artificial, &a) != NULL;
		name = dwarf_diename(&child);
		if (!artificial && name && out->n < SP_PARAMS_MAX) {
			out->v[out->n].name = strdup(name);
			out->v[out->n].type = type;
			out->v[out->n].index = (uint8_t)reg;
			if (!out->v[out->n].name) {
				sp_set_err(err, errlen, "out of memory");
				return -1;
			}
			out->n++;
		}
		reg++;
	} while (dwarf_siblingof(&child, &child) == 0);
	return 0;
}

/* The subprogram whose code starts at addr, in the CU that holds it. */
static int find_sub(Dwarf *dw, uint64_t addr, Dwarf_Die *cu, Dwarf_Die *sub)
{
	Dwarf_Die *scopes = NULL;
	int n, found = -1;

	if (!dwarf_addrdie(dw, addr, cu))
		return -1;
	n = dwarf_getscopes(cu, addr, &scopes);
	for (int i = 0; i < n; i++) {
		if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram) {
			*sub = scopes[i];
			found = 0;
			break;
		}
	}
	free(scopes);
	return found;
}

int sp_func_params(const char *path, uint64_t addr, struct sp_func_params *out,
		   char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	Dwarf_Die cu, sub;
	Dwarf *dw;

	memset(out, 0, sizeof(*out));
	if (fd < 0) {
		sp_set_err(err, errlen, "cannot open the object");
		return -1;
	}
	dw = dwarf_begin(fd, DWARF_C_READ);
	if (!dw)
		sp_set_err(err, errlen, "no DWARF (build with -g, or install its debug info)");
	else if (find_sub(dw, addr, &cu, &sub))
		sp_set_err(err, errlen, "no DWARF subprogram at 0x%llx", (unsigned long long)addr);
	else
		rc = collect(&sub, &cu, out, err, errlen);
	if (rc)
		sp_func_params_free(out);
	if (dw)
		dwarf_end(dw);
	close(fd);
	return rc;
}

void sp_func_params_free(struct sp_func_params *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].name);
	memset(p, 0, sizeof(*p));
}
