/*
 * Coroutine state dispatch from machine code (see async_disasm.h): a
 * small forward data-flow over the first instructions of a poll, tracking
 * which registers and stack slots hold the incoming RDI/RSI and, once
 * read, the state value, until that value steers a jump.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <capstone.h>
#include <gelf.h>
#include "dwarf/async_disasm.h"

/* Instructions looked at before the state load (opt-level 0 prologues
 * spill every argument first), and between the load and the jump. */
#define PROLOGUE_MAX 48
#define DISPATCH_MAX 16
#define SLOTS_MAX 32
/* Larger functions are not swept for the panic calls. */
#define SWEEP_MAX (4u << 20)

/* What a register or stack slot is known to hold. */
enum label { L_NONE, L_RDI, L_RSI, L_STATE };

struct slot {
	x86_reg base;  /* RSP or RBP */
	int64_t key;   /* displacement, RSP-relative ones normalised to the
	                * stack pointer at entry */
	enum label lab;
};

struct track {
	uint8_t reg[X86_REG_ENDING]; /* enum label, by 64-bit register */
	struct slot slot[SLOTS_MAX];
	size_t n_slot;
	int64_t rsp_delta;           /* rsp now - rsp at entry */
};

static void say(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* The 64-bit register an 8/16/32/64-bit general register is part of;
 * labels live on that one. X86_REG_INVALID for anything else. */
static x86_reg gpr64(x86_reg r)
{
	static const x86_reg map[][5] = {
		{ X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH },
		{ X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL, X86_REG_BH },
		{ X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH },
		{ X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH },
		{ X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL, 0 },
		{ X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL, 0 },
		{ X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL, 0 },
		{ X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL, 0 },
		{ X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B, 0 },
		{ X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B, 0 },
		{ X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B, 0 },
		{ X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B, 0 },
		{ X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B, 0 },
		{ X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B, 0 },
		{ X86_REG_R14, X86_REG_R14D, X86_REG_R14W, X86_REG_R14B, 0 },
		{ X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B, 0 },
	};

	if (r == X86_REG_INVALID)
		return X86_REG_INVALID;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		for (size_t k = 0; k < 5; k++)
			if (map[i][k] == r)
				return map[i][0];
	return X86_REG_INVALID;
}

static enum label reg_label(const struct track *t, x86_reg r)
{
	r = gpr64(r);
	return r == X86_REG_INVALID ? L_NONE : (enum label)t->reg[r];
}

static void set_reg_label(struct track *t, x86_reg r, enum label l)
{
	r = gpr64(r);
	if (r != X86_REG_INVALID)
		t->reg[r] = (uint8_t)l;
}

/* A stack slot: [rsp+d] or [rbp+d], no index. */
static bool is_stack_mem(const cs_x86_op *op)
{
	return op->type == X86_OP_MEM && op->mem.index == X86_REG_INVALID &&
	       op->mem.segment == X86_REG_INVALID &&
	       (op->mem.base == X86_REG_RSP || op->mem.base == X86_REG_RBP);
}

static int64_t slot_key(const struct track *t, const cs_x86_op *op)
{
	return op->mem.base == X86_REG_RSP ? op->mem.disp + t->rsp_delta :
					     op->mem.disp;
}

static struct slot *find_slot(struct track *t, const cs_x86_op *op)
{
	int64_t key = slot_key(t, op);

	for (size_t i = 0; i < t->n_slot; i++)
		if (t->slot[i].base == op->mem.base && t->slot[i].key == key)
			return &t->slot[i];
	return NULL;
}

static void store_slot(struct track *t, const cs_x86_op *op, enum label l)
{
	struct slot *s = find_slot(t, op);

	if (!s && l == L_NONE)
		return;
	if (!s) {
		if (t->n_slot == SLOTS_MAX)
			return; /* forget it: only costs a miss */
		s = &t->slot[t->n_slot++];
		s->base = op->mem.base;
		s->key = slot_key(t, op);
	}
	s->lab = l;
}

static void clear_written(csh cs, const cs_insn *in, struct track *t)
{
	cs_regs rd, wr;
	uint8_t nrd = 0, nwr = 0;

	if (cs_regs_access(cs, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return;
	for (uint8_t i = 0; i < nwr; i++)
		set_reg_label(t, wr[i], L_NONE);
}

static bool is_imm(const cs_x86_op *op)
{
	return op->type == X86_OP_IMM;
}

/* Moves between registers and stack slots carry labels along (that is
 * how an opt-level 0 prologue hands `self` around); the stack pointer is
 * followed through push/pop/sub/add so slots keep their identity. */
static bool step_move(const cs_insn *in, struct track *t)
{
	const cs_x86 *x = &in->detail->x86;
	const cs_x86_op *d = &x->operands[0], *s = &x->operands[1];

	if (in->id != X86_INS_MOV || x->op_count != 2)
		return false;
	if (d->type == X86_OP_REG && s->type == X86_OP_REG) {
		enum label l = reg_label(t, s->reg);

		/* a 32-bit copy of a pointer truncates it; of the state it
		 * does not */
		set_reg_label(t, d->reg,
			      (s->size == 8 || l == L_STATE) ? l : L_NONE);
		return true;
	}
	if (is_stack_mem(d) && s->type == X86_OP_REG) {
		store_slot(t, d, s->size == 8 || reg_label(t, s->reg) == L_STATE ?
				    reg_label(t, s->reg) : L_NONE);
		return true;
	}
	if (d->type == X86_OP_REG && is_stack_mem(s)) {
		struct slot *sl = find_slot(t, s);

		set_reg_label(t, d->reg, sl ? sl->lab : L_NONE);
		return true;
	}
	if (is_stack_mem(d)) {
		store_slot(t, d, L_NONE);
		return true;
	}
	return false;
}

static bool step_stack_pointer(const cs_insn *in, struct track *t)
{
	const cs_x86 *x = &in->detail->x86;

	switch (in->id) {
	case X86_INS_PUSH:
		t->rsp_delta -= 8;
		return true;
	case X86_INS_POP:
		t->rsp_delta += 8;
		if (x->op_count == 1 && x->operands[0].type == X86_OP_REG)
			set_reg_label(t, x->operands[0].reg, L_NONE);
		return true;
	case X86_INS_SUB:
	case X86_INS_ADD:
		if (x->op_count != 2 || x->operands[0].type != X86_OP_REG ||
		    x->operands[0].reg != X86_REG_RSP || !is_imm(&x->operands[1]))
			return false;
		t->rsp_delta += in->id == X86_INS_SUB ? -x->operands[1].imm :
							x->operands[1].imm;
		return true;
	default:
		return false;
	}
}

/* Arithmetic on the state value (LLVM rebases it: "add $-3,%al") keeps
 * it the state as far as dispatch is concerned; so does an lea on it. */
static bool step_state_arith(const cs_insn *in, struct track *t)
{
	const cs_x86 *x = &in->detail->x86;
	const cs_x86_op *d = &x->operands[0];

	if (x->op_count == 0 || d->type != X86_OP_REG)
		return false;
	switch (in->id) {
	case X86_INS_ADD:
	case X86_INS_SUB:
	case X86_INS_AND:
	case X86_INS_DEC:
	case X86_INS_INC:
		return reg_label(t, d->reg) == L_STATE &&
		       (x->op_count == 1 || is_imm(&x->operands[1]));
	case X86_INS_MOVZX:
	case X86_INS_MOVSX:
	case X86_INS_MOVSXD:
		if (x->op_count == 2 && x->operands[1].type == X86_OP_REG &&
		    reg_label(t, x->operands[1].reg) == L_STATE) {
			set_reg_label(t, d->reg, L_STATE);
			return true;
		}
		return false;
	case X86_INS_LEA:
		if (x->op_count == 2 &&
		    (reg_label(t, x->operands[1].mem.base) == L_STATE ||
		     reg_label(t, x->operands[1].mem.index) == L_STATE)) {
			set_reg_label(t, d->reg, L_STATE);
			return true;
		}
		return false;
	default:
		return false;
	}
}

static void step(csh cs, const cs_insn *in, struct track *t)
{
	if (step_move(in, t) || step_stack_pointer(in, t) ||
	    step_state_arith(in, t))
		return;
	clear_written(cs, in, t);
}

static bool is_branch(const cs_insn *in)
{
	for (uint8_t i = 0; i < in->detail->groups_count; i++) {
		uint8_t g = in->detail->groups[i];

		if (g == X86_GRP_JUMP || g == X86_GRP_CALL || g == X86_GRP_RET ||
		    g == X86_GRP_INT)
			return true;
	}
	return false;
}

static bool is_cond_jump(const cs_insn *in)
{
	return in->id != X86_INS_JMP && in->id != X86_INS_LJMP &&
	       in->detail->groups_count &&
	       memchr(in->detail->groups, X86_GRP_JUMP,
		      in->detail->groups_count) != NULL;
}

/* The state read: a 1/2/4-byte load (or compare) from [self + disp],
 * self being a copy of the incoming RDI or RSI. */
static const cs_x86_op *state_operand(const cs_insn *in,
				      const struct track *t)
{
	const cs_x86 *x = &in->detail->x86;

	switch (in->id) {
	case X86_INS_MOVZX:
	case X86_INS_MOV:
	case X86_INS_MOVSX:
	case X86_INS_CMP:
	case X86_INS_TEST:
		break;
	default:
		return NULL;
	}
	for (uint8_t i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];
		enum label l;

		if (op->type != X86_OP_MEM || !(op->access & CS_AC_READ) ||
		    op->mem.index != X86_REG_INVALID ||
		    op->mem.segment != X86_REG_INVALID || op->mem.disp < 0 ||
		    op->mem.disp > UINT32_MAX ||
		    (op->size != 1 && op->size != 2 && op->size != 4))
			continue;
		l = reg_label(t, op->mem.base);
		if (l == L_RDI || l == L_RSI)
			return op;
	}
	return NULL;
}

static bool reads_state(const cs_insn *in, const struct track *t,
			bool *as_index)
{
	const cs_x86 *x = &in->detail->x86;
	bool any = false;

	*as_index = false;
	for (uint8_t i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];

		if (op->type == X86_OP_REG && reg_label(t, op->reg) == L_STATE)
			any = true;
		if (op->type == X86_OP_MEM &&
		    reg_label(t, op->mem.index) == L_STATE)
			any = *as_index = true;
	}
	return any;
}

struct dispatch_scan {
	bool indexed;   /* the state indexed a table */
	bool compared;  /* flags were set from the state */
};

/* After the load: does the state choose where execution goes? A table
 * indexed by it and then an indirect jmp, or a compare and a jcc. */
static bool dispatch_confirmed(const cs_insn *in, const struct track *t,
			       struct dispatch_scan *ds)
{
	const cs_x86 *x = &in->detail->x86;
	bool as_index;

	if (in->id == X86_INS_JMP && x->op_count == 1 &&
	    x->operands[0].type != X86_OP_IMM)
		return ds->indexed || reads_state(in, t, &as_index);
	if (is_cond_jump(in))
		return ds->compared;
	if (reads_state(in, t, &as_index)) {
		if (as_index)
			ds->indexed = true;
		if (in->id == X86_INS_CMP || in->id == X86_INS_TEST ||
		    in->id == X86_INS_SUB || in->id == X86_INS_ADD ||
		    in->id == X86_INS_DEC || in->id == X86_INS_AND)
			ds->compared = true;
	} else if (in->id == X86_INS_CMP || in->id == X86_INS_TEST) {
		ds->compared = false; /* flags now come from something else */
	}
	return false;
}

struct walker {
	csh cs;
	cs_insn *in;
	const uint8_t *code;
	size_t left;
	uint64_t pc;
};

static bool next_insn(struct walker *w)
{
	return cs_disasm_iter(w->cs, &w->code, &w->left, &w->pc, w->in);
}

/* Phase 1: find the state read. */
static bool find_load(struct walker *w, struct track *t,
		      struct sp_async_dispatch *out, struct dispatch_scan *ds,
		      char *why, size_t whylen)
{
	for (int n = 0; n < PROLOGUE_MAX && next_insn(w); n++) {
		const cs_x86_op *op = state_operand(w->in, t);

		if (op) {
			out->self_reg = reg_label(t, op->mem.base) == L_RSI ?
						SP_AREG_RSI : SP_AREG_RDI;
			out->state_off = (uint32_t)op->mem.disp;
			out->state_size = op->size;
			out->load_addr = w->in->address;
			if (w->in->id == X86_INS_CMP || w->in->id == X86_INS_TEST)
				ds->compared = true;
			else
				set_reg_label(t, w->in->detail->x86.operands[0].reg,
					      L_STATE);
			return true;
		}
		if (is_branch(w->in))
			break;
		step(w->cs, w->in, t);
	}
	say(why, whylen, "no state load from self in the prologue");
	return false;
}

/* Phase 2: the loaded value must steer a jump soon after. */
static bool confirm(struct walker *w, struct track *t,
		    struct dispatch_scan *ds, char *why, size_t whylen)
{
	for (int n = 0; n < DISPATCH_MAX && next_insn(w); n++) {
		if (dispatch_confirmed(w->in, t, ds))
			return true;
		if (is_branch(w->in))
			break;
		step(w->cs, w->in, t);
	}
	say(why, whylen, "the value read from self does not steer a jump");
	return false;
}

static bool in_sorted(const uint64_t *v, size_t n, uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] == key)
			return true;
		if (v[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Where a PT_LOAD puts vaddr in the file (filesz bytes only). */
static bool file_offset_of(Elf *e, uint64_t addr, uint64_t size, bool exec,
			   uint64_t *off)
{
	size_t nph = 0;

	if (elf_getphdrnum(e, &nph))
		return false;
	for (size_t k = 0; k < nph; k++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, (int)k, &ph) || ph.p_type != PT_LOAD ||
		    (exec && !(ph.p_flags & PF_X)) || addr < ph.p_vaddr ||
		    addr - ph.p_vaddr > ph.p_filesz ||
		    size > ph.p_filesz - (addr - ph.p_vaddr))
			continue;
		*off = addr - ph.p_vaddr + ph.p_offset;
		return true;
	}
	return false;
}

