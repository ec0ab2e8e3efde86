/* Symbol list parser: syntax, and errors that name file:line. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/types.h>
#include "spanprobe.h"
#include "symbols/symbols.h"

static int parse(const char *text, struct sp_pattern_list *l, char *err,
		 size_t errlen)
{
	return sp_symlist_parse_buf("t.syms", text, strlen(text), l, err, errlen);
}

/* Expects text to fail with exactly msg. */
static void expect_error(const char *text, size_t len, const char *msg)
{
	struct sp_pattern_list l;
	char err[256] = "";

	assert_int_equal(sp_symlist_parse_buf("t.syms", text, len, &l, err,
					      sizeof(err)), -1);
	assert_string_equal(err, msg);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
}

static void test_entries_comments_blanks(void **state)
{
	(void)state;
	struct sp_pattern_list l;
	char err[256];
	const char *text =
		"# leading comment\n"
		"\n"
		"   root   handle_query   \n"
		"span parse_*   # trailing comment\n"
		"\t\n"
		"span\tdemo::outer(int)\r\n"
		"span (anonymous namespace)::helper(char const*, int)\n"
		"span parse_*\n"
		"root last_line_without_newline";

	assert_int_equal(parse(text, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.v[0].glob, "handle_query");
	assert_int_equal(l.v[0].role, SP_ROLE_ROOT);
	assert_int_equal(l.v[0].line, 3);
	assert_string_equal(l.v[0].file, "t.syms");
	assert_string_equal(l.v[1].glob, "parse_*");
	assert_int_equal(l.v[1].role, SP_ROLE_SPAN);
	assert_int_equal(l.v[1].line, 4);
	assert_string_equal(l.v[2].glob, "demo::outer(int)");
	assert_int_equal(l.v[2].line, 6);
	assert_string_equal(l.v[3].glob,
			    "(anonymous namespace)::helper(char const*, int)");
	/* a repeated entry is kept; resolution attaches the function once */
	assert_string_equal(l.v[4].glob, "parse_*");
	assert_string_equal(l.v[5].glob, "last_line_without_newline");
	assert_int_equal(l.v[5].role, SP_ROLE_ROOT);
	assert_int_equal(l.v[5].line, 9);
	assert_int_equal(l.v[5].matches, 0);
	sp_symlist_free(&l);
	assert_null(l.v);
}

static void test_unknown_keyword(void **state)
{
	(void)state;
	const char *t1 = "span a\n\nspam b\n";
	const char *t2 = "spanx foo\n";
	const char *t3 = "Root foo\n";

	expect_error(t1, strlen(t1),
		     "t.syms:3: unknown keyword 'spam' (expected 'root', 'span', 'error' or 'event')");
	expect_error(t2, strlen(t2),
		     "t.syms:1: unknown keyword 'spanx' (expected 'root', 'span', 'error' or 'event')");
	expect_error(t3, strlen(t3),
		     "t.syms:1: unknown keyword 'Root' (expected 'root', 'span', 'error' or 'event')");
}

/* A symbol file does not get to send escape sequences to the terminal
 * through an error message (found by tests/fuzz/fuzz_symlist). */
static void test_unknown_keyword_is_escaped(void **state)
{
	(void)state;
	const char *t1 = "root a\n\x1b[2Jspan b\n";
	char t2[128];

	expect_error(t1, strlen(t1),
		     "t.syms:2: unknown keyword '\\x1b[2Jspan' (expected 'root', 'span', 'error' or 'event')");
	memset(t2, 'k', 100);
	memcpy(t2 + 100, " x\n", 4);
	expect_error(t2, strlen(t2),
		     "t.syms:1: unknown keyword "
		     "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'"
		     " (expected 'root', 'span', 'error' or 'event')");
}

static void test_missing_pattern(void **state)
{
	(void)state;
	const char *t1 = "root q\nspan   # nothing left\n";
	const char *t2 = "root q\nspan a\nroot";
	const char *t3 = "root \t \r\n";

	expect_error(t1, strlen(t1), "t.syms:2: missing pattern after 'span'");
	expect_error(t2, strlen(t2), "t.syms:3: missing pattern after 'root'");
	expect_error(t3, strlen(t3), "t.syms:1: missing pattern after 'root'");
}

static void test_no_entries(void **state)
{
	(void)state;
	const char *t = "# only comments\n\n   \n";

	expect_error(t, strlen(t),
		     "t.syms: no entries (expected 'root PATTERN' or 'span PATTERN' lines)");
	expect_error("", 0,
		     "t.syms: no entries (expected 'root PATTERN' or 'span PATTERN' lines)");
}

static void test_nul_byte(void **state)
{
	(void)state;
	const char t[] = "span a\nspan b\0c\n";

	expect_error(t, sizeof(t) - 1,
		     "t.syms:2: NUL byte in line (not a text file?)");
}

/* Builds "#x\n" + a line of exactly len bytes: "span fff...". */
static char *text_with_line(size_t len)
{
	char *t = malloc(3 + len + 2);

	assert_non_null(t);
	memcpy(t, "#x\n", 3);
	memcpy(t + 3, "span ", 5);
	memset(t + 8, 'f', len - 5);
	memcpy(t + 3 + len, "\n", 2);
	return t;
}

/* Lines up to 4096 bytes are fine, one more byte is not. */
static void test_long_line(void **state)
{
	(void)state;
	struct sp_pattern_list l;
	char err[256];
	char *t = text_with_line(4096);

	assert_int_equal(sp_symlist_parse_buf("t.syms", t, strlen(t), &l, err,
					      sizeof(err)), 0);
	assert_int_equal(strlen(l.v[0].glob), 4096 - 5);
	assert_int_equal(l.v[0].line, 2);
	sp_symlist_free(&l);
	free(t);

	t = text_with_line(4097);
	expect_error(t, strlen(t), "t.syms:2: line longer than 4096 bytes");
	free(t);
}

static void test_file_errors(void **state)
{
	(void)state;
	struct sp_pattern_list l;
	char err[256];

	assert_int_equal(sp_symlist_parse_file("/nonexistent/x.syms", &l, err,
					       sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/x.syms: No such file or directory");
	assert_int_equal(sp_symlist_parse_file("/", &l, err, sizeof(err)), -1);
	assert_string_equal(err, "/: Is a directory");
}

static void test_file_roundtrip(void **state)
{
	(void)state;
	char path[] = "/tmp/test_symbol_list.XXXXXX";
	int fd = mkstemp(path);
	struct sp_pattern_list l;
	char err[256];
	const char *text = "root q\nbogus x\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	assert_int_equal(sp_symlist_parse_file(path, &l, err, sizeof(err)), -1);
	char want[300];

	snprintf(want, sizeof(want),
		 "%s:2: unknown keyword 'bogus' (expected 'root', 'span', 'error' or 'event')", path);
	assert_string_equal(err, want);

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "root q\n", 7), 7);
	close(fd);
	assert_int_equal(sp_symlist_parse_file(path, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].file, path);
	assert_int_equal(l.v[0].line, 1);
	sp_symlist_free(&l);
	unlink(path);
}

static void test_usdt_and_captures(void **state)
{
	(void)state;
	struct sp_pattern_list l;
	char err[256];
	const char *text =
		"root usdt postgresql:query__start postgresql:query__done query=arg0:str\n"
		"span process_block block_id=arg1:u64 rows=ret:i64 error=neg\n"
		"span demo::A::operator=(demo::A const&)\n"
		"error usdt postgresql:transaction__abort\n"
		"span open_file error=null\n"
		"span f error=-5\n"
		"span g args rows=ret:i64\n";

	assert_int_equal(parse(text, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 7);
	assert_true(l.v[6].want_args);
	assert_string_equal(l.v[6].glob, "g");
	assert_int_equal(l.v[6].n_caps, 1);
	assert_false(l.v[1].want_args);
	assert_int_equal(l.v[0].source, SP_SRC_USDT_PAIR);
	assert_int_equal(l.v[0].role, SP_ROLE_ROOT);
	assert_string_equal(l.v[0].glob, "postgresql:query__start");
	assert_string_equal(l.v[0].usdt_done, "postgresql:query__done");
	assert_int_equal(l.v[0].n_caps, 1);
	assert_string_equal(l.v[0].caps[0].name, "query");
	assert_int_equal(l.v[0].caps[0].src, SP_CAP_ARG);
	assert_int_equal(l.v[0].caps[0].index, 0);
	assert_int_equal(l.v[0].caps[0].type, SP_CAP_STR_T);
	assert_int_equal(l.v[1].source, SP_SRC_FUNC);
	assert_string_equal(l.v[1].glob, "process_block");
	assert_int_equal(l.v[1].n_caps, 2);
	assert_string_equal(l.v[1].caps[0].name, "block_id");
	assert_int_equal(l.v[1].caps[0].index, 1);
	assert_int_equal(l.v[1].caps[0].type, SP_CAP_U64);
	assert_string_equal(l.v[1].caps[1].name, "rows");
	assert_int_equal(l.v[1].caps[1].src, SP_CAP_RET);
	assert_int_equal(l.v[1].err_cond, SP_ERR_NEG);
	assert_string_equal(l.v[2].glob, "demo::A::operator=(demo::A const&)");
	assert_int_equal(l.v[2].n_caps, 0);
	assert_int_equal(l.v[3].source, SP_SRC_USDT_ERROR);
	assert_string_equal(l.v[3].glob, "postgresql:transaction__abort");
	assert_int_equal(l.v[4].err_cond, SP_ERR_NULL);
	assert_int_equal(l.v[5].err_cond, SP_ERR_EQ);
	assert_int_equal(l.v[5].err_value, -5);
	sp_symlist_free(&l);
}

static void test_usdt_and_capture_errors(void **state)
{
	(void)state;
	const char *t;

	t = "root usdt postgresql:query__start\n";
	expect_error(t, strlen(t), "t.syms:1: expected 'usdt PROVIDER:START PROVIDER:DONE "
		     "[NAME=argN:TYPE ...]'");
	t = "root q\nspan f x=arg1:float\n";
	expect_error(t, strlen(t), "t.syms:2: bad capture 'x=arg1:float': expected "
		     "NAME=argN:TYPE or NAME=ret:TYPE, TYPE one of i64, u64, i32, u32, str");
	t = "span f x=arg6:i64\n";
	expect_error(t, strlen(t), "t.syms:1: capture 'x': only the register arguments "
		     "arg0..arg5 can be read");
	t = "span usdt p:a p:b r=ret:i64\n";
	expect_error(t, strlen(t), "t.syms:1: capture 'r': a USDT probe has no return value");
	t = "span f a=arg0:i64 b=arg1:i64 c=arg2:i64 d=arg3:i64 e=arg4:i64\n";
	expect_error(t, strlen(t), "t.syms:1: more than 4 captures");
	t = "span f a=arg0:i64 a=arg1:i64\n";
	expect_error(t, strlen(t), "t.syms:1: capture 'a' given twice");
	t = "error f\n";
	expect_error(t, strlen(t), "t.syms:1: expected 'error usdt PROVIDER:NAME'");
	t = "span usdt p:a p:b args\n";
	expect_error(t, strlen(t), "t.syms:1: 'args' names a function's parameters from DWARF; "
		     "a USDT probe has none (name its arguments: NAME=argN:TYPE)");
	t = "span f error=maybe\n";
	expect_error(t, strlen(t), "t.syms:1: bad 'error=maybe': expected error=neg, "
		     "error=null, error=VALUE or error=err");
	t = "span f error=err error=neg\n";
	expect_error(t, strlen(t), "t.syms:1: more than one error= condition");
	t = "span usdt p:a p:b error=err\n";
	expect_error(t, strlen(t), "t.syms:1: error=err tests a Rust poll's Poll::Ready(Err(_)); "
		     "a USDT probe returns nothing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_comments_blanks),
		cmocka_unit_test(test_unknown_keyword),
		cmocka_unit_test(test_unknown_keyword_is_escaped),
		cmocka_unit_test(test_missing_pattern),
		cmocka_unit_test(test_no_entries),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_roundtrip),
		cmocka_unit_test(test_usdt_and_captures),
		cmocka_unit_test(test_usdt_and_capture_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
