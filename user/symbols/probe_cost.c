/*
 * The price of a uprobe by the instruction it replaces. The rules follow
 * the x86 kernel's own choice between emulating an instruction and
 * single-stepping it; each was checked on the running kernel with one
 * test function per instruction kind (tests/bench/target.c, ins_*), not
 * taken from the kernel source alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <capstone.h>
#include "symbols/probe_cost.h"

/* Measured by `make bench` on the 2-vCPU KVM guest of
 * docs/performance.md (Linux 6.18): added ns per hit of an empty
 * program (medians over the ins_* functions of each kind), and what the
 * return half of a uretprobe or session adds (pair minus entry alone). */
#define HIT_NS_OPTIMIZED 250
#define HIT_NS_EMULATED 550
#define HIT_NS_SINGLESTEP 19000
#define RETURN_NS_URETPROBE 290

static bool is_legacy_prefix(uint8_t b)
{
	switch (b) {
	case 0x26: case 0x2e: case 0x36: case 0x3e: /* segment */
	case 0x64: case 0x65:
	case 0x66: case 0x67: /* operand / address size */
	case 0xf0: case 0xf2: case 0xf3: /* lock, rep */
		return true;
	default:
		return false;
	}
}

/* The parts of an instruction the kernel's rules look at. */
struct insn_head {
	bool has_prefix; /* any legacy prefix */
	bool has_66;     /* operand-size override: branches that carry it
			  * are not emulated */
	uint8_t rex;     /* 0 when absent */
	const uint8_t *op;
	size_t op_left;  /* bytes from op to the end of the buffer */
};

static int parse_head(const uint8_t *code, size_t n, struct insn_head *h)
{
	size_t i = 0;

	memset(h, 0, sizeof(*h));
	for (; i < n && i < 14 && is_legacy_prefix(code[i]); i++) {
		h->has_prefix = true;
		h->has_66 |= code[i] == 0x66;
	}
	if (i < n && (code[i] & 0xf0) == 0x40)
		h->rex = code[i++];
	if (i >= n)
		return -1;
	h->op = code + i;
	h->op_left = n - i;
	return 0;
}

/* 0f 1f /0 is the multi-byte nop; other 0f 1f encodings are reserved. */
static bool is_nopl(const struct insn_head *h)
{
	return h->op_left >= 3 && h->op[0] == 0x0f && h->op[1] == 0x1f &&
	       ((h->op[2] >> 3) & 7) == 0;
}

static bool is_rel_branch(const struct insn_head *h)
{
	uint8_t o = h->op[0];

	if (o == 0xeb || o == 0xe9 || o == 0xe8 || (o >= 0x70 && o <= 0x7f))
		return true; /* jmp rel8/rel32, call rel32, jcc rel8 */
	return o == 0x0f && h->op_left >= 2 && h->op[1] >= 0x80 && h->op[1] <= 0x8f;
}

/* push of a register, one byte, or two with REX.B alone (push %r8-%r15):
 * the only push forms the kernel emulates. */
static bool is_push_reg(const struct insn_head *h)
{
	if (h->op[0] < 0x50 || h->op[0] > 0x57 || h->has_prefix)
		return false;
	return h->rex == 0 || h->rex == 0x41;
}

enum sp_probe_exec sp_probe_exec_of(const uint8_t *code, size_t n)
{
	static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	struct insn_head h;

	if (n >= 5 && memcmp(code, nop5, 5) == 0)
		return SP_EXEC_OPTIMIZED;
	if (parse_head(code, n, &h))
		return SP_EXEC_UNDECODABLE;
	/* 90 with any prefix: nop, xchg %ax,%ax, pause */
	if ((h.op[0] == 0x90 && !h.rex) || is_nopl(&h))
		return SP_EXEC_EMULATED;
	if (is_rel_branch(&h))
		return h.has_66 ? SP_EXEC_SINGLESTEP : SP_EXEC_EMULATED;
	if (is_push_reg(&h))
		return SP_EXEC_EMULATED;
	return SP_EXEC_SINGLESTEP;
}

bool sp_probe_is_endbr64(const uint8_t *code, size_t n)
{
	static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };

	return n >= 4 && memcmp(code, endbr64, 4) == 0;
}

/* One AT&T-syntax handle for the whole run (symbols may list thousands
 * of functions). */
static csh att_handle(void)
{
	static csh h;
	static int state; /* 0 untried, 1 ok, -1 failed */

	if (state == 0) {
		state = cs_open(CS_ARCH_X86, CS_MODE_64, &h) == CS_ERR_OK ? 1 : -1;
		if (state == 1 && cs_option(h, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT) != CS_ERR_OK)
			state = -1;
	}
	return state == 1 ? h : 0;
}

int sp_probe_insn_decode(const uint8_t *code, size_t n, uint64_t addr,
			 struct sp_probe_insn *out)
{
	csh h = att_handle();
	cs_insn *in = NULL;
	size_t got;

	memset(out, 0, sizeof(*out));
	out->exec = SP_EXEC_UNDECODABLE;
	if (!h)
		return -1;
	got = cs_disasm(h, code, n, addr, 1, &in);
	if (got == 1) {
		out->len = in->size;
		snprintf(out->text, sizeof(out->text), "%s%s%s", in->mnemonic,
			 in->op_str[0] ? " " : "", in->op_str);
		/* only the instruction's own bytes: a nop5 check must not
		 * read into the next one */
		out->exec = sp_probe_exec_of(code, in->size);
	} else {
		snprintf(out->text, sizeof(out->text), "(undecodable)");
	}
	cs_free(in, got);
	return 0;
}

const char *sp_probe_exec_name(enum sp_probe_exec e)
{
	static const char *const names[] = { "optimized", "emulated", "single-stepped",
					     "undecodable" };

	return e <= SP_EXEC_UNDECODABLE ? names[e] : "?";
}

unsigned sp_probe_hit_ns(enum sp_probe_exec e)
{
	switch (e) {
	case SP_EXEC_OPTIMIZED:
		return HIT_NS_OPTIMIZED;
	case SP_EXEC_EMULATED:
		return HIT_NS_EMULATED;
	default:
		return HIT_NS_SINGLESTEP; /* undecodable: assume the worst */
	}
}

unsigned sp_probe_uretprobe_ns(void)
{
	return RETURN_NS_URETPROBE;
}

long sp_probe_read_code(const char *path, uint64_t off, uint8_t *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;
	int saved;

	if (fd < 0)
		return -1;
	got = pread(fd, buf, n, (off_t)off);
	saved = errno;
	close(fd);
	errno = saved;
	return got;
}
