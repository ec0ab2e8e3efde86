/*
 * Demangling, name normalisation and glob matching over real mangled
 * names; exit-site decoding on hand-assembled code; resolution against
 * this test binary itself (file and pid modes).
 */
#include <elf.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "symbols/exit_sites.h"
#include "symbols/proc_maps.h"
#include "symbols/symbols.h"
#include "resolve/resolve.h"
#include "resolve/async_resolve.h"

static void expect_demangled(const char *raw, const char *want)
{
	char *d = sp_demangle(raw);

	assert_non_null(d);
	assert_string_equal(d, want);
	free(d);
}

static void test_cxx(void **state)
{
	(void)state;
	expect_demangled("_ZN4demo5innerEi", "demo::inner(int)");
	expect_demangled("_ZN4demo6Engine9run_queryEi", "demo::Engine::run_query(int)");
	expect_demangled("_ZN12_GLOBAL__N_13fooEv", "(anonymous namespace)::foo()");
	expect_demangled("_ZNSt6vectorIiSaIiEE9push_backERKi",
			 "std::vector<int, std::allocator<int> >::push_back(int const&)");
	/* not valid mangling: kept as it is */
	expect_demangled("_Zfoo", "_Zfoo");
}

/* Names from rustc 1.95 (legacy mangling, -O, crate "fixture"). */
static void test_rust_legacy(void **state)
{
	(void)state;
	expect_demangled("_ZN7fixture13execute_query17h0123456789abcdefE",
			 "fixture::execute_query");
	expect_demangled("_ZN7fixture13execute_query17hf74d7fa18f314e4bE",
			 "fixture::execute_query");
	expect_demangled("_ZN7fixture4Conn3run17h4379ebf29b5c126aE",
			 "fixture::Conn::run");
	expect_demangled("_ZN7fixture7generic17hd347741a2ba79e50E",
			 "fixture::generic");
}

/* Names from rustc 1.95 -C symbol-mangling-version=v0 (crate "fixture"). */
static void test_rust_v0(void **state)
{
	(void)state;
	expect_demangled("_RNvCsavurR2QIlcu_7fixture13execute_query",
			 "fixture::execute_query");
	expect_demangled("_RNvCsavurR2QIlcu_7fixture4inst", "fixture::inst");
	/* inherent method: "<fixture::Conn>::run" spelled as legacy does */
	expect_demangled("_RNvMCsavurR2QIlcu_7fixtureNtB2_4Conn3run",
			 "fixture::Conn::run");
	expect_demangled("_RINvCsavurR2QIlcu_7fixture7genericINtNtCslNYArtu3iFV_5alloc3vec3VechEEB2_",
			 "fixture::generic::<alloc::vec::Vec<u8>>");
}

static void test_clone_suffixes(void **state)
{
	(void)state;
	bool cold;

	expect_demangled("foo.cold", "foo");
	expect_demangled("foo.cold.12", "foo");
	expect_demangled("foo.isra.0", "foo");
	expect_demangled("foo.constprop.0.isra.0", "foo");
	expect_demangled("foo.part.0.cold", "foo");
	expect_demangled("foo.lto_priv.0", "foo");
	expect_demangled("foo.localalias", "foo");
	expect_demangled("_ZN4demo5innerEi.isra.0", "demo::inner(int)");
	expect_demangled("_ZN4demo5innerEi.cold", "demo::inner(int)");
	expect_demangled("_ZN7fixture13execute_query17h0123456789abcdefE.llvm.1234567890",
			 "fixture::execute_query");
	/* not clone suffixes */
	expect_demangled("foo.bar", "foo.bar");
	expect_demangled("foo.12", "foo.12");
	expect_demangled(".cold", ".cold");
	expect_demangled("main", "main");

	assert_int_equal(sp_clone_stripped_len("foo.isra.0.cold", &cold), 3);
	assert_true(cold);
	assert_int_equal(sp_clone_stripped_len("foo.isra.0", &cold), 3);
	assert_false(cold);
	assert_int_equal(sp_clone_stripped_len("foo", &cold), 3);
	assert_false(cold);
}

