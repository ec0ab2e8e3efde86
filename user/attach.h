/* Loads the BPF object and attaches the entry/exit probes of a function set. */
#ifndef SPANPROBE_ATTACH_H
#define SPANPROBE_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "symbols.h"

struct sp_attach;

struct sp_attach_stats {
	size_t functions; /* functions with an entry probe */
	size_t probes;    /* probe points: entries + exit sites + uretprobes */
	size_t links;     /* kernel links holding them */
	bool multi;       /* uprobe_multi links were used */
};

/* Attaches every attachable function of funcs (the cookie is its index in
 * funcs->v) to tgid. use_multi=false forces one classic link per probe
 * point (the path for kernels before 6.6). */
int sp_attach_open(struct sp_attach **out, pid_t tgid,
		   const struct sp_func_set *funcs, bool use_multi,
		   struct sp_attach_stats *stats, char *err, size_t errlen);
int sp_attach_ringbuf_fd(const struct sp_attach *a);
uint64_t sp_attach_dropped(const struct sp_attach *a);
uint64_t sp_attach_total(const struct sp_attach *a);
void sp_attach_close(struct sp_attach *a);

#endif