/* A GOT slot holding a panic's address: relocated there (PIE), or
 * already filled in by the linker (non-PIE). */
static bool slot_is_panic(const struct sp_async_disasm *d, uint64_t slot)
{
	uint64_t off, v;
	const uint8_t *p;

	if (in_sorted(d->panic_slots, d->n_slots, slot))
		return true;
	if (!file_offset_of(d->elf->elf, slot, 8, false, &off) ||
	    !(p = sp_elf_bytes(d->elf, off, 8)))
		return false;
	memcpy(&v, p, 8);
	return in_sorted(d->panic_addrs, d->n_panic, v);
}

static bool targets_panic(const struct sp_async_disasm *d, const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;
	const cs_x86_op *op = &x->operands[0];

	if ((in->id != X86_INS_CALL && in->id != X86_INS_JMP) || x->op_count != 1)
		return false;
	if (op->type == X86_OP_IMM)
		return in_sorted(d->panic_addrs, d->n_panic, (uint64_t)op->imm);
	if (op->type == X86_OP_MEM && op->mem.base == X86_REG_RIP &&
	    op->mem.index == X86_REG_INVALID)
		return slot_is_panic(d, in->address + in->size +
						(uint64_t)op->mem.disp);
	return false;
}

/* Linear sweep of the whole function for a call (or tail jump) to one of
 * the *_resumed* panics; undecodable bytes are stepped over. */