static bool matches(const char *glob, const char *raw)
{
	char *d = sp_demangle(raw);
	bool m = sp_pattern_matches(glob, raw, d);

	free(d);
	return m;
}

static void test_glob(void **state)
{
	(void)state;
	assert_true(matches("demo::inner*", "_ZN4demo5innerEi"));
	assert_true(matches("demo::inner(int)", "_ZN4demo5innerEi"));
	assert_false(matches("demo::inner", "_ZN4demo5innerEi"));
	assert_true(matches("_ZN4demo5innerEi", "_ZN4demo5innerEi"));
	assert_true(matches("_ZN4demo*", "_ZN4demo5innerEi.isra.0"));
	assert_true(matches("*::inner(*)", "_ZN4demo5innerEi"));
	assert_true(matches("(anonymous namespace)::foo*", "_ZN12_GLOBAL__N_13fooEv"));
	assert_true(matches("fixture::execute_query",
			    "_ZN7fixture13execute_query17h0123456789abcdefE"));
	assert_true(matches("*execute_query", "_RNvCsavurR2QIlcu_7fixture13execute_query"));
	assert_true(matches("fixture::Conn::*", "_RNvMCsavurR2QIlcu_7fixtureNtB2_4Conn3run"));
	assert_true(matches("fixture::generic*",
			    "_RINvCsavurR2QIlcu_7fixture7genericINtNtCslNYArtu3iFV_5alloc3vec3VechEEB2_"));
	assert_true(matches("plan_*", "plan_query.constprop.0"));
	assert_true(matches("merge_[rs]*", "merge_sort"));
	assert_false(matches("merge_[rs]*", "merge_all"));
	/* no FNM_PATHNAME: '*' crosses '/' too */
	assert_true(matches("a*c", "a/b/c"));
	assert_false(matches("execute_query", "execute_query_fast"));
}

/* Patterns are written for poll symbols; nested futures are known by
 * their analysis name only. */
static void test_async_name(void **state)
{
	(void)state;
	assert_true(sp_async_name_matches("app::run::{*}", "app::run"));
	assert_true(sp_async_name_matches("app::run::{{closure}}", "app::run"));
	assert_true(sp_async_name_matches("app::run::{closure#0}", "app::run"));
	assert_true(sp_async_name_matches("app::run", "app::run"));
	assert_true(sp_async_name_matches("*::fetch_*_metadata::{*}", "x::m::fetch_block_metadata"));
	assert_true(sp_async_name_matches("app::main::{*}", "app::main::{async_block#0}"));
	assert_false(sp_async_name_matches("app::run::{*}", "app::run_fast"));
	assert_false(sp_async_name_matches("app::run::{closure#1}", "app::run"));
	assert_false(sp_async_name_matches(NULL, "app::run"));
}

/* ---- exit sites on hand-assembled x86-64 ---- */

