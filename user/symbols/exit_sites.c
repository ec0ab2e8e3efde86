/*
 * Exit sites: the instructions after which a call is over. Probing them
 * instead of using a uretprobe leaves the stack untouched, so C++
 * exceptions and Rust panics can still unwind through traced frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <capstone.h>
#include "base/grow.h"
#include "symbols/exit_sites.h"
#include "base/errmsg.h"

/* One handle for the whole run: opening capstone per function would cost
 * more than decoding most functions. */
static csh disasm(void)
{
	static csh h;
	static int state; /* 0 untried, 1 ok, -1 failed */

	if (state == 0) {
		state = cs_open(CS_ARCH_X86, CS_MODE_64, &h) == CS_ERR_OK ? 1 : -1;
		if (state == 1 && cs_option(h, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK)
			state = -1;
	}
	return state == 1 ? h : 0;
}

static bool inside_any(uint64_t a, const struct sp_code_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a >= r[i].addr && a - r[i].addr < r[i].size)
			return true;
	return false;
}

static bool has_group(const cs_insn *in, uint8_t g)
{
	for (uint8_t i = 0; i < in->detail->groups_count; i++)
		if (in->detail->groups[i] == g)
			return true;
	return false;
}

static int push_site(struct sp_exit_sites *s, uint64_t off)
{
	if (sp_grow((void **)&s->v, &s->cap, s->n, sizeof(*s->v)))
		return -1;
	s->v[s->n++] = off;
	return 0;
}

enum site_kind { SITE_NONE, SITE_EXIT, SITE_BAD_JCC };

/* A jmp through a register or a jump table stays inside (switch); one
 * through a fixed RIP-relative slot is a call via the GOT (-fno-plt). */
static enum site_kind classify_jmp(const cs_x86_op *op,
				   const struct sp_code_range *r, size_t n)
{
	if (op->type == X86_OP_IMM)
		return inside_any((uint64_t)op->imm, r, n) ? SITE_NONE : SITE_EXIT;
	if (op->type == X86_OP_MEM && op->mem.base == X86_REG_RIP &&
	    op->mem.index == X86_REG_INVALID)
		return SITE_EXIT;
	return SITE_NONE;
}

static enum site_kind classify(const cs_insn *in, const struct sp_code_range *r,
			       size_t n)
{
	const cs_x86 *x = &in->detail->x86;

	switch (in->id) {
	case X86_INS_RET:
	case X86_INS_RETF:
	case X86_INS_RETFQ:
		return SITE_EXIT; /* prefixed forms (rep/bnd) share the id */
	case X86_INS_JMP:
		return x->op_count == 1 ? classify_jmp(&x->operands[0], r, n) :
					  SITE_NONE;
	default:
		break;
	}
	if (has_group(in, X86_GRP_JUMP) && x->op_count == 1 &&
	    x->operands[0].type == X86_OP_IMM &&
	    !inside_any((uint64_t)x->operands[0].imm, r, n))
		return SITE_BAD_JCC;
	return SITE_NONE;
}

/* Compilers pad to the symbol size with int3, nops or zeros; bytes that
 * do not decode there are still harmless. */
static bool only_padding(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0xcc && p[i] != 0x90 && p[i] != 0x00)
			return false;
	return true;
}

static int sweep(csh h, cs_insn *in, const uint8_t *code, uint64_t size,
		 uint64_t addr, uint64_t file_off,
		 const struct sp_code_range *r, size_t n,
		 struct sp_exit_sites *out, char *err, size_t errlen)
{
	const uint8_t *p = code;
	size_t left = size;
	uint64_t pc = addr;

	while (left > 0) {
		if (!cs_disasm_iter(h, &p, &left, &pc, in)) {
			if (only_padding(p, left))
				return 0;
			sp_set_err(err, errlen, "undecodable bytes at +0x%llx",
				(unsigned long long)(pc - addr));
			return -1;
		}
		switch (classify(in, r, n)) {
		case SITE_EXIT:
			if (push_site(out, file_off + (in->address - addr))) {
				sp_set_err(err, errlen, "out of memory");
				return -1;
			}
			break;
		case SITE_BAD_JCC:
			sp_set_err(err, errlen,
				"conditional jump out of the function at +0x%llx",
				(unsigned long long)(in->address - addr));
			return -1;
		case SITE_NONE:
			break;
		}
	}
	return 0;
}

int sp_exit_sites_scan(const uint8_t *code, uint64_t size, uint64_t addr,
		       uint64_t file_off, const struct sp_code_range *inside,
		       size_t n_inside, struct sp_exit_sites *out, char *err,
		       size_t errlen)
{
	csh h = disasm();
	cs_insn *in;
	int rc;

	if (!h) {
		sp_set_err(err, errlen, "capstone: cannot open an x86-64 decoder");
		return -1;
	}
	in = cs_malloc(h);
	if (!in) {
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	rc = sweep(h, in, code, size, addr, file_off, inside, n_inside, out,
		   err, errlen);
	cs_free(in, 1);
	return rc;
}

static bool lands_in(const cs_insn *in, uint64_t lo, uint64_t hi)
{
	const cs_x86 *x = &in->detail->x86;

	return (has_group(in, X86_GRP_JUMP) || has_group(in, X86_GRP_CALL)) &&
	       x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
	       (uint64_t)x->operands[0].imm >= lo && (uint64_t)x->operands[0].imm <= hi;
}

int sp_code_branches_to(const uint8_t *code, uint64_t size, uint64_t addr,
			uint64_t target)
{
	return sp_code_branches_into(code, size, addr, target, target);
}

int sp_code_branches_into(const uint8_t *code, uint64_t size, uint64_t addr,
			  uint64_t lo, uint64_t hi)
{
	csh h = disasm();
	cs_insn *in = h ? cs_malloc(h) : NULL;
	const uint8_t *p = code;
	size_t left = size;
	uint64_t pc = addr;
	int rc = 0;

	if (!in)
		return -1;
	while (left > 0) {
		if (!cs_disasm_iter(h, &p, &left, &pc, in)) {
			if (!only_padding(p, left))
				rc = -1;
			break;
		}
		if (lands_in(in, lo, hi)) {
			rc = 1;
			break;
		}
	}
	cs_free(in, 1);
	return rc;
}

void sp_exit_sites_free(struct sp_exit_sites *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