static bool calls_resumed_panic(const struct sp_async_disasm *d,
				struct walker *w)
{
	while (w->left) {
		if (!next_insn(w)) {
			w->code++;
			w->left--;
			w->pc++;
			continue;
		}
		if (targets_panic(d, w->in))
			return true;
	}
	return false;
}

bool sp_async_disasm_dispatch(const struct sp_async_disasm *d, uint64_t addr,
			      uint64_t size, bool need_panic,
			      struct sp_async_dispatch *out, char *why,
			      size_t whylen)
{
	struct track t = { 0 };
	struct dispatch_scan ds = { 0 };
	struct walker w = { .cs = (csh)d->cs };
	uint64_t off;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (!d->cs || !size || size > SWEEP_MAX ||
	    !file_offset_of(d->elf->elf, addr, size, true, &off) ||
	    !(w.code = sp_elf_bytes(d->elf, off, size))) {
		say(why, whylen, "no code in the file at %#llx",
		    (unsigned long long)addr);
		return false;
	}
	if (!(w.in = cs_malloc(w.cs))) {
		say(why, whylen, "out of memory");
		return false;
	}
	w.left = size;
	w.pc = addr;
	t.reg[X86_REG_RDI] = L_RDI;
	t.reg[X86_REG_RSI] = L_RSI;
	if (find_load(&w, &t, out, &ds, why, whylen) &&
	    confirm(&w, &t, &ds, why, whylen)) {
		w.code = sp_elf_bytes(d->elf, off, size);
		w.left = size;
		w.pc = addr;
		out->resumed_panic = calls_resumed_panic(d, &w);
		ok = out->resumed_panic || !need_panic;
		if (!ok)
			say(why, whylen,
			    "calls no `async fn` resumed-after-completion panic");
	}
	cs_free(w.in, 1);
	return ok;
}

