/* _Unwind_Backtrace's exits (backtrace_sites.h). */
#include <stdbool.h>
#include <string.h>
#include <capstone.h>
#include "base/errmsg.h"
#include "symbols/elf_symbols.h"
#include "attach/backtrace_sites.h"

static const struct sp_elf_func *find_func(const struct sp_elf *e, const char *name)
{
	for (size_t i = 0; i < e->n; i++)
		for (size_t k = 0; k < e->funcs[i].n_names; k++)
			if (!strcmp(e->funcs[i].names[k], name))
				return &e->funcs[i];
	return NULL;
}

/* Whether insn leaves [lo, hi) for good: a ret, or a jmp elsewhere (a
 * tail call). Conditional jumps out are not exits here, unlike
 * sp_exit_sites_scan's strict rule: libgcc's go to its cold part, which
 * calls abort(); a missed exit only leaves slots restored (their calls
 * then end as abnormal), never a wrong write. */
static bool is_exit(const cs_insn *insn, uint64_t lo, uint64_t hi)
{
	const cs_x86 *x = &insn->detail->x86;

	if (insn->id == X86_INS_RET)
		return true;
	if (insn->id != X86_INS_JMP || x->op_count != 1)
		return false;
	if (x->operands[0].type != X86_OP_IMM)
		return true; /* indirect: leaves through a table or a pointer */
	return (uint64_t)x->operands[0].imm < lo || (uint64_t)x->operands[0].imm >= hi;
}

static int scan(const struct sp_elf *e, const struct sp_elf_func *f, uint64_t *offs, size_t max,
		size_t *n, char *err, size_t errlen)
{
	const uint8_t *code = f->in_exec ? sp_elf_bytes(e, f->offset, f->size) : NULL;
	size_t left = f->size;
	uint64_t at = f->addr;
	cs_insn *insn;
	csh h;

	if (!code) {
		sp_set_err(err, errlen, "_Unwind_Backtrace: its code is not in the file");
		return -1;
	}
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK ||
	    cs_option(h, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK || !(insn = cs_malloc(h))) {
		sp_set_err(err, errlen, "capstone cannot start");
		return -1;
	}
	while (left && cs_disasm_iter(h, &code, &left, &at, insn))
		if (is_exit(insn, f->addr, f->addr + f->size) && *n < max)
			offs[(*n)++] = f->offset + (insn->address - f->addr);
	cs_free(insn, 1);
	cs_close(&h);
	if (left && *code != 0xcc && *code != 0x90 && *code != 0) {
		sp_set_err(err, errlen, "_Unwind_Backtrace: undecodable code at +%#llx",
			   (unsigned long long)(at - f->addr));
		return -1;
	}
	if (!*n || *n >= max) {
		sp_set_err(err, errlen, "_Unwind_Backtrace: %zu exit sites", *n);
		return -1;
	}
	return 0;
}

int sp_backtrace_ret_sites(const char *path, uint64_t *offs, size_t max, size_t *n,
			   char *err, size_t errlen)
{
	struct sp_elf e;
	const struct sp_elf_func *f;
	int rc;

	*n = 0;
	if (sp_elf_open(&e, path, path, err, errlen))
		return -1;
	f = find_func(&e, "_Unwind_Backtrace");
	if (!f) {
		sp_set_err(err, errlen, "%s does not define _Unwind_Backtrace", path);
		rc = -1;
	} else {
		rc = scan(&e, f, offs, max, n, err, errlen);
	}
	sp_elf_close(&e);
	return rc;
}
