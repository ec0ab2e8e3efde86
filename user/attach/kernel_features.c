/*
 * Kernel feature probes for `spanprobe --version` (kernel_features.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "attach/attach.h"
#include "attach/kernel_features.h"
#include "resolve/resolve.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* linux 6.9 */
#endif

static const struct {
	const char *key, *label;
} names[SP_FEAT_COUNT] = {
	[SP_FEAT_SESSION] = { "uprobe_session", "uprobe session links" },
	[SP_FEAT_MULTI] = { "uprobe_multi", "uprobe_multi links" },
	[SP_FEAT_TASK_STORAGE] = { "task_storage", "BPF task storage" },
	[SP_FEAT_PIDFD_THREAD] = { "pidfd_thread", "PIDFD_THREAD" },
	[SP_FEAT_WRITE_USER] = { "bpf_write_user", "BPF may write user memory" },
};

const char *sp_feature_key(enum sp_feature f)
{
	return f < SP_FEAT_COUNT ? names[f].key : "?";
}

const char *sp_feature_label(enum sp_feature f)
{
	return f < SP_FEAT_COUNT ? names[f].label : "?";
}

static void set(struct sp_feature_result *r, bool known, bool yes, const char *fmt, ...)
{
	va_list ap;

	r->known = known;
	r->yes = yes;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

/* What the session and multi probes attach to; never called. */
__attribute__((noinline, used)) void sp_feature_probe_target(void)
{
	__asm__ volatile("" ::: "memory");
}

/* libbpf's own messages about a refused load would look like errors. */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* The attach path tracing uses, in one mode only, on a function of
 * spanprobe itself (its own pid: nothing else is touched). */
static void probe_attach(enum sp_attach_mode mode, const struct sp_func_set *fs,
			 struct sp_feature_result *r)
{
	struct sp_attach_opts o = { .min_span_ns = 0, .best = mode, .exact = true };
	struct sp_attach_stats st;
	struct sp_attach *a;
	char err[256];

	if (sp_attach_open(&a, getpid(), fs, &o, &st, err, sizeof(err)) == 0) {
		set(r, true, true, "attached %zu probes with %zu links", st.probes, st.links);
		sp_attach_close(a);
	} else {
		set(r, true, false, "%s", err);
	}
}

static int self_target(struct sp_func_set *fs, char *err, size_t errlen)
{
	static const char list[] = "span sp_feature_probe_target\n";
	struct sp_pattern_list pats;
	char *exe = realpath("/proc/self/exe", NULL);
	int rc;

	if (!exe) {
		snprintf(err, errlen, "/proc/self/exe: %s", strerror(errno));
		return -1;
	}
	rc = sp_symlist_parse_buf("(built-in)", list, sizeof(list) - 1, &pats, err, errlen);
	if (rc == 0) {
		rc = sp_resolve(0, exe, &pats, SP_EXIT_FORCE_URETPROBE, fs, err, errlen);
		if (rc == 0 && (fs->n != 1 || fs->v[0].problem)) {
			snprintf(err, errlen, "%s: sp_feature_probe_target %s", exe,
				 fs->n ? fs->v[0].problem : "not found (stripped?)");
			sp_func_set_free(fs);
			rc = -1;
		}
		sp_symlist_free(&pats);
	}
	free(exe);
	return rc;
}

static void probe_links(struct sp_feature_result *session, struct sp_feature_result *multi)
{
	struct sp_func_set fs = { 0 };
	char err[256];

	if (self_target(&fs, err, sizeof(err))) {
		set(session, false, false, "%s", err);
		set(multi, false, false, "%s", err);
		return;
	}
	probe_attach(SP_ATTACH_SESSION, &fs, session);
	probe_attach(SP_ATTACH_MULTI, &fs, multi);
	sp_func_set_free(&fs);
}

static void probe_task_storage(struct sp_feature_result *r)
{
	int rc = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_TASK_STORAGE, NULL);

	if (rc < 0)
		set(r, false, false, "probing the map type: %s", strerror(-rc));
	else
		set(r, true, rc == 1, rc == 1 ? "a task storage map was created" :
		    "the kernel has no BPF_MAP_TYPE_TASK_STORAGE");
}

static void probe_pidfd_thread(struct sp_feature_result *r)
{
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)syscall(SYS_gettid), PIDFD_THREAD);

	if (fd >= 0) {
		close(fd);
		set(r, true, true, "pidfd_open(tid, PIDFD_THREAD) succeeded");
	} else if (errno == EINVAL) {
		set(r, true, false, "pidfd_open(tid, PIDFD_THREAD): EINVAL (before 6.9)");
	} else {
		set(r, false, false, "pidfd_open: %s", strerror(errno));
	}
}

/* The verifier's reason: its last line but the statistics after it. */
static const char *reason_line(char *log)
{
	for (;;) {
		char *end = log + strlen(log), *line;

		while (end > log && (end[-1] == '\n' || end[-1] == ' '))
			*--end = 0;
		line = end;
		while (line > log && line[-1] != '\n')
			line--;
		if (line == log || (strncmp(line, "processed ", 10) &&
				    strncmp(line, "verification time", 17)))
			return line;
		*line = 0;
	}
}

/* A kprobe-type program (what uprobes run) calling
 * bpf_probe_write_user(0, fp - 8, 8): loaded only where the kernel lets BPF
 * write user memory (not under lockdown, with CAP_SYS_ADMIN). */
static void probe_write_user(struct sp_feature_result *r)
{
	const struct bpf_insn prog[] = {
		{ .code = BPF_ST | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_10, .off = -8, .imm = 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_1, .imm = 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_10 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_2, .imm = -8 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = 8 },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_probe_write_user },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log),
		    .log_level = 1);
	int fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "sp_write_probe", "GPL", prog,
			       sizeof(prog) / sizeof(prog[0]), &o);

	if (fd >= 0) {
		close(fd);
		set(r, true, true, "a program calling bpf_probe_write_user was loaded");
	} else if (errno == EPERM && !log[0]) {
		set(r, false, false, "loading a BPF program: %s", strerror(errno));
	} else {
		set(r, true, false, "refused: %s", log[0] ? reason_line(log) : strerror(errno));
	}
}

void sp_kernel_write_user_probe(struct sp_feature_result *r)
{
	libbpf_print_fn_t old = libbpf_set_print(quiet);

	memset(r, 0, sizeof(*r));
	probe_write_user(r);
	libbpf_set_print(old);
}

void sp_kernel_features_probe(struct sp_feature_result out[SP_FEAT_COUNT])
{
	libbpf_print_fn_t old = libbpf_set_print(quiet);

	memset(out, 0, SP_FEAT_COUNT * sizeof(*out));
	probe_links(&out[SP_FEAT_SESSION], &out[SP_FEAT_MULTI]);
	probe_task_storage(&out[SP_FEAT_TASK_STORAGE]);
	probe_pidfd_thread(&out[SP_FEAT_PIDFD_THREAD]);
	probe_write_user(&out[SP_FEAT_WRITE_USER]);
	libbpf_set_print(old);
}