static void test_exit_sites_kinds(void **state)
{
	(void)state;
	static const uint8_t code[] = {
		0x55,                               /* 1000 push rbp        */
		0x85, 0xff,                         /* 1001 test edi, edi   */
		0x74, 0x03,                         /* 1003 je 1008 (in)    */
		0x5d,                               /* 1005 pop rbp         */
		0xf3, 0xc3,                         /* 1006 rep ret    EXIT */
		0x5d,                               /* 1008 pop rbp         */
		0xe9, 0xf2, 0x0f, 0x00, 0x00,       /* 1009 jmp 2000   EXIT */
		0xeb, 0xf0,                         /* 100e jmp 1000 (in)   */
		0xc2, 0x08, 0x00,                   /* 1010 ret 8      EXIT */
		0xf2, 0xc3,                         /* 1013 bnd ret    EXIT */
		0xff, 0x25, 0x00, 0x00, 0x00, 0x00, /* 1015 jmp [rip] EXIT  */
		0xff, 0xe0,                         /* 101b jmp rax: switch */
		0xcc, 0xcc, 0xcc,                   /* 101d padding         */
	};
	struct sp_code_range self = { 0x1000, sizeof(code) };
	struct sp_exit_sites s = { 0 };
	char err[128] = "";
	const uint64_t want[] = { 0x206, 0x209, 0x210, 0x213, 0x215 };

	assert_int_equal(sp_exit_sites_scan(code, sizeof(code), 0x1000, 0x200,
					    &self, 1, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(s.v[i], want[i]);
	sp_exit_sites_free(&s);
}

static int scan1(const uint8_t *code, size_t n, struct sp_exit_sites *s,
		 char *err, size_t errlen)
{
	struct sp_code_range self = { 0x1000, n };

	return sp_exit_sites_scan(code, n, 0x1000, 0x1000, &self, 1, s, err, errlen);
}

static void test_exit_sites_errors(void **state)
{
	(void)state;
	static const uint8_t invalid[] = { 0x55, 0x06, 0xc3 };        /* push es */
	static const uint8_t truncated[] = { 0x55, 0xe9, 0x00, 0x00 }; /* jmp cut */
	static const uint8_t zero_pad[] = { 0xc3, 0x00 };
	static const uint8_t jcc_out[] = { 0x85, 0xff, 0x0f, 0x85, 0x00, 0x10,
					   0x00, 0x00, 0xc3 };
	struct sp_exit_sites s = { 0 };
	char err[128];

	assert_int_equal(scan1(invalid, sizeof(invalid), &s, err, sizeof(err)), -1);
	assert_string_equal(err, "undecodable bytes at +0x1");
	assert_int_equal(scan1(truncated, sizeof(truncated), &s, err, sizeof(err)), -1);
	assert_string_equal(err, "undecodable bytes at +0x1");
	assert_int_equal(scan1(jcc_out, sizeof(jcc_out), &s, err, sizeof(err)), -1);
	assert_string_equal(err, "conditional jump out of the function at +0x2");
	sp_exit_sites_free(&s);
	assert_int_equal(scan1(zero_pad, sizeof(zero_pad), &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0], 0x1000);
	sp_exit_sites_free(&s);
}

/* GCC's hot part jumps to NAME.cold and back: neither jump is an exit
 * once both ranges are known, and the cold part's ret is one. */
static void test_exit_sites_cold_part(void **state)
{
	(void)state;
	static const uint8_t hot[] = {
		0x0f, 0x84, 0xfa, 0x1f, 0x00, 0x00, /* 1000 je 3000 */
		0xc3,                               /* 1006 ret     */
	};
	static const uint8_t cold[] = {
		0x90,                               /* 3000 nop     */
		0xe9, 0x00, 0xe0, 0xff, 0xff,       /* 3001 jmp 1006 */
		0xc3,                               /* 3006 ret     */
	};
	struct sp_code_range parts[] = { { 0x1000, sizeof(hot) },
					 { 0x3000, sizeof(cold) } };
	struct sp_exit_sites s = { 0 };
	char err[128];

	assert_int_equal(sp_exit_sites_scan(hot, sizeof(hot), 0x1000, 0x100,
					    parts, 1, &s, err, sizeof(err)), -1);
	assert_int_equal(sp_exit_sites_scan(hot, sizeof(hot), 0x1000, 0x100,
					    parts, 2, &s, err, sizeof(err)), 0);
	assert_int_equal(sp_exit_sites_scan(cold, sizeof(cold), 0x3000, 0x500,
					    parts, 2, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.v[0], 0x106);
	assert_int_equal(s.v[1], 0x506);
	sp_exit_sites_free(&s);
}

/* ---- resolution against this very binary ---- */

__attribute__((noinline, used)) int sp_test_target_alpha(int x)
{
	return x * 3 + (int)time(NULL) % 7;
}

__attribute__((noinline, used)) int sp_test_target_beta(int x)
{
	return sp_test_target_alpha(x) ^ 0x55;
}

static struct sp_pattern_list patterns(const char *text)
{
	struct sp_pattern_list l;
	char err[256];

	assert_int_equal(sp_symlist_parse_buf("t.syms", text, strlen(text), &l,
					      err, sizeof(err)), 0);
	return l;
}

static const struct sp_func *find(const struct sp_func_set *fs, const char *raw)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->v[i].raw, raw) == 0)
			return &fs->v[i];
	return NULL;
}