/* Raw names of rustc's panics for resuming a finished or poisoned
 * coroutine: core::panicking::panic_const::panic_const_async_fn_resumed,
 * ..._async_block_resumed_panic, ..._coroutine_resumed, ... Both legacy
 * and v0 manglings keep these words readable. */
static bool is_resumed_panic(const char *raw)
{
	return strstr(raw, "panic_const") && strstr(raw, "_resumed");
}

static int push_u64(uint64_t **v, size_t *n, uint64_t x)
{
	uint64_t *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -1;
	nv[(*n)++] = x;
	*v = nv;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int find_panics(struct sp_async_disasm *d)
{
	for (size_t i = 0; i < d->elf->n; i++) {
		const struct sp_elf_func *f = &d->elf->funcs[i];

		for (size_t k = 0; k < f->n_names; k++) {
			if (!is_resumed_panic(f->names[k]))
				continue;
			if (push_u64(&d->panic_addrs, &d->n_panic, f->addr))
				return -1;
			break;
		}
	}
	if (d->n_panic) /* NULL when empty: not even qsort(NULL, 0) */
		qsort(d->panic_addrs, d->n_panic, sizeof(uint64_t), cmp_u64);
	return 0;
}

/* The value a dynamic relocation stores, when it is a plain address. */
static bool reloc_target(Elf_Data *syms, const GElf_Rela *r, uint64_t *to)
{
	GElf_Sym s;

	switch (GELF_R_TYPE(r->r_info)) {
	case R_X86_64_RELATIVE:
		*to = (uint64_t)r->r_addend;
		return true;
	case R_X86_64_GLOB_DAT:
	case R_X86_64_JUMP_SLOT:
	case R_X86_64_64:
		if (!syms || !gelf_getsym(syms, (int)GELF_R_SYM(r->r_info), &s) ||
		    s.st_shndx == SHN_UNDEF)
			return false;
		*to = s.st_value + (uint64_t)r->r_addend;
		return true;
	default:
		return false;
	}
}

static int scan_relocs(struct sp_async_disasm *d, Elf_Scn *scn,
		       const GElf_Shdr *sh)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	Elf_Scn *link = elf_getscn(d->elf->elf, sh->sh_link);
	Elf_Data *syms = link ? elf_getdata(link, NULL) : NULL;
	size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;

	for (size_t i = 0; data && i < n; i++) {
		GElf_Rela r;
		uint64_t to;

		if (!gelf_getrela(data, (int)i, &r) || !reloc_target(syms, &r, &to) ||
		    !in_sorted(d->panic_addrs, d->n_panic, to))
			continue;
		if (push_u64(&d->panic_slots, &d->n_slots, r.r_offset))
			return -1;
	}
	return 0;
}

