/* USDT notes (.note.stapsdt), their argument specs, and --redact. */
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
#include <gelf.h>
#include "spans/sql_redact.h"
#include "symbols/usdt_notes.h"

static void test_arg_specs(void **state)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];

	(void)state;
	assert_int_equal(sp_usdt_parse_args("-4@%esi 8@-16(%rbp) 8@%rax -4@$8192 8@(%rbx) 1@$-3",
					    a, SP_USDT_MAX_ARGS), 6);
	assert_int_equal(a[0].kind, SP_USDT_ARG_REG);
	assert_int_equal(a[0].size, -4);
	assert_string_equal(a[0].reg, "esi");
	assert_int_equal(a[1].kind, SP_USDT_ARG_DEREF);
	assert_int_equal(a[1].size, 8);
	assert_int_equal(a[1].val, -16);
	assert_string_equal(a[1].reg, "rbp");
	assert_int_equal(a[2].kind, SP_USDT_ARG_REG);
	assert_int_equal(a[3].kind, SP_USDT_ARG_CONST);
	assert_int_equal(a[3].val, 8192);
	assert_int_equal(a[4].kind, SP_USDT_ARG_DEREF);
	assert_int_equal(a[4].val, 0);
	assert_int_equal(a[5].val, -3);
	assert_int_equal(sp_usdt_parse_args("", a, SP_USDT_MAX_ARGS), 0);
	assert_int_equal(sp_usdt_parse_args("  ", a, SP_USDT_MAX_ARGS), 0);
	/* malformed: no location, odd size, trailing junk, open paren, long reg */
	assert_int_equal(sp_usdt_parse_args("4@", a, SP_USDT_MAX_ARGS), -1);
	assert_int_equal(sp_usdt_parse_args("3@%eax", a, SP_USDT_MAX_ARGS), -1);
	assert_int_equal(sp_usdt_parse_args("8@%raxjunk!", a, SP_USDT_MAX_ARGS), -1);
	assert_int_equal(sp_usdt_parse_args("8@-16(%rbp", a, SP_USDT_MAX_ARGS), -1);
	assert_int_equal(sp_usdt_parse_args("8@%abcdefghij", a, SP_USDT_MAX_ARGS), -1);
	assert_int_equal(sp_usdt_parse_args("8@%rax 8@%rax", a, 1), -1);
}

static size_t put_note(uint8_t *p, uint64_t pc, uint64_t base, uint64_t sema, const char *prov,
		       const char *name, const char *args)
{
	size_t d = 24 + strlen(prov) + 1 + strlen(name) + 1 + strlen(args) + 1;
	uint32_t hdr[3] = { 8, (uint32_t)d, 3 };
	size_t o = 0;

	memcpy(p, hdr, 12);
	memcpy(p + 12, "stapsdt", 8);
	o = 20;
	memcpy(p + o, &pc, 8);
	memcpy(p + o + 8, &base, 8);
	memcpy(p + o + 16, &sema, 8);
	o += 24;
	strcpy((char *)p + o, prov);
	o += strlen(prov) + 1;
	strcpy((char *)p + o, name);
	o += strlen(name) + 1;
	strcpy((char *)p + o, args);
	o += strlen(args) + 1;
	while (o % 4)
		p[o++] = 0;
	return o;
}

static void test_notes(void **state)
{
	uint8_t buf[512] = { 0 };
	struct sp_usdt_list l;
	char err[256];
	size_t n;

	(void)state;
	n = put_note(buf, 0x1000, 0x2000, 0x3000, "pg", "query__start", "8@%rbx");
	n += put_note(buf + n, 0x1100, 0x2000, 0, "pg", "query__done", "bad spec");
	/* .stapsdt.base moved by 0x500 (prelink): pc and semaphore follow */
	assert_int_equal(sp_usdt_parse_notes(buf, n, 0x2500, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].provider, "pg");
	assert_string_equal(l.v[0].name, "query__start");
	assert_int_equal(l.v[0].pc, 0x1500);
	assert_int_equal(l.v[0].semaphore, 0x3500);
	assert_int_equal(l.v[0].n_args, 1);
	assert_int_equal(l.v[1].semaphore, 0);
	assert_int_equal(l.v[1].n_args, -1);
	assert_true(sp_usdt_matches(&l.v[0], "pg:query__start"));
	assert_true(sp_usdt_matches(&l.v[1], "p*:*done"));
	assert_false(sp_usdt_matches(&l.v[1], "pg:query__start"));
	assert_false(sp_usdt_matches(&l.v[1], "no colon"));
	sp_usdt_list_free(&l);
	/* cut anywhere inside the second note: an error naming the note, no crash */
	for (size_t cut = n - 1; cut > n / 2 + 12; cut--) {
		memset(&l, 0, sizeof(l));
		if (sp_usdt_parse_notes(buf, cut, 0, &l, err, sizeof(err)) == 0) {
			assert_int_equal(l.n, 1); /* only a pad cut can still parse */
		} else {
			assert_non_null(strstr(err, "note at byte"));
		}
		sp_usdt_list_free(&l);
	}
}

/* capserver's four probes, read from the built binary. */
static void test_fixture_notes(void **state)
{
	const char *path = "build/fixtures/capserver";
	struct sp_usdt_list l;
	char err[256];
	int fd = open(path, O_RDONLY);
	Elf *e;

	(void)state;
	if (fd < 0) {
		if (getenv("SP_REQUIRE_FIXTURES"))
			fail_msg("%s missing (make fixtures)", path);
		skip();
	}
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	assert_int_equal(sp_usdt_read_elf(e, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 4);
	for (size_t i = 0; i < l.n; i++) {
		assert_string_equal(l.v[i].provider, "capserver");
		assert_true(l.v[i].semaphore != 0);
		assert_true(l.v[i].pc_offset != 0);
		assert_true(l.v[i].n_args >= 1);
	}
	assert_string_equal(l.v[0].name, "req__start");
	assert_int_equal(l.v[0].n_args, 2);
	assert_int_equal(l.v[0].args[0].size, -8);
	sp_usdt_list_free(&l);
	elf_end(e);
	close(fd);
}

static void redacts(const char *in, const char *want)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s", in);
	sp_sql_redact(buf);
	assert_string_equal(buf, want);
}

static void test_redact(void **state)
{
	(void)state;
	redacts("SELECT * FROM t1 WHERE id = 42 AND name = 'bob'",
		"SELECT * FROM t1 WHERE id = ? AND name = ?");
	redacts("SELECT 'it''s', E'a\\'b', $$x 'y' 1$$, $q$z$q$ FROM \"T 2\"",
		"SELECT ?, ?, ?, ? FROM \"T 2\"");
	redacts("SELECT 1.5e-3, .5, 0x1F, x2, $1 FROM t", "SELECT ?, ?, ?, x2, $1 FROM t");
	redacts("SELECT 'unterminated", "SELECT ?");
	redacts("SELECT -7", "SELECT -?");
	redacts("", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arg_specs),
		cmocka_unit_test(test_notes),
		cmocka_unit_test(test_fixture_notes),
		cmocka_unit_test(test_redact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