/* The entry's file offset must hold the very bytes the CPU runs. */
static void expect_offset_right(const struct sp_func *f, const void *code)
{
	uint8_t buf[64];
	size_t n = f->size < sizeof(buf) ? f->size : sizeof(buf);
	int fd = open(f->open_path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, n, (off_t)f->offset), (ssize_t)n);
	close(fd);
	assert_memory_equal(buf, code, n);
}

static void test_resolve_self_binary(void **state)
{
	(void)state;
	struct sp_pattern_list l = patterns("span sp_test_target_*\nroot sp_test_target_alpha\n"
					    "span no_such_function_anywhere\n");
	struct sp_func_set fs;
	char err[256];
	const struct sp_func *a, *b;

	assert_int_equal(sp_resolve(0, "/proc/self/exe", &l, SP_EXIT_AUTO, &fs,
				    err, sizeof(err)), 0);
	a = find(&fs, "sp_test_target_alpha");
	b = find(&fs, "sp_test_target_beta");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->role, SP_ROLE_ROOT);
	assert_int_equal(a->pattern, 0);
	assert_int_equal(b->role, SP_ROLE_SPAN);
	assert_null(a->problem);
	/* plain C: nothing can unwind through it, the cheap probe is fine */
	assert_int_equal(a->exit_mode, SP_EXIT_URETPROBE);
	assert_int_equal(l.v[0].matches, 2);
	assert_int_equal(l.v[1].matches, 1);
	assert_int_equal(l.v[2].matches, 0);
	expect_offset_right(a, (const void *)sp_test_target_alpha);
	expect_offset_right(b, (const void *)sp_test_target_beta);
	sp_func_set_free(&fs);
	sp_symlist_free(&l);
}

static void test_resolve_retsites(void **state)
{
	(void)state;
	struct sp_pattern_list l = patterns("span sp_test_target_beta\n");
	struct sp_func_set fs;
	char err[256];
	uint8_t op;

	assert_int_equal(sp_resolve(0, "/proc/self/exe", &l,
				    SP_EXIT_FORCE_RETSITES, &fs, err, sizeof(err)), 0);
	assert_int_equal(fs.n, 1);
	assert_int_equal(fs.v[0].exit_mode, SP_EXIT_RETSITES);
	assert_null(fs.v[0].problem);
	assert_true(fs.v[0].n_exit >= 1);
	for (size_t i = 0; i < fs.v[0].n_exit; i++) {
		uint64_t off = fs.v[0].exit_offsets[i];

		assert_true(off >= fs.v[0].offset && off < fs.v[0].offset + fs.v[0].size);
		op = ((const uint8_t *)sp_test_target_beta)[off - fs.v[0].offset];
		/* ret, or a jmp (tail call), maybe behind a rep/bnd prefix */
		assert_true(op == 0xc3 || op == 0xc2 || op == 0xe9 || op == 0xeb ||
			    op == 0xff || op == 0xf3 || op == 0xf2);
	}
	sp_func_set_free(&fs);
	sp_symlist_free(&l);
}