/* Rust calls functions of other codegen units through the GOT ("call
 * *slot(%rip)"): find the slots that will hold a panic's address. */
static int find_panic_slots(struct sp_async_disasm *d)
{
	Elf_Scn *scn = NULL;

	if (!d->n_panic)
		return 0;
	while ((scn = elf_nextscn(d->elf->elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_RELA &&
		    scan_relocs(d, scn, &sh))
			return -1;
	}
	if (d->n_slots)
		qsort(d->panic_slots, d->n_slots, sizeof(uint64_t), cmp_u64);
	return 0;
}

int sp_async_disasm_init(struct sp_async_disasm *d, const struct sp_elf *elf,
			 char *err, size_t errlen)
{
	csh cs;

	memset(d, 0, sizeof(*d));
	d->elf = elf;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) {
		say(err, errlen, "capstone: cannot open an x86-64 disassembler");
		return -1;
	}
	d->cs = (size_t)cs;
	if (cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK ||
	    find_panics(d) || find_panic_slots(d)) {
		say(err, errlen, "capstone or memory failure");
		sp_async_disasm_free(d);
		return -1;
	}
	return 0;
}

void sp_async_disasm_free(struct sp_async_disasm *d)
{
	csh cs = (csh)d->cs;

	if (d->cs)
		cs_close(&cs);
	free(d->panic_addrs);
	free(d->panic_slots);
	memset(d, 0, sizeof(*d));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

bool sp_async_is_closure_name(const char *dem)
{
	const char *p;

	if (ends_with(dem, "{{closure}}"))
		return true;
	/* v0: "...::{closure#0}" */
	p = strrchr(dem, '{');
	if (!p || strncmp(p, "{closure#", 9) != 0)
		return false;
	p += 9;
	if (!*p || *p == '}')
		return false;
	p += strspn(p, "0123456789");
	return strcmp(p, "}") == 0;
}

bool sp_async_code_offset(Elf *e, uint64_t addr, uint64_t size, uint64_t *off)
{
	return file_offset_of(e, addr, size, true, off);
}
