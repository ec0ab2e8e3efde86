/*
 * Coroutine state from machine code, for Rust binaries without DWARF
 * types (debug = "line-tables-only" or no debug info).
 *
 * A coroutine's resume function (the poll of an async fn or block) starts
 * by dispatching on its state: it loads the state byte from `self` and
 * jumps through a table (or a compare chain), e.g.
 *     mov %rsi,%rbx ; movzbl 0x820(%rsi),%eax ; lea T(%rip),%rcx ;
 *     movslq (%rcx,%rax,4),%rax ; add %rcx,%rax ; jmp *%rax
 * `self` is the first argument (RDI), or the second (RSI) when Poll<T>
 * comes back through a hidden pointer. Two of the arms call rustc's
 * "`async fn` resumed after completion" / "... after panicking" panics
 * (core::panicking::panic_const::panic_const_*_resumed*): no ordinary
 * closure calls those, which is what tells a coroutine from a closure
 * that merely switches on a byte of its environment.
 *
 * x86-64 only. The nested futures a poll holds cannot be found this way.
 */
#ifndef SPANPROBE_ASYNC_DISASM_H
#define SPANPROBE_ASYNC_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dwarf/async_info.h"
#include "symbols/elf_symbols.h"

/* What one object's code needs looked up once. */
struct sp_async_disasm {
	const struct sp_elf *elf;
	uint64_t *panic_addrs;  /* entries of the *_resumed* panics, sorted */
	size_t n_panic;
	uint64_t *panic_slots;  /* GOT slots relocated to one of them, sorted */
	size_t n_slots;
	size_t cs;              /* capstone handle (csh), 0 if unavailable */
};

/* What the state dispatch says. */
struct sp_async_dispatch {
	enum sp_async_reg self_reg;
	uint32_t state_off;
	uint8_t state_size;
	uint64_t load_addr;     /* address of the instruction reading it */
	bool resumed_panic;     /* the function calls a *_resumed* panic */
};

/* Prepares the lookups for elf (which must outlive d). 0, or -1 with err
 * set (capstone unavailable, out of memory). */
int sp_async_disasm_init(struct sp_async_disasm *d, const struct sp_elf *elf,
			 char *err, size_t errlen);
void sp_async_disasm_free(struct sp_async_disasm *d);

/* Looks for the state dispatch of the function at [addr, addr+size).
 * need_panic: also require a call to a *_resumed* panic (set it when only
 * a closure symbol name suggests a coroutine; a DWARF {async_fn#N} name
 * is proof enough). true with *out filled, or false with the reason in
 * why ("no state load from self in the prologue", ...). */
bool sp_async_disasm_dispatch(const struct sp_async_disasm *d, uint64_t addr,
			      uint64_t size, bool need_panic,
			      struct sp_async_dispatch *out, char *why,
			      size_t whylen);

/* File offset of the code at [addr, addr+size) through the executable
 * PT_LOAD that maps it; false if none does. */
bool sp_async_code_offset(Elf *e, uint64_t addr, uint64_t size, uint64_t *off);

/* Whether a demangled name is a closure's: it ends in "{{closure}}"
 * (legacy mangling) or "{closure#N}" (v0). Async fn and async block
 * bodies are closures to the mangler. */
bool sp_async_is_closure_name(const char *demangled);

#endif
