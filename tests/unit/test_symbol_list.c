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
		     "t.syms:3: unknown keyword 'spam' (expected 'root' or 'span')");
	expect_error(t2, strlen(t2),
		     "t.syms:1: unknown keyword 'spanx' (expected 'root' or 'span')");
	expect_error(t3, strlen(t3),
		     "t.syms:1: unknown keyword 'Root' (expected 'root' or 'span')");
}

/* A symbol file does not get to send escape sequences to the terminal
 * through an error message (found by tests/fuzz/fuzz_symlist). */
static void test_unknown_keyword_is_escaped(void **state)
{
	(void)state;
	const char *t1 = "root a\n\x1b[2Jspan b\n";
	char t2[128];

	expect_error(t1, strlen(t1),
		     "t.syms:2: unknown keyword '\\x1b[2Jspan' (expected 'root' or 'span')");
	memset(t2, 'k', 100);
	memcpy(t2 + 100, " x\n", 4);
	expect_error(t2, strlen(t2),
		     "t.syms:1: unknown keyword "
		     "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'"
		     " (expected 'root' or 'span')");
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
		 "%s:2: unknown keyword 'bogus' (expected 'root' or 'span')", path);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
