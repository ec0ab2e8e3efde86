/* Loads the BPF object and attaches the entry/exit probes of a function set. */
#ifndef SPANPROBE_ATTACH_H
#define SPANPROBE_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/types.h>
#include "spanprobe.h"
#include "symbols/symbols.h"

/* How entries and returns reach BPF, best first. */
enum sp_attach_mode {
	SP_ATTACH_SESSION = 0, /* uprobe session links (6.13+) */
	SP_ATTACH_MULTI,       /* uprobe_multi entry + uretprobe links (6.6+) */
	SP_ATTACH_CLASSIC,     /* one perf-event uprobe per probe point */
};

struct sp_attach;

struct sp_attach_stats {
	size_t functions; /* functions with an entry probe */
	size_t probes;    /* probe points: entries + exit sites + returns */
	size_t links;     /* kernel links holding them */
	enum sp_attach_mode mode;
};

struct sp_attach_opts {
	uint64_t min_span_ns;
	uint32_t ring_bytes;       /* 0: the default; else a power of two >= 4096 */
	enum sp_attach_mode best;  /* the first mode to try */
	size_t extra_funcs;        /* room for functions added later */
	/* -p PID --follow: the links have no pid filter; BPF traces PID and
	 * the processes it forks (tgid is PID) */
	bool follow_children;
	bool exact;                /* try best only: no fallback (feature probes) */
	/* The object defining the unwinder (_Unwind_RaiseException...), as
	 * attach opens it: functions with guarded uretprobes are attached
	 * under the unwind guard (unwind_guard.h). NULL: no guard. */
	const char *unwinder;
};

/* Attaches every attachable function of funcs (the cookie is its index in
 * funcs->v) to tgid, trying the modes from o->best down. tgid 0: every
 * process that maps the files (attach --exe); each record names its own. */
int sp_attach_open(struct sp_attach **out, pid_t tgid,
		   const struct sp_func_set *funcs, const struct sp_attach_opts *o,
		   struct sp_attach_stats *stats, char *err, size_t errlen);
/* Attaches funcs->v[from..n), added since (objects mapped after attach),
 * in the mode and with the pid filter the first attach chose. -1 with err
 * when they do not fit in the room sp_attach_capacity gives or the kernel
 * refuses. */
int sp_attach_more(struct sp_attach *a, const struct sp_func_set *funcs,
		   size_t from, struct sp_attach_stats *st, char *err, size_t errlen);
/* Removes the probes in one object (an open_path given to attach): it
 * was unmapped. Returns the number of kernel links removed. */
size_t sp_attach_release(struct sp_attach *a, const char *open_path);
/* attach --exe: the rendezvous hook (on every process's dynamic linker)
 * sends records for the processes listed here only: those traced. */
int sp_attach_follow_pid(struct sp_attach *a, pid_t tgid, bool on);
/* Probes the dynamic linker's rendezvous (_dl_debug_state, at file
 * offset `offset` of open_path): every dlopen and dlclose then sends an
 * SP_RK_MAPS record. tgid 0: every process mapping the file. */
int sp_attach_dl_hook(struct sp_attach *a, pid_t tgid, const char *open_path,
		      uint64_t offset, char *err, size_t errlen);
/* attach --exe: the rendezvous hook of one traced process, made for its
 * pid alone (the kernel then writes the breakpoint into that process
 * only: a hook for all would trap in every process on the machine that
 * maps the loader, valgrind's guests included). Released with
 * sp_attach_dl_unhook_pid. */
int sp_attach_dl_hook_pid(struct sp_attach *a, pid_t tgid, const char *open_path,
			  uint64_t offset, char *err, size_t errlen);
void sp_attach_dl_unhook_pid(struct sp_attach *a, pid_t tgid);
/* The number of functions (sym_id slots) the BPF maps have room for. */
size_t sp_attach_capacity(const struct sp_attach *a);
/* Rendezvous hits whose record was lost to a full ring buffer. */
uint64_t sp_attach_maps_lost(const struct sp_attach *a);
/* How many times the target has called exec since attach. */
uint64_t sp_attach_exec_count(const struct sp_attach *a);
const char *sp_attach_mode_name(enum sp_attach_mode m);
int sp_attach_records_fd(const struct sp_attach *a);
int sp_attach_threads_fd(const struct sp_attach *a);
int sp_attach_futures_fd(const struct sp_attach *a);
uint64_t sp_attach_dropped(const struct sp_attach *a);
uint64_t sp_attach_depth_overflows(const struct sp_attach *a);
/* Tells BPF where the uretprobe trampoline lives (tail-call detection). */
void sp_attach_set_trampoline(struct sp_attach *a, uint64_t lo, uint64_t hi);
/* Sums one function's per-CPU figures. */
int sp_attach_sym_stats(const struct sp_attach *a, uint32_t sym_id,
			struct sp_sym_stats *out);
/* Removes every probe; the maps stay readable. */
/* The unwind guard's guardian process; 0 when there is no guard. */
pid_t sp_attach_guard_pid(const struct sp_attach *a);
struct sp_guard_stats {
	uint64_t words; /* return slots queued to restore or re-arm */
	uint64_t idle;  /* unwinder hooks that found nothing to write */
	uint64_t lost;  /* hooks whose words could not be queued (no room
			 * for the thread's record): that unwind ran into the
			 * trampoline */
	uint64_t stale; /* kernel return instances skipped as not live */
};
void sp_attach_guard_stats(const struct sp_attach *a, struct sp_guard_stats *g);
/* Removes every probe: no new hit from here on. The unwind guard stays:
 * its guardian still serves unwinds through frames hijacked before. */
void sp_attach_detach(struct sp_attach *a);
/* Lets the guardian restore what is left and go (it can take a moment:
 * every thread is held in turn); sp_attach_close does it too. */
void sp_attach_release_guard(struct sp_attach *a);
void sp_attach_close(struct sp_attach *a);

#endif
