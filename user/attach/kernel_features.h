/*
 * What this kernel offers spanprobe, each found by doing it: `spanprobe
 * --version` prints it. Sessions and uprobe_multi are tried the way
 * tracing uses them (attach.c on a function of spanprobe itself), the
 * others by creating the smallest object that needs them.
 */
#ifndef SPANPROBE_KERNEL_FEATURES_H
#define SPANPROBE_KERNEL_FEATURES_H

#include <stdbool.h>

enum sp_feature {
	SP_FEAT_SESSION,      /* uprobe session links (6.13) */
	SP_FEAT_MULTI,        /* uprobe_multi links (6.6) */
	SP_FEAT_TASK_STORAGE, /* BPF task storage (5.11): the per-thread stacks */
	SP_FEAT_PIDFD_THREAD, /* pidfd_open(tid, PIDFD_THREAD) (6.9): exit flush */
	SP_FEAT_WRITE_USER,   /* bpf_probe_write_user allowed (lockdown forbids) */
	SP_FEAT_COUNT,
};

struct sp_feature_result {
	bool known;           /* false: could not be tried (detail says why) */
	bool yes;
	char detail[200];     /* why not, or how it was found */
};

/* Short names ("uprobe_session", ...) for JSON, and labels for text. */
const char *sp_feature_key(enum sp_feature f);
const char *sp_feature_label(enum sp_feature f);

/* Tries every feature; needs the privileges tracing needs (else the
 * answers are "unknown" with the error). */
void sp_kernel_features_probe(struct sp_feature_result out[SP_FEAT_COUNT]);

/* Only SP_FEAT_WRITE_USER: the unwind guard tells at attach whether BPF
 * could write the return slots itself. */
void sp_kernel_write_user_probe(struct sp_feature_result *r);

#endif