static void test_resolve_pid(void **state)
{
	(void)state;
	struct sp_pattern_list l = patterns("span sp_test_target_alpha\nspan nanosleep\n");
	struct sp_func_set fs;
	char err[256], want[64], exe[4096];
	const struct sp_func *a, *n;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	assert_true(len > 0);
	exe[len] = '\0';
	assert_int_equal(sp_resolve(getpid(), NULL, &l, SP_EXIT_AUTO, &fs, err,
				    sizeof(err)), 0);
	a = find(&fs, "sp_test_target_alpha");
	n = find(&fs, "nanosleep");
	assert_non_null(a);
	assert_non_null(n);
	assert_string_equal(a->object, exe);
	snprintf(want, sizeof(want), "/proc/%d/root/", (int)getpid());
	assert_memory_equal(a->open_path, want, strlen(want));
	assert_string_equal(a->open_path + strlen(want) - 1, exe);
	assert_non_null(strstr(n->object, "libc"));
	expect_offset_right(a, (const void *)sp_test_target_alpha);
	sp_func_set_free(&fs);
	sp_symlist_free(&l);
}

static void test_proc_info_self(void **state)
{
	(void)state;
	char *exe = NULL, err[256], path[4096];
	uint64_t start = 0;
	struct timespec now;
	ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 1);

	assert_true(len > 0);
	path[len] = '\0';
	assert_int_equal(sp_proc_info(getpid(), &exe, &start, err, sizeof(err)), 0);
	assert_string_equal(exe, path);
	free(exe);
	clock_gettime(CLOCK_REALTIME, &now);
	/* btime has one-second precision, so allow that much either way */
	assert_true(start <= (uint64_t)now.tv_sec * 1000000000ull + 1000000000ull);
	assert_true(start + 600ull * 1000000000ull >= (uint64_t)now.tv_sec * 1000000000ull);
	assert_int_equal(sp_proc_info(0x7ffffff0, &exe, &start, err, sizeof(err)), -1);
	assert_string_equal(err, "pid 2147483632: no such process");
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void test_resolve_errors(void **state)
{
	(void)state;
	struct sp_pattern_list l = patterns("span x\n");
	struct sp_func_set fs;
	char err[256], path[] = "/tmp/test_demangle_match.XXXXXX";
	int fd = mkstemp(path);
	Elf64_Ehdr eh = {
		.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64,
			     ELFDATA2LSB, EV_CURRENT },
		.e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
		.e_ehsize = sizeof(Elf64_Ehdr),
	};
	char want[300];

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sp_resolve(0, "/nonexistent/bin", &l, SP_EXIT_AUTO, &fs,
				    err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/bin: No such file or directory");

	write_file(path, "hello\n", 6);
	assert_int_equal(sp_resolve(0, path, &l, SP_EXIT_AUTO, &fs, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: not an ELF file", path);
	assert_string_equal(err, want);

	/* a header and nothing else: no section, so no symbol table */
	write_file(path, &eh, sizeof(eh));
	assert_int_equal(sp_resolve(0, path, &l, SP_EXIT_AUTO, &fs, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
		 "%s: no symbols (.symtab and .dynsym are empty)", path);
	assert_string_equal(err, want);
	unlink(path);

	assert_int_equal(sp_resolve(0x7ffffff0, NULL, &l, SP_EXIT_AUTO, &fs, err,
				    sizeof(err)), -1);
	assert_string_equal(err, "pid 2147483632: no such process");
	sp_symlist_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cxx),
		cmocka_unit_test(test_rust_legacy),
		cmocka_unit_test(test_rust_v0),
		cmocka_unit_test(test_clone_suffixes),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_async_name),
		cmocka_unit_test(test_exit_sites_kinds),
		cmocka_unit_test(test_exit_sites_errors),
		cmocka_unit_test(test_exit_sites_cold_part),
		cmocka_unit_test(test_resolve_self_binary),
		cmocka_unit_test(test_resolve_retsites),
		cmocka_unit_test(test_resolve_pid),
		cmocka_unit_test(test_proc_info_self),
		cmocka_unit_test(test_resolve_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
