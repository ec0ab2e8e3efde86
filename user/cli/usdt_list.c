/*
 * `spanprobe symbols --usdt (-p PID | BINARY) [--json]`: the USDT probes
 * each object offers (.note.stapsdt), with their semaphores and argument
 * specs, so a symbol list can name them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <gelf.h>
#include "cli/cli.h"
#include "output/span_print.h"
#include "symbols/proc_maps.h"
#include "symbols/usdt_notes.h"

static void text_object(const char *path, const struct sp_usdt_list *l)
{
	printf("%s: %zu USDT probe%s\n", path, l->n, l->n == 1 ? "" : "s");
	for (size_t i = 0; i < l->n; i++) {
		const struct sp_usdt_probe *p = &l->v[i];

		printf("  %s:%s  pc 0x%llx", p->provider, p->name, (unsigned long long)p->pc);
		if (p->semaphore)
			printf("  semaphore 0x%llx", (unsigned long long)p->semaphore);
		if (p->n_args < 0)
			printf("  args '%s' (not understood: its captures cannot be read)\n",
			       p->args_text);
		else
			printf("  %d arg%s%s%s\n", p->n_args, p->n_args == 1 ? "" : "s",
			       p->n_args ? ": " : "", p->args_text);
	}
}

static void json_object(const char *path, const struct sp_usdt_list *l, bool first)
{
	printf("%s{\"object\":", first ? "" : ",");
	sp_print_json_string(stdout, path);
	fputs(",\"probes\":[", stdout);
	for (size_t i = 0; i < l->n; i++) {
		const struct sp_usdt_probe *p = &l->v[i];

		fputs(i ? ",{\"provider\":" : "{\"provider\":", stdout);
		sp_print_json_string(stdout, p->provider);
		fputs(",\"name\":", stdout);
		sp_print_json_string(stdout, p->name);
		printf(",\"pc\":%llu,\"semaphore\":%llu,\"args\":", (unsigned long long)p->pc,
		       (unsigned long long)p->semaphore);
		sp_print_json_string(stdout, p->args_text);
		printf(",\"n_args\":%d}", p->n_args);
	}
	fputs("]}", stdout);
}

/* 1 listed, 0 no notes, -1 unreadable (warned). */
static int list_object(const char *path, const char *open_path, bool json, bool first)
{
	struct sp_usdt_list l;
	char err[256];
	int fd = open(open_path, O_RDONLY | O_CLOEXEC), rc;
	Elf *e;

	if (fd < 0) {
		fprintf(stderr, "spanprobe: warning: %s: cannot open\n", path);
		return -1;
	}
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	rc = e && elf_kind(e) == ELF_K_ELF ? sp_usdt_read_elf(e, &l, err, sizeof(err)) : -1;
	if (rc)
		fprintf(stderr, "spanprobe: warning: %s: %s\n", path,
			e && elf_kind(e) == ELF_K_ELF ? err : "not an ELF file");
	else if (l.n && json)
		json_object(path, &l, first);
	else if (l.n)
		text_object(path, &l);
	if (!rc) {
		rc = l.n != 0;
		sp_usdt_list_free(&l);
	}
	if (e)
		elf_end(e);
	close(fd);
	return rc;
}

int sp_list_usdt(pid_t pid, const char *binary, bool json)
{
	struct sp_mapped_objects m = { 0 };
	char err[512];
	int listed = 0;

	elf_version(EV_CURRENT);
	if (pid > 0 && sp_proc_objects(pid, &m, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		return 2;
	}
	if (json)
		fputs("{\"objects\":[", stdout);
	if (pid > 0) {
		for (size_t i = 0; i < m.n; i++)
			listed += list_object(m.v[i].path, m.v[i].open_path, json, !listed) > 0;
	} else if ((listed = list_object(binary, binary, json, true)) < 0) {
		if (json)
			fputs("]}\n", stdout);
		return 2;
	}
	if (json)
		fputs("]}\n", stdout);
	else if (!listed)
		printf("no USDT probes\n");
	sp_proc_objects_free(&m);
	return 0;
}
