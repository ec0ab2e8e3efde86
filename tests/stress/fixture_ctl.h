/*
 * How the stress tests drive their fixtures (tests/integration/
 * reliability.sh): SIGUSR1 or SIGTERM, blocked in every thread and taken
 * with sigwait, releases a fixture that waits (--wait-signal, --hold);
 * the hold file says "done N" once its N queries are over, so that the
 * test can read spanprobe's state while nothing runs.
 */
#ifndef SPANPROBE_STRESS_FIXTURE_CTL_H
#define SPANPROBE_STRESS_FIXTURE_CTL_H

#include <signal.h>
#include <stdio.h>

static void fx_wait_release(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);
}

/* Says the work is over (path may be NULL: then nothing to wait for). */
static void fx_hold(const char *path, long served)
{
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "done %ld\n", served);
		fclose(f);
	}
	fx_wait_release();
}

#endif
