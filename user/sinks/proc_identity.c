#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sinks/proc_identity.h"

#define UNKNOWN "unknown"

/* The value after "key" on the first line of path that starts with it,
 * with separators (':', '=', blanks, quotes) and the newline stripped. */
static int read_field(const char *path, const char *key, char *out, size_t outlen)
{
	FILE *f = fopen(path, "re");
	char line[512];
	size_t klen = strlen(key);
	int rc = -1;

	if (!f)
		return -1;
	while (rc && fgets(line, sizeof(line), f)) {
		char *v = line + klen, *end;

		if (strncmp(line, key, klen) || !strchr(":= \t", *v))
			continue;
		v += strspn(v, ":= \t\"");
		end = v + strcspn(v, "\"\n");
		*end = 0;
		snprintf(out, outlen, "%s", v);
		rc = 0;
	}
	fclose(f);
	return rc;
}

static void user_of(pid_t pid, struct sp_proc_identity *id)
{
	char path[64], uid_s[32];
	struct passwd pw, *res = NULL;
	char buf[4096];
	uid_t uid;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_field(path, "Uid", uid_s, sizeof(uid_s)))
		return;
	uid = (uid_t)strtoul(uid_s, NULL, 10); /* the real uid comes first */
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) || !res) {
		snprintf(id->username, sizeof(id->username), "%u", (unsigned)uid);
		snprintf(id->realname, sizeof(id->realname), "%u", (unsigned)uid);
		return;
	}
	snprintf(id->username, sizeof(id->username), "%s", pw.pw_name);
	/* GECOS: the full name, then office, phones... after commas */
	snprintf(id->realname, sizeof(id->realname), "%.*s",
		 (int)strcspn(pw.pw_gecos ? pw.pw_gecos : "", ","), pw.pw_gecos ? pw.pw_gecos : "");
	if (!id->realname[0])
		snprintf(id->realname, sizeof(id->realname), "%s", pw.pw_name);
}

void sp_proc_identity(pid_t pid, struct sp_proc_identity *id)
{
	char path[64];

	snprintf(id->username, sizeof(id->username), UNKNOWN);
	snprintf(id->realname, sizeof(id->realname), UNKNOWN);
	user_of(pid, id);
	if (gethostname(id->computer, sizeof(id->computer) - 1))
		snprintf(id->computer, sizeof(id->computer), UNKNOWN);
	id->computer[sizeof(id->computer) - 1] = 0;
	snprintf(path, sizeof(path), "/proc/%d/root/etc/os-release", (int)pid);
	if (read_field(path, "PRETTY_NAME", id->distro, sizeof(id->distro)) &&
	    read_field("/etc/os-release", "PRETTY_NAME", id->distro, sizeof(id->distro)))
		snprintf(id->distro, sizeof(id->distro), UNKNOWN);
	if (read_field("/proc/cpuinfo", "model name", id->cpu_brand, sizeof(id->cpu_brand)))
		snprintf(id->cpu_brand, sizeof(id->cpu_brand), UNKNOWN);
}
