/*
 * debuginfod through libdebuginfod, loaded with dlopen the first time a
 * lookup needs it (as elfutils' own libdwfl does): spanprobe runs on
 * production hosts, where libdebuginfod1 may be missing and brings a
 * second TLS stack (libcurl-gnutls) that most sessions never use. Without
 * it, spanprobe still runs and says why debuginfod was not asked.
 *
 * The wait is bounded through libdebuginfod's own settings, set for the
 * duration of one query when the user did not set them. Its progress
 * callback could abort too, but libdebuginfod 0.188 then records the
 * build-id as absent in its cache for 10 minutes, so an abort by us
 * would hide the file from every client of that cache.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <elfutils/debuginfod.h>
#include "base/errmsg.h"
#include "symbols/debuginfod_fetch.h"

struct dfd_lib {
	void *handle;
	debuginfod_client *(*begin)(void);
	int (*find_debuginfo)(debuginfod_client *, const unsigned char *, int, char **);
	void (*end)(debuginfod_client *);
};

static struct dfd_lib lib;
static bool tried_load, dead;

static int load(char *why, size_t whylen)
{
	if (tried_load)
		return lib.handle ? 0 : -1;
	tried_load = true;
	lib.handle = dlopen("libdebuginfod.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib.handle) {
		sp_set_err(why, whylen, "libdebuginfod.so.1 cannot be loaded (%s): "
			   "install libdebuginfod1", dlerror());
		return -1;
	}
	*(void **)&lib.begin = dlsym(lib.handle, "debuginfod_begin");
	*(void **)&lib.find_debuginfo = dlsym(lib.handle, "debuginfod_find_debuginfo");
	*(void **)&lib.end = dlsym(lib.handle, "debuginfod_end");
	if (!lib.begin || !lib.find_debuginfo || !lib.end) {
		sp_set_err(why, whylen, "libdebuginfod.so.1 lacks debuginfod_find_debuginfo");
		dlclose(lib.handle);
		lib.handle = NULL;
		return -1;
	}
	return 0;
}

/* The bounds we set, to be unset after the query (a `run` child must
 * not inherit them). */
struct bounds {
	bool timeout, maxtime;
};

static struct bounds set_bounds(void)
{
	struct bounds b = { 0 };

	if (!getenv("DEBUGINFOD_TIMEOUT"))
		b.timeout = setenv("DEBUGINFOD_TIMEOUT", SP_DEBUGINFOD_TIMEOUT_S, 0) == 0;
	if (!getenv("DEBUGINFOD_MAXTIME"))
		b.maxtime = setenv("DEBUGINFOD_MAXTIME", SP_DEBUGINFOD_MAXTIME_S, 0) == 0;
	return b;
}

static void unset_bounds(struct bounds b)
{
	if (b.timeout)
		unsetenv("DEBUGINFOD_TIMEOUT");
	if (b.maxtime)
		unsetenv("DEBUGINFOD_MAXTIME");
}

static void explain(int rc, const char *urls, char *why, size_t whylen)
{
	const char *t = getenv("DEBUGINFOD_TIMEOUT"), *m = getenv("DEBUGINFOD_MAXTIME");

	if (rc == -ETIME || rc == -ETIMEDOUT)
		sp_set_err(why, whylen, "debuginfod (DEBUGINFOD_URLS=%s): no answer in time "
			   "(DEBUGINFOD_TIMEOUT=%s s of silence, DEBUGINFOD_MAXTIME=%s s in all)",
			   urls, t ? t : SP_DEBUGINFOD_TIMEOUT_S, m ? m : SP_DEBUGINFOD_MAXTIME_S);
	else
		sp_set_err(why, whylen, "debuginfod (DEBUGINFOD_URLS=%s): %s", urls,
			   strerror(-rc));
}

int sp_debuginfod_fetch(const unsigned char *build_id, size_t len, char **path,
			char *why, size_t whylen)
{
	const char *urls = getenv("DEBUGINFOD_URLS");
	debuginfod_client *c;
	struct bounds b;
	int fd;

	*path = NULL;
	if (!urls || !*urls || dead || !len)
		return 1;
	if (load(why, whylen)) {
		dead = true;
		return -1;
	}
	if (!(c = lib.begin())) {
		sp_set_err(why, whylen, "debuginfod: cannot start a client");
		dead = true;
		return -1;
	}
	b = set_bounds();
	fd = lib.find_debuginfo(c, build_id, (int)len, path);
	if (fd < 0)
		explain(fd, urls, why, whylen);
	unset_bounds(b);
	lib.end(c);
	if (fd >= 0) {
		close(fd); /* the path is what is wanted: it is opened by libelf */
		return *path ? 0 : 1;
	}
	free(*path);
	*path = NULL;
	if (fd == -ENOENT || fd == -ENOSYS)
		return 1;
	dead = true;
	return -1;
}

void sp_debuginfod_reset(void)
{
	dead = false;
}
