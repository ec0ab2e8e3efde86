/*
 * The debug file lookup (user/symbols/debuginfo.c) on real files: this
 * test binary, stripped with objcopy the way production does it, its
 * debug file put in each place the lookup knows. debuginfod and whole
 * programs are tested in tests/integration/debuginfo.sh.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "symbols/debuginfo.h"

static char self[4096], tmp[4096];

static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("failed: %s", cmd);
}

/* The lookup for the object seen as path and opened as open_path. */
static const struct sp_debuginfo *find(const char *path, const char *open_path)
{
	int fd = open(open_path, O_RDONLY);
	Elf *e;
	const struct sp_debuginfo *r;

	assert_true(fd >= 0);
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	assert_non_null(e);
	r = sp_debuginfo_find(path, open_path, e);
	elf_end(e);
	close(fd);
	return r;
}

static void at(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", tmp, rel);
}

/* --strip-debug + .gnu_debuglink, the debug file in .debug/ beside it. */
static void test_debuglink_in_dot_debug(void **state)
{
	char bin[4200], want[4200];
	const struct sp_debuginfo *r;

	(void)state;
	sp_debuginfo_reset();
	at(bin, sizeof(bin), "a/bin");
	at(want, sizeof(want), "a/.debug/t.debug");
	r = find(bin, bin);
	assert_int_equal(r->source, SP_DBG_DEBUGLINK);
	assert_string_equal(r->path, want);
	assert_true(strlen(r->build_id) >= 16);
	/* a second lookup is the same answer, from the cache */
	assert_ptr_equal(find(bin, bin), r);
}

/* A debug file changed after it was linked: same build-id, other CRC. */
static void test_crc_mismatch_refused(void **state)
{
	char bin[4200];
	const struct sp_debuginfo *r;

	(void)state;
	sp_debuginfo_reset();
	at(bin, sizeof(bin), "crc/bin");
	r = find(bin, bin);
	assert_int_equal(r->source, SP_DBG_NONE);
	assert_null(r->path);
	assert_non_null(strstr(r->why, "CRC"));
}

/* A directory given with --debuginfo holding xx/yyyy.debug (the inside of
 * a .build-id tree), for a binary with no link at all. */
static void test_given_flat_build_id_dir(void **state)
{
	char bin[4200], dir[4200];
	const char *paths[1] = { dir };
	const struct sp_debuginfo *r;

	(void)state;
	sp_debuginfo_reset();
	at(bin, sizeof(bin), "nolink");
	at(dir, sizeof(dir), "flat");
	assert_int_equal(sp_debuginfo_set_paths(paths, 1, NULL, 0), 0);
	assert_true(sp_debuginfo_forced());
	r = find(bin, bin);
	assert_int_equal(r->source, SP_DBG_OPTION);
	assert_non_null(strstr(r->path, "/flat/"));
	assert_int_equal(sp_debuginfo_check_used(NULL, 0), 0);
}

/* A process in a container: the object is /srv/bin inside its root,
 * reached as ROOT/srv/bin; its debug link is looked for under ROOT. */
static void test_root_of_a_container(void **state)
{
	char open_path[4200], want[4200];
	const struct sp_debuginfo *r;

	(void)state;
	sp_debuginfo_reset();
	at(open_path, sizeof(open_path), "root/srv/bin");
	at(want, sizeof(want), "root/srv/t.debug");
	r = find("/srv/bin", open_path);
	assert_int_equal(r->source, SP_DBG_DEBUGLINK);
	assert_string_equal(r->path, want);
}

/* --debuginfo FILE of another object: refused, and an error naming both
 * build-ids once the lookups are done. */
static void test_given_file_of_another_build(void **state)
{
	char bin[4200], other[4200], err[1024];
	const char *paths[1] = { other };
	const struct sp_debuginfo *r;

	(void)state;
	sp_debuginfo_reset();
	at(bin, sizeof(bin), "nolink");
	at(other, sizeof(other), "other.debug");
	assert_int_equal(sp_debuginfo_set_paths(paths, 1, NULL, 0), 0);
	r = find(bin, bin);
	assert_int_equal(r->source, SP_DBG_NONE);
	assert_int_equal(sp_debuginfo_check_used(err, sizeof(err)), -1);
	assert_non_null(strstr(err, "other.debug: build-id "));
	assert_non_null(strstr(err, r->build_id));
}

static void test_given_path_missing(void **state)
{
	const char *paths[1] = { "/nonexistent/debug" };
	char err[256];

	(void)state;
	sp_debuginfo_reset();
	assert_int_equal(sp_debuginfo_set_paths(paths, 1, err, sizeof(err)), -1);
	assert_string_equal(err, "--debuginfo /nonexistent/debug: No such file or directory");
}

/* The places, made once from this very binary. */
static int setup(void **state)
{
	char id[SP_BUILD_ID_HEX];
	int fd;
	Elf *e;

	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/sp-debuginfo.XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	sh("cd %s && mkdir -p a/.debug crc root/srv flat && "
	   "objcopy --only-keep-debug %s t.debug && "
	   "objcopy --strip-debug --add-gnu-debuglink=t.debug %s a/bin && "
	   "cp t.debug a/.debug/t.debug && "
	   "cp a/bin crc/bin && cp t.debug crc/t.debug && echo x >> crc/t.debug && "
	   "cp a/bin root/srv/bin && cp t.debug root/srv/t.debug && "
	   "objcopy --strip-debug %s nolink && "
	   /* another build-id: the shell's */
	   "objcopy --only-keep-debug /bin/sh other.debug", tmp, self, self, self);
	fd = open(self, O_RDONLY);
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	sp_build_id_hex(e, id, sizeof(id));
	elf_end(e);
	close(fd);
	if (strlen(id) < 4)
		return -1;
	sh("cd %s && mkdir -p flat/%.2s && cp t.debug flat/%.2s/%s.debug", tmp, id, id, id + 2);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sp_debuginfo_reset();
	sh("rm -rf %s", tmp);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debuglink_in_dot_debug),
		cmocka_unit_test(test_crc_mismatch_refused),
		cmocka_unit_test(test_given_flat_build_id_dir),
		cmocka_unit_test(test_root_of_a_container),
		cmocka_unit_test(test_given_file_of_another_build),
		cmocka_unit_test(test_given_path_missing),
	};

	(void)argc;
	if (!realpath(argv[0], self))
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
