/*
 * The unwind guard's writer. BPF cannot write the target's memory here
 * (bpf_probe_write_user is refused under lockdown), so the words the
 * guard hooks queue (struct sp_guard_rec, one per thread in the hash map
 * guard_recs) are
 * written by a guardian: a small process forked by spanprobe that
 * PTRACE_SEIZEs every thread of the target. A hook stops its thread with
 * a signal (bpf_send_signal_thread); the thread enters a signal-delivery
 * stop, seen by its tracer alone (no group stop, nothing a shell sees);
 * the guardian writes through /proc/PID/mem and resumes it with the
 * signal suppressed.
 *
 * Never leaving the target stopped:
 * - the guardian is its own process in its own process group: spanprobe
 *   exiting, crashing or being SIGKILLed (or ^C on its terminal) does not
 *   kill it; it sees its pipe close, serves the stops still coming until
 *   no thread has the signal pending, and exits;
 * - if the guardian itself dies, the kernel detaches its tracees and a
 *   held thread resumes; the signal is then delivered, and it is one the
 *   target neither catches nor blocks and whose default action is to
 *   ignore it (SIGURG, SIGWINCH or SIGCHLD): nothing happens;
 * - group stops (SIGSTOP, ^Z) are left to the shell: PTRACE_LISTEN keeps
 *   the thread stopped until SIGCONT, as without a tracer;
 * - a process that a debugger already traces cannot be seized: the guard
 *   refuses (sp_guard_check says why) and spanprobe falls back.
 */
#ifndef SPANPROBE_UNWIND_GUARD_H
#define SPANPROBE_UNWIND_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sp_unwind_guard;

/* Whether a guard can hold tgid's threads: not traced by anyone else,
 * and a stop signal it neither catches nor blocks (in any of its
 * threads). The signal, or -1
 * with why set. */
int sp_guard_check(pid_t tgid, char *why, size_t whylen);

/* What the guardian holds: the hooks' links live in its process, so
 * that they outlive spanprobe until every hijacked slot is restored. */
struct sp_guard_arm {
	/* Called in the guardian once every thread is seized: attaches the
	 * unwinder hooks and the sweep iterator; fds[] gets every fd to
	 * keep (links), *iter_fd the iterator's link. 0, or -1 with err. */
	int (*arm)(void *arg, int *fds, size_t max, size_t *n, int *iter_fd,
		   char *err, size_t errlen);
	void *arg;
};

/* Forks the guardian for tgid, which takes each stopped thread's guard
 * record from the hash map rec_fd (keyed by tid); the hooks stop threads
 * with sig. Returns once every thread
 * is seized and the hooks are in place; -1 with err set otherwise. */
int sp_guard_start(struct sp_unwind_guard **out, pid_t tgid, int rec_fd, int sig,
		   const struct sp_guard_arm *arm, char *err, size_t errlen);

/* The guardian's pid (tests, messages). */
pid_t sp_guard_pid(const struct sp_unwind_guard *g);

/* Tells the guardian to finish (call it once spanprobe's own probes are
 * detached: no new hijack can happen): it restores every live hijacked
 * slot of every thread (each thread held for a moment), removes the
 * hooks, lets the threads go and exits. Waits for it. NULL is fine.
 * If spanprobe dies instead, the guardian does the same once it is gone. */
void sp_guard_stop(struct sp_unwind_guard *g);

#endif
