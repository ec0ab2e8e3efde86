/*
 * What loading each BPF program of an object costs in the verifier:
 * spanprobe's attach time is mostly this, not the uprobes. Loads the
 * named programs one at a time (the others are not loaded) and prints,
 * one JSON object per line, the kernel's own figures (BPF_LOG_STATS).
 *
 *   verify_cost OBJECT.bpf.o PROGRAM...
 *
 * A program whose name ends in "session" is loaded as a uprobe session,
 * other kprobe-type programs as uprobe_multi, as spanprobe loads them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#define SESSION_ATTACH_TYPE 57 /* BPF_TRACE_UPROBE_SESSION, not in libbpf 1.4's uapi */

static char log_buf[1 << 20];

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

static void prepare(struct bpf_program *p, const char *wanted)
{
	const char *name = bpf_program__name(p);
	bool me = strcmp(name, wanted) == 0;

	bpf_program__set_autoload(p, me);
	if (ends_with(name, "session"))
		bpf_program__set_expected_attach_type(p, SESSION_ATTACH_TYPE);
	else if (bpf_program__type(p) == BPF_PROG_TYPE_KPROBE)
		bpf_program__set_expected_attach_type(p, BPF_TRACE_UPROBE_MULTI);
	if (me) {
		log_buf[0] = '\0';
		bpf_program__set_log_buf(p, log_buf, sizeof(log_buf));
		bpf_program__set_log_level(p, 4); /* BPF_LOG_STATS: summary only */
	}
}

static long stat_after(const char *key)
{
	const char *s = strstr(log_buf, key);

	return s ? strtol(s + strlen(key), NULL, 10) : -1;
}

static int one(const char *path, const char *prog)
{
	struct bpf_object *o = bpf_object__open_file(path, NULL);
	struct bpf_program *p;
	int rc;

	if (!o) {
		fprintf(stderr, "verify_cost: cannot open %s\n", path);
		return -1;
	}
	bpf_object__for_each_program(p, o)
		prepare(p, prog);
	rc = bpf_object__load(o);
	printf("{\"program\":\"%s\",\"loaded\":%s,\"verify_us\":%ld,\"insns_processed\":%ld}\n",
	       prog, rc ? "false" : "true", stat_after("verification time "),
	       stat_after("processed "));
	bpf_object__close(o);
	return rc;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: verify_cost OBJECT.bpf.o PROGRAM...\n");
		return 2;
	}
	libbpf_set_print(quiet);
	for (int i = 2; i < argc; i++)
		rc |= one(argv[1], argv[i]) != 0;
	return rc;
}
