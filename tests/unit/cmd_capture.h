/*
 * Runs a subcommand's entry point (sp_cmd_dump, sp_cmd_stats, ...) in the
 * test process with its stdout and stderr captured, so that the tests can
 * assert on what a user would see. Include after <cmocka.h>.
 */
#ifndef SPANPROBE_TEST_CMD_CAPTURE_H
#define SPANPROBE_TEST_CMD_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct run {
	int rc;
	char *out, *err;
};

static char *slurp(FILE *f)
{
	long len;
	char *s;

	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	s = calloc(1, (size_t)len + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return s;
}

static struct run run_cmd(int (*cmd)(int, char **), int argc, const char **argv)
{
	struct run r;
	FILE *o = tmpfile(), *e = tmpfile();
	int so, se;

	assert_non_null(o);
	assert_non_null(e);
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	r.rc = cmd(argc, (char **)argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	r.out = slurp(o);
	r.err = slurp(e);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

#endif
