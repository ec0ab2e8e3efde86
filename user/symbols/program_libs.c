#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "symbols/program_libs.h"

/* PT_INTERP of exe into buf; -1 for a static executable or unreadable file. */
static int read_interp(const char *exe, char *buf, size_t len)
{
	int fd = open(exe, O_RDONLY | O_CLOEXEC), rc = -1;
	Elf *e;
	size_t n;

	if (fd < 0)
		return -1;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (e && elf_getphdrnum(e, &n) == 0) {
		for (size_t i = 0; i < n && rc; i++) {
			GElf_Phdr ph;
			char *data;
			size_t size;

			if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_INTERP)
				continue;
			data = elf_rawfile(e, &size);
			if (data && ph.p_offset + ph.p_filesz <= size && ph.p_filesz < len) {
				memcpy(buf, data + ph.p_offset, ph.p_filesz);
				buf[ph.p_filesz] = '\0';
				rc = 0;
			}
		}
	}
	elf_end(e);
	close(fd);
	return rc;
}

static int add(struct sp_mapped_objects *m, const char *path)
{
	struct sp_mapped_object *v;

	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].path, path))
			return 0;
	v = realloc(m->v, (m->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	m->v = v;
	v[m->n].path = strdup(path);
	v[m->n].open_path = strdup(path);
	if (!v[m->n].path || !v[m->n].open_path)
		return -1;
	m->n++;
	return 0;
}

/* Lines look like "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
 * or "\t/lib64/ld-linux-x86-64.so.2 (0x...)". */
static int parse_line(struct sp_mapped_objects *m, char *line)
{
	char *arrow = strstr(line, "=> "), *p = arrow ? arrow + 3 : line, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '/')
		return 0;
	end = strstr(p, " (");
	if (end)
		*end = '\0';
	p[strcspn(p, "\n")] = '\0';
	return add(m, p);
}

static int list_libs(const char *interp, const char *exe, struct sp_mapped_objects *m)
{
	int fds[2], status, rc = 0;
	char line[4096];
	pid_t pid;
	FILE *f;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execl(interp, interp, "--list", exe, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	while (f && fgets(line, sizeof(line), f))
		rc |= parse_line(m, line);
	if (f)
		fclose(f);
	else
		close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -1;
	return rc;
}

int sp_program_objects(const char *exe, struct sp_mapped_objects *out,
		       char *err, size_t errlen)
{
	char interp[4096];

	memset(out, 0, sizeof(*out));
	if (add(out, exe)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (read_interp(exe, interp, sizeof(interp)))
		return 0;
	if (list_libs(interp, exe, out))
		fprintf(stderr, "spanprobe: warning: %s --list %s failed: "
			"only the executable's own functions are probed\n", interp, exe);
	return 0;
}
