/*
 * The parameters of a C/C++ function, named from its DWARF, with the
 * SysV integer register each one arrives in: what a bare `args` on a
 * symbol-list entry captures.
 */
#ifndef SPANPROBE_FUNC_PARAMS_H
#define SPANPROBE_FUNC_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define SP_PARAMS_MAX 6 /* the integer argument registers */

struct sp_func_param {
	char *name;
	uint8_t type;  /* SP_CAP_I64, SP_CAP_U64, SP_CAP_I32, SP_CAP_U32, SP_CAP_STR_T */
	uint8_t index; /* the register: arg0 = rdi ... arg5 = r9 */
};

struct sp_func_params {
	struct sp_func_param v[SP_PARAMS_MAX];
	size_t n;
};

/* The parameters of the function whose code starts at addr (st_value)
 * in the ELF file at path, in order, as far as their registers are
 * certain: an integer, enum or pointer takes the next register (a char
 * pointer is a string), a floating-point one takes none, and a struct or
 * anything else passed by value stops the list (its registers depend on
 * its layout). A hidden pointer for a returned struct larger than 16
 * bytes takes rdi; `this` is counted but not listed. 0, or -1 with err
 * (no DWARF, no subprogram at addr, a returned struct whose passing is
 * uncertain). */
int sp_func_params(const char *path, uint64_t addr, struct sp_func_params *out,
		   char *err, size_t errlen);
void sp_func_params_free(struct sp_func_params *p);

#endif
