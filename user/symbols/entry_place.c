/*
 * The entry probe's place: past single-stepped instructions to the first
 * one the kernel emulates (see entry_place.h).
 */
#include <string.h>
#include <capstone.h>
#include <linux/types.h>
#include "symbols/entry_place.h"
#include "spanprobe.h"

/* Instructions looked at before giving up: an entry block's prologue. */
#define MAX_SKIP 16

static csh detail_handle(void)
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

static bool in_group(const cs_insn *in, uint8_t g)
{
	for (uint8_t i = 0; i < in->detail->groups_count; i++)
		if (in->detail->groups[i] == g)
			return true;
	return false;
}

static bool transfers_control(const cs_insn *in)
{
	return in_group(in, X86_GRP_JUMP) || in_group(in, X86_GRP_CALL) ||
	       in_group(in, X86_GRP_RET) || in_group(in, X86_GRP_INT) ||
	       in_group(in, X86_GRP_IRET) || in->id == X86_INS_SYSCALL ||
	       in->id == X86_INS_SYSENTER || in->id == X86_INS_UD2 ||
	       in->id == X86_INS_HLT;
}

static bool is_reg(x86_reg r, x86_reg a, x86_reg b, x86_reg c, x86_reg d)
{
	return r == a || r == b || r == c || r == d;
}

/* Registers written, by family. */
struct writes {
	bool sp, args, more_args;
};

static int reg_writes(csh h, const cs_insn *in, struct writes *w)
{
	cs_regs rd, wr;
	uint8_t nrd = 0, nwr = 0;

	memset(w, 0, sizeof(*w));
	if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return -1;
	for (uint8_t i = 0; i < nwr; i++) {
		x86_reg r = (x86_reg)wr[i];

		w->sp |= is_reg(r, X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL);
		w->args |= is_reg(r, X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL) ||
			   is_reg(r, X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL);
		w->more_args |= is_reg(r, X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL) ||
				is_reg(r, X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL) ||
				is_reg(r, X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B) ||
				is_reg(r, X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B);
	}
	return 0;
}

/* A memory write anywhere but the new frame (rsp-based, no index). */
static bool writes_memory(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	for (uint8_t i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];

		if (op->type == X86_OP_MEM && (op->access & CS_AC_WRITE) &&
		    !(op->mem.base == X86_REG_RSP && op->mem.index == X86_REG_INVALID))
			return true;
	}
	return false;
}

/* How far the stack pointer moves down; -1 for any other change. */
static long sp_move(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	if (in->id == X86_INS_PUSH && x->prefix[2] != 0x66)
		return 8;
	if (in->id == X86_INS_SUB && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
	    x->operands[0].reg == X86_REG_RSP && x->operands[1].type == X86_OP_IMM &&
	    x->operands[1].imm > 0)
		return (long)x->operands[1].imm;
	return -1;
}

/* Whether the stepped instruction in can be left before the probe;
 * *delta grows by what it does to the stack pointer. */
static bool can_skip(csh h, const cs_insn *in, unsigned limits, unsigned long *delta)
{
	struct writes w;
	long mv;

	if (in->id == X86_INS_ENDBR64)
		return true;
	if (transfers_control(in) || reg_writes(h, in, &w))
		return false;
	if ((limits & SP_ENTRY_KEEP_ARGS) && (w.args || writes_memory(in)))
		return false;
	if ((limits & SP_ENTRY_KEEP_ALL_ARGS) && (w.args || w.more_args || writes_memory(in)))
		return false;
	if (!w.sp)
		return true;
	if ((limits & SP_ENTRY_KEEP_SP) || (mv = sp_move(in)) < 0)
		return false;
	*delta += (unsigned long)mv;
	return *delta <= SP_MAX_SP_DELTA;
}

void sp_entry_place_find(const uint8_t *code, size_t n, uint64_t addr, unsigned limits,
			 struct sp_entry_place *out)
{
	csh h = detail_handle();
	cs_insn *in = h ? cs_malloc(h) : NULL;
	const uint8_t *p = code;
	size_t left = n;
	uint64_t pc = addr;
	unsigned long delta = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned k = 0; in && k < MAX_SKIP && cs_disasm_iter(h, &p, &left, &pc, in); k++) {
		size_t off = (size_t)(in->address - addr);

		if (sp_probe_exec_of(code + off, in->size) < SP_EXEC_SINGLESTEP) {
			if (off) {
				out->shift = (unsigned)off;
				out->sp_delta = (unsigned)delta;
				out->skipped = k;
			}
			break;
		}
		if (!can_skip(h, in, limits, &delta))
			break;
	}
	if (in)
		cs_free(in, 1);
}
